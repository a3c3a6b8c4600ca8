//! `keycloak.db-latency`: the Keycloak-to-database round trip and the commit latency,
//! measured from inside the site, as Keycloak's multi-cluster v2 guide requires them
//! (both under 10 ms, under 5 suggested: `../shared/docs/keycloak-26.md` 1.9, 1.13).
//!
//! A figure taken from the `runbook` host would measure the host's distance to the
//! database, not Keycloak's, so the probe runs where Keycloak runs: a short-lived Job
//! in the site's Keycloak namespace runs `psql` against the database the site's
//! Keycloak CR names (`spec.db`: host, port, database, or a JDBC `url`), with the
//! credentials of the CR's own `usernameSecret` and `passwordSecret` handed to the pod
//! by `secretKeyRef` (runbook never reads them). With `\timing on`, psql prints
//! `Time: 0.512 ms` after each statement (client-side, from sending it to its result):
//! `SELECT 1` is one round trip; `CREATE TEMP TABLE runbook_latency_N ()` in
//! autocommit writes WAL (the catalog is permanent), so its commit is flushed and waits
//! for the synchronous standbys as every Keycloak commit does (a transaction that only
//! took a transaction id writes no WAL before its commit record and does not wait:
//! `RecordTransactionCommit`, `xact.c`). The temporary tables go with the session;
//! the figure includes one round trip: conservative. The Job is deleted when read; `ttlSecondsAfterFinished` removes it
//! if runbook is gone first. Judged on the median of the samples, all shown. psql
//! runs under `stdbuf -oL` (coreutils, in the Debian-based postgres images): its
//! output to the container's log is a pipe, fully buffered, and a psql the Job's
//! deadline kills in a commit that never returns would lose the timings it had
//! printed.

use std::time::Duration;

use async_trait::async_trait;
use engine::{Action, ArgKind, ArgSpec, Args, Effect, Outputs, StepCtx, StepError};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::{json, Value as Json};

use crate::args::{typed, Human};
use crate::clients::{kube_client, site_config};
use crate::keycloak::kube_err;

/// The image whose `psql` the Job runs unless told.
pub const DEFAULT_IMAGE: &str = "docker.io/library/postgres:17";
/// How long the Job may run: a commit that waits for a synchronous standby that is
/// gone never returns (no statement timeout covers a commit's wait), so the deadline
/// is what ends it, well within a guard's 30 s.
const DEADLINE_S: u64 = 15;
/// The guide's bound for both figures.
const BOUND: Duration = Duration::from_millis(10);

/// `keycloak.db-latency`'s arguments.
#[derive(Debug, serde::Deserialize)]
pub struct LatencyArgs {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub samples: Option<u32>,
    #[serde(default)]
    pub max_round_trip: Option<Human>,
    #[serde(default)]
    pub max_commit: Option<Human>,
}

#[derive(Debug)]
pub struct DbLatency;

/// Where the site's Keycloak reaches its database: (host, port, database).
fn target(db: &Json) -> Option<(String, String, String)> {
    if let Some(url) = db["url"].as_str() {
        let rest = url.strip_prefix("jdbc:postgresql://")?;
        let (hostport, dbq) = rest.split_once('/')?;
        let dbname = dbq.split(['?', ';']).next()?.to_string();
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        return Some((host.to_string(), port.to_string(), dbname));
    }
    Some((
        db["host"].as_str()?.to_string(),
        db["port"]
            .as_u64()
            .map_or_else(|| "5432".to_string(), |p| p.to_string()),
        db["database"].as_str().unwrap_or("keycloak").to_string(),
    ))
}

/// The Job: psql with the CR's credentials by reference, nothing secret in its spec.
fn job_spec(
    name: &str,
    db: &Json,
    (host, port, dbname): &(String, String, String),
    image: &str,
    samples: u32,
) -> Json {
    let secret = |which: &str, var: &str| {
        json!({"name": var, "valueFrom": {"secretKeyRef": {
            "name": db[which]["name"], "key": db[which]["key"]}}})
    };
    let mut args: Vec<String> = [
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "\\timing on",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..samples {
        args.extend(["-c".to_string(), "SELECT 1".to_string()]);
    }
    for i in 0..samples {
        args.extend([
            "-c".to_string(),
            format!("CREATE TEMP TABLE runbook_latency_{i} ()"),
        ]);
    }
    let labels =
        json!({"app.kubernetes.io/managed-by": "runbook", "app.kubernetes.io/name": "db-latency"});
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_S, "ttlSecondsAfterFinished": 300,
            "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never",
                "containers": [{"name": "psql", "image": image, "command": ["stdbuf", "-oL", "psql"], "args": args,
                    "env": [
                        {"name": "PGHOST", "value": host}, {"name": "PGPORT", "value": port},
                        {"name": "PGDATABASE", "value": dbname},
                        {"name": "PGCONNECT_TIMEOUT", "value": "5"},
                        {"name": "PGAPPNAME", "value": "runbook-db-latency"},
                        secret("usernameSecret", "PGUSER"), secret("passwordSecret", "PGPASSWORD"),
                    ]}]}}},
    })
}

