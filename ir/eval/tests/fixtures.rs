//! Runs the interpreter on the repository's fixture models.
//!
//! Expected values come from onnxruntime 1.32 (CPU, ORT_DISABLE_ALL) on the deterministic input
//! `x[i] = ((i·37) mod 101) / 50 − 1` (exactly representable, so Python and Rust build the same
//! tensor). Quantized outputs may differ from onnxruntime by at most one quantization step (the
//! float ops before the last QuantizeLinear are not bit-exact: MLAS uses FMA and approximations).

use std::path::PathBuf;

use qdqc_eval::{EvalError, Interpreter, RunOptions, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn ramp(shape: &[usize]) -> Value {
    let n: usize = shape.iter().product();
    Value::f32(shape, (0..n).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect()).unwrap()
}

/// A seeded pseudo-random input in [-2, 2) (xorshift64*).
fn seeded(shape: &[usize], seed: u64) -> Value {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            r as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Value::f32(shape, data).unwrap()
}

fn run(name: &str, input: Value) -> Vec<f32> {
    let model = qdqc_ir::onnx::load(&fixture(name)).unwrap();
    let r = qdqc_eval::run(&model.graph, &[("input".into(), input)], &RunOptions::default()).unwrap();
    assert_eq!(r.outputs.len(), 1);
    r.outputs[0].1.to_f32_vec().unwrap()
}

fn assert_within(name: &str, got: &[f32], want: &[f32], tol: f32) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{name}[{i}]: {g} vs onnxruntime {w} (tolerance {tol})");
    }
}

#[test]
fn resnet_block_runs_on_a_seeded_input_with_finite_outputs() {
    let model = qdqc_ir::onnx::load(&fixture("resnet_block.u8.pt.onnx")).unwrap();
    let interp = Interpreter::new(&model.graph).unwrap();
    for seed in [1, 2, 3] {
        let r = interp.run(&[("input".into(), seeded(&[4, 3, 32, 32], seed))], &RunOptions::default()).unwrap();
        let (name, y) = &r.outputs[0];
        assert_eq!(name, "logits");
        assert_eq!(y.shape(), &[4, 10]);
        assert!(y.to_f32_vec().unwrap().iter().all(|v| v.is_finite()));
        assert!(r.values.is_empty());
    }
}

#[test]
fn resnet_block_matches_onnxruntime() {
    let want = [
        -3.760745, 0.5044902, -3.393843, 1.7427844, 3.0269413, 0.5503529, -1.421745, 2.2931373, 0.0, 1.421745,
        -3.760745, 0.5503529, -3.393843, 1.7427844, 3.0269413, 0.5044902, -1.4676079, 2.2931373, 0.0, 1.421745,
    ];
    let got = run("resnet_block.u8.pt.onnx", ramp(&[2, 3, 32, 32]));
    assert_within("resnet_block.u8.pt", &got, &want, 0.045_862_745 * 1.01);
}

#[test]
fn mobilenet_block_matches_onnxruntime() {
    let want = [
        -0.788,
        1.5180588,
        0.30129412,
        0.11588235,
        1.0661176,
        -0.61417645,
        -0.76482356,
        1.3094707,
        0.16223529,
        0.68370587,
        -0.79958826,
        1.5064706,
        0.31288236,
        0.17382354,
        1.1124706,
        -0.60258824,
        -0.7764118,
        1.3094707,
        0.20858824,
        0.69529414,
    ];
    let got = run("mobilenet_block.u8.pc.onnx", ramp(&[2, 3, 32, 32]));
    assert_within("mobilenet_block.u8.pc", &got, &want, 0.011_588_235 * 1.01);
}

#[test]
fn transformer_block_matches_onnxruntime() {
    let want = [
        -0.12859608,
        -1.2859608,
        -2.6362197,
        -1.2859608,
        0.19289413,
        3.4077961,
        1.9932393,
        1.8646432,
        1.4788549,
        1.2859608,
        -0.514_384_3,
        -1.0287687,
        3.8578825,
        2.7005177,
        0.4500863,
        -2.9577098,
    ];
    let got = run("transformer_block.i8.pc.onnx", ramp(&[2, 16, 64]));
    assert_eq!(got.len(), 2 * 16 * 64);
    assert_within("transformer_block.i8.pc", &got[..16], &want, 0.064_298_04 * 1.01);
}

