//! CrunchyData PGO as a database vendor: a `PostgresCluster` at each site, one the
//! primary and the others standby clusters replicating from it
//! (`../shared/docs/pgo.md`). Its section, its identity proof, the role it plays and
//! the one-writer guard it adds before every move of the writer.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use engine::model::{Guard, Step};
use engine::{Action, StepCtx};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clients::site_config;
use crate::config::roles::read_as;
use crate::config::{Concern, Problem, SiteConfig, VendorSection};
use crate::identity::{prove_kubernetes, Proof};
use crate::vendor::Vendor;

/// PGO as a database vendor, whole (`../shared/docs/pgo.md`). The cluster is read in
/// the site's Kubernetes namespace; its primary through `address`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PgoDatabase {
    /// The PostgresCluster's name.
    pub cluster: String,
    /// The pguser whose secret (`<cluster>-pguser-<user>`) Keycloak uses; PGO's
    /// default user is the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `host:port` where this site's primary service is exposed (a LoadBalancer or
    /// NodePort): how runbook reads the database, and how the other sites' Keycloak
    /// reach it when this site holds the writer.
    pub address: String,
    /// How this site's own Keycloak reaches it [default: `<cluster>-primary.<namespace>.svc`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_host: Option<String>,
    /// The replay lag a planned move of the writer accepts, in bytes of WAL
    /// [default: 16 MiB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_bytes: Option<u64>,
    /// TLS to the database (PGO always serves TLS) [default: true]; `ca_file`: PGO's
    /// CA (its `<cluster>-cluster-cert` secret's `ca.crt`), else the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

const NAME: &str = "pgo";

/// The id of the guard before a move of PGO's writer.
pub const PGO_WRITER: &str = "builtin-pgo-one-writer";

/// The site's PGO section, if its database is PGO.
pub fn section(cfg: &SiteConfig) -> Option<&PgoDatabase> {
    cfg.typed(Concern::Database, NAME)
}

#[derive(Debug)]
pub struct Pgo;

pub static VENDOR: Pgo = Pgo;

impl VendorSection for Pgo {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Database
    }
    fn example(&self) -> &'static str {
        "pgo: { cluster: …, address: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        let typed = read_as::<PgoDatabase>(value)?;
        let address = typed
            .downcast_ref::<PgoDatabase>()
            .map(|p| p.address.clone())
            .unwrap_or_default();
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
        if !port_ok {
            return Err(Problem::at(
                "address",
                format!("address `{address}` is not host:port (where this site's primary service is exposed, e.g. pg-a.example.com:5432)"),
            ));
        }
        Ok(typed)
    }
}

/// Before each step that moves the database's writer on PGO: `pgo.writer-check`
/// for its site, again right before that step. A step of the role gets it only when
/// its site's database is PGO (its `when`).
fn writer_guards(steps: &[Step]) -> Vec<Guard> {
    let mut out = Vec::new();
    for s in steps {
        let role = matches!(
            s.action.as_str(),
            "database.move-writer" | "database.promote"
        );
        let unplanned = matches!(
            s.action.as_str(),
            "pgo.promote-standby" | "database.promote"
        );
        if !(role || unplanned || s.action == "pgo.move-writer") {
            continue;
        }
        let Some(site) = &s.site else { continue };
        let expr = crate::guarantees::site_expression(site);
        let mut g = crate::guarantees::builtin_guard(
            &format!("{PGO_WRITER}-{}", s.id),
            &format!(
                "Built in, before `{}`: never two writable PGO primaries; the writer moves only to a standby whose replay lag is known and within database.pgo.max_lag_bytes; both sites' pguser secrets equal; nothing paused; every site's Keycloak repointed in the same run",
                s.id
            ),
            "pgo.writer-check",
            json!({"to": site, "unplanned": unplanned}),
            "observation.safe",
        );
        if role {
            g.when = Some(format!(
                "(sites[{expr}].database | default({{}})).pgo is defined"
            ));
        }
        g.before = vec![s.id.clone()];
        out.push(g);
    }
    out.extend(rejoin_guards(steps));
    out
}

/// Before each step of the rejoin role on PGO: exactly one other site holds a
/// writable primary to stream from (recreating the only writer's site destroys the
/// only data).
fn rejoin_guards(steps: &[Step]) -> Vec<Guard> {
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.action != "database.rejoin" {
            continue;
        }
        let Some(site) = &s.site else { continue };
        // A move of the writer earlier in the run changes what it reads.
        let earlier = steps[..i]
            .iter()
            .find(|e| e.action.starts_with("database.") || e.action.starts_with("pgo."));
        let expr = crate::guarantees::site_expression(site);
        let mut g = crate::guarantees::builtin_guard(
            &format!("{PGO_WRITER}-{}", s.id),
            &format!(
                "Built in, before `{}`: exactly one other site holds a writable PGO primary to stream from (recreating the only writer's site would destroy the only data)",
                s.id
            ),
            "pgo.writer-check",
            json!({"to": site}),
            &format!("observation.writable | length == 1 and {expr} not in observation.writable"),
        );
        g.refusal = Some(format!(
            "{{{{ {expr} }}}} is rebuilt only as a standby of exactly one writable primary at another site; writable now: {{{{ observation.writable | join(\", \") or \"none\" }}}}. Nothing was deleted"
        ));
        let own = format!("(sites[{expr}].database | default({{}})).pgo is defined");
        // It applies where the step does.
        g.when = Some(match s.when.as_ref().filter(|w| !w.contains("steps")) {
            Some(w) => format!("({w}) and {own}"),
            None => own,
        });
        g.before = vec![s.id.clone()];
        g.deferred = earlier.map(|e| {
            format!(
                "judged right before `{}`: the earlier step `{}` ({}) moves the writer",
                s.id, e.id, e.action
            )
        });
        out.push(g);
    }
    out
}

