//! Where runbooks are found: the ones built into the binary, a directory given with
//! `--runbooks`, or a file path.

use std::path::{Path, PathBuf};

use crate::action::Registry;
use crate::load::{load_str, LoadError};
use crate::model::Runbook;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no runbook `{name}` (available: {available}); a path to a YAML file works too")]
    NotFound { name: String, available: String },
    #[error("cannot read `{}`: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

/// The built-in runbooks plus those of a directory.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    builtins: Vec<(&'static str, &'static str)>,
    dir: Option<PathBuf>,
}

/// One runbook as `runbook list` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub title: String,
    pub origin: String,
    /// The runbook does not load; why.
    pub problem: Option<String>,
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

impl Catalog {
    pub fn new(builtins: Vec<(&'static str, &'static str)>, dir: Option<PathBuf>) -> Catalog {
        Catalog { builtins, dir }
    }

    /// The text and origin of a runbook by name or path, without validating it.
    ///
    /// # Errors
    /// Not found, or unreadable.
    pub fn source(&self, name_or_path: &str) -> Result<(String, String), CatalogError> {
        let as_path = Path::new(name_or_path);
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if looks_like_path || as_path.is_file() {
            let text = crate::env::read_input(as_path).map_err(|error| CatalogError::Read {
                path: as_path.to_path_buf(),
                error,
            })?;
            return Ok((text, name_or_path.to_string()));
        }
        if let Some(dir) = &self.dir {
            for file in yaml_files(dir) {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = crate::env::read_input(&file).map_err(|error| CatalogError::Read {
                    path: file.clone(),
                    error,
                })?;
                if stem == name_or_path || declared_name(&text).as_deref() == Some(name_or_path) {
                    return Ok((text, file.display().to_string()));
                }
            }
        }
        if let Some((_, text)) = self.builtins.iter().find(|(n, _)| *n == name_or_path) {
            return Ok((text.to_string(), format!("builtin:{name_or_path}")));
        }
        let mut available: Vec<String> = self.builtins.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(dir) = &self.dir {
            available.extend(
                yaml_files(dir)
                    .iter()
                    .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned())),
            );
        }
        Err(CatalogError::NotFound {
            name: name_or_path.to_string(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        })
    }

    /// Find and validate a runbook.
    ///
    /// # Errors
    /// Not found, unreadable or invalid (with positions).
    pub fn load(&self, name_or_path: &str, registry: &Registry) -> Result<Runbook, CatalogError> {
        let (text, origin) = self.source(name_or_path)?;
        Ok(load_str(&text, &origin, registry)?)
    }

    /// Every runbook: built-in ones first, then the directory's.
    pub fn list(&self, registry: &Registry) -> Vec<Entry> {
        let mut out = Vec::new();
        let entry = |text: &str, origin: String, fallback: String| match load_str(
            text, &origin, registry,
        ) {
            Ok(rb) => Entry {
                name: rb.name,
                title: rb.title,
                origin,
                problem: None,
            },
            Err(e) => Entry {
                name: declared_name(text).unwrap_or(fallback),
                title: String::new(),
                origin,
                problem: Some(e.to_string()),
            },
        };
        for (name, text) in &self.builtins {
            out.push(entry(text, format!("builtin:{name}"), name.to_string()));
        }
        if let Some(dir) = &self.dir {
            for file in yaml_files(dir) {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match crate::env::read_input(&file) {
                    Ok(text) => out.push(entry(&text, file.display().to_string(), stem)),
                    Err(e) => out.push(Entry {
                        name: stem,
                        title: String::new(),
                        origin: file.display().to_string(),
                        problem: Some(e.to_string()),
                    }),
                }
            }
        }
        out
    }
}

fn declared_name(text: &str) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    doc.get("name")?.as_str().map(str::to_string)
}
