//! Procedure packs: which pack applies (`--pack`, the environment file's `pack:`, the
//! default) is said in the plan; `list` shows every pack; a run records its pack; a
//! pack name that is not built in is refused, naming those that are.

use crate::support::*;

#[test]
fn the_pack_in_use_is_chosen_said_and_recorded() {
    let mut l = InLab::start(&[], 0.0);
    // The default, said in the plan.
    let mut p = l.runbook();
    p.args(["plan", "switchover"]);
    let plan = run(p).expect(0).stdout;
    assert!(
        plan.contains("pack:   keycloak-24 1.") && plan.contains("the default"),
        "{plan}"
    );
    // Named by the environment file.
    l.edit_env(|d| {
        d.as_mapping_mut()
            .unwrap()
            .insert("pack".into(), "keycloak-24".into());
    });
    let mut p = l.runbook();
    p.args(["plan", "switchover"]);
    let plan = run(p).expect(0).stdout;
    assert!(plan.contains("the environment file's `pack:`"), "{plan}");
    // `--pack` wins, and a name not built in is refused before anything.
    let mut p = l.runbook();
    p.args(["--pack", "keycloak-99", "plan", "switchover"]);
    let out = run(p).expect(2);
    assert!(
        out.stderr.contains(
            "no procedure pack `keycloak-99` (--pack; built in: keycloak-24, keycloak-26, pgo, cnpg)"
        ),
        "{}",
        out.stderr
    );
    // `PACK/NAME` names a pack's runbook whatever pack is in use.
    let mut p = l.runbook();
    p.args(["plan", "keycloak-24/switchover", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&run(p).expect(0).stdout).unwrap();
    assert_eq!(plan["pack"], "keycloak-24");
    // A run records its pack (and a runbook file has none).
    let mut r = l.runbook();
    r.args(["run", "switchover", "--yes", "--json"]);
    run(r).expect(0);
    let mut s = l.runbook();
    s.args(["status", "r-1", "--json"]);
    let st = run(s).expect(0).json();
    assert_eq!(st["pack"], "keycloak-24", "{st}");
    let rb = write(
        l.dir.path(),
        "quick.yaml",
        "name: quick\nsteps:\n  - id: w\n    action: wait\n    with: { duration: 1ms }\n",
    );
    let mut r = l.runbook();
    r.arg("run").arg(&rb).arg("--yes");
    run(r).expect(0);
    let mut s = l.runbook();
    s.args(["status", "r-2", "--json"]);
    assert!(run(s).expect(0).json()["pack"].is_null());
}

#[test]
fn list_shows_every_pack_with_its_runbooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = runbook(&dir.path().join("j"));
    c.args(["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run(c).expect(0).stdout).unwrap();
    let names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["pack"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    for n in [
        "keycloak-24/failover",
        "keycloak-24/switchover",
        "keycloak-24/recover-passive-site",
        "keycloak-24/switchback",
    ] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let mut c = runbook(&dir.path().join("j"));
    c.arg("list");
    let out = run(c).expect(0);
    assert!(
        out.stderr.contains("procedure pack keycloak-24 1.")
            && out.stderr.contains("in use: the default"),
        "{}",
        out.stderr
    );
    // One column for the titles, the longest name (a pack's prefix included) too.
    let columns: std::collections::BTreeSet<usize> = out
        .stdout
        .lines()
        .map(|l| {
            let name = l.split_whitespace().next().unwrap();
            name.len() + l[name.len()..].chars().take_while(|c| *c == ' ').count()
        })
        .collect();
    assert_eq!(
        columns.len(),
        1,
        "titles start in one column:\n{}",
        out.stdout
    );
}

/// The lab's environment file written the old way: `route53:` and `aurora:` straight
/// in each site, the zone, domain and cluster in `aws:`.
fn old_keys(d: &mut serde_yaml::Value) {
    let mut zone = None;
    let mut domain = None;
    let mut cluster = None;
    for (_, site) in d["sites"].as_mapping_mut().unwrap().iter_mut() {
        let site = site.as_mapping_mut().unwrap();
        let mut r53 = site.remove("traffic").unwrap()["route53"].clone();
        let mut aurora = site.remove("database").unwrap()["aurora"].clone();
        let r = r53.as_mapping_mut().unwrap();
        zone = r.remove("hosted_zone_id");
        domain = r.remove("client_domain");
        cluster = aurora.as_mapping_mut().unwrap().remove("cluster");
        site.insert("route53".into(), r53);
        site.insert("aurora".into(), aurora);
    }
    let aws = d["aws"].as_mapping_mut().unwrap();
    aws.insert("hosted_zone_id".into(), zone.unwrap());
    aws.insert("client_domain".into(), domain.unwrap());
    aws.insert("aurora_cluster".into(), cluster.unwrap());
}

#[test]
fn procedures_name_roles_and_the_site_names_the_vendor_old_keys_still_work() {
    // The old keys: the same switchover, with a note that they are deprecated.
    let mut l = InLab::start(&[], 0.0);
    l.edit_env(old_keys);
    let mut r = l.runbook();
    r.args(["run", "switchover", "--yes", "--json"]);
    let out = run(r).expect(0);
    assert!(
        out.stderr.contains(
            "note: deprecated in the environment file: sites.site-a.route53: write it as sites.site-a.traffic.route53"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(l.state()["serving_site"], "site-b");
    assert_eq!(l.state()["aurora"]["writer_site"], "site-b");

    // A site that names no traffic vendor: refused before any effect, saying where.
    let mut l = InLab::start(&[], 0.0);
    l.edit_env(|d| {
        d["sites"]["site-a"]
            .as_mapping_mut()
            .unwrap()
            .remove("traffic");
    });
    // Its direction cannot be read from the deployment then: named as such (exit 2).
    let mut r = l.runbook();
    r.args(["run", "switchover", "--yes", "--json"]);
    let out = run(r).expect(2);
    assert!(
        out.stderr.contains("cannot be told from the deployment")
            && out.stderr.contains("-p primary=SITE"),
        "{}",
        out.stderr
    );
    let mut r = l.runbook();
    r.args(["run", "switchover", "--yes", "--json"]);
    r.args(["-p", "primary=site-a", "-p", "secondary=site-b"]);
    let out = run(r).expect(8);
    assert!(
        out.stderr.contains("sites.site-a names no traffic vendor"),
        "{}",
        out.stderr
    );
    l.untouched("site-a");
    l.untouched("site-b");
    assert_eq!(l.state()["serving_site"], "site-a", "traffic did not move");
    assert_eq!(
        l.state()["aurora"]["writer_site"],
        "site-a",
        "the writer did not move"
    );
    // The plan shows the vendor's own calls for a role.
    let l = InLab::start(&[], 0.0);
    let mut p = l.runbook();
    p.args(["plan", "switchover"]);
    let plan = run(p).expect(0).stdout;
    assert!(
        plan.contains("[traffic.point-away on site-a]") && plan.contains("UpdateHealthCheck"),
        "{plan}"
    );
}
