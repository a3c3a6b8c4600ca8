//! The Keycloak 24 pack: the four procedures of the Keycloak 24 multi-site guide
//! (external Infinispan 14 / Data Grid 8.4 with cross-site replication, Aurora,
//! Route53 failover), its reading of the journal (`history.rs`) and its
//! defaults, and its diagnosis of a deployment (`observe.rs` reads, `verdict.rs`
//! judges, `check.rs` shows).

use std::sync::Arc;

use super::pack::{Defaults, Pack};

pub mod check;
pub mod history;
pub mod observe;
pub mod verdict;

pub use history::NAME;

/// The caches of the Keycloak 24 guide, all backed up to the other site.
pub const CACHES: &[&str] = &[
    "actionTokens",
    "authenticationSessions",
    "clientSessions",
    "loginFailures",
    "offlineClientSessions",
    "offlineSessions",
    "sessions",
    "work",
];

pub const PACK: Pack = Pack {
    name: NAME,
    manifest: include_str!("../../../packs/keycloak-24/pack.yaml"),
    runbooks: &[
        (
            "failover",
            include_str!("../../../packs/keycloak-24/failover.yaml"),
        ),
        (
            "switchover",
            include_str!("../../../packs/keycloak-24/switchover.yaml"),
        ),
        (
            "recover-passive-site",
            include_str!("../../../packs/keycloak-24/recover-passive-site.yaml"),
        ),
        (
            "switchback",
            include_str!("../../../packs/keycloak-24/switchback.yaml"),
        ),
    ],
    history: || Arc::new(history::Keycloak24),
    // The first pack: chosen when nothing else is said, never by detection.
    detects: |_| false,
    diagnose: check::diagnose,
    defaults: Defaults {
        primary: "site-a",
        secondary: "site-b",
        caches: CACHES,
        down_path: "/health/down",
    },
    lab,
    answers: &[],
};

/// The deployment the Keycloak 24 guide describes: two sites of 3 Infinispan 14 nodes
/// (Data Grid 8.4) backing up the 8 caches, 3 Keycloak instances each, Route53
/// failover records in front and an Aurora cluster behind.
fn lab() -> lab::Shape {
    lab::Shape {
        sites: [PACK.defaults.primary.into(), PACK.defaults.secondary.into()],
        nodes_per_site: 3,
        caches: CACHES.iter().map(|c| c.to_string()).collect(),
        keycloak_instances: 3,
        infinispan_version: 14,
        ..lab::Shape::default()
    }
}
