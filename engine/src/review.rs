//! A run as people review it after an incident: who, what, when, and how long, built
//! from the journal alone (the run state, and its events when they can be read). Pure:
//! the CLI renders it as Markdown, HTML or JSON (`runbook report`) and serves it live
//! (`runbook serve`).
//!
//! The JSON form is this module's types serialized; `format` says its version and a
//! field is only ever added (see README, "The report").

use serde::Serialize;
use serde_json::Value as Json;

use crate::event::{Actor, Event, HaltKind};
use crate::state::{Progress, RunState, StepStatus};

/// The version of the report's JSON form.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Review {
    pub format: u32,
    pub run_id: String,
    pub runbook: String,
    pub title: String,
    /// Where the runbook text came from, and the SHA-256 of the text pinned in the journal.
    pub origin: String,
    pub source_hash: String,
    pub status: String,
    /// Parameters as journaled: secret ones were never written and show as `***`.
    pub params: serde_json::Map<String, Json>,
    pub started_at: u64,
    /// The last event's time.
    pub updated_at: u64,
    pub duration_ms: u64,
    /// The step in progress, what it waits for and its last observation (a live run).
    pub current: Option<String>,
    pub waiting: Vec<String>,
    pub halt: Option<HaltView>,
    /// Who did what: started, resumed, took over, approved, skipped, retried, aborted,
    /// overrode a guard.
    pub people: Vec<Hand>,
    pub steps: Vec<StepView>,
    /// Every event, in order (empty when only a live snapshot could be read).
    pub timeline: Vec<Moment>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HaltView {
    pub step: Option<String>,
    pub item: Option<String>,
    /// `None`: the run failed.
    pub kind: Option<HaltKind>,
    pub reason: String,
    /// The command that continues it.
    pub resume: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hand {
    pub what: String,
    pub operator: String,
    pub host: String,
    pub pid: u32,
    pub at: u64,
    /// The reason given, the step, or whom it took over from.
    pub detail: Option<String>,
}

/// A step, or one item of a fan-out step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepView {
    pub id: String,
    pub title: Option<String>,
    pub status: StepStatus,
    pub attempts: u32,
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub duration_ms: Option<u64>,
    /// The calls of its last attempt, as planned.
    pub calls: Vec<String>,
    /// What it waited for after its effect, for how long.
    pub waited: Vec<crate::event::Waited>,
    /// Failed attempts: their errors, in order.
    pub failures: Vec<String>,
    pub note: Option<String>,
    pub error: Option<String>,
    pub observation: Option<Json>,
    pub items: Vec<StepView>,
}

/// One event, as a line of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Moment {
    pub at: u64,
    /// Milliseconds since the run started.
    pub offset_ms: u64,
    pub event: &'static str,
    pub step: Option<String>,
    pub text: String,
    /// A halt, a refusal, an operator's decision or an override: marked on the chart.
    pub mark: Option<&'static str>,
}

fn who(a: &Actor) -> String {
    format!("{}@{}", a.operator, a.host)
}

fn hand(what: &str, by: &Actor, at: u64, detail: Option<String>) -> Hand {
    Hand {
        what: what.to_string(),
        operator: by.operator.clone(),
        host: by.host.clone(),
        pid: by.pid,
        at,
        detail,
    }
}

fn label(step: &str, item: Option<&str>) -> String {
    crate::scope::label(step, item)
}

/// Build the review of run `state` (its events, when they could be read; the order of
/// its steps, from the pinned runbook; titles by id).
pub fn build(
    state: &RunState,
    events: &[Event],
    order: &[String],
    titles: &std::collections::BTreeMap<String, String>,
) -> Review {
    let start = state.created_at;
    let mut steps: Vec<StepView> = Vec::new();
    let mut ids: Vec<&String> = order.iter().collect();
    for id in state.steps.keys() {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        let mut v = step_view(id, state.steps.get(id).map(|s| &s.progress), titles.get(id));
        if let Some(st) = state.steps.get(id) {
            v.items = st
                .items
                .iter()
                .map(|(k, p)| step_view(&label(id, Some(k)), Some(p), None))
                .collect();
        }
        steps.push(v);
    }
    let mut people = vec![hand("started", &state.created_by, start, None)];
    let mut timeline = Vec::with_capacity(events.len());
    for e in events {
        enrich(&mut steps, e);
        if let Some(h) = person(e) {
            people.push(h);
        }
        timeline.push(moment(e, start));
    }
    let end = state.updated_at.max(start);
    Review {
        format: FORMAT,
        run_id: state.run_id.clone(),
        runbook: state.runbook.clone(),
        title: state.title.clone(),
        origin: state.origin.clone(),
        source_hash: state.source_hash.clone(),
        status: state.status.as_str().to_string(),
        params: shown_params(state),
        started_at: start,
        updated_at: end,
        duration_ms: end - start,
        current: state.current.clone().filter(|_| !state.status.is_final()),
        waiting: state
            .waiting
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect(),
        halt: state.halt.as_ref().map(|h| HaltView {
            step: h.step.clone(),
            item: h.item.clone(),
            kind: h.kind,
            reason: h.reason.clone(),
            resume: resume_hint(state, h.kind),
        }),
        people,
        steps,
        timeline,
    }
}

