//! Keycloak, Aurora, Route53 and HTTP actions against the lab; the AWS actions also
//! against moto (installed from PyPI by the test command).

// A scenario reads better whole: the 100-line limit is for production code.
#![allow(clippy::too_many_lines)]

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn keycloak_scale_records_the_count_waits_and_restores_it() {
    let lab = Lab::start(&[]).await;
    let yaml = r#"
name: t
steps:
  - id: down
    site: site-b
    action: keycloak.scale
    with: { instances: 0, poll: 10ms }
  - id: up
    site: site-b
    action: keycloak.scale
    with: { instances: "{{ steps.down.outputs.previous_instances }}", poll: 10ms }
"#;
    lab.running.shared.lock().world.scale = 0.003; // 30 s per instance -> 90 ms
    let r = run(&lab.running.env_file, yaml, &[]).await;
    completed(&r);
    assert_eq!(r.1.steps["down"].progress.outputs["previous_instances"], 3);
    // the scale-down waited for the pods to go, not for Ready (True at 0 at once)
    let down_obs = &r.1.steps["down"].progress.observation;
    assert_eq!(down_obs.as_ref().unwrap()["pods"], 0, "{down_obs:?}");
    let up = r.1.steps["up"].progress.observation.clone().unwrap();
    assert_eq!(up["status_instances"], 3);
    assert_eq!(up["ready"], "true");
    assert_eq!(up["observed_generation_current"], true);
    let st = lab.state().await;
    assert_eq!(st["sites"]["site-b"]["keycloak"]["ready"], 3);
}

#[tokio::test]
async fn http_expect_waits_for_the_lb_check() {
    let lab = Lab::start(&[]).await;
    lab.running
        .shared
        .lock()
        .world
        .scale_keycloak("site-b", 0, Instant::now())
        .unwrap();
    let shared = lab.running.shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        shared
            .lock()
            .world
            .scale_keycloak("site-b", 2, Instant::now())
            .unwrap();
    });
    let yaml = "name: t\nsteps:\n  - id: ready\n    site: site-b\n    action: http.expect\n    with: { poll: 20ms }\n    timeout: 5s\n";
    let r = run(&lab.running.env_file, yaml, &[]).await;
    completed(&r);
    assert_eq!(
        r.1.steps["ready"].progress.observation.as_ref().unwrap()["status"],
        200
    );
}

const AWS_STEPS: &str = r#"
name: t
steps:
  - id: writer-to-b
    site: site-b
    action: aurora.failover
    with: { poll: 20ms }
    timeout: 10s
  - id: again
    site: site-b
    action: aurora.failover
    with: { poll: 20ms }
  - id: down-path
    site: site-a
    action: route53.set-health-check-path
    with: { path: /health/down, poll: 20ms }
    timeout: 10s
  - id: read
    site: site-a
    action: route53.health-check-status
  - id: restore-path
    site: site-a
    action: route53.set-health-check-path
    with: { path: "{{ steps.down_path.outputs.previous_path }}", poll: 20ms }
    timeout: 10s
"#;

#[tokio::test]
async fn aurora_and_route53_against_the_lab() {
    let lab = Lab::start(&[]).await;
    let r = run(&lab.running.env_file, AWS_STEPS, &[]).await;
    completed(&r);
    assert_eq!(
        r.1.steps["writer-to-b"].progress.outputs["previous_writer"],
        "keycloak-aurora-instance-1"
    );
    assert_eq!(r.1.steps["writer-to-b"].progress.outputs["changed"], true);
    assert_eq!(
        r.1.steps["again"].progress.outputs["changed"], false,
        "already the writer: nothing to do"
    );
    assert_eq!(
        r.1.steps["down-path"].progress.outputs["previous_path"],
        "/lb-check"
    );
    assert_eq!(r.1.steps["read"].progress.outputs["path"], "/health/down");
    let st = lab.state().await;
    assert_eq!(st["aurora"]["writer_site"], "site-b");
    assert_eq!(
        st["health_checks"][0]["path"], "/lb-check",
        "restored from the recorded output"
    );
    assert_eq!(
        st["health_checks"][0]["version"], 3,
        "two updates under the version lock"
    );
}

#[tokio::test]
async fn route53_waits_for_the_health_route53_reports() {
    let lab = Lab::start(&[]).await;
    let yaml = r#"
name: t
steps:
  - id: down
    site: site-a
    action: route53.set-health-check-path
    with: { path: /health/down, wait_for: unhealthy, poll: 20ms }
    timeout: 10s
"#;
    let r = run(&lab.running.env_file, yaml, &[]).await;
    completed(&r);
    assert_eq!(
        r.1.steps["down"].progress.observation.as_ref().unwrap()["healthy"],
        false
    );
    assert_eq!(lab.state().await["serving_site"], "site-b");
}

