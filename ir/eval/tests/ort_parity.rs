//! Parity with onnxruntime 1.32 on the checked-in cases in `tests/ort/cases` (made by
//! `tests/ort/gen_cases.py`; this test needs no Python). Integer outputs must match bit for bit;
//! float outputs within `tolerance.txt` (absolute; default 1e-5 · max(1, max|y|)).

use std::path::{Path, PathBuf};

use qdqc_eval::{RunOptions, Value};

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ort/cases")
}

fn npy(path: &Path) -> Value {
    Value::from_npy(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs one case; returns a description of the first mismatch, if any.
fn check(dir: &Path) -> Result<(), String> {
    let model = qdqc_ir::onnx::load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let g = &model.graph;
    let inputs: Vec<(String, Value)> = g
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &id)| (g.node(id).outputs[0].name.clone(), npy(&dir.join(format!("in{i}.npy")))))
        .collect();
    let tol: Option<f64> = std::fs::read_to_string(dir.join("tolerance.txt")).ok().map(|s| s.trim().parse().unwrap());
    let r = qdqc_eval::run(g, &inputs, &RunOptions::default()).map_err(|e| e.to_string())?;
    for (i, (name, got)) in r.outputs.iter().enumerate() {
        let want = npy(&dir.join(format!("out{i}.npy")));
        if got.shape() != want.shape() {
            return Err(format!("output {name}: shape {:?}, onnxruntime {:?}", got.shape(), want.shape()));
        }
        let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
        let exact = want.dtype().is_int();
        let max = w.iter().fold(1f64, |m, v| m.max(v.abs()));
        let tol = if exact { 0.0 } else { tol.unwrap_or(1e-5 * max) };
        let bad: Vec<usize> =
            (0..g.len()).filter(|&k| !((g[k] - w[k]).abs() <= tol || (g[k].is_nan() && w[k].is_nan()))).collect();
        if let Some(&k) = bad.first() {
            return Err(format!(
                "output {name}: {} of {} elements differ (tolerance {tol}); first at {k}: {} vs onnxruntime {}",
                bad.len(),
                g.len(),
                g[k],
                w[k]
            ));
        }
    }
    Ok(())
}

#[test]
fn matches_onnxruntime_on_every_case() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    assert!(dirs.len() > 100, "expected the generated cases, found {}", dirs.len());
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|d| check(d).err().map(|e| format!("{}: {e}", d.file_name().unwrap().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), dirs.len(), failures.join("\n"));
}
