//! The environment file: which sites exist and how to reach each one. The engine only
//! needs the site names and their sections (for `site:` and templates); the step
//! library reads the fields it needs from a site's section.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::load::sha256_hex;

/// A loaded environment file.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Where it was read from; `None` for the empty environment.
    pub file: Option<PathBuf>,
    /// Hex SHA-256 of the file's text, journaled with each run.
    pub digest: String,
    /// Deployment-wide settings (e.g. `aws`).
    pub aws: Option<Json>,
    /// Present when the environment is a lab (`runbook lab`).
    pub lab: Option<Json>,
    pub sites: IndexMap<String, Json>,
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
    aws: Option<serde_yaml::Value>,
    /// Written by `runbook lab`: where its admin API is.
    #[serde(default)]
    lab: Option<serde_yaml::Value>,
    #[serde(default)]
    sites: IndexMap<String, serde_yaml::Mapping>,
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
        for (name, section) in raw.sites {
            let value = serde_json::to_value(serde_yaml::Value::Mapping(section))
                .map_err(|e| invalid(1, 1, format!("site `{name}`: {e}")))?;
            sites.insert(name, value);
        }
        let aws = match raw.aws {
            Some(v) => {
                Some(serde_json::to_value(v).map_err(|e| invalid(1, 1, format!("aws: {e}")))?)
            }
            None => None,
        };
        let lab = match raw.lab {
            Some(v) => {
                Some(serde_json::to_value(v).map_err(|e| invalid(1, 1, format!("lab: {e}")))?)
            }
            None => None,
        };
        Ok(Environment {
            file: Some(path.to_path_buf()),
            digest: sha256_hex(text),
            aws,
            lab,
            sites,
        })
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
