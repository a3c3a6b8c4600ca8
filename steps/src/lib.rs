//! The step actions a runbook can name. Each one talks to a real API and fulfils the
//! engine's contract (`engine::Action`): describe, probe, prepare, apply, and its
//! postcondition, with an honest effect class.

pub mod accelerator;
pub mod args;
pub mod aurora;
pub mod check;
pub mod clients;
pub mod cnpg;
pub mod config;
pub mod guarantees;
pub mod haproxy;
pub mod http;
pub mod identity;
pub mod infinispan;
pub mod invariants;
pub mod keycloak;
pub mod latency;
pub mod ledger;
pub mod manual;
pub mod pgo;
pub mod preflight;
pub mod roles;
pub mod route53;
pub mod text;
pub mod vendor;
pub mod vendors;
pub mod wait;

use engine::Registry;

/// The environment file's schema: the fixed sections and every vendor's.
pub fn schema() -> config::Schema {
    config::Schema {
        vendors: vendors::sections(),
    }
}

/// Every action this build knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    clients::install_crypto();
    r.set_env_schema(std::sync::Arc::new(schema()));
    r.register(http::HttpRequest::new());
    r.register(http::Expect::new());
    r.register(wait::Wait);
    r.register(manual::Confirm);
    r.register(infinispan::actions::SiteStatus);
    r.register(infinispan::actions::SetBackup(
        &infinispan::actions::TAKE_OFFLINE,
    ));
    r.register(infinispan::actions::SetBackup(
        &infinispan::actions::BRING_ONLINE,
    ));
    r.register(infinispan::actions::ClearCaches);
    r.register(infinispan::actions::PushState);
    r.register(infinispan::actions::ClearPushStateStatus);
    r.register(infinispan::actions::CancelPushState);
    r.register(infinispan::actions::SyncState);
    r.register(infinispan::view::CrossSiteView);
    r.register(keycloak::Scale);
    r.register(latency::DbLatency);
    for v in vendors::all() {
        for a in v.actions() {
            r.register_arc(a);
        }
        engine::action::register_permanent_codes(v.permanent_codes());
    }
    r.register(preflight::Identity);
    r.register(preflight::CacheList);
    for role in roles::all() {
        r.register(role);
    }
    r.register(invariants::Invariant);
    let builtin = preflight::Builtin::new(&r);
    r.set_builtin_guards(std::sync::Arc::new(builtin));
    r.set_ledger(std::sync::Arc::new(ledger::Ledger));
    r
}

#[cfg(test)]
mod tests {
    use engine::{ArgKind, Args};
    use serde_json::{json, Value as Json};

    use crate::args::{fields_of, typed, Reader};

    fn reader<T: serde::de::DeserializeOwned>() -> (&'static [&'static str], Reader) {
        (fields_of::<T>(), |a: &Args| {
            typed::<T>("test", a).map(|_| ())
        })
    }

    /// Each action's typed arguments, by action name.
    fn typed_args(name: &str) -> Option<(&'static [&'static str], Reader)> {
        use crate::infinispan::actions as i;
        Some(match name {
            "http.request" => reader::<crate::http::RequestArgs>(),
            "http.expect" => reader::<crate::http::ExpectArgs>(),
            "wait" => reader::<crate::wait::WaitArgs>(),
            "manual.confirm" => reader::<crate::manual::ConfirmArgs>(),
            "infinispan.site-status" | "infinispan.cancel-push-state" => reader::<i::BackupArgs>(),
            "infinispan.take-offline" | "infinispan.bring-online" => reader::<i::SetBackupArgs>(),
            "infinispan.clear-caches" => reader::<i::ClearArgs>(),
            "infinispan.push-state" => reader::<i::PushArgs>(),
            "infinispan.clear-push-state-status" => reader::<i::ClearStatusArgs>(),
            "infinispan.sync-state" => reader::<i::SyncArgs>(),
            "keycloak.scale" => reader::<crate::keycloak::ScaleArgs>(),
            "keycloak.db-latency" => reader::<crate::latency::LatencyArgs>(),
            "aurora.failover" => reader::<crate::aurora::FailoverArgs>(),
            "route53.set-health-check-path" | "traffic.point-away" | "traffic.restore" => {
                reader::<crate::route53::SetPathArgs>()
            }
            "database.move-writer"
            | "database.promote"
            | "pgo.move-writer"
            | "pgo.promote-standby" => reader::<crate::aurora::FailoverArgs>(),
            "pgo.writer-check" => reader::<crate::pgo::CheckArgs>(),
            "cnpg.writer-check" => reader::<crate::cnpg::actions::CheckArgs>(),
            "cnpg.switchover" | "cnpg.failover" => reader::<crate::aurora::FailoverArgs>(),
            "pgo.switchover" => reader::<crate::pgo::SwitchoverArgs>(),
            "pgo.cluster-state" | "pgo.recreate-as-standby" => reader::<crate::args::NoArgs>(),
            "route53.health-check-status" => reader::<crate::route53::StatusArgs>(),
            "deployment.identity" => reader::<crate::preflight::IdentityArgs>(),
            "deployment.invariant" => reader::<crate::invariants::InvariantArgs>(),
            "infinispan.cache-list" => reader::<crate::preflight::CacheListArgs>(),
            "accelerator.serving-sites"
            | "accelerator.remove-site"
            | "accelerator.add-site"
            | "traffic.serving-sites"
            | "traffic.remove-site"
            | "traffic.add-site" => reader::<crate::args::NoArgs>(),
            "infinispan.cross-site-view" | "route53.serving-site" | "traffic.serving-site" => {
                reader::<crate::args::NoArgs>()
            }
            _ => return None,
        })
    }

    fn sample(kind: ArgKind) -> Json {
        match kind {
            ArgKind::String => json!("x"),
            ArgKind::Int => json!(3),
            ArgKind::Bool => json!(true),
            ArgKind::Duration => json!("5s"),
            ArgKind::List => json!(["a"]),
            ArgKind::Object | ArgKind::Any => json!({}),
        }
    }

    #[test]
    fn every_action_reads_the_arguments_its_spec_declares() {
        let registry = crate::registry();
        for name in registry.names() {
            let action = registry.get(name).unwrap();
            // An action that takes no arguments reads them as `NoArgs` (which refuses
            // any); the others are in the table.
            let (fields, read) = typed_args(name)
                .or_else(|| action.args().is_empty().then(reader::<crate::args::NoArgs>))
                .unwrap_or_else(|| panic!("`{name}` has no typed arguments in this table"));
            let mut declared: Vec<&str> = action.args().iter().map(|s| s.name).collect();
            let mut typed_fields = fields.to_vec();
            declared.sort_unstable();
            typed_fields.sort_unstable();
            assert_eq!(
                declared, typed_fields,
                "`{name}`: spec and type name other arguments"
            );
            let all: Args = action
                .args()
                .iter()
                .map(|s| (s.name.to_string(), sample(s.kind)))
                .collect();
            read(&all).unwrap_or_else(|e| panic!("`{name}` every argument: {e}"));
            let required: Args = action
                .args()
                .iter()
                .filter(|s| s.required)
                .map(|s| (s.name.to_string(), sample(s.kind)))
                .collect();
            read(&required).unwrap_or_else(|e| panic!("`{name}` required only: {e}"));
            for missing in action.args().iter().filter(|s| s.required) {
                let mut short = required.clone();
                short.remove(missing.name);
                assert!(
                    read(&short).is_err(),
                    "`{name}`: `{}` is required by the spec, optional in the type",
                    missing.name
                );
            }
        }
    }
}
