//! The lab: a simulated two-site Keycloak deployment on 127.0.0.1 that speaks the real
//! protocols (Infinispan REST, the Kubernetes API, RDS, Route53, Global Accelerator
//! and ELBv2), so that `runbook`
//! and its tests use their real clients unchanged. It is for rehearsals, demos and
//! tests: `runbook lab` runs it in the foreground, `runbook run NAME --lab` in-process.
//!
//! It depends on no other crate of the project: it only speaks protocols.

pub mod accelerator;
pub mod admin;
pub mod auth;
pub mod aws;
mod awsxml;
pub mod batch;
pub mod cnpg;
pub mod envfile;
pub mod faults;
pub mod ga;
pub mod haproxy;
pub mod infinispan;
pub mod keycloak;
pub mod kube;
pub mod meta;
pub mod metrics;
pub mod pgo;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::Method;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultError};
pub use world::{Shape, World, KEYCLOAK_24_CACHES};

/// Everything the lab knows, behind one lock. Never held across an `.await`.
#[derive(Debug)]
pub struct LabState {
    pub world: World,
    pub credentials: auth::Credentials,
    /// The last requests per site (`METHOD /path?query`), newest last; the Kubernetes
    /// API's under `SITE-kube`.
    pub requests: BTreeMap<String, Vec<String>>,
    /// Infinispan Batch CRs, by (site, name).
    pub batches: BTreeMap<(String, String), batch::Batch>,
    /// ConfigMaps' `batch` key, by (site, name).
    pub config_maps: BTreeMap<(String, String), String>,
    /// PGO at each site over real PostgreSQL servers, when the lab plays it
    /// (`Shape::database`).
    pub pgo: Option<pgo::Pgo>,
    /// CloudNativePG at each site over real PostgreSQL servers, when the lab plays it.
    pub cnpg: Option<cnpg::Cnpg>,
    /// Jobs the lab runs for real (`kube/jobs.rs`), by (site, name).
    pub jobs: BTreeMap<(String, String), kube::RunJob>,
}

const REQUEST_LOG: usize = 10_000;

impl LabState {
    /// The world as the admin API shows it (`GET /admin/state`), with what PGO's
    /// reconciler last saw of each real server when the lab plays PGO.
    pub fn snapshot(&mut self, now: Instant) -> serde_json::Value {
        self.world.tick(now);
        let mut snapshot = self.world.snapshot(now);
        if let Some(p) = &self.pgo {
            // What the reconciler last saw of each real server, and each Keycloak's db.
            let sites: serde_json::Map<String, serde_json::Value> = p
                .sites
                .iter()
                .map(|(name, s)| {
                    let db = self.world.sites.get(name).map(|k| k.keycloak.db.clone());
                    (
                        name.clone(),
                        serde_json::json!({
                            "port": s.port, "running": s.running,
                            "writable": s.in_recovery.map(|r| !r), "timeline": s.timeline,
                            "spec": s.spec, "deleted": s.deleted, "keycloak_db": db,
                        }),
                    )
                })
                .collect();
            snapshot["pgo"] = serde_json::json!({"sites": sites, "errors": p.errors});
        }
        if let Some(c) = &self.cnpg {
            let sites: serde_json::Map<String, serde_json::Value> = c
                .sites
                .iter()
                .map(|(name, s)| {
                    let db = self.world.sites.get(name).map(|k| k.keycloak.db.clone());
                    (
                        name.clone(),
                        serde_json::json!({
                            "cluster": s.name, "port": s.port, "running": s.running,
                            "writable": s.in_recovery.map(|r| !r), "timeline": s.timeline,
                            "replica": s.is_replica(), "phase": s.phase,
                            "demotion_token": s.demotion_token, "last_promotion_token": s.last_promotion_token,
                            "spec": s.spec, "keycloak_db": db,
                            "hibernated": s.hibernated(), "fenced": s.fenced(),
                        }),
                    )
                })
                .collect();
            snapshot["cnpg"] = serde_json::json!({"sites": sites, "errors": c.errors});
        }
        snapshot
    }

    pub fn record(&mut self, site: &str, method: &Method, path: &str) {
        let log = self.requests.entry(site.to_string()).or_default();
        if log.len() >= REQUEST_LOG {
            log.drain(..REQUEST_LOG / 2);
        }
        log.push(format!("{method} {path}"));
    }
}

