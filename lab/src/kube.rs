//! A Kubernetes API server per site, enough for kube-rs and kubectl: discovery, the
//! Keycloak CR (k8s.keycloak.org/v2alpha1, with the scale subresource) with get, list,
//! watch and patch (merge, JSON patch, apply), the Keycloak StatefulSet and its pods,
//! Infinispan Batch CRs (infinispan.org/v2alpha1) with their Jobs, pods and logs, and
//! ConfigMaps for `spec.configMap`.
//!
//! Objects live in one namespace per site (`keycloak` by default); resourceVersions are
//! content hashes, so a watch sees every change, including status that moves with time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};

use crate::batch::Batch;
use crate::meta::timestamp;
use crate::world::now_ms;
use crate::Shared;

pub const NAMESPACE: &str = "keycloak";
pub const KEYCLOAK_GROUP: &str = "k8s.keycloak.org";
pub const INFINISPAN_GROUP: &str = "infinispan.org";
pub const PGO_GROUP: &str = "postgres-operator.crunchydata.com";
pub const CNPG_GROUP: &str = "postgresql.cnpg.io";

mod databases;
mod discovery;
mod jobs;
mod table;

pub use jobs::RunJob;

use databases::{cnpg_route, pgo_site, postgrescluster_route};
use discovery::{discovery, openapi};
use table::{table, wants_table};

#[derive(Clone)]
struct KubeApp {
    lab: Shared,
    site: String,
    started_ms: u64,
    /// When set (the lab serves TLS), every request must carry `Authorization: Bearer
    /// <token>`, as on a real cluster.
    token: Option<Arc<str>>,
}

pub fn router(lab: Shared, site: String, token: Option<String>) -> Router {
    Router::new().fallback(any(handle)).with_state(KubeApp {
        lab,
        site,
        started_ms: now_ms(),
        token: token.map(Into::into),
    })
}

fn json_response(code: StatusCode, v: Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    json_response(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(kind: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{kind} \"{name}\" not found"),
    )
}

/// A resourceVersion that changes whenever the object's content does.
fn resource_version(v: &Value) -> String {
    let text = v.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h % 1_000_000_000_000).to_string()
}

fn with_rv(mut v: Value) -> Value {
    let rv = resource_version(&v);
    v["metadata"]["resourceVersion"] = json!(rv);
    v
}

fn resource(
    name: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    verbs: &[&str],
    short: &[&str],
) -> Value {
    json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
           "verbs": verbs, "shortNames": short})
}

struct Req<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

async fn handle(
    State(app): State<KubeApp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let latency = app.lab.lock().world.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if app.token.as_deref().is_some_and(|t| bearer != Some(t)) {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized: give the bearer token of the lab's kubeconfig".into(),
        );
    }
    let path = uri.path().trim_end_matches('/');
    if method == Method::GET {
        if let Some(v) = discovery(path).or_else(|| openapi(path)) {
            return json_response(StatusCode::OK, v);
        }
    }
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let req = Req {
        method: &method,
        path,
        query: &query,
        headers: &headers,
        body: &body,
    };
    if watching && method == Method::GET {
        return watch(app, path.to_string(), query.clone());
    }
    let mut lab = app.lab.lock();
    lab.record(
        &format!("{}-kube", app.site),
        &method,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or(path),
    );
    serve(&mut lab, &app, &req)
}

