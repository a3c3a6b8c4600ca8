//! `cnpg.writer-check`, `cnpg.switchover`, `cnpg.failover`.

use std::time::Duration;

use async_trait::async_trait;
use engine::action::ImpactKind;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value as Json};

use super::judge::judge;
use super::read::{self, clusters, Site};
use crate::args::str_arg;
use crate::clients::{ctx_for, kube_client};
use crate::keycloak::kube_err;
use crate::wait::until;

/// `cnpg.writer-check`'s arguments.
#[derive(Debug, serde::Deserialize)]
pub struct CheckArgs {
    pub to: String,
    #[serde(default)]
    pub unplanned: Option<bool>,
}

/// `cnpg.writer-check`: whether the writer may move to a site.
#[derive(Debug)]
pub struct WriterCheck;

#[async_trait]
impl Action for WriterCheck {
    fn name(&self) -> &'static str {
        "cnpg.writer-check"
    }
    fn summary(&self) -> &'static str {
        "whether CloudNativePG's writer may move to a site: never two writable primaries (read from the databases), the target streaming within the lag bound, equal app secrets"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required("to", ArgKind::String, "the site that would take the writer"),
            ArgSpec::optional(
                "unplanned",
                ArgKind::Bool,
                "the writer's site is lost (a promotion without a token)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "safe",
            "to",
            "writable",
            "unplanned",
            "reasons",
            "summary",
            "sites",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn describe(&self, _: &StepCtx, args: &Args) -> Vec<String> {
        vec![format!(
            "on every CloudNativePG site: GET Cluster, GET secret <cluster>-app, SQL pg_is_in_recovery(), the WAL position and pg_stat_wal_receiver as the app user; judged for a move to {}",
            str_arg(args, "to").unwrap_or("?")
        )]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: CheckArgs = crate::args::typed(self.name(), args)?;
        Ok(judge(
            &read::all(ctx).await,
            &a.to,
            a.unplanned.unwrap_or(false),
        ))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

async fn patch_cluster(ctx: &StepCtx, s: &Site, body: Json) -> Result<(), StepError> {
    let c = ctx_for(ctx, &s.site)?;
    let (client, ns) = kube_client(&c).await?;
    clusters(client, &ns)
        .patch(
            &s.cfg.cluster,
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .map_err(|e| {
            kube_err(
                &s.site,
                &format!("PATCH Cluster {} {body}", s.cfg.cluster),
                e,
            )
        })?;
    Ok(())
}

async fn reread(ctx: &StepCtx, site: &str) -> Result<Site, String> {
    read::site(ctx, site).await.map_err(|e| e.message)
}

/// Point every site's Keycloak CR at the writer's exposed address and, except at a
/// lost site, wait until it rolled (Ready at its generation).
async fn repoint(
    ctx: &StepCtx,
    writer: &Site,
    lost: Option<&str>,
    poll: Duration,
) -> Result<Vec<String>, StepError> {
    let (host, port) = writer
        .cfg
        .address
        .rsplit_once(':')
        .map_or((writer.cfg.address.clone(), 5432), |(h, p)| {
            (h.to_string(), p.parse().unwrap_or(5432))
        });
    let mut done = Vec::new();
    for (site, cfg) in crate::config::sites(&ctx.env) {
        let Some(name) = cfg.keycloak.as_ref().map(|k| k.name.clone()) else {
            continue;
        };
        // The credentials of the site's own app Secret (a Secret lives in its own
        // cluster; the guard checked that the sites' hold the same password).
        let local = super::config::section(cfg).unwrap_or(&writer.cfg);
        let secret = local
            .secret
            .clone()
            .unwrap_or_else(|| format!("{}-app", local.cluster));
        let body = json!({"spec": {"db": {"vendor": "postgres", "host": host, "port": port,
            "database": writer.cfg.database.clone().unwrap_or_else(|| "app".into()),
            "usernameSecret": {"name": secret, "key": "username"},
            "passwordSecret": {"name": secret, "key": "password"}}}});
        let c = ctx_for(ctx, site)?;
        let patched = async {
            let (client, ns) = kube_client(&c).await?;
            let api = crate::keycloak::api(client, &ns);
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map_err(|e| kube_err(site, &format!("PATCH Keycloak {name} spec.db"), e))?;
            Ok::<_, StepError>(api)
        }
        .await;
        if Some(site.as_str()) == lost {
            done.push(match patched {
                Ok(_) => {
                    format!("{site} → {host}:{port} (patched; not waited on: the site is lost)")
                }
                Err(e) => format!(
                    "{site} NOT repointed ({}): patch its Keycloak CR when the site is back",
                    e.message
                ),
            });
            continue;
        }
        let api = patched?;
        until(
            ctx,
            &format!("{site}'s Keycloak rolled onto {host}:{port}"),
            poll,
            || {
                let (api, name) = (api.clone(), name.clone());
                async move {
                    let k = api.get(&name).await.map_err(|e| e.to_string())?;
                    let gen = k.metadata.generation.unwrap_or(0);
                    let st = &k.data["status"];
                    let ready = st["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    Ok((st["observedGeneration"] == json!(gen) && ready).then_some(()))
                }
            },
        )
        .await?;
        done.push(format!("{site} → {host}:{port}"));
    }
    Ok(done)
}

const MOVE_ARGS: &[ArgSpec] = &[
    ArgSpec::optional(
        "instance",
        ArgKind::String,
        "(Aurora's; unused by CloudNativePG)",
    ),
    ArgSpec::optional(
        "cluster",
        ArgKind::String,
        "(Aurora's; CloudNativePG's is the site's database.cnpg.cluster)",
    ),
    ArgSpec::optional(
        "poll",
        ArgKind::Duration,
        "longest pause between checks (default 2s)",
    ),
];

fn poll_of(args: &Args) -> Duration {
    crate::args::typed::<crate::aurora::FailoverArgs>("cnpg", args)
        .ok()
        .and_then(|a| a.poll)
        .map_or(Duration::from_secs(2), |p| p.0)
}

fn one_writer(o: &Json, to: &str) -> bool {
    o["writable"] == json!([to])
}

/// `cnpg.switchover`: a planned move of the writer across sites with CloudNativePG's
/// demotion and promotion tokens.
#[derive(Debug)]
pub struct Switchover;

impl Switchover {
    /// The demotion token: journaled earlier in this step, else the demoted Cluster's
    /// status (a demotion found done), else demote now and wait for it; journaled the
    /// moment it is known.
    async fn token(
        &self,
        ctx: &StepCtx,
        from: &Site,
        to: &Site,
        prepared: &Outputs,
        poll: Duration,
    ) -> Result<String, StepError> {
        if let Some(t) = prepared.get("demotion_token").and_then(Json::as_str) {
            return Ok(t.to_string());
        }
        if !(from.replica_by_spec() && from.status("demotionToken").is_string()) {
            if from.replica_by_spec() && !from.writable() {
                return Err(StepError::needs_operator(format!(
                    "{} was demoted but its Cluster shows no demotion token and none was journaled (CloudNativePG #11074): the planned promotion cannot go on. Only a promotion without a token remains (database.promote: {} must then be rebuilt)",
                    from.site, from.site
                )));
            }
            patch_cluster(ctx, from, json!({"spec": {"replica": {"primary": to.cfg.cluster, "source": to.cfg.cluster, "promotionToken": null}}})).await?;
        }
        // A token in the status of a cluster that was a primary when read is an old
        // one: never taken for this demotion's.
        let stale = from
            .status("demotionToken")
            .as_str()
            .filter(|_| !from.replica_by_spec())
            .map(str::to_string);
        let t = until(
            ctx,
            &format!("{}'s demotion token", from.site),
            poll,
            || async {
                let s = reread(ctx, &from.site).await?;
                Ok(s.status("demotionToken")
                    .as_str()
                    .filter(|t| !t.is_empty() && Some(*t) != stale.as_deref())
                    .map(str::to_string))
            },
        )
        .await?;
        let mut fact = Outputs::new();
        fact.insert("demotion_token".into(), json!(t));
        fact.insert("demoted".into(), json!(from.site));
        ctx.record_progress(fact).await?;
        Ok(t)
    }
}

#[async_trait]
impl Action for Switchover {
    fn name(&self) -> &'static str {
        "cnpg.switchover"
    }
    fn summary(&self) -> &'static str {
        "move CloudNativePG's writer to this site: demote the writer's Cluster, journal its demotion token the moment it appears, promote this site's Cluster with it, repoint every site's Keycloak"
    }
    fn args(&self) -> &'static [ArgSpec] {
        MOVE_ARGS
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["from", "demotion_token", "timeline", "repointed", "changed"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }
    fn poll_interval(&self, _: &Args) -> Duration {
        Duration::from_secs(2)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::MovesWriter, format!("moves CloudNativePG's writer to {}: no writable primary between the demotion and the promotion, then every site's Keycloak rolls onto it", ctx.site_name())))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let to = ctx.site_name();
        vec![
            "read every site's Cluster and database (the writer, the target's lag)".into(),
            format!("PATCH the writer's Cluster spec.replica {{primary: <{to}'s cluster>, source: <{to}'s cluster>, promotionToken: null}}; wait for status.demotionToken and journal it at once"),
            format!("PATCH {to}'s Cluster spec.replica {{primary: <itself>, promotionToken: <the token>}}; wait until status.lastPromotionToken is the token and its database writes"),
            "PATCH every site's Keycloak CR spec.db to the new writer; wait for each rollout".into(),
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "{} holds the only writable primary",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        one_writer(o, o["to"].as_str().unwrap_or_default())
    }
    fn explain(&self, _: &Args, o: &Json) -> Option<String> {
        Some(o["summary"].as_str().unwrap_or("?").to_string())
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(judge(&read::all(ctx).await, &ctx.site_name(), false))
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let to_site = ctx.site_name();
        let poll = poll_of(args);
        let views = read::all(ctx).await;
        let ok: Vec<&Site> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
        let to = ok
            .iter()
            .find(|s| s.site == to_site)
            .copied()
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{to_site}'s cluster cannot be read")))?;
        let from_name = prepared
            .get("demoted")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| {
                ok.iter()
                    .find(|s| s.writable() && s.site != to_site)
                    .map(|s| s.site.clone())
            })
            .or_else(|| {
                ok.iter()
                    .find(|s| {
                        s.site != to_site
                            && s.replica_by_spec()
                            && s.status("demotionToken").is_string()
                    })
                    .map(|s| s.site.clone())
            });
        let mut out = Outputs::new();
        let Some(from_name) =
            from_name.filter(|_| !to.writable() || prepared.contains_key("demotion_token"))
        else {
            out.insert("changed".into(), json!(false));
            out.insert(
                "repointed".into(),
                json!(repoint(ctx, &to, None, poll).await?),
            );
            return Ok(out);
        };
        let from = ok
            .iter()
            .find(|s| s.site == from_name)
            .copied()
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{from_name} cannot be read")))?;
        let token = self.token(ctx, &from, &to, prepared, poll).await?;
        // The demoted database must refuse writes before the other promotes (a skipped
        // demotion leaves a replica on paper only: 894e0e67).
        until(
            ctx,
            &format!("{from_name}'s database refuses writes"),
            poll,
            || async {
                let s = reread(ctx, &from_name).await?;
                match &s.sql {
                    Ok(q) if q.in_recovery => Ok(Some(())),
                    Ok(_) => Err(format!("{from_name} still answers writable")),
                    Err(e) => Err(e.clone()),
                }
            },
        )
        .await?;
        if to.status("lastPromotionToken").as_str() != Some(token.as_str()) {
            patch_cluster(
                ctx,
                &to,
                json!({"spec": {"replica": {"primary": to.cfg.cluster, "promotionToken": token}}}),
            )
            .await?;
        }
        let promoted = until(
            ctx,
            &format!("{to_site} promoted with the token"),
            poll,
            || async {
                let s = reread(ctx, &to_site).await?;
                if s.status("phase")
                    .as_str()
                    .is_some_and(|p| p.contains("unrecoverable"))
                {
                    return Err(format!("UNRECOVERABLE: {}", s.status("phaseReason")));
                }
                let used = s.status("lastPromotionToken").as_str() == Some(token.as_str());
                Ok((used && s.writable()).then_some(s))
            },
        )
        .await?;
        out.insert("from".into(), json!(from_name));
        out.insert("demotion_token".into(), json!(token));
        out.insert("timeline".into(), promoted.status("timelineID"));
        out.insert("changed".into(), json!(true));
        out.insert(
            "repointed".into(),
            json!(repoint(ctx, &promoted, None, poll).await?),
        );
        Ok(out)
    }
}

