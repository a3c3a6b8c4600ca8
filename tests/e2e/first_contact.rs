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

/// `runbook` as a person types it: no `--journal`, no `--env`, contexts read from
/// `contexts` (never the tester's own).
fn bare(contexts: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.env("RUNBOOK_CONTEXTS", contexts)
        .env("RUNBOOK_OPERATOR", "tester")
        .env("NO_COLOR", "1")
        .env("XDG_DATA_HOME", contexts.with_file_name("data"))
        .env_remove("RUNBOOK_ENV")
        .env_remove("RUNBOOK_JOURNAL")
        .env_remove("RUNBOOK_CONTEXT")
        .env_remove("RUNBOOK_PACK")
        .stdin(std::process::Stdio::null());
    c
}

/// Issue 35.7: a context names an environment file and its journal; without `--env`,
/// the plan says which context it is read in and reads that context's journal; a
/// context beside `--env` is refused as ambiguous; a mistyped name is suggested.
#[test]
fn a_named_context_picks_the_environment_and_journal_and_every_plan_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/fixtures/production-env.yaml"
    );
    let prod = dir.path().join("prod.yaml");
    let stage = dir.path().join("stage.yaml");
    std::fs::copy(fixture, &prod).unwrap();
    std::fs::copy(fixture, &stage).unwrap();
    let contexts = dir.path().join("contexts.yaml");
    let prod_journal = dir.path().join("prod-journal");
    let mut c = bare(&contexts);
    c.args(["context", "use", "prod", "--env"])
        .arg(&prod)
        .arg("--journal")
        .arg(&prod_journal);
    run(c).expect(0);
    let mut c = bare(&contexts);
    c.args(["context", "use", "stage", "--env"]).arg(&stage);
    let out = run(c).expect(0);
    assert!(out.stderr.contains("now in use"), "{}", out.stderr);

    // The current context (stage) is named on the plan, with its file.
    let mut c = bare(&contexts);
    c.args(["plan", "switchover"]);
    let out = run(c).expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("in:"))
        .unwrap_or_default();
    assert!(
        line.contains("context `stage`") && line.contains(&stage.display().to_string()),
        "{}",
        out.stdout
    );
    // --context names another for one command; its journal is the one read.
    let mut c = bare(&contexts);
    c.args(["--context", "prod", "plan", "switchover"]);
    let out = run(c).expect(0);
    assert!(
        out.stdout.contains("context `prod` (--context)")
            && out.stdout.contains(&prod_journal.display().to_string()),
        "{}",
        out.stdout
    );
    let mut c = bare(&contexts);
    c.args(["--context", "prod", "history"]);
    let out = run(c).expect(0);
    assert!(
        out.stderr.contains(&prod_journal.display().to_string()),
        "history names the context's journal: {}",
        out.stderr
    );
    // Ambiguous: a context and --env name two deployments.
    let mut c = bare(&contexts);
    c.args(["--context", "prod", "--env"])
        .arg(&stage)
        .args(["plan", "switchover"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("name two deployments"),
        "{}",
        out.stderr
    );
    // --env alone sets the context aside: no context line.
    let mut c = bare(&contexts);
    c.arg("--env").arg(&prod).args(["plan", "switchover"]);
    let out = run(c).expect(0);
    assert!(!out.stdout.contains("context `"), "{}", out.stdout);
    // A mistyped name.
    let mut c = bare(&contexts);
    c.args(["context", "use", "prdo"]);
    let out = run(c).expect(2);
    assert!(out.stderr.contains("did you mean `prod`"), "{}", out.stderr);
    // The list marks the one in use; unset leaves none.
    let mut c = bare(&contexts);
    c.args(["context", "list"]);
    let out = run(c).expect(0);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("* stage")),
        "{}",
        out.stdout
    );
    let mut c = bare(&contexts);
    c.args(["context", "unset"]);
    run(c).expect(0);
    // No context and no --env: said as such, not read from somewhere else.
    let mut c = bare(&contexts);
    c.args(["plan", "switchover"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("no environment file was given"),
        "{}",
        out.stderr
    );
}

/// Issue 35.7: a writer meets a journal another process drives a run in: at once it is
/// refused (exit 5); with `--lock-timeout` it waits, says so, and goes on once the
/// journal is free.
#[test]
fn a_busy_journal_is_waited_for_up_to_the_lock_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let mut driver = runbook(&journal);
    driver.args([
        "run",
        "switchover",
        "--lab",
        "--yes",
        "-q",
        "--time-scale",
        "0.2",
    ]);
    let child = spawn(driver);
    eventually(
        "the run holds the journal",
        std::time::Duration::from_secs(30),
        || {
            let mut c = runbook(&journal);
            c.args(["resume", "r-1"]);
            let out = run(c);
            if out.code == 5 {
                Ok(())
            } else {
                Err(format!("exit {}: {}", out.code, out.stderr))
            }
        },
    );
    let mut c = runbook(&journal);
    c.args(["--lock-timeout", "2m", "resume", "r-1"]);
    let out = run(c);
    assert!(out.stderr.contains("waiting up to 2m"), "{}", out.stderr);
    // It waited the run out: r-1 completed, so there is nothing to resume.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("r-1 is completed"), "{}", out.stderr);
    wait_out(child).expect(0);
}