/// The objects a collection path lists now (used by list and watch).
fn collection(
    lab: &mut crate::LabState,
    app: &KubeApp,
    path: &str,
    query: &HashMap<String, String>,
) -> Option<(String, Vec<Value>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (kind, ns): (&str, Option<&str>) = match parts.as_slice() {
        ["apis", KEYCLOAK_GROUP, "v2alpha1", "keycloaks"] => ("keycloaks", None),
        ["apis", KEYCLOAK_GROUP, "v2alpha1", "namespaces", ns, "keycloaks"] => {
            ("keycloaks", Some(*ns))
        }
        ["apis", INFINISPAN_GROUP, "v1", "infinispans"] => ("infinispans", None),
        ["apis", INFINISPAN_GROUP, "v1", "namespaces", ns, "infinispans"] => {
            ("infinispans", Some(*ns))
        }
        ["apis", INFINISPAN_GROUP, "v2alpha1", "batches"] => ("batches", None),
        ["apis", INFINISPAN_GROUP, "v2alpha1", "namespaces", ns, "batches"] => {
            ("batches", Some(*ns))
        }
        ["apis", "apps", "v1", "namespaces", ns, "statefulsets"] => ("statefulsets", Some(*ns)),
        ["apis", "batch", "v1", "namespaces", ns, "jobs"] => ("jobs", Some(*ns)),
        ["api", "v1", "namespaces", ns, "pods"] => ("pods", Some(*ns)),
        ["api", "v1", "pods"] => ("pods", None),
        ["api", "v1", "namespaces", ns, "configmaps"] => ("configmaps", Some(*ns)),
        ["apis", PGO_GROUP, "v1beta1", "namespaces", ns, "postgresclusters"] => {
            ("postgresclusters", Some(*ns))
        }
        ["apis", CNPG_GROUP, "v1", "namespaces", ns, "clusters"] => ("clusters", Some(*ns)),
        _ => return None,
    };
    let in_ns = ns.is_none_or(|n| n == NAMESPACE);
    let mut items = Vec::new();
    if in_ns {
        let now = Instant::now();
        match kind {
            "keycloaks" => items.push(keycloak(lab, app, now)),
            "infinispans" => items.push(infinispan_cr(lab, app)),
            "statefulsets" => items.push(statefulset(lab, app, now)),
            "batches" => {
                advance_batches(lab, &app.site, now);
                items.extend(
                    lab.batches
                        .iter()
                        .filter(|((s, _), _)| *s == app.site)
                        .map(|(_, b)| with_rv(b.object(NAMESPACE))),
                );
            }
            "jobs" => {
                advance_batches(lab, &app.site, now);
                items.extend(
                    lab.batches
                        .iter()
                        .filter(|((s, _), _)| *s == app.site)
                        .map(|(_, b)| job(b)),
                );
            }
            "pods" => {
                advance_batches(lab, &app.site, now);
                items.extend(pods(lab, app, now));
                items.extend(pgo_site(lab, app).and_then(|s| crate::pgo::pod_object(s, NAMESPACE)));
            }
            "clusters" => items.extend(
                lab.cnpg
                    .as_ref()
                    .and_then(|c| c.sites.get(&app.site))
                    .filter(|s| !s.deleted)
                    .map(|s| with_rv(crate::cnpg::cluster_object(s, NAMESPACE))),
            ),
            "postgresclusters" => items.extend(
                pgo_site(lab, app)
                    .filter(|s| !s.deleted)
                    .map(|s| with_rv(crate::pgo::cluster_object(s, NAMESPACE))),
            ),
            "configmaps" => items.extend(
                lab.config_maps
                    .iter()
                    .filter(|((s, _), _)| *s == app.site)
                    .map(|((_, n), d)| config_map(n, d)),
            ),
            _ => {}
        }
    }
    if in_ns {
        items.extend(jobs::listed(lab, &app.site, kind));
    }
    if let Some(sel) = query.get("labelSelector") {
        items.retain(|o| matches_labels(o, sel));
    }
    if let Some(sel) = query.get("fieldSelector") {
        if let Some(name) = sel.strip_prefix("metadata.name=") {
            items.retain(|o| o["metadata"]["name"] == name);
        }
    }
    let list_kind = match kind {
        "keycloaks" => "KeycloakList",
        "infinispans" => "InfinispanList",
        "batches" => "BatchList",
        "statefulsets" => "StatefulSetList",
        "jobs" => "JobList",
        "pods" => "PodList",
        "clusters" => "ClusterList",
        _ => "ConfigMapList",
    };
    Some((list_kind.to_string(), items))
}

fn matches_labels(o: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => o["metadata"]["labels"][k.trim()] == v.trim_start_matches('='),
            None => !o["metadata"]["labels"][term.trim()].is_null(),
        })
}

fn api_version_of(list_kind: &str) -> &'static str {
    match list_kind {
        "KeycloakList" => "k8s.keycloak.org/v2alpha1",
        "BatchList" => "infinispan.org/v2alpha1",
        "InfinispanList" => "infinispan.org/v1",
        "ClusterList" => "postgresql.cnpg.io/v1",
        "StatefulSetList" => "apps/v1",
        "JobList" => "batch/v1",
        _ => "v1",
    }
}

