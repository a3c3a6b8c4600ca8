//! What the lab's Kubernetes API says of itself: discovery and the OpenAPI v3 documents
//! kubectl and kube-rs read before they call it.

#[allow(unused_imports)]
use super::*;

pub(super) fn discovery(path: &str) -> Option<Value> {
    let rw = ["get", "list", "watch", "patch", "update"];
    Some(match path {
        "/version" => {
            json!({"major": "1", "minor": "30", "gitVersion": "v1.30.0-runbook-lab", "platform": "linux/amd64"})
        }
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                          "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            resource("pods", "pod", "Pod", true, &["get", "list", "watch"], &["po"]),
            resource("pods/log", "", "Pod", true, &["get"], &[]),
            resource("configmaps", "configmap", "ConfigMap", true, &["get", "list", "create", "delete"], &["cm"]),
            resource("namespaces", "namespace", "Namespace", false, &["get", "list"], &["ns"]),
            resource("secrets", "secret", "Secret", true, &["get"], &[]),
        ]}),
        "/apis" => {
            let group = |name: &str, version: &str| {
                let gv = format!("{name}/{version}");
                json!({"name": name, "versions": [{"groupVersion": gv, "version": version}],
                       "preferredVersion": {"groupVersion": gv, "version": version}})
            };
            // The Infinispan operator serves two versions: v1 (Infinispan) and
            // v2alpha1 (Batch, Cache, Backup, Restore); v1 is preferred.
            let infinispan = json!({"name": INFINISPAN_GROUP, "versions": [
                    {"groupVersion": "infinispan.org/v1", "version": "v1"},
                    {"groupVersion": "infinispan.org/v2alpha1", "version": "v2alpha1"}],
                "preferredVersion": {"groupVersion": "infinispan.org/v1", "version": "v1"}});
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                group("apps", "v1"), group("batch", "v1"), group("autoscaling", "v1"),
                group(KEYCLOAK_GROUP, "v2alpha1"), infinispan, group(PGO_GROUP, "v1beta1"),
                group(CNPG_GROUP, "v1"),
            ]})
        }
        "/apis/apps/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
                resource("statefulsets", "statefulset", "StatefulSet", true, &["get", "list", "watch"], &["sts"]),
            ]})
        }
        "/apis/batch/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "batch/v1", "resources": [
                resource("jobs", "job", "Job", true, &["create", "delete", "get", "list", "watch"], &[]),
            ]})
        }
        "/apis/autoscaling/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "autoscaling/v1", "resources": []})
        }
        "/apis/k8s.keycloak.org/v2alpha1" => {
            json!({"kind": "APIResourceList", "groupVersion": "k8s.keycloak.org/v2alpha1", "resources": [
                resource("keycloaks", "keycloak", "Keycloak", true, &rw, &["kc"]),
                json!({"name": "keycloaks/scale", "singularName": "", "namespaced": true, "kind": "Scale",
                       "group": "autoscaling", "version": "v1", "verbs": ["get", "patch", "update"]}),
                json!({"name": "keycloaks/status", "singularName": "", "namespaced": true, "kind": "Keycloak",
                       "verbs": ["get", "patch", "update"]}),
            ]})
        }
        // The PostgresCluster CRD at v5.8.9: no short names, a status subresource.
        "/apis/postgres-operator.crunchydata.com/v1beta1" => {
            json!({"kind": "APIResourceList", "groupVersion": "postgres-operator.crunchydata.com/v1beta1", "resources": [
                resource("postgresclusters", "postgrescluster", "PostgresCluster", true,
                         &["get", "list", "watch", "patch", "update", "create", "delete"], &[]),
                json!({"name": "postgresclusters/status", "singularName": "", "namespaced": true,
                       "kind": "PostgresCluster", "verbs": ["get", "patch", "update"]}),
            ]})
        }
        // The Cluster CRD at v1.30.0: no short names; status and scale subresources
        // (`config/crd/bases/postgresql.cnpg.io_clusters.yaml`).
        "/apis/postgresql.cnpg.io/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "postgresql.cnpg.io/v1", "resources": [
                resource("clusters", "cluster", "Cluster", true,
                         &["get", "list", "watch", "patch", "update", "create", "delete"], &[]),
                json!({"name": "clusters/status", "singularName": "", "namespaced": true,
                       "kind": "Cluster", "verbs": ["get", "patch", "update"]}),
                json!({"name": "clusters/scale", "singularName": "", "namespaced": true, "kind": "Scale",
                       "group": "autoscaling", "version": "v1", "verbs": ["get", "patch", "update"]}),
            ]})
        }
        "/apis/infinispan.org/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "infinispan.org/v1", "resources": [
                resource("infinispans", "infinispan", "Infinispan", true, &["get", "list", "watch"], &["ispn"]),
            ]})
        }
        "/apis/infinispan.org/v2alpha1" => {
            json!({"kind": "APIResourceList", "groupVersion": "infinispan.org/v2alpha1", "resources": [
                resource("batches", "batch", "Batch", true, &["get", "list", "watch", "create", "delete"], &[]),
            ]})
        }
        _ => return None,
    })
}