#[tokio::test]
async fn aws_errors_surface_with_their_codes() {
    let lab = Lab::start(&[]).await;
    let yaml = "name: t\nsteps:\n  - id: f\n    site: site-b\n    action: aurora.failover\n    with: { cluster: nope }\n";
    let r = run(&lab.running.env_file, yaml, &[]).await;
    let reason = r.0.reason.unwrap();
    assert!(
        reason.contains("RDS DescribeDBClusters(nope) failed: DBClusterNotFoundFault"),
        "{reason}"
    );
    let yaml = "name: t\nsteps:\n  - id: h\n    site: site-a\n    action: route53.health-check-status\n    with: { health_check_id: nope }\n";
    let r = run(&lab.running.env_file, yaml, &[]).await;
    let reason = r.0.reason.unwrap();
    assert!(reason.contains("NoSuchHealthCheck"), "{reason}");
}

const SERVING: &str = "name: t\nsteps:\n  - id: serving\n    action: route53.serving-site\n";

#[tokio::test]
async fn the_serving_site_is_read_from_the_failover_records_and_follows_the_checks() {
    let lab = Lab::start(&[]).await;
    let r = run(&lab.running.env_file, SERVING, &[]).await;
    completed(&r);
    let o = &r.1.steps["serving"].progress.outputs;
    assert_eq!(o["serving"], "site-a");
    assert_eq!(o["records"][0]["role"], "PRIMARY");
    assert_eq!(o["records"][0]["site"], "site-a");
    assert_eq!(o["records"][0]["health_check_id"], "hc-site-a");
    assert_eq!(o["records"][1]["role"], "SECONDARY");
    assert_eq!(o["records"][1]["site"], "site-b");
    assert_eq!(o["dns"]["site"], "site-a", "TestDNSAnswer confirms it");
    // site-a's check fails: Route53 answers with the SECONDARY record.
    lab.running.shared.lock().world.health_checks[0].path = "/health/down".into();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = run(&lab.running.env_file, SERVING, &[]).await;
        completed(&r);
        let o = &r.1.steps["serving"].progress.outputs;
        if o["serving"] == "site-b" {
            assert!(o["how"].as_str().unwrap().contains("is unhealthy"), "{o:?}");
            assert_eq!(o["dns"]["site"], "site-b");
            break;
        }
        assert!(Instant::now() < deadline, "never moved: {o:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A record whose check is no site's: the serving site is unknown, never guessed.
    let env = lab.env_with("no-hc.yaml", |d| {
        d["sites"]["site-b"]["traffic"]["route53"]["health_check_id"] = "someone-elses".into();
    });
    let r = run(&env, SERVING, &[]).await;
    completed(&r);
    assert!(r.1.steps["serving"].progress.outputs["serving"].is_null());
}

#[tokio::test]
async fn aurora_and_route53_against_moto() {
    let moto = lab::testing::Moto::start().await;
    let endpoint = moto.endpoint();
    // the same deployment in moto
    runbook_steps::clients::install_crypto();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(runbook_steps::clients::aws_https_client())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .load()
        .await;
    let rds = aws_sdk_rds::Client::new(&conf);
    rds.create_db_cluster()
        .db_cluster_identifier("keycloak-aurora")
        .engine("aurora-postgresql")
        .master_username("keycloak")
        .master_user_password("secret-password")
        .send()
        .await
        .unwrap();
    for (i, az) in [(1, "eu-west-1a"), (2, "eu-west-1b")] {
        rds.create_db_instance()
            .db_instance_identifier(format!("keycloak-aurora-instance-{i}"))
            .db_cluster_identifier("keycloak-aurora")
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.large")
            .availability_zone(az)
            .send()
            .await
            .unwrap();
    }
    let r53 = aws_sdk_route53::Client::new(&conf);
    let hc = r53
        .create_health_check()
        .caller_reference("site-a")
        .health_check_config(
            aws_sdk_route53::types::HealthCheckConfig::builder()
                .r#type(aws_sdk_route53::types::HealthCheckType::Https)
                .resource_path("/lb-check")
                .fully_qualified_domain_name("primary.keycloak.example")
                .port(443)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let hc_id = hc.health_check().unwrap().id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yaml");
    std::fs::write(
        &env,
        format!(
            concat!(
                "aws: {{ region: eu-west-1, endpoint_url: \"{endpoint}\", aurora_cluster: keycloak-aurora }}\n",
                "sites:\n",
                "  site-a:\n    aurora: {{ instance: keycloak-aurora-instance-1, zone: eu-west-1a }}\n    route53: {{ health_check_id: {hc_id}, target: primary.keycloak.example }}\n",
                "  site-b:\n    aurora: {{ instance: keycloak-aurora-instance-2, zone: eu-west-1b }}\n",
            ),
            endpoint = endpoint,
            hc_id = hc_id
        ),
    )
    .unwrap();
    // moto needs credentials from the standard chain
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    // The built-in identity guard reads moto's answers (the botocore shapes): an
    // instance in another zone, or a health check probing another host, is refused
    // before any effect.
    let text = std::fs::read_to_string(&env).unwrap();
    let crossed = dir.path().join("crossed.yaml");
    std::fs::write(
        &crossed,
        text.replace("zone: eu-west-1b", "zone: eu-west-1a")
            .replace(
                "target: primary.keycloak.example",
                "target: backup.keycloak.example",
            ),
    )
    .unwrap();
    let r = run(&crossed, AWS_STEPS, &[]).await;
    assert_eq!(
        r.0.status,
        engine::state::RunStatus::Refused,
        "{:?}",
        r.0.reason
    );
    let reason = r.0.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("MISMATCH: `keycloak-aurora-instance-2` is in `eu-west-1b`, but site site-b is in `eu-west-1a`"),
        "{reason}"
    );
    assert!(
        reason.contains("probes `primary.keycloak.example`, not site site-a's load balancer `backup.keycloak.example`"),
        "{reason}"
    );
    let r = run(&env, AWS_STEPS, &[]).await;
    completed(&r);
    assert_eq!(r.1.steps["writer-to-b"].progress.outputs["changed"], true);
    assert_eq!(r.1.steps["again"].progress.outputs["changed"], false);
    assert_eq!(
        r.1.steps["down-path"].progress.outputs["previous_path"],
        "/lb-check"
    );
    let now = r53
        .get_health_check()
        .health_check_id(&hc_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        now.health_check()
            .unwrap()
            .health_check_config()
            .unwrap()
            .resource_path(),
        Some("/lb-check")
    );
    // The client domain's failover pair, as the guide creates it, in moto: the
    // serving site is read from moto's records and health checks the same way.
    let hc_b = r53
        .create_health_check()
        .caller_reference("site-b")
        .health_check_config(
            aws_sdk_route53::types::HealthCheckConfig::builder()
                .r#type(aws_sdk_route53::types::HealthCheckType::Https)
                .resource_path("/lb-check")
                .fully_qualified_domain_name("backup.keycloak.example")
                .port(443)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .health_check()
        .unwrap()
        .id()
        .to_string();
    let zone = r53
        .create_hosted_zone()
        .name("keycloak.example")
        .caller_reference("zone")
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    use aws_sdk_route53::types::{
        AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet,
        ResourceRecordSetFailover, RrType,
    };
    let record = |id: &str, role: ResourceRecordSetFailover, hc: &str, target: &str| {
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(
                ResourceRecordSet::builder()
                    .name("client.keycloak.example")
                    .r#type(RrType::A)
                    .set_identifier(id)
                    .failover(role)
                    .health_check_id(hc)
                    .alias_target(
                        AliasTarget::builder()
                            .hosted_zone_id(&zone)
                            .dns_name(target)
                            .evaluate_target_health(true)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(record(
                    "client-failover-primary",
                    ResourceRecordSetFailover::Primary,
                    &hc_id,
                    "primary.keycloak.example",
                ))
                .changes(record(
                    "client-failover-backup",
                    ResourceRecordSetFailover::Secondary,
                    &hc_b,
                    "backup.keycloak.example",
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let env2 = dir.path().join("env2.yaml");
    std::fs::write(
        &env2,
        format!(
            concat!(
                "aws: {{ region: eu-west-1, endpoint_url: \"{endpoint}\", hosted_zone_id: \"{zone}\", client_domain: client.keycloak.example }}\n",
                "sites:\n",
                "  site-a:\n    route53: {{ health_check_id: {a} }}\n",
                "  site-b:\n    route53: {{ health_check_id: {b} }}\n",
            ),
            endpoint = endpoint,
            zone = zone,
            a = hc_id,
            b = hc_b
        ),
    )
    .unwrap();
    let r = run(&env2, SERVING, &[]).await;
    completed(&r);
    let o = &r.1.steps["serving"].progress.outputs;
    assert_eq!(o["records"][0]["role"], "PRIMARY", "{o:?}");
    assert_eq!(o["records"][0]["site"], "site-a");
    assert_eq!(o["records"][1]["site"], "site-b");
    // moto reports every check healthy: the PRIMARY record's site serves.
    assert_eq!(o["serving"], "site-a", "{o:?}");
    let out = rds.describe_db_clusters().send().await.unwrap();
    let writer = out.db_clusters()[0]
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier())
        .map(str::to_string);
    assert_eq!(writer.as_deref(), Some("keycloak-aurora-instance-2"));
}
