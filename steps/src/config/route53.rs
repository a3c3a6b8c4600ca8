//! The Route53 family's part of a site's section: `sites.NAME.route53`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route53Config {
    pub health_check_id: String,
    /// The host the health check probes (its `FullyQualifiedDomainName`, or
    /// `IPAddress`): this site's load balancer. Default: the host of the site's
    /// `lb_check_url`. What proves the health check belongs to this site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}
