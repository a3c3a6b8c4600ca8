//! A registry with the built-in actions' names and arguments, as stubs: the loader
//! validates against it exactly as against the real one, without building the AWS,
//! Kubernetes and HTTP clients into the fuzzer.

#![allow(dead_code)]

use engine::action::{ArgKind, ArgSpec, Registry};
pub use engine::testing::Stub;
use engine::Effect;

const fn o(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec::optional(name, kind, "")
}
const fn r(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec::required(name, kind, "")
}

const BACKUP_ARGS: &[ArgSpec] = &[
    r("backup", ArgKind::String),
    o("cache", ArgKind::String),
    o("caches", ArgKind::List),
    o("poll", ArgKind::Duration),
];

use ArgKind::{Any, Duration, Int, List};
use Effect::*;

const STRING: ArgKind = ArgKind::String;

const STUBS: [Stub; 16] = [
    Stub {
        name: "wait",
        args: &[r("duration", Duration)],
        outputs: &[],
        effect: ReadOnly,
    },
    Stub {
        name: "manual.confirm",
        args: &[r("instructions", STRING)],
        outputs: &[],
        effect: ReadOnly,
    },
    Stub {
        name: "http.request",
        args: &[
            o("method", STRING),
            r("url", STRING),
            o("body", Any),
            o("expect_status", Any),
            o("probe_url", STRING),
        ],
        outputs: &["status", "body"],
        effect: Destructive,
    },
    Stub {
        name: "http.expect",
        args: &[o("url", STRING), o("status", Int), o("poll", Duration)],
        outputs: &["status"],
        effect: ReadOnly,
    },
    Stub {
        name: "infinispan.site-status",
        args: &[r("backup", STRING), o("cache", STRING), o("caches", List)],
        outputs: &["status", "caches", "nodes"],
        effect: ReadOnly,
    },
    Stub {
        name: "infinispan.take-offline",
        args: BACKUP_ARGS,
        outputs: &["results", "pending"],
        effect: Idempotent,
    },
    Stub {
        name: "infinispan.bring-online",
        args: BACKUP_ARGS,
        outputs: &["results"],
        effect: Idempotent,
    },
    Stub {
        name: "infinispan.clear-caches",
        args: &[o("cache", STRING), o("caches", List)],
        outputs: &[],
        effect: Destructive,
    },
    Stub {
        name: "infinispan.push-state",
        args: &[
            r("backup", STRING),
            o("cache", STRING),
            o("caches", List),
            o("max_repush", Int),
            o("poll", Duration),
        ],
        outputs: &["repushed", "push"],
        effect: Idempotent,
    },
    Stub {
        name: "infinispan.clear-push-state-status",
        args: &[o("backup", STRING), o("cache", STRING), o("caches", List)],
        outputs: &[],
        effect: Idempotent,
    },
    Stub {
        name: "infinispan.sync-state",
        args: &[r("other", STRING), r("caches", List), o("max_keys", Int)],
        outputs: &[
            "in_sync", "forward", "backward", "sizes", "keys", "reason", "summary",
        ],
        effect: ReadOnly,
    },
    Stub {
        name: "infinispan.cross-site-view",
        args: &[],
        outputs: &["formed", "summary", "conditions"],
        effect: ReadOnly,
    },
    Stub {
        name: "keycloak.scale",
        args: &[r("instances", Any), o("poll", Duration)],
        outputs: &["previous_instances"],
        effect: Idempotent,
    },
    Stub {
        name: "aurora.failover",
        args: &[
            o("instance", STRING),
            o("cluster", STRING),
            o("poll", Duration),
        ],
        outputs: &["previous_writer", "changed"],
        effect: Idempotent,
    },
    Stub {
        name: "route53.set-health-check-path",
        args: &[
            r("path", STRING),
            o("health_check_id", STRING),
            o("wait_for", STRING),
            o("poll", Duration),
        ],
        outputs: &["previous_path", "version"],
        effect: Idempotent,
    },
    Stub {
        name: "route53.serving-site",
        args: &[],
        outputs: &["serving", "domain", "how", "records", "dns", "summary"],
        effect: ReadOnly,
    },
];

pub fn registry() -> Registry {
    let mut reg = Registry::new();
    for s in STUBS {
        reg.register(s);
    }
    reg
}

/// A runbook with every parameter type, `allowed`, `differs_from`, guards and the
/// override: what `-p` values are resolved against.
pub const PARAMS_RUNBOOK: &str = r#"name: params
params:
  primary: { type: string, default: site-a, allowed: [site-a, site-b] }
  secondary: { type: string, default: site-b }
  caches: { type: list, default: [sessions, work] }
  n: { type: int, default: 3 }
  on: { type: bool, default: true }
  pause: { type: duration, default: 5s }
  down: { type: string, default: /health/down }
  restore: { type: string, default: /lb-check, differs_from: down }
  token: { type: string, secret: true }
  force: { type: bool, default: false }
  force_reason: { type: string, default: "" }
guards:
  - id: g
    expect: "params.secondary not in history.stale"
steps:
  - id: w
    action: wait
    with: { duration: "{{ params.pause }}" }
"#;
