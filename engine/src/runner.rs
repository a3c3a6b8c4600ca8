//! Starting, resuming and aborting runs: the glue between the journal, the locks, the
//! recorder and the executor. The CLI calls these; tests and benchmarks too.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::action::Registry;
use crate::digest::sha256_hex;
use crate::env::Environment;
use crate::event::{now_ms, Actor, Event};
use crate::executor::{Executor, Outcome};
use crate::id::RunId;
use crate::journal::{Journal, JournalError};
use crate::load::{load_str, LoadError};
use crate::model::Runbook;
use crate::params::{env_var_for, ParamError};
use crate::plan::{sites_touched, PlanError};
use crate::recorder::Recorder;
use crate::redact::Redactor;
use crate::report::{Interrupt, Notice, Observer, Prompt};
use crate::resume::{check_resumable, directive_event, Directive, ResumeError};
use crate::state::RunState;
use crate::store::lock::LockRecord;
use crate::template::Templates;

/// What the engine needs from its host (the CLI, a test, a benchmark).
#[derive(Clone)]
pub struct Services {
    pub registry: Arc<Registry>,
    pub observer: Arc<dyn Observer>,
    pub prompt: Option<Arc<dyn Prompt>>,
    pub interrupt: Interrupt,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the run's pinned runbook no longer loads: {0}")]
    Load(#[from] LoadError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Unbound(#[from] crate::action::UnknownAction),
    #[error("journal of run {run} is damaged: {message}")]
    Damaged { run: String, message: String },
}

/// A run to start.
#[derive(Debug)]
pub struct NewRun {
    pub runbook: Runbook,
    pub env: Environment,
    /// All parameter values, secrets included.
    pub params: serde_json::Map<String, Json>,
    /// The secret values, masked everywhere.
    pub secrets: Vec<String>,
    /// The program starting it (`runbook <version> (commit <hash>)`), recorded.
    pub program: Option<String>,
    /// Where its plan moves traffic (`site-a out, site-b in`), recorded for the page.
    pub traffic: Option<String>,
}

/// A halted or failed run to continue.
#[derive(Debug, Default)]
pub struct ResumeRequest {
    pub run: Option<RunId>,
    pub directives: Vec<Directive>,
    /// `None`: the environment file recorded when the run started.
    pub env: Option<Environment>,
    /// Secret parameters given again (`-p name=value`); else from `RUNBOOK_PARAM_*`.
    pub secrets: Vec<(String, String)>,
    /// The runbook's text as found now, to tell the operator it changed.
    pub current_source: Option<String>,
}

/// What resuming found, for the operator.
#[derive(Debug, Clone, Default)]
pub struct ResumeNotes {
    pub runbook_changed: bool,
    pub env_changed: bool,
}

fn lock_record(run: RunId, runbook: &str, actor: &Actor) -> LockRecord {
    LockRecord {
        run_id: run,
        runbook: runbook.to_string(),
        holder: actor.clone(),
        since: now_ms(),
        lease_ms: None,
    }
}

/// Start a run and drive it until it completes, halts or fails.
///
/// # Errors
/// A site held by another run, a plan error, or a journal error.
pub async fn start(
    journal: Journal,
    services: &Services,
    new: NewRun,
) -> Result<(RunId, Outcome), RunError> {
    let actor = Actor::current();
    let params_json = Json::Object(new.params.clone());
    let sites = sites_touched(&new.runbook, &services.registry, &new.env, &params_json)?;
    let secret_params: Vec<String> = new
        .runbook
        .params
        .values()
        .filter(|p| p.secret)
        .map(|p| p.name.clone())
        .collect();
    let mut kept = new.params.clone();
    kept.retain(|k, _| !secret_params.contains(k));
    let redactor = Redactor::new(new.secrets.clone());
    let created = redactor
        .event(Event::RunCreated {
            runbook: new.runbook.name.clone(),
            title: new.runbook.title.clone(),
            origin: new.runbook.origin.clone(),
            source: new.runbook.source.clone(),
            source_hash: new.runbook.source_hash.clone(),
            params: kept,
            secret_params,
            env_file: new.env.file.as_ref().map(|p| p.display().to_string()),
            env_digest: new.env.digest.clone(),
            lab: new.env.lab.is_some(),
            pack: new.runbook.pack.clone(),
            traffic: new.traffic.clone(),
            program: new.program.clone(),
            by: actor.clone(),
            at: now_ms(),
        })
        .map_err(|e| RunError::Damaged {
            run: "new".into(),
            message: e.to_string(),
        })?;
    // Id, site locks and first event in one step: a run refused for a held site
    // leaves nothing behind.
    let id = journal.create_run(&sites, &new.runbook.name, &actor, &created)?;
    let recorder = Recorder::new(journal, id, std::slice::from_ref(&created), redactor);
    let outcome = drive(
        services,
        recorder,
        Arc::new(new.runbook),
        new.env,
        params_json,
        actor,
    )
    .await?;
    Ok((id, outcome))
}

/// Journal a run that is refused before anything is read or done: its first event
/// with the parameters as given (unchecked: they are what could not be acted on), then
/// its refusal by `guard` with `reason`. It takes no site. What `runbook respond` does
/// with an alert it cannot map to the deployment, so that every alert it answers is
/// in the journal.
///
/// # Errors
/// Journal errors.
pub fn refuse(
    journal: &Journal,
    runbook: &crate::model::Runbook,
    params: serde_json::Map<String, Json>,
    env: &Environment,
    guard: &str,
    reason: &str,
) -> Result<RunId, RunError> {
    let actor = Actor::current();
    let created = Event::RunCreated {
        runbook: runbook.name.clone(),
        title: runbook.title.clone(),
        origin: runbook.origin.clone(),
        source: runbook.source.clone(),
        source_hash: runbook.source_hash.clone(),
        params,
        secret_params: Vec::new(),
        env_file: env.file.as_ref().map(|p| p.display().to_string()),
        env_digest: env.digest.clone(),
        lab: env.lab.is_some(),
        pack: runbook.pack.clone(),
        traffic: None,
        program: None,
        by: actor.clone(),
        at: now_ms(),
    };
    let id = journal.create_run(&[], &runbook.name, &actor, &created)?;
    let recorder = Recorder::new(
        journal.clone(),
        id,
        std::slice::from_ref(&created),
        Redactor::default(),
    );
    recorder.record(Event::Refused {
        guard: guard.to_string(),
        step: None,
        item: None,
        reason: reason.to_string(),
        observation: Json::Null,
        at: now_ms(),
    })?;
    Ok(id)
}

/// The state of a run, folded from its journal.
///
/// # Errors
/// Unknown run, or an unreadable journal.
pub fn run_state(journal: &Journal, run: RunId) -> Result<RunState, RunError> {
    let events = journal.events(run)?;
    Ok(RunState::fold(&run.to_string(), &events))
}

/// The pinned runbook text and origin of a run.
///
/// # Errors
/// Unknown run, or a journal that does not start with `RunCreated`.
pub fn pinned_source(journal: &Journal, run: RunId) -> Result<(String, String), RunError> {
    match journal.events(run)?.into_iter().next() {
        Some(Event::RunCreated { source, origin, .. }) => Ok((source, origin)),
        _ => Err(RunError::Damaged {
            run: run.to_string(),
            message: "its first event is not `run_created`".into(),
        }),
    }
}

/// Continue a halted or failed run from where it stopped.
///
/// # Errors
/// The run is over or unknown, a directive does not fit, a secret parameter is
/// missing, or a journal error.
pub async fn resume(
    journal: Journal,
    services: &Services,
    req: ResumeRequest,
) -> Result<(RunId, Outcome, ResumeNotes), RunError> {
    let run = req.run.ok_or_else(|| RunError::Damaged {
        run: "?".into(),
        message: "no run id".into(),
    })?;
    let events = journal.events(run)?;
    let state = RunState::fold(&run.to_string(), &events);
    check_resumable(&state)?;
    let Some(Event::RunCreated {
        source,
        origin,
        params,
        env_file,
        pack,
        ..
    }) = events.first()
    else {
        return Err(RunError::Damaged {
            run: run.to_string(),
            message: "its first event is not `run_created`".into(),
        });
    };
    let mut runbook = load_str(source, origin, &services.registry)?;
    // Its pack as recorded (a run journaled before packs were recorded has none, and
    // is read as the pack of unmarked runs').
    runbook.pack = pack.clone();
    let env = match req.env {
        Some(env) => env,
        None => recorded_env(run, env_file.as_deref(), services.registry.env_schema())?,
    };
    let notes = ResumeNotes {
        runbook_changed: req
            .current_source
            .as_ref()
            .is_some_and(|t| sha256_hex(t) != state.source_hash),
        env_changed: env.digest != state.env_digest,
    };
    let (values, secrets) = with_secrets(&runbook, params.clone(), &req.secrets)?;
    let actor = Actor::current();
    // Check every directive before recording any of them.
    let directive_events = req
        .directives
        .iter()
        .map(|d| directive_event(&state, &runbook, &services.registry, d, &actor))
        .collect::<Result<Vec<_>, _>>()?;
    let params_json = Json::Object(values);
    let sites = sites_touched(&runbook, &services.registry, &env, &params_json)?;
    journal.acquire(&sites, &lock_record(run, &runbook.name, &actor))?;
    let recorder = Recorder::new(journal, run, &events, Redactor::new(secrets));
    for ev in directive_events {
        recorder.record(ev)?;
    }
    let took_over_from =
        (state.status == crate::state::RunStatus::Running).then(|| state.driver.clone());
    recorder.record(Event::Resumed {
        by: actor.clone(),
        runbook_changed: notes.runbook_changed,
        took_over_from,
        at: now_ms(),
    })?;
    tell_changes(services, &runbook, &notes);
    let outcome = drive(
        services,
        recorder,
        Arc::new(runbook),
        env,
        params_json,
        actor,
    )
    .await?;
    Ok((run, outcome, notes))
}

/// The environment file the run started with, read again.
fn recorded_env(
    run: RunId,
    file: Option<&str>,
    schema: &dyn crate::env::EnvSchema,
) -> Result<Environment, RunError> {
    match file {
        Some(path) => {
            Environment::load(std::path::Path::new(path), schema).map_err(|e| RunError::Damaged {
                run: run.to_string(),
                message: format!("{e} (give the environment file with --env)"),
            })
        }
        None => Ok(Environment::empty()),
    }
}

/// The pinned parameters plus the secrets given again (`-p`, else
/// `RUNBOOK_PARAM_*`): all values, and the secret ones alone (to mask).
fn with_secrets(
    runbook: &Runbook,
    mut values: serde_json::Map<String, Json>,
    given: &[(String, String)],
) -> Result<(serde_json::Map<String, Json>, Vec<String>), RunError> {
    let mut secrets = Vec::new();
    for p in runbook.params.values().filter(|p| p.secret) {
        let again = given
            .iter()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone());
        let Some(v) = again.or_else(|| std::env::var(env_var_for(&p.name)).ok()) else {
            return Err(ParamError::Missing {
                name: p.name.clone(),
                hint: format!(
                    ": secret parameters are never stored, give it again with {} or -p {}=...",
                    env_var_for(&p.name),
                    p.name
                ),
            }
            .into());
        };
        secrets.push(v.clone());
        values.insert(p.name.clone(), Json::String(v));
    }
    if let Some((k, _)) = given
        .iter()
        .find(|(k, _)| !runbook.params.get(k).is_some_and(|p| p.secret))
    {
        return Err(ParamError::Unknown {
            runbook: runbook.name.clone(),
            name: k.clone(),
            known: "only secret parameters can be given on resume; the others are pinned".into(),
        }
        .into());
    }
    Ok((values, secrets))
}

