//! Infinispan cross-site operations over either transport (REST, or Batch CRs through
//! Kubernetes), and the actions built on them.

pub mod actions;
pub mod batch;
pub mod rest;

use std::collections::BTreeMap;
use std::time::Duration;

use engine::env::IspnTransport;
use engine::{StepCtx, StepError};
use reqwest::Method;
use serde_json::{json, Value as Json};

use crate::clients::site_config;

pub enum Transport {
    Rest(rest::Rest),
    Batch(batch::BatchTransport),
}

/// Cross-site status of one site's backup to another: overall, per cache, per node.
#[derive(Debug, Clone, Default)]
pub struct XStatus {
    pub overall: String,
    pub caches: BTreeMap<String, String>,
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
}

impl XStatus {
    pub fn to_json(&self) -> Json {
        let mut v = json!({"status": self.overall, "caches": self.caches});
        if !self.nodes.is_empty() {
            v["nodes"] = json!(self.nodes);
        }
        v
    }
}

/// `online` / `offline` when all agree, else `mixed` (`unknown` stays `unknown`).
/// `mixed`, `failed` and `unknown` are never online or offline.
pub fn combine<'a>(statuses: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = statuses.into_iter().collect();
    if all.is_empty() {
        return "unknown".into();
    }
    if all.iter().all(|s| *s == "online") {
        "online".into()
    } else if all.iter().all(|s| *s == "offline") {
        "offline".into()
    } else if all.iter().all(|s| *s == "unknown") {
        "unknown".into()
    } else {
        "mixed".into()
    }
}

fn parse_json(site: &str, what: &str, text: &str) -> Result<Json, StepError> {
    serde_json::from_str(text.trim()).map_err(|e| {
        StepError::transient(format!(
            "site `{site}`: {what}: the answer is not JSON ({e}): {}",
            text.trim()
        ))
    })
}

fn map_of_strings(v: &Json) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The last JSON object printed in a Batch's log.
fn last_json(log: &str) -> Option<Json> {
    log.lines().rev().find_map(|l| {
        serde_json::from_str::<Json>(l.trim())
            .ok()
            .filter(Json::is_object)
    })
}

impl Transport {
    /// The transport the environment file chooses for the step's site.
    ///
    /// # Errors
    /// No `infinispan` section, or one that cannot be used.
    pub async fn for_step(ctx: &StepCtx) -> Result<Transport, StepError> {
        let (site, cfg) = site_config(ctx)?;
        let ispn = cfg.infinispan.ok_or_else(|| {
            StepError::permanent(format!(
                "site `{site}` has no `infinispan` in the environment file"
            ))
        })?;
        Ok(match ispn.transport {
            IspnTransport::Rest => Transport::Rest(rest::Rest::new(ctx, &site, &ispn).await?),
            IspnTransport::Batch => Transport::Batch(
                batch::BatchTransport::new(ctx, &site, ispn.cluster.clone()).await?,
            ),
        })
    }

    pub fn site(&self) -> &str {
        match self {
            Transport::Rest(r) => &r.site,
            Transport::Batch(b) => &b.site,
        }
    }

    fn call_timeout() -> Duration {
        Duration::from_secs(60)
    }

    /// Names of the caches on the site.
    ///
    /// # Errors
    /// The call fails.
    pub async fn caches(&self, backup: &str) -> Result<Vec<String>, StepError> {
        match self {
            Transport::Rest(r) => {
                let a = r
                    .call(Method::GET, "/rest/v2/caches", Self::call_timeout())
                    .await?;
                let v = parse_json(&r.site, "list of caches", &a.body)?;
                let mut names: Vec<String> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                // Internal caches are not backed up.
                names.retain(|n| !n.starts_with("___"));
                Ok(names)
            }
            Transport::Batch(b) => Ok(batch_status(b, backup, None)
                .await?
                .caches
                .keys()
                .cloned()
                .collect()),
        }
    }

