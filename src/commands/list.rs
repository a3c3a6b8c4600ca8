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
            .map(|e| json!({"pack": e.pack, "name": e.name, "title": e.title, "origin": e.origin, "problem": e.problem}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(failed)?);
        return Ok(Code::Ok);
    }
    if entries.is_empty() {
        eprintln!("no runbooks: give a directory with --runbooks DIR or a file path");
    }
    let shown_name = |e: &engine::catalog::Entry| match &e.pack {
        Some(p) if p != config.pack.name => format!("{p}/{}", e.name),
        _ => e.name.clone(),
    };
    // One column for every name, however long the longest (a pack's prefix included).
    let width = entries
        .iter()
        .map(|e| shown_name(e).chars().count())
        .max()
        .unwrap_or(0);
    let mut shown: Option<Option<String>> = None;
    for e in entries {
        // A heading per pack (on stderr: stdout stays one runbook a line).
        if shown.as_ref() != Some(&e.pack) && !config.quiet {
            match e.pack.as_deref().and_then(crate::packs::find) {
                Some(p) if p.name == config.pack.name => eprintln!(
                    "procedure pack {} ({}, in use: {}):",
                    p.describe(),
                    p.title(),
                    config.pack_chosen.as_str()
                ),
                Some(p) => eprintln!(
                    "procedure pack {} ({}; run as `{}/NAME` or with --pack {}):",
                    p.describe(),
                    p.title(),
                    p.name,
                    p.name
                ),
                None => eprintln!("from --runbooks:"),
            }
        }
        shown = Some(e.pack.clone());
        let name = shown_name(&e);
        match e.problem {
            None => println!("{name:<width$}  {}  ({})", e.title, e.origin),
            Some(p) => println!(
                "{name:<width$}  INVALID ({}): {}",
                e.origin,
                p.lines().next().unwrap_or_default()
            ),
        }
    }
    Ok(Code::Ok)
}
