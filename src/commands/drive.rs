//! What `run` and `resume` share: the services a drive needs from the terminal, and
//! how a drive's end is reported.

use std::sync::Arc;
use std::time::Instant;

use engine::executor::Outcome;
use engine::id::RunId;
use engine::journal::Journal;
use engine::redact::Redactor;
use engine::report::{Interrupt, Observer, Prompt};
use engine::runner::Services;
use serde_json::json;

use crate::config::Config;
use crate::exit::{failed, from_run_error, CliResult, Code};
use crate::output::run_text;
use crate::progress::{StderrObserver, Style, TerminalPrompt};

/// The terminal's side of a drive: progress on stderr, a prompt when there is a
/// terminal, Ctrl-C as a clean interrupt (twice: at once).
pub fn services(config: &Config, redactor: &Redactor) -> Services {
    let interrupt = Interrupt::new();
    let on_signal = interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupt: finishing the current step cleanly (Ctrl-C again to stop at once; the journal stays consistent)");
            on_signal.trigger();
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopped at once: `runbook resume` will check the step in progress");
                std::process::exit(130);
            }
        }
    });
    let observer: Arc<dyn Observer> = Arc::new(StderrObserver::new(config.quiet, redactor.clone()));
    let prompt: Option<Arc<dyn Prompt>> =
        TerminalPrompt::available().then(|| Arc::new(TerminalPrompt) as Arc<dyn Prompt>);
    Services {
        registry: Arc::clone(&config.registry),
        observer,
        prompt,
        interrupt,
    }
}

/// The end of `run` and `resume`: a summary on stderr, the result on stdout.
pub fn finish(
    config: &Config,
    journal: &Journal,
    run_id: RunId,
    outcome: &Outcome,
    started: Instant,
    json_out: bool,
) -> CliResult<Code> {
    let state = engine::runner::run_state(journal, run_id).map_err(from_run_error)?;
    if !config.quiet {
        let order: Vec<String> = pinned_order(journal, run_id);
        eprintln!();
        eprint!("{}", run_text(&state, &order, Style::stderr(), false));
        eprintln!(
            "this invocation took {}",
            crate::progress::secs(started.elapsed())
        );
    }
    if json_out {
        let obj = json!({
            "run_id": run_id.to_string(),
            "runbook": state.runbook,
            "status": outcome.status.as_str(),
            "halted_at": outcome.halted_at,
            "reason": outcome.reason,
        });
        println!("{}", serde_json::to_string(&obj).map_err(failed)?);
    } else {
        println!("{run_id} {}", outcome.status.as_str());
    }
    Ok(Code::of_status(outcome.status))
}

/// Step ids in runbook order, from the run's pinned text.
pub fn pinned_order(journal: &Journal, run_id: RunId) -> Vec<String> {
    let Ok((source, _)) = engine::runner::pinned_source(journal, run_id) else {
        return Vec::new();
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&source).unwrap_or_default();
    doc.get("steps")
        .and_then(|s| s.as_sequence())
        .map(|seq| {
            seq.iter()
                .filter_map(|s| s.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
