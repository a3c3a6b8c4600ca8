//! Finding runbooks: `list`, `show`, `--runbooks DIR`.

use crate::support::*;

#[test]
fn list_and_show_runbooks_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    std::fs::create_dir(&books).unwrap();
    write(&books, "workload.yaml", WORKLOAD);
    write(&books, "broken.yaml", "name: broken\nsteps: []\n");
    let mut c = runbook(&dir.path().join("j"));
    c.arg("--runbooks").arg(&books).arg("list");
    let out = run(c).expect(0);
    assert!(
        out.stdout.contains("workload") && out.stdout.contains("Effects with different contracts"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("broken") && out.stdout.contains("INVALID"),
        "{}",
        out.stdout
    );
    let mut c = runbook(&dir.path().join("j"));
    c.arg("--runbooks").arg(&books).args(["show", "workload"]);
    let out = run(c).expect(0);
    // a built-in procedure shows its safety guards and where they are checked again
    let mut g = runbook(&dir.path().join("j"));
    g.args(["show", "recover-passive-site"]);
    let shown = run(g).expect(0).stdout;
    assert!(shown.contains("Safety guards"), "{shown}");
    assert!(
        shown.contains("passive-site-does-not-serve")
            && shown.contains("again before: scale-down, clear-caches"),
        "{shown}"
    );
    for text in [
        "Parameters",
        "base string (required)",
        "pause duration = \"30ms\"",
        "[4/5] clear",
        "DESTRUCTIVE",
        "for each of",
    ] {
        assert!(
            out.stdout.contains(text),
            "missing {text:?}:\n{}",
            out.stdout
        );
    }
}
