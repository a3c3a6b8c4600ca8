//! The embedded store: one sled database in a directory. Key layout: `keys.rs`.
//!
//! sled admits one process per database. Which process holds it is told by a lock
//! file of our own (`runbook.lock`, an OS file lock taken before sled opens), so "busy"
//! is a typed answer, not an error text. Other processes (a second terminal's `runbook
//! status`) read the live snapshots the holder writes next to it (`live.rs`).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::CompareAndSwapError;

use super::keys::{Key, EVENT, LOCK, RUN};
use super::{Append, JournalError, Lease, NewRunRecord, RunSummary, Store};
use crate::event::Event;
use crate::id::RunId;
use crate::state::RunState;
use crate::store::live::LiveDir;
use crate::store::lock::LockRecord;

const SCHEMA: &str = "1";

impl From<::sled::Error> for JournalError {
    fn from(e: ::sled::Error) -> JournalError {
        match &e {
            ::sled::Error::Io(io) => JournalError::of_io(io),
            _ => JournalError::Storage(e.to_string()),
        }
    }
}

fn corrupt(key: &[u8], e: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt {
        key: Key::decode(key)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| format!("{key:?}")),
        message: e.to_string(),
    }
}

fn json<T: serde::Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, JournalError> {
    serde_json::to_vec(value).map_err(|e| corrupt(key, e))
}

#[derive(Debug)]
pub struct SledStore {
    db: ::sled::Db,
    /// sled's log file, to sync to the disk after sled's own flush (which only
    /// `sync_file_range`s: durable against a killed process, not a power cut).
    log: File,
    dir: PathBuf,
    /// Held for as long as the store is open: the OS releases it if we die.
    _lock: File,
}

impl SledStore {
    /// Whether a journal was ever created in `dir`.
    pub fn exists(dir: &Path) -> bool {
        dir.join("db").exists() || dir.join("runs.mark").exists()
    }

