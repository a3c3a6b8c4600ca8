//! Aurora as a database vendor (the Keycloak 24 shape): one cluster whose writer moves
//! between the sites' availability zones. Its section, its identity proof and the
//! role it plays.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use engine::{Action, StepCtx};
use serde::{Deserialize, Serialize};

use crate::config::roles::{once, read_as};
use crate::config::{Concern, Problem, RoleSection, SiteConfig, VendorSection};
use crate::identity::{aws_conf, begin, missing, within, Proof};
use crate::vendor::Vendor;

/// `database: {aurora: …}`, whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuroraDatabase {
    /// The cluster (the same for every site; given by one site or several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// This site's instance.
    pub instance: String,
    /// The availability zone of this site (`DescribeDBInstances`'
    /// `AvailabilityZone`): what proves the instance belongs to this site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

const NAME: &str = "aurora";

/// A site's Aurora section.
pub fn section(site: &SiteConfig) -> Option<&AuroraDatabase> {
    site.typed(Concern::Database, NAME)
}

/// The deployment's cluster, from whichever sites give it.
pub fn cluster(env: &engine::env::Environment) -> Option<String> {
    crate::config::sites(env)
        .values()
        .filter_map(section)
        .find_map(|a| a.cluster.clone())
}

#[derive(Debug)]
pub struct Aurora;

pub static VENDOR: Aurora = Aurora;

impl VendorSection for Aurora {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Database
    }
    fn example(&self) -> &'static str {
        "aurora: { cluster: …, instance: …, zone: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        read_as::<AuroraDatabase>(value)
    }
    fn across(&self, sections: &[(&str, &RoleSection)]) -> Result<(), Problem> {
        once(
            sections.iter().map(|(n, s)| {
                (
                    *n,
                    s.typed::<AuroraDatabase>(NAME)
                        .and_then(|a| a.cluster.as_deref()),
                )
            }),
            "the Aurora cluster",
            "cluster",
        )
        .map(|_| ())
    }
}

#[async_trait]
impl Vendor for Aurora {
    fn summary(&self) -> &'static str {
        "Amazon Aurora: the cluster's writer failed over to this site's instance"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![Arc::new(super::Failover)]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        // A lost site's zone: Aurora fails over to the survivor's instance the same way.
        vec![
            ("database.move-writer", Arc::new(super::Failover)),
            ("database.promote", Arc::new(super::Failover)),
        ]
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("RDS ({site}): DescribeDBInstances (AvailabilityZone)")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
    fn permanent_codes(&self) -> &'static [&'static str] {
        // botocore's rds service model (data/rds/2014-10-31/service-2.json): the
        // cluster or instance named does not exist, or is in no state to fail over.
        &[
            "DBClusterNotFoundFault",
            "DBInstanceNotFound",
            "InvalidDBInstanceState",
        ]
    }
}

async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "aurora");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(a) = section(&cfg).cloned() else {
        return missing(p, site, "database.aurora");
    };
    p.endpoint = format!("RDS instance `{}`", a.instance);
    p.marks.push(format!("Aurora instance {}", a.instance));
    let Some(conf) = aws_conf(ctx, &mut p).await else {
        return p;
    };
    let rds = aws_sdk_rds::Client::new(&conf);
    let call = format!("RDS DescribeDBInstances({})", a.instance);
    let sent = rds
        .describe_db_instances()
        .db_instance_identifier(&a.instance)
        .send();
    match within(&call, sent, crate::aurora::sdk_error).await {
        Err(problem) => p.problem = Some(problem.0),
        Ok(out) => {
            let zone = out
                .db_instances()
                .first()
                .and_then(|i| i.availability_zone())
                .unwrap_or_default()
                .to_string();
            p.answered = format!("AvailabilityZone `{zone}`");
            match &a.zone {
                None => {
                    p.problem = Some(format!(
                        "configuration: sites.{site}.database.aurora names no `zone`, so nothing proves `{}` is this site's instance: declare it (it is in `{zone}`)",
                        a.instance
                    ))
                }
                Some(z) if *z != zone => {
                    p.problem = Some(format!(
                        "MISMATCH: `{}` is in `{zone}`, but site {site} is in `{z}`",
                        a.instance
                    ))
                }
                Some(_) => {}
            }
        }
    }
    p
}
