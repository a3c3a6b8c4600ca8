//! The storage contract as tests. Every store runs this same suite: each case gets an
//! `open` function that opens one fresh, empty journal, and calls it again to reopen
//! the same journal (after dropping the handle it had).
//!
//! ```ignore
//! for (name, case) in engine::testing::suite::CASES {
//!     let dir = tempfile::tempdir().unwrap();
//!     case(&|| Arc::new(SledStore::open(dir.path()).unwrap()));
//! }
//! ```

use std::sync::Arc;

use crate::event::{Actor, Event};
use crate::id::RunId;
use crate::state::{RunState, RunStatus};
use crate::store::lock::LockRecord;
use crate::store::{Append, JournalError, NewRunRecord, RunSummary, Store};

pub type Open<'a> = &'a dyn Fn() -> Arc<dyn Store>;

/// One case of the suite.
pub type Case = fn(Open<'_>);

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    (
        "create, append, read back, index",
        append_read_back_and_index,
    ),
    (
        "run ids stay small and unique across reopens",
        run_ids_are_small_and_unique,
    ),
    (
        "appends are conditional on the sequence",
        appends_are_conditional,
    ),
    (
        "a run refused for a held site leaves nothing",
        refused_run_leaves_nothing,
    ),
    (
        "locks: holder, takeover by the same run, release",
        locks_hold_and_release,
    ),
    (
        "an append not made durable is made so by the next",
        deferred_appends_survive,
    ),
    (
        "imported runs keep their ids, new ids follow",
        import_keeps_ids,
    ),
];

fn created(runbook: &str) -> Event {
    crate::testing::run_created(runbook, serde_json::json!({}), 1)
}

fn create(store: &dyn Store, sites: &[&str], runbook: &str) -> Result<RunId, JournalError> {
    let event = created(runbook);
    let state = RunState::fold("new", [&event]);
    let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
    store
        .create_run(NewRunRecord {
            sites: &sites,
            runbook,
            holder: &Actor::current(),
            since: 1,
            event: &event,
            text: &unchained(&event),
            state: &state,
        })
        .map(|(id, _)| id)
}

fn append(store: &dyn Store, run: RunId, seq: u64, event: &Event) -> Result<(), JournalError> {
    store.append(Append {
        run,
        seq,
        event,
        text: &unchained(event),
        summary: None,
        release_locks: false,
        durable: true,
        power_safe: true,
        epoch: 0,
    })
}

fn skipped(step: &str) -> Event {
    Event::StepSkipped {
        step: step.into(),
        item: None,
        reason: "suite".into(),
        at: 2,
    }
}

pub fn append_read_back_and_index(open: Open<'_>) {
    let store = open();
    let id = create(store.as_ref(), &[], "one").unwrap();
    append(store.as_ref(), id, 1, &skipped("a")).unwrap();
    let end = Event::Completed { at: 5 };
    let state = RunState::fold(&id.to_string(), [&created("one"), &skipped("a"), &end]);
    store
        .append(Append {
            run: id,
            seq: 2,
            event: &end,
            text: &unchained(&end),
            summary: Some(&RunSummary::of(id, &state)),
            release_locks: true,
            durable: true,
            power_safe: true,
            epoch: 0,
        })
        .unwrap();
    assert_eq!(
        store.events(id).unwrap(),
        vec![created("one"), skipped("a"), end]
    );
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].run_id, runs[0].status), (id, RunStatus::Completed));
    assert!(matches!(
        store.events(RunId(999)),
        Err(JournalError::UnknownRun(RunId(999)))
    ));
}

pub fn run_ids_are_small_and_unique(open: Open<'_>) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let store = open();
        ids.push(create(store.as_ref(), &[], "x").unwrap());
        ids.push(create(store.as_ref(), &[], "x").unwrap());
    }
    assert_eq!(ids, (1..=6).map(RunId).collect::<Vec<_>>());
}

pub fn appends_are_conditional(open: Open<'_>) {
    let store = open();
    let id = create(store.as_ref(), &[], "x").unwrap();
    append(store.as_ref(), id, 1, &skipped("a")).unwrap();
    match append(store.as_ref(), id, 1, &skipped("b")) {
        Err(JournalError::Conflict { run, seq: 1, .. }) => assert_eq!(run, id),
        other => panic!("a taken sequence number must be refused, got {other:?}"),
    }
    match append(store.as_ref(), id, 5, &skipped("c")) {
        Err(JournalError::Conflict { seq: 5, .. }) => {}
        other => panic!("a gap must be refused, got {other:?}"),
    }
    // Refused appends left nothing.
    assert_eq!(store.events(id).unwrap().len(), 2);
    // A summary-carrying append is conditional too.
    let end = Event::Completed { at: 3 };
    let r = store.append(Append {
        run: id,
        seq: 1,
        event: &end,
        text: &unchained(&end),
        summary: Some(&RunSummary::of(id, &RunState::default())),
        release_locks: true,
        durable: true,
        power_safe: true,
        epoch: 0,
    });
    assert!(matches!(r, Err(JournalError::Conflict { .. })), "{r:?}");
    assert_eq!(store.events(id).unwrap()[1], skipped("a"));
}

