//! PGO as Keycloak's database, end to end on the lab's real PostgreSQL servers (one
//! per site: the primary at site-a, a standby cluster streaming from it at site-b;
//! the operator's behaviour as `lab/src/pgo.rs` sources it). The Keycloak 24
//! procedures run unchanged through the database role; the built-in guard refuses
//! two writable primaries, a lag over the bound and different pguser secrets before
//! anything is done.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

fn pgo_lab(faults: &[&str]) -> InLab {
    let l = InLab::start_with(faults, |c| c.shape.database = lab::world::Database::Pgo);
    l.until_pgo("both servers answer", |p| {
        p["site-a"]["writable"] == true && p["site-b"]["writable"] == false
    });
    l
}

impl InLab {
    fn pgo(&self) -> Value {
        self.state()["pgo"]["sites"].clone()
    }

    fn until_pgo(&self, what: &str, f: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(&self.pgo()) {
            assert!(
                Instant::now() < deadline,
                "timed out until {what}: {}",
                self.pgo()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A merge patch of a site's PostgresCluster through its Kubernetes API, as an
    /// operator at the console would (`kubectl patch --type merge`).
    fn patch_cluster(&self, site: &str, body: Value) {
        let url = format!(
            "http://{}/apis/postgres-operator.crunchydata.com/v1beta1/namespaces/keycloak/postgresclusters/hippo",
            self.running().endpoints.kube[site]
        );
        let code = self.rt.block_on(async {
            reqwest::Client::new()
                .patch(url)
                .header("content-type", "application/merge-patch+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(code.is_success(), "{code}");
    }
}

/// A refused or stopped run's reason, from its `--json` line.
fn reason_of(out: &Out) -> String {
    out.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn switchover(l: &InLab) -> Out {
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes", "--json"]);
    run(c)
}

#[test]
fn the_keycloak_24_switchover_moves_the_pgo_writer_and_repoints_every_keycloak() {
    let l = pgo_lab(&[]);
    let b_port = l.pgo()["site-b"]["port"].as_u64().unwrap();
    let out = switchover(&l).expect(0);
    assert_eq!(out.json()["status"], "completed");
    // The writer is site-b's real server; site-a's is shut down, never a second primary.
    let p = l.pgo();
    assert_eq!(p["site-b"]["writable"], true, "{p}");
    assert_eq!(p["site-a"]["running"], false, "{p}");
    assert_eq!(p["site-a"]["spec"]["shutdown"], true);
    assert_eq!(p["site-b"]["spec"]["standby"]["enabled"], false);
    // Every site's Keycloak points at it: site-b by its service, site-a across sites.
    assert_eq!(
        p["site-b"]["keycloak_db"]["host"],
        "hippo-primary.keycloak.svc"
    );
    assert_eq!(p["site-a"]["keycloak_db"]["host"], "127.0.0.1");
    assert_eq!(p["site-a"]["keycloak_db"]["port"], json!(b_port));
    // The intent journaled the primary's position and where the standby replayed to.
    let run_id = out.json()["run_id"].as_str().unwrap_or("r-1").to_string();
    let mut s = l.runbook();
    s.args(["status", &run_id, "--json"]);
    let st: Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    let step = &st["steps"]["move-db-writer"]["outputs"];
    assert_eq!(step["previous_writer"], "site-a", "{step}");
    assert!(
        step["primary_lsn"].is_string() && step["replayed_lsn"].is_string(),
        "{step}"
    );
    // The plan said the guard, its asynchronous replication and what it moves.
    let mut c = l.runbook();
    c.args(["plan", "switchover"]);
    let plan = run(c).expect(0).stdout;
    assert!(
        plan.contains("builtin-pgo-one-writer-move-db-writer"),
        "{plan}"
    );
    assert!(plan.contains("asynchronous"), "{plan}");
    // The database decides the next step: site-a's cluster is no standby, so it is
    // recreated before any resync or switchback (issue 30).
    let (code, v) = check(&l, None);
    assert_eq!(code, 6, "{v}");
    assert_eq!(
        v["recommended"]["command"], "runbook run pgo/recreate-standby -p site=site-a",
        "{v}"
    );
}

#[test]
fn two_writable_primaries_are_refused_before_anything_is_done() {
    let l = pgo_lab(&[]);
    // Someone promoted site-b by hand while site-a still writes: split-brain.
    l.patch_cluster("site-b", json!({"spec": {"standby": {"enabled": false}}}));
    l.until_pgo("site-b writes too", |p| p["site-b"]["writable"] == true);
    let out = switchover(&l).expect(8);
    let reason = reason_of(&out);
    assert!(
        reason.contains("TWO WRITABLE PRIMARIES: site-a and site-b"),
        "{reason}"
    );
    assert!(reason.contains("Nothing was done"), "{reason}");
    let st = l.state();
    assert_eq!(
        st["sites"]["site-b"]["caches"]["sessions"]["backups"]["site-a"]["status"], "online",
        "no step ran"
    );
    assert_eq!(l.pgo()["site-a"]["spec"]["shutdown"], Value::Null);
}

#[test]
fn a_standby_lagging_past_the_bound_is_refused() {
    let mut l = pgo_lab(&["pg-replay-delay:1h"]);
    l.edit_env(|d| {
        d["sites"]["site-b"]["database"]["pgo"]["max_lag_bytes"] = 1.into();
    });
    // The primary takes writes (the lab's heartbeat) that the standby holds back.
    std::thread::sleep(Duration::from_millis(1500));
    let out = switchover(&l).expect(8);
    let reason = reason_of(&out);
    assert!(
        reason.contains("bytes of WAL behind the primary"),
        "{reason}"
    );
    assert_eq!(l.pgo()["site-a"]["writable"], true);
}

#[test]
fn different_pguser_secrets_are_refused_without_showing_either() {
    let l = pgo_lab(&["pg-secret-differs:site-b"]);
    let out = switchover(&l).expect(8);
    let reason = reason_of(&out);
    assert!(reason.contains("hold different passwords"), "{reason}");
    let all = format!("{}{}", out.stdout, out.stderr);
    let lab = l.running().shared.lock();
    for (site, s) in &lab.pgo.as_ref().unwrap().sites {
        assert!(
            !all.contains(&s.password),
            "{site}'s password printed: {all}"
        );
    }
}

#[test]
fn promote_standby_fences_the_old_primary_and_recreate_standby_demotes_it() {
    let l = pgo_lab(&[]);
    // Recreating the only primary's site would destroy the only data: refused.
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/recreate-standby",
        "-p",
        "site=site-a",
        "--yes",
        "--json",
    ]);
    let out = run(c).expect(8);
    assert!(
        out.json()["reason"]
            .as_str()
            .unwrap()
            .contains("writable now: site-a"),
        "{}",
        out.stdout
    );
    assert_eq!(l.pgo()["site-a"]["writable"], true, "nothing was deleted");
    // site-a still answers as a writable primary and serves: not lost, so refused
    // (issue 30); the operator who knows its site is gone forces it, with a reason.
    // No fixed direction: read from the deployment (site-b's database answers as the
    // standby), said, and still refused while site-a answers writable.
    let mut c = l.runbook();
    c.args(["run", "pgo/promote-standby", "--yes", "--json"]);
    let out = run(c).expect(8);
    assert!(
        out.stderr
            .contains("survivor=site-b, read from the deployment (standby"),
        "{}",
        out.stderr
    );
    let mut c = l.runbook();
    c.args(["run", "pgo/promote-standby", "--yes", "--json"]);
    c.args(["-p", "survivor=site-b", "-p", "lost=site-a"]);
    run(c).expect(8);
    assert_eq!(l.pgo()["site-a"]["writable"], true, "nothing was done");
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/promote-standby",
        "--yes",
        "--json",
        "-p",
        "survivor=site-b",
        "-p",
        "lost=site-a",
        "-p",
        "force=true",
        "-p",
        "force_reason=rehearsing the loss of site-a",
    ]);
    let out = run(c).expect(0);
    assert_eq!(out.json()["status"], "completed");
    // The lab's view is what its reconciler last saw (every 100 ms, later under load):
    // site-b writes and the old primary is fenced.
    l.until_pgo("site-b writes and site-a is fenced", |p| {
        p["site-b"]["writable"] == true && p["site-a"]["running"] == false
    });
    let mut s = l.runbook();
    s.args(["status", "r-4", "--json"]);
    let st: Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
    let o = &st["steps"]["promote"]["outputs"];
    assert_eq!(o["fenced"], true, "{o}");
    assert!(
        o["replayed_lsn"].is_string(),
        "the data-loss window is journaled: {o}"
    );
    // The pack's diagnosis: one writer, and site-a no standby of it.
    let (code, v) = check(&l, Some("pgo"));
    assert_eq!(code, 6, "{v}");
    assert_eq!(
        v["recommended"]["command"], "runbook run pgo/recreate-standby -p site=site-a",
        "{v}"
    );
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/recreate-standby",
        "-p",
        "site=site-a",
        "--yes",
        "--json",
    ]);
    run(c).expect(0);
    l.until_pgo("site-a replays from site-b", |p| {
        p["site-a"]["writable"] == false && p["site-a"]["running"] == true
    });
    let (code, v) = check(&l, Some("pgo"));
    assert_eq!(code, 0, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("site-b holds the only writable primary"),
        "{v}"
    );
}

#[test]
fn check_puts_two_writable_primaries_before_everything() {
    let l = pgo_lab(&[]);
    l.patch_cluster("site-b", json!({"spec": {"standby": {"enabled": false}}}));
    l.until_pgo("site-b writes too", |p| p["site-b"]["writable"] == true);
    let (code, v) = check(&l, None);
    assert_eq!(code, 6, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("TWO WRITABLE PRIMARIES"),
        "{v}"
    );
    assert_eq!(
        v["observations"]["pgo"]["writable"],
        json!(["site-a", "site-b"])
    );
}

/// After any crash and resume: one writer, site-b, and every Keycloak on it.
fn one_writer_at_site_b(l: &InLab, label: &str) {
    let p = l.pgo();
    assert_eq!(p["site-b"]["writable"], true, "{label}: {p}");
    assert_ne!(
        p["site-a"]["writable"], true,
        "{label}: never two primaries: {p}"
    );
    assert_eq!(
        p["site-b"]["keycloak_db"]["host"], "hippo-primary.keycloak.svc",
        "{label}"
    );
    assert_eq!(p["site-a"]["keycloak_db"]["host"], "127.0.0.1", "{label}");
}

#[test]
fn the_move_killed_at_its_boundaries_resumes_to_one_writer() {
    for point in [
        "before-apply=return(move-db-writer)",
        "after-apply=return(move-db-writer)",
    ] {
        let l = pgo_lab(&[]);
        let mut c = l.runbook();
        c.args(["run", "switchover", "--yes"])
            .env("FAILPOINTS", point);
        assert_eq!(run(c).code, -1, "{point}: killed");
        resume_until_done(&l, "r-1");
        one_writer_at_site_b(&l, point);
    }
}

#[test]
fn the_move_killed_between_shutdown_and_promotion_resumes_to_one_writer() {
    let l = pgo_lab(&[]);
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes"]);
    let mut child = spawn(c);
    // SIGKILL the moment the old primary is told to shut down, before the promotion.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = l.pgo();
        if p["site-a"]["spec"]["shutdown"] == true {
            let _ = child.kill();
            break;
        }
        assert!(Instant::now() < deadline, "the move never started: {p}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    let p = l.pgo();
    assert_ne!(
        (
            p["site-a"]["writable"].clone(),
            p["site-b"]["writable"].clone()
        ),
        (json!(true), json!(true)),
        "never two primaries, even killed: {p}"
    );
    resume_until_done(&l, "r-1");
    one_writer_at_site_b(&l, "killed mid-move");
}

#[test]
fn an_in_cluster_switchover_on_one_instance_is_refused_and_forced_says_what_pgo_did() {
    let l = pgo_lab(&[]);
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/pgo-switchover",
        "-p",
        "site=site-a",
        "--yes",
        "--json",
    ]);
    let out = run(c).expect(8);
    let reason = reason_of(&out);
    assert!(
        reason.contains("1 instance pod(s)") && reason.contains("at least two instances"),
        "{reason}"
    );
    assert_eq!(
        l.pgo()["site-a"]["spec"]["patroni"],
        Value::Null,
        "nothing was patched"
    );
    // Forced, PGO (the lab, as PGO does) refuses it silently: the step's answer says
    // what it saw, and the trigger was this attempt's own.
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/pgo-switchover",
        "-p",
        "site=site-a",
        "-p",
        "force=true",
        "-p",
        "force_reason=rehearse PGO's silent refusal",
        "--yes",
        "--json",
    ]);
    let out = run(c);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("status.patroni.switchover None"), "{text}");
    assert!(text.contains("only in its own log"), "{text}");
    let st = l.state();
    let errors = st["pgo"]["errors"].to_string();
    assert!(
        errors.contains("need more than one instance to switchover"),
        "{errors}"
    );
    assert!(
        errors.contains("r-2-switchover-"),
        "the trigger names the run and step: {errors}"
    );
}

