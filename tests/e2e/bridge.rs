//! The bridge acts from the page (`runbook serve --users`): who may do what, four eyes
//! on a gate before a destructive step, every write journaled with the person and
//! every refused write leaving the journal as it was. The browser half (login, approve
//! under four eyes, abort, in Chromium) is `the_bridge_approves_and_aborts_in_chromium`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// A gate before a destructive step on site-b: four eyes applies.
pub const GATED: &str = r#"
name: gated
params:
  force: { type: bool, default: false }
  force_reason: { type: string, default: "" }
guards:
  - id: target-answers
    title: The wipe's target answers its health check
    probe: http.request
    site: site-b
    with: { url: "{{ sites['site-b'].lb_check_url }}/health" }
    expect: observation.status == 200
    refusal: "the target answered {{ observation.status }}"
    before: [wipe]
steps:
  - id: gate
    site: site-b
    action: manual.confirm
    with: { instructions: "the incident lead says go" }
  - id: wipe
    site: site-b
    action: http.request
    with: { method: POST, url: "{{ site.lb_check_url }}/items/wiped", body: 1 }
"#;

/// A gate before nothing destructive: the driver may pass it.
const PLAIN: &str = r#"
name: plain
steps:
  - id: look
    action: manual.confirm
    with: { instructions: "look at the dashboard" }
"#;

pub struct Bridge {
    pub server: TestServer,
    pub dir: tempfile::TempDir,
    pub journal: PathBuf,
    pub env: PathBuf,
    pub users: PathBuf,
}

