//! Site locks: a run holds the sites it touches until it completes or is aborted; a
//! second run on a held site is refused naming the holder; a dead holder's lock is
//! taken over only by resuming the same run.

use crate::support::*;

const SITED: &str = r#"
name: sited
params:
  site: { type: string, default: site-a }
steps:
  - id: touch
    site: "{{ params.site }}"
    action: http.request
    with: { method: PUT, url: "{{ site.lb_check_url }}/config/{{ site.name }}", body: 1 }
  - id: gate
    action: manual.confirm
    with: { instructions: "hold the site" }
"#;

fn setup(server: &TestServer, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let rb = write(dir, "sited.yaml", SITED);
    let env = write(
        dir,
        "env.yaml",
        &format!(
            "sites:\n  site-a:\n    lb_check_url: {0}\n  site-b:\n    lb_check_url: {0}\n",
            server.base()
        ),
    );
    (rb, env)
}

fn run_sited(j: &std::path::Path, rb: &std::path::Path, env: &std::path::Path, site: &str) -> Out {
    let mut c = runbook(j);
    c.args(["run"])
        .arg(rb)
        .arg("--env")
        .arg(env)
        .args(["-p", &format!("site={site}"), "--json"]);
    run(c)
}

#[test]
fn a_second_run_on_a_held_site_is_refused_naming_the_holder() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (rb, env) = setup(&server, dir.path());
    let j = dir.path().join("j");
    run_sited(&j, &rb, &env, "site-a").expect(3);
    let out = run_sited(&j, &rb, &env, "site-a").expect(5);
    assert!(
        out.stderr
            .contains("site `site-a` is held by run r-1 (sited"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("runbook resume r-1"), "{}", out.stderr);
    // another site is free
    run_sited(&j, &rb, &env, "site-b").expect(3);
    // aborting releases the lock
    let mut a = runbook(&j);
    a.args(["abort", "r-1", "--reason", "rehearsal over"]);
    run(a).expect(0);
    run_sited(&j, &rb, &env, "site-a").expect(3);
    // an aborted run is over
    let mut r = runbook(&j);
    r.args(["resume", "r-1"]);
    let out = run(r).expect(2);
    assert!(
        out.stderr.contains("aborted") && out.stderr.contains("rehearsal over"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_dead_holders_lock_is_taken_over_only_by_resuming_its_run() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (rb, env) = setup(&server, dir.path());
    let j = dir.path().join("j");
    let mut c = runbook(&j);
    c.args(["run"])
        .arg(&rb)
        .arg("--env")
        .arg(&env)
        .env("FAILPOINTS", "after-apply=return(touch)");
    assert_eq!(run(c).code, -1, "killed");
    let out = run_sited(&j, &rb, &env, "site-a").expect(5);
    assert!(out.stderr.contains("held by run r-1"), "{}", out.stderr);
    assert!(out.stderr.contains("is gone"), "{}", out.stderr);
    let mut r = runbook(&j);
    r.args(["resume", "r-1", "--approve", "gate", "--json"]);
    let out = run(r).expect(0);
    assert_eq!(out.json()["status"], "completed");
    // completed: the site is free again
    run_sited(&j, &rb, &env, "site-a").expect(3);
}

#[test]
fn unknown_site_is_invalid_input_naming_step_and_file() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (rb, env) = setup(&server, dir.path());
    let out = run_sited(&dir.path().join("j"), &rb, &env, "site-x").expect(2);
    assert!(out.stderr.contains("step `touch`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("site `site-x` is not in the environment file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("site-a, site-b"), "{}", out.stderr);
}
