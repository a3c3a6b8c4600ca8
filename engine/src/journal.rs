//! The journal: the policy over a [`Store`]. The store keeps events, the run index
//! and the locks; this module decides what goes with each event:
//!
//! - **Durability.** Every append is durable before it returns, so the next effect
//!   never runs ahead of its record. One exception, because no effect follows it: the
//!   start of a read-only step (and a passed guard) is written but not made durable
//!   on its own; the run's next durable append makes it so. A crash in between loses
//!   only the news that a read-only step had begun, and resume runs that step again,
//!   as it would if it were in doubt. This saves one flush (about 0.15 ms, most of a
//!   no-op step's cost) per read-only step.
//! - **Power loss.** Durable against a killed process is not durable against a power
//!   cut: sled's flush (`sync_file_range`) flushes neither the disk's cache nor the
//!   file's metadata. Every append an effect waits on (a step's intent) and every
//!   append a person waits on (a halt, a gate, the end, a resume, a decision) is also
//!   synced to the disk (`fdatasync`) before it returns. A step's result is not on
//!   its own: the next step's intent syncs it with itself, before that step's effect,
//!   so a step costs one sync. A power cut in between loses only that result, and
//!   resume settles the step as it settles one in doubt (its postcondition, its effect
//!   class). PostgreSQL commits every append with its own WAL flush.
//! - **Locks.** A run's site locks are released with the event that ends it
//!   (completed, aborted, refused), atomically.
//! - **Orphans.** Locks of a run whose process died before its first event, found
//!   when a run starts, are released.
//! - **Leases.** A store with expiring leases (PostgreSQL) hands the driver an epoch
//!   and a time to live. The journal remembers when it last renewed (on the monotonic
//!   clock), carries the epoch on every append, renews in the background
//!   ([`Journal::renew`]), and [`Journal::confirm`] is called right before every
//!   effect: past two thirds of the time to live it renews first, and a lease that
//!   cannot be renewed stops the run before the effect.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::{now_ms, Actor, Event};
use crate::id::RunId;
use crate::model::Effect;
use crate::state::RunState;
use crate::store::lock::LockRecord;
use crate::store::{sled::SledStore, Append, Lease, NewRunRecord, Store};
pub use crate::store::{JournalError, Location, RunSummary};

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

/// A step's result: the next step's intent makes it power-safe (see the module doc).
fn is_result(event: &Event) -> bool {
    matches!(
        event,
        Event::StepSucceeded { .. } | Event::StepFailed { .. } | Event::StepSkipped { .. }
    )
}

fn unserializable(e: serde_json::Error) -> JournalError {
    JournalError::Storage(format!("an event cannot be serialized: {e}"))
}

/// Whether an event ends its run (its locks go with it).
fn ends_run(event: &Event) -> bool {
    matches!(
        event,
        Event::Completed { .. } | Event::Aborted { .. } | Event::Refused { .. }
    )
}

/// The lease this process holds on the run it drives.
#[derive(Debug, Clone, Copy)]
struct Held {
    run: RunId,
    lease: Lease,
    /// When the lease was last granted or renewed: the request's start, so the
    /// validity counted here never outlasts the store's.
    since: Instant,
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    location: Location,
    held: Arc<Mutex<Option<Held>>>,
    /// The newest event this process wrote per run: (seq, hash of its stored text),
    /// the `prev` of the next one (read from the store on a miss).
    heads: Arc<Mutex<std::collections::HashMap<RunId, (u64, String)>>>,
}

impl Journal {
    /// Open (or create) the journal at `location`.
    ///
    /// # Errors
    /// `Busy` when another process has it open (naming the runs it drives), any
    /// storage error.
    pub fn open_at(location: &Location) -> Result<Journal, JournalError> {
        let store: Arc<dyn Store> = match location {
            Location::Dir(dir) => Arc::new(SledStore::open(dir)?),
            Location::Remote(shown) => {
                return Err(JournalError::Open {
                    dir: PathBuf::from(shown),
                    message: "a database journal is opened by its store (Journal::over)".into(),
                })
            }
        };
        Ok(Journal::over(store, location.clone()))
    }

