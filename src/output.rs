//! How plans, runs and histories read on a terminal.

use std::fmt::Write;

use engine::event::HaltKind;
use engine::plan::Plan;
use engine::state::{RunState, RunStatus, StepStatus};

use crate::progress::Style;

/// RFC 3339 seconds, from milliseconds since the epoch.
pub fn time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn span(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => {
            crate::progress::secs(std::time::Duration::from_millis(b - a))
        }
        _ => String::new(),
    }
}

/// The plan as a person reads it.
/// What a plan is read in: the pack in use and why, and the named context, if any.
#[derive(Debug, Clone)]
pub struct InUse<'a> {
    pub pack: &'a str,
    pub chosen: crate::packs::Chosen,
    /// `Config::context_line`.
    pub context: Option<String>,
}

pub fn plan_text(plan: &Plan, s: Style, in_use: InUse<'_>) -> String {
    let mut o = String::new();
    plan_header(&mut o, plan, s, in_use);
    plan_guards(&mut o, plan, s);
    let total = plan.steps.len();
    for st in &plan.steps {
        plan_step(&mut o, st, total, s);
    }
    o
}

/// The plan as `run` shows it before it starts: the header whole (what it moves or
/// removes included), then one line per guard and per step. Every call, check and
/// timeout is what `runbook plan` (or `run -v`) shows.
pub fn plan_brief(plan: &Plan, s: Style, in_use: InUse<'_>) -> String {
    let mut o = String::new();
    plan_header(&mut o, plan, s, in_use);
    let shown: Vec<_> = plan
        .guards
        .iter()
        .filter(|g| !(g.applies == Some(false) && g.id.starts_with("builtin-")))
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            o,
            "{} (checked live before the first effect and again where named)",
            s.bold("safety guards")
        );
        if let Some(reason) = &plan.forced {
            let _ = writeln!(o, "  {} force=true (reason: {reason})", s.red("FORCED:"));
        }
        for g in shown {
            let _ = writeln!(o, "  ⛨ {} {}", s.bold(&g.id), s.dim(&g.title));
        }
    }
    let _ = writeln!(o, "{}", s.bold("steps"));
    let total = plan.steps.len();
    for st in &plan.steps {
        let site = st
            .site
            .as_ref()
            .map(|x| format!(" on {x}"))
            .unwrap_or_default();
        let when = match (&st.when, st.runs) {
            (Some(_), Some(false)) => " (skipped: its `when` is false)",
            (Some(_), None) => " (if its `when` holds)",
            _ => "",
        };
        let _ = writeln!(
            o,
            "  {} {}  [{}{site}] {}{when}",
            s.dim(&format!("{}/{total}", st.index)),
            s.bold(&st.id),
            st.action,
            s.effect(st.effect)
        );
        if let Some(g) = &st.gate {
            let _ = writeln!(o, "      {} {g}", s.yellow("waits for a person:"));
        }
    }
    let _ = writeln!(
        o,
        "{}",
        s.dim(&format!(
            "(every call, check and timeout: `runbook plan {}`, or `run -v`)",
            plan.runbook
        ))
    );
    o
}

/// What the plan is: the runbook, its pack and why, parameters, sites, what it moves.
fn plan_header(o: &mut String, plan: &Plan, s: Style, in_use: InUse<'_>) {
    let _ = writeln!(o, "{} — {}", s.bold(&plan.runbook), plan.title);
    if let Some(c) = &in_use.context {
        let _ = writeln!(o, "in:     {}", s.bold(c));
    }
    // Which pack's procedure this is, and why that pack.
    match plan.pack.as_deref().and_then(crate::packs::find) {
        Some(p) => {
            let _ = writeln!(
                o,
                "pack:   {} ({}: {})",
                p.describe(),
                p.title(),
                if p.name == in_use.pack {
                    in_use.chosen.as_str()
                } else {
                    "named as PACK/NAME"
                }
            );
        }
        None => {
            let _ = writeln!(o, "pack:   none (a runbook file: {})", plan.origin);
        }
    }
    if !plan.params.is_empty() {
        let params: Vec<String> = plan
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "params: {}", params.join(" "));
    }
    if !plan.sites.is_empty() {
        let _ = writeln!(
            o,
            "sites:  {} (locked while the run is not over)",
            plan.sites.join(", ")
        );
    }
    let destructive = plan.destructive_steps();
    if !destructive.is_empty() {
        let ids: Vec<&str> = destructive.iter().map(|s| s.id.as_str()).collect();
        let _ = writeln!(o, "{} {}", s.red("destructive steps:"), ids.join(", "));
    }
    let impacts = plan.impacts();
    if !impacts.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            s.bold("what it moves or removes (asked once before it starts, unless --yes):")
        );
        for i in impacts {
            let _ = writeln!(
                o,
                "  {}: {}",
                s.red(&i.kind.as_str().to_uppercase()),
                i.text
            );
        }
    }
}