/// The PGO user's secret (`<cluster>-pguser-<user>`), as PGO writes it, or
/// CloudNativePG's `<cluster>-app`; the `pg-secret-differs` fault gives one site
/// another password.
fn pguser_secret(lab: &crate::LabState, app: &KubeApp, ns: &str, name: &str) -> Response {
    match secret_object(lab, app, name).filter(|_| ns == NAMESPACE) {
        Some(obj) => json_response(StatusCode::OK, obj),
        None => not_found("secrets", name),
    }
}

/// A database's app Secret at the site (CloudNativePG's `<cluster>-app`, PGO's
/// `<cluster>-pguser-<user>`), as its operator writes it.
fn secret_object(lab: &crate::LabState, app: &KubeApp, name: &str) -> Option<Value> {
    if let Some(s) = lab.cnpg.as_ref().and_then(|c| c.sites.get(&app.site)) {
        if name == format!("{}-app", s.name) {
            let mut s = s.clone();
            let differs =
                lab.world.faults.iter().any(
                    |f| matches!(f, crate::Fault::PgSecretDiffers { site } if *site == app.site),
                );
            if differs {
                s.password = format!("{}-{}", s.password, app.site);
            }
            return Some(crate::cnpg::secret_object(&s, NAMESPACE));
        }
    }
    match pgo_site(lab, app) {
        Some(s) if name == format!("{}-pguser-{}", crate::pgo::CLUSTER, crate::pgo::USER) => {
            let mut s = s.clone();
            let differs =
                lab.world.faults.iter().any(
                    |f| matches!(f, crate::Fault::PgSecretDiffers { site } if *site == app.site),
                );
            if differs {
                s.password = format!("{}-{}", s.password, app.site);
            }
            Some(crate::pgo::secret_object(&s, NAMESPACE))
        }
        _ => None,
    }
}

fn serve(lab: &mut crate::LabState, app: &KubeApp, req: &Req<'_>) -> Response {
    let now = Instant::now();
    lab.world.tick(now);
    if req.method == Method::GET {
        if let Some((list_kind, items)) = collection(lab, app, req.path, req.query) {
            if wants_table(req.headers) {
                return json_response(StatusCode::OK, table(&items));
            }
            let body = json!({"apiVersion": api_version_of(&list_kind), "kind": list_kind,
                              "metadata": {"resourceVersion": resource_version(&json!(items))}, "items": items});
            return json_response(StatusCode::OK, body);
        }
    }
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    if let Some(r) = jobs::route(lab, app, req, &parts) {
        return r;
    }
    match (req.method.clone(), parts.as_slice()) {
        (Method::GET, ["apis", INFINISPAN_GROUP, "v1", "namespaces", ns, "infinispans", name])
            if *ns == NAMESPACE && *name == crate::kube::INFINISPAN_CR =>
        {
            json_response(StatusCode::OK, infinispan_cr(lab, app))
        }
        (Method::GET, ["apis", INFINISPAN_GROUP, "v1", "namespaces", _, "infinispans", name]) => {
            not_found("infinispans.infinispan.org", name)
        }
        (Method::GET, ["api", "v1", "namespaces", ns]) => json_response(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}),
        ),
        (
            m,
            ["apis", KEYCLOAK_GROUP, "v2alpha1", "namespaces", ns, "keycloaks", name, rest @ ..],
        ) => keycloak_route(lab, app, req, (m, ns, name, rest), now),
        (m, ["apis", PGO_GROUP, "v1beta1", "namespaces", ns, "postgresclusters", rest @ ..])
            if *ns == NAMESPACE && lab.pgo.is_some() =>
        {
            postgrescluster_route(lab, app, req, (m, rest))
        }
        (m, ["apis", CNPG_GROUP, "v1", "namespaces", ns, "clusters", rest @ ..])
            if *ns == NAMESPACE && lab.cnpg.is_some() =>
        {
            cnpg_route(lab, app, req, (m, rest))
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            pguser_secret(lab, app, ns, name)
        }
        (Method::GET, ["apis", "apps", "v1", "namespaces", ns, "statefulsets", name]) => {
            let obj = statefulset(lab, app, now);
            if *ns != NAMESPACE || obj["metadata"]["name"] != *name {
                return not_found("statefulsets.apps", name);
            }
            json_response(StatusCode::OK, obj)
        }
        (Method::POST, ["apis", INFINISPAN_GROUP, "v2alpha1", "namespaces", ns, "batches"]) => {
            create_batch(lab, app, ns, req.body, now)
        }
        (Method::GET, ["apis", INFINISPAN_GROUP, "v2alpha1", "namespaces", _, "batches", name]) => {
            advance_batches(lab, &app.site, now);
            match lab.batches.get(&(app.site.clone(), name.to_string())) {
                Some(b) => json_response(StatusCode::OK, with_rv(b.object(NAMESPACE))),
                None => not_found("batches.infinispan.org", name),
            }
        }
        (
            Method::DELETE,
            ["apis", INFINISPAN_GROUP, "v2alpha1", "namespaces", _, "batches", name],
        ) => match lab.batches.remove(&(app.site.clone(), name.to_string())) {
            Some(b) => json_response(StatusCode::OK, b.object(NAMESPACE)),
            None => not_found("batches.infinispan.org", name),
        },
        (Method::GET, ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            advance_batches(lab, &app.site, now);
            match lab.batches.get(&(app.site.clone(), name.to_string())) {
                Some(b) => json_response(StatusCode::OK, job(b)),
                None => not_found("jobs.batch", name),
            }
        }
        (Method::GET, ["api", "v1", "namespaces", _, "pods", name, rest @ ..]) => {
            pod_route(lab, app, name, rest, now)
        }
        (Method::POST, ["api", "v1", "namespaces", _, "configmaps"]) => {
            create_config_map(lab, app, req.body)
        }
        (Method::GET, ["api", "v1", "namespaces", _, "configmaps", name]) => {
            match lab.config_maps.get(&(app.site.clone(), name.to_string())) {
                Some(d) => json_response(StatusCode::OK, config_map(name, d)),
                None => not_found("configmaps", name),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the lab serves no `{} {}`", req.method, req.path),
        ),
    }
}

