//! CrunchyData PGO (v5) as a database vendor: one `PostgresCluster` per site, the
//! primary at one, a standby cluster replicating from it (asynchronously) at the
//! other. Facts from `../shared/docs/pgo.md` (CrunchyData/postgres-operator at v5.8.9).
//!
//! What is true is read from the database as well as the CR: the role label says
//! `master` on a standby leader too, so "writable" is `pg_is_in_recovery()` through
//! the site's exposed primary, with the pguser's password from the site's own secret.
//!
//! - `pgo.cluster-state` (read-only): one site's cluster, pods and database.
//! - `pgo.writer-check` (read-only, the built-in guard before any move of the
//!   writer): never two writable primaries; the target a standby with a known lag
//!   within the bound; the pguser secrets equal (compared by digest, never shown);
//!   nothing paused; every site repointable.
//! - `pgo.move-writer` (the `database.move-writer` role): planned, from the writable
//!   site to this one: catch up, shut the old primary down, promote, repoint every
//!   site's Keycloak. `pgo.promote-standby`: the same when the old primary's site is
//!   lost (its shutdown is tried, never waited on).
//! - `pgo.recreate-as-standby`: the documented demotion: delete the old primary's
//!   cluster and create it as a standby of the new one. It discards that site's data.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::action::ImpactKind;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value as Json};

use crate::args::{dur_arg, str_arg};
use crate::clients::kube_client;
use crate::keycloak::kube_err;
use crate::wait::until;

mod checks;
mod diagnose;
mod recreate;
mod sql;
mod switchover;
#[cfg(test)]
mod tests;
pub mod vendor;

pub use checks::{CheckArgs, ClusterState, WriterCheck};
pub use diagnose::{deployment, diagnosis, in_use};
pub use recreate::RecreateAsStandby;
use sql::sql_state;
pub use switchover::{Switchover, SwitchoverArgs};

pub use vendor::{section, PgoDatabase};

/// The replay lag a planned move accepts unless the environment file says otherwise.
pub const DEFAULT_MAX_LAG: u64 = 16 * 1024 * 1024;

/// The step's site and its PGO section, or a configuration error naming it.
fn this_site(ctx: &StepCtx) -> Result<(String, PgoDatabase), StepError> {
    let (site, cfg) = crate::clients::site_config(ctx)?;
    let p = section(&cfg).cloned().ok_or_else(|| {
        StepError::configuration(format!(
            "site `{site}` names no database.pgo in the environment file"
        ))
    })?;
    Ok((site, p))
}

fn site_ctx(ctx: &StepCtx, site: &str) -> Result<StepCtx, StepError> {
    crate::clients::ctx_for(ctx, site)
}

/// Every site whose database is PGO, in the environment file's order, and the ones
/// that are not.
fn pgo_sites(ctx: &StepCtx) -> (Vec<(String, PgoDatabase)>, Vec<String>) {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    for (name, cfg) in crate::config::sites(&ctx.env) {
        match section(cfg) {
            Some(p) => yes.push((name.clone(), p.clone())),
            None => no.push(name.clone()),
        }
    }
    (yes, no)
}

fn clusters(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        "postgres-operator.crunchydata.com",
        "v1beta1",
        "PostgresCluster",
    );
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "postgresclusters"),
    )
}

/// What the database itself answers.
#[derive(Debug, Clone)]
struct Sql {
    in_recovery: bool,
    /// The current WAL position of a primary, the last replayed of a standby.
    lsn: String,
    lsn_bytes: u64,
    /// When the last replayed transaction was committed at the primary (standby).
    replayed_at: Option<String>,
    /// A primary's timeline (the first 8 hex digits of its current WAL file's name).
    timeline: Option<i32>,
}

