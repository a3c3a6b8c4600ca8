//! The simulated deployment as plain data: two sites, each with an Infinispan cluster
//! of several nodes holding the Keycloak caches with cross-site backups to the other
//! site, and a Keycloak deployment; one Aurora cluster; Route53 health checks. Every
//! protocol front end (`infinispan.rs`, `kube.rs`, `aws.rs`, `admin.rs`) reads and
//! changes this, under one lock. Time-dependent behaviour (push-state, scaling,
//! failover) is computed from timestamps when asked, so nothing here runs on its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::faults::Fault;

/// The caches Keycloak 24 keeps in external Infinispan.
pub const KEYCLOAK_24_CACHES: [&str; 8] = [
    "actionTokens",
    "authenticationSessions",
    "clientSessions",
    "loginFailures",
    "offlineClientSessions",
    "offlineSessions",
    "sessions",
    "work",
];

/// Production durations, before the time scale.
pub mod production {
    use std::time::Duration;
    /// How long a push-state of one cache stays `SENDING`.
    pub const PUSH_STATE: Duration = Duration::from_secs(60);
    /// How long Keycloak takes to start or stop one instance.
    pub const KEYCLOAK_INSTANCE: Duration = Duration::from_secs(30);
    /// How long an Aurora failover takes.
    pub const AURORA_FAILOVER: Duration = Duration::from_secs(30);
    /// Route53 checker interval.
    pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(30);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Online,
    Offline,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PushStatus {
    Idle,
    Sending,
    Ok,
    Error,
    Canceled,
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub nodes: BTreeMap<String, NodeStatus>,
    pub push: PushStatus,
    push_done_at: Option<Instant>,
}

impl Backup {
    /// `online`, `offline` or `mixed` over the nodes.
    pub fn status(&self) -> &'static str {
        let online = self
            .nodes
            .values()
            .filter(|s| **s == NodeStatus::Online)
            .count();
        if online == self.nodes.len() {
            "online"
        } else if online == 0 && self.nodes.values().all(|s| *s == NodeStatus::Offline) {
            "offline"
        } else {
            "mixed"
        }
    }

