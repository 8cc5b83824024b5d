//! The effect of the default pipeline (-O2) on every fixture, as the unified diffs of the text IR
//! that `qdqc compile --diff` prints, kept as insta snapshots: a change in any rule shows up here as
//! a reviewed change of what it does to real models. Also checks that -O2 is idempotent, and what
//! `--target onnx` leaves in float.

use qdqc_passes::{Instrument, PassManager};
mod common;

use common::fixtures;

#[test]
fn default_pipeline_diff_of_every_fixture() {
    let all = fixtures();
    assert!(all.len() >= 18, "fixtures missing: {all:?}");
    let pm = PassManager::default_pipeline();
    let inst = Instrument { diff: true, ..Default::default() };
    for path in all {
        let mut graph = qdqc_ir::onnx::load(&path).unwrap().graph;
        let run = pm.run_with(&mut graph, &inst).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(run.converged, "{}: -O2 did not reach a fixed point", path.display());
        let mut text = String::new();
        for r in &run.runs {
            text += &format!("# {} (iteration {}): {} changes\n", r.pass, r.iteration, r.changes);
            text += r.diff.as_deref().unwrap_or("");
        }
        let stem = path.file_name().unwrap().to_string_lossy().trim_end_matches(".onnx").replace('.', "_");
        insta::assert_snapshot!(format!("O2_{stem}"), text);
        // Idempotent: a second run changes nothing.
        let again = pm.run_with(&mut graph, &Instrument::default()).unwrap();
        let changes: usize = again.runs.iter().map(|r| r.changes).sum();
        assert_eq!(changes, 0, "{}: -O2 is not idempotent", path.display());
    }
}

/// With `--target onnx`, MobileNetV3's float islands (HardSwish written out and as an op,
/// HardSigmoid, the SE block's Mul, the residual Add, a BatchNormalization without an exact conv
/// form) become integer ops or tables: the only float ops left between a DequantizeLinear and a
/// QuantizeLinear are its GlobalAveragePools, for which no standard integer form exists.
#[test]
fn target_onnx_leaves_only_reductions_in_float() {
    use qdqc_ir::{Op, Operand};
    let pm = PassManager::default_pipeline().for_target(qdqc_passes::Target::Onnx);
    let v3: Vec<_> = fixtures().into_iter().filter(|p| p.to_string_lossy().contains("mobilenetv3_block.")).collect();
    assert_eq!(v3.len(), 5, "{v3:?}");
    for path in v3.iter().filter(|p| !p.to_string_lossy().contains("float")) {
        let mut graph = qdqc_ir::onnx::load(path).unwrap().graph;
        pm.run(&mut graph).unwrap();
        let reads_dq = |id| {
            graph
                .node(id)
                .inputs()
                .iter()
                .any(|&i| matches!(i, Operand::Value(o) if graph.node(o.node).op == Op::DequantizeLinear))
        };
        let mut float: Vec<String> = graph
            .node_ids()
            .filter(|&id| !matches!(graph.node(id).op, Op::Input | Op::QuantizeLinear | Op::DequantizeLinear))
            .filter(|&id| reads_dq(id) && graph.uses(id).any(|(c, _)| graph.node(c).op == Op::QuantizeLinear))
            .map(|id| graph.node(id).op.to_string())
            .collect();
        float.sort();
        assert_eq!(float, ["GlobalAveragePool", "GlobalAveragePool"], "{}", path.display());
        let tables = graph.node_ids().filter(|&id| graph.node(id).op == Op::Gather).count();
        assert!(tables >= 4, "{}: {tables} tables", path.display());
    }
}
