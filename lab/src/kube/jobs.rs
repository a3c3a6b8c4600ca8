//! Jobs the lab's kubelet runs for real. A `batch/v1` Job whose one container runs
//! `psql` from a PostgreSQL image (what `keycloak.db-latency` creates to measure the
//! database from inside a site) runs this host's real `psql` with the container's
//! arguments and environment, each `secretKeyRef` resolved from the site's Secrets, as
//! a pod in that site would: here the site is loopback. Its output is the pod's log
//! and its exit code the Job's outcome (`status.succeeded` or `status.failed`, the
//! `Complete` or `Failed` condition). Any other image or command cannot be played: the
//! Job fails at once and its pod's log says why (a real cluster would pull the image).

use std::process::Command;

use super::*;

/// A Job the lab runs, by (site, name).
#[derive(Debug, Clone)]
pub struct RunJob {
    pub name: String,
    pub created_ms: u64,
    pub spec: Value,
    /// `None` while it runs; then whether it exited 0.
    pub succeeded: Option<bool>,
    pub log: String,
}

impl RunJob {
    pub(super) fn object(&self) -> Value {
        let mut st = json!({});
        let (kind, reason) = match self.succeeded {
            None => {
                st["active"] = json!(1);
                ("", "")
            }
            Some(true) => {
                st["succeeded"] = json!(1);
                ("Complete", "")
            }
            Some(false) => {
                st["failed"] = json!(1);
                ("Failed", "BackoffLimitExceeded")
            }
        };
        if !kind.is_empty() {
            st["conditions"] = json!([{"type": kind, "status": "True", "reason": reason}]);
        }
        with_rv(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": self.name, "namespace": NAMESPACE,
                         "labels": self.spec["metadata"]["labels"].clone(),
                         "creationTimestamp": timestamp(self.created_ms)},
            "spec": self.spec["spec"].clone(),
            "status": st,
        }))
    }

    pub(super) fn pod_name(&self) -> String {
        format!("{}-run", self.name)
    }

    pub(super) fn pod(&self) -> Value {
        let phase = match self.succeeded {
            None => "Running",
            Some(true) => "Succeeded",
            Some(false) => "Failed",
        };
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": self.pod_name(), "namespace": NAMESPACE,
                            "labels": {"job-name": self.name},
                            "creationTimestamp": timestamp(self.created_ms)},
               "status": {"phase": phase}})
    }
}

/// A Secret's value at the site, as a container's `secretKeyRef` reads it.
fn secret_value(lab: &crate::LabState, app: &KubeApp, name: &str, key: &str) -> Option<String> {
    use base64::Engine;
    let obj = secret_object(lab, app, name)?;
    let text = obj["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// A container's command line and environment.
type Process = (Vec<String>, Vec<(String, String)>);

/// The container's command line and environment, or why the lab cannot run it.
fn runnable(lab: &crate::LabState, app: &KubeApp, spec: &Value) -> Result<Process, String> {
    let containers = spec["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [c] = containers.as_slice() else {
        return Err(format!(
            "the lab runs Jobs of one container; this one has {}",
            containers.len()
        ));
    };
    let image = c["image"].as_str().unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut line = strings(&c["command"]);
    line.extend(strings(&c["args"]));
    // `stdbuf -oL psql ...` (coreutils in the Debian-based images) or `psql ...`.
    let at = if line.first().map(String::as_str) == Some("stdbuf") {
        line.iter().position(|a| a == "psql")
    } else {
        Some(0).filter(|_| line.first().map(String::as_str) == Some("psql"))
    };
    if !image.contains("postgres") || at.is_none() {
        return Err(format!("the lab's kubelet runs only `psql` (or `stdbuf ... psql`) from a PostgreSQL image; this container runs {line:?} from `{image}`"));
    }
    let mut env = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, r) if r.is_object() => {
                let (s, k) = (
                    r["name"].as_str().unwrap_or_default(),
                    r["key"].as_str().unwrap_or_default(),
                );
                secret_value(lab, app, s, k).ok_or_else(|| {
                    format!("Error: couldn't find key {k} in Secret {NAMESPACE}/{s}")
                })?
            }
            _ => String::new(),
        };
        env.push((name, value));
    }
    Ok((line, env))
}

