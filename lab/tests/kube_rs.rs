//! The lab's Kubernetes API through kube-rs, the client the steps use: a client per
//! kubeconfig context, dynamic Keycloak objects with get, merge/JSON/apply patches, the
//! scale subresource, a watch-based wait, StatefulSets, pods, Batch CRs and Job logs.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use runbook_lab as lab;
use serde_json::json;

async fn client(dir: &std::path::Path, context: &str) -> kube::Client {
    // ring and aws-lc-rs are both in the tree (the AWS SDK brings the latter): choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(dir.join("kubeconfig")).unwrap();
    let opts = KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn keycloaks(c: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("k8s.keycloak.org", "v2alpha1", "Keycloak");
    Api::namespaced_with(
        c.clone(),
        "keycloak",
        &ApiResource::from_gvk_with_plural(&gvk, "keycloaks"),
    )
}

fn batches(c: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("infinispan.org", "v2alpha1", "Batch");
    Api::namespaced_with(
        c.clone(),
        "keycloak",
        &ApiResource::from_gvk_with_plural(&gvk, "batches"),
    )
}

#[tokio::test]
async fn keycloak_through_kube_rs() {
    let dir = tempfile::tempdir().unwrap();
    let _lab = lab::start(lab::LabConfig::new(dir.path())).await.unwrap();
    let c = client(dir.path(), "site-b").await;
    let kc = keycloaks(&c);
    let obj = kc.get("keycloak").await.unwrap();
    assert_eq!(obj.data["spec"]["instances"], 3);
    assert_eq!(obj.metadata.generation, Some(1));

    let pp = PatchParams::default();
    kc.patch(
        "keycloak",
        &pp,
        &Patch::Merge(json!({"spec": {"instances": 2}})),
    )
    .await
    .unwrap();
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/instances", "value": 1}]))
            .unwrap();
    kc.patch("keycloak", &pp, &Patch::<()>::Json(ops))
        .await
        .unwrap();
    let apply = PatchParams::apply("runbook").force();
    kc.patch(
        "keycloak",
        &apply,
        &Patch::Apply(json!({"apiVersion": "k8s.keycloak.org/v2alpha1", "kind": "Keycloak", "spec": {"instances": 1}})),
    )
    .await
    .unwrap();
    let scale = kc.get_scale("keycloak").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));

    // wait through a watch until the status follows
    let done = await_condition(kc.clone(), "keycloak", |o: Option<&DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["instances"] == 1)
    });
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("status.instances reached 1")
        .unwrap();

    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), "keycloak");
    let s = sts.get("keycloak").await.unwrap();
    assert_eq!(s.status.unwrap().replicas, 1);
    let pods: Api<Pod> = Api::namespaced(c.clone(), "keycloak");
    let list = pods
        .list(&ListParams::default().labels("app=keycloak"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);

    // the other context is the other site
    let a = keycloaks(&client(dir.path(), "site-a").await);
    assert_eq!(
        a.get("keycloak").await.unwrap().data["spec"]["instances"],
        3
    );
}

#[tokio::test]
async fn batch_and_job_log_through_kube_rs() {
    let dir = tempfile::tempdir().unwrap();
    let _lab = lab::start(lab::LabConfig::new(dir.path())).await.unwrap();
    let c = client(dir.path(), "site-b").await;
    let api = batches(&c);
    let gvk = GroupVersionKind::gvk("infinispan.org", "v2alpha1", "Batch");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "batches");
    let mut b = DynamicObject::new("status-1", &ar);
    b.data = json!({"spec": {"cluster": "infinispan", "config": "site status --all-caches --site=site-a"}});
    api.create(&PostParams::default(), &b).await.unwrap();
    let done = await_condition(api.clone(), "status-1", |o: Option<&DynamicObject>| {
        o.is_some_and(|o| {
            matches!(
                o.data["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            )
        })
    });
    let obj = tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(obj.data["status"]["phase"], "Succeeded");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "keycloak");
    let list = pods
        .list(&ListParams::default().labels("job-name=status-1"))
        .await
        .unwrap();
    let name = list.items[0].metadata.name.clone().unwrap();
    let log = pods.logs(&name, &LogParams::default()).await.unwrap();
    // the CLI's print of the container's answer, as the guide shows it
    assert_eq!(log, "{\n  \"status\" : \"online\"\n}\n");
}
