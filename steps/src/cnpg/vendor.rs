//! CloudNativePG's section (`database: {cnpg: …}`), its identity proof, the roles it
//! plays and the guard it adds before every move of the writer.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use engine::model::{Guard, Step};
use engine::{Action, StepCtx};
use serde_json::json;

use super::config::{CnpgDatabase, NAME};
use crate::config::roles::read_as;
use crate::config::{Concern, Problem, VendorSection};
use crate::identity::{prove_kubernetes, Proof};
use crate::vendor::Vendor;

/// The id of the guard before a move of CloudNativePG's writer.
pub const CNPG_WRITER: &str = "builtin-cnpg-one-writer";
/// The id of the guard that replication to the target is synchronous.
pub const CNPG_SYNCHRONOUS: &str = "builtin-cnpg-synchronous";

#[derive(Debug)]
pub struct Cnpg;

pub static VENDOR: Cnpg = Cnpg;

impl VendorSection for Cnpg {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Database
    }
    fn example(&self) -> &'static str {
        "cnpg: { cluster: …, address: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        let typed = read_as::<CnpgDatabase>(value)?;
        let address = typed
            .downcast_ref::<CnpgDatabase>()
            .map(|c| c.address.clone())
            .unwrap_or_default();
        let ok = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|n| n > 0));
        if !ok {
            return Err(Problem::at("address", format!("address `{address}` is not host:port (where this site's -rw service is exposed)")));
        }
        Ok(typed)
    }
}

/// Before each step that moves the writer on CloudNativePG: `cnpg.writer-check` for
/// its site, again right before that step; through a role only where the site's
/// database is CloudNativePG.
fn writer_guards(steps: &[Step]) -> Vec<Guard> {
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if matches!(s.action.as_str(), "database.rejoin" | "cnpg.rejoin") {
            out.extend(rejoin_guard(s, &steps[..i]));
            continue;
        }
        let role = matches!(
            s.action.as_str(),
            "database.move-writer" | "database.promote"
        );
        let unplanned = matches!(s.action.as_str(), "database.promote" | "cnpg.failover");
        if !(role || unplanned || s.action == "cnpg.switchover") {
            continue;
        }
        let Some(site) = &s.site else { continue };
        let expr = crate::guarantees::site_expression(site);
        let mut g = crate::guarantees::builtin_guard(
            &format!("{CNPG_WRITER}-{}", s.id),
            &format!(
                "Built in, before `{}`: never two writable CloudNativePG primaries (read from the databases); {}",
                s.id,
                if unplanned { "a promotion without a token only while no other site answers writable" } else { "the target streaming within database.cnpg.max_lag_bytes, the app secrets equal" }
            ),
            "cnpg.writer-check",
            json!({"to": site, "unplanned": unplanned}),
            "observation.safe",
        );
        if role {
            g.when = Some(format!(
                "(sites[{expr}].database | default({{}})).cnpg is defined"
            ));
        }
        g.before = vec![s.id.clone()];
        let mut sync = g.clone();
        sync.id = format!("{CNPG_SYNCHRONOUS}-{}", s.id);
        sync.title = format!(
            "Built in, before `{}`: replication to the target is synchronous across the sites, as Keycloak's multi-site guide requires (asynchronous: {}; refused unless forced)",
            s.id,
            if unplanned { "what the target had not received from the lost primary is lost" } else { "the move is safe only because it waits for the target to catch up, and a site loss would lose data" }
        );
        sync.expect = "observation.synchronous".into();
        sync.refusal = Some("{{ observation.replication }}".into());
        out.push(g);
        out.push(sync);
    }
    out
}

/// Before a rebuild: exactly one other site writes (rebuilding the only writer's site
/// would destroy the only data).
fn rejoin_guard(s: &Step, earlier: &[Step]) -> Option<Guard> {
    let site = s.site.as_ref()?;
    let expr = crate::guarantees::site_expression(site);
    let mut g = crate::guarantees::builtin_guard(
        &format!("{CNPG_WRITER}-{}", s.id),
        &format!("Built in, before `{}`: exactly one other site holds a writable CloudNativePG primary to rebuild from (rebuilding the only writer's site would destroy the only data)", s.id),
        "cnpg.writer-check",
        json!({"to": site, "unplanned": true}),
        &format!("observation.writable | length == 1 and {expr} not in observation.writable"),
    );
    g.refusal = Some(format!(
        "{{{{ {expr} }}}} is rebuilt only from exactly one writable primary at another site; writable now: {{{{ observation.writable | join(\", \") or \"none\" }}}}. Nothing was deleted"
    ));
    // It applies where the step does, and only to a CloudNativePG site through the role.
    let mut when: Vec<String> = s
        .when
        .iter()
        .filter(|w| !w.contains("steps"))
        .map(|w| format!("({w})"))
        .collect();
    if s.action == "database.rejoin" {
        when.push(format!(
            "(sites[{expr}].database | default({{}})).cnpg is defined"
        ));
    }
    g.when = (!when.is_empty()).then(|| when.join(" and "));
    g.before = vec![s.id.clone()];
    // A move of the writer earlier in the run changes what it reads.
    g.deferred = earlier
        .iter()
        .find(|e| e.action.starts_with("database.") || e.action.starts_with("cnpg."))
        .map(|e| {
            format!(
                "judged right before `{}`: the earlier step `{}` ({}) moves the writer",
                s.id, e.id, e.action
            )
        });
    Some(g)
}

