//! The environment file: which sites exist and how to reach each one. The engine only
//! needs the site names and their sections (for `site:` and templates); the step
//! library reads the fields it needs from a site's section.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::digest::sha256_hex;

/// A loaded environment file.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Where it was read from; `None` for the empty environment.
    pub file: Option<PathBuf>,
    /// Hex SHA-256 of the file's text, journaled with each run.
    pub digest: String,
    pub aws: Option<AwsConfig>,
    /// Present when the environment is a lab (`runbook lab`).
    pub lab: Option<LabInfo>,
    /// Each site's section as template data (`sites.NAME...`, `site...`).
    pub sites: IndexMap<String, Json>,
    /// The same, typed, for the steps.
    pub site_configs: IndexMap<String, SiteConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read environment file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    #[serde(default)]
    aws: Option<AwsConfig>,
    /// Written by `runbook lab`: where its admin API is.
    #[serde(default)]
    lab: Option<LabInfo>,
    #[serde(default)]
    sites: IndexMap<String, SiteConfig>,
}

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
pub struct LabInfo {
    pub admin_url: String,
    /// The lab's time scale: step timeouts, retry delays and polls are multiplied by it
    /// (production durations become lab durations).
    #[serde(default = "one")]
    pub time_scale: f64,
}

fn one() -> f64 {
    1.0
}

/// One site's section: how to reach its Kubernetes, Keycloak, Infinispan, Aurora
/// instance, Route53 health check and load-balancer check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<KeycloakConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infinispan: Option<InfinispanConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora: Option<AuroraConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53Config>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_check_url: Option<String>,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeycloakConfig {
    /// The Keycloak CR's name (also its StatefulSet's).
    pub name: String,
}

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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuroraConfig {
    /// The Aurora instance in this site's availability zone.
    pub instance: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route53Config {
    pub health_check_id: String,
}

impl Environment {
    /// The environment with no sites, for runbooks that touch none.
    pub fn empty() -> Environment {
        Environment {
            digest: sha256_hex(""),
            ..Environment::default()
        }
    }

    /// Read and check an environment file.
    ///
    /// # Errors
    /// The file cannot be read, or is not a valid environment (with line and column).
    pub fn load(path: &Path) -> Result<Environment, EnvError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnvError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Environment::parse(&text, path)
    }

    /// Parse the text of an environment file; `path` names it in errors.
    ///
    /// # Errors
    /// The text is not a valid environment (with line and column).
    pub fn parse(text: &str, path: &Path) -> Result<Environment, EnvError> {
        let invalid = |line, column, message| EnvError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        };
        if let Some(pos) = crate::spans::too_deep(text) {
            return Err(invalid(
                pos.line,
                pos.column,
                format!(
                    "nested deeper than {} levels of mappings and lists: an environment file is not that deep",
                    crate::spans::MAX_DEPTH
                ),
            ));
        }
        let raw: RawEnv = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let mut message = e.to_string();
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            invalid(line, column, message)
        })?;
        let mut sites = IndexMap::new();
        for (name, section) in &raw.sites {
            let value = serde_json::to_value(section)
                .map_err(|e| invalid(1, 1, format!("site `{name}`: {e}")))?;
            sites.insert(name.clone(), value);
        }
        Ok(Environment {
            file: Some(path.to_path_buf()),
            digest: sha256_hex(text),
            aws: raw.aws,
            lab: raw.lab,
            sites,
            site_configs: raw.sites,
        })
    }

    /// How much faster than production time runs here (1 outside a lab).
    pub fn time_scale(&self) -> f64 {
        self.lab
            .as_ref()
            .map(|l| {
                if l.time_scale.is_finite() {
                    l.time_scale.max(0.0001)
                } else {
                    1.0
                }
            })
            .unwrap_or(1.0)
            .min(1.0)
    }

    /// A production duration for this environment. Timeouts keep a floor of 1 s so
    /// that a lab run on a busy machine still has room for its round trips.
    pub fn scaled_timeout(&self, d: std::time::Duration) -> std::time::Duration {
        let s = self.time_scale();
        if s >= 1.0 {
            return d;
        }
        d.mul_f64(s).max(std::time::Duration::from_secs(1)).min(d)
    }

    /// A production pause (poll interval, retry delay) for this environment.
    pub fn scaled_pause(&self, d: std::time::Duration) -> std::time::Duration {
        let s = self.time_scale();
        if s >= 1.0 {
            return d;
        }
        d.mul_f64(s).max(std::time::Duration::from_millis(1))
    }

    /// The sites as template data: name → section.
    pub fn sites_json(&self) -> Json {
        Json::Object(
            self.sites
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_site_parses_and_unknown_keys_are_placed() {
        let text = "aws:\n  region: eu-west-1\nsites:\n  site-a:\n    infinispan:\n      url: https://x:11222\n      api: v14\n      auth: { username: admin, password_env: ISPN_PW, scheme: digest }\n    keycloak: { name: keycloak }\n";
        let env = Environment::parse(text, Path::new("env.yaml")).unwrap();
        let ispn = env.site_configs["site-a"].infinispan.as_ref().unwrap();
        assert_eq!(ispn.api, Some(IspnApi::V14));
        assert_eq!(ispn.auth.as_ref().unwrap().scheme, AuthScheme::Digest);
        assert_eq!(env.sites["site-a"]["keycloak"]["name"], "keycloak");
        let bad = "sites:\n  site-a:\n    infinispan:\n      url: x\n      passwrd: y\n";
        let e = Environment::parse(bad, Path::new("env.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("env.yaml:5:7: sites.site-a.infinispan: unknown field `passwrd`"),
            "{e}"
        );
        let bad = "sites:\n  site-a:\n    infinispan: { api: v16 }\n";
        let e = Environment::parse(bad, Path::new("env.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `v16`"), "{e}");
    }
}
