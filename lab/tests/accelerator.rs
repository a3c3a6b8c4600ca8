//! The lab's Global Accelerator and ELBv2 through the real `aws` CLI (the guide's own
//! commands, `../shared/docs/keycloak-26.md` §1.5 A–B; installed from PyPI by the test
//! command) and through the Rust SDK crates. moto has no Global Accelerator backend,
//! so the answers are checked against botocore's models: the CLI itself parses them
//! with those models (an answer of the wrong shape fails its parsing).

// A scenario reads better whole: the 100-line limit is for production code.
#![allow(clippy::too_many_lines)]

use std::process::Command;
use std::time::{Duration, Instant};

use runbook_lab as lab;
use serde_json::Value as Json;

async fn start() -> (lab::RunningLab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab::LabConfig::new(dir.path());
    config.shape.traffic = lab::world::Traffic::Accelerator;
    config.shape.infinispan_version = 15;
    (lab::start(config).await.unwrap(), dir)
}

/// `aws ARGS --endpoint-url LAB --output json`, its JSON answer (or its stderr).
fn aws(lab: &lab::RunningLab, args: &[&str]) -> Result<Json, String> {
    let out = Command::new("aws")
        .args(args)
        .args([
            "--endpoint-url",
            &format!("http://{}", lab.endpoints.aws),
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "lab")
        .env("AWS_SECRET_ACCESS_KEY", "lab")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the aws CLI (bash scripts/test.sh installs it from PyPI)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(if text.trim().is_empty() {
        Json::Null
    } else {
        serde_json::from_str(&text).unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_cli_commands_take_a_site_offline_and_bring_it_back() {
    let (lab, _dir) = start().await;
    // Step 1: the NLB ARN of the site kept online, by its DNS name (the guide's --query).
    let dns = lab.endpoints.nlbs["site-a"].clone();
    let q = format!("LoadBalancers[?DNSName=='{dns}'].LoadBalancerArn");
    let arn_a = aws(
        &lab,
        &[
            "elbv2",
            "describe-load-balancers",
            "--region",
            "eu-west-1",
            "--query",
            &q,
        ],
    )
    .unwrap()[0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        arn_a.starts_with("arn:aws:elasticloadbalancing:eu-west-1:"),
        "{arn_a}"
    );
    let tags = aws(
        &lab,
        &[
            "elbv2",
            "describe-tags",
            "--region",
            "eu-west-1",
            "--resource-arns",
            &arn_a,
        ],
    )
    .unwrap();
    let site_tag: Vec<&Json> = tags["TagDescriptions"][0]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["Key"] == "site")
        .collect();
    assert_eq!(site_tag[0]["Value"], "site-a");
    // Step 2: the endpoint group (all in us-west-2).
    let accs = aws(
        &lab,
        &[
            "globalaccelerator",
            "list-accelerators",
            "--region",
            "us-west-2",
            "--query",
            "Accelerators[?Name=='keycloak'].AcceleratorArn",
        ],
    )
    .unwrap();
    let acc = accs[0].as_str().unwrap().to_string();
    let listener = aws(
        &lab,
        &[
            "globalaccelerator",
            "list-listeners",
            "--accelerator-arn",
            &acc,
            "--region",
            "us-west-2",
        ],
    )
    .unwrap()["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let groups = aws(
        &lab,
        &[
            "globalaccelerator",
            "list-endpoint-groups",
            "--listener-arn",
            &listener,
            "--region",
            "us-west-2",
        ],
    )
    .unwrap();
    let g = &groups["EndpointGroups"][0];
    // The guide's printed output: two endpoints of weight 128, HEALTHY, no client IP
    // preservation; TrafficDialPercentage 100.0, TCP 443, 30 s, threshold 3.
    assert_eq!(g["EndpointDescriptions"].as_array().unwrap().len(), 2);
    for e in g["EndpointDescriptions"].as_array().unwrap() {
        assert_eq!(e["Weight"], 128);
        assert_eq!(e["HealthState"], "HEALTHY");
        assert_eq!(e["ClientIPPreservationEnabled"], false);
    }
    assert_eq!(g["TrafficDialPercentage"], 100.0);
    assert_eq!(g["HealthCheckProtocol"], "TCP");
    let eg = g["EndpointGroupArn"].as_str().unwrap().to_string();
    assert!(
        eg.starts_with(&format!("{listener}/endpoint-group/")),
        "{eg}"
    );
    // Step 3: the update replaces the list: site-b is removed.
    let only_a = format!("[{{\"EndpointId\": \"{arn_a}\", \"Weight\": 128, \"ClientIPPreservationEnabled\": false}}]");
    aws(
        &lab,
        &[
            "globalaccelerator",
            "update-endpoint-group",
            "--endpoint-group-arn",
            &eg,
            "--region",
            "us-west-2",
            "--endpoint-configurations",
            &only_a,
        ],
    )
    .unwrap();
    let state = lab.shared.lock().snapshot(Instant::now());
    assert_eq!(
        state["accelerator"]["routed_sites"],
        serde_json::json!(["site-a"])
    );
    // Bring site online: both endpoints again; site-b starts INITIAL, then HEALTHY.
    let arn_b = lab
        .shared
        .lock()
        .world
        .accelerator
        .as_ref()
        .unwrap()
        .nlb_of_site("site-b")
        .unwrap()
        .arn
        .clone();
    let both = format!("[{{\"EndpointId\": \"{arn_a}\", \"Weight\": 128, \"ClientIPPreservationEnabled\": false}}, {{\"EndpointId\": \"{arn_b}\", \"Weight\": 128, \"ClientIPPreservationEnabled\": false}}]");
    let up = aws(
        &lab,
        &[
            "globalaccelerator",
            "update-endpoint-group",
            "--endpoint-group-arn",
            &eg,
            "--region",
            "us-west-2",
            "--endpoint-configurations",
            &both,
        ],
    )
    .unwrap();
    let b = up["EndpointGroup"]["EndpointDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["EndpointId"] == arn_b.as_str())
        .unwrap()
        .clone();
    assert_eq!(b["HealthState"], "INITIAL");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = aws(
            &lab,
            &[
                "globalaccelerator",
                "describe-endpoint-group",
                "--endpoint-group-arn",
                &eg,
                "--region",
                "us-west-2",
            ],
        )
        .unwrap();
        if d["EndpointGroup"]["EndpointDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["HealthState"] == "HEALTHY")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "site-b never turned HEALTHY: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_pagination_answer_as_the_model_says() {
    let (lab, _dir) = start().await;
    // A call signed for another region is refused: the API exists in us-west-2 only.
    let e = aws(
        &lab,
        &[
            "globalaccelerator",
            "list-accelerators",
            "--region",
            "eu-west-1",
        ],
    )
    .unwrap_err();
    assert!(e.contains("us-west-2"), "{e}");
    let e = aws(
        &lab,
        &[
            "globalaccelerator",
            "describe-endpoint-group",
            "--endpoint-group-arn",
            "arn:aws:globalaccelerator::000000000000:accelerator/x/listener/y/endpoint-group/z",
            "--region",
            "us-west-2",
        ],
    )
    .unwrap_err();
    assert!(e.contains("EndpointGroupNotFoundException"), "{e}");
    let e = aws(
        &lab,
        &[
            "globalaccelerator",
            "list-accelerators",
            "--region",
            "us-west-2",
            "--max-results",
            "0",
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("MaxResults") || e.contains("max-results") || e.contains("Invalid"),
        "{e}"
    );
    let e = aws(
        &lab,
        &[
            "elbv2",
            "describe-tags",
            "--region",
            "eu-west-1",
            "--resource-arns",
            "arn:aws:elasticloadbalancing:eu-west-1:000000000000:loadbalancer/net/nope/0",
        ],
    )
    .unwrap_err();
    assert!(e.contains("LoadBalancerNotFound"), "{e}");
    // The SDK pages through ELBv2 with Marker/NextMarker and through Global
    // Accelerator with NextToken.
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // The product's own client (rustls on ring): the SDK's default one is not built.
        .http_client(https_client())
        .endpoint_url(format!("http://{}", lab.endpoints.aws))
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "lab", "lab", None, None, "test",
        ))
        .load()
        .await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&conf);
    let p1 = elb
        .describe_load_balancers()
        .page_size(1)
        .send()
        .await
        .unwrap();
    assert_eq!(p1.load_balancers().len(), 1);
    let p2 = elb
        .describe_load_balancers()
        .page_size(1)
        .marker(p1.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(p2.load_balancers().len(), 1);
    assert!(p2.next_marker().is_none());
    assert_ne!(
        p1.load_balancers()[0].load_balancer_arn(),
        p2.load_balancers()[0].load_balancer_arn()
    );
    let ga = aws_sdk_globalaccelerator::Client::new(&conf);
    let accs = ga.list_accelerators().max_results(1).send().await.unwrap();
    assert_eq!(accs.accelerators()[0].name(), Some("keycloak"));
    assert!(accs.next_token().is_none());
    let bad = ga
        .list_accelerators()
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert!(format!(
        "{}",
        aws_sdk_globalaccelerator::error::DisplayErrorContext(&bad)
    )
    .contains("InvalidNextTokenException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_make_an_endpoint_unhealthy_a_writer_concurrent_and_the_group_busy() {
    let (lab, _dir) = start().await;
    let admin = format!("{}/admin/faults", lab.admin_url());
    let http = reqwest::Client::new();
    http.post(&admin)
        .body("nlb-unhealthy:site-b")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lab.shared.lock().snapshot(Instant::now());
        if s["accelerator"]["routed_sites"] == serde_json::json!(["site-a"]) {
            let b = s["accelerator"]["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["site"] == "site-b")
                .unwrap()
                .clone();
            assert_eq!(b["health"], "UNHEALTHY");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "site-b never turned UNHEALTHY: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another writer removes site-a right after the next read of the group.
    http.post(&admin)
        .body("accelerator-writer:site-a")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let eg = lab
        .shared
        .lock()
        .world
        .accelerator
        .as_ref()
        .unwrap()
        .group_arn
        .clone();
    let before = aws(
        &lab,
        &[
            "globalaccelerator",
            "describe-endpoint-group",
            "--endpoint-group-arn",
            &eg,
            "--region",
            "us-west-2",
        ],
    )
    .unwrap();
    assert_eq!(
        before["EndpointGroup"]["EndpointDescriptions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let after = aws(
        &lab,
        &[
            "globalaccelerator",
            "describe-endpoint-group",
            "--endpoint-group-arn",
            &eg,
            "--region",
            "us-west-2",
        ],
    )
    .unwrap();
    assert_eq!(
        after["EndpointGroup"]["EndpointDescriptions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{after}"
    );
    // Busy: the delta calls answer TransactionInProgressException.
    http.post(&admin)
        .body("accelerator-busy:1")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let arn_b = lab
        .shared
        .lock()
        .world
        .accelerator
        .as_ref()
        .unwrap()
        .nlb_of_site("site-b")
        .unwrap()
        .arn
        .clone();
    let e = aws(
        &lab,
        &[
            "globalaccelerator",
            "remove-endpoints",
            "--endpoint-group-arn",
            &eg,
            "--endpoint-identifiers",
            &format!("EndpointId={arn_b}"),
            "--region",
            "us-west-2",
        ],
    )
    .unwrap_err();
    assert!(e.contains("TransactionInProgressException"), "{e}");
    aws(
        &lab,
        &[
            "globalaccelerator",
            "remove-endpoints",
            "--endpoint-group-arn",
            &eg,
            "--endpoint-identifiers",
            &format!("EndpointId={arn_b}"),
            "--region",
            "us-west-2",
        ],
    )
    .unwrap();
    let s = lab.shared.lock().snapshot(Instant::now());
    assert_eq!(s["accelerator"]["endpoints"], serde_json::json!([]));
}

fn https_client() -> aws_sdk_rds::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
