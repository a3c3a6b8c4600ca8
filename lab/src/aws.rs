//! AWS, as far as the runbooks use it, on one endpoint (`endpoint_url` in env.yaml):
//!
//! - RDS, query protocol (`POST /`, form-encoded `Action=...`): DescribeDBClusters,
//!   DescribeDBInstances, FailoverDBCluster (status `failing-over`, then `available`
//!   with the writer flipped), with the AWS error codes;
//! - Route53, REST-XML under `/2013-04-01`: GetHealthCheck, UpdateHealthCheck (the
//!   `HealthCheckVersion` optimistic lock, `HealthCheckVersionMismatch`),
//!   GetHealthCheckStatus (observations from really probing the site's path), and
//!   TestDNSAnswer (which site the client domain resolves to now).
//!
//! - Global Accelerator (JSON 1.1, `X-Amz-Target`) and ELBv2 (query protocol,
//!   `Version=2015-12-01`): `accelerator.rs`.
//!
//! Request signatures are not checked (any credentials work), as with other emulators.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use serde::Deserialize;

use crate::awsxml::{error, metadata, xml, Xml};
use crate::world::{timestamp_ms, World};
use crate::Shared;

const RDS_NS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
const R53_NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

pub fn router(lab: Shared) -> Router {
    Router::new().fallback(any(handle)).with_state(lab)
}

