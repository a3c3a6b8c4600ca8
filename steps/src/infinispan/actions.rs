//! The Infinispan actions of the runbook language.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{IspnApi, IspnTransport};
use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use super::calls::Op;
use super::Transport;
use serde::Deserialize;

use crate::args::{caches_arg, dur_arg, int_arg, req_str, typed, Human};

/// What the plan shows: the calls, computed from the environment file alone.
enum Target {
    Rest {
        base: String,
        /// The container-level prefix, or a description of how it will be chosen.
        container: String,
        /// Why those routes: declared, or what the server said.
        why: String,
    },
    Batch {
        site: String,
        namespace: String,
        cluster: String,
    },
    Unknown(String),
}

mod push;
mod sync;
#[cfg(test)]
mod tests;

use push::push_statuses;
pub use push::PushState;
pub use sync::{compare_keys, SyncState, MAX_KEYS};

fn target(ctx: &StepCtx) -> Target {
    let Some(site) = ctx.site.as_ref() else {
        return Target::Unknown("(no site)".into());
    };
    let Some(cfg) = crate::config::sites(&ctx.env).get(&site.name) else {
        return Target::Unknown(format!(
            "(site `{}` not in the environment file)",
            site.name
        ));
    };
    let Some(ispn) = &cfg.infinispan else {
        return Target::Unknown(format!("(site `{}` has no infinispan section)", site.name));
    };
    match ispn.transport {
        IspnTransport::Rest => Target::Rest {
            base: ispn
                .url
                .clone()
                .unwrap_or_else(|| "(no url)".into())
                .trim_end_matches('/')
                .to_string(),
            container: match super::rest::known_api(ispn) {
                Some((api, _)) => super::rest::container_prefix(api, ispn),
                None => "/rest/v2/{cache-managers/default or container}".into(),
            },
            why: match super::rest::known_api(ispn) {
                Some((api, why)) => format!(
                    "{} routes: {why}",
                    match api {
                        IspnApi::V14 => "v14",
                        IspnApi::V15 => "v15",
                    }
                ),
                None => "routes by the server's version, read at run time (GET /rest/v2/server): Infinispan 14 has /rest/v2/cache-managers/default, 15+ /rest/v2/container".into(),
            },
        },
        IspnTransport::Batch => Target::Batch {
            site: site.name.clone(),
            namespace: ispn.namespace.clone().unwrap_or_else(|| {
                cfg.kubernetes
                    .as_ref()
                    .map(|k| k.namespace.clone())
                    .unwrap_or_default()
            }),
            cluster: ispn.cluster.clone().unwrap_or_else(|| "infinispan".into()),
        },
    }
}

fn batch_line(site: &str, ns: &str, cluster: &str, script: &str) -> String {
    format!("create Batch in {site}/{ns} for Infinispan `{cluster}`: {script}")
}

/// An operation as the plan shows it, from the same description the transports call
/// (`calls::Op`). Container-level REST calls say which routes and why.
fn line(t: &Target, op: Op) -> String {
    match t {
        Target::Rest {
            base,
            container,
            why,
        } => {
            let text = op.rest_line(base, container);
            if matches!(op, Op::ContainerAction { .. } | Op::ContainerStatus { .. }) {
                format!("{text} [{why}]")
            } else {
                text
            }
        }
        Target::Batch {
            site,
            namespace,
            cluster,
        } => batch_line(
            site,
            namespace,
            cluster,
            &op.cli()
                .unwrap_or_else(|| "(no CLI command: not over Batch)".into()),
        ),
        Target::Unknown(why) => format!("{op:?} {why}"),
    }
}

fn describe_action(
    ctx: &StepCtx,
    backup: &str,
    caches: Option<&[String]>,
    action: &str,
) -> Vec<String> {
    let t = target(ctx);
    match caches {
        None => vec![line(&t, Op::ContainerAction { backup, action })],
        Some(list) => list
            .iter()
            .map(|c| {
                line(
                    &t,
                    Op::CacheAction {
                        cache: c,
                        backup,
                        action,
                    },
                )
            })
            .collect(),
    }
}

