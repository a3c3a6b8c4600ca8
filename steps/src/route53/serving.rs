//! `route53.serving-site`: which site serves the clients, read from Route53 itself,
//! never from a procedure's parameters.
//!
//! The guide's setup (chapter "Deploy AWS Route 53 Failover", Keycloak 24 HA guide):
//! the client domain has a failover record pair, `Failover: PRIMARY` with the primary
//! site's health check and `Failover: SECONDARY` with the backup site's, each an alias
//! of `primary.<domain>` / `backup.<domain>`. Route53 answers with the PRIMARY record
//! while its health check is healthy, else with the SECONDARY record while *its*
//! check is healthy (or it has none); when both are unhealthy it answers with the
//! PRIMARY record (Route53 treats "all unhealthy" as "all healthy"; see the Route53
//! developer guide, "How health checks work in complex configurations").
//!
//! Reading: `ListResourceRecordSets` for the client domain (which record is PRIMARY,
//! which health check each carries), `GetHealthCheckStatus` of each check (healthy
//! when more than 18% of the checkers report success), and `TestDNSAnswer` to confirm:
//! what Route53 answers for the client domain is compared with what it answers for
//! each record's target. A record's site is the site of the environment file whose
//! `traffic.route53.health_check_id` is the record's `HealthCheckId`.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::types::{ResourceRecordSetFailover, RrType};
use engine::{Action, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::clients::aws_config;

pub use crate::args::NoArgs;
use crate::route53::r53_error;

/// One record of the failover pair, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub role: &'static str,
    pub set_identifier: String,
    pub health_check_id: Option<String>,
    /// The site whose health check the record carries.
    pub site: Option<String>,
    /// `None`: no health check, or its status could not be read.
    pub healthy: Option<bool>,
    /// What the record points at (alias target or values).
    pub target: String,
    /// What Route53 answers for the target (TestDNSAnswer), when it could say.
    pub answer: Option<BTreeSet<String>>,
}

/// Route53's failover rule over the pair: `(serving record's role, why)`.
pub fn route53_answer(primary: &Record, secondary: Option<&Record>) -> (&'static str, String) {
    let name = |r: &Record| {
        format!(
            "{} record `{}`{}",
            r.role,
            r.set_identifier,
            r.health_check_id
                .as_ref()
                .map(|h| format!(" (health check {h})"))
                .unwrap_or_default()
        )
    };
    let health = |r: &Record| match (r.health_check_id.is_some(), r.healthy) {
        (false, _) => "has no health check".to_string(),
        (true, Some(true)) => "is healthy".to_string(),
        (true, Some(false)) => "is unhealthy".to_string(),
        (true, None) => "is of unknown health".to_string(),
    };
    if primary.health_check_id.is_none() || primary.healthy == Some(true) {
        return ("PRIMARY", format!("{} {}", name(primary), health(primary)));
    }
    match secondary {
        Some(s) if s.health_check_id.is_none() || s.healthy == Some(true) => (
            "SECONDARY",
            format!(
                "{} {}, {} {}",
                name(primary),
                health(primary),
                name(s),
                health(s)
            ),
        ),
        Some(s) => (
            "PRIMARY",
            format!(
                "{} {} and {} {}: Route53 answers with the PRIMARY record when both are unhealthy",
                name(primary),
                health(primary),
                name(s),
                health(s)
            ),
        ),
        None => (
            "PRIMARY",
            format!(
                "{} {} and there is no SECONDARY record",
                name(primary),
                health(primary)
            ),
        ),
    }
}

fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

