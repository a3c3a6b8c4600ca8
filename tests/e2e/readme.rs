//! The README's rehearsal walkthrough, run line by line: `runbook lab` as its first
//! block starts it, then every line of the second block, with the exit code its
//! comment states (`exit N`, else 0) and the run ids it names. So the README's commands
//! and run ids cannot drift from what the binary does. Lines that run until stopped
//! (`status --watch`, `serve`) are left out; `curl` lines are made with a plain HTTP
//! request; `export` and `ADMIN=$(...)` set the environment as a shell would.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The `sh` code blocks of the README's "## Rehearse" section.
fn rehearse_blocks() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Rehearse").expect("a Rehearse section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section[..end].lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => b.push(line.to_string()),
            _ => {}
        }
    }
    blocks
}

/// The first `sh` block after `heading` in a documentation page (`doc(page)`): the
/// rehearsal lines the tests run as written.
pub fn block_after(page: &str, heading: &str) -> String {
    let text = doc(page);
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("docs/{page}.md has no `{heading}`"));
    text[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("no sh block after `{heading}`"))
        .to_string()
}

/// One line of a docs rehearsal block, when it is a `runbook` command other than
/// `runbook lab` (the test's own lab stands for that one): run against `l` with `before`
/// ahead of its words, its exit code asserted against the one its comment states. Its
/// arguments, or `None` for any other line.
pub fn run_rehearsal_line(l: &InLab, line: &str, before: &[&str]) -> Option<String> {
    let (cmd, code) = split_comment(line);
    let args = cmd.strip_prefix("runbook ")?;
    if args.starts_with("lab ") {
        return None;
    }
    let mut c = l.runbook();
    c.args(before).args(args.split_whitespace());
    let out = run(c);
    assert_eq!(
        out.code, code,
        "docs/procedures.md line `{line}`\n{}\n{}",
        out.stdout, out.stderr
    );
    Some(args.to_string())
}

/// A command line and the exit code its comment states.
pub fn split_comment(line: &str) -> (String, i32) {
    let (cmd, comment) = match line.find("  #").or_else(|| line.find(" #")) {
        Some(i) if !line.trim_start().starts_with('#') => (&line[..i], &line[i..]),
        _ => (line, ""),
    };
    let code = comment
        .split("exit ")
        .nth(1)
        .and_then(|t| t.chars().next())
        .and_then(|c| c.to_digit(10))
        .map_or(0, |d| d as i32);
    (cmd.trim().to_string(), code)
}

fn words(cmd: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    cmd.split_whitespace()
        .map(|w| {
            let mut w = w.to_string();
            for (k, v) in vars {
                w = w.replace(&format!("${k}"), v);
            }
            w
        })
        .collect()
}

fn http(method: &str, url: &str, body: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn the_rehearsal_walkthrough_runs_as_written() {
    let blocks = rehearse_blocks();
    assert_eq!(blocks.len(), 2, "the lab's block and the walkthrough's");
    let dir = tempfile::tempdir().unwrap();
    let rehearsal = dir.path().join("rehearsal");
    let here = |w: String| w.replace("/tmp/rehearsal", &rehearsal.display().to_string());
    // Terminal 1: the lab, as written.
    let lab_line = blocks[0]
        .iter()
        .find(|l| l.starts_with("runbook lab"))
        .unwrap();
    let mut lab = Command::new(bin());
    lab.args(
        words(&split_comment(lab_line).0, &BTreeMap::new())
            .into_iter()
            .skip(1)
            .map(here),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut lab = lab.spawn().unwrap();
    wait_for(&rehearsal.join("env.yaml"));
    // Terminal 2: every line.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut ran = 0;
    for line in &blocks[1] {
        let (cmd, code) = split_comment(line);
        if cmd.is_empty()
            || cmd.starts_with('#')
            || cmd.contains("--watch")
            || cmd == "runbook serve"
        {
            continue;
        }
        let cmd = here(cmd);
        if let Some(assignments) = cmd.strip_prefix("export ") {
            for a in assignments.split_whitespace() {
                let (k, v) = a.split_once('=').unwrap();
                vars.insert(k.to_string(), v.to_string());
            }
            continue;
        }
        if cmd.starts_with("ADMIN=$(awk '/admin_url/") {
            let env: serde_yaml::Value =
                serde_yaml::from_str(&std::fs::read_to_string(&vars["RUNBOOK_ENV"]).unwrap())
                    .unwrap();
            vars.insert(
                "ADMIN".into(),
                env["lab"]["admin_url"].as_str().unwrap().to_string(),
            );
            continue;
        }
        let w = words(&cmd, &vars);
        if w[0] == "curl" {
            let method = w
                .iter()
                .position(|x| x == "-X")
                .map_or("GET", |i| w[i + 1].as_str());
            let url = w.iter().find(|x| x.starts_with("http://")).unwrap();
            let body = w
                .iter()
                .position(|x| x == "-d")
                .map_or("", |i| w[i + 1].as_str());
            let status = http(method, url, body);
            assert!((200..300).contains(&status), "{cmd}: {status}");
            continue;
        }
        assert_eq!(
            w[0], "runbook",
            "an unknown command in the walkthrough: {cmd}"
        );
        let mut c = Command::new(bin());
        c.args(&w[1..])
            .current_dir(dir.path())
            .env_remove("RUNBOOK_JOURNAL");
        for (k, v) in &vars {
            c.env(k, v);
        }
        let out = run(c);
        assert_eq!(
            out.code, code,
            "README line `{line}`: exit {} (the README says {code})\nstdout:\n{}\nstderr:\n{}",
            out.code, out.stdout, out.stderr
        );
        ran += 1;
    }
    assert!(
        ran >= 12,
        "every runbook line of the walkthrough ran ({ran})"
    );
    // The run ids it names are the runs it made.
    let mut h = Command::new(bin());
    h.args(["history", "--json"]);
    for (k, v) in &vars {
        h.env(k, v);
    }
    let history = run(h).expect(0).stdout;
    for (id, status) in [
        ("r-1", "completed"),
        ("r-2", "refused"),
        ("r-3", "completed"),
        ("r-4", "completed"),
    ] {
        assert!(
            history.contains(&format!("\"run_id\":\"{id}\""))
                || history.contains(&format!("\"run_id\": \"{id}\"")),
            "{id} in {history}"
        );
        assert!(history.contains(status), "{status} in {history}");
    }
    assert!(
        dir.path().join("r-3.html").exists(),
        "the HTML report was written"
    );
    let _ = lab.kill();
    let _ = lab.wait();
}