/// `cnpg.failover`: the writer's site is lost: promote this site's replica Cluster
/// without a token.
#[derive(Debug)]
pub struct Failover;

#[async_trait]
impl Action for Failover {
    fn name(&self) -> &'static str {
        "cnpg.failover"
    }
    fn summary(&self) -> &'static str {
        "promote this site's CloudNativePG replica Cluster without a token because the writer's site is lost: its last replayed position journaled first (what it had not received is lost), the former primary marked a replica where its API answers and to be rebuilt"
    }
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::PROMOTE]
    }
    fn args(&self) -> &'static [ArgSpec] {
        MOVE_ARGS
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "replayed_lsn",
            "replayed_at",
            "former",
            "rebuild",
            "timeline",
            "repointed",
            "synchronous_suspended",
            "synchronous_suspended_why",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::MovesWriter, format!("promotes {}'s CloudNativePG replica without a token: what it had not received from the lost primary is lost (the window is journaled), and the former primary must be rebuilt", ctx.site_name())))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        vec![
            format!("read every site; journal {}'s last replayed position and time", ctx.site_name()),
            format!("PATCH {}'s Cluster spec.replica {{primary: <itself>, promotionToken: null}} (with spec.postgresql.synchronous taken off, kept in the annotation {}, where it names the lost site: its commits would wait for it forever); wait until its database writes", ctx.site_name(), read::SUSPENDED),
            "PATCH the former primary's Cluster spec.replica.primary to it where its API answers (it must be rebuilt)".into(),
            "PATCH every site's Keycloak CR spec.db to the new writer; wait for each rollout (a lost site's: not waited on)".into(),
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "{} holds the only writable primary",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        one_writer(o, o["to"].as_str().unwrap_or_default())
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(judge(&read::all(ctx).await, &ctx.site_name(), true))
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let s = read::site(ctx, &ctx.site_name()).await?;
        let mut out = Outputs::new();
        if let Ok(q) = &s.sql {
            out.insert("replayed_lsn".into(), json!(q.lsn));
            out.insert("replayed_at".into(), json!(q.replayed_at));
        }
        Ok(out)
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let to_site = ctx.site_name();
        let poll = poll_of(args);
        let views = read::all(ctx).await;
        let j = judge(&views, &to_site, true);
        let to = views
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .find(|s| s.site == to_site)
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{to_site}'s cluster cannot be read")))?;
        if !to.writable() && j["safe"] != true {
            return Err(StepError::permanent(format!(
                "refused: {}; nothing was changed",
                j["summary"].as_str().unwrap_or_default()
            )));
        }
        let former: Vec<String> = crate::config::sites(&ctx.env)
            .keys()
            .filter(|s| **s != to_site)
            .cloned()
            .collect();
        let mut out = prepared.clone();
        let suspend = suspension(ctx, &to, &former).await?;
        if !to.writable() || suspend.is_some() {
            let mut body =
                json!({"spec": {"replica": {"primary": to.cfg.cluster, "promotionToken": null}}});
            if let Some(stanza) = &suspend {
                // In the promotion's own patch: the promoted writer never waits on the
                // lost site, not even for a moment.
                body["metadata"] = json!({"annotations": {read::SUSPENDED: stanza.to_string()}});
                body["spec"]["postgresql"] = json!({"synchronous": null});
                out.insert("synchronous_suspended".into(), stanza.clone());
            }
            patch_cluster(ctx, &to, body).await?;
        }
        let promoted = until(ctx, &format!("{to_site} writes"), poll, || async {
            let s = reread(ctx, &to_site).await?;
            Ok(s.writable().then_some(s))
        })
        .await?;
        // The former primary: a replica of the new one by its spec where its API
        // answers, so that it never comes back as a second writer.
        for f in &former {
            if let Some(Ok(s)) = views
                .iter()
                .find(|v| v.as_ref().is_ok_and(|s| &s.site == f))
            {
                let _ = tokio::time::timeout(Duration::from_secs(10), patch_cluster(ctx, s, json!({"spec": {"replica": {"primary": to.cfg.cluster, "source": to.cfg.cluster, "promotionToken": null}}}))).await;
            }
        }
        out.insert("former".into(), json!(former));
        out.insert("rebuild".into(), json!(former.iter().map(|f| format!("{f}'s database diverged when {to_site} was promoted without a token: rebuild it from {to_site} before it serves again")).collect::<Vec<_>>()));
        out.insert("timeline".into(), promoted.status("timelineID"));
        out.insert(
            "repointed".into(),
            json!(repoint(ctx, &promoted, former.first().map(String::as_str), poll).await?),
        );
        Ok(out)
    }
}

