//! The environment file's schema, as the step library reads it: the sections every
//! deployment has, in their own files here (`infinispan:` in `infinispan.rs`,
//! `keycloak:` in `keycloak.rs`, the shared `kubernetes:` and top-level `aws:` in
//! `infra.rs`), and the role sections `traffic:` and `database:` (`roles.rs`), whose
//! vendor sections each vendor registers from its own folder ([`VendorSection`]). The
//! keys of the first releases convert into the current shape first (`legacy.rs`).
//! Unknown fields are refused everywhere, with their line and column.

pub mod infinispan;
pub mod infra;
pub mod keycloak;
pub mod legacy;
pub mod roles;

use std::any::Any;
use std::sync::{Arc, LazyLock};

use engine::env::{yaml_problem, EnvSchema, Environment, SchemaError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use infinispan::{AuthScheme, InfinispanConfig, IspnApi, IspnAuth, IspnTransport, TlsConfig};
pub use infra::{AwsConfig, KubernetesConfig};
pub use keycloak::KeycloakConfig;
pub use roles::{Concern, Problem, RoleSection, VendorSection};

/// The whole file, typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// The engine's own section (a lab's admin URL and time scale): the engine reads
    /// it; here it is only a known key.
    #[serde(default, skip_serializing)]
    pub lab: Option<serde_yaml::Value>,
    /// Who may pass a manual gate (`four_eyes`): the engine reads it; here it is only
    /// a known key.
    #[serde(default, skip_serializing)]
    pub approvals: Option<serde_yaml::Value>,
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

/// One site's section: how to reach its Kubernetes, Keycloak, Infinispan and
/// load-balancer check, and which vendor plays each role there.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<KeycloakConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infinispan: Option<InfinispanConfig>,
    /// Deprecated (`database: {aurora: …}`): converted on reading, never read after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora: Option<legacy::OldAurora>,
    /// Deprecated (`traffic: {route53: …}`): converted on reading, never read after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<legacy::OldRoute53>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_check_url: Option<String>,
    /// How traffic reaches this site: one vendor's section (`traffic: {route53: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<RoleSection>,
    /// Where this site's database is: one vendor's section (`database: {aurora: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<RoleSection>,
}

impl SiteConfig {
    /// The site's section for `concern`.
    pub fn section(&self, concern: Concern) -> Option<&RoleSection> {
        match concern {
            Concern::Traffic => self.traffic.as_ref(),
            Concern::Database => self.database.as_ref(),
        }
    }

    fn section_mut(&mut self, concern: Concern) -> Option<&mut RoleSection> {
        match concern {
            Concern::Traffic => self.traffic.as_mut(),
            Concern::Database => self.database.as_mut(),
        }
    }

    /// The vendor the site names for `concern`.
    pub fn vendor(&self, concern: Concern) -> Option<&str> {
        self.section(concern).map(|s| s.vendor.as_str())
    }

    /// `vendor`'s typed section for `concern`, when the site names that vendor.
    pub fn typed<T: 'static>(&self, concern: Concern, vendor: &str) -> Option<&T> {
        self.section(concern)?.typed(vendor)
    }
}

/// The schema the registry hands the engine: the fixed sections, and the vendors'
/// sections as the vendors registered them.
#[derive(Clone, Default)]
pub struct Schema {
    pub vendors: Vec<&'static dyn VendorSection>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vendors.iter().map(|v| v.vendor()).collect();
        f.debug_struct("Schema").field("vendors", &names).finish()
    }
}

impl EnvSchema for Schema {
    fn parse(&self, text: &str) -> Result<Arc<dyn Any + Send + Sync>, SchemaError> {
        let mut file: EnvFile = serde_yaml::from_str(text).map_err(|e| yaml_problem(&e))?;
        legacy::upgrade(&mut file, text)?;
        roles::normalize(&mut file, text, &self.vendors)?;
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
        let env = Environment::parse(text, Path::new("env.yaml"), &crate::schema()).unwrap();
        let ispn = sites(&env)["site-a"].infinispan.as_ref().unwrap();
        assert_eq!(ispn.api, Some(IspnApi::V14));
        assert_eq!(ispn.auth.as_ref().unwrap().scheme, AuthScheme::Digest);
        assert_eq!(env.sites["site-a"]["keycloak"]["name"], "keycloak");
        let bad = "sites:\n  site-a:\n    infinispan:\n      url: x\n      passwrd: y\n";
        let e = Environment::parse(bad, Path::new("env.yaml"), &crate::schema())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("env.yaml:5:7: sites.site-a.infinispan: unknown field `passwrd`"),
            "{e}"
        );
        let bad = "sites:\n  site-a:\n    infinispan: { api: v16 }\n";
        let e = Environment::parse(bad, Path::new("env.yaml"), &crate::schema())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `v16`"), "{e}");
    }

    #[test]
    fn an_unknown_top_level_section_is_placed_and_the_lab_section_is_known() {
        let e = Environment::parse(
            "awz:\n  region: x\n",
            Path::new("env.yaml"),
            &crate::schema(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("env.yaml:1:1: unknown field `awz`"), "{e}");
        let env = Environment::parse(
            "lab: { admin_url: http://127.0.0.1:1, time_scale: 0.5 }\n",
            Path::new("env.yaml"),
            &crate::schema(),
        )
        .unwrap();
        assert_eq!(env.time_scale(), 0.5);
    }
}
