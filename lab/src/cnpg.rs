//! CloudNativePG's distributed topology over real PostgreSQL servers
//! (`../shared/docs/cnpg.md`, facts from cloudnative-pg at v1.30.0): one `Cluster`
//! (`postgresql.cnpg.io/v1`) per site, served by that site's Kubernetes API
//! (`kube.rs`), backed by one PostgreSQL server on loopback; the first site's is the
//! primary and the second's a replica cluster streaming from it. A reconciler does to
//! the servers what CloudNativePG's operator and instance manager do:
//! - a cluster that turns replica while its server runs as a primary is **demoted**: a
//!   fast shutdown, `pg_controldata` (with `LC_ALL=C`) must say `shut down`, and its
//!   values become `status.demotionToken` (base64 of the JSON of §3.6, keys in that
//!   order, string values); the server restarts as a standby of the source cluster,
//!   following the latest timeline (no base backup). No token after an unclean shutdown.
//! - a replica cluster turned primary is **promoted**: without a token at once (a
//!   failover); with a token not yet used, only once a `CHECKPOINT` on it leaves a
//!   restartpoint whose REDO location equals the token's, as `promotion_token.go`
//!   checks (an older one: wait; past it, or another system or timeline: the cluster
//!   is unrecoverable); then `lastPromotionToken` is the token.
//! - the admission webhook's rules reject a bad spec with CloudNativePG's messages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pgo::{
    b64, basebackup, chown_postgres, connect, find_bin, free_port, hba, is_root, observe, pg,
    remove_all, server_conf, sql, sql_in, start_server, stop_server, write,
};
use crate::{LabError, Shared};

/// The app user and database (CloudNativePG's default `initdb` owner and database).
pub const USER: &str = "app";
pub const DATABASE: &str = "app";
/// The operator version written into tokens.
const OPERATOR_VERSION: &str = "1.30.0";
const PHASE_HEALTHY: &str = "Cluster in healthy state";
const PHASE_PROMOTING: &str = "Promoting to primary cluster";
const PHASE_UNRECOVERABLE: &str = "Cluster is unrecoverable and needs manual intervention";

/// The Cluster's name at a site.
pub fn cluster_name(site: &str) -> String {
    format!("pg-{site}")
}

/// One site's Cluster and the server behind its one instance.
#[derive(Debug, Clone)]
pub struct CnpgSite {
    pub name: String,
    pub port: u16,
    pub data: PathBuf,
    pub spec: Value,
    pub generation: u64,
    pub demotion_token: Option<String>,
    /// When the token was written (the `cnpg-token-vanishes` fault wipes it 1 s later).
    pub token_written: Option<Instant>,
    pub last_promotion_token: Option<String>,
    pub phase: String,
    pub phase_reason: String,
    pub in_progress: bool,
    pub password: String,
    /// What the reconciler last saw of the server.
    pub running: bool,
    pub in_recovery: Option<bool>,
    pub timeline: Option<i64>,
    /// Deleted (GET answers 404): the reconciler stops the server and removes its data,
    /// as deleting the Cluster and its PVCs does.
    pub deleted: bool,
    /// Created again: bootstrapped by `pg_basebackup` from `spec.bootstrap.pg_basebackup.source`.
    pub recreated: bool,
    /// `metadata.annotations` as written through the API: `cnpg.io/hibernation` and
    /// `cnpg.io/fencedInstances` act (`cnpg:docs/src/{declarative_hibernation,fencing}.md@v1.30.0`).
    pub annotations: Value,
}

impl CnpgSite {
    /// `IsReplica()` (`cluster_funcs.go`): no stanza → primary; `enabled` wins; else
    /// replica iff this cluster's name in the topology is not `primary`.
    pub fn is_replica(&self) -> bool {
        let r = &self.spec["replica"];
        if !r.is_object() {
            return false;
        }
        if let Some(e) = r["enabled"].as_bool() {
            return e;
        }
        let me = r["self"].as_str().unwrap_or(&self.name);
        r["primary"].as_str() != Some(me)
    }

