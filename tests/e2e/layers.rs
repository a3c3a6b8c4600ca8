//! The module graph has no cycles: in the engine, the CLI, the steps, the lab and the
//! PostgreSQL store, no module reaches a sibling module that reaches it back, at any
//! depth (the packs under `src/packs/` included), by any path form: `crate::`,
//! `super::` (from a `mod.rs` too), `self::`, `use` groups, inline paths; tests left
//! out. A cycle means a helper sits in the wrong module; this test names the modules
//! and the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every path in `text` that starts at `crate::`, `super::` or `self::` (at a token
/// boundary), with `use` groups expanded: `use crate::{a::X, b::{c, d}}` gives
/// `crate::a::X`, `crate::b::c`, `crate::b::d`. Each path as its segments.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':');
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|h| b[i..].starts_with(h.as_bytes()));
        if boundary && starts {
            let (paths, end) = tree(text, i, Vec::new());
            out.extend(paths);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// One use-tree at `i`: its segments (prefixed by `prefix`), and where it ends.
fn tree(text: &str, mut i: usize, mut prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let b = text.as_bytes();
    let skip_ws = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    loop {
        i = skip_ws(i);
        if i < b.len() && b[i] == b'{' {
            let mut out = Vec::new();
            i += 1;
            loop {
                i = skip_ws(i);
                if i >= b.len() || b[i] == b'}' {
                    return (out, i + 1);
                }
                let (paths, end) = tree(text, i, prefix.clone());
                out.extend(paths);
                // `d as e`: the rename is not a path.
                i = end;
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
                if i < b.len() && b[i] == b',' {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'*') {
            i += 1;
        }
        if i == start {
            return (vec![prefix], i);
        }
        let seg = &text[start..i];
        if seg != "self" || prefix.is_empty() {
            prefix.push(seg.to_string());
        }
        if b[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// A path resolved against the module `me` (crate-absolute segments).
fn resolve(me: &[String], path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = me.to_vec();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &path[1..];
        }
        Some("self") => rest = &path[1..],
        _ => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
    }
    base.extend(rest.iter().cloned());
    base
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its unit tests.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

type Graph = BTreeMap<String, BTreeSet<(String, String)>>;

/// A file's module path: `packs/pgo/mod.rs` is `packs::pgo`, `lib.rs` the root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// For every module, the edges between its child modules: a file in child `a` whose
/// code (tests left out) names, by any path form, something inside sibling `b`.
/// Keyed by the parent (`crate` for the root).
fn graphs(src: &Path) -> Vec<(String, Graph)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(src).unwrap()))
        .collect();
    let mut by_scope: BTreeMap<String, Graph> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let me = module_of(rel);
        let shown = rel.display().to_string();
        for path in paths_in(&code(f)) {
            let mut to = resolve(&me, &path);
            while !to.is_empty() && !modules.contains(&to) {
                to.pop();
            }
            let common = me.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let (Some(a), Some(b)) = (me.get(common), to.get(common)) else {
                continue;
            };
            let scope = if common == 0 {
                "crate".to_string()
            } else {
                me[..common].join("::")
            };
            by_scope
                .entry(scope)
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert((b.clone(), shown.clone()));
        }
    }
    for g in by_scope.values_mut() {
        let targets: Vec<String> = g.values().flatten().map(|(t, _)| t.clone()).collect();
        for t in targets {
            g.entry(t).or_default();
        }
    }
    by_scope.into_iter().collect()
}

/// A cycle, as the modules along it with the file of each edge.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        stack: &mut Vec<(String, String)>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|(m, _)| m == n) {
            return Some(
                stack[i..]
                    .iter()
                    .map(|(m, via)| format!("{m} (in {via})"))
                    .collect(),
            );
        }
        if done.contains(n) {
            return None;
        }
        for (to, file) in g.get(n).into_iter().flatten() {
            if !g.contains_key(to) {
                continue;
            }
            stack.push((n.to_string(), file.clone()));
            if let Some(c) = visit(g, to, stack, done) {
                return Some(c);
            }
            stack.pop();
        }
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_reaches_back_to_a_module_that_reaches_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for krate in ["engine/src", "src", "steps/src", "lab/src", "pgstore/src"] {
        for (scope, g) in graphs(&root.join(krate)) {
            if let Some(c) = find_cycle(&g) {
                cycles.push(format!("{krate} ({scope}): {}", c.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::X;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct X;\nfn f() { crate::c::g() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("c.rs"),
        "pub fn g() {}\n#[cfg(test)]\nuse crate::a::Y;\n",
    )
    .unwrap();
    let (_, g) = graphs(src).into_iter().next().unwrap();
    assert!(
        find_cycle(&g).is_none(),
        "a test-only use is no cycle: {g:?}"
    );
    std::fs::write(src.join("c.rs"), "pub fn g() { let _ = crate::a::Y; }\n").unwrap();
    let (_, g) = graphs(src).into_iter().next().unwrap();
    let c = find_cycle(&g).expect("a -> b -> c -> a");
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(c.iter().any(|m| m.contains("c.rs")), "{c:?}");
}

/// Every import form is read: a `use` group, `super::` from a `mod.rs`, a nested
/// path between sibling modules below the root (the packs' circle of issue 31).
#[test]
fn every_import_form_closes_a_planted_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("packs/one")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod packs;\n").unwrap();
    std::fs::write(src.join("packs/mod.rs"), "mod one;\nmod two;\n").unwrap();
    // one (a mod.rs) reaches two through `super::`; two reaches one through a group.
    std::fs::write(src.join("packs/one/mod.rs"), "use super::two::T;\n").unwrap();
    std::fs::write(src.join("packs/two.rs"), "pub struct T;\n").unwrap();
    let scope = |src: &Path| {
        graphs(src)
            .into_iter()
            .find(|(s, _)| s == "packs")
            .map(|(_, g)| g)
            .unwrap_or_default()
    };
    assert!(find_cycle(&scope(src)).is_none());
    std::fs::write(
        src.join("packs/two.rs"),
        "use crate::{packs::{one::O, two}, other};\npub struct T;\n",
    )
    .unwrap();
    let c = find_cycle(&scope(src)).expect("one -> two -> one");
    assert_eq!(c.len(), 2, "{c:?}");
    // And a deep inline path: `crate::packs::one::verdict(...)` names `one` too.
    std::fs::write(
        src.join("packs/two.rs"),
        "pub struct T;\nfn f() { crate::packs::one::verdict(); }\n",
    )
    .unwrap();
    assert!(find_cycle(&scope(src)).is_some());
}

#[test]
fn use_groups_and_relative_paths_are_read_whole() {
    let paths = paths_in("use crate::{a::X, b::{c, d as e}, self};\nlet _ = super::super::f::g();");
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert!(shown.contains(&"crate::a::X".to_string()), "{shown:?}");
    assert!(shown.contains(&"crate::b::c".to_string()), "{shown:?}");
    assert!(shown.contains(&"crate::b::d".to_string()), "{shown:?}");
    assert!(
        shown.contains(&"super::super::f::g".to_string()),
        "{shown:?}"
    );
    let me = vec!["x".to_string(), "y".to_string()];
    let sup = paths.iter().find(|p| p[0] == "super").unwrap();
    assert_eq!(resolve(&me, sup), vec!["f", "g"]);
    assert!(!shown.iter().any(|p| p.contains("as")), "{shown:?}");
}

/// The public functions of a file whose error is a bare `String` (`Result<_, String>`):
/// signature text from `pub fn`/`pub async fn` to its body's `{`, read whole across
/// lines; `pub(crate)` and `pub(super)` are not the library's API.
fn string_errors(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("pub ") {
        let rest = &text[i + 4..];
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        let sig = &sig[..sig.find('{').unwrap_or(sig.len())];
        let flat: String = sig.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.contains("-> Result<") && flat.trim_end().ends_with(", String>") {
            found.push(flat.split('(').next().unwrap_or_default().to_string());
        }
    }
    found
}

#[test]
fn no_library_function_returns_a_bare_string_as_its_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for krate in ["engine", "steps", "lab", "pgstore"] {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
            for name in string_errors(&code(f)) {
                found.push(format!(
                    "{}: {name}",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(found.is_empty(), "typed errors, not String: {found:#?}");
}

#[test]
fn the_string_error_finder_reads_signatures_across_lines() {
    let planted = "pub async fn read(\n    a: &str,\n) -> Result<Vec<u8>, String> {\n}\npub fn ok() -> Result<(), MyError> {}\npub(crate) fn inner() -> Result<(), String> {}\n";
    assert_eq!(string_errors(planted), vec!["read".to_string()]);
}

/// `respond` and `metrics` read what the packs declare (`Pack::answers`): their code
/// (without its unit tests) quotes no pack's name and no runbook of any pack (read from
/// `packs/*/pack.yaml`); `respond`'s neither the alert nor its labels. (`metrics` still
/// reads the packs' observations by their keys, `accelerator` among them: not yet a
/// typed state.)
#[test]
fn respond_and_metrics_name_no_pack_runbook_or_alert_label() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = Vec::new();
    for e in std::fs::read_dir(root.join("packs")).unwrap().flatten() {
        let manifest = std::fs::read_to_string(e.path().join("pack.yaml")).unwrap();
        let m: serde_yaml::Value = serde_yaml::from_str(&manifest).unwrap();
        names.push(m["name"].as_str().unwrap().to_string());
        for r in m["runbooks"].as_sequence().unwrap() {
            names.push(r.as_str().unwrap().to_string());
        }
    }
    assert!(names.iter().any(|n| n == "fence-site"), "{names:?}");
    let alert: Vec<String> = ["SiteOffline", "site", "reporter", "accelerator"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (file, extra) in [
        ("src/commands/respond.rs", &alert[..]),
        ("src/commands/metrics.rs", &[][..]),
    ] {
        let text = code(&root.join(file));
        for n in names.iter().chain(extra) {
            for quoted in [format!("\"{n}\""), format!("\"{n}/"), format!("\"{n}-")] {
                assert!(!text.contains(&quoted), "{file} names {quoted}");
            }
        }
    }
}