/// The safety guards: what each reads, where it is checked, whether it holds now.
fn plan_guards(o: &mut String, plan: &Plan, s: Style) {
    if !plan.guards.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{} (checked live before the first effect and again where named; override only with -p force=true -p force_reason=..., journaled)",
            s.bold("safety guards")
        );
        if let Some(reason) = &plan.forced {
            let _ = writeln!(
                o,
                "  {} force=true: a guard that does not hold is overridden and journaled (reason: {reason})",
                s.red("FORCED:")
            );
        }
        // A built-in guard whose `when` is false here (another vendor's: PGO's before a
        // move of an Aurora writer) is named once, not shown whole.
        let elsewhere: Vec<&str> = plan
            .guards
            .iter()
            .filter(|g| g.applies == Some(false) && g.id.starts_with("builtin-"))
            .map(|g| g.id.as_str())
            .collect();
        for g in &plan.guards {
            if g.applies == Some(false) && g.id.starts_with("builtin-") {
                continue;
            }
            let state = match (g.applies, g.holds) {
                (Some(false), _) => {
                    format!("  → {}", s.dim("does not apply (its `when` is false)"))
                }
                (_, Some(true)) => format!("  → {}", s.green("holds now")),
                (_, Some(false)) => format!("  → {}", s.red("DOES NOT HOLD NOW")),
                _ => String::new(),
            };
            let _ = writeln!(o, "  ⛨ {} {}{state}", s.bold(&g.id), g.title);
            let _ = writeln!(o, "      reads {}: `{}`", g.reads, g.expect);
            let _ = writeln!(o, "      checked {}", g.checked.join(", "));
            if let Some(u) = &g.unchecked {
                let _ = writeln!(o, "      cannot check: {u}");
            }
            if let (true, Some(d)) = (plan.live, &g.deferred) {
                let _ = writeln!(o, "      not judged now: {d}");
            }
            if let Some(now) = &g.now {
                let _ = writeln!(o, "      now: {now}");
            }
        }
        if !elsewhere.is_empty() {
            let _ = writeln!(
                o,
                "  {}",
                s.dim(&format!(
                    "(built in for other vendors, not applying here: {})",
                    elsewhere.join(", ")
                ))
            );
        }
    }
}

