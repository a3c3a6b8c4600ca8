//! HAProxy as a traffic vendor, driven through its runtime API
//! (`../shared/docs/haproxy.md`): a global load balancer whose backend has one server
//! per site (or several: one per node), each health-checked on the site's
//! `/lb-check`, as Keycloak's multi-cluster v2 guide puts a global load balancer in
//! front of the sites.
//!
//! - Which sites serve: `show servers state <backend>` joined with `show stat`, by
//!   their headers' names. A site serves when one of its servers is running, neither
//!   drained nor in maintenance, with a weight above 0.
//! - Remove a site: `set server B/S state drain` for each of its servers, wait until
//!   their current sessions reach 0 or the bound the plan shows (then
//!   `shutdown sessions server B/S`), then `state maint`. Never the last serving site.
//! - Add a site: `set server B/S state ready`, until its check says `UP` with `L7OK`.
//! - Identity: each server the site names must point at the site's Keycloak (its
//!   `address`, else its `lb_check_url`'s host and port); a server in the backend that
//!   is no site's is refused, never guessed.
//!
//! Runtime state is memory only: a reload of HAProxy brings every server back as
//! configured. Every action reads the state again before it writes and after.

pub mod actions;
pub mod runtime;
pub mod vendor;

use std::collections::BTreeMap;

use engine::{StepCtx, StepError};
use serde_json::{json, Value as Json};

use runtime::{Server, Socket};
pub use vendor::{section, HaproxyTraffic};

/// The deployment's HAProxy as read now, with each site's servers.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub socket: String,
    pub backend: String,
    pub servers: Vec<Server>,
    /// Each site's server names, and the address they must point at.
    pub sites: BTreeMap<String, (Vec<String>, Option<String>)>,
}

