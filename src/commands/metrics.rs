//! The deployment's state as Prometheus exposition (the text format, version 0.0.4),
//! served by `runbook respond` and `runbook check --watch`: per site whether it serves,
//! is in the endpoint group, is fenced or stale, and is held by a run; runs by outcome;
//! guard refusals; the time since the last fence; the last check's duration. What is
//! read is the pack's own diagnosis (`check`'s) and the journal.
//!
//! So an operator can alert on "a site fenced and not synchronized for 30 minutes":
//! `runbook_site_fenced == 1 and runbook_seconds_since_last_fence > 1800`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value as Json;

use crate::config::Config;

fn gauge(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

/// One gauge of 0 or 1 per site.
fn per_site(
    out: &mut String,
    name: &str,
    help: &str,
    sites: &[String],
    value: impl Fn(&String) -> bool,
) {
    gauge(out, name, help, "gauge");
    for s in sites {
        let _ = writeln!(out, "{name}{{site=\"{}\"}} {}", label(s), flag(value(s)));
    }
}

/// Per site, from the pack's observations and the journal's facts: which serve,
/// which are in the endpoint group (the accelerator's reading), which left traffic
/// unsynchronized, which a fence took out.
struct SiteFacts {
    serving: Vec<String>,
    in_group: Option<Vec<String>>,
    unsynced: Vec<String>,
    fenced: Vec<String>,
}

fn site_facts(o: &Json, history: &Json) -> SiteFacts {
    // Per site: serving and in the group (the accelerator's reading, or Route53's
    // one serving site for the Keycloak 24 shape).
    let list = |v: &Json| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let (serving, in_group): (Vec<String>, Option<Vec<String>>) = if o["accelerator"].is_object() {
        (
            list(&o["accelerator"]["serving"]),
            Some(list(&o["accelerator"]["in_group"])),
        )
    } else {
        (
            o["serving"]
                .as_str()
                .map(|s| vec![s.to_string()])
                .unwrap_or_default(),
            None,
        )
    };
    let unsynced: Vec<String> = history["unsynchronized"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let fenced: Vec<String> = history["unsynchronized"]
        .as_object()
        .into_iter()
        .flatten()
        // Left unsynchronized by a run that answered an alert (a fence).
        .filter(|(_, why)| {
            why.as_str().is_some_and(|w| {
                crate::packs::PACKS
                    .iter()
                    .flat_map(|p| p.answers.iter())
                    .any(|a| w.starts_with(a.firing))
            })
        })
        .map(|(s, _)| s.clone())
        .collect();
    SiteFacts {
        serving,
        in_group,
        unsynced,
        fenced,
    }
}

/// Which run holds each site, and how many runs ended each way.
fn journal_counts(config: &Config) -> (BTreeMap<String, String>, BTreeMap<String, u64>) {
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(Ok(journal)) = config.try_journal() {
        for (site, l) in journal.locks().unwrap_or_default() {
            held.insert(site, l.run_id.to_string());
        }
        for r in journal.runs().unwrap_or_default() {
            *outcomes.entry(r.status.as_str().to_string()).or_default() += 1;
        }
    }
    (held, outcomes)
}

/// What the journal says: who holds each site, how runs ended, the last fence.
fn journal_gauges(
    out: &mut String,
    sites: &[String],
    held: &BTreeMap<String, String>,
    outcomes: &BTreeMap<String, u64>,
    history: &Json,
) {
    gauge(
        out,
        "runbook_site_held",
        "Whether a run holds the site (its lock)",
        "gauge",
    );
    for s in sites {
        match held.get(s) {
            Some(run) => {
                let _ = writeln!(
                    out,
                    "runbook_site_held{{site=\"{}\",run=\"{}\"}} 1",
                    label(s),
                    label(run)
                );
            }
            None => {
                let _ = writeln!(out, "runbook_site_held{{site=\"{}\",run=\"\"}} 0", label(s));
            }
        }
    }
    gauge(
        out,
        "runbook_runs",
        "Runs in the journal, by outcome",
        "gauge",
    );
    for (k, n) in outcomes {
        let _ = writeln!(out, "runbook_runs{{outcome=\"{}\"}} {n}", label(k));
    }
    gauge(
        out,
        "runbook_guard_refusals",
        "Runs a safety guard refused before any effect",
        "gauge",
    );
    let _ = writeln!(
        out,
        "runbook_guard_refusals {}",
        outcomes.get("refused").copied().unwrap_or(0)
    );
    // Declared even with no fence yet (no sample then), so that rules reading it are
    // known to match an exported name.
    gauge(
        out,
        "runbook_seconds_since_last_fence",
        "Seconds since the last fence-site run removed a site (no sample before the first)",
        "gauge",
    );
    if let Some(at) = history["last_fence"]["at_ms"].as_u64() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let _ = writeln!(
            out,
            "runbook_seconds_since_last_fence {:.3}",
            now.saturating_sub(at) as f64 / 1000.0
        );
    }
}

/// What a loss of the writer's site would cost now, per database replication link, as
/// the database vendor reads it from the databases themselves; nothing when no site
/// names a database vendor that can tell (Aurora is one cluster: no link to measure).
/// Read at each scrape, like the rest.
async fn data_at_risk(out: &mut String, env: &Arc<engine::env::Environment>) {
    // Declared whatever the vendor (no sample without a link), so that rules reading
    // them are known to match an exported name.
    let links = steps::roles::replication(Arc::clone(env))
        .await
        .unwrap_or_default();
    let pair =
        |l: &steps::vendor::Link| format!("from=\"{}\",to=\"{}\"", label(&l.from), label(&l.to));
    gauge(
        out,
        "runbook_replication_lag_bytes",
        "WAL bytes the writer at `from` wrote that the standby at `to` has not replayed: what losing `from` would cost now",
        "gauge",
    );
    for l in &links {
        if let Some(b) = l.lag_bytes {
            let _ = writeln!(out, "runbook_replication_lag_bytes{{{}}} {b}", pair(l));
        }
    }
    gauge(
        out,
        "runbook_replication_lag_seconds",
        "How long ago the last transaction the standby at `to` replayed was committed, while it is behind (0: caught up)",
        "gauge",
    );
    for l in &links {
        if let Some(s) = l.lag_seconds {
            let _ = writeln!(out, "runbook_replication_lag_seconds{{{}}} {s:.3}", pair(l));
        }
    }
    gauge(
        out,
        "runbook_replication_synchronous",
        "1: every commit at `from` waits for `to` (read from the writer's server), so losing `from` loses nothing; 0: it does not, and the lag is what a loss would cost",
        "gauge",
    );
    for l in &links {
        if let Some(s) = l.synchronous {
            let _ = writeln!(
                out,
                "runbook_replication_synchronous{{{}}} {}",
                pair(l),
                u8::from(s)
            );
        }
    }
}

/// The check itself: its verdict, that it could read, how long it took.
fn check_gauges(out: &mut String, verdict: &steps::check::Verdict, started: Instant) {
    gauge(
        out,
        "runbook_check_health",
        "The check's verdict (1 on the current one)",
        "gauge",
    );
    let health = serde_json::to_value(verdict.health)
        .ok()
        .and_then(|h| h.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "runbook_check_health{{health=\"{}\"}} 1",
        label(&health)
    );
    gauge(
        out,
        "runbook_check_up",
        "Whether the last check could read the environment file",
        "gauge",
    );
    let _ = writeln!(out, "runbook_check_up 1");
    gauge(
        out,
        "runbook_check_duration_seconds",
        "How long the last check took",
        "gauge",
    );
    let _ = writeln!(
        out,
        "runbook_check_duration_seconds {:.3}",
        started.elapsed().as_secs_f64()
    );
}

/// Read the deployment and the journal once, and write what they say.
/// The pack's diagnosis of the deployment with its defaults (what `check` reads), and
/// the journal's facts it was given.
pub async fn diagnose(
    config: &Config,
    env: &Arc<engine::env::Environment>,
) -> (crate::packs::Diagnosis, Json) {
    let sites: Vec<String> = env.sites.keys().cloned().collect();
    let d = config.pack.defaults;
    let history = super::check::pack_history(config, env);
    let inputs = crate::packs::CheckInputs {
        primary: sites.first().cloned().unwrap_or_else(|| d.primary.into()),
        secondary: sites.get(1).cloned().unwrap_or_else(|| d.secondary.into()),
        caches: d.caches.iter().map(|c| c.to_string()).collect(),
        down_path: d.down_path.into(),
        style: crate::progress::Style::plain(),
        history: history.clone(),
    };
    let diagnosis =
        (config.pack.diagnose)(Arc::clone(&config.registry), Arc::clone(env), inputs).await;
    (diagnosis, history)
}

pub async fn exposition(config: &Config) -> String {
    let started = Instant::now();
    let mut out = String::new();
    let env = match config.environment() {
        Ok(e) => Arc::new(e),
        Err(e) => {
            gauge(
                &mut out,
                "runbook_check_up",
                "Whether the last check could read the environment file",
                "gauge",
            );
            let _ = writeln!(out, "runbook_check_up 0");
            tracing::warn!("metrics: {}", e.error);
            return out;
        }
    };
    let sites: Vec<String> = env.sites.keys().cloned().collect();
    let (diagnosis, history) = diagnose(config, &env).await;
    let SiteFacts {
        serving,
        in_group,
        unsynced,
        fenced,
    } = site_facts(&diagnosis.observations, &history);
    let (held, outcomes) = journal_counts(config);
    per_site(
        &mut out,
        "runbook_site_serving",
        "Whether the traffic vendor sends clients to the site (1) or not (0)",
        &sites,
        |s| serving.contains(s),
    );
    if let Some(group) = &in_group {
        per_site(
            &mut out,
            "runbook_site_in_endpoint_group",
            "Whether the site's NLB is in the Global Accelerator's endpoint group",
            &sites,
            |s| group.contains(s),
        );
    }
    per_site(
        &mut out,
        "runbook_site_fenced",
        "Whether a fence-site run removed the site and no synchronize-site completed since",
        &sites,
        |s| fenced.contains(s),
    );
    per_site(
        &mut out,
        "runbook_site_stale",
        "Whether the journal shows the site left out of the traffic and not synchronized since",
        &sites,
        |s| unsynced.contains(s) || history["stale"].get(s).is_some(),
    );
    journal_gauges(&mut out, &sites, &held, &outcomes, &history);
    data_at_risk(&mut out, &env).await;
    check_gauges(&mut out, &diagnosis.verdict, started);
    out.push_str(&super::readiness::current());
    out
}

/// `check --watch ADDR`: serve `GET /metrics` (read afresh at each scrape) until
/// Ctrl-C or SIGTERM. Loopback only: the page has no login.
pub async fn watch(
    config: Config,
    addr: std::net::SocketAddr,
    readiness_every: std::time::Duration,
) -> crate::exit::CliResult {
    use crate::exit::{failed, invalid, Code};
    if !addr.ip().is_loopback() {
        return Err(invalid(anyhow::anyhow!(
            "check --watch {addr}: metrics are served on loopback only (put a proxy in front to scrape from elsewhere)"
        )));
    }
    let config = Arc::new(config);
    // One reader of the journal at a time: a sled journal admits one open handle, in
    // this process too, and readiness reads it as a scrape does.
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    if !readiness_every.is_zero() {
        super::readiness::start(
            Arc::clone(&config),
            readiness_every,
            Some(Arc::clone(&gate)),
        );
    }
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State((c, gate)): axum::extract::State<(
                    Arc<Config>,
                    Arc<tokio::sync::Mutex<()>>,
                )>| async move {
                    let text = {
                        let _one = gate.lock().await;
                        exposition(&c).await
                    };
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                },
            ),
        )
        .with_state((config, gate));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    eprintln!(
        "runbook check --watch: metrics on http://{}/metrics (read at each scrape); Ctrl-C stops it",
        listener.local_addr().map_err(failed)?
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(failed)?;
    tokio::select! {
        r = axum::serve(listener, router) => r.map_err(failed)?,
        r = tokio::signal::ctrl_c() => r.map_err(failed)?,
        _ = term.recv() => {}
    }
    Ok(Code::Ok)
}
