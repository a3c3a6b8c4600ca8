//! Acting from the page (with `--users`): log in and out, approve a gate, skip or
//! retry a step, abort or resume a run. Each write is a form POST that carries the
//! session's CSRF token; each is journaled with the person who made it (their name as
//! the users file gives it, this host). Approve, skip and retry journal the decision
//! on the halted run (`engine::runner::decide`, checked as `resume` checks its
//! directives, four eyes included); abort and resume run this binary's own `abort` and
//! `resume` as that person, with the journal, environment file and pack `serve` was
//! given, so they behave exactly as typed in a terminal.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use engine::event::Actor;
use engine::resume::Directive;
use serde::Deserialize;

use super::auth::{Role, Who, COOKIE};
use super::{blocking, page, problem, App};
use crate::review::html::esc;

#[derive(Deserialize)]
pub struct Login {
    user: String,
    password: String,
}

pub async fn login_page() -> Response {
    page(
        "runbook: log in",
        r#"<h1>Log in</h1><form method="post" action="/login"><p><label>Name <input name="user" autocomplete="username" required></label></p><p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p><p><button type="submit">Log in</button></p></form>"#,
        "",
    )
    .into_response()
}

pub async fn login(State(app): State<Arc<App>>, Form(f): Form<Login>) -> Response {
    let Some(auth) = app.auth.clone() else {
        return problem(StatusCode::NOT_FOUND, "this page has no login".into());
    };
    let (user, password) = (f.user.clone(), f.password);
    let opened = blocking(move || auth.login(&user, &password)).await;
    match opened {
        Ok((id, _)) => {
            tracing::info!(user = %f.user, "serve: logged in");
            let secure = if app.tls { "; Secure" } else { "" };
            let ttl = app.auth.as_ref().map_or(0, |a| a.ttl().as_secs());
            (
                [(
                    header::SET_COOKIE,
                    format!(
                        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={ttl}{secure}"
                    ),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(super::auth::Refused::Wrong) => {
            tracing::warn!(user = %f.user, "serve: a login failed");
            problem(
                StatusCode::UNAUTHORIZED,
                "wrong name or password (log in again: /login)".into(),
            )
        }
        Err(super::auth::Refused::Locked(left)) => {
            tracing::warn!(user = %f.user, "serve: a login refused: too many failures");
            problem(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins for this name: try again in {} s",
                    left.as_secs() + 1
                ),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Form(f): Form<Csrf>,
) -> Response {
    if let Some(e) = refused(&who, &f.csrf, Role::Viewer, "log out") {
        return e;
    }
    if let Some(auth) = &app.auth {
        auth.logout(&headers);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// One form: which step, why, and the typed confirmation.
#[derive(Deserialize)]
pub struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    reason: String,
    /// The site's name, typed, for a gate before a step that acts on a site.
    #[serde(default)]
    confirm: String,
}

/// Why this write is refused, if it is: the role first (403 naming it), then the
/// session's CSRF token (a bearer token has none to match).
fn refused(who: &Who, sent: &str, role: Role, what: &str) -> Option<Response> {
    if !who.may(role) {
        return Some(problem(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not {what}: that needs the {} role (the users file gives {})",
                who.name,
                role.as_str(),
                who.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    match &who.csrf {
        Some(want) if !constant_eq(want, sent) => Some(problem(
            StatusCode::FORBIDDEN,
            "this form is stale or was not sent by this page (CSRF token): reload the page and act again".into(),
        )),
        _ => None,
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The person, as the journal records them.
fn actor(who: &Who) -> Actor {
    Actor {
        operator: who.name.clone(),
        ..Actor::current()
    }
}

fn back(id: &str) -> Response {
    Redirect::to(&format!("/runs/{}", esc(id))).into_response()
}

pub async fn decide(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path((id, verb)): Path<(String, String)>,
    Form(f): Form<Decision>,
) -> Response {
    let directive = match verb.as_str() {
        "approve" => Directive::Approve(f.step.clone()),
        "skip" => Directive::Skip {
            step: f.step.clone(),
            reason: f.reason.clone(),
        },
        "retry" => Directive::Retry(f.step.clone()),
        other => return problem(StatusCode::NOT_FOUND, format!("no action `{other}`")),
    };
    let role = if verb == "approve" {
        Role::Approver
    } else {
        Role::Operator
    };
    if let Some(e) = refused(&who, &f.csrf, role, &format!("{verb} a step")) {
        return e;
    }
    let run = match super::super::run_id(&id) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::NOT_FOUND, format!("{:#}", e.error)),
    };
    let by = actor(&who);
    let config = Arc::clone(&app.config);
    let confirm = f.confirm.trim().to_string();
    let done = blocking(move || -> Result<(), String> {
        let journal = match crate::review::journal(&config) {
            Some(Ok(j)) => j,
            Some(Err(engine::journal::JournalError::Busy { .. })) => return Err(
                "a process is driving a run in this journal (a sled journal admits one process at a time): act once it halts, or use a PostgreSQL journal".into(),
            ),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("no journal here".into()),
        };
        if let Directive::Approve(step) = &directive {
            typed_site(&journal, run, step, &confirm)?;
        }
        engine::runner::decide(journal, &config.registry, run, &directive, &by)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(()) => {
            tracing::info!(user = %who.name, run = %id, step = %f.step, "serve: {verb}");
            back(&id)
        }
        Err(e) => problem(StatusCode::CONFLICT, e),
    }
}

/// A gate waiting for a second person before a step on a site: its name must be typed,
/// as the terminal asks before a run that removes a site's data.
fn typed_site(
    journal: &engine::journal::Journal,
    run: engine::id::RunId,
    step: &str,
    typed: &str,
) -> Result<(), String> {
    let state = engine::runner::run_state(journal, run).map_err(|e| e.to_string())?;
    let at_gate = state.halt.as_ref().and_then(|h| h.step.as_deref()) == Some(step);
    match engine::resume::SecondApproval::of(&state).filter(|_| at_gate) {
        Some(engine::resume::SecondApproval {
            site: Some(site), next, ..
        }) if typed != site => Err(format!(
            "`{step}` lets `{next}` act on site `{site}`: type `{site}` to approve it (you typed `{typed}`)"
        )),
        _ => Ok(()),
    }
}

pub async fn abort(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Form(f): Form<Decision>,
) -> Response {
    if let Some(e) = refused(&who, &f.csrf, Role::Operator, "abort a run") {
        return e;
    }
    if f.reason.trim().is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "say why the run is aborted (the reason is journaled)".into(),
        );
    }
    let args = vec![
        "abort".to_string(),
        id.clone(),
        "--reason".into(),
        f.reason.clone(),
    ];
    match child(&app, &who, args, true).await {
        Ok(()) => back(&id),
        Err(e) => problem(StatusCode::CONFLICT, e),
    }
}

pub async fn resume(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Form(f): Form<Decision>,
) -> Response {
    if let Some(e) = refused(&who, &f.csrf, Role::Operator, "resume a run") {
        return e;
    }
    if app.config.env_file.is_none() {
        return problem(
            StatusCode::CONFLICT,
            format!("this page was started without an environment file (--env), so it cannot drive a run: resume it from a terminal with `runbook resume {id}`"),
        );
    }
    // Driven in the background: the page follows it live.
    match child(&app, &who, vec!["resume".into(), id.clone()], false).await {
        Ok(()) => back(&id),
        Err(e) => problem(StatusCode::CONFLICT, e),
    }
}

/// Run this binary as `who` with serve's journal, environment and pack; wait for it
/// (`wait`) and answer its last line of error, or leave it driving.
async fn child(app: &App, who: &Who, args: Vec<String>, wait: bool) -> Result<(), String> {
    let mut c = std::process::Command::new(&app.exe);
    c.args(&args)
        .env("RUNBOOK_OPERATOR", &who.name)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &app.child_env {
        c.env(k, v);
    }
    tracing::info!(user = %who.name, "serve: runbook {}", args.join(" "));
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start runbook: {e}"))?;
    if !wait {
        // Reaped when it ends, so that no zombie is left.
        tokio::task::spawn_blocking(move || child.wait());
        return Ok(());
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("it failed")
        .to_string())
}

/// Who is logged in, and the way out.
pub fn whoami(who: &Who) -> String {
    let roles: Vec<&str> = who.roles.iter().map(|r| r.as_str()).collect();
    let out = match &who.csrf {
        Some(csrf) => format!(
            r#" <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Log out</button></form>"#,
            esc(csrf)
        ),
        None => String::new(),
    };
    format!(
        r#"<div class="noprint whoami">Logged in as <strong>{}</strong> ({}){out}</div>"#,
        esc(&who.name),
        esc(&roles.join(", "))
    )
}

/// The actions this person may take on run `id` as it stands: nothing for a run that
/// is over, nothing without a login.
pub async fn forms(app: &App, who: Option<&Who>, id: &str) -> String {
    let Some(who) = who.cloned() else {
        return String::new();
    };
    let Ok(run) = super::super::run_id(id) else {
        return String::new();
    };
    let config = Arc::clone(&app.config);
    let state = blocking(move || match crate::review::journal(&config) {
        Some(Ok(j)) => engine::runner::run_state(&j, run).ok(),
        _ => None,
    })
    .await;
    match state {
        Some(state) if !state.status.is_final() => {
            let mut html = render_forms(&state, &who, app.config.env_file.is_some());
            if let Some(second) = engine::resume::SecondApproval::of(&state) {
                let judged = guards_now(app, run, &second.next).await;
                html = html.replacen("</section>", &format!("{judged}</section>"), 1);
            }
            html
        }
        _ => String::new(),
    }
}

/// The guards judged right before `next`, as they judge now against the deployment
/// (read only, with the run's parameters): what the approver lets through. Needs the
/// environment file; a guard that reads an earlier step's outputs says it cannot be
/// judged before the run gets there.
async fn guards_now(app: &App, run: engine::id::RunId, next: &str) -> String {
    let config = Arc::clone(&app.config);
    if config.env_file.is_none() {
        return r#"<p class="muted">Its guards are judged when the run gets there (this page has no environment file to judge them now).</p>"#.into();
    }
    let pinned = blocking(move || -> Result<_, String> {
        let journal = match crate::review::journal(&config) {
            Some(Ok(j)) => j,
            _ => return Err("the journal cannot be read now".into()),
        };
        let (source, origin) =
            engine::runner::pinned_source(&journal, run).map_err(|e| e.to_string())?;
        let state = engine::runner::run_state(&journal, run).map_err(|e| e.to_string())?;
        drop(journal);
        let runbook = engine::load::load_str(&source, &origin, &config.registry)
            .map_err(|e| e.to_string())?;
        let env = Arc::new(config.environment().map_err(|e| format!("{:#}", e.error))?);
        let history = super::super::check::pack_history(&config, &env);
        Ok((runbook, env, state, history))
    })
    .await;
    let (runbook, env, state, history) = match pinned {
        Ok(p) => p,
        Err(e) => {
            return format!(
                r#"<p class="muted">Its guards cannot be judged now: {}</p>"#,
                esc(&e)
            )
        }
    };
    let templates = engine::template::Templates::new();
    let run_id = state.run_id.clone();
    let ge = engine::guard::GuardEnv {
        registry: &app.config.registry,
        env: &env,
        templates: &templates,
        run_id: &run_id,
        timeout: env.scaled_timeout(std::time::Duration::from_secs(30)),
        interrupt: Default::default(),
    };
    let params = serde_json::Value::Object(state.params.clone());
    let scope = engine::scope::base_scope(&params, &env, &run_id, serde_json::json!({}), &history);
    let mut items = String::new();
    for g in runbook
        .guards
        .iter()
        .filter(|g| g.before.iter().any(|s| s == next))
    {
        let c = engine::guard::check(g, &ge, &scope).await;
        let (mark, class, said) = match (c.applies, c.holds) {
            (false, _) => ("–", "muted", "does not apply to this run".to_string()),
            (true, Some(true)) => ("✓", "holds", "holds now".to_string()),
            (true, Some(false)) => ("✗", "refusal", c.refusal.clone()),
            (true, None) => (
                "?",
                "refusal",
                format!("cannot be judged now: {}", c.refusal),
            ),
        };
        items.push_str(&format!(
            r#"<li class="{class}"><span>{mark}</span> <strong>{}</strong>: {}</li>"#,
            esc(&g.title),
            esc(&said)
        ));
    }
    if items.is_empty() {
        return format!(
            "<p class=\"muted\">No guard is judged before `{}`.</p>",
            esc(next)
        );
    }
    format!(
        r#"<div class="guards-now"><p>The guards judged right before `{}`, as they judge now ({}):</p><ul>{items}</ul></div>"#,
        esc(next),
        esc(&crate::review::utc(engine::event::now_ms()))
    )
}

fn hidden(who: &Who, step: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}"><input type="hidden" name="step" value="{}">"#,
        esc(who.csrf.as_deref().unwrap_or_default()),
        esc(step)
    )
}

fn render_forms(state: &engine::state::RunState, who: &Who, can_drive: bool) -> String {
    use engine::event::HaltKind;
    let id = esc(&state.run_id);
    let halted = state.status != engine::state::RunStatus::Running;
    let halt = state.halt.as_ref();
    let step = halt.and_then(|h| h.step.clone()).unwrap_or_default();
    let kind = halt.and_then(|h| h.kind);
    let mut out = String::from(r#"<section class="act noprint"><h2>Act</h2>"#);
    if halted && matches!(kind, Some(HaltKind::ManualGate | HaltKind::SecondApproval)) {
        out.push_str(&approve_form(state, who, &step));
    }
    if halted && who.may(Role::Operator) && kind == Some(HaltKind::InDoubt) {
        out.push_str(&format!(
            r#"<form method="post" action="/runs/{id}/step/retry">{h}<button type="submit">Retry `{s}`</button> (apply it again)</form><form method="post" action="/runs/{id}/step/skip">{h}<label>Why skipping `{s}` is safe <input name="reason" required></label> <button type="submit">Skip `{s}`</button></form>"#,
            h = hidden(who, &step),
            s = esc(&step)
        ));
    }
    if halted && who.may(Role::Operator) {
        out.push_str(&if can_drive {
            format!(r#"<form method="post" action="/runs/{id}/resume">{}<button type="submit">Resume {id}</button> (this server drives it, as you)</form>"#, hidden(who, ""))
        } else {
            format!(r#"<p class="muted">Resume from a terminal: <code>runbook resume {id}</code> (this page was started without --env)</p>"#)
        });
    }
    if who.may(Role::Operator) {
        out.push_str(&format!(
            r#"<form method="post" action="/runs/{id}/abort">{}<label>Why abort <input name="reason" required></label> <button type="submit" class="danger">Abort {id}</button></form>"#,
            hidden(who, "")
        ));
    }
    out.push_str("</section>");
    out
}

/// The approval of the gate a run waits at: for an approver who is not the run's
/// starter or driver when four eyes applies; the site's name typed when the step it
/// lets through acts on one.
fn approve_form(state: &engine::state::RunState, who: &Who, step: &str) -> String {
    let id = esc(&state.run_id);
    let second = engine::resume::SecondApproval::of(state);
    if state.approvals.contains(step) {
        return format!(
            r#"<p>`{}` is approved; resume the run to go on.</p>"#,
            esc(step)
        );
    }
    if !who.may(Role::Approver) {
        return format!(
            r#"<p class="muted">`{}` waits for an approver.</p>"#,
            esc(step)
        );
    }
    let own = [&state.created_by.operator, &state.driver.operator];
    if let Some(s) = second.as_ref().filter(|_| own.contains(&&who.name)) {
        return format!(
            r#"<p class="refusal">`{}` comes before `{}`, which {}: four eyes — you started or drive this run, so someone else approves it.</p>"#,
            esc(step),
            esc(&s.next),
            esc(&s.what)
        );
    }
    let (what, typed) = match &second {
        Some(s) => (
            format!(
                "lets `{}` go on, which {}{}",
                esc(&s.next),
                esc(&s.what),
                s.site.as_ref().map(|x| format!(" on site <strong>{}</strong>", esc(x))).unwrap_or_default()
            ),
            s.site
                .as_ref()
                .map(|x| format!(r#" <label>Type <code>{0}</code> to approve <input name="confirm" autocomplete="off" required placeholder="{0}"></label>"#, esc(x)))
                .unwrap_or_default(),
        ),
        None => ("passes the gate".to_string(), String::new()),
    };
    format!(
        r#"<form method="post" action="/runs/{id}/step/approve">{}<p>Approving `{}` {what}.</p><p>{}</p>{typed} <button type="submit">Approve `{}`</button></form>"#,
        hidden(who, step),
        esc(step),
        esc(state
            .halt
            .as_ref()
            .map(|h| h.reason.as_str())
            .unwrap_or_default()),
        esc(step)
    )
}
