//! `runbook plan`: the dry-run preview. Writes nothing: no journal, no calls that
//! change anything (`--live` makes read-only probes).

use std::sync::Arc;

use engine::env::Environment;
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
    /// The journal's facts about the sites (`history`), for guards.
    pub history: serde_json::Value,
}

pub fn prepare(config: &Config, name: &str, raw_params: &[String]) -> CliResult<Prepared> {
    let runbook = config
        .catalog
        .load(name, &config.registry)
        .map_err(invalid)?;
    let given = super::param_pairs(raw_params)?;
    // Values recorded by earlier runs (e.g. the health-check path to restore) and the
    // facts guards read (`history`), from the journal if there is one; nothing is
    // written. A journal that stays busy is an error, never a silent fallback.
    let needs_journal =
        runbook.uses_history || runbook.params.values().any(|p| p.from_run.is_some());
    let journal = if needs_journal && config.journal.exists() {
        Some(config.open_journal()?)
    } else {
        None
    };
    let env = config.environment()?;
    let history = match &journal {
        Some(j) if runbook.uses_history => engine::runner::history(
            j,
            None,
            &env,
            config.registry.history(runbook.pack.as_deref()),
        )
        .map_err(crate::exit::from_run_error)?,
        _ => config.registry.history(runbook.pack.as_deref()).none(),
    };
    let notes = std::cell::RefCell::new(Vec::new());
    let failure = std::cell::RefCell::new(None);
    let (params, secrets) = engine::params::resolve_with(
        &runbook,
        &given,
        |k| std::env::var(k).ok(),
        |from, so_far| {
            let (v, run) = match engine::runner::recorded_output(journal.as_ref()?, from, so_far) {
                Ok(found) => found?,
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    return None;
                }
            };
            notes.borrow_mut().push(format!(
                "{v}, recorded by run {run} (step `{}`, output `{}`)",
                from.step, from.output
            ));
            Some(v)
        },
    )
    .map_err(invalid)?;
    if let Some(e) = failure.into_inner() {
        return Err(crate::exit::from_run_error(e));
    }
    drop(journal);
    for n in notes.into_inner() {
        eprintln!("note: using {n}");
    }
    Ok(Prepared {
        runbook,
        env,
        params,
        secrets,
        history,
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
        &p.history,
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
        print!(
            "{}",
            redactor.text(&plan_text(
                &plan,
                Style::stdout(),
                (config.pack.name, config.pack_chosen)
            ))
        );
    }
    if !args.live {
        return Ok(Code::Ok);
    }
    // The verdict, for a person and a script: 0 would run, 8 would be refused.
    let refusing = plan.would_refuse();
    if refusing.is_empty() {
        if !args.json {
            println!(
                "\nverdict: would run (every guard holds now{})",
                if plan.forced.is_some() {
                    ", or is overridden: FORCED"
                } else {
                    ""
                }
            );
        }
        Ok(Code::Ok)
    } else {
        let ids: Vec<&str> = refusing.iter().map(|g| g.id.as_str()).collect();
        if !args.json {
            println!("\nverdict: WOULD BE REFUSED: {}", ids.join(", "));
            for g in &refusing {
                if let Some(now) = &g.now {
                    println!("  {}: {}", g.id, redactor.text(now));
                }
            }
        }
        Ok(Code::Refused)
    }
}
