//! The graph check: structure (edges, names, kinds) and types, node by node.

use super::*;
use crate::op::Op;
use petgraph::Direction;
use smallvec::SmallVec;

impl Graph {
    /// Checks the structural invariants ([`Graph::verify_structure`]) and that node output types
    /// agree with what inference derives from the inputs.
    pub fn verify(&self) -> Result<(), GraphError> {
        // Each node's types are checked right after its structure (which makes its inputs safe to
        // read), while the node is in cache: one walk over the nodes instead of two.
        self.structure(|id| crate::infer::check_node(self, id)).map(drop)
    }

    /// Checks the structural invariants: acyclic; every operand refers to a live node output or
    /// constant; edges match operands; names unique and indexed; graph outputs defined. (A graph
    /// just imported from ONNX has had its types inferred and checked, so loading needs no more.)
    pub fn verify_structure(&self) -> Result<(), GraphError> {
        self.structure(|_| Ok(())).map(drop)
    }

    /// The structural checks, and `node_check` on each node whose structure is sound; returns the
    /// topological order.
    pub(super) fn structure(
        &self,
        node_check: impl Fn(NodeId) -> Result<(), GraphError> + Sync,
    ) -> Result<Vec<NodeId>, GraphError> {
        let inv = GraphError::Invariant;
        for (id, c) in self.constants() {
            if c.origin != ConstOrigin::InputDefault {
                self.check_def(&c.name, Operand::Const(id))?;
            }
        }
        // Nodes are checked independently (a node's checks read its inputs' recorded types, not
        // theirs), on both cores; the first error in index order is reported.
        use rayon::prelude::*;
        let ids: Vec<NodeId> = self.g.node_indices().collect();
        if self.kinds.iter().filter(|k| k.is_some()).count() != ids.len() {
            return Err(inv("the op kind table lists a removed node".into()));
        }
        if let Some(e) = ids.par_chunks(4096).find_map_first(|ids| {
            ids.iter().find_map(|&id| self.node_structure(id).and_then(|()| node_check(id)).err())
        }) {
            return Err(e);
        }
        // The constant use counts, in debug builds (a second walk over every node's inputs; a
        // count too low shows in release builds too, once `dce` removes a constant still read).
        if cfg!(debug_assertions) {
            let mut uses = vec![0; self.consts.len()];
            for op in ids.iter().flat_map(|&id| self.g[id].inputs.iter().chain(&self.g[id].captures)) {
                if let Operand::Const(c) = op {
                    uses[c.0 as usize] += 1;
                }
            }
            if self.consts.iter().map(|s| s.uses).ne(uses) {
                return Err(inv("the constant use counts are stale".into()));
            }
        }
        let indexed: usize = self.output_at.values().map(Vec::len).sum();
        let index_ok = indexed == self.outputs.len()
            && self
                .output_at
                .iter()
                .all(|(op, at)| at.iter().all(|&i| self.outputs.get(i as usize).is_some_and(|o| o.operand == *op)));
        if !index_ok {
            return Err(inv("the graph output index is stale".into()));
        }
        for out in &self.outputs {
            if self.live_name(out.operand).is_none() {
                return Err(GraphError::DanglingOutput(out.name().to_string()));
            }
        }
        self.topo_order()
    }

    /// Every definition must be indexed under its name. Two definitions of one name cannot
    /// both be (the index maps a name to one operand). Entries of removed values may remain:
    /// `lookup` does not see them.
    pub(super) fn check_def(&self, name: &str, op: Operand) -> Result<(), GraphError> {
        if name.is_empty() || self.names.has(name, op) {
            return Ok(());
        }
        match self.names.live(self, name) {
            Some(_) => Err(GraphError::DuplicateName(name.to_string())),
            None => Err(GraphError::Invariant(format!("name index is stale for '{name}'"))),
        }
    }

    /// One node's structural checks: outputs indexed, operands live, edges matching operands.
    pub(super) fn node_structure(&self, id: NodeId) -> Result<(), GraphError> {
        let n = &self.g[id];
        if self.kind(id) != Some(n.op.kind()) {
            return Err(GraphError::Invariant(format!("the op kind table is stale for node {}", n.label())));
        }
        for (slot, v) in n.outputs.iter().enumerate() {
            self.check_def(&v.name, Operand::Value(Outlet::new(id, slot as u32)))?;
        }
        let check_operand = |op: Operand| -> Result<(), GraphError> {
            let bad = |msg: String| GraphError::Node { node: n.label(), op: n.op.to_string(), msg };
            match op {
                Operand::Value(o) => match self.live_value(o) {
                    None => return Err(bad(format!("input refers to a removed value ({o:?})"))),
                    Some(v) if v.name.is_empty() => {
                        return Err(bad("input refers to an output the producer does not produce".into()))
                    }
                    Some(_) => {}
                },
                Operand::Const(c) => {
                    if self.live_const(c).is_none() {
                        return Err(bad(format!("input refers to a removed constant ({c:?})")));
                    }
                }
                Operand::None => {}
            }
            Ok(())
        };
        for v in &n.outputs {
            let Some(q) = &v.quant else { continue };
            for c in std::iter::once(q.scale).chain(q.zero_point) {
                check_operand(Operand::Const(c)).map_err(|_| GraphError::Node {
                    node: n.label(),
                    op: n.op.to_string(),
                    msg: format!("the quantization of '{}' refers to a removed constant ({c:?})", v.name),
                })?;
            }
        }
        // (On the stack for up to 9 inputs: the check runs for every node of every graph.)
        let mut expect: SmallVec<[(NodeId, Edge); 9]> = SmallVec::new();
        for (i, &op) in n.inputs.iter().enumerate() {
            check_operand(op)?;
            if let Operand::Value(o) = op {
                expect.push((o.node, Edge { slot: o.slot, port: Port::Input(i as u32) }));
            }
        }
        for (i, &op) in n.captures.iter().enumerate() {
            check_operand(op)?;
            if let Operand::Value(o) = op {
                expect.push((o.node, Edge { slot: o.slot, port: Port::Capture(i as u32) }));
            }
        }
        let mut actual: SmallVec<[(NodeId, Edge); 9]> =
            self.g.edges_directed(id, Direction::Incoming).map(|e| (e.source(), *e.weight())).collect();
        let key = |x: &(NodeId, Edge)| (x.0, x.1.slot, port_key(x.1.port));
        expect.sort_by_key(key);
        actual.sort_by_key(key);
        if expect != actual {
            return Err(GraphError::Invariant(format!("edges of node {} do not match its inputs", n.label())));
        }
        if n.op == Op::Input && !self.inputs.contains(&id) {
            return Err(GraphError::Invariant(format!("input node {} is not listed as a graph input", n.label())));
        }
        Ok(())
    }
}
