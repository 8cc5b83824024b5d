//! The effect of the default pipeline (-O2) on every fixture, as the unified diffs of the text IR
//! that `qdqc compile --diff` prints, kept as insta snapshots: a change in any rule shows up here as
//! a reviewed change of what it does to real models. Also checks that -O2 is idempotent.

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