    /// Open (or create) the store in `dir`.
    ///
    /// # Errors
    /// `Busy` when another process (or another handle) has it open, naming the runs
    /// it drives; any storage error.
    pub fn open(dir: &Path) -> Result<SledStore, JournalError> {
        let open_err = |message: String| JournalError::Open {
            dir: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        // The journal holds who did what where: readable by its owner only (its files,
        // sled's among them, and the live snapshots are all inside).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("runbook.lock"))
            .map_err(|e| open_err(e.to_string()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JournalError::Busy {
                    dir: dir.to_path_buf(),
                    holders: LiveDir::new(dir).active(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(open_err(e.to_string())),
        }
        let db = open_db(dir)?;
        check_whole(&db, dir)?;
        chain_old_runs(&db)?;
        let log = File::open(dir.join("db").join("db")).map_err(|e| open_err(e.to_string()))?;
        Ok(SledStore {
            db,
            log,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn live_error(&self, what: &str, e: &std::io::Error) -> JournalError {
        JournalError::Open {
            dir: self.dir.clone(),
            message: format!("{what}: {e}"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// sled's flush, then the log's data synced to the disk: power-safe.
    fn sync(&self) -> Result<(), JournalError> {
        self.db.flush()?;
        self.log.sync_data().map_err(|e| JournalError::of_io(&e))
    }

    /// Write raw bytes under a key: for tests that damage an entry on purpose.
    #[doc(hidden)]
    pub fn poke(&self, key: &Key, bytes: &[u8]) -> Result<(), JournalError> {
        self.db.insert(key.encode(), bytes)?;
        Ok(())
    }

    /// Remove a key: for tests that remove an entry on purpose.
    #[doc(hidden)]
    pub fn unpoke(&self, key: &Key) -> Result<(), JournalError> {
        self.db.remove(key.encode())?;
        Ok(())
    }

    fn next_id(old: Option<&[u8]>) -> u64 {
        old.and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
            + 1
    }
}

/// Journals written before the hash chain: their runs chained once, in place, in one
/// batch, and marked so it is done once (`chain.rs`).
fn chain_old_runs(db: &::sled::Db) -> Result<(), JournalError> {
    let mark = Key::Meta("chained".into()).encode();
    if db.contains_key(&mark)? {
        return Ok(());
    }
    let mut batch = ::sled::Batch::default();
    let mut run: Option<(RunId, Vec<(u64, String)>)> = None;
    let finish = |run: Option<(RunId, Vec<(u64, String)>)>, batch: &mut ::sled::Batch| {
        if let Some(new) = run.and_then(|(id, raw)| Some((id, crate::chain::upgrade(&raw)?))) {
            for (seq, t) in new.1 {
                batch.insert(Key::Event(new.0, seq).encode(), t.as_bytes());
            }
        }
    };
    for kv in db.scan_prefix([EVENT]) {
        let (k, v) = kv?;
        let (Ok(Key::Event(id, seq)), Ok(text)) = (Key::decode(&k), String::from_utf8(v.to_vec()))
        else {
            continue;
        };
        if run.as_ref().is_none_or(|(r, _)| *r != id) {
            finish(run.take(), &mut batch);
            run = Some((id, Vec::new()));
        }
        if let Some((_, raw)) = run.as_mut() {
            raw.push((seq, text));
        }
    }
    finish(run, &mut batch);
    batch.insert(mark, b"1".as_slice());
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(())
}

/// A damaged journal, naming the runs its live snapshots show it held.
fn damaged(dir: &Path, found: String) -> JournalError {
    JournalError::Damaged {
        dir: dir.to_path_buf(),
        found,
        running: LiveDir::new(dir)
            .all()
            .iter()
            .map(|s| format!("{} ({})", s.run_id, s.runbook))
            .collect(),
    }
}

/// Open sled's database in `dir` (this process holds `runbook.lock`).
fn open_db(dir: &Path) -> Result<::sled::Db, JournalError> {
    let config = ::sled::Config::new()
        .path(dir.join("db"))
        .mode(::sled::Mode::LowSpace)
        // sled caches up to 1 GB by default: far more than a CLI run needs.
        .cache_capacity(16 * 1024 * 1024);
    // We hold runbook.lock, so no other process has the database: a lock sled still
    // finds taken is this process's previous handle, whose background flusher lets go
    // a moment after it was dropped. Wait for it (briefly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(::sled::Error::Io(io))
                if matches!(JournalError::of_io(&io), JournalError::DiskFull { .. }) =>
            {
                return Err(JournalError::of_io(&io))
            }
            Err(::sled::Error::Corruption { at, .. }) => {
                return Err(damaged(
                    dir,
                    format!(
                        "sled found damaged data{}",
                        at.map(|a| format!(" at {a:?}")).unwrap_or_default()
                    ),
                ))
            }
            Err(e) => {
                return Err(JournalError::Open {
                    dir: dir.to_path_buf(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// The database holds every run the mark says was created (sled reads its log up to
/// the first damaged entry, so a damaged journal can read as empty or short); a new
/// database gets its schema mark.
fn check_whole(db: &::sled::Db, dir: &Path) -> Result<(), JournalError> {
    let schema = Key::Meta("schema".into()).encode();
    let marked = read_mark(dir);
    if db.get(&schema)?.is_none() {
        // (A database created by a process killed before its first flush holds
        // nothing and is new; only a journal that created runs can be damaged.)
        if marked > 0 {
            return Err(damaged(
                dir,
                format!("its database holds no readable entry, though runs r-1..r-{marked} were created in it"),
            ));
        }
        db.insert(schema, SCHEMA.as_bytes())?;
        db.flush()?;
    }
    let counter = Key::Meta("next_run_id".into()).encode();
    let last = SledStore::next_id(db.get(&counter)?.as_deref()) - 1;
    if marked > last {
        let many = marked > last + 1;
        return Err(damaged(
            dir,
            format!(
                "run{} r-{}{} {} created but cannot be read (the database was cut at a damaged entry)",
                if many { "s" } else { "" },
                last + 1,
                if many { format!("..r-{marked}") } else { String::new() },
                if many { "were" } else { "was" },
            ),
        ));
    }
    Ok(())
}

/// The highest run id ever created, kept beside sled (`runs.mark`): a run sled can no
/// longer read, though it was created, tells a damaged database from an empty one.
fn read_mark(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("runs.mark"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn write_mark(dir: &Path, id: u64) -> Result<(), JournalError> {
    use std::io::Write;
    let tmp = dir.join("runs.mark.tmp");
    let mut f = File::create(&tmp).map_err(|e| JournalError::of_io(&e))?;
    f.write_all(id.to_string().as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| JournalError::of_io(&e))?;
    std::fs::rename(&tmp, dir.join("runs.mark")).map_err(|e| JournalError::of_io(&e))
}

type TxResult<T> = Result<T, ConflictableTransactionError<JournalError>>;

fn abort<T>(e: JournalError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn settle<T>(r: Result<T, TransactionError<JournalError>>) -> Result<T, JournalError> {
    match r {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

/// Take `sites` for `record` inside a transaction.
fn lock_sites(
    tx: &::sled::transaction::TransactionalTree,
    sites: &[String],
    record: &LockRecord,
    value: &[u8],
) -> TxResult<()> {
    for site in sites {
        let key = Key::Lock(site.clone()).encode();
        if let Some(existing) = tx.get(&key)? {
            let holder: LockRecord = match serde_json::from_slice(&existing) {
                Ok(h) => h,
                Err(e) => return abort(corrupt(&key, e)),
            };
            if holder.run_id != record.run_id {
                return abort(JournalError::SiteHeld {
                    site: site.clone(),
                    holder: Box::new(holder),
                });
            }
        }
        tx.insert(key, value)?;
    }
    Ok(())
}

impl Store for SledStore {
    fn create_run(&self, new: NewRunRecord<'_>) -> Result<(RunId, Lease), JournalError> {
        let counter = Key::Meta("next_run_id".into()).encode();
        let event = new.text.as_bytes();
        let result = self.db.transaction(|tx| {
            let id = RunId(Self::next_id(tx.get(&counter)?.as_deref()));
            tx.insert(counter.as_slice(), &id.0.to_be_bytes())?;
            let record = LockRecord {
                run_id: id,
                runbook: new.runbook.to_string(),
                holder: new.holder.clone(),
                since: new.since,
                lease_ms: None,
            };
            let value = match json(b"L", &record) {
                Ok(v) => v,
                Err(e) => return abort(e),
            };
            lock_sites(tx, new.sites, &record, &value)?;
            tx.insert(Key::Event(id, 0).encode(), event)?;
            let summary = match json(b"R", &RunSummary::of(id, new.state)) {
                Ok(v) => v,
                Err(e) => return abort(e),
            };
            tx.insert(Key::Run(id).encode(), summary)?;
            Ok(id)
        });
        let id = settle(result)?;
        self.sync()?;
        write_mark(&self.dir, id.0)?;
        Ok((id, Lease::default()))
    }

    fn append(&self, a: Append<'_>) -> Result<(), JournalError> {
        let key = Key::Event(a.run, a.seq).encode();
        let bytes = a.text.as_bytes();
        let before = (a.seq > 0).then(|| Key::Event(a.run, a.seq - 1).encode());
        if let Some(before) = &before {
            if !self.db.contains_key(before)? {
                return Err(JournalError::Conflict {
                    run: a.run,
                    seq: a.seq,
                    why: "the event before it is not in the journal",
                });
            }
        }
        let taken = || JournalError::Conflict {
            run: a.run,
            seq: a.seq,
            why: "that sequence number is taken",
        };
        if a.summary.is_none() && !a.release_locks {
            // One key, written only if free: sled does it atomically on its own. (A
            // batch or transaction costs two more synced log writes: sled rolls its IO
            // buffer before and after the batch manifest.)
            match self
                .db
                .compare_and_swap(&key, None as Option<&[u8]>, Some(bytes))?
            {
                Ok(()) => {}
                Err(CompareAndSwapError { .. }) => return Err(taken()),
            }
        } else {
            let summary = match a.summary {
                Some(s) => Some(json(&Key::Run(a.run).encode(), s)?),
                None => None,
            };
            let held: Vec<Vec<u8>> = if a.release_locks {
                self.locks()?
                    .into_iter()
                    .filter(|(_, h)| h.run_id == a.run)
                    .map(|(site, _)| Key::Lock(site).encode())
                    .collect()
            } else {
                Vec::new()
            };
            let result = self.db.transaction(|tx| {
                if tx.get(&key)?.is_some() {
                    return abort(taken());
                }
                tx.insert(key.as_slice(), bytes)?;
                if let Some(s) = &summary {
                    tx.insert(Key::Run(a.run).encode(), s.as_slice())?;
                }
                for k in &held {
                    tx.remove(k.as_slice())?;
                }
                Ok(())
            });
            settle(result)?;
        }
        if a.power_safe {
            self.sync()?;
        } else if a.durable {
            self.db.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), JournalError> {
        self.sync()
    }

    fn events(&self, run: RunId) -> Result<Vec<Event>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(Key::events_of(run)) {
            let (k, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?);
        }
        if out.is_empty() {
            return Err(JournalError::UnknownRun(run));
        }
        Ok(out)
    }

    fn raw_events(&self, run: RunId) -> Result<Vec<(u64, String)>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(Key::events_of(run)) {
            let (k, v) = kv?;
            let Ok(Key::Event(_, seq)) = Key::decode(&k) else {
                return Err(corrupt(&k, "not an event key"));
            };
            let text = String::from_utf8(v.to_vec()).map_err(|e| corrupt(&k, e))?;
            out.push((seq, text));
        }
        if out.is_empty() {
            return Err(JournalError::UnknownRun(run));
        }
        Ok(out)
    }

    fn runs(&self) -> Result<Vec<RunSummary>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([RUN]) {
            let (k, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?);
        }
        Ok(out)
    }

    fn locks(&self) -> Result<Vec<(String, LockRecord)>, JournalError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([LOCK]) {
            let (k, v) = kv?;
            let Ok(Key::Lock(site)) = Key::decode(&k) else {
                return Err(corrupt(&k, "not a lock key"));
            };
            out.push((
                site,
                serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?,
            ));
        }
        Ok(out)
    }

    fn acquire(&self, sites: &[String], record: &LockRecord) -> Result<Lease, JournalError> {
        let value = json(b"L", record)?;
        let result = self
            .db
            .transaction(|tx| lock_sites(tx, sites, record, &value));
        settle(result)?;
        self.db.flush()?;
        Ok(Lease::default())
    }

    fn publish_live(&self, run: RunId, snapshot: Option<&str>) -> Result<(), JournalError> {
        let live = LiveDir::new(&self.dir);
        match snapshot {
            Some(text) => live
                .publish(&run.to_string(), text)
                .map_err(|e| self.live_error("cannot write the live status file", &e)),
            None => {
                live.withdraw(&run.to_string());
                Ok(())
            }
        }
    }

    fn read_live(&self, run: RunId) -> Result<Option<String>, JournalError> {
        Ok(LiveDir::new(&self.dir).read_text(&run.to_string()))
    }

    fn request_abort(&self, run: RunId, request: &str) -> Result<(), JournalError> {
        LiveDir::new(&self.dir)
            .request_abort(&run.to_string(), request)
            .map_err(|e| self.live_error("cannot write the abort request", &e))
    }

    fn abort_request(&self, run: RunId) -> Result<Option<String>, JournalError> {
        Ok(LiveDir::new(&self.dir).abort_request(&run.to_string()))
    }

    fn clear_abort_request(&self, run: RunId) -> Result<(), JournalError> {
        LiveDir::new(&self.dir).clear_abort_request(&run.to_string());
        Ok(())
    }

    fn release(&self, site: &str, run: RunId) -> Result<(), JournalError> {
        let key = Key::Lock(site.to_string()).encode();
        let result = self.db.transaction(|tx| {
            if let Some(v) = tx.get(&key)? {
                if serde_json::from_slice::<LockRecord>(&v).is_ok_and(|h| h.run_id == run) {
                    tx.remove(key.as_slice())?;
                }
            }
            Ok(())
        });
        settle(result)?;
        self.db.flush()?;
        Ok(())
    }

    fn import(&self, runs: &[(RunId, Vec<Event>)]) -> Result<(), JournalError> {
        let mut batch = ::sled::Batch::default();
        let counter = Key::Meta("next_run_id".into()).encode();
        let mut top = Self::next_id(self.db.get(&counter)?.as_deref()) - 1;
        for (run, events) in runs {
            let state = RunState::fold(&run.to_string(), events);
            let texts = crate::chain::texts(events).map_err(|e| corrupt(b"E", e))?;
            for (seq, t) in texts.iter().enumerate() {
                batch.insert(Key::Event(*run, seq as u64).encode(), t.as_bytes());
            }
            let mut summary = RunSummary::of(*run, &state);
            summary.head = texts
                .last()
                .map(|t| crate::chain::head(texts.len() as u64 - 1, t));
            let key = Key::Run(*run).encode();
            batch.insert(key.clone(), json(&key, &summary)?);
            top = top.max(run.0);
        }
        // Ids handed out later never collide with imported ones.
        batch.insert(counter, &top.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::journal::Journal;

    #[test]
    fn the_storage_suite_passes_on_sled() {
        for (name, case) in crate::testing::suite::CASES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            eprintln!("suite case: {name}");
            case(&|| Arc::new(SledStore::open(&path).unwrap()) as Arc<dyn Store>);
        }
    }

    #[test]
    fn a_damaged_entry_is_named_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let id = RunId(1);
        let end = Event::Completed { at: 5 };
        store.import(&[(id, vec![end])]).unwrap();
        // bytes that are no event, under the run's second event key
        store
            .poke(&Key::Event(id, 1), b"{\"event\":\"completed\",\"at\":")
            .unwrap();
        let e = store.events(id).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, JournalError::Corrupt { .. }), "{text}");
        assert!(
            text.contains("Event(") && text.contains("is unreadable"),
            "{text}"
        );
        store.poke(&Key::Run(id), b"[]").unwrap();
        assert!(matches!(store.runs(), Err(JournalError::Corrupt { .. })));
    }

    #[test]
    fn a_journal_written_before_the_chain_is_chained_once_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let id = RunId(1);
        let events: Vec<Event> = (0..3).map(|at| Event::Completed { at }).collect();
        {
            // As an older runbook stored them: no `prev`, and no mark.
            let store = SledStore::open(dir.path()).unwrap();
            for (seq, e) in events.iter().enumerate() {
                let text = crate::chain::text(e, None).unwrap();
                store
                    .poke(&Key::Event(id, seq as u64), text.as_bytes())
                    .unwrap();
            }
            store.unpoke(&Key::Meta("chained".into())).unwrap();
            let raw = store.raw_events(id).unwrap();
            assert_eq!(crate::chain::verify(&raw, None).len(), 2);
        }
        let store = SledStore::open(dir.path()).unwrap();
        let raw = store.raw_events(id).unwrap();
        assert!(crate::chain::verify(&raw, None).is_empty(), "{raw:?}");
        assert_eq!(store.events(id).unwrap(), events);
        // Once only: an event stripped of its hash afterwards is not re-chained.
        store
            .poke(
                &Key::Event(id, 2),
                crate::chain::text(&events[2], None).unwrap().as_bytes(),
            )
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            crate::chain::verify(&store.raw_events(id).unwrap(), None).len(),
            1
        );
    }

    #[test]
    fn a_second_open_is_busy_and_says_so_by_type() {
        // The lock is an OS file lock per open file: within one process a second open
        // of the same journal is refused too, which is what this checks.
        let dir = tempfile::tempdir().unwrap();
        let _j = Journal::open(dir.path()).unwrap();
        match Journal::open(dir.path()) {
            Err(JournalError::Busy { .. }) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
    }
}
