//! The four built-in procedures end to end against the lab, with the session workload
//! running: each happy path, the whole cycle, a take-offline that does not stick, a
//! push-state error, failover's refusal, crashes at every step and inside the fan-out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

fn run_rb(l: &InLab, args: &[&str]) -> Out {
    let mut c = l.runbook();
    c.arg("run").args(args).args(["--yes", "--json"]);
    run(c)
}

fn resume(l: &InLab, run_id: &str, extra: &[&str]) -> Out {
    let mut c = l.runbook();
    c.args(["resume", run_id, "--json"]).args(extra);
    run(c)
}

#[test]
fn switchover_moves_traffic_db_writer_and_stops_replication() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 10);
    let out = run_rb(&l, &["switchover"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let st = l.state();
    assert_eq!(st["serving_site"], "site-b");
    assert_eq!(st["aurora"]["writer_site"], "site-b");
    assert_eq!(st["health_checks"][0]["path"], "/health/down");
    assert_eq!(
        st["sites"]["site-b"]["caches"]["sessions"]["backups"]["site-a"]["status"],
        "offline"
    );
    assert_eq!(l.entries("site-b", "sessions").len(), 10);
}

#[test]
fn failover_makes_it_permanent_and_refuses_an_unhealthy_secondary_unless_forced() {
    let l = InLab::start(&["site-down:site-b"], 0.0);
    // The secondary's Infinispan does not answer: it cannot prove which site it is
    // (the built-in identity guard, checked first), nor its replication status.
    let out = run_rb(&l, &["failover"]).expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert_eq!(out.json()["status"], "refused");
    assert!(reason.contains("site-b infinispan"), "{reason}");
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(reason.contains("Nothing was done"), "{reason}");
    assert_eq!(
        l.state()["health_checks"][0]["path"],
        "/lb-check",
        "nothing was done"
    );
    // a refused run holds nothing: the next attempt is not refused for a held site
    let out = run_rb(&l, &["failover", "-p", "force=true"]).expect(2);
    assert!(
        out.stderr
            .contains("force=true overrides the safety guards and needs a reason"),
        "{}",
        out.stderr
    );
    let out = run_rb(
        &l,
        &[
            "failover",
            "-p",
            "force=true",
            "-p",
            "force_reason=site-b is recovering, traffic must leave site-a now",
        ],
    );
    let out = out.expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert!(out.stderr.contains("OVERRIDDEN"), "{}", out.stderr);
    let mut s = l.runbook();
    s.args(["status", "r-2", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    let overrides = st["overrides"].to_string();
    assert!(
        overrides.contains("guard `secondary-replication-online`")
            && overrides.contains("site-b is recovering"),
        "{overrides}"
    );
    // A failover follows a failure: the primary is down (on a healthy primary it is
    // refused, pointing at switchover: tests/e2e/edges.rs).
    let l3 = InLab::start(&["site-down:site-a"], 0.0);
    run_rb(&l3, &["failover"]).expect(0);
    let st = l3.state();
    assert_eq!(st["health_checks"][0]["path"], "/health/down");
    assert_eq!(st["serving_site"], "site-b");
}

#[test]
fn recover_passive_site_replaces_the_passive_data_and_keeps_the_active() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 12);
    l.sessions("site-b", 3);
    l.lift();
    let before = l.entries("site-a", "sessions");
    let out = run_rb(&l, &["recover-passive-site"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(
        l.entries("site-a", "sessions"),
        before,
        "the active site kept exactly its sessions"
    );
    assert_eq!(
        l.entries("site-b", "sessions"),
        before,
        "the passive site now equals the active one"
    );
    let st = l.state();
    assert!(st["sites"]["site-a"]["clear_requests"]
        .as_object()
        .unwrap()
        .is_empty());
    assert_eq!(
        st["sites"]["site-b"]["keycloak"]["ready"], 3,
        "Keycloak back to its original count"
    );
    assert_eq!(
        st["sites"]["site-b"]["caches"]["work"]["backups"]["site-a"]["push"],
        "IDLE"
    );
}

/// Point site-a's health check at a path that does not exist, straight in the lab (no
/// run in the journal), and wait until Route53 sends the traffic to site-b.
fn primary_down_without_a_run(l: &InLab) {
    l.world(|w| w.health_checks[0].path = "/health/down".into());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while l.state()["serving_site"] != "site-b" {
        assert!(std::time::Instant::now() < deadline, "site-b never served");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn switchback_auto_skips_the_data_grid_part_only_on_equal_keys() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 5);
    primary_down_without_a_run(&l);
    let out = run_rb(&l, &["switchback", "-p", "resync=auto"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["steps"]["sync-state"]["outputs"]["in_sync"], true);
    assert_eq!(st["steps"]["clear-caches"]["status"], "skipped");
    let why = st["steps"]["scale-down"]["note"].as_str().unwrap();
    assert!(
        why.contains("the same keys in all 8 caches") && why.contains("no failover, switchover"),
        "the evidence that decided: {why}"
    );
    assert!(l.state()["sites"]["site-a"]["clear_requests"]
        .as_object()
        .unwrap()
        .is_empty());
    // Equal counts, different keys: the sessions differ, so it resyncs.
    primary_down_without_a_run(&l);
    l.world(|w| {
        let b = &mut w
            .sites
            .get_mut("site-b")
            .unwrap()
            .caches
            .get_mut("sessions")
            .unwrap()
            .entries;
        let first = b.keys().next().unwrap().clone();
        let v = b.remove(&first).unwrap();
        b.insert("a-session-only-site-b-knows".into(), v);
    });
    assert_eq!(
        l.entries("site-a", "sessions").len(),
        l.entries("site-b", "sessions").len(),
        "the same entry count"
    );
    let out = run_rb(&l, &["switchback", "-p", "resync=auto"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let mut s = l.runbook();
    s.args(["status", "r-2", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(st["steps"]["sync-state"]["outputs"]["in_sync"], false);
    assert!(
        st["steps"]["sync-state"]["outputs"]["reason"]
            .as_str()
            .unwrap()
            .contains("sessions: 1 keys only on site-a, 1 only on site-b"),
        "{}",
        st["steps"]["sync-state"]["outputs"]
    );
    assert_eq!(st["steps"]["clear-caches"]["status"], "succeeded");
    let (a, b) = l.entries_at_once("site-a", "site-b", "sessions");
    assert_eq!(a, b, "resynced from the serving site");
}

/// Every `every` ms, check that no session the serving site ever held has gone.
fn watch_sessions(l: &InLab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let shared = l.running().shared.clone();
    std::thread::spawn(move || {
        let mut seen: std::collections::BTreeSet<String> = Default::default();
        let mut problems = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            {
                let w = &shared.lock().world;
                let serving = w.serving_site();
                let here: std::collections::BTreeSet<String> = w.sites[&serving].caches["sessions"]
                    .entries
                    .keys()
                    .cloned()
                    .collect();
                let lost: Vec<&String> = seen.difference(&here).collect();
                if !lost.is_empty() && problems.len() < 5 {
                    problems.push(format!(
                        "serving site {serving} lost {} sessions, e.g. {}",
                        lost.len(),
                        lost[0]
                    ));
                }
                seen.extend(here);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        problems
    })
}

#[test]
fn the_whole_cycle_with_users_logging_in_loses_no_session() {
    // Infinispan 14 over REST, its routes read from the server.
    whole_cycle(InLab::start(&[], 200.0));
}

#[test]
fn the_whole_cycle_over_infinispan_15() {
    whole_cycle(InLab::start_playing(&[], 200.0, 15));
}

#[test]
fn the_whole_cycle_over_batch_crs() {
    let mut l = InLab::start(&[], 200.0);
    l.edit_env(|d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s]["infinispan"]["transport"] = "batch".into();
        }
    });
    whole_cycle(l);
}

fn whole_cycle(l: InLab) {
    std::thread::sleep(Duration::from_millis(100));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_sessions(&l, Arc::clone(&stop));
    run_rb(&l, &["switchover"]).expect(0);
    assert_eq!(l.state()["serving_site"], "site-b");
    std::thread::sleep(Duration::from_millis(100));
    // the old primary comes back: resync it from the serving site
    run_rb(
        &l,
        &[
            "recover-passive-site",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
        ],
    )
    .expect(0);
    std::thread::sleep(Duration::from_millis(100));
    let out = run_rb(&l, &["switchback"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let problems = watcher.join().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let st = l.state();
    assert_eq!(st["serving_site"], "site-a");
    assert_eq!(st["aurora"]["writer_site"], "site-a");
    assert_eq!(
        st["health_checks"][0]["path"], "/lb-check",
        "the recorded path is back"
    );
    assert_eq!(st["sites"]["site-a"]["keycloak"]["ready"], 3);
    assert_eq!(st["sites"]["site-b"]["keycloak"]["ready"], 3);
    for cache in ["sessions", "clientSessions"] {
        let (a, b) = l.entries_at_once("site-a", "site-b", cache);
        assert_eq!(a, b, "{cache} in sync");
        assert!(
            l.entries("site-a", cache).len() > 10,
            "users logged in throughout"
        );
    }
    for site in ["site-a", "site-b"] {
        let other = if site == "site-a" { "site-b" } else { "site-a" };
        assert_eq!(
            st["sites"][site]["caches"]["sessions"]["backups"][other]["status"],
            "online"
        );
    }
}

#[test]
fn take_offline_that_does_not_stick_stops_before_any_clear_and_resume_completes() {
    let l = InLab::start(&["offline-not-sticking:site-b"], 0.0);
    l.sessions("site-a", 8);
    let out = run_rb(&l, &["recover-passive-site"]).expect(3);
    let v = out.json();
    assert_eq!(v["status"], "halted");
    assert_eq!(v["halted_at"], "take-offline");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("expected replication from `site-b` to `site-a` is offline"),
        "names the sites and what was expected: {reason}"
    );
    assert!(
        reason.contains("observed: site-b-infinispan-2 is online for every cache (8)"),
        "names the node, the caches and the status seen: {reason}"
    );
    assert!(
        reason.contains("Nothing after it was done"),
        "says nothing went further: {reason}"
    );
    let st = l.state();
    assert!(
        st["sites"]["site-b"]["clear_requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "zero clear requests"
    );
    assert_eq!(l.entries("site-a", "sessions").len(), 8);
    l.lift();
    let out = resume(&l, "r-1", &[]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.entries("site-a", "sessions").len(), 8);
    assert_eq!(l.entries("site-b", "sessions").len(), 8);
}

#[test]
fn a_push_error_on_one_cache_is_pushed_again_alone_and_a_lasting_one_stops_the_run() {
    let l = InLab::start(&["push-error:work:1"], 0.0);
    l.sessions("site-a", 4);
    let out = run_rb(&l, &["recover-passive-site"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let mut s = l.runbook();
    s.args(["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    assert_eq!(
        st["steps"]["push-state"]["outputs"]["repushed"],
        serde_json::json!({"work": 1})
    );
    let pushes: Vec<String> = l
        .running()
        .shared
        .lock()
        .requests
        .get("site-a")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.contains("start-push-state"))
        .collect();
    assert_eq!(
        pushes
            .iter()
            .filter(|r| r.contains("/caches/work/"))
            .count(),
        2,
        "{pushes:?}"
    );
    assert_eq!(
        pushes
            .iter()
            .filter(|r| r.contains("/caches/sessions/"))
            .count(),
        1,
        "{pushes:?}"
    );

    let l = InLab::start(&["push-error:work"], 0.0);
    let out = run_rb(&l, &["recover-passive-site"]).expect(1);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains(
            "push-state of `work` to `site-b` ended in ERROR after 3 re-pushes: giving up"
        ),
        "{reason}"
    );
    l.lift();
    let out = resume(&l, "r-1", &[]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.state()["sites"]["site-b"]["keycloak"]["ready"], 3);
}
