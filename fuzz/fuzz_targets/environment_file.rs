//! The environment file: any text gives an environment or a positioned error. (The
//! engine's own reading; the step library's typed schema is serde derive over the same
//! serde_yaml parser, and linking it would bring the AWS SDK into the fuzz build.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match engine::env::Environment::parse(&text, std::path::Path::new("env.yaml"), &engine::env::Untyped) {
        Ok(env) => {
            let _ = env.time_scale();
            let _ = env.scaled_timeout(std::time::Duration::from_secs(300));
            let _ = env.scaled_pause(std::time::Duration::from_secs(30));
            let _ = env.sites_json();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
