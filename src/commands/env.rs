//! `runbook env check [FILE]`: every endpoint of every site the environment file
//! describes is asked which site it is, as the built-in identity guard asks before a
//! run's first effect. Read-only.

use std::fmt::Write;
use std::sync::Arc;

use engine::env::Environment;
use serde_json::Value as Json;

use crate::cli::EnvCheckArgs;
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};
use crate::progress::Style;

pub async fn check(config: &Config, args: &EnvCheckArgs) -> CliResult<Code> {
    let env = match args.file.as_ref().or(config.env_file.as_ref()) {
        Some(p) => Environment::load(p, config.registry.env_schema()).map_err(invalid)?,
        None => {
            return Err(invalid(anyhow::anyhow!(
                "no environment file: give one (`runbook env check FILE`, --env or RUNBOOK_ENV)"
            )))
        }
    };
    let uses = steps::preflight::every_endpoint(&env);
    if uses.is_empty() {
        return Err(invalid(anyhow::anyhow!(
            "the environment file describes no site with an endpoint to check"
        )));
    }
    let seen = steps::preflight::prove(Arc::new(env), &uses).await;
    let proven = seen["proven"].as_bool() == Some(true);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&seen).map_err(failed)?);
    } else {
        print!("{}", text(&seen, Style::stdout()));
    }
    Ok(if proven { Code::Ok } else { Code::Refused })
}

/// One line per endpoint, then the verdict.
pub fn text(seen: &Json, s: Style) -> String {
    let mut o = String::new();
    for e in seen["endpoints"].as_array().into_iter().flatten() {
        let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let mark = if e["ok"].as_bool() == Some(true) {
            s.green("proven")
        } else {
            s.red("NOT PROVEN")
        };
        let _ = writeln!(
            o,
            "{mark}  {} {}: {}{}",
            field("site"),
            field("via"),
            field("endpoint"),
            match (field("answered"), field("problem")) {
                (a, p) if !p.is_empty() && !a.is_empty() => format!(" — answered {a}: {p}"),
                (_, p) if !p.is_empty() => format!(" — {p}"),
                (a, _) if !a.is_empty() => format!(" — {a}"),
                _ => String::new(),
            }
        );
    }
    let summary = seen["summary"].as_str().unwrap_or_default();
    if seen["proven"].as_bool() == Some(true) {
        let _ = writeln!(
            o,
            "\n{}: every endpoint proves its site",
            s.green("IDENTITY PROVEN")
        );
    } else {
        let _ = writeln!(o, "\n{}: {summary}", s.red("IDENTITY NOT PROVEN"));
    }
    o
}
