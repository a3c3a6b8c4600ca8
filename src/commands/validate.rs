//! `runbook validate`: check runbook files and print every problem with its position.

use std::path::PathBuf;

use crate::cli::ValidateArgs;
use crate::config::Config;
use crate::exit::{invalid, CliResult, Code};

pub fn run(config: &Config, args: &ValidateArgs) -> CliResult<Code> {
    let files: Vec<PathBuf> = if args.path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(&args.path)
            .map_err(|e| {
                invalid(anyhow::anyhow!(
                    "cannot read `{}`: {e}",
                    args.path.display()
                ))
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        f.sort();
        f
    } else {
        vec![args.path.clone()]
    };
    if files.is_empty() {
        return Err(invalid(anyhow::anyhow!(
            "no *.yaml files in `{}`",
            args.path.display()
        )));
    }
    let mut bad = 0;
    for file in &files {
        let text = match engine::env::read_input(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                bad += 1;
                continue;
            }
        };
        match engine::load::load_str(&text, &file.display().to_string(), &config.registry) {
            Ok(rb) => println!(
                "{}: ok ({}, {} steps)",
                file.display(),
                rb.name,
                rb.steps.len()
            ),
            Err(e) => {
                eprintln!("{e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} runbook files invalid", files.len());
        return Ok(Code::Invalid);
    }
    Ok(Code::Ok)
}
