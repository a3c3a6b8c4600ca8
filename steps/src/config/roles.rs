//! The role sections of a site: `traffic:` (how clients reach it) and `database:`
//! (where its database is), each holding exactly one vendor's section, whole: its
//! per-site settings and the deployment-wide ones it needs. A procedure names the role
//! (`traffic.remove-site`, `database.move-writer`); the site's section names the
//! vendor.
//!
//! This file knows no vendor. Each vendor registers how its section is read
//! ([`VendorSection`]: its typed configuration and its checks); [`normalize`] reads
//! every site's role sections through the registered ones, refuses a vendor nobody
//! registered, and keeps the typed value for the vendor's actions
//! ([`super::SiteConfig::typed`]). The keys of the first releases were converted into
//! role sections before (`legacy.rs`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use engine::env::SchemaError;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::EnvFile;

/// The concern a role is about: which section of a site names its vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Concern {
    Traffic,
    Database,
}

impl Concern {
    pub const ALL: [Concern; 2] = [Concern::Traffic, Concern::Database];

    pub fn as_str(self) -> &'static str {
        match self {
            Concern::Traffic => "traffic",
            Concern::Database => "database",
        }
    }
}

/// What is wrong with a vendor's section: the message, and the key it is at (for the
/// line the operator is shown).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn at(key: &str, message: impl Into<String>) -> Problem {
        Problem {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

/// How a vendor's section of a role is read: registered by the vendor.
pub trait VendorSection: Send + Sync {
    /// The vendor's name: its key in the role section (`traffic: {route53: …}`).
    fn vendor(&self) -> &'static str;
    /// The role section it is written in.
    fn concern(&self) -> Concern;
    /// What the operator writes to name it, for messages.
    fn example(&self) -> &'static str;
    /// One site's section, typed and checked.
    ///
    /// # Errors
    /// What is wrong, at which key.
    fn parse(
        &self,
        site: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem>;
    /// What the sites' sections must agree on (a deployment-wide setting given once).
    ///
    /// # Errors
    /// What disagrees, at which key.
    fn across(&self, _sections: &[(&str, &RoleSection)]) -> Result<(), Problem> {
        Ok(())
    }
}

/// A role section: one vendor's settings, as written and as the vendor typed them.
#[derive(Clone, Default)]
pub struct RoleSection {
    /// The vendor it names.
    pub vendor: String,
    /// As written.
    pub raw: serde_yaml::Value,
    typed: Option<Arc<dyn Any + Send + Sync>>,
}

impl RoleSection {
    pub fn new(vendor: &str, raw: serde_yaml::Value) -> RoleSection {
        RoleSection {
            vendor: vendor.to_string(),
            raw,
            typed: None,
        }
    }

    /// The vendor's typed section, when it is `vendor`'s and of type `T`.
    pub fn typed<T: 'static>(&self, vendor: &str) -> Option<&T> {
        if self.vendor != vendor {
            return None;
        }
        self.typed.as_deref()?.downcast_ref::<T>()
    }
}

impl fmt::Debug for RoleSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleSection")
            .field("vendor", &self.vendor)
            .field("raw", &self.raw)
            .finish()
    }
}

impl PartialEq for RoleSection {
    fn eq(&self, other: &Self) -> bool {
        self.vendor == other.vendor && self.raw == other.raw
    }
}

impl Serialize for RoleSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = serde_yaml::Mapping::new();
        m.insert(self.vendor.clone().into(), self.raw.clone());
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RoleSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = indexmap::IndexMap::<String, serde_yaml::Value>::deserialize(d)?;
        let mut it = m.into_iter();
        match (it.next(), it.next()) {
            (Some((vendor, raw)), None) => Ok(RoleSection::new(&vendor, raw)),
            (None, _) => Err(D::Error::custom(
                "names no vendor: give one vendor's section",
            )),
            (Some((a, _)), Some((b, _))) => Err(D::Error::custom(format!(
                "names two vendors ({a} and {b}): a site's role is played by one"
            ))),
        }
    }
}

/// The line of `key` in the file: the first line at or after `from` that starts with
/// it (indented or not), else `from`.
fn line_of(text: &str, from: usize, key: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:"))
                || t.contains(&format!("{{ {key}:"))
                || t.contains(&format!(", {key}:"))
        })
        .map_or(from.max(1), |(i, _)| i + 1)
}

