//! Driving a run: for each step, in order, from the first unfinished one.
//!
//! Per step (or per item of a fan-out step): evaluate `when`; settle a step found in
//! doubt; check `require` by live probes right before the effect; journal the intent
//! (flushed, unless the step is read-only: see `journal.rs`); apply; poll the postcondition with backoff until the step's timeout;
//! journal the result (flushed); retry per policy. A new run and a resumed run take
//! exactly this path: the state they start from is the fold of the journal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::action::{Action, Args, Outputs, Registry, Site, StepCtx, StepError};
use crate::condition::CondResult;
use crate::env::Environment;
use crate::event::{now_ms, Actor, Event, HaltKind};
use crate::failpoint;
use crate::journal::JournalError;
use crate::load::template_name;
use crate::model::{Condition, Effect, Runbook, Step};
use crate::recorder::Recorder;
use crate::report::{Interrupt, Notice, Observer, Prompt};
use crate::state::{item_key, Progress, RunStatus, StepStatus};
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

enum Verified {
    Holds(Option<Json>),
    /// Not within the deadline: what was expected and what was seen last.
    TimedOut(String),
    Interrupted,
}

/// A step's postcondition, checked once.
struct Post {
    holds: bool,
    observation: Option<Json>,
    /// When it does not hold: what was seen, as a person reads it.
    why: Option<String>,
}

/// Resolve a site name against the environment.
///
/// # Errors
/// The name is not a site of the environment file.
pub fn resolve_site(env: &Environment, name: &str) -> Result<Site, String> {
    match env.sites.get(name) {
        Some(config) => Ok(Site {
            name: name.to_string(),
            config: config.clone(),
        }),
        None => {
            let known: Vec<&str> = env.sites.keys().map(String::as_str).collect();
            Err(match &env.file {
                Some(f) => format!(
                    "site `{name}` is not in the environment file `{}` (it has: {})",
                    f.display(),
                    if known.is_empty() { "no sites".to_string() } else { known.join(", ") }
                ),
                None => format!("site `{name}` is unknown: no environment file was given (--env or RUNBOOK_ENV)"),
            })
        }
    }
}

/// The template data all steps see: params, sites, run, and the outputs of finished
/// steps (under their id and under the id with `-` written `_`).
pub fn base_scope(
    params: &Json,
    env: &Environment,
    run_id: &str,
    steps: Json,
    history: &Json,
) -> Json {
    json!({
        "params": params,
        "sites": env.sites_json(),
        "steps": steps,
        "run": {"id": run_id},
        "history": history,
    })
}

/// Add the step's site section (with its name) and the fan-out item to a scope.
pub fn item_scope(base: &Json, site: Option<&Site>, item: Option<&Json>) -> Json {
    let mut scope = base.clone();
    if let Some(site) = site {
        let mut section = site.config.clone();
        if let Json::Object(m) = &mut section {
            m.insert("name".into(), Json::String(site.name.clone()));
        }
        scope["site"] = section;
    }
    if let Some(item) = item {
        scope["item"] = item.clone();
    }
    scope
}

