//! The Keycloak 26 pack end to end against the lab playing the guide's shape: both
//! sites serve behind a Global Accelerator (JSON 1.1, `lab/src/accelerator.rs`), 4
//! caches in Infinispan 15, users logging in on whichever site the accelerator routes
//! them to. The whole cycle, every refusal before any effect (the lab's state
//! unchanged), fencing, a concurrent writer, crashes at every step, and the plan's
//! Global Accelerator writes against those the lab received.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

pub fn kc26_lab(faults: &[&str]) -> InLab {
    kc26_lab_on(faults, 15)
}

/// The Keycloak 26 lab playing Infinispan `version` (15 or 16).
fn kc26_lab_on(faults: &[&str], version: u8) -> InLab {
    let l = InLab::start_with(faults, |c| {
        c.shape.traffic = lab::world::Traffic::Accelerator;
        c.shape.infinispan_version = version;
        c.shape.caches = [
            "actionTokens",
            "authenticationSessions",
            "loginFailures",
            "work",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    });
    l
}

impl InLab {
    fn accelerator(&self) -> Value {
        self.state()["accelerator"].clone()
    }

    /// The sites whose endpoints are in the group, in order.
    fn in_group(&self) -> Vec<String> {
        self.accelerator()["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["site"].as_str().map(str::to_string))
            .collect()
    }

    /// The writes to the endpoint group the lab received (operation names).
    fn group_writes(&self) -> Vec<String> {
        self.accelerator()["writes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["operation"].as_str().unwrap().to_string())
            .collect()
    }

    /// Users log in: `n` logins land on the sites the accelerator routes to.
    fn logins(&self, n: u32) -> Vec<String> {
        self.world(|w| {
            let mut sites = Vec::new();
            for _ in 0..n {
                let site = w.serving_site();
                w.create_sessions(Some(&site), 1).unwrap();
                sites.push(site);
            }
            sites
        })
    }

    fn until(&self, what: &str, f: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(&self.state()) {
            assert!(
                Instant::now() < deadline,
                "timed out until {what}: {}",
                self.accelerator()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

fn kc26(l: &InLab, runbook: &str, params: &[&str]) -> Out {
    let mut c = l.runbook();
    c.args(["run", &format!("keycloak-26/{runbook}"), "--yes", "--json"]);
    for p in params {
        c.args(["-p", p]);
    }
    run(c)
}

/// `check --json`'s document (printed over several lines).
fn check_json(c: std::process::Command) -> Value {
    let out = run(c);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn reason(out: &Out) -> String {
    out.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Nothing of the deployment changed: the group holds both sites, never written,
/// and neither site's Keycloak or caches were touched.
fn unchanged(l: &InLab) {
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
    assert_eq!(
        l.group_writes(),
        Vec::<String>::new(),
        "no write to the endpoint group"
    );
    l.untouched("site-a");
    l.untouched("site-b");
}

#[test]
fn take_offline_synchronize_bring_online_the_whole_cycle_with_users_logging_in() {
    let l = kc26_lab(&[]);
    // Both sites serve: logins land on both.
    let before: BTreeSet<String> = l.logins(10).into_iter().collect();
    assert_eq!(before, ["site-a".to_string(), "site-b".to_string()].into());
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.in_group(), vec!["site-a"]);
    assert_eq!(l.group_writes(), vec!["RemoveEndpoints"]);
    // Now every login lands on site-a; site-b goes stale (a partition makes it so).
    l.fault("partition");
    assert!(l.logins(6).iter().all(|s| s == "site-a"));
    l.lift();
    let a = l.entries("site-a", "authenticationSessions");
    assert_ne!(
        l.entries("site-b", "authenticationSessions"),
        a,
        "site-b is stale"
    );
    // Bringing it online now is refused: it was not synchronized since it left.
    let out = kc26(&l, "bring-site-online", &["site=site-b", "source=site-a"]).expect(8);
    assert!(
        reason(&out).contains("no completed synchronize-site"),
        "{}",
        reason(&out)
    );
    assert_eq!(l.in_group(), vec!["site-a"]);
    let out = kc26(&l, "synchronize-site", &["site=site-b", "source=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let (a, b) = l.entries_at_once("site-a", "site-b", "authenticationSessions");
    assert_eq!(a, b, "site-b holds site-a's data");
    let st = l.state();
    assert_eq!(
        st["sites"]["site-b"]["keycloak"]["spec"], 3,
        "Keycloak back to its count"
    );
    assert!(
        st["sites"]["site-a"]["clear_requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "nothing cleared on the source"
    );
    // check names the next runbook.
    let mut c = l.runbook();
    c.args(["check", "--json"]);
    let v = check_json(c);
    assert_eq!(
        v["recommended"]["runbook"], "keycloak-26/bring-site-online",
        "{v}"
    );
    let out = kc26(&l, "bring-site-online", &["site=site-b", "source=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
    assert_eq!(l.group_writes(), vec!["RemoveEndpoints", "AddEndpoints"]);
    let b = l.accelerator()["endpoints"][1].clone();
    assert_eq!(b["health"], "HEALTHY", "{b}");
    assert_eq!(b["weight"], 128);
    let after: BTreeSet<String> = l.logins(10).into_iter().collect();
    assert_eq!(after.len(), 2, "both sites serve again");
    let mut c = l.runbook();
    c.args(["check", "--json"]);
    let v = check_json(c);
    assert_eq!(v["health"], "healthy", "{v}");
}

#[test]
fn the_cycle_over_infinispan_16() {
    let l = kc26_lab_on(&[], 16);
    l.logins(6);
    kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(0);
    l.fault("partition");
    l.logins(4);
    l.lift();
    kc26(&l, "synchronize-site", &["site=site-b", "source=site-a"]).expect(0);
    let (a, b) = l.entries_at_once("site-a", "site-b", "authenticationSessions");
    assert_eq!(a, b);
    // Read as 15+ (the container route, not the deprecated cache-managers one), and
    // acted on per cache.
    let requests = l.running().shared.lock().requests.clone();
    let b = &requests["site-b"];
    assert!(b.iter().any(|r| r == "GET /rest/v2/container"), "{b:?}");
    assert!(!b.iter().any(|r| r.contains("cache-managers")), "{b:?}");
    assert!(
        b.iter().any(|r| r
            .starts_with("POST /rest/v2/caches/work/x-site/backups/site-a?action=take-offline")),
        "{b:?}"
    );
    kc26(&l, "bring-site-online", &["site=site-b", "source=site-a"]).expect(0);
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
}

#[test]
fn synchronize_is_refused_while_the_site_is_in_the_endpoint_group() {
    let l = kc26_lab(&[]);
    l.logins(4);
    let out = kc26(&l, "synchronize-site", &["site=site-b", "source=site-a"]).expect(8);
    assert!(
        reason(&out).contains("site-b IS IN THE ENDPOINT GROUP"),
        "{}",
        reason(&out)
    );
    assert!(
        reason(&out).contains("keycloak-26/take-site-offline -p site=site-b"),
        "{}",
        reason(&out)
    );
    unchanged(&l);
}

#[test]
fn taking_offline_the_only_healthy_site_is_refused() {
    let l = kc26_lab(&["nlb-unhealthy:site-a"]);
    l.until("site-a's endpoint is unhealthy", |s| {
        s["accelerator"]["routed_sites"] == json!(["site-b"])
    });
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(8);
    assert!(
        reason(&out).contains("site-a does not serve"),
        "{}",
        reason(&out)
    );
    assert_eq!(l.group_writes(), Vec::<String>::new());
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
}

#[test]
fn an_nlb_tagged_for_another_site_is_an_identity_mismatch_and_nothing_is_done() {
    let l = kc26_lab(&["nlb-site-tag:site-b:site-a"]);
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(8);
    let r = reason(&out);
    assert!(
        r.contains("site-b's NLB") && r.contains("tagged site=site-a"),
        "{r}"
    );
    unchanged(&l);
    // Untagged: what cannot be told is said, and nothing is done either.
    let l = kc26_lab(&["nlb-site-tag:site-b"]);
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(8);
    assert!(
        reason(&out).contains("has no `site` tag"),
        "{}",
        reason(&out)
    );
    unchanged(&l);
}

#[test]
fn an_accelerator_the_account_does_not_have_is_said_and_nothing_is_done() {
    let mut l = kc26_lab(&[]);
    l.edit_env(|d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s]["traffic"]["accelerator"]["name"] = "keycloak-prod".into();
        }
    });
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(8);
    assert!(
        reason(&out).contains("no accelerator named `keycloak-prod`"),
        "{}",
        reason(&out)
    );
    unchanged(&l);
}

#[test]
fn fence_site_removes_the_unreachable_site_and_takes_its_backup_offline_in_the_survivor() {
    let l = kc26_lab(&["partition"]);
    l.logins(4);
    let out = kc26(&l, "fence-site", &["site=site-b", "reporter=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.in_group(), vec!["site-a"]);
    let st = l.state();
    for (c, v) in st["sites"]["site-a"]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"]["site-b"]["status"], "offline", "{c}");
    }
    // The other side's fence finds one endpoint left, and does nothing.
    let out = kc26(&l, "fence-site", &["site=site-a", "reporter=site-b"]).expect(8);
    let r = reason(&out);
    assert!(r.contains("not in the group") || r.contains("only"), "{r}");
    assert_eq!(l.in_group(), vec!["site-a"]);
    // A fenced site is not brought back before it is synchronized.
    l.lift();
    let mut c = l.runbook();
    c.args(["check", "--json"]);
    let v = check_json(c);
    assert_eq!(
        v["recommended"]["runbook"], "keycloak-26/synchronize-site",
        "{v}"
    );
    let out = kc26(&l, "bring-site-online", &["site=site-b", "source=site-a"]).expect(8);
    assert!(reason(&out).contains("fence-site"), "{}", reason(&out));
}

#[test]
fn fence_site_does_nothing_when_the_reporters_own_endpoint_is_unhealthy() {
    let l = kc26_lab(&["partition", "nlb-unhealthy:site-a"]);
    l.until("site-a's endpoint is unhealthy", |s| {
        s["accelerator"]["routed_sites"] == json!(["site-b"])
    });
    let out = kc26(&l, "fence-site", &["site=site-b", "reporter=site-a"]).expect(8);
    assert!(
        reason(&out).contains("the other site's fence acts"),
        "{}",
        reason(&out)
    );
    assert_eq!(l.group_writes(), Vec::<String>::new());
}

#[test]
fn a_concurrent_writer_is_never_overwritten_and_is_named() {
    // Another writer removes site-a (the kept site) after the N-th read of the group:
    // before the guards, between them and the write, or after it. Whatever N, the
    // runbook's own write never empties the group (it refuses instead, naming what
    // changed since its read), and a change it could not prevent is reported.
    let mut named = false;
    for n in 1..=8 {
        let l = kc26_lab(&[&format!("accelerator-writer:site-a:{n}")]);
        let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]);
        let text = format!("{}{}", out.stdout, out.stderr);
        named |= text.contains("removed by another writer: site-a");
        // Our removal can leave the group empty only when the other writer acted
        // between our last read and our write (a race no lock closes: the API has
        // none); then the run does not complete, and says nothing serves.
        let writes = l.accelerator()["writes"].as_array().unwrap().clone();
        for (i, w) in writes.iter().enumerate() {
            if w["operation"] == "RemoveEndpoints" && w["endpoints"] == json!([]) {
                assert!(
                    i > 0
                        && writes[i - 1]["operation"]
                            .as_str()
                            .unwrap()
                            .contains("another writer"),
                    "n={n}: {writes:?}"
                );
                assert_ne!(out.code, 0, "n={n}: an emptied group is no success");
                assert!(text.contains("NOTHING SERVES"), "n={n}: {text}");
            }
        }
        if out.code != 0 {
            let r = reason(&out);
            assert!(
                r.contains("site-a does not serve")
                    || r.contains("would leave no healthy endpoint")
                    || r.contains("would leave no site serving")
                    || r.contains("NOTHING SERVES"),
                "n={n}: {r}\n{text}"
            );
        }
    }
    assert!(
        named,
        "some timing put the other writer between the read and the write, and it was named"
    );
}

#[test]
fn a_busy_endpoint_group_is_waited_out() {
    let l = kc26_lab(&["accelerator-busy:2"]);
    let out = kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.in_group(), vec!["site-a"]);
}

#[test]
fn the_stateless_shape_takes_offline_and_brings_online_without_infinispan() {
    let mut l = kc26_lab(&[]);
    l.edit_env(|d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s].as_mapping_mut().unwrap().remove("infinispan");
        }
    });
    kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(0);
    let out = kc26(&l, "synchronize-site", &["site=site-b", "source=site-a"]).expect(8);
    // Refused before anything: the identity guard finds no Infinispan to prove, and the
    // runbook's own guard says the stateless shape has nothing to synchronize.
    let r = reason(&out);
    assert!(
        r.contains("stateless") || r.contains("has no `infinispan` section"),
        "{r}"
    );
    let out = kc26(&l, "bring-site-online", &["site=site-b", "source=site-a"]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
    let requests = l.running().shared.lock().requests.clone();
    assert!(
        requests
            .get("site-a")
            .into_iter()
            .chain(requests.get("site-b"))
            .flatten()
            .all(|r| !r.starts_with("POST")),
        "no Infinispan call changed anything"
    );
}

/// The plan's Global Accelerator writes, by operation name.
fn planned_writes(l: &InLab, runbook: &str, params: &[&str]) -> BTreeSet<String> {
    let mut c = l.runbook();
    c.args(["plan", &format!("keycloak-26/{runbook}"), "--json"]);
    for p in params {
        c.args(["-p", p]);
    }
    let plan: Value = serde_json::from_str(&run(c).expect(0).stdout).unwrap();
    let mut out = BTreeSet::new();
    for step in plan["steps"].as_array().unwrap() {
        for call in step["calls"].as_array().unwrap() {
            let call = call.as_str().unwrap();
            for op in ["AddEndpoints", "RemoveEndpoints", "UpdateEndpointGroup"] {
                if call.contains(&format!("Global Accelerator {op}(")) {
                    out.insert(op.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn each_runbook_writes_to_the_accelerator_exactly_what_its_plan_lists() {
    let l = kc26_lab(&[]);
    for (rb, params) in [
        ("take-site-offline", vec!["site=site-b", "keep=site-a"]),
        ("synchronize-site", vec!["site=site-b", "source=site-a"]),
        ("bring-site-online", vec!["site=site-b", "source=site-a"]),
    ] {
        let planned = planned_writes(&l, rb, &params);
        let before = l.group_writes().len();
        kc26(&l, rb, &params).expect(0);
        let made: BTreeSet<String> = l.group_writes()[before..].iter().cloned().collect();
        assert_eq!(made, planned, "{rb}");
    }
    l.fault("partition");
    let planned = planned_writes(&l, "fence-site", &["site=site-b", "reporter=site-a"]);
    kc26(&l, "fence-site", &["site=site-b", "reporter=site-a"]).expect(0);
    assert_eq!(planned, ["RemoveEndpoints".to_string()].into());
    assert_eq!(
        l.group_writes().last().map(String::as_str),
        Some("RemoveEndpoints")
    );
}

// ---- crashes at every step of the new runbooks ----

/// Run `runbook` killed at `point`, then resume until done.
fn killed_then_resumed(l: &InLab, runbook: &str, params: &[&str], point: &str, run_id: &str) {
    let mut c = l.runbook();
    c.args(["run", &format!("keycloak-26/{runbook}"), "--yes"])
        .env("FAILPOINTS", point);
    for p in params {
        c.args(["-p", p]);
    }
    let out = run(c);
    assert_eq!(out.code, -1, "{point}: killed\n{}", out.stderr);
    resume_until_done(l, run_id);
}

fn crash_take_offline(point: &str) {
    let l = kc26_lab(&[]);
    killed_then_resumed(
        &l,
        "take-site-offline",
        &["site=site-b", "keep=site-a"],
        point,
        "r-1",
    );
    assert_eq!(l.in_group(), vec!["site-a"], "{point}");
}

/// site-b taken offline and left stale (a partition while logins land on site-a).
fn stale_site_b() -> InLab {
    let l = kc26_lab(&[]);
    l.logins(6);
    kc26(&l, "take-site-offline", &["site=site-b", "keep=site-a"]).expect(0);
    l.fault("partition");
    l.logins(5);
    l.lift();
    l
}

fn synchronized_end_state(l: &InLab, label: &str) {
    for c in CACHES26 {
        let (a, b) = l.entries_at_once("site-a", "site-b", c);
        assert_eq!(a, b, "{label}: {c} equal on both sites");
    }
    let st = l.state();
    assert_eq!(
        st["sites"]["site-b"]["keycloak"]["spec"], 3,
        "{label}: Keycloak back to 3, not 0"
    );
    assert!(
        st["sites"]["site-a"]["clear_requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{label}: nothing cleared on the source"
    );
    for s in ["site-a", "site-b"] {
        for (c, v) in st["sites"][s]["caches"].as_object().unwrap() {
            let other = if s == "site-a" { "site-b" } else { "site-a" };
            assert_eq!(v["backups"][other]["status"], "online", "{label}: {s} {c}");
        }
    }
    assert_eq!(
        l.in_group(),
        vec!["site-a"],
        "{label}: synchronize never touches the accelerator"
    );
}

const CACHES26: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

fn crash_synchronize(point: &str) {
    let l = stale_site_b();
    killed_then_resumed(
        &l,
        "synchronize-site",
        &["site=site-b", "source=site-a"],
        point,
        "r-2",
    );
    synchronized_end_state(&l, point);
}

fn crash_bring_online(point: &str) {
    let l = stale_site_b();
    kc26(&l, "synchronize-site", &["site=site-b", "source=site-a"]).expect(0);
    killed_then_resumed(
        &l,
        "bring-site-online",
        &["site=site-b", "source=site-a"],
        point,
        "r-3",
    );
    l.until("site-b HEALTHY", |s| {
        s["accelerator"]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["health"] == "HEALTHY")
    });
    assert_eq!(l.in_group(), vec!["site-a", "site-b"], "{point}");
}

fn crash_fence(point: &str) {
    let l = kc26_lab(&["partition"]);
    killed_then_resumed(
        &l,
        "fence-site",
        &["site=site-b", "reporter=site-a"],
        point,
        "r-1",
    );
    assert_eq!(l.in_group(), vec!["site-a"], "{point}");
    for (c, v) in l.state()["sites"]["site-a"]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"]["site-b"]["status"], "offline", "{point}: {c}");
    }
}

macro_rules! crash26 {
    ($name:ident, $f:ident, $point:expr) => {
        #[test]
        fn $name() {
            $f($point);
        }
    };
}

crash26!(
    take_offline_killed_before_the_removal,
    crash_take_offline,
    "before-apply=return(remove-from-accelerator)"
);
crash26!(
    take_offline_killed_after_the_removal,
    crash_take_offline,
    "after-apply=return(remove-from-accelerator)"
);
crash26!(
    synchronize_killed_after_scale_down,
    crash_synchronize,
    "after-apply=return(scale-down)"
);
crash26!(
    synchronize_killed_after_scale_down_journaled,
    crash_synchronize,
    "after-journal=return(scale-down)"
);
crash26!(
    synchronize_killed_before_take_offline,
    crash_synchronize,
    "before-apply=return(take-offline)"
);
crash26!(
    synchronize_killed_after_take_offline,
    crash_synchronize,
    "after-apply=return(take-offline)"
);
crash26!(
    synchronize_killed_before_clear,
    crash_synchronize,
    "before-apply=return(clear-caches)"
);
crash26!(
    synchronize_killed_after_clear,
    crash_synchronize,
    "after-apply=return(clear-caches)"
);
crash26!(
    synchronize_killed_after_bring_online,
    crash_synchronize,
    "after-apply=return(bring-online)"
);
crash26!(
    synchronize_killed_after_source_bring_online,
    crash_synchronize,
    "after-apply=return(source-bring-online)"
);
crash26!(
    synchronize_killed_before_push_state,
    crash_synchronize,
    "before-apply=return(push-state)"
);
crash26!(
    synchronize_killed_after_push_state,
    crash_synchronize,
    "after-apply=return(push-state)"
);
crash26!(
    synchronize_killed_after_clear_push_status,
    crash_synchronize,
    "after-apply=return(clear-push-state-status)"
);
crash26!(
    synchronize_killed_before_scale_up,
    crash_synchronize,
    "before-apply=return(scale-up)"
);
crash26!(
    synchronize_killed_after_scale_up,
    crash_synchronize,
    "after-apply=return(scale-up)"
);
crash26!(
    bring_online_killed_before_the_addition,
    crash_bring_online,
    "before-apply=return(add-to-accelerator)"
);
crash26!(
    bring_online_killed_after_the_addition,
    crash_bring_online,
    "after-apply=return(add-to-accelerator)"
);
crash26!(
    fence_killed_before_the_removal,
    crash_fence,
    "before-apply=return(remove-from-accelerator)"
);
crash26!(
    fence_killed_after_the_removal,
    crash_fence,
    "after-apply=return(remove-from-accelerator)"
);
crash26!(
    fence_killed_after_take_offline,
    crash_fence,
    "after-apply=return(take-offline)"
);

#[test]
fn the_keycloak_26_rehearsal_runs_as_written() {
    let block = crate::readme::block_after("procedures", "### The Keycloak 26 procedures");
    let l = kc26_lab(&[]);
    let mut ran = 0;
    for line in block.lines() {
        if crate::readme::run_rehearsal_line(&l, line, &[]).is_some() {
            ran += 1;
        }
    }
    assert_eq!(ran, 7, "every runbook line of the block ran");
    assert_eq!(l.in_group(), vec!["site-a", "site-b"]);
}