/// The lab's shared state.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<LabState>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, LabState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Where env.yaml, kubeconfig and the secrets go.
    pub dir: PathBuf,
    pub shape: Shape,
    pub faults: Vec<Fault>,
    /// Sessions per second created on the serving site (0: none).
    pub workload_per_sec: f64,
    pub username: String,
    pub password: String,
    /// The bearer token the Kubernetes API servers require with `tls` (in
    /// DIR/kubeconfig).
    pub kube_token: String,
    /// Serve Infinispan and the Kubernetes API over TLS with a CA of its own (written
    /// to DIR/ca.pem); the Kubernetes API then requires the bearer token.
    pub tls: bool,
}

impl LabConfig {
    pub fn new(dir: &Path) -> LabConfig {
        LabConfig {
            dir: dir.to_path_buf(),
            shape: Shape::default(),
            faults: Vec::new(),
            workload_per_sec: 0.0,
            username: "admin".into(),
            password: format!("lab-{:016x}", fastrand::u64(..)),
            kube_token: format!("lab-token-{:016x}", fastrand::u64(..)),
            tls: false,
        }
    }

    /// With `specs` injected from the start, written as `--fault` takes them.
    ///
    /// # Errors
    /// The first spec that does not parse.
    pub fn with_faults<S: AsRef<str>>(mut self, specs: &[S]) -> Result<LabConfig, FaultError> {
        for spec in specs {
            self.faults.push(Fault::parse(spec.as_ref())?);
        }
        Ok(self)
    }
}

/// Where each part of a running lab listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub infinispan: BTreeMap<String, SocketAddr>,
    pub kube: BTreeMap<String, SocketAddr>,
    pub aws: SocketAddr,
    pub keycloak: BTreeMap<String, SocketAddr>,
    pub admin: SocketAddr,
    /// Each site's PostgreSQL primary service, exposed (PGO's lab only).
    pub postgres: BTreeMap<String, SocketAddr>,
    /// Each site's NLB DNS name (the accelerator lab only).
    pub nlbs: BTreeMap<String, String>,
    /// HAProxy's frontend and admin socket (the HAProxy lab only).
    pub haproxy: Option<(SocketAddr, SocketAddr)>,
}

/// A running lab. Dropping it stops every server.
#[derive(Debug)]
pub struct RunningLab {
    pub shared: Shared,
    pub endpoints: Endpoints,
    pub env_file: PathBuf,
    pub config: LabConfig,
    /// The real HAProxy in front of the sites, when the lab runs one (killed on drop).
    pub haproxy: Option<haproxy::Haproxy>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(p) = self.shared.lock().pgo.as_ref() {
            p.stop_all();
        }
        if let Some(c) = self.shared.lock().cnpg.as_ref() {
            c.stop_all();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Pgo(String),
    #[error("{0}")]
    Haproxy(String),
    #[error("cannot write `{}`: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

async fn serve(router: Router) -> Result<(SocketAddr, JoinHandle<()>), LabError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LabError::Bind)?;
    let addr = listener.local_addr().map_err(LabError::Bind)?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("lab server on {addr} stopped: {e}");
        }
    });
    Ok((addr, task))
}

/// The PGO lab: a real PostgreSQL server per site, and each site's Keycloak pointed
/// at the primary as PGO's services expose it.
async fn start_pgo(
    config: &LabConfig,
    shared: &Shared,
    tls: Option<&tls::LabTls>,
) -> Result<(), LabError> {
    let sites = config.shape.sites.to_vec();
    let password = format!("pg-{:016x}", fastrand::u64(..));
    let cert = tls
        .as_ref()
        .map(|t| (t.cert_pem.clone(), t.key_pem.clone()));
    let pgo = tokio::task::spawn_blocking(move || pgo::setup(&sites, &password, cert))
        .await
        .map_err(|e| LabError::Pgo(e.to_string()))??;
    let mut lab = shared.lock();
    let first_port = pgo.sites.values().next().map_or(0, |s| s.port);
    for (i, site) in config.shape.sites.iter().enumerate() {
        // Keycloak at the primary's site reaches it by its service, the others
        // by the address it is exposed at (`../shared/docs/pgo.md` 2.8).
        let (host, port) = if i == 0 {
            (
                format!("{}-primary.{}.svc", pgo::CLUSTER, kube::NAMESPACE),
                5432,
            )
        } else {
            ("127.0.0.1".to_string(), first_port)
        };
        if let Some(s) = lab.world.sites.get_mut(site) {
            s.keycloak.db = pgo::keycloak_db(&host, port);
        }
    }
    lab.pgo = Some(pgo);
    Ok(())
}