/// One site's cluster as read now.
#[derive(Debug, Clone)]
struct View {
    site: String,
    cfg: PgoDatabase,
    namespace: String,
    exists: bool,
    generation: i64,
    observed: i64,
    shutdown: bool,
    paused: bool,
    standby: bool,
    pods: usize,
    /// Patroni's role on the leader pod's `status` annotation.
    leader_role: Option<String>,
    sql: Result<Sql, String>,
    /// SHA-256 of the pguser's password, to compare sites without showing it.
    password_digest: Option<String>,
    secret_error: Option<String>,
    /// `status.patroni.switchover` and the trigger annotation.
    switchover: Option<String>,
    trigger: Option<String>,
}

impl View {
    fn writable(&self) -> bool {
        matches!(&self.sql, Ok(s) if !s.in_recovery)
    }

    fn user(&self) -> String {
        self.cfg
            .user
            .clone()
            .unwrap_or_else(|| self.cfg.cluster.clone())
    }

    fn json(&self) -> Json {
        let (writable, lsn, replayed_at, sql_error) = match &self.sql {
            Ok(s) => (
                json!(!s.in_recovery),
                json!(s.lsn),
                json!(s.replayed_at),
                Json::Null,
            ),
            Err(e) => (Json::Null, Json::Null, Json::Null, json!(e)),
        };
        json!({
            "site": self.site, "cluster": self.cfg.cluster, "exists": self.exists,
            "shutdown": self.shutdown, "paused": self.paused, "standby": self.standby,
            "pods": self.pods, "leader_role": self.leader_role, "writable": writable,
            "lsn": lsn, "replayed_at": replayed_at, "sql_error": sql_error,
            "timeline": self.sql.as_ref().ok().and_then(|s| s.timeline),
            "switchover": self.switchover, "switchover_trigger": self.trigger,
            "caught_up_with_spec": self.generation == self.observed,
            "summary": self.summary(),
        })
    }

    fn summary(&self) -> String {
        if !self.exists {
            return format!("{}: no PostgresCluster `{}`", self.site, self.cfg.cluster);
        }
        let kind = if self.standby {
            "standby cluster"
        } else {
            "primary cluster"
        };
        let mut parts = vec![format!("{}: {} `{}`", self.site, kind, self.cfg.cluster)];
        if self.shutdown {
            parts.push("shut down".into());
        }
        if self.paused {
            parts.push("PAUSED".into());
        }
        parts.push(format!("{} instance pod(s)", self.pods));
        match &self.sql {
            Ok(s) if s.in_recovery => parts.push(format!("read-only, replayed to {}", s.lsn)),
            Ok(s) => parts.push(format!("WRITABLE at {}", s.lsn)),
            Err(e) => parts.push(format!("database not readable ({e})")),
        }
        parts.join(", ")
    }
}

