//! `infinispan.cross-site-view`: whether a site's Data Grid has joined the cross-site
//! view, read from its Infinispan CR's status conditions, as the guide's
//! `oc wait --for condition=CrossSiteViewFormed infinispans.infinispan.org/infinispan`
//! does (chapters 6.4 and 12).
//!
//! Facts from the Infinispan operator's sources (api/v1/infinispan_types.go and the
//! cluster-view reconciliation): the CR is `infinispan.org/v1`, kind `Infinispan`,
//! plural `infinispans`; `status.conditions` holds `{type, status, message}` with
//! `status` one of `True`, `False`, `Unknown`. `CrossSiteViewFormed` is `False` with
//! the message `Site 'NAME' not ready` while a remote site is missing from the view,
//! and is removed while the pods are not ready; `WellFormed` says whether the local
//! cluster formed.

use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value as Json};

use crate::clients::{kube_client, site_config};

/// The named condition's status (`True`, `False`, `Unknown`) and message.
pub fn condition(status: &Json, kind: &str) -> Option<(String, String)> {
    status["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == kind).then(|| {
            (
                c["status"].as_str().unwrap_or("Unknown").to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
}

/// Judge a CR's status: `(formed, in words)`.
pub fn judge(site: &str, name: &str, status: &Json) -> (bool, String) {
    let view = condition(status, "CrossSiteViewFormed");
    let well = condition(status, "WellFormed");
    let is_true = |c: &Option<(String, String)>| {
        c.as_ref()
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("true"))
    };
    let formed = is_true(&view) && is_true(&well);
    let describe = |kind: &str, c: &Option<(String, String)>| match c {
        Some((s, m)) if m.is_empty() => format!("{kind}={s}"),
        Some((s, m)) => format!("{kind}={s} ({m})"),
        None => format!("{kind} not reported"),
    };
    (
        formed,
        format!(
            "{site}'s Infinispan `{name}`: {}, {}",
            describe("CrossSiteViewFormed", &view),
            describe("WellFormed", &well)
        ),
    )
}

#[derive(Debug)]
pub struct CrossSiteView;

fn cluster_name(ctx: &StepCtx) -> Result<(String, String), StepError> {
    let (site, cfg) = site_config(ctx)?;
    let name = cfg
        .infinispan
        .and_then(|i| i.cluster)
        .unwrap_or_else(|| "infinispan".to_string());
    Ok((site, name))
}

#[async_trait]
impl Action for CrossSiteView {
    fn name(&self) -> &'static str {
        "infinispan.cross-site-view"
    }
    fn summary(&self) -> &'static str {
        "read whether the site's Data Grid joined the cross-site view (Infinispan CR conditions CrossSiteViewFormed and WellFormed)"
    }
    fn args(&self) -> &'static [ArgSpec] {
        &[]
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&["formed", "summary", "conditions"])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        let (site, name) = cluster_name(ctx).unwrap_or_else(|e| ("?".into(), e.message));
        vec![format!(
            "Kubernetes ({site}): GET infinispans.infinispan.org/{name} (status.conditions CrossSiteViewFormed, WellFormed)"
        )]
    }
    async fn probe(&self, ctx: &StepCtx, _: &Args) -> Result<Json, StepError> {
        let (site, name) = cluster_name(ctx)?;
        let (client, site_ns) = kube_client(ctx).await?;
        let ns = crate::clients::site_config(ctx)
            .ok()
            .and_then(|(_, c)| c.infinispan.and_then(|i| i.namespace))
            .unwrap_or(site_ns);
        let gvk = GroupVersionKind::gvk("infinispan.org", "v1", "Infinispan");
        let api: Api<DynamicObject> = Api::namespaced_with(
            client,
            &ns,
            &ApiResource::from_gvk_with_plural(&gvk, "infinispans"),
        );
        let obj = api.get(&name).await.map_err(|e| {
            let msg = format!("site `{site}`: GET infinispans.infinispan.org `{ns}/{name}`: {e}");
            match &e {
                kube::Error::Api(s) if [401, 403, 404].contains(&s.code) => {
                    StepError::permanent(msg)
                }
                _ => StepError::transient(msg),
            }
        })?;
        let status = obj.data.get("status").cloned().unwrap_or(Json::Null);
        let (formed, summary) = judge(&site, &name, &status);
        Ok(json!({
            "formed": formed,
            "summary": summary,
            "conditions": status.get("conditions").cloned().unwrap_or(json!([])),
        }))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conditions_must_be_true_whatever_their_case() {
        let ok = json!({"conditions": [
            {"type": "WellFormed", "status": "True"},
            {"type": "CrossSiteViewFormed", "status": "True", "message": "Cross-Site view: site-a,site-b"}]});
        assert!(judge("site-a", "infinispan", &ok).0);
        let not = json!({"conditions": [
            {"type": "WellFormed", "status": "True"},
            {"type": "CrossSiteViewFormed", "status": "False", "message": "Site 'site-b' not ready"}]});
        let (formed, text) = judge("site-a", "infinispan", &not);
        assert!(!formed);
        assert!(text.contains("Site 'site-b' not ready"), "{text}");
        let missing = json!({"conditions": [{"type": "WellFormed", "status": "Unknown"}]});
        assert!(!judge("site-a", "infinispan", &missing).0);
    }
}
