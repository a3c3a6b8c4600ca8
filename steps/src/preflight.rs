//! The guards every runbook gets, built from what its steps and guards touch: each
//! site proves, through every endpoint the run uses there, that it is the site it
//! claims to be (`builtin-site-identity`); and a runbook that acts on Infinispan caches
//! by a `caches` list names them all (`builtin-cache-list`). Both are read-only probes,
//! shown by the plan, judged live before the run's first effect (and by `plan --live`
//! and `check`), journaled like the runbook's own guards and overridden only with
//! `force` and a reason.
//!
//! What each endpoint is asked, and where the answer's shape comes from:
//! - Kubernetes: the context the site names (never the kubeconfig's current one),
//!   resolved to its API server; the site's Infinispan CR
//!   (`infinispans.infinispan.org`, `spec.service.sites.local.name`, the operator's
//!   cross-site API) names this site as its local site.
//! - Infinispan REST: the cache manager's information (`GET /rest/v2/container` on 15,
//!   `GET /rest/v2/cache-managers/{name}` on 14: CacheManagerInfo.toJson, fields
//!   `local_site` and `cluster_members`) names this site, and the two sites' servers
//!   share no cluster member.
//! - A vendor's endpoint: what its own proof asks (`Vendor::prove`, in its folder;
//!   e.g. Aurora's instance answers the zone the site declares, Route53's health check
//!   probes this site's load balancer).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use engine::action::BuiltinGuards;
use engine::model::{Guard, Param, ParamType, Step};
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::args::typed;
use crate::clients::{ctx_for, site_config};
use crate::identity::{prove_infinispan, prove_kubernetes, Proof};
use crate::infinispan::{xsite_name, Transport};

/// The id of the identity guard.
pub const IDENTITY: &str = "builtin-site-identity";
/// The id of the cache-list guard.
pub const CACHE_LIST: &str = "builtin-cache-list";
/// What an action talks to at a site, for the identity check: a fixed section
/// (`kubernetes`, `infinispan`), a role (`traffic`, `database`: the vendor the site's
/// section names, resolved when proved), or the vendor whose action it is.
fn families(action: &str) -> Vec<&'static str> {
    match action {
        "keycloak.scale" | "infinispan.cross-site-view" => vec!["kubernetes"],
        a if a.starts_with("infinispan.") => vec!["infinispan"],
        a => {
            if let Some(concern) = crate::roles::concern_of(a) {
                return vec![concern.as_str()];
            }
            crate::vendors::touched_by(a)
                .map(|v| vec![v.vendor()])
                .unwrap_or_default()
        }
    }
}

/// The step library's built-in guards: identity, the cache list, each vendor's own
/// (`Vendor::guards`), and each action's own invariants (`invariants.rs`).
#[derive(Debug, Default)]
pub struct Builtin {
    /// Each action's invariants, by action name (from the registry).
    carried: BTreeMap<&'static str, &'static [&'static str]>,
}

impl Builtin {
    /// The built-in guards of the actions in `registry`.
    pub fn new(registry: &engine::Registry) -> Builtin {
        let carried = registry
            .names()
            .filter_map(|n| {
                let i = registry.get(n)?.invariants();
                (!i.is_empty()).then_some((n, i))
            })
            .collect();
        Builtin { carried }
    }

