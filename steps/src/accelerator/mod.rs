//! AWS Global Accelerator as a traffic vendor (the Keycloak 26 multi-cluster shape,
//! `../shared/docs/keycloak-26.md` §1.3, §1.6, §1.11): one accelerator, one listener,
//! one endpoint group whose endpoints are one NLB per site, each NLB tagged with its
//! `site`. Which sites serve is read from the group (weight > 0 and `HEALTHY`), each
//! endpoint mapped to a site by its NLB's `site` tag (ELBv2 `DescribeTags`), never by
//! the order of the list.
//!
//! Every Global Accelerator call goes to us-west-2, whatever `aws.region` says (the
//! API exists only there). The guide changes the group with `UpdateEndpointGroup`,
//! which replaces the whole list and has no version lock: a concurrent writer (the
//! fencing Lambda, a colleague) is overwritten. These actions use the delta calls
//! AWS recommends instead (`RemoveEndpoints`, `AddEndpoints`: they name one endpoint
//! and leave the others alone), and still read before, re-read right before the
//! write and again after it, journaling what another writer changed in between.
//! `TransactionInProgressException` is waited out and retried.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_globalaccelerator::error::ProvideErrorMetadata;
use aws_sdk_globalaccelerator::types::{EndpointConfiguration, EndpointIdentifier};
use engine::action::ImpactKind;
use engine::{Action, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::clients::{aws_config, site_config};
pub mod vendor;

pub use vendor::AcceleratorTraffic;

/// The only region Global Accelerator's API is served in.
pub const API_REGION: &str = "us-west-2";
/// The weight the guide gives each site's NLB.
pub const DEFAULT_WEIGHT: u8 = 128;

/// An AWS SDK error as a step error: the call, the code and the message. A write whose
/// answer was lost (no service answer at all) may have taken effect.
fn aws_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    call: &str,
    e: aws_sdk_globalaccelerator::error::SdkError<E, R>,
    write: bool,
) -> StepError {
    if let Some(se) = e.as_service_error() {
        let code = se.code().unwrap_or("error").to_string();
        return StepError::aws(
            &code,
            format!("{call} failed: {code}: {}", se.message().unwrap_or("")),
        );
    }
    let context = format!(
        "{}",
        aws_sdk_globalaccelerator::error::DisplayErrorContext(&e)
    );
    if let Some(hint) = crate::clients::no_credentials(&context) {
        return StepError::permanent(format!("{call}: {hint}"));
    }
    let sent = !matches!(
        e,
        aws_sdk_globalaccelerator::error::SdkError::ConstructionFailure(_)
    );
    if write && sent {
        StepError::outcome_unknown(format!("{call}: no answer ({context})"))
    } else {
        StepError::transient(format!("{call} failed: {context}"))
    }
}

/// Clients: Global Accelerator in us-west-2, ELBv2 in the environment's region.
async fn clients(
    ctx: &StepCtx,
) -> Result<
    (
        aws_sdk_globalaccelerator::Client,
        aws_sdk_elasticloadbalancingv2::Client,
    ),
    StepError,
> {
    let conf = aws_config(&ctx.env).await?;
    let ga = aws_sdk_globalaccelerator::config::Builder::from(&conf)
        .region(aws_sdk_globalaccelerator::config::Region::new(API_REGION))
        .build();
    Ok((
        aws_sdk_globalaccelerator::Client::from_conf(ga),
        aws_sdk_elasticloadbalancingv2::Client::new(&conf),
    ))
}

/// Every site's accelerator section, by site.
fn sections(ctx: &StepCtx) -> BTreeMap<String, AcceleratorTraffic> {
    crate::config::sites(&ctx.env)
        .iter()
        .filter_map(|(n, s)| vendor::section(s).map(|a| (n.clone(), a.clone())))
        .collect()
}

/// One endpoint of the group, as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    /// The NLB's `site` tag (`None`: untagged).
    pub site: Option<String>,
    pub weight: i32,
    pub health: String,
    pub client_ip: bool,
}

