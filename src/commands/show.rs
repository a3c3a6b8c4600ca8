//! `runbook show`: a runbook's parameters and steps, as a person reads them.

use std::fmt::Write;

use crate::cli::ShowArgs;
use crate::config::Config;
use crate::exit::{invalid, CliResult, Code};
use crate::progress::Style;

pub fn run(config: &Config, args: &ShowArgs) -> CliResult<Code> {
    let rb = config
        .catalog
        .load(&args.runbook, &config.registry)
        .map_err(invalid)?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&as_json(config, &rb)).map_err(crate::exit::failed)?;
        println!("{text}");
        return Ok(Code::Ok);
    }
    let s = Style::stdout();
    let mut o = String::new();
    let _ = writeln!(o, "{} — {}  ({})", s.bold(&rb.name), rb.title, rb.origin);
    if !rb.description.trim().is_empty() {
        let _ = writeln!(o, "\n{}", rb.description.trim_end());
    }
    params_text(&mut o, &rb, s);
    guards_text(&mut o, &rb, s);
    steps_text(&mut o, config, &rb, s);
    print!("{o}");
    Ok(Code::Ok)
}

/// Each parameter: its type, default or why none, the values allowed.
fn params_text(o: &mut String, rb: &engine::model::Runbook, s: Style) {
    let _ = writeln!(o, "\n{}", s.bold("Parameters"));
    if rb.params.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for p in rb.params.values() {
        let default = match (&p.default, p.secret) {
            (_, true) => " (secret: never stored or shown)".to_string(),
            (Some(d), _) => format!(" = {d}"),
            (None, _) => " (required)".to_string(),
        };
        let allowed = if p.allowed.is_empty() {
            String::new()
        } else {
            let a: Vec<String> = p.allowed.iter().map(|v| v.to_string()).collect();
            format!(" one of {}", a.join(", "))
        };
        let _ = writeln!(
            o,
            "  {} {}{default}{allowed}",
            s.bold(&p.name),
            s.dim(p.kind.as_str())
        );
        if !p.description.is_empty() {
            let _ = writeln!(o, "      {}", p.description);
        }
    }
}

/// The runbook's safety guards: what each reads, when, and where again.
fn guards_text(o: &mut String, rb: &engine::model::Runbook, s: Style) {
    if !rb.guards.is_empty() {
        let _ = writeln!(
            o,
            "\n{} (checked live before the first effect, and again before the steps named)",
            s.bold("Safety guards")
        );
        for g in &rb.guards {
            let _ = writeln!(o, "  {} {}", s.bold(&g.id), g.title);
            let reads = match (&g.probe, &g.site) {
                (Some(p), Some(site)) => format!("{p} on {site}"),
                (Some(p), None) => p.clone(),
                (None, _) => "the journal and the parameters".into(),
            };
            let _ = writeln!(o, "      reads {reads}: `{}`", g.expect);
            if let Some(w) = &g.when {
                let _ = writeln!(o, "      when: {w}");
            }
            if !g.before.is_empty() {
                let _ = writeln!(o, "      again before: {}", g.before.join(", "));
            }
            if let Some(u) = &g.unchecked {
                let _ = writeln!(o, "      cannot check: {u}");
            }
        }
    }
}

/// Each step: action, site, effect, condition, fan-out and checks.
fn steps_text(o: &mut String, config: &Config, rb: &engine::model::Runbook, s: Style) {
    let _ = writeln!(o, "\n{}", s.bold("Steps"));
    let total = rb.steps.len();
    for (i, st) in rb.steps.iter().enumerate() {
        let action = config.registry.get(&st.action).expect("checked at load");
        let effect = action.effect(&st.with.as_object().cloned().unwrap_or_default());
        let site = st
            .site
            .as_ref()
            .map(|x| format!(" on {x}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} {} {}  [{}{site}] {}",
            s.bold(&format!("[{}/{total}]", i + 1)),
            s.bold(&st.id),
            st.title,
            st.action,
            s.effect(effect)
        );
        if let Some(w) = &st.when {
            let _ = writeln!(o, "      when: {w}");
        }
        if let Some(fe) = &st.for_each {
            let _ = writeln!(
                o,
                "      for each of {} ({} at a time)",
                fe.items, fe.concurrency
            );
        }
        for c in &st.require {
            let _ = writeln!(
                o,
                "      requires: {}",
                c.message
                    .clone()
                    .unwrap_or_else(|| format!("`{}`", c.expect))
            );
        }
        for c in &st.verify {
            let _ = writeln!(
                o,
                "      verifies: {}",
                c.message
                    .clone()
                    .unwrap_or_else(|| format!("`{}`", c.expect))
            );
        }
    }
}

/// The runbook as `show --json` prints it (`format` 1).
fn as_json(config: &Config, rb: &engine::model::Runbook) -> serde_json::Value {
    use serde_json::json;
    let params: Vec<serde_json::Value> = rb
        .params
        .values()
        .map(|p| {
            json!({"name": p.name, "type": p.kind.as_str(), "description": p.description,
                   "default": if p.secret { serde_json::Value::Null } else { p.default.clone().unwrap_or_default() },
                   "required": p.default.is_none() && !p.secret, "secret": p.secret,
                   "allowed": p.allowed, "differs_from": p.differs_from,
                   "non_empty": p.non_empty, "unique": p.unique})
        })
        .collect();
    let guards: Vec<serde_json::Value> = rb
        .guards
        .iter()
        .map(|g| {
            json!({"id": g.id, "title": g.title, "probe": g.probe, "site": g.site,
                   "expect": g.expect, "when": g.when, "before": g.before,
                   "unchecked": g.unchecked, "built_in": g.id.starts_with("builtin-")})
        })
        .collect();
    let steps: Vec<serde_json::Value> = rb
        .steps
        .iter()
        .map(|st| {
            let effect = config
                .registry
                .get(&st.action)
                .map(|a| a.effect(&st.with.as_object().cloned().unwrap_or_default()));
            json!({"id": st.id, "title": st.title, "action": st.action, "site": st.site,
                   "effect": effect, "when": st.when, "with": st.with,
                   "for_each": st.for_each.as_ref().map(|f| json!({"items": f.items, "concurrency": f.concurrency})),
                   "require": st.require.iter().map(|c| c.message.clone().unwrap_or_else(|| c.expect.clone())).collect::<Vec<_>>(),
                   "verify": st.verify.iter().map(|c| c.message.clone().unwrap_or_else(|| c.expect.clone())).collect::<Vec<_>>()})
        })
        .collect();
    json!({"format": 1, "name": rb.name, "title": rb.title, "origin": rb.origin,
           "description": rb.description, "params": params, "guards": guards, "steps": steps})
}
