//! The environment file's schema, as the step library reads it. Each action family
//! owns its part, in its own file here: `infinispan:` (`infinispan.rs`), `keycloak:`
//! (`keycloak.rs`), `aurora:` (`aurora.rs`), `route53:` (`route53.rs`), and the shared
//! infrastructure sections, `kubernetes:` and the top-level `aws:` (`infra.rs`). This
//! file assembles them and hands them to the actions; a new family adds its file and
//! one field here. Unknown fields are refused everywhere, with their line and column.
//! (The parts live here rather than beside the actions so that the actions read them
//! through this module without a cycle.)

pub mod aurora;
pub mod infinispan;
pub mod infra;
pub mod keycloak;
pub mod roles;
pub mod route53;

use std::any::Any;
use std::sync::{Arc, LazyLock};

use engine::env::{yaml_problem, EnvSchema, Environment, SchemaError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use aurora::AuroraConfig;
pub use infinispan::{AuthScheme, InfinispanConfig, IspnApi, IspnAuth, IspnTransport, TlsConfig};
pub use infra::{AwsConfig, KubernetesConfig};
pub use keycloak::KeycloakConfig;
pub use roles::{AcceleratorTraffic, DatabaseConfig, PgoDatabase, TrafficConfig};
pub use route53::Route53Config;

/// The whole file, typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// The engine's own section (a lab's admin URL and time scale): the engine reads
    /// it; here it is only a known key.
    #[serde(default, skip_serializing)]
    pub lab: Option<serde_yaml::Value>,
    /// Where the journal is (a directory or a postgres:// URL): the CLI reads it when
    /// neither `--journal` nor `RUNBOOK_JOURNAL` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The procedure pack this deployment's runs use (`keycloak-24`): the CLI reads
    /// it when `--pack` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsConfig>,
    #[serde(default)]
    pub sites: IndexMap<String, SiteConfig>,
    /// Keys written the old way (a vendor's section straight in a site, its
    /// deployment-wide settings in `aws:`): they still work, for a release.
    #[serde(skip)]
    pub deprecated: Vec<String>,
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
    /// How traffic reaches this site: one vendor's section (`traffic: {route53: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficConfig>,
    /// Where this site's database is: one vendor's section (`database: {aurora: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
}

/// The schema the registry hands the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schema;

impl EnvSchema for Schema {
    fn parse(&self, text: &str) -> Result<Arc<dyn Any + Send + Sync>, SchemaError> {
        let mut file: EnvFile = serde_yaml::from_str(text).map_err(|e| yaml_problem(&e))?;
        roles::normalize(&mut file, text)?;
        Ok(Arc::new(file))
    }
}

static EMPTY: LazyLock<EnvFile> = LazyLock::new(EnvFile::default);

/// The environment file as this library typed it (empty for the empty environment).
pub fn of(env: &Environment) -> &EnvFile {
    env.typed::<EnvFile>().unwrap_or(&EMPTY)
}

/// Every site's typed section.
pub fn sites(env: &Environment) -> &IndexMap<String, SiteConfig> {
    &of(env).sites
}

/// The `aws:` section.
pub fn aws(env: &Environment) -> Option<&AwsConfig> {
    of(env).aws.as_ref()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_full_site_parses_and_unknown_keys_are_placed() {
        let text = "aws:\n  region: eu-west-1\nsites:\n  site-a:\n    infinispan:\n      url: https://x:11222\n      api: v14\n      auth: { username: admin, password_env: ISPN_PW, scheme: digest }\n    keycloak: { name: keycloak }\n";
        let env = Environment::parse(text, Path::new("env.yaml"), &Schema).unwrap();
        let ispn = sites(&env)["site-a"].infinispan.as_ref().unwrap();
        assert_eq!(ispn.api, Some(IspnApi::V14));
        assert_eq!(ispn.auth.as_ref().unwrap().scheme, AuthScheme::Digest);
        assert_eq!(env.sites["site-a"]["keycloak"]["name"], "keycloak");
        let bad = "sites:\n  site-a:\n    infinispan:\n      url: x\n      passwrd: y\n";
        let e = Environment::parse(bad, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("env.yaml:5:7: sites.site-a.infinispan: unknown field `passwrd`"),
            "{e}"
        );
        let bad = "sites:\n  site-a:\n    infinispan: { api: v16 }\n";
        let e = Environment::parse(bad, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `v16`"), "{e}");
    }

    #[test]
    fn an_unknown_top_level_section_is_placed_and_the_lab_section_is_known() {
        let e = Environment::parse("awz:\n  region: x\n", Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("env.yaml:1:1: unknown field `awz`"), "{e}");
        let env = Environment::parse(
            "lab: { admin_url: http://127.0.0.1:1, time_scale: 0.5 }\n",
            Path::new("env.yaml"),
            &Schema,
        )
        .unwrap();
        assert_eq!(env.time_scale(), 0.5);
    }
}
