//! The journal in PostgreSQL, for teams: the engine's storage interface
//! (`engine::store::Store`) over tables any process on any machine with the URL can
//! read, and site leases with fencing so that two drivers never act on one site.
//!
//! - **Schema** (`migrations.rs`): created or migrated on first use under an advisory
//!   lock, its version recorded; a schema newer than this binary knows is refused.
//! - **Events**: unique `(run_id, seq)`; an append names its sequence number (taken or
//!   out of order: `Conflict`) and the driver's lease epoch (not the current one for
//!   every site the run holds: `Fenced`), in one statement. A trigger notifies
//!   `runbook_events` with the run id (LISTEN is the hint, the tables the truth).
//! - **Sites** (`runbook_sites`): a row per site held by a run, from the run's start
//!   until it ends (as the sled store's locks), and in it the driver's lease: an epoch
//!   taken from a counter on every acquisition, the holder, and `expires_at` on the
//!   database's clock. A new run on a held site is `SiteHeld`; resuming a run whose
//!   driver's lease has not expired is `LeaseHeld`; after it expires, another process
//!   takes the run over with a new epoch, and the old driver's next append or renewal
//!   is refused.
//! - **Losing the database**: calls retry on a new connection with backoff for up to
//!   the lease's time to live, then fail `Unreachable`; the driver does no effect
//!   without a committed intent.

pub mod conn;
mod migrations;
pub mod target;

use std::time::Duration;

use engine::event::{Actor, Event};
use engine::id::RunId;
use engine::journal::{JournalError, RunSummary};
use engine::lock::LockRecord;
use engine::store::{Append, Lease, NewRunRecord, Store};

use conn::{Conn, Failure};
pub use target::Target;

/// The default time to live of a driver's lease (`--lease-ttl`, `RUNBOOK_LEASE_TTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How long a reader (status, history) waits for an unreachable database.
const READ_PATIENCE: Duration = Duration::from_secs(5);

