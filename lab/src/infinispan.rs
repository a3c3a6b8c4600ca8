//! Infinispan server REST API v2 for one site, as operations.md §3 describes it: the
//! container-level x-site calls under both `/container` (Infinispan 15) and
//! `/cache-managers/default` (Infinispan 14), the per-cache x-site calls, push-state
//! status, clear, size and entries. Answers carry the real status codes and bodies.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::world::IspnError;
use crate::{LabState, Shared};

#[derive(Clone)]
struct SiteApp {
    lab: Shared,
    site: String,
}

pub fn router(lab: Shared, site: String) -> Router {
    Router::new()
        .route("/rest/v2/{*rest}", any(handle))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(SiteApp { lab, site })
}

/// `GET /metrics`: the server's Prometheus exposition (`metrics.rs`).
async fn metrics(State(app): State<SiteApp>) -> Response {
    let body = crate::metrics::exposition(&app.lab.lock().world, &app.site);
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (code, body.into()).into_response()
}

fn ispn_error(e: IspnError) -> Response {
    match e {
        IspnError::NoSite(s) => text(
            StatusCode::NOT_FOUND,
            format!("ISPN000402: site `{s}` not found"),
        ),
        IspnError::NoCache(c) => text(
            StatusCode::NOT_FOUND,
            format!("ISPN000404: cache '{c}' does not exist"),
        ),
        IspnError::NoBackup { cache, site } => text(
            StatusCode::NOT_FOUND,
            // XSiteResource.siteNotFound at 14.0.35.Final, text/plain
            format!("Cache '{cache}' does not backup to site '{site}'"),
        ),
        IspnError::Failed(m) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
        IspnError::Op { site, result } => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ISPN012047: Site operation on '{site}' failed: '{result}'"),
        ),
    }
}

async fn handle(
    State(app): State<SiteApp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (latency, down, fail, creds, lost) = {
        let mut lab = app.lab.lock();
        (
            lab.world.latency(),
            lab.world.site_down(&app.site),
            lab.world.roll_5xx(&app.site, uri.path()),
            lab.credentials.clone(),
            lab.world.roll_lost(&app.site, method != Method::GET),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    if !creds.accepts(&headers, &method, path_and_query)
        && !creds.accepts(&headers, &method, uri.path())
    {
        return creds.challenge();
    }
    let mut lab = app.lab.lock();
    lab.record(&app.site, &method, path_and_query);
    if down {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}: Infinispan is down (lab fault site-down)", app.site),
        );
    }
    if fail {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "ISPN000209: server busy (lab fault http-5xx)",
        );
    }
    let now = std::time::Instant::now();
    lab.world.tick(now);
    let rest = uri
        .path()
        .trim_start_matches("/rest/v2/")
        .trim_end_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    let action = query.get("action").map(String::as_str);
    let limit = query.get("limit").and_then(|l| l.parse::<i64>().ok());
    let answer = route(
        &mut lab, &app.site, &method, &parts, action, limit, &body, now,
    );
    if lost {
        // Carried out; now the connection goes without an answer (`answer-lost`): the
        // task serving it unwinds, and hyper drops the socket. No panic message: this
        // is a rehearsed fault, not a bug.
        drop(lab);
        std::panic::resume_unwind(Box::new("lab fault answer-lost"));
    }
    answer
}

