use super::*;

/// A site as read: `sql` None is a database that does not answer.
fn view(
    site: &str,
    standby: bool,
    sql: Option<(bool, u64)>,
    password: &str,
) -> Result<View, (String, String)> {
    Ok(View {
        site: site.into(),
        cfg: PgoDatabase {
            cluster: "hippo".into(),
            address: format!("{site}.example:5432"),
            max_lag_bytes: Some(1000),
            ..PgoDatabase::default()
        },
        namespace: "keycloak".into(),
        exists: true,
        generation: 1,
        observed: 1,
        shutdown: false,
        paused: false,
        standby,
        pods: 1,
        leader_role: None,
        sql: sql
            .map(|(in_recovery, lsn_bytes)| Sql {
                in_recovery,
                lsn: format!("0/{lsn_bytes:X}"),
                lsn_bytes,
                replayed_at: None,
                timeline: None,
            })
            .ok_or_else(|| "connection refused".to_string()),
        password_digest: Some(password.into()),
        secret_error: None,
        switchover: None,
        trigger: None,
    })
}

fn verdict(views: &[Result<View, (String, String)>], unplanned: bool) -> (bool, String) {
    let (safe, why, _) = judge("site-b", views, &[], unplanned);
    (safe, why.join("; "))
}

#[test]
fn a_caught_up_standby_may_take_the_writer() {
    let v = [
        view("site-a", false, Some((false, 5000)), "d"),
        view("site-b", true, Some((true, 4500)), "d"),
    ];
    assert_eq!(verdict(&v, false), (true, String::new()));
}

#[test]
fn two_writable_primaries_refuse_whatever_else_holds() {
    let v = [
        view("site-a", false, Some((false, 5000)), "d"),
        view("site-b", false, Some((false, 5000)), "d"),
    ];
    let (safe, why) = verdict(&v, false);
    assert!(!safe);
    assert!(
        why.contains("TWO WRITABLE PRIMARIES: site-a and site-b"),
        "{why}"
    );
}

#[test]
fn a_lag_over_the_bound_or_unknown_refuses() {
    let v = [
        view("site-a", false, Some((false, 5000)), "d"),
        view("site-b", true, Some((true, 3000)), "d"),
    ];
    let (safe, why) = verdict(&v, false);
    assert!(
        !safe && why.contains("2000 bytes of WAL behind") && why.contains("1000 bytes allowed"),
        "{why}"
    );
    let v = [
        view("site-a", false, None, "d"),
        view("site-b", true, Some((true, 3000)), "d"),
    ];
    let (safe, why) = verdict(&v, false);
    assert!(
        !safe && why.contains("lag is unknown") && why.contains("promote-standby"),
        "{why}"
    );
    // The primary's site lost: promote-standby goes on without its lag.
    assert_eq!(verdict(&v, true), (true, String::new()));
}

#[test]
fn an_unplanned_promotion_is_refused_while_the_lost_site_answers_writable() {
    // The "lost" site is a healthy primary: promoting away from it is a planned
    // move's job, never promote-standby's (issue 30, case 3).
    let v = [
        view("site-a", false, Some((false, 5000)), "d"),
        view("site-b", true, Some((true, 5000)), "d"),
    ];
    let (safe, why) = verdict(&v, true);
    assert!(!safe, "{why}");
    assert!(
        why.contains("site-a ANSWERS AS A WRITABLE PRIMARY") && why.contains("planned"),
        "{why}"
    );
    // Planned, the same reading may move the writer.
    assert!(verdict(&v, false).0);
}

#[test]
fn different_pguser_passwords_refuse_without_showing_them() {
    let v = [
        view("site-a", false, Some((false, 5000)), "aaa"),
        view("site-b", true, Some((true, 5000)), "bbb"),
    ];
    let (safe, why) = verdict(&v, false);
    assert!(!safe && why.contains("different passwords"), "{why}");
    assert!(!why.contains("aaa") && !why.contains("bbb"), "{why}");
}

#[test]
fn paused_shut_down_or_a_site_without_pgo_refuse() {
    let mut b = view("site-b", true, Some((true, 5000)), "d").unwrap();
    b.paused = true;
    let (safe, why) = verdict(
        &[view("site-a", false, Some((false, 5000)), "d"), Ok(b)],
        false,
    );
    assert!(!safe && why.contains("paused"), "{why}");
    let mut b = view("site-b", false, None, "d").unwrap();
    b.shutdown = true;
    let (safe, why) = verdict(
        &[view("site-a", false, Some((false, 5000)), "d"), Ok(b)],
        false,
    );
    assert!(
        !safe && why.contains("not a running standby") && why.contains("recreate"),
        "{why}"
    );
    let v = [
        view("site-a", false, Some((false, 5000)), "d"),
        view("site-b", true, Some((true, 5000)), "d"),
    ];
    let (safe, why, _) = judge("site-b", &v, &["site-c".to_string()], false);
    assert!(!safe && why.join(";").contains("site-c name no database.pgo"));
}

#[test]
fn the_writer_already_at_the_target_is_safe_and_changes_nothing() {
    let v = [
        view("site-a", true, Some((true, 5000)), "d"),
        view("site-b", false, Some((false, 5000)), "d"),
    ];
    assert_eq!(verdict(&v, false), (true, String::new()));
}