/// Read one site's cluster, pods, secret and database.
async fn read_site(ctx: &StepCtx, site: &str, cfg: &PgoDatabase) -> Result<View, StepError> {
    let sctx = site_ctx(ctx, site)?;
    let (client, ns) = kube_client(&sctx).await?;
    let obj = clusters(client.clone(), &ns)
        .get_opt(&cfg.cluster)
        .await
        .map_err(|e| kube_err(site, &format!("GET PostgresCluster {}", cfg.cluster), e))?;
    let spec = obj
        .as_ref()
        .map(|o| o.data["spec"].clone())
        .unwrap_or_default();
    let status = obj
        .as_ref()
        .map(|o| o.data["status"].clone())
        .unwrap_or_default();
    let selector = format!("postgres-operator.crunchydata.com/cluster={}", cfg.cluster);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pod_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kube_err(site, &format!("GET pods -l {selector}"), e))?;
    let leader_role = pods.items.iter().find_map(|p| {
        let ann = p.metadata.annotations.as_ref()?.get("status")?;
        let v: Json = serde_json::from_str(ann).ok()?;
        v["role"].as_str().map(str::to_string)
    });
    let user = cfg.user.clone().unwrap_or_else(|| cfg.cluster.clone());
    let secret_name = format!("{}-pguser-{user}", cfg.cluster);
    let (password, secret_error) = match Api::<Secret>::namespaced(client, &ns)
        .get(&secret_name)
        .await
    {
        Ok(s) => match s.data.as_ref().and_then(|d| d.get("password")) {
            Some(b) => (Some(String::from_utf8_lossy(&b.0).into_owned()), None),
            None => (
                None,
                Some(format!("secret {secret_name} has no key `password`")),
            ),
        },
        Err(e) => (None, Some(format!("GET secret {secret_name}: {e}"))),
    };
    let sql = match &password {
        Some(pw) => sql_state(cfg, &user, pw).await,
        None => Err(secret_error.clone().unwrap_or_default()),
    };
    let password_digest = password.as_ref().map(|p| {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(p.as_bytes()))
    });
    Ok(View {
        site: site.to_string(),
        cfg: cfg.clone(),
        namespace: ns,
        exists: obj.is_some(),
        generation: obj
            .as_ref()
            .and_then(|o| o.metadata.generation)
            .unwrap_or(0),
        observed: status["observedGeneration"].as_i64().unwrap_or(-1),
        shutdown: spec["shutdown"].as_bool().unwrap_or(false),
        paused: spec["paused"].as_bool().unwrap_or(false),
        standby: spec["standby"].is_object() && spec["standby"]["enabled"] != json!(false),
        pods: pods.items.len(),
        leader_role,
        sql,
        password_digest,
        secret_error,
        switchover: status["patroni"]["switchover"].as_str().map(str::to_string),
        trigger: obj
            .as_ref()
            .and_then(|o| o.metadata.annotations.as_ref()?.get(TRIGGER).cloned()),
    })
}

/// PGO's switchover trigger annotation (`internal/naming/annotations.go`).
const TRIGGER: &str = "postgres-operator.crunchydata.com/trigger-switchover";

/// Every PGO site, each read (an unreachable one as an error in its place).
async fn read_all(ctx: &StepCtx) -> (Vec<Result<View, (String, String)>>, Vec<String>) {
    let (sites, others) = pgo_sites(ctx);
    let mut out = Vec::new();
    for (name, cfg) in &sites {
        out.push(
            read_site(ctx, name, cfg)
                .await
                .map_err(|e| (name.clone(), e.message)),
        );
    }
    (out, others)
}

