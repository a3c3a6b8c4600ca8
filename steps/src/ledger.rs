//! The deployment's ledger: what the actions did to the sites, read from every run in
//! the journal whatever pack or runbook file held it. An action that moves a site out
//! of or into traffic, or replaces its cache data from another site, says so itself
//! (`ledger`: `[{site, fact}]`), with its intent (`prepared`, true once the step
//! succeeded, however it was settled) or in its outputs (a read that proved it), so a
//! user's own runbook is read like a pack's procedure. Templates get it as
//! `history.deployment`; the invariant of every action that puts a site back into
//! traffic reads it (`invariants.rs`), and `check` for every pack.

use engine::history::HistoryFacts;
use engine::model::Outputs;
use engine::state::{Progress, RunState, StepStatus};
use serde_json::{json, Value as Json};

/// The site stopped receiving clients (removed from the endpoint group, its health
/// check pointed away).
pub const LEFT: &str = "left-traffic";
/// The site receives clients again.
pub const JOINED: &str = "joined-traffic";
/// The site's cache data was replaced from, or proven equal to, a serving site's.
pub const SYNCHRONIZED: &str = "synchronized";

/// Record `fact` about `site` in an action's outputs.
pub fn record(out: &mut Outputs, site: &str, fact: &str) {
    let entry = json!({ "site": site, "fact": fact });
    match out.get_mut("ledger").and_then(Json::as_array_mut) {
        Some(list) => list.push(entry),
        None => {
            out.insert("ledger".into(), json!([entry]));
        }
    }
}

/// One fact read back: when, which run, what.
#[derive(Debug, Clone)]
struct Entry {
    at: u64,
    run: String,
    runbook: String,
    site: String,
    fact: String,
}

fn entries_of(run: &RunState, p: &Progress, out: &mut Vec<Entry>) {
    if p.status != StepStatus::Succeeded {
        return;
    }
    // Recorded with the intent (`prepared`: true once the step succeeded, however it
    // was settled) or with the result (`outputs`: a read that proved it).
    let recorded = [p.prepared.get("ledger"), p.outputs.get("ledger")];
    for e in recorded
        .into_iter()
        .flatten()
        .filter_map(Json::as_array)
        .flatten()
    {
        let (Some(site), Some(fact)) = (e["site"].as_str(), e["fact"].as_str()) else {
            continue;
        };
        out.push(Entry {
            at: p.ended_at.unwrap_or(run.updated_at),
            run: run.run_id.clone(),
            runbook: run.runbook.clone(),
            site: site.to_string(),
            fact: fact.to_string(),
        });
    }
}

/// The ledger as a reading of the journal: every run, every pack.
#[derive(Debug, Default)]
pub struct Ledger;

impl HistoryFacts for Ledger {
    fn pack(&self) -> &str {
        ""
    }
    fn reads_all(&self) -> bool {
        true
    }
    fn procedures(&self) -> &[&'static str] {
        &[]
    }
    /// `left`: per site out of traffic, the run that took it out; `unsynchronized`:
    /// the sites that left traffic and whose data was not synchronized since
    /// (whether or not they were put back); `out`: the sites out of traffic now, as
    /// the journal says.
    fn facts(&self, runs: &[RunState]) -> Json {
        fold(&json!({}), runs.iter().flat_map(entries).collect())
    }
    fn with_current(&self, facts: &Json, current: &RunState) -> Json {
        fold(facts, entries(current))
    }
    fn evidence(&self, facts: &Json) -> Option<String> {
        let u = facts["unsynchronized"].as_object()?;
        (!u.is_empty()).then(|| {
            format!(
                "left traffic and not synchronized since: {}",
                u.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// Every fact a run's succeeded steps and items recorded.
fn entries(r: &RunState) -> Vec<Entry> {
    let mut all = Vec::new();
    for s in r.steps.values() {
        entries_of(r, &s.progress, &mut all);
        for p in s.items.values() {
            entries_of(r, p, &mut all);
        }
    }
    all
}

/// `facts` (as `Ledger::facts` wrote them) with `all` applied in time order.
fn fold(facts: &Json, mut all: Vec<Entry>) -> Json {
    {
        all.sort_by_key(|e| e.at);
        let mut left = facts["left"].as_object().cloned().unwrap_or_default();
        let mut unsynced = facts["unsynchronized"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<String> = facts["out"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        for e in all {
            let what = json!({"run": e.run, "runbook": e.runbook, "at": e.at});
            match e.fact.as_str() {
                LEFT => {
                    left.insert(e.site.clone(), what.clone());
                    unsynced.insert(e.site.clone(), what);
                    if !out.contains(&e.site) {
                        out.push(e.site);
                    }
                }
                JOINED => {
                    left.remove(&e.site);
                    out.retain(|s| *s != e.site);
                }
                SYNCHRONIZED => {
                    unsynced.remove(&e.site);
                }
                _ => {}
            }
        }
        json!({
            "left": left,
            "unsynchronized": unsynced,
            "out": out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: u64, facts: &[(&str, &str)]) -> RunState {
        let mut out = Outputs::new();
        for (site, fact) in facts {
            record(&mut out, site, fact);
        }
        let mut r = RunState {
            run_id: id.into(),
            runbook: "custom".into(),
            ..RunState::default()
        };
        let mut s = engine::state::StepState::default();
        s.progress.status = StepStatus::Succeeded;
        s.progress.prepared = out;
        s.progress.ended_at = Some(at);
        r.steps.insert("s".into(), s);
        r
    }

    #[test]
    fn a_site_that_left_is_unsynchronized_until_a_synchronization_whatever_runbook_held_it() {
        let l = Ledger;
        let f = l.facts(&[run("r1", 1, &[("site-b", LEFT)])]);
        assert_eq!(f["unsynchronized"]["site-b"]["run"], "r1");
        assert_eq!(f["out"], json!(["site-b"]));
        // Put back without a synchronization: still unsynchronized, no longer out.
        let f = l.facts(&[
            run("r1", 1, &[("site-b", LEFT)]),
            run("r2", 2, &[("site-b", JOINED)]),
        ]);
        assert!(f["unsynchronized"].get("site-b").is_some());
        assert_eq!(f["out"], json!([]));
        let f = l.facts(&[
            run("r1", 1, &[("site-b", LEFT)]),
            run("r2", 2, &[("site-b", SYNCHRONIZED)]),
            run("r3", 3, &[("site-b", JOINED)]),
        ]);
        assert_eq!(f["unsynchronized"], json!({}));
        // A synchronization before the site left does not count.
        let f = l.facts(&[
            run("r2", 1, &[("site-b", SYNCHRONIZED)]),
            run("r1", 2, &[("site-b", LEFT)]),
        ]);
        assert!(f["unsynchronized"].get("site-b").is_some());
    }

    #[test]
    fn a_step_that_did_not_succeed_records_nothing() {
        let mut r = run("r1", 1, &[("site-b", LEFT)]);
        r.steps.get_mut("s").unwrap().progress.status = StepStatus::Failed;
        assert_eq!(Ledger.facts(&[r])["out"], json!([]));
    }
}
