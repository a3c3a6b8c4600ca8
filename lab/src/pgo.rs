//! CrunchyData PGO (v5) at each site, over real PostgreSQL servers: one
//! `PostgresCluster` per site, the primary at the first site and, at the second, a
//! standby cluster streaming from it (a real `pg_basebackup -R` standby).
//!
//! What the operator does, as `../shared/docs/pgo.md` gathers it from
//! CrunchyData/postgres-operator at v5.8.9 (`pgo:<path>`), is done here by a
//! reconciler that acts on the real servers:
//! - `spec.shutdown: true` stops the instance (`pg_ctl stop -m fast`, after which the
//!   primary has sent its WAL to a connected standby); `false` starts it again, and
//!   the primary's instance is recorded in `status.startupInstance`
//!   (`internal/controller/postgrescluster/instance.go`).
//! - `spec.standby.enabled: false` (or no `spec.standby`) on a standby cluster
//!   promotes its leader (`pg_ctl promote`); promotion is never automatic. PGO then
//!   writes the users with the promoted cluster's own `<cluster>-pguser-<user>`
//!   secret (`reconcilePostgresUsersInPostgreSQL`, writable instance only): the
//!   password changes unless both sites' secrets hold the same one.
//! - A cluster deleted and created again with `spec.standby {host, port}` is
//!   bootstrapped from that primary (`pg_basebackup`), its old data discarded.
//! - `spec.paused: true` applies no spec change (`Progressing=False`, reason `Paused`,
//!   `controller.go`).
//! - Nothing stops two clusters from both being writable: that is the documented
//!   split-brain, and the lab lets it happen.
//! - Pods carry the role label `master` on the leader of a primary and of a standby
//!   cluster alike (`internal/patroni/config.go`); writable is told by the pod's
//!   `status` annotation (Patroni's JSON: `"role":"master"` or `"standby_leader"`,
//!   `PodIsStandbyLeader` in `internal/patroni/reconcile.go`) or by the database.
//!
//! Replication is asynchronous, as PGO's standby clusters are; the fault
//! `pg-replay-delay:DURATION` sets the standby's `recovery_min_apply_delay` so the
//! lag can be seen. Each writable primary takes a write twice a second (Keycloak's
//! traffic stands in as a heartbeat table), so WAL positions move.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{LabError, Shared};

/// The cluster's name at every site, its user and database (PGO's default user is the
/// cluster's name, `postgres.go`).
pub const CLUSTER: &str = "hippo";
pub const USER: &str = "hippo";
pub const DATABASE: &str = "hippo";
/// The instance set and the instance (StatefulSet `<cluster>-<set>-<4 chars>`).
pub const INSTANCE_SET: &str = "instance1";

/// One site's PostgresCluster and the real server behind its single instance.
#[derive(Debug, Clone)]
pub struct PgoSite {
    pub port: u16,
    pub data: PathBuf,
    pub instance: String,
    /// The PostgresCluster's `spec` as last written.
    pub spec: Value,
    pub annotations: BTreeMap<String, String>,
    pub generation: u64,
    pub observed_generation: u64,
    /// Deleted (GET answers 404); the reconciler stops the server and removes its data.
    pub deleted: bool,
    /// Created again after a delete: bootstrapped anew (as a standby of
    /// `spec.standby`), whatever data is left.
    pub recreated: bool,
    /// This site's `<cluster>-pguser-<user>` secret's password.
    pub password: String,
    /// What the reconciler last saw of the server.
    pub running: bool,
    pub in_recovery: Option<bool>,
    pub timeline: Option<i64>,
    pub startup_instance: Option<String>,
    /// The standby's `recovery_min_apply_delay` (the `pg-replay-delay` fault).
    pub replay_delay: Option<Duration>,
    /// `status.patroni.switchover`: the trigger value of the last switchover done.
    pub switchover_done: Option<String>,
    /// The last switchover refusal recorded (PGO logs it and emits no Event).
    pub switchover_refused: Option<String>,
}

impl PgoSite {
    fn shutdown(&self) -> bool {
        self.spec["shutdown"].as_bool().unwrap_or(false)
    }
    fn paused(&self) -> bool {
        self.spec["paused"].as_bool().unwrap_or(false)
    }
    /// A standby cluster: `spec.standby` present with `enabled` not false.
    fn standby(&self) -> bool {
        self.spec["standby"].is_object() && self.spec["standby"]["enabled"] != json!(false)
    }
}

