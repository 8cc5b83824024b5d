//! Runs a model once with the interpreter and writes **every** tensor — graph inputs, each node
//! output, constants folded at preparation — as `.npy`, for tensor-by-tensor comparisons with
//! another runtime (`scripts/interp_parity.py` compares them with onnxruntime).
//!
//! ```sh
//! cargo run --release -p qdqc-eval --example dump_tensors -- MODEL.onnx --out DIR [--input NAME=FILE.npy ...]
//! ```
//!
//! Files are `DIR/t{k}.npy` (tensor names may hold any character); `DIR/index.tsv` lists one
//! tensor per line as `file<TAB>dtype<TAB>shape<TAB>name`, with the graph outputs first in
//! graph order, then the rest sorted by name (a string tensor, which has no `.npy` form here, is
//! listed with file `-`). Exit status 0, or 1 with one line on stderr.

use std::path::PathBuf;

use qdqc_eval::{Interpreter, RunOptions, Value};

fn main() {
    if let Err(e) = run() {
        eprintln!("dump_tensors: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut out, mut inputs) = (None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--input" => {
                let spec = args.next().ok_or("--input needs NAME=FILE.npy")?;
                let (name, file) =
                    spec.split_once('=').ok_or_else(|| format!("--input {spec}: expected NAME=FILE.npy"))?;
                let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
                inputs.push((name.to_string(), Value::from_npy(&bytes).map_err(|e| format!("{file}: {e}"))?));
            }
            _ if model.is_none() && !a.starts_with('-') => model = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument '{a}' (usage: MODEL --out DIR [--input NAME=FILE.npy ...])")),
        }
    }
    let (model, out) = (model.ok_or("no MODEL given")?, out.ok_or("no --out DIR given")?);
    let m = qdqc_ir::onnx::load(&model).map_err(|e| e.to_string())?;
    let interp = Interpreter::new(&m.graph).map_err(|e| format!("{}: {e}", model.display()))?;
    let r = interp.run(&inputs, &RunOptions::keep_all()).map_err(|e| format!("{}: {e}", model.display()))?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut names: Vec<&String> = r.values.keys().filter(|n| r.output(n).is_none()).collect();
    names.sort();
    let order = r.outputs.iter().map(|(n, v)| (n, v)).chain(names.into_iter().map(|n| (n, &r.values[n])));
    let mut index = String::new();
    for (k, (name, v)) in order.enumerate() {
        let file = match v.to_npy() {
            Ok(npy) => {
                let file = format!("t{k}.npy");
                std::fs::write(out.join(&file), npy).map_err(|e| format!("{}: {e}", out.join(&file).display()))?;
                file
            }
            // String tensors have no .npy form here: listed with file "-".
            Err(e) if e.unsupported().is_some() => "-".to_string(),
            Err(e) => return Err(format!("tensor '{name}': {e}")),
        };
        let shape: Vec<String> = v.shape().iter().map(usize::to_string).collect();
        index.push_str(&format!("{file}\t{}\t[{}]\t{name}\n", v.dtype(), shape.join(",")));
    }
    std::fs::write(out.join("index.tsv"), index).map_err(|e| format!("{}: {e}", out.join("index.tsv").display()))?;
    Ok(())
}
