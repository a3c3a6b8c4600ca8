//! The lab's Kubernetes API through real clients: kubectl (get, patch, scale, create,
//! edit, apply)
//! and plain HTTP for Batch CRs, Job logs and watches.

use std::process::Command;
use std::time::{Duration, Instant};

use runbook_lab as lab;
use serde_json::{json, Value};

struct Lab {
    running: lab::RunningLab,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Lab {
    async fn start(faults: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let running = lab::start(lab::testing::config(dir.path(), faults, 14))
            .await
            .unwrap();
        Lab {
            running,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// kubectl, run off the async runtime (the lab serves on it).
    async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with(args, &[]).await
    }

    /// kubectl with extra environment variables (`EDITOR` for `kubectl edit`).
    async fn kubectl_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .envs(env)
                .output()
                .expect("kubectl is installed");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }

    fn api(&self, site: &str, path: &str) -> String {
        format!("http://{}{path}", self.running.endpoints.kube[site])
    }

    async fn get(&self, site: &str, path: &str) -> Value {
        let r = self.http.get(self.api(site, path)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn post(&self, site: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.api(site, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

const KC: &str = "/apis/k8s.keycloak.org/v2alpha1/namespaces/keycloak/keycloaks/keycloak";
const BATCHES: &str = "/apis/infinispan.org/v2alpha1/namespaces/keycloak/batches";

#[tokio::test]
async fn with_tls_the_api_requires_the_kubeconfigs_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab::LabConfig::new(dir.path());
    config.tls = true;
    let token = config.kube_token.clone();
    let running = lab::start(config).await.unwrap();
    let lab = Lab {
        running,
        dir,
        http: reqwest::Client::new(),
    };
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-a", "-n", "keycloak", "get", "keycloaks"])
        .await;
    assert!(
        ok && out.contains("3/3"),
        "kubectl over https with the token: {out}{err}"
    );
    let ca = std::fs::read(lab.dir.path().join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{}{KC}", lab.running.endpoints.kube["site-a"]);
    for bearer in [None, Some("not-the-token")] {
        let mut req = client.get(&url);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "token {bearer:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["reason"], "Unauthorized");
    }
    let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        !std::fs::read_to_string(lab.dir.path().join("env.yaml"))
            .unwrap()
            .contains(&token),
        "the token lives in the kubeconfig only"
    );
}

#[tokio::test]
async fn kubectl_edit_and_apply_work_with_validation_on() {
    let lab = Lab::start(&[]).await;
    // edit: kubectl asks the OpenAPI document whether the server validates fields,
    // then sends a JSON merge patch (a custom resource takes no strategic merge patch)
    let (ok, out, err) = lab
        .kubectl_with(
            &[
                "--context",
                "site-a",
                "-n",
                "keycloak",
                "edit",
                "keycloak",
                "keycloak",
            ],
            &[("EDITOR", r"sed -i s/instances:\ 3/instances:\ 1/")],
        )
        .await;
    assert!(ok && out.contains("edited"), "{out}{err}");
    assert_eq!(lab.get("site-a", KC).await["spec"]["instances"], 1);

    // apply, with client-side validation left at its default
    let manifest = lab.dir.path().join("keycloak.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: k8s.keycloak.org/v2alpha1\nkind: Keycloak\nmetadata:\n  name: keycloak\n  namespace: keycloak\nspec:\n  instances: 2\n",
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-a", "apply", "-f", path])
        .await;
    assert!(ok && out.contains("configured"), "{out}{err}");
    let kc = lab.get("site-a", KC).await;
    assert_eq!(kc["spec"]["instances"], 2);
    assert!(
        kc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|a| a.contains("\"instances\":2")),
        "the last applied configuration is kept: {kc}"
    );
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-a", "apply", "-f", path])
        .await;
    assert!(
        ok && out.contains("unchanged"),
        "a second apply changes nothing: {out}{err}"
    );
    assert_eq!(
        lab.get("site-b", KC).await["spec"]["instances"],
        3,
        "the other site is untouched"
    );
}

#[tokio::test]
async fn kubectl_waits_for_the_cross_site_view_as_the_guide_does() {
    let lab = Lab::start(&[]).await;
    // Chapter 6.4: oc wait --for condition=CrossSiteViewFormed infinispans.infinispan.org/infinispan
    let (ok, out, err) = lab
        .kubectl(&[
            "--context",
            "site-a",
            "-n",
            "keycloak",
            "wait",
            "--for",
            "condition=CrossSiteViewFormed",
            "--timeout",
            "5s",
            "infinispans.infinispan.org/infinispan",
        ])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("condition met"), "{out}");
    lab.running
        .shared
        .lock()
        .world
        .faults
        .push(lab::Fault::Partition);
    let (ok, out, err) = lab
        .kubectl(&[
            "--context", "site-b", "-n", "keycloak", "get", "infinispans.infinispan.org", "infinispan",
            "-o", "jsonpath={.status.conditions[?(@.type==\"CrossSiteViewFormed\")].status} {.status.conditions[?(@.type==\"CrossSiteViewFormed\")].message}",
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "False Site 'site-a' not ready");
}

#[tokio::test]
async fn kubectl_gets_and_patches_keycloak() {
    let lab = Lab::start(&[]).await;
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-a", "-n", "keycloak", "get", "keycloaks"])
        .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("keycloak") && out.contains("3/3") && out.contains("True"),
        "{out}"
    );
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-b", "get", "kc", "keycloak", "-o", "json"])
        .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["instances"], 3);
    assert_eq!(v["status"]["instances"], 3);
    let (ok, _, err) = lab
        .kubectl(&[
            "--context",
            "site-b",
            "patch",
            "keycloak",
            "keycloak",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"instances":1}}"#,
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!(lab.get("site-b", KC).await["spec"]["instances"], 1);
    assert_eq!(
        lab.get("site-a", KC).await["spec"]["instances"],
        3,
        "contexts are separate sites"
    );
    let (ok, _, err) = lab
        .kubectl(&[
            "--context",
            "site-b",
            "patch",
            "keycloak",
            "keycloak",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/instances","value":2}]"#,
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!(lab.get("site-b", KC).await["spec"]["instances"], 2);
    let (ok, _, err) = lab
        .kubectl(&[
            "--context",
            "site-b",
            "scale",
            "keycloak",
            "keycloak",
            "--replicas=4",
        ])
        .await;
    assert!(ok, "kubectl scale uses the scale subresource: {err}");
    let scale = lab.get("site-b", &format!("{KC}/scale")).await;
    assert_eq!(scale["spec"]["replicas"], 4);
    assert!(scale["status"]["selector"]
        .as_str()
        .unwrap()
        .contains("app=keycloak"));
    let (ok, _, err) = lab
        .kubectl(&["--context", "site-b", "get", "keycloak", "nope"])
        .await;
    assert!(!ok && err.contains("not found"), "{err}");
}

#[tokio::test]
async fn scaling_to_zero_is_ready_at_once_and_pods_go_one_by_one() {
    let lab = Lab::start(&[]).await;
    lab.running.shared.lock().world.scale = 0.01; // 30 s per instance -> 300 ms
    let r = lab
        .http
        .patch(lab.api("site-b", KC))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"instances":0}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kc = lab.get("site-b", KC).await;
    let ready = kc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        ready["status"], "True",
        "the operator says Ready at 0 at once"
    );
    let sts = lab
        .get(
            "site-b",
            "/apis/apps/v1/namespaces/keycloak/statefulsets/keycloak",
        )
        .await;
    assert_eq!(sts["status"]["replicas"], 3, "but the pods are still there");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pods = lab
            .get(
                "site-b",
                "/api/v1/namespaces/keycloak/pods?labelSelector=app%3Dkeycloak",
            )
            .await;
        if pods["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "pods never went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kc = lab.get("site-b", KC).await;
    assert!(
        kc["status"].get("instances").is_none(),
        "status.instances absent at 0"
    );
}

#[tokio::test]
async fn slow_scale_down_fault_delays_the_pods() {
    let lab = Lab::start(&["slow-scale-down:400ms"]).await;
    lab.running
        .shared
        .lock()
        .world
        .scale_keycloak("site-a", 0, Instant::now())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let sts = lab
        .get(
            "site-a",
            "/apis/apps/v1/namespaces/keycloak/statefulsets/keycloak",
        )
        .await;
    assert_eq!(
        sts["status"]["replicas"], 3,
        "still 3 after 150 ms with 400 ms extra per instance"
    );
}

fn batch(name: &str, config: &str) -> Value {
    json!({"apiVersion": "infinispan.org/v2alpha1", "kind": "Batch",
           "metadata": {"name": name}, "spec": {"cluster": "infinispan", "config": config}})
}

async fn wait_phase(lab: &Lab, site: &str, name: &str, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let b = lab.get(site, &format!("{BATCHES}/{name}")).await;
        if want.contains(&b["status"]["phase"].as_str().unwrap_or("")) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "batch {name} stayed {}",
            b["status"]["phase"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn batch_runs_cli_commands_with_phases_and_job_log() {
    let lab = Lab::start(&[]).await;
    lab.running.shared.lock().world.scale = 0.02; // 5 s phases -> 100 ms
    let (code, obj) = lab
        .post("site-b", BATCHES, batch("offline", "site take-offline --all-caches --site=site-a\nsite status --all-caches --site=site-a"))
        .await;
    assert_eq!(code, 201, "{obj}");
    let b = wait_phase(&lab, "site-b", "offline", &["Initializing"]).await;
    assert_eq!(b["spec"]["cluster"], "infinispan");
    wait_phase(&lab, "site-b", "offline", &["Running"]).await;
    wait_phase(&lab, "site-b", "offline", &["Succeeded", "Failed"]).await;
    let b = lab.get("site-b", &format!("{BATCHES}/offline")).await;
    assert_eq!(b["status"]["phase"], "Succeeded");
    let job = lab
        .get("site-b", "/apis/batch/v1/namespaces/keycloak/jobs/offline")
        .await;
    assert_eq!(job["status"]["succeeded"], 1);
    let pods = lab
        .get(
            "site-b",
            "/api/v1/namespaces/keycloak/pods?labelSelector=job-name%3Doffline",
        )
        .await;
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let log = lab
        .http
        .get(lab.api(
            "site-b",
            &format!("/api/v1/namespaces/keycloak/pods/{pod}/log"),
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // As the real CLI prints them: the container's map, then the guide's
    // `{ "status" : "offline" }`, each pretty-printed by Infinispan's Json.
    assert!(log.contains("  \"sessions\" : \"ok\""), "{log}");
    assert!(log.contains("{\n  \"status\" : \"offline\"\n}"), "{log}");
    // the effect is real: site-b's backup to site-a is offline
    let st = lab.running.shared.lock().world.sites["site-b"].caches["sessions"].backups["site-a"]
        .status();
    assert_eq!(st, "offline");
    // a spec is immutable: the same name again is a conflict
    let (code, obj) = lab
        .post(
            "site-b",
            BATCHES,
            batch("offline", "site status --all-caches --site=site-a"),
        )
        .await;
    assert_eq!(code, 409, "{obj}");
    assert_eq!(obj["reason"], "AlreadyExists");
    // and kubectl sees batches
    let (ok, out, err) = lab
        .kubectl(&["--context", "site-b", "get", "batches"])
        .await;
    assert!(
        ok && out.contains("offline") && out.contains("Succeeded"),
        "{out}{err}"
    );
}

#[tokio::test]
async fn batch_failures_stuck_batches_and_the_exit_zero_quirk() {
    let lab = Lab::start(&["cache-error:work"]).await;
    lab.post(
        "site-b",
        BATCHES,
        batch("bad", "site frobnicate --all-caches"),
    )
    .await;
    let b = wait_phase(&lab, "site-b", "bad", &["Failed"]).await;
    assert!(
        b["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("Command not found: site frobnicate"),
        "{b}"
    );
    // a per-cache failure is printed but the batch "succeeds", like the real CLI
    lab.post(
        "site-b",
        BATCHES,
        batch("quirk", "site take-offline --all-caches --site=site-a"),
    )
    .await;
    let b = wait_phase(&lab, "site-b", "quirk", &["Succeeded", "Failed"]).await;
    assert_eq!(b["status"]["phase"], "Succeeded");
    // and so does a per-cache command whose REST call failed: printed, exit 0
    lab.post(
        "site-b",
        BATCHES,
        batch(
            "quirk2",
            "site take-offline --cache=work --site=site-a\nsite status --cache=work --site=site-z",
        ),
    )
    .await;
    let b = wait_phase(&lab, "site-b", "quirk2", &["Succeeded", "Failed"]).await;
    assert_eq!(b["status"]["phase"], "Succeeded");
    let st =
        lab.running.shared.lock().world.sites["site-b"].caches["work"].backups["site-a"].status();
    assert_eq!(
        st, "online",
        "the work cache did not go offline although the batch succeeded"
    );
    // invalid specs are refused
    let (code, obj) = lab
        .post(
            "site-b",
            BATCHES,
            json!({"metadata": {"name": "x"}, "spec": {"cluster": "infinispan"}}),
        )
        .await;
    assert_eq!(code, 422, "{obj}");
    // stuck in Initializing
    lab.running
        .shared
        .lock()
        .world
        .faults
        .push(lab::Fault::BatchStuck);
    lab.post(
        "site-b",
        BATCHES,
        batch("stuck", "site status --all-caches --site=site-a"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = lab.get("site-b", &format!("{BATCHES}/stuck")).await;
    assert_eq!(b["status"]["phase"], "Initializing");
}

#[tokio::test]
async fn a_watch_from_a_lists_resource_version_sends_only_later_changes() {
    let lab = Lab::start(&[]).await;
    let list = lab
        .get(
            "site-a",
            "/apis/k8s.keycloak.org/v2alpha1/namespaces/keycloak/keycloaks",
        )
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut resp = lab
        .http
        .get(lab.api(
            "site-a",
            &format!("/apis/k8s.keycloak.org/v2alpha1/namespaces/keycloak/keycloaks?watch=true&resourceVersion={rv}&timeoutSeconds=3"),
        ))
        .send()
        .await
        .unwrap();
    // nothing changed: the watch stays silent, then reports the patch alone
    let quiet = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(
        quiet.is_err(),
        "no replay of what the list returned: {quiet:?}"
    );
    lab.http
        .patch(lab.api("site-a", KC))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"instances":2}}"#)
        .send()
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(3), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&chunk).lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "MODIFIED", "{first}");
    assert_eq!(first["object"]["spec"]["instances"], 2);
}

#[tokio::test]
async fn a_watch_sees_the_change_of_a_keycloak() {
    let lab = Lab::start(&[]).await;
    let mut resp = lab
        .http
        .get(lab.api("site-a", "/apis/k8s.keycloak.org/v2alpha1/namespaces/keycloak/keycloaks?watch=true&timeoutSeconds=5"))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let mut events: Vec<Value> = Vec::new();
    let patch_sent = std::sync::atomic::AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .unwrap()
            .unwrap();
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            events.push(serde_json::from_str(line.trim()).unwrap());
        }
        if !events.is_empty() && !patch_sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            lab.http
                .patch(lab.api("site-a", KC))
                .header("content-type", "application/json-patch+json")
                .body(r#"[{"op":"replace","path":"/spec/instances","value":1}]"#)
                .send()
                .await
                .unwrap();
        }
        if events
            .iter()
            .any(|e| e["type"] == "MODIFIED" && e["object"]["spec"]["instances"] == 1)
        {
            break;
        }
    }
    assert_eq!(events[0]["type"], "ADDED");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "MODIFIED" && e["object"]["spec"]["instances"] == 1),
        "{events:?}"
    );
}
