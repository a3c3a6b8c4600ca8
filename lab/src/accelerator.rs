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

use crate::aws::{error as xml_error, metadata, xml, Xml};
use crate::faults::Fault;
use crate::world::World;

pub const TARGET_PREFIX: &str = "GlobalAccelerator_V20180706.";
pub const ELBV2_VERSION: &str = "2015-12-01";
const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
pub const ACCOUNT: &str = "000000000000";
/// The accelerator's name (the NLBs' `accelerator` tag carries it).
pub const NAME: &str = "keycloak";
/// The endpoint group's region (the clusters'), as in the guide's printed output.
pub const GROUP_REGION: &str = "eu-west-1";
/// The weight the guide gives each NLB (half of the 255 maximum).
pub const WEIGHT: u8 = 128;
/// Health rounds an added endpoint stays `INITIAL` (lab's choice; unverified).
const INITIAL_ROUNDS: u32 = 2;
/// The NLB health check's healthy/unhealthy thresholds (the guide's Service annotations).
const THRESHOLD: u32 = 3;

/// One site's Network Load Balancer.
#[derive(Debug, Clone)]
pub struct Nlb {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub site: String,
    /// Port of the site's Keycloak (`/lb-check`).
    pub port: u16,
    /// The NLB's view of its targets: healthy, and the current streak.
    pub healthy: bool,
    streak: u32,
}

/// One endpoint of the group.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub weight: u8,
    pub client_ip: bool,
    pub state: &'static str,
    /// Health rounds since it was added.
    rounds: u32,
}

#[derive(Debug, Clone)]
pub struct Accelerator {
    pub arn: String,
    pub dns_name: String,
    pub dual_stack_dns_name: String,
    pub listener_arn: String,
    pub group_arn: String,
    pub created: f64,
    pub modified: f64,
    pub endpoints: Vec<Endpoint>,
    pub nlbs: Vec<Nlb>,
    /// Every write to the endpoint group, in order: (operation, endpoints after).
    pub writes: Vec<(String, Vec<String>)>,
}

fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&format!("{:016x}", fastrand::u64(..)));
    }
    s.truncate(n);
    s
}

fn epoch() -> f64 {
    crate::world::now_ms() as f64 / 1000.0
}

impl Accelerator {
    /// Deployed as the guide leaves it: both NLBs in the group, weight 128, healthy.
    pub fn new(sites: &[(String, u16)]) -> Accelerator {
        let id = format!(
            "{}-{}-{}-{}-{}",
            hex(8),
            hex(4),
            hex(4),
            hex(4),
            hex(12)
        );
        let arn = format!("arn:aws:globalaccelerator::{ACCOUNT}:accelerator/{id}");
        let listener_arn = format!("{arn}/listener/{}", hex(8));
        let group_arn = format!("{listener_arn}/endpoint-group/{}", hex(12));
        let nlbs: Vec<Nlb> = sites
            .iter()
            .map(|(site, port)| {
                let name = format!("k8s-keycloak-{site}");
                let name: String = name.chars().take(32).collect();
                Nlb {
                    arn: format!(
                        "arn:aws:elasticloadbalancing:{GROUP_REGION}:{ACCOUNT}:loadbalancer/net/{name}/{}",
                        hex(16)
                    ),
                    dns_name: format!("{name}-{}.elb.{GROUP_REGION}.amazonaws.com", hex(16)),
                    name,
                    site: site.clone(),
                    port: *port,
                    healthy: true,
                    streak: 0,
                }
            })
            .collect();
        let endpoints = nlbs
            .iter()
            .map(|n| Endpoint {
                id: n.arn.clone(),
                weight: WEIGHT,
                client_ip: false,
                state: "HEALTHY",
                rounds: INITIAL_ROUNDS,
            })
            .collect();
        let now = epoch();
        let short = hex(16);
        Accelerator {
            dns_name: format!("a{short}.awsglobalaccelerator.com"),
            dual_stack_dns_name: format!("a{short}.dualstack.awsglobalaccelerator.com"),
            arn,
            listener_arn,
            group_arn,
            created: now,
            modified: now,
            endpoints,
            nlbs,
            writes: Vec::new(),
        }
    }

    pub fn nlb_of_site(&self, site: &str) -> Option<&Nlb> {
        self.nlbs.iter().find(|n| n.site == site)
    }

