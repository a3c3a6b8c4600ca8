//! The storage interface of the journal: what a store must do, and nothing more.
//!
//! A store keeps, per journal: each run's events under (run, sequence), an index of
//! runs (one [`RunSummary`] each), and the site locks with their holders. It makes no
//! decision of its own: *when* an append must be durable and *when* a run's locks go
//! are the journal's policy (`journal.rs`), passed down in each [`Append`].
//!
//! Every append is conditional: it names the sequence number it expects to take, and
//! a store refuses it ([`JournalError::Conflict`]) when that number is already taken or
//! the one before it is missing. That is the hook for fencing a second writer.
//!
//! [`sled::SledStore`] is the embedded store. `testing::suite` (feature `test-support`)
//! is the contract as tests: a new store runs the same suite unchanged.

pub mod keys;
pub mod live;
pub mod lock;
pub mod sled;

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{Actor, Event};
use crate::id::RunId;
use crate::state::{RunState, RunStatus};
use crate::store::lock::LockRecord;

/// One line of `runbook history`: kept in the run index so that listing runs does not
/// fold every journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub run_id: RunId,
    pub runbook: String,
    pub title: String,
    pub status: RunStatus,
    pub operator: String,
    /// The host the run was started from.
    #[serde(default)]
    pub host: String,
    /// Who did what to it since: resumed, took over, approved, skipped, retried,
    /// aborted (`operator@host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hands: Vec<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub halted_at: Option<String>,
    pub reason: Option<String>,
    /// Which way it goes: `primary → secondary` from its parameters, or its `site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// A guard was overridden (`force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The process that last drove it (`operator@host`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// `seq:sha256` of the newest event written with this line: the end of the run's
    /// hash chain (`chain.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

impl RunSummary {
    pub fn of(id: RunId, state: &RunState) -> RunSummary {
        RunSummary {
            run_id: id,
            runbook: state.runbook.clone(),
            title: state.title.clone(),
            status: state.status,
            operator: state.created_by.operator.clone(),
            host: state.created_by.host.clone(),
            hands: state.hands.clone(),
            created_at: state.created_at,
            updated_at: state.updated_at,
            halted_at: state.halt.as_ref().and_then(|h| h.step.clone()),
            reason: state.halt.as_ref().map(|h| h.reason.clone()),
            direction: moved(direction(&state.params), state.traffic.as_deref()),
            forced: !state.overrides.is_empty()
                || state.params.get("force") == Some(&serde_json::Value::Bool(true)),
            driver: format!("{}@{}", state.driver.operator, state.driver.host),
            head: None,
        }
    }
}

/// The direction its parameters say, with where its plan moves traffic.
fn moved(direction: Option<String>, traffic: Option<&str>) -> Option<String> {
    match (direction, traffic) {
        (Some(d), Some(t)) => Some(format!("{d}; traffic: {t}")),
        (None, Some(t)) => Some(format!("traffic: {t}")),
        (d, None) => d,
    }
}

