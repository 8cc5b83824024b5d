//! Bytes → ONNX model → the checks `compile` makes → the -O2 pipeline for both targets (`ort`,
//! `onnx`), and -O3 for `ort` on small graphs, through the library API → export. A pass that fails or leaves an invalid graph is a finding
//! (`qdqc::Error::Pass` is a qdqc bug by definition), and so is a panic anywhere.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use qdqc::passes::Target;
use qdqc::{compile, Error, Options};
use std::path::Path;

/// Graphs with more nodes are skipped: the pipeline is linear but a fuzz run must stay fast.
const MAX_NODES: usize = 4000;
/// Equality saturation (-O3) runs on graphs up to this size.
const MAX_NODES_O3: usize = 200;

fuzz_target!(|data: &[u8]| {
    let Some(model) = qdqc_fuzz::decode(data) else { return };
    let nodes = model.graph.op_count();
    if nodes > MAX_NODES || model.graph.verify_structure().is_err() {
        return;
    }
    if qdqc_ir::validate::compilable(&model).is_err() {
        return;
    }
    let runs: &[(&str, Target)] = &[("O2", Target::Ort), ("O2", Target::Onnx), ("O3", Target::Ort)];
    for &(level, target) in runs {
        if level == "O3" && nodes > MAX_NODES_O3 {
            continue;
        }
        let opts = Options { opt_level: Some(level.to_string()), target, ..Options::default() };
        match compile(model.clone(), Path::new("fuzz.onnx"), &opts) {
            Ok(c) => {
                let _ = qdqc_fuzz::encode(&c.model);
            }
            Err(e @ Error::Pass { .. }) => panic!("-{level} --target {target}: {e}"),
            Err(_) => {}
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    qdqc_fuzz::mutate::mutate(data, size, max_size, seed)
});
