//! What the journal says about the sites, for templates (`history`): e.g. which site an
//! earlier procedure left stale, which guards read (switchover refuses while its
//! secondary is stale). What a procedure's run means for the sites is the knowledge of
//! the pack that carries the procedures (the CLI registers the Keycloak 24 pack's
//! reading, `src/packs/`); the engine folds the runs and hands them over.

use serde_json::Value as Json;

use crate::state::RunState;

/// A procedure pack's reading of the journal.
pub trait HistoryFacts: Send + Sync {
    /// The pack whose runs it reads (`RunCreated.pack`).
    fn pack(&self) -> &str {
        ""
    }

    /// Whether runs that recorded no pack (journaled before runs recorded theirs)
    /// are this pack's. One pack says so: the one those runs came from.
    fn reads_unmarked(&self) -> bool {
        false
    }

    /// Whether a run of `pack` (as its `run_created` recorded it) is one of this
    /// reading's.
    fn owns(&self, pack: Option<&str>) -> bool {
        match pack {
            Some(p) => p == self.pack(),
            None => self.reads_unmarked(),
        }
    }

    /// The runbooks whose runs change what the sites hold; other runs are not read.
    fn procedures(&self) -> &[&'static str];

    /// Whether it reads every run of every pack and every runbook file (the step
    /// library's ledger of what the actions did to the sites), not only its pack's
    /// procedures.
    fn reads_all(&self) -> bool {
        false
    }

    /// The facts, from those runs folded, oldest first.
    fn facts(&self, runs: &[RunState]) -> Json;

    /// The facts when no run can be read or the runbook does not read them.
    fn none(&self) -> Json {
        self.facts(&[])
    }

    /// The facts brought up to date with the run in progress (`current`), for a guard
    /// judged right before a step that an earlier step of the same run prepared (its
    /// facts were read at the run's start, without the run itself).
    fn with_current(&self, facts: &Json, current: &RunState) -> Json {
        let _ = current;
        facts.clone()
    }

    /// The facts in one line, as evidence for a step whose `when` read them and was
    /// false (journaled with the skip).
    fn evidence(&self, facts: &Json) -> Option<String> {
        let _ = facts;
        None
    }
}

/// No pack registered: no facts (a template that reads `history` finds it empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFacts;

impl HistoryFacts for NoFacts {
    fn procedures(&self) -> &[&'static str] {
        &[]
    }
    fn facts(&self, _: &[RunState]) -> Json {
        Json::Object(Default::default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::action::Registry;

    struct Reading(&'static str, bool);

    impl HistoryFacts for Reading {
        fn pack(&self) -> &str {
            self.0
        }
        fn reads_unmarked(&self) -> bool {
            self.1
        }
        fn procedures(&self) -> &[&'static str] {
            &["failover"]
        }
        fn facts(&self, runs: &[RunState]) -> Json {
            serde_json::json!({"pack": self.0, "runs": runs.len()})
        }
    }

    #[test]
    fn each_pack_reads_its_own_runs_and_unmarked_runs_are_the_old_packs() {
        let mut r = Registry::new();
        r.set_history(Arc::new(Reading("keycloak-24", true)));
        r.set_history(Arc::new(Reading("keycloak-26", false)));
        assert_eq!(r.history(Some("keycloak-26")).pack(), "keycloak-26");
        assert_eq!(r.history(Some("keycloak-24")).pack(), "keycloak-24");
        // A runbook file reads as the pack of unmarked runs; an unknown pack reads nothing.
        assert_eq!(r.history(None).pack(), "keycloak-24");
        assert_eq!(r.history(Some("other")).procedures().len(), 0);
        // Two packs' `failover` runs are each read by their own pack only.
        let k26 = r.history(Some("keycloak-26"));
        assert!(k26.owns(Some("keycloak-26")) && !k26.owns(Some("keycloak-24")));
        assert!(
            !k26.owns(None),
            "a run journaled before packs is keycloak-24's"
        );
        assert!(r.history(Some("keycloak-24")).owns(None));
    }
}