/// The Keycloak CR and its scale subresource: get, patch, put.
fn keycloak_route(
    lab: &mut crate::LabState,
    app: &KubeApp,
    req: &Req<'_>,
    (m, ns, name, rest): (Method, &str, &str, &[&str]),
    now: Instant,
) -> Response {
    let kc_name = lab
        .world
        .sites
        .get(&app.site)
        .map(|s| s.keycloak.name.clone())
        .unwrap_or_default();
    if ns != NAMESPACE || name != kc_name {
        return not_found("keycloaks.k8s.keycloak.org", name);
    }
    match (m, rest) {
        (Method::GET, []) | (Method::GET, ["status"]) => {
            let obj = keycloak(lab, app, now);
            if wants_table(req.headers) {
                return json_response(StatusCode::OK, table(&[obj]));
            }
            json_response(StatusCode::OK, obj)
        }
        (Method::GET, ["scale"]) => json_response(StatusCode::OK, scale(lab, app, now)),
        (Method::PATCH | Method::PUT, []) => {
            let current = keycloak(lab, app, now);
            match patched(req, current) {
                Ok(new) => {
                    let annotations = new["metadata"]["annotations"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default();
                    // Kept only with a valid spec: a rejected patch changes nothing.
                    if new["spec"]["instances"].is_u64() {
                        if let Some(site) = lab.world.sites.get_mut(&app.site) {
                            site.keycloak.annotations = annotations;
                        }
                        if new["spec"]["db"].is_object() {
                            let _ = lab.world.set_keycloak_db(
                                &app.site,
                                new["spec"]["db"].clone(),
                                now,
                            );
                        }
                    }
                    apply_instances(lab, app, &new["spec"]["instances"], now, |lab| {
                        keycloak(lab, app, now)
                    })
                }
                Err(r) => *r,
            }
        }
        (Method::PATCH | Method::PUT, ["scale"]) => {
            let current = scale(lab, app, now);
            match patched(req, current) {
                Ok(new) => apply_instances(lab, app, &new["spec"]["replicas"], now, |lab| {
                    scale(lab, app, now)
                }),
                Err(r) => *r,
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the lab".into(),
        ),
    }
}

/// A pod, or its log (a Batch's pod prints the Batch's log).
fn pod_route(
    lab: &mut crate::LabState,
    app: &KubeApp,
    name: &str,
    rest: &[&str],
    now: Instant,
) -> Response {
    advance_batches(lab, &app.site, now);
    let all = pods(lab, app, now);
    let Some(pod) = all.into_iter().find(|p| p["metadata"]["name"] == name) else {
        return not_found("pods", name);
    };
    match rest {
        [] => json_response(StatusCode::OK, pod),
        ["log"] => {
            let batch = pod["metadata"]["labels"]["job-name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let log = lab
                .batches
                .get(&(app.site.clone(), batch))
                .map(|b| b.log.clone())
                .unwrap_or_default();
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], log).into_response()
        }
        _ => not_found("pods", name),
    }
}

/// `POST .../configmaps`: the Batch's config map (its `batch` key).
fn create_config_map(lab: &mut crate::LabState, app: &KubeApp, body: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON".into(),
        );
    };
    let Some(name) = v["metadata"]["name"].as_str() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    let data = v["data"]["batch"].as_str().unwrap_or_default().to_string();
    lab.config_maps
        .insert((app.site.clone(), name.to_string()), data.clone());
    json_response(StatusCode::CREATED, config_map(name, &data))
}