/// One step: its action, site, effect, calls, checks and, with `--live`, its state now.
fn plan_step(o: &mut String, st: &engine::plan::PlannedStep, total: usize, s: Style) {
    let _ = writeln!(o);
    let site = st
        .site
        .as_ref()
        .map(|x| format!(" on {x}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{} {} {}  [{}{site}] {}",
        s.bold(&format!("[{}/{total}]", st.index)),
        s.bold(&st.id),
        st.title,
        st.action,
        s.effect(st.effect)
    );
    if let Some(w) = &st.when {
        let now = match st.runs {
            Some(true) => "runs",
            Some(false) => "skipped",
            None => "decided at run time",
        };
        let _ = writeln!(o, "      when: {w}  → {now}");
    }
    if let Some(items) = &st.items {
        let _ = writeln!(
            o,
            "      for each of {} items ({} at a time): {}",
            items.len(),
            st.concurrency.unwrap_or(1),
            items.join(", ")
        );
    }
    if let Some(g) = &st.gate {
        let _ = writeln!(o, "      {} {g}", s.yellow("waits for a person:"));
    }
    for c in &st.calls {
        let _ = writeln!(o, "      calls:   {c}");
    }
    for r in &st.require {
        let _ = writeln!(o, "      requires: {r}");
    }
    let _ = writeln!(o, "      verifies: {}", st.verify);
    let _ = writeln!(o, "      timeout {}, {}", st.timeout, st.retry);
    if let Some(now) = &st.now {
        step_now(o, now, s);
    }
}

/// A step's live state in the plan: its preconditions and whether it is done already.
fn step_now(o: &mut String, now: &engine::plan::LiveFindings, s: Style) {
    for p in &now.preconditions {
        let mark = match p.holds {
            Some(true) => s.green("holds now"),
            Some(false) => s.red("does NOT hold now"),
            None => s.yellow("unknown"),
        };
        let obs = p
            .observed
            .as_ref()
            .map(|v| format!(" (observed {v})"))
            .or_else(|| p.error.as_ref().map(|e| format!(" ({e})")))
            .unwrap_or_default();
        let _ = writeln!(o, "      now: {} {mark}{obs}", p.condition);
    }
    match now.satisfied {
        Some(true) => {
            let _ = writeln!(o, "      now: {}", s.green("already satisfied"));
        }
        Some(false) => {
            let _ = writeln!(o, "      now: not yet done");
        }
        None => {}
    }
    if let Some(n) = &now.note {
        let _ = writeln!(o, "      now: {n}");
    }
}

fn status_word(status: RunStatus, s: Style) -> String {
    match status {
        RunStatus::Completed => s.green("completed"),
        RunStatus::Failed => s.red("failed"),
        RunStatus::Halted => s.yellow("halted"),
        RunStatus::Aborted => s.red("aborted"),
        RunStatus::Refused => s.red("refused"),
        RunStatus::Running => s.bold("running"),
    }
}

/// A step's state as shown; `over`: its run is not running (a step still marked
/// running was interrupted).
fn step_word(status: StepStatus, over: bool, s: Style) -> String {
    match status {
        StepStatus::Running if over => s.yellow("interrupted"),
        StepStatus::Succeeded => s.green("done"),
        StepStatus::Skipped => s.dim("skipped"),
        StepStatus::Failed => s.red("failed"),
        StepStatus::Running => s.yellow("running"),
        StepStatus::Pending => s.dim("pending"),
    }
}

/// A run's state: header, steps, and what to do next.
pub fn run_text(state: &RunState, step_order: &[String], s: Style, live: bool) -> String {
    let mut o = String::new();
    let source = if live { " (live)" } else { "" };
    let _ = writeln!(
        o,
        "{} {} — {}: {}{source}",
        s.bold(&state.run_id),
        state.runbook,
        state.title,
        status_word(state.status, s)
    );
    let _ = writeln!(
        o,
        "started {} by {} on {}; last event {}",
        time(state.created_at),
        state.created_by.operator,
        state.created_by.host,
        time(state.updated_at)
    );
    for id in step_order {
        step_lines(&mut o, state, id, s);
    }
    for ov in &state.overrides {
        let _ = writeln!(o, "{} {ov}", s.red("safety guard overridden:"));
    }
    if let Some(h) = &state.halt {
        let at = h
            .step
            .as_ref()
            .map(|x| format!(" at `{x}`"))
            .unwrap_or_default();
        let kind = h
            .kind
            .map(|k| format!(" ({})", k.as_str()))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{}{at}{kind}: {}",
            s.yellow(state.status.as_str()),
            h.reason
        );
    }
    match state.status {
        RunStatus::Halted | RunStatus::Failed => {
            let _ = writeln!(o, "next: {}", next_command(state));
        }
        _ => {}
    }
    for line in left_behind(state, step_order) {
        let _ = writeln!(o, "{}", s.dim(&line));
    }
    o
}

/// What to type next for a halted or failed run: at a manual gate, the approval of
/// that gate (`--approve STEP`); at a step in doubt, retry or skip it.
fn next_command(state: &RunState) -> String {
    let id = &state.run_id;
    let h = state.halt.as_ref();
    let step = h.and_then(|h| h.step.clone()).unwrap_or_default();
    let resume = match h.and_then(|h| h.kind) {
        Some(HaltKind::ManualGate) => format!("`runbook resume {id} --approve {step}`"),
        Some(HaltKind::SecondApproval) => format!(
            "a second person approves `{step}` (on the page, or `runbook resume {id} --approve {step}` as themselves), then `runbook resume {id}`"
        ),
        Some(HaltKind::InDoubt) => format!(
            "`runbook resume {id} --retry-step {step}` (apply it again) or `--skip-step {step} --reason ...` (it took effect)"
        ),
        _ => format!("`runbook resume {id}` (see `runbook resume --help`)"),
    };
    format!("{resume}, or `runbook abort {id} --reason ...`")
}