/// `primary → secondary`, or the one site a run names.
fn direction(params: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let p = |k: &str| params.get(k).and_then(serde_json::Value::as_str);
    match (p("primary"), p("secondary"), p("site")) {
        (Some(a), Some(b), _) => Some(format!("{a} → {b}")),
        (_, _, Some(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// Where a journal lives: `--journal`, `RUNBOOK_JOURNAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory: the embedded sled store.
    Dir(PathBuf),
    /// A database server, as shown to people (never with its password).
    Remote(String),
}

impl Location {
    /// Read a location as the operator wrote it.
    ///
    /// # Errors
    /// A URL of a scheme no store of this build serves.
    pub fn parse(text: &str) -> Result<Location, JournalError> {
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(JournalError::UnsupportedLocation {
                    scheme: scheme.to_string(),
                });
            }
        }
        Ok(Location::Dir(PathBuf::from(text)))
    }

    /// Whether a journal was ever created there.
    pub fn exists(&self) -> bool {
        match self {
            Location::Dir(d) => sled::SledStore::exists(d),
            Location::Remote(_) => true,
        }
    }

    /// The directory beside the journal where the driving process publishes live
    /// snapshots for other processes (`live.rs`).
    pub fn live_dir(&self) -> Option<PathBuf> {
        match self {
            Location::Dir(d) => Some(d.clone()),
            // Every process reads a database server directly.
            Location::Remote(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Remote(shown) => f.write_str(shown),
        }
    }
}

/// One event to append, with what the journal's policy decided goes with it.
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    pub run: RunId,
    /// The sequence number this event must take: the run's next one.
    pub seq: u64,
    pub event: &'a Event,
    /// The exact text to store: the event with the hash of the one before it.
    pub text: &'a str,
    /// The run's new index line, when it changed.
    pub summary: Option<&'a RunSummary>,
    /// Release every site lock this run holds, atomically with the event.
    pub release_locks: bool,
    /// Durable before `append` returns. When false, the next durable append (or
    /// [`Store::flush`]) makes it durable, in order.
    pub durable: bool,
    /// Durable against a power cut or a machine crash too (the file's data synced to
    /// the disk, `fdatasync`), not only against a killed process. When false (a
    /// step's result: no effect waits on it), the next power-safe append (the next
    /// step's intent, a halt, the end) syncs it with itself.
    pub power_safe: bool,
    /// The fencing epoch of the writer's lease on the run's sites (0: no lease, e.g.
    /// a run that touches no site). A store with leases refuses an append whose epoch
    /// is not the current one of every site the run holds.
    pub epoch: u64,
}

/// A driver's hold on its run's sites: the fencing epoch its appends carry, and for
/// how long the store keeps it without a renewal (`None`: for as long as this process
/// has the store open, as with sled, which admits one process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lease {
    pub epoch: u64,
    pub ttl: Option<Duration>,
}

/// A run's first record: its id is handed out, its sites locked and its first event
/// and index line written in one step, or none of it (a run refused for a held site
/// leaves nothing behind).
#[derive(Debug, Clone, Copy)]
pub struct NewRunRecord<'a> {
    pub sites: &'a [String],
    pub runbook: &'a str,
    pub holder: &'a Actor,
    pub since: u64,
    /// The `run_created` event.
    pub event: &'a Event,
    /// Its exact text to store.
    pub text: &'a str,
    pub state: &'a RunState,
}

