//! Named contexts, as kubectl has them: a name for an environment file and its journal
//! (and, optionally, a pack), remembered in one small file, so that forgetting `--env`
//! reads the deployment and the journal the operator chose, and every plan and prompt
//! says which one that is.
//!
//! The file is `$RUNBOOK_CONTEXTS`, else `contexts.yaml` in the per-user configuration
//! directory (`~/.config/runbook/` on Linux). A context applies whole or not at all:
//! `--env` or `--journal` given on the command line (or by `RUNBOOK_ENV` /
//! `RUNBOOK_JOURNAL`) set aside the current context, so a journal is never paired with
//! another deployment's environment file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One named context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The environment file, as an absolute path.
    pub env: PathBuf,
    /// The journal (a directory or a postgres:// URL); none: the environment file's
    /// `journal:`, else the per-user default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The pack whose runbooks answer to their bare names; none: as the environment
    /// file says or implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
}

/// The contexts file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Where the contexts file is.
pub fn file() -> Option<PathBuf> {
    match std::env::var_os("RUNBOOK_CONTEXTS") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::config_dir().map(|d| d.join("runbook").join("contexts.yaml")),
    }
}

/// A context name: letters, digits, `-`, `_` and `.`, as kubectl's are in practice.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "context name `{name}`: use letters, digits, '-', '_' and '.' (at most 63)"
        ))
    }
}

impl Contexts {
    /// The contexts file at `path`; none there is no context.
    ///
    /// # Errors
    /// A file that cannot be read or does not parse, with its path and line.
    pub fn load(path: &Path) -> Result<Contexts, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contexts::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if text.trim().is_empty() {
            return Ok(Contexts::default());
        }
        let c: Contexts = serde_yaml::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            format!("{}{at}: {e}", path.display())
        })?;
        if let Some(cur) = &c.current {
            if !c.contexts.contains_key(cur) {
                return Err(format!(
                    "{}: current context `{cur}` is not among its contexts",
                    path.display()
                ));
            }
        }
        Ok(c)
    }

    /// Write the file atomically (a temporary file renamed over it), readable by its
    /// owner only: a context may name a journal URL.
    ///
    /// # Errors
    /// The directory cannot be created or the file written.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = serde_yaml::to_string(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("yaml.tmp");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
            f.write_all(
                format!("# runbook's named contexts (`runbook context --help`)\n{text}").as_bytes(),
            )
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The context of that name, or an error listing the known ones.
    ///
    /// # Errors
    /// No context of that name.
    pub fn get(&self, name: &str) -> Result<&Context, String> {
        self.contexts.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            format!(
                "no context `{name}`{} (known: {}); `runbook context use {name} --env FILE` creates it",
                engine::suggest::did_you_mean(name, known.iter().copied()),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })
    }
}

/// The context a command runs in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub name: String,
    pub context: Context,
    /// Named by `--context` / `RUNBOOK_CONTEXT` (else: the current one).
    pub named: bool,
}

/// Which context applies: `--context NAME` if given (an error when `--env` or
/// `--journal` is given too: which one was meant cannot be told), else none when
/// either is given, else the current one.
///
/// # Errors
/// An unknown context, an unreadable contexts file, or a context beside `--env`.
pub fn resolve(
    named: Option<&str>,
    env_given: bool,
    journal_given: bool,
) -> Result<Option<InUse>, String> {
    let Some(path) = file() else {
        return match named {
            Some(n) => Err(format!("no context `{n}`: no per-user configuration directory here (set RUNBOOK_CONTEXTS to a file)")),
            None => Ok(None),
        };
    };
    if let Some(n) = named {
        if env_given || journal_given {
            return Err(format!(
                "--context {n} and {} name two deployments: give one",
                if env_given {
                    "--env (or RUNBOOK_ENV)"
                } else {
                    "--journal (or RUNBOOK_JOURNAL)"
                }
            ));
        }
        let all = Contexts::load(&path)?;
        let c = all.get(n)?.clone();
        return Ok(Some(InUse {
            name: n.to_string(),
            context: c,
            named: true,
        }));
    }
    if env_given || journal_given {
        return Ok(None);
    }
    let all = Contexts::load(&path)?;
    Ok(all.current.as_ref().map(|n| InUse {
        name: n.clone(),
        context: all.contexts[n].clone(),
        named: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_names_its_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("contexts.yaml");
        let mut c = Contexts::default();
        c.contexts.insert(
            "prod".into(),
            Context {
                env: "/etc/runbook/prod.yaml".into(),
                journal: Some("postgres://runbook@db/runbook".into()),
                pack: None,
            },
        );
        c.current = Some("prod".into());
        c.save(&path).unwrap();
        let back = Contexts::load(&path).unwrap();
        assert_eq!(back.current.as_deref(), Some("prod"));
        assert_eq!(back.contexts["prod"], c.contexts["prod"]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
    }

    #[test]
    fn a_bad_file_is_named_with_its_line_and_a_dangling_current_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "contexts:\n  prod: { env: /x, jornal: /y }\n").unwrap();
        let e = Contexts::load(&path).unwrap_err();
        assert!(e.contains("c.yaml:2:") && e.contains("jornal"), "{e}");
        std::fs::write(&path, "current: stage\ncontexts:\n  prod: { env: /x }\n").unwrap();
        let e = Contexts::load(&path).unwrap_err();
        assert!(e.contains("current context `stage`"), "{e}");
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones_and_suggests_the_near_one() {
        let mut c = Contexts::default();
        c.contexts.insert("prod".into(), Context::default());
        c.contexts.insert("stage".into(), Context::default());
        let e = c.get("prdo").unwrap_err();
        assert!(e.contains("prod, stage") && e.contains("prod"), "{e}");
        assert!(check_name("a b").is_err());
        assert!(check_name("prod-eu.1").is_ok());
    }
}
