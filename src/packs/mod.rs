//! The procedure packs built into the binary. A pack is the unit a new generation of
//! the guide (or a new shape of deployment) is added as: its runbooks (`packs/NAME/`,
//! compiled in), its reading of the journal (`history`), its diagnosis of a
//! deployment (`runbook check`), and its defaults (site names, caches, paths). Adding
//! one is a new module beside `keycloak_24.rs` and a line in [`PACKS`].
//!
//! Which pack a verb uses: `--pack` (or `RUNBOOK_PACK`), else the environment file's
//! `pack:`, else the first pack whose `detects` recognises the environment file, else
//! the first pack. The plan says which, and why.

use std::sync::Arc;

use engine::history::HistoryFacts;

pub mod keycloak_24;

/// What a pack assumes when a verb is not told (`check`'s site names and caches).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub primary: &'static str,
    pub secondary: &'static str,
    /// The caches the procedures act on and `check` compares.
    pub caches: &'static [&'static str],
    /// The path a failed-over primary's health check points at.
    pub down_path: &'static str,
}

/// What `check` asks a pack's diagnosis: the command line's choices, else the pack's
/// defaults.
#[derive(Clone)]
pub struct CheckInputs {
    pub primary: String,
    pub secondary: String,
    pub caches: Vec<String>,
    pub down_path: String,
    pub style: crate::progress::Style,
}

/// A pack's reading of a deployment: its typed verdict (the recommended invocation
/// as data), what it read (`check --json`'s `observations`), and that as text.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub verdict: steps::check::Verdict,
    pub observations: serde_json::Value,
    pub text: String,
}

/// How a pack reads a deployment.
pub type Diagnose = fn(
    Arc<engine::Registry>,
    Arc<engine::env::Environment>,
    CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>>;

/// One pack.
#[derive(Clone, Copy)]
pub struct Pack {
    /// The directory name, e.g. `keycloak-24`.
    pub name: &'static str,
    /// `packs/NAME/pack.yaml`.
    pub manifest: &'static str,
    /// (name, text) of each runbook.
    pub runbooks: &'static [(&'static str, &'static str)],
    /// Its reading of the journal.
    pub history: fn() -> Arc<dyn HistoryFacts>,
    /// Whether an environment file describes a deployment of this pack's shape.
    pub detects: fn(&steps::config::EnvFile) -> bool,
    /// Its diagnosis of a deployment (`runbook check`).
    pub diagnose: Diagnose,
    pub defaults: Defaults,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack").field("name", &self.name).finish()
    }
}

impl Pack {
    /// A manifest field (`version`, `title`, ...), as written.
    fn field(&self, key: &str) -> &'static str {
        self.manifest
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"'))
            .unwrap_or("?")
    }

    pub fn title(&self) -> &'static str {
        self.field("title")
    }

    /// `keycloak-24 1.1.0`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.field("version"))
    }
}

/// Every pack this build carries, the default first.
pub const PACKS: &[&Pack] = &[&keycloak_24::PACK];

/// The pack named `name`.
pub fn find(name: &str) -> Option<&'static Pack> {
    PACKS.iter().copied().find(|p| p.name == name)
}

/// Why the pack in use is the one it is (said in the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Flag,
    EnvFile,
    Detected,
    Default,
}

impl Chosen {
    pub fn as_str(self) -> &'static str {
        match self {
            Chosen::Flag => "--pack",
            Chosen::EnvFile => "the environment file's `pack:`",
            Chosen::Detected => "detected from the environment file",
            Chosen::Default => "the default",
        }
    }
}

/// The pack a verb uses, and why: `--pack`, the environment file's `pack:`, what the
/// environment file's shape says, the default.
///
/// # Errors
/// A pack name that is not built in, naming the ones that are.
pub fn choose(
    flag: Option<&str>,
    env: Option<&steps::config::EnvFile>,
) -> Result<(&'static Pack, Chosen), String> {
    let named = |n: &str, how: Chosen| {
        find(n).map(|p| (p, how)).ok_or_else(|| {
            let names: Vec<&str> = PACKS.iter().map(|p| p.name).collect();
            format!(
                "no procedure pack `{n}` ({}; built in: {})",
                how.as_str(),
                names.join(", ")
            )
        })
    };
    if let Some(n) = flag {
        return named(n, Chosen::Flag);
    }
    if let Some(n) = env.and_then(|e| e.pack.as_deref()) {
        return named(n, Chosen::EnvFile);
    }
    if let Some(e) = env {
        if let Some(p) = PACKS.iter().skip(1).find(|p| (p.detects)(e)) {
            return Ok((p, Chosen::Detected));
        }
    }
    Ok((PACKS[0], Chosen::Default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Manifest {
        name: String,
        version: String,
        keycloak: String,
        title: String,
        runbooks: Vec<String>,
    }

    #[test]
    fn each_pack_includes_exactly_the_runbooks_its_manifest_and_directory_hold() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packs");
        let mut dirs: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        dirs.sort();
        let mut compiled: Vec<String> = PACKS.iter().copied().map(|p| p.name.to_string()).collect();
        compiled.sort();
        assert_eq!(dirs, compiled, "every pack directory is compiled in");
        for pack in PACKS.iter().copied() {
            let m: Manifest = serde_yaml::from_str(pack.manifest).unwrap();
            assert_eq!(m.name, pack.name);
            assert_eq!(pack.describe(), format!("{} {}", m.name, m.version));
            assert_eq!(pack.title(), m.title);
            assert!(m.version.split('.').count() == 3, "{}: semver", m.version);
            assert!(pack.name.ends_with(&m.keycloak), "{}", m.keycloak);
            let names: Vec<&str> = pack.runbooks.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                names, m.runbooks,
                "{}: the manifest's runbooks, in order",
                pack.name
            );
            let mut files: Vec<String> = std::fs::read_dir(root.join(pack.name))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".yaml") && f != "pack.yaml")
                .collect();
            files.sort();
            let mut listed: Vec<String> = m.runbooks.iter().map(|r| format!("{r}.yaml")).collect();
            listed.sort();
            assert_eq!(files, listed, "{}: no runbook file left out", pack.name);
            for (name, text) in pack.runbooks {
                let declared = text
                    .lines()
                    .find_map(|l| l.strip_prefix("name: "))
                    .map(str::trim);
                assert_eq!(
                    declared,
                    Some(*name),
                    "{}/{name}.yaml declares its name",
                    pack.name
                );
            }
        }
    }
}
