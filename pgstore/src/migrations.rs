//! The journal's schema, as an ordered list of migrations. Each is applied once, in a
//! transaction, under an advisory lock (two processes starting at once do not race),
//! and recorded in `runbook_schema` with the binary's version. A database whose schema
//! is newer than the last migration this binary knows is refused: an older `runbook`
//! must not write into tables it does not understand. Migrations are only ever added
//! at the end; an applied one is never edited.

use engine::journal::JournalError;

use crate::conn::Failure;

/// (version, SQL), in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE runbook_meta (key text PRIMARY KEY, value text NOT NULL);
     INSERT INTO runbook_meta (key, value) VALUES ('next_run_id', '0'), ('next_epoch', '0');
     CREATE TABLE runbook_runs (run_id bigint PRIMARY KEY, summary text NOT NULL);
     CREATE TABLE runbook_events (
         run_id bigint NOT NULL,
         seq bigint NOT NULL,
         event text NOT NULL,
         written_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (run_id, seq)
     );
     CREATE TABLE runbook_sites (
         site text PRIMARY KEY,
         run_id bigint NOT NULL,
         runbook text NOT NULL,
         since bigint NOT NULL,
         epoch bigint NOT NULL,
         holder text NOT NULL,
         expires_at timestamptz NOT NULL
     );
     CREATE INDEX runbook_sites_run ON runbook_sites (run_id);
     CREATE FUNCTION runbook_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('runbook_events', NEW.run_id::text);
         RETURN NEW;
     END $$;
     CREATE TRIGGER runbook_events_notify AFTER INSERT ON runbook_events
         FOR EACH ROW EXECUTE FUNCTION runbook_notify();",
    ),
    (
        2,
        // What a running step waits for and what its last check saw: published by the
        // driver, not journaled, read by `status` and `serve` on other machines.
        "CREATE TABLE runbook_live (
             run_id bigint PRIMARY KEY,
             state text NOT NULL,
             published_at timestamptz NOT NULL DEFAULT now()
         );",
    ),
    (
        3,
        // `runbook abort` of a run another process drives: a request its driver reads
        // and carries out at its next safe point.
        "CREATE TABLE runbook_abort_requests (
             run_id bigint PRIMARY KEY,
             request text NOT NULL,
             requested_at timestamptz NOT NULL DEFAULT now()
         );",
    ),
    (
        4,
        // The hash chain (engine::chain): runs written before it are chained in place
        // by `chain_old_runs`, in this migration's transaction.
        "SELECT 1",
    ),
];

/// The migration that chains the runs written before the hash chain.
const CHAIN: i32 = 4;

/// The schema version this binary writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Create or migrate the schema.
///
/// # Errors
/// A schema newer than this binary's, or a database error.
pub fn migrate(c: &mut postgres::Client) -> Result<(), Failure> {
    let mut tx = c.transaction()?;
    // Any constant: one lock for every runbook process on this database.
    tx.execute("SELECT pg_advisory_xact_lock(7272024)", &[])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS runbook_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now(),
             applied_by text NOT NULL
         )",
    )?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM runbook_schema", &[])?
        .get(0);
    if current > latest() {
        return Err(Failure::Journal(JournalError::Open {
            dir: Default::default(),
            message: format!(
                "the journal's schema is version {current}, newer than this runbook {} knows (version {}): use a newer runbook",
                env!("CARGO_PKG_VERSION"),
                latest()
            ),
        }));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        if *version == CHAIN {
            chain_old_runs(&mut tx)?;
        }
        tx.execute(
            "INSERT INTO runbook_schema (version, applied_by) VALUES ($1, $2)",
            &[version, &format!("runbook {}", env!("CARGO_PKG_VERSION"))],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Chain every run written before the hash chain, in place (`engine::chain::upgrade`).
fn chain_old_runs(tx: &mut postgres::Transaction<'_>) -> Result<(), Failure> {
    let rows = tx.query(
        "SELECT run_id, seq, event FROM runbook_events ORDER BY run_id, seq",
        &[],
    )?;
    let mut runs: std::collections::BTreeMap<i64, Vec<(u64, String)>> = Default::default();
    for r in &rows {
        runs.entry(r.get(0))
            .or_default()
            .push((r.get::<_, i64>(1) as u64, r.get(2)));
    }
    for (run, raw) in runs {
        for (seq, text) in engine::chain::upgrade(&raw).unwrap_or_default() {
            tx.execute(
                "UPDATE runbook_events SET event = $3 WHERE run_id = $1 AND seq = $2",
                &[&run, &(seq as i64), &text],
            )?;
        }
    }
    Ok(())
}