/// Tell the operator what changed since the run started.
fn tell_changes(services: &Services, runbook: &Runbook, notes: &ResumeNotes) {
    if notes.runbook_changed {
        services.observer.notice(Notice::Note(format!(
            "runbook `{}` changed since this run started; resuming with the text pinned in the journal (sha256 {})",
            runbook.name,
            &runbook.source_hash[..12]
        )));
    }
    if notes.env_changed {
        services.observer.notice(Notice::Note(
            "the environment file differs from the one this run started with; using the current one".into(),
        ));
    }
}

/// Abort a run that is not over: it will never be resumed, and its site locks go.
///
/// # Errors
/// Unknown run, already over, or a journal error.
pub fn abort(journal: Journal, run: RunId, reason: &str, by: &Actor) -> Result<RunState, RunError> {
    let events = journal.events(run)?;
    let state = RunState::fold(&run.to_string(), &events);
    check_resumable(&state)?;
    // A run still driven elsewhere is not aborted under its driver (a lease store
    // refuses while the driver's lease lasts).
    take_its_sites(&journal, run, &state.runbook, by)?;
    let recorder = Recorder::new(journal, run, &events, Redactor::default());
    recorder.record(Event::Aborted {
        reason: reason.to_string(),
        by: by.clone(),
        at: now_ms(),
    })?;
    Ok(recorder.snapshot())
}

