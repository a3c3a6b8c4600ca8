//! The safety interlocks against the lab with the session workload running: every
//! refusal happens before any effect (Keycloak untouched, no clear request on the
//! serving site), names the serving site, how it was read and the command to run
//! instead; the force path works and is journaled; the guide's preconditions hold the
//! procedures back; take-offline is issued again until it sticks; a burst of 503s is
//! retried through; a cancelled push halts.

use std::time::{Duration, Instant};

use crate::support::*;

fn run_rb(l: &InLab, args: &[&str]) -> Out {
    let mut c = l.runbook();
    c.arg("run").args(args).args(["--yes", "--json"]);
    run(c)
}

fn status(l: &InLab, id: &str) -> serde_json::Value {
    let mut s = l.runbook();
    s.args(["status", id, "--json"]);
    // (Its exit code is the run's state; the JSON says which.)
    serde_json::from_str(&run(s).stdout).unwrap()
}

fn switchover(l: &InLab) {
    let out = run_rb(l, &["switchover"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.state()["serving_site"], "site-b");
}

#[test]
fn recover_passive_site_refuses_to_act_on_the_serving_site() {
    let l = InLab::start(&[], 20.0);
    std::thread::sleep(Duration::from_millis(200));
    // Roles swapped: site-a serves, and would be scaled down and cleared.
    let out = run_rb(
        &l,
        &[
            "recover-passive-site",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
        ],
    )
    .expect(8);
    let v = out.json();
    assert_eq!(v["status"], "refused");
    let reason = v["reason"].as_str().unwrap();
    for part in [
        "site-a SERVES TRAFFIC",
        "PRIMARY record `client-failover-primary-lab`",
        "health check hc-site-a",
        "is healthy",
        "TestDNSAnswer",
        "runbook run recover-passive-site -p primary=site-a -p secondary=site-b",
        "Nothing was done",
    ] {
        assert!(reason.contains(part), "`{part}` missing from: {reason}");
    }
    l.untouched("site-a");
    l.untouched("site-b");
    assert_eq!(
        status(&l, "r-1")["status"],
        "refused",
        "journaled as refused"
    );
    // A refused run holds no site: the right command runs at once.
    let out = run_rb(&l, &["recover-passive-site"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    l.untouched("site-a");
}

#[test]
fn after_a_switchover_the_defaults_follow_the_deployment_and_the_wrong_way_is_refused() {
    let l = InLab::start(&[], 20.0);
    switchover(&l);
    // site-b serves now; named the wrong way round, site-b would be the passive site.
    let out = run_rb(
        &l,
        &[
            "recover-passive-site",
            "-p",
            "primary=site-a",
            "-p",
            "secondary=site-b",
        ],
    )
    .expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("site-b SERVES TRAFFIC"), "{reason}");
    assert!(
        reason.contains("runbook run recover-passive-site -p primary=site-b -p secondary=site-a"),
        "{reason}"
    );
    l.untouched("site-b");
    // A second switchover: the primary (Route53's PRIMARY record's site, read from the
    // deployment) does not serve; it says what fits.
    let out = run_rb(&l, &["switchover"]).expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("site-b already serves"), "{reason}");
    assert!(reason.contains("runbook run failover"), "{reason}");
    assert_eq!(l.state()["health_checks"][1]["path"], "/lb-check");
    // Without parameters, recover-passive-site reads the directions: site-b serves, so
    // site-a is resynced from it.
    let out = run_rb(&l, &["recover-passive-site"]).expect(0);
    assert!(
        out.stderr
            .contains("primary=site-b, read from the deployment (serving"),
        "{}",
        out.stderr
    );
    l.untouched("site-b");
}

#[test]
fn switchback_refuses_to_clear_the_primary_while_it_serves() {
    let l = InLab::start(&[], 20.0);
    let out = run_rb(&l, &["switchback", "-p", "resync=always"]).expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("site-a SERVES TRAFFIC"), "{reason}");
    l.untouched("site-a");
    assert_eq!(l.state()["aurora"]["writer_site"], "site-a");
}

