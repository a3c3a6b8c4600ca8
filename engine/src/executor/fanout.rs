//! The items of a `for_each` step, `concurrency` at a time. The first item that does
//! not succeed stops new ones from starting; those running finish. What the step
//! reports is the first problem, except that a failure outranks a halt
//! (`decide::replaces`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Executor, ItemOutcome};
use crate::action::Site;
use crate::decide::{replaces, Severity};
use crate::event::HaltKind;
use crate::journal::JournalError;

fn severity(o: &ItemOutcome) -> Option<Severity> {
    match o {
        ItemOutcome::Done => None,
        ItemOutcome::Fail { .. } => Some(Severity::Fail),
        ItemOutcome::Halt { .. } | ItemOutcome::Refuse { .. } => Some(Severity::Halt),
    }
}

impl Executor {
    pub(super) async fn fan_out(
        self: &Arc<Self>,
        index: usize,
        items: Vec<Json>,
        site: Option<Site>,
        authorized: bool,
    ) -> Result<ItemOutcome, JournalError> {
        let step = &self.runbook.steps[index];
        let concurrency = step.for_each.as_ref().map_or(1, |f| f.concurrency);
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let mut launched = 0;
        for item in items.iter().cloned() {
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                break;
            };
            if stop.load(Ordering::SeqCst) || self.interrupt.is_set() {
                break;
            }
            launched += 1;
            let this = Arc::clone(self);
            let site = site.clone();
            let stop = Arc::clone(&stop);
            set.spawn(async move {
                let result = this.run_item(index, Some(item), site, authorized).await;
                if !matches!(result, Ok(ItemOutcome::Done)) {
                    stop.store(true, Ordering::SeqCst);
                }
                drop(permit);
                result
            });
        }
        let mut problem: Option<ItemOutcome> = None;
        let mut journal_error = None;
        while let Some(joined) = set.join_next().await {
            let outcome = match joined {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => {
                    journal_error = Some(e);
                    continue;
                }
                Err(join) => ItemOutcome::Fail {
                    error: format!(
                        "step `{}`: an item's task ended abnormally: {join}",
                        step.id
                    ),
                },
            };
            if let Some(new) = severity(&outcome) {
                if replaces(problem.as_ref().and_then(severity), new) {
                    problem = Some(outcome);
                }
            }
        }
        if let Some(e) = journal_error {
            return Err(e);
        }
        if let Some(problem) = problem {
            return Ok(problem);
        }
        if launched < items.len() {
            return Ok(ItemOutcome::Halt {
                kind: HaltKind::Interrupted,
                reason: format!(
                    "interrupted during `{}`: {launched} of {} items were handled, the rest were not started",
                    step.id,
                    items.len()
                ),
            });
        }
        Ok(ItemOutcome::Done)
    }
}
