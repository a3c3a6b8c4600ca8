//! The one path by which a run's events reach the journal: mask secrets, fold into the
//! in-memory run state, append and flush, then let the live snapshot catch up. Events
//! of concurrent fan-out items are serialised here, so sequence numbers follow the
//! order in which they became durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::Event;
use crate::id::RunId;
use crate::journal::{Journal, JournalError, RunSummary};
use crate::redact::Redactor;
use crate::state::RunState;

struct Inner {
    state: RunState,
    next_seq: u64,
    /// The first write that failed: nothing is written after it (its sequence number
    /// may be half-taken), and every later record answers with it.
    failed: Option<JournalError>,
}

pub struct Recorder {
    journal: Journal,
    run: RunId,
    inner: Mutex<Inner>,
    dirty: AtomicBool,
    redactor: Redactor,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("run", &self.run).finish()
    }
}

/// How often the live snapshot is refreshed while events arrive.
const LIVE_EVERY: Duration = Duration::from_millis(100);

impl Recorder {
    /// A recorder for run `run`, whose journal so far is `past` (empty for a new run).
    pub fn new(journal: Journal, run: RunId, past: &[Event], redactor: Redactor) -> Arc<Recorder> {
        let state = RunState::fold(&run.to_string(), past);
        Arc::new(Recorder {
            journal,
            run,
            inner: Mutex::new(Inner {
                state,
                next_seq: past.len() as u64,
                failed: None,
            }),
            dirty: AtomicBool::new(true),
            redactor,
        })
    }

    pub fn run_id(&self) -> RunId {
        self.run
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Right before an effect: this process still holds the run's lease.
    ///
    /// # Errors
    /// It does not: the effect must not start.
    pub fn confirm_lease(&self) -> Result<(), JournalError> {
        self.journal.confirm(self.run)
    }

    /// Make `event` durable. Returns only after the flush.
    ///
    /// # Errors
    /// The journal could not write it: the caller must stop before any further effect.
    pub fn record(&self, event: Event) -> Result<(), JournalError> {
        let event = self
            .redactor
            .event(event)
            .map_err(|e| JournalError::Corrupt {
                key: self.run.to_string(),
                message: e.to_string(),
            })?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = &inner.failed {
            return Err(first.again());
        }
        if let Some(label) = ends_wait(&event) {
            inner.state.waiting.remove(&label);
        }
        let status_before = inner.state.status;
        let halt_before = inner.state.halt.is_some();
        inner.state.apply(&event);
        // The run index changes only with the run's status (or its halt reason).
        let summary = (inner.next_seq == 0
            || inner.state.status != status_before
            || inner.state.halt.is_some() != halt_before
            || matches!(event, Event::Halted { .. } | Event::RunFailed { .. }))
        .then(|| RunSummary::of(self.run, &inner.state));
        if let Err(e) = self
            .journal
            .append(self.run, inner.next_seq, &event, summary.as_ref())
        {
            inner.failed = Some(e.again());
            return Err(e);
        }
        inner.next_seq += 1;
        let urgent = matches!(
            event,
            Event::RunCreated { .. }
                | Event::Halted { .. }
                | Event::RunFailed { .. }
                | Event::Completed { .. }
                | Event::Aborted { .. }
                | Event::Refused { .. }
                | Event::Resumed { .. }
        );
        if urgent {
            self.publish_locked(&inner.state);
        } else {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn publish_locked(&self, state: &RunState) {
        self.dirty.store(false, Ordering::Release);
        if let Err(e) = self.journal.publish_live(self.run, Some(state)) {
            tracing::warn!("cannot publish the live status: {e}");
        }
    }

    /// The runbook's step ids, for the live snapshot (readers show the pending ones).
    pub fn set_order(&self, order: Vec<String>, titles: BTreeMap<String, String>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.state.order = order;
        inner.state.titles = titles;
        self.dirty.store(true, Ordering::Release);
    }

    /// What step (or item) `label` is waiting for now, for the live snapshot only (not
    /// journaled: it changes with every poll). Cleared when the step's next event is
    /// recorded.
    pub fn waiting(&self, label: &str, text: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.state.waiting.insert(label.to_string(), text);
        self.dirty.store(true, Ordering::Release);
    }

    /// Read the current state without cloning all of it.
    pub fn with<T>(&self, f: impl FnOnce(&RunState) -> T) -> T {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&inner.state)
    }

    pub fn snapshot(&self) -> RunState {
        self.with(Clone::clone)
    }

    /// Refresh the live snapshot every [`LIVE_EVERY`] while the run is driven. Stops
    /// when the returned handle is dropped or aborted.
    pub fn spawn_live_publisher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LIVE_EVERY).await;
                if this.dirty.load(Ordering::Acquire) {
                    let inner = this.inner.lock().unwrap_or_else(|p| p.into_inner());
                    this.publish_locked(&inner.state);
                }
            }
        })
    }

    /// This process lets go of the run: the journal is the record again.
    pub fn withdraw_live(&self) {
        let _ = self.journal.publish_live(self.run, None);
    }
}

/// The step (or `step[item]`) whose wait an event ends, if any.
fn ends_wait(event: &Event) -> Option<String> {
    let (step, item) = match event {
        Event::StepSucceeded { step, item, .. }
        | Event::StepFailed { step, item, .. }
        | Event::StepSkipped { step, item, .. } => (step, item),
        Event::Halted {
            step: Some(step),
            item,
            ..
        } => (step, item),
        _ => return None,
    };
    Some(match item {
        Some(i) => format!("{step}[{i}]"),
        None => step.clone(),
    })
}
