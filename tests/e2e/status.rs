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
