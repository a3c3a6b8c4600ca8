//! `runbook plan NAME` for each built-in runbook, snapshot-tested (insta) against a
//! production-like environment file: the exact calls, effect classes, preconditions
//! and postconditions an operator reads before running.

use crate::support::*;

fn plan(name: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/fixtures/production-env.yaml");
    let mut c = runbook(&dir.path().join("j"));
    c.args(["plan", name]).arg("--env").arg(&env).args(extra);
    let out = run(c).expect(0);
    assert!(!dir.path().join("j").exists(), "plan wrote nothing");
    assert!(
        !out.stdout.contains("{{") && !out.stdout.contains("{%"),
        "every template is rendered (an operator reads names, not templates):\n{}",
        out.stdout
    );
    out.stdout
}

#[test]
fn plan_failover() {
    insta::assert_snapshot!(plan("failover", &[]));
}

#[test]
fn plan_switchover() {
    insta::assert_snapshot!(plan("switchover", &[]));
}

#[test]
fn plan_recover_passive_site() {
    insta::assert_snapshot!(plan("recover-passive-site", &[]));
}

#[test]
fn plan_switchback() {
    insta::assert_snapshot!(plan("switchback", &[]));
}

#[test]
fn plan_recover_passive_site_keycloak_25() {
    insta::assert_snapshot!(plan(
        "recover-passive-site",
        &[
            "-p",
            "caches=actionTokens,authenticationSessions,loginFailures,work",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a"
        ]
    ));
}
