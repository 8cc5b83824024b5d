//! Dead code elimination: removes nodes none of whose outputs reach a graph output, and constants
//! nothing reads. Graph inputs and input defaults are interface, never removed.

use crate::{Pass, PassError, Remarks};
use qdqc_ir::{ConstId, ConstOrigin, Graph, Op, Operand};
use std::collections::HashSet;

pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &mut Graph, _remarks: &mut Remarks) -> Result<usize, PassError> {
        let fail = |error| PassError::Failed { pass: "dce", error };
        // Mark: walk back from the graph outputs (linear: each node is pushed once).
        // Live flags by node index: this runs on every repetition of the pipeline.
        let mut live = vec![false; graph.node_bound()];
        let mut live_consts = vec![false; graph.const_bound()];
        let mut stack = Vec::new();
        let mark = |op: Operand, stack: &mut Vec<_>, live: &mut Vec<bool>, consts: &mut Vec<bool>| match op {
            Operand::Value(o) => {
                if !live[o.node.index()] {
                    live[o.node.index()] = true;
                    stack.push(o.node);
                }
            }
            Operand::Const(c) => consts[c.0 as usize] = true,
            Operand::None => {}
        };
        for out in graph.outputs() {
            mark(out.operand, &mut stack, &mut live, &mut live_consts);
        }
        while let Some(id) = stack.pop() {
            let node = graph.node(id);
            for &op in node.inputs().iter().chain(node.captures()) {
                mark(op, &mut stack, &mut live, &mut live_consts);
            }
        }
        // Sweep: dead nodes in reverse topological order, so consumers go before producers.
        let mut changes = 0;
        if graph.node_ids().any(|id| !live[id.index()] && graph.node(id).op != Op::Input) {
            for &id in graph.topo_order().map_err(fail)?.iter().rev() {
                if !live[id.index()] {
                    graph.remove_node(id).map_err(fail)?;
                    changes += 1;
                }
            }
        }
        let dead: Vec<ConstId> = graph
            .constants()
            .filter(|(id, c)| c.origin != ConstOrigin::InputDefault && !live_consts[id.0 as usize])
            .map(|(id, _)| id)
            .collect();
        changes += dead.len();
        // A quantization annotation is no use of its constants: one naming a removed constant
        // (the scale of a value that a fused op now reads with its own parameters) goes too.
        let dead_set: HashSet<ConstId> = dead.iter().copied().collect();
        let ids: Vec<_> = if dead_set.is_empty() { vec![] } else { graph.node_ids().collect() };
        for id in ids {
            for v in &mut graph.node_mut(id).outputs {
                if v.quant
                    .as_ref()
                    .is_some_and(|q| dead_set.contains(&q.scale) || q.zero_point.is_some_and(|z| dead_set.contains(&z)))
                {
                    v.quant = None;
                }
            }
        }
        for id in dead {
            graph.remove_const(id);
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_ir::text::{parse, print};

    fn run(text: &str) -> (String, usize) {
        let mut g = parse(text).unwrap();
        let changes = DeadCodeElimination.run(&mut g, &mut Remarks::new()).unwrap();
        g.verify().unwrap();
        (print(&g), changes)
    }

    #[test]
    fn removes_unused_nodes_and_constants() {
        let (out, changes) = run(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4]
  const %one: f32[] 1.0
  const %unused: f32[] 2.0
  %a = Add(%x, %one)
  %dead = Relu(%a)
  %deader = Sigmoid(%dead)
  %y = Relu(%a)
  output %y
}
"#);
        assert_eq!(changes, 3);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %one: f32[] 1.0
          %a: f32[N,4] = Add(%x, %one)
          %y: f32[N,4] = Relu(%a)
          output %y
        }
        "#);
    }

    #[test]
    fn keeps_inputs_and_everything_live() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4]
  input %unused_input: f32[2]
  %y: f32[N,4] = Relu(%x)
  output %y
}
"#;
        let (out, changes) = run(text);
        assert_eq!(changes, 0);
        assert_eq!(out, text);
    }
}
