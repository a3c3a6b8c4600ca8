//! The lab's RDS and Route53 through the AWS SDK crates themselves, and the same calls
//! against moto (a real emulator, installed from PyPI by the test command) so that the
//! lab and moto agree on the shapes the SDK parses. Where they differ, the lab follows
//! AWS: moto does not increment HealthCheckVersion and reports a fixed status.

// A scenario reads better whole: the 100-line limit is for production code.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, Instant};

use aws_sdk_rds::types::DbCluster;
use runbook_lab as lab;

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        // The product's own client (rustls on ring): the SDK's default one is not built.
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "lab", "lab", None, None, "test",
        ))
        .load()
        .await
}

async fn start_lab() -> (lab::RunningLab, tempfile::TempDir, aws_config::SdkConfig) {
    let dir = tempfile::tempdir().unwrap();
    let running = lab::start(lab::LabConfig::new(dir.path())).await.unwrap();
    let conf = sdk(&format!("http://{}", running.endpoints.aws)).await;
    (running, dir, conf)
}

fn writer(c: &DbCluster) -> String {
    c.db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn rds_describe_and_failover_with_the_sdk() {
    let (_lab, _dir, conf) = start_lab().await;
    let rds = aws_sdk_rds::Client::new(&conf);
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier("keycloak-aurora")
        .send()
        .await
        .unwrap();
    let c = &out.db_clusters()[0];
    assert_eq!(c.status(), Some("available"));
    assert_eq!(c.db_cluster_members().len(), 2);
    assert_eq!(writer(c), "keycloak-aurora-instance-1");
    let inst = rds.describe_db_instances().send().await.unwrap();
    let azs: Vec<&str> = inst
        .db_instances()
        .iter()
        .filter_map(|i| i.availability_zone())
        .collect();
    assert_eq!(azs, vec!["eu-west-1a", "eu-west-1b"]);

    let f = rds
        .failover_db_cluster()
        .db_cluster_identifier("keycloak-aurora")
        .target_db_instance_identifier("keycloak-aurora-instance-2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.db_cluster().and_then(|c| c.status()),
        Some("failing-over")
    );
    let again = rds
        .failover_db_cluster()
        .db_cluster_identifier("keycloak-aurora")
        .send()
        .await
        .unwrap_err();
    assert!(again
        .into_service_error()
        .is_invalid_db_cluster_state_fault());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = rds.describe_db_clusters().send().await.unwrap();
        let c = &out.db_clusters()[0];
        if c.status() == Some("available") {
            assert_eq!(writer(c), "keycloak-aurora-instance-2");
            break;
        }
        assert!(Instant::now() < deadline, "failover never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let missing = rds
        .describe_db_clusters()
        .db_cluster_identifier("nope")
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_db_cluster_not_found_fault());
    let bad = rds
        .failover_db_cluster()
        .db_cluster_identifier("keycloak-aurora")
        .target_db_instance_identifier("not-a-member")
        .send()
        .await
        .unwrap_err();
    assert!(bad
        .into_service_error()
        .is_invalid_db_instance_state_fault());
}

#[tokio::test]
async fn route53_health_check_version_lock_and_real_probes() {
    let (lab, _dir, conf) = start_lab().await;
    let r53 = aws_sdk_route53::Client::new(&conf);
    let hc = r53
        .get_health_check()
        .health_check_id("hc-site-a")
        .send()
        .await
        .unwrap();
    let h = hc.health_check().unwrap();
    assert_eq!(
        h.health_check_config().unwrap().resource_path(),
        Some("/lb-check")
    );
    assert_eq!(h.health_check_version(), 1);
    // wait for the checkers' first round: healthy
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = r53
            .get_health_check_status()
            .health_check_id("hc-site-a")
            .send()
            .await
            .unwrap();
        let obs = st.health_check_observations();
        if !obs.is_empty() {
            let s = obs[0].status_report().and_then(|r| r.status()).unwrap();
            assert!(s.starts_with("Success: HTTP Status Code 200"), "{s}");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let up = r53
        .update_health_check()
        .health_check_id("hc-site-a")
        .health_check_version(1)
        .resource_path("/health/down")
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.health_check().unwrap().health_check_version(),
        2,
        "AWS increments the version"
    );
    let stale = r53
        .update_health_check()
        .health_check_id("hc-site-a")
        .health_check_version(1)
        .resource_path("/lb-check")
        .send()
        .await
        .unwrap_err();
    assert!(stale
        .into_service_error()
        .is_health_check_version_mismatch());
    // the checkers now get 404 on /health/down: unhealthy, and the domain moves to site-b
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = r53
            .get_health_check_status()
            .health_check_id("hc-site-a")
            .send()
            .await
            .unwrap();
        let failing = st
            .health_check_observations()
            .iter()
            .filter_map(|o| o.status_report().and_then(|r| r.status()))
            .any(|s| s.starts_with("Failure: HTTP Status Code 404"));
        if failing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the checkers never probed the new path"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The client domain now resolves to the backup's load balancer, as the guide's
    // failover pair does (PRIMARY unhealthy, SECONDARY healthy).
    let dns = r53
        .test_dns_answer()
        .hosted_zone_id(lab::aws::ZONE_ID)
        .record_name("keycloak.lab")
        .record_type(aws_sdk_route53::types::RrType::A)
        .send()
        .await
        .unwrap();
    let backup = r53
        .test_dns_answer()
        .hosted_zone_id(lab::aws::ZONE_ID)
        .record_name("backup.keycloak.lab")
        .record_type(aws_sdk_route53::types::RrType::A)
        .send()
        .await
        .unwrap();
    assert_eq!(dns.response_code(), "NOERROR");
    assert_eq!(dns.record_data(), backup.record_data());
    assert_eq!(dns.record_data().len(), 1);
    assert_eq!(lab.shared.lock().world.serving_site(), "site-b");
    let missing = r53
        .get_health_check()
        .health_check_id("nope")
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_no_such_health_check());
}

