//! The test server the README's test command starts (`scripts/pg.sh`), named by
//! `RUNBOOK_TEST_PG` (a URL without password) and `RUNBOOK_TEST_PGPASSWORD`; each test
//! works in a database of its own.

#![allow(dead_code)]

use std::time::Duration;

use runbook_pgstore::{PgStore, Target};

pub fn server() -> (String, String) {
    let url = std::env::var("RUNBOOK_TEST_PG").expect(
        "RUNBOOK_TEST_PG is not set: run the tests with `bash scripts/test.sh`, which starts a PostgreSQL server (scripts/pg.sh)",
    );
    let pw = std::env::var("RUNBOOK_TEST_PGPASSWORD").unwrap_or_default();
    (url, pw)
}

/// A new, empty database on the test server, as a journal URL (no password in it).
pub fn fresh_db() -> String {
    let (url, pw) = server();
    let mut admin = Target::parse(&url).unwrap().config;
    admin.password(pw.clone());
    let mut c = admin.connect(postgres::NoTls).unwrap();
    let name = format!("t_{}_{}", std::process::id(), fastid());
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}?sslmode=disable")
}

fn fastid() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    t * 1000 + N.fetch_add(1, Ordering::SeqCst)
}

pub fn open(url: &str, ttl: Duration) -> PgStore {
    let (_, pw) = server();
    let mut t = Target::parse(url).unwrap();
    t.config.password(pw);
    PgStore::open(&t, ttl).unwrap()
}