/// Take the sites run `run` holds, for `by`, before writing to it from outside its
/// driver: refused (`LeaseHeld`) while another process's lease on them lasts.
fn take_its_sites(
    journal: &Journal,
    run: RunId,
    runbook: &str,
    by: &Actor,
) -> Result<(), RunError> {
    let sites: Vec<String> = journal
        .locks()?
        .into_iter()
        .filter(|(_, h)| h.run_id == run)
        .map(|(site, _)| site)
        .collect();
    journal.acquire(&sites, &lock_record(run, runbook, by))?;
    Ok(())
}

/// Journal an operator's decision on a halted run (approve a gate, skip or retry a
/// step) without driving it: the run goes on at its next `resume`, by whoever drives
/// it. What the page's buttons do; checked as `resume` checks its directives.
///
/// # Errors
/// The run is over or being driven, the directive does not fit (four eyes included),
/// the pinned runbook no longer loads; journal errors.
pub fn decide(
    journal: Journal,
    registry: &crate::action::Registry,
    run: RunId,
    directive: &Directive,
    by: &Actor,
) -> Result<RunState, RunError> {
    let events = journal.events(run)?;
    let state = RunState::fold(&run.to_string(), &events);
    check_resumable(&state)?;
    if state.status == crate::state::RunStatus::Running {
        return Err(ResumeError::Driven {
            run: run.to_string(),
        }
        .into());
    }
    let Some(Event::RunCreated { source, origin, .. }) = events.first() else {
        return Err(RunError::Damaged {
            run: run.to_string(),
            message: "its first event is not `run_created`".into(),
        });
    };
    let runbook = load_str(source, origin, registry)?;
    let event = directive_event(&state, &runbook, registry, directive, by)?;
    take_its_sites(&journal, run, &state.runbook, by)?;
    let recorder = Recorder::new(journal, run, &events, Redactor::default());
    recorder.record(event)?;
    // Whoever drives the run next need not wait out this lease.
    recorder.journal().let_go(run)?;
    Ok(recorder.snapshot())
}

