//! Editing the graph: adding and removing nodes, constants and inputs, rewiring and renaming.

use super::*;
use crate::op::{Op, OpKind};
use crate::proto::AttributeProto;
use crate::tensor::Tensor;
use petgraph::Direction;
use std::sync::Arc;

impl Graph {
    /// Adds a graph input.
    pub fn add_input(&mut self, value: Value) -> Result<Outlet, GraphError> {
        self.topo.edit();
        let order = self.take_order();
        let name = value.name.clone();
        let node = Node {
            op: Op::Input,
            attrs: Arc::new([]),
            outputs: vec![value],
            meta: NodeMeta::default(),
            order,
            inputs: Inputs::new(),
            captures: vec![],
        };
        let id = self.g.add_node(node);
        let o = Outlet::new(id, 0);
        if let Err(e) = self.register(&name, Operand::Value(o)) {
            self.g.remove_node(id);
            return Err(e);
        }
        self.set_kind(id, Some(OpKind::Input));
        self.inputs.push(id);
        Ok(o)
    }

    /// Adds a constant to the side table. Its name must be unused (see [`Graph::fresh_name`]).
    pub fn add_const(&mut self, c: Const) -> Result<ConstId, GraphError> {
        let id = ConstId(self.consts.len() as u32);
        if c.origin != ConstOrigin::InputDefault {
            self.register(&c.name, Operand::Const(id))?;
        }
        self.consts.push(ConstSlot { c: Some(Box::new(c)), ..ConstSlot::default() });
        Ok(id)
    }

    /// Adds a dense constant with a fresh name based on `base` as an initializer.
    pub fn add_initializer(&mut self, base: &str, mut tensor: Tensor) -> ConstId {
        let name = self.fresh_name(base);
        tensor.proto.name = Some(name.clone());
        let c = Const { name, value: ConstValue::Dense(tensor), origin: ConstOrigin::Initializer };
        self.add_const(c).expect("fresh name")
    }

    /// A dense initializer of `tensor`'s type, dims and data: one an earlier call added that
    /// still exists, or a new one named after `base` (see [`Graph::add_initializer`]). Returns it
    /// and whether it is new. Rewrites make the same small constants over and over (a requantized
    /// bias per fused conv of a shared weight, a zero point per fused op); made once, they need no
    /// names, no memory and no `dedup-consts` work for each copy. Constants are never edited in
    /// place, so sharing one is safe.
    pub fn add_shared_initializer(&mut self, base: &str, tensor: Tensor) -> (ConstId, bool) {
        let Ok(fp) = tensor.fingerprint() else { return (self.add_initializer(base, tensor), true) };
        let same = |c: &Const| {
            c.tensor().is_some_and(|t| {
                t.proto.data_type == tensor.proto.data_type
                    && t.dims() == tensor.dims()
                    && matches!((t.raw(), tensor.raw()), (Ok(a), Ok(b)) if a == b)
            })
        };
        let found =
            self.shared.get(&fp).and_then(|ids| ids.iter().copied().find(|&c| self.live_const(c).is_some_and(same)));
        if let Some(c) = found {
            return (c, false);
        }
        let c = self.add_initializer(base, tensor);
        self.shared.entry(fp).or_default().push(c);
        (c, true)
    }

    /// Removes a constant; it must have no uses left.
    pub fn remove_const(&mut self, id: ConstId) {
        let slot = &mut self.consts[id.0 as usize];
        if let Some(c) = slot.c.take() {
            slot.decoded = Decoded::default();
            self.names.remove(&c.name, Operand::Const(id));
        }
    }

    /// Adds a node. `meta` carries name/domain/doc fields (see [`NodeMeta`]; a `NodeProto`
    /// converts, its op type and input/output/attribute lists ignored). Output names must be unused.
    pub fn add_node(
        &mut self,
        op: Op,
        meta: impl Into<NodeMeta>,
        attrs: impl Into<Arc<[AttributeProto]>>,
        inputs: Vec<Operand>,
        outputs: Vec<Value>,
    ) -> Result<NodeId, GraphError> {
        let order = self.take_order();
        self.add_node_at(op, meta, attrs, inputs, outputs, order)
    }

