//! Each site's Keycloak as the load balancer sees it (`GET /lb-check`: 200 while the
//! site has ready instances), and the Route53 checkers that really probe it. A client
//! request under `/realms/` (one ending in `/slow` after 3 s) is answered by the site that got it (its name in the body
//! and in `X-Lab-Site`) while it has ready instances, and counted, so that a test can
//! tell where a load balancer sent each request; every other path is not found (a
//! health check pointed away at one fails, as the guide's procedure wants).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

use crate::world::{now_ms, production};
use crate::Shared;

#[derive(Clone)]
struct KcApp {
    lab: Shared,
    site: String,
}

pub fn router(lab: Shared, site: String) -> Router {
    Router::new()
        .fallback(any(lb_check))
        .with_state(KcApp { lab, site })
}

async fn lb_check(State(app): State<KcApp>, uri: Uri) -> axum::response::Response {
    if uri.path().starts_with("/realms/") {
        // `…/slow`: a request that takes 3 s (real time), to hold a session open.
        if uri.path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        return realm(&app, &uri);
    }
    if uri.path() != "/lb-check" {
        return (StatusCode::NOT_FOUND, "Not Found".to_string()).into_response();
    }
    let ready = app
        .lab
        .lock()
        .world
        .keycloak_ready(&app.site, Instant::now());
    if ready > 0 {
        (
            StatusCode::OK,
            format!(
                "{{\"status\":\"UP\",\"site\":\"{}\",\"instances\":{ready}}}",
                app.site
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{{\"status\":\"DOWN\",\"site\":\"{}\"}}", app.site),
        )
    }
    .into_response()
}

/// A client request: answered by this site while it has ready instances, and logged
/// under `SITE-keycloak` (`GET /admin/requests`).
fn realm(app: &KcApp, uri: &Uri) -> axum::response::Response {
    let mut lab = app.lab.lock();
    lab.record(
        &format!("{}-keycloak", app.site),
        &axum::http::Method::GET,
        uri.path(),
    );
    if lab.world.keycloak_ready(&app.site, Instant::now()) == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "no ready instance").into_response();
    }
    (
        StatusCode::OK,
        [("x-lab-site", app.site.clone())],
        format!("{{\"site\":\"{}\"}}", app.site),
    )
        .into_response()
}

/// Checker regions, as Route53 reports them.
pub const CHECKER_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

/// Probe every health check's path on its site, from each checker region, every
/// (scaled) checker interval: what Route53's checkers do.
pub fn spawn_health_checkers(lab: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("static client settings");
        loop {
            let (checks, interval) = {
                let l = lab.lock();
                let checks: Vec<(usize, String, u16)> = l
                    .world
                    .health_checks
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (i, h.path.clone(), h.port))
                    .collect();
                (
                    checks,
                    l.world
                        .scaled(production::HEALTH_CHECK_INTERVAL)
                        .max(Duration::from_millis(20)),
                )
            };
            for (i, path, port) in checks {
                for region in CHECKER_REGIONS {
                    let url = format!("http://127.0.0.1:{port}{path}");
                    let (ok, seen) = match client.get(&url).send().await {
                        Ok(r) => (
                            r.status().is_success(),
                            format!(
                                "HTTP Status Code {}, {}",
                                r.status().as_u16(),
                                r.status().canonical_reason().unwrap_or("")
                            ),
                        ),
                        Err(e) => (false, format!("Failure: {e}")),
                    };
                    let mut l = lab.lock();
                    if let Some(h) = l.world.health_checks.get_mut(i) {
                        // A path changed while we probed: this observation is stale.
                        if h.path == path {
                            h.observations
                                .insert(region.to_string(), (ok, seen, now_ms()));
                        }
                    }
                }
            }
            tokio::time::sleep(interval).await;
        }
    })
}