    /// The sites the accelerator routes to now: endpoints of weight > 0 that are
    /// healthy; with none, it fails open to every endpoint (AWS's "unhealthy
    /// endpoints" page).
    pub fn routed_sites(&self) -> Vec<String> {
        let site_of = |id: &str| self.nlbs.iter().find(|n| n.arn == id).map(|n| n.site.clone());
        let healthy: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.weight > 0 && e.state == "HEALTHY")
            .filter_map(|e| site_of(&e.id))
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        self.endpoints.iter().filter_map(|e| site_of(&e.id)).collect()
    }

    /// One health round: each NLB's result of probing its site, then each endpoint's state.
    pub fn health_round(&mut self, results: &HashMap<String, bool>) {
        for n in &mut self.nlbs {
            let ok = results.get(&n.arn).copied().unwrap_or(false);
            if ok == n.healthy {
                n.streak = 0;
            } else {
                n.streak += 1;
                if n.streak >= THRESHOLD {
                    n.healthy = ok;
                    n.streak = 0;
                }
            }
        }
        for e in &mut self.endpoints {
            e.rounds = e.rounds.saturating_add(1);
            let healthy = self.nlbs.iter().find(|n| n.arn == e.id).is_some_and(|n| n.healthy);
            e.state = if e.rounds < INITIAL_ROUNDS {
                "INITIAL"
            } else if healthy {
                "HEALTHY"
            } else {
                "UNHEALTHY"
            };
        }
    }

    fn group_json(&self) -> Json {
        json!({
            "EndpointGroupArn": self.group_arn,
            "EndpointGroupRegion": GROUP_REGION,
            "EndpointDescriptions": self.endpoints.iter().map(describe).collect::<Vec<_>>(),
            "TrafficDialPercentage": 100.0,
            "HealthCheckPort": 443,
            "HealthCheckProtocol": "TCP",
            "HealthCheckIntervalSeconds": 30,
            "ThresholdCount": 3,
            "PortOverrides": [],
        })
    }

    fn json(&self) -> Json {
        json!({
            "AcceleratorArn": self.arn,
            "Name": NAME,
            "IpAddressType": "DUAL_STACK",
            "Enabled": true,
            "IpSets": [
                {"IpFamily": "IPv4", "IpAddresses": ["192.0.2.250", "198.51.100.52"], "IpAddressFamily": "IPv4"},
                {"IpFamily": "IPv6", "IpAddresses": ["2001:db8::1", "2001:db8::2"], "IpAddressFamily": "IPv6"}
            ],
            "DnsName": self.dns_name,
            "Status": "DEPLOYED",
            "CreatedTime": self.created,
            "LastModifiedTime": self.modified,
            "DualStackDnsName": self.dual_stack_dns_name,
            "Events": [],
        })
    }

    fn wrote(&mut self, op: &str) {
        self.modified = epoch();
        let ids = self.endpoints.iter().map(|e| e.id.clone()).collect();
        self.writes.push((op.to_string(), ids));
    }
}

fn describe(e: &Endpoint) -> Json {
    let mut d = json!({
        "EndpointId": e.id,
        "Weight": e.weight,
        "HealthState": e.state,
        "ClientIPPreservationEnabled": e.client_ip,
    });
    if e.state == "UNHEALTHY" {
        // Wording of the reason: lab's choice (unverified).
        d["HealthReason"] = json!("Health checks failed");
    }
    d
}

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