fn shown_params(state: &RunState) -> serde_json::Map<String, Json> {
    let mut p = state.params.clone();
    for s in &state.secret_params {
        p.insert(s.clone(), Json::String(crate::redact::MASK.into()));
    }
    p
}

fn resume_hint(state: &RunState, kind: Option<HaltKind>) -> String {
    if state.status.is_final() {
        return String::new();
    }
    let run = &state.run_id;
    match (kind, state.halt.as_ref().and_then(|h| h.step.as_deref())) {
        (Some(HaltKind::ManualGate), Some(step)) => {
            format!("runbook resume {run} --approve {step}")
        }
        _ => format!("runbook resume {run}"),
    }
}

fn step_view(id: &str, p: Option<&Progress>, title: Option<&String>) -> StepView {
    let p = p.cloned().unwrap_or_default();
    StepView {
        id: id.to_string(),
        title: title.cloned(),
        status: p.status,
        attempts: p.attempts,
        started_at: p.started_at,
        ended_at: p.ended_at,
        duration_ms: p
            .started_at
            .zip(p.ended_at)
            .map(|(a, b)| b.saturating_sub(a)),
        calls: Vec::new(),
        waited: Vec::new(),
        failures: Vec::new(),
        note: p.note,
        error: p.error,
        observation: p.observation,
        items: Vec::new(),
    }
}

/// The step (or item) view an event is about.
fn view_of<'a>(
    steps: &'a mut [StepView],
    step: &str,
    item: Option<&str>,
) -> Option<&'a mut StepView> {
    let s = steps.iter_mut().find(|s| s.id == step)?;
    match item {
        None => Some(s),
        Some(k) => {
            let l = label(step, Some(k));
            s.items.iter_mut().find(|i| i.id == l)
        }
    }
}

/// Calls, waits and failed attempts, from the events.
fn enrich(steps: &mut [StepView], e: &Event) {
    match e {
        Event::StepStarted {
            step, item, calls, ..
        } if !calls.is_empty() => {
            if let Some(v) = view_of(steps, step, item.as_deref()) {
                v.calls = calls.clone();
            }
        }
        Event::StepSucceeded {
            step,
            item,
            waited: Some(w),
            ..
        } => {
            if let Some(v) = view_of(steps, step, item.as_deref()) {
                v.waited.push(w.clone());
            }
        }
        Event::StepFailed {
            step,
            item,
            attempt,
            error,
            will_retry,
            ..
        } => {
            if let Some(v) = view_of(steps, step, item.as_deref()) {
                v.failures.push(format!(
                    "attempt {attempt}: {error}{}",
                    if *will_retry { " (tried again)" } else { "" }
                ));
            }
        }
        _ => {}
    }
}

fn person(e: &Event) -> Option<Hand> {
    Some(match e {
        Event::Resumed {
            by,
            took_over_from: Some(from),
            at,
            ..
        } => hand("took over", by, *at, Some(format!("after {}", who(from)))),
        Event::Resumed { by, at, .. } => hand("resumed", by, *at, None),
        Event::OperatorApproved { step, by, at } => {
            hand("approved", by, *at, Some(format!("`{step}`")))
        }
        Event::OperatorSkipped {
            step,
            reason,
            by,
            at,
        } => hand("skipped", by, *at, Some(format!("`{step}`: {reason}"))),
        Event::OperatorRetried { step, by, at } => {
            hand("allowed a retry of", by, *at, Some(format!("`{step}`")))
        }
        Event::Aborted { reason, by, at } => hand("aborted", by, *at, Some(reason.clone())),
        Event::GuardOverridden {
            guard,
            reason,
            by,
            at,
            ..
        } => hand(
            "overrode a guard",
            by,
            *at,
            Some(format!("`{guard}`: {reason}")),
        ),
        _ => return None,
    })
}

