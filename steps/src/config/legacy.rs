//! The keys of the first releases, converted into the current shape before anything
//! reads the file: a site's `route53:` and `aurora:` become `traffic: {route53: …}`
//! and `database: {aurora: …}`, and the deployment-wide settings written in `aws:`
//! (`hosted_zone_id`, `client_domain`, `aurora_cluster`) move into those sections.
//! Every conversion is noted (`EnvFile::deprecated`) with the key to write instead;
//! nothing past this file reads the old keys. They go in a later release.

use serde::{Deserialize, Serialize};

use super::roles::{placed, RoleSection};
use super::{EnvFile, SiteConfig};
use engine::env::SchemaError;

/// `sites.NAME.route53` as the first releases wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OldRoute53 {
    pub health_check_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `sites.NAME.aurora` as the first releases wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OldAurora {
    pub instance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn put(map: &mut serde_yaml::Mapping, key: &str, value: Option<String>) {
    if let Some(v) = value {
        map.entry(key.into()).or_insert(v.into());
    }
}

/// A deployment-wide value from `aws:` written into a section that does not give it;
/// a section that gives it differently is refused.
fn merge(
    section: &mut RoleSection,
    key: &str,
    value: Option<&String>,
    what: &str,
    text: &str,
) -> Result<(), SchemaError> {
    let Some(v) = value else { return Ok(()) };
    let Some(map) = section.raw.as_mapping_mut() else {
        return Ok(());
    };
    match map.get(key).and_then(serde_yaml::Value::as_str) {
        Some(old) if old != v => Err(placed(
            text,
            &[key],
            format!("{what} is given twice, as `{v}` and `{old}`: a deployment has one"),
        )),
        _ => {
            put(map, key, Some(v.clone()));
            Ok(())
        }
    }
}

/// One site's old section into its role section.
fn convert(
    site: &mut Option<RoleSection>,
    vendor: &str,
    old: serde_yaml::Mapping,
    twice: String,
    text: &str,
) -> Result<(), SchemaError> {
    if site.as_ref().is_some_and(|s| s.vendor == vendor) {
        return Err(placed(text, &[vendor], twice));
    }
    if site.is_none() {
        *site = Some(RoleSection::new(vendor, serde_yaml::Value::Mapping(old)));
    }
    Ok(())
}

fn upgrade_site(
    name: &str,
    site: &mut SiteConfig,
    aws: &super::AwsConfig,
    text: &str,
) -> Result<Vec<String>, SchemaError> {
    let mut notes = Vec::new();
    if let Some(r) = site.route53.take() {
        notes.push(format!(
            "sites.{name}.route53: write it as sites.{name}.traffic.route53"
        ));
        let mut m = serde_yaml::Mapping::new();
        put(&mut m, "health_check_id", Some(r.health_check_id));
        put(&mut m, "target", r.target);
        let twice = format!(
            "sites.{name} gives Route53 twice (route53: and traffic.route53:): keep traffic.route53"
        );
        convert(&mut site.traffic, "route53", m, twice, text)?;
    }
    if let Some(a) = site.aurora.take() {
        notes.push(format!(
            "sites.{name}.aurora: write it as sites.{name}.database.aurora"
        ));
        let mut m = serde_yaml::Mapping::new();
        put(&mut m, "instance", Some(a.instance));
        put(&mut m, "zone", a.zone);
        let twice = format!(
            "sites.{name} gives Aurora twice (aurora: and database.aurora:): keep database.aurora"
        );
        convert(&mut site.database, "aurora", m, twice, text)?;
    }
    if let Some(t) = site.traffic.as_mut().filter(|t| t.vendor == "route53") {
        merge(
            t,
            "hosted_zone_id",
            aws.hosted_zone_id.as_ref(),
            "the Route53 hosted zone",
            text,
        )?;
        merge(
            t,
            "client_domain",
            aws.client_domain.as_ref(),
            "the client domain",
            text,
        )?;
    }
    if let Some(d) = site.database.as_mut().filter(|d| d.vendor == "aurora") {
        merge(
            d,
            "cluster",
            aws.aurora_cluster.as_ref(),
            "the Aurora cluster",
            text,
        )?;
    }
    Ok(notes)
}

/// Convert the old keys into the current shape, noting each.
///
/// # Errors
/// A vendor given both ways for one site, or a setting given twice differently.
pub fn upgrade(file: &mut EnvFile, text: &str) -> Result<(), SchemaError> {
    let aws = file.aws.clone().unwrap_or_default();
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
    for (name, site) in &mut file.sites {
        let notes = upgrade_site(name, site, &aws, text)?;
        file.deprecated.extend(notes);
    }
    if let Some(a) = file.aws.as_mut() {
        a.hosted_zone_id = None;
        a.client_domain = None;
        a.aurora_cluster = None;
    }
    Ok(())
}