/// What a list of `kind` adds at `site`: the Jobs the lab runs, and their pods.
pub(super) fn listed(lab: &crate::LabState, site: &str, kind: &str) -> Vec<Value> {
    let mine = lab
        .jobs
        .iter()
        .filter(|((s, _), _)| s == site)
        .map(|(_, j)| j);
    match kind {
        "jobs" => mine.map(RunJob::object).collect(),
        "pods" => mine.map(RunJob::pod).collect(),
        _ => Vec::new(),
    }
}

/// The routes of the Jobs the lab runs (create, get, delete, their pod and its log);
/// `None`: not one of them (the Batch transport's Jobs are `kube.rs`'s).
pub(super) fn route(
    lab: &mut crate::LabState,
    app: &KubeApp,
    req: &Req<'_>,
    parts: &[&str],
) -> Option<Response> {
    let key = |name: &str| (app.site.clone(), name.to_string());
    Some(match (req.method.clone(), parts) {
        (Method::POST, ["apis", "batch", "v1", "namespaces", ns, "jobs"]) if *ns == NAMESPACE => {
            create_job(lab, app, req.body)
        }
        (Method::GET, ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            json_response(StatusCode::OK, lab.jobs.get(&key(name))?.object())
        }
        (Method::DELETE, ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            json_response(StatusCode::OK, lab.jobs.remove(&key(name))?.object())
        }
        (Method::GET, ["api", "v1", "namespaces", _, "pods", name, rest @ ..]) => {
            let j = lab
                .jobs
                .iter()
                .find(|((s, _), j)| *s == app.site && j.pod_name() == *name)
                .map(|(_, j)| j)?;
            match rest {
                [] => json_response(StatusCode::OK, j.pod()),
                ["log"] => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/plain")],
                    j.log.clone(),
                )
                    .into_response(),
                _ => not_found("pods", name),
            }
        }
        _ => return None,
    })
}

/// `POST .../jobs`: accepted, then run in the background.
fn create_job(lab: &mut crate::LabState, app: &KubeApp, body: &[u8]) -> Response {
    let Ok(spec) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON".into(),
        );
    };
    let Some(name) = spec["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    let key = (app.site.clone(), name.clone());
    if lab.jobs.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("jobs.batch \"{name}\" already exists"),
        );
    }
    let mut job = RunJob {
        name,
        created_ms: now_ms(),
        spec,
        succeeded: None,
        log: String::new(),
    };
    match runnable(lab, app, &job.spec) {
        Err(why) => {
            job.succeeded = Some(false);
            job.log = why;
        }
        Ok((line, env)) => {
            let deadline = job.spec["spec"]["activeDeadlineSeconds"]
                .as_u64()
                .map(std::time::Duration::from_secs);
            let shared = app.lab.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                let psql = crate::pgo::find_bin()
                    .map(|b| b.join("psql"))
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| "psql".into());
                // The container's command line, with this host's psql for the image's.
                let mut argv: Vec<std::ffi::OsString> = line.iter().map(Into::into).collect();
                if let Some(i) = argv.iter().position(|a| a == "psql") {
                    argv[i] = psql.into_os_string();
                }
                let (ok, log) =
                    run_until(Command::new(&argv[0]).args(&argv[1..]).envs(env), deadline);
                if let Some(j) = shared.lock().jobs.get_mut(&key) {
                    j.succeeded = Some(ok);
                    j.log = log;
                }
            });
        }
    }
    let obj = job.object();
    lab.jobs.insert(key, job);
    json_response(StatusCode::CREATED, obj)
}

/// Run the container's process until it exits or the Job's `activeDeadlineSeconds`
/// passes (then it is killed, as the Job controller does, and the Job fails with
/// `DeadlineExceeded`): whether it succeeded, and what it printed.
fn run_until(cmd: &mut Command, deadline: Option<std::time::Duration>) -> (bool, String) {
    use std::process::Stdio;
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, format!("psql could not be started: {e}")),
    };
    let started = std::time::Instant::now();
    let mut killed = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if deadline.is_some_and(|d| started.elapsed() >= d) => {
                let _ = child.kill();
                killed = true;
                break;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    match child.wait_with_output() {
        Ok(o) => {
            let mut log = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if killed {
                log.push_str(
                    "(killed: the Job's activeDeadlineSeconds passed: DeadlineExceeded)\n",
                );
            }
            (o.status.success() && !killed, log)
        }
        Err(e) => (false, format!("psql: {e}")),
    }
}
