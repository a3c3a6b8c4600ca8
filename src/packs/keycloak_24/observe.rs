//! What the Keycloak 24 pack reads of a deployment for `runbook check`: which site
//! serves (the Route53 failover records), each site's replication, entries, Keycloak
//! and Infinispan CRs, the Aurora writer's zone, all through the steps' own read-only
//! probes, so check and the guards read the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use engine::env::Environment;
use engine::Registry;
use serde::Serialize;
use serde_json::{json, Value as Json};

/// What one site looks like from outside.
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    /// Cross-site status of this site's backup to the other site, or the error (JSON:
    /// the status, or `{"error": ...}`).
    #[serde(serialize_with = "value_or_error")]
    pub replication: Result<String, String>,
    /// Entries per cache (`None`: not readable).
    pub entries: BTreeMap<String, Option<u64>>,
    #[serde(serialize_with = "value_or_error")]
    pub keycloak_instances: Result<i64, String>,
    pub health_check_path: Option<String>,
    pub health_check_healthy: Option<bool>,
    pub lb_check: Option<u16>,
    /// The Infinispan CR's `CrossSiteViewFormed` and `WellFormed` (chapter 6.4): both
    /// true, and what they say; `None`: not readable (JSON: `{"formed", "summary"}`).
    #[serde(serialize_with = "view_json")]
    pub cross_site_view: Option<(bool, String)>,
    /// The Keycloak CR's `Ready` condition (chapter 5); `None`: not readable.
    pub keycloak_ready: Option<bool>,
}

/// A value read, as itself; one that could not be, as `{"error": why}` (never Rust's
/// `{"Ok": ...}`).
fn value_or_error<T: Serialize, S: serde::Serializer>(
    v: &Result<T, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Ok(x) => x.serialize(s),
        Err(e) => json!({ "error": e }).serialize(s),
    }
}

