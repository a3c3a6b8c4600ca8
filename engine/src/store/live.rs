//! Live status for other processes. sled admits one process per database, so the
//! process driving a run also writes the run's folded state to `live/<run-id>.json`
//! after every event (write to a temporary file, then rename: a reader never sees half
//! a file). `runbook status` in a second terminal reads these when the journal is busy.

use std::path::{Path, PathBuf};

use crate::state::RunState;
use crate::store::lock::process_alive;

#[derive(Debug, Clone)]
pub struct LiveDir {
    dir: PathBuf,
}

impl LiveDir {
    pub fn new(journal_dir: &Path) -> LiveDir {
        LiveDir {
            dir: journal_dir.join("live"),
        }
    }

    fn path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.json"))
    }

    /// Publish a run's state.
    ///
    /// # Errors
    /// File system errors (the caller logs them: live status is a convenience, the
    /// journal is the record).
    pub fn publish(&self, run_id: &str, snapshot: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".{run_id}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, snapshot)?;
        std::fs::rename(&tmp, self.path(run_id))
    }

    /// Stop publishing a run (its process is about to let go of the journal).
    pub fn withdraw(&self, run_id: &str) {
        let _ = std::fs::remove_file(self.path(run_id));
    }

    pub fn read(&self, run_id: &str) -> Option<RunState> {
        serde_json::from_str(&self.read_text(run_id)?).ok()
    }

    /// The snapshot as published.
    pub fn read_text(&self, run_id: &str) -> Option<String> {
        std::fs::read_to_string(self.path(run_id)).ok()
    }

    fn abort_path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.abort-request"))
    }

    /// Ask the process driving `run_id` to stop at its next safe point and abort
    /// (`runbook abort` from another terminal while the journal is held).
    ///
    /// # Errors
    /// File system errors.
    pub fn request_abort(&self, run_id: &str, request: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".{run_id}.abort.{}.tmp", std::process::id()));
        std::fs::write(&tmp, request)?;
        std::fs::rename(&tmp, self.abort_path(run_id))
    }

    /// A pending request to abort `run_id`, if any.
    pub fn abort_request(&self, run_id: &str) -> Option<String> {
        std::fs::read_to_string(self.abort_path(run_id)).ok()
    }

    pub fn clear_abort_request(&self, run_id: &str) {
        let _ = std::fs::remove_file(self.abort_path(run_id));
    }

    /// Every snapshot, its driver alive or not (a damaged journal names them).
    pub fn all(&self) -> Vec<RunState> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<RunState> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| serde_json::from_slice::<RunState>(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        out
    }

    /// Runs published by processes still alive.
    pub fn active(&self) -> Vec<RunState> {
        let mut out = self.all();
        out.retain(|s| process_alive(&s.driver));
        out
    }
}
