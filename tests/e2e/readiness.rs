//! Readiness on a schedule and the shipped alerting rules: `check --watch` judges every
//! procedure's guards against a lab (read only) and exports which would be accepted;
//! the rules in `deploy/prometheus/` pass Debian's `promtool` (syntax and their unit
//! tests) and name only metrics this binary exports; a real Prometheus scrapes the
//! readiness and loads the rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A GET's body (reqwest: Prometheus answers large bodies chunked).
fn get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    })
}

fn rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

#[test]
fn the_shipped_rules_pass_promtool_and_their_unit_tests() {
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's promtool is needed (the prometheus package; bash scripts/test.sh installs it)");
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(rules().join("runbook-rules.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let test = Command::new(promtool)
        .args(["test", "rules"])
        .arg(rules().join("runbook-rules.test.yml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// The metric names a rule expression reads.
fn names_in_rules() -> Vec<String> {
    let text = std::fs::read_to_string(rules().join("runbook-rules.yml")).unwrap();
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("runbook_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !out.contains(&name) && !line.contains("alert:") {
                out.push(name.clone());
            }
            rest = &rest[i + name.len()..];
        }
    }
    out
}

#[test]
fn check_watch_judges_every_procedure_and_prometheus_scrapes_it_with_the_rules_loaded() {
    let l = InLab::start(&[], 0.0);
    let port = free_port();
    let mut c = l.runbook();
    c.args([
        "check",
        "--watch",
        &format!("127.0.0.1:{port}"),
        "--readiness-every",
        "1s",
    ]);
    let _watch = Killed(spawn(c));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let ready = |m: &str, rb: &str, v: u8| {
        m.contains(&format!(
            "runbook_procedure_ready{{pack=\"keycloak-24\",runbook=\"{rb}\"}} {v}"
        ))
    };
    let m = eventually(
        "switchover is judged ready",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let m = get(&url);
            if ready(&m, "switchover", 1) {
                Ok(m)
            } else {
                Err(m)
            }
        },
    );
    assert!(
        m.contains("runbook_guard_holds{pack=\"keycloak-24\",runbook=\"switchover\",guard="),
        "{m}"
    );
    assert!(m.contains("runbook_readiness_age_seconds "), "{m}");
    // Every metric the rules read is one this binary exports (the fenced-site ones
    // come from the same exposition).
    for name in names_in_rules() {
        assert!(
            m.contains(&format!("# TYPE {name} ")),
            "the rules read `{name}`, which is not exported:\n{m}"
        );
    }
    // The secondary site goes down: switching over to it would now be refused, and the
    // guard that refuses is named. Nothing was run or journaled.
    l.fault("site-down:site-b");
    let refused = eventually(
        "switchover is judged refused",
        Duration::from_secs(60),
        || {
            let m = get(&url);
            if ready(&m, "switchover", 0) {
                Ok(m)
            } else {
                Err(m)
            }
        },
    );
    assert!(
        refused.contains(
            "runbook_procedure_refusal{pack=\"keycloak-24\",runbook=\"switchover\",guard="
        ),
        "{refused}"
    );
    let mut h = l.runbook();
    h.args(["history", "--json"]);
    assert_eq!(run(h).stdout.trim(), "[]", "readiness is read only");

    // A real Prometheus scrapes it, with the shipped rules.
    let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's prometheus is needed (bash scripts/test.sh installs it)");
    let dir = l.dir.path().join("prom");
    std::fs::create_dir_all(&dir).unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n  - job_name: runbook\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            rules().join("runbook-rules.yml").display()
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api = format!("http://127.0.0.1:{prom_port}/api/v1");
    // site-b comes back: the next judgment finds switchover ready again, and
    // Prometheus's series says so.
    l.lift();
    let seen = eventually(
        "Prometheus scrapes switchover ready again",
        Duration::from_secs(90),
        || {
            std::net::TcpStream::connect(("127.0.0.1", prom_port)).map_err(|e| e.to_string())?;
            let q = get(&format!(
                "{api}/query?query=runbook_procedure_ready%7Brunbook%3D%22switchover%22%7D"
            ));
            let v: serde_json::Value = serde_json::from_str(&q).map_err(|e| e.to_string())?;
            let r = v["data"]["result"]
                .as_array()
                .and_then(|r| r.first())
                .cloned();
            match r {
                Some(r) if r["value"][1] == "1" => Ok(r),
                _ => Err(format!("{q}; targets: {}", get(&format!("{api}/targets")))),
            }
        },
    );
    assert_eq!(seen["metric"]["pack"], "keycloak-24");
    let loaded: serde_json::Value = serde_json::from_str(&get(&format!("{api}/rules"))).unwrap();
    let names: Vec<&str> = loaded["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["health"], "ok", "{r}");
            r["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "RunbookFailoverWouldBeRefused",
            "RunbookSiteFencedNotSynchronized",
            "RunbookDataAtRisk",
            "RunbookReplicationNotSynchronous",
            "RunbookReadinessStale"
        ]
    );
}
