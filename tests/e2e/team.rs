//! Team mode: the journal in PostgreSQL, shared by several processes (as by several
//! machines), with fenced site leases. Against the server the README's test command
//! starts (`scripts/pg.sh`; `RUNBOOK_TEST_PG`, `RUNBOOK_TEST_PGPASSWORD`), each test in a
//! database of its own; one test starts a server of its own to stop and restart it.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Two effects on the site, a pause between them to act in.
const TEAM: &str = r#"
name: team
params:
  site: { type: string, default: site-a }
  pause: { type: string, default: 3s }
steps:
  - id: first
    site: "{{ params.site }}"
    action: http.request
    with: { method: PUT, url: "{{ site.lb_check_url }}/config/first-{{ site.name }}", body: 1 }
  - id: pause
    action: wait
    with: { duration: "{{ params.pause }}" }
  - id: second
    site: "{{ params.site }}"
    action: http.request
    with: { method: PUT, url: "{{ site.lb_check_url }}/config/second-{{ site.name }}", body: 2 }
"#;

struct Team {
    server: TestServer,
    dir: tempfile::TempDir,
    url: String,
    pw: String,
    rb: std::path::PathBuf,
    env: std::path::PathBuf,
}

impl Team {
    fn new() -> Team {
        let (url, pw) = server_url();
        Team::on(&url, &pw)
    }

    fn on(server_url: &str, pw: &str) -> Team {
        let server = TestServer::start();
        let dir = tempfile::tempdir().unwrap();
        let rb = write(dir.path(), "team.yaml", TEAM);
        let env = write(
            dir.path(),
            "env.yaml",
            &format!(
                "sites:\n  site-a:\n    lb_check_url: {0}\n  site-b:\n    lb_check_url: {0}\n",
                server.base()
            ),
        );
        Team {
            url: fresh_db_on(server_url, pw),
            pw: pw.to_string(),
            server,
            dir,
            rb,
            env,
        }
    }

    /// `runbook --journal URL --env ENV ARGS` as another process (another machine:
    /// nothing shared but the URL).
    fn cmd(&self, ttl: &str, args: &[&str]) -> std::process::Command {
        let mut c = runbook(std::path::Path::new(&self.url));
        c.env("PGPASSWORD", &self.pw)
            .args(["--env"])
            .arg(&self.env)
            .args(["--lease-ttl", ttl])
            .args(args);
        c
    }

    fn run(&self, ttl: &str, site: &str, pause: &str) -> std::process::Command {
        let mut c = self.cmd(ttl, &["run"]);
        c.arg(&self.rb).args([
            "-p",
            &format!("site={site}"),
            "-p",
            &format!("pause={pause}"),
            "--yes",
            "--json",
        ]);
        c
    }

    fn status(&self, run: &str) -> Value {
        let out = run_cmd(self.cmd("30s", &["status", run, "--json"]));
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
    }

    /// Wait until run `run` is at step `step` (its start journaled).
    fn wait_for_step(&self, run: &str, step: &str, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = self.status(run);
            if st["current"] == step {
                return;
            }
            if let Ok(Some(s)) = child.try_wait() {
                panic!("the driver ended ({s}) before step `{step}`: {st}");
            }
            assert!(Instant::now() < deadline, "never reached `{step}`: {st}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn puts(&self, key: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| *r == &format!("PUT /config/{key}"))
            .count()
    }

    /// Every text column of the journal's tables, for looking for secrets.
    fn tables_text(&self) -> String {
        let mut c = admin(&self.url.replace("?sslmode=disable", ""), &self.pw);
        let mut all = String::new();
        for t in [
            "runbook_events",
            "runbook_runs",
            "runbook_sites",
            "runbook_meta",
        ] {
            for row in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
                all.push_str(row.get::<_, &str>(0));
            }
        }
        all
    }
}

fn run_cmd(c: std::process::Command) -> Out {
    run(c)
}

fn signal(child: &Child, sig: i32) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on a child process id we own; no memory is touched.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0, "signal {sig}");
}

