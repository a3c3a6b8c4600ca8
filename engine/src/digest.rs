//! Content digests: a runbook's pinned text and an environment file are identified by
//! the SHA-256 of their text.

use sha2::{Digest, Sha256};

/// The SHA-256 of `text`, as lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
