//! The sled store's key layout. Every key starts with a one-byte kind; numbers
//! are fixed-width big-endian so that sled's byte order is numeric order.
//!
//! | kind | layout                          | value                          |
//! |------|---------------------------------|--------------------------------|
//! | `R`  | `R` run-id(u64 BE)              | run summary (JSON), the index  |
//! | `E`  | `E` run-id(u64 BE) seq(u64 BE)  | one event (JSON)               |
//! | `L`  | `L` site name (UTF-8)           | lock record (JSON)             |
//! | `M`  | `M` name (UTF-8)                | journal metadata (e.g. schema) |
//!
//! A retired kind byte is never reused.

use crate::id::RunId;

pub const RUN: u8 = b'R';
pub const EVENT: u8 = b'E';
pub const LOCK: u8 = b'L';
pub const META: u8 = b'M';

/// Bytes that are not a key of a known kind and length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadKey(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Run(RunId),
    Event(RunId, u64),
    Lock(String),
    Meta(String),
}

impl Key {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Key::Run(id) => {
                let mut k = vec![RUN];
                k.extend_from_slice(&id.0.to_be_bytes());
                k
            }
            Key::Event(id, seq) => {
                let mut k = vec![EVENT];
                k.extend_from_slice(&id.0.to_be_bytes());
                k.extend_from_slice(&seq.to_be_bytes());
                k
            }
            Key::Lock(site) => {
                let mut k = vec![LOCK];
                k.extend_from_slice(site.as_bytes());
                k
            }
            Key::Meta(name) => {
                let mut k = vec![META];
                k.extend_from_slice(name.as_bytes());
                k
            }
        }
    }

    /// # Errors
    /// When the bytes are not a key of a known kind and length.
    pub fn decode(bytes: &[u8]) -> Result<Key, BadKey> {
        Key::decode_text(bytes).map_err(BadKey)
    }

    fn decode_text(bytes: &[u8]) -> Result<Key, String> {
        let (&kind, rest) = bytes.split_first().ok_or("empty key")?;
        let u64_at = |b: &[u8]| -> Result<u64, String> {
            b.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| format!("bad key length {}", bytes.len()))
        };
        let text =
            |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "key is not UTF-8".to_string());
        match kind {
            RUN if rest.len() == 8 => Ok(Key::Run(RunId(u64_at(rest)?))),
            EVENT if rest.len() == 16 => {
                Ok(Key::Event(RunId(u64_at(&rest[..8])?), u64_at(&rest[8..])?))
            }
            LOCK => Ok(Key::Lock(text(rest)?)),
            META => Ok(Key::Meta(text(rest)?)),
            other => Err(format!(
                "unknown key kind {other:#04x} (length {})",
                bytes.len()
            )),
        }
    }

    /// The prefix of all events of one run.
    pub fn events_of(id: RunId) -> Vec<u8> {
        let mut k = vec![EVENT];
        k.extend_from_slice(&id.0.to_be_bytes());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_kind_round_trips() {
        let keys = [
            Key::Run(RunId(0)),
            Key::Run(RunId(u64::MAX)),
            Key::Event(RunId(7), 0),
            Key::Event(RunId(7), u64::MAX),
            Key::Lock("site-a".into()),
            Key::Lock(String::new()),
            Key::Meta("schema".into()),
        ];
        for k in keys {
            assert_eq!(Key::decode(&k.encode()).unwrap(), k);
        }
    }

    #[test]
    fn event_keys_sort_numerically() {
        let a = Key::Event(RunId(1), 255).encode();
        let b = Key::Event(RunId(1), 256).encode();
        let c = Key::Event(RunId(2), 0).encode();
        assert!(a < b && b < c);
        assert!(a.starts_with(&Key::events_of(RunId(1))));
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(Key::decode(b"").is_err());
        assert!(Key::decode(b"Rshort").is_err());
        assert!(Key::decode(b"Zzzzzzzzz").is_err());
    }
}