/// The journal's facts about the sites (`history` in templates): from the runs of the
/// four procedures, oldest first, leaving out run `except` (the one being driven).
///
/// # Errors
/// An unreadable journal.
///
/// Against a lab (`env.lab`), only the runs against that same lab count (the same
/// environment digest: a new lab is a new deployment); against real sites, every run
/// that was not against a lab.
pub fn history(
    journal: &Journal,
    except: Option<RunId>,
    env: &Environment,
    reading: &dyn crate::history::HistoryFacts,
) -> Result<Json, RunError> {
    let mut states = Vec::new();
    for r in journal.runs()? {
        let all = reading.reads_all();
        if Some(r.run_id) == except || !(all || reading.procedures().contains(&r.runbook.as_str()))
        {
            continue;
        }
        let state = run_state(journal, r.run_id)?;
        // Two packs may both have a `failover`: each reads its own runs only.
        if !all && !reading.owns(state.pack.as_deref()) {
            continue;
        }
        // A rehearsal never enters a real deployment's history, nor a real run a
        // lab's: a lab's runs count for that same lab only.
        let other = match env.lab {
            Some(_) => state.env_digest != env.digest,
            None => state.lab,
        };
        if other {
            continue;
        }
        states.push(state);
    }
    Ok(reading.facts(&states))
}

/// The facts templates get as `history`: the pack's reading (`reading`) and, under
/// `deployment`, the step library's ledger of every run (what the actions did to the
/// sites, whatever pack or file held them). `journal` `None`: nothing recorded yet.
///
/// # Errors
/// The journal cannot be read.
pub fn facts(
    journal: Option<&Journal>,
    except: Option<RunId>,
    env: &Environment,
    registry: &crate::action::Registry,
    pack: Option<&str>,
) -> Result<Json, RunError> {
    let reading = registry.history(pack);
    let mut out = match journal {
        Some(j) => history(j, except, env, reading)?,
        None => reading.none(),
    };
    if let Some(ledger) = registry.ledger() {
        let d = match journal {
            Some(j) => history(j, except, env, ledger)?,
            None => ledger.none(),
        };
        match &mut out {
            Json::Object(m) => {
                m.insert("deployment".into(), d);
            }
            other => *other = serde_json::json!({ "deployment": d }),
        }
    }
    Ok(out)
}

