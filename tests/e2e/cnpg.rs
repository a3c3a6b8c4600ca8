//! CloudNativePG as the database across two sites, on the lab's distributed topology
//! over real PostgreSQL servers (`lab/src/cnpg.rs`): the writer moved there and back
//! with demotion and promotion tokens, rows committed before each move present after
//! it, users logging in through a real HAProxy; killed at every boundary and resumed
//! to exactly one writer, both servers polled throughout; the token journaled the
//! moment it appears, so that a token CloudNativePG loses (#11074) strands nothing; an
//! unplanned promotion refused while the old primary answers writable.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn cnpg_lab() -> InLab {
    cnpg_lab_replicating(false)
}

/// The lab's Clusters carry the guide's synchronous stanza unless `asynchronous`.
pub(crate) fn cnpg_lab_replicating(asynchronous: bool) -> InLab {
    let l = InLab::start_with(&[], |c| {
        c.shape.traffic = lab::world::Traffic::Haproxy;
        c.shape.database = lab::world::Database::Cnpg;
        c.shape.infinispan_version = 15;
        c.shape.stateless = true;
        c.shape.asynchronous = asynchronous;
    });
    writer_is(&l, "site-a");
    l
}

/// A superuser's query on a site's server (what the lab's operator sees).
fn superuser_query(l: &InLab, site: &str, query: &str) -> Vec<String> {
    let port = l.running().shared.lock().cnpg.as_ref().unwrap().sites[site].port;
    let mut c = postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect(postgres::NoTls)
        .unwrap();
    c.query(query, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// Write a row on `site`, or say that the commit did not return within `within`
/// (a synchronous commit waiting for a standby that is gone never returns).
fn commit_returns(l: &InLab, site: &str, note: &str, within: Duration) -> Result<(), String> {
    let shared = l.running().shared.clone();
    let (site, note) = (site.to_string(), note.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let port = shared.lock().cnpg.as_ref().unwrap().sites[&site].port;
        let done = postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .dbname(lab::cnpg::DATABASE)
            .connect(postgres::NoTls)
            .and_then(|mut c| c.execute("INSERT INTO lab_rows (note) VALUES ($1)", &[&note]))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = tx.send(done);
    });
    rx.recv_timeout(within)
        .map_err(|_| format!("the commit did not return within {within:?}"))?
}

fn cnpg(l: &InLab) -> Value {
    l.state()["cnpg"]["sites"].clone()
}

/// Wait until `site` holds the only writable server and the other replays.
fn writer_is(l: &InLab, site: &str) {
    eventually(
        &format!("{site} the only writer"),
        Duration::from_secs(60),
        || {
            let c = cnpg(l);
            let writers: Vec<&str> = ["site-a", "site-b"]
                .into_iter()
                .filter(|s| c[*s]["writable"] == true)
                .collect();
            let others_replay = ["site-a", "site-b"]
                .into_iter()
                .filter(|s| *s != site)
                .all(|s| c[s]["writable"] == false);
            if writers == [site] && others_replay {
                Ok(())
            } else {
                Err(c.to_string())
            }
        },
    )
}

fn write_row(l: &InLab, site: &str, note: &str) {
    l.running()
        .shared
        .lock()
        .cnpg
        .as_ref()
        .unwrap()
        .write_row(site, note)
        .unwrap();
}

fn rows(l: &InLab, site: &str) -> Vec<String> {
    eventually(&format!("{site}'s rows"), Duration::from_secs(20), || {
        rows_now(l, site)
    })
}

/// The lab table's rows on a site's server now, or why they cannot be read.
fn rows_now(l: &InLab, site: &str) -> Result<Vec<String>, String> {
    l.running()
        .shared
        .lock()
        .cnpg
        .as_ref()
        .unwrap()
        .rows(site)
        .map_err(|e| e.to_string())
}

/// Both servers read every 20 ms while it lives: how often both wrote at once.
struct Watch {
    stop: Arc<AtomicBool>,
    both: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(l: &InLab) -> Watch {
        let shared = l.running().shared.clone();
        let (stop, both, polls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, b, p) = (Arc::clone(&stop), Arc::clone(&both), Arc::clone(&polls));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let ports: Vec<u16> = shared
                    .lock()
                    .cnpg
                    .as_ref()
                    .unwrap()
                    .sites
                    .values()
                    .map(|x| x.port)
                    .collect();
                let writable = ports
                    .iter()
                    .filter(|port| {
                        postgres::Config::new()
                            .host("127.0.0.1")
                            .port(**port)
                            .user("postgres")
                            .dbname("postgres")
                            .connect_timeout(Duration::from_millis(500))
                            .connect(postgres::NoTls)
                            .ok()
                            .and_then(|mut c| {
                                c.query_one("SELECT NOT pg_is_in_recovery()", &[]).ok()
                            })
                            .is_some_and(|r| r.get::<_, bool>(0))
                    })
                    .count();
                if writable > 1 {
                    b.fetch_add(1, Ordering::Relaxed);
                }
                p.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watch {
            stop,
            both,
            polls,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.both.load(Ordering::Relaxed),
            self.polls.load(Ordering::Relaxed),
        )
    }
}

fn switchover(l: &InLab) -> Out {
    kc26_with(l, "database-switchover", &[])
}

#[test]
fn the_writer_moves_there_and_back_three_times_keeping_every_row() {
    let l = cnpg_lab();
    let watch = Watch::start(&l);
    let mut written = Vec::new();
    let mut writer = "site-a";
    for round in 0..6 {
        let note = format!("before move {round}");
        write_row(&l, writer, &note);
        written.push(note);
        let out = switchover(&l);
        assert_eq!(
            out.code,
            0,
            "move {round}: {}\n{}\n{}",
            out.stdout,
            out.stderr,
            l.state()["cnpg"]
        );
        writer = if writer == "site-a" {
            "site-b"
        } else {
            "site-a"
        };
        writer_is(&l, writer);
        assert_eq!(
            rows(&l, writer),
            written,
            "move {round}: every row committed before it"
        );
        // The token was journaled with the step, and used.
        let id = out.json()["run_id"].as_str().unwrap().to_string();
        let mut s = l.runbook();
        s.args(["status", &id, "--json"]);
        let st: Value = serde_json::from_str(&run(s).expect(0).stdout).unwrap();
        let o = &st["steps"]["move-writer"]["outputs"];
        assert!(
            o["demotion_token"].as_str().is_some_and(|t| t.len() > 40),
            "{o}"
        );
        assert_eq!(
            cnpg(&l)[writer]["last_promotion_token"],
            o["demotion_token"],
            "{o}"
        );
    }
    let (both, polls) = watch.finish();
    eprintln!("six moves: {polls} polls of both servers, {both} with two writers");
    assert_eq!(both, 0, "never two writable primaries");
    // The former primary followed each new timeline without a base backup.
    let c = cnpg(&l);
    assert!(c["site-a"]["timeline"].as_i64().unwrap() >= 7, "{c}");
}

#[test]
fn killed_at_every_boundary_the_move_resumes_to_exactly_one_writer() {
    for point in [
        "before-apply=return(move-writer)",
        "after-progress=return(move-writer)",
        "after-apply=return(move-writer)",
        "after-journal=return(move-writer)",
    ] {
        let l = cnpg_lab();
        let watch = Watch::start(&l);
        write_row(&l, "site-a", point);
        let mut c = l.runbook();
        c.args([
            "--pack",
            "keycloak-26",
            "run",
            "database-switchover",
            "--yes",
        ])
        .env("FAILPOINTS", point);
        let out = run(c);
        assert_eq!(out.code, -1, "{point}: killed\n{}", out.stderr);
        resume_until_done(&l, "r-1");
        writer_is(&l, "site-b");
        assert_eq!(rows(&l, "site-b"), vec![point.to_string()], "{point}");
        let (both, polls) = watch.finish();
        eprintln!("{point}: {polls} polls, {both} with two writers");
        assert_eq!(both, 0, "{point}: never two writable primaries");
    }
}

#[test]
fn a_token_cloudnativepg_loses_after_it_was_journaled_strands_nothing() {
    // #11074: the demotion token is wiped from the status a second after it appears.
    // The run is killed right after journaling it; by the resume it is gone from the
    // Cluster, and the move goes on with the journaled one.
    let l = cnpg_lab();
    l.world(|w| {
        w.faults
            .push(lab::Fault::parse("cnpg-token-vanishes").unwrap())
    });
    let mut c = l.runbook();
    c.args([
        "--pack",
        "keycloak-26",
        "run",
        "database-switchover",
        "--yes",
    ])
    .env("FAILPOINTS", "after-progress=return(move-writer)");
    assert_eq!(run(c).code, -1);
    eventually(
        "the token gone from the Cluster",
        Duration::from_secs(20),
        || {
            let c = cnpg(&l);
            if c["site-a"]["demotion_token"].is_null() {
                Ok(())
            } else {
                Err(c.to_string())
            }
        },
    );
    resume_until_done(&l, "r-1");
    writer_is(&l, "site-b");
}

#[test]
fn an_unplanned_promotion_is_refused_while_the_old_primary_answers_writable() {
    let l = cnpg_lab();
    let out = kc26(&l, "site-failover");
    assert_eq!(out.code, 8, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("still answers as a writable primary"),
        "{}",
        out.stdout
    );
    writer_is(&l, "site-a");
}

#[test]
fn check_names_the_writer_and_puts_two_writable_primaries_before_everything() {
    let l = cnpg_lab();
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26", "check"]);
    let out = run(c);
    assert!(
        out.stdout
            .contains("database: site-a writes (CloudNativePG: site-a writes at "),
        "{}",
        out.stdout
    );
    // #9273's way to two writers: the replica cluster told it is the primary while the
    // other still is (no token: CloudNativePG promotes at once).
    let port = l.running().endpoints.kube["site-b"];
    let code = l.rt.block_on(async {
        reqwest::Client::new()
            .patch(format!(
                "http://{port}/apis/postgresql.cnpg.io/v1/namespaces/keycloak/clusters/pg-site-b"
            ))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"spec":{"replica":{"primary":"pg-site-b"}}}"#)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(code.is_success(), "{code}");
    eventually("both write", Duration::from_secs(30), || {
        let c = cnpg(&l);
        if c["site-a"]["writable"] == true && c["site-b"]["writable"] == true {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    let (code, v) = check(&l, Some("keycloak-26"));
    assert_eq!(code, 6, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("TWO WRITABLE PRIMARIES (split-brain): site-a and site-b"),
        "{v}"
    );
}

#[test]
fn a_lost_writer_site_fails_over_is_rebuilt_and_the_writer_moves_home_with_users_logging_in() {
    let l = cnpg_lab();
    let lb = l.running().endpoints.haproxy.unwrap().0;
    write_row(&l, "site-a", "before the loss");
    lose_site_a_and_fail_over(&l);
    assert_eq!(rows(&l, "site-b"), vec!["before the loss".to_string()]);
    for _ in 0..10 {
        assert_eq!(lb_get(lb, "/realms/master"), Ok("site-b".to_string()));
    }
    // site-a comes back: its Cluster is a replica of site-b's by now, so it never
    // writes again; it cannot follow (it diverged) until it is rebuilt.
    l.world(|w| w.faults.clear());
    std::thread::sleep(Duration::from_secs(2));
    let c = cnpg(&l);
    assert_ne!(c["site-a"]["writable"], true, "never two writers: {c}");
    for _ in 0..6 {
        assert_eq!(
            lb_get(lb, "/realms/master"),
            Ok("site-b".to_string()),
            "still out of traffic"
        );
    }
    let out = kc26(&l, "site-failback");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    replays_exactly(&l, "site-a", &["before the loss"]);
    let back: Vec<String> = (0..10)
        .map(|_| lb_get(lb, "/realms/master").unwrap_or_default())
        .collect();
    assert!(back.iter().any(|s| s == "site-a"), "{back:?}");
    write_row(&l, "site-b", "before going home");
    let out = kc26(&l, "database-switchover");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    writer_is(&l, "site-a");
    assert_eq!(
        rows(&l, "site-a"),
        vec![
            "before the loss".to_string(),
            "before going home".to_string()
        ]
    );
}

/// `site` writes and no other site does (a lost one may not answer at all).
fn writer_is_alone(l: &InLab, site: &str) {
    eventually(
        &format!("{site} the only writer"),
        Duration::from_secs(60),
        || {
            let c = cnpg(l);
            let others = ["site-a", "site-b"].into_iter().filter(|s| *s != site);
            if c[site]["writable"] == true && others.clone().all(|s| c[s]["writable"] != true) {
                Ok(())
            } else {
                Err(c.to_string())
            }
        },
    )
}

#[test]
fn the_keycloak_24_switchover_moves_a_cloudnativepg_writer_unchanged() {
    // The Keycloak 24 shape (Route53, external Infinispan 14) with CloudNativePG as the
    // database: its switchover's database step is the role, played by the cnpg vendor.
    let l = InLab::start_with(&[], |c| c.shape.database = lab::world::Database::Cnpg);
    writer_is(&l, "site-a");
    write_row(&l, "site-a", "before the switchover");
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes", "--json"]);
    let out = run(c);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    writer_is(&l, "site-b");
    assert_eq!(
        rows(&l, "site-b"),
        vec!["before the switchover".to_string()]
    );
}

/// The data at risk, as metrics: `check --watch` reads each replication link from the
/// databases themselves (WAL positions of the writer and the replica, the replica's
/// last replayed commit) and exports it per link; a replica that has replayed
/// everything is 0 behind.
#[test]
fn the_data_a_lost_writer_would_cost_is_exported_per_link() {
    let l = cnpg_lab();
    write_row(&l, "site-a", "before the scrape");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = l.runbook();
    c.args([
        "check",
        "--watch",
        &format!("127.0.0.1:{port}"),
        "--readiness-every",
        "0",
    ]);
    let mut watch = spawn(c);
    let url = format!("http://127.0.0.1:{port}");
    let m = eventually(
        "the link is exported and caught up",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let (_, _, m) = crate::bridge::http(&url, "GET", "/metrics", &[], "");
            if m.contains("runbook_replication_lag_bytes{from=\"site-a\",to=\"site-b\"} 0") {
                Ok(m)
            } else {
                Err(m)
            }
        },
    );
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        m.contains("runbook_replication_lag_seconds{from=\"site-a\",to=\"site-b\"} 0.000"),
        "{m}"
    );
    // The lab's Clusters carry the guide's synchronous stanza: read from site-a's server.
    assert!(
        m.contains("runbook_replication_synchronous{from=\"site-a\",to=\"site-b\"} 1"),
        "{m}"
    );
    // Only the writer-to-replica direction: no link from the replica.
    assert!(!m.contains("from=\"site-b\""), "{m}");
}

/// A merge patch of a site's Cluster through its Kubernetes API, as `kubectl annotate`
/// or `kubectl cnpg fencing` would send it.
pub(crate) fn patch_cluster(l: &InLab, site: &str, body: &str) -> Value {
    let port = l.running().endpoints.kube[site];
    let cluster = lab::cnpg::cluster_name(site);
    l.rt.block_on(async {
        let r = reqwest::Client::new()
            .patch(format!(
                "http://{port}/apis/postgresql.cnpg.io/v1/namespaces/keycloak/clusters/{cluster}"
            ))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.unwrap()
    })
}

/// Issue 32.4: a Cluster someone hibernated (healthy by its phase, nothing running:
/// `cnpg:docs/src/declarative_hibernation.md@v1.30.0`, cnpg.md 3.5 and 3.11) or fenced
/// (`cnpg:docs/src/fencing.md@v1.30.0`) never takes the writer, and the refusal says which and how to lift it;
/// lifted, the same move goes through.
#[test]
fn a_hibernated_or_fenced_cluster_is_refused_before_anything_is_done() {
    let l = cnpg_lab();
    let c = patch_cluster(
        &l,
        "site-b",
        r#"{"metadata":{"annotations":{"cnpg.io/hibernation":"on"}}}"#,
    );
    assert_eq!(c["metadata"]["annotations"]["cnpg.io/hibernation"], "on");
    eventually("site-b's server stopped", Duration::from_secs(30), || {
        let c = cnpg(&l);
        if c["site-b"]["running"] == false {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    // CloudNativePG's trap, as the lab plays it: the phase still says healthy.
    let c = patch_cluster(&l, "site-b", "{}");
    assert_eq!(c["status"]["phase"], "Cluster in healthy state");
    let out = switchover_named(&l).expect(8);
    let reason = out.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("pg-site-b` is HIBERNATED"), "{reason}");
    let c = cnpg(&l);
    assert_eq!(c["site-a"]["writable"], true, "nothing was done: {c}");
    assert!(c["site-a"]["demotion_token"].is_null(), "{c}");
    // Rehydrated; then the writer's own cluster fenced by someone: refused too.
    patch_cluster(
        &l,
        "site-b",
        r#"{"metadata":{"annotations":{"cnpg.io/hibernation":"off"}}}"#,
    );
    eventually("site-b replays again", Duration::from_secs(30), || {
        let c = cnpg(&l);
        if c["site-b"]["running"] == true && c["site-b"]["writable"] == false {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    patch_cluster(
        &l,
        "site-a",
        r#"{"metadata":{"annotations":{"cnpg.io/fencedInstances":"[\"*\"]"}}}"#,
    );
    eventually("site-a's server stopped", Duration::from_secs(30), || {
        let c = cnpg(&l);
        if c["site-a"]["running"] == false {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    let out = switchover_named(&l).expect(8);
    let reason = out.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("pg-site-a` is FENCED"), "{reason}");
    // Unfenced: the move goes through.
    patch_cluster(
        &l,
        "site-a",
        r#"{"metadata":{"annotations":{"cnpg.io/fencedInstances":null}}}"#,
    );
    writer_is(&l, "site-a");
    // site-b streams again (a row written at site-a reaches it), then the move.
    write_row(&l, "site-a", "after the fence");
    eventually(
        "site-b replays the new row",
        Duration::from_secs(30),
        || {
            let r = rows_now(&l, "site-b")?;
            if r.iter().any(|n| n == "after the fence") {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
    switchover(&l).expect(0);
    writer_is(&l, "site-b");
}

fn switchover_named(l: &InLab) -> Out {
    kc26_with(l, "database-switchover", &["to=site-b", "from=site-a"])
}

/// Issue 32.3: after a failover, `check --pack cnpg` names the former primary that does
/// not follow the writer and the `cnpg-rejoin` that rebuilds it; the rebuild is refused
/// on the only writer's site (nothing deleted), and on the former primary it discards
/// its data and streams the writer's rows.
#[test]
fn cnpg_rejoin_rebuilds_a_former_primary_and_never_the_only_writer() {
    let l = cnpg_lab();
    write_row(&l, "site-a", "before the loss");
    lose_site_a_and_fail_over(&l);
    l.world(|w| w.faults.clear());
    // The former primary is back: check names its rebuild.
    let (code, v) = eventually("check names the rebuild", Duration::from_secs(30), || {
        let (code, v) = check(&l, Some("cnpg"));
        if v["recommended"]["command"] == "runbook run cnpg/cnpg-rejoin -p site=site-a" {
            Ok((code, v))
        } else {
            Err(v.to_string())
        }
    });
    assert_eq!(code, 6, "{v}");
    // The only writer's site is never rebuilt.
    let mut c = l.runbook();
    c.args([
        "run",
        "cnpg/cnpg-rejoin",
        "-p",
        "site=site-b",
        "--yes",
        "--json",
    ]);
    let out = run(c).expect(8);
    assert!(out.stdout.contains("Nothing was deleted"), "{}", out.stdout);
    writer_is_alone(&l, "site-b");
    rejoin(&l, "site-a").expect(0);
    writer_is(&l, "site-b");
    replays_exactly(&l, "site-a", &["before the loss"]);
    let v = eventually("check: healthy", Duration::from_secs(30), || {
        let (code, v) = check(&l, Some("cnpg"));
        if code == 0 {
            Ok(v)
        } else {
            Err(v["reason"].to_string())
        }
    });
    // The rebuild put back the synchronous stanza the failover suspended: every
    // commit of site-b waits for site-a again, and check says so.
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("replication to site-a is SYNCHRONOUS: every commit waited for it"),
        "{v}"
    );
    assert_eq!(
        superuser_query(&l, "site-b", "SHOW synchronous_standby_names"),
        vec!["FIRST 1 (\"pg-site-a\")".to_string()]
    );
    let out = plan_live(&l, "database-switchover").expect(0);
    assert!(
        out.stdout.contains("replication to site-a is SYNCHRONOUS"),
        "{}",
        out.stdout
    );
}

/// Keycloak's guide requires every commit to wait for the other site. The lab's
/// Clusters carry the guide's stanza (cnpg.md 3.14) and the lab writes
/// `synchronous_standby_names` from it as CloudNativePG does (explicit.go, v1.30.0):
/// a lost site would block every commit of the promoted writer, so the failover
/// suspends the stanza in its promotion patch, journaled and kept in an annotation,
/// and the rebuild of the lost site puts it back.
#[test]
fn a_failover_suspends_synchronous_replication_on_the_survivor_until_the_rebuild() {
    let l = cnpg_lab();
    // The guide's configuration, as the servers run it: a commit at site-a waits for
    // site-b's designated primary (its application_name is its Cluster's name).
    eventually("site-a runs the stanza", Duration::from_secs(30), || {
        let r = superuser_query(&l, "site-a", "SHOW synchronous_standby_names");
        if r == ["FIRST 1 (\"pg-site-b\")"] {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    acknowledges_synchronously(&l, "site-a", "pg-site-b");
    commit_returns(&l, "site-a", "synchronous", Duration::from_secs(20)).unwrap();
    lose_site_a_and_fail_over(&l);
    // The promoted writer's commits return: nothing waits for the lost site.
    commit_returns(&l, "site-b", "after the failover", Duration::from_secs(20)).unwrap();
    assert_eq!(
        superuser_query(&l, "site-b", "SHOW synchronous_standby_names"),
        vec![String::new()]
    );
    let cluster = get_cluster(&l, "site-b");
    assert!(
        cluster["spec"]["postgresql"]["synchronous"].is_null(),
        "{cluster}"
    );
    let kept: Value = serde_json::from_str(
        cluster["metadata"]["annotations"]["runbook.keycloak.org/suspended-synchronous"]
            .as_str()
            .unwrap_or_else(|| panic!("{cluster}")),
    )
    .unwrap();
    assert_eq!(kept["standbyNamesPre"], serde_json::json!(["pg-site-a"]));
    // Journaled: the run's step says what it suspended and why.
    let mut c = l.runbook();
    c.args(["status", "r-1", "--json"]);
    let shown = run(c).expect(0).stdout;
    assert!(
        shown.contains("synchronous_suspended_why")
            && shown
                .contains("site-b's commits would wait for site-a's Cluster `pg-site-a` (lost)"),
        "{shown}"
    );
    let (_, v) = check(&l, Some("cnpg"));
    assert!(
        v["notes"]
            .to_string()
            .contains("site-b's synchronous replication is SUSPENDED since a failover"),
        "{v}"
    );
    // The rebuild puts it back; the writer waits for the rebuilt site again.
    l.world(|w| w.faults.clear());
    rejoin(&l, "site-a").expect(0);
    acknowledges_synchronously(&l, "site-b", "pg-site-a");
    let cluster = get_cluster(&l, "site-b");
    assert!(
        cluster["metadata"]["annotations"]["runbook.keycloak.org/suspended-synchronous"].is_null()
    );
    assert_eq!(cluster["spec"]["postgresql"]["synchronous"], kept);
    commit_returns(&l, "site-b", "synchronous again", Duration::from_secs(20)).unwrap();
    replays_exactly(
        &l,
        "site-a",
        &["synchronous", "after the failover", "synchronous again"],
    );
}

/// An asynchronous setup is what Keycloak's guide forbids: a planned move is refused
/// before anything is done, the plan names the guard and the loss window, and the
/// override with a reason moves the writer and is journaled.
#[test]
fn an_asynchronous_setup_is_refused_unless_forced_with_a_reason() {
    let l = cnpg_lab_replicating(true);
    let out = plan_live(&l, "database-switchover").expect(8);
    assert!(
        out.stdout.contains("builtin-cnpg-synchronous-")
            && out.stdout.contains(
                "replication to site-b is ASYNCHRONOUS (site-a's synchronous_standby_names is ``)"
            )
            && out
                .stdout
                .contains("the move loses nothing only because it waits for site-b to catch up"),
        "{}",
        out.stdout
    );
    let out = switchover(&l).expect(8);
    assert!(out.stdout.contains("ASYNCHRONOUS"), "{}", out.stdout);
    writer_is(&l, "site-a");
    kc26_with(
        &l,
        "database-switchover",
        &[
            "force=true",
            "force_reason=rehearsal on an asynchronous lab",
        ],
    )
    .expect(0);
    writer_is(&l, "site-b");
    let mut c = l.runbook();
    c.args(["status", "r-2", "--json"]);
    let status = run(c).expect(0).stdout;
    assert!(
        status.contains("builtin-cnpg-synchronous-")
            && status.contains("rehearsal on an asynchronous lab"),
        "{status}"
    );
}

/// The site's Cluster as its Kubernetes API serves it.
fn get_cluster(l: &InLab, site: &str) -> Value {
    let port = l.running().endpoints.kube[site];
    let cluster = lab::cnpg::cluster_name(site);
    l.rt.block_on(async {
        reqwest::get(format!(
            "http://{port}/apis/postgresql.cnpg.io/v1/namespaces/keycloak/clusters/{cluster}"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    })
}

/// site-a, the writer's site, is lost (its Keycloak answers no more, its PostgreSQL
/// crashes) and `site-failover` promotes site-b: the start of every failover story.
fn lose_site_a_and_fail_over(l: &InLab) {
    l.world(|w| {
        w.faults
            .push(lab::Fault::parse("site-down:site-a").unwrap())
    });
    eventually("site-a's database is down", Duration::from_secs(30), || {
        let c = cnpg(l);
        if c["site-a"]["running"] == false {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    let out = kc26(l, "site-failover");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    writer_is_alone(l, "site-b");
}

/// Until `site`'s server holds exactly these rows (a replica catching up).
fn replays_exactly(l: &InLab, site: &str, want: &[&str]) {
    eventually(
        &format!("{site} replays {want:?}"),
        Duration::from_secs(30),
        || {
            let r = rows_now(l, site)?;
            if r == want {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
}

/// `runbook --pack keycloak-26 run RUNBOOK --yes --json` against the lab.
fn kc26(l: &InLab, runbook: &str) -> Out {
    kc26_with(l, runbook, &[])
}

/// The same with parameters (`NAME=VALUE`, each passed as `-p`).
fn kc26_with(l: &InLab, runbook: &str, params: &[&str]) -> Out {
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26", "run", runbook, "--yes", "--json"]);
    for p in params {
        c.args(["-p", p]);
    }
    run(c)
}

/// `runbook run cnpg/cnpg-rejoin -p site=SITE --yes --json` against the lab.
fn rejoin(l: &InLab, site: &str) -> Out {
    let mut c = l.runbook();
    c.args([
        "run",
        "cnpg/cnpg-rejoin",
        "-p",
        &format!("site={site}"),
        "--yes",
        "--json",
    ]);
    run(c)
}

/// `runbook --pack keycloak-26 plan RUNBOOK --live` against the lab.
pub(crate) fn plan_live(l: &InLab, runbook: &str) -> Out {
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26", "plan", runbook, "--live"]);
    run(c)
}

/// Until the writer at `site` reports `standby` as its synchronous standby.
fn acknowledges_synchronously(l: &InLab, site: &str, standby: &str) {
    eventually(
        &format!("{standby} acknowledges {site}'s commits synchronously"),
        Duration::from_secs(30),
        || {
            let r = superuser_query(
                l,
                site,
                "SELECT application_name || ' ' || sync_state FROM pg_stat_replication",
            );
            if r == [format!("{standby} sync")] {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
}