/// PGO at every site, and the PostgreSQL binaries it runs.
#[derive(Debug)]
pub struct Pgo {
    pub bin: PathBuf,
    /// Where the servers' data lives (owned by `postgres` when the lab runs as root).
    pub root: PathBuf,
    pub sites: BTreeMap<String, PgoSite>,
    /// Errors the reconciler met, newest last (PGO's are silent; the admin API shows).
    pub errors: Vec<String>,
    /// The servers take the users' connections over TLS only.
    pub tls: bool,
}

/// The PostgreSQL server binaries: `RUNBOOK_LAB_PG_BIN`, else Debian's newest
/// `/usr/lib/postgresql/*/bin`, else the `PATH`.
pub(crate) fn find_bin() -> Option<PathBuf> {
    if let Ok(b) = std::env::var("RUNBOOK_LAB_PG_BIN") {
        return Some(PathBuf::from(b));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    if let Some(b) = found.pop() {
        return Some(b);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    })
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Run a PostgreSQL program (as `postgres` when the lab runs as root: the server
/// refuses to run as root).
pub(crate) fn pg(bin: &Path, program: &str, args: &[&str]) -> Result<String, String> {
    let exe = bin.join(program);
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn free_port() -> Result<u16, LabError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(LabError::Bind)
}

fn setup_error(e: impl std::fmt::Display) -> LabError {
    LabError::Pgo(e.to_string())
}

/// The settings every lab server runs with (fsync off: a rehearsal's data is
/// throwaway; replication as PGO configures a streaming standby).
pub(crate) fn server_conf(port: u16, socket_dir: &Path) -> String {
    let mut conf = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n\
         max_connections = 50\nshared_buffers = 16MB\n",
        socket_dir.display()
    );
    let cert = socket_dir.join("server.crt");
    if cert.exists() {
        conf.push_str(&format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            cert.display(),
            socket_dir.join("server.key").display()
        ));
    }
    conf
}

/// The lab's own way in is the `postgres` superuser over loopback without a
/// password (the operator's, like PGO's exec into the pod); everyone else, the
/// pguser included, proves a password (SCRAM), as PGO's `pg_hba` asks.
pub(crate) fn hba(tls: bool) -> String {
    let users = if tls { "hostssl" } else { "host" };
    format!("local all all trust\nhost replication postgres 127.0.0.1/32 trust\nhost all postgres 127.0.0.1/32 trust\n{users} all all 127.0.0.1/32 scram-sha-256\n")
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|error| LabError::Write {
        path: path.to_path_buf(),
        error,
    })
}

pub(crate) fn chown_postgres(path: &Path) {
    if is_root() {
        let _ = Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(path)
            .status();
    }
}

fn instance_name() -> String {
    let letters: String = (0..4)
        .map(|_| (b'a' + fastrand::u8(..26)) as char)
        .collect();
    format!("{CLUSTER}-{INSTANCE_SET}-{letters}")
}

