//! The journal's hash chain: `runbook journal verify` finds an edited, removed or
//! reordered event on both stores and names the run and event; `journal export` gives
//! every event with its hash; a journal written before the chain is upgraded in place.

use serde_json::Value;

use crate::support::*;

/// Two steps against a local server: a run of a handful of events.
const SMALL: &str = r#"
name: small
steps:
  - id: first
    action: http.request
    with: { method: PUT, url: "URL/config/first", body: 1 }
  - id: second
    action: http.request
    with: { method: PUT, url: "URL/config/second", body: 2 }
"#;

fn verify(mut c: std::process::Command) -> (i32, Value) {
    c.args(["journal", "verify", "--json"]);
    let out = run(c);
    (
        out.code,
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null),
    )
}

/// The first break `verify --json` reports: (run, seq, what).
fn first_break(v: &Value) -> (String, u64, String) {
    let r = v["report"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| !r["breaks"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("no break reported: {v}"));
    let b = &r["breaks"][0];
    (
        r["run"].as_str().unwrap().to_string(),
        b["seq"].as_u64().unwrap(),
        b["what"].as_str().unwrap().to_string(),
    )
}

fn two_runs(mut cmd: impl FnMut() -> std::process::Command, dir: &std::path::Path) {
    let server = TestServer::start();
    let rb = write(dir, "small.yaml", &SMALL.replace("URL", &server.base()));
    for _ in 0..2 {
        let mut c = cmd();
        c.arg("run").arg(&rb).arg("--yes");
        run(c).expect(0);
    }
}

#[test]
fn an_edited_removed_or_reordered_event_is_found_in_a_sled_journal() {
    use engine::store::keys::Key;
    use engine::store::sled::SledStore;
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("journal");
    two_runs(|| runbook(&j), dir.path());
    let (code, v) = verify(runbook(&j));
    assert_eq!((code, v["broken"].as_u64()), (0, Some(0)), "{v}");
    assert_eq!(v["runs"], 2);
    let events = v["report"][1]["events"].as_u64().unwrap();
    assert!(events >= 6, "{v}");

    // The export carries each event with the hash of its stored text.
    let mut c = runbook(&j);
    c.args(["journal", "export", "--run", "r-2"]);
    let out = run(c).expect(0);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, events);
    assert_eq!(lines[0]["event"]["event"], "run_created");
    assert_eq!(lines[1]["event"]["prev"], lines[0]["hash"]);

    let raw = |store: &SledStore, seq: u64| -> String {
        use engine::store::Store;
        let raw = store.raw_events(engine::id::RunId(2)).unwrap();
        raw.into_iter()
            .find(|(s, _)| *s == seq)
            .expect("the event is there")
            .1
    };
    // An edit of one event in the middle of run 2: the event after it says so.
    {
        let store = SledStore::open(&j).unwrap();
        let text = raw(&store, 2);
        let edited = text.replacen("\"at\":", "\"at\":1", 1);
        assert_ne!(text, edited);
        store
            .poke(&Key::Event(engine::id::RunId(2), 2), edited.as_bytes())
            .unwrap();
    }
    let (code, v) = verify(runbook(&j));
    assert_eq!(code, 12, "{v}");
    let (run_id, seq, what) = first_break(&v);
    assert_eq!((run_id.as_str(), seq), ("r-2", 3), "{what}");
    assert!(what.contains("event 2 was edited"), "{what}");
    // The human form names the run and event too.
    let mut c = runbook(&j);
    c.args(["journal", "verify"]);
    let out = run(c);
    assert_eq!(out.code, 12);
    assert!(out.stdout.contains("run r-2 event 3:"), "{}", out.stdout);
    assert!(out.stdout.contains("1 run broken"), "{}", out.stdout);

    // Two events swapped in run 1.
    {
        let store = SledStore::open(&j).unwrap();
        use engine::store::Store;
        let id = engine::id::RunId(1);
        let texts = store.raw_events(id).unwrap();
        let (a, b) = (texts[1].1.clone(), texts[2].1.clone());
        store.poke(&Key::Event(id, 1), b.as_bytes()).unwrap();
        store.poke(&Key::Event(id, 2), a.as_bytes()).unwrap();
    }
    let (_, v) = verify(runbook(&j));
    assert_eq!(v["broken"], 2, "{v}");
    let (run_id, seq, _) = first_break(&v);
    assert_eq!((run_id.as_str(), seq), ("r-1", 1));

    // Only the intact run, asked for by itself, after the removal of run 2's last
    // event: the index line's head names it.
    {
        let store = SledStore::open(&j).unwrap();
        store
            .unpoke(&Key::Event(engine::id::RunId(2), events - 1))
            .unwrap();
    }
    let mut c = runbook(&j);
    c.args(["journal", "verify", "--run", "r-2", "--json"]);
    let out = run(c);
    assert_eq!(out.code, 12, "{}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let breaks = v["report"][0]["breaks"].as_array().unwrap();
    assert!(
        breaks.iter().any(|b| b["seq"] == events - 1
            && b["what"]
                .as_str()
                .unwrap()
                .contains("not in the journal (removed)")),
        "{v}"
    );
}

#[test]
fn an_edited_event_is_found_in_a_postgresql_journal() {
    let (url, pw) = fresh_pg_journal();
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = runbook(std::path::Path::new(&url));
        c.env("PGPASSWORD", &pw);
        c
    };
    two_runs(cmd, dir.path());
    assert_eq!(verify(cmd()).0, 0);
    let mut db = {
        let mut c: postgres::Config = url.parse().unwrap();
        c.password(&pw);
        c.connect(postgres::NoTls).unwrap()
    };
    // Someone with write access to the table edits what a step's result said.
    let n = db
        .execute(
            "UPDATE runbook_events SET event = replace(event, '\"at\":', '\"at\":1') WHERE run_id = 1 AND seq = 3",
            &[],
        )
        .unwrap();
    assert_eq!(n, 1);
    let (code, v) = verify(cmd());
    assert_eq!(code, 12, "{v}");
    assert_eq!(first_break(&v).0, "r-1");
    assert_eq!(first_break(&v).1, 4);
    // A removed event, in the other run.
    db.execute(
        "DELETE FROM runbook_events WHERE run_id = 2 AND seq = 2",
        &[],
    )
    .unwrap();
    let (_, v) = verify(cmd());
    assert_eq!(v["broken"], 2, "{v}");
    let r2 = &v["report"][1]["breaks"][0];
    assert_eq!(r2["seq"], 2, "{v}");
    assert!(r2["what"].as_str().unwrap().contains("missing"), "{v}");
}

