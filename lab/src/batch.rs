//! Infinispan `Batch` CRs (infinispan.org/v2alpha1) as the operator runs them: phases
//! `Initializing` → `Initialized` → `Running` → `Succeeded` | `Failed`, the CLI
//! commands of `spec.config` executed against the site's simulated Infinispan, and the
//! output in the Job's log. Like the real CLI, a per-cache failure inside a container
//! answer is printed but does not fail the batch: `Succeeded` means "ran".

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::world::{IspnError, World};

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
                         "creationTimestamp": crate::meta::timestamp(self.created_ms)},
            "spec": spec,
            "status": status,
        })
    }
}

/// Run the CLI lines; Ok(log) or Err((log, reason)) for a line the CLI cannot run.
///
/// As the real CLI in batch mode (cli/commands/Run.java, RestCliCommand.java at
/// 14.0.35.Final): each line is executed in turn; a command whose REST call fails
/// prints the error (`Error: BODY`, `Not Found: BODY`) and the batch goes on, and the
/// CLI exits 0 (ISPN-12888: `Succeeded` means "ran", not "worked"). A line that is no
/// command stops the batch and fails it.
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
        w.cli_commands
            .entry(site.to_string())
            .or_default()
            .push(line.to_string());
        let out = match words.as_slice() {
            ["site", verb, rest @ ..] => site_command(w, site, verb, rest, now),
            ["clearcache", cache] => Ok(print(w.clear(site, cache).map(|_| None))),
            ["ls", path, opts @ ..] => ls(w, site, path, opts),
            _ => Err(format!("Command not found: {line}")),
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
                return Err((log, format!("the batch stopped at `{line}`: {e}")));
            }
        }
    }
    Ok(log)
}

/// Infinispan's `Json.toPrettyString()` (commons dataconversion/internal/Json.java):
/// objects one member a line, `"key" : value`, two spaces a level; arrays on one line
/// as `[ a,b ]`.
pub fn ispn_pretty(v: &Value) -> String {
    fn object(m: &serde_json::Map<String, Value>, ident: usize) -> String {
        let mut sb = String::from("{\n");
        let n = m.len();
        for (i, (k, v)) in m.iter().enumerate() {
            sb.push_str(&"  ".repeat(ident));
            sb.push_str(&Value::String(k.clone()).to_string());
            sb.push_str(" : ");
            sb.push_str(&value(v, ident + 1));
            if i + 1 < n {
                sb.push_str(",\n");
            }
        }
        sb.push('\n');
        sb.push_str(&"  ".repeat(ident - 1));
        sb.push('}');
        sb
    }
    fn array(a: &[Value], ident: usize) -> String {
        let items: Vec<String> = a.iter().map(|x| value(x, ident)).collect();
        format!("[ {} ]", items.join(","))
    }
    fn value(v: &Value, ident: usize) -> String {
        match v {
            Value::Object(m) => object(m, ident),
            Value::Array(a) => array(a, ident),
            other => other.to_string(),
        }
    }
    value(v, 1)
}

/// What the CLI prints for one REST answer (RestConnection.parseBody): a JSON body
/// pretty-printed, nothing for an empty answer, `Not Found: BODY` for a 404 and
/// `Error: BODY` for other failures (cli/logging/Messages.java).
fn print(answer: Result<Option<Value>, IspnError>) -> String {
    match answer {
        Ok(Some(v)) => ispn_pretty(&v),
        Ok(None) => String::new(),
        Err(IspnError::NoSite(_)) => "Not Found: ".to_string(),
        Err(IspnError::NoCache(c)) => format!("Not Found: ISPN000404: cache '{c}' does not exist"),
        Err(IspnError::NoBackup { cache, site }) => {
            format!("Not Found: Cache '{cache}' does not backup to site '{site}'")
        }
        Err(IspnError::Failed(m)) => format!("Error: {m}"),
        Err(IspnError::Op { site, result }) => {
            format!("Error: ISPN012047: Site operation on '{site}' failed: '{result}'")
        }
    }
}

/// `ls caches/C`: the cache's keys (CacheResource.printChildren, NAMES). With
/// `--pretty-print=JSON` as JsonPrettyPrinter writes them: `[`, one `"key"` a line
/// joined by `,`, `]`, values not escaped; otherwise one key a line (the lab's
/// simplification of the TABLE printer). `--max-items=N` limits them.
fn ls(w: &mut World, site: &str, path: &str, opts: &[&str]) -> Result<String, String> {
    let Some(cache) = path.trim_end_matches('/').strip_prefix("caches/") else {
        return Ok(format!("Not Found: {path}"));
    };
    let keys = match w.keys(site, cache) {
        Ok(k) => k,
        Err(e) => return Ok(print(Err(e))),
    };
    let limit = flag(opts, "max-items", "m")
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > -1)
        .map(|m| m as usize);
    let keys: Vec<String> = keys.into_iter().take(limit.unwrap_or(usize::MAX)).collect();
    let json = flag(opts, "pretty-print", "p") == Some("JSON");
    Ok(if json {
        let items: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!("[\n{}\n]", items.join(",\n"))
    } else {
        keys.join("\n")
    })
}