/// One page of `items` from `NextToken` (an index the lab hands out) and `MaxResults`.
fn page(items: Vec<Json>, req: &Json, key: &str) -> Result<Json, Response> {
    let max = match req.get("MaxResults") {
        None => 100,
        Some(m) => match m.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => {
                return Err(ga_error(
                    "InvalidArgumentException",
                    "MaxResults must be between 1 and 100",
                ))
            }
        },
    };
    let start = match req.get("NextToken").and_then(Json::as_str) {
        None => 0,
        Some(t) => match t.strip_prefix("lab-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= items.len() => n,
            _ => {
                return Err(ga_error(
                    "InvalidNextTokenException",
                    "The token is invalid or expired",
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
    let arg = |k: &str| req.get(k).and_then(Json::as_str).unwrap_or_default().to_string();
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
        Err(r) => return r,
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

fn configurations(req: &Json, key: &str) -> Result<Vec<(String, u8, bool)>, Response> {
    let list = req.get(key).and_then(Json::as_array).cloned().unwrap_or_default();
    if list.len() > 10 {
        return Err(ga_error(
            "LimitExceededException",
            "an endpoint group holds at most 10 endpoints",
        ));
    }
    list.iter()
        .map(|c| {
            let id = c.get("EndpointId").and_then(Json::as_str).unwrap_or_default();
            if id.is_empty() {
                return Err(ga_error("InvalidArgumentException", "EndpointId is required"));
            }
            let weight = match c.get("Weight") {
                None => WEIGHT as u64,
                Some(v) => v.as_u64().filter(|n| *n <= 255).ok_or_else(|| {
                    ga_error("InvalidArgumentException", "Weight must be between 0 and 255")
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
    let known = |id: &str| acc.nlbs.iter().any(|n| n.arn == id);
    let fresh = |(id, weight, ip): (String, u8, bool)| Endpoint {
        id,
        weight,
        client_ip: ip,
        state: "INITIAL",
        rounds: 0,
    };
    match op {
        "UpdateEndpointGroup" => {
            if req.get("EndpointConfigurations").is_some() {
                let wanted = match configurations(req, "EndpointConfigurations") {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                if let Some((id, _, _)) = wanted.iter().find(|(id, _, _)| !known(id)) {
                    return ga_error(
                        "InvalidArgumentException",
                        &format!("The endpoint {id} does not exist"),
                    );
                }
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
        "AddEndpoints" => {
            let wanted = match configurations(req, "EndpointConfigurations") {
                Ok(c) => c,
                Err(r) => return r,
            };
            if let Some((id, _, _)) = wanted.iter().find(|(id, _, _)| !known(id)) {
                return ga_error(
                    "InvalidArgumentException",
                    &format!("The endpoint {id} does not exist"),
                );
            }
            if acc.endpoints.len() + wanted.iter().filter(|c| !acc.endpoints.iter().any(|e| e.id == c.0)).count() > 10 {
                return ga_error("LimitExceededException", "an endpoint group holds at most 10 endpoints");
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
                return ga_error("InvalidArgumentException", "EndpointIdentifiers is required");
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

pub fn elbv2(w: &World, form: &HashMap<String, String>) -> Response {
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    let nlbs: Vec<Nlb> = w
        .accelerator
        .as_ref()
        .map(|a| a.nlbs.clone())
        .unwrap_or_default();
    match action {
        "DescribeLoadBalancers" => {
            let arns = members(form, "LoadBalancerArns");
            let names = members(form, "Names");
            let mut found = Vec::new();
            for wanted in arns.iter().map(|a| (a, true)).chain(names.iter().map(|n| (n, false))) {
                match nlbs.iter().find(|n| if wanted.1 { &n.arn == wanted.0 } else { &n.name == wanted.0 }) {
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
            let size: usize = form.get("PageSize").and_then(|p| p.parse().ok()).unwrap_or(400).clamp(1, 400);
            let start: usize = form.get("Marker").and_then(|m| m.strip_prefix("lab-")?.parse().ok()).unwrap_or(0).min(found.len());
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
        "DescribeTags" => {
            let arns = members(form, "ResourceArns");
            if arns.is_empty() {
                return xml_error(StatusCode::BAD_REQUEST, ELB_NS, "ValidationError", "ResourceArns is required");
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
                    x.open("member").el("Key", &k).el("Value", &v).close("member");
                }
                x.close("Tags").close("member");
            }
            x.close("TagDescriptions").close("DescribeTagsResult");
            metadata(&mut x);
            x.close("DescribeTagsResponse");
            xml(StatusCode::OK, x.finish())
        }
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
                let failing = lab.lock().world.faults.iter().any(|f| matches!(f, Fault::NlbUnhealthy { site: s } if *s == site));
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
    fn an_added_endpoint_is_initial_then_follows_its_nlb() {
        let mut a = Accelerator::new(&[("site-a".into(), 1), ("site-b".into(), 2)]);
        let b = a.nlbs[1].arn.clone();
        a.endpoints.retain(|e| e.id != b);
        a.endpoints.push(Endpoint { id: b.clone(), weight: 128, client_ip: false, state: "INITIAL", rounds: 0 });
        let all_ok: HashMap<String, bool> = a.nlbs.iter().map(|n| (n.arn.clone(), true)).collect();
        a.health_round(&all_ok);
        assert_eq!(a.endpoints[1].state, "INITIAL");
        a.health_round(&all_ok);
        assert_eq!(a.endpoints[1].state, "HEALTHY");
        // Three failed rounds in a row turn it unhealthy, not fewer.
        let b_fails: HashMap<String, bool> = a.nlbs.iter().map(|n| (n.arn.clone(), n.arn != b)).collect();
        a.health_round(&b_fails);
        a.health_round(&b_fails);
        assert_eq!(a.endpoints[1].state, "HEALTHY");
        a.health_round(&b_fails);
        assert_eq!(a.endpoints[1].state, "UNHEALTHY");
        assert_eq!(a.routed_sites(), vec!["site-a".to_string()]);
    }

    #[test]
    fn with_no_healthy_endpoint_it_fails_open() {
        let mut a = Accelerator::new(&[("site-a".into(), 1), ("site-b".into(), 2)]);
        for e in &mut a.endpoints {
            e.state = "UNHEALTHY";
        }
        assert_eq!(a.routed_sites(), vec!["site-a".to_string(), "site-b".to_string()]);
    }

    #[test]
    fn the_signed_region_is_read_from_the_credential_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=lab/20261202/us-west-2/globalaccelerator/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(signed_region(Some(h)).as_deref(), Some("us-west-2"));
        assert_eq!(signed_region(None), None);
    }
}
