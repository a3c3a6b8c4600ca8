//! Route53 health checks: `route53.set-health-check-path` (record the previous path,
//! update under the HealthCheckVersion lock, optionally wait for the health Route53
//! reports) and `route53.health-check-status` (read).

use serde::Deserialize;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::error::ProvideErrorMetadata;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::args::{dur_arg, str_arg, typed, Human};
use crate::clients::{aws_config, site_config};

pub mod config;
pub mod serving;
pub mod vendor;

/// `route53.set-health-check-path`'s arguments (`crate::args::typed`).
#[derive(Debug, Deserialize)]
pub struct SetPathArgs {
    pub path: String,
    #[serde(default)]
    pub health_check_id: Option<String>,
    #[serde(default)]
    pub wait_for: Option<String>,
    #[serde(default)]
    pub poll: Option<Human>,
}

/// `route53.health-check-status`'s arguments.
#[derive(Debug, Deserialize)]
pub struct StatusArgs {
    #[serde(default)]
    pub health_check_id: Option<String>,
}

fn check_id(ctx: &StepCtx, given: Option<&str>) -> Result<String, StepError> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    let (site, cfg) = site_config(ctx)?;
    config::section(&cfg)
        .map(|r| r.health_check_id.clone())
        .ok_or_else(|| {
            StepError::permanent(format!(
                "site `{site}` has no traffic.route53.health_check_id in the environment file"
            ))
        })
}

/// A Route53 error as a step error: the call, the code and the message; codes that
/// will not change are permanent.
pub(crate) fn r53_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    call: &str,
    e: aws_sdk_route53::error::SdkError<E, R>,
) -> StepError {
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string);
    let text = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("")
        ),
        None => {
            let context = format!("{}", aws_sdk_route53::error::DisplayErrorContext(&e));
            if let Some(hint) = crate::clients::no_credentials(&context) {
                return StepError::permanent(format!("{call}: {hint}"));
            }
            context
        }
    };
    let msg = format!("{call} failed: {text}");
    match code.as_deref() {
        // Retried or not by its code (`ErrorKind::retryable`).
        Some(code) => StepError::aws(code, msg),
        None => StepError::transient(msg),
    }
}

async fn client(ctx: &StepCtx) -> Result<aws_sdk_route53::Client, StepError> {
    Ok(aws_sdk_route53::Client::new(&aws_config(&ctx.env).await?))
}

/// Path, version and (from the checkers) health of a health check.
async fn read(ctx: &StepCtx, id: &str) -> Result<Json, StepError> {
    let r53 = client(ctx).await?;
    let hc = r53
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| r53_error(&format!("Route53 GetHealthCheck({id})"), e))?;
    let h = hc.health_check().ok_or_else(|| {
        StepError::transient(format!(
            "Route53 GetHealthCheck({id}) returned no health check"
        ))
    })?;
    let path = h
        .health_check_config()
        .and_then(|c| c.resource_path())
        .unwrap_or("")
        .to_string();
    let st = r53
        .get_health_check_status()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| r53_error(&format!("Route53 GetHealthCheckStatus({id})"), e))?;
    let reports: Vec<String> = st
        .health_check_observations()
        .iter()
        .filter_map(|o| {
            o.status_report()
                .and_then(|r| r.status())
                .map(str::to_string)
        })
        .collect();
    let ok = reports.iter().filter(|r| r.starts_with("Success")).count();
    // Route53 considers a check healthy when more than 18% of the checkers do.
    let healthy = (!reports.is_empty()).then(|| ok as f64 / reports.len() as f64 > 0.18);
    Ok(json!({
        "health_check_id": id,
        "path": path,
        "version": h.health_check_version(),
        "healthy": healthy,
        "observations": reports,
    }))
}

#[derive(Debug)]
pub struct SetPath;

