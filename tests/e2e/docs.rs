//! The documentation is navigable and true to the code (issue 35.3): the front page is
//! short and every link resolves; the action reference is what the registry says.

use std::path::Path;

use crate::support::*;

/// docs/actions.md is exactly `runbook actions --markdown`: an action added, renamed
/// or changed in the code changes the page, or this fails.
#[test]
fn the_actions_page_is_generated_from_the_registry() {
    let mut c = runbook(Path::new("/nonexistent"));
    c.args(["actions", "--markdown"]);
    let out = run(c).expect(0);
    assert!(
        doc("actions") == out.stdout,
        "docs/actions.md is stale: regenerate it with `cargo run -q -- actions --markdown > docs/actions.md`"
    );
    // And it is every action: the JSON listing names the same ones.
    let mut c = runbook(Path::new("/nonexistent"));
    c.args(["actions", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run(c).expect(0).stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.len() > 40, "{names:?}");
    for n in &names {
        assert!(doc("actions").contains(&format!("| `{n}` |")), "{n}");
    }
    for n in [
        "traffic.remove-site",
        "database.move-writer",
        "pgo.move-writer",
        "haproxy.remove-site",
        "cnpg.rejoin",
    ] {
        assert!(names.contains(&n), "{n} is registered and listed");
    }
}

/// Every relative link of the README and the docs pages names a file that exists, and
/// every page under docs/ is reachable from the README's table.
#[test]
fn every_link_of_the_docs_resolves_and_the_front_page_is_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let readme = doc("README");
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            let at = page.parent().unwrap().join(file);
            assert!(
                at.exists(),
                "{}: link to `{target}`: no such file",
                page.display()
            );
        }
        if page.parent().unwrap().ends_with("docs") {
            let name = page.file_name().unwrap().to_string_lossy();
            assert!(
                readme.contains(&format!("(docs/{name})")),
                "README.md does not link docs/{name}"
            );
        }
    }
    let lines = readme.lines().count();
    assert!(lines < 200, "the README is a front page: {lines} lines");
    // What a new user needs first is on it.
    for must in [
        "## Two commands",
        "## Install",
        "## Which pack for which Keycloak",
        "## Rehearse",
        "glibc",
    ] {
        assert!(readme.contains(must), "README lacks {must}");
    }
}

/// The newest glibc symbol version an ELF binary needs (`objdump -p`'s version
/// references), e.g. "2.34".
fn newest_glibc(binary: &Path) -> String {
    let out = std::process::Command::new("objdump")
        .arg("-p")
        .arg(binary)
        .output()
        .expect("objdump (binutils) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<Vec<u32>> = text
        .split("GLIBC_")
        .skip(1)
        .filter_map(|t| {
            let v: String = t
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let parts: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
            (parts.len() >= 2).then_some(parts)
        })
        .collect();
    versions.sort();
    let newest = versions.last().expect("the binary names glibc versions");
    newest
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Issue 35.2: the README's Install says which glibc the binary needs (read from the
/// binary this build made) and how big the release binary is (the figure BENCHMARKS.md
/// measured; checked against a release binary where one was built here).
#[test]
fn the_install_section_states_the_glibc_and_the_size_measured() {
    let readme = doc("README");
    let install = readme.split("## Install").nth(1).unwrap();
    let glibc = newest_glibc(&bin());
    assert!(
        install.contains(&format!("glibc of\n{glibc} or newer"))
            || install.contains(&format!("glibc of {glibc} or newer")),
        "README's Install must name glibc {glibc}, the newest this binary needs"
    );
    let stated: f64 = install
        .split("stripped (about ")
        .nth(1)
        .and_then(|t| t.split(" MB").next())
        .and_then(|n| n.parse().ok())
        .expect("README's Install gives the stripped release binary's size");
    let bench =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md")).unwrap();
    let measured: f64 = bench
        .lines()
        .find(|l| l.starts_with("| release binary |"))
        .and_then(|l| l.split(" MB stripped").next())
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("BENCHMARKS.md's newest release-binary row");
    assert!(
        (stated - measured).abs() <= 0.5,
        "README says about {stated} MB, BENCHMARKS.md measured {measured} MB"
    );
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/runbook");
    if let Ok(m) = std::fs::metadata(&release) {
        let mb = m.len() as f64 / 1_000_000.0;
        assert!(
            (mb - measured).abs() / measured < 0.1,
            "target/release/runbook is {mb:.1} MB; BENCHMARKS.md says {measured} MB"
        );
    }
}
