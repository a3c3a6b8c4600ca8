//! `runbook respond`: a long-running receiver of Alertmanager's webhooks (the v4
//! payload) that answers the alerts the packs declare (`Pack::answers`; Keycloak 26's
//! `SiteOffline`, as the guide's fencing Lambda does), but journaled and guarded: each
//! firing alert becomes one run of its pack's runbook (the Lambda's rules are that
//! runbook's guards), driven by this process with the operator recorded as
//! `alertmanager@HOST`, the alert's labels in its parameters. It names no pack,
//! runbook or label itself.
//!
//! - Authenticated: basic (`--basic-user` and `--basic-password-file`) or bearer
//!   (`--bearer-token-file`), read from their references at start and never stored
//!   elsewhere; 401 without credentials, 403 with wrong ones. TLS with `--tls-cert` and
//!   `--tls-key`. Loopback unless `--allow-remote`.
//! - One alert at a time: runs are started as child processes of this binary (the same
//!   journal, environment file and pack, through their `RUNBOOK_*` variables), one
//!   after the other, so two alerts of one partition never race: the second finds the
//!   group with one endpoint, or the reporter out of it, and is refused by the guards
//!   (journaled). With several responders on one PostgreSQL journal the site locks and
//!   leases decide.
//! - An incident (the alert's fingerprint and `startsAt`) already answered by a run
//!   (running, halted or completed) starts nothing new: Alertmanager repeats its
//!   notifications. After a refused one, a repeat is judged again (the guards read
//!   the deployment as it is then).
//! - A resolved alert never re-adds a site: it journals its pack's notice run naming
//!   the procedures to run.
//! - At start it resumes the unfinished runs it started before (a responder killed
//!   mid-fence carries on).
//! - `GET /metrics`: the deployment's state as Prometheus exposition (`metrics.rs`),
//!   every procedure's readiness (`readiness.rs`) and the responder's own counters;
//!   authenticated as the webhook is, unless `--metrics-open`.
//! - One line per alert on stderr: what it did, and the run that holds the detail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value as Json};

use crate::cli::{Global, RespondArgs};
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};
use crate::packs::pack::Answer;
use crate::packs::Pack;

/// The operator the responder's runs record (`alertmanager@HOST`).
pub const OPERATOR: &str = "alertmanager";

/// How a request proves it is Alertmanager's.
#[derive(Clone)]
enum Credential {
    Basic { user: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        match self {
            Credential::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Credential::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// A secret from its reference: a file (its first line) or `env:NAME`.
fn secret(reference: &str, what: &str) -> CliResult<String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map_err(|_| invalid(anyhow::anyhow!("{what}: the variable `{name}` is not set")));
    }
    let text = engine::env::read_input(std::path::Path::new(reference))
        .map_err(|e| invalid(anyhow::anyhow!("{what}: cannot read `{reference}`: {e}")))?;
    let value = text.lines().next().unwrap_or_default().trim().to_string();
    if value.is_empty() {
        return Err(invalid(anyhow::anyhow!("{what}: `{reference}` is empty")));
    }
    engine::redact::learn(&value);
    Ok(value)
}

fn credential(args: &RespondArgs) -> CliResult<Credential> {
    match (&args.basic_user, &args.basic_password_file, &args.bearer_token_file) {
        (Some(user), Some(p), None) => Ok(Credential::Basic {
            user: user.clone(),
            password: secret(p, "--basic-password-file")?,
        }),
        (None, None, Some(t)) => Ok(Credential::Bearer(secret(t, "--bearer-token-file")?)),
        (None, None, None) => Err(invalid(anyhow::anyhow!(
            "runbook respond needs credentials: --basic-user USER --basic-password-file FILE, or --bearer-token-file FILE (Alertmanager's webhook_config http_config)"
        ))),
        _ => Err(invalid(anyhow::anyhow!(
            "give either --basic-user with --basic-password-file, or --bearer-token-file"
        ))),
    }
}

/// Constant-time comparison of two secrets (their lengths may show).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// 401 without credentials, 403 with wrong ones, `None` when they are right.
fn authenticate(expected: &Credential, headers: &HeaderMap) -> Option<Response> {
    use base64::Engine as _;
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"runbook respond\"")],
                "credentials required\n",
            )
                .into_response(),
        );
    };
    let ok = match expected {
        Credential::Basic { user, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .is_some_and(|pair| same(&pair, &format!("{user}:{password}"))),
        Credential::Bearer(token) => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| same(t.trim(), token)),
    };
    (!ok).then(|| (StatusCode::FORBIDDEN, "wrong credentials\n").into_response())
}

