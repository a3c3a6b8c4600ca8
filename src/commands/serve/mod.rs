//! `runbook serve`: the web page for the incident bridge. It lists the runs of the
//! journal in use (sled or PostgreSQL), newest first, and shows each run as its report
//! does, updated live with server-sent events: the current step, what it waits for,
//! its last observation, the chart. Without JavaScript, a refresh shows the current
//! state. Assets are inline in the pages; the server listens on loopback unless told
//! otherwise.
//!
//! Without `--users` every route is a GET and nothing on the page can change a run.
//! With it, every request is authenticated (`auth.rs`) and the run page acts: approve,
//! skip, retry, abort, resume, by role (`act.rs`).

mod act;
pub mod auth;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::journal::JournalError;
use engine::review::Review;

use crate::cli::{Global, ServeArgs};
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};
use crate::review::html::{esc, live, record, STYLE};
use auth::Who;
use axum::Extension;

/// What every handler shares.
pub struct App {
    pub config: Arc<Config>,
    /// The users file: `None`, a read-only page with no login.
    pub auth: Option<Arc<auth::Auth>>,
    pub tls: bool,
    /// This binary and the settings its children get (abort, resume from the page).
    pub exe: std::path::PathBuf,
    pub child_env: Vec<(String, String)>,
}

type Shared = Arc<App>;

pub async fn run(config: Config, g: &Global, args: &ServeArgs) -> CliResult<Code> {
    if args.hash_password {
        return hash_password();
    }
    if args.new_token {
        let (token, kept) = auth::new_token();
        println!("token (give it to the script; it is shown once): {token}");
        println!("for the users file, under the person's tokens: \"{kept}\"");
        return Ok(Code::Ok);
    }
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(invalid(anyhow::anyhow!(
            "{} is not a loopback address: give --allow-remote, with --users (and --tls-cert, --tls-key) for the page's own login, or behind a proxy that authenticates",
            args.listen
        )));
    }
    let auth = match &args.users {
        Some(path) => Some(Arc::new(
            auth::Auth::load(path).map_err(|e| invalid(anyhow::anyhow!(e)))?,
        )),
        None => None,
    };
    let tls = super::respond::tls_acceptor(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    listen_to_the_database(&config)?;
    let hosts = Arc::new(host_names(args));
    let shared = Arc::new(App {
        config: Arc::new(config),
        auth: auth.clone(),
        tls: tls.is_some(),
        exe: std::env::current_exe().map_err(failed)?,
        child_env: super::respond::child_env(g),
    });
    let mut router = Router::new()
        .route("/", get(index))
        .route("/events", get(index_events))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(events))
        .route("/runs/{id}/report.{format}", get(report));
    if auth.is_some() {
        router = router
            .route("/login", get(act::login_page).post(act::login))
            .route("/logout", post(act::logout))
            .route("/runs/{id}/abort", post(act::abort))
            .route("/runs/{id}/resume", post(act::resume))
            .route("/runs/{id}/step/{verb}", post(act::decide));
    }
    let gate = Arc::clone(&shared);
    let app = router
        .with_state(shared)
        .layer(axum::middleware::from_fn(move |req, next| {
            authenticate(Arc::clone(&gate), req, next)
        }))
        .layer(axum::middleware::from_fn(move |req, next| {
            guard(Arc::clone(&hosts), req, next)
        }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| failed(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(failed)?;
    eprintln!(
        "serving the runs at {}://{addr}/ ({}; Ctrl-C stops)",
        if tls.is_some() { "https" } else { "http" },
        match &auth {
            Some(_) => "log in with the users file's names; roles viewer, operator, approver",
            None => "read-only, no login",
        }
    );
    if let Some(acceptor) = tls {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = lab::tls::serve_on(listener, app, acceptor) => {}
        }
        return Ok(Code::Ok);
    }
    serve_plain(listener, app, args.header_timeout).await
}

/// One LISTEN connection for every viewer of a PostgreSQL journal, and one for
/// reading it.
fn listen_to_the_database(config: &Config) -> CliResult<()> {
    if let Some(db) = &config.journal_db {
        crate::review::share(config.open_journal()?);
        let (tx, _) = tokio::sync::broadcast::channel(64);
        let rx = pgstore::listen(db);
        let fan = tx.clone();
        std::thread::spawn(move || {
            while rx.recv().is_ok() {
                let _ = fan.send(());
            }
        });
        let _ = HINTS.set(tx);
    }
    Ok(())
}

/// The host names the page answers under.
fn host_names(args: &ServeArgs) -> Vec<String> {
    let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]", "::1"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    hosts.extend(args.allow_hosts.iter().map(|h| h.to_ascii_lowercase()));
    if !args.listen.ip().is_loopback() {
        hosts.push(args.listen.ip().to_string());
    }
    hosts
}

