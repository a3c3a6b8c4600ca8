//! Crash safety: a child `runbook` killed with SIGKILL at each named failpoint (intent
//! journaled but effect not done; effect done but not journaled; success journaled)
//! and at random moments, then resumed. The run completes, each effect happened as
//! often as its contract allows and no more, and the journal stays readable.

use std::time::{Duration, Instant};

use crate::support::*;

/// Where the journal is: the crash tests run against both stores.
#[derive(Clone)]
pub enum At {
    Sled(std::path::PathBuf),
    /// A PostgreSQL journal (URL, password), with leases of 1 s so that a killed
    /// driver's run can be taken over quickly.
    Pg(String, String),
}

impl At {
    fn sled(dir: &std::path::Path) -> At {
        At::Sled(dir.join("j"))
    }

    fn pg() -> At {
        let (url, pw) = fresh_pg_journal();
        At::Pg(url, pw)
    }

    fn runbook(&self) -> std::process::Command {
        match self {
            At::Sled(j) => runbook(j),
            At::Pg(url, pw) => {
                let mut c = runbook(std::path::Path::new(url));
                c.env("PGPASSWORD", pw).env("RUNBOOK_LEASE_TTL", "1s");
                c
            }
        }
    }
}

fn killed_at(server: &TestServer, dir: &std::path::Path, failpoint: &str) -> At {
    killed_at_in(server, dir, failpoint, At::sled(dir))
}

fn killed_at_in(server: &TestServer, dir: &std::path::Path, failpoint: &str, j: At) -> At {
    let rb = write(dir, "workload.yaml", WORKLOAD);
    let mut c = j.runbook();
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"])
        .env("FAILPOINTS", failpoint);
    let out = run(c);
    assert_eq!(
        out.code, -1,
        "the child must die by SIGKILL at {failpoint}\nstderr:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("failpoint: SIGKILL"), "{}", out.stderr);
    j
}

/// Resume as an operator would: when a destructive step is in doubt and the halt
/// says its postcondition does not hold (the effect is not in place), apply it again
/// with `--retry-step`. On a database journal, the killed driver's lease is waited out
/// first (it says how long it has left).
fn resume_to_completion(j: &At) -> Out {
    let mut directive: Vec<String> = Vec::new();
    let mut tries = 0;
    while tries < 6 {
        let mut r = j.runbook();
        r.args(["resume", "r-1", "--json"]).args(&directive);
        let out = run(r);
        if out.code == 0 {
            assert_eq!(out.json()["status"], "completed");
            return out;
        }
        if out.code == 5 && out.stderr.contains("its lease expires in") {
            std::thread::sleep(Duration::from_millis(400));
            continue;
        }
        tries += 1;
        let out = out.expect(3);
        let v = out.json();
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("it is destructive and its postcondition does not hold"),
            "unexpected halt: {reason}"
        );
        directive = vec![
            "--retry-step".into(),
            v["halted_at"].as_str().unwrap().to_string(),
        ];
    }
    panic!("the run did not complete after several resumes");
}