    /// Cross-site status of the site's backup to `backup`, for all caches or some.
    ///
    /// # Errors
    /// The call fails or answers something that is not a status.
    pub async fn status(
        &self,
        backup: &str,
        caches: Option<&[String]>,
    ) -> Result<XStatus, StepError> {
        match (self, caches) {
            (Transport::Rest(r), None) => {
                let a = r
                    .call(
                        Method::GET,
                        &format!("{}/x-site/backups/{backup}", r.container()),
                        Self::call_timeout(),
                    )
                    .await?;
                let v = parse_json(&r.site, "x-site status", &a.body)?;
                let overall = v["status"].as_str().unwrap_or("unknown").to_string();
                let mut st = XStatus {
                    overall: overall.clone(),
                    ..XStatus::default()
                };
                if overall == "mixed" {
                    for key in ["online", "offline", "mixed"] {
                        for c in v[key]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str())
                        {
                            st.caches.insert(c.to_string(), key.to_string());
                        }
                    }
                } else {
                    for c in self.caches(backup).await? {
                        st.caches.insert(c, overall.clone());
                    }
                }
                Ok(st)
            }
            (Transport::Rest(r), Some(list)) => {
                let mut st = XStatus::default();
                for c in list {
                    let a = r
                        .call(
                            Method::GET,
                            &format!("/rest/v2/caches/{c}/x-site/backups/{backup}"),
                            Self::call_timeout(),
                        )
                        .await?;
                    let nodes =
                        map_of_strings(&parse_json(&r.site, "cache x-site status", &a.body)?);
                    st.caches
                        .insert(c.clone(), combine(nodes.values().map(String::as_str)));
                    st.nodes.insert(c.clone(), nodes);
                }
                st.overall = combine(st.caches.values().map(String::as_str));
                Ok(st)
            }
            (Transport::Batch(b), _) => batch_status(b, backup, caches).await,
        }
    }

    /// A container-level action; every cache's value in the answer is checked.
    ///
    /// # Errors
    /// The call fails, or names the caches whose value is an error.
    pub async fn container_action(
        &self,
        backup: &str,
        action: &str,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let (site, results) = match self {
            Transport::Rest(r) => {
                let a = r
                    .call(
                        Method::POST,
                        &format!("{}/x-site/backups/{backup}?action={action}", r.container()),
                        Self::call_timeout(),
                    )
                    .await?;
                (
                    r.site.clone(),
                    map_of_strings(&parse_json(&r.site, action, &a.body)?),
                )
            }
            Transport::Batch(b) => {
                let log = b
                    .run(&format!(
                        "site {} --all-caches --site={backup}",
                        cli_verb(action)
                    ))
                    .await?;
                (
                    b.site.clone(),
                    last_json(&log)
                        .map(|v| map_of_strings(&v))
                        .unwrap_or_default(),
                )
            }
        };
        let failed: Vec<String> = results
            .iter()
            .filter(|(_, v)| v.as_str() != "ok")
            .map(|(c, v)| format!("`{c}`: {v}"))
            .collect();
        if !failed.is_empty() {
            return Err(StepError::transient(format!(
                "site `{site}`: {action} to `{backup}` failed for {} (the server answered 200 with these per-cache errors)",
                failed.join("; ")
            )));
        }
        Ok(results)
    }

    /// A per-cache action.
    ///
    /// # Errors
    /// The call fails (404: no backup to that site; 500: the operation failed).
    pub async fn cache_action(
        &self,
        cache: &str,
        backup: &str,
        action: &str,
    ) -> Result<(), StepError> {
        match self {
            Transport::Rest(r) => {
                r.call(
                    Method::POST,
                    &format!("/rest/v2/caches/{cache}/x-site/backups/{backup}?action={action}"),
                    Self::call_timeout(),
                )
                .await?;
                Ok(())
            }
            Transport::Batch(b) => {
                b.run(&format!(
                    "site {} --cache={cache} --site={backup}",
                    cli_verb(action)
                ))
                .await?;
                Ok(())
            }
        }
    }

    /// Push-state status of a cache, per backup site.
    ///
    /// # Errors
    /// The call fails.
    pub async fn push_status(&self, cache: &str) -> Result<BTreeMap<String, String>, StepError> {
        match self {
            Transport::Rest(r) => {
                let a = r
                    .call(
                        Method::GET,
                        &format!("/rest/v2/caches/{cache}/x-site/backups?action=push-state-status"),
                        Self::call_timeout(),
                    )
                    .await?;
                Ok(map_of_strings(&parse_json(
                    &r.site,
                    "push-state-status",
                    &a.body,
                )?))
            }
            Transport::Batch(b) => {
                let log = b
                    .run(&format!("site push-site-status --cache={cache}"))
                    .await?;
                Ok(last_json(&log)
                    .map(|v| map_of_strings(&v[cache]))
                    .unwrap_or_default())
            }
        }
    }

    /// # Errors
    /// The call fails.
    pub async fn clear_push_status(&self, cache: &str) -> Result<(), StepError> {
        match self {
            Transport::Rest(r) => {
                r.call(
                    Method::POST,
                    &format!("/rest/v2/caches/{cache}/x-site/local?action=clear-push-state-status"),
                    Self::call_timeout(),
                )
                .await?;
                Ok(())
            }
            Transport::Batch(b) => b
                .run(&format!("site clear-push-site-status --cache={cache}"))
                .await
                .map(|_| ()),
        }
    }

    /// # Errors
    /// The call fails.
    pub async fn clear(&self, cache: &str) -> Result<(), StepError> {
        match self {
            Transport::Rest(r) => r
                .call(
                    Method::POST,
                    &format!("/rest/v2/caches/{cache}?action=clear"),
                    Self::call_timeout(),
                )
                .await
                .map(|_| ()),
            Transport::Batch(b) => b.run(&format!("clearcache {cache}")).await.map(|_| ()),
        }
    }

    /// Number of entries; `None` where the transport cannot tell (Batch).
    ///
    /// # Errors
    /// The call fails.
    pub async fn size(&self, cache: &str) -> Result<Option<u64>, StepError> {
        match self {
            Transport::Rest(r) => {
                let a = r
                    .call(
                        Method::GET,
                        &format!("/rest/v2/caches/{cache}?action=size"),
                        Self::call_timeout(),
                    )
                    .await?;
                Ok(a.body.trim().parse::<u64>().ok())
            }
            Transport::Batch(_) => Ok(None),
        }
    }
}

