//! Roles: what a procedure does to traffic and to the database, whatever carries it.
//! A runbook names the role (`traffic.point-away`, `database.move-writer`); the site's
//! section of the environment file names the vendor (`traffic: {route53: …}`,
//! `database: {aurora: …}`), and the role hands every call to that vendor's action.
//! The plan still shows the vendor's exact calls (its `describe`), the journal its
//! outputs, and the vendor actions stay available to hand-written runbooks.
//!
//! A new vendor is an action of its own family and a row in [`Role::vendors`] of the
//! roles it can play, with the test in `config/roles.rs` that says which section
//! names it.
//!
//! The contract's methods that get no step context (the effect class, the poll
//! interval, how an observation is judged) are answered by the vendor the
//! observation names (`vendor`, added by the role to every observation), else by the
//! first vendor: vendors of one role share the effect class and the arguments.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::action::ImpactKind;
use engine::model::{Args, Effect, Outputs};
use engine::{Action, ArgSpec, StepCtx, StepError};
use serde_json::Value as Json;

use crate::config::SiteConfig;

/// The concern a role is about: which section of a site names its vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concern {
    Traffic,
    Database,
}

impl Concern {
    pub fn as_str(self) -> &'static str {
        match self {
            Concern::Traffic => "traffic",
            Concern::Database => "database",
        }
    }

    /// The vendor a site's section names for this concern (the old keys count).
    pub fn vendor_of(self, site: &SiteConfig) -> Option<&'static str> {
        match self {
            Concern::Traffic => {
                if site
                    .traffic
                    .as_ref()
                    .is_some_and(|t| t.accelerator.is_some())
                {
                    Some("accelerator")
                } else {
                    site.route53.is_some().then_some("route53")
                }
            }
            Concern::Database => {
                if site.database.as_ref().is_some_and(|d| d.pgo.is_some()) {
                    Some("pgo")
                } else {
                    site.aurora.is_some().then_some("aurora")
                }
            }
        }
    }

    /// What the operator writes to name one, for messages.
    fn example(self) -> &'static str {
        match self {
            Concern::Traffic => "traffic: { route53: { health_check_id: … } } or traffic: { accelerator: { name: …, load_balancer: … } }",
            Concern::Database => {
                "database: { aurora: { instance: …, zone: … } } or database: { pgo: { cluster: …, address: … } }"
            }
        }
    }
}

/// One role: its name, and the vendors that can play it.
pub struct Role {
    name: &'static str,
    summary: &'static str,
    concern: Concern,
    /// (vendor family, its action), the first the reference for what needs no site.
    vendors: Vec<(&'static str, Arc<dyn Action>)>,
    /// A deployment-wide role (which site serves): the vendor is the one any site
    /// names; otherwise the step's site's.
    deployment_wide: bool,
    /// The invariants a step of this role carries (`invariants.rs`), whatever vendor
    /// plays it.
    invariants: &'static [&'static str],
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role").field("name", &self.name).finish()
    }
}

impl Role {
    fn new(
        name: &'static str,
        summary: &'static str,
        concern: Concern,
        vendors: Vec<(&'static str, Arc<dyn Action>)>,
    ) -> Role {
        Role {
            name,
            summary,
            concern,
            vendors,
            deployment_wide: false,
            invariants: &[],
        }
    }

    /// The vendors this role hands to, by family.
    pub fn vendors(&self) -> Vec<&'static str> {
        self.vendors.iter().map(|(v, _)| *v).collect()
    }

    fn reference(&self) -> &Arc<dyn Action> {
        &self.vendors[0].1
    }

    fn by_family(&self, family: &str) -> Option<&Arc<dyn Action>> {
        self.vendors
            .iter()
            .find(|(v, _)| *v == family)
            .map(|(_, a)| a)
    }

