//! No secret value is ever written to the journal, the logs or the output: the lab's
//! Infinispan password, given by environment variable, and the bearer token of its
//! Kubernetes API (TLS), in the kubeconfig, are used by a run with trace logging, and
//! then searched for everywhere the run wrote.

use std::path::Path;

use crate::support::*;

const RUNBOOK: &str = r#"
name: secret-grep
steps:
  - id: status
    site: site-b
    action: infinispan.site-status
    with: { backup: site-a }
  - id: offline
    site: site-b
    action: infinispan.take-offline
    with: { backup: site-a, poll: 20ms }
    timeout: 5s
  - id: online
    site: site-b
    action: infinispan.bring-online
    with: { backup: site-a, poll: 20ms }
    timeout: 5s
  - id: keycloak
    site: site-b
    action: keycloak.scale
    with: { instances: 3, poll: 20ms }
    timeout: 5s
"#;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_infinispan_password_is_never_written_anywhere() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab::LabConfig::new(&dir.path().join("lab"));
    let secret = "Pw-2b1f9e77-never-print-me";
    let token = "Tk-5c0d3a11-never-print-me";
    config.password = secret.to_string();
    config.kube_token = token.to_string();
    config.tls = true;
    let running = rt.block_on(lab::start(config)).unwrap();
    // the same deployment, with the password by environment variable
    let text = std::fs::read_to_string(&running.env_file).unwrap();
    let pw_file = dir.path().join("lab/secrets/infinispan-password");
    let env_text = text.replace(
        &format!("password_file: {}", pw_file.display()),
        "password_env: ISPN_PASSWORD",
    );
    assert_ne!(env_text, text);
    let env = write(dir.path(), "env.yaml", &env_text);
    let rb = write(dir.path(), "rb.yaml", RUNBOOK);
    let j = dir.path().join("journal");
    let mut c = runbook(&j);
    c.args(["-vv", "run"])
        .arg(&rb)
        .arg("--env")
        .arg(&env)
        .arg("--json")
        .env("ISPN_PASSWORD", secret)
        .env("RUNBOOK_LOG", "trace");
    let out = run(c).expect(0);
    assert_eq!(out.json()["status"], "completed");
    let mut s = runbook(&j);
    s.args(["status", "--json"]);
    let status = run(s).expect(0);
    let mut h = runbook(&j);
    h.args(["history", "--json"]);
    let history = run(h).expect(0);
    let mut p = runbook(&j);
    p.args(["plan", "--live", "--json"])
        .arg(&rb)
        .arg("--env")
        .arg(&env)
        .env("ISPN_PASSWORD", secret);
    let plan = run(p).expect(0);
    assert!(
        out.stderr.len() > 1000,
        "trace logging was on: {} bytes",
        out.stderr.len()
    );
    for (what, text) in [
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
        ("status", &status.stdout),
        ("history", &history.stdout),
        ("plan", &plan.stdout),
    ] {
        assert!(!text.contains(secret), "the password is in the {what}");
        assert!(
            !text.contains(token),
            "the Kubernetes token is in the {what}"
        );
    }
    let journal_files = files(&j);
    assert!(!journal_files.is_empty());
    for f in journal_files {
        let bytes = std::fs::read(&f).unwrap();
        for s in [secret, token] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret is in {}",
                f.display()
            );
        }
    }
    assert!(
        running.shared.lock().requests["site-b-kube"]
            .iter()
            .any(|r| r.starts_with("PATCH ")),
        "the run used the Kubernetes API (with the token)"
    );
    drop(running);
}
