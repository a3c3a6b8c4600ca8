//! Kubernetes object metadata the lab writes the way the API server does.

use std::time::Duration;

/// `creationTimestamp`: RFC 3339, whole seconds, UTC, from milliseconds since the
/// epoch.
pub fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
