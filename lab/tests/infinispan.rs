//! The lab's Infinispan REST API through a real HTTP client: auth, both path styles,
//! the clear-while-online hazard, push-state, mixed status and every Infinispan fault.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use runbook_lab as lab;
use serde_json::{json, Value};

struct Lab {
    running: lab::RunningLab,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

enum Auth {
    None,
    Basic,
    Digest,
}

impl Lab {
    /// A lab playing Infinispan 15 (the /rest/v2/container routes most tests use).
    async fn start(faults: &[&str]) -> Lab {
        Lab::start_playing(faults, 15).await
    }

    async fn start_playing(faults: &[&str], version: u8) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let running = lab::start(lab::testing::config(dir.path(), faults, version))
            .await
            .unwrap();
        Lab {
            running,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn url(&self, site: &str, path: &str) -> String {
        format!("http://{}{path}", self.running.endpoints.infinispan[site])
    }

    async fn call(
        &self,
        auth: Auth,
        method: Method,
        site: &str,
        path: &str,
    ) -> (StatusCode, String) {
        let url = self.url(site, path);
        let user = &self.running.config.username;
        let pw = &self.running.config.password;
        let req = self.http.request(method.clone(), &url);
        let resp = match auth {
            Auth::None => req.send().await.unwrap(),
            Auth::Basic => req.basic_auth(user, Some(pw)).send().await.unwrap(),
            Auth::Digest => {
                let first = self
                    .http
                    .request(method.clone(), &url)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
                let challenge = first
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .find(|v| v.starts_with("Digest"))
                    .expect("a digest challenge");
                let mut prompt = digest_auth::parse(&challenge).unwrap();
                let ctx = digest_auth::AuthContext::new_with_method(
                    user,
                    pw,
                    path,
                    Option::<&[u8]>::None,
                    digest_auth::HttpMethod::from(method.as_str().to_string()),
                );
                let answer = prompt.respond(&ctx).unwrap().to_header_string();
                self.http
                    .request(method, &url)
                    .header("authorization", answer)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    async fn get(&self, site: &str, path: &str) -> Value {
        let (s, body) = self.call(Auth::Basic, Method::GET, site, path).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(&self, site: &str, path: &str) -> (StatusCode, String) {
        self.call(Auth::Basic, Method::POST, site, path).await
    }

    async fn admin(&self, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.running.admin_url()))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.text().await.unwrap())
    }

    async fn state(&self) -> Value {
        serde_json::from_str(&self.admin(Method::GET, "/admin/state", "").await.1).unwrap()
    }

    async fn entries(&self, site: &str, cache: &str) -> usize {
        self.state().await["sites"][site]["caches"][cache]["entries"]
            .as_u64()
            .unwrap() as usize
    }
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_basic_and_digest_challenges() {
    let lab = Lab::start(&[]).await;
    let (s, _) = lab
        .call(
            Auth::None,
            Method::GET,
            "site-a",
            "/rest/v2/container/x-site/backups/",
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = lab
        .http
        .get(lab.url("site-a", "/rest/v2/caches"))
        .send()
        .await
        .unwrap();
    let challenges: Vec<String> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(challenges.iter().any(|c| c.starts_with("Basic realm=")));
    assert!(challenges
        .iter()
        .any(|c| c.starts_with("Digest realm=") && c.contains("nonce=")));
    let r = lab
        .http
        .get(lab.url("site-a", "/rest/v2/caches"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_version_serves_exactly_its_routes_with_basic_and_digest() {
    // XSiteResource at 14.0.35.Final: container-level calls only under
    // /rest/v2/cache-managers/{name}; at 15.0.22.Final only under /rest/v2/container.
    // ServerResource.ServerInfo: {"version": printVersion()}.
    for (version, mine, other, says) in [
        (
            14,
            "/rest/v2/cache-managers/default",
            "/rest/v2/container",
            "Infinispan 'Flying Saucer' 14.0.35.Final",
        ),
        (
            15,
            "/rest/v2/container",
            "/rest/v2/cache-managers/default",
            "Infinispan 'I'm Still Standing' 15.0.22.Final",
        ),
    ] {
        let lab = Lab::start_playing(&[], version).await;
        assert_eq!(
            lab.get("site-a", "/rest/v2/server").await,
            json!({"version": says})
        );
        for auth in [Auth::Basic, Auth::Digest] {
            let (s, body) = lab
                .call(
                    auth_clone(&auth),
                    Method::GET,
                    "site-a",
                    &format!("{mine}/x-site/backups/site-b"),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{version} {mine}: {body}");
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap(),
                json!({"status": "online"})
            );
            let (s, _) = lab
                .call(
                    auth_clone(&auth),
                    Method::GET,
                    "site-a",
                    &format!("{other}/x-site/backups/site-b"),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::NOT_FOUND,
                "Infinispan {version} has no {other}"
            );
        }
        let (s, _) = lab
            .call(
                Auth::Digest,
                Method::POST,
                "site-b",
                &format!("{mine}/x-site/backups/site-a?action=take-offline"),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            lab.get("site-b", &format!("{mine}/x-site/backups/site-a"))
                .await,
            json!({"status": "offline"})
        );
        // A site no cache backs up to: 404 with an empty body (globalStatus).
        let (s, body) = lab
            .call(
                Auth::Basic,
                Method::GET,
                "site-a",
                &format!("{mine}/x-site/backups/site-z"),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(body, "");
        // Per cache: the real texts (XSiteResource.siteNotFound).
        let (s, body) = lab
            .call(
                Auth::Basic,
                Method::GET,
                "site-a",
                "/rest/v2/caches/sessions/x-site/backups/site-z",
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(body, "Cache 'sessions' does not backup to site 'site-z'");
    }
}

fn auth_clone(a: &Auth) -> Auth {
    match a {
        Auth::None => Auth::None,
        Auth::Basic => Auth::Basic,
        Auth::Digest => Auth::Digest,
    }
}

#[tokio::test]
async fn clear_while_online_wipes_the_other_site_the_hazard() {
    let lab = Lab::start(&[]).await;
    let (s, _) = lab
        .admin(Method::POST, "/admin/sessions?count=20&site=site-a", "")
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(lab.entries("site-a", "sessions").await, 20);
    assert_eq!(
        lab.entries("site-b", "sessions").await,
        20,
        "writes replicate while online"
    );
    let (s, _) = lab
        .post("site-b", "/rest/v2/caches/sessions?action=clear")
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        lab.entries("site-a", "sessions").await,
        0,
        "the clear on site-b reached the active site"
    );
    assert_eq!(
        lab.state().await["sites"]["site-b"]["clear_requests"]["sessions"],
        1
    );
}

#[tokio::test]
async fn clear_after_take_offline_stays_local() {
    let lab = Lab::start(&[]).await;
    lab.admin(Method::POST, "/admin/sessions?count=5&site=site-a", "")
        .await;
    let (s, body) = lab
        .post(
            "site-b",
            "/rest/v2/container/x-site/backups/site-a?action=take-offline",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let per_cache: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(per_cache.as_object().unwrap().len(), 8);
    assert!(per_cache.as_object().unwrap().values().all(|v| v == "ok"));
    lab.post("site-b", "/rest/v2/caches/sessions?action=clear")
        .await;
    assert_eq!(lab.entries("site-a", "sessions").await, 5);
    assert_eq!(lab.entries("site-b", "sessions").await, 0);
    let size: Value = lab
        .get("site-b", "/rest/v2/caches/sessions?action=size")
        .await;
    assert_eq!(size, json!(0));
}

#[tokio::test]
async fn push_state_sends_then_ok_and_copies_everything() {
    let lab = Lab::start(&["partition"]).await;
    lab.admin(Method::POST, "/admin/sessions?count=7&site=site-a", "")
        .await;
    assert_eq!(
        lab.entries("site-b", "sessions").await,
        0,
        "partitioned: nothing crossed"
    );
    lab.admin(Method::DELETE, "/admin/faults", "").await;
    // slow the push down enough to see SENDING
    lab.running.shared.lock().world.scale = 0.01; // 60 s -> 600 ms
    let (s, _) = lab
        .post(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "SENDING"})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = lab
            .get(
                "site-a",
                "/rest/v2/caches/sessions/x-site/backups?action=push-state-status",
            )
            .await;
        if v == json!({"site-b": "OK"}) {
            break;
        }
        assert!(Instant::now() < deadline, "push never finished: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lab.entries("site-b", "sessions").await, 7);
    let (s, body) = lab
        .post(
            "site-a",
            "/rest/v2/caches/sessions/x-site/local?action=clear-push-state-status",
        )
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "\"ok\""));
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "IDLE"})
    );
}

#[tokio::test]
async fn take_offline_that_does_not_stick_leaves_mixed() {
    let lab = Lab::start(&["offline-not-sticking:site-b"]).await;
    lab.post(
        "site-b",
        "/rest/v2/container/x-site/backups/site-a?action=take-offline",
    )
    .await;
    let v = lab
        .get("site-b", "/rest/v2/container/x-site/backups/site-a")
        .await;
    assert_eq!(v["status"], "mixed");
    assert_eq!(v["mixed"].as_array().unwrap().len(), 8);
    let nodes = lab
        .get("site-b", "/rest/v2/caches/sessions/x-site/backups/site-a")
        .await;
    assert_eq!(nodes["site-b-infinispan-2"], "online");
    assert_eq!(nodes["site-b-infinispan-0"], "offline");
    let all = lab
        .get("site-b", "/rest/v2/container/x-site/backups/")
        .await;
    assert_eq!(all["site-a"]["status"], "mixed");
    // lifted: the next take-offline sticks
    lab.admin(
        Method::DELETE,
        "/admin/faults?kind=offline-not-sticking",
        "",
    )
    .await;
    lab.post(
        "site-b",
        "/rest/v2/caches/sessions/x-site/backups/site-a?action=take-offline",
    )
    .await;
    let nodes = lab
        .get("site-b", "/rest/v2/caches/sessions/x-site/backups/site-a")
        .await;
    assert!(nodes.as_object().unwrap().values().all(|v| v == "offline"));
}

#[tokio::test]
async fn push_error_for_a_named_cache_then_ok_on_repush() {
    let lab = Lab::start(&["push-error:work:1"]).await;
    let (s, body) = lab
        .post(
            "site-a",
            "/rest/v2/container/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/work/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "ERROR"})
    );
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "OK"})
    );
    lab.post(
        "site-a",
        "/rest/v2/caches/work/x-site/backups/site-b?action=start-push-state",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/work/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "OK"})
    );
}

