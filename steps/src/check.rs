//! What every pack's diagnosis of a deployment (`runbook check`) returns: its health,
//! the run it recommends as data, the reason and notes. The packs judge; the shape of
//! their judgement is shared, so `check` shows and compares every pack's the same way.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unreachable,
    /// The environment file or its credentials are wrong (a 401, a secret that does
    /// not resolve, no AWS credentials): not the deployment's state.
    Misconfigured,
    /// The secondary serves and the primary is back and in sync: a planned state
    /// (after a switchover), not an incident; switchback when ready.
    OnSecondary,
    /// A site taken out of traffic on purpose (a maintenance) and not back yet: the
    /// planned state, not an incident (the same exit code as `OnSecondary`).
    Planned,
}

/// A recommended run: the runbook and its parameters, as data (the CLI shows it as
/// `runbook run NAME -p k=v ...` and checks it against the runs in flight).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Invocation {
    pub runbook: String,
    pub params: Vec<(String, String)>,
}

impl Invocation {
    pub fn new(runbook: &str, params: &[(&str, &str)]) -> Invocation {
        Invocation {
            runbook: runbook.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `k=v` of each parameter, as `-p` takes them.
    pub fn pairs(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The parameters' values: the sites it names.
    pub fn values(&self) -> Vec<&str> {
        self.params.iter().map(|(_, v)| v.as_str()).collect()
    }
}

impl std::fmt::Display for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.runbook)?;
        for p in self.pairs() {
            write!(f, " -p {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub health: Health,
    /// The runbook to run (with its parameters), if any.
    pub runbook: Option<Invocation>,
    pub reason: String,
    pub notes: Vec<String>,
}
/// Whether an error is the configuration's (credentials refused, a reference that
/// does not resolve) rather than a server that does not answer.
pub fn is_configuration(e: &str) -> bool {
    [
        "answered 401",
        "answered 403",
        "credentials were refused",
        "which is not set",
        "cannot read the Infinispan password file",
        "gives no password",
        "gives no username",
        "has no key `password`",
        "no credentials",
        "no AWS credentials",
        "NoCredentials",
        "InvalidClientTokenId",
        "ExpiredToken",
        "AccessDenied",
    ]
    .iter()
    .any(|c| e.contains(c))
}
