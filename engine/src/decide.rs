//! What a run does next, decided from its state alone. Every function here is pure: no
//! I/O, no clock, no journal. The executor asks, does what it is told (the I/O), and
//! records the result; the fold of the journal (`state.rs`) is the next input.
//!
//! - [`next`]: for the run, which step to work on, or that it completes, stops, or must
//!   first check its guards.
//! - [`item_next`]: for one step or fan-out item, whether it is done, waits at a gate,
//!   must be settled because it was found in doubt, or is attempted.
//! - [`settle`]: for an item found in doubt, by effect class, whether it succeeded,
//!   is applied again, or halts for the operator.
//! - [`after_failure`]: after a failed attempt, whether to try again, halt (of which
//!   kind) or fail.
//! - [`on_guard_failure`], [`replaces`]: how a guard that does not hold stops the run,
//!   and which of two items' problems a fan-out reports.

use crate::event::HaltKind;
use crate::model::{Effect, Runbook};
use crate::state::{RunState, RunStatus, StepStatus};

/// What the run does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNext {
    /// The run is over (completed, aborted, refused): nothing to drive.
    Over(RunStatus),
    /// Halted (of this kind) or failed (`None`): only the operator moves it on, by
    /// resuming it.
    Stopped(Option<HaltKind>),
    /// Check every guard live before the run's first effect.
    CheckGuards,
    /// The operator interrupted: halt before step `index`, nothing of it done.
    Interrupted(usize),
    /// Work on step `index`: the first one not done.
    Step(usize),
    /// Every step is done.
    Complete,
}

/// What the driving process knows beyond the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drive {
    /// This drive has checked the run's guards already (or need not).
    pub guards_checked: bool,
    /// The operator asked to stop (Ctrl-C).
    pub interrupted: bool,
}

/// The next thing the run does, from its state.
pub fn next(runbook: &Runbook, state: &RunState, drive: Drive) -> RunNext {
    if state.status.is_final() {
        return RunNext::Over(state.status);
    }
    if matches!(state.status, RunStatus::Halted | RunStatus::Failed) {
        return RunNext::Stopped(state.halt.as_ref().and_then(|h| h.kind));
    }
    // Guards are checked at large only before the run's first effect: after one, the
    // run's own effects may change what a guard reads (a switchover's take-offline),
    // so each guard is checked again right before the steps it names instead.
    if !drive.guards_checked && !state.had_effect && !runbook.guards.is_empty() {
        return RunNext::CheckGuards;
    }
    let Some(index) = runbook
        .steps
        .iter()
        .position(|s| !state.step_status(&s.id).is_done())
    else {
        return RunNext::Complete;
    };
    if drive.interrupted {
        return RunNext::Interrupted(index);
    }
    RunNext::Step(index)
}

/// How an item not done was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Started, and its end was never recorded (the process died or was stopped).
    Started,
    /// Its last attempt failed.
    Failed,
}

impl Found {
    pub fn as_str(self) -> &'static str {
        match self {
            Found::Started => "was started but its end was never recorded",
            Found::Failed => "failed on its last attempt",
        }
    }
}

/// What to do with one step (or one fan-out item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemNext {
    /// Succeeded or skipped: nothing.
    Done,
    /// A manual gate the operator approved (`resume --approve`): record it passed.
    PassGate,
    /// A manual gate not approved: ask at the terminal, or halt waiting.
    AskAtGate,
    /// Found in doubt: check its postcondition before anything (see [`settle`]).
    Settle {
        found: Found,
        effect: Effect,
        /// The operator allowed applying it again (`resume --retry-step`).
        authorized: bool,
    },
    /// Attempt it: preconditions live, then the effect. `check_guards`: this is the
    /// item's first attempt, so the guards that name its step are checked first.
    Attempt { check_guards: bool },
}

/// What the executor noted when it began a step: a retry authorisation is used up by
/// the step's first start, so every item of a fan-out reads it from here.
/// Whether a manual gate right before a step waits for a second person (four eyes):
/// the step after it moves traffic (its action keeps `add-to-traffic` or
/// `remove-from-traffic`) or is destructive with its arguments as written. What it
/// does, in words, when it does. The executor halts on it and the plan says it.
pub fn second_person(
    four_eyes: bool,
    next_invariants: &[&str],
    next_effect: Effect,
) -> Option<&'static str> {
    if !four_eyes {
        return None;
    }
    if next_invariants
        .iter()
        .any(|i| *i == "add-to-traffic" || *i == "remove-from-traffic")
    {
        Some("moves traffic")
    } else if next_effect == Effect::Destructive {
        Some("is destructive")
    } else {
        None
    }
}

