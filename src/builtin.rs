//! The runbooks built into the binary (the YAML files under `runbooks/`).

/// (name, text) of every built-in runbook.
pub fn runbooks() -> Vec<(&'static str, &'static str)> {
    vec![
        ("failover", include_str!("../runbooks/failover.yaml")),
        ("switchover", include_str!("../runbooks/switchover.yaml")),
        (
            "recover-passive-site",
            include_str!("../runbooks/recover-passive-site.yaml"),
        ),
        ("switchback", include_str!("../runbooks/switchback.yaml")),
    ]
}
