//! Runbook parameters given at the command line (`-p name=value`) or, for secrets, in
//! the environment (`RUNBOOK_PARAM_<NAME>`), checked against the runbook's
//! declarations.

use serde_json::Value as Json;

use crate::model::{ParamType, Runbook};

#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("`{0}` is not a parameter assignment: write `-p name=value`")]
    Syntax(String),
    #[error("runbook `{runbook}` has no parameter `{name}`{} (it has: {known})", crate::suggest::did_you_mean(name, known.split(", ")))]
    Unknown {
        runbook: String,
        name: String,
        known: String,
    },
    #[error("parameter `{name}`: `{value}` is not of type {kind}")]
    Type {
        name: String,
        value: String,
        kind: &'static str,
    },
    #[error("parameter `{name}`: {value} is not allowed (allowed: {allowed})")]
    NotAllowed {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("parameter `{name}` is required{hint}")]
    Missing { name: String, hint: String },
    #[error("parameter `{name}`: {message}")]
    Invalid { name: String, message: String },
}

/// The environment variable a secret parameter can be given in.
pub fn env_var_for(name: &str) -> String {
    format!("RUNBOOK_PARAM_{}", name.to_ascii_uppercase())
}

/// Split `name=value`.
///
/// # Errors
/// No `=`.
pub fn split_assignment(text: &str) -> Result<(String, String), ParamError> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| ParamError::Syntax(text.to_string()))?;
    if k.trim().is_empty() {
        return Err(ParamError::Syntax(text.to_string()));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

fn parse_value(name: &str, kind: ParamType, text: &str) -> Result<Json, ParamError> {
    let bad = || ParamError::Type {
        name: name.to_string(),
        value: text.to_string(),
        kind: kind.as_str(),
    };
    match kind {
        ParamType::String => Ok(Json::String(text.to_string())),
        ParamType::Int => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| bad()),
        ParamType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Json::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Json::Bool(false)),
            _ => Err(bad()),
        },
        ParamType::Duration => humantime::parse_duration(text.trim())
            .map(|_| Json::String(text.trim().to_string()))
            .map_err(|_| bad()),
        ParamType::List => {
            let t = text.trim();
            if t.starts_with('[') {
                let v: serde_yaml::Value = serde_yaml::from_str(t).map_err(|_| bad())?;
                let j = serde_json::to_value(v).map_err(|_| bad())?;
                if j.is_array() {
                    Ok(j)
                } else {
                    Err(bad())
                }
            } else if t.is_empty() {
                Ok(Json::Array(vec![]))
            } else {
                Ok(Json::Array(
                    t.split(',')
                        .map(|s| Json::String(s.trim().to_string()))
                        .collect(),
                ))
            }
        }
    }
}

