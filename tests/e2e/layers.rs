//! The module graph has no cycles: in the engine, the CLI, the steps and the lab, no
//! module reaches (through `crate::` or `super::` paths, tests left out) a module that
//! reaches it back. A cycle means a helper sits in the wrong module; this test names
//! the modules and the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `prefix` followed by an identifier, everywhere in `text`.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let after = &rest[i + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if before_ok && end > 0 {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
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

/// Edges between the top-level modules of a crate (`crate::x`), and between sibling
/// modules of each module directory (`super::x`).
fn graphs(src: &Path) -> Vec<(String, Graph)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut by_scope: BTreeMap<String, Graph> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let is_mod = matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        );
        let text = code(f);
        let shown = rel.display().to_string();
        if parts.len() > 1 || !is_mod {
            let top = parts[0].clone();
            let g = by_scope.entry("crate".into()).or_default();
            g.entry(top.clone()).or_default();
            for m in paths_after(&text, "crate::") {
                if m != top {
                    g.get_mut(&top)
                        .unwrap()
                        .insert((m.to_string(), shown.clone()));
                }
            }
        }
        if parts.len() > 1 && !is_mod {
            let dir = parts[..parts.len() - 1].join("/");
            let me = parts.last().unwrap().clone();
            let g = by_scope.entry(dir).or_default();
            g.entry(me.clone()).or_default();
            for m in paths_after(&text, "super::") {
                if m != me {
                    g.get_mut(&me)
                        .unwrap()
                        .insert((m.to_string(), shown.clone()));
                }
            }
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
    for krate in ["engine/src", "src", "steps/src", "lab/src"] {
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
