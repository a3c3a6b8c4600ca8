//! The Keycloak 26 pack: the multi-cluster guides' procedures for the active/active
//! shape behind AWS Global Accelerator (`../shared/docs/keycloak-26.md` §1.5):
//! take a site offline, synchronize it, bring it online, and fence a site as the
//! guide's Lambda does. Its reading of the journal says which site left the endpoint
//! group and was not synchronized since; its diagnosis (`check`) reads the group, the
//! replication and the journal and names the runbook to run next.

use std::fmt::Write;
use std::sync::Arc;

use engine::history::HistoryFacts;
use engine::state::{RunState, RunStatus, StepStatus};
use serde_json::{json, Value as Json};
use steps::check::{Health, Invocation, Verdict};

use super::pack::{CheckInputs, Defaults, Diagnosis, Pack};

pub const NAME: &str = "keycloak-26";

/// The caches Keycloak 26 keeps in the external Infinispan (sessions are in the
/// database): the guide's `Cache` CRs.
pub const CACHES: &[&str] = &[
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

pub const PACK: Pack = Pack {
    name: NAME,
    manifest: include_str!("../../../packs/keycloak-26/pack.yaml"),
    runbooks: &[
        (
            "take-site-offline",
            include_str!("../../../packs/keycloak-26/take-site-offline.yaml"),
        ),
        (
            "synchronize-site",
            include_str!("../../../packs/keycloak-26/synchronize-site.yaml"),
        ),
        (
            "bring-site-online",
            include_str!("../../../packs/keycloak-26/bring-site-online.yaml"),
        ),
        (
            "fence-site",
            include_str!("../../../packs/keycloak-26/fence-site.yaml"),
        ),
        (
            "site-back",
            include_str!("../../../packs/keycloak-26/site-back.yaml"),
        ),
        (
            "site-failover",
            include_str!("../../../packs/keycloak-26/site-failover.yaml"),
        ),
        (
            "site-failback",
            include_str!("../../../packs/keycloak-26/site-failback.yaml"),
        ),
        (
            "database-switchover",
            include_str!("../../../packs/keycloak-26/database-switchover.yaml"),
        ),
    ],
    history: || Arc::new(Keycloak26History),
    // A deployment whose traffic vendor serves several sites at once (active/active)
    // is of this shape.
    detects: |e| {
        e.sites
            .values()
            .any(|s| steps::roles::plays(s, "traffic.remove-site"))
    },
    diagnose,
    defaults: Defaults {
        primary: "site-a",
        secondary: "site-b",
        caches: CACHES,
        down_path: "/health/down",
    },
    lab,
    answers: &[super::pack::Answer {
        // The guide's fencing alert (its PrometheusRule's `SiteOffline`): fence-site is
        // the Lambda's work with its rules as guards; a resolved alert re-adds nothing,
        // site-back journals what to run.
        alert: "SiteOffline",
        firing: "fence-site",
        resolved: "site-back",
        site_labels: &[("site", "the offline site"), ("reporter", "its reporter")],
        labels: &["accelerator"],
    }],
};

/// The guide's deployment: the Keycloak 24 lab's two sites of 3 Infinispan nodes and 3
/// Keycloak instances, on Infinispan 15 backing up the 4 caches, with one Global
/// Accelerator (one NLB per site) in front instead of Route53.
fn lab() -> lab::Shape {
    lab::Shape {
        caches: CACHES.iter().map(|c| c.to_string()).collect(),
        infinispan_version: 15,
        traffic: lab::world::Traffic::Accelerator,
        ..(super::keycloak_24::PACK.lab)()
    }
}

/// Whether step `id` of `run` succeeded (the site's NLB really left or joined).
fn done(run: &RunState, id: &str) -> bool {
    run.steps
        .get(id)
        .is_some_and(|s| s.progress.status == StepStatus::Succeeded)
}

fn param(run: &RunState, k: &str) -> String {
    run.params
        .get(k)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// What the journal says: `unsynchronized` (a site whose NLB a run removed from the
/// endpoint group, with no completed synchronize-site of it since), `synchronized`
/// (out of the group, synchronized since), `last_fence` (run id and time, ms).
#[derive(Debug)]
pub struct Keycloak26History;

impl HistoryFacts for Keycloak26History {
    fn pack(&self) -> &str {
        NAME
    }
    fn procedures(&self) -> &[&'static str] {
        &[
            "take-site-offline",
            "fence-site",
            "synchronize-site",
            "bring-site-online",
            "site-failover",
            "site-failback",
        ]
    }
    fn facts(&self, runs: &[RunState]) -> Json {
        let mut unsynced = serde_json::Map::new();
        let mut synced: Vec<String> = Vec::new();
        let mut last_fence = Json::Null;
        let mut failed_over = serde_json::Map::new();
        for r in runs {
            let site = param(r, "site");
            match r.runbook.as_str() {
                // A lost site out of traffic: it comes back by site-failback only.
                "site-failover" if done(r, "remove-lost-site") => {
                    let lost = param(r, "lost");
                    failed_over.insert(
                        lost.clone(),
                        json!(format!(
                            "site-failover {} took {lost} out of traffic",
                            r.run_id
                        )),
                    );
                }
                "site-failback" if r.status == RunStatus::Completed => {
                    failed_over.remove(&site);
                }
                // The removal counts once its step succeeded, whatever became of the run.
                "take-site-offline" | "fence-site" if done(r, "remove-from-accelerator") => {
                    unsynced.insert(
                        site.clone(),
                        json!(format!(
                            "{} {} removed {site} from the endpoint group",
                            r.runbook, r.run_id
                        )),
                    );
                    synced.retain(|s| *s != site);
                    if r.runbook == "fence-site" {
                        last_fence = json!({"run": r.run_id, "site": site, "at_ms": r.updated_at});
                    }
                }
                "synchronize-site" if r.status == RunStatus::Completed => {
                    unsynced.remove(&site);
                    synced.retain(|s| *s != site);
                    synced.push(site);
                }
                "bring-site-online" if done(r, "add-to-accelerator") => {
                    unsynced.remove(&site);
                    synced.retain(|s| *s != site);
                }
                _ => {}
            }
        }
        json!({"unsynchronized": unsynced, "synchronized": synced, "last_fence": last_fence,
               "failed_over": failed_over})
    }
    fn evidence(&self, facts: &Json) -> Option<String> {
        let u: Vec<String> = facts["unsynchronized"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(s, why)| format!("{s}: {}", why.as_str().unwrap_or_default()))
            .collect();
        Some(if u.is_empty() {
            "journal: no site left the endpoint group without a synchronize since".into()
        } else {
            format!("journal: not synchronized since it left: {}", u.join("; "))
        })
    }
}

/// Read the endpoint group and each site's replication, and judge with the journal.
fn diagnose(
    registry: Arc<engine::Registry>,
    env: Arc<engine::env::Environment>,
    i: CheckInputs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Diagnosis> + Send>> {
    Box::pin(async move {
        let ctx = super::pack::ctx_for(&env, &i.primary);
        // Through the traffic role: whichever vendor the sites name.
        let group = match registry.get("traffic.serving-sites") {
            Some(a) => a
                .probe(&ctx, &engine::Args::new())
                .await
                .map_err(|e| e.message),
            None => Err("this build has no traffic.serving-sites".into()),
        };
        let sites = [i.primary.clone(), i.secondary.clone()];
        let mut replication = serde_json::Map::new();
        for (n, site) in sites.iter().enumerate() {
            let other = &sites[1 - n];
            let sctx = super::pack::ctx_for(&env, site);
            let has_ispn = env
                .sites
                .get(site)
                .is_some_and(|s| s.get("infinispan").is_some());
            if !has_ispn {
                continue;
            }
            let args: engine::Args = json!({"backup": other, "caches": i.caches})
                .as_object()
                .cloned()
                .unwrap_or_default();
            let st = match registry.get("infinispan.site-status") {
                Some(a) => match a.probe(&sctx, &args).await {
                    Ok(o) => json!(o["status"].as_str().unwrap_or("unknown")),
                    Err(e) => json!(format!("unreachable: {}", e.message)),
                },
                None => Json::Null,
            };
            replication.insert(format!("{site}->{other}"), st);
        }
        // Through the database role: which site writes, read from the databases.
        let database = steps::roles::writers(&ctx)
            .await
            .map(|(w, how)| json!({"writers": w, "how": how}));
        let observations = json!({
            "accelerator": match &group { Ok(g) => g.clone(), Err(e) => json!({"error": e}) },
            "replication": replication,
            "database": database,
            "history": i.history,
        });
        let verdict = verdict(&observations, &sites);
        let mut text = String::new();
        match &group {
            Ok(g) => {
                let _ = writeln!(text, "serving: {}", g["how"].as_str().unwrap_or_default());
                for a in g["ambiguous"].as_array().into_iter().flatten() {
                    let _ = writeln!(text, "  cannot be told: {}", a.as_str().unwrap_or_default());
                }
            }
            Err(e) => {
                let _ = writeln!(text, "serving: unknown ({e})");
            }
        }
        for (k, v) in &replication {
            let _ = writeln!(text, "replication {k}: {}", v.as_str().unwrap_or("?"));
        }
        if let Some(d) = observations["database"].as_object() {
            let w: Vec<&str> = d["writers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .collect();
            let _ = writeln!(
                text,
                "database: {} ({})",
                match w.as_slice() {
                    [] => "no site writes".to_string(),
                    [one] => format!("{one} writes"),
                    many => format!("{} ALL WRITE", many.join(" and ")),
                },
                d["how"].as_str().unwrap_or_default()
            );
        }
        if let Some(e) = Keycloak26History.evidence(&i.history) {
            let _ = writeln!(text, "{e}");
        }
        Diagnosis {
            verdict,
            observations,
            text,
        }
    })
}

/// A site out of the endpoint group: stale (synchronize it: the planned state after a
/// take-site-offline, an incident after a fence) or synchronized (bring it online).
fn out_of_group(o: &Json, site: &str, source: &str) -> Verdict {
    let degraded = |runbook: Option<Invocation>, reason: String| Verdict {
        health: Health::Degraded,
        runbook,
        reason,
        notes: vec![],
    };
    let p = [("site", site), ("source", source)];
    if let Some(why) = o["history"]["failed_over"][site].as_str() {
        return degraded(
            Some(Invocation::new("keycloak-26/site-failback", &[("site", site)])),
            format!("{site} was lost and failed over ({why}): bring it back with site-failback (its database follows {source}'s writer again, then it rejoins traffic)"),
        );
    }
    let unsynced = &o["history"]["unsynchronized"];
    // Taken out by take-site-offline (a maintenance), not fenced: the planned state.
    let planned = unsynced[site]
        .as_str()
        .is_some_and(|w| w.starts_with("take-site-offline "));
    if unsynced.get(site).is_some()
        || !o["replication"]
            .as_object()
            .is_some_and(|r| r.values().all(|v| v == "online"))
    {
        let mut v = degraded(
            Some(Invocation::new("keycloak-26/synchronize-site", &p)),
            format!(
                "{site} is out of the endpoint group and stale ({}): synchronize it from {source}, then bring it online",
                unsynced[site].as_str().unwrap_or("its replication is not online both ways")
            ),
        );
        if planned {
            v.health = Health::Planned;
        }
        v
    } else {
        degraded(
            Some(Invocation::new("keycloak-26/bring-site-online", &p)),
            format!("{site} is out of the endpoint group and was synchronized since it left: bring it online"),
        )
    }
}

/// The verdict: what cannot be told first, then a site out of the group (synchronize
/// or bring online, by the journal), then replication that is not online while both
/// serve (a partition nobody fenced), else healthy.
pub fn verdict(o: &Json, sites: &[String; 2]) -> Verdict {
    let writers: Vec<&str> = o["database"]["writers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    if writers.len() > 1 {
        // Before anything else: every write to one of them is lost to the other.
        return Verdict {
            health: Health::Degraded,
            runbook: None,
            reason: format!(
                "TWO WRITABLE PRIMARIES (split-brain): {} all accept writes ({}). Take all but one out of traffic and stop their databases now; rebuild them from the one kept",
                writers.join(" and "),
                o["database"]["how"].as_str().unwrap_or_default()
            ),
            notes: vec![],
        };
    }
    let g = &o["accelerator"];
    let degraded = |runbook: Option<Invocation>, reason: String| Verdict {
        health: Health::Degraded,
        runbook,
        reason,
        notes: vec![],
    };
    if let Some(e) = g["error"].as_str() {
        return Verdict {
            health: Health::Unreachable,
            runbook: None,
            reason: format!("which sites serve cannot be read: {e}"),
            notes: vec![],
        };
    }
    let list = |k: &str| -> Vec<String> {
        g[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mismatch = list("mismatch");
    if !mismatch.is_empty() {
        return Verdict {
            health: Health::Misconfigured,
            runbook: None,
            reason: format!("identity mismatch: {}", mismatch.join("; ")),
            notes: vec![],
        };
    }
    let ambiguous = list("ambiguous");
    if !ambiguous.is_empty() {
        return degraded(
            None,
            format!("which sites serve cannot be told: {}", ambiguous.join("; ")),
        );
    }
    let serving = list("serving");
    let out = list("out_of_group");
    if let (Some(site), Some(source)) = (out.first(), serving.first()) {
        return out_of_group(o, site, source);
    }
    if serving.is_empty() {
        return Verdict {
            health: Health::Unreachable,
            runbook: None,
            reason: format!("no site serves: {}", g["how"].as_str().unwrap_or_default()),
            notes: vec![],
        };
    }
    let broken: Vec<String> = o["replication"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| *v != "online")
        .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
        .collect();
    if !broken.is_empty() && serving.len() > 1 {
        let reporter = &sites[0];
        let lost = &sites[1];
        return degraded(
            Some(Invocation::new("keycloak-26/fence-site", &[("site", lost), ("reporter", reporter)])),
            format!(
                "both sites serve but replication is not online ({}): with failure policy FAIL requests fail; fence one site",
                broken.join(", ")
            ),
        );
    }
    Verdict {
        health: Health::Healthy,
        runbook: None,
        reason: format!(
            "{} serve; replication online both ways",
            serving.join(" and ")
        ),
        notes: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> [String; 2] {
        ["site-a".into(), "site-b".into()]
    }

    fn obs(serving: &[&str], out: &[&str], repl: &str, unsynced: Json) -> Json {
        json!({
            "accelerator": {"serving": serving, "out_of_group": out, "ambiguous": [], "mismatch": [], "how": "…"},
            "replication": {"site-a->site-b": repl, "site-b->site-a": repl},
            "history": {"unsynchronized": unsynced},
        })
    }

    #[test]
    fn a_site_out_of_the_group_is_synchronized_then_brought_online() {
        let v = verdict(
            &obs(
                &["site-a"],
                &["site-b"],
                "online",
                json!({"site-b": "fence-site 1 removed site-b"}),
            ),
            &sites(),
        );
        assert_eq!(v.runbook.unwrap().runbook, "keycloak-26/synchronize-site");
        let v = verdict(
            &obs(&["site-a"], &["site-b"], "online", json!({})),
            &sites(),
        );
        assert_eq!(
            v.runbook.unwrap().to_string(),
            "keycloak-26/bring-site-online -p site=site-b -p source=site-a"
        );
        // Out of the group with replication offline: stale whatever the journal says.
        let v = verdict(
            &obs(&["site-a"], &["site-b"], "offline", json!({})),
            &sites(),
        );
        assert_eq!(v.runbook.unwrap().runbook, "keycloak-26/synchronize-site");
    }

    #[test]
    fn both_serving_with_replication_down_calls_for_a_fence_and_all_well_is_healthy() {
        let v = verdict(
            &obs(&["site-a", "site-b"], &[], "offline", json!({})),
            &sites(),
        );
        assert_eq!(v.runbook.unwrap().runbook, "keycloak-26/fence-site");
        let v = verdict(
            &obs(&["site-a", "site-b"], &[], "online", json!({})),
            &sites(),
        );
        assert_eq!(v.health, Health::Healthy);
    }
}