#[async_trait]
impl Vendor for Pgo {
    fn summary(&self) -> &'static str {
        "CrunchyData PGO: a PostgresCluster per site, the writer moved by catching up, shutting the old primary down, promoting the standby and repointing every site's Keycloak"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![
            Arc::new(super::ClusterState),
            Arc::new(super::WriterCheck),
            Arc::new(super::MoveWriter(&super::PLANNED)),
            Arc::new(super::MoveWriter(&super::UNPLANNED)),
            Arc::new(super::RecreateAsStandby),
            Arc::new(super::Switchover),
        ]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        vec![
            (
                "database.move-writer",
                Arc::new(super::MoveWriter(&super::PLANNED)),
            ),
            (
                "database.promote",
                Arc::new(super::MoveWriter(&super::UNPLANNED)),
            ),
            ("database.rejoin", Arc::new(super::RecreateAsStandby)),
        ]
    }
    fn touches(&self, action: &str) -> bool {
        // The writer check reads every site, named by its arguments.
        action.starts_with("pgo.") && action != "pgo.writer-check"
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("Kubernetes + PostgreSQL ({site}): the named context's PostgresCluster, and the database at its address answering as that cluster's primary or standby")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
    fn guards(&self, steps: &[Step]) -> Vec<Guard> {
        writer_guards(steps)
    }
    async fn links(&self, ctx: &StepCtx) -> Option<Vec<crate::vendor::Link>> {
        let d = super::deployment(ctx).await;
        let writer = match d["writable"].as_array().map(Vec::as_slice) {
            Some([one]) => one.as_str()?.to_string(),
            _ => return Some(Vec::new()),
        };
        let replayed = |site: &str| {
            d["sites"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["site"] == site)
                .and_then(|s| s["replayed_at"].as_str().map(str::to_string))
        };
        let lags = d["lag_bytes"].as_object().cloned().unwrap_or_default();
        Some(
            lags.iter()
                .map(|(to, lag)| {
                    let bytes = lag.as_u64();
                    crate::vendor::Link {
                        from: writer.clone(),
                        to: to.clone(),
                        lag_bytes: bytes,
                        lag_seconds: match bytes {
                            Some(0) => Some(0.0),
                            Some(_) => replayed(to)
                                .as_deref()
                                .and_then(crate::vendor::seconds_since),
                            None => None,
                        },
                        // Not read for PGO: its standby cluster streams from the
                        // repository or the primary asynchronously.
                        synchronous: None,
                    }
                })
                .collect(),
        )
    }
    async fn writers(&self, ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        let d = super::deployment(ctx).await;
        let writers: Vec<String> = d["writable"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        Some((
            writers,
            format!(
                "PGO: {}",
                d["summary"].as_str().unwrap_or("read from every site")
            ),
        ))
    }
    async fn standbys(&self, ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        let d = super::deployment(ctx).await;
        let standbys: Vec<String> = d["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["standby"] == true && s["shutdown"] != true && s["exists"] != false)
            .filter_map(|s| s["site"].as_str().map(str::to_string))
            .collect();
        Some((
            standbys,
            format!(
                "the database's running standby: {}",
                d["summary"].as_str().unwrap_or("read from every site")
            ),
        ))
    }
}

/// PGO: the site's Kubernetes proves the cluster is this site's (its API server and
/// namespace), and the database behind `address` must agree with that cluster: a
/// standby cluster's database is in recovery. An address that answers otherwise is
/// another site's database.
async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let mut p = prove_kubernetes(ctx, site).await;
    p.via = "pgo";
    if p.problem.is_some() {
        return p;
    }
    let Some(cfg) = site_config(ctx)
        .ok()
        .and_then(|(_, c)| section(&c).cloned())
    else {
        p.problem = Some(format!(
            "configuration: sites.{site}.database names no pgo section"
        ));
        return p;
    };
    p.endpoint = format!(
        "PostgresCluster `{}` and the database at {}",
        cfg.cluster, cfg.address
    );
    p.marks.push(format!("PostgreSQL at {}", cfg.address));
    match super::identity(ctx, site, &cfg).await {
        Ok(answered) => p.answered = answered,
        Err(problem) => p.problem = Some(problem.to_string()),
    }
    p
}