/// psql's `\timing` lines (`Time: 0.512 ms`, `Time: 1234.567 ms (00:01.235)`), in
/// milliseconds, in order.
pub fn timings(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("Time: "))
        .filter_map(|t| t.split(" ms").next()?.trim().parse::<f64>().ok())
        .collect()
}

fn stats(samples: &[f64]) -> Json {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let median = s.get(s.len() / 2).copied();
    json!({"min": s.first(), "median": median, "max": s.last(), "samples": samples})
}

/// The verdict on a Job's log.
pub fn judge(log: &str, samples: usize, bounds: (Duration, Duration)) -> Json {
    let t = timings(log);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if t.len() >= samples && t.len() < 2 * samples {
        let rt = stats(&t[..samples]);
        return json!({"within": false, "round_trip_ms": rt, "summary": format!(
            "round trip {:.2} ms (median of {samples}), but a commit did not return before the probe's deadline ({DEADLINE_S} s): OVER the guide's bound (commits wait: a synchronous standby that does not answer?)",
            rt["median"].as_f64().unwrap_or_default())});
    }
    if t.len() < 2 * samples {
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        return json!({"within": false, "summary": format!(
            "the probe did not measure ({} of {} timings): {}",
            t.len(), 2 * samples, tail.into_iter().rev().collect::<Vec<_>>().join(" | "))});
    }
    let (rt, commit) = (stats(&t[..samples]), stats(&t[samples..2 * samples]));
    let (rt_m, c_m) = (
        rt["median"].as_f64().unwrap_or(f64::MAX),
        commit["median"].as_f64().unwrap_or(f64::MAX),
    );
    let within = rt_m <= ms(bounds.0) && c_m <= ms(bounds.1);
    json!({"within": within, "round_trip_ms": rt, "commit_ms": commit,
           "bound_ms": {"round_trip": ms(bounds.0), "commit": ms(bounds.1)},
           "summary": format!(
               "round trip {rt_m:.2} ms (median of {samples}; bound {:.0} ms), commit {c_m:.2} ms (bound {:.0} ms): {}",
               ms(bounds.0), ms(bounds.1),
               if within { "within the guide's bounds" } else { "OVER the guide's bound: Keycloak v2 needs the database close and commits fast (keycloak-26.md 1.9)" })})
}

impl DbLatency {
    async fn measure(&self, ctx: &StepCtx, a: &LatencyArgs) -> Result<Json, StepError> {
        let (site, cfg) = site_config(ctx)?;
        let name = cfg
            .keycloak
            .as_ref()
            .map(|k| k.name.clone())
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "site `{site}` has no `keycloak.name` in the environment file"
                ))
            })?;
        let (client, ns) = kube_client(ctx).await?;
        let cr = crate::keycloak::api(client.clone(), &ns)
            .get(&name)
            .await
            .map_err(|e| kube_err(&site, &format!("GET Keycloak {name}"), e))?;
        let db = serde_json::to_value(&cr).unwrap_or_default()["spec"]["db"].clone();
        let Some(to) = target(&db) else {
            return Err(StepError::permanent(format!(
                "site `{site}`: Keycloak {name}'s spec.db names no host or JDBC url"
            )));
        };
        let samples = a.samples.unwrap_or(5).clamp(1, 50);
        let job = format!("runbook-db-latency-{:08x}", fastrand::u32(..));
        let spec = job_spec(
            &job,
            &db,
            &to,
            a.image.as_deref().unwrap_or(DEFAULT_IMAGE),
            samples,
        );
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let obj: Job =
            serde_json::from_value(spec).map_err(|e| StepError::permanent(e.to_string()))?;
        jobs.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| kube_err(&site, &format!("POST Job {job}"), e))?;
        let log = self.wait_and_read(ctx, &client, &ns, &job, &site).await;
        let _ = jobs.delete(&job, &DeleteParams::background()).await;
        let mut out = judge(
            &log?,
            samples as usize,
            (
                a.max_round_trip.map_or(BOUND, |h| h.0),
                a.max_commit.map_or(BOUND, |h| h.0),
            ),
        );
        out["site"] = json!(site);
        out["database"] = json!(format!("{}:{}/{}", to.0, to.1, to.2));
        out["job"] = json!(format!("{ns}/{job}"));
        out["summary"] = json!(format!(
            "{site} → {}: {}",
            out["database"].as_str().unwrap_or_default(),
            out["summary"].as_str().unwrap_or_default()
        ));
        Ok(out)
    }

    /// Until the Job ends; then its pod's log.
    async fn wait_and_read(
        &self,
        ctx: &StepCtx,
        client: &kube::Client,
        ns: &str,
        job: &str,
        site: &str,
    ) -> Result<String, StepError> {
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        crate::wait::until(
            ctx,
            &format!("Job {job} ends"),
            Duration::from_secs(1),
            || async {
                let j = jobs.get(job).await.map_err(|e| e.to_string())?;
                let st = j.status.unwrap_or_default();
                Ok((st.succeeded.unwrap_or(0) + st.failed.unwrap_or(0) > 0).then_some(()))
            },
        )
        .await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .map_err(|e| kube_err(site, &format!("GET pods of Job {job}"), e))?;
        let pod = list
            .items
            .first()
            .and_then(|p| p.metadata.name.clone())
            .ok_or_else(|| StepError::transient(format!("site `{site}`: Job {job} has no pod")))?;
        pods.logs(&pod, &LogParams::default())
            .await
            .map_err(|e| kube_err(site, &format!("GET pods/{pod}/log"), e))
    }
}

