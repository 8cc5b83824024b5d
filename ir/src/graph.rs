//! The IR graph: [`Node`]s in a stable-index arena ([`crate::arena`], O(1) edge removal) whose values are addressed as
//! [`Outlet`] `{node, slot}`; constants live once in a side table ([`ConstId`]), never as graph
//! nodes, so a scale shared by thousands of Q/DQ nodes costs no edges.
//!
//! Every node keeps what ONNX said about it (attributes, doc string, metadata, domain spelling)
//! and an `order` key: export is a topological sort that prefers the smallest key, so a graph
//! that no pass touched is written back in exactly its original node order.

use crate::arena::Arena;
use crate::dtype::DType;
use crate::op::{Op, OpKind};
use crate::proto::{AttributeProto, NodeProto, SparseTensorProto, ValueInfoProto};
use crate::tensor::Tensor;
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::sync::Arc;

pub type NodeId = NodeIndex<u32>;

/// A value: output `slot` of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outlet {
    pub node: NodeId,
    pub slot: u32,
}

impl Outlet {
    pub fn new(node: NodeId, slot: u32) -> Outlet {
        Outlet { node, slot }
    }
}

/// A constant in the graph's side table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

/// What a node input refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operand {
    Value(Outlet),
    Const(ConstId),
    /// An omitted optional input (the empty name in ONNX).
    None,
}

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Known(i64),
    /// A symbolic dimension such as the batch `N`.
    Sym(String),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// The type of a tensor value: element type and shape (`None` when even the rank is unknown).
/// The shape is shared: types are copied from value to value far more often than made (a
/// million-node graph held a million shape vectors, and every copy allocated one more).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Option<Arc<[Dim]>>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> TensorType {
        TensorType { dtype, shape: Some(shape.into()) }
    }

    /// A type of unknown or given shape.
    pub fn with_shape(dtype: DType, shape: Option<Vec<Dim>>) -> TensorType {
        TensorType { dtype, shape: shape.map(Into::into) }
    }
    pub fn known(dtype: DType, dims: &[i64]) -> TensorType {
        TensorType::new(dtype, dims.iter().map(|&d| Dim::Known(d)).collect())
    }
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.len())
    }
}

/// Quantization parameters of an integer value: the constants of the QuantizeLinear that made it
/// (or of the DequantizeLinear that reads it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quant {
    pub scale: ConstId,
    pub zero_point: Option<ConstId>,
    /// Present for per-axis and blocked quantization.
    pub axis: Option<i64>,
    pub block_size: Option<i64>,
}

/// What is known about a value.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Value {
    /// The ONNX name; empty for an optional output the node does not produce.
    pub name: String,
    pub ty: Option<TensorType>,
    pub quant: Option<Quant>,
    /// For a graph input: its `ValueInfoProto`, kept verbatim for export (boxed: most values
    /// have none, and a small `Value` keeps million-node graphs compact).
    pub declared: Option<Box<ValueInfoProto>>,
}

impl Value {
    pub fn named(name: impl Into<String>) -> Value {
        Value { name: name.into(), ..Default::default() }
    }
    pub fn typed(name: impl Into<String>, ty: TensorType) -> Value {
        Value { name: name.into(), ty: Some(ty), ..Default::default() }
    }
}

/// What a `NodeProto` says about a node besides its op, inputs, outputs and attributes, kept
/// for export. Name and domain spelling are fields (`None`: absent in the proto, which is not the
/// same bytes as empty); the rarely used rest is boxed, so most nodes carry no proto at all.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NodeMeta {
    pub name: Option<Box<str>>,
    /// The domain as spelled in the file (`""`, `"ai.onnx"` and absent all mean ONNX's own).
    pub domain: Option<Box<str>>,
    /// doc_string, overload, metadata_props, device_configurations, when the node has any; its
    /// other fields are kept empty.
    pub rest: Option<Box<NodeProto>>,
}

impl From<NodeProto> for NodeMeta {
    fn from(mut p: NodeProto) -> NodeMeta {
        let name = p.name.take().map(String::into_boxed_str);
        let domain = p.domain.take().map(String::into_boxed_str);
        let has_rest = p.doc_string.is_some()
            || p.overload.is_some()
            || !p.metadata_props.is_empty()
            || !p.device_configurations.is_empty();
        let rest = has_rest.then(|| {
            Box::new(NodeProto {
                doc_string: p.doc_string,
                overload: p.overload,
                metadata_props: p.metadata_props,
                device_configurations: p.device_configurations,
                ..Default::default()
            })
        });
        NodeMeta { name, domain, rest }
    }
}