async fn batch_status(
    b: &batch::BatchTransport,
    backup: &str,
    caches: Option<&[String]>,
) -> Result<XStatus, StepError> {
    let script = match caches {
        None => format!("site status --all-caches --site={backup}"),
        Some(list) => list
            .iter()
            .map(|c| format!("site status --cache={c} --site={backup}"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let log = b.run(&script).await?;
    let mut st = XStatus::default();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Json>(line.trim()) else {
            continue;
        };
        for (c, nodes) in v.as_object().into_iter().flatten() {
            let nodes = map_of_strings(nodes);
            st.caches
                .insert(c.clone(), combine(nodes.values().map(String::as_str)));
            st.nodes.insert(c.clone(), nodes);
        }
    }
    if st.caches.is_empty() {
        return Err(StepError::transient(format!(
            "site `{}`: the status batch printed no status: {}",
            b.site,
            log.trim()
        )));
    }
    st.overall = combine(st.caches.values().map(String::as_str));
    Ok(st)
}

/// The CLI verb for a REST action name.
fn cli_verb(action: &str) -> &str {
    match action {
        "start-push-state" => "push-site-state",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::combine;

    #[test]
    fn mixed_and_unknown_are_never_online_or_offline() {
        assert_eq!(combine(["online", "online"]), "online");
        assert_eq!(combine(["offline", "offline"]), "offline");
        assert_eq!(combine(["offline", "online"]), "mixed");
        assert_eq!(combine(["offline", "failed"]), "mixed");
        assert_eq!(combine(["unknown"]), "unknown");
        assert_eq!(combine(["offline", "unknown"]), "mixed");
        assert_eq!(combine(Vec::<&str>::new()), "unknown");
    }
}