#[allow(clippy::too_many_arguments)]
fn route(
    lab: &mut LabState,
    site: &str,
    method: &Method,
    parts: &[&str],
    action: Option<&str>,
    limit: Option<i64>,
    body: &Bytes,
    now: std::time::Instant,
) -> Response {
    let w = &mut lab.world;
    // GET /rest/v2/server: ServerResource.ServerInfo, `{"version": printVersion()}`
    // (brand, codename from build/configuration/pom.xml, version) at each release tag.
    if method == Method::GET && parts == ["server"] {
        let version = match w.infinispan_version {
            // 16.0.13: build/configuration/pom.xml (codename), Version.printVersion.
            16 => "Infinispan 'Keep Rollin'' 16.0.13",
            15 => "Infinispan 'I'm Still Standing' 15.0.22.Final",
            _ => "Infinispan 'Flying Saucer' 14.0.35.Final",
        };
        return Json(json!({ "version": version })).into_response();
    }
    // The cache manager's information: CacheManagerInfo.toJson
    // (core/src/main/java/org/infinispan/manager/CacheManagerInfo.java), served by
    // CacheManagerResource at GET /v2/cache-managers/{name} (14) and by
    // ContainerResource at GET /v2/container (15, where the cache-managers route stays
    // as deprecated). `local_site` is the transport's local site name, `sites_view` the
    // sites in the cross-site view, the members this site's own cluster.
    if method == Method::GET
        && (parts == ["cache-managers", "default"]
            || (w.infinispan_version >= 15 && parts == ["container"]))
    {
        return Json(cache_manager_info(w, site)).into_response();
    }
    // Container level: exactly the version's routes. Infinispan 14 (XSiteResource at
    // 14.0.35.Final) has only /cache-managers/{name}/x-site/...; 15 only /container/...
    // 16 (XSiteResource at 16.0.13) serves both: /container/... and, deprecated,
    // /cache-managers/{name}/....
    let container: Option<&[&str]> = match (w.infinispan_version, parts) {
        (15 | 16, ["container", rest @ ..]) => Some(rest),
        (16, ["cache-managers", "default", rest @ ..]) => Some(rest),
        (14, ["cache-managers", "default", rest @ ..]) => Some(rest),
        // Another container name: GlobalXSiteAdmin is null, an empty 404.
        (14, ["cache-managers", _, "x-site", ..]) => {
            return StatusCode::NOT_FOUND.into_response();
        }
        _ => None,
    };
    if let Some(rest) = container {
        return container_route(w, site, method, rest, action, now);
    }
    cache_route(w, site, method, parts, action, limit, body, now)
}

/// The container-level routes of the version the lab plays.
fn container_route(
    w: &mut crate::world::World,
    site: &str,
    method: &Method,
    rest: &[&str],
    action: Option<&str>,
    now: std::time::Instant,
) -> Response {
    match (method, rest) {
        (&Method::GET, ["x-site", "backups"]) => {
            let others: Vec<String> = w.sites.keys().filter(|s| *s != site).cloned().collect();
            let mut out = serde_json::Map::new();
            for remote in others {
                out.insert(remote.clone(), container_status(w, site, &remote));
            }
            Json(Value::Object(out)).into_response()
        }
        (&Method::GET, ["x-site", "backups", remote]) => {
            // XSiteResource.globalStatus: a site no cache backs up to is not in
            // the global status map: 404 with an empty body.
            if !w.sites.contains_key(*remote) || *remote == site {
                return StatusCode::NOT_FOUND.into_response();
            }
            Json(container_status(w, site, remote)).into_response()
        }
        (&Method::POST, ["x-site", "backups", remote]) => {
            container_backup_action(w, site, remote, action, now)
        }
        _ => text(StatusCode::NOT_FOUND, "no such container resource"),
    }
}

