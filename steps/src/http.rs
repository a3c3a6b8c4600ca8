//! `http.request`: one HTTP call, e.g. a site's lb-check or an admin endpoint. Its
//! effect class follows the method: GET/HEAD read-only, PUT/DELETE idempotent,
//! POST/PATCH destructive. Its probe is a GET of `probe_url` (default: `url`).

use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::text::{error_chain, excerpt};

#[derive(Debug, Clone)]
pub struct HttpRequest {
    client: reqwest::Client,
}

impl Default for HttpRequest {
    fn default() -> Self {
        HttpRequest::new()
    }
}

impl HttpRequest {
    pub fn new() -> HttpRequest {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the HTTP client builds with static settings");
        HttpRequest { client }
    }
}

/// `http.request`'s arguments (`crate::args::typed`).
#[derive(Debug, serde::Deserialize)]
pub struct RequestArgs {
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub body: Option<Json>,
    #[serde(default)]
    pub expect_status: Option<Json>,
    #[serde(default)]
    pub probe_url: Option<String>,
}

/// `http.expect`'s arguments.
#[derive(Debug, serde::Deserialize)]
pub struct ExpectArgs {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub poll: Option<crate::args::Human>,
}

fn method(args: &Args) -> String {
    args.get("method")
        .and_then(Json::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase()
}

fn url(args: &Args) -> &str {
    args.get("url").and_then(Json::as_str).unwrap_or_default()
}

/// Whether `status` is what the step expects: `expect_status` as a number or a list,
/// else any 2xx.
fn expected(args: &Args, status: u16) -> bool {
    match args.get("expect_status") {
        Some(Json::Number(n)) => n.as_u64() == Some(u64::from(status)),
        Some(Json::Array(list)) => list.iter().any(|v| v.as_u64() == Some(u64::from(status))),
        _ => (200..300).contains(&status),
    }
}

/// At most this much of a body is kept as an output or quoted in an error.
const BODY_KEEP: usize = 4096;

fn body_value(text: &str) -> Json {
    if text.is_empty() {
        return Json::Null;
    }
    match serde_json::from_str::<Json>(text) {
        Ok(v) if text.len() <= BODY_KEEP * 4 => v,
        _ => Json::String(excerpt(text, BODY_KEEP)),
    }
}

impl HttpRequest {
    async fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Json>,
        ctx: &StepCtx,
    ) -> Result<(u16, String), StepError> {
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| StepError::permanent(format!("`{method}` is not an HTTP method")))?;
        let mut req = self.client.request(m, url).timeout(ctx.timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "no answer in time"
            } else {
                "request failed"
            };
            StepError::transient(format!("{method} {url}: {what}: {}", error_chain(&e)))
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            StepError::transient(format!("{method} {url}: reading the answer failed: {e}"))
        })?;
        Ok((status, text))
    }
}

