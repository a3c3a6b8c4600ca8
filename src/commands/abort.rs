//! `runbook abort`: end a halted or failed run for good and release its site locks.

use crate::cli::AbortArgs;
use crate::config::Config;
use crate::exit::{from_run_error, invalid, CliResult, Code};

pub fn run(config: &Config, args: &AbortArgs) -> CliResult<Code> {
    if args.reason.trim().is_empty() {
        return Err(invalid(anyhow::anyhow!(
            "--reason must say why the run is aborted"
        )));
    }
    let id = super::run_id(&args.run_id)?;
    let journal = config.open_journal()?;
    let state = engine::runner::abort(journal, id, &args.reason).map_err(from_run_error)?;
    println!("{} aborted", state.run_id);
    Ok(Code::Ok)
}
