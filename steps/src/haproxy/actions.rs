//! `haproxy.serving-sites`, `haproxy.remove-site`, `haproxy.add-site`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::action::ImpactKind;
use engine::{Action, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use super::runtime::{self, Server};
use super::{read, section, View};

const OUTPUTS: &[&str] = &[
    "names",
    "endpoints",
    "serving",
    "in_group",
    "out_of_group",
    "sites",
    "mismatch",
    "ambiguous",
    "can_act",
    "how",
    "summary",
];

/// `haproxy.serving-sites`: which sites the load balancer sends clients to.
#[derive(Debug)]
pub struct ServingSites;

#[async_trait]
impl Action for ServingSites {
    fn name(&self) -> &'static str {
        "haproxy.serving-sites"
    }
    fn summary(&self) -> &'static str {
        "which sites HAProxy sends clients to: each site's servers (admin state, check, current sessions), read from the runtime API; a server that is no site's is reported, not guessed"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(OUTPUTS)
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        vec![format!(
            "HAProxy {}: show servers state {} + show stat",
            super::socket(ctx).map_or_else(|e| e.message, |s| s.to_string()),
            backend(ctx)
        )]
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(read(ctx).await?.judge())
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

fn backend(ctx: &StepCtx) -> String {
    crate::config::sites(&ctx.env)
        .values()
        .find_map(section)
        .map_or_else(|| "<no traffic.haproxy>".into(), |h| h.backend.clone())
}

/// The step's site, its section and its servers' names.
fn this_site(ctx: &StepCtx) -> Result<(String, super::HaproxyTraffic, Vec<String>), StepError> {
    let (name, cfg) = crate::clients::site_config(ctx)?;
    let h = section(&cfg).cloned().ok_or_else(|| {
        StepError::configuration(format!(
            "site `{name}` names no HAProxy servers (sites.{name}.traffic.haproxy: {{ admin_socket: …, backend: … }})"
        ))
    })?;
    let servers = if h.servers.is_empty() {
        vec![name.clone()]
    } else {
        h.servers.clone()
    };
    Ok((name, h, servers))
}

/// What was read, refused when which site is which cannot be told.
fn trustworthy(v: &View) -> Result<Json, StepError> {
    let judged = v.judge();
    if judged["can_act"] != true {
        return Err(StepError::permanent(format!(
            "refused: {}; nothing was changed",
            judged["summary"].as_str().unwrap_or_default()
        )));
    }
    Ok(judged)
}

fn observed(ctx: &StepCtx, v: &View) -> Result<Json, StepError> {
    let mut j = v.judge();
    j["site"] = json!(ctx.site_name());
    Ok(j)
}

/// `haproxy.remove-site`: drain the site's servers, wait for their sessions to end
/// (cut them at the bound), then put them in maintenance.
#[derive(Debug)]
pub struct RemoveSite;

/// Wait until every server in `names` has no current session, or `bound` passes:
/// the servers that still had sessions then.
async fn drained(
    ctx: &StepCtx,
    names: &[String],
    bound: Duration,
) -> Result<(Vec<(String, u64)>, Duration), StepError> {
    let started = Instant::now();
    let bound = ctx.env.scaled_pause(bound);
    loop {
        let v = read(ctx).await?;
        let busy: Vec<(String, u64)> = v
            .servers
            .iter()
            .filter(|s| names.contains(&s.name) && s.scur > 0)
            .map(|s| (s.name.clone(), s.scur))
            .collect();
        if busy.is_empty() || started.elapsed() >= bound {
            return Ok((busy, started.elapsed()));
        }
        tokio::time::sleep(ctx.env.scaled_pause(Duration::from_millis(500))).await;
    }
}

fn states(servers: &[&Server]) -> Json {
    json!(servers
        .iter()
        .map(|s| format!("{} {} {} scur={}", s.name, s.admin_word(), s.status, s.scur))
        .collect::<Vec<_>>())
}

#[async_trait]
impl Action for RemoveSite {
    fn name(&self) -> &'static str {
        "haproxy.remove-site"
    }
    fn summary(&self) -> &'static str {
        "take this site out of HAProxy: drain its servers, wait until their sessions end (cut them at traffic.haproxy.drain_timeout), then maintenance; never the last serving site"
    }
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::REMOVE]
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "before",
            "after",
            "sessions_cut",
            "drained_after_s",
            "already",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(600)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(1)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        let site = ctx.site_name();
        Some((
            ImpactKind::MovesTraffic,
            format!("takes {site} out of HAProxy: no new request reaches {site}; sessions still open at the drain bound are cut"),
        ))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let Ok((_, h, servers)) = this_site(ctx) else {
            return vec!["(this site names no traffic.haproxy)".into()];
        };
        let each = |verb: &str| -> String {
            servers
                .iter()
                .map(|s| format!("{verb} {}/{s}", h.backend))
                .collect::<Vec<_>>()
                .join("; ")
        };
        vec![
            format!("HAProxy {}: show servers state + show stat (read; again right before the write)", h.admin_socket),
            each("set server") .replace("; set server", " state drain; set server") + " state drain",
            format!("wait until their current sessions (scur) reach 0, at most {}; then shutdown sessions server for each still busy", humantime::format_duration(h.drain_timeout())),
            each("set server").replace("; set server", " state maint; set server") + " state maint",
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "every server of {} is in maintenance with no current session",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        let s = &o["sites"][o["site"].as_str().unwrap_or_default()];
        s["in_maint"] == true && s["sessions"] == 0
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        Some(o["how"].as_str().unwrap_or("?").to_string())
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        this_site(ctx)?;
        observed(ctx, &read(ctx).await?)
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let (site, ..) = this_site(ctx)?;
        let v = read(ctx).await?;
        trustworthy(&v)?;
        let mut out = Outputs::new();
        out.insert("before".into(), states(&v.servers_of(&site)));
        crate::ledger::record(&mut out, &site, crate::ledger::LEFT);
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let (site, h, names) = this_site(ctx)?;
        let socket = super::socket(ctx)?;
        let v = read(ctx).await?;
        let judged = trustworthy(&v)?;
        let mut out = Outputs::new();
        out.insert("before".into(), states(&v.servers_of(&site)));
        crate::ledger::record(&mut out, &site, crate::ledger::LEFT);
        if judged["sites"][&site]["in_maint"] == true {
            out.insert("already".into(), json!(true));
            out.insert("note".into(), json!(format!("{site} was ALREADY OUT of HAProxy (its servers in maintenance, not by this step): nothing removed")));
            return Ok(out);
        }
        let others: Vec<&str> = judged["serving"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .filter(|s| *s != site)
            .collect();
        if others.is_empty() {
            return Err(StepError::permanent(format!(
                "refused: removing {site} would leave no site serving ({}); nothing was changed",
                judged["how"].as_str().unwrap_or_default()
            )));
        }
        for n in &names {
            runtime::write(
                &socket,
                &format!("set server {}/{n} state drain", h.backend),
            )
            .await?;
        }
        let (busy, waited) = drained(ctx, &names, h.drain_timeout()).await?;
        for (n, _) in &busy {
            runtime::write(
                &socket,
                &format!("shutdown sessions server {}/{n}", h.backend),
            )
            .await?;
        }
        for n in &names {
            runtime::write(
                &socket,
                &format!("set server {}/{n} state maint", h.backend),
            )
            .await?;
        }
        let after = read(ctx).await?;
        out.insert("after".into(), states(&after.servers_of(&site)));
        out.insert("drained_after_s".into(), json!(waited.as_secs_f64()));
        out.insert(
            "sessions_cut".into(),
            json!(busy
                .iter()
                .map(|(n, c)| json!({"server": n, "sessions": c}))
                .collect::<Vec<_>>()),
        );
        if !busy.is_empty() {
            out.insert("note".into(), json!(format!(
                "{} session(s) still open on {site} at the drain bound were cut (shutdown sessions)",
                busy.iter().map(|(_, c)| c).sum::<u64>()
            )));
        }
        Ok(out)
    }
}

