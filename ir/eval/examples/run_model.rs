//! Times the interpreter on a model with seeded random inputs, with a per-op-type profile.
//!
//! ```sh
//! cargo run --release -p qdqc-eval --example run_model -- MODEL.onnx [BATCH] [RUNS]
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qdqc_eval::{Interpreter, Progress, RunOptions, Value};
use qdqc_ir::{DType, Dim};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: run_model MODEL.onnx [BATCH] [RUNS]");
    let batch: usize = args.get(2).map_or(1, |s| s.parse().expect("batch"));
    let runs: usize = args.get(3).map_or(1, |s| s.parse().expect("runs"));
    let t = Instant::now();
    let model = qdqc_ir::onnx::load(std::path::Path::new(path)).expect("load");
    let g = &model.graph;
    println!("loaded {} nodes in {:.2?}", g.op_count(), t.elapsed());
    let t = Instant::now();
    let interp = Interpreter::new(g).expect("prepare");
    println!("prepared in {:.2?}", t.elapsed());
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let inputs: Vec<(String, Value)> = g
        .inputs
        .iter()
        .filter_map(|&id| {
            let v = &g.node(id).outputs[0];
            let ty = v.ty.as_ref()?;
            let shape: Vec<usize> = ty
                .shape
                .as_ref()?
                .iter()
                .map(|d| match d {
                    Dim::Known(k) => *k as usize,
                    _ => batch,
                })
                .collect();
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
                })
                .collect();
            let dtype = if ty.dtype == DType::F32 { DType::F32 } else { ty.dtype };
            Some((v.name.clone(), Value::from_f64(dtype, &shape, &data).expect("input")))
        })
        .collect();
    let profile: Arc<Mutex<(Instant, BTreeMap<String, Duration>)>> =
        Arc::new(Mutex::new((Instant::now(), BTreeMap::new())));
    let p2 = profile.clone();
    let opts = RunOptions {
        keep_intermediates: false,
        progress: Some(Arc::new(move |p: Progress<'_>| {
            let mut guard = p2.lock().unwrap();
            let now = Instant::now();
            let dt = now - guard.0;
            *guard.1.entry(p.node.op.to_string()).or_default() += dt;
            guard.0 = now;
        })),
        ..Default::default()
    };
    for r in 0..runs {
        profile.lock().unwrap().0 = Instant::now();
        let t = Instant::now();
        let out = interp.run(&inputs, &opts).expect("run");
        println!("run {r}: {:.2?} ({} outputs, first {:?})", t.elapsed(), out.outputs.len(), out.outputs[0].1.shape());
    }
    let guard = profile.lock().unwrap();
    let mut v: Vec<_> = guard.1.iter().collect();
    v.sort_by_key(|(_, d)| std::cmp::Reverse(**d));
    println!("time per op type (all runs):");
    for (op, d) in v.iter().take(12) {
        println!("  {op:<24} {:>10.2?}", d);
    }
}
