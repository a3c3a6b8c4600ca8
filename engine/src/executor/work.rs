//! One step or item being worked on: the data every part of its handling reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::Executor;
use crate::action::{Action, StepCtx};
use crate::model::{Args, Effect, Step};
use crate::state::Progress;

/// One step or item being worked on, with everything its attempts need.
pub(super) struct Item {
    pub index: usize,
    pub key: Option<String>,
    /// `step` or `step[item]`.
    pub label: String,
    pub action: Arc<dyn Action>,
    pub args: Args,
    pub scope: Json,
    pub ctx: StepCtx,
    pub effect: Effect,
    pub timeout: Duration,
    pub started: Instant,
    /// What the journal holds of it so far.
    pub prior: Progress,
}

impl Executor {
    pub(super) fn step_of(&self, item: &Item) -> &Step {
        &self.runbook.steps[item.index]
    }
}