    fn promotion_token(&self) -> Option<String> {
        self.spec["replica"]["promotionToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    }

    fn source(&self) -> Option<String> {
        self.spec["replica"]["source"].as_str().map(str::to_string)
    }

    /// `cnpg.io/hibernation: "on"`: every instance deleted, the PVCs kept.
    pub fn hibernated(&self) -> bool {
        self.annotations[HIBERNATION] == "on"
    }

    /// `cnpg.io/fencedInstances`: a JSON list of instance names, `["*"]` the whole
    /// cluster; `[]` or absent: none. This lab's one instance is `<cluster>-1`.
    pub fn fenced(&self) -> bool {
        let list: Vec<String> = self.annotations[FENCED]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let me = format!("{}-1", self.name);
        list.iter().any(|n| n == "*" || *n == me)
    }
}

/// The annotations that stop a cluster's instances.
pub const HIBERNATION: &str = "cnpg.io/hibernation";
pub const FENCED: &str = "cnpg.io/fencedInstances";

/// CloudNativePG at every site.
#[derive(Debug)]
pub struct Cnpg {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub sites: BTreeMap<String, CnpgSite>,
    pub errors: Vec<String>,
}

fn external(names: &[(String, u16)]) -> Value {
    json!(names
        .iter()
        .map(|(n, port)| json!({"name": n, "connectionParameters": {
            "host": "127.0.0.1", "port": port.to_string(), "user": "streaming_replica", "dbname": "postgres"}}))
        .collect::<Vec<_>>())
}

/// The stanza Keycloak's guide asks of each site's Cluster (cnpg.md 3.14): every
/// commit of the primary waits for the other site's designated primary, which appears
/// under its Cluster's name; put on both Clusters (it acts only on the primary).
pub fn synchronous_stanza(other: &str) -> Value {
    json!({"method": "first", "number": 1, "standbyNamesPre": [other],
           "maxStandbyNamesFromCluster": 0, "dataDurability": "required"})
}

fn spec_of(
    me: &str,
    primary: &str,
    source: &str,
    all: &[(String, u16)],
    synchronous: bool,
) -> Value {
    let other = all
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| *n != me)
        .unwrap_or(me);
    let mut spec = json!({
        "instances": 1,
        "imageName": "ghcr.io/cloudnative-pg/postgresql:15",
        "bootstrap": {"initdb": {"database": DATABASE, "owner": USER, "secret": {"name": format!("{me}-app")}}},
        "replica": {"self": me, "primary": primary, "source": source},
        "externalClusters": external(all),
        "storage": {"size": "1Gi"},
    });
    if synchronous {
        spec["postgresql"] = json!({"synchronous": synchronous_stanza(other)});
    }
    spec
}

/// `synchronous_standby_names` as CloudNativePG writes it from a Cluster's spec for its
/// primary (`pkg/postgres/replication/explicit.go`, `SynchronousStandbyNamesConfig.String`
/// in `pkg/postgres/configuration.go`, cloudnative-pg v1.30.0): `required`: the
/// `standbyNamesPre`, the cluster's instances capped at `maxStandbyNamesFromCluster`
/// (this lab's one instance, `<cluster>-1`, is the primary itself), then the
/// `standbyNamesPost`, each in double quotes, joined by `,`, as `FIRST|ANY n (...)`
/// (an empty list becomes `<cluster>-placeholder`); `preferred`: only healthy
/// non-primary instances, none here, so nothing. No stanza (and no
/// `minSyncReplicas`): empty, asynchronous.
pub fn synchronous_standby_names(name: &str, spec: &Value) -> String {
    let c = &spec["postgresql"]["synchronous"];
    if !c.is_object() || c["dataDurability"] == "preferred" {
        return String::new();
    }
    let strings = |k: &str| -> Vec<String> {
        c[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut own = vec![format!("{name}-1")];
    if let Some(max) = c["maxStandbyNamesFromCluster"].as_u64() {
        own.truncate(max as usize);
    }
    let mut names = strings("standbyNamesPre");
    names.extend(own);
    names.extend(strings("standbyNamesPost"));
    if names.is_empty() {
        names.push(format!("{name}-placeholder"));
    }
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect();
    format!(
        "{} {} ({})",
        c["method"].as_str().unwrap_or("any").to_uppercase(),
        c["number"].as_u64().unwrap_or(1),
        quoted.join(",")
    )
}

/// The file each server includes for its `synchronous_standby_names` (the instance
/// manager writes it into the configuration it owns and reloads).
const SYNC_CONF: &str = "cnpg-sync.conf";

/// Bring a running server's `synchronous_standby_names` to what its spec says:
/// rewritten and reloaded only when it changed.
fn apply_synchronous(bin: &std::path::Path, s: &CnpgSite) -> Result<(), String> {
    let want = format!(
        "synchronous_standby_names = '{}'\n",
        synchronous_standby_names(&s.name, &s.spec).replace('\'', "''")
    );
    let path = s.data.join(SYNC_CONF);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    std::fs::write(&path, want).map_err(|e| e.to_string())?;
    chown_postgres(&path);
    pg(bin, "pg_ctl", &["-D", &s.data.to_string_lossy(), "reload"]).map(|_| ())
}

/// A primary at the first site and a replica cluster streaming from it at the
/// second (blocking: off the async runtime).
///
/// # Errors
/// No PostgreSQL binaries, or a server that does not start.
pub fn setup(sites: &[String], password: &str, synchronous: bool) -> Result<Cnpg, LabError> {
    let bin = find_bin().ok_or_else(|| {
        LabError::Pgo("CloudNativePG's lab needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, pg_controldata): install Debian's postgresql, or set RUNBOOK_LAB_PG_BIN".into())
    })?;
    let root = std::env::temp_dir().join(format!("runbook-lab-cnpg-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&root).map_err(|error| LabError::Write {
        path: root.clone(),
        error,
    })?;
    let made = setup_in(bin.clone(), root.clone(), sites, password, synchronous);
    if made.is_err() {
        remove_all(&bin, &root);
    }
    made
}

fn setup_in(
    bin: PathBuf,
    root: PathBuf,
    sites: &[String],
    password: &str,
    synchronous: bool,
) -> Result<Cnpg, LabError> {
    let e = |e: String| LabError::Pgo(e);
    chown_postgres(&root);
    let ports: Vec<(String, u16)> = sites
        .iter()
        .map(|s| Ok((cluster_name(s), free_port()?)))
        .collect::<Result<_, LabError>>()?;
    let (primary, port_a) = (&ports[0].0, ports[0].1);
    let data_a = root.join(&sites[0]);
    pg(
        &bin,
        "initdb",
        &[
            "-D",
            &data_a.to_string_lossy(),
            "-U",
            "postgres",
            "--auth=trust",
            "-k",
        ],
    )
    .map_err(e)?;
    write(
        &data_a.join("postgresql.auto.conf"),
        &format!("{}cluster_name = '{primary}'\n", server_conf(port_a, &root)),
    )?;
    write(&data_a.join("pg_hba.conf"), &hba(false))?;
    // Every server includes the file its `synchronous_standby_names` is written to
    // (copied with the rest by each base backup).
    let conf = data_a.join("postgresql.conf");
    let mut main = std::fs::read_to_string(&conf).unwrap_or_default();
    main.push_str(&format!("include_if_exists = '{SYNC_CONF}'\n"));
    write(&conf, &main)?;
    chown_postgres(&data_a);
    start_server(&bin, &data_a).map_err(e)?;
    sql(
        port_a,
        &format!("CREATE ROLE {USER} LOGIN PASSWORD '{password}'"),
    )
    .map_err(e)?;
    sql(port_a, &format!("CREATE DATABASE {DATABASE} OWNER {USER}")).map_err(e)?;
    sql_in(
        port_a,
        DATABASE,
        &format!("CREATE TABLE lab_rows (id bigserial PRIMARY KEY, note text, at timestamptz NOT NULL DEFAULT now()); ALTER TABLE lab_rows OWNER TO {USER};"),
    )
    .map_err(e)?;
    let mut cnpg = Cnpg {
        bin,
        root,
        sites: BTreeMap::new(),
        errors: Vec::new(),
    };
    for (i, site) in sites.iter().enumerate() {
        let (name, port) = ports[i].clone();
        let data = cnpg.root.join(site);
        if i > 0 {
            basebackup(&cnpg.bin, &cnpg.root, &data, port_a, port).map_err(e)?;
            let auto = data.join("postgresql.auto.conf");
            let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
            conf.push_str(&format!(
                "cluster_name = '{name}'\nrecovery_target_timeline = 'latest'\n"
            ));
            write(&auto, &conf)?;
            chown_postgres(&data);
            start_server(&cnpg.bin, &data).map_err(e)?;
        }
        let source = if i == 0 {
            ports[1].0.clone()
        } else {
            primary.clone()
        };
        cnpg.sites.insert(
            site.clone(),
            CnpgSite {
                spec: spec_of(&name, primary, &source, &ports, synchronous),
                name,
                port,
                data,
                generation: 1,
                demotion_token: None,
                token_written: None,
                last_promotion_token: None,
                phase: PHASE_HEALTHY.into(),
                phase_reason: String::new(),
                in_progress: false,
                password: password.to_string(),
                running: true,
                in_recovery: Some(i > 0),
                timeline: Some(1),
                deleted: false,
                recreated: false,
                annotations: json!({}),
            },
        );
    }
    // The servers run their Cluster's synchronous configuration before the lab is
    // handed over (as a deployed CloudNativePG's do), not at the reconciler's first pass.
    for site in cnpg.sites.values() {
        run_synchronous(&cnpg.bin, site).map_err(e)?;
    }
    Ok(cnpg)
}

/// Apply a server's synchronous configuration and wait until it runs it.
fn run_synchronous(bin: &std::path::Path, site: &CnpgSite) -> Result<(), String> {
    apply_synchronous(bin, site)?;
    let want = synchronous_standby_names(&site.name, &site.spec);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running_names(site.port).as_deref() != Some(want.as_str()) {
        if Instant::now() > deadline {
            return Err(format!(
                "{}'s server does not run synchronous_standby_names `{want}` after a reload",
                site.name
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `synchronous_standby_names` as a server runs it now.
fn running_names(port: u16) -> Option<String> {
    let mut c = connect(port, "postgres").ok()?;
    c.query_one("SHOW synchronous_standby_names", &[])
        .ok()
        .map(|r| r.get::<_, String>(0))
}

/// `pg_controldata` as CloudNativePG reads it: `LC_ALL=C`, each line split at the
/// first `:` and trimmed (`ParsePgControldataOutput`).
fn controldata(
    bin: &std::path::Path,
    data: &std::path::Path,
) -> Result<BTreeMap<String, String>, String> {
    let exe = bin.join("pg_controldata");
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = c
        .arg("-D")
        .arg(data)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run pg_controldata: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// The token of a cleanly shut down server (§3.6), or why there is none.
fn token_of(cd: &BTreeMap<String, String>) -> Result<String, String> {
    let state = cd
        .get("Database cluster state")
        .cloned()
        .unwrap_or_default();
    if state != "shut down" && state != "shut down in recovery" {
        return Err(format!(
            "the server is not shut down cleanly (`{state}`): no token"
        ));
    }
    let get = |k: &str| cd.get(k).cloned().unwrap_or_default();
    // Keys in PgControldataTokenContent's order, every value a string.
    let text = format!(
        "{{\"latestCheckpointTimelineID\":{},\"redoWalFile\":{},\"databaseSystemIdentifier\":{},\"latestCheckpointREDOLocation\":{},\"timeOfLatestCheckpoint\":{},\"operatorVersion\":{}}}",
        json!(get("Latest checkpoint's TimeLineID")),
        json!(get("Latest checkpoint's REDO WAL file")),
        json!(get("Database system identifier")),
        json!(get("Latest checkpoint's REDO location")),
        json!(get("Time of latest checkpoint")),
        json!(OPERATOR_VERSION),
    );
    Ok(b64(&text))
}

fn lsn(s: &str) -> u64 {
    s.split_once('/')
        .and_then(|(h, l)| {
            Some((u64::from_str_radix(h, 16).ok()? << 32) | u64::from_str_radix(l, 16).ok()?)
        })
        .unwrap_or(0)
}

/// What a replica's check of a promotion token says (`promotion_token.go`): `Ok` to
/// promote, `Err((fatal, why))`.
fn check_token(token: &str, cd: &BTreeMap<String, String>) -> Result<(), (bool, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|e| (true, format!("Invalid promotionToken format: {e}")))?;
    let t: Value = serde_json::from_slice(&raw)
        .map_err(|e| (true, format!("Invalid promotionToken format: {e}")))?;
    let want = |k: &str| t[k].as_str().unwrap_or_default().to_string();
    let have = |k: &str| cd.get(k).cloned().unwrap_or_default();
    let (sys, cur_sys) = (
        want("databaseSystemIdentifier"),
        have("Database system identifier"),
    );
    if sys != cur_sys {
        return Err((
            true,
            format!("mismatching system identifiers, current:{cur_sys} wanted:{sys}"),
        ));
    }
    let tli: u64 = want("latestCheckpointTimelineID").parse().unwrap_or(0);
    let cur_tli: u64 = have("Latest checkpoint's TimeLineID").parse().unwrap_or(0);
    if tli > cur_tli {
        return Err((
            false,
            format!("requested timeline not reached, current:{cur_tli} wanted:{tli}"),
        ));
    }
    if tli < cur_tli {
        return Err((
            true,
            format!("requested timeline is older than current one, current:{cur_tli} wanted:{tli}"),
        ));
    }
    let (redo, cur) = (
        want("latestCheckpointREDOLocation"),
        have("Latest checkpoint's REDO location"),
    );
    match lsn(&redo).cmp(&lsn(&cur)) {
        std::cmp::Ordering::Greater => Err((false, format!("waiting for promotion token LSN ({redo}) to be replayed (the last replayed LSN is {cur})"))),
        std::cmp::Ordering::Less => Err((true, format!("promotion token LSN ({redo}) is older than the last replay LSN ({cur})"))),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Configure a stopped server to start as a standby of the server on `source_port`,
/// following the latest timeline (what the instance manager writes: `standby.signal`
/// and `primary_conninfo`).
fn as_standby(s: &CnpgSite, source_port: u16) -> Result<(), String> {
    let auto = s.data.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf.push_str(&format!(
        "primary_conninfo = 'host=127.0.0.1 port={source_port} user=postgres application_name={}'\nrecovery_target_timeline = 'latest'\n",
        s.name
    ));
    std::fs::write(&auto, conf).map_err(|e| e.to_string())?;
    std::fs::write(s.data.join("standby.signal"), "").map_err(|e| e.to_string())?;
    chown_postgres(&s.data);
    Ok(())
}

/// Demote a site whose server runs as a primary: fast shutdown, the token, restart as
/// a standby of `source`.
fn demote(bin: &std::path::Path, s: &mut CnpgSite, source_port: u16) -> Result<(), String> {
    s.in_progress = true;
    stop_server(bin, &s.data, "fast")?;
    let cd = controldata(bin, &s.data)?;
    let token = token_of(&cd)?;
    as_standby(s, source_port)?;
    start_server(bin, &s.data)?;
    s.demotion_token = Some(token);
    s.token_written = Some(Instant::now());
    s.in_progress = false;
    Ok(())
}

/// Promote a replica cluster turned primary: with a token not yet used, only once its
/// restartpoint equals the token's (checked each reconcile, as the instance manager's
/// requeue does).
fn promote(bin: &std::path::Path, s: &mut CnpgSite) -> Result<(), String> {
    if s.phase == PHASE_UNRECOVERABLE {
        return Ok(());
    }
    let token = s
        .promotion_token()
        .filter(|t| Some(t) != s.last_promotion_token.as_ref());
    if let Some(t) = &token {
        sql(s.port, "CHECKPOINT")?;
        let cd = controldata(bin, &s.data)?;
        if let Err((fatal, why)) = check_token(t, &cd) {
            s.phase = if fatal {
                PHASE_UNRECOVERABLE
            } else {
                PHASE_PROMOTING
            }
            .into();
            s.phase_reason = if fatal {
                "Promotion token content is not correct for current instance".into()
            } else {
                why.clone()
            };
            return if fatal { Err(why) } else { Ok(()) };
        }
    }
    pg(
        bin,
        "pg_ctl",
        &["-D", &s.data.to_string_lossy(), "-w", "promote"],
    )?;
    let _ = sql(s.port, "CHECKPOINT");
    if let Some(t) = token {
        s.last_promotion_token = Some(t);
    }
    s.phase = PHASE_HEALTHY.into();
    s.phase_reason = String::new();
    Ok(())
}

/// The admission webhook's rules on a new spec (`cluster_webhook.go`), with its words.
pub fn validate(name: &str, spec: &Value, in_progress: bool, old: &Value) -> Result<(), Denied> {
    validate_in(name, spec, in_progress, old).map_err(Denied)
}

/// The admission webhook's refusal, in CloudNativePG's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

fn validate_in(name: &str, spec: &Value, in_progress: bool, old: &Value) -> Result<(), String> {
    validate_synchronous(spec)?;
    let r = &spec["replica"];
    if r.is_null() {
        return Ok(());
    }
    if r["enabled"].is_boolean() && r["primary"].is_string() {
        return Err("replica mode enabled is not compatible with the primary field".into());
    }
    let names: Vec<&str> = spec["externalClusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for key in ["source", "self", "primary"] {
        if let Some(n) = r[key].as_str() {
            if !names.contains(&n) {
                return Err(format!("External cluster {n} not found"));
            }
        }
    }
    let me = r["self"].as_str().unwrap_or(name);
    let replica = r["enabled"]
        .as_bool()
        .unwrap_or_else(|| r["primary"].as_str() != Some(me));
    if r["promotionToken"].as_str().is_some_and(|t| !t.is_empty()) && replica {
        return Err("promotionToken is only allowed for primary clusters".into());
    }
    if in_progress && r["primary"] != old["replica"]["primary"] {
        return Err("cannot modify the field while there is an ongoing operation to enable the replica cluster".into());
    }
    Ok(())
}

/// `spec.postgresql.synchronous`: the CRD's rules (`api/v1/cluster_types.go`: `method`
/// any|first, `number` > 0, `preferred` only with no standby names) and the webhook's
/// (`validateSynchronousReplicaConfiguration`: fewer than instances + standby names),
/// in their words (cloudnative-pg v1.30.0).
fn validate_synchronous(spec: &Value) -> Result<(), String> {
    let c = &spec["postgresql"]["synchronous"];
    if c.is_null() {
        return Ok(());
    }
    if !matches!(c["method"].as_str(), Some("any" | "first")) {
        return Err(format!(
            "spec.postgresql.synchronous.method: Unsupported value: {}: supported values: \"any\", \"first\"",
            c["method"]
        ));
    }
    let number = c["number"].as_i64().unwrap_or(0);
    if number <= 0 {
        return Err("spec.postgresql.synchronous.number: Invalid value: The number of synchronous replicas should be greater than zero".into());
    }
    let count = |k: &str| c[k].as_array().map_or(0, Vec::len) as i64;
    if c["dataDurability"] == "preferred"
        && count("standbyNamesPre") + count("standbyNamesPost") > 0
    {
        return Err("spec.postgresql.synchronous: Invalid value: \"object\": dataDurability set to 'preferred' requires empty 'standbyNamesPre' and empty 'standbyNamesPost'".into());
    }
    let instances = spec["instances"].as_i64().unwrap_or(1);
    if number >= instances + count("standbyNamesPre") + count("standbyNamesPost") {
        return Err("spec.postgresql.synchronous: Invalid value: Invalid synchronous configuration: the number of synchronous replicas must be less than the total number of instances and the provided standby names.".into());
    }
    Ok(())
}

/// The Cluster object as the API server returns it.
pub fn cluster_object(s: &CnpgSite, namespace: &str) -> Value {
    let pod = format!("{}-1", s.name);
    let ready = s.running && s.phase == PHASE_HEALTHY;
    let mut status = json!({
        "phase": s.phase,
        "phaseReason": s.phase_reason,
        "instances": 1,
        "readyInstances": u32::from(s.running),
        "currentPrimary": pod,
        "targetPrimary": pod,
        "timelineID": s.timeline.unwrap_or(1),
        "writeService": format!("{}-rw", s.name),
        "readService": format!("{}-r", s.name),
        "switchReplicaClusterStatus": {"inProgress": s.in_progress},
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "reason": if ready { "ClusterIsReady" } else { "ClusterIsNotReady" },
                        "message": if ready { "Cluster is Ready" } else { "Cluster Is Not Ready" }}],
    });
    if s.hibernated() {
        // The trap (cnpg.md 3.5): the phase stays healthy with no instance running.
        if let Some(c) = status["conditions"].as_array_mut() {
            c.push(
                json!({"type": HIBERNATION, "status": "True", "reason": "Hibernated",
                          "message": "Cluster has been hibernated"}),
            );
        }
    }
    // Cleared whenever the cluster is not a replica (`cluster_status.go`).
    if let Some(t) = s.demotion_token.as_ref().filter(|_| s.is_replica()) {
        status["demotionToken"] = json!(t);
    }
    if let Some(t) = &s.last_promotion_token {
        status["lastPromotionToken"] = json!(t);
    }
    json!({
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": s.name, "namespace": namespace, "generation": s.generation,
                     "annotations": s.annotations},
        "spec": s.spec, "status": status,
    })
}

/// `<cluster>-app` (`kubernetes.io/basic-auth`), as CloudNativePG writes it.
pub fn secret_object(s: &CnpgSite, namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
           "metadata": {"name": format!("{}-app", s.name), "namespace": namespace},
           "data": {"username": b64(USER), "user": b64(USER), "password": b64(&s.password),
                    "dbname": b64(DATABASE), "host": b64(&format!("{}-rw", s.name)), "port": b64("5432")}})
}

/// Reconcile every site every 100 ms.
pub fn spawn_reconciler(shared: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let s2 = shared.clone();
            let _ = tokio::task::spawn_blocking(move || reconcile_once(&s2)).await;
        }
    })
}

/// Bootstrap a recreated Cluster as a replica of `source`'s server (the re-clone of a
/// former primary: its data is discarded).
fn bootstrap(
    bin: &std::path::Path,
    root: &std::path::Path,
    s: &mut CnpgSite,
    from_port: u16,
) -> Result<(), String> {
    let _ = stop_server(bin, &s.data, "immediate");
    basebackup(bin, root, &s.data, from_port, s.port)?;
    let auto = s.data.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf.push_str(&format!(
        "cluster_name = '{}'\nrecovery_target_timeline = 'latest'\n",
        s.name
    ));
    std::fs::write(&auto, conf).map_err(|e| e.to_string())?;
    chown_postgres(&s.data);
    start_server(bin, &s.data)?;
    s.recreated = false;
    s.demotion_token = None;
    s.token_written = None;
    s.last_promotion_token = None;
    s.phase = PHASE_HEALTHY.into();
    s.phase_reason = String::new();
    Ok(())
}

/// One site's server brought to what its Cluster says.
fn reconcile_site(
    bin: &std::path::Path,
    root: &std::path::Path,
    s: &mut CnpgSite,
    lost: bool,
    port_of: &dyn Fn(&str) -> Option<u16>,
) -> Result<(), String> {
    let seen = observe(s.port);
    if s.deleted {
        if seen.is_some() || s.data.exists() {
            let _ = stop_server(bin, &s.data, "immediate");
            std::fs::remove_dir_all(&s.data).map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if s.recreated {
        let source = s.spec["bootstrap"]["pg_basebackup"]["source"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return match port_of(&source) {
            Some(port) => bootstrap(bin, root, s, port),
            None => Err(format!(
                "bootstrap source `{source}` names no cluster of the topology"
            )),
        };
    }
    if lost {
        return if seen.is_some() {
            stop_server(bin, &s.data, "immediate")
        } else {
            Ok(())
        };
    }
    if s.hibernated() || s.fenced() {
        // Hibernation deletes the instances (data kept); fencing stops the postmaster
        // and keeps the pod: either way nothing answers until it is lifted.
        return if seen.is_some() {
            stop_server(bin, &s.data, "fast")
        } else {
            Ok(())
        };
    }
    let acted = match (seen, s.is_replica()) {
        (Some((false, _)), true) => match s.source().and_then(|c| port_of(&c)) {
            Some(port) => demote(bin, s, port),
            None => Err("the replica's source names no cluster of the topology".into()),
        },
        (Some((true, _)), false) => promote(bin, s),
        (None, replica) => {
            // A replica's instance starts as a standby of its source, whatever it was
            // before (a former primary back after a failover included).
            if replica && !s.data.join("standby.signal").exists() {
                let port = s
                    .source()
                    .and_then(|c| port_of(&c))
                    .ok_or("the replica's source names no cluster of the topology")?;
                as_standby(s, port)?;
            }
            start_server(bin, &s.data)
        }
        _ => Ok(()),
    };
    acted?;
    if observe(s.port).is_some() {
        apply_synchronous(bin, s)?;
    }
    Ok(())
}

fn reconcile_once(shared: &Shared) {
    let (bin, root, sites, lost, vanish) = {
        let lab = shared.lock();
        let Some(c) = &lab.cnpg else { return };
        let lost: Vec<String> = c
            .sites
            .keys()
            .filter(|s| lab.world.site_down(s))
            .cloned()
            .collect();
        let vanish = lab
            .world
            .faults
            .iter()
            .any(|f| matches!(f, crate::Fault::CnpgTokenVanishes));
        (c.bin.clone(), c.root.clone(), c.sites.clone(), lost, vanish)
    };
    let port_of = |cluster: &str| {
        sites
            .values()
            .find(|s| s.name == cluster && !s.deleted)
            .map(|s| s.port)
    };
    for (name, before) in &sites {
        let mut s = before.clone();
        let result = reconcile_site(&bin, &root, &mut s, lost.contains(name), &port_of);
        if vanish
            && s.token_written
                .is_some_and(|t| t.elapsed() > Duration::from_secs(1))
        {
            // #11074: a requeued reconcile patches an empty token back.
            s.demotion_token = None;
            s.token_written = None;
        }
        if !s.is_replica() {
            // Cleared whenever the cluster is not a replica (`cluster_status.go`).
            s.demotion_token = None;
            s.token_written = None;
        }
        let seen = observe(s.port);
        s.running = seen.is_some();
        s.in_recovery = seen.map(|(r, _)| r);
        s.timeline = seen.map(|(_, t)| t).or(s.timeline);
        let mut lab = shared.lock();
        let Some(c) = lab.cnpg.as_mut() else { return };
        if let Err(e) = result {
            c.errors.push(format!("{name}: {e}"));
        }
        // The spec may have been patched meanwhile: keep the API's, take the rest.
        if let Some(live) = c.sites.get_mut(name) {
            let spec = live.spec.clone();
            let annotations = live.annotations.clone();
            let generation = live.generation;
            let last_cleared = live.spec["replica"]["promotionToken"].is_null()
                && before.last_promotion_token.is_some();
            // What the API did meanwhile wins: a delete, a create.
            let deleted = live.deleted;
            let recreated = live.recreated && (!before.recreated || s.recreated);
            *live = CnpgSite {
                spec,
                annotations,
                generation,
                deleted,
                recreated,
                ..s
            };
            if last_cleared {
                // Cleared when `spec.replica.promotionToken` is emptied (`cluster_status.go`).
                live.last_promotion_token = None;
            }
        }
    }
}

impl Cnpg {
    /// Stop every server and remove their data (the lab is going away).
    pub fn stop_all(&self) {
        remove_all(&self.bin, &self.root);
    }

    /// Write a row on a site's server as the app would (the test's evidence that a
    /// move keeps what was committed before it).
    ///
    /// # Errors
    /// The server does not answer or does not write (a replica).
    pub fn write_row(&self, site: &str, note: &str) -> Result<(), LabError> {
        let s = self
            .sites
            .get(site)
            .ok_or_else(|| LabError::Pgo(format!("no site `{site}`")))?;
        let mut c = connect(s.port, DATABASE).map_err(LabError::Pgo)?;
        c.execute("INSERT INTO lab_rows (note) VALUES ($1)", &[&note])
            .map(|_| ())
            .map_err(|e| LabError::Pgo(e.to_string()))
    }

    /// Rows of the lab's table on a site's server (the test's evidence of what a move
    /// kept), or why they cannot be read.
    pub fn rows(&self, site: &str) -> Result<Vec<String>, LabError> {
        let s = self
            .sites
            .get(site)
            .ok_or_else(|| LabError::Pgo(format!("no site `{site}`")))?;
        let mut c = connect(s.port, DATABASE).map_err(LabError::Pgo)?;
        c.query("SELECT note FROM lab_rows ORDER BY id", &[])
            .map(|r| r.iter().map(|row| row.get::<_, String>(0)).collect())
            .map_err(|e| LabError::Pgo(e.to_string()))
    }
}

/// Where a site's Keycloak reaches the writer (the JDBC target), as the lab's Keycloak
/// CR says it: the writer's address, with the credentials of the site's own app
/// Secret (`local`'s `<cluster>-app`: a Secret lives in its own cluster; the sites'
/// hold the same password, as the move's guard checks).
pub fn keycloak_db(writer: &CnpgSite, local: &CnpgSite) -> Value {
    let secret = format!("{}-app", local.name);
    json!({"vendor": "postgres", "host": "127.0.0.1", "port": writer.port, "database": DATABASE,
           "usernameSecret": {"name": secret, "key": "username"},
           "passwordSecret": {"name": secret, "key": "password"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pg_controldata's lines as PG 15.18 printed them (../shared/docs/cnpg.md §3.6).
    fn cd(state: &str, redo: &str, tli: &str) -> BTreeMap<String, String> {
        [
            ("Database cluster state", state),
            ("Database system identifier", "7716556302591252345"),
            ("Latest checkpoint's TimeLineID", tli),
            ("Latest checkpoint's REDO location", redo),
            (
                "Latest checkpoint's REDO WAL file",
                "000000010000000000000003",
            ),
            ("Time of latest checkpoint", "Mon Dec  7 13:39:42 2026"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_token_is_the_cnpg_json_in_its_key_order_and_only_after_a_clean_shutdown() {
        use base64::Engine;
        let t = token_of(&cd("shut down", "0/3002E80", "1")).unwrap();
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&t)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"latestCheckpointTimelineID":"1","redoWalFile":"000000010000000000000003","databaseSystemIdentifier":"7716556302591252345","latestCheckpointREDOLocation":"0/3002E80","timeOfLatestCheckpoint":"Mon Dec  7 13:39:42 2026","operatorVersion":"1.30.0"}"#
        );
        assert!(token_of(&cd("in production", "0/3002E80", "1")).is_err());
    }

    #[test]
    fn a_replica_promotes_on_its_token_only_at_the_exact_redo_location() {
        let t = token_of(&cd("shut down", "0/3002E80", "1")).unwrap();
        assert!(check_token(&t, &cd("in archive recovery", "0/3002E80", "1")).is_ok());
        let (fatal, why) =
            check_token(&t, &cd("in archive recovery", "0/3000028", "1")).unwrap_err();
        assert!(
            !fatal && why.starts_with("waiting for promotion token LSN (0/3002E80)"),
            "{why}"
        );
        let (fatal, why) =
            check_token(&t, &cd("in archive recovery", "0/3010000", "1")).unwrap_err();
        assert!(
            fatal && why.contains("is older than the last replay LSN"),
            "{why}"
        );
        let (fatal, _) = check_token(&t, &cd("in archive recovery", "0/3002E80", "2")).unwrap_err();
        assert!(fatal, "an older timeline in the token is fatal");
    }

    #[test]
    fn the_webhook_refuses_what_cloudnativepg_refuses_in_its_words() {
        let all = [("pg-a".to_string(), 1), ("pg-b".to_string(), 2)];
        let ok = spec_of("pg-a", "pg-a", "pg-b", &all, true);
        assert!(validate("pg-a", &ok, false, &ok["spec"]).is_ok());
        let mut bad = ok.clone();
        bad["replica"]["primary"] = json!("pg-b");
        bad["replica"]["promotionToken"] = json!("x");
        assert_eq!(
            validate("pg-a", &bad, false, &ok).unwrap_err().0,
            "promotionToken is only allowed for primary clusters"
        );
        let mut bad = ok.clone();
        bad["replica"]["primary"] = json!("pg-c");
        assert_eq!(
            validate("pg-a", &bad, false, &ok).unwrap_err().0,
            "External cluster pg-c not found"
        );
        let mut bad = ok.clone();
        bad["replica"]["enabled"] = json!(true);
        assert!(validate("pg-a", &bad, false, &ok)
            .unwrap_err()
            .0
            .contains("not compatible with the primary field"));
        // spec.postgresql.synchronous: the CRD's CEL rule and the webhook's count.
        let mut bad = ok.clone();
        bad["postgresql"]["synchronous"]["dataDurability"] = json!("preferred");
        assert!(validate("pg-a", &bad, false, &ok)
            .unwrap_err()
            .0
            .contains("dataDurability set to 'preferred' requires empty 'standbyNamesPre' and empty 'standbyNamesPost'"));
        let mut bad = ok.clone();
        bad["postgresql"]["synchronous"]["number"] = json!(2);
        assert!(validate("pg-a", &bad, false, &ok)
            .unwrap_err()
            .0
            .contains("the number of synchronous replicas must be less than the total number of instances and the provided standby names"));
        let mut bad = ok.clone();
        bad["postgresql"]["synchronous"]["number"] = json!(0);
        assert!(validate("pg-a", &bad, false, &ok)
            .unwrap_err()
            .0
            .contains("should be greater than zero"));
        let mut none = ok.clone();
        none["postgresql"]["synchronous"] = Value::Null;
        assert!(validate("pg-a", &none, false, &ok).is_ok());
    }

    /// `synchronous_standby_names` as explicit.go builds it (its tests' cases, with this
    /// lab's one instance `<cluster>-1` standing for the cluster's instance list).
    #[test]
    fn synchronous_standby_names_are_written_as_cloudnativepg_writes_them() {
        let all = [("pg-a".to_string(), 1), ("pg-b".to_string(), 2)];
        let names = |spec: &Value| synchronous_standby_names("pg-a", spec);
        let guide = spec_of("pg-a", "pg-a", "pg-b", &all, true);
        assert_eq!(names(&guide), "FIRST 1 (\"pg-b\")");
        assert_eq!(names(&spec_of("pg-a", "pg-a", "pg-b", &all, false)), "");
        let mut s = guide.clone();
        s["postgresql"]["synchronous"] = json!({"method": "any", "number": 1,
            "standbyNamesPre": ["x\"y"], "standbyNamesPost": ["post"]});
        assert_eq!(names(&s), "ANY 1 (\"x\"\"y\",\"pg-a-1\",\"post\")");
        s["postgresql"]["synchronous"] =
            json!({"method": "first", "number": 1, "maxStandbyNamesFromCluster": 0});
        assert_eq!(names(&s), "FIRST 1 (\"pg-a-placeholder\")");
        s["postgresql"]["synchronous"] =
            json!({"method": "first", "number": 1, "dataDurability": "preferred"});
        assert_eq!(names(&s), "");
    }
}
