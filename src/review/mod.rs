//! A run as people review it (`engine::review`), read from the journal in use and
//! rendered as Markdown (`md.rs`), one self-contained HTML page with a Gantt chart
//! (`html.rs`), or JSON. `runbook report` writes one; `runbook serve` shows them live.

pub mod html;
pub mod md;

use std::collections::BTreeMap;

use engine::id::RunId;
use engine::journal::{Journal, JournalError};
use engine::review::Review;

use crate::config::Config;
use crate::exit::{from_journal_error, from_run_error, invalid, CliResult};

/// Step ids in order and their titles, from the run's pinned runbook text.
fn pinned_steps(journal: &Journal, run: RunId) -> (Vec<String>, BTreeMap<String, String>) {
    let Ok((source, _)) = engine::runner::pinned_source(journal, run) else {
        return (Vec::new(), BTreeMap::new());
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&source).unwrap_or_default();
    let mut order = Vec::new();
    let mut titles = BTreeMap::new();
    for s in doc
        .get("steps")
        .and_then(|s| s.as_sequence())
        .into_iter()
        .flatten()
    {
        if let Some(id) = s.get("id").and_then(|i| i.as_str()) {
            order.push(id.to_string());
            if let Some(t) = s.get("title").and_then(|t| t.as_str()) {
                titles.insert(id.to_string(), t.to_string());
            }
        }
    }
    (order, titles)
}

/// The review of one run from an open journal.
///
/// # Errors
/// Unknown run, or an unreadable journal.
pub fn from_journal(journal: &Journal, run: RunId) -> CliResult<Review> {
    let events = journal.events(run).map_err(from_journal_error)?;
    let mut state = engine::state::RunState::fold(&run.to_string(), &events);
    // What a running step waits for is not journaled: the driver publishes it.
    if state.status == engine::state::RunStatus::Running {
        if let Some(live) = journal.live_state(run) {
            state.waiting = live.waiting;
        }
    }
    let (order, titles) = pinned_steps(journal, run);
    Ok(engine::review::build_at(
        &state,
        &events,
        &order,
        &titles,
        Some(now_ms()),
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A database journal opened once for a long-lived reader (`serve`): every page and
/// stream reads through its one connection instead of opening its own.
static SHARED: std::sync::OnceLock<engine::journal::Journal> = std::sync::OnceLock::new();

/// Read every review through `journal` from now on (a database journal only: a sled
/// journal must be let go between reads, or no run could start).
pub fn share(journal: engine::journal::Journal) {
    let _ = SHARED.set(journal);
}

/// The journal in use: the shared one, else opened now.
pub fn journal(config: &Config) -> Option<Result<engine::journal::Journal, JournalError>> {
    match SHARED.get() {
        Some(j) => Some(Ok(j.clone())),
        None => config.try_journal(),
    }
}

/// The review of run `run` from the journal in use; a sled journal held by a running
/// process gives its live snapshot (no timeline until the run lets go of it).
///
/// # Errors
/// No journal, unknown run, or an unreadable journal.
pub fn load(config: &Config, run: RunId) -> CliResult<Review> {
    let Some(opened) = journal(config) else {
        return Err(invalid(anyhow::anyhow!(
            "no runs yet in `{}`",
            config.journal
        )));
    };
    match opened {
        Ok(journal) => from_journal(&journal, run),
        Err(JournalError::Busy { holders, dir }) => {
            let state = config
                .live()
                .and_then(|l| l.read(&run.to_string()))
                .ok_or_else(|| from_journal_error(JournalError::Busy { holders, dir }))?;
            // The driver publishes its runbook's steps with the snapshot: the pending
            // ones are shown too.
            let mut order = state.order.clone();
            order.extend(
                state
                    .steps
                    .keys()
                    .filter(|k| !state.order.contains(k))
                    .cloned(),
            );
            Ok(engine::review::build_at(
                &state,
                &[],
                &order,
                &state.titles,
                Some(now_ms()),
            ))
        }
        Err(e) => Err(from_run_error(engine::runner::RunError::Journal(e))),
    }
}

/// UTC, to the millisecond.
pub fn utc(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// `+1m 3.2s` from the start.
pub fn offset(ms: u64) -> String {
    format!("+{}", duration(ms))
}

/// A duration as people read it: `850 ms`, `3.2 s`, `2 min 5 s`.
pub fn duration(ms: u64) -> String {
    engine::review::fmt_ms(ms)
}