async fn handle(
    State(lab): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let latency = lab.lock().world.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut l = lab.lock();
    l.record(
        "aws",
        &method,
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(uri.path()),
    );
    let now = Instant::now();
    l.world.tick(now);
    let path = uri.path().trim_end_matches('/');
    if let Some(rest) = path.strip_prefix("/2013-04-01/") {
        return route53(&mut l.world, &method, rest, &query, &body);
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if let Some(op) = target.and_then(|t| t.strip_prefix(crate::accelerator::TARGET_PREFIX)) {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let region = crate::accelerator::signed_region(auth);
        return crate::accelerator::handle(&mut l.world, op, &body, region.as_deref());
    }
    if method == Method::POST && (path.is_empty() || path == "/") {
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        if form.get("Version").map(String::as_str) == Some(crate::accelerator::ELBV2_VERSION) {
            return crate::accelerator::elbv2(&l.world, &form);
        }
        return rds(&mut l.world, &form, now);
    }
    error(
        StatusCode::NOT_FOUND,
        RDS_NS,
        "UnknownOperation",
        &format!("the lab serves no `{method} {path}`"),
    )
}

// ---- RDS ----

fn rds(w: &mut World, form: &HashMap<String, String>, now: Instant) -> Response {
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    let cluster_arg = form.get("DBClusterIdentifier").map(String::as_str);
    match action {
        "DescribeDBClusters" => {
            if let Some(id) = cluster_arg {
                if id != w.aurora.cluster {
                    return error(
                        StatusCode::NOT_FOUND,
                        RDS_NS,
                        "DBClusterNotFoundFault",
                        &format!("DBCluster {id} not found."),
                    );
                }
            }
            let mut x = Xml::new();
            x.open_ns("DescribeDBClustersResponse", RDS_NS)
                .open("DescribeDBClustersResult")
                .open("DBClusters");
            cluster_xml(&mut x, w);
            x.close("DBClusters").close("DescribeDBClustersResult");
            metadata(&mut x);
            x.close("DescribeDBClustersResponse");
            xml(StatusCode::OK, x.finish())
        }
        "DescribeDBInstances" => describe_db_instances(w, form),
        "FailoverDBCluster" => {
            let Some(id) = cluster_arg else {
                return error(
                    StatusCode::BAD_REQUEST,
                    RDS_NS,
                    "MissingParameter",
                    "DBClusterIdentifier is required",
                );
            };
            let target = form.get("TargetDBInstanceIdentifier").map(String::as_str);
            if let Err((code, msg)) = w.aurora_failover(id, target, now) {
                let status = if code == "DBClusterNotFoundFault" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                return error(status, RDS_NS, code, &msg);
            }
            let mut x = Xml::new();
            x.open_ns("FailoverDBClusterResponse", RDS_NS)
                .open("FailoverDBClusterResult");
            cluster_xml(&mut x, w);
            x.close("FailoverDBClusterResult");
            metadata(&mut x);
            x.close("FailoverDBClusterResponse");
            xml(StatusCode::OK, x.finish())
        }
        other => error(
            StatusCode::BAD_REQUEST,
            RDS_NS,
            "InvalidAction",
            &format!("the lab's RDS does not do `{other}`"),
        ),
    }
}

/// DescribeDBInstances: every instance of the cluster, or the one asked for.
fn describe_db_instances(w: &World, form: &HashMap<String, String>) -> Response {
    let wanted = form.get("DBInstanceIdentifier");
    if let Some(id) = wanted {
        if !w.aurora.instances.iter().any(|i| &i.id == id) {
            return error(
                StatusCode::NOT_FOUND,
                RDS_NS,
                "DBInstanceNotFound",
                &format!("DBInstance {id} not found."),
            );
        }
    }
    let mut x = Xml::new();
    x.open_ns("DescribeDBInstancesResponse", RDS_NS)
        .open("DescribeDBInstancesResult")
        .open("DBInstances");
    let status = if w.aurora_status() == "failing-over" {
        "rebooting"
    } else {
        "available"
    };
    for i in w
        .aurora
        .instances
        .iter()
        .filter(|i| wanted.is_none_or(|id| *id == i.id))
    {
        x.open("DBInstance")
            .el("DBInstanceIdentifier", &i.id)
            .el("DBInstanceClass", "db.r6g.large")
            .el("Engine", "aurora-postgresql")
            .el("DBInstanceStatus", status)
            .el("AvailabilityZone", &i.az)
            .el("DBClusterIdentifier", &w.aurora.cluster)
            .el(
                "DBInstanceArn",
                &format!("arn:aws:rds:eu-west-1:000000000000:db:{}", i.id),
            )
            .close("DBInstance");
    }
    x.close("DBInstances").close("DescribeDBInstancesResult");
    metadata(&mut x);
    x.close("DescribeDBInstancesResponse");
    xml(StatusCode::OK, x.finish())
}

fn cluster_xml(x: &mut Xml, w: &World) {
    let a = &w.aurora;
    x.open("DBCluster")
        .el("DBClusterIdentifier", &a.cluster)
        .el(
            "DBClusterArn",
            &format!("arn:aws:rds:eu-west-1:000000000000:cluster:{}", a.cluster),
        )
        .el("Status", w.aurora_status())
        .el("Engine", "aurora-postgresql")
        .el("EngineVersion", "16.4")
        .el("MultiAZ", "true")
        .el(
            "Endpoint",
            &format!("{}.cluster-lab.eu-west-1.rds.amazonaws.com", a.cluster),
        )
        .el(
            "ReaderEndpoint",
            &format!("{}.cluster-ro-lab.eu-west-1.rds.amazonaws.com", a.cluster),
        )
        .open("AvailabilityZones");
    for i in &a.instances {
        x.el("AvailabilityZone", &i.az);
    }
    x.close("AvailabilityZones").open("DBClusterMembers");
    for i in &a.instances {
        x.open("DBClusterMember")
            .el("DBInstanceIdentifier", &i.id)
            .el(
                "IsClusterWriter",
                if i.id == a.writer { "true" } else { "false" },
            )
            .el("DBClusterParameterGroupStatus", "in-sync")
            .el("PromotionTier", "1")
            .close("DBClusterMember");
    }
    x.close("DBClusterMembers").close("DBCluster");
}

// ---- Route53 ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateHealthCheckRequest {
    health_check_version: Option<u64>,
    resource_path: Option<String>,
}

fn route53(
    w: &mut World,
    method: &Method,
    rest: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["healthcheck", id]) => match w.health_checks.iter().find(|h| h.id == *id) {
            Some(h) => health_check_response("GetHealthCheckResponse", h),
            None => no_such_health_check(id),
        },
        (&Method::POST, ["healthcheck", id]) => update_health_check(w, id, body),
        (&Method::GET, ["healthcheck", id, "status"]) => health_check_status(w, id),
        (&Method::GET, ["hostedzone", zone, "rrset"]) => list_record_sets(w, zone, query),
        (&Method::GET, ["testdnsanswer"]) => test_dns_answer(w, query),
        _ => error(
            StatusCode::NOT_FOUND,
            R53_NS,
            "InvalidInput",
            &format!("the lab's Route53 serves no `{method} /2013-04-01/{rest}`"),
        ),
    }
}

