//! Safety that belongs to the action, not to a runbook: every action that removes data,
//! moves traffic or moves a database writer names the invariants it carries
//! (`Action::invariants`), and every step that uses it, in a pack's procedure or a
//! user's own file, gets a built-in guard `builtin-<invariant>-<step>` before its
//! effect. Like the identity guard they are shown in every plan, judged live (by
//! `deployment.invariant`, read only), journaled with what was read, and overridden
//! only with `force` and a reason.
//!
//! A guard is judged at the start of the run too, unless an earlier step of the same
//! run changes what it reads (a take-offline before a clear, a synchronization before a
//! site is put back): then only right before its step, and the plan says why.
//!
//! What each one reads:
//! - `clear-caches`: which sites serve (the traffic role), and the clearing site's
//!   backup of each cache to every other site (Infinispan's cross-site status): the
//!   site must not serve and every backup must be offline.
//! - `scale-to-zero`: never the only site that serves.
//! - `take-offline`: never between two sites that both serve (their sessions would
//!   diverge while clients reach both).
//! - `add-to-traffic`: the site was synchronized since it last left traffic (the
//!   journal's ledger, every pack and file), and its replication is online both ways.
//! - `remove-from-traffic`: at least one other site serves.
//! - `promote-unplanned`: no other site serves traffic (a site that serves is not
//!   lost: that is a planned move).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use engine::model::{Guard, Step};
use engine::{Action, ArgKind, ArgSpec, Args, Effect, StepCtx, StepError};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::clients::ctx_for;
use crate::infinispan::{xsite_name, Transport};

pub use crate::guarantees::{ADD, ALL, CLEAR, PROMOTE, REMOVE, SCALE_TO_ZERO, TAKE_OFFLINE};

fn title(kind: &str) -> &'static str {
    ALL.iter().find(|(k, _)| *k == kind).map_or("", |(_, t)| *t)
}

/// Invariants or actions of earlier steps that change what `kind` reads: then it is
/// judged only right before its own step.
fn changed_by(kind: &str) -> &'static [&'static str] {
    match kind {
        CLEAR => &[TAKE_OFFLINE, REMOVE],
        ADD => &[
            "infinispan.push-state",
            "infinispan.bring-online",
            "infinispan.sync-state",
        ],
        SCALE_TO_ZERO | TAKE_OFFLINE | PROMOTE => &[REMOVE, ADD],
        REMOVE => &[ADD],
        _ => &[],
    }
}