    /// The vendor for this step: its site's section (or, deployment-wide, any site's).
    fn vendor(&self, ctx: &StepCtx) -> Result<(&'static str, &Arc<dyn Action>), StepError> {
        let sites = crate::config::sites(&ctx.env);
        let named: Option<&'static str> = if self.deployment_wide {
            sites.values().find_map(|s| self.concern.vendor_of(s))
        } else {
            let (name, cfg) = crate::clients::site_config(ctx)?;
            let v = self.concern.vendor_of(&cfg);
            if v.is_none() {
                return Err(StepError::configuration(format!(
                    "`{}`: site `{name}` names no {} vendor in the environment file (give sites.{name}.{})",
                    self.name,
                    self.concern.as_str(),
                    self.concern.example()
                )));
            }
            v
        };
        let family = named.ok_or_else(|| {
            StepError::configuration(format!(
                "`{}`: no site names a {} vendor in the environment file ({})",
                self.name,
                self.concern.as_str(),
                self.concern.example()
            ))
        })?;
        let action = self.by_family(family).ok_or_else(|| {
            StepError::configuration(format!(
                "`{}` cannot be played by {family} (it can by: {})",
                self.name,
                self.vendors().join(", ")
            ))
        })?;
        Ok((family, action))
    }

    /// The vendor an observation came from (the role marks each), else the reference.
    fn judge(&self, observation: &Json) -> &Arc<dyn Action> {
        observation
            .get("vendor")
            .and_then(Json::as_str)
            .and_then(|v| self.by_family(v))
            .unwrap_or_else(|| self.reference())
    }
}

fn marked(family: &str, mut observation: Json) -> Json {
    if let Json::Object(m) = &mut observation {
        m.entry("vendor")
            .or_insert_with(|| Json::String(family.to_string()));
    }
    observation
}

#[async_trait]
impl Action for Role {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn args(&self) -> &'static [ArgSpec] {
        self.reference().args()
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        self.reference().outputs()
    }
    fn effect(&self, args: &Args) -> Effect {
        self.reference().effect(args)
    }
    fn default_timeout(&self) -> Duration {
        self.reference().default_timeout()
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        self.reference().poll_interval(args)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        match self.vendor(ctx) {
            Ok((_, a)) => a.describe(ctx, args),
            Err(e) => vec![format!("(no vendor: {})", e.message)],
        }
    }
    fn impact(&self, ctx: &StepCtx, args: &Args) -> Option<(ImpactKind, String)> {
        self.vendor(ctx).ok()?.1.impact(ctx, args)
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let (family, a) = self.vendor(ctx)?;
        Ok(marked(family, a.probe(ctx, args).await?))
    }
    async fn prepare(&self, ctx: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
        let (_, a) = self.vendor(ctx)?;
        a.prepare(ctx, args).await
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let (_, a) = self.vendor(ctx)?;
        a.apply(ctx, args, prepared).await
    }
    fn postcondition(&self, ctx: &StepCtx, args: &Args) -> Option<String> {
        self.vendor(ctx).ok()?.1.postcondition(ctx, args)
    }
    fn satisfied(&self, args: &Args, observation: &Json) -> bool {
        self.judge(observation).satisfied(args, observation)
    }
    fn reissue(&self) -> bool {
        self.reference().reissue()
    }
    fn invariants(&self) -> &'static [&'static str] {
        self.invariants
    }
    fn explain(&self, args: &Args, observation: &Json) -> Option<String> {
        self.judge(observation).explain(args, observation)
    }
}

/// Which sites serve clients now, read from the deployment's traffic vendor through
/// the role it plays (which sites serve, or which site serves), as a list, with how it
/// was read.
///
/// # Errors
/// No site names a traffic vendor, the vendor cannot be read, or what it answers does
/// not say which sites serve (a reading whose sites cannot be told apart).
pub async fn serving_now(ctx: &StepCtx) -> Result<(Vec<String>, String), StepError> {
    serving_and_ready(ctx).await.map(|(s, _, how)| (s, how))
}