async fn dns_answer(
    r53: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    kind: &RrType,
) -> Result<Option<BTreeSet<String>>, String> {
    match r53
        .test_dns_answer()
        .hosted_zone_id(zone)
        .record_name(name.trim_end_matches('.'))
        .record_type(kind.clone())
        .send()
        .await
    {
        Ok(a) => Ok((a.response_code() == "NOERROR").then(|| {
            a.record_data()
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect()
        })),
        Err(e) => Err(match e.as_service_error() {
            Some(se) => format!(
                "{}: {}",
                se.code().unwrap_or("error"),
                se.message().unwrap_or("")
            ),
            None => format!("{}", aws_sdk_route53::error::DisplayErrorContext(&e)),
        }),
    }
}

async fn health(r53: &aws_sdk_route53::Client, id: &str) -> Result<Option<bool>, StepError> {
    let st = r53
        .get_health_check_status()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| r53_error(&format!("Route53 GetHealthCheckStatus({id})"), e))?;
    let reports: Vec<&str> = st
        .health_check_observations()
        .iter()
        .filter_map(|o| o.status_report().and_then(|r| r.status()))
        .collect();
    let ok = reports.iter().filter(|r| r.starts_with("Success")).count();
    Ok((!reports.is_empty()).then(|| ok as f64 / reports.len() as f64 > 0.18))
}

/// Read which site serves. The observation: `serving` (a site name, or null when
/// Route53's records and its DNS answer disagree or a record names no known site),
/// `how` (in words), `records`, `dns`, and `summary`.
///
/// # Errors
/// The environment file names no hosted zone or client domain, or Route53 cannot be read.
pub async fn read(ctx: &StepCtx) -> Result<Json, StepError> {
    // Route53's checkers report every 10 to 30 s and its API allows about 5 requests a
    // second per account (GetHealthCheckStatus "for development use only"): a guard
    // checked before every item of a fan-out reuses a reading younger than 10 s (at
    // the lab's time scale) instead of calling Route53 seven times per item. Reads are
    // serialised, so concurrent items share one.
    static RECENT: LazyLock<tokio::sync::Mutex<HashMap<String, (Instant, Json)>>> =
        LazyLock::new(Default::default);
    let fresh_for = ctx.env.scaled_pause(Duration::from_secs(10));
    let mut recent = RECENT.lock().await;
    if let Some((at, o)) = recent.get(&ctx.env.digest) {
        if at.elapsed() < fresh_for {
            return Ok(o.clone());
        }
    }
    let o = read_now(ctx).await?;
    recent.insert(ctx.env.digest.clone(), (Instant::now(), o.clone()));
    Ok(o)
}

/// The failover records of the client domain (`want`), each with its health check's
/// state and the site whose `traffic.route53.health_check_id` it is.
async fn failover_records(
    ctx: &StepCtx,
    r53: &aws_sdk_route53::Client,
    zone: &str,
    want: &str,
) -> Result<Vec<(Record, RrType)>, StepError> {
    let listed = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(want)
        .send()
        .await
        .map_err(|e| {
            r53_error(
                &format!("Route53 ListResourceRecordSets({zone}, {want})"),
                e,
            )
        })?;
    let mut records: Vec<(Record, RrType)> = Vec::new();
    for rs in listed.resource_record_sets() {
        if fqdn(rs.name()) != want {
            continue;
        }
        let role = match rs.failover() {
            Some(ResourceRecordSetFailover::Primary) => "PRIMARY",
            Some(ResourceRecordSetFailover::Secondary) => "SECONDARY",
            _ => continue,
        };
        let hc = rs.health_check_id().map(str::to_string);
        let site = hc.as_ref().and_then(|id| {
            crate::config::sites(&ctx.env)
                .iter()
                .find(|(_, c)| super::config::section(c).is_some_and(|r| &r.health_check_id == id))
                .map(|(n, _)| n.clone())
        });
        let target = match rs.alias_target() {
            Some(a) => a.dns_name().to_string(),
            None => rs
                .resource_records()
                .iter()
                .map(|r| r.value().to_string())
                .collect::<Vec<_>>()
                .join(","),
        };
        let healthy = match &hc {
            Some(id) => health(r53, id).await?,
            None => None,
        };
        records.push((
            Record {
                role,
                set_identifier: rs.set_identifier().unwrap_or_default().to_string(),
                health_check_id: hc,
                site,
                healthy,
                target,
                answer: None,
            },
            rs.r#type().clone(),
        ));
    }
    Ok(records)
}