/// UpdateHealthCheck: the version lock, then the new path.
fn update_health_check(w: &mut World, id: &str, body: &Bytes) -> Response {
    let req: UpdateHealthCheckRequest =
        match quick_xml::de::from_str(&String::from_utf8_lossy(body)) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    R53_NS,
                    "InvalidInput",
                    &format!("the request body does not parse: {e}"),
                )
            }
        };
    let Some(h) = w.health_checks.iter_mut().find(|h| h.id == id) else {
        return no_such_health_check(id);
    };
    if let Some(v) = req.health_check_version {
        if v != h.version {
            return error(
                StatusCode::CONFLICT,
                R53_NS,
                "HealthCheckVersionMismatch",
                &format!("The value that you specified for HealthCheckVersion, {v}, doesn't match the current version, {}.", h.version),
            );
        }
    }
    if let Some(p) = req.resource_path {
        // Like Route53, the last observations stand until the checkers report
        // on the new path in their next round.
        h.path = p;
    }
    h.version += 1;
    health_check_response("UpdateHealthCheckResponse", h)
}

/// GetHealthCheckStatus: the checkers' last observation in each region.
fn health_check_status(w: &World, id: &str) -> Response {
    let Some(h) = w.health_checks.iter().find(|h| h.id == id) else {
        return no_such_health_check(id);
    };
    let mut x = Xml::new();
    x.open_ns("GetHealthCheckStatusResponse", R53_NS)
        .open("HealthCheckObservations");
    for (i, (region, (ok, seen, at))) in h.observations.iter().enumerate() {
        let status = if *ok {
            format!("Success: {seen}")
        } else {
            format!("Failure: {seen}")
        };
        x.open("HealthCheckObservation")
            .el("Region", region)
            .el("IPAddress", &format!("15.177.{}.1", i + 2))
            .open("StatusReport")
            .el("Status", &status)
            .el("CheckedTime", &timestamp_ms(*at))
            .close("StatusReport")
            .close("HealthCheckObservation");
    }
    x.close("HealthCheckObservations")
        .close("GetHealthCheckStatusResponse");
    xml(StatusCode::OK, x.finish())
}

/// ListResourceRecordSets from `name` on, in Route53's order.
fn list_record_sets(w: &World, zone: &str, query: &HashMap<String, String>) -> Response {
    if zone != ZONE_ID {
        return error(
            StatusCode::NOT_FOUND,
            R53_NS,
            "NoSuchHostedZone",
            &format!("No hosted zone found with ID: {zone}"),
        );
    }
    let start = query.get("name").map(|n| fqdn(n));
    let records = zone_records(w);
    let mut x = Xml::new();
    x.open_ns("ListResourceRecordSetsResponse", R53_NS)
        .open("ResourceRecordSets");
    for r in records.iter().filter(|r| {
        start
            .as_ref()
            .is_none_or(|s| route53_order(&r.name) >= route53_order(s))
    }) {
        x.open("ResourceRecordSet")
            .el("Name", &r.name)
            .el("Type", "A");
        if let Some((set_id, role, hc)) = &r.failover {
            x.el("SetIdentifier", set_id).el("Failover", role);
            x.open("AliasTarget")
                .el("HostedZoneId", r.alias_zone)
                .el("DNSName", &r.alias)
                .el("EvaluateTargetHealth", "true")
                .close("AliasTarget");
            x.el("HealthCheckId", hc);
        } else {
            x.open("AliasTarget")
                .el("HostedZoneId", r.alias_zone)
                .el("DNSName", &r.alias)
                .el("EvaluateTargetHealth", "true")
                .close("AliasTarget");
        }
        x.close("ResourceRecordSet");
    }
    x.close("ResourceRecordSets")
        .el("IsTruncated", "false")
        .el("MaxItems", "300")
        .close("ListResourceRecordSetsResponse");
    xml(StatusCode::OK, x.finish())
}

/// TestDNSAnswer: resolve as Route53 would.
fn test_dns_answer(w: &World, query: &HashMap<String, String>) -> Response {
    let name = query.get("recordname").cloned().unwrap_or_default();
    let kind = query
        .get("recordtype")
        .cloned()
        .unwrap_or_else(|| "A".into());
    // Resolve as Route53 would: the client domain by the failover rule, the
    // per-site names to their load balancer's address.
    let site = match fqdn(&name).as_str() {
        n if n == fqdn(CLIENT_DOMAIN) => Some(w.serving_site()),
        n if n == fqdn(&format!("primary.{CLIENT_DOMAIN}")) => Some(w.primary.clone()),
        n if n == fqdn(&format!("backup.{CLIENT_DOMAIN}")) => Some(w.secondary.clone()),
        _ => None,
    };
    let mut x = Xml::new();
    x.open_ns("TestDNSAnswerResponse", R53_NS)
        .el("Nameserver", "ns-1.awsdns-lab.org")
        .el("RecordName", &name)
        .el("RecordType", &kind)
        .open("RecordData");
    if let (Some(site), "A") = (&site, kind.as_str()) {
        x.el("RecordDataEntry", &lb_address(w, site));
    }
    x.close("RecordData")
        .el(
            "ResponseCode",
            if site.is_some() {
                "NOERROR"
            } else {
                "NXDOMAIN"
            },
        )
        .el("Protocol", "UDP")
        .close("TestDNSAnswerResponse");
    xml(StatusCode::OK, x.finish())
}