/// `haproxy.add-site`: make the site's servers ready again, until their checks pass.
#[derive(Debug)]
pub struct AddSite;

#[async_trait]
impl Action for AddSite {
    fn name(&self) -> &'static str {
        "haproxy.add-site"
    }
    fn summary(&self) -> &'static str {
        "put this site back into HAProxy: its servers ready, until each health check says UP (L7OK)"
    }
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::ADD]
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["before", "after", "already"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(1)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        let site = ctx.site_name();
        Some((
            ImpactKind::MovesTraffic,
            format!("puts {site} back into HAProxy: {site} receives requests again once its check passes"),
        ))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let Ok((_, h, servers)) = this_site(ctx) else {
            return vec!["(this site names no traffic.haproxy)".into()];
        };
        let mut out = vec![format!(
            "HAProxy {}: show servers state + show stat (read; again right before the write)",
            h.admin_socket
        )];
        out.extend(
            servers
                .iter()
                .map(|s| format!("set server {}/{s} state ready", h.backend)),
        );
        out.push("then show stat until each is UP with check L7OK".into());
        out
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "every server of {} is ready and UP with its check passing (L7OK)",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["sites"][o["site"].as_str().unwrap_or_default()]["healthy"] == true
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        Some(o["how"].as_str().unwrap_or("?").to_string())
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        this_site(ctx)?;
        observed(ctx, &read(ctx).await?)
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let (site, ..) = this_site(ctx)?;
        let v = read(ctx).await?;
        trustworthy(&v)?;
        let mut out = Outputs::new();
        out.insert("before".into(), states(&v.servers_of(&site)));
        crate::ledger::record(&mut out, &site, crate::ledger::JOINED);
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let (site, h, _) = this_site(ctx)?;
        let socket = super::socket(ctx)?;
        let v = read(ctx).await?;
        trustworthy(&v)?;
        let mine = v.servers_of(&site);
        let mut out = Outputs::new();
        out.insert("before".into(), states(&mine));
        crate::ledger::record(&mut out, &site, crate::ledger::JOINED);
        let waiting: Vec<&&Server> = mine
            .iter()
            .filter(|s| s.in_maint() || s.in_drain())
            .collect();
        if waiting.is_empty() {
            out.insert("already".into(), json!(true));
            out.insert(
                "note".into(),
                json!(format!("{site} was already in HAProxy: nothing added")),
            );
            return Ok(out);
        }
        for s in waiting {
            runtime::write(
                &socket,
                &format!("set server {}/{} state ready", h.backend, s.name),
            )
            .await?;
        }
        out.insert("after".into(), states(&read(ctx).await?.servers_of(&site)));
        Ok(out)
    }
}
