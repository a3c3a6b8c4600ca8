//! AWS Global Accelerator and ELBv2 as the Keycloak 26 multi-cluster guide deploys them
//! (`../shared/docs/keycloak-26.md` §1.3, §1.11): one accelerator, one TCP 443
//! listener, one endpoint group whose endpoints are one Network Load Balancer per site
//! (weight 128, client IP preservation off), each NLB tagged `accelerator`, `site` and
//! `namespace`, and health-checking its site's Keycloak at `GET /lb-check` (every 10 s,
//! thresholds 3/3, scaled by the lab's time scale).
//!
//! Global Accelerator speaks JSON 1.1 (`POST /`, `X-Amz-Target:
//! GlobalAccelerator_V20180706.<Operation>`, errors as `{"__type", "Message"}`); ELBv2
//! the query protocol (`Action=…&Version=2015-12-01`, XML answers in the
//! `http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/` namespace). Shapes,
//! errors and pagination follow botocore's models `globalaccelerator/2018-08-08` and
//! `elbv2/2015-12-01` (read in botocore 1.43.11, the version the test command installs
//! with moto; moto itself has no Global Accelerator backend: there is no
//! `moto/globalaccelerator`, the name occurs only in `moto/shield/models.py` and IAM's
//! managed policies).
//!
//! What the models do not say and the lab chooses (marked where used): the health
//! states' timing (an endpoint is `INITIAL` until its NLB has answered two health
//! rounds since it was added), `HealthReason` wording, and what `AddEndpoints` of an
//! endpoint already present does (the lab updates it in place).

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};

use crate::awsxml::{error as xml_error, metadata, xml, Xml};
use crate::faults::Fault;
pub use crate::ga::{describe, Accelerator, Endpoint, Nlb, ACCOUNT, GROUP_REGION, NAME, WEIGHT};
use crate::world::World;

pub const TARGET_PREFIX: &str = "GlobalAccelerator_V20180706.";
pub const ELBV2_VERSION: &str = "2015-12-01";
const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// A JSON 1.1 error: HTTP 400 (500 for the service's own), `__type` and `Message`.
fn ga_error(kind: &str, message: &str) -> Response {
    let status = if kind == "InternalServiceErrorException" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        json!({"__type": kind, "Message": message}).to_string(),
    )
        .into_response()
}

fn ga_ok(body: Json) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// An error answer before it is sent: (`__type`, `Message`).
type Refusal = (&'static str, String);

/// One page of `items` from `NextToken` (an index the lab hands out) and `MaxResults`.
fn page(items: Vec<Json>, req: &Json, key: &str) -> Result<Json, Refusal> {
    let max = match req.get("MaxResults") {
        None => 100,
        Some(m) => match m.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => {
                return Err((
                    "InvalidArgumentException",
                    "MaxResults must be between 1 and 100".into(),
                ))
            }
        },
    };
    let start = match req.get("NextToken").and_then(Json::as_str) {
        None => 0,
        Some(t) => match t.strip_prefix("lab-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= items.len() => n,
            _ => {
                return Err((
                    "InvalidNextTokenException",
                    "The token is invalid or expired".into(),
                ))
            }
        },
    };
    let end = (start + max).min(items.len());
    let mut out = json!({ key: items[start..end].to_vec() });
    if end < items.len() {
        out["NextToken"] = json!(format!("lab-{end}"));
    }
    Ok(out)
}

/// The region a SigV4 request was signed for (`Credential=AK/date/REGION/service/…`).
pub fn signed_region(authorization: Option<&str>) -> Option<String> {
    let cred = authorization?.split("Credential=").nth(1)?;
    cred.split('/').nth(2).map(str::to_string)
}

