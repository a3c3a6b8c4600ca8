//! `runbook abort`: end a run for good and release its site locks. A halted or failed
//! run is aborted at once. A run another process is driving (the sled journal held by
//! it, or its lease still valid on PostgreSQL) is asked to stop: its driver reads the
//! request, stops at its next safe point (the current step finishes or is left in
//! doubt, as with Ctrl-C) and journals the abort with the reason and who asked.

use std::time::{Duration, Instant};

use engine::event::{now_ms, Actor};
use engine::id::RunId;
use engine::journal::JournalError;
use engine::runner::{AbortRequest, RunError};

use crate::cli::AbortArgs;
use crate::config::Config;
use crate::exit::{failed, from_run_error, invalid, CliResult, Code};

pub fn run(config: &Config, args: &AbortArgs) -> CliResult<Code> {
    if args.reason.trim().is_empty() {
        return Err(invalid(anyhow::anyhow!(
            "--reason must say why the run is aborted"
        )));
    }
    let id = super::run_id(&args.run_id)?;
    let request = serde_json::to_string(&AbortRequest {
        reason: args.reason.clone(),
        by: Actor::current(),
        at: now_ms(),
    })
    .map_err(failed)?;
    match config.try_journal() {
        // The sled journal is held by the process driving a run: ask it.
        Some(Err(JournalError::Busy { .. })) => {
            let live = config.live().ok_or_else(|| {
                invalid(anyhow::anyhow!(
                    "this journal has no directory for abort requests"
                ))
            })?;
            live.request_abort(&id.to_string(), &request)
                .map_err(failed)?;
            return wait_for_driver(config, id);
        }
        Some(Err(e)) => return Err(crate::exit::from_journal_error(e)),
        _ => {}
    }
    let journal = config.open_journal()?;
    match engine::runner::abort(journal.clone(), id, &args.reason, &Actor::current()) {
        Ok(state) => {
            println!("{} aborted", state.run_id);
            left_behind(config, &journal, id);
            Ok(Code::Ok)
        }
        // Another process drives it and its lease holds: ask that process.
        Err(RunError::Journal(JournalError::LeaseHeld { .. })) => {
            journal
                .request_abort(id, &request)
                .map_err(crate::exit::from_journal_error)?;
            drop(journal);
            wait_for_driver(config, id)
        }
        Err(e) => Err(from_run_error(e)),
    }
}

/// Wait until the driver has carried the request out (up to 2 minutes).
fn wait_for_driver(config: &Config, id: RunId) -> CliResult<Code> {
    eprintln!("{id} is being driven by another process: asked it to stop at its next safe point and abort (the step in progress finishes or is left in doubt)");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(Ok(journal)) = config.try_journal() {
            if let Ok(state) = engine::runner::run_state(&journal, id) {
                if state.status.is_final() {
                    println!("{id} {}", state.status.as_str());
                    left_behind(config, &journal, id);
                    return Ok(if state.status == engine::state::RunStatus::Aborted {
                        Code::Ok
                    } else {
                        Code::of_status(state.status)
                    });
                }
            }
        }
        if Instant::now() > deadline {
            eprintln!("{id}'s driver has not stopped within 2 minutes: the request stands and is carried out at its next safe point");
            return Ok(Code::Busy);
        }
    }
}

/// What an aborted run left behind, from its journal, and the command that finishes
/// the job.
fn left_behind(_config: &Config, journal: &engine::journal::Journal, id: RunId) {
    let Ok(state) = engine::runner::run_state(journal, id) else {
        return;
    };
    let lines = crate::output::left_behind(&state, &super::drive::pinned_order(journal, id));
    for l in lines {
        eprintln!("{l}");
    }
}