#[test]
fn switchover_refuses_a_stale_secondary_after_a_healed_partition() {
    let l = InLab::start(&[], 20.0);
    l.fault("partition");
    std::thread::sleep(Duration::from_millis(300));
    l.lift();
    // Replication is online again both ways, but site-b missed the partition's sessions.
    let out = run_rb(&l, &["switchover"]).expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("not proven in sync"), "{reason}");
    assert!(reason.contains("keys only on site-a"), "{reason}");
    assert!(
        reason.contains("runbook run recover-passive-site -p primary=site-a -p secondary=site-b"),
        "{reason}"
    );
    let st = l.state();
    assert_eq!(st["serving_site"], "site-a");
    assert_eq!(st["aurora"]["writer_site"], "site-a", "Aurora untouched");
    assert_eq!(st["health_checks"][0]["path"], "/lb-check");
    assert_eq!(
        st["sites"]["site-b"]["caches"]["sessions"]["backups"]["site-a"]["status"], "online",
        "replication untouched"
    );
    // Resynced, the switchover goes.
    run_rb(&l, &["recover-passive-site"]).expect(0);
    switchover(&l);
}

#[test]
fn switchover_refuses_a_secondary_the_journal_left_stale() {
    let l = InLab::start(&[], 0.0);
    switchover(&l);
    // Back the other way without resyncing site-a first: the journal knows site-a is stale.
    let out = run_rb(
        &l,
        &[
            "switchover",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
        ],
    )
    .expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("run r-1 (switchover from site-a to site-b"),
        "{reason}"
    );
    assert!(
        reason.contains("runbook run recover-passive-site -p primary=site-b -p secondary=site-a"),
        "{reason}"
    );
    let mut p = l.runbook();
    p.args([
        "plan",
        "switchover",
        "-p",
        "primary=site-b",
        "-p",
        "secondary=site-a",
        "--live",
    ]);
    // `plan --live` ends with the verdict, and exits 8 when the run would be refused.
    let plan = run(p).expect(8).stdout;
    assert!(plan.contains("secondary-not-left-stale"), "{plan}");
    assert!(plan.contains("DOES NOT HOLD NOW"), "{plan}");
    assert!(
        plan.contains("verdict: WOULD BE REFUSED: secondary-not-left-stale"),
        "{plan}"
    );
}