#[async_trait]
impl Action for DbLatency {
    fn name(&self) -> &'static str {
        "keycloak.db-latency"
    }
    fn summary(&self) -> &'static str {
        "measure, from inside the site, the round trip from Keycloak to its database and a commit's latency (a short-lived Job running psql with the Keycloak CR's own database credentials), against the v2 guide's 10 ms"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::optional(
                "image",
                ArgKind::String,
                "the image whose psql the Job runs (default docker.io/library/postgres:17)",
            ),
            ArgSpec::optional(
                "samples",
                ArgKind::Int,
                "statements of each kind timed (default 5; the median is judged)",
            ),
            ArgSpec::optional(
                "max_round_trip",
                ArgKind::Duration,
                "the bound on the round trip (default 10ms, the guide's)",
            ),
            ArgSpec::optional(
                "max_commit",
                ArgKind::Duration,
                "the bound on a commit (default 10ms, the guide's)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "within",
            "round_trip_ms",
            "commit_ms",
            "bound_ms",
            "summary",
            "site",
            "database",
            "job",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    fn describe(&self, ctx: &StepCtx, _: &Args) -> Vec<String> {
        vec![format!(
            "at {}: GET the Keycloak CR's spec.db; POST a Job running psql there with its usernameSecret and passwordSecret by reference (SELECT 1 and CREATE TEMP TABLE, timed); read its pod's log; DELETE the Job",
            ctx.site_name()
        )]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: LatencyArgs = typed(self.name(), args)?;
        self.measure(ctx, &a).await
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        Ok(crate::args::outputs(self.probe(ctx, args).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// psql 15's `\timing` output, as it prints it (`src/bin/psql/common.c`,
    /// `PrintTiming`: `Time: %.3f ms`, with ` (mm:ss.fff)` from one second up).
    #[test]
    fn psql_timings_are_read_and_judged_on_their_median() {
        let log = "Timing is on.\n1\nTime: 0.412 ms\n1\nTime: 0.380 ms\n1\nTime: 25.000 ms\n\
                   741\nTime: 1.950 ms\n742\nTime: 2.100 ms\n743\nTime: 1234.567 ms (00:01.235)\n";
        assert_eq!(timings(log), vec![0.412, 0.38, 25.0, 1.95, 2.1, 1234.567]);
        let j = judge(log, 3, (BOUND, BOUND));
        assert_eq!(j["within"], true, "{j}");
        assert_eq!(j["round_trip_ms"]["median"], 0.412);
        assert_eq!(j["commit_ms"]["max"], 1234.567);
        let j = judge(log, 3, (BOUND, Duration::from_millis(2)));
        assert_eq!(j["within"], false);
        assert!(j["summary"]
            .as_str()
            .unwrap()
            .contains("OVER the guide's bound"));
        let j = judge("psql: error: connection to server at \"10.0.0.9\", port 5432 failed: timeout expired\n", 3, (BOUND, BOUND));
        assert_eq!(j["within"], false);
        assert!(
            j["summary"]
                .as_str()
                .unwrap()
                .contains("did not measure (0 of 6 timings): psql: error"),
            "{j}"
        );
    }

    #[test]
    fn the_database_is_read_from_the_keycloak_crs_fields_or_its_jdbc_url() {
        let t = |db: Json| target(&db);
        assert_eq!(
            t(json!({"host": "pg-rw", "port": 5433, "database": "kc"})),
            Some(("pg-rw".into(), "5433".into(), "kc".into()))
        );
        assert_eq!(
            t(json!({"url": "jdbc:postgresql://db.example:6432/keycloak?sslmode=require"})),
            Some(("db.example".into(), "6432".into(), "keycloak".into()))
        );
        assert_eq!(t(json!({"vendor": "postgres"})), None);
    }
}