fn describe_status(ctx: &StepCtx, backup: &str, caches: Option<&[String]>) -> String {
    let t = target(ctx);
    match caches {
        None => line(&t, Op::ContainerStatus { backup }),
        Some(list) => line(
            &t,
            Op::CacheStatus {
                cache: &format!("{{{}}}", list.join(",")),
                backup,
            },
        ),
    }
}

const BACKUP: ArgSpec =
    ArgSpec::required("backup", ArgKind::String, "the backup site, e.g. `site-a`");
const CACHE: ArgSpec = ArgSpec::optional("cache", ArgKind::String, "one cache");
const CACHES: ArgSpec = ArgSpec::optional(
    "caches",
    ArgKind::List,
    "these caches (default: all, at container level)",
);
const POLL: ArgSpec = ArgSpec::optional(
    "poll",
    ArgKind::Duration,
    "longest pause between status checks (default 2s)",
);

// Typed arguments, one struct per action (`crate::args::typed`); the specs above are
// what the loader checks, and a test keeps the two alike.

/// The caches named: `cache` (one) or `caches` (a list); `None`: every cache.
fn which(cache: &Option<String>, caches: &Option<Vec<String>>) -> Option<Vec<String>> {
    cache.clone().map(|c| vec![c]).or_else(|| caches.clone())
}

/// `infinispan.site-status`, `infinispan.cancel-push-state`.
#[derive(Debug, Deserialize)]
pub struct BackupArgs {
    pub backup: String,
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
}

/// `infinispan.take-offline`, `infinispan.bring-online`.
#[derive(Debug, Deserialize)]
pub struct SetBackupArgs {
    pub backup: String,
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
    #[serde(default)]
    pub poll: Option<Human>,
}

/// `infinispan.clear-caches`.
#[derive(Debug, Deserialize)]
pub struct ClearArgs {
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
}

/// `infinispan.push-state`.
#[derive(Debug, Deserialize)]
pub struct PushArgs {
    pub backup: String,
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
    #[serde(default)]
    pub max_repush: Option<i64>,
    #[serde(default)]
    pub poll: Option<Human>,
}

/// `infinispan.clear-push-state-status`.
#[derive(Debug, Deserialize)]
pub struct ClearStatusArgs {
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
    #[serde(default)]
    pub backup: Option<String>,
}

/// `infinispan.sync-state`.
#[derive(Debug, Deserialize)]
pub struct SyncArgs {
    pub other: String,
    pub caches: Vec<String>,
    #[serde(default)]
    pub max_keys: Option<i64>,
}

/// Site, backup and status first: error messages quote the beginning of an observation.
fn status_json(st: &super::XStatus, site: &str, backup: &str) -> Json {
    let mut v = json!({"site": site, "backup": backup, "status": st.overall, "caches": st.caches});
    if !st.nodes.is_empty() {
        v["nodes"] = json!(st.nodes);
    }
    v
}

async fn observe(ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
    let a: BackupArgs = typed("infinispan.site-status", args)?;
    let backup = &super::xsite_name(ctx, &a.backup);
    let t = Transport::for_step(ctx).await?;
    let caches = which(&a.cache, &a.caches);
    let st = t.status(backup, caches.as_deref()).await?;
    Ok(status_json(&st, t.site(), backup))
}

/// `infinispan.site-status`: read the cross-site status.
#[derive(Debug)]
pub struct SiteStatus;

#[async_trait]
impl Action for SiteStatus {
    fn name(&self) -> &'static str {
        "infinispan.site-status"
    }
    fn summary(&self) -> &'static str {
        "read the cross-site status of the site's backup to another site (per cache and node); mixed and unknown are neither online nor offline"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[BACKUP, CACHE, CACHES];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["status", "caches", "nodes"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        vec![describe_status(
            ctx,
            req_str(args, "backup").unwrap_or("?"),
            caches_arg(args).as_deref(),
        )]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        observe(ctx, args).await
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let v = observe(ctx, args).await?;
        Ok(v.as_object().cloned().unwrap_or_default())
    }
}

