//! AWS Global Accelerator as a traffic vendor (the Keycloak 26 shape): its section,
//! its identity proof and the roles it plays.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, StepCtx};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::config::roles::{once, read_as};
use crate::config::{Concern, Problem, RoleSection, SiteConfig, VendorSection};
use crate::identity::{begin, classify, missing, Proof};
use crate::vendor::Vendor;

/// Global Accelerator as a traffic vendor, whole (`../shared/docs/keycloak-26.md` §1.3).
/// Its API is always called in us-west-2, whatever `aws.region` says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorTraffic {
    /// The accelerator: its `Name`, `DnsName` or `DualStackDnsName` (the same for
    /// every site; the fencing alert's `accelerator` label is its DNS name).
    pub name: String,
    /// This site's Network Load Balancer: its DNS name (the `accelerator-loadbalancer`
    /// Service's `.status.loadBalancer.ingress[].hostname`) or its ARN. Its `site` tag
    /// must name this site.
    pub load_balancer: String,
    /// The weight the site gets when it is added [default: 128, the guide's].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

pub(crate) const NAME: &str = "accelerator";

/// A site's Global Accelerator section.
pub fn section(site: &SiteConfig) -> Option<&AcceleratorTraffic> {
    site.typed(Concern::Traffic, NAME)
}

#[derive(Debug)]
pub struct Accelerator;

pub static VENDOR: Accelerator = Accelerator;

impl VendorSection for Accelerator {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Traffic
    }
    fn example(&self) -> &'static str {
        "accelerator: { name: …, load_balancer: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        let typed = read_as::<AcceleratorTraffic>(value)?;
        let a = typed
            .downcast_ref::<AcceleratorTraffic>()
            .ok_or_else(|| Problem::at("load_balancer", "unreadable"))?;
        if a.load_balancer.trim().is_empty() {
            return Err(Problem::at(
                "load_balancer",
                "load_balancer is empty (this site's NLB: its DNS name or ARN)",
            ));
        }
        Ok(typed)
    }
    fn across(&self, sections: &[(&str, &RoleSection)]) -> Result<(), Problem> {
        once(
            sections.iter().map(|(n, s)| {
                (
                    *n,
                    s.typed::<AcceleratorTraffic>(NAME).map(|a| a.name.as_str()),
                )
            }),
            "the Global Accelerator",
            "accelerator",
        )
        .map(|_| ())
    }
}

#[async_trait]
impl Vendor for Accelerator {
    fn summary(&self) -> &'static str {
        "AWS Global Accelerator: which sites serve (the endpoint group's endpoints, weight and health, each NLB's `site` tag); a site's NLB removed from or added to the group"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![
            Arc::new(super::ServingSites),
            Arc::new(super::Move(&super::REMOVE_SITE)),
            Arc::new(super::Move(&super::ADD_SITE)),
        ]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        vec![
            ("traffic.serving-sites", Arc::new(super::ServingSites)),
            (
                "traffic.remove-site",
                Arc::new(super::Move(&super::REMOVE_SITE)),
            ),
            ("traffic.add-site", Arc::new(super::Move(&super::ADD_SITE))),
        ]
    }
    fn touches(&self, action: &str) -> bool {
        matches!(action, "accelerator.remove-site" | "accelerator.add-site")
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("Global Accelerator + ELBv2 ({site}): the NLB's `site` tag, and that its endpoint group is the named accelerator's")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
    fn permanent_codes(&self) -> &'static [&'static str] {
        // botocore's service models (data/globalaccelerator/2018-08-08 and
        // data/elbv2/2015-12-01 service-2.json, their exception shapes): the resource named
        // does not exist, or the request is malformed.
        &[
            "AcceleratorNotFoundException",
            "ListenerNotFoundException",
            "EndpointGroupNotFoundException",
            "EndpointNotFoundException",
            "InvalidArgumentException",
            "LoadBalancerNotFound",
        ]
    }
}

/// A site behind Global Accelerator proves itself by its NLB's `site` tag, read in
/// ELBv2, and by the named accelerator's one endpoint group holding no endpoint
/// tagged for it other than that NLB.
async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "accelerator");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(a) = section(&cfg).cloned() else {
        return missing(p, site, "traffic.accelerator");
    };
    p.endpoint = format!("NLB `{}` of accelerator `{}`", a.load_balancer, a.name);
    let read = crate::accelerator::read(ctx);
    let v = match tokio::time::timeout(Duration::from_secs(30), read).await {
        Err(_) => {
            p.problem =
                Some("unreachable: Global Accelerator or ELBv2 gave no answer in 30s".into());
            return p;
        }
        Ok(Err(e)) => {
            p.problem = Some(classify(&e));
            return p;
        }
        Ok(Ok(v)) => v,
    };
    let Some((arn, tag)) = v.nlbs.get(site).cloned() else {
        p.problem = Some(format!("configuration: sites.{site}'s NLB was not found"));
        return p;
    };
    p.marks.push(format!("NLB {arn}"));
    p.answered = format!("tagged site={}", tag.as_deref().unwrap_or("(none)"));
    let judged = v.judge();
    let mine: Vec<String> = judged["mismatch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .filter(|m| m.contains(&format!("{site}'s NLB")) || m.contains(&format!("site={site},")))
        .map(str::to_string)
        .collect();
    if !mine.is_empty() {
        p.problem = Some(format!("identity mismatch: {}", mine.join("; ")));
    }
    p
}