/// The synchronous stanza of the Cluster about to be promoted when it names a lost
/// site's Cluster (the guide's symmetric configuration, `dataDurability: required`):
/// once it writes, every commit would wait for that site, which is gone, so Keycloak
/// could not write at all. Journaled before the patch that suspends it; `cnpg.rejoin`
/// puts it back once the lost site streams again.
async fn suspension(
    ctx: &StepCtx,
    to: &Site,
    former: &[String],
) -> Result<Option<Json>, StepError> {
    let lost: Vec<String> = former
        .iter()
        .filter_map(|f| Some((f, crate::config::sites(&ctx.env).get(f)?)))
        .filter_map(|(f, c)| super::config::section(c).map(|c| (f, c.cluster.clone())))
        .filter(|(_, c)| to.configured_to_wait_for(c))
        .map(|(f, c)| format!("{f}'s Cluster `{c}`"))
        .collect();
    let Some(stanza) = to
        .cluster
        .as_ref()
        .map(|c| c["spec"]["postgresql"]["synchronous"].clone())
        .filter(|_| !lost.is_empty())
    else {
        return Ok(None);
    };
    let mut fact = Outputs::new();
    fact.insert("synchronous_suspended".into(), stanza.clone());
    fact.insert(
        "synchronous_suspended_why".into(),
        json!(format!(
            "{}'s commits would wait for {} (lost): spec.postgresql.synchronous is taken off its Cluster and kept in the annotation {}; cnpg-rejoin puts it back. Until then a loss of {} loses what it wrote since",
            to.site,
            lost.join(", "),
            read::SUSPENDED,
            to.site
        )),
    );
    ctx.record_progress(fact).await?;
    Ok(Some(stanza))
}

