//! The infrastructure sections several families share: the top-level `aws:` (Aurora,
//! Route53, the serving site) and a site's `kubernetes:` (Keycloak, Infinispan's Batch
//! transport, the cross-site view).

use serde::{Deserialize, Serialize};

/// `aws:` — the deployment's AWS account. Credentials come from the SDK's standard
/// chain (environment, profile, instance role), never from this file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: String,
    /// For emulators (the lab, moto); absent for AWS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora_cluster: Option<String>,
    /// The Route53 hosted zone holding the client domain's failover records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// The domain clients use (the failover record pair's name): which site serves is
    /// read from its records, never from a procedure's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Default: the standard kubeconfig (`KUBECONFIG`, `~/.kube/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Default: the kubeconfig's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub namespace: String,
}