/// One step of a run: its state, time, attempts and note, what it waits for, then
/// its items and outputs.
fn step_lines(o: &mut String, state: &RunState, id: &str, s: Style) {
    let st = state.steps.get(id);
    let status = st.map(|x| x.progress.status).unwrap_or_default();
    let p = st.map(|x| &x.progress);
    let dur = p
        .map(|p| span(p.started_at, p.ended_at))
        .unwrap_or_default();
    let note = p
        .and_then(|p| p.error.clone().or_else(|| p.note.clone()))
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    let attempts = p
        .filter(|p| p.attempts > 1)
        .map(|p| format!(" ({} attempts)", p.attempts))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "  {:<10} {id} {}{attempts}{note}",
        step_word(status, state.status != RunStatus::Running, s),
        s.dim(&dur)
    );
    if let Some(w) = state
        .waiting
        .get(id)
        .filter(|_| status == StepStatus::Running)
    {
        let _ = writeln!(o, "             {}", s.dim(&format!("waiting for {w}")));
    }
    if let Some(st) = st {
        item_lines(o, state, id, st, s);
    }
}

/// A step's items (a fan-out) and, once it succeeded, its outputs.
fn item_lines(o: &mut String, state: &RunState, id: &str, st: &engine::state::StepState, s: Style) {
    for (k, item) in &st.items {
        let note = item
            .error
            .clone()
            .or_else(|| item.note.clone())
            .map(|n| format!(" — {n}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "    {:<10} {id}[{k}] {}{note}",
            step_word(item.status, state.status != RunStatus::Running, s),
            s.dim(&span(item.started_at, item.ended_at))
        );
        if let Some(w) = state
            .waiting
            .get(&format!("{id}[{k}]"))
            .filter(|_| item.status == StepStatus::Running)
        {
            let _ = writeln!(o, "               {}", s.dim(&format!("waiting for {w}")));
        }
    }
    let outs = &st.progress.outputs;
    if st.progress.status == StepStatus::Succeeded
        && !outs.is_empty()
        && !outs.contains_key("items")
    {
        let shown: Vec<String> = outs
            .iter()
            .filter(|(k, _)| *k != "body")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(
                o,
                "             {}",
                s.dim(&format!("outputs: {}", shown.join(" ")))
            );
        }
    }
}

/// What a run that stopped (halted, failed, aborted) left behind, from its journal:
/// the steps whose effects are in place, those in doubt, those never done, and the
/// command, with its parameters, that does the job again from the start.
/// What the run changed and did not put back, from the journal: each step's
/// `restore` (recorded before its effect: what it changes, what it was, the command
/// that puts it back), the first value of each thing against the last step's.
pub fn to_restore(state: &RunState, step_order: &[String]) -> Vec<String> {
    let mut first: Vec<(String, serde_json::Value)> = Vec::new();
    let mut last: std::collections::BTreeMap<String, (serde_json::Value, bool)> =
        Default::default();
    for id in step_order {
        let Some(st) = state.steps.get(id) else {
            continue;
        };
        let p = &st.progress;
        let Some(r) = p.prepared.get("restore") else {
            continue;
        };
        if matches!(p.status, StepStatus::Pending | StepStatus::Skipped) {
            continue;
        }
        let key = r["key"].as_str().unwrap_or_default().to_string();
        if !first.iter().any(|(k, _)| *k == key) {
            first.push((key.clone(), r.clone()));
        }
        last.insert(key, (r["sets"].clone(), p.status == StepStatus::Succeeded));
    }
    first
        .into_iter()
        .filter_map(|(key, r)| {
            let (sets, done) = last.get(&key)?;
            (*sets != r["had"]).then(|| {
                format!(
                    "left behind: {} {} {sets} (it had {}); to put it back: {}",
                    r["what"].as_str().unwrap_or("?"),
                    if *done { "are" } else { "may be (in doubt)" },
                    r["had"],
                    r["command"].as_str().unwrap_or("?")
                )
            })
        })
        .collect()
}