fn base_spec() -> Value {
    json!({
        "postgresVersion": 15,
        "instances": [{"name": INSTANCE_SET, "replicas": 1,
                       "dataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        "backups": {"pgbackrest": {"repos": [{"name": "repo1"}]}},
        "users": [{"name": USER, "databases": [DATABASE]}],
        "service": {"type": "LoadBalancer"},
    })
}

/// Start the first site's primary and the second site's standby (blocking: run it
/// off the async runtime).
///
/// # Errors
/// No PostgreSQL binaries, or a server that does not start.
pub fn setup(
    sites: &[String],
    password: &str,
    tls: Option<(String, String)>,
) -> Result<Pgo, LabError> {
    let bin = find_bin().ok_or_else(|| {
        setup_error("PGO's lab needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): install Debian's postgresql, or set RUNBOOK_LAB_PG_BIN")
    })?;
    let root = std::env::temp_dir().join(format!("runbook-lab-pgo-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&root).map_err(|error| LabError::Write {
        path: root.clone(),
        error,
    })?;
    let made = setup_in(bin.clone(), root.clone(), sites, password, tls);
    if made.is_err() {
        // A setup that failed half-way leaves no server running and no data behind.
        remove_all(&bin, &root);
    }
    made
}

/// Stop every server whose data lives under `root`, then remove it.
pub(crate) fn remove_all(bin: &Path, root: &Path) {
    for dir in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if dir.path().join("PG_VERSION").exists() {
            let _ = stop_server(bin, &dir.path(), "immediate");
        }
    }
    let _ = std::fs::remove_dir_all(root);
}

fn setup_in(
    bin: PathBuf,
    root: PathBuf,
    sites: &[String],
    password: &str,
    tls: Option<(String, String)>,
) -> Result<Pgo, LabError> {
    chown_postgres(&root);
    // With the lab's TLS: the server certificate for every server (PGO always serves
    // TLS, and its pg_hba takes the users' connections over TLS only).
    if let Some((cert, key)) = &tls {
        write(&root.join("server.crt"), cert)?;
        write(&root.join("server.key"), key)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                root.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            );
        }
        chown_postgres(&root);
    }
    let mut pgo = Pgo {
        bin,
        root,
        sites: BTreeMap::new(),
        errors: Vec::new(),
        tls: tls.is_some(),
    };
    let primary = &sites[0];
    let port_a = free_port()?;
    let data_a = pgo.root.join(primary);
    pg(
        &pgo.bin,
        "initdb",
        &[
            "-D",
            &data_a.to_string_lossy(),
            "-U",
            "postgres",
            "--auth=trust",
        ],
    )
    .map_err(setup_error)?;
    write(
        &data_a.join("postgresql.auto.conf"),
        &server_conf(port_a, &pgo.root),
    )?;
    write(&data_a.join("pg_hba.conf"), &hba(tls.is_some()))?;
    chown_postgres(&data_a);
    start_server(&pgo.bin, &data_a).map_err(setup_error)?;
    sql(
        port_a,
        &format!("CREATE ROLE {USER} LOGIN PASSWORD '{password}'"),
    )
    .map_err(setup_error)?;
    // CREATE DATABASE runs alone, outside any transaction block.
    sql(port_a, &format!("CREATE DATABASE {DATABASE} OWNER {USER}")).map_err(setup_error)?;
    sql_in(
        port_a,
        DATABASE,
        &format!("CREATE TABLE lab_heartbeat (at timestamptz NOT NULL DEFAULT now()); ALTER TABLE lab_heartbeat OWNER TO {USER};"),
    )
    .map_err(setup_error)?;
    pgo.sites.insert(
        primary.clone(),
        new_site(port_a, data_a, base_spec(), password),
    );
    for standby in &sites[1..] {
        let port = free_port()?;
        let data = pgo.root.join(standby);
        basebackup(&pgo.bin, &pgo.root, &data, port_a, port).map_err(setup_error)?;
        start_server(&pgo.bin, &data).map_err(setup_error)?;
        let mut spec = base_spec();
        spec["standby"] = json!({"enabled": true, "host": "127.0.0.1", "port": port_a});
        pgo.sites
            .insert(standby.clone(), new_site(port, data, spec, password));
    }
    Ok(pgo)
}

fn new_site(port: u16, data: PathBuf, spec: Value, password: &str) -> PgoSite {
    PgoSite {
        port,
        data,
        instance: instance_name(),
        spec,
        annotations: BTreeMap::new(),
        generation: 1,
        observed_generation: 1,
        deleted: false,
        recreated: false,
        password: password.to_string(),
        running: true,
        in_recovery: None,
        timeline: None,
        startup_instance: None,
        replay_delay: None,
        switchover_done: None,
        switchover_refused: None,
    }
}

/// The trigger annotation of an in-cluster switchover (`internal/naming/annotations.go`).
pub const TRIGGER_SWITCHOVER: &str = "postgres-operator.crunchydata.com/trigger-switchover";

/// PGO's `reconcilePatroniSwitchover` (`internal/controller/postgrescluster/patroni.go`
/// at v5.8.9) as far as the lab plays it: `enabled` false or absent clears the status;
/// no trigger, or one already done, does nothing; a cluster of one instance is refused
/// (an error in the operator's log, retried every reconcile, no Event), and so is a
/// `Failover` without `targetInstance`. The lab plays one instance per site, so every
/// switchover it is asked for is refused, as PGO would refuse it.
fn switchover(p: &mut Pgo, name: &str) {
    let Some(s) = p.sites.get_mut(name) else {
        return;
    };
    let spec = &s.spec["patroni"]["switchover"];
    if spec["enabled"] != json!(true) {
        s.switchover_done = None;
        s.switchover_refused = None;
        return;
    }
    let Some(trigger) = s.annotations.get(TRIGGER_SWITCHOVER).cloned() else {
        return;
    };
    if s.switchover_done.as_deref() == Some(trigger.as_str()) {
        return;
    }
    let why = if spec["type"] == "Failover" && !spec["targetInstance"].is_string() {
        "TargetInstance required when type is Failover"
    } else {
        "need more than one instance to switchover"
    };
    if s.switchover_refused.as_deref() != Some(trigger.as_str()) {
        s.switchover_refused = Some(trigger.clone());
        p.errors
            .push(format!("{name}: switchover {trigger:?}: {why}"));
    }
}

