//! Safety at the edges, against the lab: a site is what its endpoints prove (a
//! context left out or copied, an Infinispan URL copied from the other site), a
//! failover refuses a healthy primary, bad input is refused before any effect, a cache
//! list cannot narrow what is checked, `plan --live` ends with a verdict, a run that
//! moves traffic does not start without a question or `--yes`, and a clear whose answer
//! is lost is in doubt: with a fault proxy holding it past the step's timeout and
//! delivering it afterwards, the active site loses nothing.
//!
//! Where nothing may happen, the lab's state is asserted: no Keycloak generation change
//! on either site, no clear request, the serving site unchanged.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

fn run_rb(l: &InLab, args: &[&str]) -> Out {
    let mut c = l.runbook();
    c.arg("run").args(args).args(["--yes", "--json"]);
    run(c)
}

/// Nothing happened on either site: Keycloak's spec and generation as the lab started
/// them, no clear request, site-a still serving.
fn nothing_done(l: &InLab) {
    l.untouched("site-a");
    l.untouched("site-b");
    assert_eq!(l.state()["serving_site"], "site-a", "traffic did not move");
}

/// A configuration mistake leaves no run in the history.
fn no_run_journaled(l: &InLab) {
    let mut h = l.runbook();
    h.args(["history", "--json"]);
    let out = run(h);
    let runs: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    assert!(
        runs.as_array().is_none_or(|a| a.is_empty()),
        "no run journaled: {}",
        out.stdout
    );
}

fn set(doc: &mut serde_yaml::Value, path: &[&str], value: Option<serde_yaml::Value>) {
    let mut v = doc;
    for p in &path[..path.len() - 1] {
        v = v.get_mut(*p).unwrap();
    }
    let m = v.as_mapping_mut().unwrap();
    match value {
        Some(x) => {
            m.insert(path[path.len() - 1].into(), x);
        }
        None => {
            m.remove(path[path.len() - 1]);
        }
    }
}