/// The endpoint group and what the environment file says of each site's NLB.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct View {
    pub accelerator: String,
    pub accelerator_arn: String,
    pub dns_name: String,
    pub dual_stack_dns_name: String,
    pub status: String,
    pub listeners: usize,
    pub endpoint_groups: usize,
    pub endpoint_group_arn: String,
    pub endpoints: Vec<Endpoint>,
    /// Per site of the environment file: its NLB's ARN and `site` tag.
    pub nlbs: BTreeMap<String, (String, Option<String>)>,
}

impl View {
    fn endpoint_of(&self, site: &str) -> Option<&Endpoint> {
        let arn = self.nlbs.get(site).map(|(a, _)| a.as_str());
        self.endpoints
            .iter()
            .find(|e| Some(e.endpoint_id.as_str()) == arn)
    }

    fn ids(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| {
                format!(
                    "{}={}",
                    e.site.as_deref().unwrap_or("untagged"),
                    e.endpoint_id
                )
            })
            .collect()
    }

    /// What cannot be told (ambiguous) and what is not who it says it is (mismatch).
    fn doubts(&self, fail_open: bool) -> (Vec<String>, Vec<String>) {
        let mut ambiguous: Vec<String> = Vec::new();
        if self.listeners != 1 || self.endpoint_groups != 1 {
            ambiguous.push(format!(
                "the accelerator has {} listener(s) and {} endpoint group(s): runbook acts only on exactly one of each",
                self.listeners, self.endpoint_groups
            ));
        }
        if fail_open {
            ambiguous.push("no endpoint is healthy with a weight above 0: the accelerator fails open and sends traffic to any endpoint".into());
        }
        for e in &self.endpoints {
            if e.site.is_none() {
                ambiguous.push(format!(
                    "endpoint {} is an NLB without a `site` tag",
                    e.endpoint_id
                ));
            }
            if e.health == "INITIAL" {
                ambiguous.push(format!(
                    "{}'s endpoint is INITIAL (just added; its health is not known yet)",
                    e.site.as_deref().unwrap_or(&e.endpoint_id)
                ));
            }
        }
        let mut mismatch: Vec<String> = Vec::new();
        for (site, (arn, tag)) in &self.nlbs {
            match tag {
                Some(t) if t == site => {}
                Some(t) => mismatch.push(format!("{site}'s NLB {arn} is tagged site={t}")),
                None => mismatch.push(format!("{site}'s NLB {arn} has no `site` tag")),
            }
        }
        for e in &self.endpoints {
            if let Some(s) = &e.site {
                if let Some((arn, _)) = self.nlbs.get(s) {
                    if *arn != e.endpoint_id {
                        mismatch.push(format!(
                            "endpoint {} is tagged site={s}, but the environment file gives {s}'s NLB as {arn}",
                            e.endpoint_id
                        ));
                    }
                }
            }
        }
        (ambiguous, mismatch)
    }

    /// The reading as data: per site, who serves, and what cannot be told.
    pub fn judge(&self) -> Json {
        let serving_strict: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.weight > 0 && e.health == "HEALTHY")
            .filter_map(|e| e.site.clone())
            .collect();
        let fail_open = !self.endpoints.is_empty()
            && !self
                .endpoints
                .iter()
                .any(|e| e.weight > 0 && e.health == "HEALTHY");
        let (ambiguous, mismatch) = self.doubts(fail_open);
        let mut sites = serde_json::Map::new();
        for site in self.nlbs.keys() {
            let e = self.endpoint_of(site);
            sites.insert(
                site.clone(),
                json!({
                    "load_balancer": self.nlbs[site].0,
                    "tag": self.nlbs[site].1,
                    "in_group": e.is_some(),
                    "weight": e.map(|e| e.weight),
                    "health": e.map(|e| e.health.clone()),
                    "serving": e.is_some_and(|e| serving_strict.contains(&e.site.clone().unwrap_or_default()) || fail_open),
                }),
            );
        }
        let serving: Vec<String> = if fail_open {
            self.endpoints
                .iter()
                .filter_map(|e| e.site.clone())
                .collect()
        } else {
            serving_strict
        };
        let in_group: Vec<String> = self
            .endpoints
            .iter()
            .filter_map(|e| e.site.clone())
            .collect();
        let out_of_group: Vec<String> = self
            .nlbs
            .keys()
            .filter(|s| self.endpoint_of(s).is_none())
            .cloned()
            .collect();
        let describe = |e: &Endpoint| {
            format!(
                "{} (weight {}, {})",
                e.site.as_deref().unwrap_or("untagged NLB"),
                e.weight,
                e.health
            )
        };
        let how = if self.endpoints.is_empty() {
            format!(
                "the endpoint group of accelerator `{}` has no endpoint: nothing serves",
                self.accelerator
            )
        } else {
            format!(
                "accelerator `{}` ({}) routes to {}{}",
                self.accelerator,
                self.status,
                self.endpoints
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join(" and "),
                if out_of_group.is_empty() {
                    String::new()
                } else {
                    format!("; not in the group: {}", out_of_group.join(", "))
                }
            )
        };
        json!({
            "vendor": "accelerator",
            "accelerator": self.accelerator,
            "accelerator_arn": self.accelerator_arn,
            "dns_name": self.dns_name,
            "dual_stack_dns_name": self.dual_stack_dns_name,
            "names": [self.accelerator, self.dns_name, self.dual_stack_dns_name],
            "status": self.status,
            "endpoint_group_arn": self.endpoint_group_arn,
            "endpoints": self.endpoints,
            "sites": sites,
            "serving": serving,
            "in_group": in_group,
            "out_of_group": out_of_group,
            "fail_open": fail_open,
            "can_act": mismatch.is_empty() && !ambiguous.iter().any(|a| structural(a)),
            "ambiguous": ambiguous,
            "mismatch": mismatch,
            "summary": how,
            "how": how,
        })
    }
}