/// hyper's own connection loop, for what axum::serve does not set: a client that does
/// not finish sending its request head within the timeout is disconnected (a half-sent
/// request would otherwise hold its connection and task forever).
async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
) -> CliResult<Code> {
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return Ok(Code::Ok),
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let _ = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Read a password from stdin (without echo on a terminal) and print its Argon2id hash
/// for the users file.
fn hash_password() -> CliResult<Code> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        rpassword_prompt()?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(failed)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(invalid(anyhow::anyhow!(
            "an empty password: nothing to hash"
        )));
    }
    println!(
        "{}",
        auth::hash_password(&password).map_err(|e| failed(anyhow::anyhow!(e)))?
    );
    Ok(Code::Ok)
}

/// Ask for a password on the terminal with echo off (`stty`).
fn rpassword_prompt() -> CliResult<String> {
    eprint!("password: ");
    let off = std::process::Command::new("stty").arg("-echo").status();
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if off.is_ok() {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
    eprintln!();
    read.map_err(failed)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// With a users file, every request but the login form's is authenticated: a page
/// asked for without a session goes to the login form, anything else gets 401. A write
/// whose `Origin` names another host is refused (403) before its handler sees it.
async fn authenticate(
    app: Shared,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(auth) = &app.auth else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/login" {
        return next.run(req).await;
    }
    let Some(who) = auth.who(req.headers()) else {
        let wants_page = req.method() == axum::http::Method::GET && !path.ends_with("/events");
        return if wants_page {
            axum::response::Redirect::to("/login").into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "log in first (/login), or send a bearer token",
            )
                .into_response()
        };
    };
    if req.method() != axum::http::Method::GET && !same_origin(req.headers()) {
        return problem(
            StatusCode::FORBIDDEN,
            "this request comes from another site's page (Origin): refused".into(),
        );
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

/// A browser's `Origin` names the host the request was sent to (absent: a script).
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host))
}

/// Hints that the PostgreSQL journal changed, from the one LISTEN connection.
static HINTS: std::sync::OnceLock<tokio::sync::broadcast::Sender<()>> = std::sync::OnceLock::new();

/// Event streams open now, and the most served at once.
static STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const MAX_STREAMS: usize = 500;

/// Only requests naming a host this page is served under (loopback, or `--allow-host`):
/// a DNS-rebinding page in a bridge member's browser names its own host and gets 421.
/// Every answer carries a policy that allows the page's own script and style only, no
/// framing, no referrer to other sites.
async fn guard(
    hosts: Arc<Vec<String>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => format!("[{}", v6.split(']').next().unwrap_or_default()) + "]",
        None => host
            .rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_string()),
    };
    if !hosts.iter().any(|h| *h == name || *h == host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            format!("this page is not served under the host name `{name}`"),
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        policy().parse().expect("a valid header"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: under it a browser sends `Origin: null` with the page's own
        // forms, and the origin check could not tell them from another site's.
        header::HeaderValue::from_static("same-origin"),
    );
    resp
}

/// `'sha256-…'` of an inline script's or style's text, as CSP matches it.
fn csp_hash(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
    )
}

fn policy() -> String {
    let inner = |s: &'static str| {
        s.trim_start_matches("<script>")
            .trim_end_matches("</script>")
    };
    format!(
        "default-src 'none'; script-src {} {}; style-src {}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        csp_hash(inner(LIVE_SCRIPT)),
        csp_hash(inner(INDEX_SCRIPT)),
        csp_hash(STYLE)
    )
}

/// Replaces the list of runs and the deployment's state as they change; without it a
/// reload shows them.
const INDEX_SCRIPT: &str = r#"<script>
(function () {
  if (!window.EventSource) return;
  var es = new EventSource("/events");
  es.addEventListener("runs", function (e) { document.getElementById("runs").innerHTML = e.data; });
  es.addEventListener("deployment", function (e) { document.getElementById("deployment").innerHTML = e.data; });
})();
</script>"#;

