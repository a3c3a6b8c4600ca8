//! The runbooks built into the binary (the YAML files under `runbooks/`).

/// (name, text) of every built-in runbook.
pub fn runbooks() -> Vec<(&'static str, &'static str)> {
    vec![]
}
