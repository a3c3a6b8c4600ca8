//! The `pgo` pack: the procedures of CrunchyData PGO as Keycloak's database that the
//! Keycloak procedures do not cover (`promote-standby` after the primary's site is
//! lost, `recreate-standby` to demote a former primary, `pgo-switchover` inside a
//! site), its reading of the journal,
//! its diagnosis of the database for `check`, and its lab (PGO over real PostgreSQL).
//! The planned move of the writer is the database role's (`database.move-writer`),
//! which the Keycloak packs' procedures already name.

use std::fmt::Write;
use std::sync::Arc;

use engine::history::HistoryFacts;
use engine::state::{RunState, RunStatus};
use serde_json::{json, Value as Json};

use super::pack::{CheckInputs, Defaults, Diagnosis, Pack};

pub const NAME: &str = "pgo";

pub const PACK: Pack = Pack {
    name: NAME,
    manifest: include_str!("../../../packs/pgo/pack.yaml"),
    runbooks: &[
        (
            "promote-standby",
            include_str!("../../../packs/pgo/promote-standby.yaml"),
        ),
        (
            "recreate-standby",
            include_str!("../../../packs/pgo/recreate-standby.yaml"),
        ),
        (
            "pgo-switchover",
            include_str!("../../../packs/pgo/pgo-switchover.yaml"),
        ),
    ],
    history: || Arc::new(PgoHistory),
    // Its procedures are run by name (`pgo/promote-standby`): a PGO deployment still
    // runs the Keycloak pack's procedures, so detection never picks this one.
    detects: |_| false,
    diagnose,
    defaults: Defaults {
        primary: "site-a",
        secondary: "site-b",
        caches: super::keycloak_24::CACHES,
        down_path: "/health/down",
    },
    lab,
    answers: &[],
};

/// The Keycloak 24 deployment with PGO as its database: a primary cluster at the
/// first site, a standby cluster streaming from it at the second.
fn lab() -> lab::Shape {
    lab::Shape {
        database: lab::world::Database::Pgo,
        ..(super::keycloak_24::PACK.lab)()
    }
}

/// What the journal says: a site whose primary was taken over by `promote-standby`
/// and not recreated as a standby since is a former primary (`former_primaries`): it
/// must not be started again as it is.
#[derive(Debug)]
struct PgoHistory;

impl HistoryFacts for PgoHistory {
    fn pack(&self) -> &str {
        NAME
    }
    fn procedures(&self) -> &[&'static str] {
        &["promote-standby", "recreate-standby"]
    }
    fn facts(&self, runs: &[RunState]) -> Json {
        let mut former: Vec<String> = Vec::new();
        for r in runs.iter().filter(|r| r.status == RunStatus::Completed) {
            let p = |k: &str| {
                r.params
                    .get(k)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            match r.runbook.as_str() {
                "promote-standby" => {
                    let lost = p("lost");
                    if !former.contains(&lost) {
                        former.push(lost);
                    }
                }
                "recreate-standby" => former.retain(|s| *s != p("site")),
                _ => {}
            }
        }
        json!({"former_primaries": former})
    }
}

/// The database of every PGO site, judged: two writable primaries first of all.
fn diagnose(
    _registry: Arc<engine::Registry>,
    env: Arc<engine::env::Environment>,
    i: CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>> {
    Box::pin(async move {
        let ctx = super::pack::ctx_for(&env, &i.primary);
        let d = steps::pgo::deployment(&ctx).await;
        let verdict = steps::pgo::diagnosis(&d);
        let mut text = String::new();
        for s in d["sites"].as_array().into_iter().flatten() {
            let _ = writeln!(text, "{}", s["summary"].as_str().unwrap_or_default());
        }
        for (site, lag) in d["lag_bytes"].as_object().into_iter().flatten() {
            let _ = writeln!(
                text,
                "replay lag of {site}: {}",
                lag.as_u64()
                    .map_or("unknown".to_string(), |n| format!("{n} bytes of WAL"))
            );
        }
        let _ = writeln!(
            text,
            "replication across sites is asynchronous: on the loss of the writer's site, what the standby had not replayed is lost"
        );
        Diagnosis {
            verdict,
            observations: d,
            text,
        }
    })
}
