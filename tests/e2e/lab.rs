//! `runbook lab` as a person uses it: start it, read what it prints, use curl, kubectl
//! and `runbook` against it, stop it with Ctrl-C. And `runbook run --lab`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn runbook_lab_starts_prints_its_files_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let labdir = dir.path().join("lab");
    let mut c = runbook(&dir.path().join("j"));
    c.arg("lab")
        .arg("--dir")
        .arg(&labdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Ctrl-C stops the lab") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let env = labdir.join("env.yaml");
    assert!(
        printed.contains(&format!("environment file: {}", env.display())),
        "{printed}"
    );
    assert!(printed.contains("export RUNBOOK_ENV="), "{printed}");
    // The banner's curl works as printed (it named a route Infinispan 14 answers 404).
    let curl = printed
        .lines()
        .find(|l| l.trim_start().starts_with("curl -su admin"))
        .expect("a curl line")
        .trim();
    let out = Command::new("sh")
        .args(["-c", &format!("{curl} -o /dev/null -w '%{{http_code}}'")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{curl}: {out:?}"
    );
    let env_text = std::fs::read_to_string(&env).unwrap();
    let password = std::fs::read_to_string(labdir.join("secrets/infinispan-password")).unwrap();
    assert!(
        !env_text.contains(&password),
        "the password is referenced, not inlined"
    );

    // curl with DIGEST against site-a's Infinispan, as printed
    let doc: serde_yaml::Value = serde_yaml::from_str(&env_text).unwrap();
    let ispn = doc["sites"]["site-a"]["infinispan"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new("curl")
        .args(["-sf", "--digest", "-u", &format!("admin:{password}")])
        // the lab plays Infinispan 14 by default: the container is a cache manager
        .arg(format!(
            "{ispn}/rest/v2/cache-managers/default/x-site/backups/"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"site-b":{"status":"online"}}"#
    );

    // kubectl with the kubeconfig it wrote
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(labdir.join("kubeconfig"))
        .args(["--context", "site-a", "-n", "keycloak", "get", "keycloaks"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("keycloak"),
        "{out:?}"
    );

    // runbook against its environment file
    let tour = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab-tour.yaml");
    let mut r = runbook(&dir.path().join("j"));
    r.arg("run").arg(&tour).arg("--env").arg(&env).arg("--json");
    let out = run(r).expect(0);
    assert_eq!(out.json()["status"], "completed");

    #[allow(unsafe_code)]
    // SAFETY: SIGINT to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "lab exits 0 on Ctrl-C: {status:?}");
}

#[test]
fn run_with_lab_uses_an_in_process_lab_and_its_own_journal() {
    let dir = tempfile::tempdir().unwrap();
    let tour = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab-tour.yaml");
    // no --journal: the lab journal goes under the (temporary) data directory
    let mut c = Command::new(bin());
    c.arg("run")
        .arg(&tour)
        .args(["--lab", "--json"])
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .env_remove("RUNBOOK_JOURNAL")
        .env_remove("RUNBOOK_ENV")
        .stdin(Stdio::null());
    let out = run(c).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert!(
        out.stderr.contains("lab started on 127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(
        dir.path().join("runbook/lab-journal/db").exists(),
        "the lab's own journal"
    );
    assert!(
        !dir.path().join("runbook/journal").exists(),
        "not the real journal"
    );
}