/// Apply the request's patch (or replacement) to `current`.
fn patched(req: &Req<'_>, current: Value) -> Result<Value, Box<Response>> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let body: Value = serde_json::from_slice(req.body)
        .or_else(|_| serde_yaml::from_slice::<Value>(req.body))
        .map_err(|e| {
            status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("the body does not parse: {e}"),
            )
        })?;
    let mut doc = current;
    if req.method == Method::PUT {
        return Ok(body);
    }
    if ct.starts_with("application/json-patch+json") {
        let ops: json_patch::Patch = serde_json::from_value(body).map_err(|e| {
            status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("bad JSON patch: {e}"),
            )
        })?;
        json_patch::patch(&mut doc, &ops).map_err(|e| {
            status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("the JSON patch does not apply: {e}"),
            )
        })?;
    } else if ct.starts_with("application/merge-patch+json")
        || ct.starts_with("application/apply-patch")
    {
        json_patch::merge(&mut doc, &body);
    } else if ct.starts_with("application/strategic-merge-patch+json") {
        return Err(Box::new(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "strategic merge patch is not supported for custom resources, use --type merge or json"
                .into(),
        )));
    } else {
        return Err(Box::new(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("content type `{ct}`"),
        )));
    }
    Ok(doc)
}

fn apply_instances(
    lab: &mut crate::LabState,
    app: &KubeApp,
    n: &Value,
    now: Instant,
    render: impl Fn(&mut crate::LabState) -> Value,
) -> Response {
    let Some(n) = n.as_u64() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("spec.instances: Invalid value: {n}: must be a non-negative integer"),
        );
    };
    if let Err(e) = lab.world.scale_keycloak(&app.site, n as u32, now) {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("{e:?}"),
        );
    }
    json_response(StatusCode::OK, render(lab))
}

/// The name of each site's Infinispan CR (the environment file's `infinispan.cluster`).
pub const INFINISPAN_CR: &str = "infinispan";

/// The site's Infinispan CR, with the conditions the operator sets: `WellFormed`
/// (the local cluster formed: false while the site is down) and `CrossSiteViewFormed`
/// (every remote site in the view: false, `Site 'NAME' not ready`, while the sites
/// are partitioned or the other site is down; its `True` message lists the view).
fn infinispan_cr(lab: &crate::LabState, app: &KubeApp) -> Value {
    let w = &lab.world;
    let other = w.other_site(&app.site).unwrap_or_default();
    let down = w.site_down(&app.site);
    let view_ok = !down && !w.partitioned() && !w.site_down(&other);
    let mut sites: Vec<&str> = vec![app.site.as_str(), other.as_str()];
    sites.sort();
    let tf = |b: bool| if b { "True" } else { "False" };
    let nodes = w.sites.get(&app.site).map_or(0, |s| s.nodes.len());
    let conditions = vec![
        json!({"type": "PreliminaryChecksPassed", "status": "True"}),
        json!({"type": "WellFormed", "status": tf(!down),
               "message": if down { "Pods are not ready".to_string() } else { format!("View: {}", (0..nodes).map(|n| format!("{}-infinispan-{n}", app.site)).collect::<Vec<_>>().join(",")) }}),
        json!({"type": "CrossSiteViewFormed", "status": tf(view_ok),
               "message": if view_ok { format!("Cross-Site view: {}", sites.join(",")) } else { format!("Site '{}' not ready", if down { app.site.as_str() } else { other.as_str() }) }}),
    ];
    with_rv(json!({
        "apiVersion": "infinispan.org/v1", "kind": "Infinispan",
        "metadata": {"name": INFINISPAN_CR, "namespace": NAMESPACE, "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": nodes, "service": {"type": "DataGrid", "sites": {
            "local": {"name": app.site, "expose": {"type": "LoadBalancer"}},
            "locations": [{"name": other, "clusterName": INFINISPAN_CR}]}}},
        "status": {"conditions": conditions, "podStatus": {"ready": if down { Vec::<String>::new() } else { (0..nodes).map(|n| format!("{}-infinispan-{n}", app.site)).collect() }},
                   "statefulSetName": INFINISPAN_CR, "operand": {"phase": "Running"}},
    }))
}

