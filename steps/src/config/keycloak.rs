//! The Keycloak family's part of a site's section: `sites.NAME.keycloak`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeycloakConfig {
    /// The Keycloak CR's name (also its StatefulSet's).
    pub name: String,
}
