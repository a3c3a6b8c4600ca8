//! The journal's disk and damage: a disk that fills mid-run is reported as a full disk
//! (exit 10) with the journal intact up to the last event written, and the run resumes
//! once space is freed; a damaged journal says what was found and what to do, and is
//! never read as an empty one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// A pause, then enough quick steps to outrun the pages sled's log file already has.
const SLOW: &str = r#"
name: slow
title: Waits, then quick steps
steps:
  - id: pause
    action: wait
    with: { duration: 2s }
  - id: w1
    action: wait
    with: { duration: 1ms }
  - id: w2
    action: wait
    with: { duration: 1ms }
  - id: w3
    action: wait
    with: { duration: 1ms }
  - id: w4
    action: wait
    with: { duration: 1ms }
  - id: w5
    action: wait
    with: { duration: 1ms }
  - id: w6
    action: wait
    with: { duration: 1ms }
  - id: w7
    action: wait
    with: { duration: 1ms }
  - id: w8
    action: wait
    with: { duration: 1ms }
  - id: w9
    action: wait
    with: { duration: 1ms }
  - id: w10
    action: wait
    with: { duration: 1ms }
  - id: w11
    action: wait
    with: { duration: 1ms }
  - id: w12
    action: wait
    with: { duration: 1ms }
  - id: w13
    action: wait
    with: { duration: 1ms }
  - id: w14
    action: wait
    with: { duration: 1ms }
  - id: w15
    action: wait
    with: { duration: 1ms }
  - id: w16
    action: wait
    with: { duration: 1ms }
  - id: w17
    action: wait
    with: { duration: 1ms }
  - id: w18
    action: wait
    with: { duration: 1ms }
  - id: w19
    action: wait
    with: { duration: 1ms }
  - id: w20
    action: wait
    with: { duration: 1ms }
  - id: w21
    action: wait
    with: { duration: 1ms }
  - id: w22
    action: wait
    with: { duration: 1ms }
  - id: w23
    action: wait
    with: { duration: 1ms }
  - id: w24
    action: wait
    with: { duration: 1ms }
  - id: w25
    action: wait
    with: { duration: 1ms }
  - id: w26
    action: wait
    with: { duration: 1ms }
  - id: w27
    action: wait
    with: { duration: 1ms }
  - id: w28
    action: wait
    with: { duration: 1ms }
  - id: w29
    action: wait
    with: { duration: 1ms }
  - id: w30
    action: wait
    with: { duration: 1ms }
"#;

/// A 1 MiB tmpfs (the machine's root may mount one; where it may not, the test says so
/// and checks nothing, rather than pretending).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn fill(&self) {
        let out = Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(self.path())
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Writing past the end fails with ENOSPC: the file takes what is left.
        let _ = std::fs::write(
            self.path().join("fill"),
            vec![0u8; (avail as usize + 64) * 1024],
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_disk_that_fills_mid_run_is_a_full_disk_and_the_run_resumes_once_freed() {
    let Some(fs) = Tmpfs::mount() else {
        eprintln!("SKIPPED: this machine does not let the test mount a tmpfs");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let rb = write(work.path(), "slow.yaml", SLOW);
    let journal = fs.path().join("j");
    let mut c = runbook(&journal);
    c.arg("run").arg(&rb).args(["--yes"]);
    let child = spawn(c);
    // The run is in its 2 s pause: the journal is open and has its first events.
    std::thread::sleep(Duration::from_millis(900));
    fs.fill();
    let out = wait_out(child).expect(10);
    assert!(
        out.stderr
            .contains("the journal's disk is full (no space left on device)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("sequence number is taken"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(fs.path().join("fill")).unwrap();
    // The journal is intact: the run is where it stopped, then finishes.
    let status = run({
        let mut s = runbook(&journal);
        s.args(["status", "r-1", "--json"]);
        s
    })
    .expect(11);
    assert_eq!(status.json()["status"], "running");
    let resumed = run({
        let mut r = runbook(&journal);
        r.args(["resume", "r-1", "--json"]);
        r
    })
    .expect(0);
    assert_eq!(resumed.json()["status"], "completed");
}

fn two_runs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rb = write(
        dir.path(),
        "quick.yaml",
        "name: quick\nsteps:\n  - id: w\n    action: wait\n    with: { duration: 1ms }\n",
    );
    for _ in 0..2 {
        let mut c = runbook(&dir.path().join("j"));
        c.arg("run").arg(&rb).arg("--yes");
        run(c).expect(0);
    }
    dir
}

fn history(dir: &Path) -> Out {
    let mut h = runbook(&dir.join("j"));
    h.arg("history");
    run(h)
}

#[test]
fn a_damaged_journal_says_what_was_found_and_what_to_do_and_is_never_read_as_empty() {
    // The log's bytes damaged from near its start: sled either refuses it or reads
    // nothing of it; both are a damaged journal.
    let dir = two_runs();
    let log = dir.path().join("j/db/db");
    let mut bytes = std::fs::read(&log).unwrap();
    for i in (100..bytes.len()).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&log, bytes).unwrap();
    let out = history(dir.path()).expect(1);
    assert!(out.stderr.contains("is damaged"), "{}", out.stderr);
    assert!(
        out.stderr.contains("restore the directory from a backup"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("backtrace"), "{}", out.stderr);
    assert!(!out.stdout.contains("no runs yet"), "{}", out.stdout);

    // The database gone, its mark left: runs that were created cannot be read.
    let dir = two_runs();
    std::fs::remove_dir_all(dir.path().join("j/db")).unwrap();
    let out = history(dir.path()).expect(1);
    assert!(out.stderr.contains("is damaged"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("holds no readable entry, though runs r-1..r-2 were created"),
        "{}",
        out.stderr
    );
}