/// One alert of a v4 payload, as the responder reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub status: String,
    pub name: String,
    /// Its labels but `alertname`, as received.
    pub labels: BTreeMap<String, String>,
    /// The incident: fingerprint and `startsAt` (a new firing after a resolve is new).
    pub incident: String,
    pub starts_at: String,
}

/// The alerts of an Alertmanager v4 payload.
///
/// # Errors
/// Not JSON, or not version 4, or no `alerts` list.
pub fn alerts(body: &[u8]) -> Result<Vec<Alert>, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["version"] != "4" {
        return Err(format!(
            "not an Alertmanager v4 webhook payload (version {})",
            v["version"]
        ));
    }
    let list = v["alerts"].as_array().ok_or("no `alerts` list")?;
    Ok(list
        .iter()
        .map(|a| {
            let mut labels: BTreeMap<String, String> = a["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let name = labels.remove("alertname").unwrap_or_default();
            let starts_at = a["startsAt"].as_str().unwrap_or_default().to_string();
            // Alertmanager always sends one; without it, the alert's identity.
            let fingerprint = a["fingerprint"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{name}-{}", l.join(","))
                });
            Alert {
                status: a["status"].as_str().unwrap_or_default().to_string(),
                name,
                labels,
                incident: format!("{fingerprint}@{starts_at}"),
                starts_at,
            }
        })
        .collect())
}

/// What the responder counted (`/metrics`).
#[derive(Debug, Default)]
struct Counters {
    received: BTreeMap<String, u64>,
    last_post_to_done_ms: Option<u128>,
}

struct App {
    credential: Credential,
    config: Arc<Config>,
    exe: PathBuf,
    child_env: Vec<(String, String)>,
    /// One alert at a time (runs are started one after the other).
    queue: Arc<tokio::sync::Mutex<()>>,
    counters: Mutex<Counters>,
    /// `/metrics` without credentials (`--metrics-open`).
    metrics_open: bool,
}

impl App {
    fn count(&self, what: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.received.entry(what.to_string()).or_default() += 1;
    }
}

/// The runs this journal holds for `incident` that answer it (running, halted or
/// completed: a refused, failed or aborted one lets Alertmanager's repeat try again),
/// read and let go at once.
fn runs_for(config: &Config, incident: &str) -> Vec<String> {
    use engine::state::RunStatus;
    let Some(Ok(journal)) = config.try_journal() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in journal.runs().unwrap_or_default() {
        if !crate::packs::answering_runbooks().contains(&r.runbook.as_str()) {
            continue;
        }
        if let Ok(s) = engine::runner::run_state(&journal, r.run_id) {
            let answers = matches!(
                s.status,
                RunStatus::Running | RunStatus::Halted | RunStatus::Completed
            );
            if answers && names_incident(&s.params, incident) {
                out.push(s.run_id.clone());
            }
        }
    }
    out
}

/// The unfinished runs the responder started (to resume at start).
fn unfinished(config: &Config) -> Vec<String> {
    let Some(Ok(journal)) = config.try_journal() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in journal.runs().unwrap_or_default() {
        if let Ok(s) = engine::runner::run_state(&journal, r.run_id) {
            // A driver that died mid-run leaves it `running`; halted runs wait for a person.
            if s.created_by.operator == OPERATOR && s.status == engine::state::RunStatus::Running {
                out.push(s.run_id.clone());
            }
        }
    }
    out
}

