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
//! - Aurora: `DescribeDBInstances` of the site's instance answers the zone the site
//!   declares (`AvailabilityZone`).
//! - Route53: `GetHealthCheck` of the site's health check probes this site's load
//!   balancer (`HealthCheckConfig.FullyQualifiedDomainName` or `IPAddress`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use engine::action::BuiltinGuards;
use engine::model::{Guard, Param, ParamType, Step};
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use indexmap::IndexMap;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::args::typed;
use crate::clients::{aws_config, ctx_for, kube_client, kube_target, site_config};
use crate::infinispan::{xsite_name, Transport};

/// The id of the identity guard.
pub const IDENTITY: &str = "builtin-site-identity";
/// The id of the cache-list guard.
pub const CACHE_LIST: &str = "builtin-cache-list";
/// The id of the guard before a move of PGO's writer.
pub const PGO_WRITER: &str = "builtin-pgo-one-writer";

/// Before each step that moves the database's writer on PGO: `pgo.writer-check`
/// for its site, again right before that step. Through the role it applies only when
/// that site's database is PGO (its `when`), so an Aurora deployment's plan says it
/// does not apply.
fn pgo_writer_guards(steps: &[Step]) -> Vec<Guard> {
    let mut out = Vec::new();
    for s in steps {
        let unplanned = s.action == "pgo.promote-standby";
        let role = s.action == "database.move-writer";
        if !(role || unplanned || s.action == "pgo.move-writer") {
            continue;
        }
        let Some(site) = &s.site else { continue };
        // The site as an expression: `{{ params.secondary }}` → `params.secondary`.
        let expr = site
            .trim()
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .map(|e| e.trim().to_string())
            .unwrap_or_else(|| format!("{site:?}"));
        let mut g = builtin_guard(
            &format!("{PGO_WRITER}-{}", s.id),
            &format!(
                "Built in, before `{}`: never two writable PGO primaries; the writer moves only to a standby whose replay lag is known and within database.pgo.max_lag_bytes; both sites' pguser secrets equal; nothing paused; every site's Keycloak repointed in the same run",
                s.id
            ),
            "pgo.writer-check",
            json!({"to": site, "unplanned": unplanned}),
            "observation.safe",
        );
        if role {
            g.when = Some(format!(
                "(sites[{expr}].database | default({{}})).pgo is defined"
            ));
        }
        g.before = vec![s.id.clone()];
        out.push(g);
    }
    out
}

/// What an action talks to at a site, for the identity check.
fn families(action: &str) -> &'static [&'static str] {
    match action {
        "keycloak.scale" | "infinispan.cross-site-view" => &["kubernetes"],
        "aurora.failover" => &["aurora"],
        "pgo.move-writer"
        | "pgo.promote-standby"
        | "pgo.recreate-as-standby"
        | "pgo.cluster-state"
        | "pgo.switchover" => &["pgo"],
        "route53.set-health-check-path" | "route53.health-check-status" => &["route53"],
        "accelerator.remove-site" | "accelerator.add-site" => &["accelerator"],
        // A role: the vendor the site's section names (resolved when proved).
        "traffic.point-away" | "traffic.restore" | "traffic.remove-site" | "traffic.add-site" => {
            &["traffic"]
        }
        "database.move-writer" => &["database"],
        a if a.starts_with("infinispan.") => &["infinispan"],
        _ => &[],
    }
}

