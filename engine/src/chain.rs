//! The journal's hash chain: every event after a run's first is stored with `prev`,
//! the SHA-256 of the exact text its predecessor was stored as. Editing, removing or
//! reordering a stored event breaks the chain at the event after it; the run index
//! line carries the hash of the newest event written with it (`head`), which covers
//! the end of a run. `runbook journal verify` walks it; both stores keep event texts
//! byte for byte (sled's values, PostgreSQL's `text` column), so the chain is checked
//! on what is stored, not on a re-serialization.
//!
//! What it does not do: someone who can write the journal can rewrite a whole run and
//! its chain consistently. `runbook journal export` gives each event's hash, so a copy
//! kept elsewhere (a SIEM) tells a rewrite after the export.

use serde::Serialize;

use crate::digest::sha256_hex;
use crate::event::Event;

/// The text `event` is stored as, carrying `prev` (none for a run's first event).
///
/// # Errors
/// An event that cannot be serialized.
pub fn text(event: &Event, prev: Option<&str>) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(event)?;
    if let (Some(prev), Some(map)) = (prev, value.as_object_mut()) {
        map.insert("prev".into(), serde_json::Value::String(prev.to_string()));
    }
    serde_json::to_string(&value)
}

/// The hash of a stored text.
pub fn hash(text: &str) -> String {
    sha256_hex(text)
}

/// The stored texts of a whole run, chained (importing history).
///
/// # Errors
/// An event that cannot be serialized.
pub fn texts(events: &[Event]) -> Result<Vec<String>, serde_json::Error> {
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let prev = out.last().map(|t| hash(t));
        out.push(text(e, prev.as_deref())?);
    }
    Ok(out)
}

/// The `prev` a stored text carries, if any.
fn prev_of(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("prev")?.as_str().map(str::to_string)
}

/// A run written before the chain existed (no event after its first carries `prev`),
/// chained now: its texts with `prev` added, or `None` when it is chained already or
/// only partly (which is for `verify` to report, not to paper over).
pub fn upgrade(raw: &[(u64, String)]) -> Option<Vec<(u64, String)>> {
    if raw.len() < 2 || raw.iter().skip(1).any(|(_, t)| prev_of(t).is_some()) {
        return None;
    }
    let mut out: Vec<(u64, String)> = Vec::with_capacity(raw.len());
    for (seq, t) in raw {
        let Some((_, before)) = out.last() else {
            out.push((*seq, t.clone()));
            continue;
        };
        let mut value: serde_json::Value = serde_json::from_str(t).ok()?;
        value
            .as_object_mut()?
            .insert("prev".into(), serde_json::Value::String(hash(before)));
        out.push((*seq, serde_json::to_string(&value).ok()?));
    }
    Some(out)
}

/// `seq:hash` of the newest event, as the run index line carries it.
pub fn head(seq: u64, text: &str) -> String {
    format!("{seq}:{}", hash(text))
}

/// One break in a run's chain, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The sequence number where the break shows.
    pub seq: u64,
    pub what: String,
}

/// Walk one run's stored events (in key order, with their sequence numbers) against
/// the chain and the `head` its index line carries: every break, in order.
pub fn verify(raw: &[(u64, String)], head: Option<&str>) -> Vec<Break> {
    let mut out = Vec::new();
    let mut at = |seq: u64, what: String| out.push(Break { seq, what });
    for (i, (seq, t)) in raw.iter().enumerate() {
        let want = i as u64;
        if *seq != want && (i == 0 || raw[i - 1].0 + 1 != *seq) {
            at(
                want,
                format!("events {want} to {} are missing (removed)", seq - 1),
            );
        }
        if serde_json::from_str::<Event>(t).is_err() {
            at(*seq, "is not a readable event".into());
        }
        if i == 0 {
            continue;
        }
        let (before_seq, before) = &raw[i - 1];
        match prev_of(t) {
            None => at(
                *seq,
                "carries no hash of the event before it (the chain was cut here)".into(),
            ),
            Some(p) if p != hash(before) => at(
                *seq,
                format!(
                    "does not follow event {before_seq}: event {before_seq} was edited, or events were removed or reordered here"
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some((seq, want)) = head.and_then(|h| h.split_once(':')) {
        let seq: u64 = seq.parse().unwrap_or(u64::MAX);
        match raw.iter().find(|(s, _)| *s == seq) {
            None => at(
                seq,
                format!(
                    "the run index vouches for event {seq}, which is not in the journal (removed)"
                ),
            ),
            Some((_, t)) if hash(t) != want => at(
                seq,
                format!("is not the event the run index vouches for (event {seq} was edited)"),
            ),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Vec<(u64, String)> {
        let events = vec![
            Event::Completed { at: 1 },
            Event::Completed { at: 2 },
            Event::Completed { at: 3 },
            Event::Completed { at: 4 },
        ];
        texts(&events)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i as u64, t))
            .collect()
    }

    #[test]
    fn an_intact_run_has_no_break_and_each_edit_shows_where_it_was_made() {
        let raw = run();
        assert!(verify(&raw, None).is_empty());
        let mut edited = raw.clone();
        edited[1].1 = edited[1].1.replace("\"at\":2", "\"at\":9");
        assert_eq!(
            verify(&edited, None)[0].seq,
            2,
            "{:?}",
            verify(&edited, None)
        );
        let mut removed = raw.clone();
        removed.remove(2);
        let b = verify(&removed, None);
        assert!(b[0].what.contains("missing"), "{b:?}");
        let mut swapped = raw.clone();
        let (a, c) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = c;
        swapped[2].1 = a;
        assert!(!verify(&swapped, None).is_empty());
        // The last event is covered by the index line's head.
        let h = head(3, &raw[3].1);
        assert!(verify(&raw, Some(&h)).is_empty());
        let mut last = raw.clone();
        last[3].1 = last[3].1.replace("\"at\":4", "\"at\":5");
        assert_eq!(verify(&last, Some(&h))[0].seq, 3);
    }

    #[test]
    fn an_unchained_run_is_upgraded_and_a_partly_chained_one_is_not() {
        let plain: Vec<(u64, String)> = (0..3)
            .map(|i| (i, text(&Event::Completed { at: i }, None).unwrap()))
            .collect();
        assert_eq!(verify(&plain, None).len(), 2);
        let up = upgrade(&plain).unwrap();
        assert!(verify(&up, None).is_empty());
        assert!(upgrade(&up).is_none());
        let mut cut = up.clone();
        cut[2] = plain[2].clone();
        assert!(upgrade(&cut).is_none());
        assert_eq!(verify(&cut, None).len(), 1);
    }
}
