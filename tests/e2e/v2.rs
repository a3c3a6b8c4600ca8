//! The multi-cluster v2 procedures of the Keycloak 26 pack (no external Infinispan)
//! on a real HAProxy in front of both sites and PGO over real PostgreSQL servers:
//! a site lost and failed over, brought back, and the writer moved home, with users
//! logging in through HAProxy all along. Where each login landed is read from the
//! answer (the lab Keycloak's `X-Lab-Site`), never from our own steps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn v2_lab() -> InLab {
    let l = InLab::start_with(&[], |c| {
        c.shape.traffic = lab::world::Traffic::Haproxy;
        c.shape.database = lab::world::Database::Pgo;
        c.shape.infinispan_version = 15;
        c.shape.stateless = true;
    });
    until(&l, "both databases answer", |s| {
        s["pgo"]["sites"]["site-a"]["writable"] == true
            && s["pgo"]["sites"]["site-b"]["writable"] == false
    });
    l
}

/// Wait until the lab's state satisfies `f` (PostgreSQL's servers are real: a base
/// backup or a restart takes seconds).
fn until(l: &InLab, what: &str, f: impl Fn(&Value) -> bool) {
    eventually(what, Duration::from_secs(60), || {
        let s = l.state();
        if f(&s) {
            Ok(())
        } else {
            Err(s["pgo"].to_string())
        }
    })
}

/// The site that answered a login through HAProxy, or what came back instead.
fn login(lb: SocketAddr) -> Result<String, String> {
    lb_get(lb, "/realms/master/login")
}

