//! `kubectl get`'s table view (`application/json;as=Table`).

#[allow(unused_imports)]
use super::*;

pub(super) fn wants_table(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// `5m`, `2h`: how old an object is, as kubectl shows it.
pub(super) fn age(o: &Value) -> Value {
    let created = o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    let Some(created) = created else {
        return json!("");
    };
    let secs = std::time::SystemTime::now()
        .duration_since(created)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!(match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    })
}

/// How a Table's cells are made from an object.
type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

/// A meta.k8s.io Table, as kubectl asks for it.
pub(super) fn table(items: &[Value]) -> Value {
    let kind = items.first().and_then(|i| i["kind"].as_str()).unwrap_or("");
    let (cols, cells): (Vec<&str>, Cells) = match kind {
        "Keycloak" => (
            vec!["Name", "Instances", "Ready", "Age"],
            Box::new(|o: &Value| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .map(|c| c["status"].clone())
                    .unwrap_or(json!(""));
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!(
                        "{}/{}",
                        o["status"]["instances"].as_u64().unwrap_or(0),
                        o["spec"]["instances"]
                    )),
                    ready,
                    age(o),
                ]
            }),
        ),
        "Batch" => (
            vec!["Name", "Phase", "Age"],
            Box::new(|o: &Value| {
                vec![
                    o["metadata"]["name"].clone(),
                    o["status"]["phase"].clone(),
                    age(o),
                ]
            }),
        ),
        _ => (
            vec!["Name", "Age"],
            Box::new(|o: &Value| vec![o["metadata"]["name"].clone(), age(o)]),
        ),
    };
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": cols.iter().map(|c| json!({"name": c, "type": "string", "format": if *c == "Name" { "name" } else { "" }, "description": c, "priority": 0})).collect::<Vec<_>>(),
        "rows": items.iter().map(|o| json!({"cells": cells(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})).collect::<Vec<_>>(),
    })
}
