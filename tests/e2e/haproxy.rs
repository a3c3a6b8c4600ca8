//! The `haproxy` traffic vendor against a real HAProxy (Debian's 2.6, started by the
//! lab in the foreground on loopback, `lab/src/haproxy.rs`), in front of both sites'
//! lab Keycloak: real HTTP requests go through it, and each one's site is read from
//! the answer (`X-Lab-Site`, the lab Keycloak's `/realms/` route). The Keycloak 26
//! procedures run on it exactly as on Global Accelerator, through the traffic role.
//! What HAProxy answers and how its states read are HAProxy's own
//! (`../shared/docs/haproxy.md`); nothing here imitates it.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn haproxy_lab() -> InLab {
    haproxy_lab_with(&[])
}

/// The Keycloak 26 shape behind the lab's real HAProxy, with `faults`.
pub fn haproxy_lab_with(faults: &[&str]) -> InLab {
    InLab::start_with(faults, |c| {
        c.shape.traffic = lab::world::Traffic::Haproxy;
        c.shape.infinispan_version = 15;
        c.shape.caches = [
            "actionTokens",
            "authenticationSessions",
            "loginFailures",
            "work",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    })
}

fn frontend(l: &InLab) -> SocketAddr {
    l.running()
        .endpoints
        .haproxy
        .expect("the lab runs HAProxy")
        .0
}

fn landed(l: &InLab, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| lb_get(frontend(l), "/realms/master").unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

/// The requests site `site`'s Keycloak received (its `/realms/` log).
fn received(l: &InLab, site: &str) -> usize {
    l.running()
        .shared
        .lock()
        .requests
        .get(&format!("{site}-keycloak"))
        .map_or(0, Vec::len)
}

/// `keycloak-26/take-site-offline` of `site`, `keep` serving.
fn take_offline(l: &InLab, site: &str, keep: &str) -> Out {
    kc26(
        l,
        &[
            "run",
            "take-site-offline",
            "-p",
            &format!("site={site}"),
            "-p",
            &format!("keep={keep}"),
            "--yes",
        ],
    )
}

fn kc26(l: &InLab, args: &[&str]) -> Out {
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26"]).args(args);
    run(c)
}

#[test]
fn a_site_taken_out_receives_no_request_and_one_brought_back_receives_them_again() {
    let l = haproxy_lab();
    let before = landed(&l, 6);
    assert!(
        before.iter().any(|s| s == "site-a") && before.iter().any(|s| s == "site-b"),
        "round robin reaches both sites: {before:?}"
    );
    let out = take_offline(&l, "site-b", "site-a").expect(0);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("after=[\"site-b MAINT MAINT scur=0\"]"),
        "{said}"
    );
    // The run's direction says where traffic moved, not only its parameters (the
    // page's index shows it).
    let mut h = l.runbook();
    h.args(["history", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&run(h).expect(0).stdout).unwrap();
    assert_eq!(
        runs[0]["direction"], "site-b; traffic: site-b out",
        "{runs}"
    );
    // From the moment the step ended: every request on site-a, none reaches site-b.
    let b = received(&l, "site-b");
    let after = landed(&l, 10);
    assert!(after.iter().all(|s| s == "site-a"), "{after:?}");
    assert_eq!(
        received(&l, "site-b"),
        b,
        "a request reached the removed site"
    );
    // The pack's verdict reads HAProxy through the traffic role: planned, synchronize.
    let mut c = l.runbook();
    c.args(["--pack", "keycloak-26", "check", "--json"]);
    let out = run(c);
    assert_eq!(out.code, 9, "planned: {}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["runbook"], "keycloak-26/synchronize-site -p site=site-b -p source=site-a",
        "{v}"
    );
    // Back: refused before a synchronize (the add-to-traffic invariant), then added.
    let refused = kc26(
        &l,
        &["run", "bring-site-online", "-p", "site=site-b", "--yes"],
    );
    assert_eq!(refused.code, 8, "{}{}", refused.stdout, refused.stderr);
    assert!(landed(&l, 4).iter().all(|s| s == "site-a"));
    kc26(
        &l,
        &["run", "synchronize-site", "-p", "site=site-b", "--yes"],
    )
    .expect(0);
    kc26(
        &l,
        &["run", "bring-site-online", "-p", "site=site-b", "--yes"],
    )
    .expect(0);
    let back = landed(&l, 6);
    assert!(
        back.iter().filter(|s| *s == "site-b").count() >= 2,
        "{back:?}"
    );
}

#[test]
fn the_last_serving_site_is_never_taken_out() {
    let l = haproxy_lab();
    take_offline(&l, "site-b", "site-a").expect(0);
    // Taking site-a out too would leave no site: refused before any write.
    let out = take_offline(&l, "site-a", "site-b");
    assert_eq!(out.code, 8, "{}{}", out.stdout, out.stderr);
    assert!(landed(&l, 6).iter().all(|s| s == "site-a"));
}

#[test]
fn sessions_still_open_at_the_drain_bound_are_cut_and_said() {
    let mut l = haproxy_lab();
    l.edit_env(|doc| {
        for site in ["site-a", "site-b"] {
            doc["sites"][site]["traffic"]["haproxy"]["drain_timeout"] =
                Value::from("1s").into_yaml();
        }
    });
    // Two slow requests in flight: round robin puts one on each site.
    let lb = frontend(&l);
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || lb_get(lb, "/realms/master/slow")))
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let out = take_offline(&l, "site-b", "site-a").expect(0);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("sessions_cut=[{\"server\":\"site-b\",\"sessions\":1}]"),
        "{said}"
    );
    assert!(
        said.contains("still open on site-b at the drain bound were cut"),
        "{said}"
    );
    let answers: Vec<Result<String, String>> =
        slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        answers.contains(&Ok("site-a".into())),
        "site-a's request finished: {answers:?}"
    );
    assert!(
        !answers.contains(&Ok("site-b".into())),
        "site-b's request was cut, not answered: {answers:?}"
    );
}

