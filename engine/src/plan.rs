//! The dry-run preview: every step with its resolved arguments, the exact calls it
//! would make, its effect class, preconditions and postcondition. A plan writes
//! nothing anywhere; `live` adds read-only probes of the current state.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::action::{Registry, StepCtx};
use crate::env::Environment;
use crate::model::{item_key, template_name, Condition, Effect, Runbook, Step};
use crate::redact::Redactor;
use crate::scope::{base_scope, check_rendered_args, item_scope, postcondition_text, resolve_site};
use crate::template::Templates;

/// The mark that stands for an output not known before the run.
pub const PLACEHOLDER: &str = "⟨";

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub title: String,
    pub origin: String,
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
    /// `--live`: whether it holds now, and what was seen or why it would refuse.
    pub holds: Option<bool>,
    pub now: Option<String>,
}

impl Plan {
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
    /// Findings of `--live`.
    pub now: Option<LiveFindings>,
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
            &crate::history::none(),
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
            match templates.render(&Json::String(t.clone()), &scope) {
                Ok(Json::String(name)) if name.contains(PLACEHOLDER) => {}
                Ok(Json::String(name)) => {
                    resolve_site(env, &name).map_err(|e| err(e.to_string()))?;
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
                Ok(other) => return Err(err(format!("`site` gave {other}, not a site name"))),
                Err(e) if mentions_steps(&Json::String(t.clone())) => {
                    let _ = e;
                }
                Err(e) => return Err(err(format!("cannot render `site`: {e}"))),
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
    let templates = Templates::new();
    let params_json = Json::Object(params.clone());
    let sites = sites_touched(runbook, registry, &env, &params_json)?;
    let actions = registry.bind(runbook).map_err(|e| PlanError {
        origin: runbook.origin.clone(),
        line: runbook.step(&e.step).map_or(0, |s| s.line),
        step: e.step.clone(),
        message: e.to_string(),
    })?;
    let guards = plan_guards(
        runbook,
        registry,
        &env,
        &templates,
        &params_json,
        history,
        live,
        redactor,
    )
    .await;
    let forced = (params.get("force").and_then(Json::as_bool) == Some(true)).then(|| {
        redactor.text(
            params
                .get("force_reason")
                .and_then(Json::as_str)
                .unwrap_or_default(),
        )
    });
    let mut steps = Vec::new();
    for (index, step) in runbook.steps.iter().enumerate() {
        let err = |message: String| PlanError {
            origin: runbook.origin.clone(),
            line: step.line,
            step: step.id.clone(),
            message,
        };
        let action = &actions[index];
        let scope = base_scope(
            &params_json,
            &env,
            "plan",
            placeholder_steps(runbook, registry, index),
            history,
        );
        let runs = match &step.when {
            None => Some(true),
            Some(w) if mentions_steps(&Json::String(w.clone())) => None,
            Some(w) => Some(
                templates
                    .truth(w, &scope)
                    .map_err(|e| err(format!("cannot evaluate `when`: {e}")))?,
            ),
        };
        let site = match &step.site {
            None => None,
            Some(t) => match templates.render(&Json::String(t.clone()), &scope) {
                Ok(Json::String(name)) if !name.contains(PLACEHOLDER) => {
                    Some(resolve_site(&env, &name).map_err(|e| err(e.to_string()))?)
                }
                Ok(_) => None,
                Err(e) => return Err(err(format!("cannot render `site`: {e}"))),
            },
        };
        let items: Option<Vec<Json>> = match &step.for_each {
            None => None,
            Some(fe) => match templates.render(&fe.items, &scope) {
                Ok(Json::Array(items)) => Some(items),
                Ok(Json::String(s)) if s.contains(PLACEHOLDER) => None,
                Ok(other) => return Err(err(format!("for_each.items gave {other}, not a list"))),
                Err(e) if mentions_steps(&fe.items) => {
                    let _ = e;
                    None
                }
                Err(e) => return Err(err(format!("cannot render for_each.items: {e}"))),
            },
        };
        let timeout = env.scaled_timeout(step.timeout.unwrap_or_else(|| action.default_timeout()));
        let item_list: Vec<Option<Json>> = match &items {
            None => vec![None],
            Some(list) => list.iter().cloned().map(Some).collect(),
        };
        let mut calls = Vec::new();
        let mut effect = Effect::ReadOnly;
        let mut gate = None;
        let mut verify = String::new();
        let mut rendered: Vec<(Option<Json>, Option<crate::action::Args>)> = Vec::new();
        for item in &item_list {
            let s = item_scope(&scope, site.as_ref(), item.as_ref());
            let prefix = item
                .as_ref()
                .map(|i| format!("[{}] ", item_key(i)))
                .unwrap_or_default();
            match templates.render(&step.with, &s) {
                Ok(Json::Object(args)) => {
                    let unresolved = has_placeholder(&Json::Object(args.clone()));
                    if !unresolved {
                        check_rendered_args(action.as_ref(), &args)
                            .map_err(|e| err(e.to_string()))?;
                    }
                    effect = effect.max(action.effect(&args));
                    gate = gate.or_else(|| action.gate(&args));
                    let ctx = StepCtx {
                        run_id: "plan".into(),
                        step_id: step.id.clone(),
                        item: item.clone(),
                        site: site.clone(),
                        env: Arc::clone(&env),
                        timeout,
                        interrupt: Default::default(),
                    };
                    verify = postcondition_text(step, action.as_ref(), &ctx, &args);
                    for line in action.describe(&ctx, &args) {
                        calls.push(redactor.text(&format!("{prefix}{line}")));
                    }
                    rendered.push((item.clone(), (!unresolved).then_some(args)));
                }
                Ok(other) => {
                    return Err(err(format!("arguments rendered to {other}, not a mapping")))
                }
                Err(e) if mentions_steps(&step.with) => {
                    let _ = e;
                    // Judge the effect on the arguments as written (e.g. a literal method).
                    let raw = step.with.as_object().cloned().unwrap_or_default();
                    effect = effect.max(action.effect(&raw));
                    calls.push(format!(
                        "{prefix}(arguments depend on the outputs of earlier steps)"
                    ));
                    rendered.push((item.clone(), None));
                }
                Err(e) => return Err(err(format!("cannot render arguments: {e}"))),
            }
        }
        if items.is_none() && step.for_each.is_some() {
            calls.push("(the items depend on the outputs of earlier steps)".into());
        }
        let site_name = site.as_ref().map(|s| s.name.clone());
        let require = step
            .require
            .iter()
            .map(|c| {
                let cond_site = c.site.as_ref().map(|t| {
                    match templates.render(&Json::String(t.clone()), &scope) {
                        Ok(Json::String(name)) if !name.contains(PLACEHOLDER) => name,
                        // Named by an earlier step's output: shown as written.
                        _ => t.clone(),
                    }
                });
                redactor.text(&describe_condition(
                    c,
                    step,
                    cond_site.as_deref(),
                    site_name.as_deref(),
                ))
            })
            .collect();
        let now = if live && runs != Some(false) {
            Some(
                probe_live(
                    step,
                    action.as_ref(),
                    registry,
                    &env,
                    &templates,
                    &scope,
                    site.as_ref(),
                    &rendered,
                    timeout,
                    redactor,
                )
                .await,
            )
        } else {
            None
        };
        steps.push(PlannedStep {
            index: index + 1,
            id: step.id.clone(),
            title: step.title.clone(),
            action: step.action.clone(),
            site: site_name,
            effect,
            when: step.when.clone(),
            runs,
            items: items.as_ref().map(|l| l.iter().map(item_key).collect()),
            concurrency: step.for_each.as_ref().map(|f| f.concurrency),
            calls,
            require,
            verify: redactor.text(&verify),
            retry: step.retry.describe(),
            timeout: humantime::format_duration(timeout).to_string(),
            gate,
            now,
        });
    }
    let mut shown = serde_json::Map::new();
    for (k, v) in params {
        let secret = runbook.params.get(k).is_some_and(|p| p.secret);
        shown.insert(
            k.clone(),
            if secret {
                Json::String(crate::redact::MASK.into())
            } else {
                v.clone()
            },
        );
    }
    Ok(Plan {
        runbook: runbook.name.clone(),
        title: runbook.title.clone(),
        origin: runbook.origin.clone(),
        params: shown,
        sites,
        live,
        guards,
        forced,
        steps,
    })
}

#[allow(clippy::too_many_arguments)]
async fn plan_guards(
    runbook: &Runbook,
    registry: &Registry,
    env: &Arc<Environment>,
    templates: &Templates,
    params: &Json,
    history: &Json,
    live: bool,
    redactor: &Redactor,
) -> Vec<PlannedGuard> {
    let scope = base_scope(
        params,
        env,
        "plan",
        Json::Object(Default::default()),
        history,
    );
    let mut out = Vec::new();
    for g in &runbook.guards {
        let site =
            g.site.as_ref().map(
                |t| match templates.render(&Json::String(t.clone()), &scope) {
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
            Some(w) => templates.truth(w, &scope).ok(),
        };
        let mut checked = vec!["before the first effect".to_string()];
        checked.extend(g.before.iter().map(|b| format!("before `{b}`")));
        let (holds, now) = if live && applies != Some(false) {
            let ge = crate::guard::GuardEnv {
                registry,
                env,
                templates,
                run_id: "plan",
                timeout: env.scaled_timeout(std::time::Duration::from_secs(60)),
                interrupt: Default::default(),
            };
            let c = crate::guard::check(g, &ge, &scope).await;
            let text = if c.passed() {
                crate::guard::seen(&c)
            } else {
                c.refusal.clone()
            };
            (Some(c.passed()), Some(redactor.text(&text)))
        } else {
            (None, None)
        };
        out.push(PlannedGuard {
            id: g.id.clone(),
            title: g.title.clone(),
            reads,
            expect: g.expect.clone(),
            checked,
            applies,
            unchecked: g.unchecked.clone(),
            holds,
            now,
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn probe_live(
    step: &Step,
    action: &dyn crate::action::Action,
    registry: &Registry,
    env: &Arc<Environment>,
    templates: &Templates,
    scope: &Json,
    site: Option<&crate::action::Site>,
    rendered: &[(Option<Json>, Option<crate::action::Args>)],
    timeout: std::time::Duration,
    redactor: &Redactor,
) -> LiveFindings {
    let mut preconditions = Vec::new();
    let mut satisfied: Option<bool> = Some(true);
    let mut note = None;
    for (item, args) in rendered {
        let Some(args) = args else {
            note = Some("depends on the outputs of earlier steps: probed at run time".to_string());
            satisfied = None;
            continue;
        };
        let s = item_scope(scope, site, item.as_ref());
        let ctx = StepCtx {
            run_id: "plan".into(),
            step_id: step.id.clone(),
            item: item.clone(),
            site: site.cloned(),
            env: Arc::clone(env),
            timeout,
            interrupt: Default::default(),
        };
        let prefix = item
            .as_ref()
            .map(|i| format!("[{}] ", item_key(i)))
            .unwrap_or_default();
        for c in &step.require {
            preconditions.push(
                live_condition(
                    c, step, registry, env, templates, &s, &ctx, args, &prefix, redactor,
                )
                .await,
            );
        }
        // Already satisfied: the action's own postcondition or the runbook's verify.
        let has_post = action.postcondition(&ctx, args).is_some() || !step.verify.is_empty();
        if !has_post {
            satisfied = None;
            continue;
        }
        let mut holds = true;
        if action.postcondition(&ctx, args).is_some() {
            match action.probe(&ctx, args).await {
                Ok(o) => holds &= action.satisfied(args, &o),
                Err(_) => holds = false,
            }
        }
        for c in &step.verify {
            let r = live_condition(
                c, step, registry, env, templates, &s, &ctx, args, &prefix, redactor,
            )
            .await;
            holds &= r.holds == Some(true);
        }
        if !holds {
            satisfied = satisfied.map(|_| false);
        }
    }
    LiveFindings {
        preconditions,
        satisfied,
        note,
    }
}

#[allow(clippy::too_many_arguments)]
async fn live_condition(
    c: &Condition,
    step: &Step,
    registry: &Registry,
    env: &Environment,
    templates: &Templates,
    scope: &Json,
    ctx: &StepCtx,
    args: &crate::action::Args,
    prefix: &str,
    redactor: &Redactor,
) -> LiveCheck {
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
        match templates.render(w, scope) {
            Ok(v) if has_placeholder(&v) => {
                return fail("depends on the outputs of earlier steps".into())
            }
            Ok(_) => {}
            Err(e) => return fail(e),
        }
    }
    match crate::condition::check(c, &step.action, registry, env, templates, ctx, args, scope).await
    {
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
