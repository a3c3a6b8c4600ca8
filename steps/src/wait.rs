//! `wait`: pause for a duration (e.g. for DNS to follow a health check change).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::args::{typed, Human};

#[derive(Debug)]
pub struct Wait;

/// `wait`'s arguments (`crate::args::typed`).
#[derive(Debug, serde::Deserialize)]
pub struct WaitArgs {
    pub duration: Human,
}

fn duration(args: &Args) -> Result<Duration, StepError> {
    Ok(typed::<WaitArgs>("wait", args)?.duration.0)
}

#[async_trait]
impl Action for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }
    fn summary(&self) -> &'static str {
        "pause for a duration"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[ArgSpec::required(
            "duration",
            ArgKind::Duration,
            "how long, e.g. `90s`",
        )];
        A
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(24 * 3600)
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        vec![format!(
            "wait {}",
            args.get("duration").and_then(Json::as_str).unwrap_or("?")
        )]
    }
    async fn probe(&self, _: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(json!({}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        if !ctx.interrupt.sleep(duration(args)?).await {
            return Err(StepError::transient("interrupted"));
        }
        Ok(Outputs::new())
    }
}

/// Wait until `f` says done (`Ok(Some)`), polling every `poll` (scaled by a lab's time
/// scale, ended early by Ctrl-C), within 90% of the step's time, so that the error
/// says what was last seen (`Err(seen)`) before the step's own timeout would.
///
/// # Errors
/// Not done in time, or interrupted.
pub async fn until<T, F, Fut>(
    ctx: &StepCtx,
    what: &str,
    poll: Duration,
    mut f: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    // Before the step's own timeout, so the answer says what was last seen.
    let deadline = Instant::now() + ctx.timeout.mul_f64(0.9);
    let mut last = String::new();
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(seen) => last = seen,
        }
        if Instant::now() >= deadline {
            return Err(StepError::transient(format!(
                "{what}: not within {} (last seen: {last})",
                humantime::format_duration(ctx.timeout)
            )));
        }
        if !ctx.interrupt.sleep(ctx.env.scaled_pause(poll)).await {
            return Err(StepError::transient(format!(
                "interrupted while waiting until {what}"
            )));
        }
    }
}