#[test]
fn runs_on_two_sites_proceed_at_once_and_a_held_site_is_refused_naming_its_driver() {
    let t = Team::new();
    let mut a = spawn(t.run("30s", "site-a", "3s"));
    t.wait_for_step("r-1", "pause", &mut a);
    // Same site, another process: refused, naming the run, its operator, its host and
    // when its lease expires; it leaves no run behind.
    let refused = run_cmd(t.run("30s", "site-a", "0s")).expect(5);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    for needed in [
        "site `site-a` is held by run r-1 (team, driven by tester on",
        &host,
        "its lease expires in",
    ] {
        assert!(
            refused.stderr.contains(needed),
            "{needed}: {}",
            refused.stderr
        );
    }
    // Another site proceeds while r-1 is still driven.
    let b = spawn(t.run("30s", "site-b", "0s"));
    let b = wait_out(b).expect(0);
    assert_eq!(b.json()["run_id"], "r-2", "the refused run took no id");
    assert!(a.try_wait().unwrap().is_none(), "r-1 was still running");
    wait_out(a).expect(0);
    let history = run_cmd(t.cmd("30s", &["history", "--json"])).expect(0);
    let runs: Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 1));
    assert_eq!((t.puts("first-site-b"), t.puts("second-site-b")), (1, 1));
    assert!(
        !t.tables_text().contains(&t.pw),
        "the password is in the journal"
    );
    assert!(!refused.stderr.contains(&t.pw) && !b.stderr.contains(&t.pw));
}

#[test]
fn a_killed_driver_is_taken_over_once_its_lease_expires() {
    let t = Team::new();
    let mut a = spawn(t.run("2s", "site-a", "3s"));
    t.wait_for_step("r-1", "pause", &mut a);
    let first_pid = a.id();
    a.kill().unwrap();
    let _ = a.wait();
    // Its lease still runs: nobody may take the run over yet.
    let early = run_cmd(t.cmd("2s", &["resume", "r-1", "--json"])).expect(5);
    assert!(
        early
            .stderr
            .contains("run r-1 is being driven by tester on")
            && early.stderr.contains("its lease expires in"),
        "{}",
        early.stderr
    );
    std::thread::sleep(Duration::from_millis(2200));
    let out = run_cmd(t.cmd("2s", &["resume", "r-1", "--json"])).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 1));
    // The journal says who took over, from where, after whom.
    let mut c = admin(&t.url.replace("?sslmode=disable", ""), &t.pw);
    let rows = c
        .query(
            "SELECT event FROM runbook_events WHERE run_id = 1 AND event LIKE '%\"resumed\"%'",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let resumed: Value = serde_json::from_str(rows[0].get(0)).unwrap();
    assert_eq!(resumed["took_over_from"]["pid"], first_pid, "{resumed}");
    assert_ne!(resumed["by"]["pid"], first_pid);
    // And `history`, from any machine, says so.
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let history = run_cmd(t.cmd("2s", &["history"])).expect(0);
    assert!(
        history.stdout.contains(&format!("by tester@{host}"))
            && history
                .stdout
                .contains(&format!("took over: tester@{host} (after tester@{host})")),
        "{}",
        history.stdout
    );
}

#[test]
fn a_stopped_driver_is_fenced_after_a_take_over_and_does_nothing_more() {
    let t = Team::new();
    let mut a = spawn(t.run("2s", "site-a", "4s"));
    t.wait_for_step("r-1", "pause", &mut a);
    signal(&a, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2300));
    // B takes over and completes while A is stopped.
    let out = run_cmd(t.cmd("2s", &["resume", "r-1", "--json"])).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let after_take_over = t.server.requests().len();
    signal(&a, libc::SIGCONT);
    let a = wait_out(a).expect(5);
    assert!(
        a.stderr.contains("no longer holds its sites") && a.stderr.contains("took the run over"),
        "{}",
        a.stderr
    );
    assert_eq!(
        t.server.requests().len(),
        after_take_over,
        "the fenced driver did nothing after the take-over"
    );
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 1));
    assert_eq!(t.status("r-1")["status"], "completed");
}

/// A PostgreSQL server of the test's own, to stop and restart.
struct OwnServer {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    script: std::path::PathBuf,
    url: String,
    pw: String,
}

impl OwnServer {
    fn start() -> OwnServer {
        OwnServer::start_with(None)
    }