pub(crate) fn start_server(bin: &Path, data: &Path) -> Result<(), String> {
    let log = data.with_extension("log");
    pg(
        bin,
        "pg_ctl",
        &[
            "-D",
            &data.to_string_lossy(),
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            "30",
            "start",
        ],
    )
    .map(|_| ())
}

pub(crate) fn stop_server(bin: &Path, data: &Path, mode: &str) -> Result<(), String> {
    pg(
        bin,
        "pg_ctl",
        &["-D", &data.to_string_lossy(), "-m", mode, "-w", "stop"],
    )
    .map(|_| ())
}

/// A standby of the server on `from_port`, as PGO's standby bootstrap by streaming.
pub(crate) fn basebackup(
    bin: &Path,
    root: &Path,
    data: &Path,
    from_port: u16,
    port: u16,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(data);
    pg(
        bin,
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &from_port.to_string(),
            "-U",
            "postgres",
            "-D",
            &data.to_string_lossy(),
            "-R",
            "-X",
            "stream",
            // An immediate checkpoint: a spread one paces itself over minutes.
            "-c",
            "fast",
        ],
    )?;
    let auto = data.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf.push_str(&server_conf(port, root));
    std::fs::write(&auto, conf).map_err(|e| e.to_string())?;
    chown_postgres(data);
    Ok(())
}

pub(crate) fn connect(port: u16, db: &str) -> Result<postgres::Client, String> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(db)
        .connect_timeout(Duration::from_secs(2))
        .connect(postgres::NoTls)
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))
}

pub(crate) fn sql(port: u16, text: &str) -> Result<(), String> {
    sql_in(port, "postgres", text)
}

pub(crate) fn sql_in(port: u16, db: &str, text: &str) -> Result<(), String> {
    connect(port, db)?.batch_execute(text).map_err(|e| {
        let why = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        format!("127.0.0.1:{port}: {why}")
    })
}

/// What the server answers: in recovery or not, and its timeline.
pub(crate) fn observe(port: u16) -> Option<(bool, i64)> {
    let mut c = connect(port, "postgres").ok()?;
    let row = c
        .query_one(
            "SELECT pg_is_in_recovery(), (SELECT timeline_id::bigint FROM pg_control_checkpoint())",
            &[],
        )
        .ok()?;
    Some((row.get(0), row.get(1)))
}

/// What the reconciler must do to one site's server to match its spec.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Stop,
    /// The site is lost (`site-down`): its server stops as a crash would.
    Crash,
    Start,
    Promote,
    Remove,
    /// Bootstrap as a standby of the primary on this port.
    Bootstrap(u16),
    ReplayDelay(Duration),
}

fn next_op(s: &PgoSite, ports: &BTreeMap<u16, ()>, lost: bool) -> Option<Op> {
    if lost {
        // A lost site's server is down, whatever its spec says, until the site is back.
        return s.running.then_some(Op::Crash);
    }
    if s.deleted {
        return (s.running || s.data.exists()).then_some(Op::Remove);
    }
    if s.paused() {
        return None;
    }
    if s.recreated || !s.data.exists() {
        // Only as a standby of a writable primary (a new primary would be initdb).
        let port = s.spec["standby"]["port"].as_u64().unwrap_or(0) as u16;
        return (s.standby() && ports.contains_key(&port)).then_some(Op::Bootstrap(port));
    }
    if s.shutdown() {
        return s.running.then_some(Op::Stop);
    }
    if !s.running {
        return Some(Op::Start);
    }
    if !s.standby() && s.in_recovery == Some(true) {
        return Some(Op::Promote);
    }
    None
}

