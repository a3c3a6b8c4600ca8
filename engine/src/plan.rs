//! The dry-run preview: every step with its resolved arguments, the exact calls it
//! would make, its effect class, preconditions and postcondition. A plan writes
//! nothing anywhere; `live` adds read-only probes of the current state.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::action::{Action, Registry, Site, StepCtx};
use crate::condition::{Probing, Subject};
use crate::env::Environment;
use crate::model::{item_key, template_name, Args, Condition, Effect, Runbook, Step};
use crate::redact::Redactor;
use crate::scope::{base_scope, check_rendered_args, item_scope, postcondition_text};
use crate::template::Templates;

/// The mark that stands for an output not known before the run.
pub const PLACEHOLDER: &str = "⟨";

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub title: String,
    pub origin: String,
    /// The procedure pack of the runbook (`None`: a runbook file).
    pub pack: Option<String>,
    pub params: serde_json::Map<String, Json>,
    pub sites: Vec<String>,
    pub live: bool,
    /// The safety guards: checked before the first effect and before the steps named.
    pub guards: Vec<PlannedGuard>,
    /// Set when `force=true`: every guard that does not hold is overridden (journaled).
    pub forced: Option<String>,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedGuard {
    pub id: String,
    pub title: String,
    /// The probe and the site it reads, or `journal and parameters`.
    pub reads: String,
    pub expect: String,
    /// Where it is checked: `start`, then each step named.
    pub checked: Vec<String>,
    /// `false`: its `when` is false with these parameters.
    pub applies: Option<bool>,
    pub unchecked: Option<String>,
    /// Checked only right before its steps (earlier steps change what it reads):
    /// `--live` does not judge it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// `--live`: whether it holds now, and what was seen or why it would refuse.
    pub holds: Option<bool>,
    pub now: Option<String>,
}

impl Plan {
    /// `--live`: the guards that would refuse the run now (not holding, or not
    /// checkable, and not overridden by `force`); empty when it would run.
    pub fn would_refuse(&self) -> Vec<&PlannedGuard> {
        if !self.live || self.forced.is_some() {
            return Vec::new();
        }
        self.guards
            .iter()
            .filter(|g| g.deferred.is_none() && g.applies != Some(false) && g.holds != Some(true))
            .collect()
    }

    /// What the run's effects move or remove, in step order (skipped steps left out).
    pub fn impacts(&self) -> Vec<&PlannedImpact> {
        self.steps
            .iter()
            .filter(|s| s.runs != Some(false))
            .filter_map(|s| s.impact.as_ref())
            .collect()
    }

