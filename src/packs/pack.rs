//! What a procedure pack is: the one shape every pack's module fills in (below them
//! all, so a pack uses it and the list of packs uses the packs).

use std::sync::Arc;

use engine::history::HistoryFacts;

/// What a pack assumes when a verb is not told (`check`'s site names and caches).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub primary: &'static str,
    pub secondary: &'static str,
    /// The caches the procedures act on and `check` compares.
    pub caches: &'static [&'static str],
    /// The path a failed-over primary's health check points at.
    pub down_path: &'static str,
}

/// What `check` asks a pack's diagnosis: the command line's choices, else the pack's
/// defaults.
#[derive(Clone)]
pub struct CheckInputs {
    pub primary: String,
    pub secondary: String,
    pub caches: Vec<String>,
    pub down_path: String,
    pub style: crate::progress::Style,
    /// The pack's reading of the journal (its `history` facts; its `none()` when no
    /// journal can be read).
    pub history: serde_json::Value,
}

/// A pack's reading of a deployment: its typed verdict (the recommended invocation
/// as data), what it read (`check --json`'s `observations`), and that as text.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub verdict: steps::check::Verdict,
    pub observations: serde_json::Value,
    pub text: String,
}

/// How a pack reads a deployment.
pub type Diagnose = fn(
    Arc<engine::Registry>,
    Arc<engine::env::Environment>,
    CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>>;

/// One pack.
#[derive(Clone, Copy)]
pub struct Pack {
    /// The directory name, e.g. `keycloak-24`.
    pub name: &'static str,
    /// `packs/NAME/pack.yaml`.
    pub manifest: &'static str,
    /// (name, text) of each runbook.
    pub runbooks: &'static [(&'static str, &'static str)],
    /// Its reading of the journal.
    pub history: fn() -> Arc<dyn HistoryFacts>,
    /// Whether an environment file describes a deployment of this pack's shape.
    pub detects: fn(&steps::config::EnvFile) -> bool,
    /// Its diagnosis of a deployment (`runbook check`).
    pub diagnose: Diagnose,
    pub defaults: Defaults,
    /// What its lab looks like (`runbook lab`, `run --lab`, rehearsals): sites, caches,
    /// the Infinispan version, before the command line's choices.
    pub lab: fn() -> lab::Shape,
    /// The alerts it answers (`runbook respond`), and how.
    pub answers: &'static [Answer],
}

/// An Alertmanager alert a pack answers (`runbook respond`): a firing one starts its
/// `firing` runbook, a resolved one journals its `resolved` runbook as a notice, each
/// with the alert's labels as parameters of the same names.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The alert's `alertname`.
    pub alert: &'static str,
    pub firing: &'static str,
    pub resolved: &'static str,
    /// The labels that name sites, each with what that site is to the alert ("the
    /// offline site"): each must be a site of the environment file, and no two the
    /// same (else the alert is another deployment's, or garbled: refused, journaled).
    pub site_labels: &'static [(&'static str, &'static str)],
    /// The other labels passed on (empty when absent).
    pub labels: &'static [&'static str],
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack").field("name", &self.name).finish()
    }
}

impl Pack {
    /// A manifest field (`version`, `title`, ...), as written.
    fn field(&self, key: &str) -> &'static str {
        self.manifest
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().trim_matches('"'))
            .unwrap_or("?")
    }

    pub fn title(&self) -> &'static str {
        self.field("title")
    }

    /// `keycloak-24 1.1.0`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.field("version"))
    }
}

/// A context to read a deployment with outside any run (`check`'s diagnoses), at
/// `site` of the environment file.
pub fn ctx_for(env: &Arc<engine::env::Environment>, site: &str) -> engine::StepCtx {
    engine::StepCtx {
        run_id: "check".into(),
        step_id: "check".into(),
        item: None,
        site: env.sites.get(site).map(|c| engine::Site {
            name: site.to_string(),
            config: c.clone(),
        }),
        env: Arc::clone(env),
        timeout: std::time::Duration::from_secs(20),
        interrupt: Default::default(),
        progress: Default::default(),
    }
}
