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
        let _ = write!(out.lock(), "{}", crate::output::harmless(&text, out.is_terminal()));
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
mod exit;
mod output;
mod packs;
mod progress;
mod review;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    #[cfg(feature = "failpoints")]
    let _failpoints = engine::failpoint::setup();
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            e.code.into()
        }
    }
}