fn run_op(bin: &Path, root: &Path, s: &PgoSite, op: &Op) -> Result<(), String> {
    match op {
        Op::Stop => stop_server(bin, &s.data, "fast"),
        Op::Crash => stop_server(bin, &s.data, "immediate"),
        Op::Start => start_server(bin, &s.data),
        Op::Promote => {
            pg(
                bin,
                "pg_ctl",
                &["-D", &s.data.to_string_lossy(), "-w", "promote"],
            )?;
            // PGO writes the users from the promoted cluster's own secret.
            sql(
                s.port,
                &format!(
                    "ALTER ROLE {USER} PASSWORD '{}'",
                    s.password.replace('\'', "''")
                ),
            )
        }
        Op::Remove => {
            let _ = stop_server(bin, &s.data, "immediate");
            std::fs::remove_dir_all(&s.data).map_err(|e| e.to_string())
        }
        Op::Bootstrap(from) => {
            let _ = stop_server(bin, &s.data, "immediate");
            basebackup(bin, root, &s.data, *from, s.port)?;
            start_server(bin, &s.data)
        }
        Op::ReplayDelay(d) => sql(
            s.port,
            &format!(
                "ALTER SYSTEM SET recovery_min_apply_delay = '{}ms'",
                d.as_millis()
            ),
        )
        .and_then(|()| sql(s.port, "SELECT pg_reload_conf()")),
    }
}

/// Bring each site's server to its spec, then read what it is: every 100 ms.
pub fn spawn_reconciler(shared: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tick += 1;
            let s2 = shared.clone();
            let _ =
                tokio::task::spawn_blocking(move || reconcile_once(&s2, tick.is_multiple_of(5)))
                    .await;
        }
    })
}

fn reconcile_once(shared: &Shared, heartbeat: bool) {
    let (bin, root, sites, delay, lost) = {
        let lab = shared.lock();
        let Some(p) = &lab.pgo else { return };
        let delay = lab.world.faults.iter().find_map(|f| match f {
            crate::Fault::PgReplayDelay { delay } => Some(*delay),
            _ => None,
        });
        let lost: Vec<String> = p
            .sites
            .keys()
            .filter(|s| lab.world.site_down(s))
            .cloned()
            .collect();
        (p.bin.clone(), p.root.clone(), p.sites.clone(), delay, lost)
    };
    let ports: BTreeMap<u16, ()> = sites
        .values()
        .filter(|s| s.running && s.in_recovery == Some(false))
        .map(|s| (s.port, ()))
        .collect();
    for (name, s) in &sites {
        let mut op = next_op(s, &ports, lost.contains(name));
        if op.is_none() && s.running && s.in_recovery == Some(true) && delay != s.replay_delay {
            op = Some(Op::ReplayDelay(delay.unwrap_or_default()));
        }
        let result = op.as_ref().map(|op| run_op(&bin, &root, s, op));
        let seen = observe(s.port);
        if heartbeat && seen.is_some_and(|(rec, _)| !rec) {
            let _ = connect(s.port, DATABASE).and_then(|mut c| {
                c.batch_execute("INSERT INTO lab_heartbeat DEFAULT VALUES")
                    .map_err(|e| e.to_string())
            });
        }
        let mut lab = shared.lock();
        let Some(p) = lab.pgo.as_mut() else { return };
        if let (Some(Err(e)), Some(op)) = (&result, &op) {
            p.errors.push(format!("{name}: {op:?}: {e}"));
        }
        let Some(site) = p.sites.get_mut(name) else {
            continue;
        };
        site.running = seen.is_some();
        site.in_recovery = seen.map(|(r, _)| r);
        site.timeline = seen.map(|(_, t)| t).or(site.timeline);
        match (&op, &result) {
            (Some(Op::Stop), Some(Ok(()))) => site.startup_instance = Some(site.instance.clone()),
            (Some(Op::ReplayDelay(d)), Some(Ok(()))) => {
                site.replay_delay = (!d.is_zero()).then_some(*d)
            }
            (Some(Op::Bootstrap(_)), Some(Ok(()))) => {
                site.instance = instance_name();
                site.recreated = false;
            }
            _ => {}
        }
        let name_owned = name.clone();
        switchover(p, &name_owned);
        let Some(site) = p.sites.get_mut(name) else {
            continue;
        };
        // The operator has caught up with the spec once nothing is left to do.
        if !site.paused() && op.is_none() {
            site.observed_generation = site.generation;
        }
    }
}

impl Pgo {
    /// Stop every server and remove their data (the lab is going away).
    pub fn stop_all(&self) {
        remove_all(&self.bin, &self.root);
    }
}

/// A Keycloak CR's `spec.db` pointing at this PGO cluster's primary at `host:port`,
/// its credentials from the pguser secret (same namespace as the Keycloak CR).
pub fn keycloak_db(host: &str, port: u16) -> Value {
    let secret = format!("{CLUSTER}-pguser-{USER}");
    json!({"vendor": "postgres", "host": host, "port": port, "database": DATABASE,
           "usernameSecret": {"name": secret, "key": "user"},
           "passwordSecret": {"name": secret, "key": "password"}})
}

