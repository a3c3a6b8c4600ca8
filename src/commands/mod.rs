//! One module per verb. Each takes its parsed arguments and the shared config and
//! returns the exit code.

mod abort;
mod actions;
#[cfg(feature = "bench")]
mod bench;
mod check;
mod context;
mod drive;
mod env;
mod history;
mod journal;
mod lab;
mod list;
mod metrics;
mod plan;
mod readiness;
mod report;
mod respond;
mod resume;
mod run;
mod serve;
mod show;
mod status;
mod validate;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::{failed, CliResult, Code};

pub fn run(cli: Cli) -> CliResult<Code> {
    init_tracing(cli.global.verbose, cli.global.quiet);
    // Before the settings: a context that no longer reads can still be changed.
    let command = match cli.command {
        Command::Context(c) => return context::run(&cli.global, &c),
        other => other,
    };
    let config = Config::from_global(&cli.global)?;
    match command {
        Command::List(a) => list::run(&config, &a),
        Command::Actions(a) => actions::run(&config, &a),
        Command::Context(c) => context::run(&cli.global, &c),
        Command::Show(a) => show::run(&config, &a),
        Command::Validate(a) => validate::run(&config, &a),
        Command::Plan(a) => block_on(plan::run(&config, &a)),
        Command::Run(a) => block_on(run::run(&config, &a)),
        Command::Resume(a) => block_on(resume::run(&config, &a)),
        Command::Status(a) => block_on(status::run(&config, &a)),
        Command::History(a) => history::run(&config, &a),
        Command::Abort(a) => abort::run(&config, &a),
        Command::Lab(a) => block_on(lab::run(&config, &a)),
        Command::Check(a) => match a.watch {
            Some(addr) => block_on(metrics::watch(config, addr, a.readiness_every)),
            None => block_on(check::run(&config, &a)),
        },
        #[cfg(feature = "bench")]
        Command::Bench(a) => block_on(bench::run(&config, &a)),
        #[cfg(not(feature = "bench"))]
        Command::Bench(_) => Err(crate::exit::invalid(anyhow::anyhow!(
            "this runbook was built without its benchmark harness, which stays out of the product binary: \
             build it with `cargo build --release --features bench`, then `./target/release/runbook bench`"
        ))),
        Command::Journal(crate::cli::JournalCommand::Copy(a)) => journal::copy(&config, &a),
        Command::Journal(crate::cli::JournalCommand::Verify(a)) => journal::verify(&config, &a),
        Command::Journal(crate::cli::JournalCommand::Export(a)) => journal::export(&config, &a),
        Command::Env(crate::cli::EnvCommand::Check(a)) => block_on(env::check(&config, &a)),
        Command::Completion(a) => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "runbook", &mut script);
            print!("{}", String::from_utf8_lossy(&script));
            Ok(Code::Ok)
        }
        Command::Report(a) => report::run(&config, &a),
        Command::Serve(a) => block_on(serve::run(config, &cli.global, &a)),
        Command::Respond(a) => block_on(respond::run(config, &cli.global, &a)),
    }
}

fn block_on<F: std::future::Future<Output = CliResult<Code>>>(f: F) -> CliResult<Code> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(failed)?;
    rt.block_on(f)
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNBOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| MaskedStderr)
        // Colours only on a terminal: never escapes in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// stderr for log lines, with every secret the process learned masked; a closed or
/// full stderr is not an error worth dying for.
struct MaskedStderr;

impl std::io::Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = engine::redact::known_text(&String::from_utf8_lossy(buf));
        let _ = std::io::stderr().write_all(text.as_bytes());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Parse `-p name=value` pairs.
pub fn param_pairs(raw: &[String]) -> CliResult<Vec<(String, String)>> {
    raw.iter()
        .map(|p| engine::params::split_assignment(p).map_err(crate::exit::invalid))
        .collect()
}

/// Parse a run id argument.
pub fn run_id(text: &str) -> CliResult<engine::id::RunId> {
    text.parse().map_err(crate::exit::invalid)
}
