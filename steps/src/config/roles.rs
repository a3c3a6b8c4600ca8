//! The role sections of a site: `traffic:` (how clients reach it) and `database:`
//! (where its database is), each holding exactly one vendor's section, whole: its
//! per-site settings and the deployment-wide ones it needs (Route53's hosted zone and
//! client domain, Aurora's cluster). A procedure names the role (`traffic.point-away`,
//! `database.move-writer`); the site's section names the vendor.
//!
//! The keys of the first releases (`route53:` and `aurora:` straight in a site, the
//! zone, domain and cluster in `aws:`) still work for a release: [`normalize`] reads
//! both, refuses a setting given twice differently, and lists the old keys so the CLI
//! can say they are deprecated.

use engine::env::SchemaError;
use serde::{Deserialize, Serialize};

use super::{AuroraConfig, AwsConfig, EnvFile, Route53Config};

/// `traffic:`: one vendor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// A Route53 failover record pair, the site's record carrying this health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53Traffic>,
    /// AWS Global Accelerator (the Keycloak 26 shape): this site's NLB is one endpoint
    /// of the accelerator's endpoint group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorTraffic>,
}

/// Global Accelerator as a traffic vendor, whole (`../shared/docs/keycloak-26.md` §1.3).
/// Its API is always called in us-west-2, whatever `aws.region` says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorTraffic {
    /// The accelerator: its `Name`, `DnsName` or `DualStackDnsName` (the same for
    /// every site; the fencing alert's `accelerator` label is its DNS name).
    pub name: String,
    /// This site's Network Load Balancer: its DNS name (the `accelerator-loadbalancer`
    /// Service's `.status.loadBalancer.ingress[].hostname`) or its ARN. Its `site` tag
    /// must name this site.
    pub load_balancer: String,
    /// The weight the site gets when it is added [default: 128, the guide's].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

/// Route53 as a traffic vendor, whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route53Traffic {
    pub health_check_id: String,
    /// What the health check must probe to be this site's (its FQDN or IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The hosted zone holding the client domain's failover records (the same for
    /// every site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// The domain clients use (the failover record pair's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
}

/// `database:`: one vendor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// An Aurora cluster whose writer moves between the sites' zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora: Option<AuroraDatabase>,
    /// A CrunchyData PGO `PostgresCluster` at this site (the primary, or a standby
    /// cluster replicating from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgo: Option<PgoDatabase>,
}

/// PGO as a database vendor, whole (`../shared/docs/pgo.md`). The cluster is read in
/// the site's Kubernetes namespace; its primary through `address`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PgoDatabase {
    /// The PostgresCluster's name.
    pub cluster: String,
    /// The pguser whose secret (`<cluster>-pguser-<user>`) Keycloak uses; PGO's
    /// default user is the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `host:port` where this site's primary service is exposed (a LoadBalancer or
    /// NodePort): how runbook reads the database, and how the other sites' Keycloak
    /// reach it when this site holds the writer.
    pub address: String,
    /// How this site's own Keycloak reaches it [default: `<cluster>-primary.<namespace>.svc`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_host: Option<String>,
    /// The replay lag a planned move of the writer accepts, in bytes of WAL
    /// [default: 16 MiB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_bytes: Option<u64>,
    /// TLS to the database (PGO always serves TLS) [default: true]; `ca_file`: PGO's
    /// CA (its `<cluster>-cluster-cert` secret's `ca.crt`), else the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Aurora as a database vendor, whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuroraDatabase {
    /// The cluster (the same for every site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// This site's instance.
    pub instance: String,
    /// The availability zone of this site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn placed(text: &str, key: &str, message: String) -> SchemaError {
    // The line of the first `key:`, for the operator to find it.
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map_or(1, |i| i + 1);
    SchemaError {
        line,
        column: 1,
        message,
    }
}

/// Set a deployment-wide value once: the same from every place that gives it.
fn once(
    slot: &mut Option<String>,
    value: &Option<String>,
    what: &str,
    text: &str,
    key: &str,
) -> Result<(), SchemaError> {
    let Some(v) = value else { return Ok(()) };
    match slot {
        Some(old) if old != v => Err(placed(
            text,
            key,
            format!("{what} is given twice, as `{old}` and `{v}`: a deployment has one"),
        )),
        _ => {
            *slot = Some(v.clone());
            Ok(())
        }
    }
}

