//! Driving a run: a loop of decide → do → record. What comes next is decided from the
//! run state alone (`decide.rs`, pure); this module does the I/O it is told to do and
//! records each result through the recorder (journal first, then the in-memory fold),
//! which is the next decision's input. A new run and a resumed run take exactly this
//! path: the state they start from is the fold of the journal.
//!
//! Split by concept:
//! - `step.rs`: a step as a whole (`when`, its site, its items, the progress line);
//! - `fanout.rs`: the items of a `for_each` step, some at a time;
//! - `item.rs`: one step or item: a gate, or settling one found in doubt;
//! - `attempt.rs`: attempts of one effect: guards, preconditions, intent, apply,
//!   and what a failure leads to;
//! - `verify.rs`: the postcondition, checked once or polled until it holds;
//! - `guards.rs`: the runbook's safety guards, live, right before an effect.

mod attempt;
mod fanout;
mod guards;
mod item;
mod step;
mod verify;
mod work;

use std::sync::Arc;

use serde_json::Value as Json;

use crate::action::{Action, Registry};
use crate::decide::{self, Drive, RunNext};
use crate::env::Environment;
use crate::event::{now_ms, Actor, Event, HaltKind};
use crate::journal::JournalError;
use crate::model::Runbook;
use crate::recorder::Recorder;
use crate::report::{Interrupt, Notice, Observer, Prompt};
use crate::scope::label;
use crate::state::RunStatus;
use crate::template::Templates;

/// How a drive ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub status: RunStatus,
    pub halted_at: Option<String>,
    pub reason: Option<String>,
}

/// Everything needed to drive one run.
pub struct Executor {
    pub runbook: Arc<Runbook>,
    /// The action of each step, in step order: resolved once, when the run's runbook
    /// was loaded ([`Registry::bind`]).
    pub actions: Vec<Arc<dyn Action>>,
    pub registry: Arc<Registry>,
    pub env: Arc<Environment>,
    /// All parameters, secrets included (memory only).
    pub params: Json,
    pub recorder: Arc<Recorder>,
    pub observer: Arc<dyn Observer>,
    pub interrupt: Interrupt,
    pub prompt: Option<Arc<dyn Prompt>>,
    pub actor: Actor,
    pub templates: Arc<Templates>,
    /// The journal's facts about earlier runs (`history` in templates).
    pub history: Json,
}

/// How one step, item or guard check ended.
enum ItemOutcome {
    Done,
    Halt {
        kind: HaltKind,
        reason: String,
    },
    /// A guard did not hold before any effect of the run.
    Refuse {
        guard: String,
        reason: String,
        observation: Json,
    },
    Fail {
        error: String,
    },
}

impl Executor {
    fn run_id(&self) -> String {
        self.recorder.run_id().to_string()
    }

    /// Drive the run from its current state until it completes, halts or fails.
    ///
    /// # Errors
    /// Only journal errors: everything else is recorded as a halt or a failure.
    pub async fn drive(self: &Arc<Self>) -> Result<Outcome, JournalError> {
        let mut drive = Drive::default();
        let mut last_done = None;
        loop {
            drive.interrupted = self.interrupt.is_set();
            let next = self
                .recorder
                .with(|s| decide::next(&self.runbook, s, drive));
            match next {
                RunNext::Over(_) | RunNext::Stopped(_) => return Ok(self.as_it_stands()),
                RunNext::CheckGuards => {
                    drive.guards_checked = true;
                    if let Some(stop) = self.enforce_guards(None, None).await? {
                        return self.stop(None, stop);
                    }
                }
                RunNext::Interrupted(index) => {
                    let id = &self.runbook.steps[index].id;
                    let reason = format!("interrupted before step `{id}`; nothing of it was done");
                    return self.halt(Some(id), None, HaltKind::Interrupted, reason);
                }
                RunNext::Step(index) => {
                    drive.guards_checked = true;
                    let id = &self.runbook.steps[index].id;
                    if last_done == Some(index) {
                        // A step reported done that the journal does not show done: a
                        // bug, and looping on it would hide it.
                        let error = format!("step `{id}` ended without its end in the journal");
                        return self.fail(id, error);
                    }
                    match self.run_step(index).await? {
                        ItemOutcome::Done => last_done = Some(index),
                        stop => return self.stop(Some(id), stop),
                    }
                }
                RunNext::Complete => {
                    self.recorder.record(Event::Completed { at: now_ms() })?;
                    return Ok(Outcome {
                        status: RunStatus::Completed,
                        halted_at: None,
                        reason: None,
                    });
                }
            }
        }
    }

    /// The outcome of a run that is not to be driven (over, or waiting for resume).
    fn as_it_stands(&self) -> Outcome {
        self.recorder.with(|s| Outcome {
            status: s.status,
            halted_at: s.halt.as_ref().and_then(|h| h.step.clone()),
            reason: s.halt.as_ref().map(|h| h.reason.clone()),
        })
    }

    /// Record how the run stopped at `step` (`None`: before any step).
    fn stop(&self, step: Option<&str>, how: ItemOutcome) -> Result<Outcome, JournalError> {
        match how {
            ItemOutcome::Done => Ok(self.as_it_stands()),
            ItemOutcome::Halt { kind, reason } => self.halt(step, None, kind, reason),
            ItemOutcome::Refuse {
                guard,
                reason,
                observation,
            } => match decide::on_guard_failure(self.recorder.with(|s| s.had_effect)) {
                decide::GuardStop::Halt => self.halt(step, None, HaltKind::Guard, reason),
                decide::GuardStop::Refuse => self.refuse(step, guard, reason, observation),
            },
            ItemOutcome::Fail { error } => self.fail(step.unwrap_or("-"), error),
        }
    }

    fn refuse(
        &self,
        step: Option<&str>,
        guard: String,
        reason: String,
        observation: Json,
    ) -> Result<Outcome, JournalError> {
        self.recorder.record(Event::Refused {
            guard,
            step: step.map(str::to_string),
            item: None,
            reason: reason.clone(),
            observation,
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Refused {
            reason: reason.clone(),
        });
        Ok(Outcome {
            status: RunStatus::Refused,
            halted_at: step.map(str::to_string),
            reason: Some(reason),
        })
    }

    fn halt(
        &self,
        step: Option<&str>,
        item: Option<String>,
        kind: HaltKind,
        reason: String,
    ) -> Result<Outcome, JournalError> {
        self.recorder.record(Event::Halted {
            step: step.map(str::to_string),
            item: item.clone(),
            kind,
            reason: reason.clone(),
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Halted {
            label: step.map(|s| label(s, item.as_deref())),
            kind,
            reason: reason.clone(),
        });
        Ok(Outcome {
            status: RunStatus::Halted,
            halted_at: step.map(str::to_string),
            reason: Some(reason),
        })
    }

    fn fail(&self, step: &str, error: String) -> Result<Outcome, JournalError> {
        self.recorder.record(Event::RunFailed {
            step: step.to_string(),
            error: error.clone(),
            at: now_ms(),
        })?;
        Ok(Outcome {
            status: RunStatus::Failed,
            halted_at: Some(step.to_string()),
            reason: Some(error),
        })
    }
}
