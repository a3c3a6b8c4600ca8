//! `runbook check`: what state the deployment is in, read through the same probes the
//! steps use, and which runbook fixes it. Observing does I/O (`observe`); the verdict
//! is a pure function of the observations (`verdict`), tested on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use engine::env::Environment;
use engine::{Registry, Site, StepCtx};
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unreachable,
    /// The environment file or its credentials are wrong (a 401, a secret that does
    /// not resolve, no AWS credentials): not the deployment's state.
    Misconfigured,
    /// The secondary serves and the primary is back and in sync: a planned state
    /// (after a switchover), not an incident; switchback when ready.
    OnSecondary,
}

/// A recommended run: the runbook and its parameters, as data (the CLI shows it as
/// `runbook run NAME -p k=v ...` and checks it against the runs in flight).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Invocation {
    pub runbook: String,
    pub params: Vec<(String, String)>,
}

impl Invocation {
    pub fn new(runbook: &str, params: &[(&str, &str)]) -> Invocation {
        Invocation {
            runbook: runbook.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `k=v` of each parameter, as `-p` takes them.
    pub fn pairs(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The parameters' values: the sites it names.
    pub fn values(&self) -> Vec<&str> {
        self.params.iter().map(|(_, v)| v.as_str()).collect()
    }
}

impl std::fmt::Display for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.runbook)?;
        for p in self.pairs() {
            write!(f, " -p {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub health: Health,
    /// The runbook to run (with its parameters), if any.
    pub runbook: Option<Invocation>,
    pub reason: String,
    pub notes: Vec<String>,
}

/// The entries of every cache, or `None` when any count (or all) could not be read:
/// a count not read is never 0.
fn sum(entries: &BTreeMap<String, Option<u64>>) -> Option<u64> {
    if entries.is_empty() {
        return None;
    }
    entries.values().copied().sum()
}

/// Whether an error is the configuration's (credentials refused, a reference that
/// does not resolve) rather than a server that does not answer.
pub fn is_configuration(e: &str) -> bool {
    [
        "answered 401",
        "answered 403",
        "credentials were refused",
        "which is not set",
        "cannot read the Infinispan password file",
        "gives no password",
        "gives no username",
        "has no key `password`",
        "no credentials",
        "no AWS credentials",
        "NoCredentials",
        "InvalidClientTokenId",
        "ExpiredToken",
        "AccessDenied",
    ]
    .iter()
    .any(|c| e.contains(c))
}

fn differing(a: &SiteView, b: &SiteView) -> Vec<String> {
    a.entries
        .iter()
        .filter(|(c, n)| {
            n.is_some()
                && b.entries.get(*c).copied().flatten().is_some()
                && b.entries.get(*c) != Some(n)
        })
        .map(|(c, n)| {
            format!(
                "{c}: {} vs {}",
                n.unwrap_or(0),
                b.entries.get(c).copied().flatten().unwrap_or(0)
            )
        })
        .collect()
}

/// The verdict for a set of observations.
pub fn verdict(o: &Observations, down_path: &str) -> Verdict {
    let (p, s) = (&o.primary, &o.secondary);
    let mut notes = Vec::new();
    let config: Vec<String> = [p, s]
        .iter()
        .filter_map(|v| match &v.replication {
            Err(e) if is_configuration(e) => Some(format!("{}: {e}", v.name)),
            _ => None,
        })
        .collect();
    if !config.is_empty() {
        return Verdict {
            health: Health::Misconfigured,
            runbook: None,
            reason: format!(
                "the environment file or its credentials are wrong (the servers answered, and refused): {}",
                config.join("; ")
            ),
            notes,
        };
    }
    let primary_down = p.replication.is_err()
        || matches!(p.keycloak_instances, Ok(0) | Err(_)) && p.lb_check != Some(200);
    let secondary_down = s.replication.is_err() || s.lb_check.is_some_and(|c| c != 200);
    if primary_down && secondary_down {
        return Verdict {
            health: Health::Unreachable,
            runbook: None,
            reason: format!(
                "neither site answers: {} ({}), {} ({})",
                p.name,
                p.replication
                    .clone()
                    .err()
                    .unwrap_or_else(|| "Keycloak has no ready instance".into()),
                s.name,
                s.replication
                    .clone()
                    .err()
                    .unwrap_or_else(|| "lb-check does not answer 200".into())
            ),
            notes,
        };
    }
    if o.serving.is_none() {
        notes.push(format!(
            "which site serves could not be read: {}",
            o.serving_how
        ));
    }
    for v in [p, s] {
        if let Some((false, why)) = &v.cross_site_view {
            notes.push(format!(
                "{why}: the sites do not see each other; a resync (recover-passive-site, switchback) refuses until it is formed"
            ));
        }
    }
    if let Some(serving) = &o.serving {
        for v in [p, s].into_iter().filter(|v| &v.name == serving) {
            if v.keycloak_ready == Some(false) && matches!(v.keycloak_instances, Ok(n) if n > 0) {
                notes.push(format!(
                    "the Keycloak CR on {} (serving) is not Ready",
                    v.name
                ));
            }
        }
    }
    let serving = o.serving.clone().unwrap_or_else(|| p.name.clone());
    if let Some(w) = &o.aurora_writer_site {
        if *w != serving {
            notes.push(format!(
                "the Aurora writer is in {w}'s zone while {serving} serves"
            ));
        }
    }
    if primary_down {
        if p.health_check_path.as_deref() != Some(down_path) {
            return Verdict {
                health: Health::Degraded,
                runbook: Some(Invocation::new("failover", &[("primary", &p.name), ("secondary", &s.name)])),
                reason: format!(
                    "{} does not answer ({}) and its health check still probes `{}`: run failover so Route53 does not fall back on its own",
                    p.name,
                    p.replication.clone().err().unwrap_or_else(|| "Keycloak has no ready instance".into()),
                    p.health_check_path.clone().unwrap_or_default()
                ),
                notes,
            };
        }
        return Verdict {
            health: Health::Degraded,
            runbook: None,
            reason: format!("{} is down and failed over to {}: repair it, then run recover-passive-site and switchback", p.name, s.name),
            notes,
        };
    }
    if serving == s.name {
        // The secondary serves (after failover or switchover); the primary answers.
        let stale = s.replication.as_deref() != Ok("online") || !differing(s, p).is_empty();
        return Verdict {
            runbook: Some(if stale {
                Invocation::new(
                    "recover-passive-site",
                    &[("primary", &s.name), ("secondary", &p.name)],
                )
            } else {
                Invocation::new("switchback", &[])
            }),
            health: if stale {
                Health::Degraded
            } else {
                Health::OnSecondary
            },
            reason: if stale {
                format!(
                    "{} serves and {} is back but stale (replication {}→{} is {}{}): resync it with recover-passive-site, then switchback",
                    s.name,
                    p.name,
                    s.name,
                    p.name,
                    s.replication.clone().unwrap_or_else(|e| e),
                    {
                        let d = differing(s, p);
                        if d.is_empty() { String::new() } else { format!("; entries differ: {}", d.join(", ")) }
                    }
                )
            } else {
                format!(
                    "{} serves and {} is back and in sync: run switchback",
                    s.name, p.name
                )
            },
            notes,
        };
    }
    // The primary serves.
    if let Err(e) = &s.replication {
        // Not read is not diverged: nothing is recommended on a state not seen.
        return Verdict {
            health: Health::Degraded,
            runbook: None,
            reason: format!(
                "{} serves; {}'s Data Grid cannot be read ({e}): its state is unknown, so nothing is recommended until it answers",
                p.name, s.name
            ),
            notes,
        };
    }
    let partition: Vec<&String> = [p, s]
        .iter()
        .filter_map(|v| match &v.cross_site_view {
            Some((false, why)) => Some(why),
            _ => None,
        })
        .collect();
    let diff = differing(s, p);
    let s_to_p = s.replication.clone().unwrap_or_else(|e| e);
    let p_to_s = p.replication.clone().unwrap_or_else(|e| e);
    if (s_to_p != "online" || p_to_s != "online" || !diff.is_empty()) && !partition.is_empty() {
        return Verdict {
            health: Health::Degraded,
            runbook: None,
            reason: format!(
                "the sites are partitioned (the cross-site view is not formed: {}): {} serves; once the view forms, resync {} with recover-passive-site (it refuses before that)",
                partition.iter().map(|w| w.as_str()).collect::<Vec<_>>().join("; "),
                p.name,
                s.name
            ),
            notes,
        };
    }
    if s_to_p != "online" || p_to_s != "online" || !diff.is_empty() {
        let totals = format!(
            "{} vs {}",
            sum(&s.entries).map(|n| n.to_string()).unwrap_or("?".into()),
            sum(&p.entries).map(|n| n.to_string()).unwrap_or("?".into())
        );
        return Verdict {
            health: Health::Degraded,
            runbook: Some(Invocation::new("recover-passive-site", &[("primary", &p.name), ("secondary", &s.name)])),
            reason: format!(
                "{} diverged from {} (entries: {totals}{}) and replication {}→{} is {s_to_p}, {}→{} is {p_to_s}: run recover-passive-site",
                s.name,
                p.name,
                if diff.is_empty() { String::new() } else { format!("; {}", diff.join(", ")) },
                s.name,
                p.name,
                p.name,
                s.name
            ),
            notes,
        };
    }
    if let Ok(0) = s.keycloak_instances {
        notes.push(format!("Keycloak on {} has no ready instance", s.name));
    }
    Verdict {
        health: if notes.is_empty() {
            Health::Healthy
        } else {
            Health::Degraded
        },
        runbook: None,
        reason: if notes.is_empty() {
            format!(
                "{} serves, replication is online both ways, the sites hold the same entries",
                p.name
            )
        } else {
            notes.join("; ")
        },
        notes,
    }
}

fn ctx_for(env: &Arc<Environment>, site: &str) -> StepCtx {
    StepCtx {
        run_id: "check".into(),
        step_id: "check".into(),
        item: None,
        site: env.sites.get(site).map(|c| Site {
            name: site.to_string(),
            config: c.clone(),
        }),
        env: Arc::clone(env),
        timeout: Duration::from_secs(20),
        interrupt: Default::default(),
    }
}

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
        if let Ok(t) = crate::infinispan::Transport::for_step(&ctx).await {
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
    let route53 = crate::serving::read(&ctx_for(&env, primary)).await;
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
            crate::infinispan::Transport::for_step(&ctx_for(&env, &primary)).await,
            crate::infinispan::Transport::for_step(&ctx_for(&env, &secondary)).await,
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
    let writer = registry
        .get("aurora.failover")
        .expect("registered")
        .probe(&ctx_for(&env, &primary), &args(json!({})))
        .await
        .ok()
        .and_then(|o| o["writer"].as_str().map(str::to_string));
    let aurora_writer_site = writer.and_then(|w| {
        crate::config::sites(&env)
            .iter()
            .find(|(_, c)| c.aurora.as_ref().is_some_and(|a| a.instance == w))
            .map(|(n, _)| n.clone())
    });
    Observations {
        primary: p,
        secondary: s,
        serving,
        serving_how,
        roles_from,
        aurora_writer_site,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, repl: &str, sessions: u64) -> SiteView {
        SiteView {
            name: name.into(),
            replication: Ok(repl.into()),
            entries: [("sessions".to_string(), Some(sessions))]
                .into_iter()
                .collect(),
            keycloak_instances: Ok(3),
            health_check_path: Some("/lb-check".into()),
            health_check_healthy: Some(true),
            lb_check: Some(200),
            cross_site_view: Some((true, String::new())),
            keycloak_ready: Some(true),
        }
    }

    fn obs(p: SiteView, s: SiteView, serving: &str) -> Observations {
        Observations {
            primary: p,
            secondary: s,
            serving: Some(serving.into()),
            serving_how: "test".into(),
            roles_from: "route53".into(),
            aurora_writer_site: Some("site-a".into()),
        }
    }

    #[test]
    fn healthy() {
        let v = verdict(
            &obs(
                site("site-a", "online", 5),
                site("site-b", "online", 5),
                "site-a",
            ),
            "/health/down",
        );
        assert_eq!(v.health, Health::Healthy);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn diverged_after_a_partition() {
        let v = verdict(
            &obs(
                site("site-a", "online", 120),
                site("site-b", "offline", 87),
                "site-a",
            ),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("recover-passive-site -p primary=site-a -p secondary=site-b")
        );
        assert!(
            v.reason
                .contains("site-b diverged from site-a (entries: 87 vs 120"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn after_switchover() {
        let mut p = site("site-a", "online", 5);
        p.health_check_path = Some("/health/down".into());
        let v = verdict(
            &obs(p, site("site-b", "offline", 9), "site-b"),
            "/health/down",
        );
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("recover-passive-site -p primary=site-b -p secondary=site-a")
        );
    }

    #[test]
    fn switched_over_and_in_sync_is_its_own_state() {
        let mut p = site("site-a", "online", 5);
        p.health_check_path = Some("/health/down".into());
        let v = verdict(
            &obs(p, site("site-b", "online", 5), "site-b"),
            "/health/down",
        );
        assert_eq!(v.health, Health::OnSecondary);
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("switchback")
        );
    }

    #[test]
    fn refused_credentials_are_a_configuration_error_not_an_outage() {
        let mut s = site("site-b", "online", 5);
        s.replication = Err("site `site-b`: GET http://x/rest/v2/server answered 401: the credentials were refused (user `admin`, Basic)".into());
        let v = verdict(
            &obs(site("site-a", "online", 5), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Misconfigured, "{}", v.reason);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn an_unreadable_passive_site_is_not_counted_as_empty() {
        let mut s = site("site-b", "online", 5);
        s.replication = Err("site `site-b`: cannot connect".into());
        s.entries.clear();
        let v = verdict(
            &obs(site("site-a", "online", 5), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert!(
            v.runbook.is_none(),
            "no cache-clearing procedure on a state not seen"
        );
        assert!(v.reason.contains("cannot be read"), "{}", v.reason);
        assert!(!v.reason.contains("diverged"), "{}", v.reason);
    }

    #[test]
    fn a_partition_is_not_diverged_contents() {
        let mut s = site("site-b", "offline", 87);
        s.cross_site_view = Some((false, "Site 'site-a' not ready".into()));
        let v = verdict(
            &obs(site("site-a", "online", 120), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert!(v.reason.contains("partitioned"), "{}", v.reason);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn primary_down() {
        let mut p = site("site-a", "online", 5);
        p.replication = Err("503".into());
        p.keycloak_instances = Ok(0);
        p.lb_check = Some(503);
        let v = verdict(
            &obs(p, site("site-b", "online", 5), "site-b"),
            "/health/down",
        );
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("failover -p primary=site-a -p secondary=site-b")
        );
    }
}
