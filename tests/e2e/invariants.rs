//! Safety that belongs to the action (issue 30): a user's own runbook, or a pack's
//! procedure pointed the wrong way, is refused before any effect by the invariants the
//! actions carry, and `plan --live` says the same as the run. Each case asserts the
//! lab unchanged: the entries, Keycloak's instances, the endpoint group, which
//! database is writable. The lab records every clear with the site it also reached
//! (`lab/src/world.rs`, `clears`), as Infinispan replicates a clear like any write
//! while the backup is online.

use std::path::PathBuf;

use serde_json::Value;

use crate::keycloak26::kc26_lab;
use crate::support::*;

fn runbook_file(l: &InLab, name: &str, text: &str) -> PathBuf {
    write(l.dir.path(), name, text)
}

fn run_file(l: &InLab, file: &PathBuf, params: &[&str]) -> Out {
    let mut c = l.runbook();
    c.arg("run").arg(file).args(["--yes", "--json"]);
    for p in params {
        c.args(["-p", p]);
    }
    run(c)
}

fn plan_live(l: &InLab, file: &PathBuf) -> Out {
    let mut c = l.runbook();
    c.arg("plan").arg(file).arg("--live");
    run(c)
}

/// docs/safety.md's Keycloak-shaped example runbook (section "What each action
/// guarantees by itself").
fn readme_maintenance() -> String {
    let readme = doc("safety");
    let start = readme
        .find("```yaml\nname: maintenance")
        .expect("docs/safety.md's example")
        + 8;
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

/// docs/safety.md's table names every invariant the code knows, each once.
#[test]
fn the_safety_page_lists_every_invariant() {
    let readme = doc("safety");
    for (name, _) in steps::invariants::ALL {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "docs/safety.md's table lacks `{name}`"
        );
    }
}

fn reason(out: &Out) -> String {
    out.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every clear the lab received on `site`, as `(cache, reached)`.
fn clears(l: &InLab, site: &str) -> Vec<Value> {
    l.state()["sites"][site]["clears"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const CLEAR_ONE: &str = r#"
name: clear-one
title: A user's own runbook that clears one cache
params:
  site: { type: string, default: site-a }
steps:
  - id: clear
    title: Clear the sessions
    site: "{{ params.site }}"
    action: infinispan.clear-caches
    with: { caches: [sessions] }
"#;

#[test]
fn a_users_clear_of_the_serving_site_is_refused_before_any_effect_and_plan_live_agrees() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 40);
    let before_a = l.entries("site-a", "sessions").len();
    let before_b = l.entries("site-b", "sessions").len();
    assert!(
        before_a >= 40 && before_b >= 40,
        "replicated: {before_a} {before_b}"
    );
    let f = runbook_file(&l, "clear-one.yaml", CLEAR_ONE);
    // The plan shows the invariant as the action's own.
    let plan = plan_live(&l, &f).expect(8);
    assert!(
        plan.stdout.contains("builtin-clear-caches-clear"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("WOULD BE REFUSED"), "{}", plan.stdout);
    let out = run_file(&l, &f, &[]).expect(8);
    assert_eq!(out.json()["status"], "refused");
    let r = reason(&out);
    assert!(r.contains("site-a SERVES TRAFFIC"), "{r}");
    assert!(r.contains("Nothing was done"), "{r}");
    // The passive site, replication online: the clear would reach site-a too.
    let out = run_file(&l, &f, &["site=site-b"]).expect(8);
    let r = reason(&out);
    assert!(
        r.contains("site-b's replication is not offline")
            && r.contains("sessions → site-a is online"),
        "{r}"
    );
    let plan = {
        let mut c = l.runbook();
        c.arg("plan").arg(&f).args(["--live", "-p", "site=site-b"]);
        run(c).expect(8)
    };
    assert!(
        plan.stdout.contains("sessions → site-a is online"),
        "{}",
        plan.stdout
    );
    assert_eq!(l.entries("site-a", "sessions").len(), before_a);
    assert_eq!(l.entries("site-b", "sessions").len(), before_b);
    assert!(clears(&l, "site-a").is_empty() && clears(&l, "site-b").is_empty());
    l.untouched("site-a");
    l.untouched("site-b");
}

#[test]
fn a_users_clear_after_taking_the_backup_offline_runs_and_stays_local() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 25);
    let f = runbook_file(
        &l,
        "resync.yaml",
        r#"
name: resync-sessions
title: Take the passive site's backup offline, then clear it
steps:
  - id: offline
    site: site-b
    action: infinispan.take-offline
    with: { backup: site-a, caches: [sessions] }
  - id: clear
    site: site-b
    action: infinispan.clear-caches
    with: { caches: [sessions] }
"#,
    );
    // Judged only right before the clear: the take-offline changes what it reads.
    let plan = plan_live(&l, &f).expect(0);
    assert!(
        plan.stdout
            .contains("the earlier step `offline` (infinispan.take-offline) changes what it reads"),
        "{}",
        plan.stdout
    );
    let out = run_file(&l, &f, &[]).expect(0);
    assert_eq!(out.json()["status"], "completed");
    assert_eq!(l.entries("site-b", "sessions").len(), 0);
    assert!(
        l.entries("site-a", "sessions").len() >= 25,
        "site-a kept its sessions"
    );
    assert_eq!(
        clears(&l, "site-b"),
        vec![serde_json::json!({"cache": "sessions", "reached": null})]
    );
}

