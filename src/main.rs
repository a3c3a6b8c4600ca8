//! `runbook`: parse the command line, run the verb, map the outcome to an exit code.

mod builtin;
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
