//! CloudNativePG's section of a site, `database: {cnpg: …}`.

use serde::{Deserialize, Serialize};

use crate::config::{Concern, SiteConfig};

/// `database: {cnpg: …}`, whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CnpgDatabase {
    /// This site's `Cluster` (`postgresql.cnpg.io/v1`) in the site's Kubernetes
    /// namespace; its name in the topology (`spec.replica.self`).
    pub cluster: String,
    /// `host:port` where this site's `-rw` service is exposed: how runbook reads the
    /// database, and where every site's Keycloak reaches it when it writes.
    pub address: String,
    /// The app secret [default: `<cluster>-app`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The database Keycloak uses [default: the secret's user name].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The replay lag a planned move accepts, in bytes of WAL [default: 16 MiB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_bytes: Option<u64>,
}

pub(crate) const NAME: &str = "cnpg";

/// A site's CloudNativePG section.
pub fn section(site: &SiteConfig) -> Option<&CnpgDatabase> {
    site.typed(Concern::Database, NAME)
}
