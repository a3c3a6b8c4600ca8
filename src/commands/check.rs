//! `runbook check`: read the deployment through the steps' own probes (read-only) and
//! say what state it is in and which runbook fixes it. The exit code (0 healthy, 6
//! degraded, 7 unreachable) can feed monitoring.

use std::fmt::Write;
use std::sync::Arc;

use serde_json::json;
use steps::check::Health;

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};
use crate::progress::Style;

/// The version of `check --json`'s shape (docs/json.md).
pub const CHECK_FORMAT: u32 = 1;

pub async fn run(config: &Config, args: &CheckArgs) -> CliResult<Code> {
    let env = config.environment()?;
    // What the command line leaves out, the pack in use says.
    let d = config.pack.defaults;
    let primary = args.primary.clone().unwrap_or_else(|| d.primary.into());
    let secondary = args.secondary.clone().unwrap_or_else(|| d.secondary.into());
    let caches: Vec<String> = args
        .caches
        .clone()
        .unwrap_or_else(|| d.caches.iter().map(|c| c.to_string()).collect());
    let down_path = args.down_path.clone().unwrap_or_else(|| d.down_path.into());
    for site in [&primary, &secondary] {
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
    let env = Arc::new(env);
    // First: is every endpoint the site it is configured as? A mismatch or a
    // configuration problem makes every other reading meaningless.
    let uses = steps::preflight::every_endpoint(&env);
    let identity = if uses.is_empty() {
        serde_json::Value::Null
    } else {
        steps::preflight::prove(Arc::clone(&env), &uses).await
    };
    let wrong: Vec<String> = identity["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["problem"].as_str())
        .filter(|p| p.starts_with("MISMATCH") || p.starts_with("configuration"))
        .map(str::to_string)
        .collect();
    // The pack's own reading of the deployment and its verdict.
    let d = (config.pack.diagnose)(
        Arc::clone(&config.registry),
        Arc::clone(&env),
        crate::packs::CheckInputs {
            primary,
            secondary,
            caches,
            down_path,
            style: Style::stdout(),
        },
    )
    .await;
    let obs = d.observations.clone();
    let mut v = d.verdict.clone();
    if !wrong.is_empty()
        || identity
            .get("summary")
            .is_some_and(|s| s.as_str().is_some_and(|t| t.contains("resolve to one")))
    {
        v = steps::check::Verdict {
            health: Health::Misconfigured,
            runbook: None,
            reason: format!(
                "an endpoint is not the site the environment file says (or cannot say): {}; nothing else it reads can be trusted until that is fixed (`runbook env check`)",
                identity["summary"].as_str().unwrap_or_default()
            ),
            notes: v.notes,
        };
    }
    // The journal first: a run in flight holds its sites, and nothing new is
    // recommended on a site it holds.
    let flight = in_flight(config);
    let mut held_note = None;
    if let Some(rb) = &v.runbook {
        let touched = rb.values();
        if let Some(r) = flight
            .iter()
            .find(|r| r.sites.iter().any(|s| touched.contains(&s.as_str())))
        {
            held_note = Some(format!(
                "not recommending `{rb}`: {} is held by run {} ({}); finish it first: runbook resume {} (or end it: runbook abort {} --reason \"...\")",
                r.sites.join(", "),
                r.run_id,
                r.runbook,
                r.run_id,
                r.run_id
            ));
            v.runbook = None;
        }
    }
    if let Some(n) = &held_note {
        v.notes.insert(0, n.clone());
    }
    let guards = match &v.runbook {
        Some(rb) => Some(guards_now(config, rb).await),
        None => None,
    };
    let code = match v.health {
        Health::Healthy => Code::Ok,
        Health::Degraded => Code::Degraded,
        Health::Unreachable => Code::Unreachable,
        Health::Misconfigured => Code::Invalid,
        Health::OnSecondary => Code::OnSecondary,
    };
    if args.json {
        let guards = match &guards {
            Some(Ok(list)) => json!(list),
            Some(Err(e)) => json!({ "error": e }),
            None => serde_json::Value::Null,
        };
        let runs: Vec<serde_json::Value> = flight.iter().map(InFlight::to_json).collect();
        let recommended = v.runbook.as_ref().map(|i| {
            json!({"pack": config.pack.name, "runbook": i.runbook,
                   "params": i.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                   "command": format!("runbook run {i}")})
        });
        let out = json!({"format": CHECK_FORMAT, "health": v.health, "pack": config.pack.name,
                         "runbook": v.runbook.as_ref().map(ToString::to_string), "recommended": recommended, "reason": v.reason, "notes": v.notes, "runs_in_flight": runs, "identity": identity, "observations": obs, "guards": guards});
        println!("{}", serde_json::to_string_pretty(&out).map_err(failed)?);
        return Ok(code);
    }
    let s = Style::stdout();
    let mut o = String::new();
    if !flight.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            s.bold("runs in flight (each holds its sites until it completes or is aborted)")
        );
        for r in &flight {
            let _ = writeln!(o, "  {}", r.line());
            let _ = writeln!(
                o,
                "    resume: runbook resume {}    abort: runbook abort {} --reason \"...\"",
                r.run_id, r.run_id
            );
        }
        let _ = writeln!(o);
    }
    if !identity.is_null() {
        let _ = writeln!(
            o,
            "{}",
            s.bold("identity (each endpoint asked which site it is)")
        );
        for line in super::env::text(&identity, s)
            .lines()
            .filter(|l| !l.is_empty())
        {
            if !line.starts_with("IDENTITY") && !line.contains("IDENTITY ") {
                let _ = writeln!(o, "  {line}");
            }
        }
        let _ = writeln!(o);
    }
    o.push_str(&d.text);
    let head = match v.health {
        Health::Healthy => s.green("HEALTHY"),
        Health::Degraded => s.yellow("DEGRADED"),
        Health::Unreachable => s.red("UNREACHABLE"),
        Health::Misconfigured => s.red("MISCONFIGURED"),
        Health::OnSecondary => s.green("ON THE SECONDARY, IN SYNC"),
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
    recommended: &steps::check::Invocation,
) -> Result<Vec<engine::plan::PlannedGuard>, String> {
    let p = super::plan::prepare(config, &recommended.runbook, &recommended.pairs())
        .map_err(|e| format!("{:#}", e.error))?;
    let plan = super::plan::build(config, &p, true)
        .await
        .map_err(|e| format!("{:#}", e.error))?;
    Ok(plan.guards)
}

/// A run that holds sites: running, halted or failed, not yet over.
struct InFlight {
    run_id: String,
    runbook: String,
    sites: Vec<String>,
    by: String,
    since: u64,
    status: String,
    halted_at: Option<String>,
    reason: Option<String>,
}

impl InFlight {
    fn line(&self) -> String {
        format!(
            "{} {} ({}) holds {}: started by {} at {}{}",
            self.run_id,
            self.runbook,
            self.status,
            self.sites.join(", "),
            self.by,
            crate::output::time(self.since),
            match (&self.halted_at, &self.reason) {
                (Some(step), Some(r)) => format!(
                    "; stopped at `{step}`: {}",
                    r.chars()
                        .take(200)
                        .collect::<String>()
                        .replace(char::is_control, " ")
                ),
                (Some(step), None) => format!("; stopped at `{step}`"),
                _ => String::new(),
            }
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"run_id": self.run_id, "runbook": self.runbook, "sites": self.sites, "by": self.by,
               "since": self.since, "status": self.status, "halted_at": self.halted_at, "reason": self.reason,
               "resume": format!("runbook resume {}", self.run_id), "abort": format!("runbook abort {} --reason ...", self.run_id)})
    }
}

/// The runs holding sites in the journal in use (none when there is no journal yet).
fn in_flight(config: &Config) -> Vec<InFlight> {
    let Some(Ok(journal)) = config.try_journal() else {
        return Vec::new();
    };
    let locks = journal.locks().unwrap_or_default();
    let runs = journal.runs().unwrap_or_default();
    let mut out: Vec<InFlight> = Vec::new();
    for (site, lock) in locks {
        let id = lock.run_id.to_string();
        if let Some(r) = out.iter_mut().find(|r| r.run_id == id) {
            r.sites.push(site);
            continue;
        }
        let summary = runs.iter().find(|r| r.run_id == lock.run_id);
        out.push(InFlight {
            run_id: id,
            runbook: lock.runbook.clone(),
            sites: vec![site],
            by: format!("{}@{}", lock.holder.operator, lock.holder.host),
            since: lock.since,
            status: summary.map_or("running".into(), |r| r.status.as_str().to_string()),
            halted_at: summary.and_then(|r| r.halted_at.clone()),
            reason: summary.and_then(|r| r.reason.clone()),
        });
    }
    out
}
