//! `runbook resume`: continue a halted or failed run where it stopped, with the
//! runbook text pinned in its journal; optionally retry, skip or approve one step.

use std::time::Instant;

use engine::redact::Redactor;
use engine::resume::Directive;
use engine::runner::ResumeRequest;

use crate::cli::ResumeArgs;
use crate::config::Config;
use crate::exit::{from_run_error, CliResult, Code};

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
            let name = st.origin.trim_start_matches("builtin:");
            let name = match (&st.pack, st.origin.starts_with("builtin:")) {
                (Some(p), true) => format!("{p}/{name}"),
                _ => name.to_string(),
            };
            config.catalog.source(&name).ok()
        })
        .map(|found| found.text);
    let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.clone()));
    let services = super::drive::services(config, &redactor);
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
    super::drive::finish(config, &journal, run_id, &outcome, started, args.json)
}
