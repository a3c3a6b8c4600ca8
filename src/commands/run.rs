//! `runbook run`: show what will happen, ask before destructive steps (unless
//! `--yes`), then run it, journaled step by step.

use std::time::Instant;

use engine::redact::Redactor;
use engine::runner::NewRun;

use super::plan::{build, prepare};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::exit::{from_run_error, invalid, CliResult, Code};
use crate::output::{plan_brief, plan_text};
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
        let running = lab::start(super::lab::lab_config(
            dir.path(),
            &args.lab_options,
            crate::packs::of_runbook(&args.runbook).unwrap_or(config.pack),
        )?)
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
    if let Some(reason) = &args.refused {
        return refused(config, args, reason);
    }
    let p = prepare(config, &args.runbook, &args.params.params, !args.dry_run).await?;
    if !args.dry_run {
        super::plan::configuration_first(config, &p).await?;
    }
    let plan = build(config, &p, false).await?;
    let redactor = Redactor::new(p.secrets.clone());
    if args.dry_run {
        print!(
            "{}",
            redactor.text(&plan_text(&plan, Style::stdout(), config.in_use()))
        );
        return Ok(Code::Ok);
    }
    if !config.quiet {
        let show = if config.verbose > 0 {
            plan_text
        } else {
            plan_brief
        };
        eprint!(
            "{}",
            redactor.text(&show(&plan, Style::stderr(), config.in_use()))
        );
        eprintln!();
    }
    if !args.yes && !args.lab {
        if let Some(code) = confirm(config, &p, &plan, &args.runbook).await? {
            return Ok(code);
        }
    } else if args.lab && !plan.impacts().is_empty() {
        eprintln!("--lab: the deployment is simulated in this process, so nothing real moves and nothing is asked");
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
            program: Some(crate::cli::PROGRAM.to_string()),
            traffic: plan.traffic(&config.registry),
        },
    )
    .await;
    let (run_id, outcome) = result.map_err(from_run_error)?;
    super::drive::finish(config, &journal, run_id, &outcome, started, args.json)
}

/// What the run moves or removes, grouped as the question names it.
pub fn impact_lines(plan: &engine::plan::Plan) -> Vec<String> {
    plan.impacts()
        .iter()
        .map(|i| format!("{}: {}", i.kind.as_str().to_uppercase(), i.text))
        .collect()
}

/// Ask once, after the guards were judged live, naming every effect that moves
/// traffic or the writer or removes capacity or data; removing data asks for the site's
/// name. `Some(code)`: stop with it (nothing was done); `None`: go on. A run its guards
/// would refuse is not asked about: it goes on to be refused, journaled.
async fn confirm(
    config: &Config,
    p: &super::plan::Prepared,
    plan: &engine::plan::Plan,
    name: &str,
) -> CliResult<Option<Code>> {
    let lines = impact_lines(plan);
    let destructive: Vec<&str> = plan
        .destructive_steps()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    if lines.is_empty() && destructive.is_empty() {
        return Ok(None);
    }
    if !TerminalPrompt::available() {
        let what = if lines.is_empty() {
            format!("has destructive steps ({})", destructive.join(", "))
        } else {
            lines.join("; ")
        };
        return Err(invalid(anyhow::anyhow!(
            "runbook `{}` {what}; with no terminal to ask, it runs only with --yes (read the plan first: `runbook plan {name} --live`). Nothing was done",
            plan.runbook
        )));
    }
    let live = build(config, p, true).await?;
    if !live.would_refuse().is_empty() {
        eprintln!("its guards refuse this run as things stand: nothing to confirm");
        return Ok(None);
    }
    let mut question = match config.context_line() {
        Some(c) => format!("In {c}, `{}` will:", plan.runbook),
        None => format!("`{}` will:", plan.runbook),
    };
    for l in &lines {
        question.push_str(&format!("\n  - {l}"));
    }
    if lines.is_empty() {
        question.push_str(&format!(
            "\n  - run its destructive steps ({})",
            destructive.join(", ")
        ));
    }
    let wipes: Vec<String> = plan
        .impacts()
        .iter()
        .filter(|i| i.kind == engine::action::ImpactKind::RemovesData)
        .filter_map(|i| i.site.clone())
        .collect();
    let yes = match wipes.first() {
        Some(site) => TerminalPrompt.type_to_confirm(&question, site),
        None => TerminalPrompt.confirm(&format!("{question}\nGo on?")),
    };
    if yes {
        Ok(None)
    } else {
        eprintln!("not started: nothing was done");
        Ok(Some(Code::Invalid))
    }
}

/// `--refused`: the run journaled as refused, nothing read or done; its parameters as
/// given, unchecked (they are what could not be acted on), secrets never among them.
fn refused(config: &Config, args: &RunArgs, reason: &str) -> CliResult<Code> {
    let runbook = config
        .catalog
        .load(&args.runbook, &config.registry)
        .map_err(invalid)?;
    let mut params = serde_json::Map::new();
    for (k, v) in super::param_pairs(&args.params.params)? {
        if runbook.params.get(&k).is_some_and(|p| p.secret) {
            continue;
        }
        params.insert(k, serde_json::Value::String(v));
    }
    let env = config.environment()?;
    let journal = config.open_journal()?;
    let id = engine::runner::refuse(&journal, &runbook, params, &env, "mappable", reason)
        .map_err(from_run_error)?;
    eprintln!("{id} refused (journaled): {reason}");
    if args.json {
        println!(
            "{}",
            serde_json::json!({"run_id": id.to_string(), "runbook": runbook.name, "status": "refused", "reason": reason})
        );
    }
    Ok(Code::Refused)
}
