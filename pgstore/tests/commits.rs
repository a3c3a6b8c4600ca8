//! One synchronous commit per step on PostgreSQL: an event an effect waits on (an
//! intent, a halt, the end) is committed with a WAL flush before `append` returns;
//! a step's result is committed without waiting for one, and is flushed by the next.
//!
//! Counted with the server's own figures (`pg_stat_wal.wal_sync`, PostgreSQL 14+),
//! in a test binary of its own so that no other test writes meanwhile. The WAL
//! writer flushes asynchronous commits in the background every `wal_writer_delay`
//! (200 ms by default), so results cost a few flushes in all, intents one each.

mod common;

use std::time::Duration;

use engine::event::{Actor, Event};
use engine::id::RunId;
use engine::state::RunState;
use engine::store::{Append, NewRunRecord, Store};

fn wal_syncs(url: &str) -> i64 {
    let (_, pw) = common::server();
    let mut config = runbook_pgstore::Target::parse(url).unwrap().config;
    config.password(pw);
    let mut c = config.connect(postgres::NoTls).unwrap();
    // A backend reports its WAL figures for certain when it exits: the stores are
    // dropped before each count, and their backends given time to go.
    std::thread::sleep(Duration::from_millis(1500));
    c.query_one("SELECT wal_sync FROM pg_stat_wal", &[])
        .unwrap()
        .get(0)
}

fn append(store: &dyn Store, run: RunId, seq: u64, power_safe: bool) {
    let event = Event::StepSkipped {
        step: format!("s{seq}"),
        item: None,
        reason: "count".into(),
        at: seq,
    };
    store
        .append(Append {
            run,
            seq,
            event: &event,
            summary: None,
            release_locks: false,
            durable: true,
            power_safe,
            epoch: 0,
        })
        .unwrap();
}

#[test]
fn a_steps_result_costs_no_flush_of_its_own_and_an_intent_one() {
    const N: u64 = 100;
    let url = common::fresh_db();
    let store = common::open(&url, Duration::from_secs(30));
    let created = engine::testing::run_created("count", serde_json::json!({}), 1);
    let state = RunState::fold("r", [&created]);
    let (run, _) = store
        .create_run(NewRunRecord {
            sites: &[],
            runbook: "count",
            holder: &Actor::current(),
            since: 1,
            event: &created,
            state: &state,
        })
        .unwrap();
    drop(store);
    let before = wal_syncs(&url);
    let store = common::open(&url, Duration::from_secs(30));
    for seq in 1..=N {
        append(&store, run, seq, true);
    }
    drop(store);
    let after_intents = wal_syncs(&url);
    let store = common::open(&url, Duration::from_secs(30));
    for seq in N + 1..=2 * N {
        append(&store, run, seq, false);
    }
    drop(store);
    let after_results = wal_syncs(&url);
    let store = common::open(&url, Duration::from_secs(30));
    let (intents, results) = (after_intents - before, after_results - after_intents);
    assert!(
        intents >= N as i64,
        "{N} power-safe appends flushed the WAL {intents} times: each must flush before it returns"
    );
    assert!(
        results < N as i64 / 4,
        "{N} results flushed the WAL {results} times (intents: {intents}): a result must not wait for a flush of its own"
    );
    // The next power-safe append makes every result before it durable with itself:
    // all of them are in the journal, in order.
    append(&store, run, 2 * N + 1, true);
    let events = store.events(run).unwrap();
    assert_eq!(events.len() as u64, 2 * N + 2);
}