/// Answer one Global Accelerator operation.
pub fn handle(w: &mut World, op: &str, body: &[u8], region: Option<&str>) -> Response {
    if let Some(r) = region.filter(|r| *r != "us-west-2") {
        // Real AWS serves Global Accelerator's API only in us-west-2: a client signing
        // for another region reaches no endpoint. The lab says so instead.
        return ga_error(
            "InvalidArgumentException",
            &format!("Global Accelerator's API is only in us-west-2; this request was signed for {r} (the lab refuses it as AWS would not answer it)"),
        );
    }
    let req: Json = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return ga_error("SerializationException", &e.to_string()),
        }
    };
    let Some(acc) = w.accelerator.as_mut() else {
        return ga_error(
            "AcceleratorNotFoundException",
            "this lab plays no Global Accelerator (start it with --pack keycloak-26)",
        );
    };
    let arg = |k: &str| {
        req.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let out = match op {
        "ListAccelerators" => page(vec![acc.json()], &req, "Accelerators"),
        "DescribeAccelerator" => {
            if arg("AcceleratorArn") != acc.arn {
                return ga_error("AcceleratorNotFoundException", "Accelerator not found");
            }
            Ok(json!({"Accelerator": acc.json()}))
        }
        "ListListeners" => {
            if arg("AcceleratorArn") != acc.arn {
                return ga_error("AcceleratorNotFoundException", "Accelerator not found");
            }
            let l = json!({"ListenerArn": acc.listener_arn, "PortRanges": [{"FromPort": 443, "ToPort": 443}], "Protocol": "TCP", "ClientAffinity": "NONE"});
            page(vec![l], &req, "Listeners")
        }
        "ListEndpointGroups" => {
            if arg("ListenerArn") != acc.listener_arn {
                return ga_error("ListenerNotFoundException", "Listener not found");
            }
            page(vec![acc.group_json()], &req, "EndpointGroups")
        }
        "DescribeEndpointGroup" => {
            if arg("EndpointGroupArn") != acc.group_arn {
                return ga_error("EndpointGroupNotFoundException", "Endpoint group not found");
            }
            Ok(json!({"EndpointGroup": acc.group_json()}))
        }
        "UpdateEndpointGroup" | "AddEndpoints" | "RemoveEndpoints" => {
            return write(w, op, &req);
        }
        other => {
            return ga_error(
                "UnknownOperationException",
                &format!("the lab's Global Accelerator does not do `{other}`"),
            )
        }
    };
    let response = match out {
        Ok(v) => ga_ok(v),
        Err((kind, message)) => return ga_error(kind, &message),
    };
    // A read of the group was answered: another writer may act now (the fault).
    if matches!(op, "ListEndpointGroups" | "DescribeEndpointGroup") {
        concurrent_writer(w);
    }
    response
}

/// The `accelerator-writer` fault: after its count of reads, remove SITE's endpoint
/// as the fencing Lambda would (`UpdateEndpointGroup` with the rest), once.
fn concurrent_writer(w: &mut World) {
    let mut fire: Option<String> = None;
    for f in &mut w.faults {
        if let Fault::AcceleratorWriter { site, after } = f {
            *after = after.saturating_sub(1);
            if *after == 0 {
                fire = Some(site.clone());
            }
        }
    }
    let Some(site) = fire else {
        return;
    };
    w.faults
        .retain(|f| !matches!(f, Fault::AcceleratorWriter { after: 0, .. }));
    if let Some(acc) = w.accelerator.as_mut() {
        if let Some(arn) = acc.nlb_of_site(&site).map(|n| n.arn.clone()) {
            acc.endpoints.retain(|e| e.id != arn);
            acc.wrote("UpdateEndpointGroup (another writer)");
        }
    }
}