pub(crate) fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The PostgresCluster as the API server returns it (`postgrescluster_types.go`).
pub fn cluster_object(site: &PgoSite, namespace: &str) -> Value {
    let replicas = u32::from(site.running);
    let mut conditions = vec![];
    if site.paused() {
        conditions.push(
            json!({"type": "Progressing", "status": "False", "reason": "Paused",
            "message": "No spec changes will be applied and no other statuses will be updated."}),
        );
    }
    let mut status = json!({
        "observedGeneration": site.observed_generation,
        "instances": [{"name": INSTANCE_SET, "replicas": replicas, "readyReplicas": replicas,
                       "updatedReplicas": replicas}],
        "patroni": {"systemIdentifier": "7300000000000000000", "switchover": site.switchover_done},
        "postgresVersion": 15,
        "conditions": conditions,
    });
    if let Some(i) = &site.startup_instance {
        status["startupInstance"] = json!(i);
        status["startupInstanceSet"] = json!(INSTANCE_SET);
    }
    json!({
        "apiVersion": "postgres-operator.crunchydata.com/v1beta1",
        "kind": "PostgresCluster",
        "metadata": {"name": CLUSTER, "namespace": namespace, "generation": site.generation,
                     "uid": format!("{}-{CLUSTER}", site.port), "annotations": site.annotations,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": site.spec,
        "status": status,
    })
}

/// The instance pod, when its server runs: the labels PGO sets (`internal/naming`)
/// and Patroni's `status` annotation.
pub fn pod_object(site: &PgoSite, namespace: &str) -> Option<Value> {
    if !site.running || site.deleted {
        return None;
    }
    let role = match site.in_recovery {
        Some(false) => "master",
        _ => "standby_leader",
    };
    let status = json!({"role": role, "state": "running", "timeline": site.timeline.unwrap_or(1)})
        .to_string();
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{}-0", site.instance), "namespace": namespace,
            "labels": {
                "postgres-operator.crunchydata.com/cluster": CLUSTER,
                "postgres-operator.crunchydata.com/instance-set": INSTANCE_SET,
                "postgres-operator.crunchydata.com/instance": site.instance,
                "postgres-operator.crunchydata.com/role": "master",
                "postgres-operator.crunchydata.com/data": "postgres",
                "postgres-operator.crunchydata.com/patroni": format!("{CLUSTER}-ha"),
            },
            "annotations": {"status": status},
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "database"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "database", "ready": true}]},
    }))
}

/// `<cluster>-pguser-<user>` (`postgres.go`): the keys PGO writes, base64 as the API
/// server returns secret data. `host` is the in-cluster primary service.
pub fn secret_object(site: &PgoSite, namespace: &str) -> Value {
    let host = format!("{CLUSTER}-primary.{namespace}.svc");
    let pw = &site.password;
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("{CLUSTER}-pguser-{USER}"), "namespace": namespace,
            "labels": {"postgres-operator.crunchydata.com/cluster": CLUSTER,
                       "postgres-operator.crunchydata.com/pguser": USER}},
        "data": {
            "user": b64(USER), "password": b64(pw), "dbname": b64(DATABASE),
            "host": b64(&host), "port": b64("5432"),
            "uri": b64(&format!("postgresql://{USER}:{pw}@{host}:5432/{DATABASE}")),
            "jdbc-uri": b64(&format!("jdbc:postgresql://{host}:5432/{DATABASE}?password={pw}&user={USER}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a half-done setup leaves is taken down: a running server and its data.
    #[test]
    fn remove_all_stops_every_server_under_its_root_and_removes_it() {
        let Some(bin) = find_bin() else {
            eprintln!("SKIPPED: no PostgreSQL server binaries");
            return;
        };
        let root =
            std::env::temp_dir().join(format!("runbook-lab-pgo-test-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(&root).unwrap();
        chown_postgres(&root);
        let data = root.join("site-a");
        pg(
            &bin,
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
            ],
        )
        .unwrap();
        let port = free_port().unwrap();
        write(
            &data.join("postgresql.auto.conf"),
            &server_conf(port, &root),
        )
        .unwrap();
        start_server(&bin, &data).unwrap();
        assert!(observe(port).is_some(), "the server runs");
        remove_all(&bin, &root);
        assert!(observe(port).is_none(), "the server is stopped");
        assert!(!root.exists(), "its data is removed");
    }
}
