//! Run state as a pure fold of the journal's events. A live run and a resumed run use
//! the same fold, so resume is not a separate code path: it is the state after the
//! last event, and the executor carries on from there.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::event::{Actor, Event, HaltKind};
use crate::model::Outputs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    #[default]
    Running,
    Halted,
    Failed,
    Completed,
    Aborted,
    /// A safety guard did not hold before any effect: nothing was done.
    Refused,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Halted => "halted",
            RunStatus::Failed => "failed",
            RunStatus::Completed => "completed",
            RunStatus::Aborted => "aborted",
            RunStatus::Refused => "refused",
        }
    }

    /// Completed and aborted runs are over: they cannot be resumed.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Aborted | RunStatus::Refused
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    #[default]
    Pending,
    /// Started and not finished: in doubt if found so on resume.
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

/// One step, or one item of a fan-out step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub prepared: Outputs,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub outputs: Outputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// The timeout of its last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepState {
    #[serde(flatten)]
    pub progress: Progress,
    /// Per item of a fan-out step, keyed by [`item_key`].
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub items: IndexMap<String, Progress>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HaltInfo {
    pub step: Option<String>,
    pub item: Option<String>,
    /// `None` for a failed run.
    pub kind: Option<HaltKind>,
    pub reason: String,
}

/// Everything known about a run, from its events alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub run_id: String,
    pub runbook: String,
    pub title: String,
    pub origin: String,
    pub source_hash: String,
    pub params: serde_json::Map<String, Json>,
    pub secret_params: Vec<String>,
    pub env_file: Option<String>,
    pub env_digest: String,
    /// The run was against a lab (`RunCreated.lab`).
    pub lab: bool,
    /// The program that started it (`RunCreated.program`), when recorded.
    #[serde(default)]
    pub program: Option<String>,
    /// Its runbook's procedure pack (`RunCreated.pack`), when recorded.
    #[serde(default)]
    pub pack: Option<String>,
    /// Where its plan moves traffic (`RunCreated.traffic`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    pub created_by: Actor,
    /// The process that last drove the run.
    pub driver: Actor,
    pub created_at: u64,
    pub updated_at: u64,
    pub status: RunStatus,
    pub halt: Option<HaltInfo>,
    pub steps: IndexMap<String, StepState>,
    pub approvals: BTreeSet<String>,
    /// Steps the operator allowed to apply again (`--retry-step`), until next started.
    pub retry_authorized: BTreeSet<String>,
    /// The step most recently started.
    pub current: Option<String>,
    pub events: u64,
    /// Whether any step with an effect (not read-only) has been started.
    #[serde(default)]
    pub had_effect: bool,
    /// Safety guards the operator overrode (`force`), with who and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Who did what to the run after starting it, in order: resumed (and took over
    /// from whom), approved, skipped, retried, aborted, each with operator and host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hands: Vec<String>,
    /// Live snapshots only, never folded from the journal: what each running step (or
    /// item, `step[item]`) is waiting for, and what its last check saw.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<String, String>,
    /// Live snapshots only: the runbook's step ids in order (a reader that cannot open
    /// the journal still shows the steps not started yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// Live snapshots only: the steps' titles, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub titles: BTreeMap<String, String>,
}

/// `operator@host`.
fn who(a: &Actor) -> String {
    format!("{}@{}", a.operator, a.host)
}

