//! The step actions a runbook can name. Each one talks to a real API and fulfils the
//! engine's contract (`engine::Action`): describe, probe, prepare, apply, and its
//! postcondition, with an honest effect class.

pub mod args;
pub mod aurora;
pub mod check;
pub mod clients;
pub mod http;
pub mod infinispan;
pub mod keycloak;
pub mod manual;
pub mod route53;
pub mod serving;
pub mod text;
pub mod wait;

use engine::Registry;

/// Every action this build knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    clients::install_crypto();
    r.register(http::HttpRequest::new());
    r.register(http::Expect::new());
    r.register(wait::Wait);
    r.register(manual::Confirm);
    r.register(infinispan::actions::SiteStatus);
    r.register(infinispan::actions::SetBackup { online: false });
    r.register(infinispan::actions::SetBackup { online: true });
    r.register(infinispan::actions::ClearCaches);
    r.register(infinispan::actions::PushState);
    r.register(infinispan::actions::ClearPushStateStatus);
    r.register(infinispan::actions::CancelPushState);
    r.register(infinispan::actions::SyncState);
    r.register(infinispan::view::CrossSiteView);
    r.register(keycloak::Scale);
    r.register(aurora::Failover);
    r.register(route53::SetPath);
    r.register(route53::Status);
    r.register(serving::ServingSite);
    r
}