/// `host:port` of a URL (the scheme's port when none is written).
fn host_port(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

/// The deployment's socket and backend, and each site's servers and address.
fn deployment(ctx: &StepCtx) -> Result<(Socket, String, View), StepError> {
    let mut view = View::default();
    let mut first: Option<HaproxyTraffic> = None;
    for (name, site) in crate::config::sites(&ctx.env) {
        let Some(h) = section(site) else { continue };
        let servers = if h.servers.is_empty() {
            vec![name.clone()]
        } else {
            h.servers.clone()
        };
        let address = h
            .address
            .clone()
            .or_else(|| site.lb_check_url.as_deref().and_then(host_port));
        view.sites.insert(name.clone(), (servers, address));
        first.get_or_insert_with(|| h.clone());
    }
    let h = first.ok_or_else(|| {
        StepError::configuration(
            "no site names HAProxy (sites.NAME.traffic.haproxy: { admin_socket: …, backend: … })",
        )
    })?;
    let socket =
        Socket::parse(&h.admin_socket).map_err(|e| StepError::configuration(e.to_string()))?;
    view.socket = socket.to_string();
    view.backend = h.backend.clone();
    Ok((socket, h.backend, view))
}

/// Read the backend now.
///
/// # Errors
/// No site names HAProxy, or its admin socket does not answer.
pub async fn read(ctx: &StepCtx) -> Result<View, StepError> {
    let (socket, backend, mut view) = deployment(ctx)?;
    view.servers = runtime::read(&socket, &backend).await?;
    Ok(view)
}

/// The socket the deployment's HAProxy is driven through.
///
/// # Errors
/// No site names HAProxy, or its socket is malformed.
pub fn socket(ctx: &StepCtx) -> Result<Socket, StepError> {
    deployment(ctx).map(|(s, ..)| s)
}

impl View {
    /// The site a server belongs to, by the names the environment file gives.
    pub fn site_of(&self, server: &str) -> Option<&str> {
        self.sites
            .iter()
            .find(|(_, (names, _))| names.iter().any(|n| n == server))
            .map(|(s, _)| s.as_str())
    }

    /// A site's servers as read (the ones found).
    pub fn servers_of(&self, site: &str) -> Vec<&Server> {
        let Some((names, _)) = self.sites.get(site) else {
            return Vec::new();
        };
        self.servers
            .iter()
            .filter(|s| names.contains(&s.name))
            .collect()
    }

    /// Servers in the backend that are no site's: which site they are cannot be told.
    pub fn ambiguous(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|s| self.site_of(&s.name).is_none())
            .map(|s| {
                format!(
                    "server `{}/{}` ({}) is no site's in the environment file: which site it is cannot be told",
                    self.backend,
                    s.name,
                    s.address()
                )
            })
            .collect()
    }

    /// What does not match the environment file: a site's server missing or pointing
    /// elsewhere.
    pub fn mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (site, (names, address)) in &self.sites {
            for n in names {
                match self.servers.iter().find(|s| &s.name == n) {
                    None => out.push(format!(
                        "{site}'s server `{}/{n}` is not in HAProxy's backend",
                        self.backend
                    )),
                    Some(s) => match address {
                        Some(a) if *a != s.address() => out.push(format!(
                            "server `{}/{n}` points at {}, not {site}'s Keycloak {a}",
                            self.backend,
                            s.address()
                        )),
                        None => out.push(format!(
                            "nothing says where {site}'s Keycloak is (traffic.haproxy.address or lb_check_url), so server `{n}` cannot be told to be {site}'s"
                        )),
                        Some(_) => {}
                    },
                }
            }
        }
        for s in self
            .servers
            .iter()
            .filter(|s| self.site_of(&s.name).is_none())
        {
            out.push(format!(
                "server `{}/{}` ({}) is no site's in the environment file: which site it is cannot be told",
                self.backend,
                s.name,
                s.address()
            ));
        }
        out
    }

    /// The observation every HAProxy action reports, in the traffic role's words:
    /// which sites serve, which are in rotation (`in_group`: a server not drained or
    /// in maintenance) and which are out, each site's servers and state, and what
    /// cannot be told (`ambiguous`) or does not match the file (`mismatch`).
    pub fn judge(&self) -> Json {
        let mut sites = serde_json::Map::new();
        let mut serving = Vec::new();
        let (mut in_group, mut out_of_group) = (Vec::new(), Vec::new());
        for site in self.sites.keys() {
            let mine = self.servers_of(site);
            let serves = mine.iter().any(|s| s.serving());
            if serves {
                serving.push(site.clone());
            }
            if mine.iter().any(|s| !s.in_maint() && !s.in_drain()) {
                in_group.push(site.clone());
            } else {
                out_of_group.push(site.clone());
            }
            let each: Vec<Json> = mine
                .iter()
                .map(|s| {
                    json!({"server": s.name, "address": s.address(), "admin": s.admin_word(),
                           "status": s.status, "check": s.check_status, "scur": s.scur,
                           "stot": s.stot, "serving": s.serving(), "healthy": s.healthy()})
                })
                .collect();
            // As the traffic role reads an endpoint's health (Global Accelerator's words):
            // HEALTHY once every server's check passed, INITIAL while one is coming up.
            let health = if !mine.is_empty() && mine.iter().all(|s| s.healthy()) {
                "HEALTHY"
            } else if mine
                .iter()
                .any(|s| s.serving() && s.status.starts_with("UP"))
            {
                "INITIAL"
            } else {
                "UNHEALTHY"
            };
            sites.insert(
                site.clone(),
                json!({
                    "serving": serves,
                    "health": health,
                    "healthy": !mine.is_empty() && mine.iter().all(|s| s.healthy()),
                    "in_maint": !mine.is_empty() && mine.iter().all(|s| s.in_maint()),
                    "sessions": mine.iter().map(|s| s.scur).sum::<u64>(),
                    "servers": each,
                }),
            );
        }
        let mismatch = self.mismatches();
        let ambiguous = self.ambiguous();
        let untold: Vec<&String> = mismatch.iter().chain(&ambiguous).collect();
        let states: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} {} {}", s.name, s.admin_word(), s.status))
            .collect();
        let how = format!(
            "HAProxy {} backend `{}`: {}",
            self.socket,
            self.backend,
            if states.is_empty() {
                "no servers".to_string()
            } else {
                states.join(", ")
            }
        );
        let summary = if untold.is_empty() {
            format!(
                "{} serve{} ({how})",
                if serving.is_empty() {
                    "no site".to_string()
                } else {
                    serving.join(" and ")
                },
                if serving.len() == 1 { "s" } else { "" }
            )
        } else {
            let each: Vec<&str> = untold.iter().map(|s| s.as_str()).collect();
            format!("which sites serve cannot be told: {}", each.join("; "))
        };
        let endpoints: Vec<Json> = self
            .servers
            .iter()
            .filter(|s| !s.in_maint() && !s.in_drain())
            .map(|s| json!({"server": s.name, "site": self.site_of(&s.name), "address": s.address(), "status": s.status}))
            .collect();
        json!({
            // What an alert may name this load balancer by.
            "names": [format!("{}/{}", self.socket, self.backend), self.backend.clone()],
            "endpoints": endpoints,
            "serving": serving,
            "in_group": in_group,
            "out_of_group": out_of_group,
            "sites": sites,
            "mismatch": mismatch,
            "ambiguous": ambiguous,
            "can_act": untold.is_empty(),
            "how": how,
            "summary": summary,
        })
    }
}