/// Whether moving the writer to `to` is safe now, and why not.
fn judge(
    to: &str,
    views: &[Result<View, (String, String)>],
    others: &[String],
    unplanned: bool,
) -> (bool, Vec<String>, Json) {
    let mut why = Vec::new();
    if !others.is_empty() {
        why.push(format!(
            "{} name no database.pgo: every site's Keycloak is repointed in the same run, so every site must be PGO",
            others.join(", ")
        ));
    }
    let ok: Vec<&View> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
    for (site, e) in views.iter().filter_map(|v| v.as_ref().err()) {
        if site != to && unplanned {
            why.push(format!(
                "{site}'s cluster cannot be read ({e}): it may still be a writable primary; if its site is lost and cannot write, promote with -p force=true -p force_reason=... (journaled, with the standby's last replayed position)"
            ));
        } else {
            why.push(format!("{site} cannot be read: {e}"));
        }
    }
    let writable: Vec<&str> = ok
        .iter()
        .filter(|v| v.writable())
        .map(|v| v.site.as_str())
        .collect();
    if writable.len() > 1 {
        why.push(format!(
            "TWO WRITABLE PRIMARIES: {} both accept writes (split-brain): stop one (`spec.shutdown: true`) before anything else",
            writable.join(" and ")
        ));
    }
    for v in ok.iter().filter(|v| v.paused) {
        why.push(format!(
            "{}'s PostgresCluster is paused (`spec.paused: true`): PGO applies no change to it",
            v.site
        ));
    }
    let digests: Vec<(&str, &str)> = ok
        .iter()
        .filter_map(|v| Some((v.site.as_str(), v.password_digest.as_deref()?)))
        .collect();
    if digests.windows(2).any(|w| w[0].1 != w[1].1) {
        why.push(format!(
            "the pguser secrets of {} hold different passwords (compared by SHA-256, never shown): after promotion PGO writes the password from the promoted site's own secret, and Keycloak with the other secret fails",
            digests.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(" and ")
        ));
    }
    for v in ok.iter().filter(|v| v.secret_error.is_some()) {
        why.push(format!(
            "{}: {}",
            v.site,
            v.secret_error.clone().unwrap_or_default()
        ));
    }
    let target = ok.iter().find(|v| v.site == to);
    let primary = ok.iter().find(|v| v.writable() && v.site != to);
    if let (true, Some(p)) = (unplanned, primary) {
        why.push(format!(
            "{} ANSWERS AS A WRITABLE PRIMARY: its site is not lost, and promoting {to} would make two writers (or shut down the one that serves). Move the writer as a planned operation (the database role's move-writer, e.g. keycloak-24/switchover, or pgo/pgo-switchover within a site)",
            p.site
        ));
    }
    let mut lag = Json::Null;
    match target {
        None => {}
        Some(t) if t.writable() && writable.len() == 1 => {}
        Some(t) if !t.exists || t.shutdown || !t.standby => why.push(format!(
            "{to} is not a running standby ({}): recreate it as a standby of the writer first (it discards {to}'s data)",
            t.summary()
        )),
        Some(t) => match (&t.sql, primary.map(|p| &p.sql)) {
            (Ok(s), Some(Ok(p))) => {
                let gap = p.lsn_bytes.saturating_sub(s.lsn_bytes);
                let bound = t.cfg.max_lag_bytes.unwrap_or(DEFAULT_MAX_LAG);
                lag = json!(gap);
                if gap > bound {
                    why.push(format!("{to} replays {gap} bytes of WAL behind the primary, more than the {bound} bytes allowed (database.pgo.max_lag_bytes)"));
                }
            }
            (Err(e), _) => why.push(format!("{to}'s database cannot be read, so its lag is unknown: {e}")),
            (Ok(_), _) if unplanned => {}
            (Ok(_), _) => why.push(format!(
                "no writable primary answers, so {to}'s lag is unknown: if the primary's site is lost, run promote-standby (forced, with a reason: the data-loss window is journaled)"
            )),
        },
    }
    let seen: Vec<Json> = views
        .iter()
        .map(|v| match v {
            Ok(v) => v.json(),
            Err((s, e)) => json!({"site": s, "error": e}),
        })
        .collect();
    (
        why.is_empty(),
        why,
        json!({"lag_bytes": lag, "writable": writable, "sites": seen}),
    )
}

/// Until `site`'s cluster has no instance pod and its database does not write.
async fn until_shut_down(
    ctx: &StepCtx,
    site: &str,
    cfg: &PgoDatabase,
    poll: Duration,
) -> Result<(), StepError> {
    until(
        ctx,
        &format!("{site}'s cluster is shut down"),
        poll,
        || async {
            let v = read_site(ctx, site, cfg).await.map_err(|e| e.message)?;
            if v.pods == 0 && !v.writable() {
                Ok(Some(()))
            } else {
                Err(v.summary())
            }
        },
    )
    .await
}

async fn merge_patch(
    ctx: &StepCtx,
    site: &str,
    cluster: &str,
    body: Json,
) -> Result<(), StepError> {
    let (client, ns) = kube_client(&site_ctx(ctx, site)?).await?;
    clusters(client, &ns)
        .patch(cluster, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| kube_err(site, &format!("PATCH PostgresCluster {cluster} {body}"), e))?;
    Ok(())
}

/// Where each site's Keycloak reaches the writer at `to`: its service at its own site,
/// its exposed address elsewhere.
fn db_target(site: &str, to: &View) -> (String, u16) {
    if site == to.site {
        let host = to
            .cfg
            .service_host
            .clone()
            .unwrap_or_else(|| format!("{}-primary.{}.svc", to.cfg.cluster, to.namespace));
        return (host, 5432);
    }
    let (h, p) = to
        .cfg
        .address
        .rsplit_once(':')
        .unwrap_or((&to.cfg.address, "5432"));
    (h.to_string(), p.parse().unwrap_or(5432))
}

