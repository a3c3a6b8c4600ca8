//! The plan shows the calls the run makes: for the procedures over REST (Infinispan 14
//! and 15) and over Batch CRs, every Infinispan call that changes something (each POST,
//! each CLI command but status reads) the lab received is one the plan listed, and
//! every one the plan listed was made (repeats aside: a take-offline is issued again
//! until it sticks). Plan and calls come from one description (`steps` calls.rs).

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
            if let Some((site, command)) = batch_command(call) {
                out.insert((site, command));
                continue;
            }
            let Some(url) = call.strip_prefix("POST ") else {
                continue;
            };
            // a container-level call says which routes, and why, after the URL
            let url = url.split(" [").next().unwrap_or(url);
            for (site, base) in &bases {
                if let Some(path) = url.strip_prefix(base.as_str()) {
                    out.insert((site.clone(), format!("POST {path}")));
                }
            }
        }
    }
    out
}

/// `create Batch in SITE/NS for Infinispan `C`: COMMAND` (changes only: no status read).
fn batch_command(call: &str) -> Option<(String, String)> {
    let rest = call.strip_prefix("create Batch in ")?;
    let (site, rest) = rest.split_once('/')?;
    let (_, command) = rest.split_once(": ")?;
    let reads = ["site status", "site push-site-status", "ls "];
    if reads.iter().any(|r| command.starts_with(r)) {
        return None;
    }
    Some((site.to_string(), format!("CLI {command}")))
}

fn made_posts(l: &InLab) -> BTreeSet<(String, String)> {
    let requests = l.running().shared.lock().requests.clone();
    let commands = l.world(|w| w.cli_commands.clone());
    let mut out = BTreeSet::new();
    for (site, cmds) in commands {
        for c in cmds {
            if let Some((_, c)) = batch_command(&format!(
                "create Batch in {site}/ns for Infinispan `i`: {c}"
            )) {
                out.insert((site.clone(), c));
            }
        }
    }
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

#[test]
fn switchover_makes_exactly_the_changes_its_plan_lists_over_15_and_batch() {
    // Infinispan 15 (routes declared, so the plan knows them), then Batch CRs.
    for batch in [false, true] {
        let mut l = InLab::start_playing(&[], 0.0, 15);
        l.edit_env(|d| {
            for s in ["site-a", "site-b"] {
                d["sites"][s]["infinispan"]["api"] = "v15".into();
                if batch {
                    d["sites"][s]["infinispan"]["transport"] = "batch".into();
                }
            }
        });
        let planned = planned_posts(&l, &["switchover"]);
        assert_eq!(planned.len(), 1, "one take-offline: {planned:?}");
        let mut c = l.runbook();
        c.args(["run", "switchover", "--yes", "--json"]);
        run(c).expect(0);
        assert_eq!(made_posts(&l), planned, "batch: {batch}");
    }
}

#[test]
fn recover_passive_site_over_batch_makes_exactly_the_changes_its_plan_lists() {
    let mut l = InLab::start(&["partition"], 0.0);
    l.sessions("site-a", 5);
    l.lift();
    l.edit_env(|d| {
        for s in ["site-a", "site-b"] {
            d["sites"][s]["infinispan"]["transport"] = "batch".into();
        }
    });
    let planned = planned_posts(&l, &["recover-passive-site"]);
    assert!(
        planned.iter().any(|(_, c)| c == "CLI clearcache sessions"),
        "{planned:?}"
    );
    let mut c = l.runbook();
    c.args(["run", "recover-passive-site", "--yes", "--json"]);
    run(c).expect(0);
    assert_eq!(made_posts(&l), planned);
}
