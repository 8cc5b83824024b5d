//! `qdqc compile --calibrate`: completing a TensorRT-style placement, its report, the held-out
//! check and every kind of bad calibration data.

mod common;

use common::{fixture, qdqc, stderr, wave};
use std::path::{Path, PathBuf};

/// `count` samples for trt_style.onnx (input `input: f32[N,3,32,32]`) in a new folder.
fn samples(dir: &Path, name: &str, first_phase: usize, count: usize) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir(&d).unwrap();
    for k in 0..count {
        let phase = (first_phase + k) as f32 * 0.7;
        common::write_npz(&d.join(format!("{k:03}.npz")), &[("input", wave(&[1, 3, 32, 32], phase))], false);
    }
    d
}

fn stats_json(model: &Path) -> serde_json::Value {
    let o = qdqc(&["stats", "--json", model.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn calibration_makes_the_trt_style_model_fully_integer_and_checks_it_on_held_out_samples() {
    let dir = tempfile::tempdir().unwrap();
    let calib = samples(dir.path(), "calib", 0, 8);
    let heldout = samples(dir.path(), "heldout", 100, 4);
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("report.json");
    let input = fixture("trt_style.onnx");
    let before = stats_json(&input);
    assert!(before["float_compute"].as_u64().unwrap() > 0, "{before}");
    let args = [
        "compile",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calibrate",
        calib.to_str().unwrap(),
        "--verify",
        "4",
        "--verify-inputs",
        heldout.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let o = qdqc(&args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}{stdout}", stderr(&o));
    // Every inserted pair is listed with its range, scale and zero point.
    assert!(stdout.contains("float tensors quantized (8 samples, mse"), "{stdout}");
    assert!(stdout.contains("calibrate: 'add_1_out' (Add 'add_1')"), "{stdout}");
    assert!(stdout.contains("verification on 4 held-out samples"), "{stdout}");
    // Fully integer: no float compute, one Q at the input and one DQ at the output.
    let after = stats_json(&out);
    assert_eq!(after["float_compute"], 0, "{after}");
    assert_eq!(after["quantize_linear"], 1, "{after}");
    assert_eq!(after["dequantize_linear"], 1, "{after}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let inserted = r["calibration"]["inserted"].as_array().unwrap();
    assert!(inserted.len() >= 5, "{r}");
    for i in inserted {
        assert!(i["scale"].as_f64().unwrap() > 0.0, "{i}");
        assert!(i["source"].is_string() && i["range"].is_array() && i["observed"].is_array(), "{i}");
    }
    // The identity branch reads the model's own quantization of maxpool_1's result, which is
    // non-negative and so gets uint8 parameters in place of int8 symmetric ones.
    let reused = inserted.iter().find(|i| i["tensor"] == "maxpool_1_out").unwrap();
    let source = reused["source"].as_str().unwrap();
    assert!(source.contains("replaces the int8 symmetric parameters of QuantizeLinear 'act_quant_2_q'"), "{reused}");
    assert_eq!(reused["dtype"], "u8", "{reused}");
    assert_eq!(reused["zero_point"], 0, "{reused}");
    // The Relu's input takes the parameters chosen for its output.
    let borrowed = inserted.iter().find(|i| i["tensor"] == "bn_2_out").unwrap();
    assert!(
        borrowed["source"].as_str().unwrap().contains("QuantizeLinear 'act_quant_3_q' after Relu 'relu_2'"),
        "{borrowed}"
    );
    let check = &r["calibrated_check"]["outputs"][0]["qdq"];
    assert!(check["sqnr_db"].as_f64().unwrap() > 20.0, "{check}");
    assert!(check["cosine"].as_f64().unwrap() > 0.99, "{check}");
    // Deterministic: the same run writes the same bytes.
    let again = dir.path().join("again.onnx");
    let mut args2 = args.to_vec();
    args2[3] = again.to_str().unwrap();
    args2.truncate(args2.len() - 2);
    assert_eq!(qdqc(&args2).status.code(), Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn a_min_sqnr_the_output_does_not_reach_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let input = fixture("trt_style.onnx");
    let o = qdqc(&[
        "compile",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calibrate-random",
        "4",
        "--input-dist",
        "input=uniform:-2,2",
        "--verify",
        "2",
        "--min-sqnr",
        "300",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("output 'logits' has SQNR") && err.contains("below --min-sqnr 300 dB"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!out.exists());
}

/// A model whose quantized result is always 0.
const CONSTANT: &str = "graph \"constant\" opset(ai.onnx=17) {
  input %x: f32[N,4]
  const %s: f32[] 0.05
  const %z: i8[] 0
  const %zero: f32[4] [0.0, 0.0, 0.0, 0.0]
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %m = Mul(%d, %zero)
  output %m
}
";

#[test]
fn bad_calibration_data_is_refused_with_exit_2_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("trt_style.onnx");
    let case = |name: &str, members: &[(&str, qdqc::eval::Value)]| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        common::write_npz(&d.join("s0.npz"), members, false);
        d
    };
    let f64_input =
        qdqc::eval::Value::from_f64(qdqc::ir::DType::F64, &[1, 3, 32, 32], &vec![0.5; 3 * 32 * 32]).unwrap();
    let mut nan = wave(&[1, 3, 32, 32], 0.0).to_f32_vec().unwrap();
    nan[7] = f32::NAN;
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let good = samples(dir.path(), "good", 0, 2);
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (case("name", &[("image", wave(&[1, 3, 32, 32], 0.0))]), vec!["s0.npz", "input 'image'", "no such input"]),
        (
            case("shape", &[("input", wave(&[1, 3, 16, 16], 0.0))]),
            vec!["s0.npz", "input 'input'", "shape [1, 3, 16, 16]"],
        ),
        (case("dtype", &[("input", f64_input)]), vec!["s0.npz", "input 'input'", "is f"]),
        (
            case("nan", &[("input", qdqc::eval::Value::f32(&[1, 3, 32, 32], nan).unwrap())]),
            vec!["s0.npz", "element 7 is NaN"],
        ),
        (empty.clone(), vec!["empty", "holds no input samples"]),
        // A batch of 0: every tensor is empty, so no tensor is ever reached with a value.
        (
            case("never", &[("input", qdqc::eval::Value::f32(&[0, 3, 32, 32], vec![]).unwrap())]),
            vec!["calibration:", "tensor '", "takes no value on the 1 samples"],
        ),
    ];
    let out = dir.path().join("out.onnx");
    for (d, needles) in cases {
        let o = qdqc(&[
            "compile",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--calibrate",
            d.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", d.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("qdqc: error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "{}: expected '{n}' in {err}", d.display());
        }
        assert!(!out.exists(), "{}: nothing is written", d.display());
    }
    // A tensor that takes one value on every sample has no range to calibrate.
    let constant = dir.path().join("constant.onnx");
    let graph = qdqc::ir::text::parse(CONSTANT).unwrap();
    let meta = qdqc::ir::proto::ModelProto { ir_version: Some(8), ..Default::default() };
    let model = qdqc::ir::Model { graph, meta, external: Default::default() };
    qdqc::ir::onnx::save(&model, &constant, &Default::default()).unwrap();
    let o = qdqc(&["compile", constant.to_str().unwrap(), "-o", out.to_str().unwrap(), "--calibrate-random", "3"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("calibration: tensor 'm' (output of Mul 'm') takes the single value 0 on all 3 samples"),
        "{err}"
    );
    assert!(!out.exists());
    // Verifying on the calibration samples themselves is refused.
    let g = good.to_str().unwrap();
    let o = qdqc(&[
        "compile",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calibrate",
        g,
        "--verify",
        "1",
        "--verify-inputs",
        g,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the calibration folder"), "{}", stderr(&o));
    // An unknown method.
    let o = qdqc(&[
        "compile",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calibrate",
        g,
        "--calib-method",
        "kl",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("'kl' is not a calibration method"), "{}", stderr(&o));
}

#[test]
fn every_method_calibrates_and_the_ranges_differ() {
    let dir = tempfile::tempdir().unwrap();
    let calib = samples(dir.path(), "calib", 0, 4);
    let input = fixture("trt_style.onnx");
    let mut ranges = Vec::new();
    for method in ["minmax", "percentile", "percentile:99", "entropy", "mse"] {
        let out = dir.path().join(format!("{}.onnx", method.replace(':', "_")));
        let report = dir.path().join(format!("{}.json", method.replace(':', "_")));
        let o = qdqc(&[
            "compile",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--calibrate",
            calib.to_str().unwrap(),
            "--calib-method",
            method,
            "--report",
            report.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{method}: {}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let bn3 = r["calibration"]["inserted"].as_array().unwrap().iter().find(|i| i["tensor"] == "bn_3_out").cloned();
        let bn3 = bn3.unwrap_or_else(|| panic!("{method}: bn_3_out calibrated: {r}"));
        let (seen, range) = (bn3["observed"].clone(), bn3["range"].clone());
        let hi = range[1].as_f64().unwrap();
        let max_abs = seen[0].as_f64().unwrap().abs().max(seen[1].as_f64().unwrap());
        if method == "minmax" {
            assert_eq!(hi, max_abs, "{bn3}");
        } else {
            assert!(hi <= max_abs + 1e-6, "{method} never widens the range: {bn3}");
        }
        ranges.push(hi);
    }
    assert!(ranges.iter().any(|&r| r < ranges[0]), "some method clips: {ranges:?}");
}