/// `infinispan.take-offline` and `infinispan.bring-online`: change the state of the
/// backup, then (verify) loop on status until every cache and node is in it. Each
/// action is a row of [`BackupMove`]s; the code is the same.
#[derive(Debug)]
pub struct SetBackup(pub &'static BackupMove);

/// What one x-site state change is: its name, the REST action, the state it reaches.
#[derive(Debug)]
pub struct BackupMove {
    pub name: &'static str,
    /// The REST action (`?action=take-offline`) and the CLI's word for it.
    pub verb: &'static str,
    /// The state every cache and node reaches.
    pub target: &'static str,
    pub summary: &'static str,
    pub invariants: &'static [&'static str],
    /// A node that refuses has not reached the state yet (the status poll issues it
    /// again), rather than failed: Infinispan answers so for a take-offline in flight.
    pub refusal_is_pending: bool,
}

pub const TAKE_OFFLINE: BackupMove = BackupMove {
    name: "infinispan.take-offline",
    verb: "take-offline",
    target: "offline",
    summary: "take cross-site replication to a site offline (all caches or a list), then wait until every cache and node is offline",
    invariants: &[crate::guarantees::TAKE_OFFLINE],
    refusal_is_pending: true,
};

pub const BRING_ONLINE: BackupMove = BackupMove {
    name: "infinispan.bring-online",
    verb: "bring-online",
    target: "online",
    summary: "bring cross-site replication to a site online (all caches or a list), then wait until every cache and node is online",
    invariants: &[],
    refusal_is_pending: false,
};

impl SetBackup {
    fn target(&self) -> &'static str {
        self.0.target
    }
    fn action(&self) -> &'static str {
        self.0.verb
    }
}

#[async_trait]
impl Action for SetBackup {
    fn name(&self) -> &'static str {
        self.0.name
    }
    fn summary(&self) -> &'static str {
        self.0.summary
    }
    fn invariants(&self) -> &'static [&'static str] {
        self.0.invariants
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[BACKUP, CACHE, CACHES, POLL];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["results", "pending"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(2)).unwrap_or(Duration::from_secs(2))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let backup = &super::xsite_name(ctx, req_str(args, "backup").unwrap_or("?"));
        let caches = caches_arg(args);
        let mut lines = describe_action(ctx, backup, caches.as_deref(), self.action());
        lines.push(format!(
            "then until {}: {}",
            self.target(),
            describe_status(ctx, backup, caches.as_deref())
        ));
        lines
    }
    fn postcondition(&self, ctx: &StepCtx, args: &Args) -> Option<String> {
        let which = match caches_arg(args) {
            None => "every cache".to_string(),
            Some(l) => l.join(", "),
        };
        let site = ctx
            .site
            .as_ref()
            .map(|s| format!(" from `{}`", s.name))
            .unwrap_or_default();
        Some(format!(
            "replication{site} to `{}` is {} for {which} on every node",
            req_str(args, "backup").unwrap_or("?"),
            self.target()
        ))
    }
    fn satisfied(&self, _: &Args, observation: &Json) -> bool {
        // Every cache named is in the target state; over Batch the container's status
        // (`{ "status" : "offline" }`, as the CLI prints it) names no cache, and then
        // the container's word is the status of every cache.
        let caches = observation["caches"].as_object();
        observation["status"] == self.target()
            && caches.is_none_or(|c| c.values().all(|v| v == self.target()))
    }
    fn explain(&self, _: &Args, observation: &Json) -> Option<String> {
        Some(not_in_state(observation, self.target()))
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        observe(ctx, args).await
    }
    fn reissue(&self) -> bool {
        // The guide: "repeat the status check until offline", and a take-offline that
        // a node refused must be issued again (it is per node).
        true
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: SetBackupArgs = typed(self.name(), args)?;
        let backup = &super::xsite_name(ctx, &a.backup);
        let t = Transport::for_step(ctx).await?;
        // Some node refused a take-offline: not yet offline; the status poll that
        // follows issues it again.
        let results = act_on_caches(&t, backup, self.action(), which(&a.cache, &a.caches), |e| {
            self.0.refusal_is_pending && super::not_yet_offline(&e.message)
        })
        .await?;
        let mut out = Outputs::new();
        if let Some(p) = refused_nodes(&results) {
            out.insert("pending".into(), json!(p));
        }
        out.insert("results".into(), json!(results));
        Ok(out)
    }
}