fn hash(pw: &str) -> String {
    let mut c = std::process::Command::new(bin());
    c.args(["serve", "--hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Bridge {
    /// r-1: `gated`, halted for a second person; r-2: `plain`, halted at its gate.
    /// Both started by `tester`. Users: tester (operator, approver), bob (approver),
    /// vic (viewer).
    pub fn new() -> Bridge {
        let server = TestServer::start();
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        let env = write(
            dir.path(),
            "env.yaml",
            &format!(
                "sites:\n  site-a:\n    lb_check_url: {0}\n  site-b:\n    lb_check_url: {0}\n",
                server.base()
            ),
        );
        let users = write(
            dir.path(),
            "users.yaml",
            &format!(
                "session_ttl: 10m\nusers:\n  tester:\n    password: \"{}\"\n    roles: [operator, approver]\n  bob:\n    password: \"{}\"\n    roles: [approver]\n  vic:\n    password: \"{}\"\n    roles: [viewer]\n",
                hash("tester-pw"),
                hash("bob-pw"),
                hash("vic-pw")
            ),
        );
        let b = Bridge {
            server,
            dir,
            journal,
            env,
            users,
        };
        for (name, text) in [("gated.yaml", GATED), ("plain.yaml", PLAIN)] {
            let rb = write(b.dir.path(), name, text);
            let mut c = b.cmd();
            c.arg("run").arg(rb).args(["--yes", "--json"]);
            run(c).expect(3);
        }
        b
    }

    pub fn cmd(&self) -> std::process::Command {
        let mut c = runbook(&self.journal);
        c.arg("--env").arg(&self.env);
        c
    }

    pub fn serve(&self) -> (std::process::Child, String) {
        let mut c = self.cmd();
        c.args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(&self.users);
        spawn_serve(c)
    }

    pub fn events(&self, run: &str) -> Vec<Value> {
        let mut c = self.cmd();
        c.args(["journal", "export", "--run", run]);
        run_out(c)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
            .collect()
    }
}

fn run_out(c: std::process::Command) -> String {
    run(c).expect(0).stdout
}

/// One HTTP request on loopback: (status code, headers, body).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// Log in: the session cookie's `name=value`, and the CSRF token the run page's forms
/// carry.
pub fn login(base: &str, user: &str, pw: &str) -> (String, String) {
    let (code, head, _) = http(
        base,
        "POST",
        "/login",
        &[],
        &format!("user={user}&password={pw}"),
    );
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        head.contains("HttpOnly") && head.contains("SameSite=Strict"),
        "{head}"
    );
    let (_, _, page) = http(base, "GET", "/runs/r-2", &[("Cookie", &cookie)], "");
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .map(|r| r.split('"').next().unwrap().to_string())
        .unwrap_or_default();
    (cookie, csrf)
}

#[test]
fn four_eyes_holds_at_the_terminal_and_can_be_turned_off() {
    let b = Bridge::new();
    let mut st = b.cmd();
    st.args(["status", "r-1", "--json"]);
    let v: Value = serde_json::from_str(&run(st).stdout).unwrap();
    let reason = v["halt"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("`gate` comes before `wipe`, which is destructive, on site `site-b`")
            && reason.contains("four eyes"),
        "{v}"
    );
    // The run's own driver cannot pass it; nothing is journaled.
    let before = b.events("r-1").len();
    let mut own = b.cmd();
    own.args(["resume", "r-1", "--approve", "gate"]);
    let out = run(own).expect(2);
    assert!(
        out.stderr.contains("second person's approval (four eyes)"),
        "{}",
        out.stderr
    );
    assert_eq!(b.events("r-1").len(), before);
    assert_eq!(
        b.server
            .requests()
            .iter()
            .filter(|r| r.contains("wiped"))
            .count(),
        0
    );
    // Someone else can.
    let mut other = b.cmd();
    other
        .env("RUNBOOK_OPERATOR", "bob")
        .args(["resume", "r-1", "--approve", "gate", "--json"]);
    run(other).expect(0);
    let approved = b
        .events("r-1")
        .into_iter()
        .find(|e| e["event"] == "operator_approved")
        .unwrap();
    assert_eq!(approved["by"]["operator"], "bob");
    assert_eq!(
        b.server
            .requests()
            .iter()
            .filter(|r| r.contains("wiped"))
            .count(),
        1
    );
    // A gate before nothing destructive: the driver passes it, as before.
    let mut plain = b.cmd();
    plain.args(["resume", "r-2", "--approve", "look"]);
    run(plain).expect(0);

    // `approvals: {four_eyes: false}`: the gate halts for anyone, as a plain gate.
    let off = write(
        b.dir.path(),
        "off.yaml",
        &format!(
            "approvals:\n  four_eyes: false\nsites:\n  site-a:\n    lb_check_url: {0}\n  site-b:\n    lb_check_url: {0}\n",
            b.server.base()
        ),
    );
    let rb = write(b.dir.path(), "gated.yaml", GATED);
    let mut c = runbook(&b.journal);
    c.arg("--env")
        .arg(&off)
        .arg("run")
        .arg(&rb)
        .args(["--yes", "--json"]);
    let halted = run(c).expect(3);
    assert!(!halted.stdout.contains("four eyes"), "{}", halted.stdout);
    let mut again = runbook(&b.journal);
    again
        .arg("--env")
        .arg(&off)
        .args(["resume", "r-3", "--approve", "gate"]);
    run(again).expect(0);
    // A typo in the section is placed.
    let bad = write(
        b.dir.path(),
        "bad.yaml",
        "approvals:\n  for_eyes: false\nsites: {}\n",
    );
    let mut v = runbook(&b.journal);
    v.arg("--env").arg(&bad).arg("plan").arg(&rb);
    let out = run(v);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("for_eyes"), "{}", out.stderr);
}

