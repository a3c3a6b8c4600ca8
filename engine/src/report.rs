//! How the executor tells a person what is happening (the CLI prints it on stderr)
//! and asks a question when a manual gate is reached interactively.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::event::HaltKind;
use crate::model::Effect;

/// A progress notice. Step labels are `step` or `step[item]`.
#[derive(Debug, Clone)]
pub enum Notice {
    StepStarting {
        index: usize,
        total: usize,
        step: String,
        title: String,
        site: Option<String>,
        effect: Effect,
        items: Option<usize>,
    },
    Attempt {
        label: String,
        attempt: u32,
        calls: Vec<String>,
    },
    Waiting {
        label: String,
        what: String,
        elapsed: Duration,
        /// What the last check saw, in words (see `Action::explain`).
        last: Option<String>,
    },
    Done {
        label: String,
        elapsed: Duration,
        note: Option<String>,
    },
    Skipped {
        label: String,
        reason: String,
    },
    Failed {
        label: String,
        attempt: u32,
        error: String,
        retry_in: Option<Duration>,
    },
    InDoubt {
        label: String,
        decision: String,
    },
    Halted {
        label: Option<String>,
        kind: HaltKind,
        reason: String,
    },
    /// A safety guard was checked: `ok` when it held, else it was overridden.
    Guard {
        /// The step (or item) it was checked before; `None`: at the start.
        at: Option<String>,
        text: String,
        ok: bool,
    },
    /// A safety guard refused the run before any effect.
    Refused {
        reason: String,
    },
    Note(String),
}

/// Receives progress notices. Must not block for long.
pub trait Observer: Send + Sync {
    fn notice(&self, notice: Notice);
}

/// Observer that ignores everything (tests, `--quiet`).
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn notice(&self, _: Notice) {}
}

/// Asks a person a yes/no question (a manual gate reached at a terminal).
pub trait Prompt: Send + Sync {
    fn confirm(&self, question: &str) -> bool;
}

/// Ctrl-C: set once, seen by every step.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleep for `d`, or less if interrupted. Returns false when interrupted.
    pub async fn sleep(&self, d: Duration) -> bool {
        if self.is_set() {
            return false;
        }
        // tokio's timer has millisecond granularity: a zero pause must not wait a tick.
        if d.is_zero() {
            return true;
        }
        let notified = self.notify.notified();
        tokio::select! {
            () = tokio::time::sleep(d) => !self.is_set(),
            () = notified => false,
        }
    }
}