pub fn refused_run_leaves_nothing(open: Open<'_>) {
    let store = open();
    let first = create(store.as_ref(), &["site-a"], "one").unwrap();
    match create(store.as_ref(), &["site-b", "site-a"], "two") {
        Err(JournalError::SiteHeld { site, holder }) => {
            assert_eq!(site, "site-a");
            assert_eq!(holder.run_id, first);
            assert_eq!(holder.runbook, "one");
        }
        other => panic!("expected SiteHeld, got {other:?}"),
    }
    assert_eq!(store.runs().unwrap().len(), 1, "no second run left behind");
    let locks = store.locks().unwrap();
    assert_eq!(locks.len(), 1, "site-b was not taken: {locks:?}");
    // The refused run did not use up an id.
    assert_eq!(
        create(store.as_ref(), &["site-b"], "three").unwrap(),
        RunId(first.0 + 1)
    );
}

pub fn locks_hold_and_release(open: Open<'_>) {
    let store = open();
    let a = create(store.as_ref(), &["site-a", "site-b"], "x").unwrap();
    let holder = |run| LockRecord {
        run_id: run,
        runbook: "x".into(),
        holder: Actor::current(),
        since: 0,
        lease_ms: None,
    };
    let sites = ["site-a".to_string(), "site-b".to_string()];
    // The same run takes its locks back (resume); its appends carry the new lease.
    let lease = store.acquire(&sites, &holder(a)).unwrap();
    match store.acquire(&sites[1..], &holder(RunId(a.0 + 100))) {
        Err(JournalError::SiteHeld { site, holder }) => {
            assert_eq!((site.as_str(), holder.run_id), ("site-b", a));
        }
        other => panic!("expected SiteHeld, got {other:?}"),
    }
    // Only the holder releases.
    store.release("site-a", RunId(a.0 + 100)).unwrap();
    assert_eq!(store.locks().unwrap().len(), 2);
    store.release("site-a", a).unwrap();
    assert_eq!(store.locks().unwrap().len(), 1);
    // The end of the run releases the rest, with its event.
    let end = Event::Completed { at: 3 };
    store
        .append(Append {
            run: a,
            seq: 1,
            event: &end,
            text: &unchained(&end),
            summary: Some(&RunSummary::of(a, &RunState::default())),
            release_locks: true,
            durable: true,
            power_safe: true,
            epoch: lease.epoch,
        })
        .unwrap();
    assert!(store.locks().unwrap().is_empty());
    store.acquire(&sites, &holder(RunId(a.0 + 100))).unwrap();
}

pub fn deferred_appends_survive(open: Open<'_>) {
    let id = {
        let store = open();
        let id = create(store.as_ref(), &[], "x").unwrap();
        store
            .append(Append {
                run: id,
                seq: 1,
                event: &skipped("a"),
                text: &unchained(&skipped("a")),
                summary: None,
                release_locks: false,
                durable: false,
                power_safe: false,
                epoch: 0,
            })
            .unwrap();
        append(store.as_ref(), id, 2, &skipped("b")).unwrap();
        id
    };
    let store = open();
    assert_eq!(store.events(id).unwrap().len(), 3);
}

pub fn import_keeps_ids(open: Open<'_>) {
    let store = open();
    let runs: Vec<(RunId, Vec<Event>)> = [3, 7]
        .into_iter()
        .map(|n| (RunId(n), vec![created("old"), Event::Completed { at: 2 }]))
        .collect();
    store.import(&runs).unwrap();
    let index = store.runs().unwrap();
    assert_eq!(
        index
            .iter()
            .map(|r| (r.run_id, r.status))
            .collect::<Vec<_>>(),
        vec![
            (RunId(3), RunStatus::Completed),
            (RunId(7), RunStatus::Completed)
        ]
    );
    assert_eq!(store.events(RunId(7)).unwrap().len(), 2);
    assert_eq!(create(store.as_ref(), &[], "new").unwrap(), RunId(8));
}

/// An event's stored text, as a store's own contract sees it (no chain: the journal
/// adds that).
fn unchained(event: &Event) -> String {
    crate::chain::text(event, None).unwrap()
}
