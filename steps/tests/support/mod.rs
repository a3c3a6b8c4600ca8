//! Running small runbooks through the real engine against a lab started in-process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::env::Environment;
use engine::executor::Outcome;
use engine::journal::Journal;
use engine::report::{Interrupt, Silent};
use engine::runner::{NewRun, Services};
use engine::state::RunState;

use runbook_steps as steps;
use serde_json::Value;

pub struct Lab {
    pub running: lab::RunningLab,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Lab {
    pub async fn start(faults: &[&str]) -> Lab {
        Lab::start_playing(faults, 14).await
    }

    /// A lab that plays Infinispan `version` (14 or 15).
    pub async fn start_playing(faults: &[&str], version: u8) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let running = lab::start(lab::testing::config(dir.path(), faults, version))
            .await
            .unwrap();
        Lab {
            running,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// The lab's env.yaml with `edit` applied (e.g. switch a site to the Batch transport).
    pub fn env_with(&self, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
        let text = std::fs::read_to_string(&self.running.env_file).unwrap();
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        edit(&mut doc);
        let p = self.dir.path().join(name);
        std::fs::write(&p, serde_yaml::to_string(&doc).unwrap()).unwrap();
        p
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}/admin/state", self.running.admin_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn entries(&self, site: &str, cache: &str) -> u64 {
        self.state().await["sites"][site]["caches"][cache]["entries"]
            .as_u64()
            .unwrap()
    }

    pub async fn sessions(&self, site: &str, count: u32) {
        self.http
            .post(format!(
                "{}/admin/sessions?count={count}&site={site}",
                self.running.admin_url()
            ))
            .send()
            .await
            .unwrap();
    }

    pub async fn fault(&self, spec: &str) {
        self.http
            .post(format!("{}/admin/faults", self.running.admin_url()))
            .body(spec.to_string())
            .send()
            .await
            .unwrap();
    }

    pub async fn lift(&self) {
        self.http
            .delete(format!("{}/admin/faults", self.running.admin_url()))
            .send()
            .await
            .unwrap();
    }

    pub fn requests(&self, site: &str) -> Vec<String> {
        self.running
            .shared
            .lock()
            .requests
            .get(site)
            .cloned()
            .unwrap_or_default()
    }
}

/// Run a runbook text against an environment file; the outcome and the run's state.
pub async fn run(env_file: &Path, yaml: &str, params: &[(&str, &str)]) -> (Outcome, RunState) {
    let registry = steps::registry();
    let runbook =
        engine::load::load_str(yaml, "test.yaml", &registry).unwrap_or_else(|e| panic!("{e}"));
    let given: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (params, secrets) = engine::params::resolve(&runbook, &given, |_| None).unwrap();
    let env = Environment::load(env_file, &steps::schema()).unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let journal = Journal::open(jdir.path()).unwrap();
    let services = Services {
        registry: Arc::new(registry),
        observer: Arc::new(Silent),
        prompt: None,
        interrupt: Interrupt::new(),
    };
    let (id, outcome) = engine::runner::start(
        journal.clone(),
        &services,
        NewRun {
            runbook,
            env,
            params,
            secrets,
            program: None,
            traffic: None,
        },
    )
    .await
    .unwrap();
    let state = engine::runner::run_state(&journal, id).unwrap();
    (outcome, state)
}

#[track_caller]
pub fn completed(o: &(Outcome, RunState)) {
    assert_eq!(
        o.0.status,
        engine::state::RunStatus::Completed,
        "{:?}",
        o.0.reason
    );
}