/// Point `site`'s Keycloak CR `name` at the writer `to` (nothing sent when it already
/// is): its API, to wait on.
async fn patch_db(
    ctx: &StepCtx,
    site: &str,
    name: &str,
    to: &View,
    (host, port): (&str, u16),
) -> Result<kube::Api<kube::api::DynamicObject>, StepError> {
    let (client, ns) = kube_client(&site_ctx(ctx, site)?).await?;
    let api = crate::keycloak::api(client, &ns);
    let secret = format!("{}-pguser-{}", to.cfg.cluster, to.user());
    let body = json!({"spec": {"db": {"vendor": "postgres", "host": host, "port": port,
        "database": to.user(), "usernameSecret": {"name": secret, "key": "user"},
        "passwordSecret": {"name": secret, "key": "password"}}}});
    let now = api
        .get(name)
        .await
        .map_err(|e| kube_err(site, "GET Keycloak", e))?;
    if now.data["spec"]["db"]["host"] != json!(host)
        || now.data["spec"]["db"]["port"] != json!(port)
    {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| kube_err(site, &format!("PATCH Keycloak {name} spec.db"), e))?;
    }
    Ok(api)
}

/// Point every site's Keycloak CR at `to`'s primary and wait out each rolling restart
/// (the CR Ready at its new generation with all its instances, as `keycloak.scale`).
/// After an unplanned promotion (`lost`), a lost site's Keycloak is repointed where
/// its Kubernetes API answers, but its rollout is not waited on: its Keycloak is down
/// with its site, and rolls onto the new writer when the site is back.
async fn repoint_all(
    ctx: &StepCtx,
    to: &View,
    poll: Duration,
    lost: bool,
) -> Result<Vec<String>, StepError> {
    let mut done = Vec::new();
    for (site, cfg) in crate::config::sites(&ctx.env) {
        let name = cfg
            .keycloak
            .as_ref()
            .map(|k| k.name.clone())
            .ok_or_else(|| {
                StepError::configuration(format!(
                    "site `{site}` has no keycloak.name: its Keycloak cannot be repointed"
                ))
            })?;
        let (host, port) = db_target(site, to);
        let patched = patch_db(ctx, site, &name, to, (&host, port)).await;
        if lost && *site != to.site {
            done.push(match patched {
                Ok(_) => format!(
                    "{site} → {host}:{port} (patched; its rollout is not waited on: the site is lost)"
                ),
                Err(e) => format!(
                    "{site} NOT repointed: its Kubernetes API did not take it ({}): patch its Keycloak CR spec.db to {host}:{port} when the site is back",
                    e.message
                ),
            });
            continue;
        }
        let api = patched?;
        until(
            ctx,
            &format!("{site}'s Keycloak rolled onto {host}:{port}"),
            poll,
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let k = api.get(&name).await.map_err(|e| e.to_string())?;
                    let gen = k.metadata.generation.unwrap_or(0);
                    let st = &k.data["status"];
                    let ready = st["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    let all = st["instances"] == k.data["spec"]["instances"];
                    let seen = format!(
                        "observedGeneration {} of {gen}, Ready {ready}, instances {} of {}",
                        st["observedGeneration"], st["instances"], k.data["spec"]["instances"]
                    );
                    if st["observedGeneration"] == json!(gen) && ready && all {
                        Ok(Some(()))
                    } else {
                        Err(seen)
                    }
                }
            },
        )
        .await?;
        done.push(format!("{site} → {host}:{port}"));
    }
    Ok(done)
}

const MOVE_ARGS: &[ArgSpec] = &[
    ArgSpec::optional("instance", ArgKind::String, "(Aurora's; unused by PGO)"),
    ArgSpec::optional(
        "cluster",
        ArgKind::String,
        "(Aurora's; PGO's is the site's database.pgo.cluster)",
    ),
    ArgSpec::optional(
        "poll",
        ArgKind::Duration,
        "longest pause between checks (default 2s)",
    ),
];

