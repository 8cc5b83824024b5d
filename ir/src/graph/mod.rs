//! The IR graph: [`Node`]s in a stable-index arena (`crate::arena`, O(1) edge removal) whose values are addressed as
//! [`Outlet`] `{node, slot}`; constants live once in a side table ([`ConstId`]), never as graph
//! nodes, so a scale shared by thousands of Q/DQ nodes costs no edges.
//!
//! Every node keeps what ONNX said about it (attributes, doc string, metadata, domain spelling)
//! and an `order` key: export is a topological sort that prefers the smallest key, so a graph
//! that no pass touched is written back in exactly its original node order.
//!
//! Here: the [`Graph`] and reading it. The data it holds ([`Node`], [`Value`], [`Const`], …) is
//! in `types`; adding, removing and rewiring in `edit`; names in `names`; the topological order
//! kept across edits in `order`; the graph check ([`Graph::verify`]) in `verify`.

mod edit;
mod names;
mod order;
mod types;
mod verify;

pub use types::*;

use crate::arena::Arena;
use crate::dtype::DType;
use crate::op::{Op, OpKind};
use crate::proto::ValueInfoProto;
use crate::tensor::Tensor;
use names::NameIndex;
use order::Topo;
use petgraph::Direction;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The IR graph. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: Arena<Node, Edge>,
    /// The op kind of each node by index (`None`: no node there): sweeps filter nodes by op
    /// here, in a table of a byte per node, without reading the nodes they skip.
    kinds: Vec<Option<OpKind>>,
    /// The constants by index, with what the graph keeps about each.
    consts: Vec<ConstSlot>,
    /// Every value and constant by name: see [`NameIndex`].
    names: NameIndex,
    /// Graph inputs, in order: each is an [`Op::Input`] node.
    pub inputs: Vec<NodeId>,
    /// Graph outputs, in order (read with [`Graph::outputs`], added with [`Graph::add_output`]).
    outputs: Vec<GraphOutput>,
    /// Which graph outputs (positions in `outputs`) each operand is: "is this a graph output" is
    /// asked for every rewrite, and a model may have tens of thousands of outputs.
    output_at: FxHashMap<Operand, Vec<u32>>,
    /// Opset version per domain (`""` for ai.onnx), from the model's opset_import.
    pub opsets: BTreeMap<String, i64>,
    /// The model's `value_info` list, verbatim and in order. Value types read from it live on the
    /// values; export writes back the entries whose values still exist (regenerated from the
    /// value's type where a pass changed its element type or rank).
    pub value_info: Vec<ValueInfoProto>,
    /// Names of `value_info` entries that named no value already in the input model (onnxruntime's
    /// quantizer leaves such entries). They are written back verbatim, and no new value takes
    /// their names.
    pub value_info_orphans: FxHashSet<String>,
    /// The GraphProto fields the IR does not model (name, doc_string, quantization_annotation,
    /// metadata_props); its node/tensor/value lists are kept empty.
    pub meta: crate::proto::GraphProto,
    next_order: u64,
    /// Per base name, the suffix [`Graph::fresh_name`] tries next (so that thousands of rewrites
    /// naming values after the same base stay linear).
    name_hints: FxHashMap<String, u64>,
    /// [`Graph::topo_order`] of the current graph and the edits since it was computed.
    topo: Topo,
    /// The constants [`Graph::add_shared_initializer`] added, by fingerprint.
    shared: FxHashMap<u64, Vec<ConstId>>,
}