#[test]
fn a_postgresql_journal_written_before_the_chain_is_chained_in_place() {
    let (url, pw) = fresh_pg_journal();
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = runbook(std::path::Path::new(&url));
        c.env("PGPASSWORD", &pw);
        c
    };
    two_runs(cmd, dir.path());
    let mut db = {
        let mut c: postgres::Config = url.parse().unwrap();
        c.password(&pw);
        c.connect(postgres::NoTls).unwrap()
    };
    // Back to schema 3 as an older runbook wrote it: no `prev` anywhere.
    db.batch_execute(
        "UPDATE runbook_events SET event = regexp_replace(event, ',\"prev\":\"[0-9a-f]{64}\"', '');
         DELETE FROM runbook_schema WHERE version = 4;",
    )
    .unwrap();
    let unchained: i64 = db
        .query_one(
            "SELECT count(*) FROM runbook_events WHERE event LIKE '%\"prev\"%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unchained, 0);
    // The next process to open it migrates it: every run chained.
    let (code, v) = verify(cmd());
    assert_eq!((code, v["broken"].as_u64()), (0, Some(0)), "{v}");
    let chained: i64 = db
        .query_one(
            "SELECT count(*) FROM runbook_events WHERE event LIKE '%\"prev\"%'",
            &[],
        )
        .unwrap()
        .get(0);
    let total: i64 = db
        .query_one("SELECT count(*) FROM runbook_events", &[])
        .unwrap()
        .get(0);
    assert_eq!(chained, total - 2, "every event but each run's first");
}