/// The step library's built-in guards: identity, the cache list, PGO's one writer,
/// and each action's own invariants (`invariants.rs`).
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
                match out.iter_mut().find(|(s, g, _)| s == site && g == f) {
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

fn builtin_guard(id: &str, title: &str, probe: &str, with: Json, expect: &str) -> Guard {
    Guard {
        id: id.to_string(),
        title: title.to_string(),
        probe: Some(probe.to_string()),
        site: None,
        with,
        expect: expect.to_string(),
        when: None,
        refusal: Some("{{ observation.summary }}".to_string()),
        before: Vec::new(),
        unchecked: None,
        deferred: None,
        line: 0,
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
        let own = pgo_writer_guards(steps);
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
        let mut out = vec![builtin_guard(
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
            let mut g = builtin_guard(
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

/// One endpoint's answer to "which site are you?".
#[derive(Debug, Clone, Default)]
struct Proof {
    site: String,
    via: &'static str,
    endpoint: String,
    /// What it answered, as a person reads it.
    answered: String,
    /// `None`: proven; else what is wrong.
    problem: Option<String>,
    /// What two sites must not share (an API server and namespace, a cluster member).
    marks: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct IdentityArgs {
    pub uses: Vec<Json>,
}

/// `deployment.identity`: every endpoint proves its site.
#[derive(Debug)]
pub struct Identity;

/// A proof of `via` at `site` begun, with the site's section (`None`, and the proof's
/// problem said, for a site the environment file does not describe).
fn begin(
    ctx: &StepCtx,
    site: &str,
    via: &'static str,
) -> (Proof, Option<crate::config::SiteConfig>) {
    let mut p = Proof {
        site: site.to_string(),
        via,
        ..Proof::default()
    };
    let cfg = site_config(ctx).ok().map(|(_, c)| c);
    if cfg.is_none() {
        p.problem = Some("not described in the environment file".into());
    }
    (p, cfg)
}

/// The proof failed: the site has no section for this family.
fn missing(p: Proof, site: &str, section: &str) -> Proof {
    Proof {
        problem: Some(format!(
            "configuration: sites.{site} has no `{section}` section"
        )),
        ..p
    }
}

async fn prove_kubernetes(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "kubernetes");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(k) = cfg.kubernetes.clone() else {
        return missing(p, site, "kubernetes");
    };
    if k.context.is_none() {
        p.endpoint = "the kubeconfig's current context".into();
        p.problem = Some(format!(
            "configuration: sites.{site}.kubernetes names no `context`, so the kubeconfig's current context would be used, which may be another site's cluster: name it (sites.{site}.kubernetes.context)"
        ));
        return p;
    }
    let (server, context) = match kube_target(ctx).await {
        Ok(t) => t,
        Err(e) => {
            p.problem = Some(format!("configuration: {}", e.message));
            return p;
        }
    };
    p.endpoint = format!(
        "context `{}` → {server}, namespace `{}`",
        context.unwrap_or_default(),
        k.namespace
    );
    p.marks.push(format!(
        "Kubernetes API server {server} namespace {}",
        k.namespace
    ));
    let Some(ispn) = cfg.infinispan.as_ref() else {
        p.answered = "no Infinispan CR to ask (the site has no infinispan section)".into();
        return p;
    };
    let name = ispn.cluster.clone().unwrap_or_else(|| "infinispan".into());
    let ns = ispn
        .namespace
        .clone()
        .unwrap_or_else(|| k.namespace.clone());
    let (client, _) = match kube_client(ctx).await {
        Ok(c) => c,
        Err(e) => {
            p.problem = Some(e.message);
            return p;
        }
    };
    let gvk = GroupVersionKind::gvk("infinispan.org", "v1", "Infinispan");
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "infinispans"),
    );
    let want = xsite_name(ctx, site);
    match tokio::time::timeout(Duration::from_secs(20), api.get(&name)).await {
        Err(_) => {
            p.problem = Some(format!(
                "unreachable: GET infinispans `{ns}/{name}` gave no answer in 20s"
            ))
        }
        Ok(Err(e)) => {
            p.problem = Some(match &e {
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
                    format!("configuration: the API server refused the credentials ({}): GET infinispans `{ns}/{name}`: {}", s.code, s.message)
                }
                kube::Error::Api(s) if s.code == 404 => format!(
                    "no Infinispan CR `{ns}/{name}` in this cluster: it cannot say which site it is"
                ),
                other => format!("unreachable: GET infinispans `{ns}/{name}`: {other}"),
            })
        }
        Ok(Ok(obj)) => {
            let local = obj.data["spec"]["service"]["sites"]["local"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            p.answered = format!("Infinispan CR `{ns}/{name}` names local site `{local}`");
            if local != want {
                p.problem = Some(format!(
                    "MISMATCH: this cluster's Infinispan CR `{ns}/{name}` says its local site is `{}`, not `{want}`",
                    if local.is_empty() { "(none)" } else { &local }
                ));
            }
        }
    }
    p
}

async fn prove_infinispan(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "infinispan");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(ispn) = cfg.infinispan.as_ref() else {
        return missing(p, site, "infinispan");
    };
    p.endpoint = ispn.url.clone().unwrap_or_else(|| "Batch CRs".into());
    let t = match Transport::for_step(ctx).await {
        Ok(t) => t,
        Err(e) => {
            p.problem = Some(classify(&e));
            return p;
        }
    };
    let want = xsite_name(ctx, site);
    match tokio::time::timeout(Duration::from_secs(20), t.info()).await {
        Err(_) => {
            p.problem =
                Some("unreachable: the cache manager's information gave no answer in 20s".into())
        }
        Ok(Err(e)) => p.problem = Some(classify(&e)),
        // Over Batch the server is reached through the site's own cluster, whose
        // Infinispan CR the kubernetes proof reads.
        Ok(Ok(None)) => p.answered = "reached through this site's cluster (Batch CRs)".into(),
        Ok(Ok(Some(info))) => {
            let local = info["local_site"].as_str().unwrap_or_default().to_string();
            let members: Vec<String> = info["cluster_members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect();
            p.answered = format!(
                "local_site `{local}`, cluster members {}",
                if members.is_empty() {
                    "(none)".to_string()
                } else {
                    members.join(", ")
                }
            );
            p.marks.extend(
                members
                    .iter()
                    .map(|m| format!("Infinispan cluster member {m}")),
            );
            if local != want {
                p.problem = Some(format!(
                    "MISMATCH: the server at {} says its local site is `{}`, not `{want}`",
                    p.endpoint,
                    if local.is_empty() { "(none)" } else { &local }
                ));
            }
        }
    }
    p
}

async fn prove_aurora(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "aurora");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(a) = cfg.aurora else {
        return missing(p, site, "aurora");
    };
    p.endpoint = format!("RDS instance `{}`", a.instance);
    p.marks.push(format!("Aurora instance {}", a.instance));
    let Some(conf) = aws_conf(ctx, &mut p).await else {
        return p;
    };
    let rds = aws_sdk_rds::Client::new(&conf);
    let call = format!("RDS DescribeDBInstances({})", a.instance);
    let sent = rds
        .describe_db_instances()
        .db_instance_identifier(&a.instance)
        .send();
    match within(&call, sent, crate::aurora::sdk_error).await {
        Err(problem) => p.problem = Some(problem),
        Ok(out) => {
            let zone = out
                .db_instances()
                .first()
                .and_then(|i| i.availability_zone())
                .unwrap_or_default()
                .to_string();
            p.answered = format!("AvailabilityZone `{zone}`");
            match &a.zone {
                None => {
                    p.problem = Some(format!(
                        "configuration: sites.{site}.aurora names no `zone`, so nothing proves `{}` is this site's instance: declare it (it is in `{zone}`)",
                        a.instance
                    ))
                }
                Some(z) if *z != zone => {
                    p.problem = Some(format!(
                        "MISMATCH: `{}` is in `{zone}`, but site {site} is in `{z}`",
                        a.instance
                    ))
                }
                Some(_) => {}
            }
        }
    }
    p
}

/// PGO: the site's Kubernetes proves the cluster is this site's (its API server and
/// namespace), and the database behind `address` must agree with that cluster: a
/// standby cluster's database is in recovery. An address that answers otherwise is
/// another site's database.
async fn prove_pgo(ctx: &StepCtx, site: &str) -> Proof {
    let mut p = prove_kubernetes(ctx, site).await;
    p.via = "pgo";
    if p.problem.is_some() {
        return p;
    }
    let Some(cfg) = site_config(ctx)
        .ok()
        .and_then(|(_, c)| crate::pgo::section(&c).cloned())
    else {
        p.problem = Some(format!(
            "configuration: sites.{site}.database names no pgo section"
        ));
        return p;
    };
    p.endpoint = format!(
        "PostgresCluster `{}` and the database at {}",
        cfg.cluster, cfg.address
    );
    p.marks.push(format!("PostgreSQL at {}", cfg.address));
    match crate::pgo::identity(ctx, site, &cfg).await {
        Ok(answered) => p.answered = answered,
        Err(problem) => p.problem = Some(problem),
    }
    p
}

/// The AWS SDK configuration, or the proof's problem (no `aws` section).
async fn aws_conf(ctx: &StepCtx, p: &mut Proof) -> Option<aws_config::SdkConfig> {
    match aws_config(&ctx.env).await {
        Ok(c) => Some(c),
        Err(e) => {
            p.problem = Some(format!("configuration: {}", e.message));
            None
        }
    }
}

/// An AWS call answered within 30 s, or the problem as a proof states it.
async fn within<T, E>(
    call: &str,
    sent: impl std::future::Future<Output = Result<T, E>>,
    error: impl FnOnce(&str, E) -> StepError,
) -> Result<T, String> {
    match tokio::time::timeout(Duration::from_secs(30), sent).await {
        Err(_) => Err(format!("unreachable: {call} gave no answer in 30s")),
        Ok(Err(e)) => Err(classify(&error(call, e))),
        Ok(Ok(v)) => Ok(v),
    }
}

fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
}

/// A site behind Global Accelerator proves itself by its NLB's `site` tag, read in
/// ELBv2, and by the named accelerator's one endpoint group holding no endpoint
/// tagged for it other than that NLB.
async fn prove_accelerator(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "accelerator");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(a) = cfg.traffic.as_ref().and_then(|t| t.accelerator.clone()) else {
        return missing(p, site, "traffic.accelerator");
    };
    p.endpoint = format!("NLB `{}` of accelerator `{}`", a.load_balancer, a.name);
    let read = crate::accelerator::read(ctx);
    let v = match tokio::time::timeout(Duration::from_secs(30), read).await {
        Err(_) => {
            p.problem =
                Some("unreachable: Global Accelerator or ELBv2 gave no answer in 30s".into());
            return p;
        }
        Ok(Err(e)) => {
            p.problem = Some(classify(&e));
            return p;
        }
        Ok(Ok(v)) => v,
    };
    let Some((arn, tag)) = v.nlbs.get(site).cloned() else {
        p.problem = Some(format!("configuration: sites.{site}'s NLB was not found"));
        return p;
    };
    p.marks.push(format!("NLB {arn}"));
    p.answered = format!("tagged site={}", tag.as_deref().unwrap_or("(none)"));
    let judged = v.judge();
    let mine: Vec<String> = judged["mismatch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .filter(|m| m.contains(&format!("{site}'s NLB")) || m.contains(&format!("site={site},")))
        .map(str::to_string)
        .collect();
    if !mine.is_empty() {
        p.problem = Some(format!("identity mismatch: {}", mine.join("; ")));
    }
    p
}

async fn prove_route53(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "route53");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(r) = cfg.route53.as_ref() else {
        return missing(p, site, "route53");
    };
    p.endpoint = format!("health check `{}`", r.health_check_id);
    p.marks
        .push(format!("Route53 health check {}", r.health_check_id));
    let want = r
        .target
        .clone()
        .or_else(|| cfg.lb_check_url.as_deref().and_then(host_of));
    let Some(conf) = aws_conf(ctx, &mut p).await else {
        return p;
    };
    let r53 = aws_sdk_route53::Client::new(&conf);
    let call = format!("Route53 GetHealthCheck({})", r.health_check_id);
    let sent = r53
        .get_health_check()
        .health_check_id(&r.health_check_id)
        .send();
    match within(&call, sent, crate::route53::r53_error).await {
        Err(problem) => p.problem = Some(problem),
        Ok(out) => {
            let c = out.health_check().and_then(|h| h.health_check_config());
            let target = c
                .and_then(|c| c.fully_qualified_domain_name().or(c.ip_address()))
                .unwrap_or_default()
                .to_string();
            p.answered = format!("probes `{target}`");
            match want {
                None => {
                    p.problem = Some(format!(
                        "configuration: sites.{site} gives neither route53.target nor lb_check_url, so nothing proves the health check is this site's"
                    ))
                }
                Some(w) if !w.eq_ignore_ascii_case(&target) => {
                    p.problem = Some(format!(
                        "MISMATCH: health check `{}` probes `{target}`, not site {site}'s load balancer `{w}`",
                        r.health_check_id
                    ))
                }
                Some(_) => {}
            }
        }
    }
    p
}

/// An error, with what kind of problem it is first: the credentials or a missing
/// reference (configuration), or a server that does not answer (unreachable).
fn classify(e: &StepError) -> String {
    let m = &e.message;
    let config = [
        "answered 401",
        "answered 403",
        "credentials",
        "is not set",
        "cannot read",
        "gives no",
        "AccessDenied",
        "ExpiredToken",
        "InvalidClientTokenId",
        "UnrecognizedClient",
        "no credentials",
        "NoCredentials",
        "environment file has no",
    ];
    if config.iter().any(|c| m.contains(c)) {
        format!("configuration: {m}")
    } else if m.contains("cannot connect")
        || m.contains("no answer")
        || m.contains("dispatch failure")
        || [" answered 502", " answered 503", " answered 504"]
            .iter()
            .any(|c| m.contains(c))
    {
        format!("unreachable: {m}")
    } else {
        m.clone()
    }
}

/// A role's family (`traffic`, `database`) as the vendor the site's section names
/// (`route53`, `aurora`); a vendor family as it is.
fn resolve(env: &engine::env::Environment, site: &str, via: &str) -> String {
    let concern = match via {
        "traffic" => crate::roles::Concern::Traffic,
        "database" => crate::roles::Concern::Database,
        other => return other.to_string(),
    };
    crate::config::sites(env)
        .get(site)
        .and_then(|s| concern.vendor_of(s))
        .map_or_else(|| via.to_string(), str::to_string)
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
                        problem: Some(e),
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
                let proof = match via.as_str() {
                    "kubernetes" => prove_kubernetes(&c, site).await,
                    "infinispan" if batch => prove_kubernetes(&c, site).await,
                    "infinispan" => prove_infinispan(&c, site).await,
                    "aurora" => prove_aurora(&c, site).await,
                    "pgo" => prove_pgo(&c, site).await,
                    "route53" => prove_route53(&c, site).await,
                    "accelerator" => prove_accelerator(&c, site).await,
                    role @ ("traffic" | "database") => Proof {
                        site: site.clone(),
                        problem: Some(format!(
                            "configuration: sites.{site} names no {role} vendor (e.g. `{role}: {{ route53: … }}` / `{{ aurora: … }}`), so nothing proves which site it is"
                        )),
                        ..Proof::default()
                    },
                    other => Proof {
                        site: site.clone(),
                        problem: Some(format!("unknown endpoint family `{other}`")),
                        ..Proof::default()
                    },
                };
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
                "aurora" => format!("RDS ({site}): DescribeDBInstances (AvailabilityZone)"),
                "route53" => format!("Route53 ({site}): GetHealthCheck (the target it probes)"),
                "accelerator" => format!("Global Accelerator + ELBv2 ({site}): the NLB's `site` tag, and that its endpoint group is the named accelerator's"),
                other => format!("{other} ({site})"),
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
            let c = ctx_for(ctx, site).map_err(StepError::permanent)?;
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
        if site.aurora.is_some() {
            add("aurora");
        }
        if site.route53.is_some() {
            add("route53");
        }
        if site
            .traffic
            .as_ref()
            .is_some_and(|t| t.accelerator.is_some())
        {
            add("accelerator");
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