type Said = (Option<String>, String, Option<&'static str>);

fn moment(e: &Event, start: u64) -> Moment {
    let at = e.at();
    let (step, text, mark) = step_said(e).unwrap_or_else(|| run_said(e));
    Moment {
        at,
        offset_ms: at.saturating_sub(start),
        event: e.kind(),
        step,
        text,
        mark,
    }
}

/// A step's own events.
fn step_said(e: &Event) -> Option<Said> {
    Some(match e {
        Event::StepStarted {
            step,
            item,
            attempt,
            effect,
            calls,
            ..
        } => (
            Some(step.clone()),
            format!(
                "`{}` attempt {attempt} ({}){}",
                label(step, item.as_deref()),
                effect.as_str(),
                if calls.is_empty() {
                    String::new()
                } else {
                    format!(": {}", calls.join("; "))
                }
            ),
            None,
        ),
        Event::StepSucceeded {
            step,
            item,
            note,
            waited,
            ..
        } => (
            Some(step.clone()),
            format!(
                "`{}` succeeded{}{}",
                label(step, item.as_deref()),
                waited
                    .as_ref()
                    .map(|w| format!(
                        " after waiting {} ms for {} ({} checks)",
                        w.ms, w.what, w.checks
                    ))
                    .unwrap_or_default(),
                note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
            ),
            None,
        ),
        Event::StepFailed {
            step,
            item,
            attempt,
            error,
            will_retry,
            ..
        } => (
            Some(step.clone()),
            format!(
                "`{}` attempt {attempt} failed{}: {error}",
                label(step, item.as_deref()),
                if *will_retry { ", tried again" } else { "" }
            ),
            None,
        ),
        Event::StepSkipped {
            step, item, reason, ..
        } => (
            Some(step.clone()),
            format!("`{}` skipped: {reason}", label(step, item.as_deref())),
            None,
        ),
        _ => return None,
    })
}

/// The run's and the operators' events.
fn run_said(e: &Event) -> Said {
    match e {
        Event::RunCreated { runbook, by, .. } => (
            None,
            format!("run of `{runbook}` created by {}", who(by)),
            None,
        ),
        Event::Halted {
            step,
            item,
            kind,
            reason,
            ..
        } => (
            step.clone(),
            format!(
                "halted ({}){}: {reason}",
                kind.as_str(),
                step.as_ref()
                    .map(|s| format!(" at `{}`", label(s, item.as_deref())))
                    .unwrap_or_default()
            ),
            Some("halt"),
        ),
        Event::Resumed {
            by, took_over_from, ..
        } => (
            None,
            match took_over_from {
                Some(f) => format!("taken over by {} after {}", who(by), who(f)),
                None => format!("resumed by {}", who(by)),
            },
            Some("decision"),
        ),
        Event::OperatorApproved { step, by, .. } => (
            Some(step.clone()),
            format!("`{step}` approved by {}", who(by)),
            Some("decision"),
        ),
        Event::OperatorSkipped {
            step, reason, by, ..
        } => (
            Some(step.clone()),
            format!("`{step}` skipped by {}: {reason}", who(by)),
            Some("decision"),
        ),
        Event::OperatorRetried { step, by, .. } => (
            Some(step.clone()),
            format!("`{step}` allowed to be applied again by {}", who(by)),
            Some("decision"),
        ),
        Event::RunFailed { step, error, .. } => (
            Some(step.clone()),
            format!("failed at `{step}`: {error}"),
            Some("halt"),
        ),
        Event::GuardPassed {
            guard,
            step,
            observation,
            ..
        } => (
            step.clone(),
            format!(
                "guard `{guard}` held{}{}",
                step.as_ref()
                    .map(|s| format!(" before `{s}`"))
                    .unwrap_or_default(),
                // What it saw, as the probe summed it up (each endpoint's answer for
                // the identity guard): what a review needs to trust the pass.
                observation
                    .get("summary")
                    .and_then(serde_json::Value::as_str)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            ),
            None,
        ),
        Event::GuardOverridden {
            guard, reason, by, ..
        } => (
            None,
            format!("guard `{guard}` overridden by {}: {reason}", who(by)),
            Some("decision"),
        ),
        Event::Refused { guard, reason, .. } => (
            None,
            format!("refused by guard `{guard}`: {reason}"),
            Some("halt"),
        ),
        Event::Completed { .. } => (None, "completed".to_string(), None),
        Event::Aborted { reason, by, .. } => (
            None,
            format!("aborted by {}: {reason}", who(by)),
            Some("decision"),
        ),
        _ => (None, e.kind().to_string(), None),
    }
}
