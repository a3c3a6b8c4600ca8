//! `runbook serve` in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (`tests/browser/run_page.mjs`), against a lab run in progress. The
//! page shows the steps appear and complete without a reload; a halted run shows its
//! reason and the command that resumes it; the HTML report parses, draws its chart and
//! asks for nothing. Screenshots are kept in `target/browser-artifacts/`.
//!
//! Needs what the README's test command installs: Debian's `chromium` and
//! `npm ci` in `tests/browser`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;

const GATE: &str = r#"
name: gate-only
steps:
  - id: gate
    title: Wait for the bridge's go
    action: manual.confirm
    with: { instructions: "the incident lead says go" }
"#;

/// Ask `status` until the run is still running (exit 11) and says `seen`.
fn until_running(status: impl Fn() -> std::process::Command, seen: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = run(status());
        if out.code == 11 && out.stdout.contains(seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw `{seen}` while running: {}{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

pub fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run one of `tests/browser`'s scripts with node: whether every check held, and
/// what it printed (stdout, then stderr).
pub fn node_script(script: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = std::process::Command::new("node")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .arg(script)
        .args(args)
        .output()
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_run_page_follows_a_lab_run_live_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (bash scripts/test.sh installs it)"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core is needed: `npm ci` in tests/browser (bash scripts/test.sh does it)"
    );
    // Slow calls, so that the run is seen in progress.
    let l = InLab::start(&["latency:120ms"], 0.0);
    let rb = write(l.dir.path(), "gate.yaml", GATE);
    let mut gate = l.runbook();
    gate.args(["run"]).arg(&rb).arg("--json");
    let halted = run(gate).expect(3);
    assert_eq!(halted.json()["run_id"], "r-1");

    let mut serve = l.runbook();
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut server, base) = spawn_serve(serve);
    // Refuses another address unless told to.
    let mut wide = l.runbook();
    wide.args(["serve", "--listen", "0.0.0.0:0"]);
    let refused = run(wide).expect(2);
    assert!(
        refused.stderr.contains("--allow-remote"),
        "{}",
        refused.stderr
    );

    let mut switchover = l.runbook();
    switchover.args(["run", "switchover", "--yes", "--json"]);
    let driver = spawn(switchover);
    until_running(
        || {
            let mut st = l.runbook();
            st.args(["status", "r-2", "--json"]);
            st
        },
        "\"status\":\"running\"",
        30,
    );
    let out_dir = artifacts();
    let report = out_dir.join("report.html");
    let (ok, said) = node_script(
        "run_page.mjs",
        &[
            base.as_ref(),
            "r-2".as_ref(),
            "r-1".as_ref(),
            report.as_os_str(),
            out_dir.as_os_str(),
        ],
    );
    let driven = wait_out(driver);
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok, "the browser checks failed:\n{said}");
    assert_eq!(driven.code, 0, "{}", driven.stderr);
    assert!(out_dir.join("run-page.png").exists());
    eprintln!("{said}");
}

#[test]
fn the_html_report_is_one_file_that_refers_to_nothing_outside() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "r.yaml",
        r#"
name: tiny
params: { base: { type: string } }
steps:
  - id: put
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/x", body: 1 }
  - id: items
    for_each: { items: [a, b] }
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/{{ item }}", body: 2 }
"#,
    );
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .args(["-p", &format!("base={}", server.base()), "--yes"]);
    run(c).expect(0);
    let mut r = runbook(&j);
    r.args(["report", "r-1", "--format", "html"]);
    let html = run(r).expect(0).stdout;
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for outside in [
        "src=", "href=", "url(", "@import", "<link", "<script", "<iframe", "<img",
    ] {
        assert!(!html.contains(outside), "the report has `{outside}`");
    }
    // Every element it opens, it closes (the tags a browser would otherwise guess).
    for tag in [
        "table", "tr", "td", "th", "svg", "div", "h1", "h2", "code", "span",
    ] {
        let opened =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let closed = html.matches(&format!("</{tag}>")).count();
        assert_eq!(opened, closed, "<{tag}> opened {opened}, closed {closed}");
    }
    assert!(html.contains("<rect"), "the chart has bars");
    let mut j_out = runbook(&j);
    j_out.args(["report", "r-1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&run(j_out).expect(0).stdout).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["steps"][1]["items"].as_array().unwrap().len(), 2);
}

const LONG: &str = r#"
name: long
title: A long wait between quick steps
params: { site: { type: string, default: site-a } }
steps:
  - id: first
    title: A quick step
    action: wait
    with: { duration: 10ms }
  - id: soak
    title: Let the caches settle
    action: wait
    with: { duration: 60s }
    timeout: 2m
  - id: after
    action: wait
    with: { duration: 10ms }
  - id: last
    action: wait
    with: { duration: 10ms }
"#;

#[test]
fn the_run_page_lists_pending_steps_and_ticks_at_1400_px_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "long.yaml", LONG);
    let journal = dir.path().join("j");
    let mut c = runbook(&journal);
    c.arg("run").arg(&rb).arg("--yes");
    let mut driver = spawn(c);
    let mut serve = runbook(&journal);
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut server, base) = spawn_serve(serve);
    until_running(
        || {
            let mut st = runbook(&journal);
            st.args(["status", "r-1"]);
            st
        },
        "running    soak",
        20,
    );
    let out_dir = artifacts();
    let (ok, said) = node_script(
        "tick_page.mjs",
        &[base.as_ref(), "r-1".as_ref(), out_dir.as_os_str()],
    );
    let _ = driver.kill();
    let _ = driver.wait();
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok, "the browser checks failed:\n{said}");
    eprintln!("{said}");
}