#[test]
fn trt_style_matches_onnxruntime() {
    let want = [
        1.02666,
        3.63347,
        2.3563285,
        -1.812726,
        -0.32698578,
        -0.66216236,
        -1.6134005,
        -0.30494684,
        2.289408,
        0.45849177,
        0.985_915_8,
        3.617179,
        2.3395388,
        -1.7787752,
        -0.27757192,
        -0.6558087,
        -1.6151724,
        -0.29203176,
        2.2896695,
        0.55410194,
    ];
    // Float logits (Gemm on dequantized values): compare with a relative tolerance.
    let got = run("trt_style.onnx", ramp(&[2, 3, 32, 32]));
    assert_within("trt_style", &got, &want, 0.05);
}

#[test]
fn every_fixture_runs() {
    let dir = fixture("");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".onnx") || name == "kitchen_sink.onnx" {
            continue;
        }
        let model = qdqc_ir::onnx::load(&path).unwrap();
        let shape: Vec<usize> = if name.starts_with("transformer") { vec![2, 16, 64] } else { vec![2, 3, 32, 32] };
        let r = qdqc_eval::run(&model.graph, &[("input".into(), seeded(&shape, 7))], &RunOptions::keep_all())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (out, v) in &r.outputs {
            assert!(v.to_f64_vec().unwrap().iter().all(|x| x.is_finite()), "{name}: output {out} is not finite");
            assert_eq!(r.values.get(out), Some(v), "{name}: kept values include the outputs");
        }
        assert!(r.values.contains_key("input"));
        ran += 1;
    }
    assert!(ran >= 16, "ran {ran} fixtures");
}

#[test]
fn unknown_ops_are_reported_with_the_node() {
    let model = qdqc_ir::onnx::load(&fixture("kitchen_sink.onnx")).unwrap();
    let x = Value::f32(&[2, 4], vec![0.5; 8]).unwrap();
    let err = qdqc_eval::run(&model.graph, &[("x".into(), x)], &RunOptions::default()).unwrap_err();
    match &err {
        EvalError::Unsupported { op, node } => {
            assert!(op.contains("MyOp") || op.contains("ScaledAdd"), "{err}");
            assert!(!node.is_empty());
        }
        e => panic!("expected Unsupported, got {e}"),
    }
    assert!(err.to_string().contains("does not implement"));
}

#[test]
fn inputs_are_checked() {
    let model = qdqc_ir::onnx::load(&fixture("resnet_block.u8.pt.onnx")).unwrap();
    let g = &model.graph;
    let err = qdqc_eval::run(g, &[], &RunOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::MissingInput(ref n) if n == "input"), "{err}");
    let bad = Value::f32(&[1, 4, 32, 32], vec![0.0; 4 * 1024]).unwrap();
    let err = qdqc_eval::run(g, &[("input".into(), bad)], &RunOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::InputMismatch { .. }), "{err}");
    let extra = vec![("input".into(), ramp(&[1, 3, 32, 32])), ("nope".into(), ramp(&[1]))];
    let err = qdqc_eval::run(g, &extra, &RunOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::UnknownInput(_)), "{err}");
}

#[test]
fn interpreter_is_shareable_across_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Interpreter<'static>>();
    assert_sync::<Value>();
    assert_sync::<EvalError>();
}

#[test]
fn constants_are_folded_and_intermediates_kept_by_name() {
    let model = qdqc_ir::onnx::load(&fixture("resnet_block.u8.pt.onnx")).unwrap();
    let interp = Interpreter::new(&model.graph).unwrap();
    // Every weight DequantizeLinear reads constants only.
    assert!(interp.folded_nodes() >= 4, "folded {}", interp.folded_nodes());
    let r = interp.run(&[("input".into(), seeded(&[1, 3, 32, 32], 3))], &RunOptions::keep_all()).unwrap();
    let names: Vec<&String> =
        model.graph.node_ids().flat_map(|id| model.graph.node(id).outputs.iter().map(|v| &v.name)).collect();
    for n in names {
        assert!(r.values.contains_key(n), "value '{n}' was not kept");
    }
}

#[test]
fn npy_inputs_round_trip_through_a_run() {
    let x = seeded(&[1, 3, 32, 32], 9);
    let back = Value::from_npy(&x.to_npy().unwrap()).unwrap();
    assert_eq!(back, x);
    let a = run("resnet_block.u8.pt.onnx", x);
    let b = run("resnet_block.u8.pt.onnx", back);
    assert_eq!(a, b);
}
