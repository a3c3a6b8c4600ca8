//! Bad input gets a clear error naming file, line, column and step, and exit code 2.

use crate::support::*;

fn validate(text: &str) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "rb.yaml", text);
    let mut c = runbook(&dir.path().join("j"));
    c.arg("validate").arg(&f);
    let out = run(c);
    // paths differ per run: keep what follows the file name
    Out {
        code: out.code,
        stdout: out.stdout,
        stderr: out.stderr.replace(&f.display().to_string(), "rb.yaml"),
    }
}

#[track_caller]
fn has(out: &Out, line: &str) {
    assert!(
        out.stderr.lines().any(|l| l == line),
        "missing line:\n{line}\nin:\n{}",
        out.stderr
    );
}

#[test]
fn guards_are_validated_with_their_positions() {
    let out = validate(
        r#"name: guarded
params:
  site: { type: string, default: site-a }
guards:
  - id: no-such-step
    probe: route53.serving-site
    expect: observation.serving != params.site
    before: [later]
  - id: writes
    probe: http.request
    with: { method: POST, url: "http://x" }
    expect: observation.status == 200
  - id: no-observation
    expect: observation.x == 1
steps:
  - id: one
    action: wait
    with: { duration: 0s }
"#,
    )
    .expect(2);
    has(&out, "rb.yaml:5:3: a runbook with guards declares the override: `force` (bool, default false) and `force_reason` (string) parameters");
    has(&out, "rb.yaml:8:14: guard `no-such-step` names step `later` in `before`, which is not a step of this runbook (steps: one)");
    has(&out, "rb.yaml:10:12: guard `writes` probes with `http.request`, which is not read-only: a guard only reads");
    assert!(
        out.stderr.contains(
            "rb.yaml:14:13: unresolved reference `observation.x`: `observation` exists only in"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn meaning_errors_name_line_column_and_step() {
    let out = validate(
        r#"name: bad
params:
  n: { type: int, default: nope }
steps:
  - id: one
    action: http.request
    with: { url: "http://x/{{ params.missing }}", colour: red }
  - id: one
    action: infinispan.clear
  - id: three
    action: wait
    with: { duration: 5 parsecs }
    timeout: soon
  - id: four
    action: http.request
    with: { url: "{{ steps.three.outputs.x }}{{ steps.later.outputs.y }}{{ item }}" }
  - id: later
    action: http.request
    with: { url: "http://x" }
"#,
    )
    .expect(2);
    has(
        &out,
        r#"rb.yaml:3:28: default of parameter `n` is "nope", not of type int"#,
    );
    has(&out, "rb.yaml:7:18: unresolved reference `params.missing`: no parameter `missing` (declared: n) (step `one`)");
    has(&out, "rb.yaml:7:59: unknown argument `colour` for action `http.request` (it takes: method, url, body, expect_status, probe_url) (step `one`)");
    has(&out, "rb.yaml:8:9: duplicate step id `one` (step `one`)");
    assert!(
        // Every action this build knows, in order (the list grows with each vendor).
        out.stderr.contains("rb.yaml:9:13: unknown action `infinispan.clear` (known: accelerator.add-site, accelerator.remove-site, accelerator.serving-sites, aurora.failover, ")
            && out.stderr.contains(", infinispan.clear-caches, ")
            && out.stderr.contains(", wait) (step `one`)"),
        "{}",
        out.stderr
    );
    has(
        &out,
        r#"rb.yaml:12:23: argument `duration` of `wait` must be a duration, got "5 parsecs" (write e.g. `30s`, `5m`, `250ms`) (step `three`)"#,
    );
    has(&out, "rb.yaml:13:14: bad duration `soon`: expected number at 0 (write e.g. `30s`, `5m`, `250ms`) (step `three`)");
    has(&out, "rb.yaml:16:18: unresolved reference `item`: `item` exists only in a step with `for_each` (step `four`)");
    has(&out, "rb.yaml:16:18: unresolved reference `steps.later.outputs.y`: no step `later` runs before this one (step `four`)");
    has(&out, "rb.yaml:16:18: unresolved reference `steps.three.outputs.x`: step `three` (`wait`) has no output `x` (it records: nothing) (step `four`)");
}

#[test]
fn unknown_keys_wrong_types_and_syntax_errors_are_placed() {
    let out = validate(
        "name: bad2\nsteps:\n  - id: one\n    action: http.request\n    wiht: { url: x }\n",
    )
    .expect(2);
    assert!(
        out.stderr
            .starts_with("rb.yaml:5:5: steps[0]: unknown field `wiht`, expected one of `id`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(step `one`)"), "{}", out.stderr);
    let out = validate("name: bad3\nsteps:\n  - id: one\n    action: http.request\n    with: { url: \"{{ params.x \" }\n").expect(2);
    has(&out, "rb.yaml:5:18: template error: syntax error: unexpected end of input, expected end of variable block (step `one`)");
    let out = validate("name: bad4\nsteps:\n  - id: one\n    action: wait\n    with: { duration: 1s }\n    retry: { policy: sometimes }\n").expect(2);
    assert!(
        out.stderr.contains("unknown variant `sometimes`"),
        "{}",
        out.stderr
    );
    let out = validate("name: x\nsteps: []\n").expect(2);
    has(&out, "rb.yaml:2:8: a runbook needs at least one step");
    let out = validate("name: x\nsteps:\n  - id: a\n    action: wait\n    with: {}\n").expect(2);
    has(
        &out,
        "rb.yaml:5:11: action `wait` needs argument `duration` (how long, e.g. `90s`) (step `a`)",
    );
}

#[test]
fn a_good_runbook_validates_and_a_directory_is_checked_whole() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.yaml", WORKLOAD);
    let mut c = runbook(&dir.path().join("j"));
    c.arg("validate").arg(dir.path());
    let out = run(c).expect(0);
    assert!(
        out.stdout.contains("ok (workload, 5 steps)"),
        "{}",
        out.stdout
    );
    write(dir.path(), "bad.yaml", "name: x\n");
    let mut c = runbook(&dir.path().join("j"));
    c.arg("validate").arg(dir.path());
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("1 of 2 runbook files invalid"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_parameters_and_environment_files_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan")
        .arg(&rb)
        .args(["-p", "base=x", "-p", "nope=1"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr
            .contains("runbook `workload` has no parameter `nope` (it has: base, pause)"),
        "{}",
        out.stderr
    );
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan").arg(&rb);
    let out = run(c).expect(2);
    assert!(
        out.stderr
            .contains("parameter `base` is required: pass -p base=..."),
        "{}",
        out.stderr
    );
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan")
        .arg(&rb)
        .args(["-p", "base=x", "-p", "pause=forever"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr
            .contains("parameter `pause`: `forever` is not of type duration"),
        "{}",
        out.stderr
    );
    let env = write(
        dir.path(),
        "env.yaml",
        "sites:\n  site-a:\n    lb_check_url: x\nsitez: {}\n",
    );
    let mut c = runbook(&dir.path().join("j"));
    c.arg("plan")
        .arg(&rb)
        .arg("--env")
        .arg(&env)
        .args(["-p", "base=x"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("env.yaml:4:1: unknown field `sitez`"),
        "{}",
        out.stderr
    );
    let mut c = runbook(&dir.path().join("j"));
    c.args(["plan", "no-such-runbook"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("no runbook `no-such-runbook`"),
        "{}",
        out.stderr
    );
    let mut c = runbook(&dir.path().join("j"));
    c.args(["resume", "banana"]);
    let out = run(c).expect(2);
    assert!(
        out.stderr.contains("`banana` is not a run id"),
        "{}",
        out.stderr
    );
}

/// `--help` lists the exit codes from the code itself (`Code::ALL`); the reference
/// page's table must list exactly those, none missing and none made up.
#[test]
fn help_and_the_cli_page_list_every_exit_code() {
    let mut c = runbook(std::path::Path::new("/nonexistent"));
    c.arg("--help");
    let out = run(c).expect(0);
    let listing = out
        .stdout
        .split("Exit codes")
        .nth(1)
        .expect("--help has Exit codes");
    let from_help: Vec<u8> = listing
        .lines()
        .filter_map(|l| {
            // A code's line is `NN  meaning`; clap wraps long meanings onto lines of
            // their own.
            let (n, rest) = l.trim_start().split_once("  ")?;
            (!rest.is_empty()).then_some(n.parse::<u8>().ok()?)
        })
        .collect();
    assert!(from_help.len() >= 13, "--help lists the codes: {listing}");
    let page = doc("cli");
    let table = page.split("### Exit codes").nth(1).unwrap();
    let mut from_page: Vec<u8> = table
        .lines()
        .skip_while(|l| !l.starts_with("| 0 |"))
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    from_page.sort_unstable();
    let mut help_sorted = from_help.clone();
    help_sorted.sort_unstable();
    assert_eq!(
        from_page, help_sorted,
        "docs/cli.md's exit code table against --help"
    );
}

#[test]
fn show_json_and_version_name_what_a_script_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args(["show", "recover-passive-site", "--json"]);
    let out = run(c).expect(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["name"], "recover-passive-site");
    let guards: Vec<&str> = v["guards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        guards[..2],
        ["builtin-site-identity", "builtin-cache-list"],
        "{guards:?}"
    );
    let clear = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "clear-caches")
        .unwrap();
    assert_eq!(clear["effect"], "destructive", "{clear}");
    let caches = v["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "caches")
        .unwrap();
    assert_eq!(caches["unique"], true);
    let mut c = runbook(&dir.path().join("j"));
    c.arg("--version");
    let out = run(c).expect(0);
    assert!(
        out.stdout.starts_with("runbook ") && out.stdout.contains("(commit "),
        "{}",
        out.stdout
    );
}

#[test]
fn a_site_the_start_cannot_know_is_refused_at_load() {
    // The run's sites are locked before its first step: a site named by an earlier
    // step's output (or a fan-out's item) would be acted on unlocked.
    let out = validate(
        r#"
name: late-site
steps:
  - id: find
    action: http.request
    with: { url: "http://127.0.0.1:1/which" }
  - id: act
    site: "{{ steps.find.outputs.body.site }}"
    action: http.request
    with: { method: PUT, url: "http://127.0.0.1:1/x", body: 1 }
"#,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    has(&out, "rb.yaml:8:11: `site` reads `steps.find.outputs.body.site`, which the run does not know when it starts: a run's sites are locked before its first step, so `site` may read only parameters and the environment (e.g. `{{ params.secondary }}`) (step `act`)");
}