fn keycloak(lab: &crate::LabState, app: &KubeApp, now: Instant) -> Value {
    let Some(site) = lab.world.sites.get(&app.site) else {
        return json!({});
    };
    let k = &site.keycloak;
    with_rv(json!({
        "apiVersion": "k8s.keycloak.org/v2alpha1", "kind": "Keycloak",
        "metadata": {"name": k.name, "namespace": NAMESPACE, "uid": format!("{}-keycloak", app.site),
                     "generation": k.generation, "creationTimestamp": timestamp(app.started_ms),
                     "labels": {"app": "keycloak"}, "annotations": k.annotations},
        "spec": {"instances": k.spec, "hostname": {"hostname": "keycloak.lab"}, "db": k.db},
        "status": lab.world.keycloak_status(&app.site, now),
    }))
}

fn scale(lab: &crate::LabState, app: &KubeApp, now: Instant) -> Value {
    let Some(site) = lab.world.sites.get(&app.site) else {
        return json!({});
    };
    let k = &site.keycloak;
    with_rv(json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": k.name, "namespace": NAMESPACE, "creationTimestamp": timestamp(app.started_ms)},
        "spec": {"replicas": k.spec},
        "status": {"replicas": lab.world.keycloak_ready(&app.site, now),
                   "selector": format!("app=keycloak,app.kubernetes.io/instance={}", k.name)},
    }))
}

fn statefulset(lab: &crate::LabState, app: &KubeApp, now: Instant) -> Value {
    let Some(site) = lab.world.sites.get(&app.site) else {
        return json!({});
    };
    let k = &site.keycloak;
    let pods = lab.world.keycloak_pods(&app.site, now);
    with_rv(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": k.name, "namespace": NAMESPACE, "generation": k.generation,
                     "creationTimestamp": timestamp(app.started_ms), "labels": {"app": "keycloak"}},
        "spec": {"replicas": k.spec, "selector": {"matchLabels": {"app": "keycloak", "app.kubernetes.io/instance": k.name}}},
        "status": {"replicas": pods, "readyReplicas": pods, "availableReplicas": pods, "currentReplicas": pods,
                   "observedGeneration": k.generation},
    }))
}

fn pods(lab: &crate::LabState, app: &KubeApp, now: Instant) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(site) = lab.world.sites.get(&app.site) {
        let k = &site.keycloak;
        for i in 0..lab.world.keycloak_pods(&app.site, now) {
            out.push(with_rv(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{}-{i}", k.name), "namespace": NAMESPACE,
                             "labels": {"app": "keycloak", "app.kubernetes.io/instance": k.name},
                             "creationTimestamp": timestamp(app.started_ms)},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            })));
        }
    }
    for ((s, name), b) in &lab.batches {
        if *s != app.site {
            continue;
        }
        let phase = match b.phase.as_str() {
            "Succeeded" => "Succeeded",
            "Failed" => "Failed",
            "Running" => "Running",
            _ => "Pending",
        };
        out.push(with_rv(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-job"), "namespace": NAMESPACE,
                         "labels": {"job-name": name, "app": "infinispan-batch"},
                         "creationTimestamp": timestamp(b.created_ms)},
            "status": {"phase": phase},
        })));
    }
    out
}

fn job(b: &Batch) -> Value {
    let mut st = json!({});
    match b.phase.as_str() {
        "Succeeded" => st["succeeded"] = json!(1),
        "Failed" => st["failed"] = json!(1),
        "Running" => st["active"] = json!(1),
        _ => {}
    }
    with_rv(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": b.name, "namespace": NAMESPACE, "labels": {"app": "infinispan-batch"},
                     "creationTimestamp": timestamp(b.created_ms)},
        "spec": {"selector": {"matchLabels": {"job-name": b.name}}},
        "status": st,
    }))
}

