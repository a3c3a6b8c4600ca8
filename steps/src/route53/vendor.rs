//! Route53 as a traffic vendor (the Keycloak 24 shape): a failover record pair for
//! the client domain, each site's record carrying its health check. Its section, its
//! identity proof and the roles it plays.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use engine::{Action, StepCtx};

use super::config::{section, Route53Traffic, NAME};
use crate::config::roles::{once, read_as};
use crate::config::{Concern, Problem, RoleSection, VendorSection};
use crate::identity::{aws_conf, begin, host_of, missing, within, Proof};
use crate::vendor::Vendor;

#[derive(Debug)]
pub struct Route53;

pub static VENDOR: Route53 = Route53;

impl VendorSection for Route53 {
    fn vendor(&self) -> &'static str {
        NAME
    }
    fn concern(&self) -> Concern {
        Concern::Traffic
    }
    fn example(&self) -> &'static str {
        "route53: { health_check_id: …, target: …, hosted_zone_id: …, client_domain: … }"
    }
    fn parse(
        &self,
        _: &str,
        value: &serde_yaml::Value,
    ) -> Result<Arc<dyn Any + Send + Sync>, Problem> {
        read_as::<Route53Traffic>(value)
    }
    fn across(&self, sections: &[(&str, &RoleSection)]) -> Result<(), Problem> {
        let typed: Vec<(&str, &Route53Traffic)> = sections
            .iter()
            .filter_map(|(n, s)| Some((*n, s.typed::<Route53Traffic>(NAME)?)))
            .collect();
        once(
            typed.iter().map(|(n, t)| (*n, t.hosted_zone_id.as_deref())),
            "the Route53 hosted zone",
            "hosted_zone_id",
        )?;
        once(
            typed.iter().map(|(n, t)| (*n, t.client_domain.as_deref())),
            "the client domain",
            "client_domain",
        )?;
        Ok(())
    }
}

#[async_trait]
impl Vendor for Route53 {
    fn summary(&self) -> &'static str {
        "Route53 failover records: which site serves (the records, their health checks, the DNS answer); a site pointed away or restored by its health check's path"
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![
            Arc::new(super::SetPath),
            Arc::new(super::Status),
            Arc::new(super::serving::ServingSite),
        ]
    }
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)> {
        vec![
            (
                "traffic.serving-site",
                Arc::new(super::serving::ServingSite),
            ),
            ("traffic.point-away", Arc::new(super::SetPath)),
            ("traffic.restore", Arc::new(super::SetPath)),
        ]
    }
    fn touches(&self, action: &str) -> bool {
        // Reading which site serves asks every site's record: no one site's endpoint.
        action.starts_with("route53.") && action != "route53.serving-site"
    }
    fn proof_plan(&self, site: &str) -> String {
        format!("Route53 ({site}): GetHealthCheck (the target it probes)")
    }
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof {
        prove(ctx, site).await
    }
    fn permanent_codes(&self) -> &'static [&'static str] {
        &["NoSuchHealthCheck", "NoSuchHostedZone", "InvalidInput"]
    }
}

async fn prove(ctx: &StepCtx, site: &str) -> Proof {
    let (mut p, cfg) = begin(ctx, site, "route53");
    let Some(cfg) = cfg else {
        return p;
    };
    let Some(r) = section(&cfg) else {
        return missing(p, site, "traffic.route53");
    };
    p.endpoint = format!("health check `{}`", r.health_check_id);
    p.marks
        .push(format!("Route53 health check {}", r.health_check_id));
    let want = r
        .target
        .clone()
        .or_else(|| cfg.lb_check_url.as_deref().and_then(host_of));
    let Some(conf) = aws_conf(ctx, &mut p).await else {
        return p;
    };
    let r53 = aws_sdk_route53::Client::new(&conf);
    let call = format!("Route53 GetHealthCheck({})", r.health_check_id);
    let sent = r53
        .get_health_check()
        .health_check_id(&r.health_check_id)
        .send();
    match within(&call, sent, crate::route53::r53_error).await {
        Err(problem) => p.problem = Some(problem.0),
        Ok(out) => {
            let c = out.health_check().and_then(|h| h.health_check_config());
            let target = c
                .and_then(|c| c.fully_qualified_domain_name().or(c.ip_address()))
                .unwrap_or_default()
                .to_string();
            p.answered = format!("probes `{target}`");
            match want {
                None => {
                    p.problem = Some(format!(
                        "configuration: sites.{site} gives neither traffic.route53.target nor lb_check_url, so nothing proves the health check is this site's"
                    ))
                }
                Some(w) if !w.eq_ignore_ascii_case(&target) => {
                    p.problem = Some(format!(
                        "MISMATCH: health check `{}` probes `{target}`, not site {site}'s load balancer `{w}`",
                        r.health_check_id
                    ))
                }
                Some(_) => {}
            }
        }
    }
    p
}
