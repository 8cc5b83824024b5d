//! The interpreter refuses what it does not implement with an error that names it
//! ([`EvalError::unsupported`]), and reports every other failure as a plain error. The ONNX
//! conformance runner (`examples/onnx_node_tests.rs`) counts the first kind as skipped, the
//! second as failed.

use qdqc_eval::{EvalError, RunOptions, Value};

fn run(text: &str, x: Value) -> Result<Vec<(String, Value)>, EvalError> {
    let g = qdqc_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    qdqc_eval::run(&g, &[("x".into(), x)], &RunOptions::default()).map(|r| r.outputs)
}

fn x4() -> Value {
    Value::f32(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap()
}

#[test]
fn training_dropout_is_an_unsupported_feature() {
    let err = run(
        r#"graph "g" opset(ai.onnx=17) {
             input %x: f32[1,1,2,2]
             const %r: f32[] 0.5
             const %t: bool[] true
             %y, %m = Dropout(%x, %r, %t)
             output %y
           }"#,
        x4(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::UnsupportedFeature { .. }), "{err:?}");
    assert_eq!(err.unsupported().as_deref(), Some("Dropout: training_mode=1 with ratio > 0 (random output)"));
    assert!(err.to_string().contains("does not support training_mode=1"), "{err}");
}

#[test]
fn inference_dropout_runs() {
    let out = run(
        r#"graph "g" opset(ai.onnx=17) {
             input %x: f32[1,1,2,2]
             const %r: f32[] 0.5
             const %t: bool[] false
             %y, %m = Dropout(%x, %r, %t)
             output %y
           }"#,
        x4(),
    )
    .unwrap();
    assert_eq!(out[0].1, x4());
}

#[test]
fn float8_is_an_unsupported_element_type() {
    let err = run(
        r#"graph "g" opset(ai.onnx=19) {
             input %x: f32[1,1,2,2]
             %y = Cast[to=17](%x)
             output %y
           }"#,
        x4(),
    )
    .unwrap_err();
    assert_eq!(err.unsupported().as_deref(), Some("Cast: f8e4m3fn tensors"), "{err:?}");
}

#[test]
fn a_missing_kernel_is_unsupported_and_names_the_op() {
    let err = run(
        r#"graph "g" opset(ai.onnx=17) {
             input %x: f32[1,1,2,2]
             %y = Hardmax(%x)
             output %y
           }"#,
        x4(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Unsupported { .. }), "{err:?}");
    assert_eq!(err.unsupported().as_deref(), Some("op Hardmax"));
}

#[test]
fn invalid_models_are_errors_not_unsupported() {
    let err = run(
        r#"graph "g" opset(ai.onnx=19) {
             input %x: f32[1,1,2,2]
             const %s: f32[4] [1, 1, 2, 2]
             %y = Resize[mode="bogus"](%x, _, %s)
             output %y
           }"#,
        x4(),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Kernel { .. }), "{err:?}");
    assert_eq!(err.unsupported(), None);
    assert!(err.to_string().contains("unknown mode 'bogus'"), "{err}");
}
