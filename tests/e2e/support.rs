//! Test support: a recording HTTP service on 127.0.0.1 with items, config, caches and
//! an event counter, and a builder for `runbook` invocations.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct ServerState {
    pub requests: Vec<(String, String)>,
    pub items: HashMap<String, Value>,
    pub item_posts: HashMap<String, u32>,
    pub config: HashMap<String, Value>,
    pub config_puts: u32,
    pub cleared: HashMap<String, bool>,
    pub clears: HashMap<String, u32>,
    pub events: u32,
    /// Answer 500 to the next N requests whose "METHOD /path" matches.
    pub fail_next: HashMap<String, u32>,
    pub latency: Duration,
}

type Shared = Arc<Mutex<ServerState>>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Shared,
}

impl TestServer {
    pub fn start() -> TestServer {
        let state: Shared = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app(st)).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        TestServer { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut ServerState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Requests seen, as "METHOD /path".
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.iter().map(|(m, p)| format!("{m} {p}")).collect())
    }

    pub fn clear_log(&self) {
        self.with(|s| s.requests.clear());
    }
}

fn app(state: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/items/{id}", post(post_item).get(get_item))
        .route("/config/{key}", get(get_config).put(put_config))
        .route("/caches/{cache}", get(get_cache))
        .route("/caches/{cache}/clear", post(clear_cache))
        .route("/events", get(get_events).post(post_event))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let key = format!("{method} {}", uri.path());
    let (latency, fail) = {
        let mut s = state.lock().unwrap();
        s.requests
            .push((method.to_string(), uri.path().to_string()));
        let fail = match s.fail_next.get_mut(&key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        (s.latency, fail)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if fail {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    next.run(req).await
}

async fn post_item(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Option<Json<Value>>,
) -> impl IntoResponse {
    let mut s = s.lock().unwrap();
    *s.item_posts.entry(id.clone()).or_default() += 1;
    s.items
        .insert(id.clone(), body.map(|b| b.0).unwrap_or(Value::Null));
    (StatusCode::CREATED, Json(json!({"id": id})))
}

async fn get_item(State(s): State<Shared>, UrlPath(id): UrlPath<String>) -> impl IntoResponse {
    match s.lock().unwrap().items.get(&id) {
        Some(v) => (StatusCode::OK, Json(v.clone())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_config(State(s): State<Shared>, UrlPath(k): UrlPath<String>) -> impl IntoResponse {
    match s.lock().unwrap().config.get(&k) {
        Some(v) => (StatusCode::OK, Json(v.clone())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn put_config(
    State(s): State<Shared>,
    UrlPath(k): UrlPath<String>,
    body: Option<Json<Value>>,
) -> impl IntoResponse {
    let mut s = s.lock().unwrap();
    s.config_puts += 1;
    s.config.insert(k, body.map(|b| b.0).unwrap_or(Value::Null));
    StatusCode::OK
}

async fn get_cache(State(s): State<Shared>, UrlPath(c): UrlPath<String>) -> impl IntoResponse {
    let cleared = s.lock().unwrap().cleared.get(&c).copied().unwrap_or(false);
    Json(json!({"cleared": cleared}))
}

async fn clear_cache(State(s): State<Shared>, UrlPath(c): UrlPath<String>) -> impl IntoResponse {
    let mut s = s.lock().unwrap();
    *s.clears.entry(c.clone()).or_default() += 1;
    s.cleared.insert(c, true);
    Json(json!({"cleared": true}))
}

async fn get_events(State(s): State<Shared>) -> impl IntoResponse {
    Json(json!({"count": s.lock().unwrap().events}))
}

async fn post_event(State(s): State<Shared>) -> impl IntoResponse {
    s.lock().unwrap().events += 1;
    StatusCode::NO_CONTENT
}

/// The result of one `runbook` invocation.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A page of the documentation: `README.md`, or `docs/NAME.md` for any other name.
pub fn doc(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = if name == "README" {
        format!("{root}/README.md")
    } else {
        format!("{root}/docs/{name}.md")
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runbook"))
}

/// `runbook --journal DIR ...` with a fixed operator and no colours.
pub fn runbook(journal: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--journal")
        .arg(journal)
        .env("RUNBOOK_OPERATOR", "tester")
        .env("NO_COLOR", "1")
        // No test ever asks the instance-metadata service for AWS credentials.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("RUNBOOK_ENV")
        .env_remove("RUNBOOK_DIR")
        .env_remove("FAILPOINTS")
        .stdin(Stdio::null());
    c
}

pub fn run(mut c: Command) -> Out {
    let out = c.output().expect("runbook starts");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runbook starts")
}

pub fn wait_out(child: Child) -> Out {
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Write a file into `dir` and return its path.
/// Every file below `dir` (a journal's, say).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The workload runbook the crash tests use: a destructive POST confirmed by a GET,
/// an idempotent PUT, a destructive fan-out confirmed per item, a pause.
pub const WORKLOAD: &str = r#"
name: workload
title: Effects with different contracts
params:
  base: { type: string }
  pause: { type: duration, default: 30ms }
steps:
  - id: create
    title: Create item a, once
    action: http.request
    with: { method: POST, url: "{{ params.base }}/items/a", body: { v: 1 } }
    verify:
      - expect: observation.status == 200
  - id: configure
    title: Set the mode (idempotent)
    action: http.request
    with: { method: PUT, url: "{{ params.base }}/config/mode", body: { mode: on } }
  - id: pause
    action: wait
    with: { duration: "{{ params.pause }}" }
  - id: clear
    title: Clear each cache, once
    action: http.request
    for_each: { items: [c1, c2, c3, c4], concurrency: 2 }
    with:
      method: POST
      url: "{{ params.base }}/caches/{{ item }}/clear"
      probe_url: "{{ params.base }}/caches/{{ item }}"
    verify:
      - expect: observation.body.cleared
  - id: check
    title: Item a is there
    action: http.request
    with: { url: "{{ params.base }}/items/a" }
"#;

/// Check the workload's effects happened as their contracts allow, and no more.
#[track_caller]
pub fn assert_workload_effects(server: &TestServer) {
    server.with(|s| {
        assert_eq!(
            s.item_posts.get("a").copied(),
            Some(1),
            "item a created exactly once"
        );
        assert!(s.config_puts >= 1, "configure ran at least once");
        assert_eq!(s.config.get("mode"), Some(&json!({"mode": "on"})));
        for c in ["c1", "c2", "c3", "c4"] {
            assert_eq!(
                s.clears.get(c).copied(),
                Some(1),
                "cache {c} cleared exactly once"
            );
        }
    });
}

/// A lab served from this test process (on its own runtime), for `runbook` child
/// processes to work against.
pub struct InLab {
    pub lab: Option<lab::RunningLab>,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    /// An edited environment file (`edit_env`), else the lab's own.
    pub env: Option<PathBuf>,
}

impl InLab {
    pub fn start(faults: &[&str], workload_per_sec: f64) -> InLab {
        InLab::start_playing(faults, workload_per_sec, 14)
    }

    /// A lab playing Infinispan `version` (14 or 15).
    pub fn start_playing(faults: &[&str], workload_per_sec: f64, version: u8) -> InLab {
        InLab::start_with(faults, |c| {
            c.workload_per_sec = workload_per_sec;
            c.shape.infinispan_version = version;
        })
    }

    /// A lab configured by `edit` after the faults (e.g. PGO as the database).
    pub fn start_with(faults: &[&str], edit: impl FnOnce(&mut lab::LabConfig)) -> InLab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = lab::testing::config(&dir.path().join("lab"), faults, 14);
        edit(&mut config);
        // A free port the lab picked for a server it starts (PostgreSQL, HAProxy) can be
        // taken by a test running beside it before the server binds it: started again
        // on new ports, once, and said.
        let running = rt.block_on(lab::start(config.clone())).or_else(|e| {
            eprintln!("the lab did not start ({e}); once more on new ports");
            rt.block_on(lab::start(config))
        });
        let running = running.unwrap();
        InLab {
            lab: Some(running),
            rt,
            dir,
            env: None,
        }
    }

    pub fn running(&self) -> &lab::RunningLab {
        self.lab.as_ref().unwrap()
    }

    pub fn env(&self) -> PathBuf {
        self.running().env_file.clone()
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    pub fn world<T>(&self, f: impl FnOnce(&mut lab::World) -> T) -> T {
        f(&mut self.running().shared.lock().world)
    }

    pub fn state(&self) -> Value {
        self.running()
            .shared
            .lock()
            .snapshot(std::time::Instant::now())
    }

    pub fn entries(&self, site: &str, cache: &str) -> std::collections::BTreeMap<String, String> {
        self.world(|w| w.sites[site].caches[cache].entries.clone())
    }

    /// A cache's entries on two sites, read in one moment: a workload writing between
    /// two separate reads would make healthy replication look diverged.
    pub fn entries_at_once(
        &self,
        a: &str,
        b: &str,
        cache: &str,
    ) -> (
        std::collections::BTreeMap<String, String>,
        std::collections::BTreeMap<String, String>,
    ) {
        self.world(|w| {
            (
                w.sites[a].caches[cache].entries.clone(),
                w.sites[b].caches[cache].entries.clone(),
            )
        })
    }

    /// Nothing was done to `site`: Keycloak's spec and generation as the lab started
    /// them, and no clear request.
    pub fn untouched(&self, site: &str) {
        let st = self.state();
        let kc = &st["sites"][site]["keycloak"];
        assert_eq!(kc["spec"], 3, "{site}'s Keycloak untouched: {kc}");
        assert_eq!(kc["generation"], 1, "{site}'s Keycloak never patched: {kc}");
        assert!(
            st["sites"][site]["clear_requests"]
                .as_object()
                .unwrap()
                .is_empty(),
            "no clear request on {site}: {}",
            st["sites"][site]["clear_requests"]
        );
    }

    pub fn fault(&self, spec: &str) {
        self.world(|w| w.faults.push(lab::Fault::parse(spec).unwrap()));
    }

    pub fn lift(&self) {
        self.world(|w| w.faults.clear());
    }

    pub fn sessions(&self, site: &str, n: u32) {
        self.world(|w| w.create_sessions(Some(site), n).unwrap());
    }

    /// `runbook --journal <lab journal> --env <lab env> ARGS`
    pub fn runbook(&self) -> Command {
        let mut c = runbook(&self.journal());
        c.arg("--env")
            .arg(self.env.as_ref().cloned().unwrap_or_else(|| self.env()));
        c
    }

    /// From now on, `runbook()` uses the lab's environment file with `edit` applied
    /// (e.g. every site's Infinispan over the Batch transport).
    pub fn edit_env(&mut self, edit: impl FnOnce(&mut serde_yaml::Value)) {
        let text = std::fs::read_to_string(self.env()).unwrap();
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        edit(&mut doc);
        let p = self.dir.path().join("edited-env.yaml");
        std::fs::write(&p, serde_yaml::to_string(&doc).unwrap()).unwrap();
        self.env = Some(p);
    }
}

impl Drop for InLab {
    fn drop(&mut self) {
        let lab = self.lab.take();
        let _guard = self.rt.enter();
        drop(lab);
    }
}

// ---- PostgreSQL (team mode): the server the test command starts ----

pub fn server_url() -> (String, String) {
    let url = std::env::var("RUNBOOK_TEST_PG").expect(
        "RUNBOOK_TEST_PG is not set: run the tests with `bash scripts/test.sh`, which starts a PostgreSQL server (scripts/pg.sh)",
    );
    (
        url,
        std::env::var("RUNBOOK_TEST_PGPASSWORD").unwrap_or_default(),
    )
}

pub fn admin(url: &str, pw: &str) -> postgres::Client {
    let mut c: postgres::Config = url.parse().unwrap();
    c.password(pw);
    c.connect(postgres::NoTls).unwrap()
}

/// A fresh database on `url`'s server: its journal URL (no password in it).
pub fn fresh_db_on(url: &str, pw: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "e2e_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    admin(url, pw)
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    format!("{}/{name}?sslmode=disable", url.rsplit_once('/').unwrap().0)
}

/// A fresh database on the test server: (journal URL, password).
pub fn fresh_pg_journal() -> (String, String) {
    let (url, pw) = server_url();
    (fresh_db_on(&url, &pw), pw)
}

/// Start `runbook serve` (`cmd`, listening on port 0) and return it with the base URL
/// it says it serves at.
pub fn spawn_serve(cmd: Command) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut server = spawn(cmd);
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve says where it listens").unwrap();
        if let Some(rest) = line.split("serving the runs at ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    (server, base)
}

/// Resume as an operator would: a destructive step in doubt whose postcondition does
/// not hold is applied again with `--retry-step` (its precondition is checked again).
pub fn resume_until_done(l: &InLab, run_id: &str) {
    let mut extra: Vec<String> = Vec::new();
    for _ in 0..6 {
        let mut c = l.runbook();
        c.args(["resume", run_id, "--json"]).args(&extra);
        let out = run(c);
        if out.code == 0 {
            return;
        }
        let v = out.json();
        let reason = v["reason"].as_str().unwrap_or_default().to_string();
        assert!(
            reason.contains("--retry-step"),
            "unexpected stop: {}\n{}",
            out.stdout,
            out.stderr
        );
        extra = vec![
            "--retry-step".into(),
            v["halted_at"].as_str().unwrap().to_string(),
        ];
    }
    panic!("did not complete");
}

/// `runbook [--pack PACK] check --json` against the lab: its exit code and document
/// (`null` when it printed none).
pub fn check(l: &InLab, pack: Option<&str>) -> (i32, Value) {
    let mut c = l.runbook();
    if let Some(p) = pack {
        c.args(["--pack", p]);
    }
    c.args(["check", "--json"]);
    let out = run(c);
    (
        out.code,
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null),
    )
}

/// Poll `probe` every 100 ms until it gives a value, at most `within`: the one poll
/// helper (a test that waits says what for, and fails saying what it saw last).
#[track_caller]
pub fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("timed out after {within:?} until {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One HTTP/1.0 request through a load balancer to the lab's Keycloak: the site that
/// answered (its `X-Lab-Site`), or what came back instead (a 503 when no server is
/// available, an empty answer when the session was cut).
pub fn lb_get(lb: std::net::SocketAddr, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(lb).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: keycloak\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-lab-site: "))
        .map(|site| site.trim().to_string())
        .ok_or_else(|| answer.lines().next().unwrap_or("(no answer)").to_string())
}

/// A free port on loopback (taken again by whoever binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when dropped.
pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