/// Check rendered arguments against the action's declared kinds.
///
/// # Errors
/// Names the argument and what it should have been.
pub fn check_rendered_args(action: &dyn Action, args: &Args) -> Result<(), String> {
    for spec in action.args() {
        match args.get(spec.name) {
            Some(v) if !spec.kind.accepts(v) => {
                return Err(format!(
                    "argument `{}` of `{}` must be a {}, got {v}",
                    spec.name,
                    action.name(),
                    spec.kind.as_str()
                ))
            }
            None if spec.required => {
                return Err(format!(
                    "argument `{}` of `{}` is missing",
                    spec.name,
                    action.name()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A duration as a person reads it in a message: `850ms`, `3.0s`, `2m 30s`.
fn approx(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64)).to_string()
    }
}

/// A JSON value quoted in a message, cut at 300 bytes.
pub(crate) fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

impl Executor {
    fn run_id(&self) -> String {
        self.recorder.run_id().to_string()
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

    fn scope(&self, step: &Step) -> Json {
        base_scope(
            &self.params,
            &self.env,
            &self.run_id(),
            self.steps_scope(step),
            &self.history,
        )
    }

    /// Check the guards that apply at `step` (`None`: at the start of a drive, every
    /// guard), right before the effect. `None` when they pass (or are overridden,
    /// journaled); else what stops the run.
    async fn enforce_guards(
        &self,
        step: Option<&Step>,
        item: Option<String>,
    ) -> Result<Option<ItemOutcome>, JournalError> {
        let guards: Vec<&crate::model::Guard> = self
            .runbook
            .guards
            .iter()
            .filter(|g| step.is_none_or(|s| g.before.contains(&s.id)))
            .collect();
        if guards.is_empty() {
            return Ok(None);
        }
        let scope = base_scope(
            &self.params,
            &self.env,
            &self.run_id(),
            Json::Object(Default::default()),
            &self.history,
        );
        let timeout = self.env.scaled_timeout(Duration::from_secs(60));
        let ge = crate::guard::GuardEnv {
            registry: &self.registry,
            env: &self.env,
            templates: &self.templates,
            run_id: &self.run_id(),
            timeout,
            interrupt: self.interrupt.clone(),
        };
        let at = step.map(|s| match &item {
            Some(i) => format!("{}[{i}]", s.id),
            None => s.id.clone(),
        });
        let forced = self.params.get("force").and_then(Json::as_bool) == Some(true);
        for g in guards {
            let c = crate::guard::check(g, &ge, &scope).await;
            if !c.applies {
                continue;
            }
            if c.passed() {
                self.recorder.record(Event::GuardPassed {
                    guard: g.id.clone(),
                    step: step.map(|s| s.id.clone()),
                    item: item.clone(),
                    observation: c.observation.clone(),
                    at: now_ms(),
                })?;
                self.observer.notice(Notice::Guard {
                    at: at.clone(),
                    text: format!("guard `{}`: {} — {}", g.id, g.title, crate::guard::seen(&c)),
                    ok: true,
                });
                if let Some(u) = &g.unchecked {
                    self.observer.notice(Notice::Note(format!(
                        "guard `{}` could not check: {u}",
                        g.id
                    )));
                }
                continue;
            }
            if forced {
                let reason = self
                    .params
                    .get("force_reason")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.recorder.record(Event::GuardOverridden {
                    guard: g.id.clone(),
                    step: step.map(|s| s.id.clone()),
                    item: item.clone(),
                    refusal: c.refusal.clone(),
                    observation: c.observation.clone(),
                    reason: reason.clone(),
                    by: self.actor.clone(),
                    at: now_ms(),
                })?;
                self.observer.notice(Notice::Guard {
                    at: at.clone(),
                    text: format!(
                        "guard `{}` OVERRIDDEN by {} (force=true: {reason}): {}",
                        g.id, self.actor.operator, c.refusal
                    ),
                    ok: false,
                });
                continue;
            }
            let had_effect = self.recorder.with(|s| s.had_effect);
            let reason = format!(
                "{}{}. Nothing {}was done{}. Only if you know better (both sites broken, DNS wrong): -p force=true -p force_reason=\"...\" (journaled)",
                c.refusal,
                at.as_ref().map(|a| format!(" (checked before `{a}`)")).unwrap_or_default(),
                if had_effect { "more " } else { "" },
                if had_effect {
                    format!("; the run halts and holds its sites: `runbook resume {}` checks again, `runbook abort {}` ends it", self.run_id(), self.run_id())
                } else {
                    String::new()
                }
            );
            return Ok(Some(if had_effect {
                ItemOutcome::Halt {
                    kind: HaltKind::Guard,
                    reason,
                }
            } else {
                ItemOutcome::Refuse {
                    guard: g.id.clone(),
                    reason,
                    observation: c.observation,
                }
            }));
        }
        Ok(None)
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
            let last = self.history["last_resync"]
                .as_str()
                .unwrap_or("none recorded");
            let disrupted: Vec<&str> = self.history["disrupted_since_resync"]
                .as_array()
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            evidence.push(format!(
                "journal: last completed resync {last}; since then {}",
                if disrupted.is_empty() {
                    "no failover, switchover or unfinished recovery".to_string()
                } else {
                    disrupted.join(", ")
                }
            ));
        }
        if !evidence.is_empty() {
            reason.push_str(" — evidence: ");
            reason.push_str(&evidence.join("; "));
        }
        reason
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
        let label = step.map(|s| match &item {
            Some(i) => format!("{s}[{i}]"),
            None => s.to_string(),
        });
        self.observer.notice(Notice::Halted {
            label: label.clone(),
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

    /// Drive the run from its current state until it completes, halts or fails.
    ///
    /// # Errors
    /// Only journal errors: everything else is recorded as a halt or a failure.
    pub async fn drive(self: &Arc<Self>) -> Result<Outcome, JournalError> {
        let total = self.runbook.steps.len();
        // Every guard, live, before the run's first effect (a new run, or a resumed one
        // that has had none yet). After an effect, guards are checked again right
        // before the steps they name: the run's own effects may have changed what a
        // guard reads (a switchover's take-offline), so they are not checked at large.
        let fresh = !self.recorder.with(|s| s.had_effect);
        match if fresh {
            self.enforce_guards(None, None).await?
        } else {
            None
        } {
            None => {}
            Some(ItemOutcome::Refuse {
                guard,
                reason,
                observation,
            }) => return self.refuse(None, guard, reason, observation),
            Some(ItemOutcome::Halt { kind, reason }) => return self.halt(None, None, kind, reason),
            Some(_) => {}
        }
        for (index, step) in self.runbook.steps.iter().enumerate() {
            if self.recorder.with(|s| s.step_status(&step.id)).is_done() {
                continue;
            }
            if self.interrupt.is_set() {
                return self.halt(
                    Some(&step.id),
                    None,
                    HaltKind::Interrupted,
                    format!(
                        "interrupted before step `{}`; nothing of it was done",
                        step.id
                    ),
                );
            }
            let scope = self.scope(step);
            if let Some(when) = &step.when {
                match self.templates.truth(when, &scope) {
                    Ok(true) => {}
                    Ok(false) => {
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
                        continue;
                    }
                    Err(e) => {
                        return self.fail(
                            &step.id,
                            format!("step `{}`: cannot evaluate `when`: {e}", step.id),
                        )
                    }
                }
            }
            let site = match &step.site {
                None => None,
                Some(t) => match self
                    .templates
                    .render(&Json::String(t.clone()), &scope)
                    .map_err(|e| format!("cannot render `site`: {e}"))
                    .and_then(|v| match v {
                        Json::String(name) => resolve_site(&self.env, &name),
                        other => Err(format!("`site` gave {other}, not a site name")),
                    }) {
                    Ok(site) => Some(site),
                    Err(e) => return self.fail(&step.id, format!("step `{}`: {e}", step.id)),
                },
            };
            let items: Option<Vec<Json>> = match &step.for_each {
                None => None,
                Some(fe) => match self.templates.render(&fe.items, &scope) {
                    Ok(Json::Array(items)) => Some(items),
                    Ok(other) => {
                        return self.fail(
                            &step.id,
                            format!(
                                "step `{}`: for_each.items gave {other}, not a list",
                                step.id
                            ),
                        )
                    }
                    Err(e) => {
                        return self.fail(
                            &step.id,
                            format!("step `{}`: cannot render for_each.items: {e}", step.id),
                        )
                    }
                },
            };
            let action = Arc::clone(
                self.registry
                    .get(&step.action)
                    .expect("actions are checked at load"),
            );
            let effect = self.step_effect(
                step,
                action.as_ref(),
                &scope,
                site.as_ref(),
                items.as_deref(),
            );
            self.observer.notice(Notice::StepStarting {
                index: index + 1,
                total,
                step: step.id.clone(),
                title: step.title.clone(),
                site: site.as_ref().map(|s| s.name.clone()),
                effect,
                items: items.as_ref().map(Vec::len),
            });
            let authorized = self
                .recorder
                .with(|s| s.retry_authorized.contains(&step.id));
            let started = Instant::now();
            let outcome = match items {
                None => self.run_item(index, None, site, authorized).await?,
                Some(items) => self.fan_out(index, items, site, authorized).await?,
            };
            match outcome {
                ItemOutcome::Done => {
                    if step.for_each.is_some() {
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
                            at: now_ms(),
                        })?;
                        self.observer.notice(Notice::Done {
                            label: step.id.clone(),
                            elapsed: started.elapsed(),
                            note: None,
                        });
                    }
                }
                ItemOutcome::Halt { kind, reason } => {
                    return self.halt(Some(&step.id), None, kind, reason)
                }
                ItemOutcome::Refuse {
                    guard,
                    reason,
                    observation,
                } => {
                    if self.recorder.with(|s| s.had_effect) {
                        return self.halt(Some(&step.id), None, HaltKind::Guard, reason);
                    }
                    return self.refuse(Some(&step.id), guard, reason, observation);
                }
                ItemOutcome::Fail { error } => return self.fail(&step.id, error),
            }
        }
        self.recorder.record(Event::Completed { at: now_ms() })?;
        Ok(Outcome {
            status: RunStatus::Completed,
            halted_at: None,
            reason: None,
        })
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

    async fn fan_out(
        self: &Arc<Self>,
        index: usize,
        items: Vec<Json>,
        site: Option<Site>,
        authorized: bool,
    ) -> Result<ItemOutcome, JournalError> {
        let step = &self.runbook.steps[index];
        let concurrency = step.for_each.as_ref().map_or(1, |f| f.concurrency);
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let mut launched = 0;
        for item in items.iter().cloned() {
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                break;
            };
            if stop.load(Ordering::SeqCst) || self.interrupt.is_set() {
                break;
            }
            launched += 1;
            let this = Arc::clone(self);
            let site = site.clone();
            let stop = Arc::clone(&stop);
            set.spawn(async move {
                let result = this.run_item(index, Some(item), site, authorized).await;
                if !matches!(result, Ok(ItemOutcome::Done)) {
                    stop.store(true, Ordering::SeqCst);
                }
                drop(permit);
                result
            });
        }
        let mut first_problem: Option<ItemOutcome> = None;
        let mut journal_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(ItemOutcome::Done)) => {}
                Ok(Ok(other)) => {
                    // A failure outranks a halt: it is what the operator must see first.
                    let replace = matches!(
                        (&first_problem, &other),
                        (None, _) | (Some(ItemOutcome::Halt { .. }), ItemOutcome::Fail { .. })
                    );
                    if replace {
                        first_problem = Some(other);
                    }
                }
                Ok(Err(e)) => journal_error = Some(e),
                Err(join) => {
                    first_problem = Some(ItemOutcome::Fail {
                        error: format!(
                            "step `{}`: an item's task ended abnormally: {join}",
                            step.id
                        ),
                    })
                }
            }
        }
        if let Some(e) = journal_error {
            return Err(e);
        }
        if let Some(problem) = first_problem {
            return Ok(problem);
        }
        if launched < items.len() {
            return Ok(ItemOutcome::Halt {
                kind: HaltKind::Interrupted,
                reason: format!(
                    "interrupted during `{}`: {launched} of {} items were handled, the rest were not started",
                    step.id,
                    items.len()
                ),
            });
        }
        Ok(ItemOutcome::Done)
    }

    async fn run_item(
        self: &Arc<Self>,
        index: usize,
        item: Option<Json>,
        site: Option<Site>,
        authorized: bool,
    ) -> Result<ItemOutcome, JournalError> {
        let step = &self.runbook.steps[index];
        let key = item.as_ref().map(item_key);
        let label = match &key {
            Some(k) => format!("{}[{k}]", step.id),
            None => step.id.clone(),
        };
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
        let scope = item_scope(&self.scope(step), site.as_ref(), item.as_ref());
        let action = Arc::clone(
            self.registry
                .get(&step.action)
                .expect("actions are checked at load"),
        );
        let args = match self.templates.render(&step.with, &scope) {
            Ok(Json::Object(args)) => args,
            Ok(other) => {
                return Ok(ItemOutcome::Fail {
                    error: format!("step `{label}`: arguments rendered to {other}, not a mapping"),
                })
            }
            Err(e) => {
                return Ok(ItemOutcome::Fail {
                    error: format!("step `{label}`: cannot render arguments: {e}"),
                })
            }
        };
        if let Err(e) = check_rendered_args(action.as_ref(), &args) {
            return Ok(ItemOutcome::Fail {
                error: format!("step `{label}`: {e}"),
            });
        }
        let effect = action.effect(&args);
        let timeout = self
            .env
            .scaled_timeout(step.timeout.unwrap_or_else(|| action.default_timeout()));
        let ctx = StepCtx {
            run_id: self.run_id(),
            step_id: step.id.clone(),
            item: item.clone(),
            site,
            env: Arc::clone(&self.env),
            timeout,
            interrupt: self.interrupt.clone(),
        };
        let started = Instant::now();

        if let Some(instructions) = action.gate(&args) {
            return self
                .pass_gate(step, key, &label, instructions, started)
                .await;
        }

        let mut prepared = prior.prepared.clone();
        let mut attempt = prior.attempts;
        if matches!(prior.status, StepStatus::Running | StepStatus::Failed) {
            let what = if prior.status == StepStatus::Running {
                "was started but its end was never recorded"
            } else {
                "failed on its last attempt"
            };
            let post = self
                .postcondition(step, action.as_ref(), &ctx, &args, &scope)
                .await;
            match post {
                Ok(Some(Post {
                    holds: true,
                    observation,
                    ..
                })) => {
                    let note = format!("{what}; its postcondition held when checked on resume, so it was not applied again");
                    self.succeed(
                        step,
                        key,
                        &label,
                        prepared,
                        observation,
                        Some(note),
                        started,
                    )?;
                    return Ok(ItemOutcome::Done);
                }
                other => {
                    let state = match &other {
                        Ok(Some(p)) => format!(
                            "its postcondition does not hold (observed: {})",
                            p.why.as_deref().unwrap_or_default()
                        ),
                        Ok(None) => "it has no postcondition to check".to_string(),
                        Err(e) => format!("its postcondition could not be checked ({e})"),
                    };
                    if effect == Effect::Destructive && !authorized {
                        let run = self.run_id();
                        return Ok(ItemOutcome::Halt {
                            kind: HaltKind::InDoubt,
                            reason: format!(
                                "step `{label}` {what}; it is destructive and {state}, so it is not applied again blindly. \
                                 Check the system, then run `runbook resume {run} --retry-step {id}` to apply it again, \
                                 or `runbook resume {run} --skip-step {id} --reason \"...\"` if its effect is in place",
                                id = step.id
                            ),
                        });
                    }
                    let decision = if authorized {
                        format!("{what}; {state}; applying again as the operator asked")
                    } else {
                        format!(
                            "{what}; {state}; it is {}, so it is applied again",
                            effect.as_str()
                        )
                    };
                    self.observer.notice(Notice::InDoubt {
                        label: label.clone(),
                        decision,
                    });
                }
            }
        }

        let max = step.retry.max_attempts();
        let mut tries = 0;
        loop {
            tries += 1;
            attempt += 1;
            // Guards, right before the step's (or item's) first effect: once it has been
            // applied, even in part, its own effect may change what a guard reads (a
            // take-offline makes replication mixed); from then on its preconditions,
            // checked before every attempt, are what protect it.
            if prior.attempts == 0 && tries == 1 {
                if let Some(stop) = self.enforce_guards(Some(step), key.clone()).await? {
                    return Ok(stop);
                }
            }
            // Preconditions: live, right before the effect, every attempt.
            for cond in &step.require {
                match self.check_condition(step, cond, &ctx, &args, &scope).await {
                    Ok(c) if c.holds => {}
                    Ok(c) => {
                        return Ok(ItemOutcome::Halt {
                            kind: HaltKind::Precondition,
                            reason: format!(
                            "precondition of `{label}` not met, nothing was done: {}; observed: {}",
                            c.message,
                            short(&c.observation)
                        ),
                        })
                    }
                    Err(e) => {
                        if e.retryable && tries < max {
                            let d = self.env.scaled_pause(step.retry.pause_after(tries));
                            self.observer.notice(Notice::Failed {
                                label: label.clone(),
                                attempt,
                                error: format!("cannot check precondition: {e}"),
                                retry_in: Some(d),
                            });
                            if !self.interrupt.sleep(d).await {
                                return Ok(self.interrupted(&label));
                            }
                            continue;
                        }
                        return Ok(ItemOutcome::Halt {
                            kind: HaltKind::Precondition,
                            reason: format!("precondition of `{label}` could not be checked, nothing was done: {e}"),
                        });
                    }
                }
            }
            if prepared.is_empty() {
                match action.prepare(&ctx, &args).await {
                    Ok(p) => prepared = p,
                    Err(e) => {
                        if e.retryable && tries < max {
                            let d = self.env.scaled_pause(step.retry.pause_after(tries));
                            self.observer.notice(Notice::Failed {
                                label: label.clone(),
                                attempt,
                                error: e.message.clone(),
                                retry_in: Some(d),
                            });
                            if !self.interrupt.sleep(d).await {
                                return Ok(self.interrupted(&label));
                            }
                            continue;
                        }
                        return Ok(ItemOutcome::Fail {
                            error: format!("step `{label}`: cannot read the state to record before the effect: {e}"),
                        });
                    }
                }
            }
            self.recorder.record(Event::StepStarted {
                step: step.id.clone(),
                item: key.clone(),
                attempt,
                effect,
                prepared: prepared.clone(),
                at: now_ms(),
            })?;
            failpoint::hit("before-apply", &step.id, key.as_deref());
            self.observer.notice(Notice::Attempt {
                label: label.clone(),
                attempt,
                calls: action.describe(&ctx, &args),
            });
            let attempt_start = Instant::now();
            let mut unmet = false;
            tracing::debug!(step = %label, attempt, "applying");
            let applied = tokio::time::timeout(timeout, action.apply(&ctx, &args, &prepared)).await;
            failpoint::hit("after-apply", &step.id, key.as_deref());
            let result = match applied {
                Err(_) => Err(StepError::transient(format!(
                    "no answer within the step's timeout of {}",
                    humantime::format_duration(timeout)
                ))),
                Ok(Err(_)) if self.interrupt.is_set() => {
                    return Ok(ItemOutcome::Halt {
                        kind: HaltKind::Interrupted,
                        reason: format!("interrupted during `{label}`; it is left in doubt and will be checked on resume"),
                    })
                }
                Ok(Err(e)) => Err(e),
                Ok(Ok(out)) => {
                    let deadline = attempt_start + timeout;
                    match self.verify(step, action.as_ref(), &ctx, &args, &scope, deadline, &label, &prepared).await {
                        Verified::Holds(observation) => {
                            let mut outputs = prepared.clone();
                            outputs.extend(out);
                            Ok((outputs, observation))
                        }
                        Verified::TimedOut(msg) => {
                            unmet = true;
                            Err(StepError::transient(msg))
                        }
                        Verified::Interrupted => {
                            return Ok(ItemOutcome::Halt {
                                kind: HaltKind::Interrupted,
                                reason: format!(
                                    "interrupted while waiting for `{label}` to take effect; it is left in doubt and \
                                     will be checked on resume"
                                ),
                            })
                        }
                    }
                }
            };
            match result {
                Ok((outputs, observation)) => {
                    let note = outputs
                        .get("summary")
                        .and_then(Json::as_str)
                        .map(str::to_string);
                    self.succeed(
                        step,
                        key.clone(),
                        &label,
                        outputs,
                        observation,
                        note,
                        started,
                    )?;
                    failpoint::hit("after-journal", &step.id, key.as_deref());
                    return Ok(ItemOutcome::Done);
                }
                Err(e) => {
                    // A destructive effect is tried again only when the step has
                    // preconditions, checked live again (with the guards) before it.
                    let will_retry = e.retryable
                        && tries < max
                        && !self.interrupt.is_set()
                        && (effect != Effect::Destructive || !step.require.is_empty());
                    self.recorder.record(Event::StepFailed {
                        step: step.id.clone(),
                        item: key.clone(),
                        attempt,
                        error: e.message.clone(),
                        will_retry,
                        at: now_ms(),
                    })?;
                    let retry_in =
                        will_retry.then(|| self.env.scaled_pause(step.retry.pause_after(tries)));
                    self.observer.notice(Notice::Failed {
                        label: label.clone(),
                        attempt,
                        error: e.message.clone(),
                        retry_in,
                    });
                    match retry_in {
                        None if e.needs_operator => {
                            return Ok(ItemOutcome::Halt {
                                kind: HaltKind::Postcondition,
                                reason: format!(
                                    "`{label}`: {}. Nothing after it was done. When you have decided, `runbook resume {}` checks it again and goes on",
                                    e.message,
                                    self.run_id()
                                ),
                            });
                        }
                        None => {
                            let hint = if tries >= max && max > 1 {
                                format!(" (gave up after {max} attempts)")
                            } else {
                                String::new()
                            };
                            if unmet && !self.interrupt.is_set() {
                                // Applied, and the system did not follow: stop before
                                // anything that relies on it, for a person to look.
                                return Ok(ItemOutcome::Halt {
                                    kind: HaltKind::Postcondition,
                                    reason: format!(
                                        "`{label}` {}{hint}. Nothing after it was done. Once the cause is \
                                         fixed, `runbook resume {}` checks it again and goes on",
                                        e.message,
                                        self.run_id()
                                    ),
                                });
                            }
                            return Ok(ItemOutcome::Fail {
                                error: format!("step `{label}` failed{hint}: {}", e.message),
                            });
                        }
                        Some(d) => {
                            if !self.interrupt.sleep(d).await {
                                return Ok(self.interrupted(&label));
                            }
                        }
                    }
                }
            }
        }
    }

    fn interrupted(&self, label: &str) -> ItemOutcome {
        ItemOutcome::Halt {
            kind: HaltKind::Interrupted,
            reason: format!("interrupted while `{label}` waited to try again"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn succeed(
        &self,
        step: &Step,
        key: Option<String>,
        label: &str,
        outputs: Outputs,
        observation: Option<Json>,
        note: Option<String>,
        started: Instant,
    ) -> Result<(), JournalError> {
        self.recorder.record(Event::StepSucceeded {
            step: step.id.clone(),
            item: key,
            outputs,
            observation,
            note: note.clone(),
            at: now_ms(),
        })?;
        self.observer.notice(Notice::Done {
            label: label.to_string(),
            elapsed: started.elapsed(),
            note,
        });
        Ok(())
    }

    async fn pass_gate(
        &self,
        step: &Step,
        key: Option<String>,
        label: &str,
        instructions: String,
        started: Instant,
    ) -> Result<ItemOutcome, JournalError> {
        if self.recorder.with(|s| s.approvals.contains(&step.id)) {
            self.succeed(
                step,
                key,
                label,
                Outputs::new(),
                None,
                Some("approved by the operator".into()),
                started,
            )?;
            return Ok(ItemOutcome::Done);
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
                    step,
                    key,
                    label,
                    Outputs::new(),
                    None,
                    Some("approved at the terminal".into()),
                    started,
                )?;
                return Ok(ItemOutcome::Done);
            }
        }
        Ok(ItemOutcome::Halt {
            kind: HaltKind::ManualGate,
            reason: format!(
                "waiting for approval of `{label}`: {instructions} — when done, run `runbook resume {} --approve {}`",
                self.run_id(),
                step.id
            ),
        })
    }

    /// The step's postcondition now: `None` when it has none (no `verify:` and no
    /// built-in one), else whether it holds and the last observation.
    async fn postcondition(
        &self,
        step: &Step,
        action: &dyn Action,
        ctx: &StepCtx,
        args: &Args,
        scope: &Json,
    ) -> Result<Option<Post>, StepError> {
        let own = action.postcondition(ctx, args);
        if own.is_none() && step.verify.is_empty() {
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
        for cond in &step.verify {
            let c = self.check_condition(step, cond, ctx, args, scope).await?;
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

    /// Poll the postcondition: first at once, then with doubling pauses up to the
    /// action's poll interval, until it holds or `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn verify(
        &self,
        step: &Step,
        action: &dyn Action,
        ctx: &StepCtx,
        args: &Args,
        scope: &Json,
        deadline: Instant,
        label: &str,
        prepared: &Outputs,
    ) -> Verified {
        let what = postcondition_text(step, action, ctx, args);
        let reissue = action.reissue() && action.effect(args) == Effect::Idempotent;
        let mut rounds = 0u32;
        let mut reissued: Option<String> = None;
        let cap = self
            .env
            .scaled_pause(action.poll_interval(args))
            .max(Duration::from_millis(1));
        let mut pause = Duration::from_millis(5).min(cap);
        let start = Instant::now();
        let mut last: Option<String>;
        loop {
            match self.postcondition(step, action, ctx, args, scope).await {
                Ok(None) => return Verified::Holds(None),
                Ok(Some(p)) if p.holds => return Verified::Holds(p.observation),
                Ok(Some(p)) => {
                    self.recorder.waiting(
                        label,
                        format!("{what} — now: {}", p.why.as_deref().unwrap_or("not yet")),
                    );
                    self.observer.notice(Notice::Waiting {
                        label: label.to_string(),
                        what: what.clone(),
                        elapsed: start.elapsed(),
                        last: p.why.clone(),
                    });
                    last = p.why;
                }
                Err(e) => last = Some(format!("probe failed: {e}")),
            }
            let now = Instant::now();
            if now >= deadline {
                return Verified::TimedOut(format!(
                    "did not take effect within {}: expected {what}; observed: {}{}",
                    approx(deadline.saturating_duration_since(start)),
                    last.unwrap_or_else(|| "none".into()),
                    match (&reissued, rounds) {
                        (Some(r), _) => format!(" ({r})"),
                        (None, 0) => String::new(),
                        (None, n) => format!(" (issued again {n}×)"),
                    }
                ));
            }
            if !self.interrupt.sleep(pause.min(deadline - now)).await {
                return Verified::Interrupted;
            }
            pause = (pause * 2).min(cap);
            if reissue {
                // Issued again, as the guide says, until it holds.
                rounds += 1;
                tracing::debug!(step = %label, rounds, "issuing the effect again");
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, action.apply(ctx, args, prepared)).await {
                    Ok(Ok(out)) => {
                        if let Some(p) = out.get("pending").and_then(Json::as_str) {
                            reissued =
                                Some(format!("issued again {rounds}×; its last answer: {p}"));
                        }
                    }
                    Ok(Err(e)) => {
                        reissued = Some(format!("issued again {rounds}×; its last answer: {e}"))
                    }
                    Err(_) => {}
                }
            }
        }
    }

    async fn check_condition(
        &self,
        step: &Step,
        cond: &Condition,
        ctx: &StepCtx,
        args: &Args,
        scope: &Json,
    ) -> Result<CondResult, StepError> {
        crate::condition::check(
            cond,
            &step.action,
            &self.registry,
            &self.env,
            &self.templates,
            ctx,
            args,
            scope,
        )
        .await
    }
}

/// What a step waits for, as a person reads it.
pub fn postcondition_text(step: &Step, action: &dyn Action, ctx: &StepCtx, args: &Args) -> String {
    let mut parts: Vec<String> = action.postcondition(ctx, args).into_iter().collect();
    for c in &step.verify {
        parts.push(
            c.message
                .clone()
                .unwrap_or_else(|| format!("`{}`", c.expect)),
        );
    }
    if parts.is_empty() {
        "nothing (no postcondition)".into()
    } else {
        parts.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_messages_are_rounded_for_people() {
        assert_eq!(approx(Duration::from_millis(850)), "850ms");
        assert_eq!(approx(Duration::from_millis(2996)), "3.0s");
        assert_eq!(approx(Duration::from_millis(149_700)), "2m 30s");
    }
}