/// The NLB ARN an environment file's `load_balancer` names (its ARN, or its DNS name
/// looked up as the guide does: every load balancer, filtered by `DNSName`).
async fn nlb_arns(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    wanted: &BTreeMap<String, AcceleratorTraffic>,
) -> Result<BTreeMap<String, String>, StepError> {
    let mut out = BTreeMap::new();
    let mut by_dns: Vec<(&String, &str)> = Vec::new();
    for (site, a) in wanted {
        if a.load_balancer.starts_with("arn:") {
            out.insert(site.clone(), a.load_balancer.clone());
        } else {
            by_dns.push((site, a.load_balancer.as_str()));
        }
    }
    if by_dns.is_empty() {
        return Ok(out);
    }
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elb
            .describe_load_balancers()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| aws_error("ELBv2 DescribeLoadBalancers", e, false))?;
        all.extend(page.load_balancers().iter().cloned());
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    for (site, dns) in by_dns {
        let lb = all
            .iter()
            .find(|l| l.dns_name().is_some_and(|d| d.eq_ignore_ascii_case(dns)))
            .ok_or_else(|| {
                StepError::configuration(format!(
                    "sites.{site}.traffic.accelerator.load_balancer `{dns}`: ELBv2 knows no load balancer of that DNS name"
                ))
            })?;
        out.insert(
            site.clone(),
            lb.load_balancer_arn().unwrap_or_default().to_string(),
        );
    }
    Ok(out)
}

/// Every paginated page of a Global Accelerator list call.
macro_rules! all_pages {
    ($call:expr, $what:expr, $items:ident) => {{
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = $call
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| aws_error($what, e, false))?;
            out.extend(page.$items().iter().cloned());
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out
    }};
}

