//! recover-passive-site killed with SIGKILL at every step boundary, inside the fan-out
//! and at random moments, then resumed: the end state equals the happy path's, nothing
//! of the active site is lost, and Keycloak comes back to its original count (not 0),
//! even when the crash came right after the scale-down.

use std::time::{Duration, Instant};

use crate::support::*;

fn check_end_state(
    l: &InLab,
    active_before: &std::collections::BTreeMap<String, String>,
    label: &str,
) {
    let a = l.entries("site-a", "sessions");
    for k in active_before.keys() {
        assert!(a.contains_key(k), "{label}: the active site lost {k}");
    }
    assert_eq!(
        l.entries("site-b", "sessions"),
        a,
        "{label}: the passive site equals the active one"
    );
    let st = l.state();
    assert_eq!(
        st["sites"]["site-b"]["keycloak"]["spec"], 3,
        "{label}: Keycloak restored to the original count"
    );
    assert!(
        st["sites"]["site-a"]["clear_requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{label}: nothing cleared on the active site"
    );
    for c in st["sites"]["site-b"]["caches"]
        .as_object()
        .unwrap()
        .values()
    {
        assert_eq!(c["backups"]["site-a"]["status"], "online", "{label}");
    }
}

fn kill_and_resume(point: &str) {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 9);
    l.sessions("site-b", 2);
    l.lift();
    let before = l.entries("site-a", "sessions");
    let mut c = l.runbook();
    c.args(["run", "recover-passive-site", "--yes"])
        .env("FAILPOINTS", point);
    let out = run(c);
    assert_eq!(out.code, -1, "{point}: killed\n{}", out.stderr);
    resume_until_done(&l, "r-1");
    check_end_state(&l, &before, point);
}

macro_rules! crash {
    ($name:ident, $point:expr) => {
        #[test]
        fn $name() {
            kill_and_resume($point);
        }
    };
}

crash!(
    after_scale_down_before_journal,
    "after-apply=return(scale-down)"
);
crash!(
    after_scale_down_journaled,
    "after-journal=return(scale-down)"
);
crash!(before_take_offline, "before-apply=return(take-offline)");
crash!(after_take_offline, "after-apply=return(take-offline)");
crash!(
    inside_the_clear_fan_out_before,
    "before-apply=return(clear-caches:sessions)"
);
crash!(
    inside_the_clear_fan_out_after,
    "after-apply=return(clear-caches:sessions)"
);
crash!(
    after_a_clear_journaled,
    "after-journal=return(clear-caches:work)"
);
crash!(after_bring_online, "after-apply=return(bring-online)");
crash!(before_push_state, "before-apply=return(push-state)");
crash!(after_push_state, "after-apply=return(push-state)");
crash!(
    after_clear_push_state_status,
    "after-apply=return(clear-push-state-status)"
);
crash!(before_scale_up, "before-apply=return(scale-up)");
crash!(after_scale_up, "after-apply=return(scale-up)");

#[test]
fn killed_at_random_moments() {
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(11),
    );
    for round in 0..6 {
        let l = InLab::start(&["partition", "latency:2ms"], 0.0);
        l.sessions("site-a", 6);
        l.world(|w| w.faults.retain(|f| f.kind() != "partition"));
        let before = l.entries("site-a", "sessions");
        let mut c = l.runbook();
        c.args(["run", "recover-passive-site", "--yes"]);
        let mut child = spawn(c);
        let at = rng.u64(20..400);
        std::thread::sleep(Duration::from_millis(at));
        let _ = child.kill();
        let _ = child.wait();
        let mut h = l.runbook();
        h.args(["history", "--json"]);
        let runs: serde_json::Value = serde_json::from_str(&run(h).expect(0).stdout).unwrap();
        match runs.as_array().and_then(|a| a.first()) {
            Some(r) if r["status"] == "completed" => {}
            Some(r) => resume_until_done(&l, r["run_id"].as_str().unwrap()),
            None => {
                let mut c = l.runbook();
                c.args(["run", "recover-passive-site", "--yes"]);
                run(c).expect(0);
            }
        }
        check_end_state(&l, &before, &format!("round {round} (killed at {at} ms)"));
        let _ = Instant::now();
    }
}

/// switchback (resync=always) after a switchover, killed at every step and failpoint in
/// turn, then resumed: the end state is always the happy path's.
#[test]
fn switchback_killed_at_every_step() {
    let steps = [
        "scale-down",
        "take-offline",
        "clear-caches:sessions",
        "bring-online",
        "push-state",
        "clear-push-state-status",
        "scale-up",
        "move-db-writer",
        "restore-health-check",
    ];
    for step in steps {
        for fp in ["before-apply", "after-apply", "after-journal"] {
            let point = format!("{fp}=return({step})");
            let l = InLab::start(&[], 0.0);
            l.sessions("site-a", 5);
            let mut c = l.runbook();
            c.args(["run", "switchover", "--yes"]);
            run(c).expect(0);
            l.sessions("site-b", 4);
            let serving_before = l.entries("site-b", "sessions");
            let mut c = l.runbook();
            c.args(["run", "switchback", "-p", "resync=always", "--yes"])
                .env("FAILPOINTS", &point);
            let out = run(c);
            assert_eq!(out.code, -1, "{point}: killed\n{}", out.stderr);
            resume_until_done(&l, "r-2");
            let st = l.state();
            assert_eq!(st["serving_site"], "site-a", "{point}");
            assert_eq!(st["aurora"]["writer_site"], "site-a", "{point}");
            assert_eq!(st["health_checks"][0]["path"], "/lb-check", "{point}");
            assert_eq!(
                st["sites"]["site-a"]["keycloak"]["spec"], 3,
                "{point}: Keycloak back to 3, not 0"
            );
            let a = l.entries("site-a", "sessions");
            for k in serving_before.keys() {
                assert!(
                    a.contains_key(k),
                    "{point}: session {k} of the serving site lost"
                );
            }
            assert_eq!(a, l.entries("site-b", "sessions"), "{point}: in sync");
            assert!(
                st["sites"]["site-b"]["clear_requests"]
                    .as_object()
                    .unwrap()
                    .is_empty(),
                "{point}: the serving site was never cleared"
            );
        }
    }
}
