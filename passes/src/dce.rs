//! Dead code elimination: removes nodes none of whose outputs reach a graph output, and constants
//! nothing reads. Graph inputs and input defaults are interface, never removed.

use crate::{Pass, PassError};
use qdqc_ir::{ConstId, ConstOrigin, Graph, Operand};
use std::collections::HashSet;

pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &mut Graph) -> Result<usize, PassError> {
        let fail = |error| PassError::Failed { pass: "dce", error };
        // Mark: walk back from the graph outputs (linear: each node is pushed once).
        let mut live = HashSet::new();
        let mut live_consts: HashSet<ConstId> = HashSet::new();
        let mut stack = Vec::new();
        let mark = |op: Operand, stack: &mut Vec<_>, live: &mut HashSet<_>, consts: &mut HashSet<ConstId>| match op {
            Operand::Value(o) => {
                if live.insert(o.node) {
                    stack.push(o.node);
                }
            }
            Operand::Const(c) => {
                consts.insert(c);
            }
            Operand::None => {}
        };
        for out in &graph.outputs {
            mark(out.operand, &mut stack, &mut live, &mut live_consts);
        }
        while let Some(id) = stack.pop() {
            let node = graph.node(id);
            for &op in node.inputs().iter().chain(node.captures()) {
                mark(op, &mut stack, &mut live, &mut live_consts);
            }
        }
        // Sweep: dead nodes in reverse topological order, so consumers go before producers.
        let order = graph.topo_order().map_err(fail)?;
        let mut changes = 0;
        for &id in order.iter().rev() {
            if !live.contains(&id) {
                graph.remove_node(id).map_err(fail)?;
                changes += 1;
            }
        }
        let dead: Vec<ConstId> = graph
            .constants()
            .filter(|(id, c)| c.origin != ConstOrigin::InputDefault && !live_consts.contains(id))
            .map(|(id, _)| id)
            .collect();
        changes += dead.len();
        for id in dead {
            graph.remove_const(id);
        }
        Ok(changes)
    }
}
