//! Running and resuming: the happy path, retries, halts and what resume does with them.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[test]
fn http_runbook_completes_and_reports_json() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let mut c = runbook(&dir.path().join("j"));
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes", "--json"]);
    let out = run(c).expect(0);
    let v = out.json();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["runbook"], "workload");
    assert_eq!(v["run_id"], "r-1");
    assert!(v["halted_at"].is_null());
    assert_workload_effects(&server);
    // progress on stderr names every step
    for step in ["create", "configure", "pause", "clear", "check"] {
        assert!(
            out.stderr.contains(step),
            "progress mentions {step}:\n{}",
            out.stderr
        );
    }
    // history and status see it
    let mut h = runbook(&dir.path().join("j"));
    h.args(["history", "--json"]);
    let hist: serde_json::Value = serde_json::from_str(&run(h).expect(0).stdout).unwrap();
    assert_eq!(hist[0]["status"], "completed");
    let mut s = runbook(&dir.path().join("j"));
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["steps"]["clear"]["items"]["c3"]["status"], "succeeded");
    assert_eq!(st["steps"]["create"]["outputs"]["status"], 201);
}

#[test]
fn a_completed_run_cannot_be_resumed() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"]);
    run(c).expect(0);
    let mut r = runbook(&j);
    r.args(["resume", "r-1"]);
    let out = run(r).expect(2);
    assert!(
        out.stderr
            .contains("run r-1 is completed: a completed run cannot be resumed"),
        "{}",
        out.stderr
    );
    let mut a = runbook(&j);
    a.args(["abort", "r-1", "--reason", "x"]);
    run(a).expect(2);
}

#[test]
fn destructive_runbook_without_yes_is_refused_before_anything_happens() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let mut c = runbook(&dir.path().join("j"));
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("destructive steps (create, clear)"),
        "{}",
        out.stderr
    );
    assert!(server.requests().is_empty());
    assert!(!dir.path().join("j").exists(), "nothing journaled");
}

#[test]
fn server_errors_are_retried_per_policy() {
    let server = TestServer::start();
    server.with(|s| {
        s.fail_next.insert("POST /events".into(), 2);
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "retry.yaml",
        r#"
name: retry
params: { base: { type: string } }
steps:
  - id: event
    action: http.request
    with: { method: POST, url: "{{ params.base }}/events" }
    retry: { policy: fixed, max_attempts: 3, delay: 10ms }
    # a destructive effect is tried again only after its preconditions, checked live
    require:
      - probe: http.request
        with: { url: "{{ params.base }}/health" }
        expect: observation.status == 200
        message: the service answers
"#,
    );
    let mut c = runbook(&dir.path().join("j"));
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes", "--json"]);
    let out = run(c).expect(0);
    assert!(out.stderr.contains("attempt 1 failed"), "{}", out.stderr);
    assert!(out.stderr.contains("answered 500"), "{}", out.stderr);
    assert_eq!(server.with(|s| s.events), 1);
    // attempts are journaled
    let mut s = runbook(&dir.path().join("j"));
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["steps"]["event"]["attempts"], 3);
}