/// Issue 35.8: a step's duration is one figure everywhere: the progress line as it
/// ends, the summary at the end of the run, and `status` afterwards (all the journal's,
/// from the step's start to its end; the guards judged before it are not its time).
#[test]
fn a_steps_duration_is_the_same_in_the_progress_line_the_summary_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let mut c = runbook(&journal);
    c.args(["run", "recover-passive-site", "--lab", "--yes"]);
    let out = run(c).expect(0);
    let figure = |line: &str, marker: &str| -> Option<(String, String)> {
        let rest = line.trim_start().strip_prefix(marker)?.trim_start();
        let mut w = rest.split_whitespace();
        let (step, took) = (w.next()?, w.next()?);
        (!step.contains('[')).then(|| (step.to_string(), took.to_string()))
    };
    let progress: Vec<_> = out.stderr.lines().filter_map(|l| figure(l, "✓")).collect();
    let summary: Vec<_> = out
        .stderr
        .lines()
        .filter_map(|l| figure(l, "done"))
        .collect();
    assert!(progress.len() >= 7, "{}", out.stderr);
    assert_eq!(progress, summary, "{}", out.stderr);
    let mut s = runbook(&journal);
    s.args(["status", "r-1"]);
    let status = run(s).expect(0);
    let later: Vec<_> = status
        .stdout
        .lines()
        .chain(status.stderr.lines())
        .filter_map(|l| figure(l, "done"))
        .collect();
    assert_eq!(later, summary, "{}", status.stdout);
}

/// Issue 35.8: `run` does not print the whole plan again: the header (what it moves or
/// removes), one line per guard and per step, and where the full plan is; `-v` shows
/// every call as `plan` does.
#[test]
fn run_shows_the_plan_in_brief_and_whole_with_v() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args(["run", "recover-passive-site", "--lab", "--yes"]);
    let out = run(c).expect(0);
    let before = out.stderr.split("--lab: the deployment").next().unwrap();
    assert!(before.contains("REMOVES DATA"), "{before}");
    assert!(
        before.contains("3/7 clear-caches  [infinispan.clear-caches on site-b] DESTRUCTIVE"),
        "{before}"
    );
    assert!(
        before.contains("⛨ builtin-clear-caches-clear-caches"),
        "{before}"
    );
    assert!(!before.contains("calls:"), "{before}");
    assert!(
        before.contains("`runbook plan recover-passive-site`, or `run -v`"),
        "{before}"
    );
    let mut c = runbook(&dir.path().join("j2"));
    c.args(["-v", "run", "recover-passive-site", "--lab", "--yes"]);
    let out = run(c).expect(0);
    assert!(out.stderr.contains("calls:   POST"), "{}", out.stderr);
}

/// Issue 35.8: forgetting --env is said once, the same way by plan, run and check, with
/// what to give (and no note about a deployment it never read); history says whose
/// journal it read.
#[test]
fn a_forgotten_env_is_one_message_and_history_names_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.yaml");
    for verb in [
        &["plan", "switchover"][..],
        &["run", "switchover", "--yes"],
        &["check"],
    ] {
        let mut c = bare(&contexts);
        c.args(verb);
        let out = run(c).expect(2);
        assert!(
            out.stderr
                .contains("no environment file was given: give --env FILE")
                && out.stderr.contains("runbook context use NAME --env FILE"),
            "{verb:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{verb:?}: {}", out.stderr);
    }
    let mut c = bare(&contexts);
    c.arg("history");
    let out = run(c).expect(0);
    assert!(
        out.stderr
            .contains("the per-user default: no --env, --journal or context names another"),
        "{}",
        out.stderr
    );
}

/// Issue 35.8: a time scale that is not a number of 0 or more is refused at once.
#[test]
fn the_labs_time_scale_refuses_what_is_not_a_number_of_zero_or_more() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["-1", "NaN", "inf", "fast"] {
        let mut c = runbook(&dir.path().join("j"));
        c.arg("lab")
            .arg(format!("--time-scale={bad}"))
            .arg("--dir")
            .arg(dir.path().join("lab"));
        let out = run(c);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(out.stderr.contains("--time-scale"), "{bad}: {}", out.stderr);
    }
}

/// Issue 35.8: a run halted at a manual gate says the command that approves it.
#[test]
fn a_manual_gates_next_line_names_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "gated.yaml",
        "name: gated\ntitle: A gate\nsteps:\n  - id: gate\n    title: a person looks first\n    action: manual.confirm\n    with: { instructions: \"look at the dashboard\" }\n  - id: after\n    title: then a pause\n    action: wait\n    with: { duration: 1ms }\n",
    );
    let mut c = runbook(&dir.path().join("j"));
    c.arg("run").arg(&file).arg("--yes");
    let out = run(c).expect(3);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("runbook resume r-1 --approve gate"), "{all}");
    let mut c = runbook(&dir.path().join("j"));
    c.args(["resume", "r-1", "--approve", "gate"]);
    run(c).expect(0);
}

/// Issue 34's leftover: the plan says that a gate before a destructive or
/// traffic-moving step waits for a second person (as the run then does), and says
/// nothing of it before a step that only reads.
#[test]
fn the_plan_says_when_a_gate_waits_for_a_second_person() {
    let dir = tempfile::tempdir().unwrap();
    let book = |method: &str| {
        format!("name: gated\ntitle: A gate\nsteps:\n  - id: gate\n    title: a person looks first\n    action: manual.confirm\n    with: {{ instructions: \"look at the dashboard\" }}\n  - id: call\n    title: then a call\n    action: http.request\n    with: {{ method: {method}, url: \"http://127.0.0.1:9/x\" }}\n")
    };
    let file = write(dir.path(), "post.yaml", &book("POST"));
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan").arg(&file);
    let out = run(c).expect(0);
    assert!(
        out.stdout.contains(
            "then a SECOND person approves it (four eyes: the next step `call` is destructive"
        ),
        "{}",
        out.stdout
    );
    let file = write(dir.path(), "get.yaml", &book("GET"));
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan").arg(&file);
    let out = run(c).expect(0);
    assert!(out.stdout.contains("waits for a person"), "{}", out.stdout);
    assert!(!out.stdout.contains("SECOND person"), "{}", out.stdout);
}