/// The index's stream: the list of runs when it changes, and the deployment's state
/// (read at most every 15 s), checked every second (or when a PostgreSQL journal
/// announces an event).
async fn index_events(State(app): State<Shared>) -> Response {
    let (slot, hints) = match stream_slot() {
        Ok(taken) => taken,
        Err(full) => return *full,
    };
    let state = (app, (String::new(), String::new()), hints, slot);
    let stream = futures_util::stream::unfold(state, |(app, last, hints, slot)| async move {
        loop {
            let config = Arc::clone(&app.config);
            let runs = blocking(move || list(&config))
                .await
                .unwrap_or_else(|e| format!("<p>{}</p>", esc(&e)));
            let deployment = deployment(&app).await;
            if (runs.as_str(), deployment.as_str()) != (last.0.as_str(), last.1.as_str()) {
                let events = vec![
                    Ok::<_, Infallible>(Sse::default().event("runs").data(runs.clone())),
                    Ok(Sse::default().event("deployment").data(deployment.clone())),
                ];
                return Some((
                    futures_util::stream::iter(events),
                    (app, (runs, deployment), hints, slot),
                ));
            }
            match &hints {
                Some(rx) => {
                    let mut rx = rx.lock().await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
                    while rx.try_recv().is_ok() {}
                }
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    });
    axum::response::sse::Sse::new(futures_util::StreamExt::flatten(stream))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn page(title: &str, body: &str, script: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body><p class=\"noprint\"><a href=\"/\">all runs</a></p>{body}{script}</body></html>\n",
        esc(title)
    ))
}

fn problem(code: StatusCode, text: String) -> Response {
    (code, page("runbook", &format!("<p>{}</p>", esc(&text)), "")).into_response()
}

/// Run a blocking journal read off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _one = READ_GATE.lock().await;
    tokio::task::spawn_blocking(f)
        .await
        .expect("a journal read does not panic")
}

