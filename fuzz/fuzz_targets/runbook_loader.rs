//! The runbook loader: any text gives a runbook or problems with 1-based positions,
//! never a panic (issue 14: minijinja 2.x panicked on `a}}x` in an expression).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static REGISTRY: engine::action::Registry = common::registry();
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    REGISTRY.with(|r| {
        if let Err(e) = engine::load::load_str(&text, "fuzz.yaml", r) {
            for p in &e.problems {
                assert!(p.line >= 1 && p.column >= 1, "positions are 1-based: {e}");
            }
            let _ = e.to_string();
        }
    });
});