/// `pgo.move-writer` (planned) and `pgo.promote-standby` (the primary's site lost).
/// Each action is a row of [`WriterMove`]s; the code is the same.
#[derive(Debug)]
pub struct MoveWriter(pub &'static WriterMove);

/// What one kind of writer move is.
#[derive(Debug)]
pub struct WriterMove {
    pub name: &'static str,
    pub summary: &'static str,
    pub invariants: &'static [&'static str],
    /// The former writer's site is lost: it is fenced where its API answers rather
    /// than waited for, the standby promoted whatever it had not replayed, and that
    /// window journaled.
    pub unplanned: bool,
}

pub const PLANNED: WriterMove = WriterMove {
    name: "pgo.move-writer",
    summary: "move PGO's writer to this site: the standby caught up, the old primary shut down, this one promoted, every site's Keycloak repointed",
    invariants: &[],
    unplanned: false,
};

pub const UNPLANNED: WriterMove = WriterMove {
    name: "pgo.promote-standby",
    summary: "promote this site's PGO standby cluster after the primary's site is lost: stop the old primary if it answers, promote, repoint every site's Keycloak; the last replayed position is journaled",
    invariants: &[crate::guarantees::PROMOTE],
    unplanned: true,
};

impl MoveWriter {
    /// The writer the move takes over from: the other site that answers writable; for
    /// an unplanned promotion also one whose database does not answer but whose
    /// cluster is a primary by its spec (a lost site's, to fence so that it cannot
    /// come back writable).
    fn former_writer(&self, views: &[Result<View, (String, String)>], to: &str) -> Option<String> {
        let others = || {
            views
                .iter()
                .filter_map(|v| v.as_ref().ok())
                .filter(|v| v.site != to)
        };
        others()
            .find(|v| v.writable())
            .or_else(|| {
                others()
                    .filter(|_| self.0.unplanned)
                    .find(|v| v.exists && !v.standby && !v.shutdown)
            })
            .map(|v| v.site.clone())
    }
}

/// Stop the old writer `from` before `to` is promoted: planned, once `to` replayed
/// up to the primary's position (then shut down, waited on); unplanned, fenced where
/// its API still answers (a lost site's may never).
async fn stop_old_writer(
    unplanned: bool,
    ctx: &StepCtx,
    (from, to): (&String, &String),
    target: &View,
    prepared: &Outputs,
    out: &mut Outputs,
    poll: Duration,
) -> Result<(), StepError> {
    let (sites, _) = pgo_sites(ctx);
    let from_cfg = sites
        .iter()
        .find(|(s, _)| s == from)
        .map(|(_, c)| c.clone())
        .ok_or_else(|| StepError::configuration(format!("{from} names no database.pgo")))?;
    if unplanned {
        // Fence what can be fenced: a lost site's API may never answer (the
        // guard then needed force); one that answers is waited on.
        let fenced = tokio::time::timeout(
            Duration::from_secs(10),
            merge_patch(
                ctx,
                from,
                &from_cfg.cluster,
                json!({"spec": {"shutdown": true}}),
            ),
        )
        .await;
        let fenced = matches!(fenced, Ok(Ok(())));
        if fenced {
            until_shut_down(ctx, from, &from_cfg, poll).await?;
        }
        out.insert("fenced".into(), json!(fenced));
    } else {
        let goal = prepared
            .get("primary_lsn_bytes")
            .and_then(Json::as_u64)
            .unwrap_or(0);
        until(
            ctx,
            &format!("{to} replays up to the primary's {goal}"),
            poll,
            || async {
                let v = read_site(ctx, to, &target.cfg)
                    .await
                    .map_err(|e| e.message)?;
                match &v.sql {
                    Ok(s) if s.lsn_bytes >= goal => Ok(Some(())),
                    Ok(s) => Err(format!("replayed {} of {goal}", s.lsn_bytes)),
                    Err(e) => Err(e.clone()),
                }
            },
        )
        .await?;
        merge_patch(
            ctx,
            from,
            &from_cfg.cluster,
            json!({"spec": {"shutdown": true}}),
        )
        .await?;
        until_shut_down(ctx, from, &from_cfg, poll).await?;
    }
    Ok(())
}

