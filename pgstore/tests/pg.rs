//! The PostgreSQL store against a real server: the storage suite every store runs,
//! then what only a shared store has: leases, fencing, the schema's version.
//!
//! The server is the one the README's test command starts (`scripts/pg.sh`), named by
//! `RUNBOOK_TEST_PG` (a URL without password) and `RUNBOOK_TEST_PGPASSWORD`. Each test
//! works in a database of its own.

use std::sync::Arc;
use std::time::Duration;

use engine::event::{Actor, Event};
use engine::id::RunId;
use engine::journal::JournalError;
use engine::lock::LockRecord;
use engine::state::RunState;
use engine::store::{Append, NewRunRecord, Store};
use engine::testing::suite;
use runbook_pgstore::{PgStore, Target};

mod common;
use common::{fresh_db, open, server};

#[test]
fn the_storage_suite_passes_on_postgresql() {
    for (name, case) in suite::CASES {
        let url = fresh_db();
        eprintln!("suite case: {name}");
        case(&|| Arc::new(open(&url, Duration::from_secs(30))) as Arc<dyn Store>);
    }
}

fn created() -> Event {
    engine::testing::run_created("x", serde_json::json!({}), 1)
}

fn other_process() -> Actor {
    Actor {
        operator: "bob".into(),
        host: "laptop-b".into(),
        pid: 4242,
    }
}

#[test]
fn a_second_driver_waits_for_the_lease_and_the_first_is_fenced_after() {
    let url = fresh_db();
    let a = open(&url, Duration::from_millis(800));
    let b = open(&url, Duration::from_millis(800));
    let ev = created();
    let state = RunState::fold("r", [&ev]);
    let sites = vec!["site-b".to_string()];
    let (run, lease_a) = a
        .create_run(NewRunRecord {
            sites: &sites,
            runbook: "x",
            holder: &Actor::current(),
            since: 1,
            event: &ev,
            text: &unchained(&ev),
            state: &state,
        })
        .unwrap();
    let bob = LockRecord {
        run_id: run,
        runbook: "x".into(),
        holder: other_process(),
        since: 1,
        lease_ms: None,
    };
    // While A's lease lasts, B may not take the run over; B is told who and how long.
    match b.acquire(&sites, &bob) {
        Err(JournalError::LeaseHeld {
            run: r,
            holder,
            expires_in,
        }) => {
            assert_eq!(r, run);
            assert_eq!(holder.host, Actor::current().host);
            assert!(expires_in <= Duration::from_millis(800), "{expires_in:?}");
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
    // A new run on the same site is refused whatever the lease: the site is the run's.
    let ev2 = created();
    let r2 = b.create_run(NewRunRecord {
        sites: &sites,
        runbook: "y",
        holder: &other_process(),
        since: 2,
        event: &ev2,
        text: &unchained(&ev2),
        state: &state,
    });
    assert!(matches!(r2, Err(JournalError::SiteHeld { .. })), "{r2:?}");
    std::thread::sleep(Duration::from_millis(900));
    let lease_b = b
        .acquire(&sites, &bob)
        .expect("the lease expired: B takes over");
    assert!(lease_b.epoch > lease_a.epoch);
    // A's next append and renewal are refused, naming B.
    let skipped = Event::StepSkipped {
        step: "s".into(),
        item: None,
        reason: "r".into(),
        at: 2,
    };
    let r = a.append(Append {
        run,
        seq: 1,
        event: &skipped,
        text: &unchained(&skipped),
        summary: None,
        release_locks: false,
        durable: true,
        power_safe: true,
        epoch: lease_a.epoch,
    });
    match r {
        Err(JournalError::Fenced { holder, .. }) => assert_eq!(holder.operator, "bob"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(matches!(
        a.renew(run, lease_a.epoch),
        Err(JournalError::Fenced { .. })
    ));
    assert_eq!(
        a.events(run).unwrap().len(),
        1,
        "A's refused append left nothing"
    );
    b.append(Append {
        run,
        seq: 1,
        event: &skipped,
        text: &unchained(&skipped),
        summary: None,
        release_locks: false,
        durable: true,
        power_safe: true,
        epoch: lease_b.epoch,
    })
    .unwrap();
    b.renew(run, lease_b.epoch).unwrap();
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let url = fresh_db();
    drop(open(&url, Duration::from_secs(30)));
    let (_, pw) = server();
    let mut t = Target::parse(&url).unwrap();
    t.config.password(pw);
    let mut c = t.config.connect(postgres::NoTls).unwrap();
    c.batch_execute(
        "INSERT INTO runbook_schema (version, applied_by) VALUES (999, 'runbook 9.9.9')",
    )
    .unwrap();
    let e = PgStore::open(&t, Duration::from_secs(30))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("schema is version 999, newer than this runbook"),
        "{e}"
    );
    // Opening twice does not apply a migration twice.
    c.batch_execute("DELETE FROM runbook_schema WHERE version = 999")
        .unwrap();
    drop(open(&url, Duration::from_secs(30)));
    let (n, top): (i64, i32) = {
        let r = c
            .query_one("SELECT count(*), max(version) FROM runbook_schema", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(n, i64::from(top), "each migration applied once");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    let mut t = Target::parse("postgres://ops:hunter2@127.0.0.1:1/x?sslmode=disable").unwrap();
    t.config.connect_timeout(Duration::from_millis(200));
    let e = PgStore::open(&t, Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.contains("could not be reached") || e.contains("connect"),
        "{e}"
    );
    let _ = RunId(1);
}

#[test]
fn a_drivers_live_snapshot_reaches_other_processes_and_is_withdrawn() {
    let url = fresh_db();
    let driver = open(&url, Duration::from_secs(30));
    let reader = open(&url, Duration::from_secs(30));
    assert_eq!(reader.read_live(RunId(1)).unwrap(), None);
    driver
        .publish_live(RunId(1), Some(r#"{"waiting":{"scale":"0 of 3 ready"}}"#))
        .unwrap();
    driver
        .publish_live(RunId(1), Some(r#"{"waiting":{"scale":"2 of 3 ready"}}"#))
        .unwrap();
    assert_eq!(
        reader.read_live(RunId(1)).unwrap().as_deref(),
        Some(r#"{"waiting":{"scale":"2 of 3 ready"}}"#)
    );
    driver.publish_live(RunId(1), None).unwrap();
    assert_eq!(reader.read_live(RunId(1)).unwrap(), None);
}

/// An event's stored text, as a store's own contract sees it (no chain: the journal
/// adds that).
fn unchained(event: &Event) -> String {
    engine::chain::text(event, None).unwrap()
}
