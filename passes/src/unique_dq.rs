//! `unique-dq`: every consumer of a DequantizeLinear of a constant (a weight or bias DQ) gets a
//! DQ of its own, as onnxruntime's `EnsureUniqueDQForNodeUnit` does. No pipeline runs it; it runs
//! when named in `--passes`. `-O2`'s rules read a shared DQ's inputs and leave the DQ to its
//! other consumers (a patch removes only what became dead), and with edge removal O(1) a DQ
//! shared by tens of thousands of convs costs nothing more. In `-O3`'s e-graph the copies are one
//! e-node again (same node, same inputs), and `saturate` would share them again: a pipeline
//! that ran both would undo and redo them on every repetition without converging.
//!
//! The copies read the same constants (one tensor, no data copied); a copy left unfused is one
//! more small node. The consumers are rewired head first in the graph's edge lists, so that each
//! edge removal is O(1).

use crate::{Pass, PassError, Remarks};
use qdqc_ir::{Graph, NodeId, Op, OpKind, Operand, Outlet, Port, Value};

pub struct UniqueDq;

impl Pass for UniqueDq {
    fn name(&self) -> &'static str {
        "unique-dq"
    }

    fn run(&self, graph: &mut Graph, _remarks: &mut Remarks) -> Result<usize, PassError> {
        // (The DQs are found in the kind table: no other node is read.)
        let shared: Vec<NodeId> = graph
            .node_ids()
            .filter(|&id| {
                graph.kind(id) == Some(OpKind::DequantizeLinear)
                    && matches!(graph.node(id).input(0), Operand::Const(_))
                    && graph.uses(id).nth(1).is_some()
                    && !graph.is_output(Operand::Value(Outlet::new(id, 0)))
            })
            .collect();
        let mut changes = 0;
        for id in shared {
            // In edge-list order (newest first); the last consumer keeps the original.
            let mut consumers: Vec<(NodeId, Port)> = graph.uses(id).map(|(c, e)| (c, e.port)).collect();
            consumers.pop();
            // Each copy is the original but for its output's name.
            let n = graph.node(id);
            let (attrs, inputs, meta, order) = (n.attrs.clone(), n.inputs().to_vec(), n.meta.clone(), n.order());
            let (base, ty) = (n.outputs[0].name.clone(), n.outputs[0].ty.clone());
            for (consumer, port) in consumers {
                let Port::Input(i) = port else { continue };
                let name = graph.fresh_name(&base);
                let copy = graph
                    .add_node_at(
                        Op::DequantizeLinear,
                        meta.clone(),
                        attrs.clone(),
                        inputs.clone(),
                        vec![Value { ty: ty.clone(), ..Value::named(name) }],
                        order,
                    )
                    .map_err(|error| PassError::Failed { pass: "unique-dq", error })?;
                graph.set_input(consumer, i as usize, Operand::Value(Outlet::new(copy, 0)));
                changes += 1;
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_ir::text::{parse, print};

    #[test]
    fn each_consumer_of_a_weight_dq_gets_its_own() {
        let mut g = parse(
            r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %w: i8[4] [1, 2, 3, 4]
  const %s: f32[] 0.5
  %wd = DequantizeLinear(%w, %s)  "w_dq"
  %a = Add(%x, %wd)
  %b = Mul(%x, %wd)
  %c = Sub(%wd, %x)
  %xd = Relu(%x)
  output %a
  output %b
  output %c
}
"#,
        )
        .unwrap();
        assert_eq!(UniqueDq.run(&mut g, &mut Remarks::new()).unwrap(), 2);
        g.verify().unwrap();
        insta::assert_snapshot!(print(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[4]
          const %w: i8[4] [1, 2, 3, 4]
          const %s: f32[] 0.5
          %wd: f32[4] = DequantizeLinear(%w, %s)  "w_dq"
          %wd_1: f32[4] = DequantizeLinear(%w, %s)  "w_dq"
          %wd_2: f32[4] = DequantizeLinear(%w, %s)  "w_dq"
          %a: f32[4] = Add(%x, %wd)
          %b: f32[4] = Mul(%x, %wd_2)
          %c: f32[4] = Sub(%wd_1, %x)
          %xd: f32[4] = Relu(%x)
          output %a
          output %b
          output %c
        }
        "#);
        assert_eq!(UniqueDq.run(&mut g, &mut Remarks::new()).unwrap(), 0, "idempotent");
    }

    #[test]
    fn activation_dqs_stay_shared() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: i8[4]
  const %s: f32[] 0.5
  %xd = DequantizeLinear(%x, %s)
  %a = Relu(%xd)
  %b = Neg(%xd)
  output %a
  output %b
}
"#;
        let mut g = parse(text).unwrap();
        assert_eq!(UniqueDq.run(&mut g, &mut Remarks::new()).unwrap(), 0);
    }

    /// One weight DQ read by 50k consumers (a quadratic rewiring would take minutes; the
    /// timing itself is measured in `scripts/bench_scale.py`, not asserted here).
    #[test]
    fn a_dq_with_many_consumers_is_split_in_linear_time() {
        let n = 50_000;
        let mut text = String::from(
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  const %w: i8[4] [1, 2, 3, 4]\n  const %s: f32[] 0.5\n  %wd = DequantizeLinear(%w, %s)\n",
        );
        for i in 0..n {
            text.push_str(&format!("  %a{i} = Add(%x, %wd)\n  output %a{i}\n"));
        }
        text.push_str("}\n");
        let mut g = parse(&text).unwrap();
        assert_eq!(UniqueDq.run(&mut g, &mut Remarks::new()).unwrap(), n - 1);
        g.verify().unwrap();
        assert!(g.node_ids().all(|id| g.uses(id).count() <= 1 || g.node(id).op != Op::DequantizeLinear));
    }
}
