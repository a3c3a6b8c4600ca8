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

/// Everything `check` found, before it is printed.
struct Found {
    identity: serde_json::Value,
    diagnosis: crate::packs::Diagnosis,
    verdict: steps::check::Verdict,
    flight: Vec<InFlight>,
    guards: Option<Result<Vec<engine::plan::PlannedGuard>, String>>,
}

/// The command line's choices, else the pack's defaults; each site must be described.
fn inputs(
    config: &Config,
    args: &CheckArgs,
    env: &engine::env::Environment,
) -> CliResult<crate::packs::CheckInputs> {
    let d = config.pack.defaults;
    let i = crate::packs::CheckInputs {
        primary: args.primary.clone().unwrap_or_else(|| d.primary.into()),
        secondary: args.secondary.clone().unwrap_or_else(|| d.secondary.into()),
        caches: args
            .caches
            .clone()
            .unwrap_or_else(|| d.caches.iter().map(|c| c.to_string()).collect()),
        down_path: args.down_path.clone().unwrap_or_else(|| d.down_path.into()),
        style: Style::stdout(),
        history: pack_history(config, env),
    };
    for site in [&i.primary, &i.secondary] {
        if !env.sites.contains_key(site) {
            if config.env_file.is_none() {
                return Err(invalid(anyhow::anyhow!("{}", Config::NO_ENV)));
            }
            return Err(invalid(anyhow::anyhow!(
                "site `{site}` is not in the environment file"
            )));
        }
    }
    Ok(i)
}

/// The pack's reading of the journal in use (its facts when there is none, or it
/// cannot be read).
pub fn pack_history(config: &Config, env: &engine::env::Environment) -> serde_json::Value {
    let pack = Some(config.pack.name);
    let none =
        || engine::runner::facts(None, None, env, &config.registry, pack).unwrap_or_default();
    match config.try_journal() {
        Some(Ok(journal)) => {
            engine::runner::facts(Some(&journal), None, env, &config.registry, pack)
                .unwrap_or_else(|_| none())
        }
        _ => none(),
    }
}

/// An endpoint that is not its site makes every other reading meaningless.
fn misconfigured(identity: &serde_json::Value, v: &mut steps::check::Verdict) {
    if let Some(summary) = steps::preflight::misconfiguration(identity) {
        *v = steps::check::Verdict {
            health: Health::Misconfigured,
            runbook: None,
            reason: format!(
                "an endpoint is not the site the environment file says (or cannot say): {summary}; nothing else it reads can be trusted until that is fixed (`runbook env check`)"
            ),
            notes: std::mem::take(&mut v.notes),
        };
    }
}

/// Nothing new is recommended on a site a run in flight holds.
fn not_on_held_sites(flight: &[InFlight], v: &mut steps::check::Verdict) {
    let Some(rb) = &v.runbook else { return };
    let touched = rb.values();
    if let Some(r) = flight
        .iter()
        .find(|r| r.sites.iter().any(|s| touched.contains(&s.as_str())))
    {
        let note = format!(
            "not recommending `{rb}`: {} is held by run {} ({}); finish it first: runbook resume {} (or end it: runbook abort {} --reason \"...\")",
            r.sites.join(", "),
            r.run_id,
            r.runbook,
            r.run_id,
            r.run_id
        );
        v.runbook = None;
        v.notes.insert(0, note);
    }
}

/// The journal's newest run, when it was aborted or failed and left something it
/// changed (a Keycloak scaled down): what, and the command that puts it back.
fn left_by_the_last_stopped_run(config: &Config, v: &mut steps::check::Verdict) {
    let Some(Ok(journal)) = config.try_journal() else {
        return;
    };
    let runs = journal.runs().unwrap_or_default();
    let Some(last) = runs.iter().max_by_key(|r| r.created_at) else {
        return;
    };
    let Ok(state) = engine::runner::run_state(&journal, last.run_id) else {
        return;
    };
    if !matches!(
        state.status,
        engine::state::RunStatus::Aborted | engine::state::RunStatus::Failed
    ) {
        return;
    }
    let order = super::drive::pinned_order(&journal, last.run_id);
    for line in crate::output::to_restore(&state, &order) {
        v.notes.push(format!(
            "run {} ({}) ended {}: {line}",
            state.run_id,
            state.runbook,
            state.status.as_str()
        ));
    }
}