#[test]
fn force_overrides_a_guard_with_a_reason_and_the_journal_says_who_and_why() {
    let l = InLab::start(&[], 20.0);
    let out = run_rb(
        &l,
        &[
            "recover-passive-site",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
            "-p",
            "force=true",
        ],
    )
    .expect(2);
    assert!(out.stderr.contains("needs a reason"), "{}", out.stderr);
    let mut p = l.runbook();
    p.args([
        "plan",
        "recover-passive-site",
        "-p",
        "primary=site-b",
        "-p",
        "secondary=site-a",
        "-p",
        "force=true",
        "-p",
        "force_reason=drill: site-a is being rebuilt",
    ]);
    let plan = run(p).expect(0).stdout;
    assert!(
        plan.contains("FORCED"),
        "the plan shows the override: {plan}"
    );
    let mut c = l.runbook();
    c.args([
        "run",
        "recover-passive-site",
        "-p",
        "primary=site-b",
        "-p",
        "secondary=site-a",
        "-p",
        "force=true",
        "-p",
        "force_reason=drill: site-a is being rebuilt",
        "--yes",
        "--json",
    ])
    .env("RUNBOOK_OPERATOR", "alice");
    let out = run(c).expect(0);
    assert!(out.stderr.contains("OVERRIDDEN by alice"), "{}", out.stderr);
    let st = status(&l, "r-1");
    let overrides: Vec<String> = st["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // At the start, and again before the scale-down. (Once site-a's Keycloak is at 0,
    // Route53 sends the traffic to site-b, so the guard holds again before the clears.)
    assert!(overrides.len() >= 2, "{overrides:?}");
    assert!(overrides
        .iter()
        .all(|o| o.contains("overridden by alice: drill: site-a is being rebuilt")));
    assert!(overrides
        .iter()
        .any(|o| o.contains("guard `passive-site-does-not-serve` (before `scale-down`)")));
}

#[test]
fn switchback_after_a_repeated_switchover_restores_the_healthy_path() {
    let l = InLab::start(&[], 20.0);
    switchover(&l);
    // A repeated switchover (forced past its guards) records /health/down.
    let out = run_rb(
        &l,
        &[
            "switchover",
            "-p",
            "force=true",
            "-p",
            "force_reason=repeated by mistake",
        ],
    )
    .expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(
        status(&l, "r-2")["steps"]["point-health-check-away"]["outputs"]["previous_path"],
        "/health/down"
    );
    let out = run_rb(&l, &["switchback"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert!(out.stderr.contains("recorded by run r-1"), "{}", out.stderr);
    let st = l.state();
    assert_eq!(st["health_checks"][0]["path"], "/lb-check");
    assert_eq!(st["serving_site"], "site-a");
    // restore_path equal to the down path is invalid input.
    let out = run_rb(&l, &["switchback", "-p", "restore_path=/health/down"]).expect(2);
    assert!(out.stderr.contains("must differ from it"), "{}", out.stderr);
}

#[test]
fn a_take_offline_a_node_refuses_for_a_while_completes_without_the_operator() {
    // site-b's last node refuses the first 3 take-offline requests, then complies.
    let l = InLab::start(&["offline-not-sticking:site-b::3"], 20.0);
    let out = run_rb(&l, &["switchover"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let requests = l.running().shared.lock().requests["site-b"].clone();
    let issued = requests
        .iter()
        .filter(|r| r.starts_with("POST") && r.contains("action=take-offline"))
        .count();
    assert!(
        issued >= 4,
        "issued again until it stuck: {issued} requests"
    );
    assert_eq!(
        l.state()["sites"]["site-b"]["caches"]["sessions"]["backups"]["site-a"]["status"],
        "offline"
    );
}

#[test]
fn a_take_offline_that_never_sticks_halts_naming_the_node() {
    let l = InLab::start(&["offline-not-sticking:site-b"], 0.0);
    let out = run_rb(&l, &["switchover"]).expect(3);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("site-b-infinispan-2"), "{reason}");
    assert!(reason.contains("issued again"), "{reason}");
    let st = l.state();
    assert_eq!(
        st["aurora"]["writer_site"], "site-a",
        "nothing after it was done"
    );
    assert_eq!(st["health_checks"][0]["path"], "/lb-check");
}

#[test]
fn a_burst_of_503s_is_retried_through() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 6);
    l.lift();
    l.fault("http-5xx-burst:6");
    let started = Instant::now();
    let out = run_rb(&l, &["recover-passive-site"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        l.world(|w| w
            .faults
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()),
        ["Http5xxBurst { remaining: 0, site: None, path: None }"],
        "the whole burst was answered"
    );
    let (a, b) = l.entries_at_once("site-a", "site-b", "sessions");
    assert_eq!(a, b);
}

#[test]
fn a_cancelled_push_halts_instead_of_pushing_again() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 4);
    l.lift();
    // An operator cancelled the push of `sessions` to site-b.
    l.world(|w| {
        w.sites
            .get_mut("site-a")
            .unwrap()
            .caches
            .get_mut("sessions")
            .unwrap()
            .backups
            .get_mut("site-b")
            .unwrap()
            .push = lab::world::PushStatus::Canceled;
    });
    let out = run_rb(&l, &["recover-passive-site"]).expect(3);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert_eq!(out.json()["halted_at"], "push-state");
    assert!(reason.contains("was cancelled"), "{reason}");
    assert!(
        reason.contains("not pushed again automatically"),
        "{reason}"
    );
    let requests = l.running().shared.lock().requests["site-a"].clone();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("action=start-push-state")),
        "no push was started: {requests:?}"
    );
}

#[test]
fn cross_site_view_not_formed_refuses_before_any_effect() {
    let l = InLab::start(&["partition"], 0.0);
    let out = run_rb(&l, &["recover-passive-site"]).expect(8);
    let reason = out.json()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("CrossSiteViewFormed=False"), "{reason}");
    assert!(reason.contains("not ready"), "{reason}");
    l.untouched("site-b");
}
