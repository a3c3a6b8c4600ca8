//! A second terminal sees a run's live status while the run holds the journal.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn status_of_a_running_run_is_visible_from_a_second_process() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"]).arg(&rb).args([
        "-p",
        &format!("base={}", server.base()),
        "-p",
        "pause=4s",
        "--yes",
    ]);
    let child = spawn(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let mut s = runbook(&j);
        s.args(["status", "r-1"]);
        let out = run(s);
        assert!(Instant::now() < deadline, "never saw the run live: {out:?}");
        if out.code == 0
            && out.stdout.contains("running")
            && out.stdout.contains("(live)")
            && out.stdout.contains("pause")
        {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.stdout.contains("r-1 workload"), "{}", seen.stdout);
    assert!(
        seen.stdout.contains("done") && seen.stdout.contains("create"),
        "{}",
        seen.stdout
    );
    // JSON too, and without an id: the run in progress
    let mut s = runbook(&j);
    s.args(["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(v["run_id"], "r-1");
    assert_eq!(v["steps"]["pause"]["status"], "running");
    // a second run is refused while the journal is held, naming the run
    let mut second = runbook(&j);
    second
        .args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"]);
    let out = run(second).expect(5);
    assert!(
        out.stderr
            .contains("in use by another runbook process: r-1 (workload"),
        "{}",
        out.stderr
    );
    let out = wait_out(child).expect(0);
    assert!(out.stdout.contains("r-1 completed"), "{}", out.stdout);
    let mut s = runbook(&j);
    s.args(["status", "r-1"]);
    let out = run(s).expect(0);
    assert!(
        out.stdout.contains("completed") && !out.stdout.contains("(live)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_second_terminal_sees_what_a_step_waits_for_and_what_it_last_saw() {
    let l = InLab::start(&["offline-not-sticking:site-b"], 0.0);
    // the lab's own pace, but step timeouts in real time: room to look
    let text = std::fs::read_to_string(l.env()).unwrap();
    let env = write(l.dir.path(), "env-real-time.yaml", &real_time_steps(&text));
    let rb = write(
        l.dir.path(),
        "offline.yaml",
        "name: offline\nsteps:\n  - id: take-offline\n    site: site-b\n    action: infinispan.take-offline\n    with: { backup: site-a, poll: 20ms }\n    timeout: 3s\n",
    );
    let j = l.journal();
    let mut c = runbook(&j);
    c.args(["run"]).arg(&rb).arg("--env").arg(&env);
    let child = spawn(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let mut s = runbook(&j);
        s.args(["status", "r-1"]);
        let out = run(s);
        assert!(Instant::now() < deadline, "never saw the wait: {out:?}");
        if out.stdout.contains("waiting for") {
            break out.stdout;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        seen.contains("waiting for replication from `site-b` to `site-a` is offline")
            && seen.contains("now: every cache (8) is mixed"),
        "{seen}"
    );
    // the node never follows: the run halts at the step's timeout
    let out = wait_out(child).expect(3);
    assert!(out.stdout.contains("r-1 halted"), "{}", out.stdout);
    let mut s = runbook(&j);
    s.args(["status", "r-1"]);
    let after = run(s).expect(0).stdout;
    assert!(
        !after.contains("waiting for"),
        "the journal holds no wait: {after}"
    );
}

/// The environment file with `time_scale: 1`.
fn real_time_steps(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("time_scale:") {
                "  time_scale: 1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