#[async_trait]
impl Action for SetPath {
    fn impact(&self, ctx: &StepCtx, args: &Args) -> Option<(engine::action::ImpactKind, String)> {
        let site = ctx.site_name();
        let path = args.get("path").and_then(Json::as_str).unwrap_or("?");
        let text = match args.get("wait_for").and_then(Json::as_str) {
            Some("healthy") => format!("points {site}'s health check at {path}: Route53 sends traffic back to {site}"),
            Some("unhealthy") => format!("points {site}'s health check at {path}: Route53 moves traffic away from {site} to the other site"),
            _ => format!("points {site}'s health check at {path}: Route53 may move traffic"),
        };
        Some((engine::action::ImpactKind::MovesTraffic, text))
    }
    fn name(&self) -> &'static str {
        "route53.set-health-check-path"
    }
    fn summary(&self) -> &'static str {
        "point a Route53 health check at a path (recording the previous one), under the version lock; optionally wait for the health Route53 reports"
    }
    /// Either way, by `wait_for`: `unhealthy` moves traffic away, `healthy` back.
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::ADD, crate::guarantees::REMOVE]
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required("path", ArgKind::String, "the new resource path, e.g. `/health/down`"),
            ArgSpec::optional("health_check_id", ArgKind::String, "default: the site's traffic.route53.health_check_id"),
            ArgSpec::optional("wait_for", ArgKind::String, "`healthy` or `unhealthy`: wait until Route53 reports it"),
            ArgSpec::optional("poll", ArgKind::Duration, "longest pause between status reads (default 30s; the status API is for gentle use)"),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["previous_path", "version"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(900)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(30)).unwrap_or(Duration::from_secs(30))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let id = check_id(ctx, str_arg(args, "health_check_id")).unwrap_or_else(|e| e.message);
        let mut lines = vec![
            format!("Route53 GetHealthCheck(HealthCheckId={id}) (record the path and version)"),
            format!("Route53 UpdateHealthCheck(HealthCheckId={id}, ResourcePath={}, HealthCheckVersion=<read>)", str_arg(args, "path").unwrap_or("?")),
        ];
        if let Some(w) = str_arg(args, "wait_for") {
            lines.push(format!(
                "then Route53 GetHealthCheckStatus(HealthCheckId={id}) until {w}"
            ));
        }
        lines
    }
    fn postcondition(&self, _: &StepCtx, args: &Args) -> Option<String> {
        let mut p = format!(
            "the health check's path is `{}`",
            str_arg(args, "path").unwrap_or("?")
        );
        if let Some(w) = str_arg(args, "wait_for") {
            p.push_str(&format!(" and Route53 reports it {w}"));
        }
        Some(p)
    }
    fn satisfied(&self, args: &Args, o: &Json) -> bool {
        if o["path"].as_str() != str_arg(args, "path") {
            return false;
        }
        match str_arg(args, "wait_for") {
            Some("healthy") => o["healthy"] == true,
            Some("unhealthy") => o["healthy"] == false,
            _ => true,
        }
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        let health = match o["healthy"].as_bool() {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "of unknown health",
        };
        let last = o["observations"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Json::as_str)
            .map(|s| format!(" (a checker: {s})"))
            .unwrap_or_default();
        Some(format!(
            "the path is `{}` and Route53 reports it {health}{last}",
            o["path"].as_str().unwrap_or("?")
        ))
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: SetPathArgs = typed(self.name(), args)?;
        read(ctx, &check_id(ctx, a.health_check_id.as_deref())?).await
    }
    async fn prepare(&self, ctx: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
        let a: SetPathArgs = typed(self.name(), args)?;
        if let Some(w) = &a.wait_for {
            if w != "healthy" && w != "unhealthy" {
                return Err(StepError::permanent(format!(
                    "`wait_for` must be `healthy` or `unhealthy`, not `{w}`"
                )));
            }
        }
        let v = read(ctx, &check_id(ctx, a.health_check_id.as_deref())?).await?;
        let mut out = Outputs::new();
        out.insert("previous_path".into(), v["path"].clone());
        // Which way traffic moves, for the deployment's ledger (every pack, every
        // file), journaled with the intent: true once the step succeeds.
        let fact = match a.wait_for.as_deref() {
            Some("unhealthy") => Some(crate::ledger::LEFT),
            Some("healthy") => Some(crate::ledger::JOINED),
            _ => None,
        };
        if let (Some(fact), Ok(site)) = (fact, ctx.require_site()) {
            crate::ledger::record(&mut out, &site.name, fact);
        }
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        set_path(ctx, args).await
    }
}

