//! The database operators' resources at each site: CloudNativePG's `Cluster` and
//! PGO's `PostgresCluster`, as their operators and webhooks answer.

#[allow(unused_imports)]
use super::*;

/// A site's CloudNativePG `Cluster`: get, and merge patch through the admission
/// webhook's rules (`cnpg::validate`: rejected as CloudNativePG's webhook rejects).
pub(super) fn cnpg_route(
    lab: &mut crate::LabState,
    app: &KubeApp,
    req: &Req<'_>,
    (m, rest): (Method, &[&str]),
) -> Response {
    let kind = "clusters.postgresql.cnpg.io";
    let Some(site) = lab.cnpg.as_mut().and_then(|c| c.sites.get_mut(&app.site)) else {
        return not_found(kind, rest.first().copied().unwrap_or_default());
    };
    let name = site.name.clone();
    match (m, rest) {
        (Method::DELETE, [n]) if *n == name && !site.deleted => {
            site.deleted = true;
            json_response(StatusCode::OK, crate::cnpg::cluster_object(site, NAMESPACE))
        }
        (Method::POST, []) => {
            let Ok(v) = serde_json::from_slice::<Value>(req.body) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON".into(),
                );
            };
            if v["metadata"]["name"] != name.as_str() {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the lab's CloudNativePG serves one Cluster at this site, `{name}`"),
                );
            }
            if !site.deleted {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{kind} \"{name}\" already exists"),
                );
            }
            if let Err(why) = crate::cnpg::validate(&name, &v["spec"], false, &v["spec"]) {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("admission webhook \"vcluster.cnpg.io\" denied the request: {why}"),
                );
            }
            site.deleted = false;
            site.recreated = true;
            site.spec = v["spec"].clone();
            site.annotations = match &v["metadata"]["annotations"] {
                a @ serde_json::Value::Object(_) => a.clone(),
                _ => serde_json::json!({}),
            };
            site.generation = 1;
            json_response(
                StatusCode::CREATED,
                with_rv(crate::cnpg::cluster_object(site, NAMESPACE)),
            )
        }
        (_, [n, ..]) if *n == name && site.deleted => not_found(kind, n),
        (Method::GET, [n]) | (Method::GET, [n, "status"]) if *n == name => json_response(
            StatusCode::OK,
            with_rv(crate::cnpg::cluster_object(site, NAMESPACE)),
        ),
        (Method::PATCH, [n]) if *n == name => {
            let current = crate::cnpg::cluster_object(site, NAMESPACE);
            match patched(req, current) {
                Ok(new) => {
                    if let Err(why) =
                        crate::cnpg::validate(&name, &new["spec"], site.in_progress, &site.spec)
                    {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            format!(
                                "admission webhook \"vcluster.cnpg.io\" denied the request: {why}"
                            ),
                        );
                    }
                    let annotations = &new["metadata"]["annotations"];
                    if annotations.is_object() && *annotations != site.annotations {
                        site.annotations = annotations.clone();
                    }
                    if new["spec"] != site.spec {
                        let was_replica = site.is_replica();
                        site.spec = new["spec"].clone();
                        site.generation += 1;
                        if !was_replica {
                            // A primary holds no demotion token; a new demotion writes
                            // its own.
                            site.demotion_token = None;
                            site.token_written = None;
                        }
                    }
                    json_response(
                        StatusCode::OK,
                        with_rv(crate::cnpg::cluster_object(site, NAMESPACE)),
                    )
                }
                Err(r) => *r,
            }
        }
        _ => not_found(kind, rest.first().copied().unwrap_or(&name)),
    }
}

pub(super) fn pgo_site<'a>(
    lab: &'a crate::LabState,
    app: &KubeApp,
) -> Option<&'a crate::pgo::PgoSite> {
    lab.pgo.as_ref()?.sites.get(&app.site)
}

/// The PostgresCluster: get, merge or JSON patch, delete, and create (the way PGO's
/// documented demotion recreates a former primary as a standby).
pub(super) fn postgrescluster_route(
    lab: &mut crate::LabState,
    app: &KubeApp,
    req: &Req<'_>,
    (m, rest): (Method, &[&str]),
) -> Response {
    let name = crate::pgo::CLUSTER;
    let Some(site) = lab.pgo.as_mut().and_then(|p| p.sites.get_mut(&app.site)) else {
        return not_found("postgresclusters.postgres-operator.crunchydata.com", name);
    };
    let kind = "postgresclusters.postgres-operator.crunchydata.com";
    match (m, rest) {
        (Method::GET, [n]) | (Method::GET, [n, "status"]) if *n == name && !site.deleted => {
            json_response(
                StatusCode::OK,
                with_rv(crate::pgo::cluster_object(site, NAMESPACE)),
            )
        }
        (Method::PATCH | Method::PUT, [n]) if *n == name && !site.deleted => {
            let current = crate::pgo::cluster_object(site, NAMESPACE);
            match patched(req, current) {
                Ok(new) => {
                    if new["spec"] != site.spec {
                        site.spec = new["spec"].clone();
                        site.generation += 1;
                    }
                    site.annotations = new["metadata"]["annotations"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default();
                    json_response(
                        StatusCode::OK,
                        with_rv(crate::pgo::cluster_object(site, NAMESPACE)),
                    )
                }
                Err(r) => *r,
            }
        }
        (Method::DELETE, [n]) if *n == name && !site.deleted => {
            site.deleted = true;
            json_response(StatusCode::OK, crate::pgo::cluster_object(site, NAMESPACE))
        }
        (Method::POST, []) => {
            let Ok(v) = serde_json::from_slice::<Value>(req.body) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON".into(),
                );
            };
            if v["metadata"]["name"] != name {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the lab's PGO serves one PostgresCluster per site, `{name}`"),
                );
            }
            if !site.deleted {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{kind} \"{name}\" already exists"),
                );
            }
            site.deleted = false;
            site.recreated = true;
            site.spec = v["spec"].clone();
            site.generation = 1;
            site.observed_generation = 0;
            site.startup_instance = None;
            json_response(
                StatusCode::CREATED,
                with_rv(crate::pgo::cluster_object(site, NAMESPACE)),
            )
        }
        _ => not_found(kind, rest.first().copied().unwrap_or(name)),
    }
}
