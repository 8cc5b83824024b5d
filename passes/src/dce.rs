//! Dead code elimination: removes nodes none of whose outputs reach a graph output, and constants
//! nothing reads. Graph inputs and input defaults are interface, never removed.
//!
//! Liveness is found from the dead end, reading no live node: a node is dead when none of its
//! outputs is a graph output and every consumer is dead (the graph is acyclic), so the dead nodes
//! are those nothing reads and, counting down the uses of their producers, the producers all of
//! whose consumers are dead. A constant is dead when no node reads it ([`Graph::const_uses`], once
//! the dead nodes are gone) and it is no graph output. (A walk back from the graph outputs would
//! read every live node, in random order and a cache miss or more each, on every run.)

use crate::{Pass, PassError, Remarks};
use qdqc_ir::{ConstId, ConstOrigin, Graph, NodeId, OpKind, Operand};
use rustc_hash::FxHashMap;

pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &mut Graph, _remarks: &mut Remarks) -> Result<usize, PassError> {
        let fail = |error| PassError::Failed { pass: "dce", error };
        // Graph inputs stay, and so do nodes with a graph output.
        let removable = |graph: &Graph, id: NodeId| graph.kind(id) != Some(OpKind::Input) && !graph.feeds_output(id);
        // Mark: the nodes nothing reads, then each producer whose last use is by a dead node.
        // (Flags by node index; uses left by producer, for the few producers of dead nodes.)
        let mut dead = vec![false; graph.node_bound()];
        let mut found: Vec<NodeId> =
            graph.node_ids().filter(|&id| !graph.has_uses(id) && removable(graph, id)).collect();
        for id in &found {
            dead[id.index()] = true;
        }
        let mut uses_left: FxHashMap<NodeId, usize> = FxHashMap::default();
        let mut next = 0;
        while let Some(&id) = found.get(next) {
            next += 1;
            let node = graph.node(id);
            for &op in node.inputs().iter().chain(node.captures()) {
                let Operand::Value(o) = op else { continue };
                let left = uses_left.entry(o.node).or_insert_with(|| graph.uses(o.node).count());
                *left -= 1;
                if *left == 0 && removable(graph, o.node) {
                    dead[o.node.index()] = true;
                    found.push(o.node);
                }
            }
        }
        // Sweep: dead nodes in reverse topological order, so consumers go before producers.
        let mut changes = 0;
        if !found.is_empty() {
            for &id in graph.topo_order().map_err(fail)?.iter().rev() {
                if dead[id.index()] {
                    graph.remove_node(id).map_err(fail)?;
                    changes += 1;
                }
            }
        }
        // Every node left is live: a constant none of them reads is dead, unless it is a graph
        // output or an input's default.
        let dead_consts: Vec<ConstId> = graph
            .constants()
            .filter(|&(id, c)| {
                c.origin != ConstOrigin::InputDefault
                    && graph.const_uses(id) == 0
                    && !graph.is_output(Operand::Const(id))
            })
            .map(|(id, _)| id)
            .collect();
        changes += dead_consts.len();
        // A quantization annotation is no use of its constants: one naming a removed constant
        // (the scale of a value that a fused op now reads with its own parameters) goes too.
        if !dead_consts.is_empty() {
            let mut is_dead = vec![false; graph.const_bound()];
            for c in &dead_consts {
                is_dead[c.0 as usize] = true;
            }
            let names_dead = |c: ConstId| is_dead[c.0 as usize];
            let ids: Vec<_> = graph.node_ids().collect();
            for id in ids {
                for v in &mut graph.node_mut(id).outputs {
                    if v.quant.as_ref().is_some_and(|q| names_dead(q.scale) || q.zero_point.is_some_and(names_dead)) {
                        v.quant = None;
                    }
                }
            }
        }
        for id in dead_consts {
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
    fn a_producer_goes_with_its_last_consumer() {
        // `a` keeps a live consumer; `b` is read only by dead nodes: twice by `n`, and by the
        // subgraph of `i`.
        let (out, changes) = run(r#"graph "g" opset(ai.onnx=17) {
  input %c: bool[]
  input %x: f32[4]
  %a = Relu(%x)
  %b = Sigmoid(%x)
  %m = Mul(%a, %b)
  %n = Add(%b, %b)
  %i: f32[4] = If[then_branch=graph {
    %r: f32[4] = Relu(%b)
    output %r
  }, else_branch=graph {
    output %x
  }](%c)
  %y = Tanh(%a)
  output %y
}
"#);
        assert_eq!(changes, 4);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %c: bool[]
          input %x: f32[4]
          %a: f32[4] = Relu(%x)
          %y: f32[4] = Tanh(%a)
          output %y
        }
        "#);
    }

    #[test]
    fn annotations_naming_removed_constants_go() {
        // Nothing reads `t`: it goes, and so does the annotation of `y` naming it.
        let (out, changes) = run(r#"graph "g" opset(ai.onnx=17) {
  input %x: u8[4]
  const %s: f32[] 0.5
  const %z: u8[] 0
  const %t: f32[] 0.25
  %y: u8[4] q(%t, %z) = Identity(%x)
  %d: f32[4] = DequantizeLinear(%y, %s, %z)
  %w: u8[4] q(%s, %z) = QuantizeLinear(%d, %s, %z)
  output %w
}
"#);
        assert_eq!(changes, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[4]
          const %s: f32[] 0.5
          const %z: u8[] 0
          %y: u8[4] = Identity(%x)
          %d: f32[4] = DequantizeLinear(%y, %s, %z)
          %w: u8[4] q(0.5, 0) = QuantizeLinear(%d, %s, %z)
          output %w
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