#[async_trait]
impl Action for HttpRequest {
    fn name(&self) -> &'static str {
        "http.request"
    }
    fn summary(&self) -> &'static str {
        "one HTTP call; GET/HEAD read-only, PUT/DELETE idempotent, POST/PATCH destructive"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::optional(
                "method",
                ArgKind::String,
                "GET (default), HEAD, PUT, DELETE, POST or PATCH",
            ),
            ArgSpec::required("url", ArgKind::String, "the URL to call"),
            ArgSpec::optional("body", ArgKind::Any, "a JSON body"),
            ArgSpec::optional(
                "expect_status",
                ArgKind::Any,
                "the status (or list) that means success; default any 2xx",
            ),
            ArgSpec::optional(
                "probe_url",
                ArgKind::String,
                "the URL a probe GETs; default `url`",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["status", "body"])
    }
    fn effect(&self, args: &Args) -> Effect {
        match method(args).as_str() {
            "GET" | "HEAD" | "OPTIONS" => Effect::ReadOnly,
            "PUT" | "DELETE" => Effect::Idempotent,
            _ => Effect::Destructive,
        }
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_millis(500)
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        let mut line = format!("{} {}", method(args), url(args));
        if let Some(b) = args.get("body") {
            line.push_str(&format!(" body {b}"));
        }
        match args.get("expect_status") {
            Some(s) => line.push_str(&format!(" (expect {s})")),
            None => line.push_str(" (expect 2xx)"),
        }
        vec![line]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: RequestArgs = crate::args::typed(self.name(), args)?;
        let target = a.probe_url.as_deref().unwrap_or(&a.url);
        let (status, text) = self.call("GET", target, None, ctx).await?;
        Ok(json!({"status": status, "body": body_value(&text)}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: RequestArgs = crate::args::typed(self.name(), args)?;
        let m = a.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let u = a.url.as_str();
        let (status, text) = self.call(&m, u, a.body.as_ref(), ctx).await?;
        if !expected(args, status) {
            let msg = format!("{m} {u} answered {status}: {}", excerpt(text.trim(), 300));
            // Server errors, throttling and timeouts may pass; other answers will not.
            return Err(StepError::http(status, msg));
        }
        let mut out = Outputs::new();
        out.insert("status".into(), json!(status));
        out.insert("body".into(), body_value(&text));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Json) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn effect_follows_method() {
        let h = HttpRequest::new();
        assert_eq!(h.effect(&args(json!({"url": "x"}))), Effect::ReadOnly);
        assert_eq!(
            h.effect(&args(json!({"method": "head", "url": "x"}))),
            Effect::ReadOnly
        );
        assert_eq!(
            h.effect(&args(json!({"method": "PUT", "url": "x"}))),
            Effect::Idempotent
        );
        assert_eq!(
            h.effect(&args(json!({"method": "DELETE", "url": "x"}))),
            Effect::Idempotent
        );
        assert_eq!(
            h.effect(&args(json!({"method": "POST", "url": "x"}))),
            Effect::Destructive
        );
        assert_eq!(
            h.effect(&args(json!({"method": "patch", "url": "x"}))),
            Effect::Destructive
        );
    }

    #[test]
    fn expected_status() {
        assert!(expected(&args(json!({})), 204));
        assert!(!expected(&args(json!({})), 404));
        assert!(expected(&args(json!({"expect_status": 404})), 404));
        assert!(expected(&args(json!({"expect_status": [200, 409]})), 409));
    }
}

/// `http.expect`: a GET answers the expected status, e.g. a site's lb-check answers 200
/// before traffic is moved there. Polled until the step's timeout.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    inner: HttpRequest,
}

impl Expect {
    pub fn new() -> Expect {
        Expect {
            inner: HttpRequest::new(),
        }
    }
}

fn expect_url(ctx: &StepCtx, given: Option<&str>) -> Result<String, StepError> {
    if let Some(u) = given {
        return Ok(u.to_string());
    }
    let site = ctx.require_site()?;
    crate::config::sites(&ctx.env)
        .get(&site.name)
        .and_then(|c| c.lb_check_url.clone())
        .ok_or_else(|| {
            StepError::permanent(format!(
                "no `url` given and site `{}` has no lb_check_url",
                site.name
            ))
        })
}

fn expected_status(args: &Args) -> u16 {
    args.get("status").and_then(Json::as_u64).unwrap_or(200) as u16
}

#[async_trait]
impl Action for Expect {
    fn name(&self) -> &'static str {
        "http.expect"
    }
    fn summary(&self) -> &'static str {
        "wait until a GET answers the expected status (default: the site's lb_check_url answers 200)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::optional(
                "url",
                ArgKind::String,
                "the URL (default: the site's lb_check_url)",
            ),
            ArgSpec::optional("status", ArgKind::Int, "the expected status (default 200)"),
            ArgSpec::optional(
                "poll",
                ArgKind::Duration,
                "longest pause between tries (default 2s)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["status"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        args.get("poll")
            .and_then(Json::as_str)
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(2))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let given = args.get("url").and_then(Json::as_str);
        let url = expect_url(ctx, given).unwrap_or_else(|e| e.message);
        vec![format!(
            "GET {url} until it answers {}",
            expected_status(args)
        )]
    }
    fn postcondition(&self, _: &StepCtx, args: &Args) -> Option<String> {
        Some(format!("it answers {}", expected_status(args)))
    }
    fn satisfied(&self, args: &Args, o: &Json) -> bool {
        o["status"].as_u64() == Some(u64::from(expected_status(args)))
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: ExpectArgs = crate::args::typed(self.name(), args)?;
        let url = expect_url(ctx, a.url.as_deref())?;
        match self.inner.call("GET", &url, None, ctx).await {
            Ok((status, text)) => {
                Ok(json!({"url": url, "status": status, "body": body_value(&text)}))
            }
            // Not answering is an observation here, not a failure: keep waiting.
            Err(e) => Ok(json!({"url": url, "status": null, "error": e.message})),
        }
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let o = self.probe(ctx, args).await?;
        let mut out = Outputs::new();
        out.insert("status".into(), o["status"].clone());
        Ok(out)
    }
}
