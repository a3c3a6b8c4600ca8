//! `runbook context`: name a deployment (an environment file and its journal) once, and
//! switch between them as kubectl does (`crate::context` has the rules).

use serde_json::json;

use crate::cli::{ContextCommand, Global};
use crate::context::{self, Context, Contexts};
use crate::exit::{failed, invalid, CliResult, Code};

pub fn run(g: &Global, cmd: &ContextCommand) -> CliResult<Code> {
    let path = context::file().ok_or_else(|| {
        invalid(anyhow::anyhow!(
            "no per-user configuration directory here: set RUNBOOK_CONTEXTS to a file"
        ))
    })?;
    let mut all = Contexts::load(&path).map_err(|e| invalid(anyhow::anyhow!(e)))?;
    match cmd {
        ContextCommand::Use { name } => {
            context::check_name(name).map_err(|e| invalid(anyhow::anyhow!(e)))?;
            let verb = set(g, &mut all, name)?;
            all.current = Some(name.clone());
            all.save(&path).map_err(|e| failed(anyhow::anyhow!(e)))?;
            eprintln!("{verb} context `{name}`, now in use ({})", path.display());
            println!("{}", describe(name, &all.contexts[name]));
            let shared = sharing(&all, name);
            if !shared.is_empty() {
                eprintln!(
                    "note: context(s) {} read the same journal: their runs and this one's are one history (give each its own with --journal)",
                    shared.join(", ")
                );
            }
            Ok(Code::Ok)
        }
        ContextCommand::List { json } => {
            list(&all, *json)?;
            Ok(Code::Ok)
        }
        ContextCommand::Show { name } => {
            let name = match name.as_deref().or(all.current.as_deref()) {
                Some(n) => n.to_string(),
                None => {
                    println!("no context in use: each command reads --env / RUNBOOK_ENV");
                    return Ok(Code::Ok);
                }
            };
            let c = all.get(&name).map_err(|e| invalid(anyhow::anyhow!(e)))?;
            println!("{}", describe(&name, c));
            Ok(Code::Ok)
        }
        ContextCommand::Unset => {
            let was = all.current.take();
            all.save(&path).map_err(|e| failed(anyhow::anyhow!(e)))?;
            match was {
                Some(n) => eprintln!(
                    "context `{n}` no longer in use: each command reads --env / RUNBOOK_ENV"
                ),
                None => eprintln!("no context was in use"),
            }
            Ok(Code::Ok)
        }
        ContextCommand::Delete { name } => {
            all.get(name).map_err(|e| invalid(anyhow::anyhow!(e)))?;
            all.contexts.remove(name);
            if all.current.as_deref() == Some(name) {
                all.current = None;
            }
            all.save(&path).map_err(|e| failed(anyhow::anyhow!(e)))?;
            eprintln!("context `{name}` deleted (its environment file and journal are untouched)");
            Ok(Code::Ok)
        }
    }
}

