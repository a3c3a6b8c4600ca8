//! A step as a whole: whether it runs (`when`), on which site, over which items, and
//! the progress line; then its one item or its fan-out, and the fan-out's result.

use std::time::Instant;

use serde_json::{json, Value as Json};

use super::{Executor, ItemOutcome};
use crate::action::{Action, Site};
use crate::event::{now_ms, Event};
use crate::journal::JournalError;
use crate::model::{template_name, Effect, Outputs, Step};
use crate::report::Notice;
use crate::scope::{base_scope, item_scope};
use crate::state::StepStatus;

impl Executor {
    /// Work on step `index`: skip it, or run its item(s).
    pub(super) async fn run_step(
        self: &std::sync::Arc<Self>,
        index: usize,
    ) -> Result<ItemOutcome, JournalError> {
        let step = &self.runbook.steps[index];
        let scope = self.scope(step);
        let fail = |error: String| Ok(ItemOutcome::Fail { error });
        if let Some(when) = &step.when {
            match self.templates.truth(when, &scope) {
                Ok(true) => {}
                Ok(false) => return self.skip(step, when),
                Err(e) => return fail(format!("step `{}`: cannot evaluate `when`: {e}", step.id)),
            }
        }
        let site = match self.step_site(step, &scope) {
            Ok(site) => site,
            Err(e) => return fail(format!("step `{}`: {e}", step.id)),
        };
        let items = match self.step_items(step, &scope) {
            Ok(items) => items,
            Err(e) => return fail(format!("step `{}`: {e}", step.id)),
        };
        let action = self.actions[index].as_ref();
        self.observer.notice(Notice::StepStarting {
            index: index + 1,
            total: self.runbook.steps.len(),
            step: step.id.clone(),
            title: step.title.clone(),
            site: site.as_ref().map(|s| s.name.clone()),
            effect: self.step_effect(step, action, &scope, site.as_ref(), items.as_deref()),
            items: items.as_ref().map(Vec::len),
        });
        // Read once, when the step begins: its first start uses the authorisation up,
        // and every item of a fan-out is covered by it.
        let authorized = self
            .recorder
            .with(|s| crate::decide::authorized(s, &step.id));
        let started = Instant::now();
        let outcome = match items {
            None => self.run_item(index, None, site, authorized).await?,
            Some(items) => self.fan_out(index, items, site, authorized).await?,
        };
        if matches!(outcome, ItemOutcome::Done) && step.for_each.is_some() {
            self.fan_out_succeeded(step, started)?;
        }
        Ok(outcome)
    }

    /// The finished steps that `step`'s templates can see: the ones they name, or all
    /// of them when a template indexes `steps` dynamically.
    fn steps_scope(&self, step: &Step) -> Json {
        self.recorder.with(|s| {
            let mut steps = serde_json::Map::new();
            let mut add = |id: &String, st: &crate::state::StepState| {
                if !st.progress.status.is_done() {
                    return;
                }
                let v = json!({
                    "outputs": st.progress.outputs,
                    "skipped": st.progress.status == StepStatus::Skipped,
                });
                steps.insert(template_name(id), v.clone());
                steps.insert(id.clone(), v);
            };
            match &step.step_refs {
                None => s.steps.iter().for_each(|(id, st)| add(id, st)),
                Some(ids) => {
                    for id in ids {
                        if let Some((id, st)) = s.steps.get_key_value(id) {
                            add(id, st);
                        }
                    }
                }
            }
            Json::Object(steps)
        })
    }

    pub(super) fn scope(&self, step: &Step) -> Json {
        base_scope(
            &self.params,
            &self.env,
            &self.run_id(),
            self.steps_scope(step),
            &self.history,
        )
    }

    fn skip(&self, step: &Step, when: &str) -> Result<ItemOutcome, JournalError> {
        let reason = self.why_false(step, when);
        self.recorder.record(Event::StepSkipped {
            step: step.id.clone(),
            item: None,
            reason: reason.clone(),
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Skipped {
            label: step.id.clone(),
            reason,
        });
        Ok(ItemOutcome::Done)
    }

    /// Why a step's `when` is false, with the evidence it read: the `summary` of each
    /// earlier step it names, and the journal's facts when it reads `history`.
    fn why_false(&self, step: &Step, when: &str) -> String {
        let mut reason = format!("`when: {when}` is false");
        let mut evidence = Vec::new();
        if let Some(ids) = &step.step_refs {
            self.recorder.with(|s| {
                for id in ids {
                    if let Some(sum) = s
                        .step(id)
                        .and_then(|st| st.progress.outputs.get("summary"))
                        .and_then(Json::as_str)
                    {
                        evidence.push(format!("{id}: {sum}"));
                    }
                }
            });
        }
        if when.contains("history") {
            evidence.extend(
                self.registry
                    .history(self.runbook.pack.as_deref())
                    .evidence(&self.history),
            );
        }
        if !evidence.is_empty() {
            reason.push_str(" — evidence: ");
            reason.push_str(&evidence.join("; "));
        }
        reason
    }

    pub(super) fn step_site(&self, step: &Step, scope: &Json) -> Result<Option<Site>, String> {
        let Some(t) = &step.site else {
            return Ok(None);
        };
        crate::scope::render_site(&self.templates, t, scope, &self.env)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn step_items(&self, step: &Step, scope: &Json) -> Result<Option<Vec<Json>>, String> {
        let Some(fe) = &step.for_each else {
            return Ok(None);
        };
        match self.templates.render(&fe.items, scope) {
            Ok(Json::Array(items)) => Ok(Some(items)),
            Ok(other) => Err(format!("for_each.items gave {other}, not a list")),
            Err(e) => Err(format!("cannot render for_each.items: {e}")),
        }
    }

    /// The strongest effect class among the step's items (for the progress line).
    fn step_effect(
        &self,
        step: &Step,
        action: &dyn Action,
        scope: &Json,
        site: Option<&Site>,
        items: Option<&[Json]>,
    ) -> Effect {
        let effect_of = |item: Option<&Json>| {
            let s = item_scope(scope, site, item);
            match self.templates.render(&step.with, &s) {
                Ok(Json::Object(args)) => action.effect(&args),
                _ => Effect::Destructive,
            }
        };
        match items {
            None => effect_of(None),
            Some(items) => items
                .iter()
                .map(|i| effect_of(Some(i)))
                .max()
                .unwrap_or(Effect::ReadOnly),
        }
    }

    /// Every item of a fan-out succeeded: the step succeeds, with each item's outputs.
    fn fan_out_succeeded(&self, step: &Step, started: Instant) -> Result<(), JournalError> {
        let outputs = self.recorder.with(|s| {
            let mut per_item = serde_json::Map::new();
            if let Some(st) = s.step(&step.id) {
                for (k, p) in &st.items {
                    per_item.insert(k.clone(), Json::Object(p.outputs.clone()));
                }
            }
            let mut o = Outputs::new();
            o.insert("items".into(), Json::Object(per_item));
            o
        });
        self.recorder.record(Event::StepSucceeded {
            step: step.id.clone(),
            item: None,
            outputs,
            observation: None,
            note: None,
            waited: None,
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Done {
            label: step.id.clone(),
            elapsed: self
                .journaled_elapsed(&step.id, None)
                .unwrap_or_else(|| started.elapsed()),
            note: None,
        });
        Ok(())
    }
}