#[test]
fn a_site_whose_context_is_left_out_or_copied_is_refused_before_any_effect() {
    // The kubeconfig's current context is site-a's: without its own, site-b's Keycloak
    // steps would scale site-a's (the serving site's) Keycloak.
    let mut l = InLab::start(&[], 0.0);
    l.edit_env(|d| set(d, &["sites", "site-b", "kubernetes", "context"], None));
    // A configuration mistake: said as one (exit 2), and no run is journaled.
    let out = run_rb(&l, &["recover-passive-site"]).expect(2);
    assert!(out.stderr.contains("MISCONFIGURED"), "{}", out.stderr);
    no_run_journaled(&l);
    assert!(
        out.stderr
            .contains("sites.site-b.kubernetes names no `context`"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
    // Copied from site-a: both sites resolve to one API server and namespace, and the
    // cluster's Infinispan CR says it is site-a.
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "kubernetes", "context"],
            Some("site-a".into()),
        )
    });
    let out = run_rb(&l, &["recover-passive-site"]).expect(2);
    no_run_journaled(&l);
    assert!(
        out.stderr
            .contains("says its local site is `site-a`, not `site-b`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("sites site-a and site-b resolve to one Kubernetes API server"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
    // `check`-like reads and the plan say the same before anything runs.
    let mut c = l.runbook();
    c.args(["plan", "recover-passive-site", "--live"]);
    let out = run(c).expect(2);
    assert!(out.stderr.contains("MISCONFIGURED"), "{}", out.stderr);
}

#[test]
fn an_infinispan_url_copied_from_the_other_site_is_refused() {
    let mut l = InLab::start(&[], 0.0);
    let a_url = l.running().endpoints.infinispan["site-a"].to_string();
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "url"],
            Some(format!("http://{a_url}").into()),
        )
    });
    let out = run_rb(&l, &["recover-passive-site"]).expect(2);
    assert!(
        out.stderr
            .contains("says its local site is `site-a`, not `site-b`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("resolve to one Infinispan cluster member"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
    // A configuration mistake, said as one (exit 2, as `check` says it): no run.
    assert!(out.stderr.contains("MISCONFIGURED"), "{}", out.stderr);
    no_run_journaled(&l);
}

#[test]
fn the_identity_guard_is_shown_and_journaled_as_passed() {
    let l = InLab::start(&[], 0.0);
    let mut c = l.runbook();
    c.args(["plan", "switchover", "--live"]);
    let out = run(c).expect(0);
    assert!(
        out.stdout.contains("builtin-site-identity"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("verdict: would run"), "{}", out.stdout);
    let out = run_rb(&l, &["switchover"]).expect(0);
    let id = out.json()["run_id"].as_str().unwrap().to_string();
    let mut r = l.runbook();
    r.args(["report", &id, "--format", "json"]);
    let report = run(r).expect(0).stdout;
    assert!(
        report.contains("builtin-site-identity") && report.contains("local_site `site-b`"),
        "the identity guard is journaled with what each endpoint answered"
    );
}

#[test]
fn failover_refuses_while_the_primary_is_healthy_and_points_at_switchover() {
    let l = InLab::start(&[], 0.0);
    let out = run_rb(&l, &["failover"]).expect(8);
    assert!(
        out.stderr.contains("site-a has not failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("runbook run switchover -p primary=site-a -p secondary=site-b"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
    // With the primary down, it runs.
    l.fault("site-down:site-a");
    std::thread::sleep(Duration::from_millis(300));
    let out = run_rb(&l, &["failover"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn bad_input_is_refused_before_anything_is_done() {
    let l = InLab::start(&[], 0.0);
    for (params, says) in [
        (
            vec!["-p", "primary=site-b", "-p", "secondary=site-b"],
            "must differ from it",
        ),
        (vec!["-p", "caches="], "the list is empty"),
        (
            vec!["-p", "caches=sessions,sessions,sessions"],
            "sessions, sessions given more than once",
        ),
    ] {
        let mut c = l.runbook();
        c.args(["plan", "recover-passive-site"]).args(&params);
        let out = run(c).expect(2);
        assert!(out.stderr.contains(says), "{params:?}: {}", out.stderr);
        let mut args = vec!["recover-passive-site"];
        args.extend(&params);
        run_rb(&l, &args).expect(2);
    }
    // A cache the servers do not have: refused live, before the scale-down.
    let out = run_rb(&l, &["recover-passive-site", "-p", "caches=nosuchcache"]).expect(8);
    assert!(
        out.stderr
            .contains("nosuchcache is not a cache that backs up to"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
}

#[test]
fn a_cache_list_that_leaves_out_backed_up_caches_is_refused_and_sync_compares_them_all() {
    let l = InLab::start(&[], 0.0);
    let out = run_rb(&l, &["switchover", "-p", "caches=work"]).expect(8);
    assert!(out.stderr.contains("the list leaves out"), "{}", out.stderr);
    assert!(out.stderr.contains("sessions"), "{}", out.stderr);
    nothing_done(&l);
    // Forced past the list, sites-in-sync still compares every backed-up cache: a
    // secondary whose `sessions` are stale is not switched over to.
    l.world(|w| {
        w.sites
            .get_mut("site-b")
            .unwrap()
            .caches
            .get_mut("sessions")
            .unwrap()
            .entries
            .insert("stale-only-here".into(), "x".into());
    });
    let out = run_rb(
        &l,
        &[
            "switchover",
            "-p",
            "caches=work",
            "-p",
            "force=true",
            "-p",
            "force_reason=testing that a forced list still compares every cache",
        ],
    );
    assert!(
        out.stderr
            .contains("compared too, backed up but not in `caches`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("sessions: 0 keys only on site-a, 1 only on site-b"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_that_moves_traffic_needs_a_terminal_or_yes() {
    let l = InLab::start(&[], 0.0);
    let mut c = l.runbook();
    c.args(["run", "switchover"]);
    let out = run(c).expect(2);
    assert!(out.stderr.contains("MOVES TRAFFIC"), "{}", out.stderr);
    assert!(
        out.stderr.contains("MOVES THE DATABASE WRITER"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Nothing was done"), "{}", out.stderr);
    nothing_done(&l);
    // Read-only runbooks never ask.
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "ro.yaml",
        "name: ro\nsteps:\n  - id: look\n    site: site-a\n    action: infinispan.site-status\n    with: { backup: site-b }\n",
    );
    let mut c = l.runbook();
    c.arg("run").arg(&rb);
    run(c).expect(0);
}

// ---- the fault proxy: a clear held in the network past the step's timeout ----

/// A TCP proxy in front of one Infinispan server. Every request is forwarded on a
/// connection of its own (`Connection: close`), except the first whose request line
/// contains `hold`: that one is answered never, and delivered to the server `delay`
/// later on a fresh connection, as a request held by the network arrives late.
struct HoldingProxy {
    addr: String,
    held: Arc<Mutex<Vec<String>>>,
    delivered: Arc<Mutex<Vec<String>>>,
}

fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    // One request per connection: the server closes after answering.
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut out = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

fn forward(upstream: &str, req: &[u8]) -> Vec<u8> {
    let mut u = TcpStream::connect(upstream).unwrap();
    u.write_all(req).unwrap();
    let mut resp = Vec::new();
    let _ = u.read_to_end(&mut resp);
    resp
}

impl HoldingProxy {
    /// The held request is delivered `delay` later.
    fn start(upstream: String, hold: &'static str, delay: Duration) -> HoldingProxy {
        HoldingProxy::with(upstream, hold, delay, false)
    }

    /// The held request is delivered at once; only its answer is lost.
    fn losing_answer(upstream: String, hold: &'static str) -> HoldingProxy {
        HoldingProxy::with(upstream, hold, Duration::ZERO, true)
    }

    fn with(upstream: String, hold: &'static str, delay: Duration, at_once: bool) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = Arc::new(Mutex::new(Vec::new()));
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let (h, d) = (held.clone(), delivered.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { break };
                let (upstream, h, d) = (upstream.clone(), h.clone(), d.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut client) else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&req)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let hold_this = line.contains(hold) && {
                        let mut h = h.lock().unwrap();
                        let first = h.is_empty();
                        if first {
                            h.push(line.clone());
                        }
                        first
                    };
                    if hold_this {
                        // Never answered: the client gives up and closes; the
                        // request reaches the server afterwards (or at once, and
                        // only the answer is lost).
                        if !at_once {
                            std::thread::sleep(delay);
                        }
                        forward(&upstream, &req);
                        d.lock().unwrap().push(line);
                        if at_once {
                            std::thread::sleep(Duration::from_secs(10));
                        }
                        return;
                    }
                    let resp = forward(&upstream, &req);
                    let _ = client.write_all(&resp);
                });
            }
        });
        HoldingProxy {
            addr,
            held,
            delivered,
        }
    }
}

#[test]
fn a_clear_whose_answer_is_lost_is_in_doubt_and_the_active_site_loses_nothing() {
    let mut l = InLab::start(&[], 0.0);
    l.sessions("site-a", 5);
    std::thread::sleep(Duration::from_millis(200));
    let before = l.entries("site-a", "sessions");
    assert!(!before.is_empty(), "site-a has sessions to lose");
    let upstream = l.running().endpoints.infinispan["site-b"].to_string();
    // The clear step's timeout is 1 s in the lab (120 s scaled, at least 1 s): hold
    // the clear of `sessions` for 3 s.
    let proxy = HoldingProxy::start(
        upstream,
        "/caches/sessions?action=clear",
        Duration::from_secs(3),
    );
    let url = format!("http://{}", proxy.addr);
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "url"],
            Some(url.into()),
        )
    });
    let out = run_rb(&l, &["recover-passive-site"]).expect(3);
    let j = out.json();
    assert_eq!(j["status"], "halted", "{j}");
    assert_eq!(j["halted_at"], "clear-caches", "{j}");
    let reason = j["reason"].as_str().unwrap();
    assert!(reason.contains("in doubt"), "{reason}");
    assert!(reason.contains("--retry-step clear-caches"), "{reason}");
    assert_eq!(proxy.held.lock().unwrap().len(), 1, "one clear was held");
    // The held clear arrives afterwards: replication from site-b is still offline, so
    // only site-b's cache is emptied.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        proxy.delivered.lock().unwrap().len(),
        1,
        "the held clear was delivered"
    );
    let st = l.state();
    assert_eq!(
        st["sites"]["site-b"]["clear_requests"]["sessions"], 1,
        "the clear was sent once, never again: {}",
        st["sites"]["site-b"]["clear_requests"]
    );
    assert_eq!(
        l.entries("site-a", "sessions"),
        before,
        "the active site lost nothing"
    );
    // bring-online never ran: site-b's backup to site-a is offline still.
    let mut s = l.runbook();
    s.args(["status", j["run_id"].as_str().unwrap(), "--json"]);
    let status: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    let text = status.to_string();
    assert!(
        !text.contains("\"bring-online\",\"status\":\"succeeded\""),
        "{text}"
    );
}

#[test]
fn abort_from_another_terminal_stops_the_driver_at_its_next_safe_point() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let rb = write(
        dir.path(),
        "slow.yaml",
        "name: slow\nsteps:\n  - id: first\n    action: wait\n    with: { duration: 60s }\n  - id: second\n    action: wait\n    with: { duration: 1s }\n",
    );
    let mut c = runbook(&journal);
    c.arg("run").arg(&rb).arg("--json");
    let driver = spawn(c);
    let live = journal.join("live").join("r-1.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !live.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the driver published its live state"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The sled journal is held by the driver: abort asks it, and waits.
    let mut a = runbook(&journal);
    a.args(["abort", "r-1", "--reason", "the change window closed"]);
    let out = run(a).expect(0);
    assert!(
        out.stdout.contains("r-1 aborted"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("asked it to stop at its next safe point"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("never done: second"), "{}", out.stderr);
    let d = wait_out(driver);
    assert_eq!(
        d.code, 4,
        "the driver ends the run as aborted: {}",
        d.stderr
    );
    assert_eq!(d.json()["status"], "aborted");
    let mut s = runbook(&journal);
    s.args(["status", "r-1", "--json"]);
    let st = run(s).stdout;
    assert!(st.contains("aborted"), "{st}");
    assert!(!live.exists(), "the driver let go of the run");
}

/// `runbook ARGS` under a pseudo-terminal (util-linux `script`), `input` typed at it.
fn at_a_terminal(l: &InLab, args: &str, input: &str) -> Out {
    let env = l.env.as_ref().cloned().unwrap_or_else(|| l.env());
    let line = format!(
        "{} --journal {} --env {} {args}",
        bin().display(),
        l.journal().display(),
        env.display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    wait_out(child)
}

#[test]
fn removing_data_asks_for_the_sites_name_after_the_guards_held() {
    let l = InLab::start(&[], 0.0);
    // A wrong answer: nothing is done.
    let out = at_a_terminal(&l, "run recover-passive-site", "site-a\n");
    assert!(out.stdout.contains("REMOVES DATA"), "{}", out.stdout);
    assert!(
        out.stdout.contains("type `site-b` to go on"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not started: nothing was done"),
        "{}",
        out.stdout
    );
    nothing_done(&l);
    // A run its guards refuse is not asked about: roles swapped, site-a serves.
    let out = at_a_terminal(
        &l,
        "run recover-passive-site -p primary=site-b -p secondary=site-a",
        "",
    );
    assert!(!out.stdout.contains("to go on"), "{}", out.stdout);
    assert!(out.stdout.contains("SERVES TRAFFIC"), "{}", out.stdout);
    nothing_done(&l);
    // The site's name: it runs.
    let out = at_a_terminal(&l, "run recover-passive-site", "site-b\n");
    assert!(out.stdout.contains(" completed"), "{}", out.stdout);
}

#[test]
fn refused_credentials_are_a_configuration_error_in_check_and_refuse_a_run() {
    let mut l = InLab::start(&[], 0.0);
    let wrong = l.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "auth", "password_file"],
            Some(wrong.display().to_string().into()),
        )
    });
    let mut c = l.runbook();
    c.args(["check"]);
    let out = run(c).expect(2);
    assert!(out.stdout.contains("MISCONFIGURED"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("declare `infinispan.api"),
        "no version hint for a 401: {}",
        out.stdout
    );
    // The same verdict and exit code as check's, and no run in the history.
    let out = run_rb(&l, &["recover-passive-site"]).expect(2);
    assert!(
        out.stderr.contains("configuration: site `site-b`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("MISCONFIGURED"), "{}", out.stderr);
    no_run_journaled(&l);
    nothing_done(&l);
    // A password file that does not exist: the same, before any effect.
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "auth", "password_file"],
            Some("/nonexistent/password".into()),
        )
    });
    let out = run_rb(&l, &["recover-passive-site"]).expect(2);
    no_run_journaled(&l);
    assert!(
        out.stderr
            .contains("cannot read the Infinispan password file"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
}

#[test]
fn a_rehearsal_never_counts_in_a_real_deployments_history() {
    // The lab's endpoints described without its `lab:` section stand for a real
    // deployment; with it, for a rehearsal. One journal for both.
    let mut l = InLab::start(&[], 0.0);
    let lab_env = l.env();
    l.edit_env(|d| {
        let m = d.as_mapping_mut().unwrap();
        m.remove("lab");
        m.remove("journal");
    });
    let real_env = l.env.clone().unwrap();
    let rb = |env: &std::path::Path, args: &[&str]| {
        let mut c = runbook(&l.journal());
        // The lab takes any credentials; never the SDK's instance-metadata lookup.
        c.env("AWS_ACCESS_KEY_ID", "lab")
            .env("AWS_SECRET_ACCESS_KEY", "lab")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c.arg("--env")
            .arg(env)
            .arg("run")
            .args(args)
            .args(["--yes", "--json"]);
        run(c)
    };
    // For real: a switchover leaves site-a stale.
    rb(&real_env, &["switchover"]).expect(0);
    // A rehearsal resyncs site-a.
    rb(
        &lab_env,
        &[
            "recover-passive-site",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
        ],
    )
    .expect(0);
    // For real, site-a is still stale as far as the real history goes.
    let out = rb(
        &real_env,
        &[
            "switchover",
            "-p",
            "primary=site-b",
            "-p",
            "secondary=site-a",
        ],
    )
    .expect(8);
    assert!(
        out.stderr.contains("secondary-not-left-stale"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_aws_credentials_is_named_as_configuration_with_what_to_do() {
    let mut l = InLab::start(&[], 0.0);
    // Not a lab (no `lab:` section): the SDK's own chain, which finds nothing here.
    l.edit_env(|d| {
        d.as_mapping_mut().unwrap().remove("lab");
    });
    let mut c = l.runbook();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["run", "switchover", "--yes"]);
    // A configuration mistake (exit 2), found reading the deployment for the
    // switchover's direction, before anything is journaled or done.
    let out = run(c).expect(2);
    assert!(out.stderr.contains("no AWS credentials"), "{}", out.stderr);
    assert!(out.stderr.contains("aws sso login"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("DispatchFailure("),
        "no SDK error dump: {}",
        out.stderr
    );
    nothing_done(&l);
}

#[test]
fn a_take_offline_whose_answer_is_lost_counts_as_done_when_its_postcondition_holds() {
    let mut l = InLab::start(&[], 0.0);
    let upstream = l.running().endpoints.infinispan["site-b"].to_string();
    // Infinispan 14's container-level take-offline: delivered, its answer never sent.
    let proxy = HoldingProxy::losing_answer(upstream, "/x-site/backups/site-a?action=take-offline");
    let url = format!("http://{}", proxy.addr);
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "url"],
            Some(url.into()),
        )
    });
    let rb = write(
        l.dir.path(),
        "offline.yaml",
        "name: offline\nsteps:\n  - id: take-offline\n    site: site-b\n    action: infinispan.take-offline\n    with: { backup: site-a }\n",
    );
    let mut c = l.runbook();
    c.arg("run").arg(&rb).args(["--yes", "--json"]);
    let out = run(c).expect(0);
    assert_eq!(
        proxy.delivered.lock().unwrap().len(),
        1,
        "the take-offline reached the server"
    );
    assert!(out.stderr.contains("its answer was lost"), "{}", out.stderr);
    assert!(
        out.stderr.contains("but its postcondition holds"),
        "{}",
        out.stderr
    );
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    assert_eq!(
        st["steps"]["take-offline"]["attempts"], 1,
        "not failed, not retried: {st}"
    );
    assert_eq!(st["steps"]["take-offline"]["status"], "succeeded", "{st}");
}

#[test]
fn writes_whose_every_answer_is_lost_are_sent_once_when_the_server_did_them() {
    // Every take-offline site-b sends is carried out and its answer lost (the lab's
    // `answer-lost`): the postcondition is read before anything is sent again, and it
    // holds after the first, so each cache's take-offline reaches the server once.
    let l = InLab::start(&["answer-lost:1000:site-b"], 0.0);
    let rb = write(
        l.dir.path(),
        "offline.yaml",
        "name: offline\nsteps:\n  - id: take-offline\n    site: site-b\n    action: infinispan.take-offline\n    with: { backup: site-a }\n",
    );
    let before = take_offlines(&l);
    let mut c = l.runbook();
    c.arg("run").arg(&rb).args(["--yes", "--json"]);
    let out = run(c).expect(0);
    assert!(out.stderr.contains("its answer was lost"), "{}", out.stderr);
    let sent = take_offlines(&l) - before;
    assert_eq!(
        sent, 1,
        "one take-offline, never sent again: {}",
        out.stderr
    );
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(s).stdout).unwrap();
    assert_eq!(st["steps"]["take-offline"]["attempts"], 1, "{st}");
    // The backup is offline at site-b, as the lost answer would have said.
    for (cache, v) in l.state()["sites"]["site-b"]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"]["site-a"]["status"], "offline", "{cache}");
    }
}

/// The take-offline requests site-b's Infinispan received, from the lab's log.
fn take_offlines(l: &InLab) -> usize {
    let lab = l.running().shared.lock();
    lab.requests.get("site-b").map_or(0, |log| {
        log.iter().filter(|r| r.contains("take-offline")).count()
    })
}

#[test]
fn an_endpoint_that_does_not_answer_is_called_a_transport_error_and_force_names_the_guard() {
    let mut l = InLab::start(&[], 0.0);
    l.edit_env(|d| {
        set(
            d,
            &["sites", "site-b", "infinispan", "url"],
            Some("http://127.0.0.1:1".into()),
        )
    });
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes"]);
    let out = run(c).expect(8);
    assert!(
        out.stderr
            .contains("That is a transport error: nothing answered"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("overrides guard `builtin-site-identity` and every other guard of this run"),
        "{}",
        out.stderr
    );
    nothing_done(&l);
}