    /// With `tls`: a directory with server.crt and server.key; TLS connections only.
    fn start_with(tls: Option<&std::path::Path>) -> OwnServer {
        let tmp = tempfile::tempdir().unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let dir = tmp.path().join("pg");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script).arg("start").arg(&dir);
        if let Some(t) = tls {
            cmd.env("PG_TLS_FROM", t);
        }
        let started = cmd.output().unwrap();
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        OwnServer {
            url: String::from_utf8_lossy(&started.stdout).trim().to_string(),
            pw: std::fs::read_to_string(dir.join("password"))
                .unwrap()
                .trim()
                .to_string(),
            _tmp: tmp,
            dir,
            script,
        }
    }

    fn ctl(&self, what: &str) {
        let s = std::process::Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(s.success(), "pg.sh {what}");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

#[test]
fn postgresql_stopped_and_restarted_mid_run_costs_no_effect_twice() {
    let pg = OwnServer::start();
    let t = Team::on(&pg.url, &pg.pw);
    let mut a = spawn(t.run("20s", "site-a", "2s"));
    t.wait_for_step("r-1", "pause", &mut a);
    pg.ctl("stop");
    std::thread::sleep(Duration::from_millis(1500));
    pg.ctl("restart");
    let out = wait_out(a);
    let status = t.status("r-1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 1));
}

#[test]
fn postgresql_gone_past_the_lease_stops_the_driver_before_any_effect() {
    let pg = OwnServer::start();
    let t = Team::on(&pg.url, &pg.pw);
    let mut a = spawn(t.run("2s", "site-a", "1s"));
    t.wait_for_step("r-1", "pause", &mut a);
    pg.ctl("stop");
    // Down for longer than the lease: the driver gives up, fenced, having done nothing.
    let out = wait_out(a);
    // Its own exit code: the journal is unavailable (not another process's refusal).
    assert_eq!(out.code, 10, "{}", out.stderr);
    assert!(
        out.stderr.contains("could not be reached"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&pg.pw));
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 0));
    pg.ctl("restart");
    // Anyone resumes it once the lease has expired; the second effect happens once.
    std::thread::sleep(Duration::from_millis(500));
    let resumed = run_cmd(t.cmd("2s", &["resume", "r-1", "--json"])).expect(0);
    assert_eq!(resumed.json()["status"], "completed");
    assert_eq!((t.puts("first-site-a"), t.puts("second-site-a")), (1, 1));
}

#[test]
fn a_sled_journal_copies_into_postgresql_once() {
    let t = Team::new();
    let sled = t.dir.path().join("laptop");
    for site in ["site-a", "site-b"] {
        let mut c = runbook(&sled);
        c.arg("--env").arg(&t.env).arg("run").arg(&t.rb).args([
            "-p",
            &format!("site={site}"),
            "-p",
            "pause=0s",
            "--yes",
        ]);
        run(c).expect(0);
    }
    let copy = |c: &Team| {
        let mut cmd = runbook(&sled);
        cmd.env("PGPASSWORD", &c.pw)
            .args(["journal", "copy", "--from"])
            .arg(&sled)
            .args(["--to", &c.url]);
        run(cmd)
    };
    let first = copy(&t).expect(0);
    assert!(first.stdout.contains("copied 2 runs"), "{}", first.stdout);
    let again = copy(&t).expect(0);
    assert!(
        again.stdout.contains("copied 0 runs (0 events)")
            && again.stdout.contains("2 already there"),
        "{}",
        again.stdout
    );
    let from_db = run_cmd(t.cmd("30s", &["history", "--json"])).expect(0);
    let mut from_sled = runbook(&sled);
    from_sled.args(["history", "--json"]);
    let from_sled = run(from_sled).expect(0);
    assert_eq!(
        serde_json::from_str::<Value>(&from_db.stdout).unwrap(),
        serde_json::from_str::<Value>(&from_sled.stdout).unwrap()
    );
    assert_eq!(t.status("r-2")["steps"], {
        let mut c = runbook(&sled);
        c.args(["status", "r-2", "--json"]);
        serde_json::from_str::<Value>(&run(c).stdout).unwrap()["steps"].clone()
    });
    // A new run in the database follows the copied ids.
    let next = run_cmd(t.run("30s", "site-a", "0s")).expect(0);
    assert_eq!(next.json()["run_id"], "r-3");
}

#[test]
fn status_watch_from_another_machine_follows_the_run_to_its_end() {
    let t = Team::new();
    let mut a = spawn(t.run("30s", "site-a", "3s"));
    t.wait_for_step("r-1", "pause", &mut a);
    let watch = spawn(t.cmd("30s", &["status", "r-1", "--watch", "--json"]));
    wait_out(a).expect(0);
    let out = wait_out(watch).expect(0);
    let states: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        states
            .iter()
            .any(|s| s["current"] == "pause" && s["status"] == "running"),
        "{}",
        out.stdout
    );
    assert_eq!(states.last().unwrap()["status"], "completed");
    assert_eq!(
        states.last().unwrap()["steps"]["second"]["status"],
        "succeeded"
    );
}

