//! `runbook journal copy`: move a sled journal's history into PostgreSQL, when a team
//! outgrows one laptop. Idempotent: a run already in the target (same id) is left as it
//! is, so copying twice adds nothing. Site locks are not copied: a run in progress is
//! resumed from the new journal, which takes its sites then.

use std::sync::Arc;

use engine::journal::Journal;

use crate::cli::CopyArgs;
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
