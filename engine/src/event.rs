//! The journal's events: what happened in a run, in order. Each is appended and
//! flushed before the engine moves on, and the run state is a fold of them
//! (`state.rs`). Never put a secret value in one: the recorder masks known secrets,
//! and parameters marked secret are left out of `RunCreated`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::model::{Effect, Outputs};

/// Who did something, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    pub operator: String,
    pub host: String,
    pub pid: u32,
}

impl Actor {
    /// The current process: operator from `RUNBOOK_OPERATOR`, else `USER`.
    pub fn current() -> Actor {
        let operator = std::env::var("RUNBOOK_OPERATOR")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(account_name)
            .unwrap_or_else(|| "unknown".into());
        Actor {
            operator,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
        }
    }
}

/// The account name of this process's uid, from /proc and /etc/passwd (Linux).
fn account_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next()?;
        (f.next()? == uid).then(|| name.to_string())
    })
}

/// Why a run stopped and waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaltKind {
    /// A `require` condition did not hold; nothing was done.
    Precondition,
    /// A step's effect was applied but its postcondition did not hold within its
    /// timeout, on every attempt: the system did not do what the step asked.
    Postcondition,
    /// A `manual.confirm` step waits for `resume --approve`.
    ManualGate,
    /// A `manual.confirm` step before a destructive or traffic-moving step waits for
    /// a second person: anyone but the run's starter and driver (four eyes).
    SecondApproval,
    /// A step was started and not confirmed, and may not be applied again blindly.
    InDoubt,
    /// Ctrl-C.
    Interrupted,
    /// A safety guard did not hold right before a step's effect, after earlier
    /// effects of this run (before any effect, the run is refused instead).
    Guard,
}

impl HaltKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HaltKind::Precondition => "precondition not met",
            HaltKind::Postcondition => "postcondition not met",
            HaltKind::ManualGate => "waiting for approval",
            HaltKind::SecondApproval => "waiting for a second person's approval",
            HaltKind::InDoubt => "step in doubt",
            HaltKind::Interrupted => "interrupted",
            HaltKind::Guard => "safety guard not met",
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A step's wait for its postcondition after the effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waited {
    /// What it waited for, as a person reads it.
    pub what: String,
    pub ms: u64,
    /// How many times it was checked.
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunCreated {
        runbook: String,
        title: String,
        origin: String,
        /// The exact runbook text this run follows, even if the file changes later.
        source: String,
        source_hash: String,
        /// Parameters, secret ones left out.
        params: serde_json::Map<String, Json>,
        /// Names of secret parameters (values are never stored).
        secret_params: Vec<String>,
        env_file: Option<String>,
        env_digest: String,
        /// The run was against a lab (a rehearsal): its history never counts for a
        /// real deployment, nor a real run's for a lab.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        lab: bool,
        /// The procedure pack of its runbook (`None`: a runbook file, or a run
        /// journaled before runs recorded their pack).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pack: Option<String>,
        /// Where its plan moves traffic (`site-a out`, `site-b in`), for the page's
        /// direction; `None`: it moves none (or it was journaled before this was).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traffic: Option<String>,
        /// The program that started the run: `runbook <version> (commit <hash>)`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        program: Option<String>,
        by: Actor,
        at: u64,
    },
    StepStarted {
        step: String,
        item: Option<String>,
        attempt: u32,
        effect: Effect,
        /// What was read before the effect and must survive it.
        prepared: Outputs,
        /// The calls this attempt makes, as the plan showed them (`Action::describe`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        calls: Vec<String>,
        /// The step's timeout for this attempt (its effect and postcondition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        at: u64,
    },
    /// A fact an action learned in the middle of its effect that must survive it
    /// (CloudNativePG's demotion token): journaled before the action goes on, and
    /// handed to every later attempt with what was prepared.
    StepProgress {
        step: String,
        item: Option<String>,
        attempt: u32,
        outputs: Outputs,
        at: u64,
    },
    StepSucceeded {
        step: String,
        item: Option<String>,
        outputs: Outputs,
        observation: Option<Json>,
        /// How it was settled when not by a plain apply (e.g. in doubt, on resume).
        note: Option<String>,
        /// What the step waited for after its effect, how long, how many checks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited: Option<Waited>,
        at: u64,
    },
    StepFailed {
        step: String,
        item: Option<String>,
        attempt: u32,
        error: String,
        will_retry: bool,
        at: u64,
    },
    StepSkipped {
        step: String,
        item: Option<String>,
        reason: String,
        at: u64,
    },
    Halted {
        step: Option<String>,
        item: Option<String>,
        kind: HaltKind,
        reason: String,
        at: u64,
    },
    Resumed {
        by: Actor,
        /// The runbook's current text differs from the pinned one (which is used).
        runbook_changed: bool,
        /// The run was in progress, not halted: its driver stopped (a crash, a lost
        /// machine, an expired lease) and `by` took it over from this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        took_over_from: Option<Actor>,
        at: u64,
    },
    OperatorApproved {
        step: String,
        by: Actor,
        at: u64,
    },
    OperatorSkipped {
        step: String,
        reason: String,
        by: Actor,
        at: u64,
    },
    OperatorRetried {
        step: String,
        by: Actor,
        at: u64,
    },
    RunFailed {
        step: String,
        error: String,
        at: u64,
    },
    /// A safety guard held when checked (what was seen, for the review).
    GuardPassed {
        guard: String,
        /// The step (and item) whose effect it was checked before; `None`: at start.
        step: Option<String>,
        item: Option<String>,
        observation: Json,
        at: u64,
    },
    /// A safety guard did not hold and the operator's `force` let the run go on.
    GuardOverridden {
        guard: String,
        step: Option<String>,
        item: Option<String>,
        /// What the guard saw and why it would have refused.
        refusal: String,
        observation: Json,
        /// The operator's `force_reason`.
        reason: String,
        by: Actor,
        at: u64,
    },
    /// A safety guard did not hold before the run had any effect: the run ends here,
    /// nothing was done, and its locks go.
    Refused {
        guard: String,
        step: Option<String>,
        item: Option<String>,
        reason: String,
        observation: Json,
        at: u64,
    },
    Completed {
        at: u64,
    },
    Aborted {
        reason: String,
        by: Actor,
        at: u64,
    },
}