/// The one accelerator named `name` (by Name, DnsName or DualStackDnsName).
fn one_named(
    accs: &[aws_sdk_globalaccelerator::types::Accelerator],
    name: &str,
) -> Result<aws_sdk_globalaccelerator::types::Accelerator, StepError> {
    let matches: Vec<_> = accs
        .iter()
        .filter(|a| {
            a.name() == Some(name)
                || a.dns_name() == Some(name)
                || a.dual_stack_dns_name() == Some(name)
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            Err(StepError::permanent(format!(
                "Global Accelerator has no accelerator named `{name}` (by Name, DnsName or DualStackDnsName; it has: {})",
                accs.iter().filter_map(|a| a.name()).collect::<Vec<_>>().join(", ")
            )))
        }
        _ => {
            Err(StepError::permanent(format!(
                "{} accelerators are named `{name}`: give its DnsName in traffic.accelerator.name",
                matches.len()
            )))
        }
    }
}

/// Each load balancer's `site` tag (ELBv2 DescribeTags, 20 ARNs a call).
async fn site_tags(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    mut ask: Vec<String>,
) -> Result<BTreeMap<String, Option<String>>, StepError> {
    let mut tag_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    ask.sort();
    ask.dedup();
    for chunk in ask.chunks(20) {
        let tags = elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("ELBv2 DescribeTags", e, false))?;
        for d in tags.tag_descriptions() {
            let site = d
                .tags()
                .iter()
                .find(|t| t.key() == Some("site"))
                .and_then(|t| t.value().map(str::to_string));
            tag_of.insert(d.resource_arn().unwrap_or_default().to_string(), site);
        }
    }
    Ok(tag_of)
}

/// Read the accelerator, its listeners and endpoint groups, and the NLBs' tags.
pub async fn read(ctx: &StepCtx) -> Result<View, StepError> {
    let wanted = sections(ctx);
    let Some(name) = wanted.values().next().map(|a| a.name.clone()) else {
        return Err(StepError::configuration(
            "no site names a Global Accelerator (sites.NAME.traffic.accelerator: { name: …, load_balancer: … })",
        ));
    };
    let (ga, elb) = clients(ctx).await?;
    let accs = all_pages!(
        ga.list_accelerators(),
        "Global Accelerator ListAccelerators",
        accelerators
    );
    let acc = one_named(&accs, &name)?;
    let acc_arn = acc.accelerator_arn().unwrap_or_default().to_string();
    let listeners = all_pages!(
        ga.list_listeners().accelerator_arn(&acc_arn),
        "Global Accelerator ListListeners",
        listeners
    );
    let mut groups = Vec::new();
    for l in &listeners {
        let arn = l.listener_arn().unwrap_or_default();
        groups.extend(all_pages!(
            ga.list_endpoint_groups().listener_arn(arn),
            "Global Accelerator ListEndpointGroups",
            endpoint_groups
        ));
    }
    let first = groups.first();
    let descriptions = first
        .map(|g| g.endpoint_descriptions().to_vec())
        .unwrap_or_default();
    let arns = nlb_arns(&elb, &wanted).await?;
    let mut ask: Vec<String> = descriptions
        .iter()
        .filter_map(|d| d.endpoint_id().map(str::to_string))
        .collect();
    ask.extend(arns.values().cloned());
    let tag_of = site_tags(&elb, ask).await?;
    Ok(View {
        accelerator: name,
        accelerator_arn: acc_arn,
        dns_name: acc.dns_name().unwrap_or_default().to_string(),
        dual_stack_dns_name: acc.dual_stack_dns_name().unwrap_or_default().to_string(),
        status: acc
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        listeners: listeners.len(),
        endpoint_groups: groups.len(),
        endpoint_group_arn: first
            .and_then(|g| g.endpoint_group_arn())
            .unwrap_or_default()
            .to_string(),
        endpoints: descriptions
            .iter()
            .map(|d| {
                let id = d.endpoint_id().unwrap_or_default().to_string();
                Endpoint {
                    site: tag_of.get(&id).cloned().flatten(),
                    weight: d.weight().unwrap_or(0),
                    health: d
                        .health_state()
                        .map(|h| h.as_str().to_string())
                        .unwrap_or_default(),
                    client_ip: d.client_ip_preservation_enabled().unwrap_or(false),
                    endpoint_id: id,
                }
            })
            .collect(),
        nlbs: arns
            .into_iter()
            .map(|(s, a)| {
                let tag = tag_of.get(&a).cloned().flatten();
                (s, (a, tag))
            })
            .collect(),
    })
}

