//! `runbook bench`: the figures BENCHMARKS.md records, measured in-process on this
//! machine. No assertion: a table to compare.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::action::Registry;
use engine::env::Environment;
use engine::event::{now_ms, Actor, Event};
use engine::journal::Journal;
use engine::model::Effect;
use engine::report::{Interrupt, Notice, Observer, Silent};
use engine::runner::{NewRun, ResumeRequest, Services};
use serde_json::{json, Value as Json};

use crate::cli::BenchArgs;
use crate::config::Config;
use crate::exit::{failed, CliResult, Code};

/// Times of each step start, to measure what a step costs end to end.
#[derive(Default)]
struct StepClock {
    starts: Mutex<Vec<Instant>>,
}

impl Observer for StepClock {
    fn notice(&self, n: Notice) {
        if let Notice::StepStarting { .. } = n {
            self.starts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Instant::now());
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn services(config: &Config, observer: Arc<dyn Observer>) -> Services {
    Services {
        registry: Arc::clone(&config.registry),
        observer,
        prompt: None,
        interrupt: Interrupt::new(),
    }
}

/// A no-op that declares an effect, so the engine journals its intent durably before
/// "applying" it: the cost of a step that changes something, minus the change.
const TOUCH: engine::testing::Stub = engine::testing::Stub::new("bench.touch", Effect::Idempotent);

/// The body of a no-op step: `wait` is read-only, and a zero pause never sleeps.
const NOOP_STEP: &str = "    action: wait\n    with: { duration: 0s }\n";

fn long_runbook(steps: usize, step: &str) -> String {
    let mut y = String::from("name: bench\ntitle: no-op steps\nsteps:\n");
    for i in 0..steps {
        y.push_str(&format!("  - id: s{i}\n{step}"));
    }
    y
}

/// Run `steps` no-op steps in a fresh journal: the time between step starts, sorted,
/// and the whole run's time.
async fn step_overhead(
    registry: Arc<Registry>,
    journal: Journal,
    steps: usize,
    step: &str,
) -> CliResult<(Vec<Duration>, Duration)> {
    let rb = engine::load::load_str(&long_runbook(steps, step), "bench.yaml", &registry)
        .map_err(failed)?;
    let clock = Arc::new(StepClock::default());
    let t0 = Instant::now();
    let (_, outcome) = engine::runner::start(
        journal,
        &Services {
            registry,
            observer: clock.clone(),
            prompt: None,
            interrupt: Interrupt::new(),
        },
        NewRun {
            runbook: rb,
            env: Environment::empty(),
            params: Default::default(),
            secrets: vec![],
            program: None,
            traffic: None,
        },
    )
    .await
    .map_err(failed)?;
    let total = t0.elapsed();
    if outcome.status != engine::state::RunStatus::Completed {
        return Err(failed(anyhow::anyhow!(
            "the benchmark runbook did not complete: {:?}",
            outcome.reason
        )));
    }
    let starts = clock
        .starts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut per_step: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    per_step.sort();
    Ok((per_step, total))
}

fn median_p99(sorted: &[Duration]) -> String {
    format!(
        "median {:.3} ms, p99 {:.3} ms",
        ms(pct(sorted, 0.5)),
        ms(pct(sorted, 0.99))
    )
}

/// One row of the table: what was measured, the figure, the target if any.
type Row = (String, String, String);

fn row(what: impl Into<String>, figure: String, target: &str) -> Row {
    (what.into(), figure, target.into())
}

pub async fn run(config: &Config, args: &BenchArgs) -> CliResult<Code> {
    let dir = tempfile::tempdir().map_err(failed)?;
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(engine_overhead(config, args, dir.path()).await?);
    rows.push(storage_floor(args, &dir.path().join("floor"))?);
    rows.extend(plans_and_loader(config, args).await?);
    rows.extend(resume_with_history(config, args, &dir.path().join("history")).await?);
    rows.extend(against_the_lab(config, args, dir.path()).await?);
    rows.push(fence_via_respond(args, &dir.path().join("respond")).await?);
    rows.push(thirty_alerts(&dir.path().join("thirty")).await?);
    rows.push(row(
        "peak RSS of the bench process itself (lab in-process, generated history)",
        peak_rss_kib()
            .map(|k| format!("{:.1} MB", k as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into()),
        "(a run's own: /usr/bin/time -v, see BENCHMARKS.md)",
    ));
    print_rows(&rows, args.json)?;
    Ok(Code::Ok)
}

fn print_rows(rows: &[Row], json: bool) -> CliResult<()> {
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(w, f, t)| json!({"what": w, "figure": f, "target": t}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(failed)?);
    } else {
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
        println!("{:<w$}  {:<32}  target", "measure", "figure");
        for (what, fig, target) in rows {
            println!("{what:<w$}  {fig:<32}  {target}");
        }
    }
    Ok(())
}

/// 1. Long runbooks of no-op steps, durable flush on: read-only, then declaring an effect.
async fn engine_overhead(
    config: &Config,
    args: &BenchArgs,
    dir: &std::path::Path,
) -> CliResult<Vec<Row>> {
    let sled = |name: &str| Journal::open(&dir.join(name)).map_err(failed);
    let (per_step, total) = step_overhead(
        Arc::clone(&config.registry),
        sled("long")?,
        args.steps,
        NOOP_STEP,
    )
    .await?;
    let mut registry = (*config.registry).clone();
    registry.register(TOUCH);
    let registry = Arc::new(registry);
    let (per_effect, _) = step_overhead(
        Arc::clone(&registry),
        sled("long-effect")?,
        args.steps,
        EFFECT_STEP,
    )
    .await?;
    let mut rows = on_postgresql(config, args, &registry).await?;
    rows.splice(
        0..0,
        vec![
            row(
                "engine overhead per journaled step (no-op read-only action: 1 flush)",
                median_p99(&per_step),
                "< 0.3 ms median",
            ),
            row(
                format!("{}-step runbook end to end", args.steps),
                format!("{:.0} ms", ms(total)),
                "",
            ),
            row(
                "same, the no-op declaring an effect (intent synced, result flushed)",
                median_p99(&per_effect),
                "",
            ),
        ],
    );
    Ok(rows)
}

/// The step a benchmark effect is: the no-op that declares one.
const EFFECT_STEP: &str = "    action: bench.touch\n";

/// With `--journal postgres://...`: the same two runbooks on that database (every
/// append a synchronous commit: an effect step's intent and its result).
async fn on_postgresql(
    config: &Config,
    args: &BenchArgs,
    registry: &Arc<Registry>,
) -> CliResult<Vec<Row>> {
    let Some(db) = &config.journal_db else {
        return Ok(vec![]);
    };
    let journal = || {
        let store = pgstore::PgStore::open(db, config.lease_ttl).map_err(failed)?;
        Ok::<_, crate::exit::CliError>(Journal::over(Arc::new(store), config.journal.clone()))
    };
    let (read_only, _) =
        step_overhead(Arc::clone(registry), journal()?, args.steps, NOOP_STEP).await?;
    let (effect, _) =
        step_overhead(Arc::clone(registry), journal()?, args.steps, EFFECT_STEP).await?;
    Ok(vec![
        row(
            "on PostgreSQL (--journal): per read-only step",
            median_p99(&read_only),
            "",
        ),
        row(
            "on PostgreSQL (--journal): per step declaring an effect (2 synchronous commits)",
            median_p99(&effect),
            "",
        ),
    ])
}

/// The storage floor under the engine's figure: one event appended and flushed, alone.
fn storage_floor(args: &BenchArgs, dir: &std::path::Path) -> CliResult<Row> {
    let journal = Journal::open(dir).map_err(failed)?;
    let actor = Actor::current();
    let created = engine::testing::run_created("floor", json!({}), now_ms());
    let run = journal
        .create_run(&[], "floor", &actor, &created)
        .map_err(failed)?;
    let mut appends = Vec::with_capacity(args.steps);
    for seq in 1..=args.steps as u64 {
        let event = Event::StepSkipped {
            step: format!("s{seq}"),
            item: None,
            reason: "bench".into(),
            at: now_ms(),
        };
        let t = Instant::now();
        journal.append(run, seq, &event, None).map_err(failed)?;
        appends.push(t.elapsed());
    }
    appends.sort();
    Ok(row(
        "of which storage: one event appended and flushed (sled)",
        median_p99(&appends),
        "",
    ))
}

/// Plans of a long runbook and of a 20,000-item fan-out, and the loader on 1 MB inputs.
async fn plans_and_loader(config: &Config, args: &BenchArgs) -> CliResult<Vec<Row>> {
    let t = Instant::now();
    let long = long_runbook(args.steps, NOOP_STEP);
    let rb = engine::load::load_str(&long, "bench.yaml", &config.registry).map_err(failed)?;
    let no_params = Default::default();
    plan_offline(config, &rb, Arc::new(Environment::empty()), &no_params)
        .await
        .map_err(failed)?;
    let long_plan = row(
        format!(
            "plan of the {}-step runbook (load, validate, render)",
            args.steps
        ),
        format!("{:.0} ms", ms(t.elapsed())),
        "",
    );
    Ok(vec![
        long_plan,
        fan_out_plan(config).await?,
        loader_on_1mb(config),
    ])
}

/// A fan-out over 20,000 items (`-p caches=` with 20,000 names): parameters resolved
/// (unique, non-empty) and the plan rendered, each item once.
async fn fan_out_plan(config: &Config) -> CliResult<Row> {
    let fan = "name: fan\nparams:\n  caches: { type: list, default: [a], non_empty: true, unique: true }\nsteps:\n  - id: each\n    action: wait\n    for_each: { items: \"{{ params.caches }}\" }\n    with: { duration: 0s }\n";
    let rb = engine::load::load_str(fan, "fan.yaml", &config.registry).map_err(failed)?;
    let names: Vec<String> = (0..20_000).map(|i| format!("cache{i}")).collect();
    let t = Instant::now();
    let (params, _) = engine::params::resolve_with(
        &rb,
        &[("caches".to_string(), names.join(","))],
        |_| None,
        |_, _| None,
    )
    .map_err(failed)?;
    let fanned = plan_offline(config, &rb, Arc::new(Environment::empty()), &params)
        .await
        .map_err(failed)?;
    let items = fanned.steps[0].items.as_ref().map_or(0, Vec::len);
    Ok(row(
        format!("plan of a fan-out over {items} items (-p caches=<20,000 names>)"),
        format!("{:.0} ms", ms(t.elapsed())),
        "< 1 s",
    ))
}

/// The loader on 1 MB inputs: a long valid runbook, and deep nesting.
fn loader_on_1mb(config: &Config) -> Row {
    let mut big = String::from("name: big\nsteps:\n");
    let mut i = 0;
    while big.len() < 1_000_000 {
        big.push_str(&format!(
            "  - id: s{i}\n    action: wait\n    with: {{ duration: 0s }}\n"
        ));
        i += 1;
    }
    let t = Instant::now();
    let valid = engine::load::load_str(&big, "big.yaml", &config.registry).is_ok();
    let t_big = t.elapsed();
    let deep = format!(
        "name: deep\nsteps:\n  - id: a\n    action: wait\n    with: {{ duration: {}0s{} }}\n",
        "[".repeat(500_000),
        "]".repeat(500_000)
    );
    let t = Instant::now();
    let refused = engine::load::load_str(&deep, "deep.yaml", &config.registry).is_err();
    let t_deep = t.elapsed();
    row(
        format!(
            "loader on 1 MB: {i} steps ({}), 500,000 nested brackets ({})",
            if valid { "accepted" } else { "REJECTED" },
            if refused { "rejected" } else { "ACCEPTED" }
        ),
        format!("{:.0} ms / {:.1} ms", ms(t_big), ms(t_deep)),
        "< 1 s each",
    )
}

/// Resume with many past runs in the journal, and the history listing them.
async fn resume_with_history(
    config: &Config,
    args: &BenchArgs,
    jdir: &std::path::Path,
) -> CliResult<Vec<Row>> {
    let journal = Journal::open(jdir).map_err(failed)?;
    let history: Vec<_> = (1..=args.past_runs as u64)
        .map(|n| {
            let created = engine::testing::run_created("old", json!({}), now_ms());
            let done = Event::Completed { at: now_ms() };
            (engine::id::RunId(n), vec![created, done])
        })
        .collect();
    journal.import(&history).map_err(failed)?;
    let gated = "name: gated\nsteps:\n  - id: gate\n    action: manual.confirm\n    with: { instructions: go }\n  - id: after\n    action: wait\n    with: { duration: 0s }\n";
    let mut resumes = Vec::new();
    for _ in 0..args.repeat {
        let rb = engine::load::load_str(gated, "gated.yaml", &config.registry).map_err(failed)?;
        let new = NewRun {
            runbook: rb,
            env: Environment::empty(),
            params: Default::default(),
            secrets: vec![],
            program: None,
            traffic: None,
        };
        let silent = services(config, Arc::new(Silent));
        let (id, _) = engine::runner::start(journal.clone(), &silent, new)
            .await
            .map_err(failed)?;
        let t = Instant::now();
        let request = ResumeRequest {
            run: Some(id),
            directives: vec![engine::resume::Directive::Approve("gate".into())],
            ..ResumeRequest::default()
        };
        let (_, out, _) = engine::runner::resume(journal.clone(), &silent, request)
            .await
            .map_err(failed)?;
        resumes.push(t.elapsed());
        if out.status != engine::state::RunStatus::Completed {
            return Err(failed(anyhow::anyhow!("resume did not complete")));
        }
    }
    resumes.sort();
    let t = Instant::now();
    let listed = journal.runs().map_err(failed)?.len();
    Ok(vec![
        row(
            format!(
                "resume (fold, directives, 2 steps) with {} past runs",
                args.past_runs
            ),
            format!("median {:.2} ms", ms(pct(&resumes, 0.5))),
            "< 30 ms",
        ),
        row(
            format!("history: list {listed} runs"),
            format!("{:.1} ms", ms(t.elapsed())),
            "",
        ),
    ])
}

/// A built-in procedure against a lab at zero simulated latency: its plan (no live
/// probes), then the whole run, 8 caches fanned out.
async fn against_the_lab(
    config: &Config,
    args: &BenchArgs,
    dir: &std::path::Path,
) -> CliResult<Vec<Row>> {
    let mut lab_config = lab::LabConfig::new(&dir.join("lab"));
    lab_config.shape.scale = 0.0;
    let running = lab::start(lab_config).await.map_err(failed)?;
    let env = Environment::load(&running.env_file, config.registry.env_schema()).map_err(failed)?;
    let mut plans = Vec::new();
    let mut procs = Vec::new();
    for i in 0..args.repeat {
        let t = Instant::now();
        let rb = config
            .catalog
            .load("recover-passive-site", &config.registry)
            .map_err(failed)?;
        let (params, secrets) = engine::params::resolve(&rb, &[], |_| None).map_err(failed)?;
        plan_offline(config, &rb, Arc::new(env.clone()), &params)
            .await
            .map_err(failed)?;
        plans.push(t.elapsed());
        let journal = Journal::open(&dir.join(format!("lab-journal-{i}"))).map_err(failed)?;
        let new = NewRun {
            runbook: rb,
            env: env.clone(),
            params,
            secrets,
            program: None,
            traffic: None,
        };
        let t = Instant::now();
        let (_, out) = engine::runner::start(journal, &services(config, Arc::new(Silent)), new)
            .await
            .map_err(failed)?;
        procs.push(t.elapsed());
        if out.status != engine::state::RunStatus::Completed {
            return Err(failed(anyhow::anyhow!(
                "recover-passive-site did not complete: {:?}",
                out.reason
            )));
        }
    }
    plans.sort();
    procs.sort();
    Ok(vec![
        row(
            "plan recover-passive-site (load, validate, render)",
            format!("median {:.2} ms", ms(pct(&plans, 0.5))),
            "< 30 ms",
        ),
        row(
            "recover-passive-site against the lab (time scale 0, 8 caches)",
            format!("median {:.0} ms", ms(pct(&procs, 0.5))),
            "< 500 ms",
        ),
    ])
}

/// Plan `rb` as `runbook plan` does without `--live` (no journal facts, no secrets).
async fn plan_offline(
    config: &Config,
    rb: &engine::model::Runbook,
    env: Arc<Environment>,
    params: &serde_json::Map<String, Json>,
) -> Result<engine::plan::Plan, engine::plan::PlanError> {
    engine::plan::plan(
        rb,
        &config.registry,
        env,
        params,
        &Default::default(),
        false,
        &config.registry.history(None).none(),
    )
    .await
}

/// One Alertmanager payload of 30 firing SiteOffline alerts, each its own incident
/// (one per Infinispan pod, a group that grew while Alertmanager waited), all saying
/// the same site is offline: from the POST to the answer, which Alertmanager waits for
/// 10 s by default. One fence run answers them all and names each incident. Once, on a
/// fresh lab, time scale 0.
async fn thirty_alerts(dir: &std::path::Path) -> CliResult<Row> {
    let exe = std::env::current_exe().map_err(failed)?;
    let (running, mut child, port) = lab_and_responder(&exe, dir).await?;
    let dns = dns_name(&running);
    let alerts: Vec<serde_json::Value> = (0..30)
        .map(|i| serde_json::json!({
            "status": "firing", "startsAt": "2026-12-02T08:00:00Z", "fingerprint": format!("bench-{i}"),
            "labels": {"alertname": "SiteOffline", "site": "site-b", "reporter": "site-a", "accelerator": dns, "pod": format!("ispn-{i}")}}))
        .collect();
    let body = serde_json::json!({"version": "4", "status": "firing", "alerts": alerts});
    let t = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/alerts"))
        .basic_auth("am", Some("bench-webhook"))
        .json(&body)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(failed)?;
    let took = t.elapsed();
    let ok = answer.status().is_success();
    let _ = child.kill();
    let _ = child.wait();
    if !ok {
        return Err(failed(anyhow::anyhow!(
            "the 30-alert payload was answered {}",
            answer.status()
        )));
    }
    Ok(row(
        "30 SiteOffline alerts in one payload: POST to answer (one fence run names all 30 incidents)",
        format!("{:.2} s", took.as_secs_f64()),
        "< 5 s (Alertmanager's timeout: 10 s)",
    ))
}

/// The lab accelerator's DNS name (the alerts' `accelerator` label).
fn dns_name(running: &lab::RunningLab) -> String {
    running
        .shared
        .lock()
        .world
        .accelerator
        .as_ref()
        .map(|a| a.dns_name.clone())
        .unwrap_or_default()
}

/// A fresh Keycloak 26 lab with a partition, and `runbook respond` (this binary)
/// started against it and ready: the lab, the responder's process and its port.
async fn lab_and_responder(
    exe: &std::path::Path,
    d: &std::path::Path,
) -> CliResult<(lab::RunningLab, std::process::Child, u16)> {
    use std::io::{BufRead, BufReader};
    let mut lab_config = lab::LabConfig::new(&d.join("lab"))
        .with_faults(&["partition"])
        .map_err(failed)?;
    lab_config.shape.scale = 0.0;
    lab_config.shape.traffic = lab::world::Traffic::Accelerator;
    lab_config.shape.infinispan_version = 15;
    lab_config.shape.caches = crate::packs::keycloak_26::CACHES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let running = lab::start(lab_config).await.map_err(failed)?;
    std::fs::write(d.join("pw"), "bench-webhook\n").map_err(failed)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(failed)?
        .port();
    let mut child = std::process::Command::new(exe)
        .arg("--env")
        .arg(&running.env_file)
        .arg("--journal")
        .arg(d.join("journal"))
        .args([
            "respond",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--basic-user",
            "am",
            "--basic-password-file",
        ])
        .arg(d.join("pw"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let stderr = child.stderr.take();
    let ready = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr?).lines();
        let ok = lines.any(|l| l.is_ok_and(|l| l.contains("Alertmanager webhooks on")));
        std::thread::spawn(move || for _ in lines {});
        Some(ok)
    })
    .await
    .map_err(failed)?;
    if ready != Some(true) {
        let _ = child.kill();
        return Err(failed(anyhow::anyhow!("runbook respond did not start")));
    }
    Ok((running, child, port))
}

/// From Alertmanager's POST of a SiteOffline alert to the endpoint's removal from the
/// lab's Global Accelerator: `runbook respond` (this binary, as a process) answering
/// with a fence-site run (itself a process), a fresh lab each time, time scale 0.
async fn fence_via_respond(args: &BenchArgs, dir: &std::path::Path) -> CliResult<Row> {
    let exe = std::env::current_exe().map_err(failed)?;
    let mut took = Vec::new();
    for i in 0..args.repeat.clamp(1, 10) {
        let d = dir.join(format!("{i}"));
        let (running, mut child, port) = lab_and_responder(&exe, &d).await?;
        let dns = dns_name(&running);
        let body = serde_json::json!({"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "startsAt": "2026-12-02T08:00:00Z", "fingerprint": "bench",
            "labels": {"alertname": "SiteOffline", "site": "site-b", "reporter": "site-a", "accelerator": dns}}]});
        let shared = running.shared.clone();
        let t = Instant::now();
        let post = tokio::spawn(
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/alerts"))
                .basic_auth("am", Some("bench-webhook"))
                .json(&body)
                .send(),
        );
        let removed = loop {
            let n = shared
                .lock()
                .world
                .accelerator
                .as_ref()
                .map_or(0, |a| a.endpoints.len());
            if n == 1 {
                break Some(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(60) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let _ = post.await;
        let _ = child.kill();
        let _ = child.wait();
        took.push(
            removed.ok_or_else(|| {
                failed(anyhow::anyhow!("the endpoint was not removed within 60 s"))
            })?,
        );
    }
    took.sort();
    Ok(row(
        "SiteOffline alert: Alertmanager's POST to the endpoint's removal (runbook respond, fence-site run, lab accelerator)",
        format!("median {:.0} ms", ms(pct(&took, 0.5))),
        "< 2 s",
    ))
}