/// Resolve all parameters of `runbook`: given values over defaults, secrets from
/// `given` or from `lookup(RUNBOOK_PARAM_NAME)`. Returns the values (secrets
/// included) and the secret values (to mask everywhere).
///
/// # Errors
/// An unknown name, a wrong type, a value not allowed, a required one missing.
pub fn resolve(
    runbook: &Runbook,
    given: &[(String, String)],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(serde_json::Map<String, Json>, Vec<String>), ParamError> {
    resolve_with(runbook, given, lookup, |_, _| None)
}

/// As [`resolve`], with `recorded` giving the value an earlier run recorded for a
/// parameter with `from_run` (used when the parameter is not given, before its default;
/// it also sees the values resolved so far, for `same_params`). A recorded value equal
/// to the parameter's `differs_from` parameter is not used.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_with(
    runbook: &Runbook,
    given: &[(String, String)],
    lookup: impl Fn(&str) -> Option<String>,
    recorded: impl Fn(&crate::model::FromRun, &serde_json::Map<String, Json>) -> Option<Json>,
) -> Result<(serde_json::Map<String, Json>, Vec<String>), ParamError> {
    let mut values = serde_json::Map::new();
    for (name, text) in given {
        let Some(p) = runbook.params.get(name) else {
            let known: Vec<&str> = runbook.params.keys().map(String::as_str).collect();
            return Err(ParamError::Unknown {
                runbook: runbook.name.clone(),
                name: name.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        };
        values.insert(name.clone(), parse_value(name, p.kind, text)?);
    }
    let mut secrets = Vec::new();
    for (name, p) in &runbook.params {
        if !values.contains_key(name) {
            if p.secret {
                if let Some(text) = lookup(&env_var_for(name)) {
                    values.insert(name.clone(), parse_value(name, p.kind, &text)?);
                }
            } else if let Some(v) = p
                .from_run
                .as_ref()
                .and_then(|f| recorded(f, &values))
                .filter(|v| param_matches(p.kind, v))
                .filter(|v| {
                    p.differs_from
                        .as_ref()
                        .is_none_or(|other| values.get(other) != Some(v))
                })
            {
                values.insert(name.clone(), v);
            } else if let Some(d) = &p.default {
                values.insert(name.clone(), d.clone());
            }
        }
        let Some(v) = values.get(name) else {
            let hint = if p.secret {
                format!(": set {} (or pass -p {name}=...)", env_var_for(name))
            } else {
                format!(": pass -p {name}=...")
            };
            return Err(ParamError::Missing {
                name: name.clone(),
                hint,
            });
        };
        check_allowed(name, p, v)?;
        check_items(name, p, v)?;
        if p.secret {
            collect_strings(v, &mut secrets);
        }
    }
    check_together(runbook, &values)?;
    Ok((values, secrets))
}

/// A value among the parameter's `allowed` ones (a secret's value is never shown).
fn check_allowed(name: &str, p: &crate::model::Param, v: &Json) -> Result<(), ParamError> {
    if !p.allowed.is_empty() && !p.allowed.contains(v) {
        let allowed: Vec<String> = p.allowed.iter().map(|a| a.to_string()).collect();
        return Err(ParamError::NotAllowed {
            name: name.to_string(),
            value: if p.secret {
                crate::redact::MASK.into()
            } else {
                v.to_string()
            },
            allowed: if p.secret {
                crate::redact::MASK.into()
            } else {
                allowed.join(", ")
            },
        });
    }
    Ok(())
}

/// A list's `non_empty` and `unique` rules.
fn check_items(name: &str, p: &crate::model::Param, v: &Json) -> Result<(), ParamError> {
    let Some(items) = v.as_array() else {
        return Ok(());
    };
    let invalid = |message: String| ParamError::Invalid {
        name: name.to_string(),
        message,
    };
    if p.non_empty
        && items
            .iter()
            .all(|i| i.as_str().is_some_and(|s| s.trim().is_empty()))
    {
        return Err(invalid("the list is empty; name at least one item".into()));
    }
    if p.unique {
        let mut seen = std::collections::HashSet::new();
        let repeated: Vec<String> = items
            .iter()
            .filter(|i| !seen.insert(i.to_string()))
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect();
        if !repeated.is_empty() {
            return Err(invalid(format!(
                "{} given more than once; each item must appear once",
                repeated.join(", ")
            )));
        }
    }
    Ok(())
}

/// What holds between parameters: `differs_from`, and a reason with `force`.
fn check_together(
    runbook: &Runbook,
    values: &serde_json::Map<String, Json>,
) -> Result<(), ParamError> {
    for (name, p) in &runbook.params {
        if let Some(other) = &p.differs_from {
            if values.get(name).is_some() && values.get(name) == values.get(other) {
                return Err(ParamError::Invalid {
                    name: name.clone(),
                    message: format!("{} is also `{other}`; it must differ from it", values[name]),
                });
            }
        }
    }
    if !runbook.guards.is_empty() && values.get("force") == Some(&Json::Bool(true)) {
        let reason = values
            .get("force_reason")
            .and_then(Json::as_str)
            .unwrap_or_default();
        if reason.trim().is_empty() {
            return Err(ParamError::Invalid {
                name: "force_reason".into(),
                message: "force=true overrides the safety guards and needs a reason: -p force_reason=\"why this is safe\" (it is journaled with your name)".into(),
            });
        }
    }
    Ok(())
}

fn collect_strings(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Json::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

fn param_matches(kind: ParamType, v: &Json) -> bool {
    match kind {
        ParamType::String | ParamType::Duration => v.is_string(),
        ParamType::Int => v.is_i64() || v.is_u64(),
        ParamType::Bool => v.is_boolean(),
        ParamType::List => v.is_array(),
    }
}