    /// Whether writes still cross to the other site: any node online replicates.
    fn replicates(&self) -> bool {
        self.nodes.values().any(|s| *s == NodeStatus::Online)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub entries: BTreeMap<String, String>,
    pub backups: BTreeMap<String, Backup>,
}

/// The Keycloak deployment of a site, as the operator and its StatefulSet show it.
#[derive(Debug, Clone)]
pub struct Keycloak {
    pub name: String,
    /// The custom resource's annotations, as `kubectl apply` and `kubectl annotate`
    /// leave them (`kubectl.kubernetes.io/last-applied-configuration`).
    pub annotations: BTreeMap<String, String>,
    pub spec: u32,
    pub generation: u64,
    observed_generation: u64,
    from: u32,
    changed_at: Instant,
    /// `spec.db` (the Keycloak operator's `DatabaseSpec`): a change rolls the pods.
    pub db: Json,
    /// A rolling restart replaces one pod at a time until then: one fewer is ready.
    rolling_until: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub nodes: Vec<String>,
    pub caches: BTreeMap<String, Cache>,
    pub keycloak: Keycloak,
    /// Clear requests received, per cache (the admin view proves "no clear happened").
    pub clear_requests: BTreeMap<String, u32>,
    /// Every clear received, in order, with the site it also reached through a backup
    /// that was online then (`None`: it stayed local), as Infinispan replicates a clear
    /// like any write.
    pub clears: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct AuroraInstance {
    pub id: String,
    pub az: String,
    pub site: String,
}

#[derive(Debug, Clone)]
pub struct Aurora {
    pub cluster: String,
    pub instances: Vec<AuroraInstance>,
    pub writer: String,
    failover: Option<(String, Instant)>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub id: String,
    pub site: String,
    pub path: String,
    pub fqdn: String,
    pub port: u16,
    pub version: u64,
    /// Per checker region: (healthy, what it saw, when, in ms since the epoch).
    pub observations: BTreeMap<String, (bool, String, u64)>,
}

/// Why an Infinispan request cannot be served.
#[derive(Debug, Clone, PartialEq)]
pub enum IspnError {
    NoSite(String),
    NoCache(String),
    NoBackup {
        cache: String,
        site: String,
    },
    Failed(String),
    /// An x-site operation's result other than "ok" (XSiteAdminOperations): REST
    /// answers a per-cache call with 500 `ISPN012047: Site operation on 'SITE' failed:
    /// 'RESULT'` (rest/logging/Log.siteOperationFailed); a container call puts RESULT
    /// itself in its map.
    Op {
        site: String,
        result: String,
    },
}

/// The availability zone of the `i`th site's Aurora instance.
pub fn aurora_zone(i: usize) -> String {
    format!("eu-west-1{}", ['a', 'b'][i % 2])
}

/// The host name of the `i`th site's load balancer, which its health check probes
/// (as the guide names them: the primary's and the backup's).
pub fn lb_host(i: usize) -> &'static str {
    if i == 0 {
        "primary.keycloak.lab"
    } else {
        "backup.keycloak.lab"
    }
}

#[derive(Debug)]
pub struct World {
    pub sites: BTreeMap<String, Site>,
    pub faults: Vec<Fault>,
    pub scale: f64,
    pub aurora: Aurora,
    pub health_checks: Vec<HealthCheck>,
    /// The primary site (the client domain's primary record).
    pub primary: String,
    pub secondary: String,
    /// 14 or 15 (see [`Shape::infinispan_version`]).
    pub infinispan_version: u8,
    session_seq: u64,
    /// Every CLI command a Batch ran, per site, in order (what tests compare with plans).
    pub cli_commands: BTreeMap<String, Vec<String>>,
    /// The Global Accelerator in front (the Keycloak 26 shape), set up by `start`.
    pub accelerator: Option<crate::ga::Accelerator>,
}

/// What a new world looks like.
#[derive(Debug, Clone)]
pub struct Shape {
    pub sites: [String; 2],
    pub nodes_per_site: usize,
    pub caches: Vec<String>,
    pub keycloak_instances: u32,
    pub scale: f64,
    /// The Infinispan major version the lab plays: 14 (Data Grid 8.4, what Keycloak 24
    /// ships) or 15. It decides the container-level routes and `GET /rest/v2/server`.
    pub infinispan_version: u8,
    /// Keycloak's database: Aurora (simulated behind the lab's RDS API) or PGO at each
    /// site over real PostgreSQL servers (`pgo.rs`).
    pub database: Database,
    /// What is in front of the sites: Route53 failover records (Keycloak 24) or a
    /// Global Accelerator whose endpoint group holds one NLB per site (Keycloak 26).
    pub traffic: Traffic,
    /// Keycloak's multi-cluster v2 (`stateless`): the environment file names no
    /// external Infinispan (the lab's servers still run, unused).
    pub stateless: bool,
    /// CloudNativePG's Clusters without `spec.postgresql.synchronous`: replication
    /// between the sites is asynchronous (the default is synchronous, as Keycloak's
    /// multi-site guide requires: every commit waits for the other site).
    pub asynchronous: bool,
}

/// Which traffic vendor the lab plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Traffic {
    #[default]
    Route53,
    Accelerator,
    /// A real HAProxy in front of both sites (`haproxy.rs`).
    Haproxy,
}

impl Traffic {
    /// What `runbook lab --traffic` takes.
    pub const NAMES: &'static [&'static str] = &["route53", "accelerator", "haproxy"];

    /// The traffic named as in [`Traffic::NAMES`].
    pub fn named(name: &str) -> Option<Traffic> {
        match name {
            "route53" => Some(Traffic::Route53),
            "accelerator" => Some(Traffic::Accelerator),
            "haproxy" => Some(Traffic::Haproxy),
            _ => None,
        }
    }
}

