//! The Keycloak 24 pack's diagnosis of a deployment (`runbook check`): which site
//! serves (the Route53 failover records), each site's replication, entries, Keycloak
//! and Infinispan CRs, the Aurora writer's zone, read through the steps' own probes
//! (`observe.rs`), and the verdict that names the procedure to run (`verdict.rs`).

use std::fmt::Write;
use std::sync::Arc;

use super::observe::{observe, SiteView};
use super::verdict::verdict;

use crate::packs::pack::{CheckInputs, Diagnosis};
use crate::progress::Style;

/// Read the deployment and judge it.
pub fn diagnose(
    registry: Arc<engine::Registry>,
    env: Arc<engine::env::Environment>,
    i: CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>> {
    Box::pin(async move {
        let obs = observe(&registry, env, &i.primary, &i.secondary, &i.caches).await;
        let v = verdict(&obs, &i.down_path);
        let s = i.style;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "serving: {} — {}",
            obs.serving.clone().unwrap_or_else(|| "unknown".into()),
            obs.serving_how
        );
        let _ = writeln!(
            o,
            "roles: primary {}, secondary {} (from {})",
            obs.primary.name,
            obs.secondary.name,
            if obs.roles_from == "route53" {
                "the Route53 failover records"
            } else {
                "--primary/--secondary: the failover records could not be read"
            }
        );
        match &obs.pgo {
            Some(d) => {
                let _ = writeln!(o, "database (PGO): {}", steps::pgo::diagnosis(d).reason);
            }
            None => {
                let _ = writeln!(
                    o,
                    "aurora writer: {}",
                    obs.aurora_writer_site
                        .clone()
                        .map(|w| format!("in {w}'s zone"))
                        .unwrap_or_else(|| "unknown".into())
                );
            }
        }
        site_lines(&mut o, &obs.primary, &obs.secondary.name, s);
        site_lines(&mut o, &obs.secondary, &obs.primary.name, s);
        Diagnosis {
            verdict: v,
            observations: serde_json::to_value(&obs).unwrap_or_default(),
            text: o,
        }
    })
}

fn site_lines(o: &mut String, v: &SiteView, other: &str, s: Style) {
    let _ = writeln!(o, "{}", s.bold(&v.name));
    let _ = writeln!(
        o,
        "  replication to {other}: {}",
        match &v.replication {
            Ok(st) if st == "online" => s.green(st),
            Ok(st) => s.yellow(st),
            Err(e) => s.red(&format!("unreachable: {e}")),
        }
    );
    if !v.entries.is_empty() {
        let list: Vec<String> = v
            .entries
            .iter()
            .map(|(c, n)| {
                format!(
                    "{c}={}",
                    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
                )
            })
            .collect();
        let _ = writeln!(o, "  entries: {}", list.join(" "));
    }
    let _ = writeln!(
        o,
        "  keycloak: {}",
        match &v.keycloak_instances {
            Ok(n) => format!("{n} ready instances"),
            Err(e) => format!("unknown ({e})"),
        }
    );
    if let Some(p) = &v.health_check_path {
        let h = match v.health_check_healthy {
            Some(true) => s.green("healthy"),
            Some(false) => s.red("unhealthy"),
            None => "no observation yet".into(),
        };
        let _ = writeln!(o, "  route53 health check: path {p}, {h}");
    }
    if let Some(c) = v.lb_check {
        let _ = writeln!(o, "  lb-check: {c}");
    }
    match &v.cross_site_view {
        Some((true, why)) => {
            let _ = writeln!(o, "  infinispan CR: {}", s.green(why));
        }
        Some((false, why)) => {
            let _ = writeln!(o, "  infinispan CR: {}", s.red(why));
        }
        None => {
            let _ = writeln!(o, "  infinispan CR: not readable");
        }
    }
    if let Some(r) = v.keycloak_ready {
        let _ = writeln!(
            o,
            "  keycloak CR: {}",
            if r {
                s.green("Ready")
            } else {
                s.yellow("not Ready")
            }
        );
    }
}
