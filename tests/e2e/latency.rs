//! The v2 guide's requirement, measured from inside the site: the Keycloak-to-database
//! round trip and a commit, each within 10 ms. `keycloak.db-latency` runs a Job in the
//! site's namespace; the lab's kubelet runs the Job's `psql` for real against the
//! database the site's Keycloak CR names (`lab/src/kube/jobs.rs`), so the figures are
//! real PostgreSQL's, over loopback. A synchronous standby that is gone makes every
//! commit wait (no statement timeout covers a commit's wait): the Job's deadline ends
//! the probe, the round trip is measured, the commit is not, and the guard refuses.

use std::time::Duration;

use crate::cnpg::{cnpg_lab_replicating, patch_cluster, plan_live};
use crate::support::*;

const PROBE_ONLY: &str = r#"name: commit-probe
title: Only the v2 guard, at site-a
params:
  force: { type: bool, default: false }
  force_reason: { type: string, default: "" }
guards:
  - id: database-close-enough
    title: the round trip and a commit within 10 ms, from inside site-a
    site: site-a
    probe: keycloak.db-latency
    expect: observation.within
    refusal: "{{ observation.summary }}"
steps:
  - id: nothing
    site: site-a
    action: wait
    with: { duration: 10ms }
"#;

#[test]
fn the_round_trip_and_a_commit_are_measured_inside_the_site_and_a_slow_commit_refuses() {
    let l = cnpg_lab_replicating(false);
    // The v2 procedures judge it live and show the figures.
    let out = plan_live(&l, "database-switchover").expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("now: site-b → 127.0.0.1:"))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .to_string();
    assert!(
        line.contains("round trip")
            && line.contains("(median of 5; bound 10 ms)")
            && line.contains("within the guide's bounds"),
        "{line}"
    );
    // Nothing is left behind: the Job was deleted once read.
    assert!(
        l.running().shared.lock().jobs.is_empty(),
        "the probe's Job is deleted once read"
    );
    // site-b's server stops (hibernated): site-a's commits wait for a standby that is
    // gone; the round trip stays small, the commit does not.
    patch_cluster(
        &l,
        "site-b",
        r#"{"metadata":{"annotations":{"cnpg.io/hibernation":"on"}}}"#,
    );
    eventually("site-b's server is down", Duration::from_secs(30), || {
        let c = l.state()["cnpg"]["sites"]["site-b"].clone();
        if c["running"] == false {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "probe.yaml", PROBE_ONLY);
    let mut c = l.runbook();
    c.arg("plan").arg(&rb).arg("--live");
    let out = run(c).expect(8);
    let said = out.stdout.clone();
    assert!(
        said.contains("WOULD BE REFUSED: database-close-enough"),
        "{said}"
    );
    assert!(said.contains("OVER the guide's bound"), "{said}");
    assert!(
        said.contains("but a commit did not return before the probe's deadline (15 s)"),
        "{said}"
    );
}