    /// Every (site template, family) the runbook's steps, preconditions and guards use,
    /// with the condition under which it is used: `None` when some use is
    /// unconditional, else the uses' `when`s joined by `or` (a site whose only use is
    /// a step or guard that does not apply, e.g. Infinispan in the stateless shape, is
    /// not asked to prove itself).
    fn uses(steps: &[Step], guards: &[Guard]) -> Vec<(String, &'static str, Option<String>)> {
        let mut out: Vec<(String, &'static str, Option<String>)> = Vec::new();
        let mut add = |site: Option<&String>, action: &str, when: Option<&String>| {
            let Some(site) = site else { return };
            // Guards see params, sites and history, not the outputs of steps: a use
            // under a `when` that reads them is proved whatever it says.
            let when = when.filter(|w| !w.contains("steps"));
            for f in families(action) {
                let f: &'static str = f;
                match out.iter_mut().find(|(s, g, _)| s == site && *g == f) {
                    None => out.push((site.clone(), f, when.map(|w| format!("({w})")))),
                    Some((_, _, cond)) => {
                        *cond = match (cond.take(), when) {
                            (Some(c), Some(w)) => Some(format!("{c} or ({w})")),
                            _ => None,
                        }
                    }
                }
            }
        };
        for s in steps {
            add(s.site.as_ref(), &s.action, s.when.as_ref());
            for c in s.require.iter().chain(&s.verify) {
                add(
                    c.site.as_ref().or(s.site.as_ref()),
                    c.probe.as_deref().unwrap_or(&s.action),
                    s.when.as_ref(),
                );
            }
        }
        for g in guards {
            if let Some(p) = &g.probe {
                add(g.site.as_ref(), p, g.when.as_ref());
            }
        }
        out
    }
}

impl BuiltinGuards for Builtin {
    fn after_declared(&self, steps: &[Step], _params: &IndexMap<String, Param>) -> Vec<Guard> {
        crate::invariants::guards(steps, &self.carried)
    }

