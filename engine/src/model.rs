//! The runbook model: plain data, produced by the loader (`load.rs`) from YAML and
//! read by the planner and the executor. Nothing here does I/O.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Rendered arguments of one step (or one item of a fan-out step).
pub type Args = serde_json::Map<String, Json>;
/// Values an action records in the journal for later steps (`steps.ID.outputs.NAME`).
pub type Outputs = serde_json::Map<String, Json>;

/// The key of a fan-out item in events and state: a string item as it is, anything
/// else as compact JSON.
pub fn item_key(item: &Json) -> String {
    match item {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Step ids may contain `-`, which a template cannot write after a dot: templates
/// may use `_` instead (`steps.scale_down` for step `scale-down`).
pub fn template_name(id: &str) -> String {
    id.replace('-', "_")
}

/// A validated runbook, with the exact source text it was loaded from.
#[derive(Debug, Clone, Default)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub description: String,
    pub params: IndexMap<String, Param>,
    pub steps: Vec<Step>,
    /// Safety guards over the whole procedure (see [`Guard`]).
    pub guards: Vec<Guard>,
    /// Whether any template reads `history` (the journal's facts about earlier runs),
    /// so that the journal is read only for runbooks that need it.
    pub uses_history: bool,
    /// Where the text came from (`builtin:NAME` or a file path), for messages.
    pub origin: String,
    /// The procedure pack it belongs to (`keycloak-24`); `None` for a runbook file.
    pub pack: Option<String>,
    pub source: String,
    /// Hex SHA-256 of `source`.
    pub source_hash: String,
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

/// A safety guard: a condition over the whole procedure, declared in the runbook,
/// checked live before the run's first effect (on every start and resume) and again
/// right before each effect of the steps named in `before` (every item of a fan-out).
///
/// When it does not hold, nothing more is done: a run that has had no effect yet is
/// *refused* (it ends, and its locks go); otherwise it halts. An operator who knows
/// better overrides every guard of the run with `-p force=true -p force_reason=...`
/// (the runbook must declare both); each override is journaled with who and why.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub id: String,
    /// What must hold, as a person reads it.
    pub title: String,
    /// The probing action (read-only); `None`: `expect` reads only params and history.
    pub probe: Option<String>,
    /// A template naming the site probed.
    pub site: Option<String>,
    /// Probe arguments (templates).
    pub with: Json,
    /// An expression over `params`, `history`, `observation`.
    pub expect: String,
    /// The guard applies only when this holds (params and history only).
    pub when: Option<String>,
    /// A template rendered when it does not hold: what was seen and what to run
    /// instead. May read `observation`.
    pub refusal: Option<String>,
    /// Steps before whose effect the guard is checked again.
    pub before: Vec<String>,
    /// What the guard could not check, said in the plan and in the run's output.
    pub unchecked: Option<String>,
    /// Checked only right before the steps in `before`, not at the start, because
    /// earlier steps of the run change what it reads (why, as the plan says it). An
    /// action's built-in invariant behind such a step is; a runbook's guard is not.
    pub deferred: Option<String>,
    /// 1-based line in the source.
    pub line: usize,
}

/// The type of a runbook parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    List,
    Duration,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::List => "list",
            ParamType::Duration => "duration",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: Option<Json>,
    pub description: String,
    pub allowed: Vec<Json>,
    /// Never journaled, logged or printed; must be given again on resume.
    pub secret: bool,
    /// When not given: the output an earlier run recorded, before `default`.
    pub from_run: Option<FromRun>,
    /// When not given: a site read from the deployment as it is now (the step
    /// library's names: `serving`, `not-serving`, `standby`, `not-standby`), never a
    /// fixed site name; the plan says what was read. `preferred`/`fallback`: the site
    /// the traffic vendor prefers and falls back to (Route53's failover records). Resolved by the CLI before the
    /// parameters (the engine only carries it).
    pub from_deployment: Option<String>,
    /// The name of another parameter this one must differ from (e.g. the path to
    /// restore must not be the down path): equal values are invalid input.
    pub differs_from: Option<String>,
    /// A list that must have at least one item (an empty one is invalid input).
    pub non_empty: bool,
    /// A list whose items must all differ (a repeated item is invalid input).
    pub unique: bool,
}

/// What a parameter may be read from in the deployment (`Param::from_deployment`).
pub const FROM_DEPLOYMENT: &[&str] = &[
    "serving",
    "not-serving",
    "standby",
    "not-standby",
    "preferred",
    "fallback",
];

/// Where an earlier run recorded a value: a run of one of `runbooks` whose step
/// `step` succeeded with output `output`. By default the newest such run; with
/// `since_completed`, the *first* such run after the last completed run of those
/// runbooks (e.g. the first switchover since the last switchback: the one that saw
/// the path before traffic moved away). With `same_params`, only runs whose
/// parameters of these names equal this run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromRun {
    pub runbooks: Vec<String>,
    pub step: String,
    pub output: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub since_completed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub same_params: Vec<String>,
}

