//! The lab's admin API, for people rehearsing and for tests: the whole state at a
//! glance, every entry of a cache, the requests each site received, faults on and off
//! at runtime, and sessions created as Keycloak would.
//!
//! | call | what |
//! |---|---|
//! | `GET /admin/state` | sites, caches (entry counts, backup status per node, push status), clear requests, Keycloak, Aurora, health checks, where the client domain resolves, faults |
//! | `GET /admin/sites/SITE/caches/CACHE` | every entry of a cache |
//! | `GET /admin/requests?site=SITE` | the requests SITE's Infinispan received |
//! | `POST /admin/faults` (body: a fault spec) | inject a fault |
//! | `DELETE /admin/faults[?kind=KIND]` | lift all faults, or those of one kind |
//! | `POST /admin/sessions?count=N[&site=SITE]` | create sessions (default: on the serving site) |

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::faults::Fault;
use crate::Shared;

pub fn router(lab: Shared) -> Router {
    Router::new()
        .route("/admin/state", get(state))
        .route("/admin/sites/{site}/caches/{cache}", get(entries))
        .route("/admin/requests", get(requests))
        .route(
            "/admin/faults",
            post(add_fault).delete(lift_faults).get(list_faults),
        )
        .route("/admin/sessions", post(sessions))
        .with_state(lab)
}

async fn state(State(lab): State<Shared>) -> impl IntoResponse {
    let mut l = lab.lock();
    Json(l.snapshot(Instant::now()))
}

async fn entries(
    State(lab): State<Shared>,
    Path((site, cache)): Path<(String, String)>,
) -> Response {
    let l = lab.lock();
    match l.world.sites.get(&site).and_then(|s| s.caches.get(&cache)) {
        Some(c) => Json(json!(c.entries)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no cache `{cache}` on site `{site}`"),
        )
            .into_response(),
    }
}

async fn requests(
    State(lab): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let l = lab.lock();
    match q.get("site") {
        Some(site) => Json(json!(l.requests.get(site).cloned().unwrap_or_default())),
        None => Json(json!(l.requests)),
    }
}

async fn add_fault(State(lab): State<Shared>, body: String) -> Response {
    match Fault::parse(body.trim()) {
        Ok(f) => {
            let mut l = lab.lock();
            let shown = json!(f);
            l.world.faults.push(f);
            (StatusCode::CREATED, Json(shown)).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn list_faults(State(lab): State<Shared>) -> impl IntoResponse {
    Json(json!(lab.lock().world.faults))
}

async fn lift_faults(
    State(lab): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut l = lab.lock();
    match q.get("kind") {
        Some(kind) => l.world.faults.retain(|f| f.kind() != kind),
        None => l.world.faults.clear(),
    }
    StatusCode::NO_CONTENT
}

async fn sessions(State(lab): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let count: u32 = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    let mut l = lab.lock();
    match l
        .world
        .create_sessions(q.get("site").map(String::as_str), count)
    {
        Ok(keys) => (StatusCode::CREATED, Json(json!({"created": keys}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e:?}")).into_response(),
    }
}

/// Create sessions on the serving site at `per_sec`, as users logging in would.
pub fn spawn_workload(lab: Shared, per_sec: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs_f64(1.0 / per_sec.max(0.001));
        loop {
            tokio::time::sleep(every).await;
            let mut l = lab.lock();
            let serving = l.world.serving_site();
            // Users cannot log in where Keycloak is not running.
            if l.world.keycloak_ready(&serving, Instant::now()) > 0 && !l.world.site_down(&serving)
            {
                let _ = l.world.create_sessions(Some(&serving), 1);
            }
        }
    })
}