pub fn authorized(state: &RunState, step: &str) -> bool {
    state.retry_authorized.contains(step)
}

/// What to do with step `step` (item `item` of it, for a fan-out), whose effect class
/// for these arguments is `effect`; `gate`: the action is a manual gate; `authorized`:
/// [`authorized`] when the step began.
pub fn item_next(
    state: &RunState,
    step: &str,
    item: Option<&str>,
    effect: Effect,
    gate: bool,
    authorized: bool,
) -> ItemNext {
    let progress = match item {
        Some(k) => state.item(step, k),
        None => state.step(step).map(|s| &s.progress),
    };
    let (status, attempts) = progress.map_or((StepStatus::Pending, 0), |p| (p.status, p.attempts));
    if status.is_done() {
        return ItemNext::Done;
    }
    if gate {
        return if state.approvals.contains(step) {
            ItemNext::PassGate
        } else {
            ItemNext::AskAtGate
        };
    }
    let found = match status {
        StepStatus::Running => Found::Started,
        StepStatus::Failed => Found::Failed,
        _ => {
            return ItemNext::Attempt {
                check_guards: attempts == 0,
            }
        }
    };
    ItemNext::Settle {
        found,
        effect,
        authorized,
    }
}

/// What the postcondition of an item in doubt says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Holds,
    DoesNotHold,
    /// The step has no postcondition to check.
    Nothing,
    /// The check itself failed.
    Unknown,
}

/// How an item in doubt is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its effect is in place: record it succeeded, without applying it again.
    Succeeded,
    /// Apply it again (read-only and idempotent steps; destructive ones only when the
    /// operator said so).
    Reapply,
    /// Destructive and not proven done: halt for the operator (`HaltKind::InDoubt`).
    Halt,
}

pub fn settle(effect: Effect, authorized: bool, seen: Seen) -> Settled {
    match seen {
        Seen::Holds => Settled::Succeeded,
        _ if effect == Effect::Destructive && !authorized => Settled::Halt,
        _ => Settled::Reapply,
    }
}

/// Where an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A precondition could not be checked (nothing was done).
    Precondition,
    /// The state to record before the effect could not be read (nothing was done).
    Prepare,
    /// The effect failed, or did not take hold (`unmet`) before the deadline.
    Apply {
        unmet: bool,
        /// The action says a person must decide (no retry can help).
        needs_operator: bool,
    },
}

/// One failed attempt, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub phase: Phase,
    pub retryable: bool,
    /// Attempts made in this drive, this one included.
    pub tries: u32,
    /// The step's retry policy's maximum.
    pub max: u32,
    pub effect: Effect,
    /// The step has preconditions, checked live again before a retry.
    pub has_require: bool,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Pause (the policy's pause after `tries`), then attempt again.
    Retry,
    Halt(HaltKind),
    Fail,
}

pub fn after_failure(f: Failure) -> AfterFailure {
    let more = f.retryable && f.tries < f.max;
    match f.phase {
        Phase::Precondition if more => AfterFailure::Retry,
        Phase::Precondition => AfterFailure::Halt(HaltKind::Precondition),
        Phase::Prepare if more => AfterFailure::Retry,
        Phase::Prepare => AfterFailure::Fail,
        Phase::Apply {
            unmet,
            needs_operator,
        } => {
            // A destructive effect is tried again only when the step has preconditions,
            // checked live again (with the guards) before it.
            if more && !f.interrupted && (f.effect != Effect::Destructive || f.has_require) {
                AfterFailure::Retry
            } else if needs_operator || (unmet && !f.interrupted) {
                // Applied, and the system did not follow: stop before anything that
                // relies on it, for a person to look.
                AfterFailure::Halt(HaltKind::Postcondition)
            } else {
                AfterFailure::Fail
            }
        }
    }
}

/// A guard that does not hold: before any effect the run is refused (nothing was
/// done, it ends); after one, it halts holding its sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStop {
    Refuse,
    Halt,
}

pub fn on_guard_failure(had_effect: bool) -> GuardStop {
    if had_effect {
        GuardStop::Halt
    } else {
        GuardStop::Refuse
    }
}

/// How bad an item's problem is, for a fan-out that reports one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Halt,
    Fail,
}

