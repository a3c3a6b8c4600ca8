//! `pgo.switchover`: PGO's in-cluster switchover at one site (maintenance).
use super::*;

/// `pgo.switchover`'s arguments (`crate::args::typed`).
#[derive(Debug, serde::Deserialize)]
pub struct SwitchoverArgs {
    #[serde(default)]
    pub target_instance: Option<String>,
    #[serde(default)]
    pub poll: Option<crate::args::Human>,
}

/// `pgo.switchover`: PGO's in-cluster switchover at this site (maintenance): set
/// `spec.patroni.switchover` and a trigger annotation new to this attempt, wait until
/// `status.patroni.switchover` equals it and the primary's timeline moved on, then
/// disable it again. PGO reports a refused switchover only in its own log (no Event),
/// so a timeout says what was seen.
#[derive(Debug)]
pub struct Switchover;

#[async_trait]
impl Action for Switchover {
    fn name(&self) -> &'static str {
        "pgo.switchover"
    }
    fn summary(&self) -> &'static str {
        "PGO's in-cluster switchover at this site: another instance of the same PostgresCluster becomes the primary"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::optional(
                "target_instance",
                ArgKind::String,
                "the instance (StatefulSet) to promote, not the pod (default: Patroni's choice)",
            ),
            ArgSpec::optional(
                "poll",
                ArgKind::Duration,
                "longest pause between checks (default 2s)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["trigger", "timeline_before", "timeline"])
    }
    fn effect(&self, _: &Args) -> Effect {
        // The trigger is journaled with the intent: applied again, it is the same
        // trigger, which PGO does not act on twice.
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(600)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::MovesWriter, format!("switches {}'s primary to another instance of its cluster: a few seconds without a writer there", ctx.site_name())))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let target = str_arg(args, "target_instance")
            .filter(|t| !t.is_empty())
            .map(|t| format!(", targetInstance: {t}"))
            .unwrap_or_default();
        vec![
            format!("PATCH {}'s PostgresCluster (merge): spec.patroni.switchover {{enabled: true, type: Switchover{target}}} and the annotation {TRIGGER}=<this run, step and attempt>", ctx.site_name()),
            "wait until status.patroni.switchover equals that value and the primary's timeline (read through its address) moved on".into(),
            "PATCH spec.patroni.switchover.enabled: false (PGO's documented reset)".into(),
        ]
    }
    fn postcondition(&self, _: &StepCtx, _: &Args) -> Option<String> {
        Some(
            "status.patroni.switchover equals this attempt's trigger and the timeline moved on"
                .into(),
        )
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["done"] == true
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let (site, p) = this_site(ctx)?;
        let v = read_site(ctx, &site, &p).await?;
        let mut o = v.json();
        o["done"] = json!(v.switchover.is_some() && v.switchover == v.trigger);
        Ok(o)
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let (site, p) = this_site(ctx)?;
        let v = read_site(ctx, &site, &p).await?;
        let mut out = Outputs::new();
        // New for this attempt (PGO does nothing for a value it already acted on).
        out.insert(
            "trigger".into(),
            json!(format!(
                "{}-{}-{}",
                ctx.run_id,
                ctx.step_id,
                engine::event::now_ms()
            )),
        );
        out.insert(
            "timeline_before".into(),
            json!(v.sql.as_ref().ok().and_then(|s| s.timeline)),
        );
        Ok(out)
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let a: SwitchoverArgs = crate::args::typed(self.name(), args)?;
        let poll = a.poll.map_or(Duration::from_secs(2), |p| p.0);
        let (site, p) = this_site(ctx)?;
        let trigger = prepared
            .get("trigger")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let before = prepared.get("timeline_before").and_then(Json::as_i64);
        let mut sw = json!({"enabled": true, "type": "Switchover"});
        if let Some(t) = a.target_instance.as_ref().filter(|t| !t.is_empty()) {
            sw["targetInstance"] = json!(t);
        }
        let (client, ns) = kube_client(ctx).await?;
        let body = json!({"metadata": {"annotations": {TRIGGER: trigger}}, "spec": {"patroni": {"switchover": sw}}});
        clusters(client, &ns)
            .patch(&p.cluster, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| {
                kube_err(
                    &site,
                    &format!("PATCH PostgresCluster {} switchover", p.cluster),
                    e,
                )
            })?;
        let timeline = until(ctx, &format!("PGO switched {site}'s primary over (trigger {trigger})"), poll, || async {
            let v = read_site(ctx, &site, &p).await.map_err(|e| e.message)?;
            let tl = v.sql.as_ref().ok().and_then(|s| s.timeline).map(i64::from);
            let moved = matches!((before, tl), (Some(b), Some(t)) if t > b) || before.is_none();
            if v.switchover.as_deref() == Some(trigger.as_str()) && moved {
                Ok(Some(tl))
            } else {
                Err(format!(
                    "status.patroni.switchover {:?}, timeline {tl:?} (was {before:?}), {} instance pod(s), {}; PGO reports a refused switchover (one instance, a Failover without targetInstance, an unknown target) only in its own log",
                    v.switchover, v.pods, if v.paused { "PAUSED" } else { "not paused" }
                ))
            }
        }).await?;
        merge_patch(
            ctx,
            &site,
            &p.cluster,
            json!({"spec": {"patroni": {"switchover": {"enabled": false}}}}),
        )
        .await?;
        let mut out = prepared.clone();
        out.insert("timeline".into(), json!(timeline));
        Ok(out)
    }
}
