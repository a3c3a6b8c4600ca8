//! `runbook bench` runs end to end and reports every measure BENCHMARKS.md records.
//! No figure is asserted: times belong to the benchmark, not to the tests.

use crate::support::*;

#[test]
fn bench_reports_every_measure_on_a_small_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args([
        "bench",
        "--steps",
        "20",
        "--past-runs",
        "30",
        "--repeat",
        "1",
        "--json",
    ]);
    let out = run(c).expect(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let whats: Vec<&str> = rows.iter().map(|r| r["what"].as_str().unwrap()).collect();
    for expected in [
        "engine overhead per journaled step",
        "20-step runbook end to end",
        "the no-op declaring an effect",
        "one event appended and flushed",
        "plan of the 20-step runbook",
        "loader on 1 MB",
        "plan of a fan-out over 20000 items",
        "resume (fold, directives, 2 steps) with 30 past runs",
        "history: list",
        "plan recover-passive-site",
        "recover-passive-site against the lab",
        "SiteOffline alert: Alertmanager's POST to the endpoint's removal",
        "peak RSS",
    ] {
        assert!(
            whats.iter().any(|w| w.contains(expected)),
            "no row for {expected:?} in {whats:#?}"
        );
    }
    // the loader's verdicts are facts, not times: they are asserted
    let loader = whats.iter().find(|w| w.contains("loader on 1 MB")).unwrap();
    assert!(
        loader.contains("(accepted)") && loader.contains("(rejected)"),
        "{loader}"
    );
    for r in &rows {
        let figure = r["figure"].as_str().unwrap();
        assert!(
            figure.chars().any(|c| c.is_ascii_digit()),
            "{} has no figure: {figure:?}",
            r["what"]
        );
    }
    assert!(
        !dir.path().join("j").exists(),
        "the bench works in a directory of its own, not the user's journal"
    );
}