/// A run that holds a site (running, halted or failed) is never a healthy deployment,
/// whichever pack is asked: its sites are mid-procedure until it is resumed or aborted.
fn held_is_not_healthy(flight: &[InFlight], v: &mut steps::check::Verdict) {
    let Some(r) = flight.first() else { return };
    if v.health == Health::Misconfigured {
        return;
    }
    if matches!(
        v.health,
        Health::Healthy | Health::OnSecondary | Health::Planned
    ) {
        v.health = Health::Degraded;
    }
    // The verdict follows the run in flight; what the pack read stays as a note.
    let read = std::mem::take(&mut v.reason);
    v.notes
        .insert(0, format!("what the deployment looks like now: {read}"));
    v.reason = format!(
        "run {} ({}) is {}{} and holds {}: the deployment is mid-procedure. Finish it: runbook resume {} (or end it: runbook abort {} --reason \"...\", which leaves what its journal says it did)",
        r.run_id,
        r.runbook,
        r.status,
        r.driver_gone
            .as_ref()
            .map(|g| format!(" but nobody drives it ({g})"))
            .unwrap_or_default(),
        r.sites.join(", "),
        r.run_id,
        r.run_id
    );
}

/// A site that left traffic and was put back without its data being synchronized
/// (the journal's ledger, every pack and file) serves stale data: never healthy. One
/// still out of traffic and not synchronized is the planned state of a maintenance.
fn unsynchronized_is_not_healthy(
    history: &serde_json::Value,
    keeps_caches: impl Fn(&str) -> bool,
    v: &mut steps::check::Verdict,
) {
    let d = &history["deployment"];
    let out: Vec<&str> = d["out"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .collect();
    let back: Vec<String> = d["unsynchronized"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(s, _)| !out.contains(&s.as_str()) && keeps_caches(s))
        .map(|(s, r)| format!("{s} (left in run {})", r["run"].as_str().unwrap_or("?")))
        .collect();
    if back.is_empty()
        || !matches!(
            v.health,
            Health::Healthy | Health::OnSecondary | Health::Planned
        )
    {
        return;
    }
    v.health = Health::Degraded;
    v.reason = format!(
        "back in traffic without being synchronized since it left: {} (the journal's ledger); it may serve stale sessions: take it out and synchronize it",
        back.join(", ")
    );
}

async fn gather(config: &Config, args: &CheckArgs) -> CliResult<Found> {
    let env = config.environment()?;
    let i = inputs(config, args, &env)?;
    let env = Arc::new(env);
    // First: is every endpoint the site it is configured as?
    let uses = steps::preflight::every_endpoint(&env);
    let identity = if uses.is_empty() {
        serde_json::Value::Null
    } else {
        steps::preflight::prove(Arc::clone(&env), &uses).await
    };
    // The pack's own reading of the deployment and its verdict (the journal's facts,
    // read once, kept for the ledger's verdict below).
    let history = i.history.clone();
    let diagnosis = (config.pack.diagnose)(Arc::clone(&config.registry), Arc::clone(&env), i).await;
    let mut verdict = diagnosis.verdict.clone();
    misconfigured(&identity, &mut verdict);
    // The journal first: a run in flight holds its sites.
    let flight = in_flight(config);
    left_by_the_last_stopped_run(config, &mut verdict);
    not_on_held_sites(&flight, &mut verdict);
    held_is_not_healthy(&flight, &mut verdict);
    let keeps_caches = |s: &str| {
        env.sites
            .get(s)
            .is_some_and(|c| c.get("infinispan").is_some())
    };
    unsynchronized_is_not_healthy(&history, keeps_caches, &mut verdict);
    let guards = match &verdict.runbook {
        Some(rb) => Some(guards_now(config, rb).await),
        None => None,
    };
    Ok(Found {
        identity,
        diagnosis,
        verdict,
        flight,
        guards,
    })
}

pub async fn run(config: &Config, args: &CheckArgs) -> CliResult<Code> {
    let f = gather(config, args).await?;
    let code = match f.verdict.health {
        Health::Healthy => Code::Ok,
        Health::Degraded => Code::Degraded,
        Health::Unreachable => Code::Unreachable,
        Health::Misconfigured => Code::Invalid,
        Health::OnSecondary | Health::Planned => Code::OnSecondary,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&as_json(config, &f)).map_err(failed)?
        );
    } else {
        print!("{}", as_text(&f));
    }
    Ok(code)
}

/// `check --json`, format 1 (docs/json.md).
fn as_json(config: &Config, f: &Found) -> serde_json::Value {
    let v = &f.verdict;
    let guards = match &f.guards {
        Some(Ok(list)) => json!(list),
        Some(Err(e)) => json!({ "error": e }),
        None => serde_json::Value::Null,
    };
    let runs: Vec<serde_json::Value> = f.flight.iter().map(InFlight::to_json).collect();
    let recommended = v.runbook.as_ref().map(|i| {
        json!({"pack": config.pack.name, "runbook": i.runbook,
               "params": i.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
               "command": format!("runbook run {i}")})
    });
    json!({"format": CHECK_FORMAT, "health": v.health, "pack": config.pack.name,
           "runbook": v.runbook.as_ref().map(ToString::to_string), "recommended": recommended,
           "reason": v.reason, "notes": v.notes, "runs_in_flight": runs, "identity": f.identity,
           "observations": f.diagnosis.observations, "guards": guards})
}

