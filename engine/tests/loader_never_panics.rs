//! No input makes the loader panic: arbitrary text, and mutations of a valid runbook
//! (the inputs most likely to reach deep into validation). Bounded by the case count
//! (`PROPTEST_CASES` to run more).

use engine::action::{ArgKind, ArgSpec, Registry};
use engine::load::load_str;
use engine::testing::Stub;
use engine::Effect;
use proptest::prelude::*;
use runbook_engine as engine;

const PROBE: Stub = Stub {
    name: "t.probe",
    args: &[
        ArgSpec::required("url", ArgKind::String, "u"),
        ArgSpec::optional("n", ArgKind::Int, "n"),
        ArgSpec::optional("d", ArgKind::Duration, "d"),
    ],
    outputs: &["value"],
    effect: Effect::Destructive,
};

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(PROBE);
    r
}

const VALID: &str = r#"name: sample
title: Sample
params:
  site: { type: string, default: site-a, allowed: [site-a, site-b] }
  caches: { type: list, default: [a, b] }
  n: { type: int, default: 3 }
steps:
  - id: first
    action: t.probe
    site: "{{ params.site }}"
    with: { url: "http://{{ site.name }}/x", n: 2, d: 5s }
    require:
      - expect: observation == none
        message: m
    retry: { policy: exponential, max_attempts: 3, initial: 1s }
    timeout: 30s
  - id: second
    action: t.probe
    when: "steps.first.outputs.value == 1"
    for_each: { items: "{{ params.caches }}", concurrency: 2 }
    with: { url: "{{ item }}-{{ steps.first.outputs.value }}" }
    verify:
      - probe: t.probe
        with: { url: x }
        expect: "observation != 1"
"#;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1500);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Issue 14: `a}}` inserted into a condition made minijinja 2.x panic ("empty lexer
/// stack") inside `compile_expression`; 3.x answers a syntax error, and the template
/// boundary turns any panic into an error anyway. The input is fuzz/regressions'.
#[test]
fn stray_closing_braces_in_an_expression_were_a_lexer_panic() {
    let text = include_str!("../../fuzz/regressions/minijinja-empty-lexer-stack.yaml");
    let e = load_str(text, "p.yaml", &registry())
        .unwrap_err()
        .to_string();
    assert!(
        e.lines().any(|l| l
            == "p.yaml:7:17: expression error: syntax error: unexpected input after expression (step `a`)"),
        "{e}"
    );
}

/// Issue 15: 100,000 nested brackets took serde_yaml 24 s to reject (quadratic in the
/// depth); the loader now rejects nesting beyond 64 levels, with its position, before
/// serde_yaml reads the text.
#[test]
fn deep_nesting_is_rejected_with_its_position() {
    let text = include_str!("../../fuzz/regressions/quadratic-nesting.yaml");
    let e = load_str(text, "deep.yaml", &registry())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("deep.yaml:5:") && e.contains("nested deeper than 64 levels"),
        "{e}"
    );
}

/// Every input a fuzzer found to crash, kept in fuzz/regressions: each loads to a
/// result (any result) without a panic.
#[test]
fn every_fuzz_regression_loads_without_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let _ = load_str(&text, &path.display().to_string(), &registry());
        n += 1;
    }
    assert!(
        n >= 1,
        "fuzz/regressions holds the inputs that once crashed"
    );
}

#[test]
fn the_sample_is_valid() {
    load_str(VALID, "sample.yaml", &registry()).unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text(text in "\\PC{0,400}") {
        let _ = load_str(&text, "fuzz.yaml", &registry());
    }

    #[test]
    fn yaml_like_text(text in "[a-z_{}:\\[\\]\"'\\-#&*!|>%@ \n\t0-9.]{0,300}") {
        let _ = load_str(&text, "fuzz.yaml", &registry());
    }

    #[test]
    fn mutated_valid_runbook(cuts in proptest::collection::vec((0usize..VALID.len(), 0usize..8, "[ -~\n]{0,6}"), 1..6)) {
        let mut text = VALID.as_bytes().to_vec();
        for (at, del, ins) in cuts {
            let at = at.min(text.len());
            let end = (at + del).min(text.len());
            text.splice(at..end, ins.bytes());
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if let Err(e) = load_str(&text, "fuzz.yaml", &registry()) {
            for p in &e.problems {
                prop_assert!(p.line >= 1 && p.column >= 1, "positions are 1-based: {e}");
            }
        }
    }
}