/// Spacing of the order keys given to nodes as they are added, leaving room between them.
pub const ORDER_STEP: u64 = 1 << 16;

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// The opset version of ai.onnx (the default domain).
    pub fn opset(&self) -> i64 {
        self.opset_of("")
    }

    pub fn opset_of(&self, domain: &str) -> i64 {
        let d = if domain == "ai.onnx" { "" } else { domain };
        self.opsets.get(d).copied().unwrap_or(0)
    }

    /// Imports the domain of `op` (opset version 1) if the graph does not import it yet, as a
    /// rewrite into an op of another domain (com.microsoft) must.
    pub fn import_domain_of(&mut self, op: &Op) {
        let domain = op.default_domain();
        if !domain.is_empty() && !self.opsets.contains_key(domain) {
            self.opsets.insert(domain.to_string(), 1);
        }
    }

    /// Makes room for about `nodes` more nodes, their edges and names, in one allocation each,
    /// with room for as many nodes again in the node and edge tables: the passes add nodes (a
    /// patch its new nodes; unique-dq one per extra consumer of a DQ) before they remove
    /// the ones they replace. A
    /// million-node graph that grows by doubling copies hundreds of megabytes and faults in the
    /// fresh pages of every copy (a twentieth of a large compile). Node and edge room is only
    /// address space until it is used; the name index is filled at random, which touches all of
    /// it, so it gets room for the names of `nodes` alone and grows if passes add more.
    pub fn reserve(&mut self, nodes: usize) {
        self.g.reserve(2 * nodes, 6 * nodes);
        self.names.reserve(nodes);
    }

    /// Makes later nodes get order keys after `key`.
    pub fn reserve_order(&mut self, key: u64) {
        self.next_order = self.next_order.max(key);
    }

    pub(crate) fn take_order(&mut self) -> u64 {
        self.next_order += ORDER_STEP;
        self.next_order
    }

    // ---- reading -------------------------------------------------------------------------

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// Mutable access to a node's op, attributes, outputs' metadata and proto. Inputs are edited
    /// through [`Graph::set_input`] so that edges stay consistent.
    /// (Neither the order key nor the edges can change through it, so the topological order
    /// stays. A node keeps its op kind: a rewrite into another op is a new node.)
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    /// The kind of node `id`'s op, `None` when there is no such node (a byte from a dense
    /// table: no read of the node). Nodes do not change op (see [`Graph::node_mut`]).
    pub fn kind(&self, id: NodeId) -> Option<OpKind> {
        self.kinds.get(id.index()).copied().flatten()
    }

    /// All nodes (graph inputs included) in index order. (Found in the kind table, a byte per
    /// index: the slots of removed nodes are not read.)
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.kinds.iter().enumerate().filter(|(_, k)| k.is_some()).map(|(i, _)| NodeId::new(i))
    }

    /// An upper bound of node indices (`NodeId::index()`), for tables indexed by node.
    pub fn node_bound(&self) -> usize {
        self.g.node_bound()
    }

    /// Number of nodes, graph inputs excluded.
    pub fn op_count(&self) -> usize {
        self.g.node_count() - self.inputs.len()
    }

    pub fn value(&self, o: Outlet) -> &Value {
        &self.g[o.node].outputs[o.slot as usize]
    }

    /// The value `o`, if its node exists and has that output (for checks of possibly stale
    /// references; [`Graph::value`] panics instead).
    pub(super) fn live_value(&self, o: Outlet) -> Option<&Value> {
        self.g.get(o.node)?.outputs.get(o.slot as usize)
    }

    /// The name of a value or constant that exists.
    pub(super) fn live_name(&self, op: Operand) -> Option<&str> {
        match op {
            Operand::Value(o) => self.live_value(o).map(|v| v.name.as_str()),
            Operand::Const(c) => self.live_const(c).map(|c| c.name.as_str()),
            Operand::None => None,
        }
    }

    /// The constant `c`, if it was not removed.
    pub(super) fn live_const(&self, c: ConstId) -> Option<&Const> {
        self.consts.get(c.0 as usize)?.c.as_deref()
    }

    pub fn value_mut(&mut self, o: Outlet) -> &mut Value {
        &mut self.g[o.node].outputs[o.slot as usize]
    }

    pub fn constant(&self, id: ConstId) -> &Const {
        self.consts[id.0 as usize].c.as_deref().expect("constant was removed")
    }

    pub fn constant_mut(&mut self, id: ConstId) -> &mut Const {
        let slot = &mut self.consts[id.0 as usize];
        slot.decoded = Decoded::default();
        slot.c.as_deref_mut().expect("constant was removed")
    }

    /// The values of a small dense constant as f32 ([`Tensor::to_f32`]), decoded once and shared;
    /// `None` for a constant that is large, not dense, or not decodable (read the tensor itself
    /// to learn why).
    pub fn const_f32s(&self, id: ConstId) -> Option<Arc<[f32]>> {
        let decode = || Some(self.small_tensor(id)?.to_f32().ok()?.into());
        self.consts.get(id.0 as usize)?.decoded.f32s.get_or_init(decode).clone()
    }

    /// The values of a small dense constant as i64 ([`Tensor::to_i64`]), as [`Graph::const_f32s`].
    pub fn const_i64s(&self, id: ConstId) -> Option<Arc<[i64]>> {
        let decode = || Some(self.small_tensor(id)?.to_i64().ok()?.into());
        self.consts.get(id.0 as usize)?.decoded.i64s.get_or_init(decode).clone()
    }

    pub(super) fn small_tensor(&self, id: ConstId) -> Option<&Tensor> {
        self.live_const(id)?.tensor().filter(|t| t.numel().is_ok_and(|n| n <= MAX_DECODED))
    }

    /// How many node inputs and captures read constant `id` (graph outputs and quantization
    /// annotations are not counted).
    pub fn const_uses(&self, id: ConstId) -> u32 {
        self.consts[id.0 as usize].uses
    }

    /// An upper bound of constant indices (`ConstId.0`), for tables indexed by constant.
    pub fn const_bound(&self) -> usize {
        self.consts.len()
    }

    /// All live constants, in table order (the original initializer order first).
    pub fn constants(&self) -> impl Iterator<Item = (ConstId, &Const)> + '_ {
        self.consts.iter().enumerate().filter_map(|(i, s)| s.c.as_deref().map(|c| (ConstId(i as u32), c)))
    }

    /// The tensor of a dense constant operand.
    pub fn const_tensor(&self, op: Operand) -> Option<&Tensor> {
        match op {
            Operand::Const(c) => self.constant(c).tensor(),
            _ => None,
        }
    }

    pub fn lookup(&self, name: &str) -> Option<Operand> {
        self.names.live(self, name)
    }

    /// Whether a name index entry is live: `op` exists and is called `name`. (An entry left by a
    /// removed node is not: its node is gone, or its index was reused by a node whose value has
    /// another name.)
    pub(super) fn indexed(&self, name: &str, op: Operand) -> bool {
        self.live_name(op) == Some(name)
    }

    pub fn operand_name(&self, op: Operand) -> &str {
        match op {
            Operand::Value(o) => &self.value(o).name,
            Operand::Const(c) => &self.constant(c).name,
            Operand::None => "",
        }
    }

    /// The element type of an operand (without cloning its shape, unlike [`Graph::operand_type`]).
    pub fn operand_dtype(&self, op: Operand) -> Option<DType> {
        match op {
            Operand::Value(o) => self.value(o).ty.as_ref().map(|t| t.dtype),
            Operand::Const(c) => self.constant(c).dtype(),
            Operand::None => None,
        }
    }

    /// The rank of an operand (without cloning or building its shape). A constant of unknown
    /// element type has no type, so no rank either.
    pub fn operand_rank(&self, op: Operand) -> Option<usize> {
        match op {
            Operand::Value(o) => self.value(o).ty.as_ref()?.rank(),
            Operand::Const(c) => {
                let c = self.constant(c);
                c.dtype().map(|_| c.dims().len())
            }
            Operand::None => None,
        }
    }

    pub fn operand_type(&self, op: Operand) -> Option<TensorType> {
        match op {
            Operand::Value(o) => self.value(o).ty.clone(),
            Operand::Const(c) => self.constant(c).ty(),
            Operand::None => None,
        }
    }

    /// Consumers of a node's outputs: (consumer, edge), in edge order.
    pub fn uses(&self, id: NodeId) -> impl Iterator<Item = (NodeId, Edge)> + '_ {
        self.g.edges_directed(id, Direction::Outgoing).map(|e| (e.target(), *e.weight()))
    }

    /// Whether any node reads an output of node `id` (the head of its edge list, in the last of
    /// the three cache lines of its slot, is all that is read).
    pub fn has_uses(&self, id: NodeId) -> bool {
        self.g.has_edges(id, Direction::Outgoing)
    }

    /// Consumers of one value: (consumer, port).
    pub fn consumers(&self, o: Outlet) -> Vec<(NodeId, Port)> {
        let mut v: Vec<_> = self.uses(o.node).filter(|(_, e)| e.slot == o.slot).map(|(n, e)| (n, e.port)).collect();
        v.sort_by_key(|&(n, p)| (n, port_key(p)));
        v
    }

    /// Whether a value is a graph output.
    pub fn is_output(&self, op: Operand) -> bool {
        self.output_at.contains_key(&op)
    }

    /// Whether any output of a node is a graph output.
    pub fn feeds_output(&self, id: NodeId) -> bool {
        self.contains(id)
            && (0..self.g[id].outputs.len()).any(|slot| self.is_output(Operand::Value(Outlet::new(id, slot as u32))))
    }

    /// The graph outputs, in order.
    pub fn outputs(&self) -> &[GraphOutput] {
        &self.outputs
    }

    /// Appends a graph output.
    pub fn add_output(&mut self, out: GraphOutput) {
        self.output_at.entry(out.operand).or_default().push(self.outputs.len() as u32);
        self.outputs.push(out);
    }

    /// Makes graph output `i` read `op`.
    pub fn set_output(&mut self, i: usize, op: Operand) {
        let old = std::mem::replace(&mut self.outputs[i].operand, op);
        if let Some(at) = self.output_at.get_mut(&old) {
            at.retain(|&j| j as usize != i);
            if at.is_empty() {
                self.output_at.remove(&old);
            }
        }
        let at = self.output_at.entry(op).or_default();
        at.push(i as u32);
        at.sort_unstable();
    }

    /// The declared `ValueInfoProto` of graph output `i` (its name is the output's name).
    pub fn output_declared_mut(&mut self, i: usize) -> &mut ValueInfoProto {
        &mut self.outputs[i].declared
    }
}

