use super::*;

fn view(endpoints: &[(&str, Option<&str>, i32, &str)]) -> View {
    View {
        accelerator: "keycloak".into(),
        listeners: 1,
        endpoint_groups: 1,
        status: "DEPLOYED".into(),
        endpoints: endpoints
            .iter()
            .map(|(id, site, weight, health)| Endpoint {
                endpoint_id: id.to_string(),
                site: site.map(str::to_string),
                weight: *weight,
                health: health.to_string(),
                client_ip: false,
            })
            .collect(),
        nlbs: [("site-a", "arn-a"), ("site-b", "arn-b")]
            .iter()
            .map(|(s, a)| (s.to_string(), (a.to_string(), Some(s.to_string()))))
            .collect(),
        ..View::default()
    }
}

#[test]
fn both_healthy_both_serve_and_one_removed_is_out_of_the_group() {
    let j = view(&[
        ("arn-a", Some("site-a"), 128, "HEALTHY"),
        ("arn-b", Some("site-b"), 128, "HEALTHY"),
    ])
    .judge();
    assert_eq!(j["serving"], json!(["site-a", "site-b"]));
    assert_eq!(j["ambiguous"], json!([]));
    let j = view(&[("arn-a", Some("site-a"), 128, "HEALTHY")]).judge();
    assert_eq!(j["serving"], json!(["site-a"]));
    assert_eq!(j["out_of_group"], json!(["site-b"]));
    assert_eq!(j["sites"]["site-b"]["in_group"], false);
}

#[test]
fn what_cannot_be_told_is_said_not_guessed() {
    // No healthy endpoint: fail-open, every endpoint may get traffic.
    let j = view(&[
        ("arn-a", Some("site-a"), 128, "UNHEALTHY"),
        ("arn-b", Some("site-b"), 128, "UNHEALTHY"),
    ])
    .judge();
    assert_eq!(j["fail_open"], true);
    assert_eq!(j["serving"], json!(["site-a", "site-b"]));
    assert!(j["ambiguous"][0].as_str().unwrap().contains("fails open"));
    // INITIAL, untagged.
    let j = view(&[
        ("arn-a", Some("site-a"), 128, "HEALTHY"),
        ("arn-x", None, 128, "INITIAL"),
    ])
    .judge();
    let amb = j["ambiguous"].to_string();
    assert!(
        amb.contains("without a `site` tag") && amb.contains("INITIAL"),
        "{amb}"
    );
    // Two groups.
    let mut v = view(&[("arn-a", Some("site-a"), 128, "HEALTHY")]);
    v.endpoint_groups = 2;
    assert!(v.judge()["ambiguous"][0]
        .as_str()
        .unwrap()
        .contains("2 endpoint group(s)"));
    assert!(trustworthy(&v.judge()).is_err());
}

#[test]
fn an_nlb_tagged_for_another_site_is_an_identity_mismatch() {
    let mut v = view(&[
        ("arn-a", Some("site-a"), 128, "HEALTHY"),
        ("arn-b", Some("site-a"), 128, "HEALTHY"),
    ]);
    v.nlbs
        .insert("site-b".into(), ("arn-b".into(), Some("site-a".into())));
    let j = v.judge();
    let m = j["mismatch"].to_string();
    assert!(
        m.contains("site-b's NLB arn-b is tagged site=site-a"),
        "{m}"
    );
    assert!(trustworthy(&j)
        .unwrap_err()
        .message
        .contains("identity mismatch"));
}

#[test]
fn changes_between_reads_name_the_other_writer() {
    let a = vec!["site-a=x".to_string(), "site-b=y".to_string()];
    assert_eq!(changes(&a, &a), None);
    assert_eq!(
        changes(&a, &a[..1]).as_deref(),
        Some("removed by another writer: site-b=y")
    );
}