impl NodeMeta {
    /// A `NodeProto` with these fields (op type, inputs, outputs and attributes left empty).
    pub fn to_proto(&self) -> NodeProto {
        let mut p = self.rest.as_deref().cloned().unwrap_or_default();
        p.name = self.name.as_deref().map(str::to_string);
        p.domain = self.domain.as_deref().map(str::to_string);
        p
    }
}

/// A node's inputs: up to three in the node itself (Q, DQ, Conv, Add, ... take at most three).
type Inputs = SmallVec<[Operand; 3]>;

/// A node: an operator application.
///
/// The fields a sweep reads at every node it visits, the op and the inputs (matching a pattern
/// walks from inputs to producers), come first and fill one cache line (`repr(C)` keeps that
/// order): a million-node graph does not fit any cache, and each further line and each
/// separate block of inputs was one more miss per node visited.
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct Node {
    pub op: Op,
    inputs: Inputs,
    pub outputs: Vec<Value>,
    /// Attributes exactly as read (in order, with doc strings and every field). Shared: nodes
    /// with equal attributes (import interns them) and the nodes a rewrite makes from them.
    pub attrs: Arc<[AttributeProto]>,
    /// Export sorts by this key among ready nodes. Fixed when the node is added (the
    /// topological order is kept up to date across edits on that premise: [`Graph::topo_order`]).
    order: u64,
    /// Name, domain spelling and the rest of the `NodeProto`.
    pub meta: NodeMeta,
    /// Outer-scope values read by subgraph attributes (If/Loop/Scan bodies): dependencies that
    /// ONNX leaves implicit, kept so that ordering and liveness see them.
    captures: Vec<Operand>,
}

impl Node {
    pub fn inputs(&self) -> &[Operand] {
        &self.inputs
    }
    pub fn captures(&self) -> &[Operand] {
        &self.captures
    }
    /// The order key (see the module documentation).
    pub fn order(&self) -> u64 {
        self.order
    }
    pub fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("")
    }
    /// The domain as spelled in the file, if it had one.
    pub fn domain(&self) -> Option<&str> {
        self.meta.domain.as_deref()
    }
    pub fn input(&self, i: usize) -> Operand {
        self.inputs.get(i).copied().unwrap_or(Operand::None)
    }
    /// The attribute called `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attrs.iter().find(|a| a.name.as_deref() == Some(name))
    }
    /// How errors and remarks name this node: its name, or its first output's name.
    pub fn label(&self) -> String {
        match (self.name(), self.outputs.first()) {
            ("", Some(v)) => format!("(producing '{}')", v.name),
            (name, _) => format!("'{name}'"),
        }
    }
}

/// Where an edge enters its consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    Input(u32),
    Capture(u32),
}

/// An edge producer → consumer: which output slot feeds which port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Edge {
    pub slot: u32,
    pub port: Port,
}