async fn drive(
    services: &Services,
    recorder: Arc<Recorder>,
    runbook: Arc<Runbook>,
    env: Environment,
    params: Json,
    actor: Actor,
) -> Result<Outcome, RunError> {
    recorder.set_order(
        runbook.steps.iter().map(|s| s.id.clone()).collect(),
        runbook
            .steps
            .iter()
            .filter(|s| !s.title.is_empty())
            .map(|s| (s.id.clone(), s.title.clone()))
            .collect(),
    );
    let history = facts(
        runbook.uses_history.then(|| recorder.journal()),
        Some(recorder.run_id()),
        &env,
        &services.registry,
        runbook.pack.as_deref(),
    )?;
    let actions = services.registry.bind(&runbook)?;
    let executor = Arc::new(Executor {
        history,
        actions,
        runbook,
        registry: Arc::clone(&services.registry),
        env: Arc::new(env),
        params,
        recorder: Arc::clone(&recorder),
        observer: Arc::clone(&services.observer),
        interrupt: services.interrupt.clone(),
        prompt: services.prompt.clone(),
        actor,
        templates: Arc::new(Templates::new()),
    });
    let publisher = recorder.spawn_live_publisher();
    let renewer = spawn_renewer(recorder.journal().clone());
    let asked = Arc::new(std::sync::Mutex::new(None::<AbortRequest>));
    let watcher = spawn_abort_watcher(
        recorder.journal().clone(),
        recorder.run_id(),
        Arc::clone(&asked),
        services.interrupt.clone(),
        Arc::clone(&services.observer),
    );
    let outcome = executor.drive().await;
    watcher.abort();
    if let Some(r) = renewer {
        r.abort();
    }
    let mut outcome = outcome?;
    let request = asked.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(req) = request {
        recorder.journal().clear_abort_request(recorder.run_id());
        if !outcome.status.is_final() {
            // Stopped at a safe point for the operator who asked: the run ends here.
            recorder.record(Event::Aborted {
                reason: req.reason.clone(),
                by: req.by.clone(),
                at: now_ms(),
            })?;
            outcome = Outcome {
                status: crate::state::RunStatus::Aborted,
                halted_at: outcome.halted_at,
                reason: Some(format!(
                    "aborted by {}@{} from another terminal, at the next safe point: {}",
                    req.by.operator, req.by.host, req.reason
                )),
            };
        }
    }
    publisher.abort();
    recorder.withdraw_live();
    if !outcome.status.is_final() {
        // Halted or failed: this process drives it no more, so whoever acts next (a
        // resume elsewhere, a decision from the page) need not wait out the lease.
        if let Err(e) = recorder.journal().let_go(recorder.run_id()) {
            tracing::warn!("the run's lease could not be given up ({e}); it expires on its own");
        }
    }
    Ok(outcome)
}

/// A request, from another process, to abort a run at its driver's next safe point.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AbortRequest {
    pub reason: String,
    pub by: Actor,
    pub at: u64,
}

/// Watch for a request to abort the run being driven: when one comes, stop at the
/// next safe point (the current step finishes or is left in doubt, as with Ctrl-C),
/// and `drive` records the abort.
fn spawn_abort_watcher(
    journal: Journal,
    run: RunId,
    asked: Arc<std::sync::Mutex<Option<AbortRequest>>>,
    interrupt: Interrupt,
    observer: Arc<dyn Observer>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let j = journal.clone();
            let Ok(found) = tokio::task::spawn_blocking(move || j.abort_request(run)).await else {
                return;
            };
            let Some(req) = found.and_then(|t| serde_json::from_str::<AbortRequest>(&t).ok())
            else {
                continue;
            };
            observer.notice(Notice::Note(format!(
                "{}@{} asked to abort this run ({}): stopping at the next safe point",
                req.by.operator, req.by.host, req.reason
            )));
            *asked.lock().unwrap_or_else(|p| p.into_inner()) = Some(req);
            interrupt.trigger();
            return;
        }
    })
}

/// Renew the driver's lease every third of its time to live while the run is driven
/// (for stores whose leases expire). A renewal refused is not acted on here: the next
/// `confirm` before an effect finds the lease stale and stops the run.
fn spawn_renewer(journal: Journal) -> Option<tokio::task::JoinHandle<()>> {
    let (run, ttl) = journal.lease()?;
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            let j = journal.clone();
            match tokio::task::spawn_blocking(move || j.renew(run)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("lease renewal of {run}: {e}"),
                Err(_) => return,
            }
        }
    }))
}

