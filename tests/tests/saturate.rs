//! Equality saturation (`-O3`) against the greedy pipeline (`-O2`): on every fixture and on
//! random QDQ graphs, the saturated graph costs no more than the greedy one under the cost model
//! (`qdqc_passes::cost`) and passes `qdqc verify` against the original; the cases where
//! saturation wins are IR-text snapshots.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use qdqc_ir::Graph;
use qdqc_passes::cost::graph_cost;
use qdqc_passes::{PassManager, Target};
mod common;

fn compile(g: &Graph, level: &str, target: Target) -> Result<Graph, String> {
    let mut g = g.clone();
    PassManager::named(level).unwrap().for_target(target).run(&mut g).map_err(|e| e.to_string())?;
    Ok(g)
}

/// Verifies `compiled` against `orig` on two random samples; the error names the first tensor off.
fn verify(orig: &Graph, compiled: &Graph) -> Result<(), String> {
    let samples: Vec<_> =
        (0..2).map(|k| qdqc::verify::random_inputs(orig, k, 1)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let report = qdqc::verify::verify(orig, compiled, &samples, 0, &|_| {}).map_err(|e| e.to_string())?;
    match report.passed {
        true => Ok(()),
        false => Err(format!("verification failed at '{}'\n{}", report.first_failure.unwrap_or_default(), "")),
    }
}

/// Every domain a node uses is imported (a rewrite into com.microsoft ops must add the import).
fn domains_imported(g: &Graph) -> Result<(), String> {
    for id in g.topo_order().map_err(|e| e.to_string())? {
        let d = g.node(id).op.default_domain();
        if !d.is_empty() && !g.opsets.contains_key(d) {
            return Err(format!("{} uses domain '{d}', which the model does not import", g.node(id).label()));
        }
    }
    Ok(())
}

#[test]
fn saturation_is_never_worse_than_greedy_on_the_fixtures() {
    let all = common::fixtures();
    assert!(all.len() >= 18, "fixtures missing: {all:?}");
    let mut summary = String::new();
    for path in all {
        let name = common::file_name(&path);
        let orig = qdqc_ir::onnx::load(&path).unwrap().graph;
        for target in [Target::Ort, Target::Onnx] {
            let greedy = compile(&orig, "O2", target).unwrap_or_else(|e| panic!("{name}: -O2: {e}"));
            let sat = compile(&orig, "O3", target).unwrap_or_else(|e| panic!("{name}: -O3: {e}"));
            domains_imported(&sat).unwrap_or_else(|e| panic!("{name} --target {target}: {e}"));
            // -O3 reaches its fixed point: a second run changes nothing.
            let mut again = sat.clone();
            let runs = PassManager::named("O3").unwrap().for_target(target).run(&mut again).unwrap();
            let changes: Vec<_> = runs.iter().filter(|r| r.changes > 0).map(|r| r.pass).collect();
            assert!(changes.is_empty(), "{name} --target {target}: a second -O3 changed the graph ({changes:?})");
            let (cg, cs) = (graph_cost(&greedy), graph_cost(&sat));
            summary += &format!("{name} --target {target}: greedy {cg}, saturate {cs}\n");
            assert!(
                cs <= cg * (1.0 + 1e-9),
                "{name} --target {target}: saturation costs {cs} > greedy {cg}\ngreedy:\n{}\nsaturate:\n{}",
                qdqc_ir::text::print(&greedy),
                qdqc_ir::text::print(&sat)
            );
            // (A model the interpreter cannot run, e.g. with a custom-domain op, is not verified.)
            if verify(&orig, &orig).is_ok() {
                verify(&orig, &sat).unwrap_or_else(|e| panic!("{name} --target {target}: -O3: {e}"));
            }
        }
    }
    eprintln!("{summary}");
}

/// Compiles `text` with -O2 and -O3 and prints both, with their costs.
fn greedy_vs_saturate(text: &str) -> (f64, f64, String) {
    let orig = qdqc_ir::text::parse(text).unwrap();
    let greedy = compile(&orig, "O2", Target::Ort).unwrap();
    let sat = compile(&orig, "O3", Target::Ort).unwrap();
    verify(&orig, &sat).unwrap();
    domains_imported(&sat).unwrap();
    let (cg, cs) = (graph_cost(&greedy), graph_cost(&sat));
    let out = format!(
        "# input\n{text}\n# -O2 (greedy), cost {cg}\n{}\n# -O3 (saturate), cost {cs}\n{}",
        qdqc_ir::text::print(&greedy),
        qdqc_ir::text::print(&sat)
    );
    (cg, cs, out)
}

/// Order dependence in greedy: `propagate` runs before `fuse-contrib`, so `q-earlier-concat`
/// turns a Concat of unequally scaled inputs into per-input requantizations (a float DQ→Q pair)
/// before `qlinear-concat` could see it. The e-graph holds both forms and the extraction picks
/// the single QLinearConcat.
#[test]
fn saturation_picks_qlinearconcat_where_greedy_requantizes() {
    let text = r#"graph "g" opset(ai.onnx=17) {
  input %a: f32[1,4,8,8]
  input %b: f32[1,4,8,8]
  const %sa: f32[] 0.05
  const %sb: f32[] 0.1
  const %sy: f32[] 0.05
  const %z: u8[] 128
  %qa = QuantizeLinear(%a, %sa, %z)
  %qb = QuantizeLinear(%b, %sb, %z)
  %da = DequantizeLinear(%qa, %sa, %z)
  %db = DequantizeLinear(%qb, %sb, %z)
  %c = Concat[axis=1](%da, %db)
  %qc = QuantizeLinear(%c, %sy, %z)
  %y = DequantizeLinear(%qc, %sy, %z)
  output %y
}
"#;
    let (cg, cs, out) = greedy_vs_saturate(text);
    assert!(cs < cg, "{out}");
    insta::assert_snapshot!("saturate_wins_concat", out);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 500,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// On random QDQ graphs (the generator of `compile_props`), for both targets.
    #[test]
    fn saturation_costs_no_more_than_greedy_and_verifies(text in common::qdq_gen::graph_text(), onnx in any::<bool>()) {
        let target = if onnx { Target::Onnx } else { Target::Ort };
        let orig = qdqc_ir::text::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let greedy = compile(&orig, "O2", target).map_err(|e| TestCaseError::fail(format!("-O2: {e}\n{text}")))?;
        let sat = compile(&orig, "O3", target).map_err(|e| TestCaseError::fail(format!("-O3: {e}\n{text}")))?;
        let (cg, cs) = (graph_cost(&greedy), graph_cost(&sat));
        let show = || format!("original:\n{text}\ngreedy:\n{}\nsaturate:\n{}", qdqc_ir::text::print(&greedy), qdqc_ir::text::print(&sat));
        prop_assert!(cs <= cg * (1.0 + 1e-9), "--target {target}: saturation costs {cs} > greedy {cg}\n{}", show());
        let d = domains_imported(&sat);
        prop_assert!(d.is_ok(), "--target {target}: {}\n{}", d.unwrap_err(), show());
        let v = verify(&orig, &sat);
        prop_assert!(v.is_ok(), "--target {target}: {}\n{}", v.unwrap_err(), show());
    }
}