/// What changed between two reads, as a person reads it (`None`: nothing).
pub fn changes(before: &[String], after: &[String]) -> Option<String> {
    let gone: Vec<&String> = before.iter().filter(|b| !after.contains(b)).collect();
    let new: Vec<&String> = after.iter().filter(|a| !before.contains(a)).collect();
    if gone.is_empty() && new.is_empty() {
        return None;
    }
    let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    Some(match (gone.is_empty(), new.is_empty()) {
        (false, true) => format!("removed by another writer: {}", list(&gone)),
        (true, false) => format!("added by another writer: {}", list(&new)),
        _ => format!(
            "another writer removed {} and added {}",
            list(&gone),
            list(&new)
        ),
    })
}

/// `accelerator.serving-sites`: which sites the accelerator routes to.
#[derive(Debug)]
pub struct ServingSites;

#[async_trait]
impl Action for ServingSites {
    fn name(&self) -> &'static str {
        "accelerator.serving-sites"
    }
    fn summary(&self) -> &'static str {
        "which sites the Global Accelerator routes to: its endpoint group's endpoints (weight, health), each mapped to a site by its NLB's `site` tag; what cannot be told is reported (fail-open, INITIAL, untagged, more than one group)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "serving",
            "in_group",
            "out_of_group",
            "sites",
            "endpoints",
            "ambiguous",
            "mismatch",
            "how",
            "summary",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, _: &StepCtx, _: &Args) -> Vec<String> {
        vec![
            format!("Global Accelerator ({API_REGION}) ListAccelerators → ListListeners → ListEndpointGroups"),
            "ELBv2 DescribeLoadBalancers (each site's NLB by DNS name) + DescribeTags (each NLB's `site` tag)".into(),
        ]
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(read(ctx).await?.judge())
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

/// `accelerator.remove-site` / `accelerator.add-site`: one site's NLB out of or into
/// the endpoint group. Each action is a row of [`MoveRow`]s; the code is the same.
#[derive(Debug)]
pub struct Move(pub &'static MoveRow);

/// What one direction of a move is.
#[derive(Debug)]
pub struct MoveRow {
    pub name: &'static str,
    pub summary: &'static str,
    /// The invariant it keeps (guarantees.rs).
    pub invariant: &'static [&'static str],
    /// The Global Accelerator call.
    pub call: &'static str,
    /// The fact it records in the ledger.
    pub fact: &'static str,
    /// The site's NLB is in the group once the move is done.
    pub in_group: bool,
}

pub const REMOVE_SITE: MoveRow = MoveRow {
    name: "accelerator.remove-site",
    summary: "remove this site's NLB from the Global Accelerator's endpoint group, never the last serving endpoint; re-read and verify, wait until the rest are HEALTHY",
    invariant: &[crate::guarantees::REMOVE],
    call: "RemoveEndpoints",
    fact: crate::ledger::LEFT,
    in_group: false,
};

pub const ADD_SITE: MoveRow = MoveRow {
    name: "accelerator.add-site",
    summary: "add this site's NLB to the Global Accelerator's endpoint group (weight 128, client IP preservation off), re-read and verify, wait until HEALTHY",
    invariant: &[crate::guarantees::ADD],
    call: "AddEndpoints",
    fact: crate::ledger::JOINED,
    in_group: true,
};

fn site_name(ctx: &StepCtx) -> Result<(String, AcceleratorTraffic), StepError> {
    let (name, cfg) = site_config(ctx)?;
    let a = vendor::section(&cfg).cloned().ok_or_else(|| {
            StepError::configuration(format!(
                "site `{name}` names no Global Accelerator endpoint (sites.{name}.traffic.accelerator: {{ name: …, load_balancer: … }})"
            ))
        })?;
    Ok((name, a))
}

/// An ambiguity no write can be made under: which endpoint is which site, or which
/// group, cannot be told.
fn structural(a: &str) -> bool {
    a.contains("listener(s)") || a.contains("without a `site` tag")
}

/// Refuse to act on a reading whose sites cannot be told apart or are not who they say.
fn trustworthy(v: &Json) -> Result<(), StepError> {
    let mismatch: Vec<&str> = v["mismatch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    if !mismatch.is_empty() {
        return Err(StepError::permanent(format!(
            "identity mismatch: {}; nothing was changed",
            mismatch.join("; ")
        )));
    }
    let structural: Vec<&str> = v["ambiguous"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .filter(|a| structural(a))
        .collect();
    if !structural.is_empty() {
        return Err(StepError::permanent(format!(
            "{}; nothing was changed",
            structural.join("; ")
        )));
    }
    Ok(())
}

impl Move {
    async fn write(
        &self,
        ctx: &StepCtx,
        group: &str,
        arn: &str,
        weight: u8,
    ) -> Result<(), StepError> {
        let (ga, _) = clients(ctx).await?;
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=8 {
            let result = if self.0.in_group {
                let c = EndpointConfiguration::builder()
                    .endpoint_id(arn)
                    .weight(weight as i32)
                    .client_ip_preservation_enabled(false)
                    .build();
                ga.add_endpoints()
                    .endpoint_group_arn(group)
                    .endpoint_configurations(c)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        aws_error(&format!("Global Accelerator AddEndpoints({arn})"), e, true)
                    })
            } else {
                let i = EndpointIdentifier::builder()
                    .endpoint_id(arn)
                    .build()
                    .map_err(|e| StepError::permanent(format!("RemoveEndpoints: {e}")))?;
                ga.remove_endpoints()
                    .endpoint_group_arn(group)
                    .endpoint_identifiers(i)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        aws_error(
                            &format!("Global Accelerator RemoveEndpoints({arn})"),
                            e,
                            true,
                        )
                    })
            };
            match result {
                Err(e) if e.message.contains("TransactionInProgressException") && attempt < 8 => {
                    tracing::info!(
                        "endpoint group busy (another transaction): trying again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(8));
                }
                other => return other,
            }
        }
        Err(StepError::transient(
            "the endpoint group stayed busy (TransactionInProgressException)",
        ))
    }
}