/// A template's expression, or the value quoted: `{{ params.x }}` → `params.x`.
fn expr_of(v: &Json) -> Option<String> {
    match v {
        Json::String(t) => Some(
            t.trim()
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .map(|e| e.trim().to_string())
                .unwrap_or_else(|| format!("{t:?}")),
        ),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a template reads what a guard cannot see (step outputs, the item).
fn reads_run(v: &Json) -> bool {
    let t = v.to_string();
    t.contains("steps.") || t.contains("steps[") || t.contains("item")
}

/// The caches a clearing step clears, as the guard can render them (`null`: every
/// cache the site backs up).
fn caches_of(step: &Step) -> Json {
    let with = &step.with;
    let listed = match (&step.for_each, with.get("caches"), with.get("cache")) {
        (Some(f), _, Some(c)) if c.as_str().is_some_and(|c| c.contains("item")) => {
            Some(f.items.clone())
        }
        (_, Some(list), _) => Some(list.clone()),
        (_, None, Some(c)) => Some(json!([c])),
        _ => None,
    };
    listed.filter(|l| !reads_run(l)).unwrap_or(Json::Null)
}

/// The probe's arguments for `kind` at `step`, and a condition of its own (`None`:
/// the step never does what the invariant is about).
fn with_for(kind: &str, step: &Step, site: &str) -> Option<(Json, Option<String>)> {
    let mut with = json!({ "invariant": kind, "site": site });
    let mut when = None;
    match kind {
        CLEAR => with["caches"] = caches_of(step),
        TAKE_OFFLINE => with["backup"] = step.with.get("backup")?.clone(),
        ADD => {
            with["unsynchronized"] = json!("{{ history.deployment.unsynchronized }}");
        }
        SCALE_TO_ZERO => match step.with.get("instances")? {
            Json::Number(n) if n.as_u64() == Some(0) => {}
            Json::Number(_) => return None,
            v if reads_run(v) => return None,
            v => when = Some(format!("({}) | int == 0", expr_of(v)?)),
        },
        _ => {}
    }
    Some((with, when))
}

/// An action that moves traffic either way (a health check's path) says which by its
/// `wait_for`: `unhealthy` removes, `healthy` adds; without it neither is known.
fn direction_matches(kind: &str, kinds: &[&str], step: &Step) -> bool {
    if !(kinds.contains(&ADD) && kinds.contains(&REMOVE)) {
        return true;
    }
    let wait_for = step.with.get("wait_for").and_then(Json::as_str);
    matches!(
        (kind, wait_for),
        (ADD, Some("healthy")) | (REMOVE, Some("unhealthy"))
    )
}

/// The built-in invariant guards of `steps`, given each action's invariants.
pub fn guards(
    steps: &[Step],
    carried: &BTreeMap<&'static str, &'static [&'static str]>,
) -> Vec<Guard> {
    let mut out = Vec::new();
    fn marks<'a>(
        carried: &BTreeMap<&'static str, &'static [&'static str]>,
        s: &'a Step,
    ) -> Vec<&'a str> {
        let mut m: Vec<&'a str> = carried
            .get(s.action.as_str())
            .copied()
            .unwrap_or_default()
            .to_vec();
        m.push(s.action.as_str());
        m
    }
    for (i, step) in steps.iter().enumerate() {
        let Some(site) = &step.site else { continue };
        let kinds = carried
            .get(step.action.as_str())
            .copied()
            .unwrap_or_default();
        for kind in kinds {
            if !direction_matches(kind, kinds, step) {
                continue;
            }
            let Some((with, own_when)) = with_for(kind, step, site) else {
                continue;
            };
            let earlier = steps[..i].iter().find(|e| {
                marks(carried, e)
                    .iter()
                    .any(|m| changed_by(kind).contains(m))
            });
            let step_when = step
                .when
                .clone()
                .filter(|w| !w.contains("steps"))
                .map(|w| format!("({w})"));
            let when = match (step_when, own_when) {
                (Some(a), Some(b)) => Some(format!("{a} and ({b})")),
                (a, b) => a.or(b),
            };
            out.push(Guard {
                id: format!("builtin-{kind}-{}", step.id),
                title: format!("Built in, `{}` ({}): {}", step.id, step.action, title(kind)),
                probe: Some("deployment.invariant".into()),
                with,
                expect: "observation.holds".into(),
                when,
                refusal: Some("{{ observation.summary }}".into()),
                before: vec![step.id.clone()],
                deferred: earlier.map(|e| {
                    format!(
                        "judged right before `{}`: the earlier step `{}` ({}) changes what it reads",
                        step.id, e.id, e.action
                    )
                }),
                ..Guard::default()
            });
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvariantArgs {
    pub invariant: String,
    pub site: String,
    #[serde(default)]
    pub backup: Option<String>,
    #[serde(default)]
    pub caches: Option<Vec<String>>,
    #[serde(default)]
    pub unsynchronized: Option<Json>,
}

/// What was read and whether the invariant holds.
struct Judged {
    holds: bool,
    summary: String,
    read: Json,
}

impl Judged {
    fn json(self) -> Json {
        json!({ "holds": self.holds, "summary": self.summary, "read": self.read })
    }
}

/// Not judged: what could not be read (the invariant does not hold).
fn unknown(what: &str, e: &str) -> Judged {
    Judged {
        holds: false,
        summary: format!("{what} cannot be told ({e}), so the step could do harm unseen"),
        read: Json::Null,
    }
}

async fn serving(ctx: &StepCtx) -> Result<(Vec<String>, String), String> {
    crate::roles::serving_now(ctx).await.map_err(|e| e.message)
}

/// Whether a site other than `site` serves or is ready to take over (healthy) should
/// `site` leave traffic.
async fn judge_remove(ctx: &StepCtx, site: &str) -> Judged {
    let (serving, ready, how) = match crate::roles::serving_and_ready(ctx).await {
        Ok(r) => r,
        Err(e) => return unknown("which sites serve traffic", &e.message),
    };
    let others: Vec<&String> = ready.iter().filter(|s| *s != site).collect();
    Judged {
        holds: !others.is_empty(),
        summary: if others.is_empty() {
            format!("no other site serves or is ready to serve ({how}): removing {site} would leave no site serving")
        } else {
            format!(
                "{} would serve without {site} ({how})",
                others
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        read: json!({ "serving": serving, "ready": ready }),
    }
}

/// Each other Infinispan site's backup status of `caches` seen from `from` (`to`:
/// the direction), as `(from, to, cache, status)`.
async fn backups(
    ctx: &StepCtx,
    from: &str,
    to: &str,
    caches: Option<&[String]>,
) -> Result<Vec<(String, String)>, String> {
    let c = ctx_for(ctx, from).map_err(|e| e.message)?;
    let t = Transport::for_step(&c).await.map_err(|e| e.message)?;
    let st = t
        .status(&xsite_name(ctx, to), caches)
        .await
        .map_err(|e| e.message)?;
    Ok(st.caches.into_iter().collect())
}

fn infinispan_sites(ctx: &StepCtx) -> Vec<String> {
    crate::config::sites(&ctx.env)
        .iter()
        .filter(|(_, c)| c.infinispan.is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

async fn judge_clear(ctx: &StepCtx, site: &str, caches: Option<&[String]>) -> Judged {
    let (serving, how) = match serving(ctx).await {
        Ok(s) => s,
        Err(e) => return unknown(&format!("whether {site} serves traffic"), &e),
    };
    if serving.iter().any(|s| s == site) {
        return Judged {
            holds: false,
            summary: format!("{site} SERVES TRAFFIC ({how}): clearing its caches would delete the sessions its users are using; take it out of traffic first"),
            read: json!({ "serving": serving }),
        };
    }
    let mut online = Vec::new();
    let mut read = serde_json::Map::new();
    for other in infinispan_sites(ctx).iter().filter(|o| *o != site) {
        match backups(ctx, site, other, caches).await {
            Ok(list) => {
                for (cache, status) in &list {
                    if status != "offline" {
                        online.push(format!("{cache} → {other} is {status}"));
                    }
                }
                read.insert(
                    other.clone(),
                    json!(list.into_iter().collect::<BTreeMap<_, _>>()),
                );
            }
            Err(e) => return unknown(&format!("{site}'s replication to {other}"), &e),
        }
    }
    let read = json!({ "serving": serving, "backups": read });
    if online.is_empty() {
        return Judged {
            holds: true,
            summary: format!("{site} does not serve ({how}) and every backup it clears is offline"),
            read,
        };
    }
    Judged {
        holds: false,
        summary: format!(
            "{site}'s replication is not offline ({}): the clear would also clear the other site's caches; take the backup offline first (infinispan.take-offline)",
            online.join(", ")
        ),
        read,
    }
}

async fn judge_serving(ctx: &StepCtx, a: &InvariantArgs) -> Judged {
    let site = a.site.as_str();
    let (serving, how) = match serving(ctx).await {
        Ok(s) => s,
        Err(e) => return unknown("which sites serve traffic", &e),
    };
    let others: Vec<&String> = serving.iter().filter(|s| *s != site).collect();
    let serves = serving.iter().any(|s| s == site);
    let (holds, summary) = match a.invariant.as_str() {
        SCALE_TO_ZERO if serves && others.is_empty() => (false, format!("{site} is the only site that serves ({how}): scaling its Keycloak to 0 is an outage")),
        PROMOTE if !others.is_empty() => (false, format!(
            "{} serves traffic ({how}): a site that serves is not lost. To move the writer while both answer, use the planned move (the database role's move-writer, e.g. a switchover)",
            others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
        TAKE_OFFLINE => {
            let backup = a.backup.clone().unwrap_or_default();
            if serves && serving.contains(&backup) {
                (false, format!("{site} and {backup} both serve ({how}): with replication between them offline their sessions diverge while clients reach both; take {backup} out of traffic first"))
            } else {
                (true, format!("{site} and {backup} do not both serve ({how})"))
            }
        }
        _ => (true, format!("serving: {} ({how})", serving.join(", "))),
    };
    Judged {
        holds,
        summary,
        read: json!({ "serving": serving }),
    }
}

async fn judge_add(ctx: &StepCtx, a: &InvariantArgs) -> Judged {
    let site = a.site.as_str();
    let ispn = infinispan_sites(ctx);
    if !ispn.iter().any(|s| s == site) {
        return Judged {
            holds: true,
            summary: format!(
                "{site} keeps no cache data in an external Infinispan: nothing to synchronize"
            ),
            read: Json::Null,
        };
    }
    if let Some(left) = a.unsynchronized.as_ref().and_then(|u| u.get(site)) {
        return Judged {
            holds: false,
            summary: format!(
                "{site} left traffic in run {} ({}) and its caches were not synchronized since: it would serve stale data. Synchronize it first (its caches replaced from a serving site)",
                left["run"].as_str().unwrap_or("?"),
                left["runbook"].as_str().unwrap_or("?")
            ),
            read: json!({ "unsynchronized": a.unsynchronized }),
        };
    }
    let mut not_online = Vec::new();
    for other in ispn.iter().filter(|o| *o != site) {
        for (from, to) in [(site, other.as_str()), (other.as_str(), site)] {
            match backups(ctx, from, to, None).await {
                Ok(list) => not_online.extend(
                    list.into_iter()
                        .filter(|(_, s)| s != "online")
                        .map(|(c, s)| format!("{from} → {to} {c} is {s}")),
                ),
                Err(e) => return unknown(&format!("{from}'s replication to {to}"), &e),
            }
        }
    }
    Judged {
        holds: not_online.is_empty(),
        summary: if not_online.is_empty() {
            format!("{site} was synchronized since it last left and its replication is online both ways")
        } else {
            format!("{site}'s replication is not online both ways ({}): it would serve sessions the other site never sees; bring the backups online and synchronize first", not_online.join(", "))
        },
        read: json!({ "unsynchronized": a.unsynchronized }),
    }
}

/// `deployment.invariant`: judge one action invariant now (read only).
#[derive(Debug)]
pub struct Invariant;

#[async_trait]
impl Action for Invariant {
    fn name(&self) -> &'static str {
        "deployment.invariant"
    }
    fn summary(&self) -> &'static str {
        "judge an action's built-in safety invariant now (the site serves or not, replication offline, synchronized since it left)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required("invariant", ArgKind::String, "which invariant"),
            ArgSpec::required("site", ArgKind::String, "the site the guarded step acts on"),
            ArgSpec::optional(
                "backup",
                ArgKind::String,
                "the other site of a take-offline",
            ),
            ArgSpec::optional(
                "caches",
                ArgKind::List,
                "the caches a clear clears (null: all)",
            ),
            ArgSpec::optional(
                "unsynchronized",
                ArgKind::Object,
                "the journal's sites not synchronized since they left",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["holds", "summary", "read"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        let kind = args.get("invariant").and_then(Json::as_str).unwrap_or("?");
        vec![format!("judge `{kind}`: {}", title(kind))]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: InvariantArgs = crate::args::typed(self.name(), args)?;
        let judged = match a.invariant.as_str() {
            CLEAR => judge_clear(ctx, &a.site, a.caches.as_deref()).await,
            ADD => judge_add(ctx, &a).await,
            REMOVE => judge_remove(ctx, &a.site).await,
            SCALE_TO_ZERO | TAKE_OFFLINE | PROMOTE => judge_serving(ctx, &a).await,
            other => return Err(StepError::permanent(format!("unknown invariant `{other}`"))),
        };
        Ok(judged.json())
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        _: &engine::model::Outputs,
    ) -> Result<engine::model::Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}
