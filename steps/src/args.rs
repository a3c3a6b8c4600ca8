//! Reading rendered arguments (already type-checked against each action's schema).

use std::time::Duration;

use engine::{Args, StepError};
use serde_json::Value as Json;

pub fn str_arg<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Json::as_str)
}

/// # Errors
/// The argument is missing.
pub fn req_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, StepError> {
    str_arg(args, name).ok_or_else(|| StepError::permanent(format!("argument `{name}` is missing")))
}

pub fn int_arg(args: &Args, name: &str) -> Option<i64> {
    args.get(name).and_then(Json::as_i64)
}

pub fn bool_arg(args: &Args, name: &str) -> Option<bool> {
    args.get(name).and_then(Json::as_bool)
}

/// A duration argument, or `default`.
///
/// # Errors
/// Not a duration.
pub fn dur_arg(args: &Args, name: &str, default: Duration) -> Result<Duration, StepError> {
    match str_arg(args, name) {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t).map_err(|e| {
            StepError::permanent(format!("argument `{name}`: bad duration `{t}`: {e}"))
        }),
    }
}

/// A list of strings, if given.
pub fn list_arg(args: &Args, name: &str) -> Option<Vec<String>> {
    args.get(name).and_then(Json::as_array).map(|a| {
        a.iter()
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
}

/// `cache` (one) or `caches` (a list); `None` when neither: all caches.
pub fn caches_arg(args: &Args) -> Option<Vec<String>> {
    if let Some(c) = str_arg(args, "cache") {
        return Some(vec![c.to_string()]);
    }
    list_arg(args, "caches")
}