/// A site's `traffic:` section read into the settings the actions use.
fn traffic_of(
    name: &str,
    site: &mut super::SiteConfig,
    aws: &mut AwsConfig,
    accelerator: &mut Option<String>,
    text: &str,
) -> Result<(), SchemaError> {
    if let Some(r) = site.traffic.as_ref().and_then(|t| t.route53.as_ref()) {
        if site.route53.is_some() {
            return Err(placed(
                text,
                "route53",
                format!("sites.{name} gives Route53 twice (route53: and traffic.route53:): keep traffic.route53"),
            ));
        }
        site.route53 = Some(Route53Config {
            health_check_id: r.health_check_id.clone(),
            target: r.target.clone(),
        });
        once(
            &mut aws.hosted_zone_id,
            &r.hosted_zone_id,
            "the Route53 hosted zone",
            text,
            "hosted_zone_id",
        )?;
        once(
            &mut aws.client_domain,
            &r.client_domain,
            "the client domain",
            text,
            "client_domain",
        )?;
    }
    if let Some(t) = &site.traffic {
        if t.route53.is_some() && t.accelerator.is_some() {
            return Err(placed(
                text,
                "accelerator",
                format!("sites.{name}.traffic names two vendors (route53 and accelerator): a site's traffic is one"),
            ));
        }
    }
    if let Some(a) = site.traffic.as_ref().and_then(|t| t.accelerator.as_ref()) {
        once(
            accelerator,
            &Some(a.name.clone()),
            "the Global Accelerator",
            text,
            "accelerator",
        )?;
        if a.load_balancer.trim().is_empty() {
            return Err(placed(
                text,
                "load_balancer",
                format!("sites.{name}.traffic.accelerator.load_balancer is empty (this site's NLB: its DNS name or ARN)"),
            ));
        }
    }
    Ok(())
}

/// A site's `database:` section read into the settings the actions use.
fn database_of(
    name: &str,
    site: &mut super::SiteConfig,
    aws: &mut AwsConfig,
    text: &str,
) -> Result<(), SchemaError> {
    if site
        .database
        .as_ref()
        .is_some_and(|d| d.aurora.is_some() && d.pgo.is_some())
    {
        return Err(placed(
            text,
            "pgo",
            format!("sites.{name}.database names two vendors (aurora and pgo): a site's database is one"),
        ));
    }
    if let Some(p) = site.database.as_ref().and_then(|d| d.pgo.as_ref()) {
        let port_ok = p
            .address
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
        if !port_ok {
            return Err(placed(
                text,
                "address",
                format!(
                    "sites.{name}.database.pgo.address `{}` is not host:port (where this site's primary service is exposed, e.g. pg-a.example.com:5432)",
                    p.address
                ),
            ));
        }
    }
    if let Some(a) = site.database.as_ref().and_then(|d| d.aurora.as_ref()) {
        if site.aurora.is_some() {
            return Err(placed(
                text,
                "aurora",
                format!("sites.{name} gives Aurora twice (aurora: and database.aurora:): keep database.aurora"),
            ));
        }
        site.aurora = Some(AuroraConfig {
            instance: a.instance.clone(),
            zone: a.zone.clone(),
        });
        once(
            &mut aws.aurora_cluster,
            &a.cluster,
            "the Aurora cluster",
            text,
            "cluster",
        )?;
    }
    Ok(())
}

