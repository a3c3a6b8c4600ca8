//! `runbook resume`: continue a halted or failed run where it stopped, with the
//! runbook text pinned in its journal; optionally retry, skip or approve one step.

use std::time::Instant;

use engine::executor::Outcome;
use engine::id::RunId;
use engine::journal::Journal;
use engine::redact::Redactor;
use engine::resume::Directive;
use engine::runner::ResumeRequest;
use serde_json::json;

use crate::cli::ResumeArgs;
use crate::config::Config;
use crate::exit::{failed, from_run_error, CliResult, Code};
use crate::output::run_text;
use crate::progress::Style;

pub async fn run(config: &Config, args: &ResumeArgs) -> CliResult<Code> {
    let id = super::run_id(&args.run_id)?;
    let mut directives = Vec::new();
    if let Some(s) = &args.retry_step {
        directives.push(Directive::Retry(s.clone()));
    }
    if let Some(s) = &args.skip_step {
        directives.push(Directive::Skip {
            step: s.clone(),
            reason: args.reason.clone().unwrap_or_default(),
        });
    }
    if let Some(s) = &args.approve {
        directives.push(Directive::Approve(s.clone()));
    }
    let secrets = super::param_pairs(&args.params.params)?;
    let env = match &config.env_file {
        Some(_) => Some(config.environment()?),
        None => None,
    };
    let journal = config.open_journal()?;
    // The runbook's current text, if it can still be found, to say whether it changed.
    let current_source = engine::runner::run_state(&journal, id)
        .ok()
        .and_then(|st| {
            config
                .catalog
                .source(st.origin.trim_start_matches("builtin:"))
                .ok()
        })
        .map(|(text, _)| text);
    let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.clone()));
    let services = super::run::services(config, &redactor);
    let started = Instant::now();
    let (run_id, outcome, _notes) = engine::runner::resume(
        journal.clone(),
        &services,
        ResumeRequest {
            run: Some(id),
            directives,
            env,
            secrets,
            current_source,
        },
    )
    .await
    .map_err(from_run_error)?;
    finish(config, &journal, run_id, &outcome, started, args.json)
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
