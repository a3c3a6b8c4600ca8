//! `infinispan.push-state`: push a site's state to the other, a cache in ERROR pushed
//! again alone, a push an operator cancelled never repeated.

use super::*;

/// `infinispan.push-state`: push every cache's state from the site to `backup`; wait
/// until the backup is online and every cache's push status is `OK`, pushing again only
/// the caches that report `ERROR`, up to `max_repush` times each.
#[derive(Debug)]
pub struct PushState;

pub(super) async fn push_statuses(
    t: &Transport,
    caches: &[String],
    backup: &str,
) -> Result<BTreeMap<String, String>, StepError> {
    let mut out = BTreeMap::new();
    for c in caches {
        let m = t.push_status(c).await?;
        out.insert(
            c.clone(),
            m.get(backup).cloned().unwrap_or_else(|| "UNKNOWN".into()),
        );
    }
    Ok(out)
}

#[async_trait]
impl Action for PushState {
    fn name(&self) -> &'static str {
        "infinispan.push-state"
    }
    fn summary(&self) -> &'static str {
        "push the site's cache state to a backup site, re-pushing caches that report ERROR, until every cache is OK"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            BACKUP,
            CACHE,
            CACHES,
            ArgSpec::optional(
                "max_repush",
                ArgKind::Int,
                "times a cache in ERROR is pushed again (default 3)",
            ),
            ArgSpec::optional(
                "poll",
                ArgKind::Duration,
                "longest pause between push-status checks (default 5s)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["repushed", "push"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(1800)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(5)).unwrap_or(Duration::from_secs(5))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let backup = &super::super::xsite_name(ctx, req_str(args, "backup").unwrap_or("?"));
        let caches = caches_arg(args);
        let mut lines = describe_action(ctx, backup, caches.as_deref(), "start-push-state");
        let status = line(&target(ctx), Op::PushStatus { cache: "{cache}" });
        lines.push(format!(
            "then until every cache is OK (ERROR: push that cache again, up to {} times): {status}",
            int_arg(args, "max_repush").unwrap_or(3)
        ));
        lines
    }
    fn postcondition(&self, _: &StepCtx, args: &Args) -> Option<String> {
        Some(format!(
            "replication to `{}` is online and every cache's push status is OK",
            req_str(args, "backup").unwrap_or("?")
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        o["status"] == "online"
            && o["push"]
                .as_object()
                .is_some_and(|m| !m.is_empty() && m.values().all(|v| v == "OK"))
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        let mut parts = Vec::new();
        if o["status"] != "online" {
            parts.push(format!("replication is {}", text(&o["status"])));
        }
        let push: Vec<(String, String)> = o["push"]
            .as_object()
            .map(|m| m.iter().map(|(c, v)| (c.clone(), text(v))).collect())
            .unwrap_or_default();
        parts.extend(by_state(&push, "OK").into_iter().map(|(state, caches)| {
            format!("push {state} for {}", caches_text(&caches, push.len()))
        }));
        if push.is_empty() {
            parts.push("no push status reported".into());
        }
        Some(parts.join("; "))
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: PushArgs = typed(self.name(), args)?;
        let backup = &super::super::xsite_name(ctx, &a.backup);
        let t = Transport::for_step(ctx).await?;
        let caches = match which(&a.cache, &a.caches) {
            Some(c) => c,
            None => t.caches(backup).await?,
        };
        let st = t.status(backup, Some(&caches)).await?;
        let push = push_statuses(&t, &caches, backup).await?;
        Ok(json!({"site": t.site(), "backup": backup, "status": st.overall, "push": push}))
    }
    /// The deployment's ledger, journaled with the intent: once a push of every cache
    /// (no single `cache`) succeeds, however it is settled, the backup site's data is
    /// the pushing site's.
    async fn prepare(&self, _: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
        let a: PushArgs = typed(self.name(), args)?;
        let mut out = Outputs::new();
        if a.cache.is_none() {
            crate::ledger::record(&mut out, &a.backup, crate::ledger::SYNCHRONIZED);
        }
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let a: PushArgs = typed(self.name(), args)?;
        let backup = &super::super::xsite_name(ctx, &a.backup);
        let max = a.max_repush.unwrap_or(3).max(0) as u32;
        let cap = ctx
            .env
            .scaled_pause(a.poll.map_or(Duration::from_secs(5), |p| p.0));
        let t = Transport::for_step(ctx).await?;
        let explicit = which(&a.cache, &a.caches);
        let caches = match &explicit {
            Some(c) => c.clone(),
            None => t.caches(backup).await?,
        };
        // A push that was cancelled stays the operator's call, also on resume.
        let before = push_statuses(&t, &caches, backup).await?;
        let cancelled: Vec<String> = before
            .iter()
            .filter(|(_, s)| s.as_str() == "CANCELED" || s.as_str() == "CANCELLING")
            .map(|(c, s)| format!("`{c}` ({s})"))
            .collect();
        if !cancelled.is_empty() {
            return Err(StepError::needs_operator(format!(
                "site `{}`: the push-state to `{backup}` of {} was cancelled; it is not pushed again automatically. To push again, clear its status (`site clear-push-site-status --cache=...` on `{}`) and resume; or abort the run",
                t.site(),
                cancelled.join(", "),
                t.site()
            )));
        }
        match &explicit {
            None => {
                t.container_action(backup, "start-push-state").await?;
            }
            Some(list) => {
                for c in list {
                    t.cache_action(c, backup, "start-push-state").await?;
                }
            }
        }
        let deadline = Instant::now() + ctx.timeout;
        let mut repushed: BTreeMap<String, u32> = BTreeMap::new();
        let mut pause = Duration::from_millis(20).min(cap);
        loop {
            if !ctx.interrupt.sleep(pause).await {
                return Err(StepError::transient(
                    "interrupted while waiting for push-state",
                ));
            }
            pause = (pause * 2).min(cap);
            let statuses = push_statuses(&t, &caches, backup).await?;
            // A push an operator cancelled is never pushed again behind their back.
            let cancelled: Vec<&String> = statuses
                .iter()
                .filter(|(_, s)| s.as_str() == "CANCELED" || s.as_str() == "CANCELLING")
                .map(|(c, _)| c)
                .collect();
            if !cancelled.is_empty() {
                return Err(StepError::needs_operator(format!(
                    "site `{}`: the push-state to `{backup}` of {} was cancelled ({}), presumably by an operator; it is not pushed again automatically. To push again, clear its status (`site clear-push-site-status --cache=...` on `{}`) and resume; or abort the run",
                    t.site(),
                    cancelled.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                    cancelled.iter().map(|c| statuses[*c].as_str()).collect::<Vec<_>>().join(", "),
                    t.site()
                )));
            }
            let errored = repush_errored(&t, &statuses, backup, &mut repushed, max).await?;
            if errored.is_empty() && statuses.values().all(|s| s == "OK") {
                let st = t.status(backup, Some(&caches)).await?;
                if st.overall == "online" {
                    let mut out = Outputs::new();
                    out.insert("repushed".into(), json!(repushed));
                    out.insert("push".into(), json!(statuses));
                    return Ok(out);
                }
            }
            if Instant::now() >= deadline {
                let sending: Vec<&String> = statuses
                    .iter()
                    .filter(|(_, s)| s.as_str() != "OK")
                    .map(|(c, _)| c)
                    .collect();
                return Err(StepError::transient(format!(
                    "site `{}`: push-state to `{backup}` not finished within {}: still not OK: {}",
                    t.site(),
                    humantime::format_duration(ctx.timeout),
                    sending
                        .iter()
                        .map(|c| format!("`{c}` ({})", statuses[*c]))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
}

/// Push again each cache whose push ended in `ERROR`, up to `max` times each; the
/// caches pushed again this round.
async fn repush_errored(
    t: &Transport,
    statuses: &BTreeMap<String, String>,
    backup: &str,
    repushed: &mut BTreeMap<String, u32>,
    max: u32,
) -> Result<Vec<String>, StepError> {
    let errored: Vec<String> = statuses
        .iter()
        .filter(|(_, s)| s.as_str() == "ERROR")
        .map(|(c, _)| c.clone())
        .collect();
    for c in &errored {
        let n = repushed.entry(c.clone()).or_default();
        if *n >= max {
            return Err(StepError::permanent(format!(
                "site `{}`: push-state of `{c}` to `{backup}` ended in {} after {} re-push{}: giving up; look at the Infinispan logs of `{}` and `{backup}`",
                t.site(),
                statuses[c],
                n,
                if *n == 1 { "" } else { "es" },
                t.site()
            )));
        }
        *n += 1;
        tracing::info!(
            "push-state of `{c}` to `{backup}` is {}: pushing it again ({n}/{max})",
            statuses[c]
        );
        t.cache_action(c, backup, "start-push-state").await?;
    }
    Ok(errored)
}
