//! HAProxy's section (`traffic: {haproxy: …}`), its identity proof and the roles it
//! plays.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, StepCtx};
use serde::{Deserialize, Serialize};

use crate::config::roles::{once, read_as};
use crate::config::{Concern, Problem, RoleSection, SiteConfig, VendorSection};
use crate::identity::{begin, classify, missing, Proof};
use crate::vendor::Vendor;

/// `traffic: {haproxy: …}`, whole: the global load balancer every site's section
/// names alike, and this site's servers in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HaproxyTraffic {
    /// HAProxy's runtime API: `host:port` of a `stats socket ipv4@… level admin`, or
    /// the path of a UNIX one (the same for every site).
    pub admin_socket: String,
    /// The backend whose servers are the sites (the same for every site).
    pub backend: String,
    /// This site's servers in the backend [default: one, named as the site].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// `host:port` every server of this site must point at: its Keycloak, or its own
    /// load balancer [default: the host and port of the site's `lb_check_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How long a removal waits for the site's current sessions to end before it
    /// cuts them (`shutdown sessions server`) [default: 60s].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
}

impl HaproxyTraffic {
    /// The drain bound.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
            .as_deref()
            .and_then(|d| humantime::parse_duration(d).ok())
            .unwrap_or(Duration::from_secs(60))
    }
}

const NAME: &str = "haproxy";

/// A site's HAProxy section.
pub fn section(site: &SiteConfig) -> Option<&HaproxyTraffic> {
    site.typed(Concern::Traffic, NAME)
}

#[derive(Debug)]
pub struct Haproxy;

pub static VENDOR: Haproxy = Haproxy;

fn check(h: &HaproxyTraffic) -> Result<(), Problem> {
    super::runtime::Socket::parse(&h.admin_socket)
        .map_err(|e| Problem::at("admin_socket", e.to_string()))?;
    if h.backend.trim().is_empty() {
        return Err(Problem::at(
            "backend",
            "backend is empty (the backend whose servers are the sites)",
        ));
    }
    if let Some(d) = &h.drain_timeout {
        humantime::parse_duration(d).map_err(|e| {
            Problem::at(
                "drain_timeout",
                format!("drain_timeout `{d}`: {e} (e.g. 60s, 5m)"),
            )
        })?;
    }
    if let Some(a) = &h.address {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(host, p)| !host.is_empty() && p.parse::<u16>().is_ok_and(|n| n > 0));
        if !ok {
            return Err(Problem::at(
                "address",
                format!("address `{a}` is not host:port (where this site's servers point)"),
            ));
        }
    }
    Ok(())
}

impl VendorSection for Haproxy {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Traffic
    }
    fn example(&self) -> &'static str {
        "haproxy: { admin_socket: …, backend: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        let typed = read_as::<HaproxyTraffic>(value)?;
        if let Some(h) = typed.downcast_ref::<HaproxyTraffic>() {
            check(h)?;
        }
        Ok(typed)
    }
    fn across(&self, sections: &[(&str, &RoleSection)]) -> Result<(), Problem> {
        let typed: Vec<(&str, &HaproxyTraffic)> = sections
            .iter()
            .filter_map(|(n, s)| Some((*n, s.typed::<HaproxyTraffic>(NAME)?)))
            .collect();
        once(
            typed
                .iter()
                .map(|(n, h)| (*n, Some(h.admin_socket.as_str()))),
            "HAProxy's admin socket",
            "admin_socket",
        )?;
        once(
            typed.iter().map(|(n, h)| (*n, Some(h.backend.as_str()))),
            "HAProxy's backend",
            "backend",
        )?;
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (site, h) in &typed {
            let names = if h.servers.is_empty() {
                vec![*site]
            } else {
                h.servers.iter().map(String::as_str).collect()
            };
            for n in names {
                if let Some((other, _)) = seen.iter().find(|(_, s)| *s == n) {
                    return Err(Problem::at(
                        "servers",
                        format!("HAProxy server `{n}` is named by sites {other} and {site}: a server is one site's"),
                    ));
                }
                seen.push((site, n));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Vendor for Haproxy {
    fn summary(&self) -> &'static str {
        "HAProxy over its runtime API: which sites serve (each site's servers' admin and operational state, checks, sessions); a site drained then put in maintenance, or made ready until its check passes"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![
            Arc::new(super::actions::ServingSites),
            Arc::new(super::actions::RemoveSite),
            Arc::new(super::actions::AddSite),
        ]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        vec![
            (
                "traffic.serving-sites",
                Arc::new(super::actions::ServingSites),
            ),
            ("traffic.remove-site", Arc::new(super::actions::RemoveSite)),
            ("traffic.add-site", Arc::new(super::actions::AddSite)),
        ]
    }
    fn touches(&self, action: &str) -> bool {
        matches!(action, "haproxy.remove-site" | "haproxy.add-site")
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("HAProxy ({site}): show servers state <backend> + show stat (each of the site's servers points at its Keycloak; no server is no site's)")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
}

/// A site behind HAProxy proves itself by its servers' addresses: each must point at
/// the site's own Keycloak, and the backend must hold no server that is no site's.
async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "haproxy");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(h) = section(&cfg).cloned() else {
        return missing(p, site, "traffic.haproxy");
    };
    p.endpoint = format!("backend `{}` at {}", h.backend, h.admin_socket);
    let view = match super::read(ctx).await {
        Ok(v) => v,
        Err(e) => {
            p.problem = Some(classify(&e));
            return p;
        }
    };
    let mine = view.servers_of(site);
    p.marks.extend(
        mine.iter()
            .map(|s| format!("HAProxy server {}/{}", s.backend, s.name)),
    );
    let each: Vec<String> = mine
        .iter()
        .map(|s| format!("{} → {}", s.name, s.address()))
        .collect();
    p.answered = if each.is_empty() {
        "no server".into()
    } else {
        each.join(", ")
    };
    let wrong: Vec<String> = view
        .mismatches()
        .into_iter()
        .filter(|m| m.contains(&format!("{site}'s")))
        .chain(view.ambiguous())
        .collect();
    if !wrong.is_empty() {
        p.problem = Some(format!("MISMATCH: {}", wrong.join("; ")));
    }
    p
}