/// Where `sites.SITE.ROLE.VENDOR[.key]` is written: walked down the file, each key
/// searched after the one before.
pub fn placed(text: &str, path: &[&str], message: String) -> SchemaError {
    let mut line = 1;
    for key in path {
        line = line_of(text, line, key);
    }
    SchemaError {
        line,
        column: 1,
        message,
    }
}

fn vendor_names(vendors: &[&dyn VendorSection], concern: Concern) -> String {
    let names: Vec<&str> = vendors
        .iter()
        .filter(|v| v.concern() == concern)
        .map(|v| v.vendor())
        .collect();
    names.join(", ")
}

/// One site's role section typed by its vendor.
fn type_section(
    vendors: &[&dyn VendorSection],
    name: &str,
    concern: Concern,
    section: &mut RoleSection,
    text: &str,
) -> Result<(), SchemaError> {
    let role = concern.as_str();
    let Some(v) = vendors
        .iter()
        .find(|v| v.concern() == concern && v.vendor() == section.vendor)
    else {
        return Err(placed(
            text,
            &["sites", name, role, &section.vendor],
            format!(
                "sites.{name}.{role}: unknown {role} vendor `{}` (this build knows: {})",
                section.vendor,
                vendor_names(vendors, concern)
            ),
        ));
    };
    let typed = v.parse(name, &section.raw).map_err(|p| {
        let mut path = vec!["sites", name, role, v.vendor()];
        if let Some(k) = &p.key {
            path.push(k);
        }
        placed(
            text,
            &path,
            format!("sites.{name}.{role}.{}: {}", v.vendor(), p.message),
        )
    })?;
    section.typed = Some(typed);
    Ok(())
}

/// Read every site's role sections through the vendors that registered them, check
/// what the sites must agree on, and note the old keys.
///
/// # Errors
/// An unknown vendor, a section its vendor refuses, or sites that disagree.
pub fn normalize(
    file: &mut EnvFile,
    text: &str,
    vendors: &[&dyn VendorSection],
) -> Result<(), SchemaError> {
    for (name, site) in &mut file.sites {
        for concern in Concern::ALL {
            if let Some(section) = site.section_mut(concern) {
                type_section(vendors, name, concern, section, text)?;
            }
        }
    }
    for v in vendors {
        let sections: Vec<(&str, &RoleSection)> = file
            .sites
            .iter()
            .filter_map(|(n, s)| Some((n.as_str(), s.section(v.concern())?)))
            .filter(|(_, s)| s.vendor == v.vendor())
            .collect();
        v.across(&sections).map_err(|p| {
            let key = p.key.clone().unwrap_or_else(|| v.vendor().to_string());
            placed(text, &[&key], p.message)
        })?;
    }
    Ok(())
}

/// A deployment-wide setting the sites give: the same wherever it is given.
///
/// # Errors
/// Two sites give it differently.
pub fn once<'a>(
    values: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    what: &str,
    key: &str,
) -> Result<Option<&'a str>, Problem> {
    let mut seen: Option<&str> = None;
    for (_, v) in values {
        let Some(v) = v else { continue };
        match seen {
            Some(old) if old != v => {
                return Err(Problem::at(
                    key,
                    format!("{what} is given twice, as `{old}` and `{v}`: a deployment has one"),
                ))
            }
            _ => seen = Some(v),
        }
    }
    Ok(seen)
}

/// A vendor's section read as its type `T` (whose serde refuses unknown fields), with
/// the key a problem is at.
///
/// # Errors
/// The section does not read as `T`.
pub fn read_as<T>(value: &serde_yaml::Value) -> Result<Arc<dyn Any + Send + Sync>, Problem>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    serde_yaml::from_value::<T>(value.clone())
        .map(|t| Arc::new(t) as Arc<dyn Any + Send + Sync>)
        .map_err(|e| {
            let message = e.to_string();
            // `unknown field `x`, expected …`: the line of `x`.
            let key = message
                .strip_prefix("unknown field `")
                .or_else(|| message.split(": unknown field `").nth(1))
                .and_then(|r| r.split('`').next())
                .map(str::to_string);
            Problem { key, message }
        })
}
