//! Exit codes (documented in docs/cli.md) and the error type of the CLI edge.

use std::process::ExitCode;

use engine::state::RunStatus;

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The run completed (or the verb succeeded).
    Ok = 0,
    /// The run failed: a step failed after its retries. Also internal errors.
    Failed = 1,
    /// Invalid input: usage, runbook, parameters, environment file, unknown run.
    Invalid = 2,
    /// The run halted and waits for the operator: a precondition not met, a manual
    /// gate, a step in doubt, or Ctrl-C.
    Halted = 3,
    /// The run was aborted.
    Aborted = 4,
    /// Refused: a site is held by another run, or the journal is in use.
    Busy = 5,
    /// `check`: the deployment is degraded (a runbook is recommended).
    Degraded = 6,
    /// `check`: the deployment cannot be read.
    Unreachable = 7,
    /// A safety guard refused the run before any effect: nothing was done.
    Refused = 8,
    /// `check`: the secondary serves and the primary is back and in sync (a planned
    /// state after a switchover: nobody needs paging).
    OnSecondary = 9,
    /// The journal cannot be reached or written: its database is unreachable, or its
    /// disk is full. The run stopped before any further effect; resume it once fixed.
    JournalUnavailable = 10,
    /// `status`: the run is still running (or stopped without a last word: its driver
    /// died; `resume` settles it).
    Running = 11,
    /// `journal verify`: the journal's history was edited, removed or reordered.
    Tampered = 12,
}

impl From<Code> for ExitCode {
    fn from(c: Code) -> ExitCode {
        ExitCode::from(c as u8)
    }
}

impl Code {
    /// Every exit code, in order.
    pub const ALL: [Code; 13] = [
        Code::Ok,
        Code::Failed,
        Code::Invalid,
        Code::Halted,
        Code::Aborted,
        Code::Busy,
        Code::Degraded,
        Code::Unreachable,
        Code::Refused,
        Code::OnSecondary,
        Code::JournalUnavailable,
        Code::Running,
        Code::Tampered,
    ];

    /// What the code means, in a line (`--help` lists them).
    pub fn meaning(self) -> &'static str {
        match self {
            Code::Ok => "completed (or the verb succeeded)",
            Code::Failed => "failed: a step failed after its retries, a damaged journal entry, an internal error",
            Code::Invalid => "invalid input (usage, runbook, parameters, environment file, unknown run); check: misconfigured",
            Code::Halted => "halted, waiting for the operator (a precondition, a postcondition, a gate, a step in doubt, Ctrl-C)",
            Code::Aborted => "aborted",
            Code::Busy => "refused: a site or the journal is held by another run or process, or this process was fenced",
            Code::Degraded => "check: degraded (the verdict names the runbook to run)",
            Code::Unreachable => "check: unreachable (neither site answers)",
            Code::Refused => "refused by a safety guard before any effect (nothing was done); plan --live: it would be",
            Code::OnSecondary => "check: a planned state (the secondary serves, the primary back and in sync; or a site out of traffic on purpose)",
            Code::JournalUnavailable => "the journal cannot be reached or written (its database is unreachable, its disk is full): stopped before any further effect",
            Code::Running => "status: the run is still running (or its driver died mid-step: resume settles it)",
            Code::Tampered => "journal verify: an event was edited, removed or reordered (the hash chain is broken)",
        }
    }

    /// The exit codes as `--help` prints them.
    pub fn help() -> String {
        let mut out = String::from("Exit codes:\n");
        for c in Code::ALL {
            out.push_str(&format!("  {:>2}  {}\n", c as u8, c.meaning()));
        }
        out
    }

    pub fn of_status(status: RunStatus) -> Code {
        match status {
            RunStatus::Completed => Code::Ok,
            RunStatus::Failed => Code::Failed,
            RunStatus::Halted | RunStatus::Running => Code::Halted,
            RunStatus::Aborted => Code::Aborted,
            RunStatus::Refused => Code::Refused,
        }
    }
}

/// An error with the exit code it means.
#[derive(Debug)]
pub struct CliError {
    pub code: Code,
    pub error: anyhow::Error,
}

pub type CliResult<T = Code> = Result<T, CliError>;

pub fn invalid(e: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: Code::Invalid,
        error: e.into(),
    }
}

pub fn failed(e: impl Into<anyhow::Error>) -> CliError {
    CliError {
        code: Code::Failed,
        error: e.into(),
    }
}

/// Classify engine errors: bad input, refusal, or failure.
pub fn from_run_error(e: engine::runner::RunError) -> CliError {
    use engine::journal::JournalError;
    use engine::runner::RunError;
    let code = match &e {
        RunError::Journal(
            JournalError::Busy { .. }
            | JournalError::SiteHeld { .. }
            | JournalError::LeaseHeld { .. }
            | JournalError::Fenced { .. }
            | JournalError::Conflict { .. },
        ) => Code::Busy,
        RunError::Journal(JournalError::Unreachable { .. } | JournalError::DiskFull { .. }) => {
            Code::JournalUnavailable
        }
        RunError::Journal(
            JournalError::UnknownRun(_)
            | JournalError::BadUrl { .. }
            | JournalError::UnsupportedLocation { .. },
        ) => Code::Invalid,
        RunError::Journal(_) | RunError::Damaged { .. } => Code::Failed,
        RunError::Plan(_)
        | RunError::Load(_)
        | RunError::Resume(_)
        | RunError::Params(_)
        | RunError::Unbound(_) => Code::Invalid,
    };
    CliError {
        code,
        error: e.into(),
    }
}

pub fn from_journal_error(e: engine::journal::JournalError) -> CliError {
    from_run_error(engine::runner::RunError::Journal(e))
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_code_is_listed_once_in_order() {
        let numbers: Vec<u8> = Code::ALL.iter().map(|c| *c as u8).collect();
        assert_eq!(numbers, (0..=12).collect::<Vec<u8>>());
        let help = Code::help();
        for c in Code::ALL {
            let line = format!("  {:>2}  {}", c as u8, c.meaning());
            assert!(help.contains(&line), "{line}");
        }
    }
}
