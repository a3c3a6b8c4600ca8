//! `runbook history`: the runs in the journal, newest first, filtered and limited.

use engine::journal::JournalError;

use crate::cli::HistoryArgs;
use crate::config::Config;
use crate::exit::{failed, from_journal_error, CliResult, Code};
use crate::output::time;

pub fn run(config: &Config, args: &HistoryArgs) -> CliResult<Code> {
    let Some(opened) = config.try_journal() else {
        if args.json {
            println!("[]");
        } else {
            eprintln!(
                "no runs yet in `{}`{}",
                config.journal,
                config.journal_origin()
            );
        }
        return Ok(Code::Ok);
    };
    let journal = match opened {
        Ok(j) => j,
        Err(JournalError::Busy { .. }) => {
            let active = config.live().map(|l| l.active()).unwrap_or_default();
            eprintln!(
                "the journal is in use by a running process; showing the runs in progress only"
            );
            if args.json {
                let list: Vec<serde_json::Value> = active
                    .iter()
                    .map(|s| serde_json::json!({"run_id": s.run_id.to_string(), "runbook": s.runbook, "status": s.status.as_str(), "created_at": s.created_at, "live": true}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
                return Ok(Code::Ok);
            }
            for s in active {
                println!(
                    "{}  {}  {}  {}",
                    s.run_id,
                    s.status.as_str(),
                    s.runbook,
                    time(s.created_at)
                );
            }
            return Ok(Code::Ok);
        }
        Err(e) => return Err(from_journal_error(e)),
    };
    let mut runs = journal.runs().map_err(from_journal_error)?;
    runs.reverse();
    runs.retain(|r| {
        args.runbook.as_ref().is_none_or(|n| r.runbook == *n)
            && args.status.as_ref().is_none_or(|s| r.status.as_str() == s)
    });
    let older = if args.limit > 0 && runs.len() > args.limit {
        let n = runs.len() - args.limit;
        runs.truncate(args.limit);
        n
    } else {
        0
    };
    if older > 0 {
        eprintln!(
            "{older} older run{} not shown (`--limit 0` shows all)",
            if older == 1 { "" } else { "s" }
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs).map_err(failed)?);
        return Ok(Code::Ok);
    }
    if runs.is_empty() {
        if args.runbook.is_some() || args.status.is_some() {
            eprintln!("no run matches");
        } else {
            eprintln!(
                "no runs yet in `{}`{}",
                config.journal,
                config.journal_origin()
            );
        }
    }
    for r in runs {
        let at = r.halted_at.map(|s| format!(" at {s}")).unwrap_or_default();
        let reason = r.reason.map(|s| format!(": {s}")).unwrap_or_default();
        println!(
            "{:<7} {:<10} {:<24} {}  by {}{}{at}{reason}",
            r.run_id.to_string(),
            r.status.as_str(),
            r.runbook,
            time(r.created_at),
            r.operator,
            if r.host.is_empty() {
                String::new()
            } else {
                format!("@{}", r.host)
            }
        );
        for h in &r.hands {
            println!("        {h}");
        }
    }
    Ok(Code::Ok)
}