/// What a journal store does. Implementations: [`sled::SledStore`].
pub trait Store: Send + Sync + Debug {
    /// Hand out a run id, lock its sites and write its first event, all or nothing.
    ///
    /// # Errors
    /// `SiteHeld` naming the first site another run holds; storage errors.
    fn create_run(&self, new: NewRunRecord<'_>) -> Result<(RunId, Lease), JournalError>;

    /// Append one event at `append.seq`.
    ///
    /// # Errors
    /// `Conflict` when that sequence number is taken or the one before is missing;
    /// storage errors (the event is then not durable and the caller must stop).
    fn append(&self, append: Append<'_>) -> Result<(), JournalError>;

    /// Make every earlier append durable.
    ///
    /// # Errors
    /// Storage errors.
    fn flush(&self) -> Result<(), JournalError>;

    /// All events of a run, in order.
    ///
    /// # Errors
    /// `UnknownRun`, or an unreadable entry.
    fn events(&self, run: RunId) -> Result<Vec<Event>, JournalError>;

    /// A run's events as stored, byte for byte, with their sequence numbers in key
    /// order (gaps included): what the hash chain is checked on.
    ///
    /// # Errors
    /// `UnknownRun`; storage errors.
    fn raw_events(&self, run: RunId) -> Result<Vec<(u64, String)>, JournalError>;

    /// The run index, oldest first.
    ///
    /// # Errors
    /// An unreadable entry.
    fn runs(&self) -> Result<Vec<RunSummary>, JournalError>;

    /// The site locks and who holds them.
    ///
    /// # Errors
    /// An unreadable entry.
    fn locks(&self) -> Result<Vec<(String, LockRecord)>, JournalError>;

    /// Take every site in `sites` for `record.run_id`, all or none. A site already
    /// held by the same run is taken over (a resumed run gets its locks back).
    ///
    /// # Errors
    /// `SiteHeld` naming the first site held by another run.
    fn acquire(&self, sites: &[String], record: &LockRecord) -> Result<Lease, JournalError>;

    /// Extend the lease of run `run` under `epoch` by its time to live.
    ///
    /// # Errors
    /// `Fenced` when another process took the run's sites over (a newer epoch);
    /// storage errors.
    fn renew(&self, run: RunId, epoch: u64) -> Result<(), JournalError> {
        let _ = (run, epoch);
        Ok(())
    }

    /// End the lease of run `run` under `epoch` now, keeping its sites: the driver has
    /// stopped (the run halted or failed), so another process may resume it or record
    /// a decision on it at once instead of waiting out the lease.
    ///
    /// # Errors
    /// Storage errors.
    fn let_go(&self, run: RunId, epoch: u64) -> Result<(), JournalError> {
        let _ = (run, epoch);
        Ok(())
    }

    /// Publish the driver's live snapshot of a run (what each running step waits for,
    /// not journaled) for readers in other processes; `None` withdraws it. PostgreSQL
    /// keeps it in a table; sled, which admits one process, in a file beside its
    /// database that a reader can open while the journal is held (`live.rs`).
    ///
    /// # Errors
    /// Storage errors (the caller logs them: the journal is the record).
    fn publish_live(&self, run: RunId, snapshot: Option<&str>) -> Result<(), JournalError>;

    /// The live snapshot a driver published, if any.
    ///
    /// # Errors
    /// Storage errors.
    fn read_live(&self, run: RunId) -> Result<Option<String>, JournalError>;

    /// Ask the process driving `run` to abort it at its next safe point.
    ///
    /// # Errors
    /// Storage errors.
    fn request_abort(&self, run: RunId, request: &str) -> Result<(), JournalError>;

    /// A pending request to abort `run`, if any.
    ///
    /// # Errors
    /// Storage errors.
    fn abort_request(&self, run: RunId) -> Result<Option<String>, JournalError>;

    /// Forget the request to abort `run` (it was carried out, or the run is over).
    ///
    /// # Errors
    /// Storage errors.
    fn clear_abort_request(&self, run: RunId) -> Result<(), JournalError>;

    /// Release `site` if, and only if, run `run` holds it.
    ///
    /// # Errors
    /// Storage errors.
    fn release(&self, site: &str, run: RunId) -> Result<(), JournalError>;

    /// Write whole runs at once, with ids of their own, flushing once: importing
    /// history, never a live run.
    ///
    /// # Errors
    /// Storage errors.
    fn import(&self, runs: &[(RunId, Vec<Event>)]) -> Result<(), JournalError>;
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal at `{}` is in use by another runbook process{}", dir.display(), describe_holders(holders))]
    Busy {
        dir: PathBuf,
        holders: Vec<RunState>,
    },
    #[error("cannot open the journal at `{}`: {message}", dir.display())]
    Open { dir: PathBuf, message: String },
    #[error("journal storage error: {0}")]
    Storage(String),
    #[error("journal entry `{key}` is unreadable: {message}. The rest of the journal is untouched; to go on, restore the journal from a backup, or copy what can be read elsewhere (`runbook journal copy` into a PostgreSQL journal) and start a new one")]
    Corrupt { key: String, message: String },
    #[error("the journal at `{shown}` is damaged: {found}. Nothing was changed. {held}To go on: stop every runbook process that uses it, then restore the directory from a backup, or move it aside (`mv {shown} {shown}.damaged`) and start a new journal; runs that were in flight must then be checked by hand (`runbook check`)", shown = dir.display(), held = held(running))]
    Damaged {
        dir: PathBuf,
        found: String,
        /// The runs its live snapshots show (readable beside a damaged database).
        running: Vec<String>,
    },
    #[error("no run `{0}` in this journal (see `runbook history`)")]
    UnknownRun(RunId),
    #[error(
        "site `{site}` is held by run {}",
        crate::store::lock::describe_holder(holder)
    )]
    SiteHeld {
        site: String,
        holder: Box<LockRecord>,
    },
    #[error(
        "run {run}: event {seq} cannot be appended: {why}; another process may be writing this run"
    )]
    Conflict {
        run: RunId,
        seq: u64,
        why: &'static str,
    },
    #[error("journal location `{scheme}://...` is not served by this build: give a directory or a postgres:// URL")]
    UnsupportedLocation { scheme: String },
    /// A journal URL that cannot be read as one (a configuration mistake, not an
    /// unreachable database).
    #[error("journal URL `{shown}`: {message}")]
    BadUrl { shown: String, message: String },
    #[error(
        "run {run} is being driven by {} on {} (pid {}); its lease expires in {}: it can be resumed from elsewhere only after that",
        holder.operator, holder.host, holder.pid, humantime::format_duration(*expires_in)
    )]
    LeaseHeld {
        run: RunId,
        holder: Box<crate::event::Actor>,
        expires_in: Duration,
    },
    #[error(
        "run {run}: this process no longer holds its sites: {} on {} (pid {}) took the run over; nothing more was done here",
        holder.operator, holder.host, holder.pid
    )]
    Fenced {
        run: RunId,
        holder: Box<crate::event::Actor>,
    },
    #[error("the journal could not be reached for {waited:?}: stopped before any further effect ({last})")]
    Unreachable { waited: Duration, last: String },
    /// The disk under the journal is full (or the quota is reached): what was asked
    /// was not written, and nothing after it will be.
    #[error("the journal's disk is full ({detail}): the last event asked for was not written, and nothing more was done; free some space, then `runbook resume` the run")]
    DiskFull { detail: String },
}