    /// Where the run moves traffic, in step order (`site-a out, site-b in`): each step
    /// that moves traffic, by whether its action takes a site out of traffic or puts
    /// one in (its built-in invariant says which); `None` when none does.
    pub fn traffic(&self, registry: &crate::action::Registry) -> Option<String> {
        let moves: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.runs != Some(false))
            .filter(|s| {
                s.impact
                    .as_ref()
                    .is_some_and(|i| i.kind == crate::action::ImpactKind::MovesTraffic)
            })
            .filter_map(|s| {
                let site = s.impact.as_ref()?.site.clone().or_else(|| s.site.clone())?;
                let inv = registry.get(&s.action)?.invariants();
                if inv.contains(&"remove-from-traffic") {
                    Some(format!("{site} out"))
                } else if inv.contains(&"add-to-traffic") {
                    Some(format!("{site} in"))
                } else {
                    None
                }
            })
            .collect();
        (!moves.is_empty()).then(|| moves.join(", "))
    }

    pub fn destructive_steps(&self) -> Vec<&PlannedStep> {
        self.steps
            .iter()
            .filter(|s| s.effect == Effect::Destructive)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub index: usize,
    pub id: String,
    pub title: String,
    pub action: String,
    pub site: Option<String>,
    pub effect: Effect,
    pub when: Option<String>,
    /// `Some(false)`: skipped as things stand; `None`: decided at run time.
    pub runs: Option<bool>,
    pub items: Option<Vec<String>>,
    pub concurrency: Option<usize>,
    /// The calls, per item when fanned out (`item: call`).
    pub calls: Vec<String>,
    pub require: Vec<String>,
    pub verify: String,
    pub retry: String,
    pub timeout: String,
    pub gate: Option<String>,
    /// What its effect moves or removes (`Action::impact`), for the confirmation.
    pub impact: Option<PlannedImpact>,
    /// Findings of `--live`.
    pub now: Option<LiveFindings>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedImpact {
    pub kind: crate::action::ImpactKind,
    pub site: Option<String>,
    /// In plain words; a fan-out's items are named after it.
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveFindings {
    pub preconditions: Vec<LiveCheck>,
    /// The step's postcondition already holds (for every item).
    pub satisfied: Option<bool>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveCheck {
    pub condition: String,
    pub holds: Option<bool>,
    pub observed: Option<Json>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}: step `{step}`: {message}")]
pub struct PlanError {
    pub origin: String,
    pub line: usize,
    pub step: String,
    pub message: String,
}

/// Stand-ins for the outputs of the earlier steps that step `upto` reads (all of them
/// when its templates index `steps` dynamically), so a plan renders before they exist.
fn placeholder_steps(runbook: &Runbook, registry: &Registry, upto: usize) -> Json {
    let mut steps = serde_json::Map::new();
    let earlier = &runbook.steps[..upto];
    let read = earlier
        .iter()
        .filter(|s| match &runbook.steps[upto].step_refs {
            None => true,
            Some(ids) => ids.contains(&s.id),
        });
    for s in read {
        let mut outputs = serde_json::Map::new();
        if let Some(names) = registry.get(&s.action).and_then(|a| a.outputs()) {
            for n in names {
                outputs.insert(
                    n.to_string(),
                    Json::String(format!("{PLACEHOLDER}steps.{}.outputs.{n}⟩", s.id)),
                );
            }
        }
        let v = json!({"outputs": outputs, "skipped": false});
        steps.insert(template_name(&s.id), v.clone());
        steps.insert(s.id.clone(), v);
    }
    Json::Object(steps)
}

fn mentions_steps(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains("steps.") || s.contains("steps["),
        Json::Array(a) => a.iter().any(mentions_steps),
        Json::Object(m) => m.values().any(mentions_steps),
        _ => false,
    }
}

fn has_placeholder(v: &Json) -> bool {
    v.to_string().contains(PLACEHOLDER)
}

/// A condition as the plan prints it. `cond_site` is the condition's own `site:`,
/// rendered; `site` the step's.
fn describe_condition(
    c: &Condition,
    step: &Step,
    cond_site: Option<&str>,
    site: Option<&str>,
) -> String {
    let probe = c.probe.as_deref().unwrap_or(&step.action);
    let on = cond_site
        .or(site)
        .map(|s| format!(" on {s}"))
        .unwrap_or_default();
    match &c.message {
        Some(m) => format!("{m} (probe {probe}{on}: `{}`)", c.expect),
        None => format!("probe {probe}{on}: `{}`", c.expect),
    }
}

/// The sites a runbook touches with these parameters (for locks and the plan).
///
/// # Errors
/// A site template that does not render, or names no site of the environment.
pub fn sites_touched(
    runbook: &Runbook,
    registry: &Registry,
    env: &Environment,
    params: &Json,
) -> Result<Vec<String>, PlanError> {
    let templates = Templates::new();
    let mut out: Vec<String> = Vec::new();
    for (i, step) in runbook.steps.iter().enumerate() {
        let scope = base_scope(
            params,
            env,
            "plan",
            placeholder_steps(runbook, registry, i),
            &Json::Object(Default::default()),
        );
        let templates_of = step.site.iter().chain(
            step.require
                .iter()
                .chain(&step.verify)
                .filter_map(|c| c.site.as_ref()),
        );
        for t in templates_of {
            let err = |message: String| PlanError {
                origin: runbook.origin.clone(),
                line: step.line,
                step: step.id.clone(),
                message,
            };
            let site = crate::scope::render_site(&templates, t, &scope, env)
                .map_err(|e| err(e.to_string()))?;
            if !out.contains(&site.name) {
                out.push(site.name);
            }
        }
    }
    Ok(out)
}

/// Build the plan. With `live`, probe current state (read-only calls only).
///
/// # Errors
/// A template that cannot render with these parameters and this environment.
pub async fn plan(
    runbook: &Runbook,
    registry: &Registry,
    env: Arc<Environment>,
    params: &serde_json::Map<String, Json>,
    redactor: &Redactor,
    live: bool,
    history: &Json,
) -> Result<Plan, PlanError> {
    let params_json = Json::Object(params.clone());
    let sites = sites_touched(runbook, registry, &env, &params_json)?;
    let actions = registry.bind(runbook).map_err(|e| PlanError {
        origin: runbook.origin.clone(),
        line: runbook.step(&e.step).map_or(0, |s| s.line),
        step: e.step.clone(),
        message: e.to_string(),
    })?;
    let planner = Planner {
        runbook,
        registry,
        actions,
        env,
        templates: Templates::new(),
        params: params_json,
        history,
        redactor,
        live,
    };
    let guards = planner.guards().await;
    let mut steps = Vec::new();
    for index in 0..runbook.steps.len() {
        steps.push(planner.step(index).await?);
    }
    Ok(Plan {
        runbook: runbook.name.clone(),
        title: runbook.title.clone(),
        origin: runbook.origin.clone(),
        pack: runbook.pack.clone(),
        params: planner.shown_params(params),
        sites,
        live,
        guards,
        forced: planner.forced(params),
        steps,
    })
}

/// Everything a plan is built from.
struct Planner<'a> {
    runbook: &'a Runbook,
    registry: &'a Registry,
    actions: Vec<Arc<dyn Action>>,
    env: Arc<Environment>,
    templates: Templates,
    params: Json,
    history: &'a Json,
    redactor: &'a Redactor,
    live: bool,
}

/// One step as rendered for the plan: per item, the calls it would make.
struct Rendered {
    calls: Vec<String>,
    effect: Effect,
    gate: Option<String>,
    verify: String,
    /// Per item, the rendered arguments (`None` when they depend on earlier outputs).
    args: Vec<(Option<Json>, Option<Args>)>,
    impact: Option<(crate::action::ImpactKind, String)>,
}

/// A step of the plan, with what it acts on.
struct StepView<'s> {
    step: &'s Step,
    action: &'s dyn Action,
    scope: Json,
    site: Option<Site>,
    timeout: std::time::Duration,
}