/// Which database the lab plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Database {
    #[default]
    Aurora,
    Pgo,
    /// CloudNativePG's distributed topology over real PostgreSQL (`cnpg.rs`).
    Cnpg,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            sites: ["site-a".into(), "site-b".into()],
            nodes_per_site: 3,
            caches: KEYCLOAK_24_CACHES.iter().map(|s| s.to_string()).collect(),
            keycloak_instances: 3,
            scale: 0.001,
            infinispan_version: 14,
            database: Database::Aurora,
            traffic: Traffic::Route53,
            stateless: false,
            asynchronous: false,
        }
    }
}

/// RFC 3339 with milliseconds, from milliseconds since the epoch.
pub fn timestamp_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl World {
    pub fn new(shape: &Shape, now: Instant) -> World {
        let mut sites = BTreeMap::new();
        for (i, name) in shape.sites.iter().enumerate() {
            let other = &shape.sites[1 - i];
            let nodes: Vec<String> = (0..shape.nodes_per_site)
                .map(|n| format!("{name}-infinispan-{n}"))
                .collect();
            let mut caches = BTreeMap::new();
            for c in &shape.caches {
                let mut backups = BTreeMap::new();
                backups.insert(
                    other.clone(),
                    Backup {
                        nodes: nodes
                            .iter()
                            .map(|n| (n.clone(), NodeStatus::Online))
                            .collect(),
                        push: PushStatus::Idle,
                        push_done_at: None,
                    },
                );
                caches.insert(
                    c.clone(),
                    Cache {
                        entries: BTreeMap::new(),
                        backups,
                    },
                );
            }
            sites.insert(
                name.clone(),
                Site {
                    name: name.clone(),
                    nodes,
                    caches,
                    keycloak: Keycloak {
                        name: "keycloak".into(),
                        annotations: BTreeMap::new(),
                        spec: shape.keycloak_instances,
                        generation: 1,
                        observed_generation: 1,
                        from: shape.keycloak_instances,
                        changed_at: now,
                        db: json!({"vendor": "postgres", "host": "keycloak-aurora.cluster.lab"}),
                        rolling_until: None,
                    },
                    clear_requests: BTreeMap::new(),
                    clears: Vec::new(),
                },
            );
        }
        let instances = shape
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| AuroraInstance {
                id: format!("keycloak-aurora-instance-{}", i + 1),
                az: aurora_zone(i),
                site: s.clone(),
            })
            .collect::<Vec<_>>();
        World {
            aurora: Aurora {
                cluster: "keycloak-aurora".into(),
                writer: instances[0].id.clone(),
                instances,
                failover: None,
            },
            health_checks: Vec::new(),
            primary: shape.sites[0].clone(),
            secondary: shape.sites[1].clone(),
            sites,
            faults: Vec::new(),
            scale: shape.scale,
            infinispan_version: shape.infinispan_version,
            session_seq: 0,
            cli_commands: BTreeMap::new(),
            accelerator: None,
        }
    }

    /// A production duration under the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.scale.max(0.0))
    }

    pub fn partitioned(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::Partition))
    }

    pub fn site_down(&self, site: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::SiteDown { site: s } if s == site))
    }

    pub fn cache_fails(&self, cache: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::CacheError { cache: c } if c == cache))
    }

    pub fn batch_stuck(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::BatchStuck))
    }

    pub fn latency(&self) -> Duration {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Latency { delay } => Some(*delay),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// Whether an injected 5xx hits this request to `site`'s Infinispan (a burst is
    /// used up one request at a time).
    pub fn roll_5xx(&mut self, site: &str, path: &str) -> bool {
        for f in &mut self.faults {
            if let Fault::Http5xxBurst {
                remaining,
                site: s,
                path: p,
            } = f
            {
                if *remaining > 0
                    && s.as_deref().is_none_or(|s| s == site)
                    && p.as_deref().is_none_or(|p| path.contains(p))
                {
                    *remaining -= 1;
                    return true;
                }
            }
        }
        self.faults.iter().any(|f| match f {
            Fault::Http5xx { share, site: s } => {
                s.as_deref().is_none_or(|s| s == site) && fastrand::f64() < *share
            }
            _ => false,
        })
    }

    /// Whether this write to `site`'s Infinispan is carried out with its answer lost
    /// (`answer-lost`, used up one request at a time; reads are never lost).
    pub fn roll_lost(&mut self, site: &str, write: bool) -> bool {
        if !write {
            return false;
        }
        for f in &mut self.faults {
            if let Fault::AnswerLost { remaining, site: s } = f {
                if *remaining > 0 && s.as_deref().is_none_or(|s| s == site) {
                    *remaining -= 1;
                    return true;
                }
            }
        }
        false
    }

    pub fn other_site(&self, site: &str) -> Option<String> {
        self.sites.keys().find(|s| *s != site).cloned()
    }

    fn site_mut(&mut self, site: &str) -> Result<&mut Site, IspnError> {
        self.sites
            .get_mut(site)
            .ok_or_else(|| IspnError::NoSite(site.to_string()))
    }

    pub fn site(&self, site: &str) -> Result<&Site, IspnError> {
        self.sites
            .get(site)
            .ok_or_else(|| IspnError::NoSite(site.to_string()))
    }

    fn backup_mut(
        &mut self,
        site: &str,
        cache: &str,
        remote: &str,
    ) -> Result<&mut Backup, IspnError> {
        let s = self.site_mut(site)?;
        let c = s
            .caches
            .get_mut(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        c.backups
            .get_mut(remote)
            .ok_or_else(|| IspnError::NoBackup {
                cache: cache.to_string(),
                site: remote.to_string(),
            })
    }

    /// Settle whatever time has decided: push-states that ended, a failover that ended.
    pub fn tick(&mut self, now: Instant) {
        let partitioned = self.partitioned();
        let mut done: Vec<(String, String, String)> = Vec::new();
        for (sname, s) in &self.sites {
            for (cname, c) in &s.caches {
                for (remote, b) in &c.backups {
                    if b.push == PushStatus::Sending && b.push_done_at.is_some_and(|t| now >= t) {
                        done.push((sname.clone(), cname.clone(), remote.clone()));
                    }
                }
            }
        }
        for (site, cache, remote) in done {
            let fail = partitioned || self.site_down(&remote) || self.consume_push_error(&cache);
            if fail {
                if let Ok(b) = self.backup_mut(&site, &cache, &remote) {
                    b.push = PushStatus::Error;
                    b.push_done_at = None;
                }
                continue;
            }
            let entries = self.sites[&site].caches[&cache].entries.clone();
            if let Some(c) = self
                .sites
                .get_mut(&remote)
                .and_then(|r| r.caches.get_mut(&cache))
            {
                c.entries.extend(entries);
            }
            if let Ok(b) = self.backup_mut(&site, &cache, &remote) {
                b.push = PushStatus::Ok;
                b.push_done_at = None;
            }
        }
        if let Some((target, at)) = self.aurora.failover.clone() {
            if now >= at {
                self.aurora.writer = target;
                self.aurora.failover = None;
            }
        }
    }

    fn consume_push_error(&mut self, cache: &str) -> bool {
        for f in &mut self.faults {
            if let Fault::PushError { cache: c, times } = f {
                if c == cache {
                    match times {
                        None => return true,
                        Some(0) => {}
                        Some(n) => {
                            *n -= 1;
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// The node that refuses this take-offline request on `site`, if any (one round of
    /// a fault with a count is used up).
    pub fn take_offline_refusal(&mut self, site: &str) -> Option<String> {
        let last = self.sites.get(site).and_then(|x| x.nodes.last().cloned());
        for f in &mut self.faults {
            if let Fault::OfflineNotSticking {
                site: s,
                node,
                rounds,
            } = f
            {
                if s != site {
                    continue;
                }
                match rounds {
                    Some(0) => return None,
                    Some(n) => *n -= 1,
                    None => {}
                }
                return node.clone().or(last);
            }
        }
        None
    }

    // ---- Infinispan, per cache ----

    pub fn cache_names(&self, site: &str) -> Result<Vec<String>, IspnError> {
        Ok(self.site(site)?.caches.keys().cloned().collect())
    }

    /// Per-node status of `site`'s backup of `cache` to `remote`.
    pub fn cache_status(
        &self,
        site: &str,
        cache: &str,
        remote: &str,
    ) -> Result<BTreeMap<String, NodeStatus>, IspnError> {
        let c = self
            .site(site)?
            .caches
            .get(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        let b = c.backups.get(remote).ok_or_else(|| IspnError::NoBackup {
            cache: cache.to_string(),
            site: remote.to_string(),
        })?;
        Ok(b.nodes.clone())
    }

    /// One take-offline request for one cache (a request of its own: a refusing node
    /// uses up one round).
    pub fn take_offline(&mut self, site: &str, cache: &str, remote: &str) -> Result<(), IspnError> {
        let refusing = self.take_offline_refusal(site);
        self.take_offline_with(site, cache, remote, refusing.as_deref())
    }

    /// Take-offline on every node but `refusing`, which stays online; then the answer
    /// is Infinispan's (`XSiteAdminOperations.takeSiteOffline`: "Could not take the
    /// site offline on nodes:" and the list, wrapped in ISPN012047 by the REST layer).
    pub fn take_offline_with(
        &mut self,
        site: &str,
        cache: &str,
        remote: &str,
        refusing: Option<&str>,
    ) -> Result<(), IspnError> {
        let b = self.backup_mut(site, cache, remote)?;
        let mut refused = false;
        for (node, st) in b.nodes.iter_mut() {
            if refusing == Some(node.as_str()) {
                refused = true;
            } else {
                *st = NodeStatus::Offline;
            }
        }
        if refused {
            return Err(IspnError::Op {
                site: remote.to_string(),
                result: format!(
                    "Could not take the site offline on nodes:[{}]",
                    refusing.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    pub fn bring_online(&mut self, site: &str, cache: &str, remote: &str) -> Result<(), IspnError> {
        let b = self.backup_mut(site, cache, remote)?;
        for st in b.nodes.values_mut() {
            *st = NodeStatus::Online;
        }
        Ok(())
    }

    /// Start pushing `cache` from `site` to `remote`: the backup comes online, the
    /// status is `SENDING` for the scaled push time, then `OK` (entries copied) or
    /// `ERROR`.
    pub fn start_push(
        &mut self,
        site: &str,
        cache: &str,
        remote: &str,
        now: Instant,
    ) -> Result<(), IspnError> {
        let t = self.scaled(production::PUSH_STATE);
        // The push starts with a SYNC control request to the other site: when it cannot
        // reach it, XSiteAdminOperations.pushState answers at once, it does not go
        // SENDING first.
        if self.partitioned() || self.site_down(remote) {
            self.backup_mut(site, cache, remote)?;
            return Err(IspnError::Op {
                site: remote.to_string(),
                result: format!(
                    "Unable to pushState to '{remote}'. org.infinispan.remoting.transport.jgroups.SuspectException: site '{remote}' is unreachable"
                ),
            });
        }
        let b = self.backup_mut(site, cache, remote)?;
        for st in b.nodes.values_mut() {
            *st = NodeStatus::Online;
        }
        b.push = PushStatus::Sending;
        b.push_done_at = Some(now + t);
        Ok(())
    }

    pub fn cancel_push(&mut self, site: &str, cache: &str, remote: &str) -> Result<(), IspnError> {
        let b = self.backup_mut(site, cache, remote)?;
        if b.push == PushStatus::Sending {
            b.push = PushStatus::Canceled;
            b.push_done_at = None;
        }
        Ok(())
    }

    /// Push status of `cache` per remote site.
    pub fn push_status(
        &self,
        site: &str,
        cache: &str,
    ) -> Result<BTreeMap<String, PushStatus>, IspnError> {
        let c = self
            .site(site)?
            .caches
            .get(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        Ok(c.backups.iter().map(|(r, b)| (r.clone(), b.push)).collect())
    }

    pub fn clear_push_status(&mut self, site: &str, cache: &str) -> Result<(), IspnError> {
        let s = self.site_mut(site)?;
        let c = s
            .caches
            .get_mut(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        for b in c.backups.values_mut() {
            if b.push != PushStatus::Sending {
                b.push = PushStatus::Idle;
            }
        }
        Ok(())
    }

    /// Where a write or clear on `site` also lands: the other site, while the backup
    /// replicates (any node online) and the sites can reach each other.
    fn replica_of(&self, site: &str, cache: &str) -> Option<String> {
        if self.partitioned() {
            return None;
        }
        let c = self.sites.get(site)?.caches.get(cache)?;
        c.backups
            .iter()
            .find(|(remote, b)| b.replicates() && !self.site_down(remote))
            .map(|(r, _)| r.clone())
    }

    /// Clear a cache. While its backup is online, the clear reaches the other site too:
    /// the hazard the runbooks guard against.
    pub fn clear(&mut self, site: &str, cache: &str) -> Result<(), IspnError> {
        let replica = self.replica_of(site, cache);
        let s = self.site_mut(site)?;
        *s.clear_requests.entry(cache.to_string()).or_default() += 1;
        s.clears.push((cache.to_string(), replica.clone()));
        s.caches
            .get_mut(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?
            .entries
            .clear();
        if let Some(r) = replica {
            if let Some(c) = self.sites.get_mut(&r).and_then(|x| x.caches.get_mut(cache)) {
                c.entries.clear();
            }
        }
        Ok(())
    }

    pub fn put(
        &mut self,
        site: &str,
        cache: &str,
        key: &str,
        value: &str,
    ) -> Result<(), IspnError> {
        let replica = self.replica_of(site, cache);
        let s = self.site_mut(site)?;
        s.caches
            .get_mut(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?
            .entries
            .insert(key.to_string(), value.to_string());
        if let Some(r) = replica {
            if let Some(c) = self.sites.get_mut(&r).and_then(|x| x.caches.get_mut(cache)) {
                c.entries.insert(key.to_string(), value.to_string());
            }
        }
        Ok(())
    }

    pub fn get(&self, site: &str, cache: &str, key: &str) -> Result<Option<String>, IspnError> {
        let c = self
            .site(site)?
            .caches
            .get(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        Ok(c.entries.get(key).cloned())
    }

    /// The keys of a cache, in order.
    pub fn keys(&self, site: &str, cache: &str) -> Result<Vec<String>, IspnError> {
        let c = self
            .site(site)?
            .caches
            .get(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        Ok(c.entries.keys().cloned().collect())
    }

    pub fn size(&self, site: &str, cache: &str) -> Result<usize, IspnError> {
        let c = self
            .site(site)?
            .caches
            .get(cache)
            .ok_or_else(|| IspnError::NoCache(cache.to_string()))?;
        Ok(c.entries.len())
    }

    // ---- sessions (the workload) ----

    /// The site the client domain resolves to, by Route53's failover rule: the
    /// primary record's site while its health check is healthy (or not yet observed),
    /// else the secondary's while its check is healthy; when both are unhealthy
    /// Route53 answers with the primary record (all unhealthy counts as all healthy).
    pub fn serving_site(&self) -> String {
        if let Some(a) = &self.accelerator {
            // Both sites serve: a login lands on one the accelerator routes to.
            let routed = a.routed_sites();
            if !routed.is_empty() {
                return routed[(self.session_seq as usize) % routed.len()].clone();
            }
        }
        let healthy_site = |site: &str| {
            self.health_checks
                .iter()
                .find(|h| h.site == site)
                .is_none_or(healthy)
        };
        if healthy_site(&self.primary) || !healthy_site(&self.secondary) {
            self.primary.clone()
        } else {
            self.secondary.clone()
        }
    }

    /// Create `count` sessions on `site` (default: the serving site), as Keycloak
    /// would: an entry in `sessions` and `clientSessions` (or the first cache there is).
    pub fn create_sessions(
        &mut self,
        site: Option<&str>,
        count: u32,
    ) -> Result<Vec<String>, IspnError> {
        let site = site
            .map(str::to_string)
            .unwrap_or_else(|| self.serving_site());
        let caches: Vec<String> = {
            let s = self.site(&site)?;
            let mut c: Vec<String> = ["sessions", "clientSessions"]
                .iter()
                .filter(|n| s.caches.contains_key(**n))
                .map(|n| n.to_string())
                .collect();
            if c.is_empty() && s.caches.contains_key("authenticationSessions") {
                // Keycloak 26 keeps sessions in the database: a login in progress is
                // what the external Infinispan holds.
                c.push("authenticationSessions".to_string());
            }
            if c.is_empty() {
                c.extend(s.caches.keys().next().cloned());
            }
            c
        };
        let mut keys = Vec::new();
        for _ in 0..count {
            self.session_seq += 1;
            let key = format!("session-{:06}", self.session_seq);
            for c in &caches {
                self.put(
                    &site,
                    c,
                    &key,
                    &format!(
                        "{{\"user\":\"user-{}\",\"site\":\"{site}\"}}",
                        self.session_seq
                    ),
                )?;
            }
            keys.push(key);
        }
        Ok(keys)
    }

    // ---- admin view ----

    pub fn snapshot(&self, now: Instant) -> Json {
        let mut sites = serde_json::Map::new();
        for (name, s) in &self.sites {
            let mut caches = serde_json::Map::new();
            for (cname, c) in &s.caches {
                let backups: serde_json::Map<String, Json> = c
                    .backups
                    .iter()
                    .map(|(r, b)| {
                        (
                            r.clone(),
                            json!({"status": b.status(), "nodes": b.nodes, "push": b.push}),
                        )
                    })
                    .collect();
                caches.insert(
                    cname.clone(),
                    json!({"entries": c.entries.len(), "backups": backups}),
                );
            }
            sites.insert(
                name.clone(),
                json!({
                    "caches": caches,
                    "clear_requests": s.clear_requests,
                    "clears": s.clears.iter().map(|(c, r)| json!({"cache": c, "reached": r})).collect::<Vec<_>>(),
                    "keycloak": {
                        "spec": s.keycloak.spec,
                        "ready": self.keycloak_ready(name, now),
                        "generation": s.keycloak.generation,
                    },
                    "down": self.site_down(name),
                }),
            );
        }
        json!({
            "sites": sites,
            "serving_site": self.serving_site(),
            "primary": self.primary,
            "aurora": {
                "cluster": self.aurora.cluster,
                "status": self.aurora_status(),
                "writer": self.aurora.writer,
                "writer_site": self.aurora.instances.iter().find(|i| i.id == self.aurora.writer).map(|i| i.site.clone()),
            },
            "health_checks": self.health_checks.iter().map(|h| json!({
                "id": h.id, "site": h.site, "path": h.path, "version": h.version, "healthy": healthy(h),
            })).collect::<Vec<_>>(),
            "faults": self.faults,
            "time_scale": self.scale,
            "accelerator": self.accelerator.as_ref().map(|a| json!({
                "dns_name": a.dns_name,
                "endpoint_group_arn": a.group_arn,
                "endpoints": a.endpoints.iter().map(|e| json!({
                    "site": a.nlbs.iter().find(|n| n.arn == e.id).map(|n| n.site.clone()),
                    "endpoint_id": e.id, "weight": e.weight, "health": e.state,
                })).collect::<Vec<_>>(),
                "routed_sites": a.routed_sites(),
                "writes": a.writes.iter().map(|(op, ids)| json!({"operation": op, "endpoints": ids})).collect::<Vec<_>>(),
            })),
        })
    }
}

/// Route53's rule: healthy when more than 18% of the checkers say so.
pub fn healthy(h: &HealthCheck) -> bool {
    if h.observations.is_empty() {
        return true;
    }
    let ok = h.observations.values().filter(|(ok, _, _)| *ok).count();
    ok as f64 / h.observations.len() as f64 > 0.18
}

mod aurora;
mod keycloak;
#[cfg(test)]
mod tests;
