//! `runbook check`: read the deployment through the steps' own probes (read-only) and
//! say what state it is in and which runbook fixes it. The exit code (0 healthy, 6
//! degraded, 7 unreachable) can feed monitoring.

use std::fmt::Write;
use std::sync::Arc;

use serde_json::json;
use steps::check::{observe, verdict, Health, SiteView};

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};
use crate::progress::Style;

fn site_lines(o: &mut String, v: &SiteView, other: &str, s: Style) {
    let _ = writeln!(o, "{}", s.bold(&v.name));
    let _ = writeln!(
        o,
        "  replication to {other}: {}",
        match &v.replication {
            Ok(st) if st == "online" => s.green(st),
            Ok(st) => s.yellow(st),
            Err(e) => s.red(&format!("unreachable: {e}")),
        }
    );
    if !v.entries.is_empty() {
        let list: Vec<String> = v
            .entries
            .iter()
            .map(|(c, n)| {
                format!(
                    "{c}={}",
                    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
                )
            })
            .collect();
        let _ = writeln!(o, "  entries: {}", list.join(" "));
    }
    let _ = writeln!(
        o,
        "  keycloak: {}",
        match &v.keycloak_instances {
            Ok(n) => format!("{n} ready instances"),
            Err(e) => format!("unknown ({e})"),
        }
    );
    if let Some(p) = &v.health_check_path {
        let h = match v.health_check_healthy {
            Some(true) => s.green("healthy"),
            Some(false) => s.red("unhealthy"),
            None => "no observation yet".into(),
        };
        let _ = writeln!(o, "  route53 health check: path {p}, {h}");
    }
    if let Some(c) = v.lb_check {
        let _ = writeln!(o, "  lb-check: {c}");
    }
    match &v.cross_site_view {
        Some((true, why)) => {
            let _ = writeln!(o, "  infinispan CR: {}", s.green(why));
        }
        Some((false, why)) => {
            let _ = writeln!(o, "  infinispan CR: {}", s.red(why));
        }
        None => {
            let _ = writeln!(o, "  infinispan CR: not readable");
        }
    }
    if let Some(r) = v.keycloak_ready {
        let _ = writeln!(
            o,
            "  keycloak CR: {}",
            if r {
                s.green("Ready")
            } else {
                s.yellow("not Ready")
            }
        );
    }
}

pub async fn run(config: &Config, args: &CheckArgs) -> CliResult<Code> {
    let env = config.environment()?;
    for site in [&args.primary, &args.secondary] {
        if !env.sites.contains_key(site) {
            return Err(invalid(anyhow::anyhow!(
                "site `{site}` is not in the environment file{}",
                if config.env_file.is_none() {
                    " (give one with --env or RUNBOOK_ENV)"
                } else {
                    ""
                }
            )));
        }
    }
    let obs = observe(
        &config.registry,
        Arc::new(env),
        &args.primary,
        &args.secondary,
        &args.caches,
    )
    .await;
    let v = verdict(&obs, &args.down_path);
    let guards = match &v.runbook {
        Some(rb) => Some(guards_now(config, rb).await),
        None => None,
    };
    let code = match v.health {
        Health::Healthy => Code::Ok,
        Health::Degraded => Code::Degraded,
        Health::Unreachable => Code::Unreachable,
    };
    if args.json {
        let guards = match &guards {
            Some(Ok(list)) => json!(list),
            Some(Err(e)) => json!({ "error": e }),
            None => serde_json::Value::Null,
        };
        let out = json!({"health": v.health, "runbook": v.runbook, "reason": v.reason, "notes": v.notes, "observations": obs, "guards": guards});
        println!("{}", serde_json::to_string_pretty(&out).map_err(failed)?);
        return Ok(code);
    }
    let s = Style::stdout();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "serving: {} — {}",
        obs.serving.clone().unwrap_or_else(|| "unknown".into()),
        obs.serving_how
    );
    let _ = writeln!(
        o,
        "roles: primary {}, secondary {} (from {})",
        obs.primary.name,
        obs.secondary.name,
        if obs.roles_from == "route53" {
            "the Route53 failover records"
        } else {
            "--primary/--secondary: the failover records could not be read"
        }
    );
    let _ = writeln!(
        o,
        "aurora writer: {}",
        obs.aurora_writer_site
            .clone()
            .map(|w| format!("in {w}'s zone"))
            .unwrap_or_else(|| "unknown".into())
    );
    site_lines(&mut o, &obs.primary, &obs.secondary.name, s);
    site_lines(&mut o, &obs.secondary, &obs.primary.name, s);
    let head = match v.health {
        Health::Healthy => s.green("HEALTHY"),
        Health::Degraded => s.yellow("DEGRADED"),
        Health::Unreachable => s.red("UNREACHABLE"),
    };
    let _ = writeln!(o, "\n{head}: {}", v.reason);
    for n in &v.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    if let Some(rb) = &v.runbook {
        let _ = writeln!(o, "next: runbook plan {rb}   (then: runbook run {rb})");
        match &guards {
            Some(Ok(list)) if !list.is_empty() => {
                let _ = writeln!(o, "its guards now (judged as the run will judge them):");
                for g in list {
                    let mark = match g.holds {
                        Some(true) => s.green("holds"),
                        Some(false) => s.red("REFUSES"),
                        None => "not checked".into(),
                    };
                    let _ = writeln!(
                        o,
                        "  {mark}  {}: {}",
                        g.id,
                        g.now.as_deref().unwrap_or(&g.title)
                    );
                }
            }
            Some(Err(e)) => {
                let _ = writeln!(o, "its guards could not be read: {e}");
            }
            _ => {}
        }
    }
    print!("{o}");
    Ok(code)
}

/// The guards of the recommended runbook (`name -p k=v ...`), checked now through the
/// evaluator a run uses (the same as `plan --live`).
async fn guards_now(
    config: &Config,
    recommended: &str,
) -> Result<Vec<engine::plan::PlannedGuard>, String> {
    let mut words = recommended.split_whitespace();
    let name = words.next().unwrap_or_default();
    let params: Vec<String> = words.filter(|w| *w != "-p").map(str::to_string).collect();
    let p = super::plan::prepare(config, name, &params).map_err(|e| format!("{:#}", e.error))?;
    let plan = super::plan::build(config, &p, true)
        .await
        .map_err(|e| format!("{:#}", e.error))?;
    Ok(plan.guards)
}
