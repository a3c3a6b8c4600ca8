//! The Route53 family's part of a site's section: `sites.NAME.route53`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route53Config {
    pub health_check_id: String,
}
