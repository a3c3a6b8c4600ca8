//! Parameter values (`-p name=value`, one per line of the input) against a runbook
//! with every parameter type: resolved, or a clear error, never a panic.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNBOOK: engine::model::Runbook =
        engine::load::load_str(common::PARAMS_RUNBOOK, "params.yaml", &common::registry())
            .expect("the params runbook is valid");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut given = Vec::new();
    for line in text.lines() {
        match engine::params::split_assignment(line) {
            Ok(pair) => given.push(pair),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    RUNBOOK.with(|rb| {
        let secret = given
            .iter()
            .find(|(k, _)| k == "env")
            .map(|(_, v)| v.clone());
        match engine::params::resolve(rb, &given, |_| secret.clone()) {
            Ok((values, secrets)) => {
                for s in &secrets {
                    assert!(!s.is_empty() || values.contains_key("token"));
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    });
});