/// The value an earlier run recorded: the output `from.output` of step `from.step` in
/// a run of one of `from.runbooks` where that step succeeded and whose parameters named
/// in `from.same_params` equal `params`'. The newest such run; with
/// `from.since_completed`, the first such run after the last completed run of those
/// runbooks.
///
/// # Errors
/// An unreadable journal.
pub fn recorded_output(
    journal: &Journal,
    from: &crate::model::FromRun,
    params: &serde_json::Map<String, Json>,
) -> Result<Option<(Json, RunId)>, RunError> {
    let runs = journal.runs()?;
    let same = |state: &RunState| {
        from.same_params
            .iter()
            .all(|p| state.params.get(p) == params.get(p))
    };
    let value = |state: &RunState| {
        let st = state.steps.get(&from.step)?;
        (st.progress.status == crate::state::StepStatus::Succeeded)
            .then(|| st.progress.outputs.get(&from.output).cloned())
            .flatten()
    };
    // Newest first by default; with `since_completed`, oldest first among the runs
    // after the last completed one of those runbooks (matching params).
    let candidates: Vec<&crate::journal::RunSummary> = if from.since_completed.is_empty() {
        runs.iter().rev().collect()
    } else {
        let mut start = 0;
        for (i, r) in runs.iter().enumerate() {
            if from.since_completed.contains(&r.runbook)
                && r.status == crate::state::RunStatus::Completed
                && same(&run_state(journal, r.run_id)?)
            {
                start = i + 1;
            }
        }
        runs[start..].iter().collect()
    };
    for r in candidates
        .into_iter()
        .filter(|r| from.runbooks.contains(&r.runbook))
    {
        let state = run_state(journal, r.run_id)?;
        if !same(&state) {
            continue;
        }
        if let Some(v) = value(&state) {
            return Ok(Some((v, r.run_id)));
        }
    }
    Ok(None)
}

/// A runbook ready to plan or run: parameters resolved (given, recorded by earlier
/// runs, defaults), the journal's facts about the sites read, the environment beside
/// it. What `plan`, `run` and `check` all go through.
#[derive(Debug)]
pub struct Prepared {
    pub runbook: Runbook,
    pub env: Environment,
    pub params: serde_json::Map<String, Json>,
    /// The secret parameters' values (masked everywhere).
    pub secrets: Vec<String>,
    /// The journal's facts about the sites (`history`), for guards.
    pub history: Json,
    /// What was taken from earlier runs, for the operator.
    pub notes: Vec<String>,
}

/// Whether preparing `runbook` reads the journal (its history facts, or a parameter
/// recorded by an earlier run).
pub fn needs_journal(runbook: &Runbook) -> bool {
    runbook.uses_history || runbook.params.values().any(|p| p.from_run.is_some())
}

/// Resolve `runbook`'s parameters and read its history facts, from `journal` when
/// there is one (nothing is written).
///
/// # Errors
/// Invalid parameters, or a journal that cannot be read.
pub fn prepare(
    runbook: Runbook,
    env: Environment,
    journal: Option<&Journal>,
    given: &[(String, String)],
    registry: &crate::action::Registry,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Prepared, RunError> {
    let history = facts(
        journal.filter(|_| runbook.uses_history),
        None,
        &env,
        registry,
        runbook.pack.as_deref(),
    )?;
    let mut notes = Vec::new();
    let mut failure = None;
    let resolved = {
        let notes = std::sync::Mutex::new(&mut notes);
        let failure = std::sync::Mutex::new(&mut failure);
        crate::params::resolve_with(&runbook, given, lookup, |from, so_far| {
            let found = match recorded_output(journal?, from, so_far) {
                Ok(found) => found?,
                Err(e) => {
                    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(e);
                    return None;
                }
            };
            let (v, run) = found;
            notes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!(
                    "{v}, recorded by run {run} (step `{}`, output `{}`)",
                    from.step, from.output
                ));
            Some(v)
        })
    };
    if let Some(e) = failure {
        return Err(e);
    }
    let (params, secrets) = resolved?;
    Ok(Prepared {
        runbook,
        env,
        params,
        secrets,
        history,
        notes,
    })
}
