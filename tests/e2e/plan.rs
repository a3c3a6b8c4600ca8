//! `plan` writes nothing anywhere: no request to the systems, no journal; `--live`
//! makes only GET requests.

use serde_json::json;

use crate::support::*;

#[test]
fn plan_makes_no_request_and_writes_no_journal() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["plan"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    let out = run(c).expect(0);
    assert!(
        server.requests().is_empty(),
        "plan made requests: {:?}",
        server.requests()
    );
    assert!(!j.exists(), "plan created the journal");
    // what it shows: resolved calls, effect classes, destructive steps called out
    assert!(
        out.stdout
            .contains(&format!("POST {}/items/a", server.base())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("destructive steps: create, clear"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[c3] POST"), "{}", out.stdout);
    assert!(out.stdout.contains("idempotent"), "{}", out.stdout);
    // run --dry-run is the same and writes nothing either
    let mut d = runbook(&j);
    d.args(["run", "--dry-run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    let dry = run(d).expect(0);
    assert_eq!(dry.stdout, out.stdout);
    assert!(server.requests().is_empty());
    assert!(!j.exists());
}

#[test]
fn plan_live_only_gets_and_shows_what_holds_now() {
    let server = TestServer::start();
    server.with(|s| {
        s.items.insert("a".into(), json!({"v": 1}));
        s.cleared.insert("c1".into(), true);
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "live.yaml",
        &WORKLOAD.replace(
            "    verify:\n      - expect: observation.status == 200\n",
            "    require:\n      - probe: http.request\n        with: { url: \"{{ params.base }}/health\" }\n        expect: observation.status == 200\n        message: the service is healthy\n    verify:\n      - expect: observation.status == 200\n",
        ),
    );
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["plan", "--live", "--json"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    let out = run(c).expect(0);
    let reqs = server.requests();
    assert!(!reqs.is_empty(), "--live probes");
    assert!(
        reqs.iter().all(|r| r.starts_with("GET ")),
        "--live made a non-GET request: {reqs:?}"
    );
    assert!(!j.exists());
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let create = &plan["steps"][0];
    assert_eq!(create["id"], "create");
    assert_eq!(create["effect"], "destructive");
    assert_eq!(create["now"]["preconditions"][0]["holds"], true);
    assert_eq!(create["now"]["satisfied"], true, "item a already exists");
    let clear = &plan["steps"][3];
    assert_eq!(clear["now"]["satisfied"], false, "only c1 is cleared");
    // text form says it in words
    let mut c = runbook(&j);
    c.args(["plan", "--live"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    let text = run(c).expect(0).stdout;
    assert!(text.contains("the service is healthy holds now"), "{text}");
    assert!(text.contains("already satisfied"), "{text}");
}

/// The preview and the run judge a condition with one evaluator: a condition's own
/// `site:` is the `site` its expression sees in `plan --live` as in the run (they
/// differed: only the run rebound it).
#[test]
fn plan_live_and_the_run_judge_a_condition_on_another_site_alike() {
    let l = InLab::start(&[], 0.0);
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "other-site.yaml",
        r#"
name: other-site
steps:
  - id: look
    site: site-a
    action: wait
    with: { duration: 0s }
    require:
      - probe: http.expect
        site: site-b
        with: {}
        expect: "observation.status == 200 and site.name == 'site-b'"
        message: site-b answers its lb-check
"#,
    );
    let mut p = l.runbook();
    p.arg("plan").arg(&rb).args(["--live", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&run(p).expect(0).stdout).unwrap();
    let check = &plan["steps"][0]["now"]["preconditions"][0];
    assert_eq!(check["holds"], true, "{check}");
    let mut c = l.runbook();
    c.arg("run").arg(&rb).args(["--yes", "--json"]);
    assert_eq!(run(c).expect(0).json()["status"], "completed");
}
