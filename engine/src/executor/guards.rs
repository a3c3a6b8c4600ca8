//! The runbook's safety guards, checked live right before an effect: all of them
//! before the run's first effect, and each again before the first effect of every step
//! (every item) it names. Judged by the one evaluator the plan uses too
//! (`guard.rs`). A guard that holds is journaled; one the operator overrode (`force`)
//! is journaled with who and why; one that does not hold stops the run
//! (`decide::on_guard_failure`).

use std::time::Duration;

use serde_json::Value as Json;

use super::{Executor, ItemOutcome};
use crate::decide::{on_guard_failure, GuardStop};
use crate::event::{now_ms, Event, HaltKind};
use crate::guard::{GuardCheck as Checked, GuardEnv};
use crate::journal::JournalError;
use crate::model::{Guard, Step};
use crate::report::Notice;
use crate::scope::{base_scope, label};

/// Where a guard is checked: before a step (or item), or at the start.
struct At<'a> {
    step: Option<&'a Step>,
    item: Option<String>,
    /// `step` or `step[item]`, for messages.
    label: Option<String>,
}

impl Executor {
    /// Check the guards that apply at `step` (`None`: at the start of a drive, every
    /// guard). `None` when they pass (or are overridden, journaled); else what stops
    /// the run.
    pub(super) async fn enforce_guards(
        &self,
        step: Option<&Step>,
        item: Option<String>,
    ) -> Result<Option<ItemOutcome>, JournalError> {
        let guards: Vec<&Guard> = self
            .runbook
            .guards
            .iter()
            .filter(|g| match step {
                // At the start, a deferred guard waits for its steps: earlier steps
                // of this run change what it reads.
                None => g.deferred.is_none(),
                Some(s) => g.before.contains(&s.id),
            })
            .collect();
        if guards.is_empty() {
            return Ok(None);
        }
        // The journal's ledger as of now: what this run's earlier steps did counts.
        let mut history = self.history.clone();
        if let (Some(ledger), Some(d)) = (self.registry.ledger(), self.history.get("deployment")) {
            let now = self.recorder.with(|s| ledger.with_current(d, s));
            history["deployment"] = now;
        }
        let scope = base_scope(
            &self.params,
            &self.env,
            &self.run_id(),
            Json::Object(Default::default()),
            &history,
        );
        let run_id = self.run_id();
        let ge = GuardEnv {
            registry: &self.registry,
            env: &self.env,
            templates: &self.templates,
            run_id: &run_id,
            timeout: self.env.scaled_timeout(Duration::from_secs(60)),
            interrupt: self.interrupt.clone(),
        };
        let at = At {
            label: step.map(|s| label(&s.id, item.as_deref())),
            step,
            item,
        };
        let forced = self.params.get("force").and_then(Json::as_bool) == Some(true);
        for g in guards {
            let c = crate::guard::check(g, &ge, &scope).await;
            if !c.applies {
                continue;
            }
            if c.passed() {
                self.guard_passed(g, &c, &at)?;
            } else if forced {
                self.guard_overridden(g, &c, &at)?;
            } else {
                return Ok(Some(self.guard_stops(g, c, &at)));
            }
        }
        Ok(None)
    }

    fn guard_passed(&self, g: &Guard, c: &Checked, at: &At<'_>) -> Result<(), JournalError> {
        self.recorder.record(Event::GuardPassed {
            guard: g.id.clone(),
            step: at.step.map(|s| s.id.clone()),
            item: at.item.clone(),
            observation: c.observation.clone(),
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Guard {
            at: at.label.clone(),
            text: format!("guard `{}`: {} — {}", g.id, g.title, crate::guard::seen(c)),
            ok: true,
        });
        if let Some(u) = &g.unchecked {
            self.observer.notice(Notice::Note(format!(
                "guard `{}` could not check: {u}",
                g.id
            )));
        }
        Ok(())
    }

    fn guard_overridden(&self, g: &Guard, c: &Checked, at: &At<'_>) -> Result<(), JournalError> {
        let reason = self
            .params
            .get("force_reason")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        self.recorder.record(Event::GuardOverridden {
            guard: g.id.clone(),
            step: at.step.map(|s| s.id.clone()),
            item: at.item.clone(),
            refusal: c.refusal.clone(),
            observation: c.observation.clone(),
            reason: reason.clone(),
            by: self.actor.clone(),
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Guard {
            at: at.label.clone(),
            text: format!(
                "guard `{}` OVERRIDDEN by {} (force=true: {reason}): {}",
                g.id, self.actor.operator, c.refusal
            ),
            ok: false,
        });
        Ok(())
    }

    /// A guard that does not hold: refused before any effect, halted after one.
    fn guard_stops(&self, g: &Guard, c: Checked, at: &At<'_>) -> ItemOutcome {
        let stop = on_guard_failure(self.recorder.with(|s| s.had_effect));
        let run = self.run_id();
        let (more, then) = match stop {
            GuardStop::Refuse => ("", String::new()),
            GuardStop::Halt => (
                "more ",
                format!("; the run halts and holds its sites: `runbook resume {run}` checks again, `runbook abort {run}` ends it"),
            ),
        };
        let reason = format!(
            "{}{}. Nothing {more}was done{then}. Only if you know better (both sites broken, DNS wrong): -p force=true -p force_reason=\"...\" overrides guard `{}` and every other guard of this run, each journaled",
            c.refusal,
            at.label
                .as_ref()
                .map(|a| format!(" (checked before `{a}`)"))
                .unwrap_or_default(),
            g.id,
        );
        match stop {
            GuardStop::Halt => ItemOutcome::Halt {
                kind: HaltKind::Guard,
                reason,
            },
            GuardStop::Refuse => ItemOutcome::Refuse {
                guard: g.id.clone(),
                reason,
                observation: c.observation,
            },
        }
    }
}