/// As [`serving_now`], with the sites ready to serve should a serving one leave: those
/// that serve, and (active/passive, e.g. Route53's failover pair) each other site whose
/// health check is healthy.
///
/// # Errors
/// As [`serving_now`].
pub async fn serving_and_ready(
    ctx: &StepCtx,
) -> Result<(Vec<String>, Vec<String>, String), StepError> {
    serving_in(&traffic_reading(ctx).await?)
}

/// What the deployment's traffic vendor reads of which sites serve (the role's
/// observation).
async fn traffic_reading(ctx: &StepCtx) -> Result<Json, StepError> {
    let sites = crate::config::sites(&ctx.env);
    let family = sites
        .values()
        .find_map(|s| Concern::Traffic.vendor_of(s))
        .ok_or_else(|| {
            StepError::configuration(format!(
                "which sites serve cannot be read: no site names a traffic vendor ({})",
                Concern::Traffic.example()
            ))
        })?;
    let action = all()
        .into_iter()
        .filter(|r| r.deployment_wide && r.concern == Concern::Traffic)
        .find_map(|r| r.by_family(family).cloned())
        .ok_or_else(|| {
            StepError::configuration(format!("no role reads which sites {family} serves"))
        })?;
    action.probe(ctx, &Args::new()).await
}

/// The sites that serve and are ready to, from the traffic vendor's reading.
fn serving_in(v: &Json) -> Result<(Vec<String>, Vec<String>, String), StepError> {
    let how = v["how"]
        .as_str()
        .or(v["summary"].as_str())
        .unwrap_or_default()
        .to_string();
    if v.get("can_act") == Some(&Json::Bool(false)) {
        return Err(StepError::permanent(format!(
            "which sites serve cannot be told: {how}"
        )));
    }
    let serving = match &v["serving"] {
        Json::String(s) => vec![s.clone()],
        Json::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(StepError::permanent(format!(
                "which sites serve cannot be told: {how}"
            )))
        }
    };
    let mut ready = serving.clone();
    for r in v["records"].as_array().into_iter().flatten() {
        if let (Some(site), Some(true)) = (r["site"].as_str(), r["healthy"].as_bool()) {
            if !ready.iter().any(|s| s == site) {
                ready.push(site.to_string());
            }
        }
    }
    Ok((serving, ready, how))
}

/// The roles this build knows, each with the vendors that can play it.
pub fn all() -> Vec<Role> {
    let set_path: Arc<dyn Action> = Arc::new(crate::route53::SetPath);
    let failover: Arc<dyn Action> = Arc::new(crate::aurora::Failover);
    let pgo_move: Arc<dyn Action> = Arc::new(crate::pgo::MoveWriter { unplanned: false });
    let serving: Arc<dyn Action> = Arc::new(crate::serving::ServingSite);
    let ga_serving: Arc<dyn Action> = Arc::new(crate::accelerator::ServingSites);
    let ga_remove: Arc<dyn Action> = Arc::new(crate::accelerator::Move { add: false });
    let ga_add: Arc<dyn Action> = Arc::new(crate::accelerator::Move { add: true });
    vec![
        Role {
            deployment_wide: true,
            ..Role::new(
                "traffic.serving-sites",
                "Which sites serve clients at once (active/active), read from the traffic vendor (Global Accelerator: the endpoint group's endpoints, weight and health, each NLB's `site` tag)",
                Concern::Traffic,
                vec![("accelerator", ga_serving)],
            )
        },
        Role {
            invariants: &[crate::guarantees::REMOVE],
            ..Role::new(
            "traffic.remove-site",
            "Stop sending clients to this site while the others keep serving (Global Accelerator: remove its NLB from the endpoint group, never the last serving one)",
            Concern::Traffic,
            vec![("accelerator", ga_remove)],
        )
        },
        Role {
            invariants: &[crate::guarantees::ADD],
            ..Role::new(
            "traffic.add-site",
            "Send clients to this site again beside the others (Global Accelerator: add its NLB to the endpoint group, until HEALTHY)",
            Concern::Traffic,
            vec![("accelerator", ga_add)],
        )
        },
        Role {
            deployment_wide: true,
            ..Role::new(
                "traffic.serving-site",
                "Which site serves clients, read from the traffic vendor (Route53: the failover records, their health checks, the DNS answer)",
                Concern::Traffic,
                vec![("route53", Arc::clone(&serving))],
            )
        },
        Role {
            invariants: &[crate::guarantees::REMOVE],
            ..Role::new(
            "traffic.point-away",
            "Point clients away from this site (Route53: its health check at a path that does not exist, until it is unhealthy)",
            Concern::Traffic,
            vec![("route53", Arc::clone(&set_path))],
        )
        },
        Role {
            invariants: &[crate::guarantees::ADD],
            ..Role::new(
            "traffic.restore",
            "Let clients reach this site again (Route53: its health check back at the path recorded, until it is healthy)",
            Concern::Traffic,
            vec![("route53", set_path)],
        )
        },
        Role::new(
            "database.move-writer",
            "Move the database's writer to this site (Aurora: fail the cluster over to this site's instance; PGO: catch up, shut the old primary down, promote this site's standby, repoint every site's Keycloak)",
            Concern::Database,
            vec![("aurora", failover), ("pgo", pgo_move)],
        ),
    ]
}

