//! `runbook plan`: the dry-run preview. Writes nothing: no journal, no calls that
//! change anything (`--live` makes read-only probes).

use std::sync::Arc;

use engine::redact::Redactor;

use crate::cli::PlanArgs;
use crate::config::Config;
use crate::exit::{invalid, CliResult, Code};
use crate::output::plan_text;
use crate::progress::Style;

pub use engine::runner::Prepared;

/// Load `name` and prepare it (the engine's one-run pipeline): the journal is opened
/// only if the runbook reads it, and a journal that stays busy is an error, never a
/// silent fallback.
/// `live`: a run, `plan --live` or `check`, which read the deployment for the
/// parameters that name a direction; a plain plan calls nothing and shows their
/// defaults (saying so).
pub async fn prepare(
    config: &Config,
    name: &str,
    raw_params: &[String],
    live: bool,
) -> CliResult<Prepared> {
    prepare_saying(config, name, raw_params, live, true).await
}

/// `prepare` for a live plan with no parameters given and nothing said on stderr
/// (readiness, on a schedule).
pub async fn prepare_quietly(config: &Config, name: &str) -> CliResult<Prepared> {
    prepare_saying(config, name, &[], true, false).await
}

async fn prepare_saying(
    config: &Config,
    name: &str,
    raw_params: &[String],
    live: bool,
    say: bool,
) -> CliResult<Prepared> {
    let runbook = config
        .catalog
        .load(name, &config.registry)
        .map_err(invalid)?;
    // A procedure that acts on sites, with nothing naming the deployment: one message
    // that says what to give, before any note or deployment read.
    let needs_sites = runbook.steps.iter().any(|s| s.site.is_some())
        || runbook.params.values().any(|p| p.from_deployment.is_some());
    let mut given = super::param_pairs(raw_params)?;
    // (A mistyped parameter is said first: `prepare` names it and the one meant.)
    let names_known = given.iter().all(|(n, _)| runbook.params.contains_key(n));
    if config.env_file.is_none() && needs_sites && names_known {
        return Err(invalid(anyhow::anyhow!(
            "`{}` acts on sites and {}",
            runbook.name,
            Config::NO_ENV
        )));
    }
    if live {
        directions(config, &runbook, &mut given, say).await?;
    } else {
        for (n, p) in &runbook.params {
            if p.from_deployment.is_some() && !given.iter().any(|(g, _)| g == n) {
                eprintln!("note: {n} is read from the deployment by `run` and `plan --live`; this plan shows its default");
            }
        }
    }
    let journal = if engine::runner::needs_journal(&runbook) && config.journal.exists() {
        Some(config.open_journal()?)
    } else {
        None
    };
    let env = config.environment()?;
    let p = engine::runner::prepare(
        runbook,
        env,
        journal.as_ref(),
        &given,
        &config.registry,
        |k| std::env::var(k).ok(),
    )
    .map_err(crate::exit::from_run_error)?;
    drop(journal);
    for n in p.notes.iter().filter(|_| say) {
        eprintln!("note: using {n}");
    }
    Ok(p)
}

/// The parameters that name a direction (`from_deployment`) and were not given: read
/// from the deployment as it is now, and said. One that cannot be told is invalid
/// input that asks for it by name: never a fixed site name in its place.
async fn directions(
    config: &Config,
    runbook: &engine::model::Runbook,
    given: &mut Vec<(String, String)>,
    say: bool,
) -> CliResult<()> {
    let wanted: Vec<(&String, &String)> = runbook
        .params
        .iter()
        .filter_map(|(n, p)| Some((n, p.from_deployment.as_ref()?)))
        .filter(|(n, _)| !given.iter().any(|(g, _)| g == *n))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let env = Arc::new(config.environment()?);
    for (name, fact) in wanted {
        match steps::roles::direction(Arc::clone(&env), fact).await {
            Ok((site, how)) => {
                if say {
                    eprintln!("note: {name}={site}, read from the deployment ({fact}: {how})");
                }
                given.push((name.clone(), site));
            }
            Err(e) => {
                return Err(invalid(anyhow::anyhow!(
                    "parameter `{name}` is read from the deployment ({fact}), which cannot say it now: {}. Name it: -p {name}=SITE",
                    e.message
                )))
            }
        }
    }
    Ok(())
}

/// A configuration mistake is said as one, before anything is journaled: the run's
/// built-in identity guard, judged now by the evaluator the run uses; when what it
/// reads says the environment file is wrong (an endpoint of another site, a refused
/// password, a missing context), invalid input (exit 2), the same verdict `check`
/// gives. Not with `force` (the guard is then overridden, journaled).
pub async fn configuration_first(config: &Config, p: &Prepared) -> CliResult<()> {
    if p.params.get("force").and_then(serde_json::Value::as_bool) == Some(true) {
        return Ok(());
    }
    let Some(g) = p
        .runbook
        .guards
        .iter()
        .find(|g| g.id == steps::preflight::IDENTITY)
    else {
        return Ok(());
    };
    let env = Arc::new(p.env.clone());
    let templates = engine::template::Templates::new();
    let ge = engine::guard::GuardEnv {
        registry: &config.registry,
        env: &env,
        templates: &templates,
        run_id: "preflight",
        timeout: env.scaled_timeout(std::time::Duration::from_secs(60)),
        interrupt: Default::default(),
    };
    let params = serde_json::Value::Object(p.params.clone());
    let scope = engine::scope::base_scope(
        &params,
        &env,
        "preflight",
        serde_json::json!({}),
        &p.history,
    );
    let c = engine::guard::check(g, &ge, &scope).await;
    match (c.passed(), steps::preflight::misconfiguration(&c.observation)) {
        (false, Some(summary)) => Err(invalid(anyhow::anyhow!(
            "MISCONFIGURED: {summary}. The environment file is wrong, not the deployment: nothing was done or journaled. Fix it (`runbook env check` proves every endpoint)"
        ))),
        _ => Ok(()),
    }
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
    let p = prepare(config, &args.runbook, &args.params.params, args.live).await?;
    if args.live {
        configuration_first(config, &p).await?;
    }
    let plan = build(config, &p, args.live).await?;
    let redactor = Redactor::new(p.secrets.clone());
    if args.json {
        let text = serde_json::to_string_pretty(&plan).map_err(crate::exit::failed)?;
        println!("{}", redactor.text(&text));
    } else {
        print!(
            "{}",
            redactor.text(&plan_text(&plan, Style::stdout(), config.in_use()))
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
