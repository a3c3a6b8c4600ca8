//! Named crash points for the crash tests, from the `fail` crate. Compiled in only with
//! the `failpoints` feature; configured by the `FAILPOINTS` environment variable, e.g.
//! `FAILPOINTS='after-apply=return(create)'` kills the process with SIGKILL right after
//! step `create` applied its effect (`return` without an argument: at the first step
//! that passes; `step:item` for one item of a fan-out).
//!
//! The points: `before-apply` (intent journaled, effect not done), `after-apply` (effect
//! done, not journaled), `after-journal` (success journaled).

/// Hit a failpoint for `label` (`step` or `step:item`).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str, step: &str, item: Option<&str>) {
    if let Some(arg) = fail::eval(name, |arg| arg) {
        let matches = match arg.as_deref() {
            None | Some("") | Some("*") => true,
            Some(target) => target == step || item.is_some_and(|i| target == format!("{step}:{i}")),
        };
        if matches {
            kill_self();
        }
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str, _step: &str, _item: Option<&str>) {}

#[cfg(feature = "failpoints")]
#[allow(unsafe_code)]
fn kill_self() -> ! {
    eprintln!("failpoint: SIGKILL");
    // SAFETY: kill(2) on our own pid with SIGKILL has no memory effects; the process ends.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Read `FAILPOINTS`; keep the returned guard alive for the process's life.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}
