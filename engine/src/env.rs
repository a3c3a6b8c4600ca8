//! The environment file: which sites exist, and for each, the sections the actions
//! read. The engine keeps sites generic: it needs their names and their sections as
//! template data (`sites.NAME...`, `site...`), and its own `lab:` section (the time
//! scale). What a section holds is the business of the action family that reads it:
//! the step library checks the whole file against its typed schema ([`EnvSchema`]),
//! refusing unknown fields with their line and column, and the typed result travels
//! with the environment for the actions ([`Environment::typed`]).

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::digest::sha256_hex;

/// A loaded environment file.
#[derive(Clone, Default)]
pub struct Environment {
    /// Where it was read from; `None` for the empty environment.
    pub file: Option<PathBuf>,
    /// Hex SHA-256 of the file's text, journaled with each run.
    pub digest: String,
    /// Present when the environment is a lab (`runbook lab`).
    pub lab: Option<LabInfo>,
    /// Each site's section as template data (`sites.NAME...`, `site...`).
    pub sites: IndexMap<String, Json>,
    /// A manual gate before a destructive or traffic-moving step needs a second
    /// person's approval (`approvals: {four_eyes: false}` turns it off).
    pub four_eyes: bool,
    /// The file as the step library's schema typed it (see [`EnvSchema`]).
    typed: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("file", &self.file)
            .field("digest", &self.digest)
            .field("lab", &self.lab)
            .field("sites", &self.sites.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The typed schema of an environment file, provided by the step library: each action
/// family owns its part of it.
pub trait EnvSchema: Send + Sync {
    /// Check the whole file's text and type it. Keys the engine reads (`lab:`, `sites:`
    /// and its site names) are part of the file the schema sees.
    ///
    /// # Errors
    /// What is wrong, where.
    fn parse(&self, text: &str) -> Result<Arc<dyn Any + Send + Sync>, SchemaError>;
}

/// The schema of a host with no step library: every section is accepted as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Untyped;

impl EnvSchema for Untyped {
    fn parse(&self, _: &str) -> Result<Arc<dyn Any + Send + Sync>, SchemaError> {
        Ok(Arc::new(()))
    }
}

/// An environment file that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SchemaError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read environment file `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// What the engine itself reads of the file.
#[derive(Deserialize)]
struct RawEnv {
    /// Written by `runbook lab`: where its admin API is.
    #[serde(default)]
    lab: Option<LabInfo>,
    #[serde(default)]
    sites: IndexMap<String, IndexMap<String, serde_yaml::Value>>,
    #[serde(default)]
    approvals: Approvals,
}

/// `approvals:`: who may pass a manual gate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approvals {
    /// A gate before a destructive or traffic-moving step is approved by someone other
    /// than the run's starter and driver.
    #[serde(default = "yes")]
    four_eyes: bool,
}

impl Default for Approvals {
    fn default() -> Approvals {
        Approvals { four_eyes: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabInfo {
    pub admin_url: String,
    /// The lab's time scale: step timeouts, retry delays and polls are multiplied by it
    /// (production durations become lab durations).
    #[serde(default = "one", deserialize_with = "positive_finite")]
    pub time_scale: f64,
}

fn one() -> f64 {
    1.0
}

/// A time scale is a finite number, 0 or more (0: no waiting): -1, NaN and infinity
/// are refused where they are written.
fn positive_finite<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "lab.time_scale must be a finite number, 0 or more (e.g. 0.01: a lab minute in 0.6 s; 0: no waiting, as the benchmark plays it), not {v}"
        )))
    }
}

/// Turn a serde_yaml error into a positioned message.
pub fn yaml_problem(e: &serde_yaml::Error) -> SchemaError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut message = e.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    SchemaError {
        line,
        column,
        message,
    }
}

impl Environment {
    /// The environment with no sites, for runbooks that touch none.
    pub fn empty() -> Environment {
        Environment {
            digest: sha256_hex(""),
            four_eyes: true,
            ..Environment::default()
        }
    }

