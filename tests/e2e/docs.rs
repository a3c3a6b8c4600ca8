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