fn flag<'a>(args: &'a [&'a str], name: &str, short: &str) -> Option<&'a str> {
    args.iter().find_map(|a| {
        a.strip_prefix(&format!("--{name}="))
            .or_else(|| a.strip_prefix(&format!("-{short}=")))
    })
}

/// One `site` command, as the CLI runs it (cli/commands/rest/Site.java): `--all-caches`
/// calls the cache manager's REST resource, `--cache=C` the cache's; the answer is
/// printed as [`print`] says.
fn site_command(
    w: &mut World,
    site: &str,
    verb: &str,
    rest: &[&str],
    now: Instant,
) -> Result<String, String> {
    let all = rest.contains(&"--all-caches") || rest.contains(&"-a");
    let cache = flag(rest, "cache", "c");
    let remote = flag(rest, "site", "s");
    if all && cache.is_some() {
        return Err("--all-caches and --cache are mutually exclusive".into());
    }
    let need_remote =
        || remote.ok_or_else(|| format!("Option: --site is required for `site {verb}`"));
    let op = |w: &mut World, c: &str, r: &str| -> Result<(), IspnError> {
        if w.cache_fails(c) {
            // The lab's `cache-error` fault, as its REST answers say it.
            return Err(IspnError::Failed(format!(
                "ISPN012047: Site operation on '{r}' failed for cache '{c}'"
            )));
        }
        match verb {
            "take-offline" => w.take_offline(site, c, r),
            "bring-online" => w.bring_online(site, c, r),
            "push-site-state" => w.start_push(site, c, r, now),
            _ => w.cancel_push(site, c, r),
        }
    };
    Ok(match verb {
        "take-offline" | "bring-online" | "push-site-state" | "cancel-push-state" => {
            let r = need_remote()?;
            match (all, cache) {
                // GlobalXSiteAdminOperations: every cache's result in one map, 200.
                (true, _) => {
                    let mut out = serde_json::Map::new();
                    let refusing = if verb == "take-offline" {
                        w.take_offline_refusal(site)
                    } else {
                        None
                    };
                    for c in w.cache_names(site).unwrap_or_default() {
                        let result = if verb == "take-offline" && !w.cache_fails(&c) {
                            w.take_offline_with(site, &c, r, refusing.as_deref())
                        } else {
                            op(w, &c, r)
                        };
                        let v = match result {
                            Ok(()) => "ok".to_string(),
                            Err(IspnError::Op { result, .. }) => result,
                            Err(IspnError::Failed(m)) => m,
                            Err(e) => format!("{e:?}"),
                        };
                        out.insert(c, json!(v));
                    }
                    print(Ok(Some(Value::Object(out))))
                }
                // One cache: 200 with no body, or the error.
                (false, Some(c)) => print(op(w, c, r).map(|_| None)),
                (false, None) => {
                    return Err(format!("`site {verb}` needs --all-caches or --cache"))
                }
            }
        }
        "status" => site_status(w, site, (all, cache, remote))?,
        "push-site-status" => {
            let c = cache.ok_or("Option: --cache is required for `site push-site-status`")?;
            print(w.push_status(site, c).map(|m| Some(json!(m))))
        }
        "clear-push-site-status" => {
            let c = cache.ok_or("Option: --cache is required for `site clear-push-site-status`")?;
            print(w.clear_push_status(site, c).map(|_| Some(json!("ok"))))
        }
        other => return Err(format!("Command not found: site {other}")),
    })
}

/// `site status`: of one cache or all, to one site or every other.
fn site_status(
    w: &World,
    site: &str,
    (all, cache, remote): (bool, Option<&str>, Option<&str>),
) -> Result<String, String> {
    Ok(match (all, cache, remote) {
        (true, _, Some(r)) => {
            if w.sites.contains_key(r) && r != site {
                print(Ok(Some(crate::infinispan::container_status(w, site, r))))
            } else {
                // globalStatus: a site no cache backs up to, 404 with no body
                "Not Found: ".to_string()
            }
        }
        (true, _, None) => {
            let mut out = serde_json::Map::new();
            for other in w
                .sites
                .keys()
                .filter(|s| *s != site)
                .cloned()
                .collect::<Vec<_>>()
            {
                out.insert(
                    other.clone(),
                    crate::infinispan::container_status(w, site, &other),
                );
            }
            print(Ok(Some(Value::Object(out))))
        }
        (false, Some(c), Some(r)) => {
            print(w.cache_status(site, c, r).map(|nodes| Some(json!(nodes))))
        }
        (false, Some(c), None) => print(match w.site(site).ok().and_then(|s| s.caches.get(c)) {
            Some(cc) => Ok(Some(Value::Object(
                cc.backups
                    .iter()
                    .map(|(r, b)| (r.clone(), json!({"status": b.status()})))
                    .collect(),
            ))),
            None => Err(IspnError::NoCache(c.to_string())),
        }),
        (false, None, _) => return Err("`site status` needs --all-caches or --cache".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_printed_as_infinispan_pretty_prints_it() {
        // The guide's `site status --all-caches --site=site-a` output, chapters 10-12.
        assert_eq!(
            ispn_pretty(&json!({"status": "offline"})),
            "{\n  \"status\" : \"offline\"\n}"
        );
        assert_eq!(
            ispn_pretty(&json!({"status": "mixed", "online": ["a", "b"], "offline": ["c"]})),
            "{\n  \"status\" : \"mixed\",\n  \"online\" : [ \"a\",\"b\" ],\n  \"offline\" : [ \"c\" ]\n}"
        );
        assert_eq!(
            ispn_pretty(&json!({"site-b": {"x": 1}})),
            "{\n  \"site-b\" : {\n    \"x\" : 1\n  }\n}"
        );
        assert_eq!(ispn_pretty(&json!("ok")), "\"ok\"");
    }
}
