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
        // A running run's status exits 11 (still running), like `kubectl wait`.
        if out.code == 11
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
    let v: serde_json::Value = serde_json::from_str(&run(s).expect(11).stdout).unwrap();
    assert_eq!(
        (v["format"].as_u64(), v["live"].as_bool()),
        (Some(1), Some(true))
    );
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
    // A halted run's status exits 3, its state.
    let after = run(s).expect(3).stdout;
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

#[test]
fn status_exits_with_the_runs_state_and_its_json_names_its_format_and_program() {
    let dir = tempfile::tempdir().unwrap();
    let gate = write(
        dir.path(),
        "gate.yaml",
        "name: gate\nsteps:\n  - id: ask\n    action: manual.confirm\n    with: { instructions: go? }\n",
    );
    let quick = write(
        dir.path(),
        "quick.yaml",
        "name: quick\nsteps:\n  - id: w\n    action: wait\n    with: { duration: 1ms }\n",
    );
    let j = dir.path().join("j");
    let start = |rb: &std::path::Path, code: i32| {
        let mut c = runbook(&j);
        c.arg("run").arg(rb).arg("--yes");
        run(c).expect(code);
    };
    start(&gate, 3);
    start(&quick, 0);
    let status = |id: &str| {
        let mut s = runbook(&j);
        s.args(["status", id, "--json"]);
        run(s)
    };
    let halted = status("r-1").expect(3).json();
    assert_eq!(
        (halted["format"].as_u64(), halted["status"].as_str()),
        (Some(1), Some("halted"))
    );
    let done = status("r-2").expect(0).json();
    assert_eq!(done["live"], false);
    // The program that started the run is recorded: this binary, with its commit.
    let version = run({
        let mut v = runbook(&j);
        v.arg("--version");
        v
    })
    .expect(0)
    .stdout;
    let program = done["program"].as_str().unwrap();
    assert!(
        program.starts_with("runbook ") && program.contains("(commit "),
        "{program}"
    );
    assert!(
        version.contains(program.trim_start_matches("runbook ")),
        "{version} / {program}"
    );
    // Aborted: 4.
    let mut a = runbook(&j);
    a.args(["abort", "r-1", "--reason", "not today"]);
    run(a);
    status("r-1").expect(4);
}

#[test]
fn status_watch_follows_a_halted_run_through_its_resume_and_clears_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let gate = write(
        dir.path(),
        "gate.yaml",
        "name: gate\nsteps:\n  - id: ask\n    action: manual.confirm\n    with: { instructions: go? }\n  - id: w\n    action: wait\n    with: { duration: 1ms }\n",
    );
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.arg("run").arg(&gate).arg("--yes");
    run(c).expect(3);
    let mut w = runbook(&j);
    w.args(["status", "r-1", "--watch", "--json"]);
    let watch = spawn(w);
    // The watcher has seen the halt (one line per change, not one per refresh).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut go = runbook(&j);
    go.args(["resume", "r-1", "--approve", "ask"]);
    run(go).expect(0);
    let out = wait_out(watch).expect(0);
    let states: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(states[0]["status"], "halted", "{}", out.stdout);
    assert_eq!(states.last().unwrap()["status"], "completed");
    assert!(states.len() <= 4, "a line per change: {}", out.stdout);

    // On a real terminal (a pty, by util-linux's `script`): the screen is cleared with
    // the escape sequence itself, not its escaped text.
    let cmd = format!(
        "{} --journal {} status r-1 --watch",
        bin().display(),
        j.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("RUNBOOK_OPERATOR", "tester")
        .env_remove("NO_COLOR")
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("\x1b[2J\x1b[H"), "{shown:?}");
    assert!(!shown.contains("\\x1b[2J"), "{shown:?}");
    assert!(shown.contains("completed"), "{shown:?}");
}