/// What Route53 answers for the domain and for each record's target (TestDNSAnswer):
/// the answer and the one site whose target it matches, or why it cannot say.
async fn confirm_by_dns(
    r53: &aws_sdk_route53::Client,
    (zone, want, kind): (&str, &str, &RrType),
    primary: &mut Record,
    mut secondary: Option<&mut Record>,
) -> (Json, Option<String>, Option<String>) {
    let mut dns = json!(null);
    let mut dns_site: Option<String> = None;
    let mut dns_note: Option<String> = None;
    match dns_answer(r53, zone, want, kind).await {
        Ok(Some(answer)) => {
            for r in std::iter::once(&mut *primary).chain(secondary.as_deref_mut()) {
                let t = r.target.split(',').next().unwrap_or_default().to_string();
                r.answer = match dns_answer(r53, zone, &t, kind).await {
                    Ok(a) => a,
                    Err(_) => Some(
                        std::iter::once(t.trim_end_matches('.').to_ascii_lowercase()).collect(),
                    ),
                };
            }
            let matches: Vec<&Record> = std::iter::once(&*primary)
                .chain(secondary.as_deref())
                .filter(|r| {
                    r.answer
                        .as_ref()
                        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| answer.contains(x)))
                })
                .collect();
            dns_site = match matches.as_slice() {
                [one] => one.site.clone(),
                _ => None,
            };
            dns = json!({"answer": answer, "site": dns_site});
        }
        Ok(None) => dns_note = Some("TestDNSAnswer gave no answer".to_string()),
        Err(e) => dns_note = Some(format!("TestDNSAnswer not available ({e})")),
    }
    (dns, dns_site, dns_note)
}

/// Which site serves, and how that was told: the records' rule, confirmed (or
/// contradicted) by the DNS answer.
fn conclude(
    (by_records, dns_site, no_dns, dns_note): (
        &Option<String>,
        &Option<String>,
        bool,
        Option<String>,
    ),
    why: &str,
    want: &str,
    chosen: &Record,
) -> (Option<String>, String) {
    match (by_records, dns_site, no_dns) {
        (Some(s), Some(d), _) if s == d => (
            Some(s.clone()),
            format!("{why}; TestDNSAnswer for {want} confirms {s}"),
        ),
        (Some(s), Some(d), _) => (
            None,
            format!("the records say {s} ({why}) but TestDNSAnswer for {want} answers {d}'s target: which site serves is unknown"),
        ),
        (Some(s), None, true) => (
            Some(s.clone()),
            format!("{why} ({})", dns_note.clone().unwrap_or_default()),
        ),
        (Some(s), None, false) => (
            Some(s.clone()),
            format!("{why}; TestDNSAnswer's answer matches no single record's target"),
        ),
        (None, _, _) => (
            None,
            format!(
                "{why}, but its health check ({}) is no site's route53.health_check_id in the environment file",
                chosen.health_check_id.as_deref().unwrap_or("none")
            ),
        ),
    }
}

