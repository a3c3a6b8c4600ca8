//! What the journal says about the sites: which one an earlier procedure left stale
//! (its data not resynced since), and which procedures disrupted replication since
//! the last completed resync. Guards read it as `history` (e.g. switchover refuses
//! while its secondary is stale, chapter 2.5 of the guide).
//!
//! A pure function of the folded runs of the four procedures of the Keycloak 24 pack,
//! oldest first; runs of other runbooks say nothing about the sites and are left out.
//! The engine hands the runs over through [`HistoryFacts`] (registered by the CLI for
//! this pack): what a procedure's run means for the sites is the pack's knowledge.

use serde_json::{json, Value as Json};

use engine::history::HistoryFacts;
use engine::state::{RunState, RunStatus, StepStatus};

/// The pack's name, as runs record it.
pub const NAME: &str = "keycloak-24";

/// The procedures whose runs change what the sites hold.
pub const PROCEDURES: [&str; 4] = [
    "switchover",
    "failover",
    "recover-passive-site",
    "switchback",
];

fn param(run: &RunState, name: &str, default: &str) -> String {
    run.params
        .get(name)
        .and_then(Json::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Whether step `id` of `run` got past pending (started, done, failed; not skipped).
fn touched(run: &RunState, id: &str) -> bool {
    run.steps.get(id).is_some_and(|s| {
        !matches!(s.progress.status, StepStatus::Pending | StepStatus::Skipped)
            || s.items.values().any(|p| p.status != StepStatus::Pending)
    })
}

fn done(run: &RunState, id: &str) -> bool {
    run.steps
        .get(id)
        .is_some_and(|s| s.progress.status == StepStatus::Succeeded)
}

fn how(run: &RunState) -> String {
    match run.status {
        RunStatus::Completed => "completed".into(),
        other => format!("{}, not completed", other.as_str()),
    }
}

/// Record that a run left `site` stale (`why`) and disrupted replication (`what`).
fn left_stale(
    stale: &mut serde_json::Map<String, Json>,
    disrupted: &mut Vec<String>,
    site: &str,
    why: String,
    what: String,
) {
    stale.insert(site.to_string(), Json::String(why));
    disrupted.push(what);
}

/// The facts, as template data:
/// `{"stale": {SITE: why}, "disrupted_since_resync": [what], "last_resync": what|null}`.
pub fn facts<'a>(runs: impl IntoIterator<Item = &'a RunState>) -> Json {
    let mut stale = serde_json::Map::new();
    let mut disrupted: Vec<String> = Vec::new();
    let mut last_resync: Option<String> = None;
    for run in runs {
        match left_by(run) {
            Some(Left::Stale { site, why, what }) => {
                left_stale(&mut stale, &mut disrupted, &site, why, what)
            }
            Some(Left::Resynced { site, what }) => {
                stale.remove(&site);
                disrupted.clear();
                last_resync = Some(what);
            }
            None => {}
        }
    }
    json!({
        "stale": stale,
        "disrupted_since_resync": disrupted,
        "last_resync": last_resync,
    })
}

/// What one run did to the sites' data.
enum Left {
    /// It left `site` stale: why, and the run in a few words.
    Stale {
        site: String,
        why: String,
        what: String,
    },
    /// It brought `site` back in step with the other.
    Resynced { site: String, what: String },
}

fn left_by(run: &RunState) -> Option<Left> {
    let primary = param(run, "primary", "site-a");
    let secondary = param(run, "secondary", "site-b");
    let id = &run.run_id;
    let how = how(run);
    let completed = run.status == RunStatus::Completed;
    let stale = |site: &str, why: String, what: String| {
        Some(Left::Stale {
            site: site.to_string(),
            why,
            what: format!("run {id}: {what} ({how})"),
        })
    };
    match run.runbook.as_str() {
        "switchover" if touched(run, "take-offline") || touched(run, "point-health-check-away") => stale(
            &primary,
            format!("run {id} (switchover from {primary} to {secondary}, {how}) took replication {secondary}→{primary} offline; no recover-passive-site of {primary} has completed since"),
            format!("switchover from {primary} to {secondary}"),
        ),
        "failover" if touched(run, "point-health-check-away") => stale(
            &primary,
            format!("run {id} (failover from {primary} to {secondary}, {how}) left {primary} behind; no recover-passive-site of {primary} has completed since"),
            format!("failover from {primary} to {secondary}"),
        ),
        "recover-passive-site" if completed => Some(Left::Resynced {
            what: format!("run {id}: recover-passive-site of {secondary} from {primary}"),
            site: secondary,
        }),
        "recover-passive-site" if touched(run, "scale-down") || touched(run, "take-offline") => stale(
            &secondary,
            format!("run {id} (recover-passive-site of {secondary}, {how}) did not complete: {secondary}'s data may be cleared or partial"),
            format!("recover-passive-site of {secondary}"),
        ),
        "switchback" if completed && done(run, "scale-down") => Some(Left::Resynced {
            what: format!("run {id}: switchback to {primary} with resync"),
            site: primary,
        }),
        "switchback" if !completed && (touched(run, "scale-down") || touched(run, "clear-caches")) => stale(
            &primary,
            format!("run {id} (switchback to {primary}, {how}) started the resync of {primary} and did not complete it"),
            format!("switchback to {primary}"),
        ),
        _ => None,
    }
}

/// The facts when no journal could be read: nothing known.
pub fn none() -> Json {
    facts(std::iter::empty())
}

/// This pack's reading of the journal, for the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keycloak24;

impl HistoryFacts for Keycloak24 {
    fn pack(&self) -> &str {
        NAME
    }
    /// Runs journaled before runs recorded their pack were all this pack's.
    fn reads_unmarked(&self) -> bool {
        true
    }
    fn procedures(&self) -> &[&'static str] {
        &PROCEDURES
    }
    fn facts(&self, runs: &[RunState]) -> Json {
        facts(runs)
    }
    fn none(&self) -> Json {
        none()
    }
    fn evidence(&self, facts: &Json) -> Option<String> {
        let last = facts["last_resync"].as_str().unwrap_or("none recorded");
        let disrupted: Vec<&str> = facts["disrupted_since_resync"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        Some(format!(
            "journal: last completed resync {last}; since then {}",
            if disrupted.is_empty() {
                "no failover, switchover or unfinished recovery".to_string()
            } else {
                disrupted.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::event::Event;
    use engine::model::Effect;

    fn run(
        id: &str,
        runbook: &str,
        primary: &str,
        secondary: &str,
        steps: &[&str],
        completed: bool,
    ) -> RunState {
        let mut events = vec![engine::testing::run_created(
            runbook,
            json!({"primary": primary, "secondary": secondary}),
            1,
        )];
        for s in steps {
            events.push(Event::StepStarted {
                step: (*s).into(),
                item: None,
                attempt: 1,
                effect: Effect::Idempotent,
                prepared: Default::default(),
                calls: Vec::new(),
                timeout_ms: None,
                at: 2,
            });
            events.push(Event::StepSucceeded {
                step: (*s).into(),
                item: None,
                outputs: Default::default(),
                observation: None,
                note: None,
                waited: None,
                at: 3,
            });
        }
        if completed {
            events.push(Event::Completed { at: 4 });
        }
        RunState::fold(id, &events)
    }

    #[test]
    fn a_switchover_leaves_the_old_primary_stale_until_it_is_resynced() {
        let so = run(
            "r-1",
            "switchover",
            "site-a",
            "site-b",
            &["secondary-ready", "take-offline", "point-health-check-away"],
            true,
        );
        let f = facts([&so]);
        assert!(f["stale"]["site-a"].as_str().unwrap().contains("r-1"));
        assert_eq!(f["disrupted_since_resync"].as_array().unwrap().len(), 1);
        let rps = run(
            "r-2",
            "recover-passive-site",
            "site-b",
            "site-a",
            &["scale-down"],
            true,
        );
        let f = facts([&so, &rps]);
        assert!(f["stale"].as_object().unwrap().is_empty(), "{f}");
        assert!(f["disrupted_since_resync"].as_array().unwrap().is_empty());
        assert!(f["last_resync"].as_str().unwrap().contains("r-2"));
    }

    #[test]
    fn an_unfinished_recovery_leaves_its_site_stale_and_a_refused_run_says_nothing() {
        let half = run(
            "r-1",
            "recover-passive-site",
            "site-a",
            "site-b",
            &["scale-down"],
            false,
        );
        assert!(facts([&half])["stale"]["site-b"]
            .as_str()
            .unwrap()
            .contains("did not complete"));
        let nothing = run("r-2", "switchover", "site-a", "site-b", &[], false);
        assert!(facts([&nothing])["stale"].as_object().unwrap().is_empty());
    }
}
