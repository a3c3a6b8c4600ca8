//! A run as people review it after an incident: who, what, when, and how long, built
//! from the journal alone (the run state, and its events when they can be read). Pure:
//! the CLI renders it as Markdown, HTML or JSON (`runbook report`) and serves it live
//! (`runbook serve`).
//!
//! The JSON form is this module's types serialized; `format` says its version and a
//! field is only ever added (docs/cli.md, "The report and the live page").

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
    /// When this review was made: now for a run in progress, else its last event.
    pub as_of: u64,
    /// From the start to `as_of`.
    pub duration_ms: u64,
    /// Of that, the time the run sat halted (or failed) waiting for a person.
    pub halted_ms: u64,
    /// The stretches the run sat halted: from the halt to the resume (to `as_of`
    /// while it still waits).
    pub halted: Vec<Span>,
    /// What happened, in a few lines: how it ended, each halt and who resumed it,
    /// failed attempts, overrides, an abort.
    pub summary: Vec<String>,
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

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Span {
    pub from: u64,
    pub to: u64,
}

impl Span {
    /// How much of `[a, b)` this span covers.
    pub fn overlap(&self, a: u64, b: u64) -> u64 {
        b.min(self.to).saturating_sub(a.max(self.from))
    }
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
    /// From its start to its end (to `as_of` while it runs), less the time the run sat
    /// halted in between.
    pub duration_ms: Option<u64>,
    /// The timeout of its last attempt.
    pub timeout_ms: Option<u64>,
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
    /// How many events this line stands for (a guard checked before each item of a
    /// fan-out is one line).
    pub count: u32,
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
/// its steps, from the pinned runbook; titles by id) as of its last event.
pub fn build(
    state: &RunState,
    events: &[Event],
    order: &[String],
    titles: &std::collections::BTreeMap<String, String>,
) -> Review {
    build_at(state, events, order, titles, None)
}

/// The same, as of `now` for a run still in progress (its time and its running step's
/// keep counting).
pub fn build_at(
    state: &RunState,
    events: &[Event],
    order: &[String],
    titles: &std::collections::BTreeMap<String, String>,
    now: Option<u64>,
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
    let mut folded = std::collections::HashMap::new();
    for e in events {
        enrich(&mut steps, e);
        if let Some(h) = person(e) {
            people.push(h);
        }
        push_moment(&mut timeline, &mut folded, e, start);
    }
    let end = state.updated_at.max(start);
    let as_of = match now {
        Some(n) if !state.status.is_final() => n.max(end),
        _ => end,
    };
    let halted = halted_spans(events, as_of);
    for s in &mut steps {
        active_time(s, &halted, as_of);
        for i in &mut s.items {
            active_time(i, &halted, as_of);
        }
    }
    let halted_ms = halted.iter().map(|h| h.to - h.from).sum();
    let summary = summary(state, events, start, as_of, halted_ms);
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
        as_of,
        duration_ms: as_of - start,
        halted_ms,
        halted,
        summary,
        current: state
            .current
            .clone()
            .filter(|_| state.status == crate::state::RunStatus::Running),
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
        (Some(HaltKind::SecondApproval), Some(step)) => format!(
            "a second person approves `{step}` (the page, or runbook resume {run} --approve {step} as them), then runbook resume {run}"
        ),
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
        duration_ms: None,
        timeout_ms: p.timeout_ms,
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
            step,
            item,
            calls,
            timeout_ms,
            ..
        } => {
            if let Some(v) = view_of(steps, step, item.as_deref()) {
                if !calls.is_empty() {
                    v.calls = calls.clone();
                }
                v.timeout_ms = *timeout_ms;
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
        count: 1,
    }
}

/// Add an event's line. A guard checked before each item of a fan-out is one line for
/// all its items (`folded`: the line of each (guard, step) so far), with the first
/// item's evidence.
fn push_moment(
    timeline: &mut Vec<Moment>,
    folded: &mut std::collections::HashMap<(String, String), usize>,
    e: &Event,
    start: u64,
) {
    if let Event::GuardPassed {
        guard,
        step: Some(step),
        item: Some(_),
        ..
    } = e
    {
        let key = (guard.clone(), step.clone());
        if let Some(&at) = folded.get(&key) {
            let line = &mut timeline[at];
            line.count += 1;
            let head = format!("guard `{guard}` held before `{step}`");
            let evidence = line
                .text
                .split_once(": ")
                .map(|(_, rest)| format!(": {rest}"))
                .unwrap_or_default();
            line.text = format!("{head} on each of {} items{evidence}", line.count);
            return;
        }
        folded.insert(key, timeline.len());
    }
    timeline.push(moment(e, start));
}

/// When the run sat halted or failed, waiting for a person: from each stop to the
/// resume (or abort) that followed it, or to `as_of`.
fn halted_spans(events: &[Event], as_of: u64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for e in events {
        match e {
            Event::Halted { at, .. } | Event::RunFailed { at, .. } => {
                open.get_or_insert(*at);
            }
            Event::Resumed { at, .. } | Event::Aborted { at, .. } => {
                if let Some(from) = open.take() {
                    out.push(Span { from, to: *at });
                }
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        out.push(Span {
            from,
            to: as_of.max(from),
        });
    }
    out
}

/// A step's time from start to end (or `as_of`), less what the run spent halted.
fn active_time(v: &mut StepView, halted: &[Span], as_of: u64) {
    let Some(a) = v.started_at else {
        return;
    };
    let running = v.status == StepStatus::Running;
    let b = match v.ended_at {
        Some(b) => b,
        None if running => as_of,
        None => return,
    };
    let idle: u64 = halted.iter().map(|h| h.overlap(a, b)).sum();
    v.duration_ms = Some(b.saturating_sub(a).saturating_sub(idle));
}

/// What happened, for the top of the report.
fn summary(
    state: &RunState,
    events: &[Event],
    start: u64,
    as_of: u64,
    halted_ms: u64,
) -> Vec<String> {
    let ms = |a: u64| fmt_ms(a.saturating_sub(start));
    let mut out = vec![how_it_stands(state, events, start, as_of, halted_ms)];
    let mut halt: Option<String> = None;
    // Failed attempts per step or item, in the order first seen.
    let mut failed: Vec<(String, u32)> = Vec::new();
    for e in events {
        match e {
            Event::Halted {
                step,
                item,
                kind,
                at,
                ..
            } => {
                let place = step
                    .as_deref()
                    .map(|s| format!(" at `{}`", label(s, item.as_deref())))
                    .unwrap_or_default();
                halt = Some(format!("halted{place} at +{} ({})", ms(*at), kind.as_str()));
            }
            Event::RunFailed { step, at, .. } => {
                halt = Some(format!("failed at `{step}` at +{}", ms(*at)));
            }
            Event::Resumed {
                by,
                took_over_from,
                at,
                ..
            } => {
                if let Some(h) = halt.take() {
                    out.push(format!(
                        "{h}; {} by {} at +{}",
                        if took_over_from.is_some() {
                            "taken over"
                        } else {
                            "resumed"
                        },
                        who(by),
                        ms(*at)
                    ));
                }
            }
            Event::Aborted { by, reason, at } => {
                if let Some(h) = halt.take() {
                    out.push(h);
                }
                out.push(format!("aborted by {} at +{}: {reason}", who(by), ms(*at)));
            }
            Event::StepFailed { step, item, .. } => {
                let l = label(step, item.as_deref());
                match failed.iter_mut().find(|(k, _)| *k == l) {
                    Some((_, n)) => *n += 1,
                    None => failed.push((l, 1)),
                }
            }
            Event::GuardOverridden {
                guard, reason, by, ..
            } => out.push(format!(
                "guard `{guard}` overridden by {}: {reason}",
                who(by)
            )),
            Event::Refused { guard, reason, .. } => out.push(format!(
                "refused by guard `{guard}`, nothing done: {reason}"
            )),
            _ => {}
        }
    }
    if let Some(h) = halt {
        out.push(format!("{h}; not resumed"));
    }
    out.extend(failed_attempts(&failed));
    out
}

/// The summary's first line: how the run ended, or how long it has been waiting.
fn how_it_stands(
    state: &RunState,
    events: &[Event],
    start: u64,
    as_of: u64,
    halted_ms: u64,
) -> String {
    use crate::state::RunStatus;
    let total = fmt_ms(as_of - start);
    let waiting = matches!(state.status, RunStatus::Halted | RunStatus::Failed);
    let mut first = match state.status {
        RunStatus::Running => format!("running for {total}"),
        _ if waiting => {
            let since = halted_since(events).unwrap_or(as_of);
            format!(
                "{}, waiting for a person for {} ({total} since the start)",
                state.status.as_str(),
                fmt_ms(as_of.saturating_sub(since))
            )
        }
        st => format!("{} after {total}", st.as_str()),
    };
    if halted_ms > 0 && !waiting {
        first.push_str(&format!(
            " ({} of it halted, waiting for a person)",
            fmt_ms(halted_ms)
        ));
    }
    first
}

/// `3 failed attempts: `take-offline` ×2, `clear[work]` ×1`, or nothing.
fn failed_attempts(failed: &[(String, u32)]) -> Option<String> {
    if failed.is_empty() {
        return None;
    }
    let total: u32 = failed.iter().map(|(_, n)| n).sum();
    let shown: Vec<String> = failed
        .iter()
        .take(5)
        .map(|(l, n)| format!("`{l}` ×{n}"))
        .collect();
    Some(format!(
        "{total} failed attempt{}: {}{}",
        if total == 1 { "" } else { "s" },
        shown.join(", "),
        if failed.len() > 5 { ", …" } else { "" }
    ))
}

/// When the run last stopped for a person (a halt or a failure not resumed since).
fn halted_since(events: &[Event]) -> Option<u64> {
    let mut since = None;
    for e in events {
        match e {
            Event::Halted { at, .. } | Event::RunFailed { at, .. } => {
                since.get_or_insert(*at);
            }
            Event::Resumed { .. } => since = None,
            _ => {}
        }
    }
    since
}

/// A duration as people read it: `850 ms`, `3.2 s`, `2 min 5 s` (the summary's, and
/// the renderers').
pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        match (ms % 60_000) / 1000 {
            0 => format!("{} min", ms / 60_000),
            s => format!("{} min {s} s", ms / 60_000),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::model::Effect;

    fn created(at: u64) -> Event {
        Event::bare_created(at)
    }

    fn started(step: &str, item: Option<&str>, at: u64) -> Event {
        Event::StepStarted {
            step: step.into(),
            item: item.map(Into::into),
            attempt: 1,
            effect: Effect::Idempotent,
            prepared: Default::default(),
            calls: vec![],
            timeout_ms: Some(5_000),
            at,
        }
    }

    fn guard(step: &str, item: &str, at: u64) -> Event {
        Event::GuardPassed {
            guard: "g".into(),
            step: Some(step.into()),
            item: Some(item.into()),
            observation: serde_json::json!({"summary": format!("fine for {item}")}),
            at,
        }
    }

    #[test]
    fn a_steps_time_leaves_out_the_halt_and_the_summary_says_who_resumed() {
        let events = vec![
            created(0),
            started("wait", None, 100),
            Event::Halted {
                step: Some("wait".into()),
                item: None,
                kind: HaltKind::Postcondition,
                reason: "not yet".into(),
                at: 1_100,
            },
            Event::Resumed {
                by: Actor {
                    operator: "bob".into(),
                    host: "bastion".into(),
                    pid: 7,
                },
                runbook_changed: false,
                took_over_from: None,
                at: 31_100,
            },
            Event::StepSucceeded {
                step: "wait".into(),
                item: None,
                outputs: Default::default(),
                observation: None,
                note: None,
                waited: None,
                at: 32_100,
            },
            Event::Completed { at: 32_200 },
        ];
        let state = RunState::fold("r-1", &events);
        let r = build(&state, &events, &["wait".into()], &Default::default());
        assert_eq!(
            r.halted,
            vec![Span {
                from: 1_100,
                to: 31_100
            }]
        );
        assert_eq!(r.halted_ms, 30_000);
        // 100 → 32,100 is 32 s, of which 30 s the run sat halted.
        assert_eq!(r.steps[0].duration_ms, Some(2_000));
        assert_eq!(r.steps[0].timeout_ms, Some(5_000));
        assert_eq!(
            r.summary,
            vec![
                "completed after 32.2 s (30.0 s of it halted, waiting for a person)".to_string(),
                "halted at `wait` at +1.1 s (postcondition not met); resumed by bob@bastion at +31.1 s"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_running_run_is_reviewed_as_of_now_and_a_fanouts_guard_checks_are_one_line() {
        let mut events = vec![created(0), started("clear", None, 10)];
        for (i, item) in ["a", "b", "c"].iter().enumerate() {
            events.push(guard("clear", item, 20 + i as u64));
            events.push(started("clear", Some(item), 30 + i as u64));
        }
        let state = RunState::fold("r-1", &events);
        let r = build_at(
            &state,
            &events,
            &["clear".into()],
            &Default::default(),
            Some(9_000),
        );
        assert_eq!((r.as_of, r.duration_ms), (9_000, 9_000));
        assert_eq!(r.summary[0], "running for 9.0 s");
        assert_eq!(r.current.as_deref(), Some("clear"));
        assert_eq!(r.steps[0].duration_ms, Some(8_990), "it keeps counting");
        let guards: Vec<&Moment> = r
            .timeline
            .iter()
            .filter(|m| m.event == "guard_passed")
            .collect();
        assert_eq!(guards.len(), 1, "{guards:?}");
        assert_eq!(guards[0].count, 3);
        assert_eq!(
            guards[0].text,
            "guard `g` held before `clear` on each of 3 items: fine for a"
        );
    }
}
