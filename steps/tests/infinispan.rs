//! The Infinispan actions against the lab, over REST (v15 and v14 paths, BASIC and
//! DIGEST) and over Batch CRs.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// Take site-b's replication to site-a offline, clear site-b's caches (each clear
/// guarded live), bring it back online: site-a keeps its sessions.
const OFFLINE_CLEAR_ONLINE: &str = r#"
name: t
steps:
  - id: offline
    site: site-b
    action: infinispan.take-offline
    with: { backup: site-a, poll: 20ms }
    timeout: 5s
  - id: status
    site: site-b
    action: infinispan.site-status
    with: { backup: site-a }
  - id: clear
    site: site-b
    action: infinispan.clear-caches
    for_each: { items: [sessions, clientSessions], concurrency: 2 }
    with: { cache: "{{ item }}" }
    require:
      - probe: infinispan.site-status
        with: { backup: site-a, cache: "{{ item }}" }
        expect: observation.caches[item] == 'offline'
        message: "site-b's backup of the cache to site-a is offline"
    timeout: 5s
  - id: online
    site: site-b
    action: infinispan.bring-online
    with: { backup: site-a, poll: 20ms }
    timeout: 5s
"#;

async fn offline_clear_online(lab: &Lab, env: &std::path::Path) {
    lab.sessions("site-a", 10).await;
    assert_eq!(lab.entries("site-b", "sessions").await, 10);
    let r = run(env, OFFLINE_CLEAR_ONLINE, &[]).await;
    completed(&r);
    assert_eq!(r.1.steps["status"].progress.outputs["status"], "offline");
    assert_eq!(
        lab.entries("site-a", "sessions").await,
        10,
        "the active site kept its sessions"
    );
    assert_eq!(lab.entries("site-b", "sessions").await, 0);
    assert_eq!(lab.entries("site-b", "clientSessions").await, 0);
    let st = lab.state().await;
    assert_eq!(
        st["sites"]["site-b"]["caches"]["sessions"]["backups"]["site-a"]["status"],
        "online"
    );
}

#[tokio::test]
async fn rest_v15_basic_routes_read_from_the_server() {
    let lab = Lab::start_playing(&[], 15).await;
    offline_clear_online(&lab, &lab.running.env_file.clone()).await;
    let reqs = lab.requests("site-b");
    assert!(reqs.iter().any(|r| r == "GET /rest/v2/server"), "{reqs:?}");
    assert!(
        reqs.iter()
            .any(|r| r.contains("/rest/v2/container/x-site/backups/site-a?action=take-offline")),
        "{reqs:?}"
    );
}

#[tokio::test]
async fn rest_v14_digest_routes_read_from_the_server() {
    // The lab plays Infinispan 14 (Keycloak 24's Data Grid 8.4) by default.
    let lab = Lab::start(&[]).await;
    let env = lab.env_with("digest.yaml", |d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s]["infinispan"]["auth"]["scheme"] = "digest".into();
        }
    });
    offline_clear_online(&lab, &env).await;
    let reqs = lab.requests("site-b");
    assert!(
        reqs.iter().any(|r| r
            .contains("/rest/v2/cache-managers/default/x-site/backups/site-a?action=take-offline")),
        "{reqs:?}"
    );
    assert!(
        !reqs.iter().any(|r| r.contains("/rest/v2/container")),
        "{reqs:?}"
    );
}

#[tokio::test]
async fn infinispan_14_has_no_container_routes() {
    // Declared v15 against a server that is 14: its /rest/v2/container answers 404.
    let lab = Lab::start(&[]).await;
    let env = lab.env_with("wrong-api.yaml", |d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s]["infinispan"]["api"] = "v15".into();
        }
    });
    let yaml = "name: t\nsteps:\n  - id: s\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n";
    let r = run(&env, yaml, &[]).await;
    let reason = r.0.reason.unwrap_or_default();
    // The first call is the built-in identity guard's, before any step: the routes the
    // declared version names answer 404, and the run is refused with nothing done.
    assert_eq!(r.0.status, engine::state::RunStatus::Refused, "{reason}");
    assert!(
        reason.contains("GET http://") && reason.contains("/rest/v2/container answered 404"),
        "{reason}"
    );
}

