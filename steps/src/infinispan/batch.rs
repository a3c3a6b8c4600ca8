//! The Batch CR transport (operations.md §4, guide chapter 16): for an Infinispan
//! reachable only inside its cluster. Each call creates a new Batch (the spec is
//! immutable), waits for `Succeeded` *or* `Failed` (a wait on `Succeeded` alone hangs
//! on failure), with a timeout that names a batch stuck in `Initializing`, and reads
//! the output from the Job's pod log. `Succeeded` only means the CLI ran: the actions
//! confirm every effect with a separate status read.

use std::time::Duration;

use engine::{StepCtx, StepError};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::clients::kube_client;

pub struct BatchTransport {
    pub site: String,
    pub cluster: String,
    pub namespace: String,
    /// The run the Batches belong to (a label on each).
    run_id: String,
    client: kube::Client,
    /// How long one batch may take before it is reported stuck.
    pub timeout: Duration,
}

/// Labels on every Batch this tool creates: `kubectl get batches -l
/// app.kubernetes.io/managed-by=runbook` finds the ones left behind.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const RUN_LABEL: &str = "runbook/run";

/// A label value (63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("infinispan.org", "v2alpha1", "Batch"),
        "batches",
    )
}

impl BatchTransport {
    /// # Errors
    /// No Kubernetes access for the site.
    pub async fn new(
        ctx: &StepCtx,
        site: &str,
        cluster: Option<String>,
    ) -> Result<BatchTransport, StepError> {
        let (client, site_namespace) = kube_client(ctx).await?;
        // Chapter 16 creates Batches in the Infinispan namespace, which need not be
        // Keycloak's.
        let namespace = crate::clients::site_config(ctx)
            .ok()
            .and_then(|(_, c)| c.infinispan.and_then(|i| i.namespace))
            .unwrap_or(site_namespace);
        Ok(BatchTransport {
            site: site.to_string(),
            cluster: cluster.unwrap_or_else(|| "infinispan".into()),
            namespace,
            run_id: ctx.run_id.clone(),
            client,
            // Inside the step's own budget, so that a stuck batch is named, not just timed out.
            timeout: ctx.timeout.mul_f64(0.8).min(Duration::from_secs(600)),
        })
    }

    /// Run CLI lines in a new Batch; the Job's log on success.
    ///
    /// # Errors
    /// The batch failed (with its reason), stayed in a phase past the timeout, or the
    /// API refused it.
    pub async fn run(&self, script: &str) -> Result<String, StepError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource());
        let mut obj = DynamicObject::new("", &resource());
        obj.metadata.name = None;
        obj.metadata.generate_name = Some("runbook-".into());
        obj.metadata.labels = Some(
            [
                (MANAGED_BY.to_string(), "runbook".to_string()),
                (RUN_LABEL.to_string(), label_value(&self.run_id)),
            ]
            .into(),
        );
        obj.data = json!({"spec": {"cluster": self.cluster, "config": script}});
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| {
                StepError::transient(format!(
                    "site `{}`: cannot create a Batch in `{}`: {e}",
                    self.site, self.namespace
                ))
            })?;
        let name = created.metadata.name.clone().unwrap_or_default();
        // Polled, not watched (no watch machinery, kube's `runtime` feature, in the
        // build): soon at first, as a Batch often finishes in well under a second, then
        // less often, up to one GET a second.
        let done = async {
            let mut pause = BATCH_POLL_FIRST;
            loop {
                match api.get_opt(&name).await {
                    Ok(Some(o)) if finished_phase(&o) => return Ok(Some(o)),
                    Ok(None) => return Ok(None),
                    Ok(Some(_)) => {}
                    Err(e) => return Err(e),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(BATCH_POLL_MAX);
            }
        };
        let finished = match tokio::time::timeout(self.timeout, done).await {
            Ok(Ok(Some(o))) => o,
            Ok(Ok(None)) => {
                return Err(StepError::transient(format!(
                    "site `{}`: Batch `{name}` disappeared",
                    self.site
                )))
            }
            Ok(Err(e)) => {
                return Err(StepError::transient(format!(
                    "site `{}`: reading Batch `{name}`: {e}",
                    self.site
                )))
            }
            Err(_) => {
                let now = api.get(&name).await.ok();
                let phase = now
                    .as_ref()
                    .and_then(|o| o.data["status"]["phase"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let reason = now
                    .as_ref()
                    .and_then(|o| o.data["status"]["reason"].as_str().map(str::to_string));
                return Err(StepError::transient(format!(
                    "site `{}`: Batch `{name}` is still {} after {}{}; check the Infinispan CR `{}` and the operator",
                    self.site,
                    if phase.is_empty() { "pending".into() } else { format!("`{phase}`") },
                    humantime::format_duration(self.timeout),
                    reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                    self.cluster
                )));
            }
        };
        let log = self.job_log(&name).await.unwrap_or_default();
        if finished.data["status"]["phase"] == "Failed" {
            return Err(StepError::permanent(format!(
                "site `{}`: Batch `{name}` failed: {}{}",
                self.site,
                finished.data["status"]["reason"]
                    .as_str()
                    .unwrap_or("no reason given"),
                if log.trim().is_empty() {
                    String::new()
                } else {
                    format!("; log: {}", log.trim())
                }
            )));
        }
        // Done with it: a finished Batch only clutters the namespace (every status read
        // makes one). Failed and stuck ones stay, for a person to look at.
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(site = %self.site, batch = %name, "cannot delete a finished Batch: {e}");
        }
        Ok(log)
    }

    async fn job_log(&self, batch: &str) -> Result<String, StepError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={batch}")))
            .await
            .map_err(|e| {
                StepError::transient(format!(
                    "site `{}`: listing the pods of Job `{batch}`: {e}",
                    self.site
                ))
            })?;
        let mut out = String::new();
        for p in list.items {
            if let Some(n) = p.metadata.name {
                if let Ok(log) = pods.logs(&n, &LogParams::default()).await {
                    out.push_str(&log);
                }
            }
        }
        Ok(out)
    }
}

/// The first pause between reads of a running Batch, and the longest.
const BATCH_POLL_FIRST: Duration = Duration::from_millis(25);
const BATCH_POLL_MAX: Duration = Duration::from_secs(1);

/// A Batch's phase once the operator is done with it.
fn finished_phase(o: &DynamicObject) -> bool {
    matches!(
        o.data["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}
