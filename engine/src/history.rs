//! What the journal says about the sites, for templates (`history`): e.g. which site an
//! earlier procedure left stale, which guards read (switchover refuses while its
//! secondary is stale). What a procedure's run means for the sites is the knowledge of
//! the pack that carries the procedures (the CLI registers the Keycloak 24 pack's
//! reading, `src/packs/`); the engine folds the runs and hands them over.

use serde_json::Value as Json;

use crate::state::RunState;

/// A procedure pack's reading of the journal.
pub trait HistoryFacts: Send + Sync {
    /// The runbooks whose runs change what the sites hold; other runs are not read.
    fn procedures(&self) -> &[&'static str];

    /// The facts, from those runs folded, oldest first.
    fn facts(&self, runs: &[RunState]) -> Json;

    /// The facts when no run can be read or the runbook does not read them.
    fn none(&self) -> Json {
        self.facts(&[])
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
