//! `runbook report`: the Markdown a post-incident review pastes into its ticket, as a
//! snapshot (times, durations, ids of processes and hosts, ports and hashes filtered
//! out), for a run that met a failure and a retry, a fan-out, a gate, an operator's
//! approval and a resume.

use crate::support::*;

const REVIEWED: &str = r#"
name: reviewed
title: A run worth a review
params: { base: { type: string } }
steps:
  - id: configure
    title: Configure, through one failure
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/mode", body: on }
    retry: { policy: fixed, max_attempts: 3, delay: 10ms }
  - id: per-cache
    title: One call per cache
    for_each: { items: [sessions, work], concurrency: 1 }
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/{{ item }}", body: 1 }
  - id: gate
    title: The incident lead says go
    action: manual.confirm
    with: { instructions: "confirm on the bridge" }
  - id: after
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/after", body: 2 }
"#;

fn filtered(text: &str) -> String {
    let mut settings = insta::Settings::clone_current();
    for (re, to) in [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[UTC]"),
        (r"\+?\d+(\.\d+)? (ms|s|min)( \d+ s)?", "[duration]"),
        (r"\(\d+ checks\)", "([n] checks)"),
        (r"127\.0\.0\.1:\d+", "[addr]"),
        (r"sha256 `[0-9a-f]{64}`", "sha256 `[hash]`"),
        (
            r"\| tester \| [^|]+ \| \d+ \|",
            "| tester | [host] | [pid] |",
        ),
        (r"tester@[A-Za-z0-9._-]+", "tester@[host]"),
        (r"\(/[^)]*reviewed\.yaml\)", "([path])"),
    ] {
        settings.add_filter(re, to);
    }
    settings.bind(|| insta::assert_snapshot!("report_markdown", text));
    String::new()
}

#[test]
fn the_markdown_report_reads_as_a_review() {
    let server = TestServer::start();
    server.with(|s| {
        s.fail_next.insert("PUT /config/mode".into(), 1);
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "reviewed.yaml", REVIEWED);
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"]);
    run(c).expect(3);
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "gate"]);
    run(r).expect(0);
    let mut rep = runbook(&j);
    rep.args(["report", "r-1"]);
    let md = run(rep).expect(0).stdout;
    // What a review needs, before the snapshot says how it looks.
    for needed in [
        "| approved | tester |",
        "| resumed | tester |",
        "attempt 1: PUT",
        "answered 500",
        "`per-cache[sessions]`",
        "`per-cache[work]`",
        "(decision)",
        "halted (waiting for approval) at `gate`",
        // The summary on top: what happened, who resumed, the failed attempts.
        "- completed after ",
        "of it halted, waiting for a person)",
        "(waiting for approval); resumed by tester@",
        "- 1 failed attempt: `configure` ×1",
    ] {
        assert!(md.contains(needed), "missing `{needed}`:\n{md}");
    }
    let out = dir.path().join("review.md");
    let mut to_file = runbook(&j);
    to_file.args(["report", "r-1", "-o"]).arg(&out);
    run(to_file).expect(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), md);
    filtered(&md);
}
