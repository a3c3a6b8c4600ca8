//! Readiness on a schedule: every runbook of the pack in use is planned live (read
//! only, as `plan --live` does: its directions read from the deployment, its guards
//! judged against it) every so often, and the result is exported with the metrics of
//! `runbook respond` and `runbook check --watch`:
//!
//! - `runbook_procedure_ready{pack,runbook}`: 1 when no guard judged before its first
//!   effect refuses it now, 0 when one does or when it cannot be planned;
//! - `runbook_guard_holds{pack,runbook,guard}`: each of those guards, 1 or 0;
//! - `runbook_procedure_refusal{pack,runbook,guard}`: 1 for the guard that refuses;
//! - `runbook_readiness_age_seconds`: how old the judgment is.
//!
//! The shipped alerting rules (`deploy/prometheus/runbook-rules.yml`) read them.
//! Nothing here writes: no run is started or journaled.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;

/// The last judgment: when, and its exposition lines.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, String)>>,
}

impl Readiness {
    /// Judge every procedure now and keep the result.
    pub async fn refresh(&self, config: &Config) {
        let text = judge(config).await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), text));
    }

    /// The last judgment's lines and its age; nothing before the first.
    pub fn exposition(&self) -> String {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let Some((at, text)) = last.as_ref() else {
            return String::new();
        };
        let mut out = text.clone();
        let _ = writeln!(out, "# HELP runbook_readiness_age_seconds How old the last judgment of every procedure's guards is");
        let _ = writeln!(out, "# TYPE runbook_readiness_age_seconds gauge");
        let _ = writeln!(
            out,
            "runbook_readiness_age_seconds {:.3}",
            at.elapsed().as_secs_f64()
        );
        out
    }
}

/// The judgment the metrics show, once `start` was called.
static CURRENT: std::sync::OnceLock<std::sync::Arc<Readiness>> = std::sync::OnceLock::new();

/// Judge every procedure now and every `every` after, in the background; `gate` is
/// taken while judging (the responder's one-at-a-time lock: a sled journal admits one
/// process, and its runs come first).
pub fn start(
    config: std::sync::Arc<Config>,
    every: Duration,
    gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
) {
    let r = std::sync::Arc::clone(CURRENT.get_or_init(Default::default));
    tokio::spawn(async move {
        loop {
            {
                let _one = match &gate {
                    Some(g) => Some(g.lock().await),
                    None => None,
                };
                r.refresh(&config).await;
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// The current judgment's exposition lines (none before the first, or without
/// `start`).
pub fn current() -> String {
    CURRENT.get().map(|r| r.exposition()).unwrap_or_default()
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Plan every runbook of the pack in use live and say which would be accepted.
async fn judge(config: &Config) -> String {
    let pack = config.pack.name;
    let mut ready = String::from(
        "# HELP runbook_procedure_ready Whether the procedure would be accepted now: no guard judged before its first effect refuses it (1), or one does or it cannot be planned (0)\n# TYPE runbook_procedure_ready gauge\n",
    );
    let mut holds = String::from(
        "# HELP runbook_guard_holds Whether a procedure's guard holds against the deployment now\n# TYPE runbook_guard_holds gauge\n",
    );
    let mut refusals = String::from(
        "# HELP runbook_procedure_refusal The guard that refuses a procedure now (1), with the procedure\n# TYPE runbook_procedure_refusal gauge\n",
    );
    for (name, _) in config.pack.runbooks {
        let l = format!("pack=\"{}\",runbook=\"{}\"", label(pack), label(name));
        let planned = async {
            let p = super::plan::prepare_quietly(config, name).await?;
            super::plan::build(config, &p, true).await
        }
        .await;
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                tracing::info!("readiness: {name} cannot be planned now: {:#}", e.error);
                let _ = writeln!(ready, "runbook_procedure_ready{{{l}}} 0");
                let _ = writeln!(
                    refusals,
                    "runbook_procedure_refusal{{{l},guard=\"cannot-be-planned\"}} 1"
                );
                continue;
            }
        };
        let refused = plan.would_refuse();
        let _ = writeln!(
            ready,
            "runbook_procedure_ready{{{l}}} {}",
            u8::from(refused.is_empty())
        );
        for g in refused.iter().take(1) {
            let _ = writeln!(
                refusals,
                "runbook_procedure_refusal{{{l},guard=\"{}\"}} 1",
                label(&g.id)
            );
        }
        for g in plan
            .guards
            .iter()
            .filter(|g| g.deferred.is_none() && g.applies != Some(false))
        {
            let _ = writeln!(
                holds,
                "runbook_guard_holds{{{l},guard=\"{}\"}} {}",
                label(&g.id),
                u8::from(g.holds == Some(true))
            );
        }
    }
    format!("{ready}{holds}{refusals}")
}