#[test]
fn scaling_the_only_serving_site_to_zero_is_refused() {
    let l = InLab::start(&[], 0.0);
    let f = runbook_file(
        &l,
        "scale.yaml",
        r#"
name: scale-down
title: Scale a site's Keycloak down
params:
  site: { type: string, default: site-a }
steps:
  - id: down
    site: "{{ params.site }}"
    action: keycloak.scale
    with: { instances: 0 }
"#,
    );
    let out = run_file(&l, &f, &[]).expect(8);
    assert!(
        reason(&out).contains("site-a is the only site that serves"),
        "{}",
        reason(&out)
    );
    l.untouched("site-a");
    // The passive site may be scaled down.
    run_file(&l, &f, &["site=site-b"]).expect(0);
    assert_eq!(l.state()["sites"]["site-b"]["keycloak"]["spec"], 0);
}

/// What `runbook respond` runs for a SiteOffline alert about site-b, as it runs it.
fn fence_site_b(l: &InLab) {
    let mut c = l.runbook();
    c.args(["run", "keycloak-26/fence-site", "--yes", "--json"]);
    c.args(["-p", "site=site-b", "-p", "reporter=site-a"]);
    assert_eq!(run(c).expect(0).json()["status"], "completed");
}

/// Case 2: a site fenced by the responder and never synchronized is not put back
/// into traffic by a maintenance runbook; its removal of a site already out says so.
#[test]
fn a_fenced_unsynchronized_site_is_not_readded_by_a_users_runbook() {
    let l = kc26_lab(&[]);
    fence_site_b(&l);
    let group = || -> Vec<String> {
        l.state()["accelerator"]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["site"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(group(), vec!["site-a"]);
    let writes = l.state()["accelerator"]["writes"].as_array().unwrap().len();
    // docs/safety.md's own example for authors, as written there.
    let f = runbook_file(&l, "maintenance.yaml", &readme_maintenance());
    let plan = plan_live(&l, &f).expect(8);
    assert!(
        plan.stdout.contains("builtin-add-to-traffic-back"),
        "{}",
        plan.stdout
    );
    let out = run_file(&l, &f, &[]).expect(8);
    let r = reason(&out);
    assert!(
        r.contains("site-b left traffic in run")
            && r.contains("fence-site")
            && r.contains("not synchronized"),
        "{r}"
    );
    assert!(r.contains("Nothing was done"), "{r}");
    assert_eq!(group(), vec!["site-a"], "site-b stays out");
    assert_eq!(
        l.state()["accelerator"]["writes"].as_array().unwrap().len(),
        writes,
        "no write to the endpoint group"
    );
    // Removing a site that is already out says so: never "removed".
    let f = runbook_file(
        &l,
        "out.yaml",
        "name: out\ntitle: out\nsteps:\n  - id: out\n    site: site-b\n    action: traffic.remove-site\n",
    );
    let out = run_file(&l, &f, &[]).expect(0);
    assert!(
        out.stderr
            .contains("site-b was ALREADY OUT of the endpoint group"),
        "{}",
        out.stderr
    );
    let mut c = l.runbook();
    c.args(["status", out.json()["run_id"].as_str().unwrap(), "--json"]);
    let st: Value = serde_json::from_str(&run(c).stdout).unwrap();
    assert!(
        st["steps"]["out"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("ALREADY OUT")),
        "{st}"
    );
}

/// Case 3: the "lost" site is the healthy writable primary that serves every login.
#[test]
fn promote_standby_away_from_a_healthy_serving_primary_is_refused() {
    let l = InLab::start_with(&[], |c| c.shape.database = lab::world::Database::Pgo);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pgo = || l.state()["pgo"]["sites"].clone();
    while pgo()["site-a"]["writable"] != true || pgo()["site-b"]["writable"] != false {
        assert!(std::time::Instant::now() < deadline, "{}", pgo());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut c = l.runbook();
    c.args([
        "plan",
        "pgo/promote-standby",
        "--live",
        "-p",
        "survivor=site-b",
        "-p",
        "lost=site-a",
    ]);
    let plan = run(c).expect(8);
    assert!(plan.stdout.contains("WOULD BE REFUSED"), "{}", plan.stdout);
    // Both the database's reading and the traffic's say it: the guard that refuses
    // first names one, the plan both.
    assert!(
        plan.stdout.contains("site-a serves traffic"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("site-a ANSWERS AS A WRITABLE PRIMARY"),
        "{}",
        plan.stdout
    );
    let mut c = l.runbook();
    c.args([
        "run",
        "pgo/promote-standby",
        "-p",
        "survivor=site-b",
        "-p",
        "lost=site-a",
        "--yes",
        "--json",
    ]);
    let out = run(c).expect(8);
    let r = reason(&out);
    assert!(r.contains("site-a ANSWERS AS A WRITABLE PRIMARY"), "{r}");
    let p = pgo();
    assert_eq!(p["site-a"]["writable"], true, "{p}");
    assert_eq!(
        p["site-a"]["running"], true,
        "the primary was not shut down: {p}"
    );
    assert_eq!(p["site-b"]["writable"], false, "{p}");
}

/// A stopped run says what it left and how to put it back: a scale-down followed by a
/// gate, aborted at the gate, prints the instances it left and the command, and that
/// command (the real kubectl against the lab) restores them.
#[test]
fn an_abort_says_what_the_run_left_and_the_command_that_restores_it() {
    let l = InLab::start(&[], 0.0);
    let f = runbook_file(
        &l,
        "down-then-gate.yaml",
        r#"
name: down-then-gate
title: Scale the passive site down, then wait for a person
steps:
  - id: scale-down
    site: site-b
    action: keycloak.scale
    with: { instances: 0 }
  - id: look
    action: manual.confirm
    with: { instructions: "look at the dashboard" }
"#,
    );
    let out = run_file(&l, &f, &[]).expect(3);
    assert_eq!(out.json()["halted_at"], "look");
    assert_eq!(l.state()["sites"]["site-b"]["keycloak"]["spec"], 0);
    let mut c = l.runbook();
    c.args(["abort", "r-1", "--reason", "changed our mind"]);
    let out = run(c);
    let text = format!("{}{}", out.stdout, out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("site-b's Keycloak instances are 0 (it had 3)"))
        .unwrap_or_else(|| panic!("no restore line in: {text}"));
    let cmd = line.split("to put it back: ").nth(1).unwrap().trim();
    // check proposes the same command.
    let (_, v) = check(&l, None);
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(cmd)),
        "{v}"
    );
    assert!(cmd.starts_with("kubectl --kubeconfig "), "{cmd}");
    // The printed command works as printed (a shell, as the operator pastes it).
    let done = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(done.status.success(), "{done:?}");
    assert_eq!(l.state()["sites"]["site-b"]["keycloak"]["spec"], 3);
}

/// A parameter's control characters never reach the terminal raw.
#[test]
fn control_characters_in_a_parameter_are_escaped_in_the_progress_lines() {
    let l = InLab::start(&[], 0.0);
    let f = runbook_file(
        &l,
        "hostile.yaml",
        r#"
name: hostile
title: A parameter shown in a step's calls
params:
  note: { type: string, default: "" }
steps:
  - id: fetch
    action: http.expect
    timeout: 1s
    with: { url: "http://127.0.0.1:9/{{ params.note }}", poll: 100ms }
"#,
    );
    let mut c = l.runbook();
    c.arg("run")
        .arg(&f)
        .args(["--yes", "-p", "note=\u{1b}]0;pwned\u{7}x"]);
    let out = run(c);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{all:?}");
    assert!(all.contains("\\x1b]0;pwned\\x07x"), "{all}");
}

/// Random sequences of a user's own steps (take a backup offline, bring it online,
/// clear) over the lab, one after another on one deployment: whatever the order, no
/// clear is ever delivered while that cache's backup replicates to the other site.
/// The lab, not the runbook, says what each clear met. Seeded: a failure names its
/// seed (`RUNBOOK_PROP_SEED`), and `PROPTEST_CASES` bounds the sequences.
#[test]
fn random_custom_steps_never_clear_while_replication_is_online() {
    let l = InLab::start(&[], 0.0);
    l.sessions("site-a", 10);
    let seed = std::env::var("RUNBOOK_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_2026_u64);
    let cases: usize = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(12, |n: usize| n.clamp(4, 24));
    let mut rng = fastrand::Rng::with_seed(seed);
    let sites = ["site-a", "site-b"];
    let caches = ["sessions", "work"];
    let mut delivered = 0;
    for case in 0..cases {
        let mut text = format!("name: random-{case}\ntitle: random steps {case}\nsteps:\n");
        for i in 0..rng.usize(1..=4) {
            let s = sites[rng.usize(0..2)];
            let o = if s == "site-a" { "site-b" } else { "site-a" };
            let c = caches[rng.usize(0..2)];
            let offline = format!(
                "    action: infinispan.take-offline\n    with: {{ backup: {o}, caches: [{c}] }}\n"
            );
            let clear =
                format!("    action: infinispan.clear-caches\n    with: {{ caches: [{c}] }}\n");
            let step = match rng.u8(0..4) {
                0 => offline,
                1 => format!("    action: infinispan.bring-online\n    with: {{ backup: {o}, caches: [{c}] }}\n"),
                2 => clear,
                // The pair an author writes on purpose: offline, then clear.
                _ => format!("{offline}  - id: s{i}c\n    site: {s}\n{clear}"),
            };
            text.push_str(&format!("  - id: s{i}\n    site: {s}\n{step}"));
        }
        let f = runbook_file(&l, &format!("random-{case}.yaml"), &text);
        let out = run_file(&l, &f, &[]);
        // A run that halted holds its sites: end it, as an operator would.
        let v: Value =
            serde_json::from_str(out.stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
        if v["status"] == "halted" {
            let mut c = l.runbook();
            c.args([
                "abort",
                v["run_id"].as_str().unwrap(),
                "--reason",
                "next case",
            ]);
            run(c);
        }
        for site in sites {
            for c in clears(&l, site) {
                assert!(
                    c["reached"].is_null(),
                    "seed {seed}, case {case}: a clear on {site} reached another site: {c}\n{text}\n{}{}",
                    out.stdout,
                    out.stderr
                );
            }
        }
        delivered = clears(&l, "site-a").len() + clears(&l, "site-b").len();
    }
    // The sequences did clear something (the property is not vacuous), never site-a's
    // caches while it serves.
    assert!(delivered > 0, "seed {seed}: no clear was ever allowed");
    assert!(
        clears(&l, "site-a").is_empty(),
        "site-a serves: never cleared"
    );
}

/// A maintenance is a planned state (exit 9), a fence an incident (exit 6).
#[test]
fn a_site_taken_out_on_purpose_is_planned_and_a_fenced_one_degraded() {
    let l = kc26_lab(&[]);
    let mut c = l.runbook();
    c.args([
        "run",
        "keycloak-26/take-site-offline",
        "-p",
        "site=site-b",
        "-p",
        "keep=site-a",
        "--yes",
        "--json",
    ]);
    run(c).expect(0);
    let (code, v) = check(&l, None);
    assert_eq!((code, v["health"].as_str()), (9, Some("planned")), "{v}");
    assert_eq!(
        v["recommended"]["runbook"], "keycloak-26/synchronize-site",
        "{v}"
    );
    let l = kc26_lab(&[]);
    fence_site_b(&l);
    let (code, v) = check(&l, None);
    assert_eq!((code, v["health"].as_str()), (6, Some("degraded")), "{v}");
}

/// A run that holds a site is never a healthy deployment, whichever pack is asked,
/// and the verdict says to resume or abort it.
#[test]
fn check_is_never_healthy_while_a_run_holds_a_site_whichever_pack_is_asked() {
    let l = InLab::start_with(&[], |c| c.shape.database = lab::world::Database::Pgo);
    let f = runbook_file(
        &l,
        "gate.yaml",
        r#"
name: gate
title: Hold site-b at a gate
steps:
  - id: look
    site: site-b
    action: manual.confirm
    with: { instructions: "look first" }
"#,
    );
    run_file(&l, &f, &[]).expect(3);
    for pack in [None, Some("pgo")] {
        let (code, v) = check(&l, pack);
        assert_eq!(code, 6, "{pack:?}: {v}");
        let r = v["reason"].as_str().unwrap();
        assert!(
            r.contains("run r-1 (gate) is halted") && r.contains("runbook resume r-1"),
            "{pack:?}: {r}"
        );
        assert!(
            v["recommended"].is_null(),
            "{pack:?}: nothing new on a held site: {v}"
        );
    }
}