/// Where a constant came from, so export writes it back the same way.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstOrigin {
    Initializer,
    /// An initializer that is also a graph input: only a default the caller may override, so
    /// nodes read the input, not this constant.
    InputDefault,
    SparseInitializer,
    /// A `Constant` node; the proto keeps its name, attributes and doc string.
    ConstantNode {
        node: Box<NodeProto>,
        order: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConstValue {
    Dense(Tensor),
    Sparse(Box<SparseTensorProto>),
    /// Parsed from the text form, where the data was elided ([`crate::text::Elided`]): dtype,
    /// dims, fingerprint and first values, but no data. Typed, yet never a usable tensor.
    Elided(crate::text::Elided),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub name: String,
    pub value: ConstValue,
    pub origin: ConstOrigin,
}

impl Const {
    pub fn tensor(&self) -> Option<&Tensor> {
        match &self.value {
            ConstValue::Dense(t) => Some(t),
            ConstValue::Sparse(_) | ConstValue::Elided(_) => None,
        }
    }
    pub fn ty(&self) -> Option<TensorType> {
        Some(TensorType::known(self.dtype()?, self.dims()))
    }

    /// The dims (without building a type, unlike [`Const::ty`]).
    pub fn dims(&self) -> &[i64] {
        match &self.value {
            ConstValue::Dense(t) => &t.proto.dims,
            ConstValue::Sparse(s) => &s.dims,
            ConstValue::Elided(e) => &e.dims,
        }
    }

    /// The element type (without building the shape, unlike [`Const::ty`]).
    pub fn dtype(&self) -> Option<DType> {
        match &self.value {
            ConstValue::Dense(t) => DType::from_onnx(t.proto.data_type?),
            ConstValue::Sparse(s) => DType::from_onnx(s.values.as_ref()?.data_type?),
            ConstValue::Elided(e) => Some(e.dtype),
        }
    }
}

/// A constant's place in the side table: the constant (`None` once removed) and what the graph
/// keeps about it.
#[derive(Clone, Debug, Default)]
struct ConstSlot {
    /// (Boxed: a `Const` holds a whole `TensorProto`, about 400 bytes, and a million-node compile
    /// adds tens of thousands of constants one by one; growing a table of them inline copied and
    /// faulted in a fifth of the time of the fuse pass, and every scan read the removed slots.)
    c: Option<Box<Const>>,
    /// How many node inputs and captures read it: kept by every edit of inputs and captures, so
    /// that finding the constants nothing reads takes no walk over the nodes
    /// ([`Graph::const_uses`]).
    uses: u32,
    /// Its values, decoded on first use ([`Graph::const_f32s`]).
    decoded: Decoded,
}

/// A constant's values, decoded on first use. Rules read the scales and zero points of every
/// Q/DQ they look at by value, and a model shares a few of them among thousands of nodes.
#[derive(Clone, Debug, Default)]
struct Decoded {
    f32s: std::sync::OnceLock<Option<Arc<[f32]>>>,
    i64s: std::sync::OnceLock<Option<Arc<[i64]>>>,
}

/// Constants with more elements are decoded anew on each read (weights are never read by value
/// on a hot path, and caching them would double their memory).
const MAX_DECODED: usize = 4096;

/// A graph output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub operand: Operand,
    /// The declared `ValueInfoProto` (its name is the output's name).
    pub declared: ValueInfoProto,
}

impl GraphOutput {
    pub fn name(&self) -> &str {
        self.declared.name.as_deref().unwrap_or("")
    }
}

/// A structural problem found by [`Graph::verify`] or while editing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("node {node} ({op}) is part of a cycle")]
    Cycle { node: String, op: String },
    #[error("name '{0}' is defined twice")]
    DuplicateName(String),
    #[error("node {node} ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    #[error("graph output '{0}' refers to a value that does not exist")]
    DanglingOutput(String),
    #[error("{0}")]
    Invariant(String),
}

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

/// The topological order, kept across edits. Every pass sorts the graph, and most of its nodes
/// stay where they were: when the last sort found the order keys running with the edges (the
/// usual case, see [`Graph::topo_order`]), the next order is that sorted list with the nodes
/// added since merged in and the removed ones dropped, provided the edges added since run with
/// the keys too. Edits record what they add and remove (`&mut` access: no locking); the lock is
/// taken once per [`Graph::topo_order`], which may run on any thread.
#[derive(Debug, Default)]
struct Topo(std::sync::Mutex<TopoState>);

#[derive(Clone, Debug, Default)]
struct TopoState {
    /// The order of the current graph, when no edit happened since it was computed.
    order: Option<Vec<NodeId>>,
    /// The (order key, id) of every node but graph inputs, sorted, as of the last sort that
    /// found the keys running with every edge; `None` after a sort that did not.
    sorted: Option<Vec<(u64, NodeId)>>,
    /// Edits since `sorted`: nodes added and removed (graph inputs left out), edges added.
    added: Vec<(u64, NodeId)>,
    removed: Vec<(u64, NodeId)>,
    edges: Vec<(NodeId, NodeId)>,
}

impl Clone for Topo {
    fn clone(&self) -> Topo {
        Topo(std::sync::Mutex::new(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()))
    }
}

impl Topo {
    /// The state for an edit (exclusive access: no locking).
    fn edit(&mut self) -> &mut TopoState {
        let t = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        t.order = None;
        t
    }