/// Users logging in through HAProxy every 20 ms until dropped: each login's outcome.
struct Users {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Result<String, String>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Users {
    fn start(lb: SocketAddr) -> Users {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = login(lb);
                v.lock().unwrap().push(r);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Users {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The logins from the `from`th on.
    fn since(&self, from: usize) -> Vec<Result<String, String>> {
        self.seen.lock().unwrap()[from..].to_vec()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Wait until `n` more logins were made.
    fn wait(&self, n: usize) -> Vec<Result<String, String>> {
        let from = self.count();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count() < from + n {
            assert!(Instant::now() < deadline, "users stopped logging in");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.since(from)
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The requests a site's Keycloak received (its own log, not HAProxy's word).
fn landed_on(l: &InLab, site: &str) -> usize {
    l.running()
        .shared
        .lock()
        .requests
        .get(&format!("{site}-keycloak"))
        .map_or(0, Vec::len)
}

fn kc26(l: &InLab, runbook: &str, params: &[&str]) -> Out {
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26", "run", runbook, "--yes", "--json"]);
    for p in params {
        c.args(["-p", p]);
    }
    run(c)
}

fn sites_of(logins: &[Result<String, String>]) -> Vec<String> {
    logins
        .iter()
        .map(|r| r.clone().unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

#[test]
fn a_lost_site_fails_over_comes_back_and_the_writer_moves_home_with_users_logging_in() {
    let l = v2_lab();
    let users = Users::start(l.running().endpoints.haproxy.unwrap().0);
    let both = sites_of(&users.wait(10));
    assert!(
        both.contains(&"site-a".into()) && both.contains(&"site-b".into()),
        "{both:?}"
    );

    // site-a is lost: its Keycloak answers no more and its PostgreSQL crashes.
    l.world(|w| {
        w.faults
            .push(lab::Fault::parse("site-down:site-a").unwrap())
    });
    until(&l, "site-a's database is down", |s| {
        s["pgo"]["sites"]["site-a"]["running"] == false
    });
    let out = kc26(&l, "site-failover", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("lost=site-a, read from the deployment"),
        "{}",
        out.stderr
    );
    let p = &l.state()["pgo"]["sites"];
    assert_eq!(p["site-b"]["writable"], true, "{p}");
    assert_eq!(
        p["site-a"]["spec"]["shutdown"], true,
        "the lost primary is fenced: {p}"
    );
    // From the end of the failover: every login on site-b, none reached site-a.
    let a = landed_on(&l, "site-a");
    let after = sites_of(&users.wait(20));
    assert!(after.iter().all(|s| s == "site-b"), "{after:?}");
    // site-a comes back: healthy again, but out of traffic until it is brought back.
    l.world(|w| w.faults.retain(|f| f.kind() != "site-down"));
    std::thread::sleep(Duration::from_millis(1500));
    let back_but_out = sites_of(&users.wait(20));
    assert!(
        back_but_out.iter().all(|s| s == "site-b"),
        "{back_but_out:?}"
    );
    assert_eq!(
        landed_on(&l, "site-a"),
        a,
        "no login landed on the removed site"
    );
    assert_eq!(
        l.state()["pgo"]["sites"]["site-a"]["running"],
        false,
        "the fenced primary stays down when its site is back: never two writers"
    );

    // The way back: site-a's database rebuilt as a standby of site-b, then traffic.
    let out = kc26(&l, "site-failback", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("site=site-a, read from the deployment"),
        "{}",
        out.stderr
    );
    until(&l, "site-a replays from site-b", |s| {
        let p = &s["pgo"]["sites"];
        p["site-a"]["writable"] == false && p["site-a"]["running"] == true
    });
    let again = sites_of(&users.wait(20));
    assert!(
        again.iter().filter(|s| *s == "site-a").count() >= 5,
        "{again:?}"
    );

    // The writer goes home as a planned move, both sites serving throughout.
    let out = kc26(&l, "database-switchover", &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    until(&l, "site-a writes and site-b replays from it", |s| {
        let p = &s["pgo"]["sites"];
        p["site-a"]["writable"] == true
            && p["site-b"]["writable"] == false
            && p["site-b"]["running"] == true
    });
    let home = sites_of(&users.wait(20));
    assert!(
        home.contains(&"site-a".into()) && home.contains(&"site-b".into()),
        "{home:?}"
    );
    let all = sites_of(&users.since(0));
    eprintln!(
        "logins: {} in all, {} on site-a, {} on site-b, {} not served",
        all.len(),
        all.iter().filter(|s| *s == "site-a").count(),
        all.iter().filter(|s| *s == "site-b").count(),
        all.iter().filter(|s| s.starts_with("error")).count()
    );
}

/// A lab whose site-a is lost (its Keycloak down, its PostgreSQL crashed).
fn site_a_lost() -> InLab {
    let l = v2_lab();
    l.world(|w| {
        w.faults
            .push(lab::Fault::parse("site-down:site-a").unwrap())
    });
    until(&l, "site-a's database is down", |s| {
        s["pgo"]["sites"]["site-a"]["running"] == false
    });
    l
}

/// HAProxy's administrative state of a site's server, from its runtime API's
/// `show stat` status: MAINT, DRAIN, else READY (whatever its checks say: `UP`,
/// `UP 1/3` while coming up, `DOWN`).
fn admin_state(l: &InLab, site: &str) -> String {
    let status = stat_status(l, site);
    if status.starts_with("MAINT") {
        "MAINT".into()
    } else if status.starts_with("DRAIN") {
        "DRAIN".into()
    } else {
        "READY".into()
    }
}

/// A site's server's `show stat` status, as HAProxy prints it.
fn stat_status(l: &InLab, site: &str) -> String {
    let (_, admin) = l.running().endpoints.haproxy.unwrap();
    let mut s = TcpStream::connect(admin).unwrap();
    s.write_all(b"show stat\n").unwrap();
    let mut stat = String::new();
    s.read_to_string(&mut stat).unwrap();
    let header: Vec<&str> = stat.lines().next().unwrap()[2..].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = stat
        .lines()
        .find(|r| r.starts_with(&format!("keycloak_sites,{site},")))
        .unwrap()
        .split(',')
        .collect();
    row[col("status")].to_string()
}

#[test]
fn site_failover_killed_at_every_effect_resumes_to_one_writer_and_the_lost_site_out() {
    for point in [
        "before-apply=return(remove-lost-site)",
        "after-apply=return(remove-lost-site)",
        "before-apply=return(promote-survivor)",
        "after-apply=return(promote-survivor)",
        "after-journal=return(promote-survivor)",
    ] {
        let l = site_a_lost();
        let mut c = l.runbook();
        c.args(["--pack", "keycloak-26", "run", "site-failover", "--yes"])
            .env("FAILPOINTS", point);
        let out = run(c);
        assert_eq!(out.code, -1, "{point}: killed\n{}", out.stderr);
        resume_until_done(&l, "r-1");
        let p = &l.state()["pgo"]["sites"];
        assert_eq!(p["site-b"]["writable"], true, "{point}: {p}");
        assert_eq!(
            p["site-a"]["spec"]["shutdown"], true,
            "{point}: fenced: {p}"
        );
        assert_eq!(admin_state(&l, "site-a"), "MAINT", "{point}");
        let (lb, _) = l.running().endpoints.haproxy.unwrap();
        for _ in 0..6 {
            assert_eq!(login(lb), Ok("site-b".to_string()), "{point}");
        }
    }
}

#[test]
fn a_failover_refused_leaves_haproxy_and_the_databases_as_they_were() {
    // Nothing is lost: site-a still serves and answers writable. The promotion's guards
    // refuse before any effect: HAProxy's states and both databases unchanged.
    let l = v2_lab();
    let before = (admin_state(&l, "site-a"), admin_state(&l, "site-b"));
    let out = kc26(&l, "site-failover", &[]);
    assert_eq!(out.code, 8, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        (admin_state(&l, "site-a"), admin_state(&l, "site-b")),
        before
    );
    let p = &l.state()["pgo"]["sites"];
    assert_eq!(
        (
            p["site-a"]["writable"].clone(),
            p["site-b"]["writable"].clone()
        ),
        (Value::Bool(true), Value::Bool(false)),
        "{p}"
    );
}

#[test]
fn the_v2_rehearsal_runs_as_written() {
    let block = crate::readme::block_after("procedures", "### The multi-cluster v2 procedures");
    let l = v2_lab();
    let mut ran = 0;
    for line in block.lines() {
        let (cmd, _) = crate::readme::split_comment(line);
        // The lab's admin API, as the operator's curl lines call it.
        if let Some(fault) = cmd.strip_prefix("curl -s -X POST $LAB/admin/faults -d ") {
            let f = lab::Fault::parse(fault.trim()).unwrap();
            l.world(|w| w.faults.push(f));
            until(&l, "the lost site's database is down", |s| {
                s["pgo"]["sites"]["site-a"]["running"] == false
            });
            continue;
        }
        if cmd.trim() == "curl -s -X DELETE $LAB/admin/faults" {
            l.world(|w| w.faults.clear());
            continue;
        }
        if crate::readme::run_rehearsal_line(&l, line, &["--pack", "keycloak-26"]).is_some() {
            ran += 1;
        }
    }
    assert_eq!(ran, 5, "every runbook line of the block ran");
    until(&l, "site-a writes and site-b replays", |s| {
        let p = &s["pgo"]["sites"];
        p["site-a"]["writable"] == true && p["site-b"]["writable"] == false
    });
    assert_eq!(admin_state(&l, "site-a"), "READY");
    eventually("site-a's check passes", Duration::from_secs(20), || {
        let s = stat_status(&l, "site-a");
        if s == "UP" {
            Ok(())
        } else {
            Err(s)
        }
    });
}