/// Point the health check at `path` under its version lock.
async fn set_path(ctx: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
    let a: SetPathArgs = typed("route53.set-health-check-path", args)?;
    let id = check_id(ctx, a.health_check_id.as_deref())?;
    let path = a.path.as_str();
    let r53 = client(ctx).await?;
    // Read the version, update under it; one more try if someone else changed it in between.
    for attempt in 0..2 {
        let hc = r53
            .get_health_check()
            .health_check_id(&id)
            .send()
            .await
            .map_err(|e| r53_error(&format!("Route53 GetHealthCheck({id})"), e))?;
        let h = hc
            .health_check()
            .ok_or_else(|| StepError::transient("GetHealthCheck returned nothing"))?;
        let mut out = Outputs::new();
        if h.health_check_config().and_then(|c| c.resource_path()) == Some(path) {
            out.insert("version".into(), json!(h.health_check_version()));
            return Ok(out);
        }
        match r53
            .update_health_check()
            .health_check_id(&id)
            .health_check_version(h.health_check_version())
            .resource_path(path)
            .send()
            .await
        {
            Ok(up) => {
                out.insert(
                    "version".into(),
                    json!(up.health_check().map(|h| h.health_check_version())),
                );
                return Ok(out);
            }
            Err(e)
                if attempt == 0
                    && e.as_service_error()
                        .is_some_and(|s| s.is_health_check_version_mismatch()) =>
            {
                tracing::info!("health check {id} changed while updating it: reading it again");
            }
            Err(e) => {
                return Err(r53_error(
                    &format!("Route53 UpdateHealthCheck({id}, ResourcePath={path})"),
                    e,
                ))
            }
        }
    }
    Err(StepError::transient(format!(
        "Route53 UpdateHealthCheck({id}): the version kept changing"
    )))
}

#[derive(Debug)]
pub struct Status;

#[async_trait]
impl Action for Status {
    fn name(&self) -> &'static str {
        "route53.health-check-status"
    }
    fn summary(&self) -> &'static str {
        "read a Route53 health check: path, version, and the health its checkers report"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[ArgSpec::optional(
            "health_check_id",
            ArgKind::String,
            "default: the site's traffic.route53.health_check_id",
        )];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "path",
            "version",
            "healthy",
            "observations",
            "health_check_id",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let id = check_id(ctx, str_arg(args, "health_check_id")).unwrap_or_else(|e| e.message);
        vec![format!(
            "Route53 GetHealthCheck + GetHealthCheckStatus(HealthCheckId={id})"
        )]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: StatusArgs = typed(self.name(), args)?;
        read(ctx, &check_id(ctx, a.health_check_id.as_deref())?).await
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: StatusArgs = typed(self.name(), args)?;
        Ok(read(ctx, &check_id(ctx, a.health_check_id.as_deref())?)
            .await?
            .as_object()
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_check_not_yet_down_says_what_route53_sees() {
        let args = json!({"path": "/health/down", "wait_for": "unhealthy"})
            .as_object()
            .cloned()
            .unwrap();
        let o = json!({"path": "/health/down", "healthy": true,
                       "observations": ["Success: HTTP Status Code 200, OK"]});
        assert!(!SetPath.satisfied(&args, &o));
        assert_eq!(
            SetPath.explain(&args, &o).unwrap(),
            "the path is `/health/down` and Route53 reports it healthy (a checker: Success: HTTP Status Code 200, OK)"
        );
    }
}
