//! docs/permissions.md names every AWS operation and every Kubernetes resource and
//! verb the step library calls: read from the source, so a new call without its
//! permission fails here.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::walk;

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("steps/src");
    walk(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// `describe_db_clusters` → `describedbclusters`, as IAM's `DescribeDBClusters` reads
/// case-folded.
fn folded(op: &str) -> String {
    op.replace('_', "").to_lowercase()
}

/// The AWS operations called: the first `.operation()` of each statement that ends
/// in `.send()`, in the files that use an AWS SDK client.
fn aws_operations() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (file, text) in sources() {
        let service = if text.contains("aws_sdk_globalaccelerator::Client") {
            Some("globalaccelerator")
        } else if text.contains("aws_sdk_rds::Client::new") {
            Some("rds")
        } else if text.contains("aws_sdk_route53::Client") {
            Some("route53")
        } else {
            None
        };
        let Some(default_service) = service else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".send()") {
            let before = &rest[..i];
            let start = before.rfind([';', '{']).map_or(0, |s| s + 1);
            let statement = &before[start..];
            // The first method called with no arguments: the operation.
            let mut first = None;
            let mut s = statement;
            while let Some(j) = s.find("()") {
                let head = &s[..j];
                let name: String = head
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if head[..head.len() - name.len()].ends_with('.') && name.contains('_') {
                    first = Some(name);
                    break;
                }
                s = &s[j + 2..];
            }
            if let Some(op) = first {
                let svc = if statement.contains("elb") {
                    "elasticloadbalancing"
                } else if statement.contains("rds") {
                    "rds"
                } else if statement.contains("r53") || statement.contains("route53") {
                    "route53"
                } else {
                    default_service
                };
                ops.insert((svc.to_string(), format!("{op} ({file})")));
            }
            rest = &rest[i + 7..];
        }
        // Paginated calls go through a macro: `all_pages!(ga.list_x()…`.
        let mut rest = text.as_str();
        while let Some(i) = rest.find("all_pages!(") {
            rest = &rest[i + 11..];
            let call = rest.split("()").next().unwrap_or_default();
            if let Some((client, op)) = call.trim().rsplit_once('.') {
                let svc = if client.contains("elb") {
                    "elasticloadbalancing"
                } else {
                    default_service
                };
                ops.insert((svc.to_string(), format!("{op} ({file})")));
            }
        }
    }
    ops
}

#[test]
fn every_aws_operation_the_steps_call_is_in_the_policy() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/permissions.md"))
        .unwrap()
        .to_lowercase();
    let ops = aws_operations();
    // The eight the Keycloak 24 procedures use and the Global Accelerator and ELBv2
    // ones are found (the scan works).
    assert!(ops.len() >= 8, "{ops:?}");
    for op in [
        "list_accelerators",
        "list_endpoint_groups",
        "remove_endpoints",
        "add_endpoints",
        "describe_tags",
    ] {
        assert!(
            ops.iter().any(|(_, o)| o.starts_with(op)),
            "{op} found: {ops:?}"
        );
    }
    for (svc, op) in &ops {
        let name = op.split_whitespace().next().unwrap();
        let action = format!("\"{svc}:{}\"", folded(name));
        assert!(
            doc.replace(['\n', ' '], "").contains(&action),
            "{svc}:{name} (called in {op}) is not in docs/permissions.md's policy"
        );
    }
}

#[test]
fn every_kubernetes_resource_and_verb_the_steps_use_is_in_the_role() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/permissions.md"))
        .unwrap();
    let role = doc
        .split("kind: Role")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("a Role manifest");
    let rule_for = |resource: &str| -> String {
        role.split("- apiGroups:")
            .filter(|r| r.contains(&format!("\"{resource}\"")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (file, text) in sources() {
        // Which resources this file reaches, and how.
        let mut resources = Vec::new();
        for (marker, resource) in [
            ("\"keycloaks\"", "keycloaks"),
            ("\"infinispans\"", "infinispans"),
            ("Api<StatefulSet>", "statefulsets"),
            ("Api<Pod>", "pods"),
            ("v1::Secret", "secrets"),
            ("\"postgresclusters\"", "postgresclusters"),
            ("Api<Job>", "jobs"),
        ] {
            if text.contains(marker) {
                resources.push(resource);
            }
        }
        if text.contains("fn resource()") && text.contains("\"Batch\"") {
            resources.push("batches");
        }
        for resource in &resources {
            assert!(
                !rule_for(resource).is_empty(),
                "{file} uses {resource}, which the Role does not name"
            );
        }
        // Every verb a file calls is granted on one of the resources it reaches.
        for (call, verb) in [
            (".patch(", "patch"),
            (".list(", "list"),
            (".create(", "create"),
            (".delete(", "delete"),
        ] {
            if resources.is_empty() || !text.contains(call) {
                continue;
            }
            let granted = resources
                .iter()
                .any(|r| rule_for(r).contains(&format!("\"{verb}\"")));
            assert!(
                granted,
                "{file} calls `{verb}` on {resources:?}, which the Role does not grant"
            );
        }
        if !resources.is_empty() {
            assert!(
                resources.iter().any(|r| rule_for(r).contains("\"get\"")),
                "{file} reads {resources:?}: `get`"
            );
        }
        if text.contains(".logs(") {
            assert!(
                rule_for("pods/log").contains("\"get\""),
                "{file} reads pod logs: pods/log get"
            );
        }
    }
}
