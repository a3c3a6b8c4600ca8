//! `runbook respond` against the Keycloak 26 lab: Alertmanager's webhook (the v4
//! payload, as Alertmanager 0.25's `notify/webhook` sends it) answered with journaled,
//! guarded fence-site runs, and the same end to end with the real monitoring stack:
//! two Prometheus servers (one per site, as the guide deploys them) scraping each
//! site's Infinispan metrics with the guide's `SiteOffline` rule, and Alertmanager
//! routing it to the responder with basic auth (Debian's packages, installed and
//! started on loopback by the test command).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::keycloak26::kc26_lab;
use crate::support::*;

const PASSWORD: &str = "am-webhook-s3cret";

struct Responder {
    child: Child,
    url: String,
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_responder(l: &InLab) -> Responder {
    start_responder_with(l, &[])
}

fn start_responder_with(l: &InLab, env: &[(&str, &str)]) -> Responder {
    start_responder_on(l, l.runbook(), env)
}

/// A responder started from `c` (`runbook` with its journal and environment file).
fn start_responder_on(l: &InLab, c: Command, env: &[(&str, &str)]) -> Responder {
    start_responder_args(l, c, env, &[])
}

/// The same, with more flags for `respond`.
fn start_responder_args(
    l: &InLab,
    mut c: Command,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Responder {
    let pw = l.dir.path().join("webhook-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let port = free_port();
    c.args([
        "respond",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--basic-user",
        "alertmanager",
        "--basic-password-file",
    ])
    .arg(&pw)
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("respond says where it listens")
            .unwrap();
        if line.contains("Alertmanager webhooks on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Responder {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn post(url: &str, auth: Option<(&str, &str)>, body: &Value) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = reqwest::Client::new()
            .post(format!("{url}/alerts"))
            .json(body);
        if let Some((u, p)) = auth {
            r = r.basic_auth(u, Some(p));
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    })
}

/// A v4 payload of SiteOffline alerts `(site, reporter, status)`.
fn payload(accelerator: &str, alerts: &[(&str, &str, &str)]) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{accelerator=\"x\"}",
        "status": alerts.first().map_or("firing", |a| a.2),
        "receiver": "runbook",
        "groupLabels": {"accelerator": accelerator},
        "commonLabels": {"alertname": "SiteOffline"},
        "externalURL": "http://alertmanager",
        "truncatedAlerts": 0,
        "alerts": alerts.iter().map(|(site, reporter, status)| json!({
            "status": status,
            "labels": {"alertname": "SiteOffline", "severity": "critical", "site": site, "reporter": reporter, "accelerator": accelerator, "namespace": "keycloak"},
            "annotations": {},
            "startsAt": "2026-12-02T08:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus",
            "fingerprint": format!("fp-{site}-{reporter}"),
        })).collect::<Vec<_>>(),
    })
}

/// (runbook, status, operator, params) of every run in the journal, read when no run
/// of the responder holds it (a sled journal admits one process at a time).
fn runs(l: &InLab) -> Vec<(String, String, String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(list) = try_runs(l) {
            return list;
        }
        assert!(Instant::now() < deadline, "the journal stayed busy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn try_runs(l: &InLab) -> Option<Vec<(String, String, String, Value)>> {
    let mut c = l.runbook();
    c.args(["history", "--json"]);
    let out = run(c);
    let all: Value = serde_json::from_str(&out.stdout).ok()?;
    let mut list = Vec::new();
    for r in all
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .rev()
    {
        if r["live"] == true {
            return None;
        }
        let id = r["run_id"].as_str()?.to_string();
        let mut s = l.runbook();
        s.args(["status", &id, "--json"]);
        let st: Value = serde_json::from_str(run(s).stdout.lines().last()?).ok()?;
        if st["live"] == true {
            return None;
        }
        list.push((
            st["runbook"].as_str().unwrap_or_default().to_string(),
            st["status"].as_str().unwrap_or_default().to_string(),
            st["created_by"]["operator"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            st["params"].clone(),
        ));
    }
    Some(list)
}

fn dns(l: &InLab) -> String {
    l.accelerator_dns()
}

impl InLab {
    pub fn accelerator_dns(&self) -> String {
        self.state()["accelerator"]["dns_name"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn group_sites(&self) -> Vec<String> {
        self.state()["accelerator"]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["site"].as_str().map(str::to_string))
            .collect()
    }
}

#[test]
fn alerts_become_one_journaled_fence_and_repeats_and_resolutions_re_add_nothing() {
    let l = kc26_lab(&["partition"]);
    let r = start_responder(&l);
    let both = payload(
        &dns(&l),
        &[
            ("site-b", "site-a", "firing"),
            ("site-a", "site-b", "firing"),
        ],
    );
    // Authenticated: 401 without credentials, 403 with wrong ones; nothing done.
    assert_eq!(post(&r.url, None, &both).0, 401);
    assert_eq!(post(&r.url, Some(("alertmanager", "wrong")), &both).0, 403);
    assert_eq!(l.group_sites(), vec!["site-a", "site-b"]);
    // Both sites' alerts for one partition: exactly one fence.
    let (code, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &both);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(l.group_sites(), vec!["site-a"], "{answer}");
    for (c, v) in l.state()["sites"]["site-a"]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"]["site-b"]["status"], "offline", "{c}");
    }
    let rs = runs(&l);
    let fences: Vec<_> = rs.iter().filter(|r| r.0 == "fence-site").collect();
    assert_eq!(fences.len(), 2, "{rs:?}");
    assert_eq!(
        fences.iter().filter(|r| r.1 == "completed").count(),
        1,
        "{rs:?}"
    );
    assert_eq!(
        fences.iter().filter(|r| r.1 == "refused").count(),
        1,
        "the other side's alert does nothing: {rs:?}"
    );
    for f in &fences {
        assert_eq!(f.2, "alertmanager", "the responder is the operator");
        assert!(
            f.3["alert"]
                .as_str()
                .unwrap()
                .contains("SiteOffline firing"),
            "{:?}",
            f.3
        );
    }
    // Alertmanager repeats the notification: the fenced incident starts nothing new;
    // the refused one is judged again, and refused again (site-b is out of the group).
    let (_, again) = post(&r.url, Some(("alertmanager", PASSWORD)), &both);
    assert!(again.to_string().contains("repeat"), "{again}");
    let rs = runs(&l);
    assert_eq!(
        rs.iter().filter(|r| r.1 == "completed").count(),
        1,
        "{rs:?}"
    );
    assert_eq!(l.group_sites(), vec!["site-a"]);
    // Resolved: a notice naming the procedures, never a re-add.
    l.lift();
    let resolved = payload(&dns(&l), &[("site-b", "site-a", "resolved")]);
    post(&r.url, Some(("alertmanager", PASSWORD)), &resolved);
    let rs = runs(&l);
    let notice = rs
        .iter()
        .find(|r| r.0 == "site-back")
        .expect("a notice run");
    assert_eq!(notice.1, "completed");
    assert_eq!(l.group_sites(), vec!["site-a"], "healing re-adds nothing");
    // The metrics say it: site-b fenced and out of the group.
    // Authenticated as the webhook is: nothing without credentials.
    let anonymous = reqwest::blocking_status(&format!("{}/metrics", r.url), None);
    assert_eq!(anonymous, 401, "the metrics answer without credentials");
    let metrics =
        reqwest::blocking_get_as(&format!("{}/metrics", r.url), ("alertmanager", PASSWORD));
    assert!(
        metrics.contains("runbook_site_fenced{site=\"site-b\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runbook_site_in_endpoint_group{site=\"site-b\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runbook_seconds_since_last_fence "),
        "{metrics}"
    );
}

#[test]
fn an_alert_it_cannot_act_on_is_answered_and_journaled_as_refused_with_why() {
    let l = kc26_lab(&["partition"]);
    let r = start_responder(&l);
    let other = payload(
        "a0000000000000000.awsglobalaccelerator.com",
        &[("site-b", "site-a", "firing")],
    );
    let (code, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &other);
    assert_eq!(code, 200);
    assert_eq!(answer["answers"][0]["run"]["status"], "refused", "{answer}");
    assert!(
        answer["answers"][0]["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("not acting on another deployment's alert"),
        "{answer}"
    );
    assert_eq!(l.group_sites(), vec!["site-a", "site-b"]);
    // An untagged endpoint: which is which cannot be told.
    l.fault("nlb-site-tag:site-b");
    let mine = payload(&dns(&l), &[("site-b", "site-a", "firing")]);
    let (_, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &mine);
    assert_eq!(answer["answers"][0]["run"]["status"], "refused", "{answer}");
    assert_eq!(l.group_sites(), vec!["site-a", "site-b"]);
}

#[test]
fn an_alert_that_cannot_be_mapped_is_journaled_as_a_refused_run_with_why() {
    let l = kc26_lab(&["partition"]);
    let r = start_responder(&l);
    let odd = payload(
        &dns(&l),
        &[
            ("site-z", "site-a", "firing"),
            ("site-b", "site-b", "firing"),
            ("", "site-a", "firing"),
        ],
    );
    let (code, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &odd);
    assert_eq!(code, 200);
    let answers = answer["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{answer}");
    for (a, why) in answers.iter().zip([
        "the environment file does not",
        "as both the offline site and its reporter",
        "no `site` or no `reporter` label",
    ]) {
        assert_eq!(a["action"], "refused: unmappable", "{a}");
        assert_eq!(a["run"]["status"], "refused", "{a}");
        assert!(a["run"]["reason"].as_str().unwrap().contains(why), "{a}");
    }
    drop(r);
    // Each is in the journal: a refused fence-site run, by the responder, with the
    // alert's labels as its parameters; nothing was touched.
    let fences: Vec<_> = runs(&l)
        .into_iter()
        .filter(|(rb, ..)| rb == "fence-site")
        .collect();
    assert_eq!(fences.len(), 3, "{fences:?}");
    assert!(fences
        .iter()
        .all(|(_, st, op, _)| st == "refused" && op == "alertmanager"));
    assert!(
        fences.iter().any(|(.., p)| p["site"] == "site-z"),
        "{fences:?}"
    );
    assert_eq!(l.group_sites(), vec!["site-a", "site-b"]);
}

#[test]
fn thirty_alerts_saying_the_same_are_answered_by_one_run_that_names_each() {
    let l = kc26_lab(&["partition"]);
    let r = start_responder(&l);
    let mut body = payload(&dns(&l), &[("site-b", "site-a", "firing")]);
    let one = body["alerts"][0].clone();
    body["alerts"] = Value::Array(
        (0..30)
            .map(|i| {
                let mut a = one.clone();
                a["fingerprint"] = json!(format!("pod-{i}"));
                a["labels"]["pod"] = json!(format!("ispn-{i}"));
                a
            })
            .collect(),
    );
    let (code, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &body);
    assert_eq!(code, 200);
    let answers = answer["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 30);
    let run_id = answers[0]["run"]["run_id"].clone();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            a["incident"],
            format!("pod-{i}@2026-12-02T08:00:00Z"),
            "{a}"
        );
        assert_eq!(a["action"], "fence", "{a}");
        assert_eq!(a["run"]["run_id"], run_id, "one run answers them all: {a}");
    }
    assert_eq!(answers[0]["run"]["status"], "completed", "{answer}");
    // Sent again (Alertmanager repeats): every one is a repeat of that run.
    let (_, again) = post(&r.url, Some(("alertmanager", PASSWORD)), &body);
    for a in again["answers"].as_array().unwrap() {
        assert_eq!(a["action"], "repeat: already answered", "{a}");
    }
    drop(r);
    let fences: Vec<_> = runs(&l)
        .into_iter()
        .filter(|(rb, ..)| rb == "fence-site")
        .collect();
    assert_eq!(fences.len(), 1, "{fences:?}");
    let named: Vec<&str> = fences[0].3["incident"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(named.len(), 30, "the run names every alert's incident");
    assert_eq!(l.group_sites(), vec!["site-a"]);
}

#[test]
fn a_responder_killed_mid_fence_resumes_its_run_when_it_starts_again() {
    let l = kc26_lab(&["partition"]);
    {
        // The fence run is killed right after the endpoint's removal (before it is
        // journaled), and the responder with it.
        let r = start_responder_with(
            &l,
            &[("FAILPOINTS", "after-apply=return(remove-from-accelerator)")],
        );
        let one = payload(&dns(&l), &[("site-b", "site-a", "firing")]);
        let (_, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &one);
        assert_eq!(
            answer["answers"][0]["run"]["exit"],
            Value::Null,
            "killed: {answer}"
        );
    }
    assert_eq!(l.group_sites(), vec!["site-a"], "the removal was made");
    let rs = runs(&l);
    assert_eq!(rs[0].1, "running", "left running by the kill: {rs:?}");
    // Started again: it resumes the run, which settles the removal and goes on.
    let _r = start_responder(&l);
    let rs = runs(&l);
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].1, "completed", "{rs:?}");
    for (c, v) in l.state()["sites"]["site-a"]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"]["site-b"]["status"], "offline", "{c}");
    }
}

#[test]
fn check_watch_serves_the_deployment_as_metrics() {
    let l = kc26_lab(&[]);
    let mut c = l.runbook();
    c.args(["run", "keycloak-26/take-site-offline", "--yes"]);
    run(c).expect(0);
    let port = free_port();
    let mut c = l.runbook();
    c.args(["check", "--watch", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _w = Killed(c.spawn().unwrap());
    wait_port(port, "check --watch");
    let m = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/metrics"));
    for line in [
        "runbook_site_serving{site=\"site-a\"} 1",
        "runbook_site_serving{site=\"site-b\"} 0",
        "runbook_site_in_endpoint_group{site=\"site-b\"} 0",
        "runbook_site_stale{site=\"site-b\"} 1",
        "runbook_site_fenced{site=\"site-b\"} 0",
        "runbook_runs{outcome=\"completed\"} 1",
        "runbook_guard_refusals 0",
        // A site taken out on purpose is the planned state, not an incident.
        "runbook_check_health{health=\"planned\"} 1",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(m.contains("runbook_check_duration_seconds "), "{m}");
    // Only loopback.
    let mut c = l.runbook();
    c.args(["check", "--watch", "0.0.0.0:0"]);
    run(c).expect(2);
}

mod reqwest {
    pub use ::reqwest::*;
    /// GET `url` with basic auth.
    pub fn blocking_get_as(url: &str, (user, password): (&str, &str)) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            ::reqwest::Client::new()
                .get(url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// The status of a GET of `url`, with basic auth when given.
    pub fn blocking_status(url: &str, auth: Option<(&str, &str)>) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = ::reqwest::Client::new().get(url);
            if let Some((u, p)) = auth {
                r = r.basic_auth(u, Some(p));
            }
            r.send().await.unwrap().status().as_u16()
        })
    }

    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

// ---- the real monitoring stack ----

fn which(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
            .iter()
            .map(|d| format!("{d}/{n}"))
            .find(|p| Path::new(p).exists())
    })
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prometheus_and_alertmanager_fence_a_cut_link_exactly_once() {
    let prometheus = which(&["prometheus"])
        .expect("Debian's prometheus is needed (bash scripts/test.sh installs it)");
    let alertmanager = which(&["prometheus-alertmanager", "alertmanager"])
        .expect("Debian's prometheus-alertmanager is needed (bash scripts/test.sh installs it)");
    let l = kc26_lab(&[]);
    let r = start_responder(&l);
    let dir = l.dir.path().join("monitoring");
    std::fs::create_dir_all(&dir).unwrap();
    let pw = l.dir.path().join("webhook-password");
    // Alertmanager: the guide's route (SiteOffline, grouped by accelerator), its
    // waits shortened for a test; basic auth from a file.
    let am_port = free_port();
    let am_cluster = free_port();
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: runbook\n  group_by: [accelerator]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n  routes:\n    - matchers: ['alertname=\"SiteOffline\"']\n      receiver: runbook\nreceivers:\n  - name: runbook\n    webhook_configs:\n      - url: {}/alerts\n        send_resolved: true\n        http_config:\n          basic_auth:\n            username: alertmanager\n            password_file: {}\n",
            r.url,
            pw.display()
        ),
    )
    .unwrap();
    let _am = Killed(
        Command::new(&alertmanager)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg(format!("--cluster.listen-address=127.0.0.1:{am_cluster}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(am_port, "alertmanager");
    // One Prometheus per site, scraping its own Infinispan, with the guide's rule.
    let mut proms = Vec::new();
    for (site, remote) in [("site-a", "site-b"), ("site-b", "site-a")] {
        let port = free_port();
        let ispn = l.running().endpoints.infinispan[site];
        std::fs::write(
            dir.join(format!("rules-{site}.yml")),
            format!(
                "groups:\n  - name: xsite-status\n    rules:\n      - alert: SiteOffline\n        expr: 'min by (namespace, site) (vendor_jgroups_site_view_status{{namespace=\"keycloak\",site=\"{remote}\"}}) == 0'\n        labels:\n          severity: critical\n          reporter: {site}\n          accelerator: {}\n",
                dns(&l)
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("prometheus-{site}.yml")),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: infinispan\n    static_configs:\n      - targets: ['{ispn}']\n        labels: {{namespace: keycloak}}\n",
                dir.join(format!("rules-{site}.yml")).display()
            ),
        )
        .unwrap();
        proms.push(Killed(
            Command::new(&prometheus)
                .arg(format!(
                    "--config.file={}",
                    dir.join(format!("prometheus-{site}.yml")).display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("tsdb-{site}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        wait_port(port, "prometheus");
    }
    // Healthy: nothing fires for a while.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(l.group_sites(), vec!["site-a", "site-b"]);
    assert!(runs(&l).is_empty());
    // Cut the cross-site link: exactly one fence, within the group wait plus a few seconds.
    let cut = Instant::now();
    l.fault("partition");
    let deadline = cut + Duration::from_secs(30);
    while l.group_sites().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "no fence within 30 s: {:?}",
            runs(&l)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = cut.elapsed();
    // Scrape (1 s) + rule evaluation (1 s) + Alertmanager's group wait (1 s) + the
    // fence: a few seconds, with room for a busy machine.
    assert!(took < Duration::from_secs(15), "the fence took {took:?}");
    // Give Alertmanager time to repeat and the other side's alert to arrive.
    std::thread::sleep(Duration::from_secs(6));
    let rs = runs(&l);
    let completed: Vec<_> = rs
        .iter()
        .filter(|r| r.0 == "fence-site" && r.1 == "completed")
        .collect();
    assert_eq!(completed.len(), 1, "exactly one fence: {rs:?}");
    assert_eq!(
        l.group_sites().len(),
        1,
        "the surviving site's endpoint stays"
    );
    let fenced = completed[0].3["site"].as_str().unwrap().to_string();
    let survivor = completed[0].3["reporter"].as_str().unwrap().to_string();
    assert_eq!(l.group_sites(), vec![survivor.clone()]);
    for (c, v) in l.state()["sites"][&survivor]["caches"].as_object().unwrap() {
        assert_eq!(v["backups"][&fenced]["status"], "offline", "{c}");
    }
    eprintln!("fenced {fenced} {took:?} after the cut");
    // Heal: the alert resolves, and nothing is re-added.
    l.lift();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runs(&l).iter().any(|r| r.0 == "site-back") {
        assert!(
            Instant::now() < deadline,
            "no resolved notice: {:?}",
            runs(&l)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(l.group_sites(), vec![survivor]);
    assert_eq!(
        runs(&l)
            .iter()
            .filter(|r| r.0 == "fence-site" && r.1 == "completed")
            .count(),
        1
    );
    drop(proms);
}

#[test]
fn over_tls_with_a_bearer_token_and_never_on_another_address_unless_told() {
    let l = kc26_lab(&[]);
    crate::team::certificates(l.dir.path());
    let token = l.dir.path().join("token");
    std::fs::write(&token, "t0ken-for-alertmanager\n").unwrap();
    let port = free_port();
    let mut c = l.runbook();
    c.args([
        "respond",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--bearer-token-file",
    ])
    .arg(&token)
    .arg("--tls-cert")
    .arg(l.dir.path().join("server.crt"))
    .arg("--tls-key")
    .arg(l.dir.path().join("server.key"))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _r = Killed(c.spawn().unwrap());
    wait_port(port, "respond over TLS");
    let ca = ::reqwest::Certificate::from_pem(&std::fs::read(l.dir.path().join("ca.pem")).unwrap())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = payload(
        "nope.awsglobalaccelerator.com",
        &[("site-b", "site-a", "firing")],
    );
    let (wrong, right, plain) = rt.block_on(async {
        let https = ::reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}/alerts");
        let wrong = https
            .post(&url)
            .bearer_auth("nope")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let right = https
            .post(&url)
            .bearer_auth("t0ken-for-alertmanager")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let plain = ::reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/alerts"))
            .json(&body)
            .send()
            .await;
        (wrong, right, plain)
    });
    assert_eq!(wrong, 403);
    assert_eq!(right, 200);
    assert!(
        plain.is_err() || plain.unwrap().status().as_u16() >= 400,
        "no plain http answer on a TLS port"
    );
    // Another address than loopback needs --allow-remote; credentials are required.
    let mut c = l.runbook();
    c.args(["respond", "--listen", "0.0.0.0:0", "--bearer-token-file"])
        .arg(&token);
    assert!(run(c).expect(2).stderr.contains("--allow-remote"));
    let mut c = l.runbook();
    c.args(["respond", "--listen", "127.0.0.1:0"]);
    assert!(run(c).expect(2).stderr.contains("needs credentials"));
}

#[test]
fn team_mode_two_responders_on_one_postgresql_journal_fence_once() {
    // One responder per site, as the guide deploys one Alertmanager per site, sharing
    // one journal in PostgreSQL; each gets its own site's alert at the same moment.
    let (url, pw) = fresh_pg_journal();
    let l = kc26_lab(&["partition"]);
    let on_pg = || {
        let mut c = runbook(Path::new(&url));
        c.env("PGPASSWORD", &pw).arg("--env").arg(l.env());
        c
    };
    let a = start_responder_on(&l, on_pg(), &[]);
    let b = start_responder_on(&l, on_pg(), &[]);
    let d = dns(&l);
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            post(
                &a.url,
                Some(("alertmanager", PASSWORD)),
                &payload(&d, &[("site-b", "site-a", "firing")]),
            )
        });
        let tb = s.spawn(|| {
            post(
                &b.url,
                Some(("alertmanager", PASSWORD)),
                &payload(&d, &[("site-a", "site-b", "firing")]),
            )
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!((ra.0, rb.0), (200, 200));
    let statuses: Vec<String> = [&ra.1, &rb.1]
        .iter()
        .map(|v| {
            v["answers"][0]["run"]["status"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "completed").count(),
        1,
        "exactly one fence: {ra:?} {rb:?}"
    );
    assert_eq!(l.group_sites().len(), 1, "{ra:?} {rb:?}");
    // The other was refused: by its guards (the reporter is out of the group, or one
    // endpoint is left), or at its start because the first run held the sites.
    let other = if statuses[0] == "completed" {
        &rb.1
    } else {
        &ra.1
    };
    let run = &other["answers"][0]["run"];
    assert!(run["status"] == "refused" || run["exit"] == 5, "{other}");
    let mut c = on_pg();
    c.args(["history", "--json"]);
    let h: Value = serde_json::from_str(&run_out(c)).unwrap();
    let completed = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "completed")
        .count();
    assert_eq!(completed, 1, "{h}");
}

fn run_out(c: Command) -> String {
    run(c).expect(0).stdout
}

#[test]
fn metrics_open_serves_the_metrics_without_credentials_and_keeps_the_webhook_closed() {
    let l = kc26_lab(&[]);
    let r = start_responder_args(&l, l.runbook(), &[], &["--metrics-open"]);
    let anonymous = reqwest::blocking_status(&format!("{}/metrics", r.url), None);
    assert_eq!(anonymous, 200);
    let body = payload(&dns(&l), &[("site-b", "site-a", "firing")]);
    assert_eq!(
        post(&r.url, None, &body).0,
        401,
        "the webhook stays authenticated"
    );
    assert!(runs(&l).is_empty());
}

/// `respond` on HAProxy exactly as on Global Accelerator (issue 33): the alert's
/// `fence-site` run takes the offline site's servers out of the real HAProxy in front
/// of the lab, through the traffic role; requests then land on the reporter only.
#[test]
fn an_alert_fences_a_site_out_of_a_real_haproxy() {
    let l = crate::haproxy::haproxy_lab_with(&["partition"]);
    let front = l
        .running()
        .endpoints
        .haproxy
        .expect("the lab runs HAProxy")
        .0;
    let landed = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| lb_get(front, "/realms/master").unwrap_or_else(|e| format!("error: {e}")))
            .collect()
    };
    assert!(landed(8).iter().any(|s| s == "site-b"), "both serve before");
    let r = start_responder(&l);
    // No accelerator label: HAProxy has none to check.
    let alert = payload("", &[("site-b", "site-a", "firing")]);
    let (code, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &alert);
    assert_eq!(code, 200);
    assert_eq!(answer["answers"][0]["action"], "fence", "{answer}");
    assert_eq!(
        answer["answers"][0]["run"]["status"], "completed",
        "{answer}"
    );
    assert!(landed(8).iter().all(|s| s == "site-a"), "{:?}", landed(8));
    // The other side's alert of the same partition: refused (never the last site).
    let other = payload("", &[("site-a", "site-b", "firing")]);
    let (_, answer) = post(&r.url, Some(("alertmanager", PASSWORD)), &other);
    assert_eq!(answer["answers"][0]["run"]["status"], "refused", "{answer}");
    assert!(landed(4).iter().all(|s| s == "site-a"));
}