impl RunState {
    /// Fold a whole journal.
    pub fn fold<'a>(run_id: &str, events: impl IntoIterator<Item = &'a Event>) -> RunState {
        let mut state = RunState {
            run_id: run_id.to_string(),
            ..RunState::default()
        };
        for e in events {
            state.apply(e);
        }
        state
    }

    fn progress_mut(&mut self, step: &str, item: Option<&str>) -> &mut Progress {
        let st = self.steps.entry(step.to_string()).or_default();
        match item {
            Some(k) => st.items.entry(k.to_string()).or_default(),
            None => &mut st.progress,
        }
    }

    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.get(id)
    }

    pub fn step_status(&self, id: &str) -> StepStatus {
        self.steps
            .get(id)
            .map(|s| s.progress.status)
            .unwrap_or_default()
    }

    pub fn item(&self, step: &str, item: &str) -> Option<&Progress> {
        self.steps.get(step).and_then(|s| s.items.get(item))
    }

    /// Apply one event. Pure: no I/O, no clock.
    pub fn apply(&mut self, event: &Event) {
        self.events += 1;
        self.updated_at = event.at();
        match event {
            Event::StepStarted { .. }
            | Event::StepProgress { .. }
            | Event::StepSucceeded { .. }
            | Event::StepFailed { .. }
            | Event::StepSkipped { .. } => self.apply_step(event),
            Event::OperatorApproved { .. }
            | Event::OperatorSkipped { .. }
            | Event::OperatorRetried { .. }
            | Event::GuardPassed { .. }
            | Event::GuardOverridden { .. } => self.apply_operator(event),
            Event::RunCreated { .. }
            | Event::Halted { .. }
            | Event::Resumed { .. }
            | Event::RunFailed { .. }
            | Event::Refused { .. }
            | Event::Completed { .. }
            | Event::Aborted { .. } => self.apply_run(event),
        }
    }

    /// A step or item started, ended or was skipped.
    fn apply_step(&mut self, event: &Event) {
        match event {
            Event::StepStarted {
                step,
                item,
                attempt,
                prepared,
                effect,
                timeout_ms,
                at,
                ..
            } => {
                if *effect != crate::model::Effect::ReadOnly {
                    self.had_effect = true;
                }
                self.current = Some(step.clone());
                self.retry_authorized.remove(step);
                if item.is_some() {
                    let st = self.progress_mut(step, None);
                    if st.status != StepStatus::Running {
                        st.status = StepStatus::Running;
                        st.started_at.get_or_insert(*at);
                    }
                }
                let p = self.progress_mut(step, item.as_deref());
                p.status = StepStatus::Running;
                p.attempts = *attempt;
                p.error = None;
                if p.prepared.is_empty() {
                    p.prepared = prepared.clone();
                }
                p.started_at.get_or_insert(*at);
                p.timeout_ms = *timeout_ms;
            }
            Event::StepProgress {
                step,
                item,
                outputs,
                ..
            } => {
                // Kept with what was prepared: every later attempt (a retry, a resume)
                // starts from it.
                let p = self.progress_mut(step, item.as_deref());
                for (k, v) in outputs {
                    p.prepared.insert(k.clone(), v.clone());
                }
            }
            Event::StepSucceeded {
                step,
                item,
                outputs,
                observation,
                note,
                at,
                ..
            } => {
                let p = self.progress_mut(step, item.as_deref());
                p.status = StepStatus::Succeeded;
                p.outputs = outputs.clone();
                p.observation = observation.clone();
                p.note = note.clone();
                p.error = None;
                p.ended_at = Some(*at);
            }
            Event::StepFailed {
                step,
                item,
                attempt,
                error,
                at,
                ..
            } => {
                let p = self.progress_mut(step, item.as_deref());
                p.status = StepStatus::Failed;
                p.attempts = *attempt;
                p.error = Some(error.clone());
                p.ended_at = Some(*at);
            }
            Event::StepSkipped {
                step,
                item,
                reason,
                at,
            } => {
                let p = self.progress_mut(step, item.as_deref());
                p.status = StepStatus::Skipped;
                p.note = Some(reason.clone());
                p.ended_at = Some(*at);
            }
            _ => {}
        }
    }

    /// What the operator decided, and the guards checked.
    fn apply_operator(&mut self, event: &Event) {
        match event {
            Event::OperatorApproved { step, by, .. } => {
                self.approvals.insert(step.clone());
                self.hands.push(format!("approved `{step}`: {}", who(by)));
            }
            Event::OperatorSkipped {
                step,
                reason,
                by,
                at,
            } => {
                let p = self.progress_mut(step, None);
                p.status = StepStatus::Skipped;
                p.note = Some(format!("skipped by {}: {reason}", by.operator));
                p.ended_at = Some(*at);
                self.hands.push(format!("skipped `{step}`: {}", who(by)));
            }
            Event::OperatorRetried { step, by, .. } => {
                self.retry_authorized.insert(step.clone());
                self.hands.push(format!("retried `{step}`: {}", who(by)));
            }
            Event::GuardPassed { .. } => {}
            Event::GuardOverridden {
                guard,
                step,
                reason,
                by,
                ..
            } => {
                self.overrides.push(format!(
                    "guard `{guard}`{} overridden by {}: {reason}",
                    step.as_ref()
                        .map(|s| format!(" (before `{s}`)"))
                        .unwrap_or_default(),
                    by.operator
                ));
            }
            _ => {}
        }
    }

    /// The run's first event: what it runs, with what, by whom.
    fn created(&mut self, event: &Event) {
        let Event::RunCreated {
            runbook,
            title,
            origin,
            source_hash,
            params,
            secret_params,
            env_file,
            env_digest,
            lab,
            pack,
            traffic,
            program,
            by,
            at,
            ..
        } = event
        else {
            return;
        };
        self.traffic = traffic.clone();
        self.lab = *lab;
        self.program = program.clone();
        self.pack = pack.clone();
        self.runbook = runbook.clone();
        self.title = title.clone();
        self.origin = origin.clone();
        self.source_hash = source_hash.clone();
        self.params = params.clone();
        self.secret_params = secret_params.clone();
        self.env_file = env_file.clone();
        self.env_digest = env_digest.clone();
        self.created_by = by.clone();
        self.driver = by.clone();
        self.created_at = *at;
        self.status = RunStatus::Running;
    }

    /// The run as a whole: created, halted, resumed, ended.
    fn apply_run(&mut self, event: &Event) {
        match event {
            Event::RunCreated { .. } => self.created(event),
            Event::Halted {
                step,
                item,
                kind,
                reason,
                ..
            } => {
                self.status = RunStatus::Halted;
                self.halt = Some(HaltInfo {
                    step: step.clone(),
                    item: item.clone(),
                    kind: Some(*kind),
                    reason: reason.clone(),
                });
            }
            Event::Resumed {
                by, took_over_from, ..
            } => {
                self.status = RunStatus::Running;
                self.halt = None;
                self.driver = by.clone();
                self.hands.push(match took_over_from {
                    Some(from) => format!("took over: {} (after {})", who(by), who(from)),
                    None => format!("resumed: {}", who(by)),
                });
            }
            Event::RunFailed { step, error, .. } => {
                self.status = RunStatus::Failed;
                self.halt = Some(HaltInfo {
                    step: Some(step.clone()),
                    item: None,
                    kind: None,
                    reason: error.clone(),
                });
            }
            Event::Refused {
                step, item, reason, ..
            } => {
                self.status = RunStatus::Refused;
                self.current = None;
                self.halt = Some(HaltInfo {
                    step: step.clone(),
                    item: item.clone(),
                    kind: Some(HaltKind::Guard),
                    reason: reason.clone(),
                });
            }
            Event::Completed { .. } => {
                self.status = RunStatus::Completed;
                self.halt = None;
                self.current = None;
            }
            Event::Aborted { reason, by, .. } => {
                self.hands.push(format!("aborted: {}", who(by)));
                self.status = RunStatus::Aborted;
                self.halt = Some(HaltInfo {
                    step: self.current.clone(),
                    item: None,
                    kind: None,
                    reason: reason.clone(),
                });
            }

            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Effect;

    fn started(step: &str, item: Option<&str>, attempt: u32) -> Event {
        Event::StepStarted {
            step: step.into(),
            item: item.map(Into::into),
            attempt,
            effect: Effect::Destructive,
            prepared: json!({"previous": 3}).as_object().unwrap().clone(),
            calls: Vec::new(),
            timeout_ms: None,
            at: 1,
        }
    }

    #[test]
    fn a_fact_journaled_mid_effect_is_kept_with_what_was_prepared() {
        let mut s = RunState::default();
        s.apply(&started("promote", None, 1));
        s.apply(&Event::StepProgress {
            step: "promote".into(),
            item: None,
            attempt: 1,
            outputs: json!({"token": "t1"}).as_object().unwrap().clone(),
            at: 2,
        });
        // A second attempt (a retry, a resume) starts from both.
        s.apply(&started("promote", None, 2));
        let p = &s.steps["promote"].progress;
        assert_eq!(p.prepared["token"], json!("t1"));
        assert_eq!(p.prepared["previous"], json!(3));
        assert_eq!(p.status, StepStatus::Running);
    }

    #[test]
    fn started_without_end_is_running_and_keeps_first_prepared() {
        let mut s = RunState::default();
        s.apply(&started("scale", None, 1));
        let mut again = started("scale", None, 2);
        if let Event::StepStarted { prepared, .. } = &mut again {
            prepared.insert("previous".into(), json!(0));
        }
        s.apply(&again);
        let p = &s.steps["scale"].progress;
        assert_eq!(p.status, StepStatus::Running);
        assert_eq!(p.attempts, 2);
        assert_eq!(
            p.prepared["previous"],
            json!(3),
            "the value read before the first effect wins"
        );
    }

    #[test]
    fn items_are_tracked_apart() {
        let mut s = RunState::default();
        s.apply(&started("clear", Some("a"), 1));
        s.apply(&started("clear", Some("b"), 1));
        s.apply(&Event::StepSucceeded {
            step: "clear".into(),
            item: Some("a".into()),
            outputs: Default::default(),
            observation: None,
            note: None,
            waited: None,
            at: 2,
        });
        assert_eq!(s.item("clear", "a").unwrap().status, StepStatus::Succeeded);
        assert_eq!(s.item("clear", "b").unwrap().status, StepStatus::Running);
        assert_eq!(s.step_status("clear"), StepStatus::Running);
    }

    #[test]
    fn halt_resume_complete() {
        let mut s = RunState::default();
        s.apply(&Event::Halted {
            step: Some("x".into()),
            item: None,
            kind: HaltKind::Precondition,
            reason: "no".into(),
            at: 1,
        });
        assert_eq!(s.status, RunStatus::Halted);
        s.apply(&Event::OperatorRetried {
            step: "x".into(),
            by: Actor::default(),
            at: 2,
        });
        s.apply(&Event::Resumed {
            by: Actor::default(),
            runbook_changed: false,
            took_over_from: None,
            at: 2,
        });
        assert_eq!(s.status, RunStatus::Running);
        assert!(s.retry_authorized.contains("x"));
        s.apply(&started("x", None, 2));
        assert!(
            s.retry_authorized.is_empty(),
            "a retry authorisation is used once"
        );
        s.apply(&Event::Completed { at: 3 });
        assert!(s.status.is_final());
    }
}