/// One journal reader at a time in this process: a sled journal admits one open handle
/// (a second open, in this process too, is `Busy`, and the page would then show only
/// the runs in progress), and the page reads it from many tasks at once.
static READ_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn index(State(app): State<Shared>, who: Option<Extension<Who>>) -> Response {
    let config = Arc::clone(&app.config);
    let listed = blocking(move || list(&config)).await;
    let me = who.map(|Extension(w)| act::whoami(&w)).unwrap_or_default();
    let state = deployment(&app).await;
    match listed {
        Ok(rows) => page(
            "runbook: runs",
            &format!(r#"{me}<div id="deployment">{state}</div><div id="runs">{rows}</div><p class="noprint muted">Live: the list and the deployment follow as they change (reload if scripts are off).</p>"#),
            INDEX_SCRIPT,
        )
        .into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

fn list(config: &Config) -> Result<String, String> {
    let mut out = String::from("<h1>Runs</h1>");
    let runs = match crate::review::journal(config) {
        None => return Ok(out + "<p>No runs yet.</p>"),
        Some(Ok(j)) => j.runs().map_err(|e| e.to_string())?,
        Some(Err(JournalError::Busy { .. })) => {
            out.push_str(
                "<p>A run's process holds the journal: the runs in progress are shown.</p>",
            );
            config
                .live()
                .map(|l| l.active())
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    engine::journal::RunSummary::of(
                        s.run_id.parse().unwrap_or(engine::id::RunId(0)),
                        s,
                    )
                })
                .collect()
        }
        Some(Err(e)) => return Err(e.to_string()),
    };
    // Who holds which site, and how long the driver's lease has left (a database
    // journal), by run.
    let locks = match crate::review::journal(config) {
        Some(Ok(j)) => j.locks().unwrap_or_default(),
        _ => Vec::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    out.push_str("<table><tr><th>run</th><th>runbook</th><th>direction</th><th>status</th><th>started by</th><th>driver and lease</th><th>started</th><th>duration</th><th>stopped at</th></tr>");
    for r in runs.iter().rev() {
        let held: Vec<&(String, engine::lock::LockRecord)> =
            locks.iter().filter(|(_, l)| l.run_id == r.run_id).collect();
        let driver = if held.is_empty() {
            esc(&r.driver)
        } else {
            let sites: Vec<&str> = held.iter().map(|(s, _)| s.as_str()).collect();
            let lease = held[0].1.lease_ms.map(|ms| {
                if ms >= 0 {
                    format!("; lease {} left", crate::review::duration(ms as u64))
                } else {
                    format!(
                        "; lease expired {} ago",
                        crate::review::duration(ms.unsigned_abs())
                    )
                }
            });
            format!(
                "{}<div class=\"muted\">holds {}{}</div>",
                esc(&r.driver),
                esc(&sites.join(", ")),
                esc(&lease.unwrap_or_default())
            )
        };
        let end = if r.status == engine::state::RunStatus::Running {
            now
        } else {
            r.updated_at
        };
        out.push_str(&format!(
            r#"<tr><td><a href="/runs/{id}">{id}</a></td><td>{}{}</td><td>{}</td><td><span class="status {st}">{st}</span>{why}</td><td>{}</td><td>{driver}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&r.runbook),
            if r.forced { r#" <span class="forced" title="a safety guard was overridden">forced</span>"# } else { "" },
            esc(r.direction.as_deref().unwrap_or("")),
            esc(&if r.host.is_empty() { r.operator.clone() } else { format!("{}@{}", r.operator, r.host) }),
            esc(&crate::review::utc(r.created_at)),
            esc(&crate::review::duration(end.saturating_sub(r.created_at))),
            esc(r.halted_at.as_deref().unwrap_or("")),
            id = r.run_id,
            st = r.status.as_str(),
            why = why(r),
        ));
    }
    out.push_str("</table>");
    Ok(out)
}

/// The deployment as the pack reads it (what `check` says: which site serves, which
/// writes, what is fenced or out of traffic, and the verdict), when the page was given
/// an environment file; read at most every 15 s, whoever is looking.
async fn deployment(app: &App) -> String {
    static LAST: tokio::sync::Mutex<Option<(std::time::Instant, String)>> =
        tokio::sync::Mutex::const_new(None);
    if app.config.env_file.is_none() {
        return String::new();
    }
    let mut last = LAST.lock().await;
    if let Some((at, html)) = last
        .as_ref()
        .filter(|(at, _)| at.elapsed() < Duration::from_secs(15))
    {
        let _ = at;
        return html.clone();
    }
    let html = match app.config.environment() {
        Ok(env) => {
            let (d, _) = {
                let _one = READ_GATE.lock().await;
                super::metrics::diagnose(&app.config, &Arc::new(env)).await
            };
            let health = serde_json::to_value(d.verdict.health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                r#"<section class="deployment"><h2>The deployment now <span class="status {h}">{h}</span></h2><p>{}</p>{}<pre>{}</pre><p class="muted">read {} (every 15 s at most, as <code>runbook check</code> reads it)</p></section>"#,
                esc(&d.verdict.reason),
                d.verdict
                    .runbook
                    .as_ref()
                    .map(|i| format!(
                        "<p>Recommended: <code>runbook run {}</code></p>",
                        esc(&i.to_string())
                    ))
                    .unwrap_or_default(),
                esc(&d.text),
                esc(&crate::review::utc(engine::event::now_ms())),
                h = esc(&health)
            )
        }
        Err(e) => format!(
            r#"<section class="deployment"><h2>The deployment now</h2><p class="refusal">the environment file cannot be read: {}</p></section>"#,
            esc(&format!("{:#}", e.error))
        ),
    };
    *last = Some((std::time::Instant::now(), html.clone()));
    html
}

/// Why a run stopped where it did (refused, halted, failed), under its status.
fn why(r: &engine::journal::RunSummary) -> String {
    use engine::state::RunStatus;
    match (&r.reason, r.status) {
        (Some(reason), RunStatus::Refused | RunStatus::Halted | RunStatus::Failed) => {
            let short: String = reason.chars().take(240).collect();
            let more = if short.len() < reason.len() {
                "…"
            } else {
                ""
            };
            format!(
                r#"<div class="muted why" title="{}">{}{more}</div>"#,
                esc(reason),
                esc(&short)
            )
        }
        _ => String::new(),
    }
}

async fn review_of(config: Arc<Config>, id: String) -> Result<Review, Response> {
    let run = id
        .parse::<engine::id::RunId>()
        .map_err(|e| problem(StatusCode::NOT_FOUND, e.to_string()))?;
    blocking(move || crate::review::load(&config, run))
        .await
        .map_err(|e| problem(StatusCode::NOT_FOUND, format!("{:#}", e.error)))
}

/// Replaces the live parts as updates arrive; without it the page is complete as sent.
const LIVE_SCRIPT: &str = r#"<script>
(function () {
  // Durations of a run in progress keep counting between updates: each `.tick` is
  // advanced from the value it was served with.
  var base = Date.now();
  function fmt(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.floor((ms % 60000) / 1000) + " s";
  }
  setInterval(function () {
    var d = Date.now() - base;
    var ticks = document.querySelectorAll(".tick");
    for (var i = 0; i < ticks.length; i++) {
      ticks[i].textContent = fmt(parseInt(ticks[i].getAttribute("data-ms"), 10) + d);
    }
  }, 1000);
  if (!window.EventSource) return;
  var es = new EventSource(location.pathname + "/events");
  es.addEventListener("live", function (e) { document.getElementById("live").innerHTML = e.data; base = Date.now(); });
  es.addEventListener("record", function (e) { document.getElementById("record").innerHTML = e.data; });
  es.addEventListener("act", function (e) { var a = document.getElementById("act"); if (a && !a.contains(document.activeElement)) a.innerHTML = e.data; });
  es.addEventListener("end", function () { es.close(); });
})();
</script>"#;

async fn run_page(
    State(app): State<Shared>,
    who: Option<Extension<Who>>,
    Path(id): Path<String>,
) -> Response {
    let who = who.map(|Extension(w)| w);
    let acts = act::forms(&app, who.as_ref(), &id).await;
    match review_of(Arc::clone(&app.config), id).await {
        Ok(r) => {
            let body = format!(
                r#"{me}<div id="live">{}</div><div id="act">{acts}</div><p class="noprint">Live: this page follows the run as it goes (reload if scripts are off). Reports: <a href="/runs/{id}/report.md">Markdown</a> · <a href="/runs/{id}/report.html">HTML</a> · <a href="/runs/{id}/report.json">JSON</a></p><div id="record">{}</div>"#,
                live(&r),
                record(&r),
                me = who.as_ref().map(act::whoami).unwrap_or_default(),
                id = esc(&r.run_id)
            );
            page(&format!("{} {}", r.run_id, r.title), &body, LIVE_SCRIPT).into_response()
        }
        Err(e) => e,
    }
}

async fn report(State(app): State<Shared>, Path((id, format)): Path<(String, String)>) -> Response {
    let r = match review_of(Arc::clone(&app.config), id).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (kind, text) = match format.as_str() {
        "md" => (
            "text/markdown; charset=utf-8",
            crate::review::md::render(&r),
        ),
        "html" => ("text/html; charset=utf-8", crate::review::html::render(&r)),
        "json" => (
            "application/json",
            serde_json::to_string_pretty(&r).unwrap_or_default(),
        ),
        other => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("no report format `{other}` (md, html, json)"),
            )
        }
    };
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

/// Server-sent events: the live part and the record, re-rendered when the run changes,
/// then `end` once it is over.
async fn events(
    State(app): State<Shared>,
    who: Option<Extension<Who>>,
    Path(id): Path<String>,
) -> Response {
    let config = Arc::clone(&app.config);
    let who = who.map(|Extension(w)| w);
    // A run that does not exist has no stream (it would poll forever).
    if let Err(e) = review_of(Arc::clone(&config), id.clone()).await {
        return e;
    }
    let (slot, hints) = match stream_slot() {
        Ok(taken) => taken,
        Err(full) => return *full,
    };
    let viewer = Arc::new((app, who));
    let state = (config, id, String::new(), false, hints, (slot, viewer));
    let stream =
        futures_util::stream::unfold(state, |(config, id, last, done, hints, slot)| async move {
            if done {
                return None;
            }
            loop {
                let r = review_of(Arc::clone(&config), id.clone()).await.ok();
                let seen = r
                    .as_ref()
                    .map(|r| serde_json::to_string(r).unwrap_or_default())
                    .unwrap_or_default();
                if let Some(r) = r.filter(|_| seen != last) {
                    let over = r.status != "running";
                    let (app, who) = &*slot.1;
                    let acts = act::forms(app, who.as_ref(), &id).await;
                    let events = vec![
                        Ok::<_, Infallible>(Sse::default().event("live").data(live(&r))),
                        Ok(Sse::default().event("act").data(acts)),
                        Ok(Sse::default().event("record").data(record(&r))),
                        Ok(Sse::default()
                            .event(if over { "end" } else { "tick" })
                            .data("")),
                    ];
                    return Some((
                        futures_util::stream::iter(events),
                        (config, id, seen, over, hints, slot),
                    ));
                }
                match &hints {
                    // The tables stay the truth: read again at least every 2 s.
                    Some(rx) => {
                        let mut rx = rx.lock().await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
                        while rx.try_recv().is_ok() {}
                    }
                    None => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        });
    let stream = futures_util::StreamExt::flatten(stream);
    axum::response::sse::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The database's change hints, shared by the streams (`None` on sled).
type Hints = Option<Arc<tokio::sync::Mutex<tokio::sync::broadcast::Receiver<()>>>>;

/// A slot for one more live stream, and the hints it waits on; 503 when
/// `MAX_STREAMS` are open.
fn stream_slot() -> Result<(StreamSlot, Hints), Box<Response>> {
    let open = STREAMS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let slot = StreamSlot;
    if open >= MAX_STREAMS {
        return Err(Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open already: reload later"),
        )));
    }
    let hints = HINTS
        .get()
        .map(|tx| Arc::new(tokio::sync::Mutex::new(tx.subscribe())));
    Ok((slot, hints))
}

/// One open event stream, counted while it lives.
struct StreamSlot;

impl Drop for StreamSlot {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
