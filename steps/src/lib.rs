//! The step actions a runbook can name. Each one talks to a real API and fulfils the
//! engine's contract (`engine::Action`): describe, probe, prepare, apply, and its
//! postcondition, with an honest effect class.

pub mod http;
pub mod manual;
pub mod wait;

use engine::Registry;

/// Every action this build knows.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(http::HttpRequest::new());
    r.register(wait::Wait);
    r.register(manual::Confirm);
    r
}
