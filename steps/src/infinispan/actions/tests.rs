use super::*;

#[test]
fn keys_in_flight_are_not_a_difference_but_keys_missing_twice_are() {
    let v = |k: &[&str]| Some(k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    // Equal at once.
    assert_eq!(
        compare_keys("a", "b", (v(&["1", "2"]), v(&["2", "1"])), None, 10),
        Ok(2)
    );
    // `3` was written between the reads: in the second read both have it.
    assert_eq!(
        compare_keys(
            "a",
            "b",
            (v(&["1", "2"]), v(&["1", "2", "3"])),
            Some((v(&["1", "2", "3"]), v(&["1", "2", "3"]))),
            10
        ),
        Ok(2)
    );
    // `9` is on a in both reads and on b in neither: b is stale.
    assert_eq!(
        compare_keys(
            "a",
            "b",
            (v(&["1", "9"]), v(&["1"])),
            Some((v(&["1", "9"]), v(&["1"]))),
            10
        )
        .map_err(|e| e.to_string()),
        Err("1 keys only on a, 0 only on b".to_string())
    );
    // Equal counts, different keys.
    assert_eq!(
        compare_keys(
            "a",
            "b",
            (v(&["1", "2"]), v(&["1", "3"])),
            Some((v(&["1", "2"]), v(&["1", "3"]))),
            10
        )
        .map_err(|e| e.to_string()),
        Err("1 keys only on a, 1 only on b".to_string())
    );
    // Over the bound, or not listable: not proven.
    assert!(compare_keys(
        "a",
        "b",
        (v(&["1", "2", "3"]), v(&["1", "2", "3"])),
        None,
        2
    )
    .is_err());
    assert!(compare_keys("a", "b", (None, v(&["1"])), None, 10).is_err());
}

#[test]
fn a_status_that_did_not_stick_names_the_node_and_the_caches() {
    let o = json!({
        "status": "mixed",
        "caches": {"sessions": "mixed", "work": "mixed", "actionTokens": "offline"},
        "nodes": {
            "sessions": {"b-0": "offline", "b-1": "online"},
            "work": {"b-0": "offline", "b-1": "online"},
            "actionTokens": {"b-0": "offline", "b-1": "offline"},
        }
    });
    assert_eq!(
        not_in_state(&o, "offline"),
        "b-1 is online for sessions, work"
    );
    let all = json!({
        "status": "mixed",
        "caches": {"sessions": "mixed", "work": "mixed"},
        "nodes": {"sessions": {"b-2": "online"}, "work": {"b-2": "online"}}
    });
    assert_eq!(
        not_in_state(&all, "offline"),
        "b-2 is online for every cache (2)"
    );
    let no_nodes = json!({"status": "online", "caches": {"sessions": "online", "work": "offline"}});
    assert_eq!(not_in_state(&no_nodes, "offline"), "sessions is online");
    let container = json!({"status": "mixed", "caches": {"a": "mixed", "b": "mixed"}});
    assert_eq!(
        not_in_state(&container, "offline"),
        "every cache (2) is mixed"
    );
    let some = json!({"status": "mixed", "caches": {"a": "online", "b": "online", "c": "offline"}});
    assert_eq!(not_in_state(&some, "offline"), "a, b are online");
    assert_eq!(
        not_in_state(&json!({"status": "unknown"}), "offline"),
        "no cache reported a status (overall: unknown)"
    );
}

#[test]
fn an_unfinished_push_names_the_caches_per_state() {
    let push = PushState;
    let o = json!({"status": "online", "push": {"a": "OK", "b": "ERROR", "c": "SENDING", "d": "ERROR"}});
    assert_eq!(
        push.explain(&Args::new(), &o).unwrap(),
        "push ERROR for b, d; push SENDING for c"
    );
    let off = json!({"status": "offline", "push": {"a": "OK"}});
    assert_eq!(
        push.explain(&Args::new(), &off).unwrap(),
        "replication is offline"
    );
    let clear = ClearPushStateStatus;
    let o = json!({"push": {"a": {"site-a": "IDLE"}, "b": {"site-a": "OK"}}});
    assert_eq!(
        clear.explain(&Args::new(), &o).unwrap(),
        "OK towards site-a for b"
    );
}
