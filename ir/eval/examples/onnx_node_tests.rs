//! Runs ONNX's backend node tests through the interpreter: one directory per test with
//! `model.onnx` and `test_data_set_*/{input,output}_*.pb`, as onnx's case generator writes them
//! (`scripts/conformance.sh` generates them and runs this in CI).
//!
//! ```sh
//! cargo run --release -p qdqc-eval --example onnx_node_tests -- DATA_DIR [--filter TEXT] [--min-passed N]
//! ```
//!
//! A test is **skipped** only when the interpreter itself says it does not implement something
//! the model uses ([`qdqc_eval::EvalError::unsupported`]: an op without a kernel, a feature of
//! an op such as training-mode Dropout, an element type such as float8) or when a graph input or
//! output is not a tensor (sequence, optional, map: the interpreter computes on tensors). The
//! reason is what the interpreter named. Everything else the interpreter gets wrong — a load
//! error, a kernel error, a panic, a wrong dtype, shape or value — is a **failure**.
//!
//! Outputs are compared like onnx's own runner (`onnx/backend/test/runner/__init__.py`,
//! `assert_similar_outputs`, onnx 1.23.2): same dtype and shape, then
//! `|got − want| ≤ atol + rtol·|want|` with the test case's `rtol = 1e-3, atol = 1e-7`
//! (`onnx/backend/test/case/node/__init__.py`, `expect`), NaN equal to NaN; bfloat16 outputs use
//! `rtol = max(rtol, 2⁻⁶)` ("two bfloat16 ULPs", same runner function). Integer and bool outputs
//! must be equal (stricter than onnx's runner, which applies rtol to them too); strings equal.
//!
//! Prints one `FAIL name: why` line per failure, then `N passed, M failed, K skipped` and the
//! skipped tests grouped by reason. Exits 1 if any test failed (or fewer than `--min-passed`
//! passed), 2 on bad usage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use qdqc_eval::{DataError, EvalError, Interpreter, RunOptions, Value};
use qdqc_ir::proto::{type_proto, ModelProto, TensorProto};
use qdqc_ir::{DType, Tensor};

const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;
/// onnx's runner: `output_rtol = max(rtol, 2**-6)  # Two bfloat16 ULPs.`
const RTOL_BF16: f64 = 1.0 / 64.0;

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// Why a tensor file could not be read: unsupported element type (a skip) or anything else.
enum ReadError {
    Unsupported(String),
    Bad(String),
}

fn read_pb(path: &Path) -> Result<Value, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::Bad(format!("{}: {e}", path.display())))?;
    let proto =
        TensorProto::decode(bytes.as_slice()).map_err(|e| ReadError::Bad(format!("{}: {e}", path.display())))?;
    Value::from_tensor(&Tensor { proto, external: None }).map_err(|e: DataError| match e.unsupported() {
        Some(what) => ReadError::Unsupported(what),
        None => ReadError::Bad(format!("{}: {e}", path.file_name().unwrap().to_string_lossy())),
    })
}

fn compare(got: &Value, want: &Value) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} vs expected {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Err(format!("shape {:?} vs expected {:?}", got.shape(), want.shape()));
    }
    if let (Value::Str(a), Value::Str(b)) = (got, want) {
        return match a.iter().zip(b.iter()).position(|(x, y)| x != y) {
            None => Ok(()),
            Some(i) => Err(format!("element {i}: {:?} vs expected {:?}", a.iter().nth(i), b.iter().nth(i))),
        };
    }
    if want.dtype().is_int() {
        // Compared as integers: 64-bit values do not all survive a trip through f64.
        let (g, w) = (got.to_i64_vec().map_err(|e| e.to_string())?, want.to_i64_vec().map_err(|e| e.to_string())?);
        return match g.iter().zip(&w).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!("element {i}: {} vs expected {}", g[i], w[i])),
        };
    }
    let g = got.to_f64_vec().map_err(|e| e.to_string())?;
    let w = want.to_f64_vec().map_err(|e| e.to_string())?;
    let exact = !want.dtype().is_float();
    let rtol = if want.dtype() == DType::BF16 { RTOL_BF16 } else { RTOL };
    let bad: Vec<usize> = (0..g.len())
        .filter(|&i| {
            let (a, b) = (g[i], w[i]);
            let ok = if exact {
                a == b
            } else {
                a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= ATOL + rtol * b.abs()
            };
            !ok
        })
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&i) => {
            Err(format!("{} of {} elements differ; element {i}: {} vs expected {}", bad.len(), g.len(), g[i], w[i]))
        }
    }
}

/// The kinds of the graph inputs and outputs that are not plain tensors, if any.
fn non_tensor_io(model_path: &Path) -> Result<Option<String>, String> {
    let bytes = std::fs::read(model_path).map_err(|e| e.to_string())?;
    let proto = ModelProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    let Some(graph) = proto.graph else { return Ok(None) };
    let mut kinds: Vec<&str> = graph
        .input
        .iter()
        .chain(&graph.output)
        .filter_map(|vi| match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(_)) | None => None,
            Some(type_proto::Value::SequenceType(_)) => Some("sequence"),
            Some(type_proto::Value::OptionalType(_)) => Some("optional"),
            Some(type_proto::Value::MapType(_)) => Some("map"),
            Some(type_proto::Value::SparseTensorType(_)) => Some("sparse tensor"),
            #[allow(unreachable_patterns)]
            Some(_) => Some("non-tensor"),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    Ok((!kinds.is_empty())
        .then(|| format!("{} graph inputs/outputs (the interpreter computes on tensors)", kinds.join("/"))))
}

