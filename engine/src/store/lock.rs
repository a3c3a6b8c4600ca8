//! Site locks: a run holds the sites it touches from its start until it completes or
//! is aborted, across halts and crashes. A second run on a held site is refused with
//! the holder's name; a lock whose process died is taken over only by resuming the run
//! that holds it.

use serde::{Deserialize, Serialize};

use crate::event::Actor;
use crate::id::RunId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub run_id: RunId,
    pub runbook: String,
    /// The process that last drove the holding run.
    pub holder: Actor,
    pub since: u64,
    /// With a store whose leases expire: milliseconds until the driver's lease does
    /// (negative: it expired that long ago). Read from the store, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<i64>,
}

/// Whether a process is alive, judged from this host. A process on another host is
/// assumed alive (we cannot know).
pub fn process_alive(actor: &Actor) -> bool {
    let here = gethostname::gethostname().to_string_lossy().into_owned();
    if actor.host != here {
        return true;
    }
    std::path::Path::new(&format!("/proc/{}", actor.pid)).exists()
}

/// `r-3 (switchover, pid 123 on host h, process gone: resume it with ...)`
pub fn describe_holder(lock: &LockRecord) -> String {
    let h = &lock.holder;
    if let Some(ms) = lock.lease_ms {
        let d = |ms: i64| {
            humantime::format_duration(std::time::Duration::from_secs(
                ms.unsigned_abs().div_ceil(1000),
            ))
        };
        return if ms > 0 {
            format!(
                "{} ({}, driven by {} on {}, pid {}; its lease expires in {}, renewed while it runs)",
                lock.run_id, lock.runbook, h.operator, h.host, h.pid, d(ms)
            )
        } else {
            format!(
                "{} ({}; its driver {} on {}, pid {}, let its lease expire {} ago): continue it with `runbook resume {}` or release it with `runbook abort {} --reason ...`",
                lock.run_id, lock.runbook, h.operator, h.host, h.pid, d(ms), lock.run_id, lock.run_id
            )
        };
    }
    if process_alive(h) && h.pid != std::process::id() {
        format!(
            "{} ({}, driven by pid {} on {} as {})",
            lock.run_id, lock.runbook, h.pid, h.host, h.operator
        )
    } else {
        format!(
            "{} ({}; its process {} on {} is gone): continue it with `runbook resume {}` or release it with `runbook abort {} --reason ...`",
            lock.run_id, lock.runbook, h.pid, h.host, lock.run_id, lock.run_id
        )
    }
}
