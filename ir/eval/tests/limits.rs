//! Models that claim huge tensors or overflowing geometry fail with an error naming the node,
//! before anything is allocated (no panic, no out-of-memory abort).

use qdqc_eval::{run, RunOptions, Value};

/// Runs a one-input graph (input `%x: f32[1,1,4,4]` when it has one) and returns the error: the
/// model's type inference refuses some of these graphs already, the interpreter the rest.
fn run_err(text: &str, opts: &RunOptions) -> String {
    let g = match qdqc_ir::text::parse(text) {
        Ok(g) => g,
        Err(e) => return e.to_string(),
    };
    let inputs: Vec<(String, Value)> = if text.contains("input %x") {
        vec![("x".into(), Value::f32(&[1, 1, 4, 4], vec![1.0; 16]).unwrap())]
    } else {
        vec![]
    };
    match run(&g, &inputs, opts) {
        Ok(r) => panic!("ran: {:?}\n{text}", r.outputs.iter().map(|(n, v)| (n, v.shape())).collect::<Vec<_>>()),
        Err(e) => e.to_string(),
    }
}

fn graph(body: &str) -> String {
    format!("graph \"g\" opset(ai.onnx=18) {{\n  input %x: f32[1,1,4,4]\n{body}\n  output %y\n}}\n")
}

#[test]
fn claimed_shapes_fail_before_allocating() {
    let cases = [
        ("ConstantOfShape", "  const %s: i64[2] [4294967296, 4294967296]\n  %y = ConstantOfShape(%s)"),
        ("ConstantOfShape", "  const %s: i64[3] [100000, 100000, 100000]\n  %y = ConstantOfShape(%s)"),
        ("Range", "  const %a: f32[] 0\n  const %b: f32[] 1e30\n  const %d: f32[] 1\n  %y = Range(%a, %b, %d)"),
        ("Range", "  const %a: i64[] 0\n  const %b: i64[] 9223372036854775807\n  const %d: i64[] 1\n  %y = Range(%a, %b, %d)"),
        ("Expand", "  const %s: i64[4] [100000, 100000, 4, 4]\n  %y = Expand(%x, %s)"),
        ("Tile", "  const %r: i64[4] [100000, 100000, 1, 1]\n  %y = Tile(%x, %r)"),
        ("Tile", "  const %r: i64[4] [9223372036854775807, 2, 1, 1]\n  %y = Tile(%x, %r)"),
        ("Pad", "  const %p: i64[8] [0, 0, 1000000, 1000000, 0, 0, 1000000, 1000000]\n  %y = Pad(%x, %p)"),
        ("Pad", "  const %p: i64[8] [0, 0, 9223372036854775807, 0, 0, 0, 9223372036854775807, 0]\n  %y = Pad(%x, %p)"),
        ("Resize", "  const %r: f32[0] []\n  const %sc: f32[4] [1, 1, 100000, 100000]\n  %y = Resize(%x, %r, %sc)"),
        ("Resize", "  const %r: f32[0] []\n  const %sc: f32[4] [1, 1, 1e30, 1e30]\n  %y = Resize(%x, %r, %sc)"),
        ("MaxPool", "  %y = MaxPool[kernel_shape=[1,1], pads=[1000000, 1000000, 1000000, 1000000]](%x)"),
        (
            "MaxPool",
            "  %y = MaxPool[kernel_shape=[1,1], pads=[9223372036854775807, 0, 9223372036854775807, 0]](%x)",
        ),
        ("MaxPool", "  %y = MaxPool[kernel_shape=[2,2], dilations=[9223372036854775807, 1]](%x)"),
        (
            "Conv",
            "  const %w: f32[1,1,1,1] [1]\n  %y = Conv[pads=[1000000, 1000000, 1000000, 1000000]](%x, %w)",
        ),
        (
            "ConvTranspose",
            "  const %w: f32[1,1,1,1] [1]\n  %y = ConvTranspose[strides=[9223372036854775807, 1]](%x, %w)",
        ),
        (
            "ConvTranspose",
            "  const %w: f32[1,1,1,1] [1]\n  %y = ConvTranspose[output_shape=[1000000, 1000000]](%x, %w)",
        ),
        (
            "Add",
            "  const %sa: i64[2] [100000, 1]\n  const %sb: i64[2] [1, 100000]\n  %a = ConstantOfShape(%sa)\n  %b = ConstantOfShape(%sb)\n  %y = Add(%a, %b)",
        ),
        (
            "MatMul",
            "  const %sa: i64[4] [100000, 1, 1, 1]\n  const %sb: i64[4] [1, 100000, 1, 1]\n  %a = ConstantOfShape(%sa)\n  %b = ConstantOfShape(%sb)\n  %y = MatMul(%a, %b)",
        ),
        (
            "Gather",
            "  const %si: i64[2] [300, 300]\n  %z = ConstantOfShape(%si)\n  %i = Cast[to=7](%z)\n  %y = Gather[axis=2](%x, %i)",
        ),
        (
            "Concat",
            "  const %s: i64[1] [100000]\n  %c = ConstantOfShape(%s)\n  %y = Concat[axis=0](%c, %c)",
        ),
    ];
    for (op, body) in cases {
        let text = graph(body);
        let limit = RunOptions { max_tensor_bytes: Some(1 << 20), ..Default::default() };
        let msg = run_err(&text, &limit);
        assert!(msg.contains(op), "{op}: the error names the op: {msg}");
        assert!(!msg.contains("panicked"), "{msg}");
    }
}

#[test]
fn the_limit_is_the_callers() {
    // 64 floats (512 bytes at 8 bytes per element) run under the default limit and fail under 256.
    let text = graph("  const %s: i64[2] [8, 8]\n  %y = ConstantOfShape(%s)");
    let g = qdqc_ir::text::parse(&text).unwrap();
    let x = vec![("x".to_string(), Value::f32(&[1, 1, 4, 4], vec![0.0; 16]).unwrap())];
    assert_eq!(run(&g, &x, &RunOptions::default()).unwrap().outputs[0].1.shape(), &[8, 8]);
    let small = RunOptions { max_tensor_bytes: Some(256), ..Default::default() };
    let msg = run(&g, &x, &small).unwrap_err().to_string();
    assert!(msg.contains("limit of 256 bytes"), "{msg}");
}

#[test]
fn slice_steps_at_the_ends_of_i64() {
    for step in [i64::MIN, i64::MAX] {
        let text = graph(&format!(
            "  const %st: i64[1] [-1]\n  const %en: i64[1] [{}]\n  const %ax: i64[1] [3]\n  const %sp: i64[1] [{step}]\n  %y = Slice(%x, %st, %en, %ax, %sp)",
            if step < 0 { i64::MIN } else { i64::MAX }
        ));
        let g = qdqc_ir::text::parse(&text).unwrap();
        let x = vec![("x".to_string(), Value::f32(&[1, 1, 4, 4], (0..16).map(|i| i as f32).collect()).unwrap())];
        let y = run(&g, &x, &RunOptions::default()).unwrap().outputs.remove(0).1;
        // One element per row: the last (start -1, walking backwards) or the last again (start -1 = 3).
        assert_eq!(y.shape(), &[1, 1, 4, 1], "step {step}");
        assert_eq!(y.to_f64_vec().unwrap(), [3.0, 7.0, 11.0, 15.0], "step {step}");
    }
}