    /// [`Graph::add_node`] with an explicit order key (e.g. the key of the node it replaces).
    pub fn add_node_at(
        &mut self,
        op: Op,
        meta: impl Into<NodeMeta>,
        attrs: impl Into<Arc<[AttributeProto]>>,
        inputs: Vec<Operand>,
        outputs: Vec<Value>,
        order: u64,
    ) -> Result<NodeId, GraphError> {
        self.topo.edit();
        let id = self.g.add_node(Node {
            op,
            attrs: attrs.into(),
            outputs: vec![],
            meta: meta.into(),
            order,
            inputs: Inputs::new(),
            captures: vec![],
        });
        for (slot, v) in outputs.iter().enumerate() {
            if let Err(e) = self.register(&v.name, Operand::Value(Outlet::new(id, slot as u32))) {
                for (s, v) in outputs[..slot].iter().enumerate() {
                    self.names.remove(&v.name, Operand::Value(Outlet::new(id, s as u32)));
                }
                self.g.remove_node(id);
                return Err(e);
            }
        }
        self.g[id].outputs = outputs;
        let kind = self.g[id].op.kind();
        if kind != OpKind::Input {
            self.topo.node_added(order, id);
        }
        self.set_kind(id, Some(kind));
        self.set_inputs(id, inputs);
        Ok(id)
    }

    pub(super) fn set_kind(&mut self, id: NodeId, kind: Option<OpKind>) {
        if self.kinds.len() <= id.index() {
            self.kinds.resize(self.g.node_bound().max(id.index() + 1), None);
        }
        self.kinds[id.index()] = kind;
    }

    /// Adds an edge (recorded for the topological order).
    pub(super) fn add_edge(&mut self, a: NodeId, b: NodeId, e: Edge) {
        self.topo.edge_added(a, b);
        self.g.add_edge(a, b, e);
    }

    /// Replaces all inputs of a node.
    pub fn set_inputs(&mut self, id: NodeId, inputs: Vec<Operand>) {
        self.topo.edit();
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| matches!(e.weight().port, Port::Input(_)))
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (i, &op) in inputs.iter().enumerate() {
            if let Operand::Value(o) = op {
                self.add_edge(o.node, id, Edge { slot: o.slot, port: Port::Input(i as u32) });
            }
        }
        count_const_uses(&mut self.consts, &self.g[id].inputs, false);
        count_const_uses(&mut self.consts, &inputs, true);
        self.g[id].inputs = Inputs::from_vec(inputs);
    }

    /// Replaces input `i` of a node (extending the list with `None` if needed).
    pub fn set_input(&mut self, id: NodeId, i: usize, op: Operand) {
        self.topo.edit();
        // Only the one edge changes; avoid rebuilding all edges for nodes with many inputs.
        let old = self
            .g
            .edges_directed(id, Direction::Incoming)
            .find(|e| e.weight().port == Port::Input(i as u32))
            .map(|e| e.id());
        if let Some(e) = old {
            self.g.remove_edge(e);
        }
        if let Operand::Value(o) = op {
            self.add_edge(o.node, id, Edge { slot: o.slot, port: Port::Input(i as u32) });
        }
        let inputs = &mut self.g[id].inputs;
        if inputs.len() <= i {
            inputs.resize(i + 1, Operand::None);
        }
        let old = std::mem::replace(&mut inputs[i], op);
        count_const_uses(&mut self.consts, &[old], false);
        count_const_uses(&mut self.consts, &[op], true);
    }

    /// Sets the outer-scope values a node's subgraphs read.
    pub fn set_captures(&mut self, id: NodeId, captures: Vec<Operand>) {
        self.topo.edit();
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| matches!(e.weight().port, Port::Capture(_)))
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (i, &op) in captures.iter().enumerate() {
            if let Operand::Value(o) = op {
                self.add_edge(o.node, id, Edge { slot: o.slot, port: Port::Capture(i as u32) });
            }
        }
        count_const_uses(&mut self.consts, &self.g[id].captures, false);
        count_const_uses(&mut self.consts, &captures, true);
        self.g[id].captures = captures;
    }

    /// Makes every use of `old` (node inputs, captures and graph outputs) use `new`.
    pub fn replace_uses(&mut self, old: Outlet, new: Operand) {
        for (n, port) in self.consumers(old) {
            match port {
                Port::Input(i) => self.set_input(n, i as usize, new),
                Port::Capture(i) => {
                    let mut c = self.g[n].captures.clone();
                    c[i as usize] = new;
                    self.set_captures(n, c);
                }
            }
        }
        if let Some(at) = self.output_at.remove(&Operand::Value(old)) {
            for &i in &at {
                self.outputs[i as usize].operand = new;
            }
            let positions = self.output_at.entry(new).or_default();
            positions.extend(at);
            positions.sort_unstable();
        }
    }

    /// Removes a node. Its outputs must be unused (no consumers, not graph outputs).
    pub fn remove_node(&mut self, id: NodeId) -> Result<Node, GraphError> {
        let node = &self.g[id];
        if self.uses(id).next().is_some() || self.feeds_output(id) {
            return Err(GraphError::Node {
                node: node.label(),
                op: node.op.to_string(),
                msg: "cannot remove a node whose outputs are still used".into(),
            });
        }
        let node = self.g.remove_node(id).expect("node exists");
        self.set_kind(id, None);
        count_const_uses(&mut self.consts, &node.inputs, false);
        count_const_uses(&mut self.consts, &node.captures, false);
        match node.op {
            Op::Input => {
                self.topo.edit();
            }
            _ => self.topo.node_removed(node.order, id),
        }
        // (The name index keeps the outputs' entries: see `names`.)
        self.inputs.retain(|&i| i != id);
        Ok(node)
    }

    /// Renames a value (keeps the name index consistent).
    pub fn rename(&mut self, op: Operand, name: &str) -> Result<(), GraphError> {
        match self.lookup(name) {
            Some(o) if o == op => return Ok(()),
            Some(_) => return Err(GraphError::DuplicateName(name.to_string())),
            None => {}
        }
        let slot = match op {
            Operand::Value(o) => &mut self.value_mut(o).name,
            Operand::Const(c) => &mut self.constant_mut(c).name,
            Operand::None => return Ok(()),
        };
        let old = std::mem::replace(slot, name.to_string());
        if !old.is_empty() {
            self.names.remove(&old, op);
        }
        // (No live operand has `name`, checked above: index it without looking again.)
        if !name.is_empty() {
            let mut names = std::mem::take(&mut self.names);
            names.insert(self, name, op);
            self.names = names;
        }
        Ok(())
    }

    // ---- checking ------------------------------------------------------------------------
}