    fn node_added(&mut self, key: u64, id: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.added.push((key, id));
        }
    }

    fn node_removed(&mut self, key: u64, id: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.removed.push((key, id));
        }
    }

    fn edge_added(&mut self, a: NodeId, b: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.edges.push((a, b));
        }
    }
}

/// Every value and constant by name, without copies of the names: an entry is a name's hash and
/// the operand, whose own name is compared on lookup (a `HashMap<String, _>` held a second copy
/// of every name: an allocation and 56 bytes per value, about 100 MB of a million-node compile).
///
/// Removing a node leaves its entries behind (a hash probe per removed node, three cache misses
/// each, was a tenth of a large compile): an entry is live when its operand exists and is still
/// called by that name ([`Graph::indexed`]). Registering a name reuses a dead entry of the same
/// hash. FxHash: names are hashed on every rewrite, and the graph is not exposed to untrusted
/// hash-flooding input beyond the model being compiled. An entry keeps 32 bits of the hash
/// (16 bytes an entry, not 24: the table of a million-node graph is touched at random, page by
/// page, as it fills).
#[derive(Clone, Debug, Default)]
struct NameIndex {
    table: hashbrown::HashTable<(u32, Operand)>,
}

impl NameIndex {
    /// The upper half of the name's FxHash (its better-mixed bits).
    fn hash(name: &str) -> u32 {
        use std::hash::BuildHasher;
        (rustc_hash::FxBuildHasher.hash_one(name) >> 32) as u32
    }

    /// The table's hash of an entry: the 32 bits in both halves (hashbrown places an entry by
    /// the low bits and tags it with the top seven).
    fn spread(h: u32) -> u64 {
        (u64::from(h) << 32) | u64::from(h)
    }

    /// The live operand called `name`.
    fn live(&self, graph: &Graph, name: &str) -> Option<Operand> {
        let h = NameIndex::hash(name);
        self.table.find(NameIndex::spread(h), |&(eh, op)| eh == h && graph.indexed(name, op)).map(|&(_, op)| op)
    }

    /// Whether `op` is indexed under `name` (live or not).
    fn has(&self, name: &str, op: Operand) -> bool {
        let h = NameIndex::hash(name);
        self.table.find(NameIndex::spread(h), |&(eh, o)| eh == h && o == op).is_some()
    }

    /// Indexes `op` under `name`, which no live operand has. Reuses a stale entry of that hash:
    /// one whose operand is gone or now has a name of another hash.
    fn insert(&mut self, graph: &Graph, name: &str, op: Operand) {
        let h = NameIndex::hash(name);
        let stale = |o: Operand| graph.live_name(o).is_none_or(|n| NameIndex::hash(n) != h);
        match self.table.find_mut(NameIndex::spread(h), |&(eh, o)| eh == h && stale(o)) {
            Some(entry) => *entry = (h, op),
            None => {
                self.table.insert_unique(NameIndex::spread(h), (h, op), |&(eh, _)| NameIndex::spread(eh));
            }
        }
    }

    /// Drops the entry of `op` under `name`, if any.
    fn remove(&mut self, name: &str, op: Operand) {
        let h = NameIndex::hash(name);
        if let Ok(entry) = self.table.find_entry(NameIndex::spread(h), |&(eh, o)| eh == h && o == op) {
            entry.remove();
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |&(h, _)| NameIndex::spread(h));
    }
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
    /// patch its new nodes; unique-dq, in -O3, one per extra consumer of a DQ) before they remove
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
    fn live_value(&self, o: Outlet) -> Option<&Value> {
        self.g.get(o.node)?.outputs.get(o.slot as usize)
    }

    /// The name of a value or constant that exists.
    fn live_name(&self, op: Operand) -> Option<&str> {
        match op {
            Operand::Value(o) => self.live_value(o).map(|v| v.name.as_str()),
            Operand::Const(c) => self.live_const(c).map(|c| c.name.as_str()),
            Operand::None => None,
        }
    }