/// Whether a new problem replaces the one a fan-out holds: the first one is kept,
/// except that a failure outranks a halt (it is what the operator must see first).
pub fn replaces(current: Option<Severity>, new: Severity) -> bool {
    matches!(
        (current, new),
        (None, _) | (Some(Severity::Halt), Severity::Fail)
    )
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // the decision tables read better whole
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{Actor, Event};
    use crate::model::{Guard, Step};

    fn step(id: &str) -> Step {
        Step {
            id: id.into(),
            action: "wait".into(),
            ..Step::default()
        }
    }

    fn runbook(guards: bool) -> Runbook {
        let mut rb = Runbook {
            name: "t".into(),
            ..Runbook::default()
        };
        rb.steps = vec![step("a"), step("b"), step("c")];
        if guards {
            rb.guards.push(Guard::default());
        }
        rb
    }

    fn started(step: &str, item: Option<&str>, effect: Effect) -> Event {
        Event::StepStarted {
            step: step.into(),
            item: item.map(Into::into),
            attempt: 1,
            effect,
            prepared: Default::default(),
            calls: Vec::new(),
            timeout_ms: None,
            at: 1,
        }
    }

    fn succeeded(step: &str, item: Option<&str>) -> Event {
        Event::StepSucceeded {
            step: step.into(),
            item: item.map(Into::into),
            outputs: Default::default(),
            observation: None,
            note: None,
            waited: None,
            at: 2,
        }
    }

    fn failed(step: &str) -> Event {
        Event::StepFailed {
            step: step.into(),
            item: None,
            attempt: 1,
            error: "boom".into(),
            will_retry: false,
            at: 2,
        }
    }

    fn halted(step: &str, kind: HaltKind) -> Event {
        Event::Halted {
            step: Some(step.into()),
            item: None,
            kind,
            reason: "r".into(),
            at: 3,
        }
    }

    fn resumed() -> Event {
        Event::Resumed {
            by: Actor::default(),
            runbook_changed: false,
            took_over_from: None,
            at: 4,
        }
    }

    fn state(events: &[Event]) -> RunState {
        let mut all = vec![Event::bare_created(0)];
        all.extend_from_slice(events);
        RunState::fold("r-1", &all)
    }

    const FREE: Drive = Drive {
        guards_checked: true,
        interrupted: false,
    };

    #[test]
    fn the_run_level_decision_for_every_state() {
        use HaltKind::*;
        let rb = runbook(false);
        let guarded = runbook(true);
        let fresh = Drive::default();
        let cases: Vec<(&str, &Runbook, Vec<Event>, Drive, RunNext)> = vec![
            ("fresh, no guards", &rb, vec![], fresh, RunNext::Step(0)),
            (
                "fresh, guards",
                &guarded,
                vec![],
                fresh,
                RunNext::CheckGuards,
            ),
            ("guards checked", &guarded, vec![], FREE, RunNext::Step(0)),
            (
                "after an effect, guards are not checked at large",
                &guarded,
                vec![started("a", None, Effect::Idempotent)],
                fresh,
                RunNext::Step(0),
            ),
            (
                "a read-only start is no effect",
                &guarded,
                vec![started("a", None, Effect::ReadOnly)],
                fresh,
                RunNext::CheckGuards,
            ),
            (
                "first done",
                &rb,
                vec![succeeded("a", None)],
                FREE,
                RunNext::Step(1),
            ),
            (
                "in the middle of a fan-out",
                &rb,
                vec![
                    succeeded("a", None),
                    started("b", Some("x"), Effect::Destructive),
                    succeeded("b", Some("x")),
                ],
                FREE,
                RunNext::Step(1),
            ),
            (
                "interrupted",
                &rb,
                vec![succeeded("a", None)],
                Drive {
                    guards_checked: true,
                    interrupted: true,
                },
                RunNext::Interrupted(1),
            ),
            (
                "all done",
                &rb,
                vec![
                    succeeded("a", None),
                    succeeded("b", None),
                    succeeded("c", None),
                ],
                FREE,
                RunNext::Complete,
            ),
            (
                "completed",
                &rb,
                vec![Event::Completed { at: 9 }],
                FREE,
                RunNext::Over(RunStatus::Completed),
            ),
            (
                "aborted",
                &rb,
                vec![Event::Aborted {
                    reason: "r".into(),
                    by: Actor::default(),
                    at: 9,
                }],
                FREE,
                RunNext::Over(RunStatus::Aborted),
            ),
            (
                "refused",
                &rb,
                vec![Event::Refused {
                    guard: "g".into(),
                    step: None,
                    item: None,
                    reason: "r".into(),
                    observation: json!(null),
                    at: 9,
                }],
                FREE,
                RunNext::Over(RunStatus::Refused),
            ),
            (
                "failed",
                &rb,
                vec![Event::RunFailed {
                    step: "a".into(),
                    error: "e".into(),
                    at: 9,
                }],
                FREE,
                RunNext::Stopped(None),
            ),
            (
                "skipped by the operator",
                &rb,
                vec![
                    halted("a", InDoubt),
                    Event::OperatorSkipped {
                        step: "a".into(),
                        reason: "done by hand".into(),
                        by: Actor::default(),
                        at: 5,
                    },
                    resumed(),
                ],
                FREE,
                RunNext::Step(1),
            ),
        ];
        for kind in [
            Interrupted,
            Precondition,
            Postcondition,
            InDoubt,
            ManualGate,
            Guard,
        ] {
            let st = state(&[halted("a", kind)]);
            assert_eq!(
                next(&rb, &st, FREE),
                RunNext::Stopped(Some(kind)),
                "halted {kind:?}"
            );
            // Resumed, the run goes on with the step it halted at.
            let st = state(&[halted("a", kind), resumed()]);
            assert_eq!(
                next(&rb, &st, FREE),
                RunNext::Step(0),
                "resumed after {kind:?}"
            );
        }
        for (name, rb, events, drive, want) in cases {
            assert_eq!(next(rb, &state(&events), drive), want, "{name}");
        }
    }

    #[test]
    fn the_item_level_decision_for_every_state() {
        use Effect::*;
        let approve = Event::OperatorApproved {
            step: "a".into(),
            by: Actor::default(),
            at: 5,
        };
        let retry = Event::OperatorRetried {
            step: "a".into(),
            by: Actor::default(),
            at: 5,
        };
        let settle_for = |found, effect, authorized| ItemNext::Settle {
            found,
            effect,
            authorized,
        };
        type Case<'a> = (&'a str, Vec<Event>, Option<&'a str>, Effect, bool, ItemNext);
        let cases: Vec<Case> = vec![
            (
                "fresh",
                vec![],
                None,
                Destructive,
                false,
                ItemNext::Attempt { check_guards: true },
            ),
            (
                "done",
                vec![succeeded("a", None)],
                None,
                Destructive,
                false,
                ItemNext::Done,
            ),
            ("gate", vec![], None, ReadOnly, true, ItemNext::AskAtGate),
            (
                "gate approved",
                vec![approve.clone()],
                None,
                ReadOnly,
                true,
                ItemNext::PassGate,
            ),
            (
                "fan-out: a done item",
                vec![
                    started("a", Some("x"), Destructive),
                    succeeded("a", Some("x")),
                ],
                Some("x"),
                Destructive,
                false,
                ItemNext::Done,
            ),
            (
                "fan-out: an item not started yet",
                vec![started("a", Some("x"), Destructive)],
                Some("y"),
                Destructive,
                false,
                ItemNext::Attempt { check_guards: true },
            ),
            (
                "fan-out: an item in doubt",
                vec![started("a", Some("x"), Destructive)],
                Some("x"),
                Destructive,
                false,
                settle_for(Found::Started, Destructive, false),
            ),
            (
                "failed last time",
                vec![started("a", None, Idempotent), failed("a")],
                None,
                Idempotent,
                false,
                settle_for(Found::Failed, Idempotent, false),
            ),
            (
                "in doubt, the operator allowed a retry",
                vec![
                    started("a", None, Destructive),
                    halted("a", HaltKind::InDoubt),
                    retry,
                    resumed(),
                ],
                None,
                Destructive,
                false,
                settle_for(Found::Started, Destructive, true),
            ),
        ];
        for effect in [ReadOnly, Idempotent, Destructive] {
            let st = state(&[started("a", None, effect)]);
            assert_eq!(
                item_next(&st, "a", None, effect, false, false),
                settle_for(Found::Started, effect, false),
                "in doubt, {effect:?}"
            );
        }
        for (name, events, item, effect, gate, want) in cases {
            let st = state(&events);
            let auth = authorized(&st, "a");
            assert_eq!(
                item_next(&st, "a", item, effect, gate, auth),
                want,
                "{name}"
            );
        }
        // A retry authorisation is used up by the step's first start: read when the
        // step began, it still covers the fan-out's other items.
        let st = state(&[
            started("a", Some("x"), Destructive),
            started("a", Some("y"), Destructive),
            halted("a", HaltKind::InDoubt),
            Event::OperatorRetried {
                step: "a".into(),
                by: Actor::default(),
                at: 5,
            },
            resumed(),
        ]);
        let auth = authorized(&st, "a");
        assert!(auth);
        let mut after_x = st.clone();
        after_x.apply(&started("a", Some("x"), Destructive));
        assert!(!authorized(&after_x, "a"));
        assert_eq!(
            item_next(&after_x, "a", Some("y"), Destructive, false, auth),
            settle_for(Found::Started, Destructive, true)
        );
    }

    #[test]
    fn settling_by_effect_class() {
        use Effect::*;
        use Settled::*;
        let cases = [
            (ReadOnly, false, Seen::DoesNotHold, Reapply),
            (ReadOnly, false, Seen::Unknown, Reapply),
            (Idempotent, false, Seen::DoesNotHold, Reapply),
            (Idempotent, false, Seen::Nothing, Reapply),
            (Destructive, false, Seen::DoesNotHold, Halt),
            (Destructive, false, Seen::Nothing, Halt),
            (Destructive, false, Seen::Unknown, Halt),
            (Destructive, true, Seen::DoesNotHold, Reapply),
            (Destructive, false, Seen::Holds, Succeeded),
            (Idempotent, false, Seen::Holds, Succeeded),
        ];
        for (effect, authorized, seen, want) in cases {
            assert_eq!(
                settle(effect, authorized, seen),
                want,
                "{effect:?} {authorized} {seen:?}"
            );
        }
    }

    #[test]
    fn after_a_failure() {
        use AfterFailure::*;
        let base = Failure {
            phase: Phase::Apply {
                unmet: false,
                needs_operator: false,
            },
            retryable: true,
            tries: 1,
            max: 3,
            effect: Effect::Idempotent,
            has_require: false,
            interrupted: false,
        };
        let apply = |unmet, needs_operator| Phase::Apply {
            unmet,
            needs_operator,
        };
        let cases = [
            ("retryable, attempts left", base, Retry),
            ("last attempt", Failure { tries: 3, ..base }, Fail),
            (
                "not retryable",
                Failure {
                    retryable: false,
                    ..base
                },
                Fail,
            ),
            (
                "interrupted",
                Failure {
                    interrupted: true,
                    ..base
                },
                Fail,
            ),
            (
                "destructive without preconditions",
                Failure {
                    effect: Effect::Destructive,
                    ..base
                },
                Fail,
            ),
            (
                "destructive with preconditions",
                Failure {
                    effect: Effect::Destructive,
                    has_require: true,
                    ..base
                },
                Retry,
            ),
            (
                "did not take hold, no attempts left",
                Failure {
                    phase: apply(true, false),
                    tries: 3,
                    ..base
                },
                Halt(HaltKind::Postcondition),
            ),
            (
                "did not take hold, interrupted",
                Failure {
                    phase: apply(true, false),
                    interrupted: true,
                    ..base
                },
                Fail,
            ),
            (
                "a person must decide",
                Failure {
                    phase: apply(false, true),
                    retryable: false,
                    ..base
                },
                Halt(HaltKind::Postcondition),
            ),
            (
                "precondition unreadable, attempts left",
                Failure {
                    phase: Phase::Precondition,
                    ..base
                },
                Retry,
            ),
            (
                "precondition unreadable, none left",
                Failure {
                    phase: Phase::Precondition,
                    tries: 3,
                    ..base
                },
                Halt(HaltKind::Precondition),
            ),
            (
                "prepare failed, attempts left",
                Failure {
                    phase: Phase::Prepare,
                    ..base
                },
                Retry,
            ),
            (
                "prepare failed, none left",
                Failure {
                    phase: Phase::Prepare,
                    retryable: false,
                    ..base
                },
                Fail,
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(after_failure(f), want, "{name}");
        }
    }

    #[test]
    fn guards_refuse_before_an_effect_and_halt_after() {
        assert_eq!(on_guard_failure(false), GuardStop::Refuse);
        assert_eq!(on_guard_failure(true), GuardStop::Halt);
    }

    #[test]
    fn a_fan_out_reports_its_first_problem_unless_a_failure_follows_a_halt() {
        use Severity::*;
        assert!(replaces(None, Halt));
        assert!(replaces(Some(Halt), Fail));
        assert!(!replaces(Some(Halt), Halt));
        assert!(!replaces(Some(Fail), Fail));
        assert!(!replaces(Some(Fail), Halt));
    }
}
