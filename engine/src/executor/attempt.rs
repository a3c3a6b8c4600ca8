//! The attempts of one effect. Each attempt: preconditions live, the state to record
//! before the effect (`prepare`, once), the intent journaled, apply within the step's
//! timeout, then the postcondition polled. What a failed attempt leads to (again,
//! halt, fail) is `decide::after_failure`; here is only the doing and the words.

use std::time::Instant;

use serde_json::Value as Json;

use super::verify::Verified;
use super::work::Item;
use super::{Executor, ItemOutcome};
use crate::action::StepError;
use crate::decide::{self, AfterFailure, Failure, Phase};
use crate::event::{now_ms, Event, HaltKind};
use crate::failpoint;
use crate::journal::JournalError;
use crate::model::Outputs;
use crate::report::Notice;
use crate::scope::short;

/// How one attempt ended.
enum Tried {
    Done,
    /// Stopped without a retry to consider (a precondition not met, an interrupt).
    Stop(ItemOutcome),
    Failed {
        phase: Phase,
        error: StepError,
    },
}

impl Executor {
    /// Attempt the item until it succeeds or a decision stops it. `check_guards`: its
    /// first attempt checks the guards that name its step first. Once applied, even in
    /// part, its own effect may change what a guard reads (a take-offline makes
    /// replication mixed); from then on its preconditions, checked before every
    /// attempt, are what protect it.
    pub(super) async fn attempts(
        &self,
        item: &Item,
        check_guards: bool,
    ) -> Result<ItemOutcome, JournalError> {
        let step = self.step_of(item);
        let max = step.retry.max_attempts();
        let mut prepared = item.prior.prepared.clone();
        let mut attempt = item.prior.attempts;
        for tries in 1.. {
            attempt += 1;
            if check_guards && tries == 1 {
                if let Some(stop) = self.enforce_guards(Some(step), item.key.clone()).await? {
                    return Ok(stop);
                }
            }
            let (phase, error) = match self.attempt(item, attempt, &mut prepared).await? {
                Tried::Done => return Ok(ItemOutcome::Done),
                Tried::Stop(outcome) => return Ok(outcome),
                Tried::Failed { phase, error } => (phase, error),
            };
            let decision = decide::after_failure(Failure {
                phase,
                retryable: error.retryable,
                tries,
                max,
                effect: item.effect,
                has_require: !step.require.is_empty(),
                interrupted: self.interrupt.is_set(),
            });
            let retry = decision == AfterFailure::Retry;
            if let Phase::Apply { .. } = phase {
                self.recorder.record(Event::StepFailed {
                    step: step.id.clone(),
                    item: item.key.clone(),
                    attempt,
                    error: error.message.clone(),
                    will_retry: retry,
                    at: now_ms(),
                })?;
            }
            let pause = retry.then(|| self.env.scaled_pause(step.retry.pause_after(tries)));
            if retry || matches!(phase, Phase::Apply { .. }) {
                self.observer.notice(Notice::Failed {
                    label: item.label.clone(),
                    attempt,
                    error: match phase {
                        Phase::Precondition => format!("cannot check precondition: {error}"),
                        _ => error.message.clone(),
                    },
                    retry_in: pause,
                });
            }
            let stop = match (decision, pause) {
                (AfterFailure::Retry, Some(pause)) => {
                    if self.interrupt.sleep(pause).await {
                        continue;
                    }
                    ItemOutcome::Halt {
                        kind: HaltKind::Interrupted,
                        reason: format!("interrupted while `{}` waited to try again", item.label),
                    }
                }
                (decision, _) => self.gave_up(item, decision, phase, &error, tries, max),
            };
            return Ok(stop);
        }
        unreachable!("the attempts loop returns")
    }

    /// The words for an item that will not be tried again.
    fn gave_up(
        &self,
        item: &Item,
        decision: AfterFailure,
        phase: Phase,
        e: &StepError,
        tries: u32,
        max: u32,
    ) -> ItemOutcome {
        let label = &item.label;
        let run = self.run_id();
        let hint = if tries >= max && max > 1 {
            format!(" (gave up after {max} attempts)")
        } else {
            String::new()
        };
        match (phase, decision) {
            (Phase::Precondition, _) => ItemOutcome::Halt {
                kind: HaltKind::Precondition,
                reason: format!("precondition of `{label}` could not be checked, nothing was done: {e}"),
            },
            (Phase::Prepare, _) => ItemOutcome::Fail {
                error: format!("step `{label}`: cannot read the state to record before the effect: {e}"),
            },
            (Phase::Apply { needs_operator: true, .. }, AfterFailure::Halt(kind)) => ItemOutcome::Halt {
                kind,
                reason: format!(
                    "`{label}`: {}. Nothing after it was done. When you have decided, `runbook resume {run}` checks it again and goes on",
                    e.message
                ),
            },
            (Phase::Apply { .. }, AfterFailure::Halt(kind)) => ItemOutcome::Halt {
                kind,
                reason: format!(
                    "`{label}` {}{hint}. Nothing after it was done. Once the cause is \
                     fixed, `runbook resume {run}` checks it again and goes on",
                    e.message
                ),
            },
            (Phase::Apply { .. }, _) => ItemOutcome::Fail {
                error: format!("step `{label}` failed{hint}: {}", e.message),
            },
        }
    }