/// The cache-level routes (`/rest/v2/caches/...`), the same in 14 and 15.
#[allow(clippy::too_many_arguments)]
fn cache_route(
    w: &mut crate::world::World,
    site: &str,
    method: &Method,
    parts: &[&str],
    action: Option<&str>,
    limit: Option<i64>,
    body: &Bytes,
    now: std::time::Instant,
) -> Response {
    match (method, parts) {
        (&Method::GET, ["caches"]) => {
            Json(json!(w.cache_names(site).unwrap_or_default())).into_response()
        }
        (&Method::GET, ["caches", cache, "x-site", "backups"])
            if action == Some("push-state-status") =>
        {
            match w.push_status(site, cache) {
                Ok(m) => Json(json!(m)).into_response(),
                Err(e) => ispn_error(e),
            }
        }
        (&Method::GET, ["caches", cache, "x-site", "backups"]) => cache_backups(w, site, cache),
        (&Method::GET, ["caches", cache, "x-site", "backups", remote]) => {
            match w.cache_status(site, cache, remote) {
                Ok(nodes) => Json(json!(nodes)).into_response(),
                Err(e) => ispn_error(e),
            }
        }
        (&Method::POST, ["caches", cache, "x-site", "backups", remote]) => {
            let Some(action) = action else {
                return text(StatusCode::BAD_REQUEST, "missing `action`");
            };
            match per_cache_action(w, site, cache, remote, action, now) {
                Ok(()) => StatusCode::OK.into_response(),
                Err(IspnError::Failed(m)) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
                Err(e) => ispn_error(e),
            }
        }
        (&Method::POST, ["caches", cache, "x-site", "local"])
            if action == Some("clear-push-state-status") =>
        {
            match w.clear_push_status(site, cache) {
                Ok(()) => Json(json!("ok")).into_response(),
                Err(e) => ispn_error(e),
            }
        }
        (&Method::POST, ["caches", cache]) if action == Some("clear") => match w.clear(site, cache)
        {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => ispn_error(e),
        },
        // CacheResourceV2.streamKeys: a JSON array of the keys, `limit` of them when
        // given (-1 or absent: all).
        (&Method::GET, ["caches", cache]) if action == Some("keys") => match w.keys(site, cache) {
            Ok(mut keys) => {
                if let Some(n) = limit.filter(|n| *n > -1) {
                    keys.truncate(n as usize);
                }
                Json(json!(keys)).into_response()
            }
            Err(e) => ispn_error(e),
        },
        (&Method::GET, ["caches", cache]) if action == Some("size") => match w.size(site, cache) {
            Ok(n) => Json(json!(n)).into_response(),
            Err(e) => ispn_error(e),
        },
        (&Method::GET, ["caches", cache, key]) => match w.get(site, cache, key) {
            Ok(Some(v)) => text(StatusCode::OK, v),
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(e) => ispn_error(e),
        },
        (&Method::PUT | &Method::POST, ["caches", cache, key]) => {
            match w.put(site, cache, key, &String::from_utf8_lossy(body)) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => ispn_error(e),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "no such resource in the lab's Infinispan REST API",
        ),
    }
}

/// `POST /container/x-site/backups/{site}?action=...`: the action on every cache of
/// this site that backs up to `remote`, each cache's result in one 200 answer.
fn container_backup_action(
    w: &mut crate::world::World,
    site: &str,
    remote: &str,
    action: Option<&str>,
    now: std::time::Instant,
) -> Response {
    if !w.sites.contains_key(remote) || remote == site {
        return text(
            StatusCode::NOT_FOUND,
            format!("ISPN000402: site `{remote}` is not a backup location"),
        );
    }
    let Some(action) = action else {
        return text(StatusCode::BAD_REQUEST, "missing `action`");
    };
    let caches = w.cache_names(site).unwrap_or_default();
    let mut out = serde_json::Map::new();
    // One request, one round of a refusing node for every cache.
    let refusing = if action == "take-offline" {
        w.take_offline_refusal(site)
    } else {
        None
    };
    for c in caches {
        // A cache can fail on its own inside a 200 answer.
        let result = if action == "take-offline" && !w.cache_fails(&c) {
            w.take_offline_with(site, &c, remote, refusing.as_deref())
        } else {
            per_cache_action(w, site, &c, remote, action, now)
        };
        let v = match result {
            Ok(()) => "ok".to_string(),
            Err(IspnError::Failed(m)) => m,
            Err(IspnError::Op { result, .. }) => result,
            Err(e) => format!("{e:?}"),
        };
        out.insert(c, Value::String(v));
    }
    Json(Value::Object(out)).into_response()
}

/// `GET /caches/{cache}/x-site/backups`: each backup's status, with the nodes on
/// each side when it is mixed.
fn cache_backups(w: &crate::world::World, site: &str, cache: &str) -> Response {
    let Some(c) = w.site(site).ok().and_then(|s| s.caches.get(cache)) else {
        return ispn_error(IspnError::NoCache(cache.to_string()));
    };
    let out: serde_json::Map<String, Value> = c
        .backups
        .iter()
        .map(|(r, b)| {
            let mut v = json!({"status": b.status()});
            if b.status() == "mixed" {
                let on: Vec<&String> = b
                    .nodes
                    .iter()
                    .filter(|(_, s)| **s == crate::world::NodeStatus::Online)
                    .map(|(n, _)| n)
                    .collect();
                let off: Vec<&String> = b
                    .nodes
                    .iter()
                    .filter(|(_, s)| **s != crate::world::NodeStatus::Online)
                    .map(|(n, _)| n)
                    .collect();
                v["online"] = json!(on);
                v["offline"] = json!(off);
            }
            (r.clone(), v)
        })
        .collect();
    Json(Value::Object(out)).into_response()
}

