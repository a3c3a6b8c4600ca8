//! End-to-end tests of the `runbook` binary against a recording HTTP service on
//! 127.0.0.1.

// A scenario reads better whole: the 100-line limit is for production code.
#![allow(clippy::too_many_lines)]

mod support;

mod bench;
mod bridge;
mod browser;
mod catalog;
mod chain;
mod check;
pub mod cnpg;
mod crash;
mod disk;
mod docs;
mod durable;
mod edges;
mod first_contact;
mod guards;
mod haproxy;
mod invariants;
pub mod keycloak26;
mod lab;
mod latency;
mod layers;
mod locks;
mod output;
mod packs;
mod permissions;
mod pgo;
mod plan;
mod plan_calls;
mod plan_snapshots;
mod procedure_crashes;
mod procedures;
mod readiness;
mod readme;
mod report;
mod respond;
mod run;
mod secrets;
mod status;
pub mod team;
mod v2;
mod validate;
