//! The Global Accelerator and its NLBs as data (the deployment's part that
//! `accelerator.rs` serves over the AWS protocols): one accelerator, one listener,
//! one endpoint group of one NLB per site, and how endpoint health follows each NLB's
//! health checks. See `accelerator.rs` for the sources.

use std::collections::HashMap;

use serde_json::{json, Value as Json};

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
    pub rounds: u32,
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Accelerator {
    /// Deployed as the guide leaves it: both NLBs in the group, weight 128, healthy.
    pub fn new(sites: &[(String, u16)]) -> Accelerator {
        let id = format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12));
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
        let site_of = |id: &str| {
            self.nlbs
                .iter()
                .find(|n| n.arn == id)
                .map(|n| n.site.clone())
        };
        let healthy: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.weight > 0 && e.state == "HEALTHY")
            .filter_map(|e| site_of(&e.id))
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        self.endpoints
            .iter()
            .filter_map(|e| site_of(&e.id))
            .collect()
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
            let healthy = self
                .nlbs
                .iter()
                .find(|n| n.arn == e.id)
                .is_some_and(|n| n.healthy);
            e.state = if e.rounds < INITIAL_ROUNDS {
                "INITIAL"
            } else if healthy {
                "HEALTHY"
            } else {
                "UNHEALTHY"
            };
        }
    }

    pub fn group_json(&self) -> Json {
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

    pub fn json(&self) -> Json {
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

    pub fn wrote(&mut self, op: &str) {
        self.modified = epoch();
        let ids = self.endpoints.iter().map(|e| e.id.clone()).collect();
        self.writes.push((op.to_string(), ids));
    }
}

pub fn describe(e: &Endpoint) -> Json {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_endpoint_is_initial_then_follows_its_nlb() {
        let mut a = Accelerator::new(&[("site-a".into(), 1), ("site-b".into(), 2)]);
        let b = a.nlbs[1].arn.clone();
        a.endpoints.retain(|e| e.id != b);
        a.endpoints.push(Endpoint {
            id: b.clone(),
            weight: 128,
            client_ip: false,
            state: "INITIAL",
            rounds: 0,
        });
        let all_ok: HashMap<String, bool> = a.nlbs.iter().map(|n| (n.arn.clone(), true)).collect();
        a.health_round(&all_ok);
        assert_eq!(a.endpoints[1].state, "INITIAL");
        a.health_round(&all_ok);
        assert_eq!(a.endpoints[1].state, "HEALTHY");
        // Three failed rounds in a row turn it unhealthy, not fewer.
        let b_fails: HashMap<String, bool> =
            a.nlbs.iter().map(|n| (n.arn.clone(), n.arn != b)).collect();
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
        assert_eq!(
            a.routed_sites(),
            vec!["site-a".to_string(), "site-b".to_string()]
        );
    }
}