fn configurations(req: &Json, key: &str) -> Result<Vec<(String, u8, bool)>, Refusal> {
    let list = req
        .get(key)
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if list.len() > 10 {
        return Err((
            "LimitExceededException",
            "an endpoint group holds at most 10 endpoints".into(),
        ));
    }
    list.iter()
        .map(|c| {
            let id = c
                .get("EndpointId")
                .and_then(Json::as_str)
                .unwrap_or_default();
            if id.is_empty() {
                return Err(("InvalidArgumentException", "EndpointId is required".into()));
            }
            let weight = match c.get("Weight") {
                None => WEIGHT as u64,
                Some(v) => v.as_u64().filter(|n| *n <= 255).ok_or_else(|| {
                    (
                        "InvalidArgumentException",
                        "Weight must be between 0 and 255".to_string(),
                    )
                })?,
            };
            let ip = c
                .get("ClientIPPreservationEnabled")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            Ok((id.to_string(), weight as u8, ip))
        })
        .collect()
}

/// The configurations of `req[key]`, each naming an NLB the lab knows.
fn known_configurations(
    acc: &Accelerator,
    req: &Json,
    key: &str,
) -> Result<Vec<(String, u8, bool)>, Refusal> {
    let wanted = configurations(req, key)?;
    if let Some((id, _, _)) = wanted
        .iter()
        .find(|(id, _, _)| !acc.nlbs.iter().any(|n| n.arn == *id))
    {
        return Err((
            "InvalidArgumentException",
            format!("The endpoint {id} does not exist"),
        ));
    }
    Ok(wanted)
}

/// A new endpoint: INITIAL until its health checks say otherwise.
fn fresh((id, weight, ip): (String, u8, bool)) -> Endpoint {
    Endpoint {
        id,
        weight,
        client_ip: ip,
        state: "INITIAL",
        rounds: 0,
    }
}

/// `AddEndpoints`: delta semantics, at most 10 endpoints in the group.
fn add_endpoints(acc: &mut Accelerator, req: &Json, op: &str) -> Response {
    let wanted = match known_configurations(acc, req, "EndpointConfigurations") {
        Ok(c) => c,
        Err((kind, message)) => return ga_error(kind, &message),
    };
    if acc.endpoints.len()
        + wanted
            .iter()
            .filter(|c| !acc.endpoints.iter().any(|e| e.id == c.0))
            .count()
        > 10
    {
        return ga_error(
            "LimitExceededException",
            "an endpoint group holds at most 10 endpoints",
        );
    }
    let mut added = Vec::new();
    for c in wanted {
        let id = c.0.clone();
        match acc.endpoints.iter_mut().find(|e| e.id == id) {
            // Already there: updated in place (lab's choice; unverified).
            Some(e) => {
                e.weight = c.1;
                e.client_ip = c.2;
            }
            None => acc.endpoints.push(fresh(c)),
        }
        if let Some(e) = acc.endpoints.iter().find(|e| e.id == id) {
            added.push(describe(e));
        }
    }
    acc.wrote(op);
    ga_ok(json!({"EndpointDescriptions": added, "EndpointGroupArn": acc.group_arn}))
}

fn write(w: &mut World, op: &str, req: &Json) -> Response {
    let busy = w.faults.iter_mut().find_map(|f| match f {
        Fault::AcceleratorBusy { remaining } if *remaining > 0 && op != "UpdateEndpointGroup" => {
            *remaining -= 1;
            Some(())
        }
        _ => None,
    });
    if busy.is_some() {
        return ga_error(
            "TransactionInProgressException",
            "There's already a transaction in progress. Another transaction can't be processed.",
        );
    }
    let Some(acc) = w.accelerator.as_mut() else {
        return ga_error("EndpointGroupNotFoundException", "Endpoint group not found");
    };
    if req.get("EndpointGroupArn").and_then(Json::as_str) != Some(acc.group_arn.as_str()) {
        return ga_error("EndpointGroupNotFoundException", "Endpoint group not found");
    }
    match op {
        "UpdateEndpointGroup" => {
            if req.get("EndpointConfigurations").is_some() {
                let wanted = match known_configurations(acc, req, "EndpointConfigurations") {
                    Ok(c) => c,
                    Err((kind, message)) => return ga_error(kind, &message),
                };
                // Replace semantics: endpoints left out are removed; those kept keep
                // their health state.
                let old = std::mem::take(&mut acc.endpoints);
                acc.endpoints = wanted
                    .into_iter()
                    .map(|c| match old.iter().find(|e| e.id == c.0) {
                        Some(e) => Endpoint {
                            weight: c.1,
                            client_ip: c.2,
                            ..e.clone()
                        },
                        None => fresh(c),
                    })
                    .collect();
            }
            acc.wrote(op);
            ga_ok(json!({"EndpointGroup": acc.group_json()}))
        }
        "AddEndpoints" => add_endpoints(acc, req, op),
        _ => {
            let ids: Vec<String> = req
                .get("EndpointIdentifiers")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("EndpointId").and_then(Json::as_str))
                .map(str::to_string)
                .collect();
            if ids.is_empty() {
                return ga_error(
                    "InvalidArgumentException",
                    "EndpointIdentifiers is required",
                );
            }
            acc.endpoints.retain(|e| !ids.contains(&e.id));
            acc.wrote(op);
            ga_ok(json!({}))
        }
    }
}

