//! The procedure packs built into the binary. A pack is the unit a new generation of
//! the guide (or a new shape of deployment) is added as: its runbooks (`packs/NAME/`,
//! compiled in), its reading of the journal (`history`), its diagnosis of a
//! deployment (`runbook check`), and its defaults (site names, caches, paths). Adding
//! one is a new module beside `keycloak_24.rs` and a line in [`PACKS`].
//!
//! Which pack a verb uses: `--pack` (or `RUNBOOK_PACK`), else the environment file's
//! `pack:`, else the first pack whose `detects` recognises the environment file, else
//! the first pack. The plan says which, and why.

pub mod cnpg;
pub mod keycloak_24;
pub mod keycloak_26;
pub mod pack;
pub mod pgo;

pub use pack::{CheckInputs, Diagnosis, Pack};

/// Every pack this build carries, the default first.
pub const PACKS: &[&Pack] = &[
    &keycloak_24::PACK,
    &keycloak_26::PACK,
    &pgo::PACK,
    &cnpg::PACK,
];

/// The pack named `name`.
pub fn find(name: &str) -> Option<&'static Pack> {
    PACKS.iter().copied().find(|p| p.name == name)
}

/// The pack that answers the alert `name` (`runbook respond`), and how.
pub fn answering(name: &str) -> Option<(&'static Pack, &'static pack::Answer)> {
    PACKS
        .iter()
        .copied()
        .find_map(|p| p.answers.iter().find(|a| a.alert == name).map(|a| (p, a)))
}

/// Every runbook some pack runs to answer an alert, as the journal names its runs.
pub fn answering_runbooks() -> Vec<&'static str> {
    PACKS
        .iter()
        .flat_map(|p| p.answers.iter())
        .flat_map(|a| [a.firing, a.resolved])
        .collect()
}

/// The pack a runbook argument names as `PACK/NAME`, if it names a built-in one.
pub fn of_runbook(arg: &str) -> Option<&'static Pack> {
    arg.split_once('/').and_then(|(p, _)| find(p))
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
        /// A pack for a generation of the guide names it; a database's pack, its vendor.
        #[serde(default)]
        keycloak: Option<String>,
        #[serde(default)]
        database: Option<String>,
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
            match (&m.keycloak, &m.database) {
                (Some(k), None) => assert!(pack.name.ends_with(k.as_str()), "{k}"),
                (None, Some(d)) => assert_eq!(pack.name, d, "a database's pack is named after it"),
                _ => panic!("{}: names either `keycloak` or `database`", pack.name),
            }
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