/// One resource in the OpenAPI documents: its plural, kind, and whether it takes
/// patches and creates.
pub(super) struct ApiResource {
    plural: &'static str,
    kind: &'static str,
    patch: bool,
    create: bool,
}

/// The group-versions with an OpenAPI v3 document: the two custom resources a person
/// edits during a rehearsal (`kubectl edit`, `kubectl apply` with validation), and
/// config maps. Built-in kinds other than those are read-only in the lab.
pub(super) fn openapi_groups() -> [(&'static str, &'static str, Vec<ApiResource>); 3] {
    [
        (
            KEYCLOAK_GROUP,
            "v2alpha1",
            vec![ApiResource {
                plural: "keycloaks",
                kind: "Keycloak",
                patch: true,
                create: false,
            }],
        ),
        (
            INFINISPAN_GROUP,
            "v2alpha1",
            vec![ApiResource {
                plural: "batches",
                kind: "Batch",
                patch: false,
                create: true,
            }],
        ),
        (
            "",
            "v1",
            vec![ApiResource {
                plural: "configmaps",
                kind: "ConfigMap",
                patch: false,
                create: true,
            }],
        ),
    ]
}

pub(super) fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3` and the per group-version documents, as far as kubectl reads them:
/// which kinds accept which patch types (custom resources: no strategic merge patch, so
/// kubectl computes a JSON merge patch) and that PATCH and POST take `fieldValidation`
/// (so kubectl leaves validation to the server rather than needing the full schemas).
pub(super) fn openapi(path: &str) -> Option<Value> {
    if path == "/openapi/v3" {
        let mut paths = serde_json::Map::new();
        for (group, version, _) in openapi_groups() {
            let gv = gv_path(group, version);
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=runbook-lab-1")}),
            );
        }
        return Some(json!({ "paths": paths }));
    }
    let wanted = path.strip_prefix("/openapi/v3/")?;
    let (group, version, resources) = openapi_groups()
        .into_iter()
        .find(|(g, v, _)| gv_path(g, v) == wanted)?;
    let gvk = |kind: &str| json!({"group": group, "version": version, "kind": kind});
    let field_validation = json!({"name": "fieldValidation", "in": "query",
        "description": "Ignore, Warn or Strict: what to do with unknown or duplicate fields",
        "schema": {"type": "string", "uniqueItems": true}});
    let ok = json!({"200": {"description": "OK"}});
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in resources {
        let base = format!("/{wanted}/namespaces/{{namespace}}/{}", r.plural);
        let mut one =
            json!({"get": {"x-kubernetes-group-version-kind": gvk(r.kind), "responses": ok}});
        if r.patch {
            one["patch"] = json!({
                "x-kubernetes-group-version-kind": gvk(r.kind),
                "x-kubernetes-action": "patch",
                "parameters": [field_validation],
                "requestBody": {"content": {
                    "application/json-patch+json": {"schema": {"type": "object"}},
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/apply-patch+yaml": {"schema": {"type": "object"}},
                }},
                "responses": ok,
            });
        }
        paths.insert(format!("{base}/{{name}}"), one);
        let mut many =
            json!({"get": {"x-kubernetes-group-version-kind": gvk(r.kind), "responses": ok}});
        if r.create {
            many["post"] = json!({
                "x-kubernetes-group-version-kind": gvk(r.kind),
                "x-kubernetes-action": "post",
                "parameters": [field_validation],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": ok,
            });
        }
        paths.insert(base, many);
        let prefix = if group.is_empty() {
            "io.k8s.api.core"
        } else {
            group
        };
        schemas.insert(
            format!("{prefix}.{version}.{}", r.kind),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "x-kubernetes-group-version-kind": [gvk(r.kind)]}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (runbook lab)", "version": "v1.30.0-runbook-lab"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