fn journal_readable(j: &At) {
    let mut s = j.runbook();
    s.args(["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["status"], "completed");
    let mut h = j.runbook();
    h.args(["history"]);
    assert!(run(h).expect(0).stdout.contains("completed"));
}

macro_rules! kill_point {
    ($name:ident, $fp:expr) => {
        #[test]
        fn $name() {
            let server = TestServer::start();
            let dir = tempfile::tempdir().unwrap();
            let j = killed_at(&server, dir.path(), $fp);
            resume_to_completion(&j);
            assert_workload_effects(&server);
            journal_readable(&j);
        }
    };
    (pg $name:ident, $fp:expr) => {
        #[test]
        fn $name() {
            let server = TestServer::start();
            let dir = tempfile::tempdir().unwrap();
            let j = killed_at_in(&server, dir.path(), $fp, At::pg());
            resume_to_completion(&j);
            assert_workload_effects(&server);
            journal_readable(&j);
        }
    };
}

/// The same kill points with the journal in PostgreSQL: the storage contract is the
/// store's, the crash safety the engine's, and both hold on either store.
mod on_postgresql {
    use super::*;

    kill_point!(pg killed_before_apply_of_destructive_step, "before-apply=return(create)");
    kill_point!(pg killed_after_apply_of_destructive_step, "after-apply=return(create)");
    kill_point!(pg killed_after_journal_of_destructive_step, "after-journal=return(create)");
    kill_point!(pg killed_before_apply_of_idempotent_step, "before-apply=return(configure)");
    kill_point!(pg killed_after_apply_of_idempotent_step, "after-apply=return(configure)");
    kill_point!(pg killed_after_journal_of_idempotent_step, "after-journal=return(configure)");
    kill_point!(pg killed_before_apply_of_read_only_step, "before-apply=return(pause)");
    kill_point!(pg killed_after_apply_of_read_only_step, "after-apply=return(check)");
    kill_point!(pg killed_before_apply_of_fan_out_item, "before-apply=return(clear:c3)");
    kill_point!(pg killed_after_apply_of_fan_out_item, "after-apply=return(clear:c3)");
    kill_point!(pg killed_after_journal_of_fan_out_item, "after-journal=return(clear:c3)");
}

// destructive POST with a postcondition: settled by probing, never applied twice
kill_point!(
    killed_before_apply_of_destructive_step,
    "before-apply=return(create)"
);
kill_point!(
    killed_after_apply_of_destructive_step,
    "after-apply=return(create)"
);
kill_point!(
    killed_after_journal_of_destructive_step,
    "after-journal=return(create)"
);
// idempotent PUT without a postcondition: applied again
kill_point!(
    killed_before_apply_of_idempotent_step,
    "before-apply=return(configure)"
);
kill_point!(
    killed_after_apply_of_idempotent_step,
    "after-apply=return(configure)"
);
kill_point!(
    killed_after_journal_of_idempotent_step,
    "after-journal=return(configure)"
);
// read-only steps: their start is flushed only with their next event, so a kill before
// it leaves no record of it or an in-doubt one; either way resume runs them again
kill_point!(
    killed_before_apply_of_read_only_step,
    "before-apply=return(pause)"
);
kill_point!(
    killed_after_apply_of_read_only_step,
    "after-apply=return(check)"
);
// one item of a fan-out: the other items are not redone
kill_point!(
    killed_before_apply_of_fan_out_item,
    "before-apply=return(clear:c3)"
);
kill_point!(
    killed_after_apply_of_fan_out_item,
    "after-apply=return(clear:c3)"
);
kill_point!(
    killed_after_journal_of_fan_out_item,
    "after-journal=return(clear:c3)"
);

const UNVERIFIED: &str = r#"
name: unverified
params: { base: { type: string } }
steps:
  - id: event
    title: Post an event (destructive, nothing to check it by)
    action: http.request
    with: { method: POST, url: "{{ params.base }}/events" }
  - id: after
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/done", body: true }
"#;

#[test]
fn destructive_step_in_doubt_without_postcondition_halts_and_skip_step_continues() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "u.yaml", UNVERIFIED);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"])
        .env("FAILPOINTS", "after-apply=return(event)");
    assert_eq!(run(c).code, -1);
    assert_eq!(server.with(|s| s.events), 1);
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--json"]);
    let out = run(r).expect(3);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("step `event` was started but its end was never recorded"),
        "{reason}"
    );
    assert!(
        reason.contains("it is destructive and it has no postcondition to check"),
        "{reason}"
    );
    assert!(
        reason.contains("--retry-step event") && reason.contains("--skip-step event"),
        "{reason}"
    );
    assert_eq!(server.with(|s| s.events), 1, "not applied again");
    // the operator checked: it took effect
    let mut r = runbook(&j);
    r.args([
        "resume",
        "r-1",
        "--skip-step",
        "event",
        "--reason",
        "event 1 is on the server",
        "--json",
    ]);
    run(r).expect(0);
    assert_eq!(server.with(|s| s.events), 1);
    assert!(server.with(|s| s.config.contains_key("done")));
    let mut s = runbook(&j);
    s.args(["status", "r-1"]);
    let st = run(s).expect(0);
    assert!(
        st.stdout
            .contains("skipped by tester: event 1 is on the server"),
        "{}",
        st.stdout
    );
}

#[test]
fn destructive_step_in_doubt_before_apply_is_retried_on_the_operators_word() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "u.yaml", UNVERIFIED);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"])
        .env("FAILPOINTS", "before-apply=return(event)");
    assert_eq!(run(c).code, -1);
    assert_eq!(server.with(|s| s.events), 0);
    let mut r = runbook(&j);
    r.args(["resume", "r-1"]);
    run(r).expect(3);
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--retry-step", "event", "--json"]);
    run(r).expect(0);
    assert_eq!(server.with(|s| s.events), 1);
}

#[test]
fn killed_at_random_moments_then_resumed() {
    let server = TestServer::start();
    server.with(|s| s.latency = Duration::from_millis(3));
    // How long an undisturbed run takes, to spread the kills over it.
    let probe_dir = tempfile::tempdir().unwrap();
    let rb = write(probe_dir.path(), "workload.yaml", WORKLOAD);
    let t0 = Instant::now();
    let mut c = runbook(&probe_dir.path().join("j"));
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"]);
    run(c).expect(0);
    let full = t0.elapsed().as_millis() as u64;
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7),
    );
    let rounds = 8;
    for round in 0..rounds {
        let fresh = TestServer::start();
        fresh.with(|s| s.latency = Duration::from_millis(3));
        let dir = tempfile::tempdir().unwrap();
        let rb = write(dir.path(), "workload.yaml", WORKLOAD);
        let j = dir.path().join("j");
        let mut c = runbook(&j);
        c.args(["run"])
            .arg(&rb)
            .args(["-p", &format!("base={}", fresh.base()), "--yes"]);
        let mut child = spawn(c);
        let at = rng.u64(0..full.max(1));
        std::thread::sleep(Duration::from_millis(at));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Resume until done (a kill before the run was journaled leaves no run: start again).
        let mut has_run = false;
        {
            let mut h = runbook(&j);
            h.args(["history", "--json"]);
            let out = run(h);
            if out.code == 0 {
                let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
                has_run = v.as_array().is_some_and(|a| !a.is_empty());
                if has_run && v[0]["status"] == "completed" {
                    assert_workload_effects(&fresh);
                    continue;
                }
            }
        }
        let at_j = At::Sled(j.clone());
        if has_run {
            resume_to_completion(&at_j);
        } else {
            let mut c = runbook(&j);
            c.args(["run"])
                .arg(&rb)
                .args(["-p", &format!("base={}", fresh.base()), "--yes"]);
            run(c).expect(0);
        }
        assert_workload_effects(&fresh);
        journal_readable(&at_j);
        eprintln!("round {round}: killed at {at}ms of {full}ms: ok");
    }
}