/// Counts one more (`read`) or one less use of each constant among `ops`
/// ([`Graph::const_uses`]).
fn count_const_uses(consts: &mut [ConstSlot], ops: &[Operand], read: bool) {
    for op in ops {
        if let Operand::Const(c) = op {
            let n = &mut consts[c.0 as usize].uses;
            *n = if read { *n + 1 } else { *n - 1 };
        }
    }
}

#[cfg(test)]
mod const_uses {
    use crate::text::parse;
    use crate::{Operand, Outlet};

    /// Every edit of inputs and captures keeps the counts, and the structural check agrees.
    #[test]
    fn counts_follow_inputs_and_captures() {
        let mut g = parse(
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[2]\n  input %c: bool[]\n  const %k: f32[] 0.5\n  const %j: f32[] 0.25\n  %a = Mul(%k, %k)\n  %b = Add(%x, %j)\n  %i: f32[2] = If[then_branch=graph {\n    output %k\n  }, else_branch=graph {\n    output %x\n  }](%c)\n  output %a\n  output %b\n}\n",
        )
        .unwrap();
        let (Some(Operand::Const(k)), Some(Operand::Const(j))) = (g.lookup("k"), g.lookup("j")) else { panic!() };
        let node = |name: &str| match g.lookup(name) {
            Some(Operand::Value(o)) => o.node,
            _ => panic!("no value {name}"),
        };
        let (a, b, i) = (node("a"), node("b"), node("i"));
        let counts = |g: &crate::Graph| (g.const_uses(k), g.const_uses(j));
        assert_eq!(counts(&g), (3, 1), "twice by a, once by i's subgraph; once by b");
        g.set_input(a, 1, Operand::Const(j));
        assert_eq!(counts(&g), (2, 2));
        g.set_inputs(b, vec![Operand::Value(Outlet::new(a, 0)), Operand::Const(k)]);
        assert_eq!(counts(&g), (3, 1));
        g.set_captures(i, vec![Operand::Const(j)]);
        assert_eq!(counts(&g), (2, 2));
        g.remove_node(i).unwrap();
        assert_eq!(counts(&g), (2, 1));
        g.verify_structure().unwrap();
        if cfg!(debug_assertions) {
            g.consts[k.0 as usize].uses += 1;
            assert!(g.verify_structure().unwrap_err().to_string().contains("constant use counts"));
        }
    }
}
