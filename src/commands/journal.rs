//! `runbook journal copy`: move a sled journal's history into PostgreSQL, when a team
//! outgrows one laptop. Idempotent: a run already in the target (same id) is left as it
//! is, so copying twice adds nothing. Site locks are not copied: a run in progress is
//! resumed from the new journal, which takes its sites then.
//!
//! `runbook journal verify` walks every run's hash chain (`engine::chain`) and names
//! the run and event where an edit, a removal or a reordering shows; `runbook journal
//! export` writes the events as JSON lines with their hashes, for a SIEM.

use std::sync::Arc;

use engine::journal::Journal;

use crate::cli::{CopyArgs, ExportArgs, VerifyArgs};
use crate::config::{locate, Config};
use crate::exit::{from_journal_error, invalid, CliResult, Code};

pub fn copy(config: &Config, args: &CopyArgs) -> CliResult<Code> {
    let (to, Some(db)) = locate(&args.to)? else {
        return Err(invalid(anyhow::anyhow!(
            "--to must be a postgres:// URL, not `{}`",
            args.to
        )));
    };
    if !Journal::exists(&args.from) {
        return Err(invalid(anyhow::anyhow!(
            "no journal in `{}`",
            args.from.display()
        )));
    }
    let from = Journal::open(&args.from).map_err(from_journal_error)?;
    let target = Journal::over(
        Arc::new(pgstore::PgStore::open(&db, config.lease_ttl).map_err(from_journal_error)?),
        to.clone(),
    );
    let there: std::collections::BTreeSet<_> = target
        .runs()
        .map_err(from_journal_error)?
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    let mut runs = Vec::new();
    let mut events = 0;
    let mut skipped = 0;
    for r in from.runs().map_err(from_journal_error)? {
        if there.contains(&r.run_id) {
            // The same run (same first event) is already there; a different run under
            // the same id is another journal's, which ids cannot tell apart.
            let here = from.events(r.run_id).map_err(from_journal_error)?;
            let theirs = target.events(r.run_id).map_err(from_journal_error)?;
            if here.first() != theirs.first() {
                return Err(invalid(anyhow::anyhow!(
                    "run {} in `{}` is not the run {} already in {to}: journals from two places cannot be merged by run id; copy into an empty database",
                    r.run_id,
                    args.from.display(),
                    r.run_id
                )));
            }
            skipped += 1;
            continue;
        }
        let ev = from.events(r.run_id).map_err(from_journal_error)?;
        events += ev.len();
        runs.push((r.run_id, ev));
    }
    target.import(&runs).map_err(from_journal_error)?;
    println!(
        "copied {} run{} ({events} events) from {} to {to}; {skipped} already there",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        args.from.display(),
    );
    Ok(Code::Ok)
}

/// The runs to walk: one, or every run in the index.
fn runs_of(
    journal: &Journal,
    only: Option<&str>,
) -> CliResult<Vec<(engine::id::RunId, Option<engine::journal::RunSummary>)>> {
    let index = journal.runs().map_err(from_journal_error)?;
    Ok(match only {
        Some(text) => {
            let id = super::run_id(text)?;
            vec![(id, index.into_iter().find(|r| r.run_id == id))]
        }
        None => index.into_iter().map(|r| (r.run_id, Some(r))).collect(),
    })
}

pub fn verify(config: &Config, args: &VerifyArgs) -> CliResult<Code> {
    let journal = config.open_journal()?;
    let mut report = Vec::new();
    let (mut events, mut broken) = (0usize, 0usize);
    for (run, summary) in runs_of(&journal, args.run.as_deref())? {
        let raw = match journal.raw_events(run) {
            Ok(raw) => raw,
            Err(engine::journal::JournalError::UnknownRun(_)) if summary.is_some() => {
                broken += 1;
                report.push(serde_json::json!({"run": run.to_string(), "events": 0,
                    "breaks": [{"seq": 0, "what": "the run index lists it, but every event of it is gone (removed)"}]}));
                continue;
            }
            Err(e) => return Err(from_journal_error(e)),
        };
        events += raw.len();
        let breaks = engine::chain::verify(&raw, summary.as_ref().and_then(|s| s.head.as_deref()));
        broken += usize::from(!breaks.is_empty());
        report.push(
            serde_json::json!({"run": run.to_string(), "events": raw.len(), "breaks": breaks}),
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"format": 1, "journal": journal.location().to_string(),
                "runs": report.len(), "events": events, "broken": broken, "report": report})
        );
    } else {
        for r in &report {
            for b in r["breaks"].as_array().into_iter().flatten() {
                println!(
                    "run {} event {}: {}",
                    r["run"].as_str().unwrap_or_default(),
                    b["seq"],
                    b["what"].as_str().unwrap_or_default()
                );
            }
        }
        println!(
            "{}: {} run{}, {events} events; {}",
            journal.location(),
            report.len(),
            if report.len() == 1 { "" } else { "s" },
            match broken {
                0 => "every hash chain is intact".to_string(),
                n => format!(
                    "{n} run{} broken (edited, removed or reordered events)",
                    if n == 1 { "" } else { "s" }
                ),
            }
        );
    }
    Ok(if broken == 0 {
        Code::Ok
    } else {
        Code::Tampered
    })
}

pub fn export(config: &Config, args: &ExportArgs) -> CliResult<Code> {
    use std::io::Write;
    let journal = config.open_journal()?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| invalid(anyhow::anyhow!("cannot write `{}`: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut lines = 0usize;
    for (run, _) in runs_of(&journal, args.run.as_deref())? {
        for (seq, text) in journal.raw_events(run).map_err(from_journal_error)? {
            let event: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
            let line = serde_json::json!({"run": run.to_string(), "seq": seq,
                "hash": engine::chain::hash(&text), "event": event});
            if let Err(e) = writeln!(out, "{line}") {
                return written(e);
            }
            lines += 1;
        }
    }
    if let Err(e) = out.flush() {
        return written(e);
    }
    if let Some(path) = &args.output {
        eprintln!("wrote {lines} events to {}", path.display());
    }
    Ok(Code::Ok)
}

/// A write of the export that failed: a reader that went away (`| head`) ends it
/// quietly; anything else (a full disk) is an error, never a silent exit 0.
fn written(e: std::io::Error) -> CliResult<Code> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(Code::Ok);
    }
    Err(crate::exit::failed(anyhow::anyhow!(
        "cannot write the export: {e}"
    )))
}
