//! What people see: no secret anywhere even when a server echoes it, private files,
//! and a closed or full stdout/stderr never panics a verb (the run ends with its own
//! exit code, its journal intact).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

#[test]
fn a_closed_pipe_or_a_full_disk_on_stdout_never_panics() {
    let l = InLab::start(&[], 0.0);
    // `runbook run switchover --yes 2>&1 | head -5`: the reader goes away early.
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    for _ in 0..5 {
        lines.next().unwrap().unwrap();
    }
    drop(lines);
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the run's own exit code, not a panic (101)"
    );
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    assert_eq!(st["status"], "completed", "the journal is intact: {st}");
    // `runbook history > /dev/full`
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut h = l.runbook();
    h.arg("history").stdout(full);
    let out = h.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // What it was asked to show was lost: said, and not a success.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the output could not be written"),
        "{stderr}"
    );
}

#[test]
fn the_journal_and_reports_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let l = InLab::start(&[], 0.0);
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes"]);
    run(c).expect(0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&l.journal()), 0o700, "the journal directory");
    let report = l.dir.path().join("r-1.md");
    let mut r = l.runbook();
    r.args(["report", "r-1", "-o"]).arg(&report);
    run(r).expect(0);
    assert_eq!(mode(&report), 0o600, "the report");
}

#[test]
fn an_infinispan_password_a_server_echoes_is_masked_everywhere() {
    // A server that answers every request with 500 and echoes the request's
    // Authorization header and the password it was given back in its body.
    let mut l = InLab::start(&[], 0.0);
    let password = l.running().config.password.clone();
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = echo.local_addr().unwrap();
    let pw = password.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in echo.incoming() {
            let Ok(mut s) = conn else { break };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let auth = req
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or("none")
                .to_string();
            let body = format!("ISPN000999: bad request from {auth}; password was {pw}");
            let _ = write!(
                s,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    l.edit_env(|d| {
        d["sites"]["site-b"]["infinispan"]["url"] = format!("http://{addr}").into();
        d["sites"]["site-b"]["infinispan"]["api"] = "v14".into();
    });
    let mut c = l.runbook();
    c.args(["run", "recover-passive-site", "--yes", "-v"]);
    let out = run(c);
    assert_ne!(out.code, 0);
    let basic = {
        let user = &l.running().config.username;
        // RFC 7617: base64 of user:password, computed here with a plain table.
        let input = format!("{user}:{password}");
        let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut o = String::new();
        for ch in input.as_bytes().chunks(3) {
            let n = ch
                .iter()
                .enumerate()
                .fold(0u32, |a, (i, &x)| a | (u32::from(x) << (16 - 8 * i)));
            for i in 0..4 {
                o.push(if i <= ch.len() {
                    t[((n >> (18 - 6 * i)) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        o
    };
    assert!(
        out.stderr.contains("ISPN000999"),
        "the echo was seen: {}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(&password), "the password leaked: {text}");
        assert!(!text.contains(&basic), "its Basic form leaked: {text}");
    }
    let mut r = l.runbook();
    r.args(["report", "r-1", "--format", "json"]);
    let report = run(r).stdout;
    assert!(
        !report.contains(&password) && !report.contains(&basic),
        "{report}"
    );
    // The journal's files themselves.
    std::thread::sleep(Duration::from_millis(100));
    for entry in walk(&l.journal()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&password),
            "{} holds the password",
            entry.display()
        );
        assert!(
            !text.contains(&basic),
            "{} holds its Basic form",
            entry.display()
        );
    }
}

#[test]
fn input_that_is_not_a_regular_file_or_too_large_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let fifo = dir.path().join("fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "x".repeat(5 * 1024 * 1024)).unwrap();
    let started = std::time::Instant::now();
    for file in ["/dev/zero", fifo.to_str().unwrap(), big.to_str().unwrap()] {
        let mut c = runbook(&journal);
        c.args(["validate", file]);
        let out = run(c).expect(2);
        assert!(
            out.stderr.contains("not a regular file")
                || out.stderr.contains("larger than the 4 MiB"),
            "{file}: {}",
            out.stderr
        );
        let mut c = runbook(&journal);
        c.arg("--env").arg(file).args(["plan", "switchover"]);
        let out = run(c).expect(2);
        assert!(
            out.stderr.contains("cannot read environment file"),
            "{file}: {}",
            out.stderr
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "none of them was read forever"
    );
    // A journal path that is a file is an error, not an empty journal.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run({
        let mut c = runbook(&file);
        c.arg("history");
        c
    });
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("it is a file, not a journal directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn shell_completion_is_generated_from_the_command_line_definition() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, says) in [
        ("bash", "_runbook()"),
        ("zsh", "#compdef runbook"),
        ("fish", "complete -c runbook"),
    ] {
        let mut c = runbook(&dir.path().join("j"));
        c.args(["completion", shell]);
        let out = run(c).expect(0);
        assert!(
            out.stdout.contains(says),
            "{shell}: {}",
            &out.stdout[..out.stdout.len().min(200)]
        );
        assert!(
            out.stdout.contains("recover-passive-site") || out.stdout.contains("resume"),
            "{shell}"
        );
    }
}

#[test]
fn serve_disconnects_a_client_that_never_finishes_its_request_head() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--header-timeout",
        "500ms",
    ]);
    let (mut serve, base) = spawn_serve(c);
    let addr = base.trim_start_matches("http://").to_string();
    // Half a request head, then silence (a slowloris client).
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(slow, "GET / HTTP/1.1\r\nHost: {addr}\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(
        read.is_ok() && started.elapsed() < Duration::from_secs(8),
        "the half-sent request was not cut off: {read:?} after {:?}",
        started.elapsed()
    );
    // A whole request is still answered.
    let mut ok = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        ok,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    ok.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let _ = serve.kill();
    let _ = serve.wait();
}