    /// Open (or create) the sled journal in `dir`.
    ///
    /// # Errors
    /// As [`Journal::open_at`].
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        Journal::open_at(&Location::Dir(dir.to_path_buf()))
    }

    /// A journal over a store already open.
    pub fn over(store: Arc<dyn Store>, location: Location) -> Journal {
        Journal {
            store,
            location,
            held: Arc::default(),
            heads: Arc::default(),
        }
    }

    /// Open, waiting out a reader: `runbook status` in another terminal holds a sled
    /// journal for milliseconds at a time. A process that drives a run is not waited
    /// for: that is `Busy` naming it.
    ///
    /// # Errors
    /// As [`Journal::open_at`].
    pub fn open_patiently(
        location: &Location,
        patience: Duration,
    ) -> Result<Journal, JournalError> {
        let deadline = Instant::now() + patience;
        loop {
            match Journal::open_at(location) {
                Err(JournalError::Busy { holders, .. })
                    if holders.is_empty() && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Whether a sled journal was ever created in `dir`.
    pub fn exists(dir: &Path) -> bool {
        SledStore::exists(dir)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Start a run: release orphaned locks, then hand out its id, take its sites and
    /// write its first event, all or nothing.
    ///
    /// # Errors
    /// `SiteHeld` naming the holder; storage errors.
    pub fn create_run(
        &self,
        sites: &[String],
        runbook: &str,
        holder: &Actor,
        event: &Event,
    ) -> Result<RunId, JournalError> {
        self.clear_orphan_locks()?;
        let mut state = RunState::default();
        state.apply(event);
        let asked = Instant::now();
        let text = crate::chain::text(event, None).map_err(unserializable)?;
        let (run, lease) = self.store.create_run(NewRunRecord {
            sites,
            runbook,
            holder,
            since: now_ms(),
            event,
            text: &text,
            state: &state,
        })?;
        self.hold(run, lease, asked);
        self.set_head(run, 0, crate::chain::hash(&text));
        Ok(run)
    }

    fn hold(&self, run: RunId, lease: Lease, since: Instant) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(Held { run, lease, since });
    }

    fn held(&self, run: RunId) -> Option<Held> {
        let h = *self.held.lock().unwrap_or_else(|p| p.into_inner());
        h.filter(|h| h.run == run)
    }

    /// The lease this process holds, if any: (run, its time to live).
    pub fn lease(&self) -> Option<(RunId, Duration)> {
        let h = (*self.held.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some((h.run, h.lease.ttl?))
    }

    /// Renew the lease on `run` now.
    ///
    /// # Errors
    /// `Fenced`: another process holds the run's sites now; storage errors.
    pub fn renew(&self, run: RunId) -> Result<(), JournalError> {
        let Some(h) = self.held(run) else {
            return Ok(());
        };
        let asked = Instant::now();
        self.store.renew(run, h.lease.epoch)?;
        self.hold(run, h.lease, asked);
        Ok(())
    }

    /// Stop holding `run`'s lease (its sites stay the run's): this process drives it
    /// no more.
    ///
    /// # Errors
    /// Storage errors.
    pub fn let_go(&self, run: RunId) -> Result<(), JournalError> {
        let Some(h) = self.held(run) else {
            return Ok(());
        };
        self.store.let_go(run, h.lease.epoch)?;
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Right before an effect of `run`: the lease is valid for at least a third of its
    /// time to live (on the monotonic clock), renewing it first if need be.
    ///
    /// # Errors
    /// The lease cannot be renewed: the effect must not start.
    pub fn confirm(&self, run: RunId) -> Result<(), JournalError> {
        let Some(h) = self.held(run) else {
            return Ok(());
        };
        let Some(ttl) = h.lease.ttl else {
            return Ok(());
        };
        if h.since.elapsed() < ttl.mul_f64(2.0 / 3.0) {
            return Ok(());
        }
        self.renew(run)
    }

    /// Append event `seq` of `run` (already masked of secrets), with the run's new
    /// index line when its status changed. Durable on return, except as the module doc
    /// says; the run's locks go with the event that ends it.
    ///
    /// # Errors
    /// `Conflict` (another writer), storage errors: the event is then not durable and
    /// the caller must stop.
    pub fn append(
        &self,
        run: RunId,
        seq: u64,
        event: &Event,
        summary: Option<&RunSummary>,
    ) -> Result<(), JournalError> {
        let prev = match seq {
            0 => None,
            _ => Some(self.prev(run, seq)?),
        };
        let text = crate::chain::text(event, prev.as_deref()).map_err(unserializable)?;
        let summary = summary.map(|s| RunSummary {
            head: Some(crate::chain::head(seq, &text)),
            ..s.clone()
        });
        self.store.append(Append {
            run,
            seq,
            event,
            text: &text,
            summary: summary.as_ref(),
            release_locks: ends_run(event),
            durable: !precedes_no_effect(event),
            power_safe: !precedes_no_effect(event) && !is_result(event),
            epoch: self.held(run).map_or(0, |h| h.lease.epoch),
        })?;
        self.set_head(run, seq, crate::chain::hash(&text));
        Ok(())
    }

    /// The hash of event `seq - 1` of `run`: this process's own last write, or read.
    fn prev(&self, run: RunId, seq: u64) -> Result<String, JournalError> {
        let cached = self
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run)
            .filter(|(s, _)| *s + 1 == seq)
            .map(|(_, h)| h.clone());
        if let Some(h) = cached {
            return Ok(h);
        }
        let raw = self.store.raw_events(run)?;
        match raw.iter().find(|(s, _)| *s + 1 == seq) {
            Some((_, text)) => Ok(crate::chain::hash(text)),
            None => Err(JournalError::Conflict {
                run,
                seq,
                why: "the event before it is not in the journal",
            }),
        }
    }

    fn set_head(&self, run: RunId, seq: u64, hash: String) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        // One entry per run this process writes; a process writes a handful.
        heads.insert(run, (seq, hash));
    }

    /// A run's events as stored, byte for byte, for `journal verify` and `export`.
    ///
    /// # Errors
    /// `UnknownRun`; storage errors.
    pub fn raw_events(&self, run: RunId) -> Result<Vec<(u64, String)>, JournalError> {
        self.store.raw_events(run)
    }

    /// Publish (or, with `None`, withdraw) the live snapshot of a run this process
    /// drives, for stores that carry it to other processes.
    ///
    /// # Errors
    /// Storage errors.
    pub fn publish_live(&self, run: RunId, state: Option<&RunState>) -> Result<(), JournalError> {
        let text =
            state
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| JournalError::Corrupt {
                    key: run.to_string(),
                    message: e.to_string(),
                })?;
        self.store.publish_live(run, text.as_deref())
    }

    /// The live snapshot another process publishes for `run`, if the store carries one.
    pub fn live_state(&self, run: RunId) -> Option<RunState> {
        let text = self.store.read_live(run).ok()??;
        serde_json::from_str(&text).ok()
    }

    /// Ask the process driving `run` to stop at its next safe point and abort it.
    ///
    /// # Errors
    /// Storage or file system errors.
    pub fn request_abort(&self, run: RunId, request: &str) -> Result<(), JournalError> {
        self.store.request_abort(run, request)
    }

    /// A pending request to abort `run`, if any.
    pub fn abort_request(&self, run: RunId) -> Option<String> {
        self.store.abort_request(run).ok().flatten()
    }

    /// Forget a request to abort `run`.
    pub fn clear_abort_request(&self, run: RunId) {
        let _ = self.store.clear_abort_request(run);
    }

    /// Write whole runs at once (importing history, benchmarks), never a live run.
    ///
    /// # Errors
    /// Storage errors.
    pub fn import(&self, runs: &[(RunId, Vec<Event>)]) -> Result<(), JournalError> {
        self.store.import(runs)
    }

    /// All events of a run, in order.
    ///
    /// # Errors
    /// `UnknownRun`, or an unreadable entry.
    pub fn events(&self, run: RunId) -> Result<Vec<Event>, JournalError> {
        self.store.events(run)
    }

    /// The run index, oldest first.
    ///
    /// # Errors
    /// An unreadable entry.
    pub fn runs(&self) -> Result<Vec<RunSummary>, JournalError> {
        self.store.runs()
    }

    /// Current site locks.
    ///
    /// # Errors
    /// An unreadable entry.
    pub fn locks(&self) -> Result<Vec<(String, LockRecord)>, JournalError> {
        self.store.locks()
    }

    /// Release locks left by a run that never recorded its first event (its process
    /// died between taking the locks and journaling the run: journals written before
    /// runs were created in one step).
    ///
    /// # Errors
    /// Storage errors.
    pub fn clear_orphan_locks(&self) -> Result<(), JournalError> {
        for (site, holder) in self.store.locks()? {
            let has_events = match self.store.events(holder.run_id) {
                Ok(_) => true,
                Err(JournalError::UnknownRun(_)) => false,
                Err(e) => return Err(e),
            };
            if !has_events && !crate::store::lock::process_alive(&holder.holder) {
                self.store.release(&site, holder.run_id)?;
            }
        }
        Ok(())
    }

    /// Take every site in `sites` for `record.run_id` (see [`Store::acquire`]).
    ///
    /// # Errors
    /// `SiteHeld` naming the first site held by another run.
    pub fn acquire(&self, sites: &[String], record: &LockRecord) -> Result<(), JournalError> {
        self.clear_orphan_locks()?;
        let asked = Instant::now();
        let lease = self.store.acquire(sites, record)?;
        self.hold(record.run_id, lease, asked);
        Ok(())
    }
}