async fn read_now(ctx: &StepCtx) -> Result<Json, StepError> {
    let (Some(zone), Some(domain)) = super::config::deployment(&ctx.env) else {
        return Err(StepError::permanent(
            "which site serves cannot be read: no site's traffic.route53 gives `hosted_zone_id` and `client_domain` (the Route53 hosted zone and the client domain with the failover record pair)",
        ));
    };
    let r53 = aws_sdk_route53::Client::new(&aws_config(&ctx.env).await?);
    let want = fqdn(&domain);
    let records = failover_records(ctx, &r53, &zone, &want).await?;
    let primary = records.iter().find(|(r, _)| r.role == "PRIMARY").cloned();
    let secondary = records.iter().find(|(r, _)| r.role == "SECONDARY").cloned();
    let Some((mut primary, kind)) = primary else {
        return Err(StepError::permanent(format!(
            "Route53 zone {zone} has no failover record with `Failover: PRIMARY` for {want}: which site serves cannot be read"
        )));
    };
    let mut secondary = secondary.map(|(r, _)| r);
    let (role, why) = route53_answer(&primary, secondary.as_ref());
    let chosen = if role == "PRIMARY" {
        primary.clone()
    } else {
        secondary.clone().unwrap_or_else(|| primary.clone())
    };
    let by_records = chosen.site.clone();
    // Confirm with what Route53 answers (TestDNSAnswer), where it can say.
    let (dns, dns_site, dns_note) = confirm_by_dns(
        &r53,
        (&zone, &want, &kind),
        &mut primary,
        secondary.as_mut(),
    )
    .await;
    let (serving, how) = conclude(
        (&by_records, &dns_site, dns.is_null(), dns_note),
        &why,
        &want,
        &chosen,
    );
    let rec = |r: &Record| {
        json!({
            "role": r.role,
            "set_identifier": r.set_identifier,
            "health_check_id": r.health_check_id,
            "site": r.site,
            "healthy": r.healthy,
            "target": r.target,
        })
    };
    let summary = match &serving {
        Some(s) => format!("{s} serves: {how}"),
        None => how.clone(),
    };
    Ok(json!({
        "serving": serving,
        "domain": want,
        "how": how,
        "records": std::iter::once(&primary).chain(secondary.iter()).map(rec).collect::<Vec<_>>(),
        "dns": dns,
        "summary": summary,
    }))
}

#[derive(Debug)]
pub struct ServingSite;

#[async_trait]
impl Action for ServingSite {
    fn name(&self) -> &'static str {
        "route53.serving-site"
    }
    fn summary(&self) -> &'static str {
        "read which site serves the clients from Route53: the client domain's failover records, their health checks' status, confirmed by TestDNSAnswer"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["serving", "domain", "how", "records", "dns", "summary"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let (zone, domain) = super::config::deployment(&ctx.env);
        vec![format!(
            "Route53 ListResourceRecordSets(HostedZoneId={}, {}) + GetHealthCheckStatus of each failover record's check + TestDNSAnswer",
            zone.as_deref().unwrap_or("<traffic.route53.hosted_zone_id not set>"),
            domain.as_deref().unwrap_or("<traffic.route53.client_domain not set>")
        )]
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        read(ctx).await
    }
    async fn apply(&self, ctx: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(read(ctx).await?.as_object().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(role: &'static str, hc: Option<&str>, healthy: Option<bool>) -> Record {
        Record {
            role,
            set_identifier: format!("client-failover-{role}"),
            health_check_id: hc.map(str::to_string),
            site: None,
            healthy,
            target: String::new(),
            answer: None,
        }
    }

    #[test]
    fn route53_answers_primary_while_healthy_then_secondary_then_primary_when_all_fail() {
        let p = rec("PRIMARY", Some("hc-a"), Some(true));
        let s = rec("SECONDARY", Some("hc-b"), Some(true));
        assert_eq!(route53_answer(&p, Some(&s)).0, "PRIMARY");
        let p = rec("PRIMARY", Some("hc-a"), Some(false));
        assert_eq!(route53_answer(&p, Some(&s)).0, "SECONDARY");
        let s_down = rec("SECONDARY", Some("hc-b"), Some(false));
        let (role, why) = route53_answer(&p, Some(&s_down));
        assert_eq!(role, "PRIMARY");
        assert!(why.contains("both are unhealthy"), "{why}");
        let s_none = rec("SECONDARY", None, None);
        assert_eq!(route53_answer(&p, Some(&s_none)).0, "SECONDARY");
    }
}