pub struct PgStore {
    conn: Conn,
    ttl: Duration,
    shown: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("at", &self.shown)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn corrupt(key: String, e: impl std::fmt::Display) -> Failure {
    Failure::Journal(JournalError::Corrupt {
        key,
        message: e.to_string(),
    })
}

fn to_json<T: serde::Serialize>(key: &str, v: &T) -> Result<String, JournalError> {
    serde_json::to_string(v).map_err(|e| JournalError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn actor_of(text: &str) -> Actor {
    serde_json::from_str(text).unwrap_or_default()
}

/// The same process: a lease it holds is its own to renew or take again.
fn same_process(a: &Actor, b: &Actor) -> bool {
    a.host == b.host && a.pid == b.pid
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PgStore {
    /// Connect, and create or migrate the schema.
    ///
    /// # Errors
    /// The database cannot be reached within a few seconds, or its schema is newer
    /// than this binary knows.
    pub fn open(target: &Target, ttl: Duration) -> Result<PgStore, JournalError> {
        let store = PgStore {
            conn: Conn::start(target.clone()),
            ttl,
            shown: target.shown().to_string(),
        };
        let shown = store.shown.clone();
        store.conn.call(READ_PATIENCE, move |c| {
            migrations::migrate(c).map_err(|e| match e {
                Failure::Journal(JournalError::Open { message, .. }) => {
                    Failure::Journal(JournalError::Open {
                        dir: shown.clone().into(),
                        message,
                    })
                }
                other => other,
            })
        })?;
        Ok(store)
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// How long a driver's call may wait for the database: its lease's life.
    fn patience(&self) -> Duration {
        self.ttl
    }
}

/// Take `sites` for `record.run_id` inside a transaction, with a new epoch.
fn take_sites(
    tx: &mut postgres::Transaction<'_>,
    sites: &[String],
    record: &LockRecord,
    ttl: f64,
) -> Result<Lease, Failure> {
    let epoch: i64 = tx
        .query_one(
            "UPDATE runbook_meta SET value = (value::bigint + 1)::text WHERE key = 'next_epoch' RETURNING value::bigint",
            &[],
        )?
        .get(0);
    for site in sites {
        let row = tx.query_opt(
            "SELECT run_id, runbook, holder, since, extract(epoch from expires_at - now())::float8 FROM runbook_sites WHERE site = $1 FOR UPDATE",
            &[site],
        )?;
        if let Some(row) = row {
            let run_id = RunId(row.get::<_, i64>(0) as u64);
            let holder = actor_of(row.get(2));
            if run_id != record.run_id {
                let left: f64 = row.get(4);
                return Err(Failure::Journal(JournalError::SiteHeld {
                    site: site.clone(),
                    holder: Box::new(LockRecord {
                        run_id,
                        runbook: row.get(1),
                        holder,
                        since: row.get::<_, i64>(3) as u64,
                        lease_ms: Some((left * 1000.0) as i64),
                    }),
                }));
            }
            let left: f64 = row.get(4);
            if left > 0.0 && !same_process(&holder, &record.holder) {
                return Err(Failure::Journal(JournalError::LeaseHeld {
                    run: run_id,
                    holder: Box::new(holder),
                    expires_in: Duration::from_secs_f64(left),
                }));
            }
        }
        tx.execute(
            "INSERT INTO runbook_sites (site, run_id, runbook, since, epoch, holder, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
             ON CONFLICT (site) DO UPDATE SET epoch = EXCLUDED.epoch, holder = EXCLUDED.holder,
               expires_at = EXCLUDED.expires_at",
            &[
                site,
                &(record.run_id.0 as i64),
                &record.runbook,
                &(record.since as i64),
                &epoch,
                &to_json("holder", &record.holder)?,
                &ttl,
            ],
        )?;
    }
    Ok(Lease {
        epoch: epoch as u64,
        ttl: Some(Duration::from_secs_f64(ttl)),
    })
}

/// Why an insert of event `seq` of `run` under `epoch` took no row.
fn refused_append(
    c: &mut impl postgres::GenericClient,
    run: RunId,
    seq: u64,
    epoch: u64,
) -> Failure {
    let id = run.0 as i64;
    let fenced = c.query_opt(
        "SELECT holder FROM runbook_sites WHERE run_id = $1 AND epoch <> $2 LIMIT 1",
        &[&id, &(epoch as i64)],
    );
    match fenced {
        Ok(Some(row)) => {
            return Failure::Journal(JournalError::Fenced {
                run,
                holder: Box::new(actor_of(row.get(0))),
            })
        }
        Ok(None) => {}
        Err(e) => return Failure::Db(e),
    }
    let taken = c
        .query_opt(
            "SELECT 1 FROM runbook_events WHERE run_id = $1 AND seq = $2",
            &[&id, &(seq as i64)],
        )
        .map(|r| r.is_some());
    // Taken by a process that took the run over (and may have ended it, releasing its
    // sites): the newest `resumed` event names it.
    if let Ok(true) = taken {
        let by = c.query_opt(
            "SELECT event FROM runbook_events WHERE run_id = $1 AND seq >= $2 AND event LIKE '%\"event\":\"resumed\"%' ORDER BY seq DESC LIMIT 1",
            &[&id, &(seq as i64)],
        );
        if let Ok(Some(row)) = by {
            if let Ok(Event::Resumed { by, .. }) = serde_json::from_str::<Event>(row.get(0)) {
                return Failure::Journal(JournalError::Fenced {
                    run,
                    holder: Box::new(by),
                });
            }
        }
    }
    Failure::Journal(JournalError::Conflict {
        run,
        seq,
        why: match taken {
            Ok(true) => "that sequence number is taken",
            _ => "the event before it is not in the journal",
        },
    })
}

/// An insert that took no row: a retry that finds its own event committed (after a
/// lost connection) is done (`Ok`); otherwise why it was refused.
fn already_there(
    c: &mut impl postgres::GenericClient,
    run: RunId,
    seq: u64,
    epoch: u64,
    again: bool,
    stored: &str,
) -> Result<(), Failure> {
    if again {
        let there = c.query_opt(
            "SELECT event FROM runbook_events WHERE run_id = $1 AND seq = $2",
            &[&(run.0 as i64), &(seq as i64)],
        )?;
        if there.is_some_and(|r| r.get::<_, String>(0) == stored) {
            return Ok(());
        }
    }
    Err(refused_append(c, run, seq, epoch))
}

const INSERT_EVENT: &str = "INSERT INTO runbook_events (run_id, seq, event)
    SELECT $1::bigint, $2::bigint, $3::text
    WHERE ($2::bigint = 0 OR EXISTS (SELECT 1 FROM runbook_events WHERE run_id = $1::bigint AND seq = $2::bigint - 1))
      AND NOT EXISTS (SELECT 1 FROM runbook_sites WHERE run_id = $1::bigint AND epoch <> $4::bigint)
    ON CONFLICT DO NOTHING";

impl Store for PgStore {
    fn create_run(&self, new: NewRunRecord<'_>) -> Result<(RunId, Lease), JournalError> {
        let sites = new.sites.to_vec();
        let runbook = new.runbook.to_string();
        let holder = new.holder.clone();
        let since = new.since;
        let event = new.text.to_string();
        let state = new.state.clone();
        let ttl = secs(self.ttl);
        self.conn.call(self.patience(), move |c| {
            let mut tx = c.transaction()?;
            let id: i64 = tx
                .query_one(
                    "UPDATE runbook_meta SET value = (value::bigint + 1)::text WHERE key = 'next_run_id' RETURNING value::bigint",
                    &[],
                )?
                .get(0);
            let run = RunId(id as u64);
            let record = LockRecord {
                run_id: run,
                runbook: runbook.clone(),
                holder: holder.clone(),
                since,
                lease_ms: None,
            };
            let lease = take_sites(&mut tx, &sites, &record, ttl)?;
            let summary = to_json("summary", &RunSummary::of(run, &state))?;
            tx.execute(
                "INSERT INTO runbook_runs (run_id, summary) VALUES ($1, $2)",
                &[&id, &summary],
            )?;
            tx.execute(
                "INSERT INTO runbook_events (run_id, seq, event) VALUES ($1, 0, $2)",
                &[&id, &event],
            )?;
            tx.commit()?;
            Ok((run, lease))
        })
    }

    fn append(&self, a: Append<'_>) -> Result<(), JournalError> {
        let (run, seq, epoch) = (a.run, a.seq, a.epoch);
        let event = a.text.to_string();
        let summary = a.summary.map(|s| to_json("summary", s)).transpose()?;
        let release = a.release_locks;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let stored = event.clone();
        self.conn.call(self.patience(), move |c| {
            let again = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0;
            let id = run.0 as i64;
            let params: [&(dyn postgres::types::ToSql + Sync); 4] =
                [&id, &(seq as i64), &event, &(epoch as i64)];
            if summary.is_none() && !release {
                // One statement, committed on its own: one round trip.
                if c.execute(INSERT_EVENT, &params)? == 1 {
                    return Ok(());
                }
                return already_there(c, run, seq, epoch, again, &stored);
            }
            let mut tx = c.transaction()?;
            let n = tx.execute(INSERT_EVENT, &params)?;
            if n == 0 {
                return already_there(&mut tx, run, seq, epoch, again, &stored);
            }
            if let Some(s) = &summary {
                tx.execute(
                    "INSERT INTO runbook_runs (run_id, summary) VALUES ($1, $2)
                     ON CONFLICT (run_id) DO UPDATE SET summary = EXCLUDED.summary",
                    &[&id, s],
                )?;
            }
            if release {
                tx.execute("DELETE FROM runbook_sites WHERE run_id = $1", &[&id])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), JournalError> {
        // Every commit is durable (synchronous_commit), a step's result included: a
        // result committed without waiting for the WAL flush would be lost when the
        // server crashes, and the step's effect applied again on resume.
        Ok(())
    }

    fn raw_events(&self, run: RunId) -> Result<Vec<(u64, String)>, JournalError> {
        self.conn.call(READ_PATIENCE, move |c| {
            let rows = c.query(
                "SELECT seq, event FROM runbook_events WHERE run_id = $1 ORDER BY seq",
                &[&(run.0 as i64)],
            )?;
            if rows.is_empty() {
                return Err(Failure::Journal(JournalError::UnknownRun(run)));
            }
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1)))
                .collect())
        })
    }

    fn events(&self, run: RunId) -> Result<Vec<Event>, JournalError> {
        self.conn.call(READ_PATIENCE, move |c| {
            let rows = c.query(
                "SELECT seq, event FROM runbook_events WHERE run_id = $1 ORDER BY seq",
                &[&(run.0 as i64)],
            )?;
            if rows.is_empty() {
                return Err(Failure::Journal(JournalError::UnknownRun(run)));
            }
            rows.iter()
                .map(|r| {
                    serde_json::from_str(r.get(1))
                        .map_err(|e| corrupt(format!("event {run} #{}", r.get::<_, i64>(0)), e))
                })
                .collect()
        })
    }

    fn runs(&self) -> Result<Vec<RunSummary>, JournalError> {
        self.conn.call(READ_PATIENCE, |c| {
            c.query(
                "SELECT run_id, summary FROM runbook_runs ORDER BY run_id",
                &[],
            )?
            .iter()
            .map(|r| {
                serde_json::from_str(r.get(1))
                    .map_err(|e| corrupt(format!("run r-{}", r.get::<_, i64>(0)), e))
            })
            .collect()
        })
    }

    fn locks(&self) -> Result<Vec<(String, LockRecord)>, JournalError> {
        self.conn.call(READ_PATIENCE, |c| {
            Ok(c
                .query(
                    "SELECT site, run_id, runbook, holder, since, extract(epoch from expires_at - now())::float8 FROM runbook_sites ORDER BY site",
                    &[],
                )?
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        LockRecord {
                            run_id: RunId(r.get::<_, i64>(1) as u64),
                            runbook: r.get(2),
                            holder: actor_of(r.get(3)),
                            since: r.get::<_, i64>(4) as u64,
                            lease_ms: Some((r.get::<_, f64>(5) * 1000.0) as i64),
                        },
                    )
                })
                .collect())
        })
    }

    fn acquire(&self, sites: &[String], record: &LockRecord) -> Result<Lease, JournalError> {
        let sites = sites.to_vec();
        let record = record.clone();
        let ttl = secs(self.ttl);
        self.conn.call(self.patience(), move |c| {
            let mut tx = c.transaction()?;
            let lease = take_sites(&mut tx, &sites, &record, ttl)?;
            tx.commit()?;
            Ok(lease)
        })
    }

    fn renew(&self, run: RunId, epoch: u64) -> Result<(), JournalError> {
        let ttl = secs(self.ttl);
        self.conn.call(self.patience(), move |c| {
            let id = run.0 as i64;
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE runbook_sites SET expires_at = now() + make_interval(secs => $3) WHERE run_id = $1 AND epoch = $2",
                &[&id, &(epoch as i64), &ttl],
            )?;
            let other = tx.query_opt(
                "SELECT holder FROM runbook_sites WHERE run_id = $1 AND epoch <> $2 LIMIT 1",
                &[&id, &(epoch as i64)],
            )?;
            if let Some(row) = other {
                return Err(Failure::Journal(JournalError::Fenced {
                    run,
                    holder: Box::new(actor_of(row.get(0))),
                }));
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn let_go(&self, run: RunId, epoch: u64) -> Result<(), JournalError> {
        self.conn.call(self.patience(), move |c| {
            c.execute(
                "UPDATE runbook_sites SET expires_at = now() WHERE run_id = $1 AND epoch = $2",
                &[&(run.0 as i64), &(epoch as i64)],
            )?;
            Ok(())
        })
    }

    fn publish_live(&self, run: RunId, snapshot: Option<&str>) -> Result<(), JournalError> {
        let snapshot = snapshot.map(str::to_string);
        self.conn.call(READ_PATIENCE, move |c| {
            let id = run.0 as i64;
            match &snapshot {
                Some(s) => c.execute(
                    "INSERT INTO runbook_live (run_id, state) VALUES ($1, $2)
                     ON CONFLICT (run_id) DO UPDATE SET state = EXCLUDED.state, published_at = now()",
                    &[&id, s],
                )?,
                None => c.execute("DELETE FROM runbook_live WHERE run_id = $1", &[&id])?,
            };
            Ok(())
        })
    }

    fn read_live(&self, run: RunId) -> Result<Option<String>, JournalError> {
        self.conn.call(READ_PATIENCE, move |c| {
            Ok(c.query_opt(
                "SELECT state FROM runbook_live WHERE run_id = $1",
                &[&(run.0 as i64)],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn request_abort(&self, run: RunId, request: &str) -> Result<(), JournalError> {
        let request = request.to_string();
        self.conn.call(self.patience(), move |c| {
            c.execute(
                "INSERT INTO runbook_abort_requests (run_id, request) VALUES ($1, $2)
                 ON CONFLICT (run_id) DO UPDATE SET request = EXCLUDED.request, requested_at = now()",
                &[&(run.0 as i64), &request],
            )?;
            Ok(())
        })
    }

    fn abort_request(&self, run: RunId) -> Result<Option<String>, JournalError> {
        self.conn.call(READ_PATIENCE, move |c| {
            Ok(c.query_opt(
                "SELECT request FROM runbook_abort_requests WHERE run_id = $1",
                &[&(run.0 as i64)],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn clear_abort_request(&self, run: RunId) -> Result<(), JournalError> {
        self.conn.call(READ_PATIENCE, move |c| {
            c.execute(
                "DELETE FROM runbook_abort_requests WHERE run_id = $1",
                &[&(run.0 as i64)],
            )?;
            Ok(())
        })
    }

    fn release(&self, site: &str, run: RunId) -> Result<(), JournalError> {
        let site = site.to_string();
        self.conn.call(self.patience(), move |c| {
            c.execute(
                "DELETE FROM runbook_sites WHERE site = $1 AND run_id = $2",
                &[&site, &(run.0 as i64)],
            )?;
            Ok(())
        })
    }

    fn import(&self, runs: &[(RunId, Vec<Event>)]) -> Result<(), JournalError> {
        let mut rows = Vec::new();
        for (run, events) in runs {
            let state = engine::state::RunState::fold(&run.to_string(), events);
            let events = engine::chain::texts(events).map_err(|e| JournalError::Corrupt {
                key: format!("event {run}"),
                message: e.to_string(),
            })?;
            let mut summary = RunSummary::of(*run, &state);
            summary.head = events
                .last()
                .map(|t| engine::chain::head(events.len() as u64 - 1, t));
            let summary = to_json("summary", &summary)?;
            rows.push((run.0 as i64, summary, events));
        }
        self.conn.call(READ_PATIENCE * 12, move |c| {
            let mut tx = c.transaction()?;
            for (id, summary, events) in &rows {
                tx.execute(
                    "INSERT INTO runbook_runs (run_id, summary) VALUES ($1, $2) ON CONFLICT (run_id) DO NOTHING",
                    &[id, summary],
                )?;
                for (seq, e) in events.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO runbook_events (run_id, seq, event) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[id, &(seq as i64), e],
                    )?;
                }
            }
            // Ids handed out later never collide with imported ones.
            tx.execute(
                "UPDATE runbook_meta SET value = greatest(value::bigint, coalesce((SELECT max(run_id) FROM runbook_runs), 0))::text WHERE key = 'next_run_id'",
                &[],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// The ids of runs whose journal grew, as the database announces them (`LISTEN
/// runbook_events`): a hint to read the tables again, which stay the truth. The
/// listening connection lives on a thread of its own and reconnects after a loss;
/// dropping the receiver ends it at the next notification or reconnect.
pub fn listen(target: &Target) -> std::sync::mpsc::Receiver<RunId> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = target.clone();
    let _ = std::thread::Builder::new()
        .name("runbook-listen".into())
        .spawn(move || loop {
            let listened = (|| -> Result<(), postgres::Error> {
                let mut c = match &target.tls {
                    target::Tls::Off => target.config.connect(postgres::NoTls)?,
                    _ => conn::connect_for_listen(&target)?,
                };
                c.batch_execute("LISTEN runbook_events")?;
                let mut n = c.notifications();
                let mut it = n.blocking_iter();
                while let Some(note) = postgres::fallible_iterator::FallibleIterator::next(&mut it)?
                {
                    if let Ok(id) = note.payload().parse::<u64>() {
                        if tx.send(RunId(id)).is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            })();
            if listened.is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    rx
}