/// How dangerous a step's effect is. Decides whether an interrupted step may be
/// applied again on resume and how the plan shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Only reads.
    ReadOnly,
    /// Changes state, and doing it twice is the same as doing it once.
    Idempotent,
    /// Changes state in a way that must not be repeated blindly.
    Destructive,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::ReadOnly => "read-only",
            Effect::Idempotent => "idempotent",
            Effect::Destructive => "destructive",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub action: String,
    /// A template naming the site the step acts on.
    pub site: Option<String>,
    /// Arguments: JSON whose strings may be templates.
    pub with: Json,
    /// The step runs only when this expression is true.
    pub when: Option<String>,
    pub require: Vec<Condition>,
    pub verify: Vec<Condition>,
    pub retry: RetryPolicy,
    /// `None`: the action's default.
    pub timeout: Option<Duration>,
    pub for_each: Option<ForEach>,
    /// 1-based line of the step in its source.
    pub line: usize,
    /// Ids of the earlier steps its templates refer to (as `steps.scale_down` or
    /// `steps['scale-down']`);
    /// `None` when a template indexes `steps` dynamically (then all are visible).
    pub step_refs: Option<Vec<String>>,
}

/// A check against live state: probe with an action (read-only), then evaluate
/// `expect` with the probe's result bound to `observation`.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The probing action; `None`: the step's own action.
    pub probe: Option<String>,
    /// Site of the probe; `None`: the step's site.
    pub site: Option<String>,
    /// Probe arguments; `None`: the step's own arguments.
    pub with: Option<Json>,
    pub expect: String,
    /// What a person should read when it does not hold.
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ForEach {
    /// A template that evaluates to a list, or a literal list.
    pub items: Json,
    pub concurrency: usize,
}

/// Retry policy as data, tagged by `policy` in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "lowercase", deny_unknown_fields)]
pub enum RetryPolicy {
    #[default]
    None,
    Fixed {
        max_attempts: u32,
        #[serde(with = "humantime_serde_compat")]
        delay: Duration,
    },
    Exponential {
        max_attempts: u32,
        #[serde(with = "humantime_serde_compat", default = "default_initial")]
        initial: Duration,
        #[serde(with = "humantime_serde_compat", default = "default_max_delay")]
        max_delay: Duration,
        #[serde(default = "default_factor")]
        factor: f64,
        /// Pause a random share (50–100%) of each delay, so that clients do not retry in
        /// step.
        #[serde(default)]
        jitter: bool,
    },
}

fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max_delay() -> Duration {
    Duration::from_secs(60)
}
fn default_factor() -> f64 {
    2.0
}

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        match self {
            RetryPolicy::None => 1,
            RetryPolicy::Fixed { max_attempts, .. }
            | RetryPolicy::Exponential { max_attempts, .. } => (*max_attempts).max(1),
        }
    }

    /// The pause after failed attempt `attempt`, with jitter where the policy asks.
    pub fn pause_after(&self, attempt: u32) -> Duration {
        let d = self.delay_after(attempt);
        match self {
            RetryPolicy::Exponential { jitter: true, .. } => d.mul_f64(0.5 + fastrand::f64() * 0.5),
            _ => d,
        }
    }

    /// The pause after failed attempt number `attempt` (1-based), before jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        match self {
            RetryPolicy::None => Duration::ZERO,
            RetryPolicy::Fixed { delay, .. } => *delay,
            RetryPolicy::Exponential {
                initial,
                max_delay,
                factor,
                ..
            } => {
                let exp = factor
                    .max(1.0)
                    .powi(attempt.saturating_sub(1).min(60) as i32);
                initial.mul_f64(exp).min(*max_delay)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RetryPolicy::None => "no retry".into(),
            RetryPolicy::Fixed {
                max_attempts,
                delay,
            } => {
                format!(
                    "up to {max_attempts} attempts, {} apart",
                    humantime::format_duration(*delay)
                )
            }
            RetryPolicy::Exponential {
                max_attempts,
                initial,
                max_delay,
                jitter,
                ..
            } => format!(
                "up to {max_attempts} attempts, backoff {} to {}{}",
                humantime::format_duration(*initial),
                humantime::format_duration(*max_delay),
                if *jitter { ", jittered" } else { "" }
            ),
        }
    }
}

/// Durations as humantime strings (`30s`, `5m`, `1h 30m`, `250ms`).
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration `{text}`: {e} (write e.g. `30s`, `5m`, `250ms`)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_and_caps() {
        let p = RetryPolicy::Exponential {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            factor: 2.0,
            jitter: false,
        };
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(3), Duration::from_millis(350));
        assert_eq!(p.max_attempts(), 5);
        assert_eq!(RetryPolicy::None.max_attempts(), 1);
    }
}