/// A site read from the deployment as it is now, for a parameter that names a
/// direction (`Param::from_deployment`): `serving` (the one site clients reach),
/// `not-serving` (the other), `standby` (the one site whose database answers as a
/// running standby), `not-standby` (the other). With how it was read, for the plan.
///
/// # Errors
/// What it reads cannot be read, or does not name exactly one site: the operator
/// names it (`-p name=site`).
pub async fn direction(
    env: std::sync::Arc<engine::env::Environment>,
    fact: &str,
) -> Result<(String, String), StepError> {
    let ctx = StepCtx {
        run_id: "plan".into(),
        step_id: "parameters".into(),
        item: None,
        site: None,
        env: std::sync::Arc::clone(&env),
        timeout: Duration::from_secs(20),
        interrupt: Default::default(),
    };
    let all: Vec<String> = env.sites.keys().cloned().collect();
    let (chosen, how): (Vec<String>, String) = match fact {
        "serving" | "not-serving" => serving_now(&ctx).await?,
        // The site the traffic vendor prefers and the one it falls back to (Route53's
        // PRIMARY and SECONDARY failover records), whichever serves now.
        "preferred" | "fallback" => {
            let v = traffic_reading(&ctx).await?;
            let role = if fact == "preferred" {
                "PRIMARY"
            } else {
                "SECONDARY"
            };
            let site: Vec<String> = v["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["role"] == role)
                .filter_map(|r| r["site"].as_str().map(str::to_string))
                .collect();
            (site, format!("the {role} failover record's site"))
        }
        "standby" | "not-standby" => {
            let d = crate::pgo::deployment(&ctx).await;
            let standbys: Vec<String> = d["sites"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["standby"] == true && s["shutdown"] != true && s["exists"] != false)
                .filter_map(|s| s["site"].as_str().map(str::to_string))
                .collect();
            (
                standbys,
                format!(
                    "the database's running standby: {}",
                    d["summary"].as_str().unwrap_or("read from every site")
                ),
            )
        }
        other => {
            return Err(StepError::configuration(format!(
                "unknown deployment fact `{other}`"
            )))
        }
    };
    let picked: Vec<String> = if fact.starts_with("not-") {
        all.iter()
            .filter(|s| !chosen.contains(s))
            .cloned()
            .collect()
    } else {
        chosen.clone()
    };
    match picked.as_slice() {
        [one] => Ok((one.clone(), how)),
        _ => Err(StepError::permanent(format!(
            "{fact} cannot be told from the deployment ({} of {} sites; {how})",
            picked.len(),
            all.len()
        ))),
    }
}
