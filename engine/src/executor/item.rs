//! One step, or one item of a fan-out: render its arguments, then do what
//! `decide::item_next` says: nothing (done), pass or ask at a gate, settle it if it
//! was found in doubt, or attempt it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::verify::Post;
use super::work::Item;
use super::{Executor, ItemOutcome};
use crate::action::{Site, StepCtx, StepError};
use crate::decide::{self, Found, ItemNext, Seen, Settled};
use crate::event::{now_ms, Event, HaltKind};
use crate::journal::JournalError;
use crate::model::{item_key, Effect, Outputs};
use crate::report::Notice;
use crate::scope::{check_rendered_args, item_scope, label};
use crate::state::Progress;

impl Executor {
    pub(super) async fn run_item(
        self: &Arc<Self>,
        index: usize,
        item: Option<Json>,
        site: Option<Site>,
        authorized: bool,
    ) -> Result<ItemOutcome, JournalError> {
        let step = &self.runbook.steps[index];
        let key = item.as_ref().map(item_key);
        let prior: Progress = self.recorder.with(|s| match &key {
            Some(k) => s.item(&step.id, k).cloned().unwrap_or_default(),
            None => s
                .step(&step.id)
                .map(|st| st.progress.clone())
                .unwrap_or_default(),
        });
        if prior.status.is_done() {
            return Ok(ItemOutcome::Done);
        }
        let item = match self.prepare_item(index, key, item, site, prior) {
            Ok(item) => item,
            Err(error) => return Ok(ItemOutcome::Fail { error }),
        };
        let gate = item.action.gate(&item.args);
        let next = self.recorder.with(|s| {
            decide::item_next(
                s,
                &step.id,
                item.key.as_deref(),
                item.effect,
                gate.is_some(),
                authorized,
            )
        });
        match next {
            ItemNext::Done => Ok(ItemOutcome::Done),
            ItemNext::PassGate => {
                self.succeed(
                    &item,
                    Outputs::new(),
                    None,
                    Some("approved by the operator".into()),
                )?;
                Ok(ItemOutcome::Done)
            }
            ItemNext::AskAtGate => self.ask_at_gate(&item, gate.unwrap_or_default()).await,
            ItemNext::Settle {
                found,
                effect,
                authorized,
            } => match self.settle(&item, found, effect, authorized).await? {
                Some(outcome) => Ok(outcome),
                None => self.attempts(&item, false).await,
            },
            ItemNext::Attempt { check_guards } => self.attempts(&item, check_guards).await,
        }
    }

    /// Render the item's arguments and build its context.
    fn prepare_item(
        &self,
        index: usize,
        key: Option<String>,
        item: Option<Json>,
        site: Option<Site>,
        prior: Progress,
    ) -> Result<Item, String> {
        let step = &self.runbook.steps[index];
        let label = label(&step.id, key.as_deref());
        let scope = item_scope(&self.scope(step), site.as_ref(), item.as_ref());
        let action = Arc::clone(&self.actions[index]);
        let args = match self.templates.render(&step.with, &scope) {
            Ok(Json::Object(args)) => args,
            Ok(other) => {
                return Err(format!(
                    "step `{label}`: arguments rendered to {other}, not a mapping"
                ))
            }
            Err(e) => return Err(format!("step `{label}`: cannot render arguments: {e}")),
        };
        check_rendered_args(action.as_ref(), &args).map_err(|e| format!("step `{label}`: {e}"))?;
        let timeout = self
            .env
            .scaled_timeout(step.timeout.unwrap_or_else(|| action.default_timeout()));
        let ctx = StepCtx {
            run_id: self.run_id(),
            step_id: step.id.clone(),
            item,
            site,
            env: Arc::clone(&self.env),
            timeout,
            interrupt: self.interrupt.clone(),
            progress: Default::default(),
        };
        Ok(Item {
            index,
            key,
            label,
            effect: action.effect(&args),
            action,
            args,
            scope,
            ctx,
            timeout,
            started: Instant::now(),
            prior,
        })
    }

    /// Record an item succeeded, and say so.
    pub(super) fn succeed(
        &self,
        item: &Item,
        outputs: Outputs,
        observation: Option<Json>,
        note: Option<String>,
    ) -> Result<(), JournalError> {
        self.succeed_after(item, outputs, observation, note, None)
    }

    /// As [`Executor::succeed`], with what the step waited for after its effect.
    pub(super) fn succeed_after(
        &self,
        item: &Item,
        outputs: Outputs,
        observation: Option<Json>,
        note: Option<String>,
        waited: Option<crate::event::Waited>,
    ) -> Result<(), JournalError> {
        // An action may say how it succeeded (`note` in its outputs: "already out of
        // the group, nothing removed"), shown and journaled as the step's note.
        let note = note.or_else(|| {
            outputs
                .get("note")
                .and_then(Json::as_str)
                .map(str::to_string)
        });
        self.recorder.record(Event::StepSucceeded {
            step: self.step_of(item).id.clone(),
            item: item.key.clone(),
            outputs,
            observation,
            note: note.clone(),
            waited,
            at: now_ms(),
        })?;
        let step = &self.step_of(item).id;
        self.observer.notice(Notice::Done {
            label: item.label.clone(),
            elapsed: self
                .journaled_elapsed(step, item.key.as_deref())
                .unwrap_or_else(|| item.started.elapsed()),
            note,
        });
        Ok(())
    }

