//! `runbook run`: show what will happen, ask before destructive steps (unless
//! `--yes`), then run it, journaled step by step.

use std::time::Instant;

use engine::redact::Redactor;
use engine::runner::NewRun;

use super::plan::{build, prepare};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::exit::{from_run_error, invalid, CliResult, Code};
use crate::output::plan_text;
use crate::progress::{Style, TerminalPrompt};
use engine::report::Prompt;

pub async fn run(config: &Config, args: &RunArgs) -> CliResult<Code> {
    // --lab: a lab in this process, and (unless --journal) a journal of its own, so
    // that rehearsal runs never hold the locks of real sites.
    let mut lab_dir = None;
    let _lab = if args.lab {
        let dir = tempfile::Builder::new()
            .prefix("runbook-lab-")
            .tempdir()
            .map_err(crate::exit::failed)?;
        let running = lab::start(super::lab::lab_config(dir.path(), &args.lab_options)?)
            .await
            .map_err(crate::exit::failed)?;
        eprintln!(
            "lab started on 127.0.0.1 (environment file {})",
            running.env_file.display()
        );
        lab_dir = Some(dir);
        Some(running)
    } else {
        None
    };
    let lab_config;
    let config = match (&_lab, lab_dir.as_ref()) {
        (Some(running), Some(_)) => {
            lab_config = config.for_lab(&running.env_file)?;
            &lab_config
        }
        _ => config,
    };
    let p = prepare(config, &args.runbook, &args.params.params)?;
    let plan = build(config, &p, false).await?;
    let redactor = Redactor::new(p.secrets.clone());
    if args.dry_run {
        print!("{}", redactor.text(&plan_text(&plan, Style::stdout())));
        return Ok(Code::Ok);
    }
    if !config.quiet {
        eprint!("{}", redactor.text(&plan_text(&plan, Style::stderr())));
        eprintln!();
    }
    let destructive: Vec<&str> = plan
        .destructive_steps()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    if !destructive.is_empty() && !args.yes {
        if !TerminalPrompt::available() {
            return Err(invalid(anyhow::anyhow!(
                "runbook `{}` has destructive steps ({}); read the plan (`runbook plan {}`) and re-run with --yes",
                plan.runbook,
                destructive.join(", "),
                args.runbook
            )));
        }
        if !TerminalPrompt.confirm(&format!(
            "Run `{}` with its destructive steps ({})?",
            plan.runbook,
            destructive.join(", ")
        )) {
            eprintln!("not started: nothing was done");
            return Ok(Code::Invalid);
        }
    }
    let journal = config.open_journal()?;
    let services = super::drive::services(config, &redactor);
    let started = Instant::now();
    let result = engine::runner::start(
        journal.clone(),
        &services,
        NewRun {
            runbook: p.runbook,
            env: p.env,
            params: p.params,
            secrets: p.secrets,
        },
    )
    .await;
    let (run_id, outcome) = result.map_err(from_run_error)?;
    super::drive::finish(config, &journal, run_id, &outcome, started, args.json)
}