fn as_text(f: &Found) -> String {
    let s = Style::stdout();
    let mut o = String::new();
    if !f.flight.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            s.bold("runs in flight (each holds its sites until it completes or is aborted)")
        );
        for r in &f.flight {
            let _ = writeln!(o, "  {}", r.line());
            let _ = writeln!(
                o,
                "    resume: runbook resume {}    abort: runbook abort {} --reason \"...\"",
                r.run_id, r.run_id
            );
        }
        let _ = writeln!(o);
    }
    if !f.identity.is_null() {
        let _ = writeln!(
            o,
            "{}",
            s.bold("identity (each endpoint asked which site it is)")
        );
        for line in super::env::text(&f.identity, s)
            .lines()
            .filter(|l| !l.is_empty())
        {
            if !line.starts_with("IDENTITY") && !line.contains("IDENTITY ") {
                let _ = writeln!(o, "  {line}");
            }
        }
        let _ = writeln!(o);
    }
    o.push_str(&f.diagnosis.text);
    verdict_text(&mut o, f, s);
    o
}

fn verdict_text(o: &mut String, f: &Found, s: Style) {
    let v = &f.verdict;
    let head = match v.health {
        Health::Healthy => s.green("HEALTHY"),
        Health::Degraded => s.yellow("DEGRADED"),
        Health::Unreachable => s.red("UNREACHABLE"),
        Health::Misconfigured => s.red("MISCONFIGURED"),
        Health::OnSecondary => s.green("ON THE SECONDARY, IN SYNC"),
        Health::Planned => s.green("PLANNED: A SITE IS OUT ON PURPOSE"),
    };
    let _ = writeln!(o, "\n{head}: {}", v.reason);
    for n in &v.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    let Some(rb) = &v.runbook else { return };
    let _ = writeln!(o, "next: runbook plan {rb}   (then: runbook run {rb})");
    match &f.guards {
        Some(Ok(list)) if !list.is_empty() => {
            let _ = writeln!(o, "its guards now (judged as the run will judge them):");
            for g in list {
                let mark = match g.holds {
                    Some(true) => s.green("holds"),
                    Some(false) => s.red("REFUSES"),
                    None if g.deferred.is_some() => "later".into(),
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

/// The guards of the recommended runbook (`name -p k=v ...`), checked now through the
/// evaluator a run uses (the same as `plan --live`).
async fn guards_now(
    config: &Config,
    recommended: &steps::check::Invocation,
) -> Result<Vec<engine::plan::PlannedGuard>, String> {
    let p = super::plan::prepare(config, &recommended.runbook, &recommended.pairs(), true)
        .await
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
    /// A run that says "running" whose driver is gone (its process dead on this host,
    /// or its lease lapsed): nobody is driving it until someone resumes it.
    driver_gone: Option<String>,
}

impl InFlight {
    fn line(&self) -> String {
        format!(
            "{} {} ({}{}) holds {}: started by {} at {}{}",
            self.run_id,
            self.runbook,
            self.status,
            self.driver_gone
                .as_ref()
                .map(|g| format!(", NOBODY DRIVES IT: {g}"))
                .unwrap_or_default(),
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
               "driver_gone": self.driver_gone,
               "resume": format!("runbook resume {}", self.run_id), "abort": format!("runbook abort {} --reason ...", self.run_id)})
    }
}

/// Why nobody drives the run any more, when that can be told: its lease lapsed, or
/// its process on this host is gone.
fn driver_gone(lock: &engine::store::lock::LockRecord) -> Option<String> {
    let h = &lock.holder;
    match lock.lease_ms {
        Some(ms) if ms < 0 => Some(format!(
            "its driver's lease ({} pid {} on {}) lapsed {} s ago",
            h.operator,
            h.pid,
            h.host,
            -ms / 1000
        )),
        Some(_) => None,
        None => (!engine::store::lock::process_alive(h)).then(|| {
            format!(
                "its driver ({} pid {} on {}) is gone",
                h.operator, h.pid, h.host
            )
        }),
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
            driver_gone: driver_gone(&lock)
                .filter(|_| summary.is_none_or(|r| r.status.as_str() == "running")),
        });
    }
    out
}