pub fn left_behind(state: &RunState, step_order: &[String]) -> Vec<String> {
    if matches!(
        state.status,
        RunStatus::Completed | RunStatus::Refused | RunStatus::Running
    ) {
        return Vec::new();
    }
    let mut done = Vec::new();
    let mut doubt = Vec::new();
    let mut not_done = Vec::new();
    for id in step_order {
        let Some(st) = state.steps.get(id) else {
            not_done.push(id.clone());
            continue;
        };
        let mut in_doubt: Vec<String> = st
            .items
            .iter()
            .filter(|(_, p)| matches!(p.status, StepStatus::Running | StepStatus::Failed))
            .map(|(k, _)| format!("{id}[{k}]"))
            .collect();
        match st.progress.status {
            StepStatus::Succeeded => {
                let outs: Vec<String> = st
                    .progress
                    .prepared
                    .iter()
                    .filter(|(k, _)| k.as_str() != "restore")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                done.push(if outs.is_empty() {
                    id.clone()
                } else {
                    format!("{id} ({})", outs.join(", "))
                });
            }
            StepStatus::Running | StepStatus::Failed if in_doubt.is_empty() => {
                doubt.push(id.clone())
            }
            StepStatus::Skipped => {}
            _ if !in_doubt.is_empty() => doubt.append(&mut in_doubt),
            _ => not_done.push(id.clone()),
        }
    }
    let mut out = Vec::new();
    if !done.is_empty() {
        out.push(format!(
            "left behind: done and in place: {}",
            done.join(", ")
        ));
    }
    out.extend(to_restore(state, step_order));
    if !doubt.is_empty() {
        out.push(format!(
            "left behind: started, outcome unknown (check the servers): {}",
            doubt.join(", ")
        ));
    }
    if !not_done.is_empty() {
        out.push(format!("left behind: never done: {}", not_done.join(", ")));
    }
    let params: Vec<String> = state
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "force" | "force_reason"))
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            format!("-p {k}={v}")
        })
        .collect();
    let finish = if state.status == RunStatus::Aborted {
        format!(
            "to do the job again from the start: runbook plan {} {} --live, then runbook run with the same",
            state.runbook,
            params.join(" ")
        )
    } else {
        format!(
            "to finish the job: runbook resume {} (its parameters are pinned: {})",
            state.run_id,
            params.join(" ")
        )
    };
    out.push(finish);
    out
}

pub use crate::progress::harmless;

#[cfg(test)]
mod harmless_tests {
    use super::harmless;

    #[test]
    fn control_sequences_are_shown_escaped_and_our_colours_kept_on_a_terminal() {
        let hostile = "a\u{1b}]0;pwned\u{7}b \u{1b}]8;;http://x\u{1b}\\link \u{1b}[2J c\r\n";
        assert_eq!(
            harmless(hostile, false),
            "a\\x1b]0;pwned\\x07b \\x1b]8;;http://x\\x1b\\link \\x1b[2J c\\x0d\n"
        );
        // SGR colours pass only where this program writes them (a terminal)...
        assert_eq!(
            harmless("\u{1b}[31mred\u{1b}[0m", true),
            "\u{1b}[31mred\u{1b}[0m"
        );
        assert_eq!(
            harmless("\u{1b}[31mred\u{1b}[0m", false),
            "\\x1b[31mred\\x1b[0m"
        );
        // ...and a clear-screen is never a colour.
        assert_eq!(harmless("\u{1b}[2J", true), "\\x1b[2J");
        assert_eq!(
            harmless("plain text\twith tab\n", true),
            "plain text\twith tab\n"
        );
        assert_eq!(harmless("c1 \u{9b}31m", true), "c1 \\x9b31m");
    }
}

#[cfg(test)]
mod step_word_tests {
    use super::*;

    #[test]
    fn a_gate_says_the_approval_to_type() {
        let mut st = RunState {
            run_id: "r-7".into(),
            status: RunStatus::Halted,
            ..RunState::default()
        };
        st.halt = Some(engine::state::HaltInfo {
            step: Some("look".into()),
            item: None,
            kind: Some(HaltKind::ManualGate),
            reason: String::new(),
        });
        assert!(next_command(&st).starts_with("`runbook resume r-7 --approve look`"));
        st.halt.as_mut().unwrap().kind = Some(HaltKind::InDoubt);
        assert!(next_command(&st).contains("--retry-step look"));
    }

    #[test]
    fn a_step_left_running_by_a_stopped_run_reads_interrupted() {
        let s = Style::plain();
        assert_eq!(step_word(StepStatus::Running, false, s), "running");
        assert_eq!(step_word(StepStatus::Running, true, s), "interrupted");
        assert_eq!(step_word(StepStatus::Succeeded, true, s), "done");
    }
}