    /// The constant `c`, if it was not removed.
    fn live_const(&self, c: ConstId) -> Option<&Const> {
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

    fn small_tensor(&self, id: ConstId) -> Option<&Tensor> {
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
    fn indexed(&self, name: &str, op: Operand) -> bool {
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

    /// Nodes (graph inputs excluded) in topological order, preferring the smallest order key
    /// among ready nodes. Errors on a cycle, naming a node on it.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut t = self.topo.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(order) = &t.order {
            return Ok(order.clone());
        }
        let key = |id: NodeId| (self.g[id].order, id);
        let live = |id: NodeId| self.g.contains_node(id);
        // The edits since the last sort keep the keys running with the edges when every edge
        // added since does (an edge recorded since may be gone, or its ends reused: checking it
        // anyway can only send us to the full sort).
        let merged = match t.sorted.take() {
            Some(sorted) if t.edges.iter().all(|&(a, b)| !(live(a) && live(b)) || key(a) < key(b)) => {
                let (mut added, mut removed) = (std::mem::take(&mut t.added), std::mem::take(&mut t.removed));
                added.sort_unstable();
                removed.sort_unstable();
                Some(merge_sorted(&sorted, &added, &removed))
            }
            _ => None,
        };
        let sorted = match merged {
            Some(sorted) => Some(sorted),
            None => self.sort_by_keys(),
        };
        let order = match &sorted {
            Some(sorted) => sorted.iter().map(|&(_, id)| id).collect(),
            None => self.sort()?,
        };
        *t = TopoState { order: Some(order.clone()), sorted, ..TopoState::default() };
        Ok(order)
    }

    /// The nodes sorted by key, when the keys run with every edge.
    fn sort_by_keys(&self) -> Option<Vec<(u64, NodeId)>> {
        let key = |id: NodeId| (self.g[id].order, id);
        // Usually the keys already run with the edges (an imported model lists its nodes in
        // order, and a rewrite's nodes take the key of a node they replace); then the smallest
        // key is always ready, and the order is simply the nodes sorted by key. One pass over
        // the edges tells, and a sort is far cheaper than the heap walk of `sort`.
        if !self.g.edge_ends().all(|(a, b)| key(a) < key(b)) {
            return None;
        }
        // (Sized up front: grown by doubling, a million keys moved through fresh pages.)
        let mut out: Vec<(u64, NodeId)> = Vec::with_capacity(self.g.node_count());
        out.extend(self.g.node_indices().filter(|&id| self.g[id].op != Op::Input).map(key));
        out.sort_unstable();
        Some(out)
    }

    /// The topological order that prefers the smallest `(order, id)` among ready nodes, by a walk
    /// over the edges (for graphs whose keys do not run with the edges).
    fn sort(&self) -> Result<Vec<NodeId>, GraphError> {
        // In-degrees by node index (a Vec, not a map: this runs in every sweep of every pass).
        let mut indeg: Vec<u32> = vec![0; self.g.node_bound()];
        let mut ready = BinaryHeap::new();
        for id in self.g.node_indices() {
            let n = self.g.edges_directed(id, Direction::Incoming).count() as u32;
            if n == 0 {
                ready.push(Reverse((self.g[id].order, id)));
            } else {
                indeg[id.index()] = n;
            }
        }
        let mut out = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse((_, id))) = ready.pop() {
            if self.g[id].op != Op::Input {
                out.push(id);
            }
            for e in self.g.edges_directed(id, Direction::Outgoing) {
                let d = &mut indeg[e.target().index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse((self.g[e.target()].order, e.target())));
                }
            }
        }
        let on_cycle = self.g.node_indices().filter(|id| indeg[id.index()] > 0).min_by_key(|&id| self.g[id].order);
        if let Some(id) = on_cycle {
            let n = &self.g[id];
            return Err(GraphError::Cycle { node: n.label(), op: n.op.to_string() });
        }
        Ok(out)
    }

    // ---- editing -------------------------------------------------------------------------

    /// A name not used in the graph, based on `base`.
    pub fn fresh_name(&mut self, base: &str) -> String {
        let free = |n: &str| self.lookup(n).is_none() && !self.value_info_orphans.contains(n);
        if !base.is_empty() && free(base) {
            return base.to_string();
        }
        let start = self.name_hints.get(base).copied().unwrap_or(1);
        let (i, name) = (start..).map(|i| (i, format!("{base}_{i}"))).find(|(_, n)| free(n)).unwrap();
        match self.name_hints.get_mut(base) {
            Some(next) => *next = i + 1,
            None => {
                self.name_hints.insert(base.to_string(), i + 1);
            }
        }
        name
    }

    fn register(&mut self, name: &str, op: Operand) -> Result<(), GraphError> {
        if name.is_empty() {
            return Ok(());
        }
        match self.names.live(self, name) {
            Some(prev) if prev == op => Ok(()),
            Some(_) => Err(GraphError::DuplicateName(name.to_string())),
            None => {
                let mut names = std::mem::take(&mut self.names);
                names.insert(self, name, op);
                self.names = names;
                Ok(())
            }
        }
    }

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

    fn set_kind(&mut self, id: NodeId, kind: Option<OpKind>) {
        if self.kinds.len() <= id.index() {
            self.kinds.resize(self.g.node_bound().max(id.index() + 1), None);
        }
        self.kinds[id.index()] = kind;
    }

    /// Adds an edge (recorded for the topological order).
    fn add_edge(&mut self, a: NodeId, b: NodeId, e: Edge) {
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
    fn structure(
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
    fn check_def(&self, name: &str, op: Operand) -> Result<(), GraphError> {
        if name.is_empty() || self.names.has(name, op) {
            return Ok(());
        }
        match self.names.live(self, name) {
            Some(_) => Err(GraphError::DuplicateName(name.to_string())),
            None => Err(GraphError::Invariant(format!("name index is stale for '{name}'"))),
        }
    }

    /// One node's structural checks: outputs indexed, operands live, edges matching operands.
    fn node_structure(&self, id: NodeId) -> Result<(), GraphError> {
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

/// `(sorted ∪ added) − removed` as multisets of sorted lists (all three sorted): a node added
/// and removed since the last sort, or removed and added again under a reused index, counts
/// once per edit.
fn merge_sorted<T: Ord + Copy>(sorted: &[T], added: &[T], removed: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(sorted.len() + added.len());
    let (mut i, mut j, mut r) = (0, 0, 0);
    loop {
        let next = match (sorted.get(i), added.get(j)) {
            (Some(&a), Some(&b)) if b < a => {
                j += 1;
                b
            }
            (Some(&a), _) => {
                i += 1;
                a
            }
            (None, Some(&b)) => {
                j += 1;
                b
            }
            (None, None) => return out,
        };
        while removed.get(r).is_some_and(|&x| x < next) {
            r += 1;
        }
        if removed.get(r) == Some(&next) {
            r += 1;
        } else {
            out.push(next);
        }
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

#[cfg(test)]
mod name_index {
    use crate::text::parse;
    use crate::{GraphError, NodeMeta, Op, Operand, Outlet, Value};

    /// Removing a node leaves its entry in the index; lookups, fresh names, registration and the
    /// structural check must all see through it, also when the node's index is reused.
    #[test]
    fn entries_of_removed_nodes_are_invisible() {
        let text =
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %a = Relu(%x)\n  %b = Neg(%x)\n  output %b\n}\n";
        let mut g = parse(text).unwrap();
        let Some(Operand::Value(a)) = g.lookup("a") else { panic!() };
        g.remove_node(a.node).unwrap();
        assert_eq!(g.lookup("a"), None);
        assert_eq!(g.fresh_name("a"), "a", "the name is free again");
        g.verify_structure().unwrap();
        // The freed index is reused by a node with another name: "a" stays free.
        let x = g.lookup("x").unwrap();
        let c = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("c")]).unwrap();
        assert_eq!(c, a.node, "index reused");
        assert_eq!(g.lookup("a"), None);
        assert_eq!(g.lookup("c"), Some(Operand::Value(Outlet::new(c, 0))));
        // A new value may take the old name; a live one may not be defined twice.
        let d = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("a")]).unwrap();
        assert_eq!(g.lookup("a"), Some(Operand::Value(Outlet::new(d, 0))));
        let twice = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("a")]);
        assert_eq!(twice, Err(GraphError::DuplicateName("a".into())));
        g.verify_structure().unwrap();
        // A rename frees the old name and takes the new one.
        g.rename(Operand::Value(Outlet::new(d, 0)), "e").unwrap();
        assert_eq!((g.lookup("a"), g.lookup("e")), (None, Some(Operand::Value(Outlet::new(d, 0)))));
        g.verify_structure().unwrap();
    }

    /// A name defined and removed over and over takes one entry: registering reuses the stale one.
    #[test]
    fn stale_entries_are_reused() {
        let text = "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %b = Neg(%x)\n  output %b\n}\n";
        let mut g = parse(text).unwrap();
        let x = g.lookup("x").unwrap();
        let entries = g.names.table.len();
        for _ in 0..100 {
            let n = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("t")]).unwrap();
            assert_eq!(g.lookup("t"), Some(Operand::Value(Outlet::new(n, 0))));
            g.remove_node(n).unwrap();
        }
        assert_eq!(g.names.table.len(), entries + 1);
        assert_eq!(g.lookup("t"), None);
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
        // (Name and domain live in the node: most nodes have no other `NodeProto` field, so the
        // boxed proto they no longer need was a 200-byte allocation of its own.)
        assert!(size_of::<super::Node>() <= 192, "{}", size_of::<super::Node>());
        assert!(size_of::<crate::proto::NodeProto>() >= 200, "{}", size_of::<crate::proto::NodeProto>());
        assert!(size_of::<super::Value>() <= 112, "{}", size_of::<super::Value>());
    }
}

