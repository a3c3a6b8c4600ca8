//! What an operator may tell a halted run when resuming it, checked against the run's
//! state before anything is journaled.

use crate::action::Registry;
use crate::event::{now_ms, Actor, Event};
use crate::model::Runbook;
use crate::model::Step;
use crate::state::{RunState, RunStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Apply a step again although it is destructive and in doubt (or failed).
    Retry(String),
    /// Mark a step done without doing it, with the reason.
    Skip { step: String, reason: String },
    /// Pass a manual gate.
    Approve(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("run {run} is {status}: a {status} run cannot be resumed{hint}")]
    Final {
        run: String,
        status: &'static str,
        hint: String,
    },
    #[error("run {run} has no step `{step}` (its steps: {known})")]
    UnknownStep {
        run: String,
        step: String,
        known: String,
    },
    #[error("step `{step}` of run {run} already {how}: nothing to {what}")]
    AlreadyDone {
        run: String,
        step: String,
        how: &'static str,
        what: &'static str,
    },
    #[error("step `{step}` is not a manual gate (`manual.confirm`): there is nothing to approve")]
    NotAGate { step: String },
    #[error("`--skip-step {step}` needs `--reason` saying why it is safe to skip")]
    NoReason { step: String },
    #[error("`{step}` comes before {what}: it needs a second person's approval (four eyes), and {who} started or drives run {run}. Ask someone else to approve it (the page, or `runbook resume {run} --approve {step}` as them); the environment file's `approvals: {{four_eyes: false}}` turns this off")]
    FourEyes {
        run: String,
        step: String,
        what: String,
        who: String,
    },
    #[error("run {run} is being driven right now: approve, skip or retry a step once it halts (abort works at any time)")]
    Driven { run: String },
}

/// Check a directive and turn it into the event that records it.
///
/// # Errors
/// The run is over, the step is unknown or already done, or the directive does not fit.
pub fn directive_event(
    state: &RunState,
    runbook: &Runbook,
    registry: &Registry,
    directive: &Directive,
    by: &Actor,
) -> Result<Event, ResumeError> {
    check_resumable(state)?;
    let step_id = match directive {
        Directive::Retry(s) | Directive::Approve(s) => s,
        Directive::Skip { step, .. } => step,
    };
    let Some(step) = runbook.step(step_id) else {
        let known: Vec<&str> = runbook.steps.iter().map(|s| s.id.as_str()).collect();
        return Err(ResumeError::UnknownStep {
            run: state.run_id.clone(),
            step: step_id.clone(),
            known: known.join(", "),
        });
    };
    let status = state.step_status(step_id);
    if status.is_done() {
        let how = if status == crate::state::StepStatus::Skipped {
            "was skipped"
        } else {
            "succeeded"
        };
        let what = match directive {
            Directive::Retry(_) => "retry",
            Directive::Skip { .. } => "skip",
            Directive::Approve(_) => "approve",
        };
        return Err(ResumeError::AlreadyDone {
            run: state.run_id.clone(),
            step: step_id.clone(),
            how,
            what,
        });
    }
    let at = now_ms();
    Ok(match directive {
        Directive::Retry(step) => Event::OperatorRetried {
            step: step.clone(),
            by: by.clone(),
            at,
        },
        Directive::Skip { step, reason } => {
            if reason.trim().is_empty() {
                return Err(ResumeError::NoReason { step: step.clone() });
            }
            Event::OperatorSkipped {
                step: step.clone(),
                reason: reason.clone(),
                by: by.clone(),
                at,
            }
        }
        Directive::Approve(s) => {
            if !is_gate(registry, step) {
                return Err(ResumeError::NotAGate { step: s.clone() });
            }
            four_eyes(state, s, by)?;
            Event::OperatorApproved {
                step: s.clone(),
                by: by.clone(),
                at,
            }
        }
    })
}

/// A gate that waits for a second person (four eyes): the step it lets through, what
/// that step does, and the site it acts on (which the page asks to be typed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondApproval {
    pub next: String,
    /// `is destructive` or `moves traffic`.
    pub what: String,
    pub site: Option<String>,
}

const BEFORE: &str = " comes before `";
const NEEDS: &str = ": it needs a second person's approval (four eyes)";

impl SecondApproval {
    /// The halt's reason: what `of` reads back.
    pub fn reason(&self, gate: &str, who: &str, instructions: &str, run: &str) -> String {
        let on = self
            .site
            .as_ref()
            .map(|s| format!(", on site `{s}`"))
            .unwrap_or_default();
        format!(
            "`{gate}`{BEFORE}{next}`, which {what}{on}{NEEDS}, not {who}'s, who drives this run: {instructions} — another person approves it on the page or with `runbook resume {run} --approve {gate}`, then `runbook resume {run}` goes on",
            next = self.next,
            what = self.what,
        )
    }

    /// The gate a run is halted at for a second person, if it is.
    pub fn of(state: &RunState) -> Option<SecondApproval> {
        let h = state.halt.as_ref()?;
        if h.kind != Some(crate::event::HaltKind::SecondApproval) {
            return None;
        }
        let rest = h.reason.split_once(BEFORE)?.1;
        let (head, _) = rest.split_once(NEEDS)?;
        let (next, what) = head.split_once("`, which ")?;
        let (what, site) = match what.split_once(", on site `") {
            Some((w, s)) => (w, Some(s.trim_end_matches('`').to_string())),
            None => (what, None),
        };
        Some(SecondApproval {
            next: next.to_string(),
            what: what.to_string(),
            site,
        })
    }
}

/// At a gate halted for a second person, the run's starter and its driver may not
/// approve it.
fn four_eyes(state: &RunState, step: &str, by: &Actor) -> Result<(), ResumeError> {
    let Some(second) = SecondApproval::of(state)
        .filter(|_| state.halt.as_ref().and_then(|h| h.step.as_deref()) == Some(step))
    else {
        return Ok(());
    };
    let own = [&state.created_by.operator, &state.driver.operator];
    if own.contains(&&by.operator) {
        return Err(ResumeError::FourEyes {
            run: state.run_id.clone(),
            step: step.to_string(),
            what: format!("`{}`, which {}", second.next, second.what),
            who: by.operator.clone(),
        });
    }
    Ok(())
}

/// A completed or aborted run cannot be resumed.
///
/// # Errors
/// `Final`, saying what to do instead.
pub fn check_resumable(state: &RunState) -> Result<(), ResumeError> {
    match state.status {
        RunStatus::Completed => Err(ResumeError::Final {
            run: state.run_id.clone(),
            status: "completed",
            hint: format!(": start a new run with `runbook run {}`", state.runbook),
        }),
        RunStatus::Aborted => Err(ResumeError::Final {
            run: state.run_id.clone(),
            status: "aborted",
            hint: format!(
                " ({}): start a new run with `runbook run {}`",
                state
                    .halt
                    .as_ref()
                    .map(|h| h.reason.as_str())
                    .unwrap_or("no reason"),
                state.runbook
            ),
        }),
        RunStatus::Refused => Err(ResumeError::Final {
            run: state.run_id.clone(),
            status: "refused by a safety guard",
            hint: format!(
                " ({}): nothing was done; start a new run with the right parameters",
                state
                    .halt
                    .as_ref()
                    .map(|h| h.reason.as_str())
                    .unwrap_or("no reason")
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether a step is a manual gate (its action asks for approval).
fn is_gate(registry: &Registry, step: &Step) -> bool {
    let Some(action) = registry.get(&step.action) else {
        return false;
    };
    let args = step.with.as_object().cloned().unwrap_or_default();
    action.gate(&args).is_some() || step.action == "manual.confirm"
}
