//! `pgo.writer-check` and `pgo.cluster-state`: PGO read, as guards and steps see it.

use super::*;

/// `pgo.writer-check`'s arguments (`crate::args::typed`).
#[derive(Debug, serde::Deserialize)]
pub struct CheckArgs {
    pub to: String,
    #[serde(default)]
    pub unplanned: Option<bool>,
}

const CHECK_ARGS: &[ArgSpec] = &[
    ArgSpec::required("to", ArgKind::String, "the site that is to hold the writer"),
    ArgSpec::optional(
        "unplanned",
        ArgKind::Bool,
        "the primary's site is lost (promote-standby)",
    ),
];

/// `pgo.writer-check`: may the writer move to `to` now?
#[derive(Debug)]
pub struct WriterCheck;

#[async_trait]
impl Action for WriterCheck {
    fn name(&self) -> &'static str {
        "pgo.writer-check"
    }
    fn summary(&self) -> &'static str {
        "whether PGO's writer may move to a site: never two writable primaries, a known lag within the bound, equal pguser secrets, nothing paused"
    }
    fn args(&self) -> &'static [ArgSpec] {
        CHECK_ARGS
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["safe", "summary", "lag_bytes"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        vec![format!(
            "on every PGO site: GET PostgresCluster, GET pods -l postgres-operator.crunchydata.com/cluster, GET secret <cluster>-pguser-<user>, SQL pg_is_in_recovery() and the WAL positions as the pguser; judged for a move to {}",
            str_arg(args, "to").unwrap_or("?")
        )]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: CheckArgs = crate::args::typed(self.name(), args)?;
        let (to, unplanned) = (a.to, a.unplanned.unwrap_or(false));
        let (views, others) = read_all(ctx).await;
        let (safe, why, mut seen) = judge(&to, &views, &others, unplanned);
        let summary = if safe {
            format!(
                "the writer may move to {to}: {}",
                seen["sites"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|s| s["summary"].as_str())
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            )
        } else {
            why.join("; ")
        };
        seen["safe"] = json!(safe);
        seen["summary"] = json!(summary);
        seen["to"] = json!(to);
        Ok(seen)
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

/// `pgo.cluster-state`: the site's cluster as it is.
#[derive(Debug)]
pub struct ClusterState;

#[async_trait]
impl Action for ClusterState {
    fn name(&self) -> &'static str {
        "pgo.cluster-state"
    }
    fn summary(&self) -> &'static str {
        "the site's PostgresCluster: standby or primary, shut down, paused, its pods, and what its database answers"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["writable", "lsn", "summary"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        vec![format!("GET PostgresCluster, its pods and pguser secret on {}; SQL pg_is_in_recovery() through its database.pgo.address", ctx.site_name())]
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let (site, p) = this_site(ctx)?;
        Ok(read_site(ctx, &site, &p).await?.json())
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}