/// A CA, and a certificate it signed for 127.0.0.1 (server.crt, server.key, ca.pem).
pub fn certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "journal test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "journal-db");
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

#[test]
fn tls_is_verified_as_sslmode_says() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let pg = OwnServer::start_with(Some(certs.path()));
    let base = pg.url.clone();
    let history = |query: &str| {
        let url = format!("{base}?{query}");
        let mut c = runbook(std::path::Path::new(&url));
        c.env("PGPASSWORD", &pg.pw).args(["history", "--json"]);
        run(c)
    };
    // Verified against the CA given: connects (and creates the schema over TLS).
    let ca = certs.path().join("ca.pem");
    let ok = history(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // Not signed by a root it trusts: refused at once, saying why, not retried as an
    // unreachable server.
    let t0 = Instant::now();
    let untrusted = history("sslmode=verify-full");
    assert_ne!(untrusted.code, 0);
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "a certificate error is not retried"
    );
    // Without TLS, this server takes no connection.
    let plain = history("sslmode=disable");
    assert_ne!(plain.code, 0);
    assert!(
        plain.stderr.contains("no encryption") || plain.stderr.contains("pg_hba"),
        "{}",
        plain.stderr
    );
    for out in [&ok, &untrusted, &plain] {
        assert!(!out.stderr.contains(&pg.pw) && !out.stdout.contains(&pg.pw));
    }
}