// ---- ELBv2 ----

/// The `site` tag value an NLB carries now (the `nlb-site-tag` fault changes it).
fn site_tag(w: &World, n: &Nlb) -> Option<String> {
    for f in &w.faults {
        if let Fault::NlbSiteTag { site, value } = f {
            if *site == n.site {
                return value.clone();
            }
        }
    }
    Some(n.site.clone())
}

/// `Names.member.1`, `Names.member.2`, … of a query request.
fn members(form: &HashMap<String, String>, key: &str) -> Vec<String> {
    (1..)
        .map_while(|i| form.get(&format!("{key}.member.{i}")).cloned())
        .collect()
}

/// `DescribeLoadBalancers` by ARN or name (all without either), paged by `Marker`.
fn describe_load_balancers(form: &HashMap<String, String>, nlbs: Vec<Nlb>) -> Response {
    let arns = members(form, "LoadBalancerArns");
    let names = members(form, "Names");
    let mut found = Vec::new();
    for wanted in arns
        .iter()
        .map(|a| (a, true))
        .chain(names.iter().map(|n| (n, false)))
    {
        match nlbs.iter().find(|n| {
            if wanted.1 {
                &n.arn == wanted.0
            } else {
                &n.name == wanted.0
            }
        }) {
            Some(n) => found.push(n.clone()),
            None => {
                return xml_error(
                    StatusCode::BAD_REQUEST,
                    ELB_NS,
                    "LoadBalancerNotFound",
                    &format!("One or more load balancers not found: {}", wanted.0),
                )
            }
        }
    }
    if arns.is_empty() && names.is_empty() {
        found = nlbs;
    }
    let size: usize = form
        .get("PageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(400)
        .clamp(1, 400);
    let start: usize = form
        .get("Marker")
        .and_then(|m| m.strip_prefix("lab-")?.parse().ok())
        .unwrap_or(0)
        .min(found.len());
    let end = (start + size).min(found.len());
    let mut x = Xml::new();
    x.open_ns("DescribeLoadBalancersResponse", ELB_NS)
        .open("DescribeLoadBalancersResult")
        .open("LoadBalancers");
    for n in &found[start..end] {
        x.open("member")
            .el("LoadBalancerArn", &n.arn)
            .el("DNSName", &n.dns_name)
            .el("CanonicalHostedZoneId", "Z2IFOLAFXWLO4F")
            .el("CreatedTime", "2026-01-05T09:00:00.000Z")
            .el("LoadBalancerName", &n.name)
            .el("Scheme", "internet-facing")
            .el("VpcId", "vpc-0123456789abcdef0")
            .open("State")
            .el("Code", "active")
            .close("State")
            .el("Type", "network")
            .el("IpAddressType", "ipv4")
            .close("member");
    }
    x.close("LoadBalancers");
    if end < found.len() {
        x.el("NextMarker", &format!("lab-{end}"));
    }
    x.close("DescribeLoadBalancersResult");
    metadata(&mut x);
    x.close("DescribeLoadBalancersResponse");
    xml(StatusCode::OK, x.finish())
}

/// `DescribeTags` of up to 20 load balancers: each NLB's `site` tag among others.
fn describe_tags(w: &World, form: &HashMap<String, String>, nlbs: &[Nlb]) -> Response {
    let arns = members(form, "ResourceArns");
    if arns.is_empty() {
        return xml_error(
            StatusCode::BAD_REQUEST,
            ELB_NS,
            "ValidationError",
            "ResourceArns is required",
        );
    }
    let mut x = Xml::new();
    x.open_ns("DescribeTagsResponse", ELB_NS)
        .open("DescribeTagsResult")
        .open("TagDescriptions");
    for arn in &arns {
        let Some(n) = nlbs.iter().find(|n| &n.arn == arn) else {
            return xml_error(
                StatusCode::BAD_REQUEST,
                ELB_NS,
                "LoadBalancerNotFound",
                &format!("Load balancer '{arn}' not found"),
            );
        };
        x.open("member").el("ResourceArn", arn).open("Tags");
        let mut tags = vec![
            ("accelerator".to_string(), NAME.to_string()),
            ("namespace".to_string(), crate::kube::NAMESPACE.to_string()),
        ];
        if let Some(site) = site_tag(w, n) {
            tags.push(("site".to_string(), site));
        }
        for (k, v) in tags {
            x.open("member")
                .el("Key", &k)
                .el("Value", &v)
                .close("member");
        }
        x.close("Tags").close("member");
    }
    x.close("TagDescriptions").close("DescribeTagsResult");
    metadata(&mut x);
    x.close("DescribeTagsResponse");
    xml(StatusCode::OK, x.finish())
}

pub fn elbv2(w: &World, form: &HashMap<String, String>) -> Response {
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    let nlbs: Vec<Nlb> = w
        .accelerator
        .as_ref()
        .map(|a| a.nlbs.clone())
        .unwrap_or_default();
    match action {
        "DescribeLoadBalancers" => describe_load_balancers(form, nlbs),
        "DescribeTags" => describe_tags(w, form, &nlbs),
        other => xml_error(
            StatusCode::BAD_REQUEST,
            ELB_NS,
            "InvalidAction",
            &format!("the lab's ELBv2 does not do `{other}`"),
        ),
    }
}

/// Each NLB probes its site's `/lb-check` every (scaled) 10 s; then the endpoints'
/// states follow (the guide's Service annotations: HTTPS `/lb-check`, 10 s, 3/3).
pub fn spawn_health_checks(lab: crate::Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .expect("static client settings");
        loop {
            let (targets, interval) = {
                let l = lab.lock();
                let Some(acc) = l.world.accelerator.as_ref() else {
                    return;
                };
                let t: Vec<(String, String, u16)> = acc
                    .nlbs
                    .iter()
                    .map(|n| (n.arn.clone(), n.site.clone(), n.port))
                    .collect();
                (
                    t,
                    l.world
                        .scaled(std::time::Duration::from_secs(10))
                        .max(std::time::Duration::from_millis(20)),
                )
            };
            let mut results = HashMap::new();
            for (arn, site, port) in targets {
                let failing = lab
                    .lock()
                    .world
                    .faults
                    .iter()
                    .any(|f| matches!(f, Fault::NlbUnhealthy { site: s } if *s == site));
                let ok = !failing
                    && client
                        .get(format!("http://127.0.0.1:{port}/lb-check"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                results.insert(arn, ok);
            }
            if let Some(acc) = lab.lock().world.accelerator.as_mut() {
                acc.health_round(&results);
            }
            tokio::time::sleep(interval).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_region_is_read_from_the_credential_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=lab/20261202/us-west-2/globalaccelerator/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(signed_region(Some(h)).as_deref(), Some("us-west-2"));
        assert_eq!(signed_region(None), None);
    }
}