    /// One attempt: preconditions, prepare, intent, apply, verify.
    async fn attempt(
        &self,
        item: &Item,
        attempt: u32,
        prepared: &mut Outputs,
    ) -> Result<Tried, JournalError> {
        let step = self.step_of(item);
        // Preconditions: live, right before the effect, every attempt.
        for cond in &step.require {
            match self.check_condition(item, cond).await {
                Ok(c) if c.holds => {}
                Ok(c) => {
                    return Ok(Tried::Stop(ItemOutcome::Halt {
                        kind: HaltKind::Precondition,
                        reason: format!(
                            "precondition of `{}` not met, nothing was done: {}; observed: {}",
                            item.label,
                            c.message,
                            short(&c.observation)
                        ),
                    }))
                }
                Err(error) => {
                    return Ok(Tried::Failed {
                        phase: Phase::Precondition,
                        error,
                    })
                }
            }
        }
        if prepared.is_empty() {
            match item.action.prepare(&item.ctx, &item.args).await {
                Ok(p) => *prepared = p,
                Err(error) => {
                    return Ok(Tried::Failed {
                        phase: Phase::Prepare,
                        error,
                    })
                }
            }
        }
        self.recorder.record(Event::StepStarted {
            step: step.id.clone(),
            item: item.key.clone(),
            attempt,
            effect: item.effect,
            prepared: prepared.clone(),
            calls: item.action.describe(&item.ctx, &item.args),
            timeout_ms: Some(item.timeout.as_millis() as u64),
            at: now_ms(),
        })?;
        self.apply(item, attempt, prepared).await
    }

    /// Apply the effect within the step's timeout, then wait for its postcondition.
    /// What the action journals in the middle of its effect joins `prepared`, for the
    /// rest of this attempt and the next ones.
    async fn apply(
        &self,
        item: &Item,
        attempt: u32,
        prepared: &mut Outputs,
    ) -> Result<Tried, JournalError> {
        let step_id = &self.step_of(item).id;
        let key = item.key.as_deref();
        // The last check before the effect: this process still holds the run's sites.
        self.recorder.confirm_lease()?;
        failpoint::hit("before-apply", step_id, key);
        self.observer.notice(Notice::Attempt {
            label: item.label.clone(),
            attempt,
            calls: item.action.describe(&item.ctx, &item.args),
        });
        let attempt_start = Instant::now();
        tracing::debug!(step = %item.label, attempt, "applying");
        let mut learned = Outputs::new();
        let applied = tokio::time::timeout(
            item.timeout,
            self.apply_recording(item, attempt, prepared, &mut learned),
        )
        .await;
        prepared.extend(learned);
        let prepared: &Outputs = prepared;
        failpoint::hit("after-apply", step_id, key);
        let applied_phase = |unmet, needs_operator| Phase::Apply {
            unmet,
            needs_operator,
        };
        let out = match applied {
            // The call was dropped (its connection closed) with its request possibly
            // delivered: the outcome is unknown, never a plain failure.
            Err(_) => {
                let error = StepError::outcome_unknown(format!(
                    "no answer within the step's timeout of {}",
                    humantime::format_duration(item.timeout)
                ));
                return self.unknown_outcome(item, attempt, prepared, error).await;
            }
            Ok(Err(error)) if error.outcome_unknown && !self.interrupt.is_set() => {
                return self.unknown_outcome(item, attempt, prepared, error).await;
            }
            Ok(Err(_)) if self.interrupt.is_set() => {
                return Ok(Tried::Stop(ItemOutcome::Halt {
                    kind: HaltKind::Interrupted,
                    reason: format!(
                    "interrupted during `{}`; it is left in doubt and will be checked on resume",
                    item.label
                ),
                }))
            }
            Ok(Err(error)) => {
                return Ok(Tried::Failed {
                    phase: applied_phase(false, error.needs_operator),
                    error,
                })
            }
            Ok(Ok(out)) => out,
        };
        let (observation, waited) = match self
            .verify(item, attempt_start + item.timeout, prepared)
            .await
        {
            Verified::Holds(observation, waited) => (observation, waited),
            Verified::TimedOut(msg) => {
                return Ok(Tried::Failed {
                    phase: applied_phase(true, false),
                    error: StepError::transient(msg),
                })
            }
            Verified::Fenced(e) => return Err(e),
            Verified::Interrupted => {
                return Ok(Tried::Stop(ItemOutcome::Halt {
                    kind: HaltKind::Interrupted,
                    reason: format!(
                    "interrupted while waiting for `{}` to take effect; it is left in doubt and \
                         will be checked on resume",
                    item.label
                ),
                }))
            }
        };
        self.took_effect(item, prepared, out, observation, waited)?;
        failpoint::hit("after-journal", step_id, key);
        Ok(Tried::Done)
    }