#[test]
fn over_tls_the_move_verifies_the_servers_against_the_ca_and_plain_connections_are_refused() {
    let l = InLab::start_with(&[], |c| {
        c.shape.database = lab::world::Database::Pgo;
        c.tls = true;
    });
    l.until_pgo("both servers answer", |p| {
        p["site-a"]["writable"] == true && p["site-b"]["writable"] == false
    });
    let env = std::fs::read_to_string(l.env()).unwrap();
    assert!(
        env.contains("ca_file:") && !env.contains("tls: false"),
        "{env}"
    );
    // As PGO's pg_hba does, the users' connections are taken over TLS only.
    let port = l.pgo()["site-a"]["port"].as_u64().unwrap() as u16;
    let password = l.running().shared.lock().pgo.as_ref().unwrap().sites["site-a"]
        .password
        .clone();
    let plain = postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("hippo")
        .password(password)
        .dbname("hippo")
        .ssl_mode(postgres::config::SslMode::Disable)
        .connect(postgres::NoTls);
    assert!(plain.is_err(), "a plain connection is refused");
    let out = switchover(&l).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.pgo()["site-b"]["writable"], true);
}

#[test]
fn runbook_lab_stopped_by_sigterm_stops_its_postgresql_servers() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let mut c = runbook(&dir.path().join("j"));
    c.args(["lab", "--database", "pgo", "--dir"]).arg(&lab_dir);
    let mut child = spawn(c);
    let env = lab_dir.join("env.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&env) {
            if t.contains("pgo:") {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the lab never wrote {}",
            env.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ports: Vec<u16> = text
        .split("address: \"127.0.0.1:")
        .skip(1)
        .filter_map(|r| r.split('"').next()?.parse().ok())
        .collect();
    assert_eq!(ports.len(), 2, "{text}");
    for p in &ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok(),
            "{p} serves"
        );
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with SIGTERM on the child's pid has no memory effects here.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success(), "a clean stop");
    for p in &ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *p)).is_err(),
            "PostgreSQL on {p} was stopped with the lab"
        );
    }
}

/// docs/procedures.md's PGO rehearsal, line by line against this lab, with the exit
/// codes its comments state.
#[test]
fn the_pgo_rehearsal_runs_as_written() {
    let block = crate::readme::block_after("procedures", "### The database procedures (`pgo`)");
    let l = pgo_lab(&[]);
    let mut ran = 0;
    for line in block.lines() {
        let Some(args) = crate::readme::run_rehearsal_line(&l, line, &[]) else {
            continue;
        };
        ran += 1;
        if args.starts_with("run pgo/recreate-standby") && !line.contains("exit 8") {
            l.until_pgo("site-a replays from site-b", |p| {
                p["site-a"]["writable"] == false && p["site-a"]["running"] == true
            });
        }
    }
    assert_eq!(ran, 7, "every runbook line of the block ran");
    let p = l.pgo();
    assert_eq!(p["site-b"]["writable"], true, "{p}");
    assert_eq!(p["site-a"]["writable"], false, "{p}");
}
