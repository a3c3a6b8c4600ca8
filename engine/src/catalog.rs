//! Where runbooks are found: the ones built into the binary, a directory given with
//! `--runbooks`, or a file path.

use std::path::{Path, PathBuf};

use crate::action::Registry;
use crate::load::{load_str, LoadError};
use crate::model::Runbook;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no runbook `{name}`{} (available: {available}); a path to a YAML file works too", crate::suggest::did_you_mean(name, available.split(", ")))]
    NotFound { name: String, available: String },
    #[error("cannot read `{}`: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

/// The built-in runbooks of every pack plus those of a directory. A bare name is
/// looked up in the directory, then in the pack in use; `PACK/NAME` names another
/// pack's runbook.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packs: Vec<BuiltinPack>,
    /// The pack in use: its runbooks answer to their bare names.
    selected: usize,
    dir: Option<PathBuf>,
}

/// One pack's runbooks, (name, text).
#[derive(Debug, Clone)]
pub struct BuiltinPack {
    pub name: &'static str,
    pub runbooks: Vec<(&'static str, &'static str)>,
}

/// A runbook's text as found, where from, and the pack it belongs to.
#[derive(Debug, Clone)]
pub struct Found {
    pub text: String,
    pub origin: String,
    pub pack: Option<String>,
}

/// One runbook as `runbook list` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its pack (`None`: a file of the directory).
    pub pack: Option<String>,
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
    /// A catalog of one unnamed set of built-ins (tests, benchmarks).
    pub fn new(builtins: Vec<(&'static str, &'static str)>, dir: Option<PathBuf>) -> Catalog {
        Catalog::of_packs(
            vec![BuiltinPack {
                name: "",
                runbooks: builtins,
            }],
            "",
            dir,
        )
    }

    /// The packs' runbooks, `selected` the pack in use.
    pub fn of_packs(packs: Vec<BuiltinPack>, selected: &str, dir: Option<PathBuf>) -> Catalog {
        let selected = packs.iter().position(|p| p.name == selected).unwrap_or(0);
        Catalog {
            packs,
            selected,
            dir,
        }
    }

    fn builtin(&self, pack: &BuiltinPack, name: &str) -> Option<Found> {
        let (_, text) = pack.runbooks.iter().find(|(n, _)| *n == name)?;
        Some(Found {
            text: text.to_string(),
            origin: format!("builtin:{name}"),
            pack: (!pack.name.is_empty()).then(|| pack.name.to_string()),
        })
    }

    /// The text and origin of a runbook by name or path, without validating it.
    ///
    /// # Errors
    /// Not found, or unreadable.
    pub fn source(&self, name_or_path: &str) -> Result<Found, CatalogError> {
        // `PACK/NAME`: another pack's runbook (a file of that name wins).
        if let Some((pack, name)) = name_or_path.split_once('/') {
            if let Some(p) = self
                .packs
                .iter()
                .find(|p| p.name == pack && !p.name.is_empty())
            {
                if !Path::new(name_or_path).exists() {
                    return self.builtin(p, name).ok_or_else(|| CatalogError::NotFound {
                        name: name_or_path.to_string(),
                        available: p
                            .runbooks
                            .iter()
                            .map(|(n, _)| format!("{pack}/{n}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        let as_path = Path::new(name_or_path);
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if looks_like_path || as_path.is_file() {
            let text = crate::env::read_input(as_path).map_err(|error| CatalogError::Read {
                path: as_path.to_path_buf(),
                error,
            })?;
            return Ok(Found {
                text,
                origin: name_or_path.to_string(),
                pack: None,
            });
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
                    return Ok(Found {
                        text,
                        origin: file.display().to_string(),
                        pack: None,
                    });
                }
            }
        }
        if let Some(found) = self
            .packs
            .get(self.selected)
            .and_then(|p| self.builtin(p, name_or_path))
        {
            return Ok(found);
        }
        let mut available: Vec<String> = self
            .packs
            .get(self.selected)
            .map(|p| p.runbooks.iter().map(|(n, _)| n.to_string()).collect())
            .unwrap_or_default();
        for (i, p) in self.packs.iter().enumerate() {
            if i != self.selected {
                available.extend(p.runbooks.iter().map(|(n, _)| format!("{}/{n}", p.name)));
            }
        }
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

    /// Find and validate a runbook; it knows its pack.
    ///
    /// # Errors
    /// Not found, unreadable or invalid (with positions).
    pub fn load(&self, name_or_path: &str, registry: &Registry) -> Result<Runbook, CatalogError> {
        let found = self.source(name_or_path)?;
        let mut rb = load_str(&found.text, &found.origin, registry)?;
        rb.pack = found.pack;
        Ok(rb)
    }

    /// Every runbook: each pack's (the one in use first), then the directory's.
    pub fn list(&self, registry: &Registry) -> Vec<Entry> {
        let mut out = Vec::new();
        let entry =
            |text: &str, origin: String, fallback: String, pack: Option<String>| match load_str(
                text, &origin, registry,
            ) {
                Ok(rb) => Entry {
                    pack,
                    name: rb.name,
                    title: rb.title,
                    origin,
                    problem: None,
                },
                Err(e) => Entry {
                    pack,
                    name: declared_name(text).unwrap_or(fallback),
                    title: String::new(),
                    origin,
                    problem: Some(e.to_string()),
                },
            };
        let order = std::iter::once(self.selected)
            .chain((0..self.packs.len()).filter(|i| *i != self.selected));
        for i in order {
            let Some(p) = self.packs.get(i) else { continue };
            let pack = (!p.name.is_empty()).then(|| p.name.to_string());
            for (name, text) in &p.runbooks {
                out.push(entry(
                    text,
                    format!("builtin:{name}"),
                    name.to_string(),
                    pack.clone(),
                ));
            }
        }
        if let Some(dir) = &self.dir {
            for file in yaml_files(dir) {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match crate::env::read_input(&file) {
                    Ok(text) => out.push(entry(&text, file.display().to_string(), stem, None)),
                    Err(e) => out.push(Entry {
                        pack: None,
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
