//! The Aurora family's part of a site's section: `sites.NAME.aurora`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuroraConfig {
    /// The Aurora instance in this site's availability zone.
    pub instance: String,
}
