//! `keycloak.scale`: set the Keycloak CR's `spec.instances` and wait as operations.md
//! §5 says. The count before the change is read before the effect and journaled with
//! the intent (`previous_instances`), so a restore after a crash uses the real
//! original, never the 0 that is there after the scale-down.

use serde::Deserialize;
use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value as Json};

use crate::args::{dur_arg, int_arg, typed, Human};
use crate::clients::{kube_client, site_config};

#[derive(Debug)]
pub struct Scale;

/// `keycloak.scale`'s arguments (`crate::args::typed`).
#[derive(Debug, Deserialize)]
pub struct ScaleArgs {
    pub instances: i64,
    #[serde(default)]
    pub poll: Option<Human>,
}

fn keycloak_name(ctx: &StepCtx) -> Result<String, StepError> {
    let (site, cfg) = site_config(ctx)?;
    cfg.keycloak.map(|k| k.name).ok_or_else(|| {
        StepError::permanent(format!(
            "site `{site}` has no `keycloak.name` in the environment file"
        ))
    })
}

/// The Keycloak CRs of a namespace.
pub(crate) fn api(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("k8s.keycloak.org", "v2alpha1", "Keycloak");
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "keycloaks"),
    )
}

/// A Kubernetes error of `site`, its status and reason kept.
pub(crate) fn kube_err(site: &str, what: &str, e: kube::Error) -> StepError {
    let msg = format!("site `{site}`: {what}: {e}");
    match &e {
        kube::Error::Api(s) => StepError::kubernetes(s.code, &s.reason, msg),
        _ => StepError::transient(msg),
    }
}

fn instances(args: &Args) -> Result<i64, StepError> {
    match int_arg(args, "instances") {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(StepError::permanent(format!(
            "argument `instances` must be a whole number >= 0, got {}",
            args.get("instances").cloned().unwrap_or_default()
        ))),
    }
}

fn condition(status: &Json, kind: &str) -> Option<String> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .map(str::to_ascii_lowercase)
}