/// Run this binary with `args`, as the responder; its `--json` line.
async fn child(app: &App, args: &[String]) -> Json {
    let mut c = std::process::Command::new(&app.exe);
    c.args(args)
        .env("RUNBOOK_OPERATOR", OPERATOR)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &app.child_env {
        c.env(k, v);
    }
    let exe = app.exe.display().to_string();
    let done = tokio::task::spawn_blocking(move || c.output()).await;
    match done {
        Ok(Ok(out)) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .rfind(|l| l.starts_with('{'))
                .unwrap_or_default();
            let mut v: Json = serde_json::from_str(line).unwrap_or_else(|_| {
                let err = String::from_utf8_lossy(&out.stderr);
                json!({"status": "error", "reason": err.lines().last().unwrap_or("no answer").to_string()})
            });
            v["exit"] = json!(out.status.code());
            v
        }
        Ok(Err(e)) => json!({"status": "error", "reason": format!("cannot start {exe}: {e}")}),
        Err(e) => json!({"status": "error", "reason": format!("{exe}: {e}")}),
    }
}

fn param(k: &str, v: &str) -> [String; 2] {
    ["-p".to_string(), format!("{k}={v}")]
}

/// Answer the alerts of one payload that say the same thing (name, status, site,
/// reporter, accelerator): each one already answered is a repeat; the others are
/// answered by one run whose `incident` parameter names every one of them, so each
/// alert is in the journal and a payload of 30 is answered in one run's time. One
/// answer per alert, in order.
async fn answer_all(app: &App, same: &[&Alert]) -> Vec<Json> {
    let Some(first) = same.first() else {
        return Vec::new();
    };
    let Some(how) = crate::packs::answering(&first.name) else {
        return same
            .iter()
            .map(|a| {
                app.count("ignored");
                json!({"alert": a.name, "action": "ignored (no pack answers it)"})
            })
            .collect();
    };
    let _one_at_a_time = app.queue.lock().await;
    let mut out = vec![Json::Null; same.len()];
    let mut fresh: Vec<usize> = Vec::new();
    for (i, a) in same.iter().enumerate() {
        let seen = runs_for(&app.config, &a.incident);
        let noted =
            a.status == "resolved" && notice_exists(&app.config, how.1.resolved, &a.incident);
        if (a.status == "firing" && !seen.is_empty()) || noted {
            app.count("repeat");
            out[i] =
                json!({"incident": a.incident, "action": "repeat: already answered", "runs": seen});
        } else {
            fresh.push(i);
        }
    }
    if let Some(&lead) = fresh.first() {
        let mut merged = (*same[lead]).clone();
        merged.incident = fresh
            .iter()
            .map(|&i| same[i].incident.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let answered = answer(app, how, &merged).await;
        for &i in &fresh {
            let mut a = answered.clone();
            a["incident"] = json!(same[i].incident);
            if fresh.len() > 1 {
                a["with"] = json!(fresh.len() - 1);
            }
            out[i] = a;
        }
    }
    out
}

/// Answer one alert (or several saying the same, their incidents space-separated): a
/// fence run, a notice, or nothing. The caller holds the queue and has left repeats
/// out.
async fn answer(app: &App, (pack, how): (&Pack, &Answer), a: &Alert) -> Json {
    let label = |k: &str| a.labels.get(k).map(String::as_str).unwrap_or_default();
    let passed: Vec<&str> = how
        .site_labels
        .iter()
        .map(|(k, _)| *k)
        .chain(how.labels.iter().copied())
        .collect();
    let summary = format!(
        "{} {} {} startsAt={}",
        a.name,
        a.status,
        passed
            .iter()
            .map(|k| format!("{k}={}", label(k)))
            .collect::<Vec<_>>()
            .join(" "),
        a.starts_at
    );
    let (runbook, kind) = match a.status.as_str() {
        "firing" => (format!("{}/{}", pack.name, how.firing), "fence"),
        // One notice per resolved incident (repeats were left out).
        "resolved" => (format!("{}/{}", pack.name, how.resolved), "notice"),
        other => {
            app.count("ignored");
            return json!({"incident": a.incident, "action": format!("ignored (status {other})")});
        }
    };
    let mut args: Vec<String> = vec!["run".into(), runbook, "--yes".into(), "--json".into()];
    // An alert that cannot be mapped to this deployment is journaled too: a refused
    // run with the reason, its labels as received.
    let unmappable = unmappable(&app.config, how, a);
    if let Some(reason) = &unmappable {
        args.extend(["--refused".to_string(), reason.clone()]);
    }
    for k in &passed {
        args.extend(param(k, label(k)));
    }
    args.extend(param("incident", &a.incident));
    args.extend(param("alert", &summary));
    let out = child(app, &args).await;
    if unmappable.is_some() {
        app.count("refused");
        return json!({"incident": a.incident, "action": "refused: unmappable", "run": out});
    }
    app.count(&format!(
        "{kind}-{}",
        out["status"].as_str().unwrap_or("error")
    ));
    json!({"incident": a.incident, "action": kind, "run": out})
}

/// Why an alert cannot be mapped to this deployment: a site label missing, the same
/// site twice, or a site the environment file does not name.
fn unmappable(config: &Config, how: &Answer, a: &Alert) -> Option<String> {
    let named: Vec<(&str, &str, &str)> = how
        .site_labels
        .iter()
        .map(|(k, what)| {
            (
                *k,
                *what,
                a.labels.get(*k).map(String::as_str).unwrap_or_default(),
            )
        })
        .collect();
    if named.iter().any(|(_, _, v)| v.is_empty()) {
        let keys: Vec<String> = named.iter().map(|(k, ..)| format!("no `{k}`")).collect();
        let said: Vec<String> = named.iter().map(|(k, _, v)| format!("{k} `{v}`")).collect();
        return Some(format!(
            "the alert names {} label ({}): it cannot be mapped to a site",
            keys.join(" or "),
            said.join(", ")
        ));
    }
    for (i, (_, what, v)) in named.iter().enumerate() {
        if let Some((_, first, _)) = named[..i].iter().find(|(_, _, w)| w == v) {
            return Some(format!("the alert names `{v}` as both {first} and {what}"));
        }
    }
    let sites: Vec<String> = config
        .environment()
        .map(|e| e.sites.keys().cloned().collect())
        .unwrap_or_default();
    named
        .iter()
        .map(|(_, _, v)| *v)
        .find(|s| !sites.iter().any(|k| k == s))
        .map(|s| {
            format!(
                "the alert names site `{s}`, which the environment file does not (its sites: {}): not acting on another deployment's alert",
                sites.join(", ")
            )
        })
}

fn notice_exists(config: &Config, runbook: &str, incident: &str) -> bool {
    let Some(Ok(journal)) = config.try_journal() else {
        return false;
    };
    journal.runs().unwrap_or_default().iter().any(|r| {
        r.runbook == runbook
            && engine::runner::run_state(&journal, r.run_id)
                .is_ok_and(|s| names_incident(&s.params, incident))
    })
}

/// A run's `incident` parameter names this incident: it is one incident, or several
/// separated by spaces (the alerts of one payload that said the same thing).
fn names_incident(params: &serde_json::Map<String, Json>, incident: &str) -> bool {
    params
        .get("incident")
        .and_then(Json::as_str)
        .is_some_and(|list| list.split_whitespace().any(|i| i == incident))
}

async fn webhook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = authenticate(&app.credential, &headers) {
        app.count("unauthenticated");
        return refusal;
    }
    let posted = Instant::now();
    let list = match alerts(&body) {
        Ok(l) => l,
        Err(e) => {
            app.count("bad-payload");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    // Alerts saying the same thing are answered together, in the order of their
    // first; the answers come back in the payload's order.
    // The same thing: the same alert and status, and the same values of the labels
    // its pack reads (others, such as the instance that fired it, do not matter).
    let key = |x: &Alert| {
        let read: Vec<Option<String>> = crate::packs::answering(&x.name)
            .map(|(_, h)| {
                h.site_labels
                    .iter()
                    .map(|(k, _)| k)
                    .chain(h.labels)
                    .map(|k| x.labels.get(*k).cloned())
                    .collect()
            })
            .unwrap_or_default();
        (x.name.clone(), x.status.clone(), read)
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match groups.iter_mut().find(|g| key(&list[g[0]]) == key(a)) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut answers = vec![Json::Null; list.len()];
    for g in &groups {
        let same: Vec<&Alert> = g.iter().map(|&i| &list[i]).collect();
        for (&i, a) in g.iter().zip(answer_all(&app, &same).await) {
            answers[i] = a;
        }
    }
    if answers
        .iter()
        .any(|a| a["action"] == "fence" && a["run"]["status"] == "completed")
    {
        let mut c = app.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.last_post_to_done_ms = Some(posted.elapsed().as_millis());
    }
    for a in &answers {
        tracing::info!("alert answered: {a}");
        // One line per alert for whoever watches the responder: what it did, and the
        // run that holds the detail.
        let run = &a["run"];
        eprintln!(
            "alert {}: {}{}",
            a["incident"]
                .as_str()
                .or(a["alert"].as_str())
                .unwrap_or("?"),
            a["action"].as_str().unwrap_or("?"),
            match (run["run_id"].as_str(), run["status"].as_str()) {
                (Some(id), Some(st)) => format!(
                    " → {id} {st}{}",
                    run["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            }
        );
    }
    (StatusCode::OK, axum::Json(json!({"answers": answers}))).into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    // Authenticated as every request is (the metrics say which site is fenced), unless
    // the operator opened them (--metrics-open).
    if let Some(refusal) = authenticate(&app.credential, &headers).filter(|_| !app.metrics_open) {
        app.count("unauthenticated");
        return refusal;
    }
    // Not while a run of ours holds the journal (a sled journal admits one process).
    let guard = app.queue.lock().await;
    let mut text = super::metrics::exposition(&app.config).await;
    drop(guard);
    let c = app.counters.lock().unwrap_or_else(|p| p.into_inner());
    text.push_str("# HELP runbook_respond_alerts_total Alerts the responder received, by what it did\n# TYPE runbook_respond_alerts_total counter\n");
    for (what, n) in &c.received {
        text.push_str(&format!(
            "runbook_respond_alerts_total{{action=\"{what}\"}} {n}\n"
        ));
    }
    if let Some(ms) = c.last_post_to_done_ms {
        text.push_str(&format!("# HELP runbook_respond_last_fence_seconds From the webhook's POST to the fence run's end\n# TYPE runbook_respond_last_fence_seconds gauge\nrunbook_respond_last_fence_seconds {}\n", ms as f64 / 1000.0));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// The variables that make a child run use this process's journal, environment file,
/// pack and runbooks.
pub(crate) fn child_env(g: &Global) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(j) = &g.journal {
        out.push(("RUNBOOK_JOURNAL".into(), j.to_string_lossy().into_owned()));
    }
    if let Some(e) = &g.env_file {
        out.push(("RUNBOOK_ENV".into(), e.to_string_lossy().into_owned()));
    }
    if let Some(p) = &g.pack {
        out.push(("RUNBOOK_PACK".into(), p.clone()));
    }
    if let Some(d) = &g.runbooks {
        out.push(("RUNBOOK_DIR".into(), d.to_string_lossy().into_owned()));
    }
    out.push((
        "RUNBOOK_LEASE_TTL".into(),
        humantime::format_duration(g.lease_ttl).to_string(),
    ));
    out
}

/// A TLS acceptor from `--tls-cert` and `--tls-key` (both or neither).
pub(crate) fn tls_acceptor(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> CliResult<Option<lab::tls::TlsAcceptor>> {
    match (cert, key) {
        (Some(c), Some(k)) => {
            let cert = engine::env::read_input(c)
                .map_err(|e| invalid(anyhow::anyhow!("--tls-cert {}: {e}", c.display())))?;
            let key = engine::env::read_input(k)
                .map_err(|e| invalid(anyhow::anyhow!("--tls-key {}: {e}", k.display())))?;
            Ok(Some(
                lab::tls::acceptor_from_pem(&cert, &key)
                    .map_err(|e| invalid(anyhow::anyhow!("TLS: {e}")))?,
            ))
        }
        (None, None) => Ok(None),
        _ => Err(invalid(anyhow::anyhow!(
            "give both --tls-cert and --tls-key"
        ))),
    }
}

pub async fn run(config: Config, g: &Global, args: &RespondArgs) -> CliResult<Code> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(invalid(anyhow::anyhow!(
            "--listen {} is not a loopback address: add --allow-remote to receive Alertmanager's webhooks from elsewhere (with TLS: --tls-cert, --tls-key)",
            args.listen
        )));
    }
    let credential = credential(args)?;
    let tls = tls_acceptor(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let app = Arc::new(App {
        credential,
        config: Arc::new(config),
        exe: std::env::current_exe().map_err(failed)?,
        child_env: child_env(g),
        queue: Arc::new(tokio::sync::Mutex::new(())),
        counters: Mutex::new(Counters::default()),
        metrics_open: args.metrics_open,
    });
    // A responder killed mid-fence: its runs carry on first.
    for run_id in unfinished(&app.config) {
        let _one = app.queue.lock().await;
        let out = child(&app, &["resume".into(), run_id.clone(), "--json".into()]).await;
        eprintln!(
            "resumed {run_id}: {}",
            out["status"].as_str().unwrap_or("?")
        );
    }
    if !args.readiness_every.is_zero() {
        super::readiness::start(
            Arc::clone(&app.config),
            args.readiness_every,
            Some(Arc::clone(&app.queue)),
        );
    }
    let router = Router::new()
        .route("/", post(webhook))
        .route("/alerts", post(webhook))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&app));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(failed)?;
    let addr: SocketAddr = listener.local_addr().map_err(failed)?;
    eprintln!(
        "runbook respond: Alertmanager webhooks on {}://{addr}/alerts ({}), metrics on /metrics; Ctrl-C stops it",
        if tls.is_some() { "https" } else { "http" },
        match &app.credential {
            Credential::Basic { user, .. } => format!("basic auth as `{user}`"),
            Credential::Bearer(_) => "a bearer token".into(),
        }
    );
    let serve = async move {
        match tls {
            Some(acceptor) => lab::tls::serve_on(listener, router, acceptor).await,
            None => {
                let _ = axum::serve(listener, router).await;
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(failed)?;
    tokio::select! {
        _ = serve => {}
        r = tokio::signal::ctrl_c() => r.map_err(failed)?,
        _ = term.recv() => {}
    }
    Ok(Code::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v4_payload_gives_its_alerts_and_anything_else_is_refused() {
        let body = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"SiteOffline","site":"site-b","reporter":"site-a","accelerator":"a1.awsglobalaccelerator.com"},"startsAt":"2026-12-02T08:00:00Z","fingerprint":"f00"}]}"#;
        let a = alerts(body).unwrap();
        assert_eq!(a[0].name, "SiteOffline");
        assert_eq!(a[0].labels["site"], "site-b");
        assert_eq!(a[0].labels["reporter"], "site-a");
        assert_eq!(a[0].incident, "f00@2026-12-02T08:00:00Z");
        assert!(alerts(br#"{"version":"3","alerts":[]}"#)
            .unwrap_err()
            .contains("v4"));
        assert!(alerts(b"nope").is_err());
    }

    #[test]
    fn credentials_are_checked_401_without_403_wrong() {
        use base64::Engine as _;
        let c = Credential::Basic {
            user: "am".into(),
            password: "s3cret".into(),
        };
        let mut h = HeaderMap::new();
        assert_eq!(
            authenticate(&c, &h).unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        h.insert(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("am:nope")
            )
            .parse()
            .unwrap(),
        );
        assert_eq!(
            authenticate(&c, &h).unwrap().status(),
            StatusCode::FORBIDDEN
        );
        h.insert(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("am:s3cret")
            )
            .parse()
            .unwrap(),
        );
        assert!(authenticate(&c, &h).is_none());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
