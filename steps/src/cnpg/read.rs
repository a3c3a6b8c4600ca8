//! Reading one CloudNativePG site: its `Cluster` (spec.replica, status: phase,
//! demotionToken, lastPromotionToken, timelineID) through the site's Kubernetes API,
//! its app secret (`<cluster>-app`, compared by digest, never shown), and the database
//! itself through the site's exposed `-rw` (`database.cnpg.address`) as the app user:
//! `pg_is_in_recovery()`, the WAL position, the last replay time, and what its WAL
//! receiver says (`../shared/docs/cnpg.md` §3.4, §3.10, §3.12: a label or the CR never
//! proves writability; the database does).

use std::time::Duration;

use engine::{StepCtx, StepError};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{json, Value as Json};

use super::config::{section, CnpgDatabase};
use crate::clients::{ctx_for, kube_client};
use crate::keycloak::kube_err;

/// The annotation where a failover keeps the synchronous stanza it took off the
/// promoted Cluster (its commits would wait for the lost site), until `cnpg.rejoin`
/// puts it back: visible to `kubectl get cluster -o yaml`, durable across a crash.
pub const SUSPENDED: &str = "runbook.keycloak.org/suspended-synchronous";

/// `synchronous_standby_names` read as PostgreSQL reads it (`syncrep_gram.y`):
/// `[FIRST|ANY] n (name, ...)`, `n (name, ...)` (FIRST), or a bare list (FIRST 1);
/// names may be double-quoted. `None`: empty (asynchronous) or unreadable.
pub fn standby_names(text: &str) -> Option<(usize, Vec<String>)> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let (number, list) = match t.find('(') {
        Some(open) => {
            let head = t[..open].trim();
            let n = head
                .rsplit(char::is_whitespace)
                .next()
                .and_then(|n| n.parse::<usize>().ok())?;
            (n, t[open + 1..].trim_end().strip_suffix(')')?)
        }
        None => (1, t),
    };
    let names = list
        .split(',')
        .map(|n| {
            let n = n.trim();
            n.strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .map_or_else(|| n.to_lowercase(), |q| q.replace("\"\"", "\""))
        })
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>();
    (!names.is_empty()).then_some((number, names))
}

/// The Cluster resource.
pub fn clusters(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster");
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "clusters"),
    )
}

/// What the database answers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sql {
    pub in_recovery: bool,
    pub lsn: String,
    pub lsn_bytes: u64,
    pub replayed_at: Option<String>,
    /// `pg_stat_wal_receiver.status` and `received_tli` (a replica's; visible only to
    /// a role with `pg_read_all_stats`, so the app user may see neither).
    pub receiver: Option<String>,
    /// `pg_last_wal_receive_lsn()` is known: WAL arrives by streaming (any role).
    pub receiving: bool,
    pub received_tli: Option<i32>,
    /// `synchronous_standby_names` as the server runs it (any role may read it): on a
    /// primary, which standbys a commit waits for; empty: none, asynchronous.
    pub sync_standby_names: String,
}

/// One site as read now.
#[derive(Debug, Clone)]
pub struct Site {
    pub site: String,
    pub cfg: CnpgDatabase,
    pub namespace: String,
    /// The Cluster object (`None`: not found).
    pub cluster: Option<Json>,
    pub sql: Result<Sql, String>,
    pub secret_digest: Option<String>,
}

impl Site {
    pub fn writable(&self) -> bool {
        matches!(&self.sql, Ok(s) if !s.in_recovery)
    }

    pub fn status(&self, key: &str) -> Json {
        self.cluster
            .as_ref()
            .map_or(Json::Null, |c| c["status"][key].clone())
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.cluster.as_ref()?["metadata"]["annotations"][key].as_str()
    }

    fn condition_true(&self, kind: &str) -> bool {
        self.status("conditions")
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
    }

    /// Hibernated (`cnpg.io/hibernation: on`, or its condition): no instance runs,
    /// while the phase still says healthy (`cnpg.md` 3.5, 3.11).
    pub fn hibernated(&self) -> bool {
        self.annotation("cnpg.io/hibernation") == Some("on")
            || self.condition_true("cnpg.io/hibernation")
    }

    /// The instances `cnpg.io/fencedInstances` lists (`["*"]`: all), unless the fence
    /// is CloudNativePG's own, in the middle of a demotion (`ReplicaClusterFencing`).
    pub fn fenced_by_someone(&self) -> Option<Vec<String>> {
        let list: Vec<String> = self
            .annotation("cnpg.io/fencedInstances")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        (!list.is_empty() && !self.condition_true("ReplicaClusterFencing")).then_some(list)
    }

    /// Whether every commit at this site, as the writer, waits for the Cluster
    /// `other`: its server's `synchronous_standby_names` names it (`cnpg.md` 3.14: the
    /// other site's designated primary appears under its Cluster's name) and asks for
    /// more acknowledgements than the other names could give without it (a local
    /// standby that may answer instead is not cross-site durable). This cluster's own
    /// primary instance, which CloudNativePG lists unless `maxStandbyNamesFromCluster`
    /// caps it, never acknowledges its own commits.
    pub fn waits_for(&self, other: &str) -> bool {
        let Ok(q) = &self.sql else { return false };
        let Some((number, names)) = standby_names(&q.sync_standby_names) else {
            return false;
        };
        let me = self.status("currentPrimary");
        let others = names
            .iter()
            .filter(|n| n.as_str() != other && me.as_str() != Some(n.as_str()))
            .count();
        names.iter().any(|n| n == other) && !names.iter().any(|n| n == "*") && number > others
    }

