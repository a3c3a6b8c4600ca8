//! Durable against a power cut, not only a killed process: the system calls of a run
//! (traced with strace) show, for every effect, the journal's data synced to the disk
//! (`fdatasync` of sled's log) before the request leaves, and about one sync per step:
//! a step's result rides on the next step's intent.

use std::process::Command;

use crate::support::*;

/// One line of the trace that matters here.
#[derive(Debug, PartialEq)]
enum Seen {
    /// An fdatasync of sled's log that completed.
    Synced,
    /// A request with an effect (POST or PUT) leaving for the test server.
    Effect(String),
}

fn read_trace(text: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    for line in text.lines() {
        let log = line.contains("/db/db>");
        let completed_sync =
            (line.contains("fdatasync(") && line.contains(") = 0") && !line.contains("unfinished"))
                || line.contains("<... fdatasync resumed>");
        if completed_sync && (log || line.contains("<... fdatasync resumed>")) {
            out.push(Seen::Synced);
        }
        let to_socket = line.contains("<socket:[") || line.contains("<TCP");
        if to_socket && (line.contains("write") || line.contains("sendto(")) {
            for verb in ["\"POST /", "\"PUT /"] {
                if let Some(at) = line.find(verb) {
                    let req: String = line[at + 1..].chars().take_while(|c| *c != '\\').collect();
                    out.push(Seen::Effect(req));
                }
            }
        }
    }
    out
}

#[test]
fn every_effect_leaves_only_after_the_journal_is_synced_to_the_disk() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed (bash scripts/test.sh installs it)");
    }
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rb = write(dir.path(), "workload.yaml", WORKLOAD);
    let trace = dir.path().join("trace");
    let journal = dir.path().join("j");
    let mut c = Command::new("strace");
    c.args([
        "-f",
        "-y",
        "-s",
        "48",
        "-e",
        "trace=fdatasync,fsync,write,writev,sendto",
        "-o",
    ])
    .arg(&trace)
    .arg(bin())
    .arg("--journal")
    .arg(&journal)
    .arg("run")
    .arg(&rb)
    .args(["-p", &format!("base={}", server.base()), "--yes"])
    .env("RUNBOOK_OPERATOR", "tester")
    .env("NO_COLOR", "1")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("RUNBOOK_ENV")
    .env_remove("FAILPOINTS");
    run(c).expect(0);
    assert_workload_effects(&server);
    let seen = read_trace(&std::fs::read_to_string(&trace).unwrap());
    let effects: Vec<&String> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Effect(r) => Some(r),
            Seen::Synced => None,
        })
        .collect();
    // create, configure, and the four clears: six effects, each after its own sync
    // (and the run's creation's): the k-th effect has at least k + 1 syncs before it.
    assert_eq!(effects.len(), 6, "{seen:?}");
    let mut syncs = 0;
    let mut k = 0;
    for s in &seen {
        match s {
            Seen::Synced => syncs += 1,
            Seen::Effect(req) => {
                k += 1;
                assert!(
                    syncs > k,
                    "effect {k} ({req}) left after only {syncs} syncs of the journal: {seen:?}"
                );
            }
        }
    }
    // About one sync per step: the run's creation, six intents, the end (the results
    // ride on the next intent; the read-only pause and check need none of their own).
    let total = seen.iter().filter(|s| **s == Seen::Synced).count();
    eprintln!("syncs of the journal: {total} for 5 steps (4 items), 6 effects");
    assert!((8..=10).contains(&total), "{total} syncs: {seen:?}");
}
