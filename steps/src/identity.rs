//! What a site's endpoints answer to "which site are you?": the proof each vendor
//! and each fixed section gives (`Proof`), and the helpers proofs share. The identity
//! guard (`preflight.rs`) asks them; each vendor's proof lives in its own folder.

use std::time::Duration;

use engine::{StepCtx, StepError};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use crate::clients::{aws_config, kube_client, kube_target, site_config};
use crate::infinispan::{xsite_name, Transport};

/// One endpoint's answer to "which site are you?".
#[derive(Debug, Clone, Default)]
pub struct Proof {
    pub site: String,
    pub via: &'static str,
    pub endpoint: String,
    /// What it answered, as a person reads it.
    pub answered: String,
    /// `None`: proven; else what is wrong.
    pub problem: Option<String>,
    /// What two sites must not share (an API server and namespace, a cluster member).
    pub marks: Vec<String>,
}

/// A proof of `via` at `site` begun, with the site's section (`None`, and the proof's
/// problem said, for a site the environment file does not describe).
pub fn begin(
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
pub fn missing(p: Proof, site: &str, section: &str) -> Proof {
    Proof {
        problem: Some(format!(
            "configuration: sites.{site} has no `{section}` section"
        )),
        ..p
    }
}

pub async fn prove_kubernetes(ctx: &StepCtx, site: &str) -> Proof {
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

pub async fn prove_infinispan(ctx: &StepCtx, site: &str) -> Proof {
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

/// The AWS SDK configuration, or the proof's problem (no `aws` section).
pub async fn aws_conf(ctx: &StepCtx, p: &mut Proof) -> Option<aws_config::SdkConfig> {
    match aws_config(&ctx.env).await {
        Ok(c) => Some(c),
        Err(e) => {
            p.problem = Some(format!("configuration: {}", e.message));
            None
        }
    }
}

/// An AWS call answered within 30 s, or the problem as a proof states it.
pub async fn within<T, E>(
    call: &str,
    sent: impl std::future::Future<Output = Result<T, E>>,
    error: impl FnOnce(&str, E) -> StepError,
) -> Result<T, ProofProblem> {
    match tokio::time::timeout(Duration::from_secs(30), sent).await {
        Err(_) => Err(ProofProblem(format!(
            "unreachable: {call} gave no answer in 30s"
        ))),
        Ok(Err(e)) => Err(ProofProblem(classify(&error(call, e)))),
        Ok(Ok(v)) => Ok(v),
    }
}

/// What keeps an endpoint from proving its site, as the proof states it (its kind
/// first: `configuration:`, `unreachable:`, `MISMATCH:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofProblem(pub String);

pub fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
}

/// An error, with what kind of problem it is first: the credentials or a missing
/// reference (configuration), or a server that does not answer (unreachable).
pub fn classify(e: &StepError) -> String {
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