#[cfg(test)]
mod topo_order {
    use super::Topo;
    use crate::text::parse;
    use crate::{Graph, NodeMeta, Op, Operand, Outlet, Value};
    use proptest::prelude::*;

    /// The order computed from nothing (no cached order, no sorted list to merge into).
    fn from_scratch(g: &Graph) -> Result<Vec<crate::NodeId>, crate::GraphError> {
        let mut fresh = g.clone();
        fresh.topo = Topo::default();
        fresh.topo_order()
    }

    #[derive(Clone, Debug)]
    enum Edit {
        /// A node reading two values, keyed like an existing node (as rewrites do) or anew.
        Add { a: usize, b: usize, key_of: Option<usize> },
        /// Removes a node nothing reads.
        Remove(usize),
        /// Makes input 0 of a node read another value (possibly against the keys, or a cycle).
        Rewire { node: usize, to: usize },
        /// Computes the order (so that later edits merge into it).
        Order,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            4 => (any::<usize>(), any::<usize>(), proptest::option::of(any::<usize>()))
                .prop_map(|(a, b, key_of)| Edit::Add { a, b, key_of }),
            3 => any::<usize>().prop_map(Edit::Remove),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(node, to)| Edit::Rewire { node, to }),
            2 => Just(Edit::Order),
        ]
    }

    proptest! {
        /// After any edits, the order kept across them is the order computed from nothing.
        #[test]
        fn kept_order_equals_a_fresh_sort(edits in proptest::collection::vec(edit(), 1..120)) {
            let mut g = parse(
                "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %a = Relu(%x)\n  %b = Neg(%a)\n  %c = Add(%a, %b)\n  output %c\n}\n",
            )
            .unwrap();
            g.topo_order().unwrap();
            let mut n = 0;
            for e in edits {
                let ids: Vec<_> = g.node_ids().collect();
                let pick = |i: usize| ids[i % ids.len()];
                match e {
                    Edit::Add { a, b, key_of } => {
                        let inputs = vec![Operand::Value(Outlet::new(pick(a), 0)), Operand::Value(Outlet::new(pick(b), 0))];
                        let outputs = vec![Value::named(format!("n{n}"))];
                        n += 1;
                        match key_of {
                            Some(k) => {
                                let key = g.node(pick(k)).order();
                                g.add_node_at(Op::Add, NodeMeta::default(), vec![], inputs, outputs, key).unwrap();
                            }
                            None => {
                                g.add_node(Op::Add, NodeMeta::default(), vec![], inputs, outputs).unwrap();
                            }
                        }
                    }
                    Edit::Remove(i) => {
                        let id = pick(i);
                        if g.node(id).op != Op::Input && g.uses(id).next().is_none() && !g.feeds_output(id) {
                            g.remove_node(id).unwrap();
                        }
                    }
                    Edit::Rewire { node, to } => {
                        let id = pick(node);
                        if g.node(id).op != Op::Input {
                            g.set_input(id, 0, Operand::Value(Outlet::new(pick(to), 0)));
                        }
                    }
                    Edit::Order => {
                        prop_assert_eq!(g.topo_order(), from_scratch(&g));
                    }
                }
            }
            prop_assert_eq!(g.topo_order(), from_scratch(&g));
        }
    }
}
