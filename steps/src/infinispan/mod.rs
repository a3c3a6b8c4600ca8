//! Infinispan cross-site operations over either transport (REST, or Batch CRs through
//! Kubernetes), and the actions built on them.

pub mod actions;
pub mod batch;
pub mod calls;
pub mod rest;
pub mod view;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::IspnTransport;
use engine::{StepCtx, StepError};
use reqwest::Method;
use serde_json::{json, Value as Json};

use crate::clients::site_config;

pub enum Transport {
    Rest(rest::Rest),
    Batch(batch::BatchTransport),
}

/// The name Infinispan knows a site of the environment file by: its
/// `infinispan.site_name`, else its key. Backup sites in paths, CLI commands and
/// push-status answers are Infinispan's names.
pub fn xsite_name(ctx: &StepCtx, key: &str) -> String {
    crate::config::sites(&ctx.env)
        .get(key)
        .and_then(|c| c.infinispan.as_ref())
        .and_then(|i| i.site_name.clone())
        .unwrap_or_else(|| key.to_string())
}

/// Whether an answer says a take-offline did not reach every node yet: Infinispan's
/// `XSiteAdminOperations.takeSiteOffline` reports `Could not take the site offline on
/// nodes:[...]` (inside `ISPN012047: ...` over REST). The guide's answer is to issue
/// take-offline again until the status is `offline`, so this is "not yet", not a
/// failure.
pub fn not_yet_offline(answer: &str) -> bool {
    answer.contains("Could not take the site offline on nodes")
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

/// Every JSON value a Batch's log prints, in order: compact on one line or
/// pretty-printed over several, with any other line (log noise) skipped.
fn json_values(log: &str) -> Vec<Json> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < log.len() {
        let rest = &log[pos..];
        let line = &rest[..rest.find('\n').map_or(rest.len(), |i| i + 1)];
        let start = pos + (line.len() - line.trim_start().len());
        if log[start..].starts_with(['{', '[']) {
            let mut values = serde_json::Deserializer::from_str(&log[start..]).into_iter::<Json>();
            if let Some(Ok(v)) = values.next() {
                out.push(v);
                pos = start + values.byte_offset();
                continue;
            }
        }
        pos += line.len();
    }
    out
}

