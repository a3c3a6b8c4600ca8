//! `aurora.failover`: make the site's Aurora instance the writer. Nothing to do when
//! it already is; otherwise FailoverDBCluster, then (verify) until the cluster is
//! `available` with the target as writer. AWS errors surface with their codes.

use serde::Deserialize;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::error::ProvideErrorMetadata;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use serde_json::{json, Value as Json};

use crate::args::{dur_arg, str_arg, typed, Human};
use crate::clients::{aws_config, site_config};

pub mod vendor;

#[derive(Debug)]
pub struct Failover;

/// `aurora.failover`'s arguments (`crate::args::typed`).
#[derive(Debug, Deserialize)]
pub struct FailoverArgs {
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub poll: Option<Human>,
}

fn cluster_of(ctx: &StepCtx, args: &FailoverArgs) -> Result<String, StepError> {
    if let Some(c) = &args.cluster {
        return Ok(c.clone());
    }
    vendor::cluster(&ctx.env).ok_or_else(|| {
        StepError::permanent(
            "no Aurora cluster: give `cluster`, or database.aurora.cluster in the environment file",
        )
    })
}

fn target_of(ctx: &StepCtx, args: &FailoverArgs) -> Result<String, StepError> {
    if let Some(i) = &args.instance {
        return Ok(i.clone());
    }
    let (site, cfg) = site_config(ctx)?;
    vendor::section(&cfg)
        .map(|a| a.instance.clone())
        .ok_or_else(|| {
            StepError::permanent(format!(
                "site `{site}` has no database.aurora.instance in the environment file"
            ))
        })
}

/// `CODE: message` of an SDK error, or its context.
pub fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    call: &str,
    e: aws_sdk_rds::error::SdkError<E, R>,
) -> StepError {
    let text = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("")
        ),
        None => {
            let context = format!("{}", aws_sdk_rds::error::DisplayErrorContext(&e));
            if let Some(hint) = crate::clients::no_credentials(&context) {
                return StepError::permanent(format!("{call}: {hint}"));
            }
            context
        }
    };
    let msg = format!("{call} failed: {text}");
    match e.as_service_error().and_then(|s| s.code()) {
        // Retried or not by its code (`ErrorKind::retryable`).
        Some(code) => StepError::aws(code, msg),
        None => StepError::transient(msg),
    }
}

async fn describe_cluster(
    ctx: &StepCtx,
    cluster: &str,
) -> Result<(String, Option<String>), StepError> {
    let rds = aws_sdk_rds::Client::new(&aws_config(&ctx.env).await?);
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier(cluster)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("RDS DescribeDBClusters({cluster})"), e))?;
    let c = out.db_clusters().first().ok_or_else(|| {
        StepError::permanent(format!(
            "RDS DescribeDBClusters({cluster}) returned no cluster"
        ))
    })?;
    let writer = c
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier())
        .map(str::to_string);
    Ok((c.status().unwrap_or("unknown").to_string(), writer))
}

#[async_trait]
impl Action for Failover {
    fn name(&self) -> &'static str {
        "aurora.failover"
    }
    fn summary(&self) -> &'static str {
        "make the site's Aurora instance the cluster's writer (nothing to do if it already is)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::optional(
                "instance",
                ArgKind::String,
                "the instance to make writer (default: the site's database.aurora.instance)",
            ),
            ArgSpec::optional(
                "cluster",
                ArgKind::String,
                "the cluster (default: database.aurora.cluster)",
            ),
            ArgSpec::optional(
                "poll",
                ArgKind::Duration,
                "longest pause between checks (default 5s)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["previous_writer", "changed"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn impact(&self, ctx: &StepCtx, args: &Args) -> Option<(engine::action::ImpactKind, String)> {
        let site = ctx.site_name();
        let cfg = crate::clients::site_config(ctx)
            .ok()
            .and_then(|(_, c)| vendor::section(&c).cloned());
        let instance = args
            .get("instance")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| cfg.as_ref().map(|a| a.instance.clone()))
            .unwrap_or_else(|| "?".into());
        let zone = cfg
            .and_then(|a| a.zone)
            .map(|z| format!(", {z}"))
            .unwrap_or_default();
        Some((
            engine::action::ImpactKind::MovesWriter,
            format!("fails Aurora over to {instance} ({site}'s zone{zone}): about 30 s without a database writer, unless it already is the writer"),
        ))
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(600)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(5)).unwrap_or(Duration::from_secs(5))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        // As written so far: a plan shows what it knows.
        let a = FailoverArgs {
            instance: str_arg(args, "instance").map(str::to_string),
            cluster: str_arg(args, "cluster").map(str::to_string),
            poll: None,
        };
        let cluster = cluster_of(ctx, &a).unwrap_or_else(|e| e.message);
        let target = target_of(ctx, &a).unwrap_or_else(|e| e.message);
        vec![
            format!("RDS DescribeDBClusters(DBClusterIdentifier={cluster})"),
            format!("RDS FailoverDBCluster(DBClusterIdentifier={cluster}, TargetDBInstanceIdentifier={target}) unless it is the writer already"),
        ]
    }
    fn postcondition(&self, _: &StepCtx, args: &Args) -> Option<String> {
        Some(format!(
            "the cluster is available with {} as writer",
            str_arg(args, "instance").unwrap_or("the site's instance")
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["status"] == "available" && o["writer"] == o["target"]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: FailoverArgs = typed(self.name(), args)?;
        let cluster = cluster_of(ctx, &a)?;
        let target = target_of(ctx, &a)?;
        let (status, writer) = describe_cluster(ctx, &cluster).await?;
        Ok(json!({"cluster": cluster, "status": status, "writer": writer, "target": target}))
    }
    async fn prepare(&self, ctx: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
        let a: FailoverArgs = typed(self.name(), args)?;
        let (_, writer) = describe_cluster(ctx, &cluster_of(ctx, &a)?).await?;
        let mut out = Outputs::new();
        out.insert("previous_writer".into(), json!(writer));
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: FailoverArgs = typed(self.name(), args)?;
        let cluster = cluster_of(ctx, &a)?;
        let target = target_of(ctx, &a)?;
        let (_, writer) = describe_cluster(ctx, &cluster).await?;
        let mut out = Outputs::new();
        if writer.as_deref() == Some(target.as_str()) {
            out.insert("changed".into(), json!(false));
            return Ok(out);
        }
        let rds = aws_sdk_rds::Client::new(&aws_config(&ctx.env).await?);
        rds.failover_db_cluster()
            .db_cluster_identifier(&cluster)
            .target_db_instance_identifier(&target)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("RDS FailoverDBCluster({cluster} → {target})"), e))?;
        out.insert("changed".into(), json!(true));
        Ok(out)
    }
}
