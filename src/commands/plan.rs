//! `runbook plan`: the dry-run preview. Writes nothing: no journal, no calls that
//! change anything (`--live` makes read-only probes).

use std::sync::Arc;

use engine::env::Environment;
use engine::journal::Journal;
use engine::model::Runbook;
use engine::redact::Redactor;

use crate::cli::PlanArgs;
use crate::config::Config;
use crate::exit::{invalid, CliResult, Code};
use crate::output::plan_text;
use crate::progress::Style;

/// A runbook ready to plan or run: loaded, parameters resolved, environment read.
pub struct Prepared {
    pub runbook: Runbook,
    pub env: Environment,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub secrets: Vec<String>,
}

pub fn prepare(config: &Config, name: &str, raw_params: &[String]) -> CliResult<Prepared> {
    let runbook = config
        .catalog
        .load(name, &config.registry)
        .map_err(invalid)?;
    let given = super::param_pairs(raw_params)?;
    // Values recorded by earlier runs (e.g. the health-check path to restore), read
    // from the journal if there is one and it is free; nothing is written.
    let journal = if runbook.params.values().any(|p| p.from_run.is_some())
        && Journal::exists(&config.journal_dir)
    {
        Journal::open(&config.journal_dir).ok()
    } else {
        None
    };
    let notes = std::cell::RefCell::new(Vec::new());
    let (params, secrets) = engine::params::resolve_with(
        &runbook,
        &given,
        |k| std::env::var(k).ok(),
        |from| {
            let (v, run) = engine::runner::recorded_output(journal.as_ref()?, from)
                .ok()
                .flatten()?;
            notes.borrow_mut().push(format!(
                "{v}, recorded by run {run} (step `{}`, output `{}`)",
                from.step, from.output
            ));
            Some(v)
        },
    )
    .map_err(invalid)?;
    drop(journal);
    for n in notes.into_inner() {
        eprintln!("note: using {n}");
    }
    let env = config.environment()?;
    Ok(Prepared {
        runbook,
        env,
        params,
        secrets,
    })
}

pub async fn build(config: &Config, p: &Prepared, live: bool) -> CliResult<engine::plan::Plan> {
    let redactor = Redactor::new(p.secrets.clone());
    engine::plan::plan(
        &p.runbook,
        &config.registry,
        Arc::new(p.env.clone()),
        &p.params,
        &redactor,
        live,
    )
    .await
    .map_err(invalid)
}

pub async fn run(config: &Config, args: &PlanArgs) -> CliResult<Code> {
    let p = prepare(config, &args.runbook, &args.params.params)?;
    let plan = build(config, &p, args.live).await?;
    let redactor = Redactor::new(p.secrets.clone());
    if args.json {
        let text = serde_json::to_string_pretty(&plan).map_err(crate::exit::failed)?;
        println!("{}", redactor.text(&text));
    } else {
        print!("{}", redactor.text(&plan_text(&plan, Style::stdout())));
    }
    Ok(Code::Ok)
}
