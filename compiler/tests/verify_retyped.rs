//! `compile` + `verify` on an int8 model whose tensors int8-to-uint8 moves to uint8: verification
//! compares them through their zero points, so an exact compile passes.

use qdqc::ir::onnx::Model;
use qdqc::{compile, verify, Options};
use std::path::Path;

/// The shape of onnxruntime's quantizer output with symmetric int8 activations: two branches,
/// one requantized into the other's scale, concatenated, then moved (Transpose).
const MODEL: &str = "graph \"g\" opset(ai.onnx=17) {
  input %x: f32[1,2,4,4]
  const %s1: f32[] 0.01
  const %s2: f32[] 0.03
  const %z1: i8[] 0
  const %z2: i8[] 0
  const %z3: i8[] 0
  %a = QuantizeLinear(%x, %s1, %z1)
  %ad = DequantizeLinear(%a, %s1, %z1)
  %m = QuantizeLinear(%x, %s2, %z2)
  %md = DequantizeLinear(%m, %s2, %z2)
  %cat = Concat[axis=1](%ad, %md)
  %cq = QuantizeLinear(%cat, %s2, %z3)
  %cd = DequantizeLinear(%cq, %s2, %z3)
  %t = Transpose[perm=[0,2,3,1]](%cd)
  %tq = QuantizeLinear(%t, %s2, %z3)
  %y = DequantizeLinear(%tq, %s2, %z3)
  output %y
}
";

#[test]
fn an_int8_model_moved_to_uint8_verifies() {
    let graph = qdqc::ir::text::parse(MODEL).unwrap();
    let model = Model { graph: graph.clone(), meta: Default::default(), external: Default::default() };
    let c = compile(model, Path::new("m.onnx"), &Options::default()).unwrap();
    let g = &c.model.graph;
    assert!(c.passes.iter().any(|p| p.pass == "int8-to-uint8" && p.changes > 0), "int8-to-uint8 ran: {:?}", c.passes);
    let cq = g.lookup("cq").expect("the concatenation keeps its name");
    assert_eq!(g.operand_type(cq).unwrap().dtype, qdqc::ir::DType::U8);
    let samples: Vec<_> = (0..4).map(|k| verify::random_inputs(&graph, k, 1).unwrap()).collect();
    let report = verify::verify(&graph, g, &samples, 0, &|_| {}).unwrap();
    assert!(report.passed, "{}", report.table(true));
    let t = report.tensors.iter().find(|t| t.name == "cq").expect("cq is compared");
    assert!(t.mismatch.is_none() && t.bit_equal == 1.0, "{}", report.table(true));
}