#[tokio::test]
async fn batch_transport() {
    let lab = Lab::start(&[]).await;
    let env = lab.env_with("batch.yaml", |d| {
        d["sites"]["site-b"]["infinispan"]["transport"] = "batch".into();
    });
    // Batch has no size: the clear cannot be confirmed by a probe, but it runs
    offline_clear_online(&lab, &env).await;
    assert!(
        lab.requests("site-b").is_empty(),
        "site-b's Infinispan was reached only through Batch CRs"
    );
    let created = lab
        .requests("site-b-kube")
        .iter()
        .filter(|r| r.starts_with("POST /apis/infinispan.org/v2alpha1/namespaces/keycloak/batches"))
        .count();
    assert!(created >= 4, "one Batch per call, got {created}");
    assert!(
        lab.running.shared.lock().batches.is_empty(),
        "every finished Batch was deleted once its log was read"
    );
}

#[tokio::test]
async fn take_offline_that_does_not_stick_halts_naming_the_node_and_caches() {
    let lab = Lab::start(&["offline-not-sticking:site-b"]).await;
    let yaml = r#"
name: t
steps:
  - id: offline
    site: site-b
    action: infinispan.take-offline
    with: { backup: site-a, poll: 20ms }
    timeout: 300ms
"#;
    let r = run(&lab.running.env_file, yaml, &[]).await;
    assert_eq!(r.0.status, engine::state::RunStatus::Halted);
    let reason = r.0.reason.unwrap();
    assert!(
        reason.contains(
            "expected replication from `site-b` to `site-a` is offline for every cache on every node"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("observed: every cache (8) is mixed"),
        "the container status names caches, not nodes: {reason}"
    );
}

#[tokio::test]
async fn a_clear_is_refused_live_while_replication_is_mixed() {
    let lab = Lab::start(&["offline-not-sticking:site-b"]).await;
    lab.sessions("site-a", 5).await;
    let yaml = r#"
name: t
steps:
  - id: clear
    site: site-b
    action: infinispan.clear-caches
    for_each: { items: [sessions] }
    with: { cache: "{{ item }}" }
    require:
      - probe: infinispan.site-status
        with: { backup: site-a, cache: "{{ item }}" }
        expect: observation.caches[item] == 'offline'
        message: "site-b's backup of the cache to site-a is offline"
"#;
    // take offline by hand: one node refuses (the answer is an ISPN012047 error)
    assert!(lab
        .running
        .shared
        .lock()
        .world
        .take_offline("site-b", "sessions", "site-a")
        .is_err());
    let r = run(&lab.running.env_file, yaml, &[]).await;
    // The clear's own invariant refuses it before any effect (it reads every cache
    // the step clears: mixed is not offline); the runbook's precondition would have
    // halted it only at the item.
    assert_eq!(r.0.status, engine::state::RunStatus::Refused);
    let reason = r.0.reason.unwrap();
    assert!(
        reason.contains("site-b's replication is not offline (sessions → site-a is mixed)"),
        "{reason}"
    );
    assert!(
        lab.state().await["sites"]["site-b"]["clear_requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "no clear request"
    );
    assert_eq!(lab.entries("site-a", "sessions").await, 5);
}

const PUSH: &str = r#"
name: t
steps:
  - id: push
    site: site-a
    action: infinispan.push-state
    with: { backup: site-b, poll: 20ms, max_repush: 2 }
    timeout: 5s
  - id: clear-status
    site: site-a
    action: infinispan.clear-push-state-status
    with: { backup: site-b }
"#;

#[tokio::test]
async fn push_state_repushes_only_the_cache_in_error() {
    let lab = Lab::start(&["partition", "push-error:work:1"]).await;
    lab.sessions("site-a", 7).await;
    lab.running
        .shared
        .lock()
        .world
        .faults
        .retain(|f| f.kind() != "partition");
    let r = run(&lab.running.env_file, PUSH, &[]).await;
    completed(&r);
    assert_eq!(
        r.1.steps["push"].progress.outputs["repushed"],
        json!({"work": 1})
    );
    assert_eq!(lab.entries("site-b", "sessions").await, 7);
    let st = lab.state().await;
    for (_, c) in st["sites"]["site-a"]["caches"].as_object().unwrap() {
        assert_eq!(c["backups"]["site-b"]["push"], "IDLE");
    }
}

#[tokio::test]
async fn a_lasting_push_error_fails_naming_the_cache() {
    let lab = Lab::start(&["push-error:work"]).await;
    let r = run(&lab.running.env_file, PUSH, &[]).await;
    assert_eq!(r.0.status, engine::state::RunStatus::Failed);
    let reason = r.0.reason.unwrap();
    assert!(
        reason.contains(
            "push-state of `work` to `site-b` ended in ERROR after 2 re-pushes: giving up"
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn a_per_cache_error_inside_a_200_is_a_failure_naming_the_cache() {
    let lab = Lab::start(&["cache-error:work"]).await;
    let yaml = r#"
name: t
steps:
  - id: offline
    site: site-b
    action: infinispan.take-offline
    with: { backup: site-a, poll: 20ms }
    timeout: 2s
"#;
    let batch_env = lab.env_with("batch.yaml", |d| {
        d["sites"]["site-b"]["infinispan"]["transport"] = "batch".into();
    });
    for env in [lab.running.env_file.clone(), batch_env] {
        let r = run(&env, yaml, &[]).await;
        assert_eq!(r.0.status, engine::state::RunStatus::Failed);
        let reason = r.0.reason.unwrap();
        assert!(
            reason.contains("take-offline to `site-a` failed for `work`: ISPN012047"),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_they_pass() {
    let lab = Lab::start(&["http-5xx:1:site-b"]).await;
    let yaml = r#"
name: t
steps:
  - id: status
    site: site-b
    action: infinispan.site-status
    with: { backup: site-a }
    retry: { policy: fixed, max_attempts: 100, delay: 30s }
"#;
    // delays follow the lab's time scale: 30 s is 30 ms here
    let shared = lab.running.shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        shared.lock().world.faults.clear();
    });
    let r = run(&lab.running.env_file, yaml, &[]).await;
    completed(&r);
    let answered_503 = lab.running.shared.lock().requests["site-b"].len();
    assert!(
        answered_503 > 1,
        "tried again after 503s ({answered_503} requests), in the call or per the step's policy"
    );
}

#[tokio::test]
async fn wrong_credentials_get_a_clear_message() {
    let lab = Lab::start(&[]).await;
    let bad = lab.dir.path().join("wrong-password");
    std::fs::write(&bad, "not-the-password").unwrap();
    let env = lab.env_with("bad.yaml", |d| {
        d["sites"]["site-b"]["infinispan"]["auth"]["password_file"] =
            bad.display().to_string().into();
    });
    let yaml = "name: t\nsteps:\n  - id: s\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n";
    let r = run(&env, yaml, &[]).await;
    // Refused before any step by the built-in identity guard, as a configuration error.
    assert_eq!(r.0.status, engine::state::RunStatus::Refused);
    let reason = r.0.reason.unwrap();
    assert!(reason.contains("configuration: site `site-b`"), "{reason}");
    assert!(
        reason.contains("answered 401: the credentials were refused (user `admin`, Basic)"),
        "{reason}"
    );
    // The hint matches the cause: a wrong password is no missing permission.
    assert!(reason.contains("the user or password is wrong"), "{reason}");
    assert!(!reason.contains("ADMIN"), "{reason}");
    assert!(!reason.contains("not-the-password"));
}

#[tokio::test]
async fn batch_stuck_in_initializing_is_named() {
    let lab = Lab::start(&["batch-stuck"]).await;
    let env = lab.env_with("batch.yaml", |d| {
        d["sites"]["site-b"]["infinispan"]["transport"] = "batch".into()
    });
    let yaml = "name: t\nsteps:\n  - id: s\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n    timeout: 400ms\n";
    let r = run(&env, yaml, &[]).await;
    assert_eq!(r.0.status, engine::state::RunStatus::Failed);
    let reason = r.0.reason.unwrap();
    assert!(reason.contains("is still `Initializing`"), "{reason}");
}

#[tokio::test]
async fn a_failed_batch_is_a_failure_with_its_reason() {
    let lab = Lab::start(&["site-down:site-b"]).await;
    let env = lab.env_with("batch.yaml", |d| {
        d["sites"]["site-b"]["infinispan"]["transport"] = "batch".into()
    });
    let yaml = "name: t\nsteps:\n  - id: s\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n    timeout: 5s\n";
    let r = run(&env, yaml, &[]).await;
    assert_eq!(r.0.status, engine::state::RunStatus::Failed);
    let reason = r.0.reason.unwrap();
    assert!(reason.contains("failed: ISPN004028"), "{reason}");
    let left = lab.running.shared.lock().batches.clone();
    assert!(
        !left.is_empty(),
        "a failed Batch stays, for a person to look at"
    );
    for b in left.values() {
        assert_eq!(b.labels["app.kubernetes.io/managed-by"], "runbook");
        assert!(
            b.labels["runbook/run"]
                .as_str()
                .is_some_and(|r| r.starts_with("r-")),
            "labelled with its run: {:?}",
            b.labels
        );
    }
}

#[tokio::test]
async fn tls_with_the_lab_ca_and_the_insecure_switch() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab::LabConfig::new(dir.path());
    config.tls = true;
    let running = lab::start(config).await.unwrap();
    let text = std::fs::read_to_string(&running.env_file).unwrap();
    assert!(
        text.contains("url: https://") && text.contains("ca_file:"),
        "{text}"
    );
    let yaml = "name: t\nsteps:\n  - id: s\n    site: site-b\n    action: infinispan.site-status\n    with: { backup: site-a }\n    timeout: 5s\n";
    // verified against the lab's CA
    let r = run(&running.env_file, yaml, &[]).await;
    completed(&r);
    assert_eq!(r.1.steps["s"].progress.outputs["status"], "online");
    // without the CA: the certificate is refused, and the error says so
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for s in ["site-a", "site-b"] {
        doc["sites"][s]["infinispan"]
            .as_mapping_mut()
            .unwrap()
            .remove("tls");
    }
    let no_ca = dir.path().join("no-ca.yaml");
    std::fs::write(&no_ca, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let r = run(&no_ca, yaml, &[]).await;
    // Refused before any step: the identity guard's first call meets the certificate.
    assert_eq!(r.0.status, engine::state::RunStatus::Refused);
    let reason = r.0.reason.unwrap();
    assert!(
        reason.contains("cannot connect") || reason.contains("certificate"),
        "{reason}"
    );
    assert!(
        reason.to_lowercase().contains("certificate") || reason.contains("UnknownIssuer"),
        "{reason}"
    );
    // the explicit insecure switch
    for s in ["site-a", "site-b"] {
        doc["sites"][s]["infinispan"]["tls"] = serde_yaml::from_str("{ insecure: true }").unwrap();
    }
    let insecure = dir.path().join("insecure.yaml");
    std::fs::write(&insecure, serde_yaml::to_string(&doc).unwrap()).unwrap();
    completed(&run(&insecure, yaml, &[]).await);
}
