//! Roles: what a procedure does to traffic and to the database, whatever carries it.
//! A runbook names the role (`traffic.point-away`, `database.move-writer`); the site's
//! section of the environment file names the vendor (`traffic: {route53: …}`,
//! `database: {aurora: …}`), and the role hands every call to that vendor's action.
//! The plan still shows the vendor's exact calls (its `describe`), the journal its
//! outputs, and the vendor actions stay available to hand-written runbooks.
//!
//! Which vendor plays which role is the vendors' to say (`Vendor::plays`, in each
//! vendor's folder): this file names no vendor.
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

use crate::config::{Concern, SiteConfig};

/// The vendor a site's section names for `concern`.
fn vendor_of(concern: Concern, site: &SiteConfig) -> Option<&'static str> {
    crate::vendors::of_site(site, concern).map(|v| v.vendor())
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
            sites.values().find_map(|s| vendor_of(self.concern, s))
        } else {
            let (name, cfg) = crate::clients::site_config(ctx)?;
            let v = vendor_of(self.concern, &cfg);
            if v.is_none() {
                return Err(StepError::configuration(format!(
                    "`{}`: site `{name}` names no {} vendor in the environment file (give sites.{name}.{})",
                    self.name,
                    self.concern.as_str(),
                    crate::vendors::examples(self.concern)
                )));
            }
            v
        };
        let family = named.ok_or_else(|| {
            StepError::configuration(format!(
                "`{}`: no site names a {} vendor in the environment file ({})",
                self.name,
                self.concern.as_str(),
                crate::vendors::examples(self.concern)
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
    /// The most severe of its vendors' (a plan must not call a step idempotent that
    /// one vendor plays destructively).
    fn effect(&self, args: &Args) -> Effect {
        self.vendors
            .iter()
            .map(|(_, a)| a.effect(args))
            .max_by_key(|e| match e {
                Effect::ReadOnly => 0,
                Effect::Idempotent => 1,
                Effect::Destructive => 2,
            })
            .unwrap_or_else(|| self.reference().effect(args))
    }
    /// The longest of its vendors' (the step's time budget must fit the slowest way
    /// the role is played; a runbook's `timeout:` says otherwise).
    fn default_timeout(&self) -> Duration {
        self.vendors
            .iter()
            .map(|(_, a)| a.default_timeout())
            .max()
            .unwrap_or_else(|| self.reference().default_timeout())
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
        .find_map(|s| vendor_of(Concern::Traffic, s))
        .ok_or_else(|| {
            StepError::configuration(format!(
                "which sites serve cannot be read: no site names a traffic vendor ({})",
                crate::vendors::examples(Concern::Traffic)
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

/// A role's definition: (name, summary, concern, deployment-wide, invariants).
type Definition = (
    &'static str,
    &'static str,
    Concern,
    bool,
    &'static [&'static str],
);

/// The roles this build knows. Their vendors are the ones that say they play them.
const ROLES: &[Definition] = &[
    ("traffic.serving-sites", "Which sites serve clients at once (active/active), read from the traffic vendor", Concern::Traffic, true, &[]),
    ("traffic.remove-site", "Stop sending clients to this site while the others keep serving (never the last serving one)", Concern::Traffic, false, &[crate::guarantees::REMOVE]),
    ("traffic.add-site", "Send clients to this site again beside the others, until its health check passes", Concern::Traffic, false, &[crate::guarantees::ADD]),
    ("traffic.serving-site", "Which one site serves clients (active/passive), read from the traffic vendor", Concern::Traffic, true, &[]),
    ("traffic.point-away", "Point clients away from this site, until the traffic vendor reports it unhealthy", Concern::Traffic, false, &[crate::guarantees::REMOVE]),
    ("traffic.restore", "Let clients reach this site again, until the traffic vendor reports it healthy", Concern::Traffic, false, &[crate::guarantees::ADD]),
    ("database.move-writer", "Move the database's writer to this site (as the site's database vendor does it: see the plan's calls)", Concern::Database, false, &[]),
    ("database.promote", "Make this site's database the writer because the writer's site is lost (unplanned: the data not yet replicated is lost, and journaled)", Concern::Database, false, &[crate::guarantees::PROMOTE]),
    ("database.rejoin", "Make this site's database follow the current writer again (a vendor that cannot rewind it rebuilds it, discarding this site's data)", Concern::Database, false, &[]),
];

/// Whether the vendor `site` names for the role's concern plays `role` there.
pub fn plays(site: &SiteConfig, role: &str) -> bool {
    let Some(concern) = concern_of(role) else {
        return false;
    };
    crate::vendors::of_site(site, concern)
        .is_some_and(|v| v.plays().iter().any(|(r, _)| *r == role))
}

/// The concern of a role action (`traffic.remove-site` → traffic), if `action` is one.
pub fn concern_of(action: &str) -> Option<Concern> {
    ROLES
        .iter()
        .find(|(name, ..)| *name == action)
        .map(|(_, _, c, ..)| *c)
}

/// The roles this build knows, each with the vendors that say they play it (a role no
/// vendor plays is left out).
pub fn all() -> Vec<Role> {
    ROLES
        .iter()
        .filter_map(|&(name, summary, concern, deployment_wide, invariants)| {
            let vendors: Vec<(&'static str, Arc<dyn Action>)> = crate::vendors::all()
                .into_iter()
                .filter(|v| v.concern() == concern)
                .flat_map(|v| {
                    v.plays()
                        .into_iter()
                        .filter(|(role, _)| *role == name)
                        .map(move |(_, a)| (v.vendor(), a))
                })
                .collect();
            (!vendors.is_empty()).then(|| Role {
                deployment_wide,
                invariants,
                ..Role::new(name, summary, concern, vendors)
            })
        })
        .collect()
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
        progress: Default::default(),
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
        "standby" | "not-standby" => standbys(&ctx).await?,
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

/// The sites whose database runs as a standby now, read through the database vendor
/// the sites name.
async fn standbys(ctx: &StepCtx) -> Result<(Vec<String>, String), StepError> {
    let sites = crate::config::sites(&ctx.env);
    let vendor = sites
        .values()
        .find_map(|s| crate::vendors::of_site(s, Concern::Database))
        .ok_or_else(|| {
            StepError::configuration(format!(
                "which site is the standby cannot be read: no site names a database vendor ({})",
                crate::vendors::examples(Concern::Database)
            ))
        })?;
    vendor.standbys(ctx).await.ok_or_else(|| {
        StepError::permanent(format!(
            "{} cannot tell which site's database is a standby: name the site (-p …)",
            vendor.vendor()
        ))
    })
}

/// Each replication link from the writer to a standby with its lag, read now through
/// the database vendor the sites name (`None`: none can tell): the data a loss of the
/// writer's site would cost (`runbook_replication_lag_bytes`).
pub async fn replication(
    env: std::sync::Arc<engine::env::Environment>,
) -> Option<Vec<crate::vendor::Link>> {
    let ctx = StepCtx {
        run_id: "metrics".into(),
        step_id: "replication".into(),
        item: None,
        site: None,
        env,
        timeout: Duration::from_secs(20),
        interrupt: Default::default(),
        progress: Default::default(),
    };
    links(&ctx).await
}

/// Each replication link from the writer to a standby with its lag, read through the
/// database vendor the sites name (`None`: none can tell).
pub async fn links(ctx: &StepCtx) -> Option<Vec<crate::vendor::Link>> {
    let vendor = crate::config::sites(&ctx.env)
        .values()
        .find_map(|s| crate::vendors::of_site(s, Concern::Database))?;
    vendor.links(ctx).await
}

/// Which sites' databases answer writable now, read through the database vendor the
/// sites name, with how (`None`: no site names a database vendor that can tell).
pub async fn writers(ctx: &StepCtx) -> Option<(Vec<String>, String)> {
    let vendor = crate::config::sites(&ctx.env)
        .values()
        .find_map(|s| crate::vendors::of_site(s, Concern::Database))?;
    vendor.writers(ctx).await
}