#[async_trait]
impl Action for Move {
    fn name(&self) -> &'static str {
        self.0.name
    }
    fn summary(&self) -> &'static str {
        self.0.summary
    }
    fn invariants(&self) -> &'static [&'static str] {
        self.0.invariant
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "before",
            "after",
            "changed_before_write",
            "changed_after_write",
            "already",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(600)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(10)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        let site = ctx.site_name();
        Some((
            ImpactKind::MovesTraffic,
            if self.0.in_group {
                format!("adds {site}'s NLB to the accelerator's endpoint group: {site} receives traffic again")
            } else {
                format!("removes {site}'s NLB from the accelerator's endpoint group: the accelerator stops sending traffic to {site}")
            },
        ))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let nlb = site_name(ctx)
            .map(|(_, a)| a.load_balancer)
            .unwrap_or_else(|e| e.message);
        let call = self.0.call;
        let weight = if self.0.in_group {
            format!(", Weight={DEFAULT_WEIGHT}, ClientIPPreservationEnabled=false")
        } else {
            String::new()
        };
        vec![
            format!("Global Accelerator ({API_REGION}) ListAccelerators → ListListeners → ListEndpointGroups + ELBv2 DescribeTags (read; again right before the write, naming what another writer changed)"),
            format!("Global Accelerator {call}(EndpointGroupArn=<read>, EndpointId=<ARN of {nlb}>{weight}) (TransactionInProgressException: wait and again)"),
            "then ListEndpointGroups again until the postcondition holds".into(),
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        let site = ctx.site_name();
        Some(if self.0.in_group {
            format!("{site}'s NLB is in the endpoint group and HEALTHY (INITIAL first)")
        } else {
            format!("{site}'s NLB is not in the endpoint group, and the endpoints left (at least one) are all HEALTHY")
        })
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        let site = o["site"].as_str().unwrap_or_default();
        let s = &o["sites"][site];
        if self.0.in_group {
            s["in_group"] == true && s["health"] == "HEALTHY"
        } else {
            // The rest healthy, and something left: a group another writer emptied
            // after the write is not a success to report.
            let rest = o["endpoints"].as_array().cloned().unwrap_or_default();
            s["in_group"] == false
                && !rest.is_empty()
                && rest.iter().all(|e| e["health"] == "HEALTHY")
        }
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        if !self.0.in_group && o["endpoints"].as_array().is_some_and(|e| e.is_empty()) {
            return Some(format!(
                "the endpoint group of accelerator `{}` is EMPTY: NOTHING SERVES. Another writer removed the rest (the step's outputs name what changed after its write); add a site back now: runbook run keycloak-26/bring-site-online -p site=SITE, or aws globalaccelerator add-endpoints --region us-west-2",
                o["accelerator"].as_str().unwrap_or("?")
            ));
        }
        Some(o["how"].as_str().unwrap_or("?").to_string())
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let (site, _) = site_name(ctx)?;
        let mut v = read(ctx).await?.judge();
        v["site"] = json!(site);
        Ok(v)
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let (site, _) = site_name(ctx)?;
        let v = read(ctx).await?;
        trustworthy(&v.judge())?;
        let mut out = Outputs::new();
        out.insert("before".into(), json!(v.ids()));
        // Journaled with the intent: true once the step succeeds, however it is
        // settled (a resume that finds the postcondition holding included).
        crate::ledger::record(&mut out, &site, self.0.fact);
        Ok(out)
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        _: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let (site, cfg) = site_name(ctx)?;
        let v = read(ctx).await?;
        let judged = v.judge();
        trustworthy(&judged)?;
        let before: Vec<String> = prepared
            .get("before")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let now = v.ids();
        let mut out = Outputs::new();
        out.insert("before".into(), json!(now));
        out.insert("changed_before_write".into(), json!(changes(&before, &now)));
        let arn = v.nlbs.get(&site).map(|(a, _)| a.clone()).ok_or_else(|| {
            StepError::configuration(format!("site `{site}`'s NLB was not found"))
        })?;
        let present = v.endpoint_of(&site).is_some();
        let fact = self.0.fact;
        if present == self.0.in_group {
            out.insert("already".into(), json!(true));
            out.insert(
                "note".into(),
                json!(if self.0.in_group {
                    format!("{site} was already in the endpoint group: nothing added")
                } else {
                    format!("{site} was ALREADY OUT of the endpoint group (not removed by this step): nothing removed")
                }),
            );
            out.insert("after".into(), json!(now));
            crate::ledger::record(&mut out, &site, fact);
            return Ok(out);
        }
        if !self.0.in_group {
            let rest_serving = v
                .endpoints
                .iter()
                .any(|e| e.endpoint_id != arn && e.weight > 0 && e.health == "HEALTHY");
            if !rest_serving {
                return Err(StepError::permanent(format!(
                    "refused: removing {site} would leave no healthy endpoint of weight above 0 ({}){}; nothing was changed",
                    judged["how"].as_str().unwrap_or_default(),
                    changes(&before, &now).map(|c| format!("; since the plan read the group, {c}")).unwrap_or_default()
                )));
            }
        }
        self.write(
            ctx,
            &v.endpoint_group_arn,
            &arn,
            cfg.weight.unwrap_or(DEFAULT_WEIGHT),
        )
        .await?;
        let after = read(ctx).await?;
        let mut expected = now.clone();
        let me = format!("{site}={arn}");
        if self.0.in_group {
            expected.push(me.clone());
        } else {
            expected.retain(|e| *e != me);
        }
        out.insert("after".into(), json!(after.ids()));
        out.insert(
            "changed_after_write".into(),
            json!(changes(&expected, &after.ids())),
        );
        crate::ledger::record(&mut out, &site, fact);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
