use super::*;

fn world() -> (World, Instant) {
    let now = Instant::now();
    (World::new(&Shape::default(), now), now)
}

#[test]
fn writes_and_clears_cross_while_online() {
    let (mut w, _) = world();
    w.put("site-a", "sessions", "k", "v").unwrap();
    assert_eq!(
        w.get("site-b", "sessions", "k").unwrap().as_deref(),
        Some("v")
    );
    // the hazard: clearing site-b while its backup to site-a is online wipes site-a
    w.clear("site-b", "sessions").unwrap();
    assert_eq!(w.size("site-a", "sessions").unwrap(), 0);
}

#[test]
fn offline_backup_keeps_a_clear_local() {
    let (mut w, _) = world();
    w.put("site-a", "sessions", "k", "v").unwrap();
    w.take_offline("site-b", "sessions", "site-a").unwrap();
    w.clear("site-b", "sessions").unwrap();
    assert_eq!(w.size("site-a", "sessions").unwrap(), 1);
    assert_eq!(w.size("site-b", "sessions").unwrap(), 0);
}

#[test]
fn a_node_that_stays_online_makes_mixed_and_still_replicates() {
    let (mut w, _) = world();
    w.faults
        .push(Fault::parse("offline-not-sticking:site-b").unwrap());
    w.put("site-a", "sessions", "k", "v").unwrap();
    // Infinispan's answer when a node refuses (XSiteAdminOperations.takeSiteOffline).
    let refused = w.take_offline("site-b", "sessions", "site-a").unwrap_err();
    assert_eq!(
        refused,
        IspnError::Op {
            site: "site-a".into(),
            result: "Could not take the site offline on nodes:[site-b-infinispan-2]".into()
        }
    );
    let st = w.sites["site-b"].caches["sessions"].backups["site-a"].status();
    assert_eq!(st, "mixed");
    w.clear("site-b", "sessions").unwrap();
    assert_eq!(
        w.size("site-a", "sessions").unwrap(),
        0,
        "mixed is not offline"
    );
}

#[test]
fn a_node_refusing_for_some_rounds_then_complies() {
    let (mut w, _) = world();
    w.faults
        .push(Fault::parse("offline-not-sticking:site-b::2").unwrap());
    assert!(w.take_offline("site-b", "sessions", "site-a").is_err());
    assert!(w.take_offline("site-b", "sessions", "site-a").is_err());
    w.take_offline("site-b", "sessions", "site-a").unwrap();
    assert_eq!(
        w.sites["site-b"].caches["sessions"].backups["site-a"].status(),
        "offline"
    );
}

#[test]
fn route53_answers_the_secondary_only_while_its_check_is_healthy() {
    let (mut w, _) = world();
    let check = |site: &str, ok: bool| HealthCheck {
        id: format!("hc-{site}"),
        site: site.into(),
        path: "/lb-check".into(),
        fqdn: String::new(),
        port: 0,
        version: 1,
        observations: [("eu-west-1".to_string(), (ok, String::new(), 0))]
            .into_iter()
            .collect(),
    };
    w.health_checks = vec![check("site-a", true), check("site-b", true)];
    assert_eq!(w.serving_site(), "site-a");
    w.health_checks = vec![check("site-a", false), check("site-b", true)];
    assert_eq!(w.serving_site(), "site-b");
    w.health_checks = vec![check("site-a", false), check("site-b", false)];
    assert_eq!(
        w.serving_site(),
        "site-a",
        "all unhealthy: the PRIMARY record"
    );
}

#[test]
fn push_state_sends_then_copies() {
    let (mut w, now) = world();
    w.faults.push(Fault::Partition);
    w.put("site-a", "sessions", "k", "v").unwrap();
    assert_eq!(w.size("site-b", "sessions").unwrap(), 0);
    w.faults.clear();
    w.start_push("site-a", "sessions", "site-b", now).unwrap();
    assert_eq!(
        w.push_status("site-a", "sessions").unwrap()["site-b"],
        PushStatus::Sending
    );
    w.tick(now + Duration::from_secs(1));
    assert_eq!(
        w.push_status("site-a", "sessions").unwrap()["site-b"],
        PushStatus::Ok
    );
    assert_eq!(w.size("site-b", "sessions").unwrap(), 1);
    w.clear_push_status("site-a", "sessions").unwrap();
    assert_eq!(
        w.push_status("site-a", "sessions").unwrap()["site-b"],
        PushStatus::Idle
    );
}

#[test]
fn push_error_fault_counts_down() {
    let (mut w, now) = world();
    w.faults.push(Fault::parse("push-error:work:1").unwrap());
    w.start_push("site-a", "work", "site-b", now).unwrap();
    w.tick(now + Duration::from_secs(1));
    assert_eq!(
        w.push_status("site-a", "work").unwrap()["site-b"],
        PushStatus::Error
    );
    w.start_push("site-a", "work", "site-b", now).unwrap();
    w.tick(now + Duration::from_secs(1));
    assert_eq!(
        w.push_status("site-a", "work").unwrap()["site-b"],
        PushStatus::Ok
    );
}

#[test]
fn keycloak_follows_spec_over_time_and_is_ready_at_zero_at_once() {
    let (mut w, now) = world();
    w.scale = 1.0;
    w.scale_keycloak("site-b", 0, now).unwrap();
    assert_eq!(w.keycloak_ready("site-b", now), 3);
    let st = w.keycloak_status("site-b", now);
    assert_eq!(
        st["conditions"][0]["status"], "True",
        "Ready=True at 0 at once, like the operator"
    );
    assert_eq!(w.keycloak_ready("site-b", now + Duration::from_secs(31)), 2);
    assert_eq!(w.keycloak_ready("site-b", now + Duration::from_secs(91)), 0);
    let st = w.keycloak_status("site-b", now + Duration::from_secs(91));
    assert!(st.get("instances").is_none(), "absent means 0");
}

#[test]
fn aurora_failover_flips_the_writer_after_a_while() {
    let (mut w, now) = world();
    w.aurora_failover("keycloak-aurora", Some("keycloak-aurora-instance-2"), now)
        .unwrap();
    assert_eq!(w.aurora_status(), "failing-over");
    assert_eq!(
        w.aurora_failover("keycloak-aurora", None, now)
            .unwrap_err()
            .0,
        "InvalidDBClusterStateFault"
    );
    w.tick(now + Duration::from_secs(1));
    assert_eq!(w.aurora.writer, "keycloak-aurora-instance-2");
    assert_eq!(
        w.aurora_failover("nope", None, now).unwrap_err().0,
        "DBClusterNotFoundFault"
    );
}