/// Whether `--FLAG` was typed on this command line (not only set by the environment:
/// a `RUNBOOK_ENV` left in the shell must not rewrite a context being switched to).
fn typed(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

/// Create or update the context from `--env`, `--journal` and `--pack` as typed;
/// without them, the context must exist. What was done, in a word.
fn set(g: &Global, all: &mut Contexts, name: &str) -> CliResult<&'static str> {
    let env = g.env_file.as_ref().filter(|_| typed("--env"));
    let journal = g.journal.as_ref().filter(|_| typed("--journal"));
    let pack = g.pack.as_ref().filter(|_| typed("--pack"));
    if env.is_none() && journal.is_none() && pack.is_none() {
        all.get(name).map_err(|e| invalid(anyhow::anyhow!(e)))?;
        return Ok("switched to");
    }
    let existing = all.contexts.get(name).cloned();
    let verb = if existing.is_some() {
        "updated"
    } else {
        "created"
    };
    let mut c = existing.unwrap_or_default();
    match env {
        Some(e) => {
            let abs = std::path::absolute(e).map_err(|err| {
                invalid(anyhow::anyhow!("--env `{}`: {err}", e.display()))
            })?;
            if !abs.is_file() {
                return Err(invalid(anyhow::anyhow!(
                    "--env `{}`: no such file (a context names an environment file that exists)",
                    abs.display()
                )));
            }
            c.env = abs;
        }
        None if c.env.as_os_str().is_empty() => {
            return Err(invalid(anyhow::anyhow!(
                "context `{name}` is new: give its environment file (`runbook context use {name} --env FILE [--journal DIR|URL]`)"
            )))
        }
        None => {}
    }
    if let Some(j) = journal {
        let text = j.to_string_lossy().into_owned();
        crate::config::locate(&text)?;
        c.journal = Some(if pgstore::Target::is_url(&text) {
            text
        } else {
            std::path::absolute(j)
                .map_err(|err| invalid(anyhow::anyhow!("--journal `{}`: {err}", j.display())))?
                .to_string_lossy()
                .into_owned()
        });
    }
    if let Some(p) = pack {
        crate::packs::find(p)
            .ok_or_else(|| invalid(anyhow::anyhow!("--pack `{p}`: no such pack")))?;
        c.pack = Some(p.clone());
    }
    all.contexts.insert(name.to_string(), c);
    Ok(verb)
}

/// The journal a context reads, as people may see it (a URL without its password), and
/// where that choice comes from.
fn shown_journal(c: &Context) -> String {
    let shown = |j: &str| {
        crate::config::locate(j)
            .map_or_else(|_| format!("{j} (unreadable)"), |(l, _)| l.to_string())
    };
    match (&c.journal, crate::config::journal_in_env_file(&c.env)) {
        (Some(j), _) => shown(j),
        (None, Some(j)) => format!("{} (the environment file's `journal:`)", shown(&j)),
        (None, None) => format!(
            "{} (the per-user default)",
            dirs::data_dir()
                .map(|d| d.join("runbook").join("journal").display().to_string())
                .unwrap_or_else(|| "none: give --journal".into())
        ),
    }
}

/// The journal a context reads, for comparing two contexts.
fn journal_key(c: &Context) -> String {
    shown_journal(c)
        .split(" (")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Other contexts that read the same journal as `name`: two deployments' runs in one
/// journal read as one history.
fn sharing(all: &Contexts, name: &str) -> Vec<String> {
    let mine = journal_key(&all.contexts[name]);
    all.contexts
        .iter()
        .filter(|(n, c)| n.as_str() != name && journal_key(c) == mine)
        .map(|(n, _)| n.clone())
        .collect()
}

fn describe(name: &str, c: &Context) -> String {
    format!(
        "{name}\n  env:     {}\n  journal: {}\n  pack:    {}",
        c.env.display(),
        shown_journal(c),
        c.pack.as_deref().unwrap_or("as the environment file says")
    )
}

fn list(all: &Contexts, as_json: bool) -> CliResult<()> {
    if as_json {
        let v: Vec<_> = all
            .contexts
            .iter()
            .map(|(n, c)| json!({"name": n, "current": all.current.as_deref() == Some(n), "env": c.env, "journal": shown_journal(c), "pack": c.pack}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(failed)?);
        return Ok(());
    }
    if all.contexts.is_empty() {
        eprintln!(
            "no contexts: `runbook context use NAME --env FILE [--journal DIR|URL]` names one"
        );
        return Ok(());
    }
    let width = all.contexts.keys().map(String::len).max().unwrap_or(0);
    for (n, c) in &all.contexts {
        let mark = if all.current.as_deref() == Some(n) {
            "*"
        } else {
            " "
        };
        println!(
            "{mark} {n:width$}  {}  journal {}",
            c.env.display(),
            shown_journal(c)
        );
    }
    Ok(())
}
