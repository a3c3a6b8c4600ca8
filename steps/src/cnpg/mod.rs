//! CloudNativePG as a database vendor (`../shared/docs/cnpg.md`): a `Cluster` per
//! site in its distributed topology, one primary, the others replica clusters.
//!
//! - `cnpg.writer-check` (read-only): every site's Cluster and database, judged for a
//!   move (`judge.rs`): never two writable primaries (read from the databases), the
//!   target streaming and within the lag bound, the app secrets equal (by digest).
//! - `cnpg.switchover` (the `database.move-writer` role): demote the writer's Cluster
//!   (`spec.replica.primary` the target's, its old `promotionToken` cleared), wait for
//!   `status.demotionToken` and **journal it the moment it appears**
//!   (`StepCtx::record_progress`: a token the operator loses afterwards, #11074, no
//!   longer strands the move), check the demoted database refuses writes, promote the
//!   target in one patch (`primary` and `promotionToken`), wait until it reports the
//!   token as its last, writes, and is healthy; repoint every site's Keycloak. The way
//!   back is the same step at the other site.
//! - `cnpg.failover` (the `database.promote` role): the writer's site is lost: promote
//!   without a token (the data the replica had not received is lost: its last replayed
//!   position and time are journaled first), mark the former primary's Cluster a
//!   replica where its API answers, and say it must be rebuilt.

pub mod actions;
pub mod config;
pub mod judge;
pub mod read;
pub mod vendor;

pub use config::{section, CnpgDatabase};
