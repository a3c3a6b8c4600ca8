//! PGO's lab over real PostgreSQL servers: what the operator does to them, as
//! `../shared/docs/pgo.md` says PGO v5.8.9 does (the facts and their sources are in
//! `lab/src/pgo.rs`): the standby streams from the primary; `spec.shutdown` stops a
//! cluster; `spec.standby.enabled: false` promotes; nothing prevents two writable
//! primaries; a deleted cluster created again as a standby is bootstrapped from the
//! new primary; the role label says `master` on a standby leader too.

use std::time::{Duration, Instant};

use base64::Engine;
use runbook_lab as lab;
use serde_json::{json, Value};

struct Pgo {
    running: lab::RunningLab,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

const PATH: &str =
    "apis/postgres-operator.crunchydata.com/v1beta1/namespaces/keycloak/postgresclusters";

impl Pgo {
    async fn start() -> Pgo {
        let dir = tempfile::tempdir().unwrap();
        let mut config = lab::testing::config(dir.path(), &[], 14);
        config.shape.database = lab::world::Database::Pgo;
        let running = lab::start(config).await.unwrap();
        Pgo {
            running,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn kube(&self, site: &str, path: &str) -> String {
        format!("http://{}/{path}", self.running.endpoints.kube[site])
    }

    async fn get(&self, site: &str, path: &str) -> (u16, Value) {
        let r = self.http.get(self.kube(site, path)).send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn cluster(&self, site: &str) -> Value {
        self.get(site, &format!("{PATH}/hippo")).await.1
    }

    async fn patch(&self, site: &str, body: Value) -> u16 {
        self.http
            .patch(self.kube(site, &format!("{PATH}/hippo")))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn pods(&self, site: &str) -> Vec<Value> {
        let (_, list) = self
            .get(
                site,
                "api/v1/namespaces/keycloak/pods?labelSelector=postgres-operator.crunchydata.com/cluster%3Dhippo",
            )
            .await;
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The pguser's password, from the site's secret.
    async fn password(&self, site: &str) -> String {
        let (_, s) = self
            .get(
                site,
                "api/v1/namespaces/keycloak/secrets/hippo-pguser-hippo",
            )
            .await;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["password"].as_str().unwrap())
            .unwrap();
        String::from_utf8(raw).unwrap()
    }

    /// `pg_is_in_recovery()` through the site's exposed primary, as the pguser with
    /// the password of `secret_site`'s secret (`None`: no connection).
    async fn in_recovery(&self, site: &str, secret_site: &str) -> Option<bool> {
        let addr = self.running.endpoints.postgres[site];
        let pw = self.password(secret_site).await;
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Config::new()
                .host("127.0.0.1")
                .port(addr.port())
                .user("hippo")
                .password(pw)
                .dbname("hippo")
                .connect_timeout(Duration::from_secs(2))
                .connect(postgres::NoTls)
                .ok()?;
            c.query_one("SELECT pg_is_in_recovery()", &[])
                .ok()
                .map(|r| r.get(0))
        })
        .await
        .unwrap()
    }

    async fn until<F, Fut>(&self, what: &str, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(30);
        while !f().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("{what}: {:?}", t0.elapsed());
    }
}

fn patroni_role(pod: &Value) -> String {
    let status: Value =
        serde_json::from_str(pod["metadata"]["annotations"]["status"].as_str().unwrap()).unwrap();
    status["role"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_operators_moves_on_real_servers() {
    let t0 = Instant::now();
    let p = Pgo::start().await;
    eprintln!("started: {:?}", t0.elapsed());
    // The standby cluster at site-b, the primary at site-a; both leaders labelled
    // `master`, told apart by Patroni's status and by the database.
    assert_eq!(
        p.cluster("site-b").await["spec"]["standby"]["enabled"],
        true
    );
    p.until("both servers answer", || async {
        p.in_recovery("site-a", "site-a").await == Some(false)
            && p.in_recovery("site-b", "site-b").await == Some(true)
    })
    .await;
    for (site, role) in [("site-a", "master"), ("site-b", "standby_leader")] {
        let pods = p.pods(site).await;
        assert_eq!(pods.len(), 1, "{site}: one instance pod");
        assert_eq!(
            pods[0]["metadata"]["labels"]["postgres-operator.crunchydata.com/role"],
            "master"
        );
        p.until(&format!("{site}'s pod says {role}"), || async {
            p.pods(site).await.first().map(patroni_role).as_deref() == Some(role)
        })
        .await;
    }

    // shutdown: the pods go, the status counts 0, the primary's instance is recorded.
    assert_eq!(
        p.patch("site-a", json!({"spec": {"shutdown": true}})).await,
        200
    );
    p.until("site-a's pods are gone", || async {
        p.pods("site-a").await.is_empty()
    })
    .await;
    let a = p.cluster("site-a").await;
    assert_eq!(a["status"]["instances"][0]["replicas"], 0);
    assert!(a["status"]["startupInstance"].is_string(), "{a}");
    assert_eq!(p.in_recovery("site-a", "site-a").await, None);

    // promote: standby.enabled false, the standby becomes writable.
    assert_eq!(
        p.patch("site-b", json!({"spec": {"standby": {"enabled": false}}}))
            .await,
        200
    );
    p.until("site-b is writable", || async {
        p.in_recovery("site-b", "site-b").await == Some(false)
    })
    .await;
    p.until("site-b's operator caught up", || async {
        let b = p.cluster("site-b").await;
        b["metadata"]["generation"] == b["status"]["observedGeneration"]
    })
    .await;
    let b = p.cluster("site-b").await;

    // Nothing stops a second writable primary: started again, site-a writes too.
    assert_eq!(
        p.patch("site-a", json!({"spec": {"shutdown": false}}))
            .await,
        200
    );
    p.until("site-a is writable again (split-brain)", || async {
        p.in_recovery("site-a", "site-a").await == Some(false)
    })
    .await;
    assert_eq!(p.in_recovery("site-b", "site-b").await, Some(false));

    // Demote as documented: delete site-a's cluster, create it as a standby of site-b.
    let r = p
        .http
        .delete(p.kube("site-a", &format!("{PATH}/hippo")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(p.get("site-a", &format!("{PATH}/hippo")).await.0, 404);
    let b_port = p.running.endpoints.postgres["site-b"].port();
    let mut spec = b["spec"].clone();
    spec["standby"] = json!({"enabled": true, "host": "127.0.0.1", "port": b_port});
    let r = p
        .http
        .post(p.kube("site-a", PATH))
        .header("content-type", "application/json")
        .body(json!({"apiVersion": "postgres-operator.crunchydata.com/v1beta1", "kind": "PostgresCluster",
                     "metadata": {"name": "hippo"}, "spec": spec}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    p.until("site-a is a standby of site-b", || async {
        p.in_recovery("site-a", "site-a").await == Some(true)
    })
    .await;
}

#[tokio::test]
async fn paused_applies_nothing() {
    let p = Pgo::start().await;
    p.until("site-a answers", || async {
        p.in_recovery("site-a", "site-a").await == Some(false)
    })
    .await;
    assert_eq!(
        p.patch("site-a", json!({"spec": {"paused": true}})).await,
        200
    );
    assert_eq!(
        p.patch("site-a", json!({"spec": {"shutdown": true}})).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let a = p.cluster("site-a").await;
    assert_eq!(a["status"]["conditions"][0]["reason"], "Paused", "{a}");
    assert_ne!(
        a["metadata"]["generation"],
        a["status"]["observedGeneration"]
    );
    assert_eq!(p.in_recovery("site-a", "site-a").await, Some(false));
}