impl Planner<'_> {
    fn err(&self, step: &Step, message: String) -> PlanError {
        PlanError {
            origin: self.runbook.origin.clone(),
            line: step.line,
            step: step.id.clone(),
            message,
        }
    }

    fn scope(&self, index: usize) -> Json {
        base_scope(
            &self.params,
            &self.env,
            "plan",
            placeholder_steps(self.runbook, self.registry, index),
            self.history,
        )
    }

    fn ctx(&self, v: &StepView<'_>, item: Option<&Json>) -> StepCtx {
        StepCtx {
            run_id: "plan".into(),
            step_id: v.step.id.clone(),
            item: item.cloned(),
            site: v.site.clone(),
            env: Arc::clone(&self.env),
            timeout: v.timeout,
            interrupt: Default::default(),
            progress: Default::default(),
        }
    }

    /// What the step after gate `index` does that needs a second person's approval
    /// (`decide::second_person`), as the executor will judge it.
    fn second_person(&self, index: usize) -> Option<String> {
        let next = self.runbook.steps.get(index + 1)?;
        let action = self.actions.get(index + 1)?;
        let raw = next.with.as_object().cloned().unwrap_or_default();
        let what = crate::decide::second_person(
            self.env.four_eyes,
            action.invariants(),
            action.effect(&raw),
        )?;
        Some(format!("the next step `{}` {what}", next.id))
    }

    async fn step(&self, index: usize) -> Result<PlannedStep, PlanError> {
        let step = &self.runbook.steps[index];
        let action = self.actions[index].as_ref();
        let scope = self.scope(index);
        let runs = match &step.when {
            None => Some(true),
            Some(w) if mentions_steps(&Json::String(w.clone())) => None,
            Some(w) => Some(
                self.templates
                    .truth(w, &scope)
                    .map_err(|e| self.err(step, format!("cannot evaluate `when`: {e}")))?,
            ),
        };
        let site = self.site(step, &scope)?;
        let items = self.items(step, &scope)?;
        let timeout = self
            .env
            .scaled_timeout(step.timeout.unwrap_or_else(|| action.default_timeout()));
        let view = StepView {
            step,
            action,
            scope,
            site,
            timeout,
        };
        let mut r = self.render(&view, items.as_deref())?;
        if items.is_none() && step.for_each.is_some() {
            r.calls
                .push("(the items depend on the outputs of earlier steps)".into());
        }
        let now = if self.live && runs != Some(false) {
            Some(self.probe_live(&view, &r.args).await)
        } else {
            None
        };
        let site_name = view.site.as_ref().map(|s| s.name.clone());
        let gate = r.gate.map(|g| match self.second_person(index) {
            Some(why) => format!("{g} — then a SECOND person approves it (four eyes: {why}; whoever started or drives the run cannot)"),
            None => g,
        });
        Ok(PlannedStep {
            index: index + 1,
            id: step.id.clone(),
            title: step.title.clone(),
            action: step.action.clone(),
            require: self.require(&view, site_name.as_deref()),
            site: site_name.clone(),
            effect: r.effect,
            when: step.when.clone(),
            runs,
            items: items.as_ref().map(|l| l.iter().map(item_key).collect()),
            concurrency: step.for_each.as_ref().map(|f| f.concurrency),
            calls: r.calls,
            verify: self.redactor.text(&r.verify),
            retry: step.retry.describe(),
            timeout: humantime::format_duration(timeout).to_string(),
            gate,
            impact: r.impact.map(|(kind, text)| PlannedImpact {
                kind,
                site: site_name.clone(),
                text: match &items {
                    Some(list) if !list.is_empty() => format!(
                        "{text}: {}",
                        list.iter().map(item_key).collect::<Vec<_>>().join(", ")
                    ),
                    _ => text,
                },
            }),
            now,
        })
    }

    fn site(&self, step: &Step, scope: &Json) -> Result<Option<Site>, PlanError> {
        let Some(t) = &step.site else {
            return Ok(None);
        };
        crate::scope::render_site(&self.templates, t, scope, &self.env)
            .map(Some)
            .map_err(|e| self.err(step, e.to_string()))
    }

    fn items(&self, step: &Step, scope: &Json) -> Result<Option<Vec<Json>>, PlanError> {
        let Some(fe) = &step.for_each else {
            return Ok(None);
        };
        match self.templates.render(&fe.items, scope) {
            Ok(Json::Array(items)) => Ok(Some(items)),
            Ok(Json::String(s)) if s.contains(PLACEHOLDER) => Ok(None),
            Ok(other) => Err(self.err(step, format!("for_each.items gave {other}, not a list"))),
            Err(_) if mentions_steps(&fe.items) => Ok(None),
            Err(e) => Err(self.err(step, format!("cannot render for_each.items: {e}"))),
        }
    }

    /// Render the step's arguments for each item: the calls, the strongest effect,
    /// the gate and the postcondition.
    fn render(&self, v: &StepView<'_>, items: Option<&[Json]>) -> Result<Rendered, PlanError> {
        let (step, action) = (v.step, v.action);
        let item_list: Vec<Option<Json>> = match items {
            None => vec![None],
            Some(list) => list.iter().cloned().map(Some).collect(),
        };
        let mut r = Rendered {
            calls: Vec::new(),
            effect: Effect::ReadOnly,
            gate: None,
            verify: String::new(),
            args: Vec::new(),
            impact: None,
        };
        // The step's data converted once; each item adds only itself and the site
        // (a fan-out over n items costs n, not n times the data).
        let base = Templates::context(&v.scope);
        let overlay = item_scope(&Json::Object(Default::default()), v.site.as_ref(), None);
        for item in &item_list {
            let mut on_top = overlay.clone();
            if let Some(i) = item {
                on_top["item"] = i.clone();
            }
            let prefix = item
                .as_ref()
                .map(|i| format!("[{}] ", item_key(i)))
                .unwrap_or_default();
            match self.templates.render_over(&step.with, &base, &on_top) {
                Ok(Json::Object(args)) => {
                    let unresolved = has_placeholder(&Json::Object(args.clone()));
                    if !unresolved {
                        check_rendered_args(action, &args)
                            .map_err(|e| self.err(step, e.to_string()))?;
                    }
                    r.effect = r.effect.max(action.effect(&args));
                    r.gate = r.gate.or_else(|| action.gate(&args));
                    let ctx = self.ctx(v, item.as_ref());
                    if !unresolved && r.impact.is_none() {
                        r.impact = action.impact(&ctx, &args);
                    }
                    r.verify = postcondition_text(step, action, &ctx, &args);
                    for line in action.describe(&ctx, &args) {
                        r.calls.push(self.redactor.text(&format!("{prefix}{line}")));
                    }
                    r.args.push((item.clone(), (!unresolved).then_some(args)));
                }
                Ok(other) => {
                    return Err(self.err(
                        step,
                        format!("arguments rendered to {other}, not a mapping"),
                    ))
                }
                Err(_) if mentions_steps(&step.with) => {
                    // Judge the effect on the arguments as written (e.g. a literal method).
                    let raw = step.with.as_object().cloned().unwrap_or_default();
                    r.effect = r.effect.max(action.effect(&raw));
                    r.calls.push(format!(
                        "{prefix}(arguments depend on the outputs of earlier steps)"
                    ));
                    r.args.push((item.clone(), None));
                }
                Err(e) => return Err(self.err(step, format!("cannot render arguments: {e}"))),
            }
        }
        Ok(r)
    }

    /// The step's preconditions as the plan prints them.
    fn require(&self, v: &StepView<'_>, site: Option<&str>) -> Vec<String> {
        v.step
            .require
            .iter()
            .map(|c| {
                let cond_site = c.site.as_ref().map(|t| {
                    match self.templates.render(&Json::String(t.clone()), &v.scope) {
                        Ok(Json::String(name)) if !name.contains(PLACEHOLDER) => name,
                        // Named by an earlier step's output: shown as written.
                        _ => t.clone(),
                    }
                });
                self.redactor
                    .text(&describe_condition(c, v.step, cond_site.as_deref(), site))
            })
            .collect()
    }

    /// The parameters as shown: secrets masked.
    fn shown_params(
        &self,
        params: &serde_json::Map<String, Json>,
    ) -> serde_json::Map<String, Json> {
        params
            .iter()
            .map(|(k, v)| {
                let secret = self.runbook.params.get(k).is_some_and(|p| p.secret);
                let v = if secret {
                    Json::String(crate::redact::MASK.into())
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The operator's reason when the guards are overridden (`force=true`).
    fn forced(&self, params: &serde_json::Map<String, Json>) -> Option<String> {
        (params.get("force").and_then(Json::as_bool) == Some(true)).then(|| {
            self.redactor.text(
                params
                    .get("force_reason")
                    .and_then(Json::as_str)
                    .unwrap_or_default(),
            )
        })
    }

    async fn guards(&self) -> Vec<PlannedGuard> {
        let scope = base_scope(
            &self.params,
            &self.env,
            "plan",
            Json::Object(Default::default()),
            self.history,
        );
        let mut out = Vec::new();
        for g in &self.runbook.guards {
            out.push(self.guard(g, &scope).await);
        }
        out
    }

    async fn guard(&self, g: &crate::model::Guard, scope: &Json) -> PlannedGuard {
        let site =
            g.site.as_ref().map(
                |t| match self.templates.render(&Json::String(t.clone()), scope) {
                    Ok(Json::String(name)) => name,
                    _ => t.clone(),
                },
            );
        let reads = match &g.probe {
            Some(p) => format!(
                "{p}{}",
                site.map(|s| format!(" on {s}")).unwrap_or_default()
            ),
            None => "the journal and the parameters".to_string(),
        };
        let applies = match &g.when {
            None => Some(true),
            Some(w) => self.templates.truth(w, scope).ok(),
        };
        let mut checked = match g.deferred {
            None => vec!["before the first effect".to_string()],
            Some(_) => Vec::new(),
        };
        checked.extend(g.before.iter().map(|b| format!("before `{b}`")));
        let (holds, now) = if self.live && applies != Some(false) && g.deferred.is_none() {
            let ge = crate::guard::GuardEnv {
                registry: self.registry,
                env: &self.env,
                templates: &self.templates,
                run_id: "plan",
                timeout: self.env.scaled_timeout(std::time::Duration::from_secs(60)),
                interrupt: Default::default(),
            };
            let c = crate::guard::check(g, &ge, scope).await;
            let text = if c.passed() {
                crate::guard::seen(&c)
            } else {
                c.refusal.clone()
            };
            (Some(c.passed()), Some(self.redactor.text(&text)))
        } else {
            (None, None)
        };
        PlannedGuard {
            id: g.id.clone(),
            title: g.title.clone(),
            reads,
            expect: g.expect.clone(),
            checked,
            applies,
            unchecked: g.unchecked.clone(),
            deferred: g.deferred.clone(),
            holds,
            now,
        }
    }

    /// Probe the step's preconditions and postcondition now (`plan --live`).
    async fn probe_live(
        &self,
        v: &StepView<'_>,
        rendered: &[(Option<Json>, Option<Args>)],
    ) -> LiveFindings {
        let mut f = LiveFindings {
            preconditions: Vec::new(),
            satisfied: Some(true),
            note: None,
        };
        for (item, args) in rendered {
            let Some(args) = args else {
                f.note =
                    Some("depends on the outputs of earlier steps: probed at run time".to_string());
                f.satisfied = None;
                continue;
            };
            let scope = item_scope(&v.scope, v.site.as_ref(), item.as_ref());
            let ctx = self.ctx(v, item.as_ref());
            let prefix = item
                .as_ref()
                .map(|i| format!("[{}] ", item_key(i)))
                .unwrap_or_default();
            let subject = Subject {
                step_action: &v.step.action,
                ctx: &ctx,
                args,
                scope: &scope,
            };
            for c in &v.step.require {
                f.preconditions
                    .push(self.live_condition(c, subject, &prefix).await);
            }
            match self.already_holds(v, subject, &prefix).await {
                None => f.satisfied = None,
                Some(false) => f.satisfied = f.satisfied.map(|_| false),
                Some(true) => {}
            }
        }
        f
    }

    /// Whether the step's postcondition (the action's own, and the runbook's
    /// `verify`) already holds: `None` when it has none.
    async fn already_holds(
        &self,
        v: &StepView<'_>,
        subject: Subject<'_>,
        prefix: &str,
    ) -> Option<bool> {
        let (action, ctx, args) = (v.action, subject.ctx, subject.args);
        let own = action.postcondition(ctx, args).is_some();
        if !own && v.step.verify.is_empty() {
            return None;
        }
        let mut holds = true;
        if own {
            match action.probe(ctx, args).await {
                Ok(o) => holds &= action.satisfied(args, &o),
                Err(_) => holds = false,
            }
        }
        for c in &v.step.verify {
            holds &= self.live_condition(c, subject, prefix).await.holds == Some(true);
        }
        Some(holds)
    }

    /// One condition, judged now by the evaluator the run uses.
    async fn live_condition(&self, c: &Condition, subject: Subject<'_>, prefix: &str) -> LiveCheck {
        let redactor = self.redactor;
        let condition = redactor.text(&format!(
            "{prefix}{}",
            c.message
                .clone()
                .unwrap_or_else(|| format!("`{}`", c.expect))
        ));
        let fail = |error: String| LiveCheck {
            condition: condition.clone(),
            holds: None,
            observed: None,
            error: Some(redactor.text(&error)),
        };
        // Arguments that read outputs of steps not run yet are probed at run time.
        if let Some(w) = &c.with {
            match self.templates.render(w, subject.scope) {
                Ok(v) if has_placeholder(&v) => {
                    return fail("depends on the outputs of earlier steps".into())
                }
                Ok(_) => {}
                Err(e) => return fail(e.to_string()),
            }
        }
        let probing = Probing {
            registry: self.registry,
            env: &self.env,
            templates: &self.templates,
        };
        match crate::condition::check(c, probing, subject).await {
            Ok(r) => {
                let mut observed = r.observation;
                redactor.json(&mut observed);
                LiveCheck {
                    condition,
                    holds: Some(r.holds),
                    observed: Some(observed),
                    error: None,
                }
            }
            Err(e) => fail(e.message),
        }
    }
}
