//! What a step's templates see, and the small pure helpers the run, the plan and the
//! guards share to build it: resolving a site, the template scope, checking rendered
//! arguments, and quoting values in messages. Nothing here does I/O.

use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::action::{Action, Site, StepCtx};
use crate::env::Environment;
use crate::model::{Args, Step};

/// A site name the environment file does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct UnknownSite(String);

/// Rendered arguments that do not fit what the action declares.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArgError {
    #[error("argument `{arg}` of `{action}` must be a {kind}, got {got}")]
    WrongKind {
        arg: &'static str,
        action: &'static str,
        kind: &'static str,
        got: String,
    },
    #[error("argument `{arg}` of `{action}` is missing")]
    Missing {
        arg: &'static str,
        action: &'static str,
    },
}

/// Resolve a site name against the environment.
///
/// # Errors
/// The name is not a site of the environment file (the message lists those it has).
/// A `site:` template rendered over `scope` and resolved in `env`: the one rendering
/// the start's locks, the plan and the run share (the loader has made sure it reads
/// only what the start knows: parameters and the environment).
///
/// # Errors
/// It does not render, gives something other than a name, or names no site.
pub fn render_site(
    templates: &crate::template::Templates,
    template: &str,
    scope: &Json,
    env: &Environment,
) -> Result<Site, SiteError> {
    match templates.render(&Json::String(template.to_string()), scope) {
        Err(e) => Err(SiteError::Render(e.to_string())),
        Ok(Json::String(name)) => resolve_site(env, &name).map_err(SiteError::Unknown),
        Ok(other) => Err(SiteError::NotAName(other.to_string())),
    }
}

/// Why a step's `site:` names no site of the environment file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SiteError {
    #[error("cannot render `site`: {0}")]
    Render(String),
    #[error("`site` gave {0}, not a site name")]
    NotAName(String),
    #[error("{0}")]
    Unknown(UnknownSite),
}

pub fn resolve_site(env: &Environment, name: &str) -> Result<Site, UnknownSite> {
    match env.sites.get(name) {
        Some(config) => Ok(Site {
            name: name.to_string(),
            config: config.clone(),
        }),
        None => {
            let known: Vec<&str> = env.sites.keys().map(String::as_str).collect();
            Err(UnknownSite(match &env.file {
                Some(f) => format!(
                    "site `{name}` is not in the environment file `{}` (it has: {})",
                    f.display(),
                    if known.is_empty() { "no sites".to_string() } else { known.join(", ") }
                ),
                None => format!("site `{name}` is unknown: no environment file was given (--env or RUNBOOK_ENV)"),
            }))
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
pub fn check_rendered_args(action: &dyn Action, args: &Args) -> Result<(), ArgError> {
    for spec in action.args() {
        match args.get(spec.name) {
            Some(v) if !spec.kind.accepts(v) => {
                return Err(ArgError::WrongKind {
                    arg: spec.name,
                    action: action.name(),
                    kind: spec.kind.as_str(),
                    got: v.to_string(),
                })
            }
            None if spec.required => {
                return Err(ArgError::Missing {
                    arg: spec.name,
                    action: action.name(),
                })
            }
            _ => {}
        }
    }
    Ok(())
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

/// A duration as a person reads it in a message: `850ms`, `3.0s`, `2m 30s`.
pub fn approx(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64)).to_string()
    }
}

/// A JSON value quoted in a message, cut at 300 bytes.
pub fn short(v: &Json) -> String {
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

/// `step` or `step[item]`: how messages and the live snapshot name a step or an item.
pub fn label(step: &str, item: Option<&str>) -> String {
    match item {
        Some(i) => format!("{step}[{i}]"),
        None => step.to_string(),
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

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let v = Json::String("é".repeat(400));
        let s = short(&v);
        assert!(s.ends_with('…') && s.len() <= 304, "{}", s.len());
    }
}
