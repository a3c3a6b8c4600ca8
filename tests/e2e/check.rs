//! `runbook check` against the lab in every state the lab can be put in.

use std::time::Duration;

use crate::support::*;

fn check(l: &InLab) -> (i32, serde_json::Value, String) {
    let mut c = l.runbook();
    c.args(["check", "--json"]);
    let out = run(c);
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    let mut t = l.runbook();
    t.arg("check");
    let text = run(t).stdout;
    (out.code, v, text)
}

/// Let the Route53 checkers observe the current state.
fn settle() {
    std::thread::sleep(Duration::from_millis(150));
}

#[test]
fn healthy() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 7);
    settle();
    let (code, v, text) = check(&l);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["health"], "healthy");
    assert!(v["runbook"].is_null());
    assert!(text.contains("serving: site-a — PRIMARY record"), "{text}");
    assert!(
        text.contains(
            "roles: primary site-a, secondary site-b (from the Route53 failover records)"
        ),
        "{text}"
    );
    assert!(text.contains("HEALTHY"), "{text}");
    assert!(text.contains("sessions=7"), "{text}");
}

#[test]
fn the_verdict_does_not_depend_on_the_primary_parameter() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 5);
    l.lift();
    settle();
    // Told the wrong way round, check still reads the roles from Route53.
    let mut c = l.runbook();
    c.args([
        "check",
        "--json",
        "--primary",
        "site-b",
        "--secondary",
        "site-a",
    ]);
    let out = run(c);
    assert_eq!(out.code, 6, "{}", out.stdout);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["observations"]["roles_from"], "route53");
    assert_eq!(v["observations"]["serving"], "site-a");
    assert_eq!(
        v["runbook"],
        "recover-passive-site -p primary=site-a -p secondary=site-b"
    );
}

#[test]
fn after_a_partition() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 12);
    l.sessions("site-b", 3);
    l.lift();
    settle();
    let (code, v, _) = check(&l);
    assert_eq!(code, 6, "{v}");
    assert_eq!(
        v["runbook"],
        "recover-passive-site -p primary=site-a -p secondary=site-b"
    );
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("site-b diverged from site-a"), "{reason}");
    assert!(reason.contains("sessions: 3 vs 12"), "{reason}");
}

#[test]
fn after_a_switchover() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 4);
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes"]);
    run(c).expect(0);
    l.sessions("site-b", 2);
    settle();
    let (code, v, text) = check(&l);
    assert_eq!(code, 6, "{v}");
    assert_eq!(v["observations"]["serving"], "site-b");
    assert_eq!(
        v["runbook"],
        "recover-passive-site -p primary=site-b -p secondary=site-a"
    );
    assert!(text.contains("serving: site-b — "), "{text}");
    assert!(text.contains("aurora writer: in site-b's zone"), "{text}");
    // The recommended runbook's guards, judged now as its run will judge them.
    assert!(text.contains("its guards now"), "{text}");
    assert!(
        text.contains("holds  passive-site-does-not-serve"),
        "{text}"
    );
    let guards = v["guards"].as_array().expect("guards read");
    assert!(
        // (a guard an earlier step prepares is judged right before its step)
        guards
            .iter()
            .all(|g| g["holds"] == true || g["deferred"].is_string()),
        "the recommended recovery is not refused: {guards:?}"
    );
    // after the resync, switchback is what is left
    let mut c = l.runbook();
    c.args([
        "run",
        "recover-passive-site",
        "-p",
        "primary=site-b",
        "-p",
        "secondary=site-a",
        "--yes",
    ]);
    run(c).expect(0);
    settle();
    let (_, v, _) = check(&l);
    assert_eq!(v["runbook"], "switchback", "{v}");
}

#[test]
fn primary_down() {
    let l = InLab::start(&["site-down:site-a"], 0.0);
    settle();
    let (code, v, _) = check(&l);
    assert_eq!(code, 6, "{v}");
    assert_eq!(
        v["runbook"],
        "failover -p primary=site-a -p secondary=site-b"
    );
    assert_eq!(v["observations"]["serving"], "site-b");
    // after the failover, nothing to run until site-a is repaired
    let mut c = l.runbook();
    c.args(["run", "failover", "--yes"]);
    run(c).expect(0);
    settle();
    let (code, v, _) = check(&l);
    assert_eq!(code, 6);
    assert!(v["runbook"].is_null(), "{v}");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("repair it, then run recover-passive-site and switchback"));
}

#[test]
fn both_sites_down_is_unreachable() {
    let l = InLab::start(&["site-down:site-a", "site-down:site-b"], 0.0);
    settle();
    let (code, v, _) = check(&l);
    assert_eq!(code, 7, "{v}");
    assert_eq!(v["health"], "unreachable");
}