#[async_trait]
impl Vendor for Cnpg {
    fn summary(&self) -> &'static str {
        "CloudNativePG (distributed topology): a Cluster per site, the writer moved with demotion and promotion tokens (the token journaled the moment it appears), or promoted without one when the writer's site is lost"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![
            Arc::new(super::actions::WriterCheck),
            Arc::new(super::actions::Switchover),
            Arc::new(super::actions::Failover),
            Arc::new(super::actions::Rejoin),
        ]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        vec![
            ("database.move-writer", Arc::new(super::actions::Switchover)),
            ("database.promote", Arc::new(super::actions::Failover)),
            ("database.rejoin", Arc::new(super::actions::Rejoin)),
        ]
    }
    fn touches(&self, action: &str) -> bool {
        matches!(action, "cnpg.switchover" | "cnpg.failover" | "cnpg.rejoin")
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("Kubernetes + PostgreSQL ({site}): the named context's Cluster (its spec.replica.self), and the database at its address answering as that Cluster's role")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
    fn guards(&self, steps: &[Step]) -> Vec<Guard> {
        writer_guards(steps)
    }
    async fn standbys(&self, ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        let all = super::read::all(ctx).await;
        let replicas: Vec<String> = all
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .filter(|s| s.replica_by_spec() && matches!(&s.sql, Ok(q) if q.in_recovery))
            .map(|s| s.site.clone())
            .collect();
        Some((
            replicas,
            "the CloudNativePG replica cluster whose database answers in recovery".into(),
        ))
    }
    async fn writers(&self, ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        let mut how: Vec<String> = Vec::new();
        let mut writers = Vec::new();
        for v in &super::read::all(ctx).await {
            match v {
                Ok(s) => {
                    if s.writable() {
                        writers.push(s.site.clone());
                    }
                    how.push(match &s.sql {
                        Ok(q) if q.in_recovery => format!("{} replays at {}", s.site, q.lsn),
                        Ok(q) => format!(
                            "{} writes at {} (timeline {})",
                            s.site,
                            q.lsn,
                            s.status("timelineID")
                        ),
                        Err(e) => format!("{} does not answer ({e})", s.site),
                    });
                }
                Err((site, e)) => how.push(format!("{site} cannot be read ({e})")),
            }
        }
        Some((writers, format!("CloudNativePG: {}", how.join("; "))))
    }
    async fn links(&self, ctx: &StepCtx) -> Option<Vec<crate::vendor::Link>> {
        let all = super::read::all(ctx).await;
        let read: Vec<(&super::read::Site, &super::read::Sql)> = all
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .filter_map(|s| Some((s, s.sql.as_ref().ok()?)))
            .collect();
        let mut out = Vec::new();
        for (w, ws) in read.iter().filter(|(_, q)| !q.in_recovery) {
            for (r, rs) in read.iter().filter(|(_, q)| q.in_recovery) {
                let mut link = crate::vendor::Link::of(
                    &w.site,
                    &r.site,
                    ws.lsn_bytes,
                    rs.lsn_bytes,
                    rs.replayed_at.as_deref(),
                );
                link.synchronous = Some(w.waits_for(&r.cfg.cluster));
                out.push(link);
            }
        }
        Some(out)
    }
}

/// A CloudNativePG site proves itself by its Kubernetes (the context's API server and
/// namespace), its Cluster (named as the file says, `spec.replica.self` that name),
/// and its database agreeing with the Cluster's role: a replica answers in recovery.
async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let mut p = prove_kubernetes(ctx, site).await;
    p.via = "cnpg";
    if p.problem.is_some() {
        return p;
    }
    let s = match super::read::site(ctx, site).await {
        Ok(s) => s,
        Err(e) => {
            p.problem = Some(crate::identity::classify(&e));
            return p;
        }
    };
    p.endpoint = format!(
        "Cluster `{}` and the database at {}",
        s.cfg.cluster, s.cfg.address
    );
    p.marks.push(format!("PostgreSQL at {}", s.cfg.address));
    let Some(c) = &s.cluster else {
        p.problem = Some(format!(
            "MISMATCH: this cluster has no CloudNativePG Cluster `{}`",
            s.cfg.cluster
        ));
        return p;
    };
    let me = c["spec"]["replica"]["self"]
        .as_str()
        .unwrap_or(&s.cfg.cluster)
        .to_string();
    let replica = s.replica_by_spec();
    match &s.sql {
        Err(e) => {
            p.answered = format!(
                "Cluster `{me}` ({}); its database does not answer: {e}",
                if replica { "replica" } else { "primary" }
            )
        }
        Ok(q) => {
            p.answered = format!(
                "Cluster `{me}` ({}), database {}",
                if replica { "replica" } else { "primary" },
                if q.in_recovery {
                    "in recovery"
                } else {
                    "writable"
                }
            );
            if me != s.cfg.cluster {
                p.problem = Some(format!(
                    "MISMATCH: Cluster `{}` says it is `{me}` in the topology",
                    s.cfg.cluster
                ));
            } else if replica && !q.in_recovery {
                p.problem = Some(format!("MISMATCH: the database at {} writes, but {site}'s Cluster is a replica: it is another site's database (or a replica on paper only)", s.cfg.address));
            }
        }
    }
    p
}
