//! The graph's data: values, nodes, constants, outputs, errors.

use crate::dtype::DType;
use crate::op::Op;
use crate::proto::{AttributeProto, NodeProto, SparseTensorProto, ValueInfoProto};
use crate::tensor::Tensor;
use petgraph::stable_graph::NodeIndex;
use smallvec::SmallVec;
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
pub(super) type Inputs = SmallVec<[Operand; 3]>;

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
    pub(super) inputs: Inputs,
    pub outputs: Vec<Value>,
    /// Attributes exactly as read (in order, with doc strings and every field). Shared: nodes
    /// with equal attributes (import interns them) and the nodes a rewrite makes from them.
    pub attrs: Arc<[AttributeProto]>,
    /// Export sorts by this key among ready nodes. Fixed when the node is added (the
    /// topological order is kept up to date across edits on that premise: [`Graph::topo_order`]).
    pub(super) order: u64,
    /// Name, domain spelling and the rest of the `NodeProto`.
    pub meta: NodeMeta,
    /// Outer-scope values read by subgraph attributes (If/Loop/Scan bodies): dependencies that
    /// ONNX leaves implicit, kept so that ordering and liveness see them.
    pub(super) captures: Vec<Operand>,
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
    /// How errors name this node: its name, or its first output's name, quoted, with control
    /// characters escaped (a name may hold a newline; an error stays one line).
    pub fn label(&self) -> String {
        match (self.name(), self.outputs.first()) {
            ("", Some(v)) => format!("(producing '{}')", escape(&v.name)),
            (name, _) => format!("'{}'", escape(name)),
        }
    }
    /// The node's name, or its first output's name when it has none (unquoted, unescaped: for
    /// data such as JSON).
    pub fn ident(&self) -> &str {
        match (self.name(), self.outputs.first()) {
            ("", Some(v)) => &v.name,
            (name, _) => name,
        }
    }
}

/// `s` with control characters (newlines, escape sequences, …) written as Rust escapes, so that
/// a name from a model prints on one line and cannot move a terminal's cursor.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect(),
    )
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
pub(super) struct ConstSlot {
    /// (Boxed: a `Const` holds a whole `TensorProto`, about 400 bytes, and a large compile adds
    /// tens of thousands of constants one by one; a table of them inline would be copied as it
    /// grows, and every scan would read the removed slots.)
    pub(super) c: Option<Box<Const>>,
    /// How many node inputs and captures read it: kept by every edit of inputs and captures, so
    /// that finding the constants nothing reads takes no walk over the nodes
    /// ([`Graph::const_uses`]).
    pub(super) uses: u32,
    /// Its values, decoded on first use ([`Graph::const_f32s`]).
    pub(super) decoded: Decoded,
}

/// A constant's values, decoded on first use. Rules read the scales and zero points of every
/// Q/DQ they look at by value, and a model shares a few of them among thousands of nodes.
#[derive(Clone, Debug, Default)]
pub(super) struct Decoded {
    pub(super) f32s: std::sync::OnceLock<Option<Arc<[f32]>>>,
    pub(super) i64s: std::sync::OnceLock<Option<Arc<[i64]>>>,
}

/// Constants with more elements are decoded anew on each read (weights are never read by value
/// on a hot path, and caching them would double their memory).
pub(super) const MAX_DECODED: usize = 4096;

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

/// A structural problem found by [`crate::Graph::verify`] or while editing.
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

impl GraphError {
    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            GraphError::Cycle { node, .. } | GraphError::Node { node, .. } => Some(node),
            _ => None,
        }
    }
}