/// The CloudNativePG lab: a real PostgreSQL server per site behind its `Cluster`, and
/// each site's Keycloak pointed at the primary's.
async fn start_cnpg(config: &LabConfig, shared: &Shared) -> Result<(), LabError> {
    let sites = config.shape.sites.to_vec();
    let password = format!("pg-{:016x}", fastrand::u64(..));
    let synchronous = !config.shape.asynchronous;
    let cnpg = tokio::task::spawn_blocking(move || cnpg::setup(&sites, &password, synchronous))
        .await
        .map_err(|e| LabError::Pgo(e.to_string()))??;
    let mut lab = shared.lock();
    if let Some(primary) = cnpg.sites.values().find(|s| !s.is_replica()) {
        for site in &config.shape.sites {
            if let (Some(s), Some(local)) = (lab.world.sites.get_mut(site), cnpg.sites.get(site)) {
                s.keycloak.db = cnpg::keycloak_db(primary, local);
            }
        }
    }
    lab.cnpg = Some(cnpg);
    Ok(())
}

/// Each site's Kubernetes, Infinispan and Keycloak endpoints, served.
#[allow(clippy::type_complexity)]
async fn serve_sites(
    config: &LabConfig,
    shared: &Shared,
    tls: Option<&tls::LabTls>,
) -> Result<
    (
        BTreeMap<String, SocketAddr>,
        BTreeMap<String, SocketAddr>,
        BTreeMap<String, SocketAddr>,
        Vec<JoinHandle<()>>,
    ),
    LabError,
> {
    let mut tasks = Vec::new();
    let mut ispn = BTreeMap::new();
    let mut kc = BTreeMap::new();
    let mut kube_eps = BTreeMap::new();
    for site in &config.shape.sites {
        let (addr, t) = match tls {
            Some(t) => {
                let token = Some(config.kube_token.clone());
                tls::serve(
                    kube::router(shared.clone(), site.clone(), token),
                    t.acceptor.clone(),
                )
                .await?
            }
            None => serve(kube::router(shared.clone(), site.clone(), None)).await?,
        };
        kube_eps.insert(site.clone(), addr);
        tasks.push(t);
        let (addr, t) = match tls {
            Some(t) => {
                tls::serve(
                    infinispan::router(shared.clone(), site.clone()),
                    t.acceptor.clone(),
                )
                .await?
            }
            None => serve(infinispan::router(shared.clone(), site.clone())).await?,
        };
        ispn.insert(site.clone(), addr);
        tasks.push(t);
        let (addr, t) = serve(keycloak::router(shared.clone(), site.clone())).await?;
        kc.insert(site.clone(), addr);
        tasks.push(t);
    }
    Ok((ispn, kc, kube_eps, tasks))
}

/// The traffic in front of the sites: Route53's health checks of each site's
/// `/lb-check`, and with the accelerator shape the Global Accelerator and its NLBs'
/// health checks (the tasks it started).
fn traffic(
    config: &LabConfig,
    shared: &Shared,
    kc: &BTreeMap<String, SocketAddr>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    {
        let mut lab = shared.lock();
        for (i, site) in config.shape.sites.iter().enumerate() {
            lab.world.health_checks.push(world::HealthCheck {
                id: format!("hc-{site}"),
                site: site.clone(),
                path: "/lb-check".into(),
                fqdn: world::lb_host(i).into(),
                port: kc[site].port(),
                version: 1,
                observations: BTreeMap::new(),
            });
        }
    }
    if config.shape.traffic == world::Traffic::Accelerator {
        let sites: Vec<(String, u16)> = config
            .shape
            .sites
            .iter()
            .map(|s| (s.clone(), kc[s].port()))
            .collect();
        shared.lock().world.accelerator = Some(accelerator::Accelerator::new(&sites));
        tasks.push(accelerator::spawn_health_checks(shared.clone()));
    }
    tasks
}

