//! `manual.confirm`: a gate a person passes, at the terminal or with
//! `runbook resume RUN --approve STEP` once the instructions are carried out.

use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

/// `manual.confirm`'s arguments (`crate::args::typed`).
#[derive(Debug, serde::Deserialize)]
pub struct ConfirmArgs {
    pub instructions: String,
}

#[derive(Debug)]
pub struct Confirm;

#[async_trait]
impl Action for Confirm {
    fn name(&self) -> &'static str {
        "manual.confirm"
    }
    fn summary(&self) -> &'static str {
        "halt until a person confirms the instructions were carried out"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[ArgSpec::required(
            "instructions",
            ArgKind::String,
            "what the person must do or check",
        )];
        A
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        vec![format!(
            "ask a person: {}",
            args.get("instructions")
                .and_then(Json::as_str)
                .unwrap_or_default()
        )]
    }
    fn gate(&self, args: &Args) -> Option<String> {
        Some(
            crate::args::typed::<ConfirmArgs>(self.name(), args)
                .map(|a| a.instructions)
                .unwrap_or_default(),
        )
    }
    async fn probe(&self, _: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(json!({}))
    }
    async fn apply(&self, _: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(Outputs::new())
    }
}