/// An x-site action on every cache (one container call) or on the caches named (one
/// call each): each cache's result; a per-cache error that `pending` accepts is that
/// cache's result rather than a failure.
async fn act_on_caches(
    t: &Transport,
    backup: &str,
    action: &str,
    caches: Option<Vec<String>>,
    pending: impl Fn(&StepError) -> bool,
) -> Result<BTreeMap<String, String>, StepError> {
    let Some(list) = caches else {
        return t.container_action(backup, action).await;
    };
    let mut results = BTreeMap::new();
    for c in list {
        match t.cache_action(&c, backup, action).await {
            Ok(()) => {
                results.insert(c, "ok".to_string());
            }
            Err(e) if pending(&e) => {
                results.insert(c, e.message);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(results)
}

/// The nodes a take-offline answer says refused, as a person reads it:
/// `site-b-infinispan-2 refused take-offline for 8 of 8 caches`.
fn refused_nodes(results: &BTreeMap<String, String>) -> Option<String> {
    let mut nodes = std::collections::BTreeSet::new();
    let mut caches = 0;
    for v in results.values().filter(|v| super::not_yet_offline(v)) {
        caches += 1;
        if let Some(list) = v.split("nodes:").nth(1).and_then(|r| r.split(']').next()) {
            for n in list.trim_start_matches([' ', '[']).split(',') {
                let n = n.trim();
                if !n.is_empty() {
                    nodes.insert(n.to_string());
                }
            }
        }
    }
    (caches > 0).then(|| {
        format!(
            "{} refused take-offline for {caches} of {} caches (Infinispan: Could not take the site offline on nodes)",
            if nodes.is_empty() { "some node".to_string() } else { nodes.into_iter().collect::<Vec<_>>().join(", ") },
            results.len()
        )
    })
}

/// `infinispan.clear-caches`: clear caches on the site. Destructive: while the site's
/// backup is online, a clear reaches the other site too. Runbooks fan it out per cache
/// with a live `require` on each. The probe reports sizes (REST) for plans and reviews.
#[derive(Debug)]
pub struct ClearCaches;

#[async_trait]
impl Action for ClearCaches {
    fn name(&self) -> &'static str {
        "infinispan.clear-caches"
    }
    fn summary(&self) -> &'static str {
        "clear caches on the site (DESTRUCTIVE: with replication online it clears the other site too)"
    }
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::CLEAR]
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[CACHE, CACHES];
        A
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Destructive
    }
    fn impact(&self, ctx: &StepCtx, args: &Args) -> Option<(engine::action::ImpactKind, String)> {
        let site = ctx.site_name();
        let named = which(
            &args.get("cache").and_then(Json::as_str).map(str::to_string),
            &args.get("caches").and_then(Json::as_array).map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            }),
        );
        let what = match (ctx.item.is_some(), named) {
            (false, Some(list)) => format!(": {}", list.join(", ")),
            _ => String::new(),
        };
        Some((
            engine::action::ImpactKind::RemovesData,
            format!("clears Infinispan caches on {site} (every entry in them){what}"),
        ))
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(1)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let t = target(ctx);
        caches_arg(args)
            .unwrap_or_default()
            .iter()
            .map(|c| line(&t, Op::Clear { cache: c }))
            .collect()
    }
    // No postcondition: the other site keeps replicating into the cleared cache (its
    // backup to this site is online, as the procedures require), so "empty" is not a
    // state to wait for; and with the Batch transport sizes cannot be read at all. A
    // clear found in doubt is therefore left to the operator, whose `--retry-step`
    // checks the offline precondition again before clearing again.
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: ClearArgs = typed(self.name(), args)?;
        let t = Transport::for_step(ctx).await?;
        let mut sizes = serde_json::Map::new();
        for c in which(&a.cache, &a.caches).unwrap_or_default() {
            if let Some(n) = t.size(&c).await? {
                sizes.insert(c, json!(n));
            }
        }
        Ok(json!({"site": t.site(), "sizes": sizes}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: ClearArgs = typed(self.name(), args)?;
        let caches = which(&a.cache, &a.caches)
            .ok_or_else(|| StepError::permanent("name the caches to clear: `cache` or `caches`"))?;
        let t = Transport::for_step(ctx).await?;
        for c in &caches {
            t.clear(c).await?;
        }
        Ok(Outputs::new())
    }
}

