//! Procedure packs: which pack applies (`--pack`, the environment file's `pack:`, the
//! default) is said in the plan; `list` shows every pack; a run records its pack; a
//! pack name that is not built in is refused, naming those that are.

use crate::support::*;

#[test]
fn the_pack_in_use_is_chosen_said_and_recorded() {
    let mut l = InLab::start(&[], 0.0);
    // The default, said in the plan.
    let mut p = l.runbook();
    p.args(["plan", "switchover"]);
    let plan = run(p).expect(0).stdout;
    assert!(
        plan.contains("pack:   keycloak-24 1.") && plan.contains("the default"),
        "{plan}"
    );
    // Named by the environment file.
    l.edit_env(|d| {
        d.as_mapping_mut()
            .unwrap()
            .insert("pack".into(), "keycloak-24".into());
    });
    let mut p = l.runbook();
    p.args(["plan", "switchover"]);
    let plan = run(p).expect(0).stdout;
    assert!(plan.contains("the environment file's `pack:`"), "{plan}");
    // `--pack` wins, and a name not built in is refused before anything.
    let mut p = l.runbook();
    p.args(["--pack", "keycloak-99", "plan", "switchover"]);
    let out = run(p).expect(2);
    assert!(
        out.stderr
            .contains("no procedure pack `keycloak-99` (--pack; built in: keycloak-24)"),
        "{}",
        out.stderr
    );
    // `PACK/NAME` names a pack's runbook whatever pack is in use.
    let mut p = l.runbook();
    p.args(["plan", "keycloak-24/switchover", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&run(p).expect(0).stdout).unwrap();
    assert_eq!(plan["pack"], "keycloak-24");
    // A run records its pack (and a runbook file has none).
    let mut r = l.runbook();
    r.args(["run", "switchover", "--yes", "--json"]);
    run(r).expect(0);
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st = run(s).expect(0).json();
    assert_eq!(st["pack"], "keycloak-24", "{st}");
    let rb = write(
        l.dir.path(),
        "quick.yaml",
        "name: quick\nsteps:\n  - id: w\n    action: wait\n    with: { duration: 1ms }\n",
    );
    let mut r = l.runbook();
    r.arg("run").arg(&rb).arg("--yes");
    run(r).expect(0);
    let mut s = l.runbook();
    s.args(["status", "r-2", "--json"]);
    assert!(run(s).expect(0).json()["pack"].is_null());
}

#[test]
fn list_shows_every_pack_with_its_runbooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args(["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run(c).expect(0).stdout).unwrap();
    let names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["pack"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    for n in [
        "keycloak-24/failover",
        "keycloak-24/switchover",
        "keycloak-24/recover-passive-site",
        "keycloak-24/switchback",
    ] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let mut c = runbook(&dir.path().join("j"));
    c.arg("list");
    let out = run(c).expect(0);
    assert!(
        out.stderr.contains("procedure pack keycloak-24 1.")
            && out.stderr.contains("in use: the default"),
        "{}",
        out.stderr
    );
}
