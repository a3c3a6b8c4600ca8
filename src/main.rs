//! `runbook`: parse the command line, run the verb, map the outcome to an exit code.

// Every print in this crate goes through these. A closed or full stdout/stderr
// (`| head`, `> /dev/full`) never panics a verb, least of all in the middle of a run:
// what cannot be written is dropped, and the run ends with its own exit code. And text
// from servers, parameters and runbooks never reaches a terminal raw: control
// characters are shown escaped (`output::harmless`).
macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::{IsTerminal as _, Write as _};
        let text = format!($($t)*);
        let out = std::io::stdout();
        if let Err(e) = write!(out.lock(), "{}", crate::output::harmless(&text, out.is_terminal())) {
            crate::output_lost(e);
        }
    }};
}
macro_rules! println {
    () => {
        print!("\n")
    };
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        print!("{text}\n")
    }};
}
macro_rules! eprint {
    ($($t:tt)*) => {{
        use std::io::{IsTerminal as _, Write as _};
        let text = format!($($t)*);
        let err = std::io::stderr();
        let _ = write!(err.lock(), "{}", crate::output::harmless(&text, err.is_terminal()));
    }};
}
macro_rules! eprintln {
    () => {
        eprint!("\n")
    };
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        eprint!("{text}\n")
    }};
}

mod cli;
mod commands;
mod config;
mod context;
mod exit;
mod output;
mod packs;
mod progress;
mod review;

use std::process::ExitCode;

use clap::Parser;

/// Why stdout could not be written, when it could not (a reader that went away,
/// `| head`, is not a failure and is not recorded).
static OUTPUT_LOST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn output_lost(e: std::io::Error) {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        let mut lost = OUTPUT_LOST.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(|| e.to_string());
    }
}

fn main() -> ExitCode {
    #[cfg(feature = "failpoints")]
    let _failpoints = engine::failpoint::setup();
    let args = cli::Cli::parse();
    // A verb that only shows something has failed when what it shows was lost (a full
    // disk); a run or resume ends with its own exit code whatever its output met.
    let drives = matches!(
        args.command,
        cli::Command::Run(_) | cli::Command::Resume(_) | cli::Command::Abort(_)
    );
    let code = match commands::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            return e.code.into();
        }
    };
    let lost = OUTPUT_LOST.lock().unwrap_or_else(|p| p.into_inner()).take();
    match lost {
        Some(why) if !drives && code == exit::Code::Ok => {
            eprintln!("error: the output could not be written: {why}");
            exit::Code::Failed.into()
        }
        _ => code.into(),
    }
}
