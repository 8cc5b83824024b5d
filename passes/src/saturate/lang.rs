//! The e-graph language: an e-node is an op application, an output projection, a constant, a
//! graph input or an omitted input.
//!
//! - [`QNode::Op`] `{tmpl, args}`: `tmpl` indexes the [`Tables::templates`] table of node
//!   templates (op, attributes, the rest of the `NodeProto` with its name, and the number of
//!   outputs), so attributes and node names are part of an e-node's identity (two
//!   DequantizeLinear of the same input with different node names stay two e-nodes; copies of
//!   one node, as `unique-dq` makes them, are one). A
//!   single-output op's e-node is its value's e-class; a multi-output op's e-class is a *tuple*
//!   whose values are projected by [`QNode::Get`] (the explicit encoding of multi-output ops).
//! - [`QNode::Const`] indexes [`Tables::consts`], interned by value (dtype, dims, bytes), so equal
//!   scales and zero points are one e-class whatever their names.
//! - [`QNode::Input`] is graph input number `i`; [`QNode::Omitted`] an omitted optional input.
//!
//! The analysis ([`Types`]) keeps each e-class's output types (one per slot; one entry for a
//! value class), which the cost model and the materialized fragments read.

use egg::{DidMerge, Id, Language};
use prost::Message;
use qdqc_ir::proto::{AttributeProto, NodeProto};
use qdqc_ir::{ConstId, Op, Tensor, TensorType};
use rustc_hash::FxHashMap as HashMap;

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QNode {
    Op { tmpl: u32, args: Box<[Id]> },
    Get { slot: u32, tuple: [Id; 1] },
    Const(u32),
    Input(u32),
    Omitted,
}

impl Language for QNode {
    type Discriminant = (u8, u32);

    fn discriminant(&self) -> (u8, u32) {
        match self {
            QNode::Op { tmpl, .. } => (0, *tmpl),
            QNode::Get { slot, .. } => (1, *slot),
            QNode::Const(c) => (2, *c),
            QNode::Input(i) => (3, *i),
            QNode::Omitted => (4, 0),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant() && self.children().len() == other.children().len()
    }

    fn children(&self) -> &[Id] {
        match self {
            QNode::Op { args, .. } => args,
            QNode::Get { tuple, .. } => tuple,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            QNode::Op { args, .. } => args,
            QNode::Get { tuple, .. } => tuple,
            _ => &mut [],
        }
    }
}

/// A node template: everything about a node but its inputs and output names.
#[derive(Clone, Debug)]
pub struct Template {
    pub op: Op,
    pub attrs: std::sync::Arc<[AttributeProto]>,
    /// Name, domain spelling, doc string, metadata (input/output/attribute lists empty).
    pub proto: NodeProto,
    pub n_outputs: usize,
}

/// Where an interned constant comes from.
#[derive(Clone, Debug)]
pub enum ConstSource {
    /// A constant of the input graph (reused as is, name and origin included).
    Original(ConstId),
    /// A constant a rule made (added as an initializer named after `base`; its data is the
    /// entry's tensor).
    New { base: String },
}

#[derive(Clone, Debug)]
pub struct ConstEntry {
    pub source: ConstSource,
    /// The data (a cheap clone: tensor bytes are shared), `None` for sparse or elided constants.
    pub tensor: Option<Tensor>,
    pub ty: Option<TensorType>,
}

/// The interning tables the e-nodes index.
#[derive(Debug, Default)]
pub struct Tables {
    pub templates: Vec<Template>,
    template_ids: HashMap<(Op, Vec<u8>, Vec<u8>, usize), u32>,
    pub consts: Vec<ConstEntry>,
    /// (dtype, dims, fingerprint) → candidates, compared by bytes.
    const_ids: HashMap<(i32, Vec<i64>, u64), Vec<u32>>,
    /// Constants without usable data (sparse, elided) are interned by their original id.
    opaque_consts: HashMap<ConstId, u32>,
    pub input_types: Vec<Option<TensorType>>,
}

impl Tables {
    pub fn template(&mut self, t: Template) -> u32 {
        let key = (t.op.clone(), encode_attrs(&t.attrs), t.proto.encode_to_vec(), t.n_outputs);
        *self.template_ids.entry(key).or_insert_with(|| {
            self.templates.push(t);
            (self.templates.len() - 1) as u32
        })
    }

    /// Interns a constant by value (dtype, dims, bytes); constants without usable data (sparse,
    /// elided) by their original id. `source` is used only when the value is new.
    pub fn constant(&mut self, tensor: Option<&Tensor>, source: ConstSource, ty: Option<TensorType>) -> u32 {
        let key = tensor.and_then(|t| Some((t.proto.data_type?, t.dims().to_vec(), t.fingerprint().ok()?)));
        let entry = ConstEntry { source: source.clone(), tensor: key.as_ref().and(tensor.cloned()), ty };
        let Some(key) = key else {
            if let ConstSource::Original(id) = source {
                if let Some(&c) = self.opaque_consts.get(&id) {
                    return c;
                }
                self.opaque_consts.insert(id, self.consts.len() as u32);
            }
            self.consts.push(entry);
            return (self.consts.len() - 1) as u32;
        };
        let raw = tensor.and_then(|t| t.raw().ok());
        let candidates = self.const_ids.entry(key).or_default();
        for &c in candidates.iter() {
            let other = self.consts[c as usize].tensor.as_ref().and_then(|t| t.raw().ok());
            if other.is_some() && other.as_deref() == raw.as_deref() {
                return c;
            }
        }
        let c = self.consts.len() as u32;
        candidates.push(c);
        self.consts.push(entry);
        c
    }
}

fn encode_attrs(attrs: &[AttributeProto]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in attrs {
        a.encode_length_delimited(&mut out).expect("a Vec grows");
    }
    out
}

/// The e-class analysis: the output types of each e-class, and the interning tables.
#[derive(Debug, Default)]
pub struct Types {
    pub tables: Tables,
    /// The types of the e-node about to be added (set by the lowering just before `add`).
    pub pending: Option<Vec<Option<TensorType>>>,
}

pub type EGraph = egg::EGraph<QNode, Types>;

impl egg::Analysis<QNode> for Types {
    /// One type per output slot (one entry for a value class).
    type Data = Vec<Option<TensorType>>;

    fn make(egraph: &mut EGraph, enode: &QNode) -> Self::Data {
        match enode {
            QNode::Const(c) => vec![egraph.analysis.tables.consts[*c as usize].ty.clone()],
            QNode::Input(i) => vec![egraph.analysis.tables.input_types[*i as usize].clone()],
            QNode::Omitted => vec![None],
            QNode::Get { slot, tuple } => vec![egraph[tuple[0]].data.get(*slot as usize).cloned().flatten()],
            QNode::Op { tmpl, .. } => {
                let n = egraph.analysis.tables.templates[*tmpl as usize].n_outputs.max(1);
                let mut t = egraph.analysis.pending.take().unwrap_or_default();
                t.resize(n, None);
                t
            }
        }
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        let mut changed = false;
        if a.len() < b.len() {
            a.resize(b.len(), None);
            changed = true;
        }
        for (x, y) in a.iter_mut().zip(b) {
            if x.is_none() && y.is_some() {
                *x = y;
                changed = true;
            }
        }
        DidMerge(changed, true)
    }
}
