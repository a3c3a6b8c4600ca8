//! Checking a `require`/`verify` condition against live state: the one evaluator the
//! run and `plan --live` share, so the preview and the run judge a condition the same
//! way (the condition's own `site:` is the `site` its expression sees in both).

use serde_json::Value as Json;

use crate::action::{Args, Registry, StepCtx, StepError};
use crate::env::Environment;
use crate::model::Condition;
use crate::scope::{item_scope, resolve_site};
use crate::template::Templates;

/// A condition, checked once.
#[derive(Debug, Clone)]
pub struct CondResult {
    pub holds: bool,
    pub observation: Json,
    /// What a person reads when it does not hold.
    pub message: String,
}

/// What probing needs: the actions, the sites, the template engine.
#[derive(Clone, Copy)]
pub struct Probing<'a> {
    pub registry: &'a Registry,
    pub env: &'a Environment,
    pub templates: &'a Templates,
}

/// The step (or item) a condition belongs to: its action (the default probe), its
/// context and rendered arguments, and its template data.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub step_action: &'a str,
    pub ctx: &'a StepCtx,
    pub args: &'a Args,
    pub scope: &'a Json,
}

/// Probe and judge `cond` for `subject`.
///
/// # Errors
/// The probe fails, or the arguments, the site or the expression do not render.
pub async fn check(
    cond: &Condition,
    p: Probing<'_>,
    subject: Subject<'_>,
) -> Result<CondResult, StepError> {
    let Probing {
        registry,
        env,
        templates,
    } = p;
    let Subject {
        step_action,
        ctx,
        args,
        scope,
    } = subject;
    let probe_name = cond.probe.as_deref().unwrap_or(step_action);
    let action = registry
        .get(probe_name)
        .ok_or_else(|| StepError::permanent(format!("unknown probe `{probe_name}`")))?;
    let pargs = match &cond.with {
        None => args.clone(),
        Some(w) => match templates.render(w, scope) {
            Ok(Json::Object(m)) => m,
            Ok(other) => {
                return Err(StepError::permanent(format!(
                    "probe arguments rendered to {other}"
                )))
            }
            Err(e) => {
                return Err(StepError::permanent(format!(
                    "cannot render probe arguments: {e}"
                )))
            }
        },
    };
    let mut pctx = ctx.clone();
    if let Some(site) = &cond.site {
        let name = templates
            .render(&Json::String(site.clone()), scope)
            .map_err(|e| StepError::permanent(format!("cannot render probe site: {e}")))?;
        let name = name.as_str().unwrap_or_default().to_string();
        pctx.site =
            Some(resolve_site(env, &name).map_err(|e| StepError::permanent(e.to_string()))?);
    }
    let observation = action.probe(&pctx, &pargs).await?;
    tracing::debug!(step = %ctx.step_id, probe = probe_name, %observation, "probed");
    let mut s = scope.clone();
    s["observation"] = observation.clone();
    if let Some(site) = &pctx.site {
        s = item_scope(&s, Some(site), None);
    }
    let holds = templates
        .truth(&cond.expect, &s)
        .map_err(|e| StepError::permanent(format!("cannot evaluate `{}`: {e}", cond.expect)))?;
    Ok(CondResult {
        holds,
        observation,
        message: cond
            .message
            .clone()
            .unwrap_or_else(|| format!("expected `{}`", cond.expect)),
    })
}