/// The errors the CLI printed for failed REST calls (RestConnection at 14.0.35.Final:
/// `Error: BODY`, `Not Found: BODY`, `The supplied credentials are invalid ...`, `The
/// user is not allowed ...`), in order; ANSI colours (the CLI prints errors in red)
/// are dropped. The CLI goes on after them and exits 0 (ISPN-12888), so a Batch that
/// succeeded proves nothing until its log says so.
pub fn cli_errors(log: &str) -> Vec<String> {
    log.lines()
        .map(strip_ansi)
        .filter(|l| {
            [
                "Error: ",
                "Not Found: ",
                "The supplied credentials are invalid",
                "The user is not allowed",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// A Batch's CLI errors as a step error: a 404 will not change, anything else may.
fn batch_failure(site: &str, command: &str, errors: &[String]) -> StepError {
    let text = format!(
        "site `{site}`: the batch `{command}` ran, but the CLI printed: {}",
        errors.join("; ")
    );
    if errors.iter().all(|e| e.starts_with("Not Found: ")) {
        StepError::permanent(text)
    } else {
        StepError::transient(text)
    }
}

/// The keys `ls --pretty-print=JSON` printed: the lines between `[` and `]`, each a
/// quoted key with a trailing comma but the last (the keys are not escaped).
pub fn parse_ls_json(log: &str) -> Vec<String> {
    parse_ls_json_many(log).into_iter().flatten().collect()
}

/// Every list `ls --pretty-print=JSON` printed, in order.
pub fn parse_ls_json_many(log: &str) -> Vec<Vec<String>> {
    let mut lists = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in log.lines().map(strip_ansi) {
        match line.as_str() {
            "[" => current = Some(Vec::new()),
            "]" => {
                if let Some(l) = current.take() {
                    lists.push(l);
                }
            }
            l => {
                if let Some(keys) = current.as_mut() {
                    let l = l.strip_suffix(',').unwrap_or(l);
                    if let Some(k) = l.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                        keys.push(k.to_string());
                    }
                }
            }
        }
    }
    lists
}

/// The last JSON object printed in a Batch's log.
fn last_json(log: &str) -> Option<Json> {
    json_values(log).into_iter().rev().find(Json::is_object)
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

    /// The cache manager's information (`local_site`, `cluster_members`,
    /// `sites_view`, ...), read once, never retried: `None` over Batch.
    ///
    /// # Errors
    /// The call fails or does not answer JSON.
    pub async fn info(&self) -> Result<Option<Json>, StepError> {
        let Transport::Rest(r) = self else {
            return Ok(None);
        };
        // A read: retried on a transient failure (one lost packet never refuses a run).
        let a = r
            .call(
                Method::GET,
                &calls::Op::ContainerInfo.rest(&r.container()).1,
                Self::call_timeout(),
            )
            .await?;
        parse_json(&r.site, "cache manager information", &a.body).map(Some)
    }

    /// The caches on the site that back up to `remote` (Infinispan's name), from
    /// each cache's backup list; `None` over Batch, where caches cannot be listed.
    ///
    /// # Errors
    /// A call fails.
    pub async fn backed_up(&self, remote: &str) -> Result<Option<Vec<String>>, StepError> {
        let Transport::Rest(r) = self else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for c in self.caches(remote).await? {
            let a = r
                .call(
                    Method::GET,
                    &calls::Op::CacheBackups { cache: &c }.rest("").1,
                    Self::call_timeout(),
                )
                .await?;
            let v = parse_json(&r.site, "cache backups", &a.body)?;
            if v.get(remote).is_some() {
                out.push(c);
            }
        }
        Ok(Some(out))
    }

    /// Names of the caches on the site.
    ///
    /// # Errors
    /// The call fails.
    pub async fn caches(&self, backup: &str) -> Result<Vec<String>, StepError> {
        match self {
            Transport::Rest(r) => {
                let a = r
                    .call(
                        Method::GET,
                        &calls::Op::CacheNames.rest("").1,
                        Self::call_timeout(),
                    )
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
            Transport::Batch(b) => {
                let names: Vec<String> = batch_status(b, backup, None)
                    .await?
                    .caches
                    .keys()
                    .cloned()
                    .collect();
                if names.is_empty() {
                    // `site status --all-caches` prints the container's status, which
                    // names a cache only when it is mixed.
                    return Err(StepError::permanent(format!(
                        "site `{}`: over the Batch transport the caches cannot be listed: name them (`caches:`)",
                        b.site
                    )));
                }
                Ok(names)
            }
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
                        &calls::Op::ContainerStatus { backup }.rest(&r.container()).1,
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
                            &calls::Op::CacheStatus { cache: c, backup }.rest("").1,
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
                        &calls::Op::ContainerAction { backup, action }
                            .rest(&r.container())
                            .1,
                        Self::call_timeout(),
                    )
                    .await?;
                (
                    r.site.clone(),
                    map_of_strings(&parse_json(&r.site, action, &a.body)?),
                )
            }
            Transport::Batch(b) => {
                let command = calls::Op::ContainerAction { backup, action }
                    .cli()
                    .unwrap_or_default();
                let log = b.run(&command).await?;
                let errors = cli_errors(&log);
                if !errors.is_empty() {
                    return Err(batch_failure(&b.site, &command, &errors));
                }
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
            .filter(|(_, v)| v.as_str() != "ok" && !not_yet_offline(v))
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
                    &calls::Op::CacheAction {
                        cache,
                        backup,
                        action,
                    }
                    .rest("")
                    .1,
                    Self::call_timeout(),
                )
                .await?;
                Ok(())
            }
            Transport::Batch(b) => {
                let command = calls::Op::CacheAction {
                    cache,
                    backup,
                    action,
                }
                .cli()
                .unwrap_or_default();
                let log = b.run(&command).await?;
                let errors = cli_errors(&log);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(batch_failure(&b.site, &command, &errors))
                }
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
                        &calls::Op::PushStatus { cache }.rest("").1,
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
                let command = calls::Op::PushStatus { cache }.cli().unwrap_or_default();
                let log = b.run(&command).await?;
                let errors = cli_errors(&log);
                if !errors.is_empty() {
                    return Err(batch_failure(&b.site, &command, &errors));
                }
                // Keyed by cache, or the REST answer for this cache alone.
                Ok(last_json(&log)
                    .map(|v| match v.get(cache) {
                        Some(per_site) if per_site.is_object() => map_of_strings(per_site),
                        _ => map_of_strings(&v),
                    })
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
                    &calls::Op::ClearPushStatus { cache }.rest("").1,
                    Self::call_timeout(),
                )
                .await?;
                Ok(())
            }
            Transport::Batch(b) => {
                let command = calls::Op::ClearPushStatus { cache }
                    .cli()
                    .unwrap_or_default();
                let errors = cli_errors(&b.run(&command).await?);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(batch_failure(&b.site, &command, &errors))
                }
            }
        }
    }

    /// # Errors
    /// The call fails.
    pub async fn clear(&self, cache: &str) -> Result<(), StepError> {
        match self {
            Transport::Rest(r) => r
                .call_once(
                    Method::POST,
                    &calls::Op::Clear { cache }.rest("").1,
                    Self::call_timeout(),
                )
                .await
                .map(|_| ()),
            Transport::Batch(b) => {
                let command = calls::Op::Clear { cache }.cli().unwrap_or_default();
                let errors = cli_errors(&b.run(&command).await?);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(batch_failure(&b.site, &command, &errors))
                }
            }
        }
    }

    /// Up to `limit` keys of a cache (`GET /rest/v2/caches/C?action=keys&limit=N`, a
    /// JSON array; Infinispan's `CacheResourceV2.streamKeys`), each as its JSON text;
    /// `None` where the transport cannot list keys (Batch).
    ///
    /// # Errors
    /// The call fails or the answer is not a JSON array.
    pub async fn keys(&self, cache: &str, limit: usize) -> Result<Option<Vec<String>>, StepError> {
        match self {
            Transport::Rest(r) => {
                let a = r
                    .call(
                        Method::GET,
                        &calls::Op::Keys { cache, limit }.rest("").1,
                        Self::call_timeout(),
                    )
                    .await?;
                let v = parse_json(&r.site, "keys", &a.body)?;
                let Json::Array(items) = v else {
                    return Err(StepError::transient(format!(
                        "site `{}`: the keys of `{cache}` are not a JSON array",
                        r.site
                    )));
                };
                Ok(Some(
                    items
                        .into_iter()
                        .map(|k| match k {
                            Json::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                ))
            }
            Transport::Batch(b) => {
                // cli/commands/Ls.java with CacheResource.printChildren (NAMES) and
                // JsonPrettyPrinter: `[`, one `"key"` a line joined by `,`, `]`.
                let command = calls::Op::Keys { cache, limit }.cli().unwrap_or_default();
                let log = b.run(&command).await?;
                let errors = cli_errors(&log);
                if !errors.is_empty() {
                    return Err(batch_failure(&b.site, &command, &errors));
                }
                Ok(Some(parse_ls_json(&log)))
            }
        }
    }

    /// The keys of several caches, in their order (see [`Transport::keys`]): over
    /// Batch, one Batch runs every `ls`, so a round of reads is one Batch per site.
    ///
    /// # Errors
    /// A call fails, or the Batch printed fewer lists than it ran commands.
    pub async fn keys_all(
        &self,
        caches: &[String],
        limit: usize,
    ) -> Result<Vec<Option<Vec<String>>>, StepError> {
        match self {
            Transport::Rest(_) => {
                let mut out = Vec::new();
                for c in caches {
                    out.push(self.keys(c, limit).await?);
                }
                Ok(out)
            }
            Transport::Batch(b) => {
                if caches.is_empty() {
                    return Ok(Vec::new());
                }
                let script = caches
                    .iter()
                    .map(|c| {
                        calls::Op::Keys { cache: c, limit }
                            .cli()
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let log = b.run(&script).await?;
                let errors = cli_errors(&log);
                if !errors.is_empty() {
                    return Err(batch_failure(&b.site, &script.replace('\n', "; "), &errors));
                }
                let lists = parse_ls_json_many(&log);
                if lists.len() != caches.len() {
                    return Err(StepError::transient(format!(
                        "site `{}`: the keys batch printed {} lists for {} caches: {}",
                        b.site,
                        lists.len(),
                        caches.len(),
                        crate::text::excerpt(log.trim(), 300)
                    )));
                }
                Ok(lists.into_iter().map(Some).collect())
            }
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
                        &calls::Op::Size { cache }.rest("").1,
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
        None => calls::Op::ContainerStatus { backup }
            .cli()
            .unwrap_or_default(),
        Some(list) => list
            .iter()
            .map(|c| {
                calls::Op::CacheStatus { cache: c, backup }
                    .cli()
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let log = b.run(&script).await?;
    let errors = cli_errors(&log);
    if !errors.is_empty() {
        return Err(batch_failure(&b.site, &script.replace('\n', "; "), &errors));
    }
    let st = parse_batch_status(&log, caches);
    if st.caches.is_empty() && st.overall.is_empty() {
        return Err(StepError::transient(format!(
            "site `{}`: the status batch printed no status: {}",
            b.site,
            log.trim()
        )));
    }
    Ok(st)
}

/// The cross-site status in a Batch's log, whichever shape the CLI printed it in:
/// - per cache, per node: `{"sessions": {"node-0": "online", ...}, ...}`;
/// - the REST answer of one `site status --cache=C`, per node (`{"node-0": "online"}`),
///   one per command, in the order of `caches`;
/// - the container's answer: `{"status": "mixed", "online": [caches], "offline": [..]}`.
fn parse_batch_status(log: &str, caches: Option<&[String]>) -> XStatus {
    let mut st = XStatus::default();
    let mut container: Option<String> = None;
    let mut per_command = caches.unwrap_or_default().iter();
    let set = |st: &mut XStatus, cache: &str, nodes: BTreeMap<String, String>| {
        st.caches.insert(
            cache.to_string(),
            combine(nodes.values().map(String::as_str)),
        );
        st.nodes.insert(cache.to_string(), nodes);
    };
    for v in json_values(log) {
        let Some(obj) = v.as_object() else { continue };
        if let Some(overall) = obj.get("status").and_then(Json::as_str) {
            for state in ["online", "offline", "mixed"] {
                for c in obj
                    .get(state)
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(c) = c.as_str() {
                        st.caches.insert(c.to_string(), state.to_string());
                    }
                }
            }
            if overall != "mixed" {
                for c in caches.unwrap_or_default() {
                    st.caches.insert(c.clone(), overall.to_string());
                }
                // The container's `{ "status" : "offline" }` (the guide's output) names
                // no cache: the status is the container's.
                container = Some(overall.to_string());
            }
        } else if !obj.is_empty() && obj.values().all(Json::is_object) {
            for (c, nodes) in obj {
                set(&mut st, c, map_of_strings(nodes));
            }
        } else if let Some(cache) = per_command.next() {
            set(&mut st, cache, map_of_strings(&v));
        }
    }
    st.overall = match (&container, st.caches.is_empty()) {
        (Some(c), true) => c.clone(),
        _ => combine(st.caches.values().map(String::as_str)),
    };
    st
}

#[cfg(test)]
mod tests {
    use super::{cli_errors, combine, parse_batch_status, parse_ls_json};

    /// Transcribed from the guide's printed outputs (Keycloak 24 HA guide, Japanese
    /// edition, `shared/seeds/002_*.txt`, chapter 10 steps 3 and 4, chapter 11 step 5),
    /// which are the CLI's `Json.toPrettyString()`.
    #[test]
    fn the_guides_printed_outputs_are_read() {
        let take_offline = "{\n  \"offlineClientSessions\" : \"ok\",\n  \"authenticationSessions\" : \"ok\",\n  \"sessions\" : \"ok\",\n  \"clientSessions\" : \"ok\",\n  \"work\" : \"ok\",\n  \"offlineSessions\" : \"ok\",\n  \"loginFailures\" : \"ok\",\n  \"actionTokens\" : \"ok\"\n}\n";
        let m = super::map_of_strings(&super::last_json(take_offline).unwrap());
        assert_eq!(m.len(), 8);
        assert!(m.values().all(|v| v == "ok"));
        assert!(cli_errors(take_offline).is_empty());
        let status = "{\n  \"status\" : \"offline\"\n}\n";
        let st = parse_batch_status(status, None);
        assert_eq!(st.overall, "offline");
        assert!(
            st.caches.is_empty(),
            "the container's status names no cache"
        );
        let pushed = "{\n  \"site-b\" : \"OK\"\n}\n".repeat(2);
        let all = super::json_values(&pushed);
        assert_eq!(all.len(), 2);
        assert_eq!(super::map_of_strings(&all[1])["site-b"], "OK");
    }

    #[test]
    fn ls_json_is_read_as_jsonprettyprinter_writes_it() {
        assert_eq!(parse_ls_json("[\n\"a\",\n\"b c\"\n]\n"), ["a", "b c"]);
        assert_eq!(parse_ls_json("[\n\n]\n"), Vec::<String>::new());
        assert_eq!(
            super::parse_ls_json_many("[\n\"a\"\n]\n[\n\n]\n[\n\"b\",\n\"c\"\n]\n"),
            vec![
                vec!["a".to_string()],
                vec![],
                vec!["b".to_string(), "c".to_string()]
            ]
        );
    }

    #[test]
    fn cli_errors_are_found_whatever_the_colour() {
        let log = "{\n  \"status\" : \"online\"\n}\n\u{1b}[1;31mError: ISPN012047: Site operation on 'site-a' failed: 'x'\u{1b}[0m\nNot Found: Cache 'c' does not backup to site 'z'\n";
        assert_eq!(
            cli_errors(log),
            [
                "Error: ISPN012047: Site operation on 'site-a' failed: 'x'",
                "Not Found: Cache 'c' does not backup to site 'z'"
            ]
        );
    }

    #[test]
    fn batch_status_is_read_in_every_shape_the_cli_prints() {
        let caches = ["sessions".to_string(), "work".to_string()];
        // one pretty-printed REST answer per `site status --cache=C`, with noise around
        let log = "Picked up JAVA_TOOL_OPTIONS: -Xmx64m\n{\n  \"n-0\" : \"offline\",\n  \"n-1\" : \"online\"\n}\n{\n  \"n-0\" : \"offline\",\n  \"n-1\" : \"offline\"\n}\n";
        let st = parse_batch_status(log, Some(&caches));
        assert_eq!(st.caches["sessions"], "mixed");
        assert_eq!(st.nodes["sessions"]["n-1"], "online");
        assert_eq!(st.caches["work"], "offline");
        assert_eq!(st.overall, "mixed");
        // per cache, per node, compact
        let log = r#"{"sessions":{"n-0":"online"},"work":{"n-0":"online"}}"#;
        let st = parse_batch_status(log, None);
        assert_eq!(st.overall, "online");
        assert_eq!(st.caches.len(), 2);
        // the container's answer
        let log = r#"{"status":"mixed","online":["sessions"],"offline":["work"]}"#;
        let st = parse_batch_status(log, None);
        assert_eq!(st.caches["sessions"], "online");
        assert_eq!(st.caches["work"], "offline");
        let st = parse_batch_status(r#"{"status":"offline"}"#, Some(&caches));
        assert_eq!(st.caches["work"], "offline");
        assert!(parse_batch_status("no json here\n", Some(&caches))
            .caches
            .is_empty());
    }

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