fn port_key(p: Port) -> (u8, u32) {
    match p {
        Port::Input(i) => (0, i),
        Port::Capture(i) => (1, i),
    }
}
#[cfg(test)]
mod output_index {
    use crate::text::parse;
    use crate::{Operand, Outlet};

    #[test]
    fn outputs_stay_indexed_through_edits() {
        let mut g = parse(
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %a = Relu(%x)\n  %b = Neg(%a)\n  output %a\n  output %b\n  output %a\n}\n",
        )
        .unwrap();
        let (Some(Operand::Value(a)), Some(Operand::Value(b))) = (g.lookup("a"), g.lookup("b")) else { panic!() };
        assert!(g.is_output(Operand::Value(a)) && g.feeds_output(a.node));
        g.set_output(0, Operand::Value(b));
        assert!(g.is_output(Operand::Value(a)), "output 2 still reads a");
        g.set_output(2, Operand::Value(b));
        assert!(!g.is_output(Operand::Value(a)) && !g.feeds_output(a.node));
        g.replace_uses(b, Operand::Value(Outlet::new(a.node, 0)));
        assert!(g.outputs().iter().all(|o| o.operand == Operand::Value(a)));
        assert!(!g.is_output(Operand::Value(b)));
        g.verify_structure().unwrap();
    }
}

#[cfg(test)]
mod layout {
    /// Million-node graphs keep one of each per node (and several attributes): guard against a
    /// schema or field change silently multiplying memory (AttributeProto was 1672 bytes before
    /// its tensor/graph payloads were boxed in build.rs).
    #[test]
    fn per_node_structures_stay_small() {
        use std::mem::size_of;
        assert!(size_of::<crate::proto::AttributeProto>() <= 400, "{}", size_of::<crate::proto::AttributeProto>());
        // (Name and domain live in the node: most nodes have no other `NodeProto` field, and need
        // no boxed proto, a 200-byte allocation of its own.)
        assert!(size_of::<super::Node>() <= 192, "{}", size_of::<super::Node>());
        assert!(size_of::<crate::proto::NodeProto>() >= 200, "{}", size_of::<crate::proto::NodeProto>());
        assert!(size_of::<super::Value>() <= 112, "{}", size_of::<super::Value>());
    }
}