/// Put back the synchronous stanza a failover suspended on the writer's Cluster, once
/// the rebuilt site streams from it.
async fn restore_synchronous(
    ctx: &StepCtx,
    writer: &Site,
    rebuilt: &Site,
    poll: Duration,
) -> Result<Option<Json>, StepError> {
    let Some(stanza) = writer.suspended() else {
        return Ok(None);
    };
    patch_cluster(
        ctx,
        writer,
        json!({"metadata": {"annotations": {read::SUSPENDED: null}},
               "spec": {"postgresql": {"synchronous": stanza}}}),
    )
    .await?;
    // Done when the writer's server runs it: every commit waits for the rebuilt site.
    until(
        ctx,
        &format!("{} waits for {} on every commit", writer.site, rebuilt.site),
        poll,
        || async {
            let w = reread(ctx, &writer.site).await?;
            Ok(w.waits_for(&rebuilt.cfg.cluster).then_some(()))
        },
    )
    .await?;
    Ok(Some(stanza))
}

/// `cnpg.rejoin`: rebuild this site's Cluster as a replica of the writer's: its Cluster
/// (and with it its data) deleted and created again, bootstrapped by `pg_basebackup`
/// from the writer (CloudNativePG cannot rewind a former primary, #10928).
#[derive(Debug)]
pub struct Rejoin;

