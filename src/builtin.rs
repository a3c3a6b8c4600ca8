//! The procedure packs built into the binary (`packs/NAME/`): each is a versioned set
//! of runbooks for one generation of the guide. The runbooks of the default pack are
//! the built-in runbooks (`runbook list`, `runbook run switchover`).

/// One pack: its manifest and its runbooks' text.
#[derive(Debug, Clone, Copy)]
pub struct Pack {
    /// The directory name, e.g. `keycloak-24`.
    pub name: &'static str,
    /// `packs/NAME/pack.yaml`.
    pub manifest: &'static str,
    /// (name, text) of each runbook.
    pub runbooks: &'static [(&'static str, &'static str)],
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

    /// `keycloak-24 1.0.0`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.field("version"))
    }
}

/// Every pack this build carries, the default first.
pub const PACKS: &[Pack] = &[Pack {
    name: "keycloak-24",
    manifest: include_str!("../packs/keycloak-24/pack.yaml"),
    runbooks: &[
        (
            "failover",
            include_str!("../packs/keycloak-24/failover.yaml"),
        ),
        (
            "switchover",
            include_str!("../packs/keycloak-24/switchover.yaml"),
        ),
        (
            "recover-passive-site",
            include_str!("../packs/keycloak-24/recover-passive-site.yaml"),
        ),
        (
            "switchback",
            include_str!("../packs/keycloak-24/switchback.yaml"),
        ),
    ],
}];

/// (name, text) of every built-in runbook: the default pack's.
pub fn runbooks() -> Vec<(&'static str, &'static str)> {
    PACKS[0].runbooks.to_vec()
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
        let mut compiled: Vec<String> = PACKS.iter().map(|p| p.name.to_string()).collect();
        compiled.sort();
        assert_eq!(dirs, compiled, "every pack directory is compiled in");
        for pack in PACKS {
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
