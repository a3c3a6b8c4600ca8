//! A step's postcondition: the action's own (probe, then `satisfied`) and the step's
//! `verify:` conditions. Checked once (settling an item in doubt) or polled after the
//! effect: first at once, then with doubling pauses up to the action's poll interval,
//! until it holds or the deadline. An action that asks (`Action::reissue`) has its
//! effect issued again on every round, as the guide says for take-offline.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::work::Item;
use super::Executor;
use crate::action::StepError;
use crate::condition::{CondResult, Probing, Subject};
use crate::event::Waited;
use crate::model::{Condition, Effect, Outputs};
use crate::report::Notice;
use crate::scope::{approx, postcondition_text, short};

pub(super) enum Verified {
    /// It holds: the last observation, and the wait (`None` when there was nothing to
    /// wait for).
    Holds(Option<Json>, Option<Waited>),
    /// The lease on the run's sites was lost: nothing more is issued.
    Fenced(crate::journal::JournalError),
    /// Not within the deadline: what was expected and what was seen last.
    TimedOut(String),
    Interrupted,
}

/// A step's postcondition, checked once.
pub(super) struct Post {
    pub holds: bool,
    pub observation: Option<Json>,
    /// When it does not hold: what was seen, as a person reads it.
    pub why: Option<String>,
}

/// The state of a polling loop: how often the effect was issued again, and its last
/// answer when that says more than the probe.
#[derive(Default)]
struct Reissued {
    rounds: u32,
    last: Option<String>,
}

impl Reissued {
    fn describe(&self) -> String {
        match (&self.last, self.rounds) {
            (Some(r), _) => format!(" ({r})"),
            (None, 0) => String::new(),
            (None, n) => format!(" (issued again {n}×)"),
        }
    }
}

impl Executor {
    pub(super) async fn check_condition(
        &self,
        item: &Item,
        cond: &Condition,
    ) -> Result<CondResult, StepError> {
        let probing = Probing {
            registry: &self.registry,
            env: &self.env,
            templates: &self.templates,
        };
        let subject = Subject {
            step_action: &self.step_of(item).action,
            ctx: &item.ctx,
            args: &item.args,
            scope: &item.scope,
        };
        crate::condition::check(cond, probing, subject).await
    }

    /// The postcondition now: `None` when the step has none (no `verify:` and no
    /// built-in one), else whether it holds and the last observation.
    pub(super) async fn postcondition(&self, item: &Item) -> Result<Option<Post>, StepError> {
        let (action, ctx, args) = (&item.action, &item.ctx, &item.args);
        let own = action.postcondition(ctx, args);
        let verify = &self.step_of(item).verify;
        if own.is_none() && verify.is_empty() {
            return Ok(None);
        }
        let mut observation = None;
        if own.is_some() {
            let o = action.probe(ctx, args).await?;
            if !action.satisfied(args, &o) {
                return Ok(Some(Post {
                    holds: false,
                    why: Some(action.explain(args, &o).unwrap_or_else(|| short(&o))),
                    observation: Some(o),
                }));
            }
            observation = Some(o);
        }
        for cond in verify {
            let c = self.check_condition(item, cond).await?;
            if !c.holds {
                return Ok(Some(Post {
                    holds: false,
                    why: Some(format!("{}: {}", c.message, short(&c.observation))),
                    observation: Some(c.observation),
                }));
            }
            observation.get_or_insert(c.observation);
        }
        Ok(Some(Post {
            holds: true,
            observation,
            why: None,
        }))
    }

    /// Poll the postcondition until it holds or `deadline`.
    pub(super) async fn verify(
        &self,
        item: &Item,
        deadline: Instant,
        prepared: &Outputs,
    ) -> Verified {
        let what = postcondition_text(
            self.step_of(item),
            item.action.as_ref(),
            &item.ctx,
            &item.args,
        );
        let reissue = item.action.reissue() && item.action.effect(&item.args) == Effect::Idempotent;
        let mut reissued = Reissued::default();
        let cap = self
            .env
            .scaled_pause(item.action.poll_interval(&item.args))
            .max(Duration::from_millis(1));
        let mut pause = Duration::from_millis(5).min(cap);
        let start = Instant::now();
        let mut checks = 0u32;
        loop {
            checks += 1;
            let waited = || Waited {
                what: what.clone(),
                ms: start.elapsed().as_millis() as u64,
                checks,
            };
            let last = match self.postcondition(item).await {
                Ok(None) => return Verified::Holds(None, None),
                Ok(Some(p)) if p.holds => return Verified::Holds(p.observation, Some(waited())),
                Ok(Some(p)) => {
                    self.waiting(item, &what, start, p.why.as_deref());
                    p.why
                }
                Err(e) => Some(format!("probe failed: {e}")),
            };
            let now = Instant::now();
            if now >= deadline {
                return Verified::TimedOut(format!(
                    "did not take effect within {}: expected {what}; observed: {}{}",
                    approx(deadline.saturating_duration_since(start)),
                    last.unwrap_or_else(|| "none".into()),
                    reissued.describe()
                ));
            }
            if !self.interrupt.sleep(pause.min(deadline - now)).await {
                return Verified::Interrupted;
            }
            pause = (pause * 2).min(cap);
            if reissue {
                if let Err(e) = self.recorder.confirm_lease() {
                    return Verified::Fenced(e);
                }
                self.issue_again(item, deadline, prepared, &mut reissued)
                    .await;
            }
        }
    }

    /// Tell the live snapshot and the operator what the item waits for.
    fn waiting(&self, item: &Item, what: &str, start: Instant, why: Option<&str>) {
        self.recorder.waiting(
            &item.label,
            format!("{what} — now: {}", why.unwrap_or("not yet")),
        );
        self.observer.notice(Notice::Waiting {
            label: item.label.clone(),
            what: what.to_string(),
            elapsed: start.elapsed(),
            last: why.map(str::to_string),
        });
    }

    /// Issue the effect again, as the guide says, until it holds.
    async fn issue_again(
        &self,
        item: &Item,
        deadline: Instant,
        prepared: &Outputs,
        r: &mut Reissued,
    ) {
        r.rounds += 1;
        let rounds = r.rounds;
        tracing::debug!(step = %item.label, rounds, "issuing the effect again");
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, item.action.apply(&item.ctx, &item.args, prepared)).await {
            Ok(Ok(out)) => {
                if let Some(p) = out.get("pending").and_then(Json::as_str) {
                    r.last = Some(format!("issued again {rounds}×; its last answer: {p}"));
                }
            }
            Ok(Err(e)) => r.last = Some(format!("issued again {rounds}×; its last answer: {e}")),
            Err(_) => {}
        }
    }
}
