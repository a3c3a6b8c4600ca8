//! The durable journal in sled: append-only events per run, one index of runs, and
//! the site locks. Every append is flushed to disk before it returns, so the next
//! effect never runs ahead of its record. Key layout: `keys.rs`.
//!
//! One exception, because no effect follows it: the start of a read-only step is
//! written but not flushed on its own; the step's next event (or any later append)
//! flushes it. A crash in between loses only the news that a read-only step had
//! begun, and resume runs that step again, as it would if it were in doubt. This
//! saves one flush (about 0.15 ms, most of a no-op step's cost) per read-only step.
//!
//! sled lets one process open a database at a time. The process driving a run keeps
//! it open; other processes (a second terminal's `runbook status`) read the live
//! snapshots the driver writes next to it (`live.rs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::event::Event;
use crate::keys::{Key, RunId, LOCK, RUN};
use crate::lock::LockRecord;
use crate::model::Effect;
use crate::state::{RunState, RunStatus};

const SCHEMA: &str = "1";

/// The start of a read-only step: no effect waits on its record (see the module doc).
fn precedes_no_effect(event: &Event) -> bool {
    matches!(
        event,
        Event::StepStarted {
            effect: Effect::ReadOnly,
            ..
        } | Event::GuardPassed { .. }
    )
}

/// One line of `runbook history`: kept in the run index so that listing runs does not
/// fold every journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub run_id: RunId,
    pub runbook: String,
    pub title: String,
    pub status: RunStatus,
    pub operator: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub halted_at: Option<String>,
    pub reason: Option<String>,
}