/// A failed run: skipped if the interpreter named something it does not implement.
fn eval_outcome(what: &str, e: EvalError) -> Outcome {
    match e.unsupported() {
        // Group element types across ops: "Cast: f8e4m3fn tensors" -> "f8e4m3fn tensors".
        Some(reason) if reason.ends_with(" tensors") => {
            Outcome::Skip(reason.rsplit_once(": ").map_or(reason.clone(), |(_, r)| r.to_string()))
        }
        Some(reason) => Outcome::Skip(reason),
        None => Outcome::Fail(format!("{what}: {e}")),
    }
}

fn run_case(dir: &Path) -> Outcome {
    let model_path = dir.join("model.onnx");
    match non_tensor_io(&model_path) {
        Ok(Some(reason)) => return Outcome::Skip(reason),
        Ok(None) => {}
        Err(e) => return Outcome::Fail(format!("model.onnx: {e}")),
    }
    let model = match qdqc_ir::onnx::load(&model_path) {
        Ok(m) => m,
        Err(e) => return Outcome::Fail(format!("load: {e}")),
    };
    let g = &model.graph;
    // Name a missing kernel first: it is the most useful reason, whatever else is unsupported.
    for id in g.node_ids() {
        let n = g.node(id);
        if n.op != qdqc_ir::Op::Input && !qdqc_eval::supports(&n.op) {
            return Outcome::Skip(format!("op {}", n.op));
        }
    }
    let interp = match Interpreter::new(g) {
        Ok(i) => i,
        Err(e) => return eval_outcome("prepare", e),
    };
    let mut sets: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect(),
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    sets.sort();
    if sets.is_empty() {
        return Outcome::Fail("no test_data_set_* directory".into());
    }
    for set in sets {
        let mut inputs = Vec::new();
        for (j, &id) in g.inputs.iter().enumerate() {
            let p = set.join(format!("input_{j}.pb"));
            if !p.exists() {
                continue; // an optional input left out of this data set
            }
            match read_pb(&p) {
                Ok(v) => inputs.push((g.node(id).outputs[0].name.clone(), v)),
                Err(ReadError::Unsupported(why)) => return Outcome::Skip(why),
                Err(ReadError::Bad(e)) => return Outcome::Fail(format!("input: {e}")),
            }
        }
        let r = match interp.run(&inputs, &RunOptions::default()) {
            Ok(r) => r,
            Err(e) => return eval_outcome("run", e),
        };
        let n_expected = (0..).take_while(|j| set.join(format!("output_{j}.pb")).exists()).count();
        if r.outputs.len() != n_expected {
            return Outcome::Fail(format!("{} outputs, expected {n_expected}", r.outputs.len()));
        }
        for (j, (name, got)) in r.outputs.iter().enumerate() {
            let want = match read_pb(&set.join(format!("output_{j}.pb"))) {
                Ok(v) => v,
                Err(ReadError::Unsupported(why)) => return Outcome::Skip(why),
                Err(ReadError::Bad(e)) => return Outcome::Fail(format!("expected output: {e}")),
            };
            if let Err(e) = compare(got, &want) {
                return Outcome::Fail(format!("output {name}: {e}"));
            }
        }
    }
    Outcome::Pass
}

fn usage() -> ! {
    eprintln!("usage: onnx_node_tests DATA_DIR [--filter TEXT] [--min-passed N]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut root, mut filter, mut min_passed) = (None, String::new(), 0usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--filter" => filter = args.next().unwrap_or_else(|| usage()),
            "--min-passed" => min_passed = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage()),
            s if s.starts_with('-') => usage(),
            _ if root.is_none() => root = Some(PathBuf::from(a)),
            _ => filter = a, // the old positional FILTER
        }
    }
    let mut root = root.unwrap_or_else(|| usage());
    if root.join("node").is_dir() {
        root = root.join("node"); // the generator's output folder
    }
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("model.onnx").is_file()).collect(),
        Err(e) => {
            eprintln!("onnx_node_tests: {}: {e}", root.display());
            std::process::exit(2)
        }
    };
    dirs.sort();
    // Kernel panics are failures; keep their messages off the report (they are in the FAIL line).
    std::panic::set_hook(Box::new(|_| {}));
    let (mut pass, mut fail) = (0usize, 0usize);
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains(&filter) {
            continue;
        }
        let outcome = std::panic::catch_unwind(|| run_case(&d)).unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Outcome::Fail(format!("panicked: {}", msg.unwrap_or_default()))
        });
        match outcome {
            Outcome::Pass => pass += 1,
            Outcome::Fail(e) => {
                fail += 1;
                println!("FAIL {name}: {e}");
            }
            Outcome::Skip(why) => skipped.entry(why).or_default().push(name),
        }
    }
    let n_skip: usize = skipped.values().map(Vec::len).sum();
    println!("{pass} passed, {fail} failed, {n_skip} skipped");
    let mut groups: Vec<_> = skipped.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    println!("skipped, by reason ({} reasons):", groups.len());
    for (why, names) in groups {
        const SHOWN: usize = 4;
        let more = if names.len() > SHOWN { format!(", … (+{})", names.len() - SHOWN) } else { String::new() };
        println!("  {:4}  {why}: {}{more}", names.len(), names[..names.len().min(SHOWN)].join(", "));
    }
    if pass < min_passed {
        println!("error: only {pass} tests passed, expected at least {min_passed}");
    }
    if fail > 0 || pass < min_passed {
        std::process::exit(1);
    }
}