/// Each site's PostgreSQL server, exposed (PGO's or CloudNativePG's lab).
fn database_endpoints(shared: &Shared) -> BTreeMap<String, SocketAddr> {
    let lab = shared.lock();
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    if let Some(p) = &lab.pgo {
        return p
            .sites
            .iter()
            .map(|(n, s)| (n.clone(), at(s.port)))
            .collect();
    }
    lab.cnpg
        .as_ref()
        .map(|c| {
            c.sites
                .iter()
                .map(|(n, s)| (n.clone(), at(s.port)))
                .collect()
        })
        .unwrap_or_default()
}

/// Start a lab on 127.0.0.1 (random ports) and write its environment file.
///
/// # Errors
/// A port cannot be bound or a file cannot be written.
pub async fn start(config: LabConfig) -> Result<RunningLab, LabError> {
    let now = Instant::now();
    let mut world = World::new(&config.shape, now);
    world.faults = config.faults.clone();
    let shared = Shared(Arc::new(Mutex::new(LabState {
        world,
        credentials: auth::Credentials {
            username: config.username.clone(),
            password: config.password.clone(),
            nonce: format!("{:032x}", fastrand::u128(..)),
        },
        requests: BTreeMap::new(),
        batches: BTreeMap::new(),
        config_maps: BTreeMap::new(),
        pgo: None,
        cnpg: None,
        jobs: BTreeMap::new(),
    })));
    let tls = if config.tls {
        Some(tls::generate()?)
    } else {
        None
    };
    if config.shape.database == world::Database::Pgo {
        start_pgo(&config, &shared, tls.as_ref()).await?;
    }
    if config.shape.database == world::Database::Cnpg {
        start_cnpg(&config, &shared).await?;
    }
    let (ispn, kc, kube_eps, mut tasks) = serve_sites(&config, &shared, tls.as_ref()).await?;
    let (admin_addr, t) = serve(admin::router(shared.clone())).await?;
    tasks.push(t);
    let (aws_addr, t) = serve(aws::router(shared.clone())).await?;
    tasks.push(t);
    tasks.extend(traffic(&config, &shared, &kc));
    tasks.push(keycloak::spawn_health_checkers(shared.clone()));
    if shared.lock().pgo.is_some() {
        tasks.push(pgo::spawn_reconciler(shared.clone()));
    }
    if shared.lock().cnpg.is_some() {
        tasks.push(cnpg::spawn_reconciler(shared.clone()));
    }
    if config.workload_per_sec > 0.0 {
        tasks.push(admin::spawn_workload(
            shared.clone(),
            config.workload_per_sec,
        ));
    }
    // Each lock taken and released on its own: two in one statement would deadlock.
    let nlbs: BTreeMap<String, String> = shared
        .lock()
        .world
        .accelerator
        .as_ref()
        .map(|a| {
            a.nlbs
                .iter()
                .map(|n| (n.site.clone(), n.dns_name.clone()))
                .collect()
        })
        .unwrap_or_default();
    let endpoints = Endpoints {
        infinispan: ispn,
        kube: kube_eps,
        aws: aws_addr,
        keycloak: kc,
        admin: admin_addr,
        postgres: database_endpoints(&shared),
        nlbs,
        haproxy: None,
    };
    let haproxy = if config.shape.traffic == world::Traffic::Haproxy {
        let sites: BTreeMap<String, SocketAddr> = endpoints.keycloak.clone();
        Some(haproxy::start(&config.dir, &sites).await?)
    } else {
        None
    };
    let endpoints = Endpoints {
        haproxy: haproxy.as_ref().map(|h| (h.frontend, h.admin)),
        ..endpoints
    };
    let env_file = envfile::write(&config, &endpoints, tls.as_ref().map(|t| t.ca_pem.as_str()))?;
    Ok(RunningLab {
        shared,
        endpoints,
        env_file,
        config,
        haproxy,
        tasks,
    })
}

impl RunningLab {
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.endpoints.admin)
    }

    /// Wait until something changes in the world, at most `d` (for polling helpers).
    pub async fn pause(d: Duration) {
        tokio::time::sleep(d).await;
    }
}