#[async_trait]
impl Action for MoveWriter {
    fn name(&self) -> &'static str {
        self.0.name
    }
    fn summary(&self) -> &'static str {
        self.0.summary
    }
    fn invariants(&self) -> &'static [&'static str] {
        self.0.invariants
    }
    fn args(&self) -> &'static [ArgSpec] {
        MOVE_ARGS
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["previous_writer", "changed"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    /// Catching up, a shutdown, a promotion and every site's Keycloak rolling restart:
    /// an hour (a lab's time scale shortens it; its servers are real, hence the room).
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(2)).unwrap_or(Duration::from_secs(2))
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::MovesWriter, format!(
            "moves PGO's writer to {}: the old primary's cluster is shut down, {}'s standby promoted, and every site's Keycloak restarted onto it; no database writer meanwhile. Replication across sites is asynchronous: what the standby had not replayed is lost{}",
            ctx.site_name(), ctx.site_name(),
            if self.0.unplanned { " (the window is journaled)" } else { " unless it caught up, which this step waits for" }
        )))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let to = ctx.site_name();
        let (sites, _) = pgo_sites(ctx);
        let cluster = sites
            .iter()
            .find(|(s, _)| *s == to)
            .map_or("?".to_string(), |(_, c)| c.cluster.clone());
        let mut calls = vec![
            "read every PGO site (PostgresCluster, pods, pguser secret, SQL pg_is_in_recovery() and WAL positions)".to_string(),
        ];
        if self.0.unplanned {
            calls.push("on the old primary's site, if its API answers: PATCH PostgresCluster {\"spec\":{\"shutdown\":true}} (not waited on); journal the standby's last replayed position and time".into());
        } else {
            calls.push(format!(
                "wait until {to}'s replay position reaches the primary's current WAL position"
            ));
            calls.push("PATCH the old primary's PostgresCluster {\"spec\":{\"shutdown\":true}} (merge); wait until it has no instance pod and status.instances[].replicas is 0".into());
        }
        calls.push(format!("PATCH {to}'s PostgresCluster {cluster} {{\"spec\":{{\"standby\":{{\"enabled\":false}}}}}} (merge); wait until pg_is_in_recovery() is false through its address and observedGeneration is current"));
        calls.push(format!("PATCH every site's Keycloak CR spec.db (host, port, secrets) to {to}'s primary; wait for each rolling restart (Ready, all instances)"));
        calls
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "{} is the only writable primary and every site's Keycloak points at it",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["writable"] == json!([o["to"].clone()]) && o["repointed"] == true
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let to = ctx.site_name();
        let (views, _) = read_all(ctx).await;
        let writable: Vec<String> = views
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .filter(|v| v.writable())
            .map(|v| v.site.clone())
            .collect();
        let mut repointed = writable == [to.clone()];
        if let Some(Ok(t)) = views
            .iter()
            .find(|v| v.as_ref().is_ok_and(|v| v.site == to))
        {
            for (site, cfg) in crate::config::sites(&ctx.env) {
                let Some(k) = &cfg.keycloak else {
                    repointed = false;
                    continue;
                };
                let (client, ns) = kube_client(&site_ctx(ctx, site)?).await?;
                let kc = crate::keycloak::api(client, &ns)
                    .get(&k.name)
                    .await
                    .map_err(|e| kube_err(site, "GET Keycloak", e))?;
                let (host, port) = db_target(site, t);
                repointed &= kc.data["spec"]["db"]["host"] == json!(host)
                    && kc.data["spec"]["db"]["port"] == json!(port);
            }
        }
        Ok(
            json!({"to": to, "writable": writable, "repointed": repointed,
                  "summary": format!("writable: {}; Keycloak repointed: {repointed}", if writable.is_empty() { "none".to_string() } else { writable.join(", ") })}),
        )
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        // Journaled with the intent: the old primary and its WAL position before the
        // move, and where the standby had replayed to (the data-loss window if lost).
        let to = ctx.site_name();
        let (views, _) = read_all(ctx).await;
        let mut out = Outputs::new();
        out.insert(
            "previous_writer".into(),
            json!(self.former_writer(&views, &to)),
        );
        for v in views.iter().filter_map(|v| v.as_ref().ok()) {
            if let Ok(s) = &v.sql {
                let key = if v.site == to {
                    "replayed_lsn"
                } else if v.writable() {
                    "primary_lsn"
                } else {
                    continue;
                };
                out.insert(key.into(), json!(s.lsn));
                out.insert(format!("{key}_bytes"), json!(s.lsn_bytes));
                if v.site == to {
                    out.insert("replayed_at".into(), json!(s.replayed_at));
                }
            }
        }
        Ok(out)
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let a: crate::aurora::FailoverArgs = crate::args::typed(self.name(), args)?;
        let to = ctx.site_name();
        let poll = a.poll.map_or(Duration::from_secs(2), |p| p.0);
        let (views, _) = read_all(ctx).await;
        let mut out = prepared.clone();
        let from = prepared
            .get("previous_writer")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| self.former_writer(&views, &to));
        let target = views
            .iter()
            .find_map(|v| v.as_ref().ok().filter(|v| v.site == to))
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{to}'s cluster cannot be read")))?;
        if target.writable() && from.is_none() {
            out.insert("changed".into(), json!(false));
            out.insert(
                "repointed".into(),
                json!(repoint_all(ctx, &target, poll, false).await?),
            );
            return Ok(out);
        }
        if let Some(from) = &from {
            stop_old_writer(
                self.0.unplanned,
                ctx,
                (from, &to),
                &target,
                prepared,
                &mut out,
                poll,
            )
            .await?;
        }
        merge_patch(
            ctx,
            &to,
            &target.cfg.cluster,
            json!({"spec": {"standby": {"enabled": false}}}),
        )
        .await?;
        let promoted = until(ctx, &format!("{to} is writable"), poll, || async {
            let v = read_site(ctx, &to, &target.cfg)
                .await
                .map_err(|e| e.message)?;
            if v.writable() && v.generation == v.observed {
                Ok(Some(v))
            } else {
                Err(v.summary())
            }
        })
        .await?;
        out.insert("changed".into(), json!(true));
        out.insert(
            "repointed".into(),
            json!(repoint_all(ctx, &promoted, poll, self.0.unplanned).await?),
        );
        Ok(out)
    }
}