#[test]
fn a_server_that_points_at_another_sites_keycloak_is_a_configuration_mistake() {
    let mut l = haproxy_lab();
    let a = l.running().endpoints.keycloak["site-a"];
    // site-b says its Keycloak is site-a's: its server cannot be site-b's.
    l.edit_env(|doc| {
        doc["sites"]["site-b"]["traffic"]["haproxy"]["address"] =
            Value::from(a.to_string()).into_yaml();
    });
    let out = take_offline(&l, "site-b", "site-a");
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("MISCONFIGURED") || text.contains("points at"),
        "{text}"
    );
    assert!(
        text.contains("server `keycloak_sites/site-b` points at"),
        "{text}"
    );
    assert_eq!(
        landed(&l, 4).iter().filter(|s| *s == "site-b").count(),
        2,
        "nothing changed"
    );
}

trait IntoYaml {
    fn into_yaml(self) -> serde_yaml::Value;
}

impl IntoYaml for Value {
    fn into_yaml(self) -> serde_yaml::Value {
        serde_yaml::to_value(self).unwrap()
    }
}

#[test]
fn fence_site_takes_the_unreachable_site_out_of_haproxy_and_its_backup_offline() {
    let l = haproxy_lab();
    let out = kc26(
        &l,
        &[
            "run",
            "fence-site",
            "-p",
            "site=site-b",
            "-p",
            "reporter=site-a",
            "--yes",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(landed(&l, 6).iter().all(|s| s == "site-a"));
    let st = l.state();
    for c in st["sites"]["site-a"]["caches"]
        .as_object()
        .unwrap()
        .values()
    {
        assert_eq!(c["backups"]["site-b"]["status"], "offline", "{c}");
    }
    // Never the last: fencing site-a now (site-b already out) is refused.
    let out = kc26(
        &l,
        &[
            "run",
            "fence-site",
            "-p",
            "site=site-a",
            "-p",
            "reporter=site-b",
            "--yes",
        ],
    );
    assert_eq!(out.code, 8, "{}{}", out.stdout, out.stderr);
    assert!(landed(&l, 4).iter().all(|s| s == "site-a"));
}