/// `infinispan.cancel-push-state`: cancel a running push-state to `backup` (per cache,
/// or every cache). Idempotent; a run that later finds the push `CANCELED` halts
/// rather than pushing again behind the operator's back.
#[derive(Debug)]
pub struct CancelPushState;

#[async_trait]
impl Action for CancelPushState {
    fn name(&self) -> &'static str {
        "infinispan.cancel-push-state"
    }
    fn summary(&self) -> &'static str {
        "cancel a running push-state to a backup site (all caches or a list)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[BACKUP, CACHE, CACHES];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["results"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let backup = &super::xsite_name(ctx, req_str(args, "backup").unwrap_or("?"));
        describe_action(
            ctx,
            backup,
            caches_arg(args).as_deref(),
            "cancel-push-state",
        )
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: BackupArgs = typed(self.name(), args)?;
        let backup = &super::xsite_name(ctx, &a.backup);
        let t = Transport::for_step(ctx).await?;
        let caches = match which(&a.cache, &a.caches) {
            Some(c) => c,
            None => t.caches(backup).await?,
        };
        let push = push_statuses(&t, &caches, backup).await?;
        Ok(json!({"site": t.site(), "backup": backup, "push": push}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: BackupArgs = typed(self.name(), args)?;
        let backup = &super::xsite_name(ctx, &a.backup);
        let t = Transport::for_step(ctx).await?;
        let caches = which(&a.cache, &a.caches);
        let results = act_on_caches(&t, backup, "cancel-push-state", caches, |_| false).await?;
        let mut out = Outputs::new();
        out.insert("results".into(), json!(results));
        Ok(out)
    }
}

/// `infinispan.clear-push-state-status`: reset push status to IDLE for the caches.
#[derive(Debug)]
pub struct ClearPushStateStatus;

