//! `runbook actions`: every action a runbook can name, from the registry itself: what
//! it does, its effect, its arguments, its outputs, its timeout and the invariants it
//! keeps by itself. `--markdown` prints docs/actions.md (a test keeps the two equal).

use std::fmt::Write;

use engine::action::{Action, Args};
use serde_json::json;

use crate::cli::ActionsArgs;
use crate::config::Config;
use crate::exit::{failed, CliResult, Code};
use crate::progress::Style;

pub fn run(config: &Config, args: &ActionsArgs) -> CliResult<Code> {
    let actions: Vec<&dyn Action> = config
        .registry
        .names()
        .filter_map(|n| config.registry.get(n))
        .map(|a| a.as_ref())
        .collect();
    let text = if args.json {
        let v: Vec<_> = actions.iter().map(|a| as_json(*a)).collect();
        serde_json::to_string_pretty(&v).map_err(failed)? + "\n"
    } else if args.markdown {
        markdown(&actions)
    } else {
        plain(&actions, Style::stdout())
    };
    print!("{text}");
    Ok(Code::Ok)
}

fn effect(a: &dyn Action) -> &'static str {
    a.effect(&Args::default()).as_str()
}

fn timeout(a: &dyn Action) -> String {
    humantime::format_duration(a.default_timeout()).to_string()
}

fn as_json(a: &dyn Action) -> serde_json::Value {
    let args: Vec<_> = a
        .args()
        .iter()
        .map(|s| json!({"name": s.name, "type": s.kind.as_str(), "required": s.required, "help": s.help}))
        .collect();
    json!({
        "name": a.name(),
        "summary": a.summary(),
        "effect": effect(a),
        "args": args,
        "outputs": a.outputs(),
        "default_timeout": timeout(a),
        "invariants": a.invariants(),
    })
}

fn plain(actions: &[&dyn Action], s: Style) -> String {
    let mut o = String::new();
    for a in actions {
        let _ = writeln!(o, "{}  {}", s.bold(a.name()), s.dim(effect(*a)));
        let _ = writeln!(o, "    {}", a.summary());
        for arg in a.args() {
            let need = if arg.required { ", required" } else { "" };
            let _ = writeln!(
                o,
                "    {} ({}{need}): {}",
                arg.name,
                arg.kind.as_str(),
                arg.help
            );
        }
        if let Some(out) = a.outputs() {
            let _ = writeln!(o, "    outputs: {}", out.join(", "));
        }
        if !a.invariants().is_empty() {
            let _ = writeln!(o, "    keeps: {}", a.invariants().join(", "));
        }
        let _ = writeln!(o, "    timeout: {}\n", timeout(*a));
    }
    o
}

/// A table cell: no line break or pipe may end the row early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown(actions: &[&dyn Action]) -> String {
    let mut o = String::from(
        "# Actions\n\n[README](../README.md) · every action a runbook can name under `action:`, \
         generated from the code by `runbook actions --markdown` (a test keeps this page equal \
         to it). How a step uses them: [runbooks.md](runbooks.md); what each invariant \
         guarantees: [safety.md](safety.md).\n\n\
         The effect is the action's with its default arguments (`http.request`'s depends on its \
         `method`). `database.*` and `traffic.*` are roles: they act through the vendor the \
         environment file names for the site, and take that vendor's arguments.\n\n\
         | action | effect | what it does | arguments | outputs | keeps | timeout |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for a in actions {
        let args: Vec<String> = a
            .args()
            .iter()
            .map(|s| {
                let need = if s.required { ", required" } else { "" };
                format!("`{}` ({}{need}): {}", s.name, s.kind.as_str(), cell(s.help))
            })
            .collect();
        let outputs = a.outputs().map_or("—".to_string(), |o| {
            o.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let keeps: Vec<String> = a.invariants().iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            a.name(),
            effect(*a),
            cell(a.summary()),
            if args.is_empty() {
                "—".to_string()
            } else {
                args.join("<br>")
            },
            outputs,
            if keeps.is_empty() {
                "—".to_string()
            } else {
                keeps.join(", ")
            },
            timeout(*a)
        );
    }
    o
}
