//! Infinispan `Batch` CRs (infinispan.org/v2alpha1) as the operator runs them: phases
//! `Initializing` → `Initialized` → `Running` → `Succeeded` | `Failed`, the CLI
//! commands of `spec.config` executed against the site's simulated Infinispan, and the
//! output in the Job's log. Like the real CLI, a per-cache failure inside a container
//! answer is printed but does not fail the batch: `Succeeded` means "ran".

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::world::World;

/// How long each phase lasts in production.
pub const PHASE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Batch {
    pub name: String,
    pub uid: String,
    /// `metadata.labels` as created.
    pub labels: serde_json::Map<String, Value>,
    pub cluster: String,
    pub config: Option<String>,
    pub config_map: Option<String>,
    pub created_at: Instant,
    pub created_ms: u64,
    pub phase: String,
    pub reason: Option<String>,
    pub log: String,
    pub done: bool,
}

impl Batch {
    /// The phase by now, running the commands when the batch reaches its end.
    pub fn advance(
        &mut self,
        w: &mut World,
        site: &str,
        config_maps: &std::collections::BTreeMap<String, String>,
        now: Instant,
    ) {
        if self.done {
            return;
        }
        let step = w.scaled(PHASE).max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.created_at);
        if w.batch_stuck() || self.cluster != "infinispan" {
            // The operator waits while the Infinispan CR it names is not there/well formed.
            self.phase = "Initializing".into();
            if self.cluster != "infinispan" {
                self.reason = Some(format!("Infinispan cluster `{}` not found", self.cluster));
            }
            return;
        }
        self.phase = match elapsed.as_nanos() / step.as_nanos() {
            0 => "Initializing",
            1 => "Initialized",
            2 => "Running",
            _ => "",
        }
        .to_string();
        if !self.phase.is_empty() {
            return;
        }
        let script = match (&self.config, &self.config_map) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(cm)) => config_maps.get(cm).cloned(),
            _ => None,
        };
        self.done = true;
        let Some(script) = script else {
            self.phase = "Failed".into();
            self.reason = Some(format!(
                "ConfigMap `{}` has no key `batch`",
                self.config_map.clone().unwrap_or_default()
            ));
            return;
        };
        match run_script(w, site, &script, now) {
            Ok(log) => {
                self.phase = "Succeeded".into();
                self.log = log;
            }
            Err((log, reason)) => {
                self.phase = "Failed".into();
                self.log = log;
                self.reason = Some(reason);
            }
        }
    }

    pub fn object(&self, ns: &str) -> Value {
        let mut spec = json!({"cluster": self.cluster});
        if let Some(c) = &self.config {
            spec["config"] = json!(c);
        }
        if let Some(c) = &self.config_map {
            spec["configMap"] = json!(c);
        }
        let mut status = json!({"phase": self.phase, "clusterUID": "lab-infinispan"});
        if let Some(r) = &self.reason {
            status["reason"] = json!(r);
        }
        json!({
            "apiVersion": "infinispan.org/v2alpha1",
            "kind": "Batch",
            "metadata": {"name": self.name, "namespace": ns, "uid": self.uid, "generation": 1,
                         "labels": self.labels,
                         "creationTimestamp": crate::kube::timestamp(self.created_ms)},
            "spec": spec,
            "status": status,
        })
    }
}

fn flag<'a>(args: &'a [&'a str], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")))
}

/// Run the CLI lines; Ok(log) or Err((log, reason)) for a command the CLI rejects.
fn run_script(
    w: &mut World,
    site: &str,
    script: &str,
    now: Instant,
) -> Result<String, (String, String)> {
    let mut log = String::new();
    if w.site_down(site) {
        return Err((
            log,
            format!("ISPN004028: connection to the {site} cluster refused"),
        ));
    }
    for raw in script.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let out = match words.as_slice() {
            ["site", verb, rest @ ..] => site_command(w, site, verb, rest, now),
            ["clearcache", cache] => w
                .clear(site, cache)
                .map(|_| String::new())
                .map_err(|e| format!("{e:?}")),
            _ => Err(format!("unknown command `{line}`")),
        };
        match out {
            Ok(text) => {
                if !text.is_empty() {
                    log.push_str(&text);
                    log.push('\n');
                }
            }
            Err(e) => {
                log.push_str(&format!("{e}\n"));
                return Err((log, format!("command `{line}` failed: {e}")));
            }
        }
    }
    Ok(log)
}

/// A per-cache answer as the CLI prints it: a single cache's own answer pretty-printed,
/// or every cache's keyed by name on one line.
fn one_or_all(all: bool, per_cache: serde_json::Map<String, Value>) -> String {
    match per_cache.values().next() {
        Some(only) if !all && per_cache.len() == 1 => {
            serde_json::to_string_pretty(only).unwrap_or_default()
        }
        _ => Value::Object(per_cache).to_string(),
    }
}

fn site_command(
    w: &mut World,
    site: &str,
    verb: &str,
    rest: &[&str],
    now: Instant,
) -> Result<String, String> {
    let all = rest.contains(&"--all-caches");
    let cache = flag(rest, "cache");
    let remote = flag(rest, "site");
    let caches: Vec<String> = match (all, cache) {
        (true, _) => w.cache_names(site).map_err(|e| format!("{e:?}"))?,
        (false, Some(c)) => vec![c.to_string()],
        (false, None) if verb == "status" && remote.is_none() => {
            w.cache_names(site).map_err(|e| format!("{e:?}"))?
        }
        (false, None) => return Err("give --all-caches or --cache=NAME".into()),
    };
    let need_remote = || {
        remote
            .map(str::to_string)
            .ok_or_else(|| "give --site=NAME".to_string())
    };
    match verb {
        "take-offline" | "bring-online" | "push-site-state" | "cancel-push-state" => {
            let r = need_remote()?;
            let mut out = serde_json::Map::new();
            for c in &caches {
                let result = if w.cache_fails(c) {
                    Err(format!(
                        "ISPN012047: Site operation on '{r}' failed for cache '{c}'"
                    ))
                } else {
                    match verb {
                        "take-offline" => w.take_offline(site, c, &r),
                        "bring-online" => w.bring_online(site, c, &r),
                        "push-site-state" => w.start_push(site, c, &r, now),
                        _ => w.cancel_push(site, c, &r),
                    }
                    .map_err(|e| format!("{e:?}"))
                };
                out.insert(
                    c.clone(),
                    json!(result.err().unwrap_or_else(|| "ok".into())),
                );
            }
            // The CLI prints per-cache results and exits 0 even when one failed.
            Ok(if all {
                Value::Object(out).to_string()
            } else {
                String::new()
            })
        }
        // For one cache the CLI prints the server's REST answer as it came, pretty-printed
        // over several lines; for all caches, one line keyed by cache.
        "status" => {
            let r = need_remote()?;
            let mut out = serde_json::Map::new();
            for c in &caches {
                let nodes = w.cache_status(site, c, &r).map_err(|e| format!("{e:?}"))?;
                out.insert(c.clone(), json!(nodes));
            }
            Ok(one_or_all(all, out))
        }
        "push-site-status" => {
            let mut out = serde_json::Map::new();
            for c in &caches {
                out.insert(
                    c.clone(),
                    json!(w.push_status(site, c).map_err(|e| format!("{e:?}"))?),
                );
            }
            Ok(one_or_all(all, out))
        }
        "clear-push-site-status" => {
            for c in &caches {
                w.clear_push_status(site, c).map_err(|e| format!("{e:?}"))?;
            }
            Ok(String::new())
        }
        other => Err(format!("unknown site command `{other}`")),
    }
}
