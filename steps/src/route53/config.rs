//! Route53's section of a site, `traffic: {route53: …}`, and the deployment-wide
//! settings its sites give.

use serde::{Deserialize, Serialize};

use crate::config::{Concern, SiteConfig};

/// `traffic: {route53: …}`, whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route53Traffic {
    pub health_check_id: String,
    /// What the health check must probe to be this site's (its FQDN or IP) [default:
    /// the host of the site's `lb_check_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The hosted zone holding the client domain's failover records (the same for
    /// every site; given by one site or several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// The domain clients use (the failover record pair's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
}

/// A site's Route53 section.
pub fn section(site: &SiteConfig) -> Option<&Route53Traffic> {
    site.typed(Concern::Traffic, NAME)
}

/// The deployment's hosted zone and client domain, from whichever sites give them.
pub fn deployment(env: &engine::env::Environment) -> (Option<String>, Option<String>) {
    let sections: Vec<&Route53Traffic> = crate::config::sites(env)
        .values()
        .filter_map(section)
        .collect();
    (
        sections.iter().find_map(|s| s.hosted_zone_id.clone()),
        sections.iter().find_map(|s| s.client_domain.clone()),
    )
}

pub(crate) const NAME: &str = "route53";
