//! Evaluating a safety guard (see [`Guard`]): the one evaluator the run and
//! `plan --live` share, so the preview and the run judge a guard the same way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::action::{Registry, Site, StepCtx};
use crate::env::Environment;
use crate::model::Guard;
use crate::report::Interrupt;
use crate::scope::{item_scope, resolve_site, short};
use crate::template::Templates;

/// One check of a guard.
#[derive(Debug, Clone)]
pub struct GuardCheck {
    /// `false`: its `when` is false, so it does not apply to this run.
    pub applies: bool,
    /// `None`: it could not be checked (then it counts as not holding).
    pub holds: Option<bool>,
    /// What the probe saw (`null` without a probe or when it failed).
    pub observation: Json,
    /// When it does not hold: what was seen and what to do, as a person reads it.
    pub refusal: String,
    /// The probed site, when the guard names one.
    pub site: Option<String>,
}

impl GuardCheck {
    pub fn passed(&self) -> bool {
        !self.applies || self.holds == Some(true)
    }
}

/// What a guard needs from the run.
pub struct GuardEnv<'a> {
    pub registry: &'a Registry,
    pub env: &'a Arc<Environment>,
    pub templates: &'a Templates,
    pub run_id: &'a str,
    pub timeout: Duration,
    pub interrupt: Interrupt,
}

/// Why a guard could not be judged: it then does not pass.
struct Unchecked(String);

/// What a guard's probe read.
struct Probed {
    observation: Json,
    site: Option<Site>,
}

/// Check `guard` now. `scope` is the run's template data (params, sites, history).
pub async fn check(guard: &Guard, ge: &GuardEnv<'_>, scope: &Json) -> GuardCheck {
    let mut out = GuardCheck {
        applies: true,
        holds: None,
        observation: Json::Null,
        refusal: String::new(),
        site: None,
    };
    if let Some(when) = &guard.when {
        match ge.templates.truth(when, scope) {
            Ok(false) => {
                out.applies = false;
                out.holds = Some(true);
                return out;
            }
            Ok(true) => {}
            Err(e) => {
                out.refusal = format!("guard `{}`: cannot evaluate `when: {when}`: {e}", guard.id);
                return out;
            }
        }
    }
    let mut s = scope.clone();
    if let Some(probe) = &guard.probe {
        match read(guard, probe, ge, scope).await {
            Ok(p) => {
                out.site = p.site.as_ref().map(|s| s.name.clone());
                out.observation = p.observation;
                s["observation"] = out.observation.clone();
                if let Some(site) = &p.site {
                    s = item_scope(&s, Some(site), None);
                }
            }
            Err(Unchecked(why)) => {
                out.refusal = why;
                return out;
            }
        }
    }
    match ge.templates.truth(&guard.expect, &s) {
        Ok(h) => out.holds = Some(h),
        Err(e) => {
            out.refusal = format!(
                "guard `{}`: cannot evaluate `{}`: {e}",
                guard.id, guard.expect
            );
            return out;
        }
    }
    if out.holds == Some(false) {
        out.refusal = refusal(guard, ge, &s, &out.observation);
    }
    out
}

/// The words of a guard that does not hold: its own `refusal` text, rendered with
/// what it observed, or what it expected and saw.
fn refusal(guard: &Guard, ge: &GuardEnv<'_>, scope: &Json, observation: &Json) -> String {
    match &guard.refusal {
        Some(t) => match ge.templates.render(&Json::String(t.clone()), scope) {
            Ok(Json::String(text)) => format!("{}: {}", guard.title, text.trim()),
            Ok(other) => format!("{}: {other}", guard.title),
            Err(e) => format!(
                "{} does not hold (observed: {}; the refusal text did not render: {e})",
                guard.title,
                short(observation)
            ),
        },
        None => format!(
            "{} does not hold (`{}`; observed: {})",
            guard.title,
            guard.expect,
            short(observation)
        ),
    }
}

/// The guard's site, resolved.
fn guard_site(guard: &Guard, ge: &GuardEnv<'_>, scope: &Json) -> Result<Option<Site>, Unchecked> {
    let Some(t) = &guard.site else {
        return Ok(None);
    };
    let id = &guard.id;
    match ge.templates.render(&Json::String(t.clone()), scope) {
        Ok(Json::String(name)) => resolve_site(ge.env, &name)
            .map(Some)
            .map_err(|e| Unchecked(format!("guard `{id}`: {e}"))),
        Ok(other) => Err(Unchecked(format!(
            "guard `{id}`: `site` gave {other}, not a site name"
        ))),
        Err(e) => Err(Unchecked(format!(
            "guard `{id}`: cannot render `site`: {e}"
        ))),
    }
}

/// Probe, within the probe's own budget.
async fn read(
    guard: &Guard,
    probe: &str,
    ge: &GuardEnv<'_>,
    scope: &Json,
) -> Result<Probed, Unchecked> {
    let id = &guard.id;
    let action = ge
        .registry
        .get(probe)
        .map(Arc::clone)
        .ok_or_else(|| Unchecked(format!("guard `{id}`: unknown probe `{probe}`")))?;
    let site = guard_site(guard, ge, scope)?;
    let args = match ge.templates.render(&guard.with, scope) {
        Ok(Json::Object(m)) => m,
        Ok(other) => {
            return Err(Unchecked(format!(
                "guard `{id}`: probe arguments rendered to {other}"
            )))
        }
        Err(e) => {
            return Err(Unchecked(format!(
                "guard `{id}`: cannot render probe arguments: {e}"
            )))
        }
    };
    // The probe's own budget (e.g. a comparison of every cache's keys over Batch
    // CRs takes longer than one status read), scaled like a step's.
    // A lab's time scale shortens the servers' work, not the round trips of a
    // probe that reads much (30 s at least, if the probe allows that long).
    let timeout = ge
        .env
        .scaled_timeout(action.default_timeout())
        .max(ge.timeout)
        .max(action.default_timeout().min(Duration::from_secs(30)));
    let ctx = StepCtx {
        run_id: ge.run_id.to_string(),
        step_id: format!("guard:{id}"),
        item: None,
        site: site.clone(),
        env: Arc::clone(ge.env),
        timeout,
        interrupt: ge.interrupt.clone(),
        progress: Default::default(),
    };
    match tokio::time::timeout(timeout, action.probe(&ctx, &args)).await {
        Ok(Ok(observation)) => Ok(Probed { observation, site }),
        Ok(Err(e)) => Err(Unchecked(format!(
            "{} could not be checked ({probe}: {e}); a guard that cannot be checked does not pass",
            guard.title
        ))),
        Err(_) => Err(Unchecked(format!(
            "{} could not be checked ({probe} gave no answer within {}); a guard that cannot be checked does not pass",
            guard.title,
            humantime::format_duration(timeout)
        ))),
    }
}

/// What the guard observed, in one line for progress and the journal's readers: the
/// probe's own `summary` field when it has one.
pub fn seen(check: &GuardCheck) -> String {
    match check.observation.get("summary").and_then(Json::as_str) {
        Some(s) => s.to_string(),
        None if check.observation.is_null() => "from the journal and the parameters".into(),
        None => short(&check.observation),
    }
}