impl JournalError {
    /// The same error again, for a writer that already failed once (the first error
    /// keeps its kind; the others become a storage error naming it).
    pub fn again(&self) -> JournalError {
        match self {
            JournalError::DiskFull { detail } => JournalError::DiskFull {
                detail: detail.clone(),
            },
            JournalError::Unreachable { waited, last } => JournalError::Unreachable {
                waited: *waited,
                last: last.clone(),
            },
            JournalError::Storage(m) if m.starts_with("an earlier write") => {
                JournalError::Storage(m.clone())
            }
            other => JournalError::Storage(format!(
                "an earlier write to this run failed, so nothing more was written: {other}"
            )),
        }
    }

    /// What an I/O error means for the journal: a full disk is said as such.
    pub fn of_io(e: &std::io::Error) -> JournalError {
        // sled wraps some I/O errors once more: the kind survives, the errno may not.
        let text = format!("{e:?}");
        let quota = e.kind() == std::io::ErrorKind::QuotaExceeded
            || e.raw_os_error() == Some(122)
            || text.contains("QuotaExceeded");
        let full = e.kind() == std::io::ErrorKind::StorageFull
            || e.raw_os_error() == Some(28)
            || text.contains("StorageFull");
        if quota || full {
            JournalError::DiskFull {
                detail: if quota {
                    "disk quota exceeded".into()
                } else {
                    "no space left on device".into()
                },
            }
        } else {
            JournalError::Storage(e.to_string())
        }
    }
}

fn held(running: &[String]) -> String {
    if running.is_empty() {
        "No live snapshot names a run it held. ".into()
    } else {
        format!(
            "Its live snapshots name the runs it held, with their sites locked: {}. ",
            running.join(", ")
        )
    }
}

fn describe_holders(holders: &[RunState]) -> String {
    if holders.is_empty() {
        return String::new();
    }
    let list: Vec<String> = holders
        .iter()
        .map(|h| {
            format!(
                "{} ({}, pid {} on {})",
                h.run_id, h.runbook, h.driver.pid, h.driver.host
            )
        })
        .collect();
    format!(": {}", list.join(", "))
}

#[cfg(test)]
mod io_tests {
    use super::JournalError;

    #[test]
    fn a_full_disk_or_quota_is_said_as_such_and_other_io_errors_are_not() {
        let full = std::io::Error::from_raw_os_error(28);
        assert!(
            matches!(JournalError::of_io(&full), JournalError::DiskFull { detail } if detail == "no space left on device")
        );
        let quota = std::io::Error::from(std::io::ErrorKind::QuotaExceeded);
        assert!(
            matches!(JournalError::of_io(&quota), JournalError::DiskFull { detail } if detail == "disk quota exceeded")
        );
        // sled re-wraps some errors in one of its own, keeping the kind in the text.
        let wrapped = std::io::Error::other(format!("{full:?}"));
        assert!(matches!(
            JournalError::of_io(&wrapped),
            JournalError::DiskFull { .. }
        ));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(
            JournalError::of_io(&other),
            JournalError::Storage(_)
        ));
        // A writer that failed answers with the first error's kind from then on.
        let first = JournalError::of_io(&full);
        assert!(matches!(
            first.again().again(),
            JournalError::DiskFull { .. }
        ));
        let s = JournalError::Storage("x".into())
            .again()
            .again()
            .to_string();
        assert_eq!(s.matches("an earlier write").count(), 1, "{s}");
    }
}