#[tokio::test]
async fn a_failing_cache_is_an_error_value_inside_a_200_and_a_500_alone() {
    let lab = Lab::start(&["cache-error:work"]).await;
    let (s, body) = lab
        .post(
            "site-b",
            "/rest/v2/container/x-site/backups/site-a?action=take-offline",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"], "ok");
    assert!(v["work"].as_str().unwrap().starts_with("ISPN012047"), "{v}");
    let (s, body) = lab
        .post(
            "site-b",
            "/rest/v2/caches/work/x-site/backups/site-a?action=take-offline",
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.starts_with("ISPN012047: Site operation on 'site-a' failed"),
        "{body}"
    );
    // no backup to that site: 404 text
    let (s, body) = lab
        .post(
            "site-b",
            "/rest/v2/caches/sessions/x-site/backups/site-z?action=take-offline",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body, "Cache 'sessions' does not backup to site 'site-z'");
}

#[tokio::test]
async fn server_errors_latency_partition_and_site_down() {
    let lab = Lab::start(&["http-5xx:1:site-a"]).await;
    let (s, _) = lab
        .call(Auth::Basic, Method::GET, "site-a", "/rest/v2/caches")
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, _) = lab
        .call(Auth::Basic, Method::GET, "site-b", "/rest/v2/caches")
        .await;
    assert_eq!(s, StatusCode::OK, "the fault names site-a only");
    lab.admin(Method::DELETE, "/admin/faults", "").await;
    let (s, _) = lab
        .admin(Method::POST, "/admin/faults", "latency:120ms")
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let t = Instant::now();
    lab.call(Auth::Basic, Method::GET, "site-a", "/rest/v2/caches")
        .await;
    assert!(t.elapsed() >= Duration::from_millis(120), "latency applied");
    lab.admin(Method::DELETE, "/admin/faults", "").await;
    lab.admin(Method::POST, "/admin/faults", "partition").await;
    lab.admin(Method::POST, "/admin/sessions?count=3&site=site-a", "")
        .await;
    assert_eq!(lab.entries("site-b", "sessions").await, 0);
    // The push's SYNC control request cannot reach site-b: it fails at once, with
    // XSiteAdminOperations.pushState's text inside ISPN012047, and never goes SENDING.
    let (s, body) = lab
        .post(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.starts_with(
            "ISPN012047: Site operation on 'site-b' failed: 'Unable to pushState to 'site-b'."
        ),
        "{body}"
    );
    assert_eq!(
        lab.get(
            "site-a",
            "/rest/v2/caches/sessions/x-site/backups?action=push-state-status"
        )
        .await,
        json!({"site-b": "IDLE"})
    );
    lab.admin(Method::POST, "/admin/faults", "site-down:site-a")
        .await;
    let (s, body) = lab
        .call(Auth::Basic, Method::GET, "site-a", "/rest/v2/caches")
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let r = lab
        .http
        .get(format!(
            "http://{}/lb-check",
            lab.running.endpoints.keycloak["site-a"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (s, body) = lab
        .admin(Method::POST, "/admin/faults", "no-such-fault")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown fault kind"));
}

#[tokio::test]
async fn lb_check_and_health_checkers_follow_keycloak() {
    let lab = Lab::start(&[]).await;
    let kc = lab.running.endpoints.keycloak["site-a"];
    let r = lab
        .http
        .get(format!("http://{kc}/lb-check"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = lab
        .http
        .get(format!("http://{kc}/health/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    lab.running
        .shared
        .lock()
        .world
        .scale_keycloak("site-a", 0, Instant::now())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = lab.state().await;
        if st["serving_site"] == "site-b" {
            assert_eq!(st["health_checks"][0]["healthy"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the checkers never saw site-a down: {st}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let r = lab
        .http
        .get(format!("http://{kc}/lb-check"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn each_server_says_which_site_it_is() {
    // CacheManagerInfo.toJson (core/src/main/java/org/infinispan/manager/
    // CacheManagerInfo.java): `local_site` is the transport's local site name,
    // `sites_view` the sites in the cross-site view, `cluster_members` this site's
    // own cluster. Served by CacheManagerResource at GET /v2/cache-managers/{name}
    // (14) and by ContainerResource at GET /v2/container (15, with the
    // cache-managers route kept as deprecated).
    for (version, paths) in [
        (14, vec!["/rest/v2/cache-managers/default"]),
        (
            15,
            vec!["/rest/v2/container", "/rest/v2/cache-managers/default"],
        ),
    ] {
        let lab = Lab::start_playing(&[], version).await;
        for path in paths {
            let a = lab.get("site-a", path).await;
            let b = lab.get("site-b", path).await;
            assert_eq!(a["local_site"], "site-a", "{version} {path}: {a}");
            assert_eq!(b["local_site"], "site-b", "{version} {path}: {b}");
            assert_eq!(a["sites_view"], json!(["site-a", "site-b"]));
            let members = |v: &Value| -> Vec<String> {
                v["cluster_members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(members(&a).len(), 3);
            assert!(
                members(&a).iter().all(|m| !members(&b).contains(m)),
                "two sites are two clusters"
            );
        }
        if version == 14 {
            let (s, _) = lab
                .call(Auth::Basic, Method::GET, "site-a", "/rest/v2/container")
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "14 has no /rest/v2/container");
        }
    }
    // In a partition the view holds the local site only.
    let lab = Lab::start(&["partition"]).await;
    let a = lab.get("site-a", "/rest/v2/container").await;
    assert_eq!(a["sites_view"], json!(["site-a"]));
}
