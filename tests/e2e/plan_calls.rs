//! The plan shows the calls the run makes: for recover-passive-site and switchback over
//! REST, every Infinispan call that changes something (each POST) the lab received is
//! one the plan listed, and every one the plan listed was made (repeats aside: a
//! take-offline is issued again until it sticks).

use std::collections::BTreeSet;

use crate::support::*;

/// (site, `POST /path?query`) of every POST the plan lists for Infinispan.
fn planned_posts(l: &InLab, args: &[&str]) -> BTreeSet<(String, String)> {
    let env: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(l.env()).unwrap()).unwrap();
    let bases: Vec<(String, String)> = ["site-a", "site-b"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                env["sites"][*s]["infinispan"]["url"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let mut c = l.runbook();
    c.arg("plan").args(args).arg("--json");
    let plan: serde_json::Value = serde_json::from_str(&run(c).expect(0).stdout).unwrap();
    let mut out = BTreeSet::new();
    for step in plan["steps"].as_array().unwrap() {
        for call in step["calls"].as_array().unwrap() {
            let call = call.as_str().unwrap();
            // `[item] POST url` for a fan-out item
            let call = match call.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").map_or(call, |(_, c)| c),
                None => call,
            };
            let Some(url) = call.strip_prefix("POST ") else {
                continue;
            };
            for (site, base) in &bases {
                if let Some(path) = url.strip_prefix(base.as_str()) {
                    out.insert((site.clone(), format!("POST {path}")));
                }
            }
        }
    }
    out
}

fn made_posts(l: &InLab) -> BTreeSet<(String, String)> {
    let requests = l.running().shared.lock().requests.clone();
    let mut out = BTreeSet::new();
    for site in ["site-a", "site-b"] {
        for r in requests.get(site).into_iter().flatten() {
            if r.starts_with("POST /rest/v2/") {
                out.insert((site.to_string(), r.clone()));
            }
        }
    }
    out
}

#[test]
fn recover_passive_site_makes_exactly_the_changes_its_plan_lists() {
    let l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 5);
    l.lift();
    let planned = planned_posts(&l, &["recover-passive-site"]);
    assert!(planned.len() >= 40, "{planned:?}");
    let mut c = l.runbook();
    c.args(["run", "recover-passive-site", "--yes", "--json"]);
    run(c).expect(0);
    assert_eq!(made_posts(&l), planned);
}

#[test]
fn switchback_makes_exactly_the_changes_its_plan_lists() {
    let l = InLab::start(&[], 0.0);
    let mut c = l.runbook();
    c.args(["run", "switchover", "--yes", "--json"]);
    run(c).expect(0);
    l.running().shared.lock().requests.clear();
    let planned = planned_posts(&l, &["switchback"]);
    let mut c = l.runbook();
    c.args(["run", "switchback", "--yes", "--json"]);
    run(c).expect(0);
    assert_eq!(made_posts(&l), planned);
}
