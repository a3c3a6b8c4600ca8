//! Journal entries from bytes: keys decode or fail, event values parse or fail (the
//! journal reports a damaged entry), and any sequence of events that parses folds
//! into a run state without a panic (the fold must survive a damaged or reordered
//! journal).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The Keycloak 24 pack's reading of the journal, as the CLI compiles it.
#[path = "../../src/packs/keycloak_24/history.rs"]
#[allow(dead_code)]
mod history;

fuzz_target!(|data: &[u8]| {
    let _ = engine::store::keys::Key::decode(data);
    let _ = serde_json::from_slice::<engine::journal::RunSummary>(data);
    let _ = serde_json::from_slice::<engine::lock::LockRecord>(data);
    let mut events = Vec::new();
    for chunk in data.split(|b| *b == b'\n') {
        if let Ok(e) = serde_json::from_slice::<engine::event::Event>(chunk) {
            events.push(e);
        }
    }
    let state = engine::state::RunState::fold("r-1", &events);
    let _ = engine::resume::check_resumable(&state);
    let _ = history::facts(std::iter::once(&state));
    let _ = serde_json::to_string(&state);
});
