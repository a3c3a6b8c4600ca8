//! The `cnpg` pack: what only CloudNativePG needs beside the Keycloak procedures
//! (`cnpg-rejoin`, the rebuild of a former primary whose timeline forked), and its
//! diagnosis of the database for `check --pack cnpg`. Moving the writer, failing over
//! and back are the database role's, which the Keycloak 26 procedures name.

use std::fmt::Write;
use std::sync::Arc;

use engine::history::HistoryFacts;
use engine::state::RunState;
use serde_json::{json, Value as Json};

use super::pack::{CheckInputs, Defaults, Diagnosis, Pack};

pub const NAME: &str = "cnpg";

pub const PACK: Pack = Pack {
    name: NAME,
    manifest: include_str!("../../../packs/cnpg/pack.yaml"),
    runbooks: &[(
        "cnpg-rejoin",
        include_str!("../../../packs/cnpg/cnpg-rejoin.yaml"),
    )],
    history: || Arc::new(CnpgHistory),
    // Run by name (`cnpg/cnpg-rejoin`): a CloudNativePG deployment runs the Keycloak
    // pack's procedures, so detection never picks this one.
    detects: |_| false,
    diagnose,
    defaults: Defaults {
        primary: "site-a",
        secondary: "site-b",
        caches: &[],
        down_path: "/health/down",
    },
    lab,
    answers: &[],
};

/// Keycloak 26 stateless behind HAProxy with CloudNativePG across the two sites: a
/// primary Cluster at the first, a replica Cluster streaming from it at the second.
fn lab() -> lab::Shape {
    lab::Shape {
        traffic: lab::world::Traffic::Haproxy,
        database: lab::world::Database::Cnpg,
        infinispan_version: 15,
        stateless: true,
        caches: Vec::new(),
        ..lab::Shape::default()
    }
}

/// Nothing of its own runs is a fact another procedure needs: the database itself says
/// which site writes and which follows.
#[derive(Debug)]
struct CnpgHistory;

impl HistoryFacts for CnpgHistory {
    fn pack(&self) -> &str {
        NAME
    }
    fn procedures(&self) -> &[&'static str] {
        &["cnpg-rejoin"]
    }
    fn facts(&self, _runs: &[RunState]) -> Json {
        json!({})
    }
}

/// Every CloudNativePG site's database, judged: two writable primaries first of all,
/// then a site that does not follow the writer (the rebuild it needs).
fn diagnose(
    _registry: Arc<engine::Registry>,
    env: Arc<engine::env::Environment>,
    i: CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>> {
    Box::pin(async move {
        let ctx = super::pack::ctx_for(&env, &i.primary);
        let views = steps::cnpg::read::all(&ctx).await;
        let (verdict, observations) = steps::cnpg::judge::diagnosis(&views);
        let mut text = String::new();
        for s in observations["sites"].as_array().into_iter().flatten() {
            let _ = writeln!(text, "{}", s["summary"].as_str().unwrap_or_default());
        }
        Diagnosis {
            verdict,
            observations,
            text,
        }
    })
}