fn per_cache_action(
    w: &mut crate::world::World,
    site: &str,
    cache: &str,
    remote: &str,
    action: &str,
    now: std::time::Instant,
) -> Result<(), IspnError> {
    if w.cache_fails(cache) {
        return Err(IspnError::Failed(format!(
            "ISPN012047: Site operation on '{remote}' failed for cache '{cache}'"
        )));
    }
    match action {
        "take-offline" => w.take_offline(site, cache, remote),
        "bring-online" => w.bring_online(site, cache, remote),
        "start-push-state" => w.start_push(site, cache, remote, now),
        "cancel-push-state" => w.cancel_push(site, cache, remote),
        other => Err(IspnError::Failed(format!("unknown action `{other}`"))),
    }
}

/// What `GET /rest/v2/container` (15) or `/rest/v2/cache-managers/default` answers:
/// the fields of CacheManagerInfo.toJson, for this site's cluster of nodes.
pub fn cache_manager_info(w: &crate::world::World, site: &str) -> Value {
    let Ok(s) = w.site(site) else {
        return json!({});
    };
    let version = match w.infinispan_version {
        16 => "16.0.13",
        15 => "15.0.22.Final",
        _ => "14.0.35.Final",
    };
    let other = w.other_site(site).unwrap_or_default();
    let mut view = vec![site.to_string()];
    if !w.partitioned() && !w.site_down(&other) {
        view.push(other);
    }
    view.sort();
    let members: Vec<String> = s
        .nodes
        .iter()
        .map(|n| format!("{n}-{}", node_suffix(n)))
        .collect();
    let caches: Vec<Value> = s
        .caches
        .keys()
        .map(|c| json!({"name": c, "started": true}))
        .collect();
    json!({
        "version": version,
        "name": "default",
        "coordinator": true,
        "cache_configuration_names": [],
        "cluster_name": "infinispan", // the Infinispan CR's name (kube::INFINISPAN_CR), as the operator names the cluster
        "physical_addresses": format!("[{}]", physical(w, site, 0)),
        "coordinator_address": members.first().cloned().unwrap_or_default(),
        "cache_manager_status": "RUNNING",
        "created_cache_count": s.caches.len(),
        "running_cache_count": s.caches.len(),
        "node_address": members.first().cloned().unwrap_or_default(),
        "cluster_members": members,
        "cluster_members_physical_addresses": (0..s.nodes.len()).map(|i| physical(w, site, i)).collect::<Vec<_>>(),
        "cluster_size": s.nodes.len(),
        "defined_caches": caches,
        "local_site": site,
        "relay_node": true,
        "relay_nodes_address": [s.nodes.first().cloned().unwrap_or_default()],
        "sites_view": view,
        "rebalancing_enabled": true,
    })
}

/// A JGroups logical address carries a random suffix after the node name; the lab's
/// is fixed per node so that a site's answer is stable.
fn node_suffix(node: &str) -> u32 {
    node.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 100_000
}

/// A node's JGroups physical address: each site's own network, `10.N.0.x:7800`.
fn physical(w: &crate::world::World, site: &str, i: usize) -> String {
    let octet = w.sites.keys().position(|k| k == site).unwrap_or(0) + 1;
    format!("10.{octet}.0.{}:7800", 10 + i)
}

/// `{"status":"online"}`, `{"status":"offline"}`, or mixed with the cache lists.
pub fn container_status(w: &crate::world::World, site: &str, remote: &str) -> Value {
    let Ok(s) = w.site(site) else {
        return json!({"status": "unknown"});
    };
    let (mut online, mut offline, mut mixed) = (vec![], vec![], vec![]);
    for (name, c) in &s.caches {
        match c.backups.get(remote).map(|b| b.status()) {
            Some("online") => online.push(name.clone()),
            Some("offline") => offline.push(name.clone()),
            Some(_) => mixed.push(name.clone()),
            None => {}
        }
    }
    if offline.is_empty() && mixed.is_empty() && !online.is_empty() {
        json!({"status": "online"})
    } else if online.is_empty() && mixed.is_empty() && !offline.is_empty() {
        json!({"status": "offline"})
    } else if online.is_empty() && offline.is_empty() && mixed.is_empty() {
        json!({"status": "unknown"})
    } else {
        json!({"status": "mixed", "online": online, "offline": offline, "mixed": mixed})
    }
}