/// Read the role sections into the settings the actions use, and note the old keys.
///
/// # Errors
/// A vendor configured both ways for one site, or a deployment-wide setting given
/// twice with different values.
pub fn normalize(file: &mut EnvFile, text: &str) -> Result<(), SchemaError> {
    let mut aws = file.aws.clone().unwrap_or_default();
    let had_aws = file.aws.is_some();
    if aws.hosted_zone_id.is_some() || aws.client_domain.is_some() {
        file.deprecated.push(
            "aws.hosted_zone_id and aws.client_domain: give them in a site's traffic.route53"
                .into(),
        );
    }
    if aws.aurora_cluster.is_some() {
        file.deprecated
            .push("aws.aurora_cluster: give it as a site's database.aurora.cluster".into());
    }
    let mut accelerator: Option<String> = None;
    for (name, site) in &mut file.sites {
        if site.route53.is_some() {
            file.deprecated.push(format!(
                "sites.{name}.route53: write it as sites.{name}.traffic.route53"
            ));
        }
        if site.aurora.is_some() {
            file.deprecated.push(format!(
                "sites.{name}.aurora: write it as sites.{name}.database.aurora"
            ));
        }
        traffic_of(name, site, &mut aws, &mut accelerator, text)?;
        database_of(name, site, &mut aws, text)?;
    }
    let used_roles = file
        .sites
        .values()
        .any(|s| s.traffic.is_some() || s.database.is_some());
    if had_aws || used_roles {
        // The AWS connection settings stay in `aws:` (region, emulator endpoint).
        file.aws = Some(AwsConfig { ..aws });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use engine::env::Environment;

    use crate::config::{aws, of, sites, Schema};

    const ROLES: &str = "aws: { region: eu-west-1 }\nsites:\n  site-a:\n    traffic:\n      route53: { health_check_id: hc-a, hosted_zone_id: Z1, client_domain: kc.example }\n    database:\n      aurora: { cluster: kc, instance: kc-1, zone: eu-west-1a }\n  site-b:\n    traffic:\n      route53: { health_check_id: hc-b, hosted_zone_id: Z1 }\n    database:\n      aurora: { cluster: kc, instance: kc-2, zone: eu-west-1b }\n";

    #[test]
    fn a_role_section_names_its_vendor_whole_and_reads_as_the_old_keys_did() {
        let env = Environment::parse(ROLES, Path::new("env.yaml"), &Schema).unwrap();
        let s = sites(&env);
        assert_eq!(
            s["site-a"].route53.as_ref().unwrap().health_check_id,
            "hc-a"
        );
        assert_eq!(s["site-b"].aurora.as_ref().unwrap().instance, "kc-2");
        let a = aws(&env).unwrap();
        assert_eq!(
            (
                a.hosted_zone_id.as_deref(),
                a.client_domain.as_deref(),
                a.aurora_cluster.as_deref()
            ),
            (Some("Z1"), Some("kc.example"), Some("kc"))
        );
        assert!(of(&env).deprecated.is_empty(), "{:?}", of(&env).deprecated);
    }

    #[test]
    fn the_old_keys_still_work_and_are_noted_and_a_setting_given_twice_is_refused() {
        let old = "aws: { region: eu-west-1, aurora_cluster: kc }\nsites:\n  site-a:\n    route53: { health_check_id: hc-a }\n    aurora: { instance: kc-1 }\n";
        let env = Environment::parse(old, Path::new("env.yaml"), &Schema).unwrap();
        assert_eq!(
            sites(&env)["site-a"]
                .route53
                .as_ref()
                .unwrap()
                .health_check_id,
            "hc-a"
        );
        let d = &of(&env).deprecated;
        assert!(
            d.iter()
                .any(|n| n
                    .contains("sites.site-a.route53: write it as sites.site-a.traffic.route53")),
            "{d:?}"
        );
        assert!(d.iter().any(|n| n.contains("aws.aurora_cluster")), "{d:?}");
        let twice = ROLES.replace(
            "{ cluster: kc, instance: kc-2",
            "{ cluster: other, instance: kc-2",
        );
        let e = Environment::parse(&twice, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the Aurora cluster is given twice, as `kc` and `other`"),
            "{e}"
        );
        let both = "sites:\n  site-a:\n    route53: { health_check_id: x }\n    traffic:\n      route53: { health_check_id: y }\n";
        let e = Environment::parse(both, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gives Route53 twice"), "{e}");
    }

    #[test]
    fn a_pgo_section_is_checked_whole_and_alone() {
        let pgo = "sites:\n  site-a:\n    database:\n      pgo: { cluster: hippo, address: \"pg-a.example.com:5432\" }\n";
        let env = Environment::parse(pgo, Path::new("env.yaml"), &Schema).unwrap();
        let a = &sites(&env)["site-a"];
        assert_eq!(crate::roles::Concern::Database.vendor_of(a), Some("pgo"));
        let bad = "sites:\n  site-a:\n    database:\n      pgo:\n        cluster: hippo\n        address: pg-a.example.com\n";
        let e = Environment::parse(bad, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not host:port") && e.contains(":6"), "{e}");
        let both = "sites:\n  site-a:\n    database:\n      aurora: { instance: i-1 }\n      pgo: { cluster: hippo, address: \"a:1\" }\n";
        let e = Environment::parse(both, Path::new("env.yaml"), &Schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains("names two vendors"), "{e}");
    }
}