#[tokio::test]
async fn the_lab_and_moto_agree_on_the_aws_calls_used() {
    let moto = lab::testing::Moto::start().await;
    let moto_conf = sdk(&moto.endpoint()).await;
    let (_lab, _dir, lab_conf) = start_lab().await;

    // moto starts empty: build the same deployment there
    let rds_m = aws_sdk_rds::Client::new(&moto_conf);
    rds_m
        .create_db_cluster()
        .db_cluster_identifier("keycloak-aurora")
        .engine("aurora-postgresql")
        .master_username("keycloak")
        .master_user_password("secret-password")
        .send()
        .await
        .unwrap();
    for (i, az) in [(1, "eu-west-1a"), (2, "eu-west-1b")] {
        rds_m
            .create_db_instance()
            .db_instance_identifier(format!("keycloak-aurora-instance-{i}"))
            .db_cluster_identifier("keycloak-aurora")
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.large")
            .availability_zone(az)
            .send()
            .await
            .unwrap();
    }
    let r53_m = aws_sdk_route53::Client::new(&moto_conf);
    let created = r53_m
        .create_health_check()
        .caller_reference("runbook-lab-site-a")
        .health_check_config(
            aws_sdk_route53::types::HealthCheckConfig::builder()
                .r#type(aws_sdk_route53::types::HealthCheckType::Http)
                .resource_path("/lb-check")
                .fully_qualified_domain_name("primary.keycloak.lab")
                .port(80)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let moto_hc = created.health_check().unwrap().id().to_string();

    for (name, conf, hc_id) in [
        ("lab", &lab_conf, "hc-site-a".to_string()),
        ("moto", &moto_conf, moto_hc.clone()),
    ] {
        let rds = aws_sdk_rds::Client::new(conf);
        let out = rds
            .describe_db_clusters()
            .db_cluster_identifier("keycloak-aurora")
            .send()
            .await
            .unwrap();
        let c = &out.db_clusters()[0];
        assert_eq!(c.db_cluster_identifier(), Some("keycloak-aurora"), "{name}");
        assert_eq!(c.status(), Some("available"), "{name}");
        assert_eq!(c.db_cluster_members().len(), 2, "{name}");
        assert!(
            c.db_cluster_members()
                .iter()
                .all(|m| m.is_cluster_writer().is_some() && m.db_instance_identifier().is_some()),
            "{name}"
        );
        assert_eq!(
            c.db_cluster_members()
                .iter()
                .filter(|m| m.is_cluster_writer() == Some(true))
                .count(),
            1,
            "{name}: one writer"
        );
        let inst = rds
            .describe_db_instances()
            .db_instance_identifier("keycloak-aurora-instance-2")
            .send()
            .await
            .unwrap();
        assert_eq!(
            inst.db_instances()[0].availability_zone(),
            Some("eu-west-1b"),
            "{name}"
        );
        assert_eq!(
            inst.db_instances()[0].db_cluster_identifier(),
            Some("keycloak-aurora"),
            "{name}"
        );
        let f = rds
            .failover_db_cluster()
            .db_cluster_identifier("keycloak-aurora")
            .target_db_instance_identifier("keycloak-aurora-instance-2")
            .send()
            .await
            .unwrap();
        assert!(
            f.db_cluster().is_some(),
            "{name}: failover answers with the cluster"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier("keycloak-aurora")
                .send()
                .await
                .unwrap();
            if writer(&out.db_clusters()[0]) == "keycloak-aurora-instance-2"
                && out.db_clusters()[0].status() == Some("available")
            {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: the writer never moved");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let missing = rds
            .describe_db_clusters()
            .db_cluster_identifier("nope")
            .send()
            .await
            .unwrap_err();
        assert!(
            missing.into_service_error().is_db_cluster_not_found_fault(),
            "{name}"
        );

        let r53 = aws_sdk_route53::Client::new(conf);
        let h = r53
            .get_health_check()
            .health_check_id(&hc_id)
            .send()
            .await
            .unwrap();
        let hc = h.health_check().unwrap();
        assert_eq!(
            hc.health_check_config().and_then(|c| c.resource_path()),
            Some("/lb-check"),
            "{name}"
        );
        let version = hc.health_check_version();
        let up = r53
            .update_health_check()
            .health_check_id(&hc_id)
            .health_check_version(version)
            .resource_path("/health/down")
            .send()
            .await
            .unwrap();
        assert_eq!(
            up.health_check()
                .and_then(|h| h.health_check_config())
                .and_then(|c| c.resource_path()),
            Some("/health/down"),
            "{name}"
        );
        let st = r53
            .get_health_check_status()
            .health_check_id(&hc_id)
            .send()
            .await
            .unwrap();
        for o in st.health_check_observations() {
            assert!(
                o.region().is_some() && o.status_report().and_then(|r| r.status()).is_some(),
                "{name}: {o:?}"
            );
        }
        let missing = r53
            .get_health_check()
            .health_check_id("00000000-0000-0000-0000-000000000000")
            .send()
            .await
            .unwrap_err();
        assert!(
            missing.into_service_error().is_no_such_health_check(),
            "{name}"
        );
    }
}

fn https_client() -> aws_sdk_rds::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
