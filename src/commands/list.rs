//! `runbook list`: built-in runbooks and those in `--runbooks DIR`.

use serde_json::json;

use crate::cli::ListArgs;
use crate::config::Config;
use crate::exit::{failed, CliResult, Code};

pub fn run(config: &Config, args: &ListArgs) -> CliResult<Code> {
    let entries = config.catalog.list(&config.registry);
    if args.json {
        let v: Vec<_> = entries
            .iter()
            .map(|e| json!({"name": e.name, "title": e.title, "origin": e.origin, "problem": e.problem}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(failed)?);
        return Ok(Code::Ok);
    }
    if entries.is_empty() {
        eprintln!("no runbooks: give a directory with --runbooks DIR or a file path");
    }
    if !config.quiet {
        let pack = &crate::builtin::PACKS[0];
        eprintln!(
            "built-in: {} (procedure pack {})",
            pack.title(),
            pack.describe()
        );
    }
    for e in entries {
        match e.problem {
            None => println!("{:<26} {}  ({})", e.name, e.title, e.origin),
            Some(p) => println!(
                "{:<26} INVALID ({}): {}",
                e.name,
                e.origin,
                p.lines().next().unwrap_or_default()
            ),
        }
    }
    Ok(Code::Ok)
}