    /// How long a step (or one item of it) took as the journal has it, from its start
    /// to its end: the figure `status`, the summary and the report show, so the
    /// progress line agrees with them (the guards judged before it are not its time).
    pub(super) fn journaled_elapsed(&self, step: &str, item: Option<&str>) -> Option<Duration> {
        self.recorder.with(|s| {
            let st = s.step(step)?;
            let p = match item {
                Some(k) => st.items.get(k)?,
                None => &st.progress,
            };
            let (a, b) = (p.started_at?, p.ended_at?);
            Some(Duration::from_millis(b.saturating_sub(a)))
        })
    }

    /// A manual gate not yet approved: ask at the terminal if there is one, else halt
    /// waiting for `resume --approve`.
    async fn ask_at_gate(
        &self,
        item: &Item,
        instructions: String,
    ) -> Result<ItemOutcome, JournalError> {
        let step = self.step_of(item);
        if let Some(second) = self.second_person(item) {
            return Ok(ItemOutcome::Halt {
                kind: HaltKind::SecondApproval,
                reason: second.reason(
                    &step.id,
                    &self.actor.operator,
                    &instructions,
                    &self.run_id(),
                ),
            });
        }
        if let Some(prompt) = &self.prompt {
            let prompt = Arc::clone(prompt);
            let question = format!("{}\n{instructions}\nConfirm?", step.title);
            let yes = tokio::task::spawn_blocking(move || prompt.confirm(&question))
                .await
                .unwrap_or(false);
            if yes {
                self.recorder.record(Event::OperatorApproved {
                    step: step.id.clone(),
                    by: self.actor.clone(),
                    at: now_ms(),
                })?;
                self.succeed(
                    item,
                    Outputs::new(),
                    None,
                    Some("approved at the terminal".into()),
                )?;
                return Ok(ItemOutcome::Done);
            }
        }
        Ok(ItemOutcome::Halt {
            kind: HaltKind::ManualGate,
            reason: format!(
                "waiting for approval of `{}`: {instructions} — when done, run `runbook resume {} --approve {}`",
                item.label,
                self.run_id(),
                step.id
            ),
        })
    }

    /// Whether the gate needs a second person: four eyes is on and the step after it
    /// is destructive or moves traffic; `None` when the gate was approved already or
    /// needs no second person.
    fn second_person(&self, item: &Item) -> Option<crate::resume::SecondApproval> {
        let index = item.index;
        let gate = &self.runbook.steps[index];
        if !self.env.four_eyes || self.recorder.with(|s| s.approvals.contains(&gate.id)) {
            return None;
        }
        let next = self.runbook.steps.get(index + 1)?;
        let action = self.actions.get(index + 1)?;
        let raw = next.with.as_object().cloned().unwrap_or_default();
        let what = crate::decide::second_person(true, action.invariants(), action.effect(&raw))?;
        let site = self
            .step_site(next, &item.scope)
            .ok()
            .flatten()
            .map(|s| s.name)
            .or_else(|| item.ctx.site.as_ref().map(|s| s.name.clone()));
        Some(crate::resume::SecondApproval {
            next: next.id.clone(),
            what: what.to_string(),
            site,
        })
    }

    /// An item found in doubt: its postcondition decides (`decide::settle`). `None`:
    /// apply it again.
    async fn settle(
        &self,
        item: &Item,
        found: Found,
        effect: Effect,
        authorized: bool,
    ) -> Result<Option<ItemOutcome>, JournalError> {
        let what = found.as_str();
        let post = self.postcondition(item).await;
        let seen = match &post {
            Ok(Some(p)) if p.holds => Seen::Holds,
            Ok(Some(_)) => Seen::DoesNotHold,
            Ok(None) => Seen::Nothing,
            Err(_) => Seen::Unknown,
        };
        match decide::settle(effect, authorized, seen) {
            Settled::Succeeded => {
                let observation = post.ok().flatten().and_then(|p| p.observation);
                let note = format!("{what}; its postcondition held when checked on resume, so it was not applied again");
                self.succeed(item, item.prior.prepared.clone(), observation, Some(note))?;
                Ok(Some(ItemOutcome::Done))
            }
            Settled::Halt => Ok(Some(ItemOutcome::Halt {
                kind: HaltKind::InDoubt,
                reason: format!(
                    "step `{label}` {what}; it is destructive and {state}, so it is not applied again blindly. \
                     Check the system, then run `runbook resume {run} --retry-step {id}` to apply it again, \
                     or `runbook resume {run} --skip-step {id} --reason \"...\"` if its effect is in place",
                    label = item.label,
                    state = in_doubt_state(&post),
                    run = self.run_id(),
                    id = self.step_of(item).id
                ),
            })),
            Settled::Reapply => {
                let decision = if authorized {
                    format!("{what}; {}; applying again as the operator asked", in_doubt_state(&post))
                } else {
                    format!(
                        "{what}; {}; it is {}, so it is applied again",
                        in_doubt_state(&post),
                        effect.as_str()
                    )
                };
                self.observer.notice(Notice::InDoubt {
                    label: item.label.clone(),
                    decision,
                });
                Ok(None)
            }
        }
    }
}

/// What the postcondition of an item in doubt said, in words.
fn in_doubt_state(post: &Result<Option<Post>, StepError>) -> String {
    match post {
        Ok(Some(p)) => format!(
            "its postcondition does not hold (observed: {})",
            p.why.as_deref().unwrap_or_default()
        ),
        Ok(None) => "it has no postcondition to check".to_string(),
        Err(e) => format!("its postcondition could not be checked ({e})"),
    }
}
