use super::*;
use crate::action::ArgSpec;

const OUT: crate::testing::Stub = crate::testing::Stub {
    name: "t.out",
    args: &[ArgSpec::optional("x", ArgKind::Any, "")],
    outputs: &["v"],
    effect: crate::model::Effect::ReadOnly,
};

#[test]
fn a_step_knows_which_earlier_steps_its_templates_read() {
    let mut r = Registry::new();
    r.register(OUT);
    let src = "name: t\nsteps:\n  - id: a-b\n    action: t.out\n  - id: c\n    action: t.out\n  - id: d\n    action: t.out\n    with: { x: \"{{ steps.a_b.outputs.v }}\" }\n    when: \"not steps.c.skipped\"\n  - id: e\n    action: t.out\n    with: { x: \"{{ steps['a-b'].outputs.v }}\" }\n";
    let rb = load_str(src, "t.yaml", &r).unwrap();
    assert_eq!(rb.steps[0].step_refs, Some(vec![]));
    assert_eq!(
        rb.steps[2].step_refs,
        Some(vec!["a-b".to_string(), "c".to_string()]),
        "the ids of the steps, whatever name the template used"
    );
    assert_eq!(
        rb.steps[3].step_refs, None,
        "dynamic indexing sees every step"
    );
}