    /// Read and check an environment file against `schema`.
    ///
    /// # Errors
    /// The file cannot be read, or is not a valid environment (with line and column).
    pub fn load(path: &Path, schema: &dyn EnvSchema) -> Result<Environment, EnvError> {
        let text = read_input(path).map_err(|error| EnvError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Environment::parse(&text, path, schema)
    }

    /// Parse the text of an environment file; `path` names it in errors.
    ///
    /// # Errors
    /// The text is not a valid environment (with line and column).
    pub fn parse(text: &str, path: &Path, schema: &dyn EnvSchema) -> Result<Environment, EnvError> {
        let invalid = |e: SchemaError| EnvError::Invalid {
            path: path.to_path_buf(),
            line: e.line,
            column: e.column,
            message: e.message,
        };
        if let Some((line, column)) = crate::depth::too_deep(text) {
            return Err(invalid(SchemaError {
                line,
                column,
                message: format!(
                    "nested deeper than {} levels of mappings and lists: an environment file is not that deep",
                    crate::depth::MAX_DEPTH
                ),
            }));
        }
        // The schema first: its errors are the precise ones.
        let typed = schema.parse(text).map_err(invalid)?;
        let raw: RawEnv = serde_yaml::from_str(text).map_err(|e| invalid(yaml_problem(&e)))?;
        let mut sites = IndexMap::new();
        for (name, section) in &raw.sites {
            let value = serde_json::to_value(section).map_err(|e| {
                invalid(SchemaError {
                    line: 1,
                    column: 1,
                    message: format!("site `{name}`: {e}"),
                })
            })?;
            sites.insert(name.clone(), value);
        }
        Ok(Environment {
            file: Some(path.to_path_buf()),
            digest: sha256_hex(text),
            lab: raw.lab,
            sites,
            four_eyes: raw.approvals.four_eyes,
            typed: Some(typed),
        })
    }

    /// The file as the schema typed it, if it was of type `T`.
    pub fn typed<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.typed.as_deref().and_then(|t| t.downcast_ref::<T>())
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

/// The most an input file (a runbook, an environment file) may hold.
pub const MAX_INPUT: u64 = 4 * 1024 * 1024;

/// Read a runbook or an environment file: a regular file of at most [`MAX_INPUT`]
/// bytes, refused at once otherwise (a device or a FIFO would be read forever).
///
/// # Errors
/// Not a regular file, too large, or unreadable.
pub fn read_input(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a directory, device or FIFO is never read as input)",
        ));
    }
    if meta.len() > MAX_INPUT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} bytes: larger than the {} MiB an input file may be",
                meta.len(),
                MAX_INPUT / 1024 / 1024
            ),
        ));
    }
    std::fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_template_data_and_the_lab_section_is_read() {
        let text = "lab: { admin_url: http://x, time_scale: 0.01 }\nsites:\n  site-a:\n    keycloak: { name: kc }\n";
        let env = Environment::parse(text, Path::new("env.yaml"), &Untyped).unwrap();
        assert_eq!(env.sites["site-a"]["keycloak"]["name"], "kc");
        assert_eq!(env.time_scale(), 0.01);
        for bad in ["-1", "-.inf", ".nan", ".inf"] {
            let text = format!("lab: {{ admin_url: http://x, time_scale: {bad} }}\nsites:\n  site-a:\n    keycloak: {{ name: kc }}\n");
            let e = Environment::parse(&text, Path::new("env.yaml"), &Untyped).unwrap_err();
            let m = e.to_string();
            assert!(
                m.contains("lab.time_scale must be a finite number, 0 or more")
                    && m.contains(":1:"),
                "{bad}: {m}"
            );
        }
        assert!(env.typed::<()>().is_some());
        assert!(env.typed::<String>().is_none());
    }
}