    /// The action's `apply`, journaling each fact it records in the middle of its
    /// effect (`StepCtx::record_progress`) before it goes on.
    async fn apply_recording(
        &self,
        item: &Item,
        attempt: u32,
        prepared: &Outputs,
        learned: &mut Outputs,
    ) -> Result<Outputs, StepError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ctx = item.ctx.clone();
        ctx.progress = crate::action::ProgressSink(Some(tx));
        let step = self.step_of(item).id.clone();
        let apply = item.action.apply(&ctx, &item.args, prepared);
        tokio::pin!(apply);
        loop {
            tokio::select! {
                done = &mut apply => return done,
                Some((outputs, ack)) = rx.recv() => {
                    learned.extend(outputs.clone());
                    let kept = self
                        .recorder
                        .record(Event::StepProgress {
                            step: step.clone(),
                            item: item.key.clone(),
                            attempt,
                            outputs,
                            at: now_ms(),
                        })
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let _ = ack.send(kept);
                    failpoint::hit("after-progress", &step, item.key.as_deref());
                }
            }
        }
    }

    /// An effect whose answer never came back: it may or may not have been applied.
    /// A destructive one is in doubt: journaled as such, not sent again, and the run
    /// halts before any later step could make it harmful (bringing replication online
    /// after a clear); the operator settles it, as after a crash. An idempotent one
    /// counts as done if its postcondition holds now, else as a failed attempt.
    async fn unknown_outcome(
        &self,
        item: &Item,
        attempt: u32,
        prepared: &Outputs,
        error: StepError,
    ) -> Result<Tried, JournalError> {
        let phase = Phase::Apply {
            unmet: false,
            needs_operator: false,
        };
        if item.effect != crate::model::Effect::Destructive {
            return match self.postcondition(item).await {
                Ok(Some(post)) if post.holds => {
                    let note = format!(
                        "its answer was lost ({}), but its postcondition holds",
                        error.message
                    );
                    self.observer
                        .notice(Notice::Note(format!("`{}`: {note}", item.label)));
                    let mut out = Outputs::new();
                    out.insert("summary".into(), Json::String(note));
                    self.took_effect(item, prepared, out, post.observation, None)?;
                    Ok(Tried::Done)
                }
                _ => Ok(Tried::Failed { phase, error }),
            };
        }
        let step = self.step_of(item);
        let run = self.run_id();
        let message = format!(
            "outcome unknown (in doubt): {}; the request may have reached the server and \
             may still be applied there, so it is not sent again",
            error.message
        );
        self.recorder.record(Event::StepFailed {
            step: step.id.clone(),
            item: item.key.clone(),
            attempt,
            error: message.clone(),
            will_retry: false,
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Failed {
            label: item.label.clone(),
            attempt,
            error: message.clone(),
            retry_in: None,
        });
        Ok(Tried::Stop(ItemOutcome::Halt {
            kind: HaltKind::InDoubt,
            reason: format!(
                "`{}`: {message}. Its connection was closed at {}; nothing after it was done. \
                 A request held in the network can still arrive: before going on, make sure \
                 the server is done with it (its request log, or a quiet minute), then \
                 `runbook resume {run} --retry-step {}` (checks its precondition live, then \
                 applies it again) or `runbook resume {run} --skip-step {} --reason \"...\"` \
                 if it is known to have been applied",
                item.label,
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
                step.id,
                step.id,
            ),
        }))
    }

    /// The effect is in place: record it, with what was read before it and what it
    /// answered (its `summary` is the note people read).
    fn took_effect(
        &self,
        item: &Item,
        prepared: &Outputs,
        out: Outputs,
        observation: Option<Json>,
        waited: Option<crate::event::Waited>,
    ) -> Result<(), JournalError> {
        let mut outputs = prepared.clone();
        outputs.extend(out);
        let note = outputs
            .get("summary")
            .and_then(Json::as_str)
            .map(str::to_string);
        self.succeed_after(item, outputs, observation, note, waited)
    }
}