fn view_json<S: serde::Serializer>(v: &Option<(bool, String)>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some((formed, summary)) => json!({"formed": formed, "summary": summary}).serialize(s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Observations {
    pub primary: SiteView,
    pub secondary: SiteView,
    /// The site the client domain resolves to, read from Route53 (the failover record
    /// pair, its health checks, TestDNSAnswer) by the same probe the guards use.
    pub serving: Option<String>,
    /// How `serving` was read, or why it could not be.
    pub serving_how: String,
    /// Where the roles come from: `route53` (the PRIMARY and SECONDARY records' sites)
    /// or `parameters` (`--primary`/`--secondary`, when the records cannot be read).
    pub roles_from: String,
    pub aurora_writer_site: Option<String>,
    /// PGO's reading of every site's database (`steps::pgo::deployment`), when the
    /// environment file names PGO as the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgo: Option<Json>,
}

pub use crate::packs::pack::ctx_for;

fn args(v: Json) -> engine::Args {
    v.as_object().cloned().unwrap_or_default()
}

async fn site_view(
    registry: &Registry,
    env: &Arc<Environment>,
    site: &str,
    other: &str,
    caches: &[String],
) -> SiteView {
    let ctx = ctx_for(env, site);
    let probe = |name: &str| registry.get(name).cloned().expect("registered");
    let replication = probe("infinispan.site-status")
        .probe(&ctx, &args(json!({"backup": other, "caches": caches})))
        .await
        .map(|o| o["status"].as_str().unwrap_or("unknown").to_string())
        .map_err(|e| e.message);
    let mut entries = BTreeMap::new();
    if replication.is_ok() {
        if let Ok(t) = steps::infinispan::Transport::for_step(&ctx).await {
            for c in caches {
                entries.insert(c.clone(), t.size(c).await.ok().flatten());
            }
        }
    }
    let keycloak_instances = probe("keycloak.scale")
        .probe(&ctx, &args(json!({"instances": 0})))
        .await
        .map(|o| o["status_instances"].as_i64().unwrap_or(0))
        .map_err(|e| e.message);
    let hc = probe("route53.health-check-status")
        .probe(&ctx, &args(json!({})))
        .await
        .ok();
    let lb = probe("http.expect")
        .probe(&ctx, &args(json!({})))
        .await
        .ok();
    let view = probe("infinispan.cross-site-view")
        .probe(&ctx, &args(json!({})))
        .await
        .ok()
        .map(|o| {
            (
                o["formed"].as_bool().unwrap_or(false),
                o["summary"].as_str().unwrap_or_default().to_string(),
            )
        });
    let kc = probe("keycloak.scale")
        .probe(&ctx, &args(json!({"instances": 0})))
        .await
        .ok();
    SiteView {
        name: site.to_string(),
        replication,
        entries,
        keycloak_instances,
        health_check_path: hc
            .as_ref()
            .and_then(|h| h["path"].as_str().map(str::to_string)),
        health_check_healthy: hc.as_ref().and_then(|h| h["healthy"].as_bool()),
        lb_check: lb
            .as_ref()
            .and_then(|l| l["status"].as_u64())
            .map(|s| s as u16),
        cross_site_view: view,
        keycloak_ready: kc
            .as_ref()
            .and_then(|o| o["ready"].as_str())
            .map(|r| r.eq_ignore_ascii_case("true")),
    }
}

/// Read the deployment (read-only probes only). The roles come from Route53: the
/// site of the PRIMARY failover record is the primary, whatever `primary` says; the
/// parameters are used only when the records cannot be read (said in `roles_from`).
pub async fn observe(
    registry: &Registry,
    env: Arc<Environment>,
    primary: &str,
    secondary: &str,
    caches: &[String],
) -> Observations {
    let route53 = steps::route53::serving::read(&ctx_for(&env, primary)).await;
    let role = |o: &Json, r: &str| {
        o["records"].as_array().and_then(|a| {
            a.iter()
                .find(|x| x["role"] == r)
                .and_then(|x| x["site"].as_str())
                .filter(|s| env.sites.contains_key(*s))
                .map(str::to_string)
        })
    };
    let (primary, secondary, roles_from, serving, serving_how) = match &route53 {
        Ok(o) => match (role(o, "PRIMARY"), role(o, "SECONDARY")) {
            (Some(p), Some(s)) if p != s => (
                p,
                s,
                "route53".to_string(),
                o["serving"].as_str().map(str::to_string),
                o["how"].as_str().unwrap_or_default().to_string(),
            ),
            _ => (
                primary.to_string(),
                secondary.to_string(),
                "parameters".to_string(),
                o["serving"].as_str().map(str::to_string),
                format!(
                    "{} (the failover records' health checks are not both sites' route53.health_check_id: roles from --primary/--secondary)",
                    o["how"].as_str().unwrap_or_default()
                ),
            ),
        },
        Err(e) => (
            primary.to_string(),
            secondary.to_string(),
            "parameters".to_string(),
            None,
            e.message.clone(),
        ),
    };
    let (mut p, mut s) = tokio::join!(
        site_view(registry, &env, &primary, &secondary, caches),
        site_view(registry, &env, &secondary, &primary, caches)
    );
    // With users logging in, a write between the two sites' reads shows as a
    // difference of one entry for a moment: counts that differ are read again, and
    // only a difference seen twice is reported.
    let differ = |p: &SiteView, s: &SiteView| -> Vec<String> {
        p.entries
            .iter()
            .filter(|(c, n)| s.entries.get(*c).is_some_and(|m| m != *n))
            .map(|(c, _)| c.clone())
            .collect()
    };
    let first = differ(&p, &s);
    if !first.is_empty() {
        tokio::time::sleep(env.scaled_pause(Duration::from_secs(2))).await;
        let (tp, ts) = (
            steps::infinispan::Transport::for_step(&ctx_for(&env, &primary)).await,
            steps::infinispan::Transport::for_step(&ctx_for(&env, &secondary)).await,
        );
        if let (Ok(tp), Ok(ts)) = (tp, ts) {
            for c in &first {
                if let (Ok(a), Ok(b)) = (tp.size(c).await, ts.size(c).await) {
                    p.entries.insert(c.clone(), a);
                    s.entries.insert(c.clone(), b);
                }
            }
        }
    }
    let pgo = if steps::pgo::in_use(&env) {
        Some(steps::pgo::deployment(&ctx_for(&env, &primary)).await)
    } else {
        None
    };
    let writer = registry
        .get("aurora.failover")
        .expect("registered")
        .probe(&ctx_for(&env, &primary), &args(json!({})))
        .await
        .ok()
        .and_then(|o| o["writer"].as_str().map(str::to_string));
    let aurora_writer_site = writer.and_then(|w| {
        steps::config::sites(&env)
            .iter()
            .find(|(_, c)| steps::aurora::vendor::section(c).is_some_and(|a| a.instance == w))
            .map(|(n, _)| n.clone())
    });
    Observations {
        primary: p,
        secondary: s,
        serving,
        serving_how,
        roles_from,
        aurora_writer_site,
        pgo,
    }
}