/// The lab's hosted zone and client domain (written into the environment file).
pub const ZONE_ID: &str = "Z0LABKEYCLOAK0001";
pub const CLIENT_DOMAIN: &str = "keycloak.lab";
/// The hosted zone id AWS gives Application/Network Load Balancers in eu-west-1.
const LB_ZONE: &str = "Z2IFOLAFXWLO4F";

struct ZoneRecord {
    name: String,
    /// (SetIdentifier, PRIMARY|SECONDARY, HealthCheckId) for the failover pair.
    failover: Option<(String, &'static str, String)>,
    alias_zone: &'static str,
    alias: String,
}

fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

/// Route53 lists records in the order of their names with the labels reversed.
fn route53_order(name: &str) -> Vec<String> {
    name.trim_end_matches('.')
        .split('.')
        .rev()
        .map(str::to_string)
        .collect()
}

/// A site's load balancer address (documentation only: nothing connects to it).
fn lb_address(w: &World, site: &str) -> String {
    let i = w.sites.keys().position(|s| s == site).unwrap_or(0);
    format!("127.0.{}.1", i + 1)
}

/// The zone as the guide creates it (chapter "Deploy AWS Route 53 Failover"): the
/// client domain's failover pair (alias A records of `primary.` and `backup.`, each
/// with its site's health check), and the two per-site names aliased to the load
/// balancers.
fn zone_records(w: &World) -> Vec<ZoneRecord> {
    let hc = |site: &str| {
        w.health_checks
            .iter()
            .find(|h| h.site == site)
            .map(|h| h.id.clone())
            .unwrap_or_default()
    };
    let mut out = vec![
        ZoneRecord {
            name: fqdn(CLIENT_DOMAIN),
            failover: Some((
                "client-failover-primary-lab".into(),
                "PRIMARY",
                hc(&w.primary),
            )),
            alias_zone: ZONE_ID,
            alias: fqdn(&format!("primary.{CLIENT_DOMAIN}")),
        },
        ZoneRecord {
            name: fqdn(CLIENT_DOMAIN),
            failover: Some((
                "client-failover-backup-lab".into(),
                "SECONDARY",
                hc(&w.secondary),
            )),
            alias_zone: ZONE_ID,
            alias: fqdn(&format!("backup.{CLIENT_DOMAIN}")),
        },
        ZoneRecord {
            name: fqdn(&format!("backup.{CLIENT_DOMAIN}")),
            failover: None,
            alias_zone: LB_ZONE,
            alias: format!("{}-lb.elb.eu-west-1.amazonaws.com.", w.secondary),
        },
        ZoneRecord {
            name: fqdn(&format!("primary.{CLIENT_DOMAIN}")),
            failover: None,
            alias_zone: LB_ZONE,
            alias: format!("{}-lb.elb.eu-west-1.amazonaws.com.", w.primary),
        },
    ];
    out.sort_by_key(|r| route53_order(&r.name));
    out
}

fn no_such_health_check(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        R53_NS,
        "NoSuchHealthCheck",
        &format!("A health check with id {id} does not exist."),
    )
}

fn health_check_response(root: &str, h: &crate::world::HealthCheck) -> Response {
    let mut x = Xml::new();
    x.open_ns(root, R53_NS)
        .open("HealthCheck")
        .el("Id", &h.id)
        .el("CallerReference", &format!("runbook-lab-{}", h.site))
        .open("HealthCheckConfig")
        .el("Port", &h.port.to_string())
        .el("Type", "HTTP")
        .el("ResourcePath", &h.path)
        .el("FullyQualifiedDomainName", &h.fqdn)
        .el("RequestInterval", "30")
        .el("FailureThreshold", "3")
        .el("MeasureLatency", "false")
        .el("Inverted", "false")
        .el("Disabled", "false")
        .el("EnableSNI", "false")
        .close("HealthCheckConfig")
        .el("HealthCheckVersion", &h.version.to_string())
        .close("HealthCheck")
        .close(root);
    xml(StatusCode::OK, x.finish())
}