#[test]
fn writes_need_a_login_the_role_and_the_pages_token_and_refusals_journal_nothing() {
    let b = Bridge::new();
    let (mut serve, base) = b.serve();
    let before = (b.events("r-1").len(), b.events("r-2").len());
    // No login: pages send to the login form, writes get 401.
    let (code, head, _) = http(&base, "GET", "/runs/r-1", &[], "");
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("location: /login"), "{head}");
    let (code, _, _) = http(&base, "POST", "/runs/r-2/abort", &[], "reason=x&csrf=");
    assert_eq!(code, 401);
    let (code, _, _) = http(&base, "GET", "/runs/r-1/events", &[], "");
    assert_eq!(code, 401);
    // A wrong password.
    let (code, _, _) = http(&base, "POST", "/login", &[], "user=bob&password=nope");
    assert_eq!(code, 401);
    // A name guessed at five times is locked out, the right password or not (an
    // unknown name as a known one: which names exist is not told).
    for _ in 0..5 {
        let (code, _, _) = http(&base, "POST", "/login", &[], "user=mallory&password=guess");
        assert_eq!(code, 401);
    }
    let (code, _, body) = http(&base, "POST", "/login", &[], "user=mallory&password=guess");
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("too many failed logins"), "{body}");
    // A viewer reads but may not write.
    let (vic, _) = login(&base, "vic", "vic-pw");
    let (code, _, page) = http(&base, "GET", "/runs/r-1", &[("Cookie", &vic)], "");
    assert_eq!(code, 200);
    assert!(page.contains("Logged in as <strong>vic</strong>"), "{page}");
    assert!(
        !page.contains("/abort") && !page.contains("/step/approve"),
        "a viewer is offered no action: {page}"
    );
    let (code, _, body) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Cookie", &vic)],
        "reason=x&csrf=",
    );
    assert_eq!(code, 403);
    assert!(body.contains("needs the operator role"), "{body}");
    // An approver is not an operator: no abort.
    let (bob, bob_csrf) = login(&base, "bob", "bob-pw");
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Cookie", &bob)],
        &format!("reason=x&csrf={bob_csrf}"),
    );
    assert_eq!(code, 403);
    // The right role, without the page's token, or from another site's page.
    let (tester, csrf) = login(&base, "tester", "tester-pw");
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Cookie", &tester)],
        "reason=x&csrf=forged",
    );
    assert_eq!(code, 403);
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Cookie", &tester), ("Origin", "http://evil.example")],
        &format!("reason=x&csrf={csrf}"),
    );
    assert_eq!(code, 403);
    // The driver's own approval of the gated step: refused, four eyes.
    let (code, _, body) = http(
        &base,
        "POST",
        "/runs/r-1/step/approve",
        &[("Cookie", &tester)],
        &format!("step=gate&confirm=site-b&csrf={csrf}"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("four eyes"), "{body}");
    // bob, with the wrong site typed.
    let (code, _, body) = http(
        &base,
        "POST",
        "/runs/r-1/step/approve",
        &[("Cookie", &bob)],
        &format!("step=gate&confirm=site-a&csrf={bob_csrf}"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("type `site-b`"), "{body}");
    assert_eq!(
        (b.events("r-1").len(), b.events("r-2").len()),
        before,
        "nothing refused was journaled"
    );

    // Now as it should be: bob approves, tester aborts r-2 with a reason.
    let (code, head, _) = http(
        &base,
        "POST",
        "/runs/r-1/step/approve",
        &[("Cookie", &bob)],
        &format!("step=gate&confirm=site-b&csrf={bob_csrf}"),
    );
    assert_eq!(code, 303, "{head}");
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Cookie", &tester)],
        &format!("reason=not+needed+after+all&csrf={csrf}"),
    );
    assert_eq!(code, 303);
    // bob is no operator: he cannot resume it; tester resumes it from the page, and
    // this server drives it (it was given the environment file), as tester.
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-1/resume",
        &[("Cookie", &bob)],
        &format!("csrf={bob_csrf}"),
    );
    assert_eq!(code, 403);
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-1/resume",
        &[("Cookie", &tester)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(code, 303);
    eventually(
        "the run resumed from the page completes",
        std::time::Duration::from_secs(60),
        || {
            let mut st = b.cmd();
            st.args(["status", "r-1", "--json"]);
            let v: Value = serde_json::from_str(&run(st).stdout).map_err(|e| e.to_string())?;
            if v["status"] == "completed" {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );
    let resumed = b
        .events("r-1")
        .into_iter()
        .find(|e| e["event"] == "resumed")
        .unwrap();
    assert_eq!(resumed["by"]["operator"], "tester");
    assert_eq!(
        b.server
            .requests()
            .iter()
            .filter(|r| r.contains("wiped"))
            .count(),
        1
    );
    let _ = serve.kill();
    let _ = serve.wait();
    let approved = b
        .events("r-1")
        .into_iter()
        .find(|e| e["event"] == "operator_approved")
        .unwrap();
    assert_eq!(approved["by"]["operator"], "bob");
    let aborted = b
        .events("r-2")
        .into_iter()
        .find(|e| e["event"] == "aborted")
        .unwrap();
    assert_eq!(aborted["by"]["operator"], "tester");
    assert_eq!(aborted["reason"], "not needed after all");
    let mut verify = b.cmd();
    verify.args(["journal", "verify"]);
    run(verify).expect(0);
}

#[test]
fn a_bearer_token_acts_without_a_session_and_a_bad_users_file_is_placed() {
    let b = Bridge::new();
    let mut nt = std::process::Command::new(bin());
    nt.args(["serve", "--new-token"]);
    let out = run(nt).expect(0);
    let token = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let kept = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert!(kept.starts_with("sha256:") && !kept.contains(&token));
    let users = write(
        b.dir.path(),
        "bot.yaml",
        &format!("users:\n  pager:\n    tokens: [\"{kept}\"]\n    roles: [operator]\n"),
    );
    let mut c = b.cmd();
    c.args(["serve", "--listen", "127.0.0.1:0", "--users"])
        .arg(&users);
    let (mut serve, base) = spawn_serve(c);
    let auth = format!("Bearer {token}");
    let (code, _, _) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Authorization", "Bearer wrong")],
        "reason=x",
    );
    assert_eq!(code, 401);
    let (code, _, body) = http(
        &base,
        "POST",
        "/runs/r-2/abort",
        &[("Authorization", &auth)],
        "reason=paged+out",
    );
    assert_eq!(code, 303, "{body}");
    let _ = serve.kill();
    let _ = serve.wait();
    let aborted = b
        .events("r-2")
        .into_iter()
        .find(|e| e["event"] == "aborted")
        .unwrap();
    assert_eq!(aborted["by"]["operator"], "pager");

    let bad = write(
        b.dir.path(),
        "bad.yaml",
        "users:\n  ann:\n    password: hunter2\n    roles: [viewer]\n",
    );
    let mut c = b.cmd();
    c.args(["serve", "--listen", "127.0.0.1:0", "--users"])
        .arg(&bad);
    let out = run(c).expect(2);
    assert!(
        out.stderr
            .contains("users.ann.password is not an Argon2 hash"),
        "{}",
        out.stderr
    );
}

/// The browser half: Chromium logs in, sees four eyes refuse the driver, approves as
/// another person with the site typed, aborts with a reason.
#[test]
fn the_bridge_approves_and_aborts_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed"
    );
    let b = Bridge::new();
    let (mut serve, base) = b.serve();
    let out_dir = crate::browser::artifacts();
    let (ok, said) =
        crate::browser::node_script("bridge.mjs", &[base.as_ref(), out_dir.as_os_str()]);
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(ok, "the browser checks failed:\n{said}");
    eprintln!("{said}");
    let approved = b
        .events("r-1")
        .into_iter()
        .find(|e| e["event"] == "operator_approved")
        .unwrap();
    assert_eq!(approved["by"]["operator"], "bob");
    let aborted = b
        .events("r-2")
        .into_iter()
        .find(|e| e["event"] == "aborted")
        .unwrap();
    assert_eq!(
        (
            aborted["by"]["operator"].as_str(),
            aborted["reason"].as_str()
        ),
        (Some("tester"), Some("the bridge called it off"))
    );
}