#[test]
fn exhausted_retries_fail_the_run_and_a_retry_step_resume_finishes_it() {
    let server = TestServer::start();
    server.with(|s| {
        s.fail_next.insert("POST /events".into(), 5);
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "retry.yaml",
        r#"
name: retry
params: { base: { type: string } }
steps:
  - id: event
    action: http.request
    with: { method: POST, url: "{{ params.base }}/events" }
    retry: { policy: fixed, max_attempts: 2, delay: 10ms }
    require:
      - probe: http.request
        with: { url: "{{ params.base }}/health" }
        expect: observation.status == 200
"#,
    );
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes", "--json"]);
    let out = run(c).expect(1);
    assert_eq!(out.json()["status"], "failed");
    assert!(out.json()["reason"]
        .as_str()
        .unwrap()
        .contains("gave up after 2 attempts"));
    // a destructive step that failed is not re-applied without the operator's word
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--json"]);
    let out = run(r).expect(3);
    assert!(
        out.json()["reason"]
            .as_str()
            .unwrap()
            .contains("--retry-step event"),
        "{}",
        out.stdout
    );
    server.with(|s| s.fail_next.clear());
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--retry-step", "event", "--json"]);
    let out = run(r).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(server.with(|s| s.events), 1);
}

#[test]
fn a_destructive_step_without_preconditions_is_never_retried_blindly() {
    let server = TestServer::start();
    server.with(|s| {
        s.fail_next.insert("POST /events".into(), 1);
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "blind.yaml",
        r#"
name: blind
params: { base: { type: string } }
steps:
  - id: event
    action: http.request
    with: { method: POST, url: "{{ params.base }}/events" }
    retry: { policy: fixed, max_attempts: 3, delay: 10ms }
"#,
    );
    let mut c = runbook(&dir.path().join("j"));
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes", "--json"]);
    let out = run(c).expect(1);
    assert_eq!(out.json()["status"], "failed");
    assert_eq!(
        server.with(|s| s
            .requests
            .iter()
            .filter(|(m, p)| m == "POST" && p == "/events")
            .count()),
        1,
        "one attempt only: its outcome is unknown and nothing re-checks the system before another"
    );
}

const GATED: &str = r#"
name: gated
params: { base: { type: string } }
steps:
  - id: before
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/phase", body: 1 }
  - id: approve-it
    title: A person checks the dashboard
    action: manual.confirm
    with: { instructions: "look at the dashboard" }
  - id: after
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/phase", body: 2 }
"#;

#[test]
fn a_manual_gate_halts_until_approved() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "gated.yaml", GATED);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--json"]);
    let out = run(c).expect(3);
    let v = out.json();
    assert_eq!(v["status"], "halted");
    assert_eq!(v["halted_at"], "approve-it");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("look at the dashboard"));
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("runbook resume r-1 --approve approve-it"));
    assert_eq!(
        server.with(|s| s.config.get("phase").cloned()),
        Some(json!(1))
    );
    // plain resume halts again at the gate
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--json"]);
    run(r).expect(3);
    // approving a step that is not a gate is refused
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "after"]);
    let out = run(r).expect(2);
    assert!(out.stderr.contains("not a manual gate"), "{}", out.stderr);
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "approve-it", "--json"]);
    let out = run(r).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(
        server.with(|s| s.config.get("phase").cloned()),
        Some(json!(2))
    );
    let mut s = runbook(&j);
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["approvals"], json!(["approve-it"]));
}

#[test]
fn a_precondition_not_met_halts_before_any_effect_and_resume_rechecks_it() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "pre.yaml",
        r#"
name: pre
params: { base: { type: string } }
steps:
  - id: clear-c1
    action: http.request
    with: { method: POST, url: "{{ params.base }}/caches/c1/clear" }
    require:
      - probe: http.request
        with: { url: "{{ params.base }}/config/offline" }
        expect: observation.status == 200 and observation.body == 'yes'
        message: replication to the other site is offline
"#,
    );
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes", "--json"]);
    let out = run(c).expect(3);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("replication to the other site is offline"),
        "{reason}"
    );
    assert!(reason.contains("observed"), "{reason}");
    assert_eq!(
        server.with(|s| s.clears.len()),
        0,
        "no clear request was made"
    );
    server.with(|s| s.config.insert("offline".into(), json!("yes")));
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--json"]);
    run(r).expect(0);
    assert_eq!(server.with(|s| s.clears.get("c1").copied()), Some(1));
}

#[test]
fn resume_uses_the_pinned_runbook_even_if_the_file_changed() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "gated.yaml", GATED);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())]);
    run(c).expect(3);
    // someone edits the file: the last step would now write 3
    std::fs::write(&rb, GATED.replace("body: 2", "body: 3")).unwrap();
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "approve-it"]);
    let out = run(r).expect(0);
    assert!(
        out.stderr
            .contains("changed since this run started; resuming with the text pinned"),
        "{}",
        out.stderr
    );
    assert_eq!(
        server.with(|s| s.config.get("phase").cloned()),
        Some(json!(2))
    );
}

#[test]
fn a_secret_parameter_never_reaches_the_journal_or_the_output() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "secret.yaml",
        r#"