/// Why a PGO site does not prove itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("MISMATCH: {0}")]
    Mismatch(String),
}

/// Whether the database behind the site's `address` is its cluster's: the cluster
/// exists in the site's Kubernetes, and a standby cluster's database is in recovery
/// (a writable answer there is another site's primary). What was seen, or what is wrong.
///
/// # Errors
/// The mismatch, or what could not be read.
pub async fn identity(
    ctx: &StepCtx,
    site: &str,
    cfg: &PgoDatabase,
) -> Result<String, IdentityError> {
    let v = read_site(ctx, site, cfg)
        .await
        .map_err(|e| IdentityError::Unreachable(e.message))?;
    if !v.exists {
        return Err(IdentityError::Mismatch(format!(
            "site {site}'s Kubernetes has no PostgresCluster `{}`",
            cfg.cluster
        )));
    }
    match &v.sql {
        Ok(s) if v.standby && !s.in_recovery && v.generation == v.observed => Err(IdentityError::Mismatch(format!(
            "{} answers as a writable primary, but {site}'s PostgresCluster `{}` is a standby cluster: that address is another site's database",
            cfg.address, cfg.cluster
        ))),
        Ok(_) => Ok(v.summary()),
        // A shut-down or lost database proves nothing more than its cluster does.
        Err(e) => Ok(format!("{} (database not readable: {e})", v.summary())),
    }
}
