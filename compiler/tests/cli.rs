//! The `qdqc` binary as users run it: exit codes, one-line errors naming file and node/value, no
//! output file left behind on failure.

use prost::Message;
use qdqc::ir::proto::{
    self, tensor_proto::DataLocation, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
mod common;

use common::{fixture, qdqc, stderr, wave, write_npz};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn f32_input(name: &str) -> ValueInfoProto {
    let ty = qdqc::ir::TensorType::known(qdqc::ir::DType::F32, &[1, 4]);
    ValueInfoProto { name: Some(name.into()), r#type: Some(qdqc::ir::onnx::type_proto(&ty)), ..Default::default() }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, output: &str) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            initializer: initializers,
            input: vec![f32_input("x")],
            output: vec![f32_input(output)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes `bytes` as `name` in a temp dir, runs `qdqc compile` on it and checks: exit 2, one line on
/// stderr starting with `qdqc: error: PATH:` and containing every `needle`, and no output file.
fn rejects(name: &str, bytes: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out.onnx");
    let o = qdqc(&["compile", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--passes", "none"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert_eq!(err.lines().count(), 1, "{name}: one line expected: {err}");
    assert!(err.starts_with(&format!("qdqc: error: {}: ", input.display())), "{name}: {err}");
    for n in needles {
        assert!(err.contains(n), "{name}: expected '{n}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "{name}: no output may be written");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{name}: temporary files left behind: {leftovers:?}");
    // `show` and `stats` reject it the same way.
    for cmd in ["show", "stats"] {
        let o = qdqc(&[cmd, input.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd} {name}: {}", stderr(&o));
    }
}

#[test]
fn truncated_file() {
    let bytes = std::fs::read(fixture("resnet_block.u8.pc.onnx")).unwrap();
    rejects("truncated.onnx", &bytes[..bytes.len() / 2], &["not a valid ONNX protobuf"]);
}

#[test]
fn wrong_wire_type() {
    // Field 1 (ir_version, a varint) written as length-delimited.
    rejects("wiretype.onnx", &[0x0a, 0x02, 0x08, 0x01], &["not a valid ONNX protobuf", "wire type"]);
}

#[test]
fn garbage_and_empty_files() {
    rejects("garbage.onnx", b"this is not a model at all \xff\xff\xff", &["not a valid ONNX protobuf"]);
    rejects("empty.onnx", b"", &["has no graph"]);
}

#[test]
fn dangling_input_name() {
    let m = model(vec![node("Relu", "relu1", &["nope"], &["y"])], vec![], "y");
    rejects("dangling.onnx", &m.encode_to_vec(), &["node 'relu1' (Relu)", "input 'nope' is not defined"]);
}

#[test]
fn cycle() {
    let m = model(
        vec![
            node("Add", "a", &["x", "c"], &["b"]),
            node("Relu", "r", &["b"], &["c"]),
            node("Relu", "o", &["b"], &["y"]),
        ],
        vec![],
        "y",
    );
    rejects("cycle.onnx", &m.encode_to_vec(), &["cycle", "node 'a' (Add)"]);
}

#[test]
fn absurd_dims() {
    let t = TensorProto {
        name: Some("w".into()),
        dims: vec![1 << 40, 1 << 40],
        data_type: Some(1),
        raw_data: Some(vec![0u8; 4].into()),
        ..Default::default()
    };
    let m = model(vec![node("Add", "add", &["x", "w"], &["y"])], vec![t.clone()], "y");
    rejects("absurd.onnx", &m.encode_to_vec(), &["tensor 'w'", "dims"]);
    let neg = TensorProto { dims: vec![-3], ..t };
    let m = model(vec![node("Add", "add", &["x", "w"], &["y"])], vec![neg], "y");
    rejects("negative.onnx", &m.encode_to_vec(), &["tensor 'w'", "negative dimension"]);
}

#[test]
fn unknown_data_type() {
    let t = TensorProto { name: Some("w".into()), dims: vec![4], data_type: Some(99), ..Default::default() };
    let m = model(vec![node("Add", "add", &["x", "w"], &["y"])], vec![t], "y");
    rejects("dtype.onnx", &m.encode_to_vec(), &["tensor 'w'", "unknown data type 99"]);
    let mut m = model(vec![node("Relu", "r", &["x"], &["y"])], vec![], "y");
    let vi = &mut m.graph.as_mut().unwrap().input[0];
    if let Some(proto::type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.elem_type = Some(77);
    }
    rejects("dtype_vi.onnx", &m.encode_to_vec(), &["value 'x'", "unknown data type 77"]);
}

#[test]
fn missing_external_file() {
    let kv = |k: &str, v: &str| proto::StringStringEntryProto { key: Some(k.into()), value: Some(v.into()) };
    let t = TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(1),
        external_data: vec![kv("location", "weights.bin"), kv("offset", "0"), kv("length", "16")],
        data_location: Some(DataLocation::External as i32),
        ..Default::default()
    };
    let m = model(vec![node("Add", "add", &["x", "w"], &["y"])], vec![t.clone()], "y");
    rejects("external.onnx", &m.encode_to_vec(), &["tensor 'w'", "weights.bin"]);
    let mut escape = t;
    escape.external_data[0] = kv("location", "../../etc/passwd");
    let m = model(vec![node("Add", "add", &["x", "w"], &["y"])], vec![escape], "y");
    rejects("escape.onnx", &m.encode_to_vec(), &["tensor 'w'", "relative path inside the model's folder"]);
}

#[test]
fn newer_ir_version_is_refused() {
    let mut m = model(vec![node("Relu", "r", &["x"], &["y"])], vec![], "y");
    m.ir_version = Some(99);
    rejects("ir.onnx", &m.encode_to_vec(), &["IR version 99"]);
}

#[test]
fn missing_input_file_and_bad_usage() {
    let o = qdqc(&["compile", "/nonexistent/model.onnx", "-o", "/tmp/x.onnx", "--passes", "none"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/model.onnx"), "{}", stderr(&o));
    let o = qdqc(&["compile"]);
    assert_eq!(o.status.code(), Some(2));
    let o = qdqc(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let fx = fixture("resnet_block.u8.pc.onnx");
    let o = qdqc(&["compile", fx.to_str().unwrap(), "-o", "/tmp/never.onnx", "--passes", "dce,nosuchpass"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown pass 'nosuchpass'"), "{}", stderr(&o));
    let o = qdqc(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("compile"));
}

#[test]
fn failed_compile_keeps_an_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    std::fs::write(&out, b"previous").unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"\x0a\x02\x08\x01").unwrap();
    let o = qdqc(&["compile", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
}

#[test]
fn round_trip_is_byte_identical_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet_block.u8.pc.onnx", "kitchen_sink.onnx", "transformer_block.i8.pt.onnx"] {
        let input = fixture(name);
        let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
        for out in [&a, &b] {
            let o = qdqc(&["compile", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--passes", "none"]);
            assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        }
        let (orig, a, b) = (std::fs::read(&input).unwrap(), std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(a, b, "{name}: two runs differ");
        assert!(a == orig, "{name}: --passes none changed the bytes");
    }
}

#[test]
fn stats_json_counts_qdq() {
    let o = qdqc(&["stats", fixture("resnet_block.u8.pc.onnx").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["quantize_linear"], 12);
    assert_eq!(v["dequantize_linear"], 24);
    assert_eq!(v["ops"]["Conv"], 3);
    // BatchNormalization ×3, Conv ×3, Add, Gemm, GlobalAveragePool compute in float; the Q/DQ,
    // MaxPool and Flatten do not.
    assert_eq!(v["float_compute"], 9);
    assert_eq!(v["float_mac"], 4);
}

fn runnable_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx") && !p.ends_with("kitchen_sink.onnx"))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_a_model_against_itself_passes_for_every_fixture() {
    let all = runnable_fixtures();
    assert!(all.len() >= 17);
    for f in all {
        let p = f.to_str().unwrap();
        let o = qdqc(&["verify", p, p, "--samples", "2", "--seed", "7"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{p}: {}{out}", stderr(&o));
        assert!(out.contains(" 0 beyond"), "{p}: {out}");
        assert!(!out.contains("FAIL"), "{p}: {out}");
    }
}

#[test]
fn verify_names_the_first_tensor_a_corrupted_weight_moved() {
    let dir = tempfile::tempdir().unwrap();
    let orig = fixture("resnet_block.u8.pc.onnx");
    let mut m = qdqc::ir::onnx::read_proto(&orig).unwrap();
    let w = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name.as_deref() == Some("conv_2.weight_quantized"))
        .unwrap();
    let mut raw = w.raw_data.as_ref().unwrap().to_vec();
    let before = raw[5] as i8;
    raw[5] = raw[5].wrapping_add(100); // one int8 weight moves (by 100, or 156 if it wraps)
    let moved = (raw[5] as i8 as f64 - before as f64).abs();
    w.raw_data = Some(raw.into());
    let bad = dir.path().join("corrupt.onnx");
    std::fs::write(&bad, m.encode_to_vec()).unwrap();
    let json = dir.path().join("report.json");
    let o = qdqc(&["verify", orig.to_str().unwrap(), bad.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("verification failed: tensor 'conv_2.weight_DequantizeLinear_Output'"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["first_failure"], "conv_2.weight_DequantizeLinear_Output");
    let w = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "conv_2.weight_DequantizeLinear_Output")
        .unwrap();
    assert!((w["max_steps"].as_f64().unwrap() - moved).abs() < 1e-3, "{moved} steps expected: {w}");
    assert_eq!(w["ok"], false);
    // The input tensor did not move.
    let x = report["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "input_QuantizeLinear_Output").unwrap();
    assert_eq!(x["bit_equal"], 1.0);
}

#[test]
fn verify_refuses_what_it_cannot_run() {
    let k = fixture("kitchen_sink.onnx");
    let o = qdqc(&["verify", k.to_str().unwrap(), k.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not implement com.example.MyOp"), "{}", stderr(&o));
}

#[test]
fn run_writes_one_npy_per_output_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("mobilenet_block.u8.pt.onnx");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = qdqc(&["run", m.to_str().unwrap(), "--random", "--seed", "3", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let files: Vec<_> = std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = &files[0];
    assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap());
    // The written output fed back as an input file round-trips through --input.
    let o = qdqc(&["run", m.to_str().unwrap(), "--out", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "missing inputs without --random must be refused");
    assert!(stderr(&o).contains("input"), "{}", stderr(&o));
    // A given input is checked against the model's declaration: the error names its file.
    let bad = dir.path().join("bad.npy");
    std::fs::write(&bad, qdqc::eval::Value::from_i64(qdqc::ir::DType::I64, &[2], &[1, 2]).unwrap().to_npy().unwrap())
        .unwrap();
    let o = qdqc(&[
        "run",
        m.to_str().unwrap(),
        "--input",
        &format!("input={}", bad.display()),
        "--out",
        a.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("bad.npy") && e.contains("is i64, the model takes f32"), "{e}");
}

#[test]
fn compile_with_verify_reports_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let m = fixture("resnet_block.i8.pc.onnx");
    let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--verify", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 beyond"));
    assert!(out.exists());
}

#[test]
fn default_pipeline_keeps_every_fixture_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    for f in runnable_fixtures() {
        let (p, out) = (f.to_str().unwrap(), dir.path().join(f.file_name().unwrap()));
        let o = qdqc(&["compile", p, "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{p}: {}", stderr(&o));
        let o = qdqc(&["verify", p, out.to_str().unwrap(), "--samples", "2"]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{p}: {}{text}", stderr(&o));
        assert!(text.contains(" 0 beyond"), "{p}: {text}");
    }
}

#[test]
fn compile_pipelines_diffs_dumps_stop_after_and_remarks() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("trt_style.onnx");
    let (m, out) = (m.to_str().unwrap(), dir.path().join("o.onnx"));
    let out = out.to_str().unwrap();
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    // QAT float weights behind Q→DQ become integer initializers.
    // fold-bn runs first and can fold nothing yet: the weights are still float behind Q→DQ.
    // An explicit pass list, so that the layout does not move when rule families grow.
    let o = qdqc(&["compile", m, "-o", out, "--passes", "fold-bn,cleanup,dce", "--diff", "--stop-after", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("--- before cleanup (#2)\n+++ after cleanup (#2)\n"), "{text}");
    assert!(text.contains("+  const %conv_1.weight_quantized: i8[16,3,3,3]"), "{text}");
    assert!(
        text.contains("passes: fold-bn (0 changes), cleanup (5 changes) (stopped before a fixed point)\n"),
        "{text}"
    );
    let o = qdqc(&["compile", m, "-o", out, "--print-after", "clenaup"]);
    assert_eq!(o.status.code(), Some(2));
    // The list of known passes grows with the rule families: check its shape, not its length.
    let err = stderr(&o);
    assert!(
        err.contains("unknown pass 'clenaup' (known: ") && err.contains(" fold-bn, fold-bn-qdq, propagate, cleanup, "),
        "{err}"
    );
    assert!(err.contains(", dce, all)"), "{err}");
    let o = qdqc(&["compile", m, "-o", out, "-O0"]);
    assert!(stdout(&o).contains("passes: none"), "{}", stdout(&o));
    let o = qdqc(&["compile", m, "-o", out, "-O3"]);
    assert!(stdout(&o).contains("passes: fold-bn (0 changes), saturate ("), "{}", stdout(&o));
    assert!(stdout(&o).contains("saturate ("), "{}", stdout(&o));
    let o = qdqc(&["compile", m, "-o", out, "--search", "saturate"]);
    assert!(stdout(&o).contains("saturate ("), "{}", stdout(&o));
    let o = qdqc(&["compile", m, "-o", out, "-O4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown pipeline 'O4'"), "{}", stderr(&o));
    let dumps = dir.path().join("dumps");
    let o = qdqc(&[
        "compile",
        m,
        "-o",
        out,
        "--passes",
        "fold-bn,cleanup,dce",
        "--print-after",
        "all",
        "--diff",
        "--dump-dir",
        dumps.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut files: Vec<String> =
        std::fs::read_dir(&dumps).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    // Then fold-bn folds the three BNs into the now-integer weights' scales.
    let expected = [
        "01-fold-bn.ir",
        "02-cleanup.diff",
        "02-cleanup.ir",
        "03-dce.diff",
        "03-dce.ir",
        "04-fold-bn.diff",
        "04-fold-bn.ir",
        "05-cleanup.ir",
        "06-dce.diff",
        "06-dce.ir",
        "07-fold-bn.ir",
        "08-cleanup.ir",
        "09-dce.ir",
    ];
    assert_eq!(files, expected);
    let o = qdqc(&["compile", m, "-o", out, "--remarks", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["remarks"].is_array(), "{v}");
}

#[test]
fn compile_is_deterministic_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("trt_style.onnx");
    let (a, b, c) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"), dir.path().join("c.onnx"));
    for out in [&a, &b] {
        let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "two runs differ");
    let o = qdqc(&["compile", a.to_str().unwrap(), "-o", c.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    // Every pass of the second run reports 0 changes.
    let line = text.lines().find(|l| l.starts_with("wrote ")).unwrap();
    let runs = line.split_once("passes: ").unwrap().1;
    assert!(runs.contains("fold-bn (0 changes)"), "{text}");
    assert_eq!(runs.matches(" changes)").count(), runs.matches(" (0 changes)").count(), "{text}");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap(), "a second compile changed the model");
}

#[test]
fn remarks_say_why_a_rule_did_not_fire() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("id.onnx"), dir.path().join("o.onnx"));
    let m = model(vec![node("Identity", "id", &["x"], &["y"])], vec![], "y");
    std::fs::write(&input, m.encode_to_vec()).unwrap();
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let r = qdqc(&["compile", i, "-o", o, "--remarks"]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("remarks: 1\n  cleanup: identity: Identity 'id': graph output 'y' is a copy of 'x', which cannot take its name\n"),
        "{text}"
    );
    let r = qdqc(&["compile", i, "-o", o, "--remarks", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["remarks"][0]["rule"], "identity");
    assert_eq!(v["remarks"][0]["node"], "id");
}

/// A row of the before/after table: (name, before, after).
type Row = (String, u64, u64);

/// The rows of the before/after table printed by `qdqc compile`: op rows first (up to the dashed
/// line), then the totals.
fn table_rows(stdout: &str) -> (Vec<Row>, Vec<Row>) {
    let mut lines = stdout.lines().skip_while(|l| !(l.starts_with("op ") && l.ends_with("before    after")));
    assert!(lines.next().is_some(), "no table in: {stdout}");
    let parse = |l: &str| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let n = w.len();
        assert!(n >= 3, "bad row '{l}'");
        (w[..n - 2].join(" "), w[n - 2].parse().unwrap(), w[n - 1].parse().unwrap())
    };
    let ops: Vec<_> = lines.by_ref().take_while(|l| !l.starts_with("---")).map(parse).collect();
    let totals: Vec<_> = lines
        .take_while(|l| !l.starts_with("remarks") && !l.starts_with('(') && !l.starts_with("approximations"))
        .map(parse)
        .collect();
    (ops, totals)
}

#[test]
fn compile_prints_a_before_after_table_and_writes_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("trt_style.onnx");
    let (out, json) = (dir.path().join("o.onnx"), dir.path().join("r.json"));
    let (m, o_path, j) = (m.to_str().unwrap(), out.to_str().unwrap(), json.to_str().unwrap());
    let o = qdqc(&["compile", m, "-o", o_path, "--verify", "2", "--report", j]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // The JSON's stats are `qdqc stats` of the input and of the output, less the latency `stats`
    // predicts.
    let stats = |p: &str| -> serde_json::Value {
        let mut s: serde_json::Value = serde_json::from_slice(&qdqc(&["stats", p, "--json"]).stdout).unwrap();
        assert!(s["predicted"]["all_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{s}");
        s.as_object_mut().unwrap().remove("predicted");
        s.as_object_mut().unwrap().remove("schema_version");
        s
    };
    assert_eq!(r["before"], stats(m), "{r}");
    assert_eq!(r["after"], stats(o_path), "{r}");
    // fold-bn folds the three BatchNormalizations whatever the other rules do.
    assert_eq!(r["before"]["ops"]["BatchNormalization"], 3);
    assert!(r["after"]["ops"].get("BatchNormalization").is_none(), "{r}");
    let runs = r["passes"].as_array().unwrap();
    assert!(runs.iter().any(|p| p["pass"] == "fold-bn" && p["changes"] == 3), "{r}");
    let total: u64 = runs.iter().map(|p| p["changes"].as_u64().unwrap()).sum();
    let by_pass: u64 = r["changes_by_pass"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, by_pass, "{r}");
    assert_eq!(r["converged"], true);
    assert_eq!(r["verify"]["passed"], true, "{r}");
    assert!(r["remarks"].is_array() && r["remarks_by_rule"].is_object(), "{r}");
    // The table lists exactly the ops whose count changed, then the totals.
    let (ops, totals) = table_rows(&text);
    let count = |side: &str, op: &str| r[side]["ops"].get(op).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut changed: Vec<String> = r["before"]["ops"]
        .as_object()
        .unwrap()
        .keys()
        .chain(r["after"]["ops"].as_object().unwrap().keys())
        .filter(|op| count("before", op) != count("after", op))
        .cloned()
        .collect();
    changed.sort();
    changed.dedup();
    assert_eq!(ops.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), changed, "{text}");
    for (op, b, a) in &ops {
        assert_eq!((*b, *a), (count("before", op), count("after", op)), "{op}: {text}");
    }
    assert!(ops.contains(&("BatchNormalization".into(), 3, 0)), "{text}");
    let total = |name: &str| totals.iter().find(|t| t.0 == name).unwrap_or_else(|| panic!("no {name}: {text}"));
    let n = |side: &str, key: &str| r[side][key].as_u64().unwrap();
    assert_eq!(total("nodes"), &("nodes".into(), n("before", "nodes"), n("after", "nodes")));
    for (row, key) in [
        ("QuantizeLinear left", "quantize_linear"),
        ("DequantizeLinear left", "dequantize_linear"),
        ("float compute ops", "float_compute"),
        ("float Conv/MatMul/Gemm", "float_mac"),
        ("integer compute ops", "integer_compute"),
    ] {
        assert_eq!((total(row).1, total(row).2), (n("before", key), n("after", key)), "{row}: {text}");
    }
    assert!(text.contains("remarks by rule: "), "{text}");
    // The lines other tools and tests read stay.
    assert!(text.contains(" 0 beyond"), "{text}");
    assert!(text.contains(&format!("wrote {o_path}: {} nodes (input had 37)", n("after", "nodes"))), "{text}");
    // Without --verify the report says so.
    let o = qdqc(&["compile", m, "-o", o_path, "--report", j]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r["verify"].is_null(), "{r}");
}

#[test]
fn no_report_when_the_compile_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (bad, out, json) = (dir.path().join("bad.onnx"), dir.path().join("o.onnx"), dir.path().join("r.json"));
    std::fs::write(&bad, b"\x0a\x02\x08\x01").unwrap();
    let o = qdqc(&["compile", bad.to_str().unwrap(), "-o", out.to_str().unwrap(), "--report", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!json.exists() && !out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind: {leftovers:?}");
}

#[test]
fn the_table_summarizes_remarks_and_remarks_lists_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, json) = (dir.path().join("id.onnx"), dir.path().join("o.onnx"), dir.path().join("r.json"));
    let m = model(vec![node("Identity", "id", &["x"], &["y"])], vec![], "y");
    std::fs::write(&input, m.encode_to_vec()).unwrap();
    let (i, o, j) = (input.to_str().unwrap(), out.to_str().unwrap(), json.to_str().unwrap());
    let reason = "cleanup: identity: Identity 'id': graph output 'y' is a copy of 'x', which cannot take its name\n";
    let r = qdqc(&["compile", i, "-o", o, "--report", j]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains(&format!("remarks by rule: identity 1\n  {reason}")), "{text}");
    let (ops, _) = table_rows(&text);
    assert!(ops.is_empty(), "nothing changed: {text}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["remarks_by_rule"]["identity"], 1);
    assert_eq!(v["remarks"][0]["reason"], "graph output 'y' is a copy of 'x', which cannot take its name");
    // With --remarks the full list is printed once, and the table keeps only the counts.
    let r = qdqc(&["compile", i, "-o", o, "--remarks"]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(text.matches(reason).count(), 1, "{text}");
    assert!(text.contains("remarks by rule: identity 1\n"), "{text}");
}

#[test]
fn the_report_counts_com_microsoft_ops_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("transformer_block.u8.pt.onnx");
    let (out, json) = (dir.path().join("o.onnx"), dir.path().join("r.json"));
    for target in ["ort", "onnx"] {
        let args = ["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--target", target, "--report"];
        let o = qdqc(&[&args[..], &[json.to_str().unwrap()]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        // Counted independently: the nodes of the written file in the com.microsoft domain.
        let written = qdqc::ir::onnx::read_proto(&out).unwrap();
        let ms = written.graph.unwrap().node.iter().filter(|n| n.domain.as_deref() == Some("com.microsoft")).count();
        assert_eq!(r["microsoft_ops_after"], ms as u64, "{target}: {r}");
        assert_eq!(r["microsoft_ops_before"], 0, "{target}");
        if target == "onnx" {
            assert_eq!(ms, 0, "--target onnx wrote com.microsoft ops");
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let (_, totals) = table_rows(&text);
        assert!(totals.contains(&("com.microsoft ops".into(), 0, ms as u64)), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs never touch inputs; results are never lost.

/// A copy of `tests/fixtures/external_data.onnx` and its side file in a fresh folder.
fn external_pair() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["external_data.onnx", "external_data.onnx.data"] {
        std::fs::copy(fixture(f), dir.path().join(f)).unwrap();
    }
    let m = dir.path().join("external_data.onnx");
    (dir, m)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The data-loss case: the output beside a model with external data leaves the input intact.
#[test]
fn compile_beside_a_model_with_external_data_leaves_it_intact() {
    let (dir, m) = external_pair();
    let before = [std::fs::read(&m).unwrap(), std::fs::read(dir.path().join("external_data.onnx.data")).unwrap()];
    let out = dir.path().join("compiled.onnx");
    for mode in ["keep", "inline", "file"] {
        let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--external-data", mode]);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        let after = [std::fs::read(&m).unwrap(), std::fs::read(dir.path().join("external_data.onnx.data")).unwrap()];
        assert!(after == before, "{mode}: the input changed");
        // Both models still load and run, and the compiled one verifies against the input.
        let v = qdqc(&["verify", m.to_str().unwrap(), out.to_str().unwrap(), "--samples", "1"]);
        assert_eq!(v.status.code(), Some(0), "{mode}: {}", stderr(&v));
    }
}

#[test]
fn compile_over_its_input_is_refused_and_in_place_replaces_it() {
    let (dir, m) = external_pair();
    let ms = m.to_str().unwrap();
    let original = dir.path().join("original.onnx");
    let before = std::fs::read(&m).unwrap();
    for args in [
        vec!["compile", ms, "-o", ms],
        vec!["compile", ms, "-o", &format!("{}/./external_data.onnx", dir.path().display())],
    ] {
        let o = qdqc(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("--in-place") && err.lines().count() == 1, "{err}");
        assert_eq!(std::fs::read(&m).unwrap(), before, "the input changed");
        assert_eq!(listing(dir.path()), ["external_data.onnx", "external_data.onnx.data"]);
    }
    // --in-place: keep a copy of the original to verify against (its side file has a new name).
    let mut orig = qdqc::ir::onnx::read_proto(&m).unwrap();
    for t in &mut orig.graph.as_mut().unwrap().initializer {
        for e in &mut t.external_data {
            if e.key.as_deref() == Some("location") {
                e.value = Some("original.data".into());
            }
        }
    }
    std::fs::write(&original, orig.encode_to_vec()).unwrap();
    std::fs::copy(dir.path().join("external_data.onnx.data"), dir.path().join("original.data")).unwrap();
    let o = qdqc(&["compile", ms, "--in-place"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        ["external_data.onnx", "external_data.onnx.1.data", "original.data", "original.onnx"]
    );
    let v = qdqc(&["verify", original.to_str().unwrap(), ms, "--samples", "2"]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    assert!(qdqc(&["compile", ms, "--in-place", "-o", ms]).status.code() == Some(2), "--in-place with -o");
}

#[test]
fn a_failed_verification_prints_its_table_writes_the_report_and_exits_1_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("o.onnx"), dir.path().join("r.json"));
    let m = fixture("resnet_block.u8.pt.onnx");
    // Folding the BatchNormalizations the quantizer quantized drops a rounding step: beyond 1 step.
    let base = [
        "compile",
        m.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "fold-bn-qdq,fuse,dce",
        "--approx",
        "fold-bn-qdq",
    ];
    for force in [false, true] {
        let mut args = base.to_vec();
        args.extend(["--verify", "2", "--report", report.to_str().unwrap()]);
        if force {
            args.push("--force");
        }
        let o = qdqc(&args);
        let (text, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert_eq!(o.status.code(), Some(1), "force {force}: {err}");
        assert!(
            err.starts_with("qdqc: error: ") && err.contains("verification failed") && err.lines().count() == 1,
            "{err}"
        );
        assert!(text.contains("FAIL") && text.contains("beyond tolerance"), "the table is printed: {text}");
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(r["verify"]["passed"], false, "{r}");
        assert_eq!(out.exists(), force, "the output is written only with --force");
        assert_eq!(err.contains("written anyway"), force, "{err}");
        std::fs::remove_file(&report).unwrap();
    }
}

#[test]
fn zero_samples_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("resnet_block.u8.pc.onnx");
    let out = dir.path().join("o.onnx");
    let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--verify", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());
    let o = qdqc(&["verify", m.to_str().unwrap(), m.to_str().unwrap(), "--samples", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // An inputs folder with no .npy files compares nothing either.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = qdqc(&["verify", m.to_str().unwrap(), m.to_str().unwrap(), "--inputs", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn output_paths_are_checked_before_any_work() {
    let dir = tempfile::Builder::new().prefix("qdqc-cli").tempdir().unwrap();
    let m = fixture("resnet_block.u8.pc.onnx");
    let (ms, out) = (m.to_str().unwrap(), dir.path().join("o.onnx"));
    let os = out.to_str().unwrap();
    let a_file = dir.path().join("a_file");
    std::fs::write(&a_file, b"x").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--report".into(), dir.path().join("missing/r.json").display().to_string()], "does not exist"),
        (vec!["--report".into(), dir.path().display().to_string()], "is a directory"),
        (vec!["--report".into(), os.into()], "is also the input or the output"),
        (vec!["--report".into(), ms.into()], "is also the input or the output"),
        (vec!["--report".into(), a_file.join("r.json").display().to_string()], "does not exist"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["compile", ms, "-o", os];
        args.extend(extra.iter().map(String::as_str));
        let o = qdqc(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle) && err.lines().count() == 1, "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}: the model was written before the report failed");
    }
    for bad_out in [dir.path().join("missing/o.onnx"), dir.path().to_path_buf(), a_file.join("o.onnx")] {
        let o = qdqc(&["compile", ms, "-o", bad_out.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains(".tmp") && err.lines().count() == 1, "no temporary names: {err}");
    }
    assert_eq!(listing(dir.path()), ["a_file"], "nothing left behind");
}

#[test]
fn a_folder_as_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["show", "stats"] {
        let o = qdqc(&[cmd, dir.path().to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("is a directory, not a regular file"), "{}", stderr(&o));
    }
}

#[test]
fn empty_pass_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    for spec in ["", "fuse,,dce", "fuse,", "none,dce"] {
        let o = qdqc(&[
            "compile",
            fixture("resnet_block.u8.pc.onnx").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--passes",
            spec,
        ]);
        assert_eq!(o.status.code(), Some(2), "{spec:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad pass list"), "{}", stderr(&o));
        assert!(!out.exists());
    }
}

#[test]
fn diff_exits_1_when_the_models_differ() {
    let (a, b) = (fixture("resnet_block.u8.pc.onnx"), fixture("resnet_block.u8.pt.onnx"));
    let o = qdqc(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = qdqc(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!o.stdout.is_empty());
}

/// A node name holding a newline and a fake error line is printed escaped, on one line.
#[test]
fn names_in_errors_are_escaped() {
    let name = "evil\nqdqc: error: fake\u{1b}[2J";
    let m = model(vec![node("Relu", name, &["nowhere"], &["y"])], vec![], "y");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.onnx");
    std::fs::write(&input, m.encode_to_vec()).unwrap();
    let o = qdqc(&["show", input.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(r"evil\nqdqc: error: fake\u{1b}[2J"), "{err}");
}

/// Messages never show Rust's debug text.
#[test]
fn no_debug_text_in_messages() {
    let (dir, m) = external_pair();
    let data = dir.path().join("external_data.onnx.data");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() - 1]).unwrap();
    let o = qdqc(&["show", m.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("past the end") && !err.contains("Some("), "{err}");
}

/// The progress bar appears only while a verification runs long: a plain compile, or a quick
/// verification, prints nothing on a terminal's stderr.
#[test]
fn no_progress_bar_for_quick_work() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not available to give qdqc a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let bin = env!("CARGO_BIN_EXE_qdqc");
    for extra in ["", " --verify 1"] {
        let cmd = format!(
            "{bin} compile {} -o {} >/dev/null{extra}",
            fixture("resnet_block.u8.pc.onnx").display(),
            out.display()
        );
        let cmd = cmd.replace(" >/dev/null --verify 1", " --verify 1 >/dev/null");
        let o = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        let shown = String::from_utf8_lossy(&o.stdout);
        assert!(!shown.contains("verifying") && !shown.contains("samples"), "{cmd}: {shown}");
    }
}

// ---- what `compile` refuses to compile (qdqc::ir::validate) -----------------------------------

fn scalar(name: &str, data_type: i32, raw: &[u8]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(data_type),
        raw_data: Some(raw.to_vec().into()),
        ..Default::default()
    }
}

fn opset(domain: &str, version: i64) -> proto::OperatorSetIdProto {
    proto::OperatorSetIdProto { domain: Some(domain.into()), version: Some(version) }
}

/// `x → QuantizeLinear 'q' → DequantizeLinear 'dq' → Relu 'relu' → y`, importing `opsets`.
fn qdq_model(opsets: Vec<proto::OperatorSetIdProto>) -> ModelProto {
    let nodes = vec![
        node("QuantizeLinear", "q", &["x", "s", "z"], &["xq"]),
        node("DequantizeLinear", "dq", &["xq", "s", "z"], &["xd"]),
        node("Relu", "relu", &["xd"], &["y"]),
    ];
    let consts = vec![scalar("s", 1, &0.5f32.to_le_bytes()), scalar("z", 2, &[128])];
    ModelProto { opset_import: opsets, ..model(nodes, consts, "y") }
}

/// Checks that `compile` (default pipeline) refuses `m`: exit 2, exactly `qdqc: error: PATH: msg`
/// on one line, no output written. `show` and `compile --passes none` (a lossless round trip)
/// still take it: they do not validate.
#[track_caller]
fn refuses_to_compile(name: &str, m: &ModelProto, msg: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, m.encode_to_vec()).unwrap();
    let (i, out) = (input.to_str().unwrap(), dir.path().join("out.onnx"));
    let o = qdqc(&["compile", i, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
    assert_eq!(stderr(&o), format!("qdqc: error: {i}: {msg}\n"), "{name}");
    assert!(!out.exists(), "{name}: no output may be written");
    let o = qdqc(&["show", i]);
    assert_eq!(o.status.code(), Some(0), "show {name}: {}", stderr(&o));
    let o = qdqc(&["compile", i, "-o", out.to_str().unwrap(), "--passes", "none"]);
    assert_eq!(o.status.code(), Some(0), "compile --passes none {name}: {}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), m.encode_to_vec(), "{name}: the round trip changed the model");
}

#[test]
fn compile_refuses_an_opset_without_quantize_linear() {
    refuses_to_compile(
        "opset7.onnx",
        &qdq_model(vec![opset("", 7)]),
        "node 'q' (QuantizeLinear): QuantizeLinear does not exist at ai.onnx opset 7 (ai.onnx has it from opset 10): \
         the model's opset_import does not match its nodes",
    );
}

#[test]
fn compile_refuses_opsets_outside_13_to_28() {
    refuses_to_compile(
        "opset11.onnx",
        &qdq_model(vec![opset("", 11)]),
        "ai.onnx opset 11 is older than qdqc compiles (13 to 28): upgrade the model with \
         onnx.version_converter.convert_version(model, 13)",
    );
    refuses_to_compile(
        "opset99.onnx",
        &qdq_model(vec![opset("", 99)]),
        "ai.onnx opset 99 is newer than qdqc knows (13 to 28, the newest of onnx 1.23.2); \
         onnx.version_converter.convert_version(model, 28) may convert it down",
    );
}

#[test]
fn compile_refuses_a_model_without_a_default_domain_opset() {
    refuses_to_compile(
        "no_default.onnx",
        &qdq_model(vec![opset("com.microsoft", 1)]),
        "the model imports no ai.onnx opset (opset_import has no entry for the domain ''): qdqc compiles ai.onnx \
         opsets 13 to 28",
    );
}

#[test]
fn compile_refuses_per_channel_dequantize_linear_before_opset_13() {
    // onnxruntime's quantizer output for per-channel weights, with the opset left at 12.
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![4, 4],
        data_type: Some(3),
        raw_data: Some((1u8..=16).collect::<Vec<u8>>().into()),
        ..Default::default()
    };
    let ws = TensorProto {
        name: Some("ws".into()),
        dims: vec![4],
        data_type: Some(1),
        raw_data: Some([0.5f32, 0.25, 0.125, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    };
    let mut dq = node("DequantizeLinear", "wdq", &["w", "ws"], &["wd"]);
    dq.attribute.push(proto::AttributeProto {
        name: Some("axis".into()),
        r#type: Some(proto::attribute_proto::AttributeType::Int as i32),
        i: Some(0),
        ..Default::default()
    });
    let nodes = vec![dq, node("MatMul", "mm", &["x", "wd"], &["y"])];
    let m = ModelProto { opset_import: vec![opset("", 12)], ..model(nodes, vec![w, ws], "y") };
    refuses_to_compile(
        "pc12.onnx",
        &m,
        "node 'wdq' (DequantizeLinear): attribute 'axis' does not exist at ai.onnx opset 12 (DequantizeLinear has \
         it from opset 13): upgrade the model with onnx.version_converter.convert_version(model, 13)",
    );
}

#[test]
fn compile_refuses_a_graph_without_outputs() {
    let mut m = qdq_model(vec![opset("", 17)]);
    m.graph.as_mut().unwrap().output.clear();
    refuses_to_compile(
        "no_outputs.onnx",
        &m,
        "the graph has no outputs: nothing it computes can be read, so there is nothing to compile",
    );
}

#[test]
fn compile_takes_the_same_model_at_a_supported_opset() {
    // The models above are refused for what they claim, not for their graph.
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("m.onnx"), dir.path().join("o.onnx"));
    std::fs::write(&input, qdq_model(vec![opset("", 13)]).encode_to_vec()).unwrap();
    let o = qdqc(&["compile", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.exists());
}

/// A compiled model says what made it; a round trip adds nothing.
#[test]
fn compiled_models_carry_version_options_kernel_model_and_cost_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let m = fixture("resnet_block.u8.pc.onnx");
    let props = |path: &Path| -> Vec<(String, String)> {
        let p = qdqc::ir::onnx::read_proto(path).unwrap();
        p.metadata_props
            .iter()
            .map(|e| (e.key.clone().unwrap_or_default(), e.value.clone().unwrap_or_default()))
            .collect()
    };
    let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--approx", "bn-as-conv"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = props(&out);
    let get = |k: &str| got.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("qdqc.version"), env!("CARGO_PKG_VERSION"));
    assert!(get("qdqc.options").contains("--target ort --ort-level all --approx bn-as-conv"), "{got:?}");
    assert_eq!(get("qdqc.kernel_model"), qdqc::KERNEL_MODEL);
    assert_eq!(get("qdqc.cost_table"), qdqc::passes::cost::table_name());
    // Compiling the output again replaces the entries instead of adding more.
    let again = dir.path().join("again.onnx");
    assert_eq!(qdqc(&["compile", out.to_str().unwrap(), "-o", again.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(props(&again).iter().filter(|(k, _)| k.starts_with("qdqc.")).count(), 4);
    let rt = dir.path().join("rt.onnx");
    assert_eq!(
        qdqc(&["compile", m.to_str().unwrap(), "-o", rt.to_str().unwrap(), "--passes", "none"]).status.code(),
        Some(0)
    );
    assert!(!props(&rt).iter().any(|(k, _)| k.starts_with("qdqc.")));
}

#[test]
fn compile_help_lists_every_approximation_with_its_worst_case() {
    let o = qdqc(&["compile", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for a in qdqc::passes::APPROXIMATIONS {
        assert!(help.contains(&format!("{}: ", a.name)), "--help lacks {}:\n{help}", a.name);
    }
    assert!(help.contains("Worst case: 1 output step"), "{help}");
}

/// A stand-in for Python that prints a measurement with the given ratio (the measuring itself is
/// checked against onnxruntime in CI: scripts/check_speed.sh).
#[cfg(unix)]
fn fake_python(dir: &Path, ratio: f64) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("python-{ratio}"));
    let json = format!(
        r#"{{"reference": {{"median_s": 0.001}}, "models": [{{"median_s": {}, "ratio": {ratio}, "ratio_p10": {}, "ratio_p90": {}}}]}}"#,
        0.001 * ratio,
        ratio * 0.9,
        ratio * 1.1
    );
    std::fs::write(&p, format!("#!/bin/sh\ncat <<'JSON'\n{json}\nJSON\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[cfg(unix)]
#[test]
fn check_speed_with_fallback_keeps_the_input_when_the_output_is_slower() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("resnet_block.u8.pc.onnx");
    let nodes = |p: &Path| qdqc::load(p).unwrap().graph.op_count();
    let meta = |p: &Path| qdqc::ir::onnx::read_proto(p).unwrap().metadata_props.len();
    let compile = |out: &Path, ratio: f64, fallback: bool| {
        let py = fake_python(dir.path(), ratio);
        let mut args = vec!["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--check-speed"];
        args.extend(["--python", py.to_str().unwrap()]);
        if fallback {
            args.push("--fallback");
        }
        qdqc(&args)
    };
    let slower = dir.path().join("slower.onnx");
    let o = compile(&slower, 1.5, true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1.500× the input's latency"), "{o:?}");
    assert!(stderr(&o).contains("wrote the input model unchanged (--fallback)"), "{}", stderr(&o));
    assert_eq!(nodes(&slower), nodes(&m));
    assert_eq!(meta(&slower), meta(&m), "the input's metadata, no qdqc entries");
    // Without --fallback the slower output is written, and said to be slower.
    let kept = dir.path().join("kept.onnx");
    let o = compile(&kept, 1.5, false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(nodes(&kept) < nodes(&m) && !stderr(&o).contains("warning"));
    // A faster output is written with --fallback.
    let faster = dir.path().join("faster.onnx");
    let o = compile(&faster, 0.7, true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(nodes(&faster) < nodes(&m));
}

#[test]
fn check_speed_without_a_usable_python_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let m = fixture("resnet_block.u8.pc.onnx");
    for py in ["/nonexistent/python", "false"] {
        let o = qdqc(&["compile", m.to_str().unwrap(), "-o", out.to_str().unwrap(), "--check-speed", "--python", py]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).starts_with("qdqc: error: --check-speed: "), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(!out.exists(), "nothing is written");
    }
}

#[test]
fn claimed_sizes_are_refused_before_the_interpreter_allocates() {
    let dir = tempfile::tempdir().unwrap();
    // An input that claims 2^64 elements: refused by name when random inputs are made.
    let mut m = model(vec![node("Relu", "relu", &["x"], &["y"])], vec![], "y");
    let huge = qdqc::ir::TensorType::known(qdqc::ir::DType::F32, &[1 << 32, 1 << 32]);
    m.graph.as_mut().unwrap().input[0].r#type = Some(qdqc::ir::onnx::type_proto(&huge));
    m.graph.as_mut().unwrap().output[0].r#type = Some(qdqc::ir::onnx::type_proto(&huge));
    let path = dir.path().join("huge.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let p = path.to_str().unwrap();
    let out = dir.path().join("out");
    for args in [
        vec!["run", p, "--random", "--out", out.to_str().unwrap()],
        vec!["verify", p, p],
        vec!["compile", p, "-o", dir.path().join("c.onnx").to_str().unwrap(), "--verify", "1"],
    ] {
        let o = qdqc(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("'x'") && err.contains("exceeds the limit"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(!dir.path().join("c.onnx").exists());
    // The limit is the user's: a [1,4] input fits the default and not 16 bytes.
    let small = dir.path().join("small.onnx");
    std::fs::write(&small, model(vec![node("Relu", "relu", &["x"], &["y"])], vec![], "y").encode_to_vec()).unwrap();
    let s = small.to_str().unwrap();
    let o = qdqc(&["run", s, "--random", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = qdqc(&["run", s, "--random", "--max-tensor-bytes", "16", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("limit of 16 bytes"), "{}", stderr(&o));
}

fn accuracy_json(args: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("acc.json");
    let mut all = vec!["accuracy"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let o = qdqc(&all);
    assert_eq!(o.status.code(), Some(0), "{all:?}: {}", stderr(&o));
    let text = std::fs::read_to_string(&json).unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), serde_json::from_str(&text).unwrap())
}

#[test]
fn accuracy_measures_the_qdq_and_compiled_models_against_the_float_one() {
    let dir = tempfile::tempdir().unwrap();
    let qdq = fixture("resnet_block.u8.pt.onnx");
    let compiled = dir.path().join("compiled.onnx");
    let o = qdqc(&["compile", qdq.to_str().unwrap(), "-o", compiled.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let float = fixture("resnet_block.float.onnx");
    let (table, j) = accuracy_json(&[
        qdq.to_str().unwrap(),
        compiled.to_str().unwrap(),
        "--float",
        float.to_str().unwrap(),
        "--samples",
        "3",
        "--dim",
        "2",
        "--topk",
    ]);
    assert_eq!(j["schema_version"], 2);
    assert_eq!(j["samples"], 3);
    assert_eq!(j["inputs"]["source"], "random");
    let out = &j["outputs"][0];
    assert_eq!(out["name"], "logits");
    assert_eq!(out["shape"], serde_json::json!([2, 10]));
    for pair in ["qdq", "compiled"] {
        let m = &out[pair];
        let sqnr = m["sqnr_db"].as_f64().unwrap_or_else(|| panic!("{pair}: finite SQNR expected: {m}"));
        assert!(sqnr > 10.0 && sqnr < 80.0, "{pair}: {m}");
        let cos = m["cosine"].as_f64().unwrap();
        assert!(cos > 0.9 && cos <= 1.0, "{pair}: {m}");
        for k in ["max_abs_error", "mean_abs_error"] {
            assert!(m[k].as_f64().unwrap().is_finite() && m[k].as_f64().unwrap() > 0.0, "{pair} {k}: {m}");
        }
        let (t1, t5) = (m["top1"].as_f64().unwrap(), m["top5"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&t1) && t1 <= t5 && t5 <= 1.0, "{pair}: {m}");
        assert_eq!(m["rows"], 6);
    }
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("logits")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].contains("qdq") && rows[1].contains("compiled") && table.contains("top-5"), "{table}");
    assert!(table.contains("3 samples (random, seed 0)"), "{table}");
}

#[test]
fn accuracy_of_a_model_against_itself_is_infinite_sqnr_and_cosine_one() {
    let float = fixture("resnet_block.float.onnx");
    let f = float.to_str().unwrap();
    let (table, j) = accuracy_json(&[f, f, "--float", f, "--samples", "2", "--input-dist", "input=uniform:0,1"]);
    for pair in ["qdq", "compiled"] {
        let m = &j["outputs"][0][pair];
        assert_eq!(m["sqnr_db"], "inf", "{m}");
        assert_eq!(m["cosine"], 1.0, "{m}");
        assert_eq!(m["max_abs_error"], 0.0, "{m}");
        assert!(m["top1"].is_null(), "{m}");
    }
    assert_eq!(j["inputs"]["dists"][0], serde_json::json!(["input", {"kind": "uniform", "lo": 0.0, "hi": 1.0}]));
    assert!(table.contains(" inf "), "{table}");
}

#[test]
fn accuracy_and_verify_read_npz_and_npy_samples() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("npz");
    std::fs::create_dir(&npz).unwrap();
    write_npz(&npz.join("a.npz"), &[("input", wave(&[1, 3, 32, 32], 0.0))], false);
    write_npz(&npz.join("b.npz"), &[("input", wave(&[2, 3, 32, 32], 1.0))], true);
    let npy = dir.path().join("npy");
    for (k, phase) in [(0, 0.0), (1, 1.0)] {
        let d = npy.join(format!("s{k}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("input.npy"), wave(&[1, 3, 32, 32], phase).to_npy().unwrap()).unwrap();
    }
    let (qdq, float) = (fixture("resnet_block.u8.pt.onnx"), fixture("resnet_block.float.onnx"));
    let (q, f) = (qdq.to_str().unwrap(), float.to_str().unwrap());
    let (_, j) = accuracy_json(&[q, "--float", f, "--inputs", npz.to_str().unwrap()]);
    assert_eq!((j["samples"].as_u64(), j["inputs"]["source"].as_str()), (Some(2), Some("files")));
    assert_eq!(j["outputs"][0]["elements"], 30);
    assert!(j["outputs"][0]["qdq"]["sqnr_db"].as_f64().unwrap() > 10.0, "{j}");
    assert!(j["outputs"][0]["compiled"].is_null());
    let (_, j) = accuracy_json(&[q, "--float", f, "--inputs", npy.to_str().unwrap()]);
    assert_eq!(j["samples"], 2);
    for dir in [&npz, &npy] {
        let o = qdqc(&["verify", q, q, "--inputs", dir.to_str().unwrap()]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{}{out}", stderr(&o));
        assert!(out.contains("over 2 samples"), "{out}");
    }
}

#[test]
fn accuracy_refuses_inputs_and_models_that_do_not_fit_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (qdq, float) = (fixture("resnet_block.u8.pt.onnx"), fixture("resnet_block.float.onnx"));
    let (q, f) = (qdq.to_str().unwrap(), float.to_str().unwrap());
    let case = |name: &str, members: &[(&str, qdqc::eval::Value)]| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        write_npz(&d.join("s0.npz"), members, false);
        d
    };
    let f64_input =
        qdqc::eval::Value::from_f64(qdqc::ir::DType::F64, &[1, 3, 32, 32], &vec![0.5; 3 * 32 * 32]).unwrap();
    let mut nan = wave(&[1, 3, 32, 32], 0.0).to_f32_vec().unwrap();
    nan[5] = f32::INFINITY;
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (case("name", &[("image", wave(&[1, 3, 32, 32], 0.0))]), vec!["s0.npz", "input 'image'", "no such input"]),
        (
            case("shape", &[("input", wave(&[1, 3, 16, 16], 0.0))]),
            vec!["s0.npz", "input 'input'", "shape [1, 3, 16, 16]"],
        ),
        (case("dtype", &[("input", f64_input)]), vec!["s0.npz", "input 'input'", "is f"]),
        (
            case("nan", &[("input", qdqc::eval::Value::f32(&[1, 3, 32, 32], nan).unwrap())]),
            vec!["s0.npz", "element 5 is inf"],
        ),
        (case("missing", &[]), vec!["s0.npz", "no input arrays"]),
        (empty.clone(), vec!["empty", "holds no input samples"]),
    ];
    for (d, needles) in cases {
        let o = qdqc(&["accuracy", q, "--float", f, "--inputs", d.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", d.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("qdqc: error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "{}: expected '{n}' in {err}", d.display());
        }
    }
    // A float model with another interface, an unknown --input-dist, a bad distribution.
    let other = fixture("transformer_block.float.onnx");
    let runs: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![q, "--float", other.to_str().unwrap()], vec!["transformer_block.float.onnx", "input 'input'"]),
        (vec![q, "--float", f, "--input-dist", "image=normal"], vec!["input 'image'", "no such input"]),
        (vec![q, "--float", f, "--input-dist", "input=uniform:3,1"], vec!["uniform:3,1"]),
        (vec![q, "--float", f, "--inputs", empty.to_str().unwrap(), "--samples", "3"], vec!["--samples"]),
    ];
    for (args, needles) in runs {
        let mut all = vec!["accuracy"];
        all.extend(args.iter().copied());
        let o = qdqc(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: expected '{n}' in {err}");
        }
    }
}

#[test]
fn accuracy_layers_measure_every_quantized_tensor_and_rank_them() {
    let (qdq, float) = (fixture("mobilenet_block.u8.pt.onnx"), fixture("mobilenet_block.float.onnx"));
    let args = |seed: &'static str| {
        vec![
            qdq.to_str().unwrap().to_string(),
            "--float".into(),
            float.to_str().unwrap().into(),
            "--samples".into(),
            "16".into(),
            "--seed".into(),
            seed.into(),
            "--layers".into(),
        ]
    };
    let mut top3 = Vec::new();
    for seed in ["0", "1", "2"] {
        let a = args(seed);
        let (table, j) = accuracy_json(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let layers = j["layers"].as_array().expect("a layers array");
        assert!(layers.len() >= 5, "{table}");
        let mut ranks: Vec<u64> = layers.iter().map(|l| l["rank"].as_u64().unwrap()).collect();
        ranks.sort();
        assert_eq!(ranks, (1..=layers.len() as u64).collect::<Vec<_>>(), "ranks are a permutation");
        // The graph input inherits nothing: its own error is its accumulated error.
        let input = &layers[0];
        assert_eq!((input["op"].as_str(), input["own_db"].as_f64()), (Some("input"), input["accumulated_db"].as_f64()));
        for l in layers {
            let (acc, own) = (l["accumulated_db"].as_f64().unwrap(), l["own_db"].as_f64().unwrap());
            assert!(acc > 10.0 && own > 10.0, "{l}");
            assert!(l["elements"].as_u64().unwrap() > 0);
        }
        assert!(table.contains("accumulated dB") && table.contains("own dB"), "{table}");
        let mut best: Vec<(u64, String)> =
            layers.iter().map(|l| (l["rank"].as_u64().unwrap(), l["tensor"].as_str().unwrap().to_string())).collect();
        best.sort();
        top3.push(best.into_iter().take(3).map(|(_, t)| t).collect::<std::collections::BTreeSet<_>>());
    }
    assert!(top3.windows(2).all(|w| w[0] == w[1]), "the 3 most sensitive tensors do not depend on the seed: {top3:?}");
}

#[test]
fn accuracy_layers_measure_the_compiled_model_through_its_own_quantization() {
    // int8 tensors of the QDQ model become uint8 (zero point + 128) in the compiled one; each
    // is dequantized with its own parameters. Exact (-O2) gives the QDQ model's numbers (up to
    // ties);
    // `--approx all` may not, and both tensors differ from the float model.
    let dir = tempfile::tempdir().unwrap();
    let (qdq, float) = (fixture("resnet_block.i8.pc.onnx"), fixture("resnet_block.float.onnx"));
    for (flags, exact) in [(&[][..], true), (&["--approx", "all"][..], false)] {
        let out = dir.path().join("c.onnx");
        let mut args = vec!["compile", qdq.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        assert_eq!(qdqc(&args).status.code(), Some(0));
        let (table, j) = accuracy_json(&[
            qdq.to_str().unwrap(),
            out.to_str().unwrap(),
            "--float",
            float.to_str().unwrap(),
            "--samples",
            "4",
            "--layers",
        ]);
        assert!(table.contains("compiled dB"), "{table}");
        let layers = j["layers"].as_array().unwrap();
        let measured: Vec<_> = layers.iter().filter(|l| !l["compiled_db"].is_null()).collect();
        assert!(measured.len() + 2 >= layers.len() && measured.len() >= 8, "{table}");
        for l in measured {
            let (c, a) = (l["compiled_db"].as_f64().unwrap(), l["accumulated_db"].as_f64().unwrap());
            if exact {
                // Equal up to rounding ties, which the float reference breaks either way.
                assert!((c - a).abs() < 0.01, "{l}");
            } else {
                assert!(c > 20.0 && (c - a).abs() < 3.0, "{l}");
            }
        }
    }
}

#[test]
fn compile_verifies_on_given_samples() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    let npy = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        qdqc::eval::Value::f32(shape, (0..n).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect()).unwrap().to_npy().unwrap()
    };
    for k in 0..2 {
        let s = samples.join(format!("s{k}"));
        std::fs::create_dir(&s).unwrap();
        std::fs::write(s.join("input.npy"), npy(&[1, 3, 32, 32])).unwrap();
    }
    let m = fixture("resnet_block.u8.pt.onnx");
    let out = dir.path().join("c.onnx");
    let args = |s: &Path| {
        vec![
            "compile".to_string(),
            m.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
            "--verify".into(),
            "1".into(),
            "--verify-inputs".into(),
            s.to_str().unwrap().into(),
        ]
    };
    let a = args(&samples);
    let o = qdqc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("over 2 samples"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    // A sample naming an input the model does not have: exit 2, nothing written.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("nope.npy"), npy(&[1, 3, 32, 32])).unwrap();
    let a = args(&bad);
    let o = qdqc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Checked before anything runs, naming the file.
    assert!(stderr(&o).contains("nope.npy: input 'nope': the model has no such input"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn accuracy_html_is_one_self_contained_page_charting_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (qdq, float) = (fixture("mobilenet_block.u8.pt.onnx"), fixture("mobilenet_block.float.onnx"));
    let compiled = dir.path().join("c.onnx");
    assert_eq!(qdqc(&["compile", qdq.to_str().unwrap(), "-o", compiled.to_str().unwrap()]).status.code(), Some(0));
    let (html, json) = (dir.path().join("r.html"), dir.path().join("r.json"));
    let o = qdqc(&[
        "accuracy",
        qdq.to_str().unwrap(),
        compiled.to_str().unwrap(),
        "--float",
        float.to_str().unwrap(),
        "--samples",
        "4",
        "--layers",
        "--topk",
        "--html",
        html.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let layers = j["layers"].as_array().unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    // Nothing is fetched: the only URL is the SVG namespace.
    assert_eq!(page.matches("http").count(), 1, "{page}");
    assert!(!page.contains("<script") && !page.contains("src="));
    // One chart, two series with a point per layer, the ranked table with a row per layer.
    assert_eq!(page.matches("<svg").count(), 1);
    // The compiled model's series: a point per tensor it keeps under the QDQ model's name.
    let compiled_rows: Vec<&serde_json::Value> = layers.iter().filter(|l| !l["compiled_db"].is_null()).collect();
    assert!(compiled_rows.len() + 2 >= layers.len(), "{layers:?}");
    // A series is drawn as one line per run of consecutive layers that have a value (so the
    // compiled one breaks where the compiled model has no tensor), and a point per value.
    let has = |series: &str, l: &serde_json::Value| series != "compiled" || !l["compiled_db"].is_null();
    for series in ["accumulated", "own", "compiled"] {
        let flags: Vec<bool> = layers.iter().map(|l| has(series, l)).collect();
        let runs: Vec<usize> = flags.split(|&f| !f).map(<[bool]>::len).filter(|&n| n >= 2).collect();
        let lines: Vec<usize> = page
            .split(&format!("<polyline class=\"{series}\""))
            .skip(1)
            .map(|line| line.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').count())
            .collect();
        assert_eq!(lines, runs, "{series}");
        assert_eq!(page.matches(&format!("({series}): ")).count(), flags.iter().filter(|&&f| f).count(), "{series}");
    }
    // The default compile is exact: each integer tensor dequantizes to the QDQ model's values
    // (up to rounding ties).
    for l in compiled_rows {
        assert!((l["compiled_db"].as_f64().unwrap() - l["accumulated_db"].as_f64().unwrap()).abs() < 0.01, "{l}");
    }
    for l in layers {
        let row = format!("<tr><td>{}</td><td>{}</td>", l["rank"], l["tensor"].as_str().unwrap());
        assert!(page.contains(&row), "{row}");
    }
    // The op table: QDQ model against compiled, e.g. the convs became QLinearConv.
    assert!(page.contains("<tr><td>QLinearConv</td><td>0</td>"), "{page}");
    let sqnr = j["outputs"][0]["qdq"]["sqnr_db"].as_f64().unwrap();
    assert!(page.contains(&format!("<td>{sqnr:.2}</td>")), "the output table holds the SQNR {sqnr:.2}");
}

#[test]
fn accuracy_labels_measure_each_models_task_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let (qdq, float) = (fixture("resnet_block.u8.pt.onnx"), fixture("resnet_block.float.onnx"));
    let (q, f) = (qdq.to_str().unwrap(), float.to_str().unwrap());
    let compiled = dir.path().join("c.onnx");
    assert_eq!(qdqc(&["compile", q, "-o", compiled.to_str().unwrap()]).status.code(), Some(0));
    // Six samples; the labels are the float model's own predictions (from `qdqc run`), the
    // third one changed: the float model then scores exactly 5/6.
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    let mut labels = Vec::new();
    for k in 0..6 {
        let x = wave(&[1, 3, 32, 32], k as f32 * 0.9);
        let file = dir.path().join(format!("x{k}.npy"));
        std::fs::write(&file, x.to_npy().unwrap()).unwrap();
        write_npz(&samples.join(format!("{k}.npz")), &[("input", x)], false);
        let out = dir.path().join(format!("run{k}"));
        let input = format!("input={}", file.display());
        let o = qdqc(&["run", f, "--input", &input, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let logits = qdqc::read_npy(&out.join("logits.npy")).unwrap().to_f64_vec().unwrap();
        let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        labels.push(if k == 2 { (best + 1) % logits.len() } else { best });
    }
    let file = dir.path().join("labels.txt");
    let text: String = labels.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, format!("# one class per sample\n{text}")).unwrap();
    let args = [q, compiled.to_str().unwrap(), "--float", f, "--inputs", samples.to_str().unwrap(), "--topk"];
    let mut with_labels = args.to_vec();
    with_labels.extend(["--labels", file.to_str().unwrap()]);
    let (table, j) = accuracy_json(&with_labels);
    let task = &j["task"];
    assert_eq!(task["rows"], 6, "{j}");
    assert_eq!(task["float"].as_f64().unwrap(), 5.0 / 6.0, "{j}");
    // The compiled model computes what the QDQ model computes.
    assert_eq!(task["qdq"], task["compiled"], "{j}");
    // The QDQ model's score follows from its top-1 agreement with the float model.
    let agree = (j["outputs"][0]["qdq"]["top1"].as_f64().unwrap() * 6.0).round();
    let qdq_score = task["qdq"].as_f64().unwrap() * 6.0;
    assert!((agree - 1.0..=agree).contains(&qdq_score.round()), "{j}");
    assert!(table.contains("task accuracy on 6 labelled rows"), "{table}");
    // A label count that is not one per row, or a line that is not a class: exit 2.
    for (content, needle) in
        [("1\n2\n", "holds 2 labels; the first output has 6 rows"), ("1\nbird\n", "line 2: 'bird'")]
    {
        std::fs::write(&file, content).unwrap();
        let mut a = args.to_vec();
        a.extend(["--labels", file.to_str().unwrap()]);
        let mut all = vec!["accuracy"];
        all.extend(a);
        let o = qdqc(&all);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("labels.txt") && stderr(&o).contains(needle), "{}", stderr(&o));
    }
}

#[test]
fn compile_verify_draws_random_inputs_from_input_dist() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.onnx");
    let m = fixture("resnet_block.u8.pt.onnx");
    let args = |dist: &str| {
        let mut a = vec!["compile".to_string(), m.to_str().unwrap().into(), "-o".into(), out.to_str().unwrap().into()];
        a.extend(["--verify".into(), "2".into(), "--input-dist".into(), dist.into()]);
        a
    };
    let run = |dist: &str| qdqc(&args(dist).iter().map(String::as_str).collect::<Vec<_>>());
    let o = run("input=uniform:-0.5,0.5");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("over 2 samples"));
    std::fs::remove_file(&out).unwrap();
    let o = run("nope=uniform:-0.5,0.5");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("input 'nope': the model has no such input"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn cli_conventions_pass_edits_quiet_and_all_ops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.onnx");
    let (m, o) = (fixture("resnet_block.i8.pc.onnx"), out.to_str().unwrap());
    let m = m.to_str().unwrap();
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    // -NAME removes a pass from the -O2 pipeline, +NAME appends one.
    let r = qdqc(&["compile", m, "-o", o, "--passes=-int8-to-uint8"]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(!stdout(&r).contains("int8-to-uint8 ("), "{}", stdout(&r));
    assert!(stdout(&r).contains("fuse ("), "{}", stdout(&r));
    let r = qdqc(&["compile", m, "-o", o, "-O3", "--passes", "-int8-to-uint8,+dce"]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stdout(&r).contains("saturate (") && !stdout(&r).contains("int8-to-uint8 ("), "{}", stdout(&r));
    for (args, needle) in [
        (vec!["--passes", "-nope"], "the -O2 pipeline has no pass 'nope'"),
        (vec!["--passes", "+nope"], "unknown pass 'nope'"),
        (vec!["--passes", "fuse,-dce"], "bad pass list"),
        (vec!["--passes", "fuse", "-O3"], "--passes LIST and -O3 both choose the pipeline"),
    ] {
        let mut a = vec!["compile", m, "-o", o];
        a.extend(args);
        let r = qdqc(&a);
        assert_eq!(r.status.code(), Some(2), "{a:?}: {}", stderr(&r));
        assert!(stderr(&r).contains(needle), "{a:?}: {}", stderr(&r));
    }
    // The table says which ops it hides; --all-ops lists them.
    let r = qdqc(&["compile", m, "-o", o]);
    let table = stdout(&r);
    assert!(table.contains("op types whose count did not change are not listed; --all-ops lists them"), "{table}");
    assert!(!table.contains("\nMaxPool "), "{table}");
    let r = qdqc(&["compile", m, "-o", o, "--all-ops"]);
    assert!(stdout(&r).contains("\nMaxPool "), "{}", stdout(&r));
    assert!(!stdout(&r).contains("are not listed"), "{}", stdout(&r));
    // --quiet: nothing on stdout, the output and the report still written.
    std::fs::remove_file(&out).unwrap();
    let report = dir.path().join("r.json");
    let r = qdqc(&["--quiet", "compile", m, "-o", o, "--verify", "2", "--report", report.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{}{}", stdout(&r), stderr(&r));
    assert!(out.exists() && report.exists());
    let r = qdqc(&["verify", m, o, "-q"]);
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stdout.is_empty());
    // Errors still reach stderr.
    let r = qdqc(&["-q", "compile", "missing.onnx", "-o", o]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).starts_with("qdqc: error: "), "{}", stderr(&r));
    // --color is global: before or after the subcommand.
    let a = fixture("resnet_block.u8.pt.onnx");
    let b = fixture("resnet_block.u8.pc.onnx");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let before = qdqc(&["--color", "always", "diff", a, b]);
    let after = qdqc(&["diff", a, b, "--color", "always"]);
    assert_eq!(before.status.code(), Some(1));
    assert_eq!(before.stdout, after.stdout);
    assert!(String::from_utf8_lossy(&before.stdout).contains("\u{1b}["), "colored");
    let plain = qdqc(&["diff", a, b, "--color", "never"]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\u{1b}["));
}

#[test]
fn every_json_document_carries_its_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("resnet_block.u8.pt.onnx");
    let m = m.to_str().unwrap();
    let out = dir.path().join("c.onnx");
    let o = out.to_str().unwrap();
    let (report, verify) = (dir.path().join("r.json"), dir.path().join("v.json"));
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let r = qdqc(&["compile", m, "-o", o, "--remarks", "--json", "--report", report.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(parse(&r.stdout)["schema_version"], 1);
    let rep = parse(&std::fs::read(&report).unwrap());
    assert_eq!(rep["schema_version"], 1);
    for field in ["before", "after", "passes", "changes_by_pass", "converged", "remarks", "approximations"] {
        assert!(rep.get(field).is_some(), "docs/json.md lists '{field}': {rep}");
    }
    assert_eq!(parse(&qdqc(&["stats", m, "--json"]).stdout)["schema_version"], 1);
    let r = qdqc(&["verify", m, o, "--json", verify.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let v = parse(&std::fs::read(&verify).unwrap());
    assert_eq!(v["schema_version"], 1);
    assert!(v["tensors"][0]["bit_equal"].is_number() && v["passed"] == true, "{v}");
}