impl RunSummary {
    pub fn of(id: RunId, state: &RunState) -> RunSummary {
        RunSummary {
            run_id: id,
            runbook: state.runbook.clone(),
            title: state.title.clone(),
            status: state.status,
            operator: state.created_by.operator.clone(),
            created_at: state.created_at,
            updated_at: state.updated_at,
            halted_at: state.halt.as_ref().and_then(|h| h.step.clone()),
            reason: state.halt.as_ref().map(|h| h.reason.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal at `{}` is in use by another runbook process{}", dir.display(), describe_holders(holders))]
    Busy {
        dir: PathBuf,
        holders: Vec<RunState>,
    },
    #[error("cannot open the journal at `{}`: {source}", dir.display())]
    Open { dir: PathBuf, source: sled::Error },
    #[error("journal storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("journal entry `{key}` is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error("no run `{0}` in this journal (see `runbook history`)")]
    UnknownRun(RunId),
    #[error(
        "site `{site}` is held by run {}",
        crate::lock::describe_holder(holder)
    )]
    SiteHeld { site: String, holder: LockRecord },
}

fn describe_holders(holders: &[RunState]) -> String {
    if holders.is_empty() {
        return String::new();
    }
    let list: Vec<String> = holders
        .iter()
        .map(|h| {
            format!(
                "{} ({}, pid {} on {})",
                h.run_id, h.runbook, h.driver.pid, h.driver.host
            )
        })
        .collect();
    format!(": {}", list.join(", "))
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct Journal {
    db: sled::Db,
    dir: PathBuf,
}

fn corrupt(key: &[u8], e: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt {
        key: Key::decode(key)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| format!("{key:?}")),
        message: e.to_string(),
    }
}

impl Journal {
    /// Open (or create) the journal in `dir`.
    ///
    /// # Errors
    /// `Busy` when another process has it open (naming the runs it drives), or any
    /// storage error.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Open {
            dir: dir.to_path_buf(),
            source: sled::Error::Io(e),
        })?;
        let db = match sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::LowSpace)
            // sled caches up to 1 GB by default: far more than a CLI run needs.
            .cache_capacity(16 * 1024 * 1024)
            .open()
        {
            Ok(db) => db,
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(JournalError::Busy {
                    dir: dir.to_path_buf(),
                    holders: crate::live::LiveDir::new(dir).active(),
                })
            }
            Err(source) => {
                return Err(JournalError::Open {
                    dir: dir.to_path_buf(),
                    source,
                })
            }
        };
        let schema = Key::Meta("schema".into()).encode();
        if db.get(&schema)?.is_none() {
            db.insert(schema, SCHEMA.as_bytes())?;
            db.flush()?;
        }
        Ok(Journal {
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// Open for driving a run. A reader (`runbook status` in another terminal) holds
    /// the journal for milliseconds at a time: wait that out, for up to `patience`.
    /// A process that drives a run is not waited for.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open_patiently(
        dir: &Path,
        patience: std::time::Duration,
    ) -> Result<Journal, JournalError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Journal::open(dir) {
                Err(JournalError::Busy { holders, .. })
                    if holders.is_empty() && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Whether a journal was ever created in `dir`.
    pub fn exists(dir: &Path) -> bool {
        dir.join("db").exists()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new run id, never handed out before in this journal.
    ///
    /// # Errors
    /// Storage errors.
    pub fn new_run_id(&self) -> Result<RunId, JournalError> {
        // A counter of our own, flushed before use: sled's generate_id skips a
        // million after each reopen, and operators type these ids.
        let key = Key::Meta("next_run_id".into()).encode();
        let next = self.db.update_and_fetch(&key, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        let n = next
            .as_deref()
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1);
        Ok(RunId(n))
    }

    /// Append one event (already masked of secrets), update the run index when given a
    /// summary (the run's status changed), and release the run's locks when the run
    /// ends; then flush to disk.
    ///
    /// # Errors
    /// Storage errors; the event is then not durable and the caller must stop.
    pub fn append(
        &self,
        run: RunId,
        seq: u64,
        event: &Event,
        summary: Option<&RunSummary>,
    ) -> Result<(), JournalError> {
        let bytes =
            serde_json::to_vec(event).map_err(|e| corrupt(&Key::Event(run, seq).encode(), e))?;
        let ends = matches!(
            event,
            Event::Completed { .. } | Event::Aborted { .. } | Event::Refused { .. }
        );
        if summary.is_none() && !ends {
            // One key: sled writes it atomically on its own. (A batch costs two more
            // log writes, each synced: sled rolls its IO buffer before and after the
            // batch manifest.)
            self.db.insert(Key::Event(run, seq).encode(), bytes)?;
            if !precedes_no_effect(event) {
                self.db.flush()?;
            }
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        batch.insert(Key::Event(run, seq).encode(), bytes);
        if let Some(summary) = summary {
            batch.insert(
                Key::Run(run).encode(),
                serde_json::to_vec(summary).map_err(|e| corrupt(&Key::Run(run).encode(), e))?,
            );
        }
        if ends {
            for (site, holder) in self.locks()? {
                if holder.run_id == run {
                    batch.remove(Key::Lock(site).encode());
                }
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Write many runs' events at once, flushing once at the end: for importing or
    /// generating history (benchmarks), never for a live run.
    ///
    /// # Errors
    /// Storage errors.
    pub fn bulk_import(&self, runs: &[(RunId, Vec<Event>)]) -> Result<(), JournalError> {
        let mut batch = sled::Batch::default();
        for (run, events) in runs {
            let state = RunState::fold(&run.to_string(), events);
            for (seq, e) in events.iter().enumerate() {
                let bytes = serde_json::to_vec(e)
                    .map_err(|err| corrupt(&Key::Event(*run, seq as u64).encode(), err))?;
                batch.insert(Key::Event(*run, seq as u64).encode(), bytes);
            }
            batch.insert(
                Key::Run(*run).encode(),
                serde_json::to_vec(&RunSummary::of(*run, &state))
                    .map_err(|e| corrupt(&Key::Run(*run).encode(), e))?,
            );
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// All events of a run, in order.
    ///
    /// # Errors
    /// `UnknownRun`, or an unreadable entry.
    pub fn events(&self, run: RunId) -> Result<Vec<Event>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(Key::events_of(run)) {
            let (k, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?);
        }
        if out.is_empty() {
            return Err(JournalError::UnknownRun(run));
        }
        Ok(out)
    }

    /// The run index, oldest first.
    ///
    /// # Errors
    /// An unreadable entry.
    pub fn runs(&self) -> Result<Vec<RunSummary>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([RUN]) {
            let (k, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?);
        }
        Ok(out)
    }

    /// Current site locks.
    ///
    /// # Errors
    /// An unreadable entry.
    pub fn locks(&self) -> Result<Vec<(String, LockRecord)>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([LOCK]) {
            let (k, v) = kv?;
            let Ok(Key::Lock(site)) = Key::decode(&k) else {
                return Err(corrupt(&k, "not a lock key"));
            };
            out.push((
                site,
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?,
            ));
        }
        Ok(out)
    }

    /// Drop locks left by a run that never recorded its first event (its process
    /// died between taking the locks and journaling the run).
    ///
    /// # Errors
    /// Storage errors.
    pub fn clear_orphan_locks(&self) -> Result<(), JournalError> {
        for (site, holder) in self.locks()? {
            let has_events = self
                .db
                .scan_prefix(Key::events_of(holder.run_id))
                .next()
                .is_some();
            if !has_events && !crate::lock::process_alive(&holder.holder) {
                self.db.remove(Key::Lock(site).encode())?;
            }
        }
        Ok(())
    }

    /// Take every site in `sites` for `record.run_id`, all or none. A site already held
    /// by the same run is taken over (that is how a resumed run gets its locks back).
    ///
    /// # Errors
    /// `SiteHeld` naming the first site held by another run.
    pub fn acquire(&self, sites: &[String], record: &LockRecord) -> Result<(), JournalError> {
        let value = serde_json::to_vec(record).map_err(|e| corrupt(b"L", e))?;
        let result = self.db.transaction(|tx| {
            for site in sites {
                let key = Key::Lock(site.clone()).encode();
                if let Some(existing) = tx.get(&key)? {
                    let holder: LockRecord = serde_json::from_slice(&existing)
                        .map_err(|e| ConflictableTransactionError::Abort(corrupt(&key, e)))?;
                    if holder.run_id != record.run_id {
                        return Err(ConflictableTransactionError::Abort(
                            JournalError::SiteHeld {
                                site: site.clone(),
                                holder,
                            },
                        ));
                    }
                }
                tx.insert(key, value.clone())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.db.flush()?;
                Ok(())
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;

    #[test]
    fn a_damaged_entry_is_named_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let id = j.new_run_id().unwrap();
        j.append(id, 0, &Event::Completed { at: 5 }, None).unwrap();
        // bytes that are no event, under the run's second event key
        j.db.insert(
            Key::Event(id, 1).encode(),
            &b"{\"event\":\"completed\",\"at\":"[..],
        )
        .unwrap();
        let e = j.events(id).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, JournalError::Corrupt { .. }), "{text}");
        assert!(
            text.contains("Event(") && text.contains("is unreadable"),
            "{text}"
        );
        j.db.insert(Key::Run(id).encode(), &b"[]"[..]).unwrap();
        assert!(matches!(j.runs(), Err(JournalError::Corrupt { .. })));
    }

    #[test]
    fn append_read_back_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let id = j.new_run_id().unwrap();
        let ev = Event::Completed { at: 5 };
        let mut state = RunState::default();
        state.apply(&ev);
        j.append(id, 0, &ev, Some(&RunSummary::of(id, &state)))
            .unwrap();
        assert_eq!(j.events(id).unwrap(), vec![ev]);
        assert_eq!(j.runs().unwrap()[0].status, RunStatus::Completed);
        assert!(matches!(
            j.events(RunId(999)),
            Err(JournalError::UnknownRun(_))
        ));
        assert!(j.new_run_id().unwrap() > id);
    }

    #[test]
    fn run_ids_stay_small_and_unique_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let j = Journal::open(dir.path()).unwrap();
            ids.push(j.new_run_id().unwrap());
            ids.push(j.new_run_id().unwrap());
        }
        assert_eq!(ids, (1..=6).map(RunId).collect::<Vec<_>>());
    }

    #[test]
    fn locks_refuse_other_runs_and_release_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let a = LockRecord {
            run_id: RunId(1),
            runbook: "x".into(),
            holder: Actor::current(),
            since: 0,
        };
        let b = LockRecord {
            run_id: RunId(2),
            ..a.clone()
        };
        let sites = vec!["site-a".to_string(), "site-b".to_string()];
        j.acquire(&sites, &a).unwrap();
        j.acquire(&sites, &a).unwrap();
        match j.acquire(&["site-b".to_string()], &b) {
            Err(JournalError::SiteHeld { site, holder }) => {
                assert_eq!(site, "site-b");
                assert_eq!(holder.run_id, RunId(1));
            }
            other => panic!("expected SiteHeld, got {other:?}"),
        }
        let end = Event::Completed { at: 1 };
        j.append(
            RunId(1),
            0,
            &end,
            Some(&RunSummary::of(RunId(1), &RunState::default())),
        )
        .unwrap();
        assert!(j.locks().unwrap().is_empty());
        j.acquire(&sites, &b).unwrap();
    }

    #[test]
    fn a_second_open_in_another_process_is_busy() {
        // sled's lock is per process (fcntl); within one process a second open of the
        // same path is refused too, which is what this checks.
        let dir = tempfile::tempdir().unwrap();
        let _j = Journal::open(dir.path()).unwrap();
        match Journal::open(dir.path()) {
            Err(JournalError::Busy { .. }) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
    }
}
