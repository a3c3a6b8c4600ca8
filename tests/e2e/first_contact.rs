//! First contact (issue 35): mistakes a new user makes are named as what they are,
//! with the exit code of invalid input (2), before anything is done.

use crate::support::*;

/// A journal URL with no host is a configuration mistake (exit 2), not an
/// unreachable database (exit 10).
#[test]
fn a_malformed_journal_url_is_invalid_input() {
    for url in [
        "postgres://ops@/journal",
        "postgres://ops@db:notaport/journal",
    ] {
        let mut c = runbook(std::path::Path::new(url));
        c.arg("history");
        let out = run(c);
        assert_eq!(out.code, 2, "{url}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("journal URL"), "{url}: {}", out.stderr);
    }
}

/// A mistyped runbook or parameter name is answered with the closest known one.
#[test]
fn a_mistyped_runbook_or_parameter_gets_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args(["plan", "swichover"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("did you mean `switchover`?"),
        "{}",
        out.stderr
    );
    let mut c = runbook(&dir.path().join("j"));
    c.args(["plan", "switchover", "-p", "secondry=site-a"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("did you mean `secondary`?"),
        "{}",
        out.stderr
    );
}

/// One lost answer on a read (a 503 on Infinispan's REST: on the identity probe's
/// `GET .../cache-managers/default`, or on whichever read meets it first) is tried
/// again, never a refusal.
#[test]
fn one_lost_answer_on_a_read_does_not_refuse_the_run() {
    for fault in [
        "http-5xx-burst:1:site-b:/cache-managers/default",
        "http-5xx-burst:2:site-b",
    ] {
        let l = InLab::start(&[], 0.0);
        let f = write(
            l.dir.path(),
            "read.yaml",
            "name: read\ntitle: read\nsteps:\n  - id: status\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n",
        );
        l.fault(fault);
        let mut c = l.runbook();
        c.arg("run").arg(&f).args(["--yes", "--json"]);
        let out = run(c);
        assert_eq!(out.code, 0, "{fault}: {}{}", out.stdout, out.stderr);
    }
}

/// A fan-out step's guards are shown once when they hold for its first item, not
/// again for each of the next (they are still judged and journaled for every item).
#[test]
fn a_fan_out_shows_each_holding_guard_once() {
    let l = InLab::start(&[], 0.0);
    let mut c = l.runbook();
    c.args(["run", "recover-passive-site", "--yes"]);
    let out = run(c).expect(0);
    let shown = out
        .stderr
        .lines()
        .filter(|l| l.contains("guard `builtin-clear-caches-clear-caches`"))
        .count();
    assert_eq!(shown, 1, "{}", out.stderr);
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    assert_eq!(
        st["steps"]["clear-caches"]["items"]
            .as_object()
            .unwrap()
            .len(),
        8
    );
}

/// A wrong password in the environment file: one verdict and one exit code (2) from
/// `check`, `plan --live` and `run`, and no refused run fills the history.
#[test]
fn a_wrong_password_is_one_configuration_verdict_everywhere() {
    let mut l = InLab::start(&[], 0.0);
    let wrong = l.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    l.edit_env(|d| {
        d["sites"]["site-b"]["infinispan"]["auth"]["password_file"] =
            wrong.display().to_string().into();
    });
    for args in [
        vec!["check"],
        vec!["plan", "recover-passive-site", "--live"],
        vec!["run", "recover-passive-site", "--yes"],
        vec!["run", "switchover", "--yes"],
    ] {
        let mut c = l.runbook();
        c.args(&args);
        let out = run(c);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains("MISCONFIGURED"), "{args:?}: {text}");
        assert!(
            text.contains("the user or password is wrong"),
            "{args:?}: {text}"
        );
    }
    let mut h = l.runbook();
    h.args(["history", "--json"]);
    let out = run(h);
    assert!(
        !out.stdout.contains("\"run_id\""),
        "no run journaled: {}",
        out.stdout
    );
}