    fn guards(
        &self,
        steps: &[Step],
        guards: &[Guard],
        params: &IndexMap<String, Param>,
    ) -> Vec<Guard> {
        let uses = Self::uses(steps, guards);
        let own: Vec<Guard> = crate::vendors::all()
            .into_iter()
            .flat_map(|v| v.guards(steps))
            .collect();
        if uses.is_empty() {
            return own;
        }
        let list: Vec<Json> = uses
            .iter()
            .map(|(site, via, when)| match when {
                None => json!({"site": site, "via": via}),
                Some(w) => json!({"site": site, "via": via, "applies": format!("{{{{ {w} }}}}")}),
            })
            .collect();
        let mut out = vec![crate::guarantees::builtin_guard(
            IDENTITY,
            "Built in: every endpoint this run uses proves it belongs to its site (Kubernetes context and Infinispan CR, Infinispan's local site, Aurora's zone, the health check's target)",
            "deployment.identity",
            json!({ "uses": list }),
            "observation.proven",
        )];
        let ispn: Vec<&(String, &'static str, Option<String>)> = uses
            .iter()
            .filter(|(_, via, _)| *via == "infinispan")
            .collect();
        let ispn_sites: Vec<Json> = ispn
            .iter()
            .map(|(s, _, _)| Json::String(s.clone()))
            .collect();
        // Conditional only when every Infinispan use is.
        let ispn_when: Option<String> = ispn
            .iter()
            .map(|(_, _, w)| w.clone())
            .collect::<Option<Vec<String>>>()
            .map(|ws| ws.join(" or "));
        let takes_caches = params
            .get("caches")
            .is_some_and(|p| p.kind == ParamType::List);
        if takes_caches && !ispn_sites.is_empty() {
            let mut g = crate::guarantees::builtin_guard(
                CACHE_LIST,
                "Built in: the cache list is whole: every cache named exists and backs up to the other site, and no cache backed up to the other site is left out",
                "infinispan.cache-list",
                json!({ "sites": ispn_sites, "caches": "{{ params.caches }}" }),
                "observation.complete",
            );
            g.when = ispn_when;
            out.push(g);
        }
        out.extend(own);
        out
    }
}

/// Whether an identity reading (`deployment.identity`'s observation) says the
/// environment file is wrong rather than the deployment: an endpoint that is another
/// site, a configuration problem (a refused password, a missing context), or two sites
/// that resolve to one endpoint. The reading's summary when it does.
pub fn misconfiguration(identity: &Json) -> Option<String> {
    let wrong = identity["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["problem"].as_str())
        // A section the file does not have is the runbook asking for what this
        // deployment lacks (the stateless shape has no Infinispan): the run's own
        // refusal says so, not a mistake in the file.
        .filter(|p| !p.contains("` section") && !p.contains(" vendor"))
        .any(|p| p.starts_with("MISMATCH") || p.starts_with("configuration"));
    let ambiguous = identity
        .get("summary")
        .is_some_and(|s| s.as_str().is_some_and(|t| t.contains("resolve to one")));
    (wrong || ambiguous).then(|| identity["summary"].as_str().unwrap_or_default().to_string())
}

#[derive(Debug, Deserialize)]
pub struct IdentityArgs {
    pub uses: Vec<Json>,
}

/// `deployment.identity`: every endpoint proves its site.
#[derive(Debug)]
pub struct Identity;

/// A role's family (`traffic`, `database`) as the vendor the site's section names
/// (`route53`, `aurora`); a vendor or a fixed section as it is.
fn resolve(env: &engine::env::Environment, site: &str, via: &str) -> String {
    let concern = match via {
        "traffic" => crate::config::Concern::Traffic,
        "database" => crate::config::Concern::Database,
        other => return other.to_string(),
    };
    crate::config::sites(env)
        .get(site)
        .and_then(|s| s.vendor(concern))
        .map_or_else(|| via.to_string(), str::to_string)
}

/// One endpoint proved: a fixed section's proof, or the vendor's.
async fn prove_one(c: &StepCtx, site: &str, via: &str, batch: bool) -> Proof {
    match via {
        "kubernetes" => prove_kubernetes(c, site).await,
        "infinispan" if batch => prove_kubernetes(c, site).await,
        "infinispan" => prove_infinispan(c, site).await,
        role @ ("traffic" | "database") => Proof {
            site: site.to_string(),
            problem: Some(format!(
                "configuration: sites.{site} names no {role} vendor (e.g. {}), so nothing proves which site it is",
                crate::vendors::examples(if role == "traffic" { crate::config::Concern::Traffic } else { crate::config::Concern::Database })
            )),
            ..Proof::default()
        },
        other => match crate::vendors::all().into_iter().find(|v| v.vendor() == other) {
            Some(v) => v.prove(c, site).await,
            None => Proof {
                site: site.to_string(),
                problem: Some(format!("unknown endpoint family `{other}`")),
                ..Proof::default()
            },
        },
    }
}

impl Identity {
    async fn prove_all(ctx: &StepCtx, uses: &[(String, String)]) -> Vec<Proof> {
        let mut out = Vec::new();
        for (site, via) in uses {
            let via = &resolve(&ctx.env, site, via);
            let c = match ctx_for(ctx, site) {
                Ok(c) => c,
                Err(e) => {
                    out.push(Proof {
                        site: site.clone(),
                        problem: Some(e.message),
                        ..Proof::default()
                    });
                    continue;
                }
            };
            // Over Batch, Infinispan is reached through the site's cluster: that
            // cluster proves it.
            let batch = site_config(&c)
                .ok()
                .and_then(|(_, s)| s.infinispan)
                .is_some_and(|i| i.transport == crate::config::IspnTransport::Batch);
            // A server that is busy or does not answer is asked again a few times
            // (as a step's retries would): only a lasting silence is "unreachable".
            let mut tries = 0;
            let proof = loop {
                tries += 1;
                let proof = prove_one(&c, site, via, batch).await;
                // A busy server (5xx) is asked again; silence was already retried
                // by the transport, and costs its timeout once.
                let unreachable = proof.problem.as_deref().is_some_and(|p| {
                    p.starts_with("unreachable")
                        && [" answered 502", " answered 503", " answered 504"]
                            .iter()
                            .any(|c| p.contains(c))
                });
                if !unreachable || tries >= 3 {
                    break proof;
                }
                tokio::time::sleep(ctx.env.scaled_pause(Duration::from_secs(2))).await;
            };
            if !out
                .iter()
                .any(|p: &Proof| p.site == proof.site && p.via == proof.via)
            {
                out.push(proof);
            }
        }
        out
    }
}

/// Two sites that resolve to one endpoint: what they share.
fn shared(proofs: &[Proof]) -> Vec<String> {
    let mut by_mark: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in proofs {
        for m in &p.marks {
            let sites = by_mark.entry(m.as_str()).or_default();
            if !sites.contains(&p.site.as_str()) {
                sites.push(&p.site);
            }
        }
    }
    by_mark
        .into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(m, mut s)| {
            s.sort_unstable();
            format!("MISMATCH: sites {} resolve to one {m}", s.join(" and "))
        })
        .collect()
}

#[async_trait]
impl Action for Identity {
    fn name(&self) -> &'static str {
        "deployment.identity"
    }
    fn summary(&self) -> &'static str {
        "read from every endpoint a run uses which site it is (built in: the site-identity guard)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[ArgSpec::required(
            "uses",
            ArgKind::List,
            "the endpoints to prove: {site, via: kubernetes|infinispan|aurora|route53}",
        )];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["proven", "endpoints", "summary"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let uses = parse_uses(args);
        uses.iter()
            .map(|(site, via)| (site, resolve(&ctx.env, site, via)))
            .map(|(site, via)| match via.as_str() {
                "kubernetes" => format!("Kubernetes ({site}): resolve the named context; GET infinispans.infinispan.org (spec.service.sites.local.name)"),
                "infinispan" => format!("Infinispan ({site}): GET the cache manager's information (local_site, cluster_members)"),
                other => crate::vendors::all()
                    .into_iter()
                    .find(|v| v.vendor() == other)
                    .map_or_else(|| format!("{other} ({site})"), |v| v.proof_plan(site)),
            })
            .collect()
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        typed::<IdentityArgs>(self.name(), args)?;
        let uses = parse_uses(args);
        let proofs = Self::prove_all(ctx, &uses).await;
        let mut problems: Vec<String> = proofs
            .iter()
            .filter_map(|p| {
                p.problem.as_ref().map(|why| {
                    let at = if p.endpoint.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", p.endpoint)
                    };
                    format!("{} {}{at}: {why}", p.site, p.via)
                })
            })
            .collect();
        problems.extend(shared(&proofs));
        let proven = problems.is_empty();
        let endpoints: Vec<Json> = proofs
            .iter()
            .map(|p| {
                json!({"site": p.site, "via": p.via, "endpoint": p.endpoint,
                       "answered": p.answered, "ok": p.problem.is_none(), "problem": p.problem})
            })
            .collect();
        let summary = if proven {
            let each: Vec<String> = proofs
                .iter()
                .map(|p| match (p.endpoint.is_empty(), p.answered.is_empty()) {
                    (false, false) => {
                        format!("{} {} ({}): {}", p.site, p.via, p.endpoint, p.answered)
                    }
                    (true, _) => format!("{} {}: {}", p.site, p.via, p.answered),
                    (false, true) => format!("{} {}: {}", p.site, p.via, p.endpoint),
                })
                .collect();
            format!("every endpoint is its site's ({})", each.join("; "))
        } else if problems.len() == proofs.iter().filter(|p| p.problem.is_some()).count()
            && proofs.iter().filter_map(|p| p.problem.as_deref()).all(|p| {
                is_transport(p) && !p.starts_with("MISMATCH") && !p.starts_with("configuration")
            })
        {
            // A connection that failed says nothing about the file: said as what it is.
            format!(
                "an endpoint could not be asked which site it is: {}. That is a transport error: nothing answered (the server is down or unreachable, or the file names a wrong address); try again once it answers (`runbook env check` asks every endpoint)",
                problems.join("; ")
            )
        } else {
            format!(
                "an endpoint is not the site it is configured as, or cannot say: {}. Fix the environment file (each site's own context, URL, instance, health check, credentials)",
                problems.join("; ")
            )
        };
        Ok(json!({"proven": proven, "endpoints": endpoints, "summary": summary}))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

/// Whether a proof's problem is a failed connection or a lost answer (after the
/// client's own retries), not something an endpoint answered.
fn is_transport(problem: &str) -> bool {
    [
        ": cannot connect:",
        ": request failed:",
        ": no answer in time:",
        "connection reset",
        "connection closed",
        "error sending request",
    ]
    .iter()
    .any(|t| problem.contains(t))
}

fn parse_uses(args: &Args) -> Vec<(String, String)> {
    args.get("uses")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        // A use whose condition rendered false does not apply to this run.
        .filter(|u| {
            !matches!(u.get("applies"), Some(Json::Bool(false)))
                && u.get("applies").and_then(Json::as_str) != Some("false")
        })
        .filter_map(|u| {
            Some((
                u.get("site")?.as_str()?.to_string(),
                u.get("via")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct CacheListArgs {
    pub sites: Vec<String>,
    pub caches: Vec<String>,
}

/// `infinispan.cache-list`: the caches a run names exist and back up to the other
/// site on every site it uses, and it leaves none out that a server backs up.
#[derive(Debug)]
pub struct CacheList;

#[async_trait]
impl Action for CacheList {
    fn name(&self) -> &'static str {
        "infinispan.cache-list"
    }
    fn summary(&self) -> &'static str {
        "check a cache list against the servers: each cache exists and backs up to the other site; no backed-up cache left out (built in)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required("sites", ArgKind::List, "the sites whose servers are read"),
            ArgSpec::required("caches", ArgKind::List, "the cache list to check"),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["complete", "missing", "left_out", "summary"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        let sites = args
            .get("sites")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        vec![format!("Infinispan ({sites}): GET /rest/v2/caches, then GET /rest/v2/caches/{{cache}}/x-site/backups for each")]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: CacheListArgs = typed(self.name(), args)?;
        let mut sites = a.sites.clone();
        sites.dedup();
        let mut problems = Vec::new();
        let mut missing = serde_json::Map::new();
        let mut left_out = std::collections::BTreeSet::new();
        let mut notes = Vec::new();
        for site in &sites {
            let c = ctx_for(ctx, site)?;
            let others: Vec<String> = ctx
                .env
                .sites
                .keys()
                .filter(|k| *k != site)
                .cloned()
                .collect();
            let t = Transport::for_step(&c).await?;
            for other in others {
                let remote = xsite_name(&c, &other);
                let Some(backed) = t.backed_up(&remote).await? else {
                    notes.push(format!("{site}: over Batch the caches cannot be listed, so the list is not checked there"));
                    continue;
                };
                let absent: Vec<String> = a
                    .caches
                    .iter()
                    .filter(|c| !backed.contains(c))
                    .cloned()
                    .collect();
                if !absent.is_empty() {
                    problems.push(format!(
                        "on {site}, {} {} not a cache that backs up to {other}",
                        absent.join(", "),
                        if absent.len() == 1 { "is" } else { "are" }
                    ));
                    missing.insert(site.clone(), json!(absent));
                }
                for c in backed.iter().filter(|c| !a.caches.contains(c)) {
                    left_out.insert(c.clone());
                }
            }
        }
        if !left_out.is_empty() {
            let l: Vec<String> = left_out.iter().cloned().collect();
            problems.push(format!(
                "the list leaves out {}, which the servers back up to the other site: a run on part of the caches leaves the rest as they were (pass them all, or force with a reason)",
                l.join(", ")
            ));
        }
        let complete = problems.is_empty();
        let summary = if complete {
            format!(
                "all {} caches exist and back up to the other site, and none is left out{}",
                a.caches.len(),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                }
            )
        } else {
            format!(
                "the cache list does not match the servers: {}",
                problems.join("; ")
            )
        };
        Ok(
            json!({"complete": complete, "missing": missing, "left_out": left_out, "summary": summary}),
        )
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

/// Every endpoint the environment file describes, per site: what `runbook env check`
/// and `runbook check` prove.
pub fn every_endpoint(env: &engine::env::Environment) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, site) in crate::config::sites(env) {
        let mut add = |via: &str| out.push((name.clone(), via.to_string()));
        if site.kubernetes.is_some() {
            add("kubernetes");
        }
        if site.infinispan.is_some() {
            add("infinispan");
        }
        for concern in crate::config::Concern::ALL {
            if let Some(v) = site.vendor(concern) {
                add(v);
            }
        }
    }
    out
}

/// Prove `uses` (site, family) against `env`: the identity guard's observation.
pub async fn prove(
    env: std::sync::Arc<engine::env::Environment>,
    uses: &[(String, String)],
) -> Json {
    let ctx = StepCtx {
        run_id: "check".into(),
        step_id: "identity".into(),
        item: None,
        site: None,
        env,
        timeout: Duration::from_secs(60),
        interrupt: Default::default(),
        progress: Default::default(),
    };
    let list: Vec<Json> = uses
        .iter()
        .map(|(site, via)| json!({"site": site, "via": via}))
        .collect();
    let mut args = Args::new();
    args.insert("uses".into(), Json::Array(list));
    match Identity.probe(&ctx, &args).await {
        Ok(v) => v,
        Err(e) => json!({"proven": false, "endpoints": [], "summary": e.message}),
    }
}