/// A plain HTTP GET on loopback: the status line and the body.
fn get(base: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn the_live_page_serves_a_database_journal_read_only() {
    let t = Team::new();
    let mut a = spawn(t.run("30s", "site-a", "3s"));
    t.wait_for_step("r-1", "pause", &mut a);
    let (mut serve, base) = spawn_serve(t.cmd("30s", &["serve", "--listen", "127.0.0.1:0"]));
    let (status, index) = get(&base, "/");
    assert!(status.contains("200"), "{status}");
    assert!(
        index.contains(r#"<a href="/runs/r-1">r-1</a>"#) && index.contains("tester@"),
        "{index}"
    );
    let (_, page) = get(&base, "/runs/r-1");
    assert!(page.contains(r#"id="run-status">running<"#), "{page}");
    assert!(
        page.contains(r#"id="current">current step: <code>pause</code>"#),
        "{page}"
    );
    // Nothing on the page changes a run: there is no route that is not a GET.
    let addr = base.trim_start_matches("http://").to_string();
    let post = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "POST /runs/r-1 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        all.lines().next().unwrap_or_default().to_string()
    };
    assert!(post.contains("405"), "{post}");
    wait_out(a).expect(0);
    let (_, done) = get(&base, "/runs/r-1");
    assert!(done.contains(r#"id="run-status">completed<"#), "{done}");
    let (_, md) = get(&base, "/runs/r-1/report.md");
    assert!(md.starts_with("# Run r-1: team — completed"), "{md}");
    let _ = serve.kill();
    let _ = serve.wait();
}

#[test]
fn the_environment_files_journal_names_the_database_when_no_flag_does() {
    let t = Team::new();
    let env_text = std::fs::read_to_string(&t.env).unwrap();
    let env = write(
        t.dir.path(),
        "team-env.yaml",
        &format!("journal: \"{}\"\n{env_text}", t.url),
    );
    let mut c = std::process::Command::new(bin());
    c.env("RUNBOOK_OPERATOR", "tester")
        .env("PGPASSWORD", &t.pw)
        .env_remove("RUNBOOK_JOURNAL")
        .env_remove("FAILPOINTS")
        .arg("--env")
        .arg(&env)
        .args(["run"])
        .arg(&t.rb)
        .args(["-p", "pause=0s", "--yes", "--json"])
        .stdin(std::process::Stdio::null());
    let out = run(c).expect(0);
    assert_eq!(out.json()["run_id"], "r-1");
    // It is in the database, read from elsewhere with the URL.
    assert_eq!(t.status("r-1")["status"], "completed");
}

#[test]
fn abort_from_another_machine_asks_the_driver_and_it_stops_at_its_next_safe_point() {
    let t = Team::new();
    let mut driver = spawn(t.run("30s", "site-a", "60s"));
    t.wait_for_step("r-1", "pause", &mut driver);
    // Its lease holds: the abort is a request the driver carries out.
    let out = run_cmd(t.cmd(
        "30s",
        &["abort", "r-1", "--reason", "the bridge called it off"],
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("r-1 aborted"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("asked it to stop at its next safe point"),
        "{}",
        out.stderr
    );
    let d = wait_out(driver);
    assert_eq!(d.code, 4, "{}", d.stderr);
    assert_eq!(
        t.puts("second-site-a"),
        0,
        "nothing after the safe point was done"
    );
    let st = t.status("r-1");
    assert_eq!(st["status"], "aborted", "{st}");
    // The request is gone once carried out; the site is free for the next run.
    let out = run_cmd(t.run("30s", "site-a", "0s"));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_hundred_viewers_hold_no_more_than_two_database_connections_and_the_page_is_guarded() {
    let t = Team::new();
    let mut a = spawn(t.run("30s", "site-a", "30s"));
    t.wait_for_step("r-1", "pause", &mut a);
    let db = t
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let mut admin_c = admin(&server_url().0, &t.pw);
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
    };
    let before = count(&mut admin_c);
    let (mut serve, base) = spawn_serve(t.cmd("30s", &["serve", "--listen", "127.0.0.1:0"]));
    let addr = base.trim_start_matches("http://").to_string();
    let mut streams = Vec::new();
    for _ in 0..100 {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /runs/r-1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        streams.push(s);
    }
    std::thread::sleep(Duration::from_secs(2));
    let during = count(&mut admin_c);
    assert!(
        during - before <= 2,
        "100 event streams hold {} database connections",
        during - before
    );
    // A new run still starts.
    let out = run_cmd(t.run("30s", "site-b", "0s"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Another host name is not served (DNS rebinding); the policy is on every answer.
    let raw = |host: &str, path: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        all
    };
    assert!(
        raw("evil.example:80", "/").starts_with("HTTP/1.1 421"),
        "a foreign host"
    );
    let page = raw(&addr, "/runs/r-1");
    let lower = page.to_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'sha256-"),
        "{page}"
    );
    assert!(lower.contains("frame-ancestors 'none'"), "{page}");
    assert!(
        raw(&addr, "/runs/r-99/events").starts_with("HTTP/1.1 404"),
        "no stream for a run that does not exist"
    );
    drop(streams);
    wait_out(a).expect(0);
    let _ = serve.kill();
    let _ = serve.wait();
}

/// A halted run's driver gives its lease up when it stops, and so does a decision
/// recorded from outside (the page's approval): whoever acts next does not wait out
/// the lease (10 minutes here). Before, a resume right after a halt was refused
/// (`LeaseHeld`, exit 5) until the lease expired.
#[test]
fn a_halted_run_is_resumed_or_approved_at_once_from_another_machine() {
    let t = Team::new();
    let gated = write(
        t.dir.path(),
        "gated.yaml",
        "name: gated\nsteps:\n  - id: look\n    site: site-a\n    action: manual.confirm\n    with: { instructions: look }\n  - id: again\n    site: site-a\n    action: manual.confirm\n    with: { instructions: look again }\n",
    );
    let mut c = t.cmd("10m", &["run"]);
    c.arg(&gated).args(["--yes", "--json"]);
    run_cmd(c).expect(3);
    // At once, from another process (a lease held would refuse it: exit 5, not
    // waited for): approved and driven on to the second gate.
    run_cmd(t.cmd("10m", &["resume", "r-1", "--approve", "look", "--json"])).expect(3);
    // A decision recorded from outside, then a resume at once: the page's path.
    let users = write(
        t.dir.path(),
        "users.yaml",
        "users:\n  bot:\n    tokens: [\"sha256:fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603\"]\n    roles: [approver]\n",
    );
    let (mut serve, base) = spawn_serve({
        let mut c = t.cmd("10m", &["serve", "--listen", "127.0.0.1:0", "--users"]);
        c.arg(&users);
        c
    });
    // The token whose SHA-256 is above.
    let (code, _, body) = crate::bridge::http(
        &base,
        "POST",
        "/runs/r-1/step/approve",
        &[("Authorization", "Bearer ab")],
        "step=again",
    );
    assert_eq!(code, 303, "{body}");
    let _ = serve.kill();
    let _ = serve.wait();
    run_cmd(t.cmd("10m", &["resume", "r-1", "--json"])).expect(0);
}