fn config_map(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE}, "data": {"batch": data}})
}

fn advance_batches(lab: &mut crate::LabState, site: &str, now: Instant) {
    let maps: BTreeMap<String, String> = lab
        .config_maps
        .iter()
        .filter(|((s, _), _)| s == site)
        .map(|((_, n), d)| (n.clone(), d.clone()))
        .collect();
    let crate::LabState { world, batches, .. } = lab;
    for ((s, _), b) in batches.iter_mut() {
        if s == site {
            b.advance(world, site, &maps, now);
        }
    }
}

fn create_batch(
    lab: &mut crate::LabState,
    app: &KubeApp,
    ns: &str,
    body: &Bytes,
    now: Instant,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON".into(),
        );
    };
    if ns != NAMESPACE {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
        );
    }
    let name = match (
        v["metadata"]["name"].as_str(),
        v["metadata"]["generateName"].as_str(),
    ) {
        (Some(n), _) => n.to_string(),
        (None, Some(prefix)) => format!("{prefix}{:05x}", fastrand::u32(..0xfffff)),
        _ => {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value".into(),
            )
        }
    };
    let spec = &v["spec"];
    let Some(cluster) = spec["cluster"].as_str() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("Batch.infinispan.org \"{name}\" is invalid: spec.cluster: Required value"),
        );
    };
    let config = spec["config"].as_str().map(str::to_string);
    let config_map = spec["configMap"].as_str().map(str::to_string);
    if config.is_some() == config_map.is_some() {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("Batch.infinispan.org \"{name}\" is invalid: exactly one of spec.config and spec.configMap must be set"),
        );
    }
    let key = (app.site.clone(), name.clone());
    if lab.batches.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("batches.infinispan.org \"{name}\" already exists"),
        );
    }
    let batch = Batch {
        name: name.clone(),
        uid: format!("{:032x}", fastrand::u128(..)),
        labels: v["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        cluster: cluster.to_string(),
        config,
        config_map,
        created_at: now,
        created_ms: now_ms(),
        phase: String::new(),
        reason: None,
        log: String::new(),
        done: false,
    };
    let obj = with_rv(batch.object(NAMESPACE));
    lab.batches.insert(key, batch);
    json_response(StatusCode::CREATED, obj)
}

/// A watch: the current objects as ADDED, then MODIFIED/DELETED as they change, until
/// `timeoutSeconds`.
fn watch(app: KubeApp, path: String, query: HashMap<String, String>) -> Response {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(300)
        .min(3600);
    // Watching one object is a list watch with a field selector on its name.
    let (path, query) = {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [.., "keycloaks" | "batches", name] if !name.is_empty() && parts.len() >= 7 => {
                let mut q = query.clone();
                q.insert("fieldSelector".into(), format!("metadata.name={name}"));
                (format!("/{}", parts[..parts.len() - 1].join("/")), q)
            }
            _ => (path, query),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    // Watching from the resourceVersion of a list this client just read: the objects it
    // already has are not sent again (a real API server sends only later changes).
    let since = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0")
        .cloned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut seen: BTreeMap<String, (String, Value)> = BTreeMap::new();
        let mut first = true;
        loop {
            let items = {
                let mut lab = app.lab.lock();
                let now = Instant::now();
                lab.world.tick(now);
                collection(&mut lab, &app, &path, &query)
                    .map(|(_, items)| items)
                    .unwrap_or_default()
            };
            let known = first && since.as_deref() == Some(&*resource_version(&json!(items)));
            first = false;
            let mut current = BTreeMap::new();
            for o in items {
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                current.insert(name, (rv, o));
            }
            if known {
                seen = current;
                continue;
            }
            let mut events = Vec::new();
            for (name, (rv, o)) in &current {
                match seen.get(name) {
                    None => events.push(json!({"type": "ADDED", "object": o})),
                    Some((old, _)) if old != rv => {
                        events.push(json!({"type": "MODIFIED", "object": o}))
                    }
                    _ => {}
                }
            }
            for (name, (_, o)) in &seen {
                if !current.contains_key(name) {
                    events.push(json!({"type": "DELETED", "object": o}));
                }
            }
            for e in events {
                if tx.send(Ok(Bytes::from(format!("{e}\n")))).await.is_err() {
                    return;
                }
            }
            seen = current;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