#[async_trait]
impl Action for Scale {
    fn impact(&self, ctx: &StepCtx, args: &Args) -> Option<(engine::action::ImpactKind, String)> {
        let site = ctx.site_name();
        (args.get("instances").and_then(Json::as_i64) == Some(0)).then(|| {
            (
                engine::action::ImpactKind::RemovesCapacity,
                format!("scales Keycloak on {site} to 0 instances (no logins served there until it is scaled back)"),
            )
        })
    }
    fn name(&self) -> &'static str {
        "keycloak.scale"
    }
    fn summary(&self) -> &'static str {
        "set the Keycloak CR's spec.instances (recording the previous count) and wait until the deployment follows"
    }
    fn invariants(&self) -> &'static [&'static str] {
        &[crate::guarantees::SCALE_TO_ZERO]
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required(
                "instances",
                ArgKind::Int,
                "the new instance count; to restore, use the recorded `previous_instances`",
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
        Some(&["previous_instances"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::Idempotent
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(900)
    }
    fn poll_interval(&self, args: &Args) -> Duration {
        dur_arg(args, "poll", Duration::from_secs(5)).unwrap_or(Duration::from_secs(5))
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let name = keycloak_name(ctx).unwrap_or_else(|_| "?".into());
        let (site, ns) = match site_config(ctx) {
            Ok((s, c)) => (s, c.kubernetes.map(|k| k.namespace).unwrap_or_default()),
            Err(_) => ("?".into(), "?".into()),
        };
        let n = args.get("instances").cloned().unwrap_or_default();
        vec![
            format!("GET keycloaks.k8s.keycloak.org/{name} in {site}/{ns} (record spec.instances)"),
            format!("PATCH keycloaks.k8s.keycloak.org/{name} in {site}/{ns} (merge): {{\"spec\":{{\"instances\":{n}}}}}"),
        ]
    }
    fn postcondition(&self, _: &StepCtx, args: &Args) -> Option<String> {
        Some(match instances(args) {
            Ok(0) => "the StatefulSet has 0 replicas and no pod matches its selector (Ready is not trusted at 0)".into(),
            Ok(n) => format!("Ready, not rolling, status.instances == {n}, observedGeneration current"),
            Err(_) => "the deployment follows spec.instances".into(),
        })
    }
    fn satisfied(&self, args: &Args, o: &Json) -> bool {
        let Ok(n) = instances(args) else {
            return false;
        };
        if o["spec_instances"].as_i64() != Some(n) {
            return false;
        }
        if n == 0 {
            return o["statefulset_replicas"].as_i64() == Some(0) && o["pods"].as_i64() == Some(0);
        }
        o["ready"] == "true"
            && o["rolling_update"] != "true"
            && o["status_instances"].as_i64() == Some(n)
            && o["observed_generation_current"] == true
    }
    fn explain(&self, args: &Args, o: &Json) -> Option<String> {
        let n = instances(args).ok()?;
        let num = |k: &str| {
            o[k].as_i64()
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        };
        let mut parts = Vec::new();
        if o["spec_instances"].as_i64() != Some(n) {
            parts.push(format!("spec.instances is {}", num("spec_instances")));
        }
        if n == 0 {
            parts.push(format!(
                "the StatefulSet has {} replicas and {} pods",
                num("statefulset_replicas"),
                num("pods")
            ));
        } else {
            parts.push(format!("{} of {n} instances", num("status_instances")));
            if o["ready"] != "true" {
                parts.push(format!(
                    "Ready is {}",
                    o["ready"].as_str().unwrap_or("unknown")
                ));
            }
            if o["rolling_update"] == "true" {
                parts.push("a rolling update is going on".into());
            }
            if o["has_errors"] == "true" {
                parts.push("HasErrors is true".into());
            }
            if o["observed_generation_current"] != true {
                parts.push("the operator has not yet seen the change".into());
            }
        }
        Some(parts.join(", "))
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let (site, _) = site_config(ctx)?;
        let name = keycloak_name(ctx)?;
        let (client, ns) = kube_client(ctx).await?;
        let kc = api(client.clone(), &ns)
            .get(&name)
            .await
            .map_err(|e| kube_err(&site, &format!("GET keycloak `{ns}/{name}`"), e))?;
        let status = &kc.data["status"];
        let generation = kc.metadata.generation;
        let observed = status["observedGeneration"].as_i64().or_else(|| {
            status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["observedGeneration"].as_i64())
        });
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let replicas = match sts
            .get_opt(&name)
            .await
            .map_err(|e| kube_err(&site, &format!("GET statefulset `{ns}/{name}`"), e))?
        {
            Some(s) => s.status.map(|st| st.replicas).unwrap_or(0),
            None => 0,
        };
        let selector = status["selector"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("app=keycloak,app.kubernetes.io/instance={name}"));
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let pod_count = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_err(&site, &format!("list pods `{selector}`"), e))?
            .items
            .len();
        Ok(json!({
            "site": site,
            "spec_instances": kc.data["spec"]["instances"],
            "status_instances": status["instances"].as_i64().unwrap_or(0),
            "ready": condition(status, "Ready"),
            "rolling_update": condition(status, "RollingUpdate"),
            "has_errors": condition(status, "HasErrors"),
            "observed_generation_current": observed.is_some() && observed == generation,
            "statefulset_replicas": replicas,
            "pods": pod_count,
        }))
    }
    async fn prepare(&self, ctx: &StepCtx, args: &Args) -> Result<Outputs, StepError> {
        let (site, _) = site_config(ctx)?;
        let name = keycloak_name(ctx)?;
        let (client, ns) = kube_client(ctx).await?;
        let kc = api(client, &ns)
            .get(&name)
            .await
            .map_err(|e| kube_err(&site, &format!("GET keycloak `{ns}/{name}`"), e))?;
        let mut out = Outputs::new();
        let had = kc.data["spec"]["instances"].clone();
        out.insert("previous_instances".into(), had.clone());
        // What a stopped run leaves, and the command that puts it back (abort and
        // every halt print it from the journal).
        let sets = typed::<ScaleArgs>(self.name(), args)
            .map(|a| a.instances)
            .ok();
        let (_, cfg) = site_config(ctx)?;
        let k = cfg.kubernetes.as_ref();
        let context = k
            .and_then(|k| k.context.as_deref())
            .map(|c| format!(" --context {c}"))
            .unwrap_or_default();
        let kubeconfig = k
            .and_then(|k| k.kubeconfig.as_deref())
            .map(|p| {
                format!(
                    " --kubeconfig {}",
                    crate::clients::env_path(&ctx.env, p).display()
                )
            })
            .unwrap_or_default();
        out.insert(
            "restore".into(),
            json!({
                "key": format!("keycloak-instances@{site}"),
                "what": format!("{site}'s Keycloak instances"),
                "had": had,
                "sets": sets,
                "command": format!(
                    "kubectl{kubeconfig}{context} -n {ns} patch keycloaks.k8s.keycloak.org/{name} --type merge -p '{{\"spec\":{{\"instances\":{had}}}}}'"
                ),
            }),
        );
        Ok(out)
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let (site, _) = site_config(ctx)?;
        let n = typed::<ScaleArgs>(self.name(), args)?.instances;
        if n < 0 {
            return Err(StepError::permanent(format!(
                "argument `instances` must be a whole number >= 0, got {n}"
            )));
        }
        let name = keycloak_name(ctx)?;
        let (client, ns) = kube_client(ctx).await?;
        api(client, &ns)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"instances": n}})),
            )
            .await
            .map_err(|e| {
                kube_err(
                    &site,
                    &format!("PATCH keycloak `{ns}/{name}` instances={n}"),
                    e,
                )
            })?;
        Ok(Outputs::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(n: i64) -> Args {
        json!({ "instances": n }).as_object().cloned().unwrap()
    }

    #[test]
    fn a_scale_not_yet_done_says_what_is_missing() {
        let down = json!({"spec_instances": 0, "statefulset_replicas": 1, "pods": 2});
        assert!(!Scale.satisfied(&args(0), &down));
        assert_eq!(
            Scale.explain(&args(0), &down).unwrap(),
            "the StatefulSet has 1 replicas and 2 pods"
        );
        let up = json!({"spec_instances": 3, "status_instances": 2, "ready": "false",
                        "rolling_update": "false", "has_errors": "true",
                        "observed_generation_current": true});
        assert_eq!(
            Scale.explain(&args(3), &up).unwrap(),
            "2 of 3 instances, Ready is false, HasErrors is true"
        );
    }
}
