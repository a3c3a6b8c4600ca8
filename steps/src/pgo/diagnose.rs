//! What `check` reads of every PGO site, and its verdict.
use super::*;

/// Every PGO site as `check` shows it: each site's reading, the writable ones, and
/// each standby's replay lag behind the one writable primary (`null`: not known).
pub async fn deployment(ctx: &StepCtx) -> Json {
    let (views, _) = read_all(ctx).await;
    let ok: Vec<&View> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
    let writable: Vec<&str> = ok
        .iter()
        .filter(|v| v.writable())
        .map(|v| v.site.as_str())
        .collect();
    let primary = match writable.as_slice() {
        [one] => ok.iter().find(|v| v.site == *one),
        _ => None,
    };
    let lags: serde_json::Map<String, Json> = ok
        .iter()
        .filter(|v| !v.writable())
        .map(|v| {
            let lag = match (primary.map(|p| &p.sql), &v.sql) {
                (Some(Ok(p)), Ok(s)) => json!(p.lsn_bytes.saturating_sub(s.lsn_bytes)),
                _ => Json::Null,
            };
            (v.site.clone(), lag)
        })
        .collect();
    let sites: Vec<Json> = views
        .iter()
        .map(|v| match v {
            Ok(v) => v.json(),
            Err((s, e)) => {
                json!({"site": s, "error": e, "summary": format!("{s}: cannot be read: {e}")})
            }
        })
        .collect();
    // What each site answered, for whoever says how the deployment was read.
    let summary: Vec<&str> = sites.iter().filter_map(|s| s["summary"].as_str()).collect();
    json!({"writable": writable, "lag_bytes": lags, "sites": sites, "summary": summary.join("; ")})
}

/// Whether the environment file names PGO as any site's database.
pub fn in_use(env: &engine::env::Environment) -> bool {
    crate::config::sites(env)
        .values()
        .any(|s| section(s).is_some())
}

/// The verdict on PGO's reading (`deployment`), the database's part of every pack's
/// `check` (the pgo pack's, and the Keycloak 24 pack's on PGO): two writable
/// primaries first, then no writer, then a former primary that is no standby. It
/// names the pgo pack's procedures by name.
pub fn diagnosis(d: &Json) -> crate::check::Verdict {
    use crate::check::{Health, Invocation, Verdict};
    let writable: Vec<&str> = d["writable"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    let unreadable: Vec<&str> = d["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["error"].is_string())
        .filter_map(|s| s["site"].as_str())
        .collect();
    let standbys: Vec<&Json> = d["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["standby"] == true)
        .collect();
    let degraded = |runbook: Option<Invocation>, reason: String| Verdict {
        health: Health::Degraded,
        runbook,
        reason,
        notes: vec![],
    };
    match writable.as_slice() {
        [_, _, ..] => degraded(None, format!(
            "TWO WRITABLE PRIMARIES (split-brain): {} all accept writes. Stop all but one now (`spec.shutdown: true` on the others' PostgresCluster), then recreate-standby there (it discards their writes since)",
            writable.join(", ")
        )),
        [] if !unreadable.is_empty() => Verdict {
            health: Health::Unreachable,
            runbook: None,
            reason: format!("no writable primary answers, and {} cannot be read", unreadable.join(", ")),
            notes: vec![],
        },
        [] => {
            let survivor = standbys.first().and_then(|s| s["site"].as_str()).unwrap_or("site-b");
            let lost = d["sites"].as_array().into_iter().flatten().filter_map(|s| s["site"].as_str()).find(|s| *s != survivor).unwrap_or("site-a");
            degraded(
                Some(Invocation::new("pgo/promote-standby", &[("survivor", survivor), ("lost", lost)])),
                format!("no site has a writable primary: Keycloak cannot write. If {lost}'s primary is gone for good, promote {survivor}'s standby"),
            )
        }
        [one] => {
            let missing: Vec<&str> = d["sites"].as_array().into_iter().flatten()
                .filter(|s| s["site"] != *one && (s["standby"] != true || s["shutdown"] == true || s["exists"] == false))
                .filter_map(|s| s["site"].as_str()).collect();
            if let Some(site) = missing.first() {
                return degraded(
                    Some(Invocation::new("pgo/recreate-standby", &[("site", site)])),
                    format!("{one} holds the writer and {site} is no running standby of it: nothing replicates there; recreate it as a standby (it discards {site}'s data)"),
                );
            }
            let lags: Vec<String> = d["lag_bytes"].as_object().into_iter().flatten()
                .map(|(s, l)| format!("{s} {}", l.as_u64().map_or("unknown".into(), |n| format!("{n} bytes behind"))))
                .collect();
            Verdict {
                health: Health::Healthy,
                runbook: None,
                reason: format!("{one} holds the only writable primary; standby replay: {}", lags.join(", ")),
                notes: vec![],
            }
        }
    }
}