#[async_trait]
impl Action for ClearPushStateStatus {
    fn name(&self) -> &'static str {
        "infinispan.clear-push-state-status"
    }
    fn summary(&self) -> &'static str {
        "clear the push-state status of caches (back to IDLE)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            CACHE,
            CACHES,
            ArgSpec::optional(
                "backup",
                ArgKind::String,
                "the site pushed to (to list the caches when none are given)",
            ),
        ];
        A
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(1)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let t = target(ctx);
        caches_arg(args)
            .unwrap_or_else(|| vec!["{every cache}".into()])
            .iter()
            .map(|c| line(&t, Op::ClearPushStatus { cache: c }))
            .collect()
    }
    fn postcondition(&self, _: &StepCtx, _: &Args) -> Option<String> {
        Some("every cache's push status is IDLE".into())
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["push"].as_object().is_some_and(|m| {
            m.values().all(|per_site| {
                per_site
                    .as_object()
                    .is_some_and(|s| s.values().all(|v| v == "IDLE"))
            })
        })
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        let mut pairs = Vec::new();
        for (cache, per_site) in o["push"].as_object().into_iter().flatten() {
            for (site, v) in per_site.as_object().into_iter().flatten() {
                if v != "IDLE" {
                    pairs.push((cache.clone(), format!("{} towards {site}", text(v))));
                }
            }
        }
        let total = o["push"].as_object().map_or(0, |m| m.len());
        let parts: Vec<String> = by_state(&pairs, "")
            .into_iter()
            .map(|(state, caches)| format!("{state} for {}", caches_text(&caches, total)))
            .collect();
        Some(if parts.is_empty() {
            "no push status reported".into()
        } else {
            parts.join("; ")
        })
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: ClearStatusArgs = typed(self.name(), args)?;
        let t = Transport::for_step(ctx).await?;
        let caches = match which(&a.cache, &a.caches) {
            Some(c) => c,
            None => t.caches(a.backup.as_deref().unwrap_or("")).await?,
        };
        let mut push = serde_json::Map::new();
        for c in caches {
            push.insert(c.clone(), json!(t.push_status(&c).await?));
        }
        Ok(json!({"site": t.site(), "push": push}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: ClearStatusArgs = typed(self.name(), args)?;
        let t = Transport::for_step(ctx).await?;
        let caches = match which(&a.cache, &a.caches) {
            Some(c) => c,
            None => t.caches(a.backup.as_deref().unwrap_or("")).await?,
        };
        for c in caches {
            t.clear_push_status(&c).await?;
        }
        Ok(Outputs::new())
    }
}

/// A status value as text (`"online"` → `online`).
fn text(v: &Json) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Group `(cache, state)` pairs whose state is not `wanted` by state, in a stable order.
fn by_state(pairs: &[(String, String)], wanted: &str) -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (cache, state) in pairs.iter().filter(|(_, state)| state != wanted) {
        groups.entry(state.clone()).or_default().push(cache.clone());
    }
    groups.into_iter().collect()
}

/// `every cache (8)` when all of them, else the list.
fn caches_text(caches: &[String], total: usize) -> String {
    if total > 1 && caches.len() == total {
        format!("every cache ({total})")
    } else {
        caches.join(", ")
    }
}

/// Which nodes keep a cross-site status observation from being all `target`:
/// `site-b-infinispan-2 is online for every cache (8)`; from the per-cache statuses
/// when there are no per-node ones.
fn not_in_state(o: &Json, target: &str) -> String {
    let caches: Vec<(String, String)> = o["caches"]
        .as_object()
        .map(|m| m.iter().map(|(c, v)| (c.clone(), text(v))).collect())
        .unwrap_or_default();
    if caches.is_empty() {
        return format!(
            "no cache reported a status (overall: {})",
            text(&o["status"])
        );
    }
    let mut per_node: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (cache, nodes) in o["nodes"].as_object().into_iter().flatten() {
        for (node, v) in nodes.as_object().into_iter().flatten() {
            let state = text(v);
            if state != target {
                per_node
                    .entry((node.clone(), state))
                    .or_default()
                    .push(cache.clone());
            }
        }
    }
    let parts: Vec<String> = if per_node.is_empty() {
        // A container-level status names caches per state, not nodes.
        by_state(&caches, target)
            .into_iter()
            .map(|(state, list)| {
                let plural = list.len() > 1 && list.len() < caches.len();
                let verb = if plural { "are" } else { "is" };
                format!("{} {verb} {state}", caches_text(&list, caches.len()))
            })
            .collect()
    } else {
        per_node
            .into_iter()
            .map(|((node, state), list)| {
                format!("{node} is {state} for {}", caches_text(&list, caches.len()))
            })
            .collect()
    };
    if parts.is_empty() {
        format!("overall status {}", text(&o["status"]))
    } else {
        parts.join("; ")
    }
}