impl Event {
    pub fn at(&self) -> u64 {
        match self {
            Event::RunCreated { at, .. }
            | Event::StepStarted { at, .. }
            | Event::StepProgress { at, .. }
            | Event::StepSucceeded { at, .. }
            | Event::StepFailed { at, .. }
            | Event::StepSkipped { at, .. }
            | Event::Halted { at, .. }
            | Event::Resumed { at, .. }
            | Event::OperatorApproved { at, .. }
            | Event::OperatorSkipped { at, .. }
            | Event::OperatorRetried { at, .. }
            | Event::RunFailed { at, .. }
            | Event::GuardPassed { at, .. }
            | Event::GuardOverridden { at, .. }
            | Event::Refused { at, .. }
            | Event::Completed { at }
            | Event::Aborted { at, .. } => *at,
        }
    }

    /// The event's name as stored (`step_started`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunCreated { .. } => "run_created",
            Event::StepStarted { .. } => "step_started",
            Event::StepProgress { .. } => "step_progress",
            Event::StepSucceeded { .. } => "step_succeeded",
            Event::StepFailed { .. } => "step_failed",
            Event::StepSkipped { .. } => "step_skipped",
            Event::Halted { .. } => "halted",
            Event::Resumed { .. } => "resumed",
            Event::OperatorApproved { .. } => "operator_approved",
            Event::OperatorSkipped { .. } => "operator_skipped",
            Event::OperatorRetried { .. } => "operator_retried",
            Event::RunFailed { .. } => "run_failed",
            Event::GuardPassed { .. } => "guard_passed",
            Event::GuardOverridden { .. } => "guard_overridden",
            Event::Refused { .. } => "refused",
            Event::Completed { .. } => "completed",
            Event::Aborted { .. } => "aborted",
        }
    }
}

#[cfg(test)]
impl Event {
    /// A `run_created` of runbook `t` with nothing else in it, at `at` (the engine's
    /// unit tests start their journals with it).
    pub(crate) fn bare_created(at: u64) -> Event {
        crate::testing::run_created("t", serde_json::json!({}), at)
    }
}
