//! The names of the invariants actions carry, and what each guarantees (the plan,
//! the table in docs/safety.md). A leaf: the actions name their invariants from here, and
//! `invariants.rs` judges them.

pub const CLEAR: &str = "clear-caches";
pub const SCALE_TO_ZERO: &str = "scale-to-zero";
pub const TAKE_OFFLINE: &str = "take-offline";
pub const ADD: &str = "add-to-traffic";
pub const REMOVE: &str = "remove-from-traffic";
pub const PROMOTE: &str = "promote-unplanned";

/// What each invariant guarantees, as the plan and docs/safety.md say it.
pub const ALL: &[(&str, &str)] = &[
    (CLEAR, "the site does not serve traffic, and each cache's backup to every other site is offline (else the clear reaches the other site too)"),
    (SCALE_TO_ZERO, "Keycloak is never scaled to 0 on the only site that serves"),
    (TAKE_OFFLINE, "replication is never taken offline between two sites that both serve"),
    (ADD, "the site was synchronized since it last left traffic (the journal, every pack and runbook file), and its replication is online both ways"),
    (REMOVE, "another site serves or is ready to take over (a healthy failover target): removing never leaves no site serving"),
    (PROMOTE, "no other site serves traffic: a site that serves is not lost (move its writer as a planned operation instead)"),
];

/// A built-in guard: read-only `probe` with `with`, judged by `expect`, refusing with
/// the observation's summary.
pub fn builtin_guard(
    id: &str,
    title: &str,
    probe: &str,
    with: serde_json::Value,
    expect: &str,
) -> engine::model::Guard {
    engine::model::Guard {
        id: id.to_string(),
        title: title.to_string(),
        probe: Some(probe.to_string()),
        site: None,
        with,
        expect: expect.to_string(),
        when: None,
        refusal: Some("{{ observation.summary }}".to_string()),
        before: Vec::new(),
        unchecked: None,
        deferred: None,
        line: 0,
    }
}

/// A step's site as a template expression (`{{ params.site }}` → `params.site`; a
/// literal name quoted), for a guard's `when` and `expect`.
pub fn site_expression(site: &str) -> String {
    site.trim()
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .map(|e| e.trim().to_string())
        .unwrap_or_else(|| format!("{site:?}"))
}