name: secret
params:
  base: { type: string }
  token: { type: string, secret: true }
steps:
  - id: send
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/token", body: { t: "{{ params.token }}" } }
  - id: read-back
    action: http.request
    with: { url: "{{ params.base }}/config/token" }
  - id: gate
    action: manual.confirm
    with: { instructions: "ok?" }
"#,
    );
    let secret = "s3cr3t-value-8842";
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())])
        .env("RUNBOOK_PARAM_TOKEN", secret);
    let out = run(c).expect(3);
    assert_eq!(
        server.with(|s| s.config.get("token").cloned()),
        Some(json!({"t": secret})),
        "the secret was used"
    );
    let mut p = runbook(&j);
    p.args(["plan"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base())])
        .env("RUNBOOK_PARAM_TOKEN", secret);
    let plan = run(p).expect(0);
    let mut s = runbook(&j);
    s.args(["status", "r-1", "--json"]);
    let status = run(s).expect(3);
    // resume needs the secret again
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "gate"]);
    let missing = run(r).expect(2);
    assert!(
        missing.stderr.contains("RUNBOOK_PARAM_TOKEN"),
        "{}",
        missing.stderr
    );
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "gate", "-v"])
        .env("RUNBOOK_PARAM_TOKEN", secret);
    let resumed = run(r).expect(0);
    for (what, text) in [
        ("run output", out.stdout + &out.stderr),
        ("plan", plan.stdout + &plan.stderr),
        ("status", status.stdout),
        ("resume", resumed.stdout + &resumed.stderr),
    ] {
        assert!(!text.contains(secret), "secret found in {what}:\n{text}");
    }
    for entry in walk(&j) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret found in journal file {}",
            entry.display()
        );
    }
}

#[test]
fn ctrl_c_halts_cleanly_and_resume_completes() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"]).arg(&rb).args([
        "-p",
        &format!("base={}", server.base()),
        "-p",
        "pause=2s",
        "--yes",
        "--json",
    ]);
    let child = spawn(c);
    // wait until the pause step runs
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.with(|s| s.config_puts) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "run did not reach the pause"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    #[allow(unsafe_code)]
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_out(child).expect(3);
    assert_eq!(out.json()["status"], "halted");
    assert!(
        out.json()["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{}",
        out.stdout
    );
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--json"]);
    // the interrupted pause is read-only: resume simply waits again
    let out = run(r).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_workload_effects(&server);
}

#[test]
fn history_filters_by_runbook_and_status_and_shows_the_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j");
    let a = write(
        dir.path(),
        "a.yaml",
        "name: a\nsteps:\n  - id: w\n    action: wait\n    with: { duration: 0s }\n",
    );
    let b = write(
        dir.path(),
        "b.yaml",
        "name: b\nsteps:\n  - id: gate\n    action: manual.confirm\n    with: { instructions: check }\n",
    );
    for (rb, code) in [(&a, 0), (&b, 3), (&a, 0)] {
        let mut c = runbook(&j);
        c.args(["run"]).arg(rb);
        run(c).expect(code);
    }
    let json = |args: &[&str]| -> serde_json::Value {
        let mut h = runbook(&j);
        h.args(["history", "--json"]).args(args);
        serde_json::from_str(&run(h).expect(0).stdout).unwrap()
    };
    let only_a = json(&["--runbook", "a"]);
    assert_eq!(only_a.as_array().unwrap().len(), 2);
    assert_eq!(only_a[0]["run_id"], "r-3", "newest first");
    let halted = json(&["--status", "halted"]);
    assert_eq!(halted.as_array().unwrap().len(), 1);
    assert_eq!(halted[0]["runbook"], "b");
    let mut h = runbook(&j);
    h.args(["history", "--limit", "1"]);
    let out = run(h).expect(0);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stdout.starts_with("r-3"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("2 older runs not shown (`--limit 0` shows all)"),
        "{}",
        out.stderr
    );
    let mut h = runbook(&j);
    h.args(["history", "--runbook", "nope"]);
    let out = run(h).expect(0);
    assert!(out.stdout.is_empty() && out.stderr.contains("no run matches"));
}
