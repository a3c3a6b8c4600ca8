//! What the tests of the engine and of everything built on it share (feature
//! `test-support`; never in the shipped library): a run's first event, a stub action
//! that declares any name, arguments and effect and does nothing, and the storage
//! contract suite (`suite`) a new store runs unchanged.

use serde_json::Value as Json;

use crate::action::{Action, ArgSpec, Args, Outputs, StepCtx, StepError};
use crate::event::{Actor, Event};
use crate::model::Effect;

pub mod suite;

/// A `run_created` of `runbook` (its source a runbook of no steps) with `params`, by
/// this process's operator, at `at`.
pub fn run_created(runbook: &str, params: Json, at: u64) -> Event {
    Event::RunCreated {
        runbook: runbook.into(),
        title: runbook.into(),
        origin: "test".into(),
        source: format!("name: {runbook}\nsteps: []\n"),
        source_hash: String::new(),
        params: params.as_object().cloned().unwrap_or_default(),
        secret_params: vec![],
        env_file: None,
        env_digest: String::new(),
        lab: false,
        pack: None,
        traffic: None,
        program: None,
        by: Actor::current(),
        at,
    }
}

/// An action that validates like a real one (its name, arguments, outputs and
/// effect are declared) and does nothing: probes answer `null`, applies no outputs.
#[derive(Debug, Clone, Copy)]
pub struct Stub {
    pub name: &'static str,
    pub args: &'static [ArgSpec],
    pub outputs: &'static [&'static str],
    pub effect: Effect,
}

impl Stub {
    /// A stub with no arguments and no outputs.
    pub const fn new(name: &'static str, effect: Effect) -> Stub {
        Stub {
            name,
            args: &[],
            outputs: &[],
            effect,
        }
    }
}

#[async_trait::async_trait]
impl Action for Stub {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        "stub (does nothing)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        self.args
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(self.outputs)
    }
    fn effect(&self, _: &Args) -> Effect {
        self.effect
    }
    fn describe(&self, _: &StepCtx, _: &Args) -> Vec<String> {
        vec!["nothing".into()]
    }
    async fn probe(&self, _: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(Json::Null)
    }
    async fn apply(&self, _: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(Outputs::new())
    }
}
