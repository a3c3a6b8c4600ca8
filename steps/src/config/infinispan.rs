//! The Infinispan family's part of a site's section in the environment file
//! (`sites.NAME.infinispan`): where the server is, which REST routes it has, how to
//! reach it (REST or Batch CRs), and credentials by reference.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IspnApi {
    /// Infinispan 14 / Data Grid 8.4 (Keycloak 24): `/rest/v2/cache-managers/{container}/...`
    V14,
    /// Infinispan 15+ / Data Grid 8.5+: `/rest/v2/container/...`
    V15,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IspnTransport {
    /// The REST API, from where runbook runs.
    #[default]
    Rest,
    /// Batch CRs through Kubernetes, for an Infinispan reachable only in the cluster.
    Batch,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InfinispanConfig {
    /// Base URL, e.g. `https://infinispan.example:11222` (REST transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Which routes the server has; absent: read from the server (`GET /rest/v2/server`)
    /// once per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<IspnApi>,
    /// The cache container (Infinispan 14's `/rest/v2/cache-managers/{container}`);
    /// default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The name Infinispan knows this site by (its `sites.local.name`), when it is not
    /// the environment file's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    /// The namespace of the Infinispan CR and its Batch CRs; default the site's
    /// Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub transport: IspnTransport,
    /// The Infinispan CR's name (Batch transport's `spec.cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<IspnAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    #[default]
    Basic,
    Digest,
}

/// Credentials by reference only: an environment variable, a file, or a Kubernetes
/// secret. The password itself never appears in the environment file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IspnAuth {
    #[serde(default)]
    pub scheme: AuthScheme,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// A Kubernetes secret in the site's namespace with keys `username`, `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. For rehearsals only; says so in the logs.
    #[serde(default)]
    pub insecure: bool,
}