#[async_trait]
impl Action for Rejoin {
    fn name(&self) -> &'static str {
        "cnpg.rejoin"
    }
    fn summary(&self) -> &'static str {
        "rebuild this site's CloudNativePG Cluster as a replica of the writer's (DISCARDS this site's data, writes it took that were never replicated included): delete it, create it again bootstrapped from the writer, wait until it streams"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "writer",
            "discarded_lsn",
            "streaming",
            "synchronous_restored",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Destructive
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(7200)
    }
    fn impact(&self, ctx: &StepCtx, _: &Args) -> Option<(ImpactKind, String)> {
        Some((ImpactKind::RemovesData, format!("deletes {}'s CloudNativePG Cluster and its data, and rebuilds it from the writer: what it holds that the writer does not is lost", ctx.site_name())))
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let site = ctx.site_name();
        vec![
            "read every site: exactly one other site writes".into(),
            format!("DELETE {site}'s Cluster (its data); wait until it is gone"),
            format!("POST {site}'s Cluster again: spec.replica {{primary: <the writer's>, source: <the writer's>}}, bootstrap.pg_basebackup.source <the writer's>; wait until its database streams in recovery"),
            format!("PATCH the writer's Cluster: the spec.postgresql.synchronous a failover suspended (annotation {}) put back, so that every commit waits for {site} again", read::SUSPENDED),
        ]
    }
    fn postcondition(&self, ctx: &StepCtx, _: &Args) -> Option<String> {
        Some(format!(
            "{}'s database replays from the writer",
            ctx.site_name()
        ))
    }
    fn satisfied(&self, _: &Args, o: &Json) -> bool {
        let site = o["to"].as_str().unwrap_or_default();
        let mine = o["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["site"] == site);
        let suspended = o["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["writable"] == true && !s["suspended_synchronous"].is_null());
        o["writable"]
            .as_array()
            .is_some_and(|w| w.len() == 1 && w[0] != site)
            && mine.is_some_and(|s| s["writable"] == false && s["database"]["receiving"] == true)
            && !suspended
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        Ok(judge(&read::all(ctx).await, &ctx.site_name(), true))
    }
    async fn prepare(&self, ctx: &StepCtx, _: &Args) -> Result<Outputs, StepError> {
        let s = read::site(ctx, &ctx.site_name()).await?;
        let mut out = Outputs::new();
        if let Ok(q) = &s.sql {
            out.insert("discarded_lsn".into(), json!(q.lsn));
        }
        Ok(out)
    }
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError> {
        let site = ctx.site_name();
        let poll = poll_of(args);
        let views = read::all(ctx).await;
        let ok: Vec<&Site> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
        let writers: Vec<&&Site> = ok
            .iter()
            .filter(|s| s.writable() && s.site != site)
            .collect();
        let [writer] = writers.as_slice() else {
            return Err(StepError::permanent(format!(
                "refused: {site} is rebuilt only from exactly one writable primary at another site (writable elsewhere: {}); nothing was deleted",
                writers.iter().map(|s| s.site.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let me = ok
            .iter()
            .find(|s| s.site == site)
            .copied()
            .cloned()
            .ok_or_else(|| StepError::transient(format!("{site} cannot be read")))?;
        let mut out = prepared.clone();
        if matches!(&me.sql, Ok(q) if q.in_recovery)
            && super::judge::why_not_following(&me, Some(writer)).is_empty()
        {
            // Follows the writer already (rebuilt by this step before a crash): only
            // the synchronous stanza is left.
            out.insert("writer".into(), json!(writer.site));
            out.insert("streaming".into(), json!(true));
            if let Some(stanza) = restore_synchronous(ctx, writer, &me, poll).await? {
                out.insert("synchronous_restored".into(), stanza);
            }
            return Ok(out);
        }
        let c = ctx_for(ctx, &site)?;
        let (client, ns) = kube_client(&c).await?;
        let api = clusters(client, &ns);
        let mut spec = me
            .cluster
            .as_ref()
            .map(|c| c["spec"].clone())
            .unwrap_or_else(|| json!({}));
        spec["replica"] = json!({"self": me.cfg.cluster, "primary": writer.cfg.cluster, "source": writer.cfg.cluster});
        spec["bootstrap"] = json!({"pg_basebackup": {"source": writer.cfg.cluster}});
        if me.cluster.is_some() {
            api.delete(&me.cfg.cluster, &Default::default())
                .await
                .map_err(|e| kube_err(&site, &format!("DELETE Cluster {}", me.cfg.cluster), e))?;
        }
        until(ctx, &format!("{site}'s Cluster is gone"), poll, || async {
            let s = reread(ctx, &site).await?;
            Ok(s.cluster.is_none().then_some(()))
        })
        .await?;
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": me.cfg.cluster, "namespace": ns}, "spec": spec}))
        .map_err(|e| StepError::permanent(e.to_string()))?;
        api.create(&Default::default(), &obj)
            .await
            .map_err(|e| kube_err(&site, &format!("POST Cluster {}", me.cfg.cluster), e))?;
        until(
            ctx,
            &format!("{site} replays from {}", writer.site),
            poll,
            || async {
                let s = reread(ctx, &site).await?;
                Ok(matches!(&s.sql, Ok(q) if q.in_recovery && q.receiving).then_some(()))
            },
        )
        .await?;
        out.insert("writer".into(), json!(writer.site));
        out.insert("streaming".into(), json!(true));
        if let Some(stanza) = restore_synchronous(ctx, writer, &me, poll).await? {
            out.insert("synchronous_restored".into(), stanza);
        }
        Ok(out)
    }
}