    /// The synchronous stanza of its spec that names `other` (the guide's symmetric
    /// configuration: what a commit of this Cluster waits for once it is the primary).
    pub fn configured_to_wait_for(&self, other: &str) -> bool {
        let Some(c) = &self.cluster else { return false };
        let s = &c["spec"]["postgresql"]["synchronous"];
        s["dataDurability"] != "preferred"
            && ["standbyNamesPre", "standbyNamesPost"].iter().any(|k| {
                s[*k]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|n| n == other))
            })
    }

    /// The synchronous stanza a failover suspended at this site, kept in the Cluster's
    /// annotation [`SUSPENDED`] until the lost site is rebuilt.
    pub fn suspended(&self) -> Option<Json> {
        self.annotation(SUSPENDED)
            .and_then(|t| serde_json::from_str(t).ok())
    }

    /// `IsReplica()` of its spec (`cluster_funcs.go`).
    pub fn replica_by_spec(&self) -> bool {
        let Some(c) = &self.cluster else { return false };
        let r = &c["spec"]["replica"];
        if !r.is_object() {
            return false;
        }
        if let Some(e) = r["enabled"].as_bool() {
            return e;
        }
        let me = r["self"].as_str().unwrap_or(&self.cfg.cluster);
        r["primary"].as_str() != Some(me)
    }

    pub fn json(&self) -> Json {
        json!({
            "site": self.site, "cluster": self.cfg.cluster,
            "exists": self.cluster.is_some(),
            "phase": self.status("phase"),
            "replica": self.replica_by_spec(),
            "primary": self.cluster.as_ref().map(|c| c["spec"]["replica"]["primary"].clone()),
            "timeline": self.status("timelineID"),
            "demotion_token": !self.status("demotionToken").is_null(),
            "hibernated": self.hibernated(),
            "synchronous": self.cluster.as_ref().map(|c| c["spec"]["postgresql"]["synchronous"].clone()),
            "suspended_synchronous": self.suspended(),
            "fenced": self.fenced_by_someone(),
            "writable": self.sql.as_ref().ok().map(|s| !s.in_recovery),
            "database": match &self.sql { Ok(s) => json!(s), Err(e) => json!({"error": e}) },
        })
    }
}

fn secret_password(s: &Secret) -> Option<(String, String)> {
    let d = s.data.as_ref()?;
    let get = |k: &str| d.get(k).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    Some((get("username").or_else(|| get("user"))?, get("password")?))
}

async fn sql_state(cfg: &CnpgDatabase, user: &str, password: &str) -> Result<Sql, String> {
    let (host, port) = cfg
        .address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("database.cnpg.address `{}` is not host:port", cfg.address))?;
    let mut pc = tokio_postgres::Config::new();
    pc.host(&host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(cfg.database.as_deref().unwrap_or(user))
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = pc
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("{}: {e}", cfg.address))?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0')::bigint,
                pg_last_xact_replay_timestamp()::text,
                (SELECT status FROM pg_stat_wal_receiver),
                (SELECT received_tli FROM pg_stat_wal_receiver),
                pg_last_wal_receive_lsn() IS NOT NULL,
                current_setting('synchronous_standby_names')",
            &[],
        )
        .await
        .map_err(|e| format!("{}: {e}", cfg.address))?;
    Ok(Sql {
        in_recovery: row.get(0),
        lsn: row.get(1),
        lsn_bytes: row.get::<_, i64>(2).max(0) as u64,
        replayed_at: row.get(3),
        receiver: row.get(4),
        received_tli: row.get(5),
        receiving: row.get(6),
        sync_standby_names: row.get(7),
    })
}

/// Read `site` now.
///
/// # Errors
/// The site names no CloudNativePG section, or its Kubernetes API cannot be reached.
pub async fn site(ctx: &StepCtx, site: &str) -> Result<Site, StepError> {
    let c = ctx_for(ctx, site)?;
    let (_, cfg_site) = crate::clients::site_config(&c)?;
    let cfg = section(&cfg_site).cloned().ok_or_else(|| {
        StepError::configuration(format!(
            "site `{site}` names no database.cnpg in the environment file"
        ))
    })?;
    let (client, ns) = kube_client(&c).await?;
    let cluster = match clusters(client.clone(), &ns).get_opt(&cfg.cluster).await {
        Ok(o) => o.map(|o| serde_json::to_value(o).unwrap_or_default()),
        Err(e) => return Err(kube_err(site, &format!("GET Cluster {}", cfg.cluster), e)),
    };
    let secret_name = cfg
        .secret
        .clone()
        .unwrap_or_else(|| format!("{}-app", cfg.cluster));
    let creds = match Api::<Secret>::namespaced(client, &ns)
        .get(&secret_name)
        .await
    {
        Ok(s) => secret_password(&s)
            .ok_or_else(|| format!("secret {secret_name} has no username and password")),
        Err(e) => Err(format!("GET secret {secret_name}: {e}")),
    };
    let (sql, secret_digest) = match &creds {
        Ok((user, password)) => {
            engine::redact::learn(password);
            use sha2::Digest;
            (
                sql_state(&cfg, user, password).await,
                Some(format!("{:x}", sha2::Sha256::digest(password.as_bytes()))),
            )
        }
        Err(e) => (Err(e.clone()), None),
    };
    Ok(Site {
        site: site.to_string(),
        cfg,
        namespace: ns,
        cluster,
        sql,
        secret_digest,
    })
}

/// Every site whose database is CloudNativePG, read now (a site that cannot be read
/// is said, not dropped).
pub async fn all(ctx: &StepCtx) -> Vec<Result<Site, (String, String)>> {
    let mut out = Vec::new();
    for (name, cfg) in crate::config::sites(&ctx.env) {
        if section(cfg).is_none() {
            continue;
        }
        out.push(site(ctx, name).await.map_err(|e| (name.clone(), e.message)));
    }
    out
}
