//! `pgo.recreate-as-standby`: PGO's documented demotion of a former primary.
use super::*;

/// `pgo.recreate-as-standby`: delete this site's PostgresCluster and create it again
/// as a standby of the writer's (PGO's documented demotion).
#[derive(Debug)]
pub struct RecreateAsStandby;

#[async_trait]
impl Action for RecreateAsStandby {
    fn name(&self) -> &'static str {
        "pgo.recreate-as-standby"
    }
    fn summary(&self) -> &'static str {
        "delete this site's PostgresCluster and create it as a standby of the writable site's: DISCARDS this site's data"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["following"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Destructive
    }
    /// A base backup of the whole database: two hours (shortened by a lab's time
    /// scale, whose servers are real and small).
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(7200)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::RemovesData, format!("deletes {}'s PostgresCluster and its data (with any writes never replicated from it), then bootstraps it again from the writer", ctx.site_name())))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        vec![
            "read every PGO site; refuse unless exactly one other site is writable".into(),
            format!("DELETE {}'s PostgresCluster; wait until it is gone", ctx.site_name()),
            format!("POST it again with the same spec and spec.standby {{enabled: true, host, port}} of the writer's address; wait until {} replays (pg_is_in_recovery() true)", ctx.site_name()),
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "{} is a standby cluster that replays from the writer",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["standby"] == true && o["writable"] == false
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        ClusterState.probe(ctx, args).await
    }
    async fn apply(&self, ctx: &StepCtx, _: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let here = ctx.site_name();
        let (views, _) = read_all(ctx).await;
        let writers: Vec<&View> = views
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .filter(|v| v.writable() && v.site != here)
            .collect();
        let [writer] = writers.as_slice() else {
            return Err(StepError::needs_operator(format!("{here} is recreated only as a standby of exactly one writable primary; writable now: {}", writers.iter().map(|v| v.site.as_str()).collect::<Vec<_>>().join(", "))));
        };
        let mine = views
            .iter()
            .find_map(|v| v.as_ref().ok().filter(|v| v.site == here))
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{here}'s cluster cannot be read")))?;
        let (client, ns) = kube_client(&site_ctx(ctx, &here)?).await?;
        let api = clusters(client, &ns);
        let spec = match api
            .get_opt(&mine.cfg.cluster)
            .await
            .map_err(|e| kube_err(&here, "GET PostgresCluster", e))?
        {
            Some(obj) => {
                api.delete(&mine.cfg.cluster, &DeleteParams::default())
                    .await
                    .map_err(|e| kube_err(&here, "DELETE PostgresCluster", e))?;
                obj.data["spec"].clone()
            }
            None => json!({}),
        };
        let (host, port) = writer
            .cfg
            .address
            .rsplit_once(':')
            .unwrap_or((&writer.cfg.address, "5432"));
        let mut spec = spec;
        spec["shutdown"] = json!(false);
        spec["standby"] =
            json!({"enabled": true, "host": host, "port": port.parse::<u16>().unwrap_or(5432)});
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "postgres-operator.crunchydata.com/v1beta1", "kind": "PostgresCluster",
            "metadata": {"name": mine.cfg.cluster, "namespace": ns}, "spec": spec,
        }))
        .map_err(|e| StepError::permanent(e.to_string()))?;
        api.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| kube_err(&here, "POST PostgresCluster", e))?;
        until(
            ctx,
            &format!("{here} replays from {}", writer.site),
            Duration::from_secs(2),
            || async {
                let v = read_site(ctx, &here, &mine.cfg)
                    .await
                    .map_err(|e| e.message)?;
                match &v.sql {
                    Ok(s) if s.in_recovery => Ok(Some(())),
                    _ => Err(v.summary()),
                }
            },
        )
        .await?;
        let mut out = Outputs::new();
        out.insert("following".into(), json!(writer.site));
        Ok(out)
    }
}
