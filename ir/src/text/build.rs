//! Builders: the items of a graph's text become an IR [`Graph`] (the top-level graph) or a
//! `GraphProto` (nested graphs, whose nodes may read names of enclosing graphs).
//!
//! The IR builder adds values as they come and resolves node inputs at the end, so nodes may be
//! written in any order; then it runs type inference and checks the written `q(…)` annotations
//! against what inference derives.

use super::parse::{Decl, Header, Item, NodeDecl, Origin, ParseError, Pos, QuantDecl, QuantForm};
use super::print::{name_text, quant_text};
use super::values::{canonical, lit_text, write_values, Lit};
use super::{bare_op, is_decimal_float, is_zero_point_type};
use crate::dtype::DType;
use crate::graph::{
    Const, ConstId, ConstOrigin, ConstValue, Graph, GraphError, GraphOutput, NodeId, Operand, Outlet, Quant, Value,
};
use crate::op::Op;
use crate::proto::attribute_proto::AttributeType as A;
use crate::proto::{AttributeProto, GraphProto, NodeProto, TypeProto, ValueInfoProto};
use std::collections::{HashMap, HashSet};

pub(super) trait Build<'a> {
    fn header(&mut self, h: Header) -> Result<(), ParseError>;
    fn item(&mut self, item: Item<'a>) -> Result<(), ParseError>;
}

fn invalid(pos: Pos, msg: impl Into<String>) -> ParseError {
    ParseError::Invalid { pos, msg: msg.into() }
}

/// A graph error from adding a value written at `pos`.
fn add_error(e: GraphError, pos: Pos) -> ParseError {
    match e {
        GraphError::DuplicateName(name) => ParseError::Duplicate { pos, name },
        e => invalid(pos, e.to_string()),
    }
}

/// The op and the node's domain for an op written with or without its domain.
pub(super) fn resolve_op(domain: Option<&str>, op_type: &str) -> (Op, Option<String>) {
    let (op, d) = match domain {
        None => {
            let op = bare_op(op_type);
            let d = op.default_domain().to_string();
            (op, d)
        }
        Some(d) => (Op::from_onnx(d, op_type), d.to_string()),
    };
    (op, (!d.is_empty()).then_some(d))
}

/// A `Constant` node holding `value` (its output is set by the caller or by export).
fn constant_node(value: &ConstValue) -> NodeProto {
    let a =
        |name: &str, ty: A| AttributeProto { name: Some(name.into()), r#type: Some(ty as i32), ..Default::default() };
    let attr = match value {
        ConstValue::Dense(t) => AttributeProto { t: Some(Box::new(t.proto.clone())), ..a("value", A::Tensor) },
        ConstValue::Elided(e) => AttributeProto { t: Some(Box::new(e.to_proto(""))), ..a("value", A::Tensor) },
        ConstValue::Sparse(s) => {
            AttributeProto { sparse_tensor: Some(s.clone()), ..a("sparse_value", A::SparseTensor) }
        }
    };
    NodeProto { op_type: Some("Constant".into()), attribute: vec![attr], ..Default::default() }
}

/// Names a nested graph reads from enclosing scopes, appended to `out` in first-use order.
pub(super) fn free_names(g: &GraphProto, out: &mut Vec<String>) {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(g.input.iter().filter_map(|v| v.name.as_deref()));
    defined.extend(g.initializer.iter().filter_map(|t| t.name.as_deref()));
    defined.extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref()?.name.as_deref()));
    defined.extend(g.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    let mut seen: HashSet<String> = out.iter().cloned().collect();
    let mut push = |name: &str, out: &mut Vec<String>| {
        if !name.is_empty() && !defined.contains(name) && seen.insert(name.to_string()) {
            out.push(name.to_string());
        }
    };
    for n in &g.node {
        for i in &n.input {
            push(i, out);
        }
        for sub in n.attribute.iter().flat_map(|a| a.g.iter().map(|g| &**g).chain(&a.graphs)) {
            let mut inner = Vec::new();
            free_names(sub, &mut inner);
            inner.iter().for_each(|name| push(name, out));
        }
    }
    // A graph output may be a value of an enclosing graph.
    for o in &g.output {
        push(o.name.as_deref().unwrap_or(""), out);
    }
}

// ---- the IR graph ----------------------------------------------------------------------------

/// A node whose inputs are resolved once every name is known.
struct PendingNode {
    id: NodeId,
    pos: Pos,
    inputs: Vec<(String, Pos)>,
    captures: Vec<String>,
}

#[derive(Default)]
pub(super) struct IrBuilder<'a> {
    g: Graph,
    nodes: Vec<PendingNode>,
    outputs: Vec<(String, Pos)>,
    quants: Vec<(Outlet, QuantDecl<'a>)>,
}

impl<'a> Build<'a> for IrBuilder<'a> {
    fn header(&mut self, h: Header) -> Result<(), ParseError> {
        self.g.meta.name = h.name;
        for (domain, version, pos) in h.opsets {
            if self.g.opsets.insert(domain.clone(), version).is_some() {
                return Err(invalid(pos, format!("the opset of '{domain}' is given twice")));
            }
        }
        Ok(())
    }

    fn item(&mut self, item: Item<'a>) -> Result<(), ParseError> {
        match item {
            Item::Input(d) => {
                let value = Value { name: d.name, ty: d.ty, ..Default::default() };
                let o = self.g.add_input(value).map_err(|e| add_error(e, d.pos))?;
                self.quants.extend(d.quant.map(|q| (o, q)));
            }
            Item::Const { name, pos, origin, value } => {
                let value = *value;
                let origin = match origin {
                    Origin::Initializer if matches!(value, ConstValue::Sparse(_)) => ConstOrigin::SparseInitializer,
                    Origin::Initializer => ConstOrigin::Initializer,
                    Origin::Default => ConstOrigin::InputDefault,
                    Origin::Node => {
                        ConstOrigin::ConstantNode { node: Box::new(constant_node(&value)), order: self.g.take_order() }
                    }
                };
                self.g.add_const(Const { name, value, origin }).map_err(|e| add_error(e, pos))?;
            }
            Item::Node(n) => self.node(n)?,
            Item::Output { name, pos } => self.outputs.push((name, pos)),
        }
        Ok(())
    }
}

impl<'a> IrBuilder<'a> {
    fn node(&mut self, n: NodeDecl<'a>) -> Result<(), ParseError> {
        let (op, domain) = resolve_op(n.domain.as_deref(), &n.op_type);
        let mut captures = Vec::new();
        for sub in n.attrs.iter().flat_map(|a| a.g.iter().map(|g| &**g).chain(&a.graphs)) {
            free_names(sub, &mut captures);
        }
        let proto = NodeProto { name: n.name, op_type: Some(n.op_type), domain, ..Default::default() };
        let mut values = Vec::with_capacity(n.outputs.len());
        let mut quants = Vec::new();
        let mut positions = Vec::with_capacity(n.outputs.len());
        for (slot, d) in n.outputs.into_iter().enumerate() {
            quants.extend(d.quant.map(|q| (slot as u32, q)));
            positions.push(d.pos);
            values.push(Value { name: d.name, ty: d.ty, ..Default::default() });
        }
        if let Some((v, &pos)) = values.iter().zip(&positions).find(|(v, _)| self.g.lookup(&v.name).is_some()) {
            return Err(ParseError::Duplicate { pos, name: v.name.clone() });
        }
        let id = self.g.add_node(op, proto, n.attrs, vec![], values).map_err(|e| add_error(e, n.pos))?;
        self.quants.extend(quants.into_iter().map(|(slot, q)| (Outlet::new(id, slot), q)));
        self.nodes.push(PendingNode { id, pos: n.pos, inputs: n.inputs, captures });
        Ok(())
    }

    /// Resolves names, runs inference and checks the written quantization annotations.
    pub(super) fn finish(mut self) -> Result<Graph, ParseError> {
        self.connect()?;
        self.infer()?;
        self.declare_types();
        Ok(self.g)
    }

    /// Resolves node inputs, the outer names their subgraphs read, and graph outputs.
    fn connect(&mut self) -> Result<(), ParseError> {
        let g = &mut self.g;
        for n in &self.nodes {
            let inputs = n.inputs.iter().map(|(name, pos)| operand(g, name, *pos)).collect::<Result<_, _>>()?;
            g.set_inputs(n.id, inputs);
            if !n.captures.is_empty() {
                let undefined = |name: &String| {
                    invalid(n.pos, format!("a subgraph of this node reads %{}, which is not defined", name_text(name)))
                };
                let caps = n.captures.iter().map(|name| g.lookup(name).ok_or_else(|| undefined(name)));
                let caps = caps.collect::<Result<_, _>>()?;
                g.set_captures(n.id, caps);
            }
        }
        for (name, pos) in std::mem::take(&mut self.outputs) {
            let operand = operand(g, &name, pos)?;
            let declared = ValueInfoProto { name: Some(name), ..Default::default() };
            g.add_output(GraphOutput { operand, declared });
        }
        Ok(())
    }

    /// Sets the written quantization annotations, runs inference and checks that it agrees.
    fn infer(&mut self) -> Result<(), ParseError> {
        let g = &mut self.g;
        let mut index = None;
        let mut written = Vec::with_capacity(self.quants.len());
        for (o, d) in &self.quants {
            let q = resolve_quant(g, &mut index, *o, d)?;
            g.value_mut(*o).quant = Some(q.clone());
            written.push((*o, q, d));
        }
        crate::infer::infer_graph(g).map_err(|source| {
            let label = match &source {
                GraphError::Node { node, .. } | GraphError::Cycle { node, .. } => Some(node),
                _ => None,
            };
            let node = label.and_then(|l| self.nodes.iter().find(|n| &g.node(n.id).label() == l));
            ParseError::Infer { pos: node.map(|n| n.pos), source }
        })?;
        for (o, q, d) in written {
            let now = g.value(o).quant.as_ref();
            if now != Some(&q) && now.map(|n| quant_text(g, n)) != Some(quant_text(g, &q)) {
                let inferred = now.map_or_else(|| "no quantization".to_string(), |n| quant_text(g, n));
                return Err(ParseError::QuantMismatch { pos: d.pos, written: d.text.to_string(), inferred });
            }
        }
        Ok(())
    }

    /// Declares the types the text shows, for export: those of graph outputs, and the others in
    /// `value_info`.
    fn declare_types(&mut self) {
        let g = &mut self.g;
        for i in 0..g.outputs().len() {
            let ty = g.operand_type(g.outputs()[i].operand);
            g.output_declared_mut(i).r#type = ty.as_ref().map(crate::onnx::type_proto);
        }
        let outputs: HashSet<Operand> = g.outputs().iter().map(|o| o.operand).collect();
        let mut value_info = Vec::new();
        for n in &self.nodes {
            for (slot, v) in g.node(n.id).outputs.iter().enumerate() {
                let Some(ty) = &v.ty else { continue };
                if !outputs.contains(&Operand::Value(Outlet::new(n.id, slot as u32))) {
                    let r#type = Some(crate::onnx::type_proto(ty));
                    value_info.push(ValueInfoProto { name: Some(v.name.clone()), r#type, ..Default::default() });
                }
            }
        }
        g.value_info = value_info;
    }
}

fn operand(g: &Graph, name: &str, pos: Pos) -> Result<Operand, ParseError> {
    if name.is_empty() {
        return Ok(Operand::None);
    }
    g.lookup(name).ok_or_else(|| ParseError::Undefined { pos, name: name.to_string() })
}

fn resolve_quant(g: &Graph, index: &mut Option<ScalarIndex>, o: Outlet, d: &QuantDecl) -> Result<Quant, ParseError> {
    let (scale, zero_point) = match &d.form {
        QuantForm::Names { scale, zero_point } => {
            (const_named(g, scale)?, zero_point.as_ref().map(|z| const_named(g, z)).transpose()?)
        }
        QuantForm::Values { scale, zero_point } => {
            let index = index.get_or_insert_with(|| ScalarIndex::new(g));
            let missing = |(lit, pos): &(Lit, Pos), what: &str| {
                let shown = lit_text(lit);
                invalid(
                    *pos,
                    format!("no scalar {what} constant holds {shown}: declare one, or write q(%scale, %zero_point)"),
                )
            };
            let s = index.find(&scale.0, true, None).ok_or_else(|| missing(scale, "float"))?;
            let value_dtype = g.value(o).ty.as_ref().map(|t| t.dtype);
            let zp = match zero_point {
                None => None,
                Some(z) => match index.find(&z.0, false, value_dtype) {
                    Some(id) => Some(id),
                    None if is_zero(&z.0) => None,
                    None => return Err(missing(z, "integer")),
                },
            };
            (s, zp)
        }
    };
    Ok(Quant { scale, zero_point, axis: d.axis, block_size: d.block })
}

fn is_zero(l: &Lit) -> bool {
    match l {
        Lit::Num(s) => s.parse::<f64>() == Ok(0.0),
        Lit::Hex(s) => s.bytes().all(|b| b == b'0'),
        _ => false,
    }
}

fn const_named(g: &Graph, (name, pos): &(String, Pos)) -> Result<ConstId, ParseError> {
    match g.lookup(name) {
        Some(Operand::Const(id)) => Ok(id),
        Some(_) => Err(invalid(*pos, format!("%{} is not a constant", name_text(name)))),
        None => Err(ParseError::Undefined { pos: *pos, name: name.clone() }),
    }
}

/// The one-element constants by element type and printed value, for `q(0.0213, 128)`.
struct ScalarIndex {
    by_value: HashMap<(DType, String), ConstId>,
    dtypes: Vec<DType>,
    /// Lookups so far, by literal and preferred type: most annotations repeat a few values.
    memo: HashMap<(String, bool, Option<DType>), Option<ConstId>>,
}

impl ScalarIndex {
    fn new(g: &Graph) -> ScalarIndex {
        let mut by_value = HashMap::new();
        for (id, c) in g.constants() {
            let Some(t) = c.tensor().filter(|t| t.numel() == Ok(1)) else { continue };
            let (Ok(dtype), false) = (t.dtype(), c.origin == ConstOrigin::InputDefault) else { continue };
            let mut text = String::new();
            if write_values(&mut text, t).is_ok() {
                by_value.entry((dtype, text)).or_insert(id);
            }
        }
        let mut dtypes: Vec<DType> = by_value.keys().map(|k| k.0).collect();
        dtypes.sort();
        dtypes.dedup();
        ScalarIndex { by_value, dtypes, memo: HashMap::new() }
    }

    /// The constant holding `lit`: of type `prefer` if there is one, else the first in table
    /// order among the scale types (`scale`) or the zero-point types.
    fn find(&mut self, lit: &Lit, scale: bool, prefer: Option<DType>) -> Option<ConstId> {
        let key = (format!("{lit:?}"), scale, prefer);
        if let Some(&found) = self.memo.get(&key) {
            return found;
        }
        let accept = if scale { is_decimal_float } else { is_zero_point_type };
        let get = |d: DType| self.by_value.get(&(d, canonical(d, lit)?)).copied();
        let found = prefer
            .filter(|&d| accept(d))
            .and_then(get)
            .or_else(|| self.dtypes.iter().filter(|&&d| accept(d)).filter_map(|&d| get(d)).min());
        self.memo.insert(key, found);
        found
    }
}

// ---- nested graphs ---------------------------------------------------------------------------

/// Builds the `GraphProto` of a nested graph: node output types go to `value_info`.
#[derive(Default)]
pub(super) struct ProtoBuilder {
    gp: GraphProto,
    types: HashMap<String, TypeProto>,
}

fn no_quant(d: &Decl) -> Result<(), ParseError> {
    match &d.quant {
        Some(q) => Err(invalid(q.pos, "nested graphs have no quantization annotations")),
        None => Ok(()),
    }
}

impl ProtoBuilder {
    fn value_info(&mut self, d: &Decl) -> ValueInfoProto {
        let r#type = d.ty.as_ref().map(crate::onnx::type_proto);
        if let Some(t) = &r#type {
            self.types.insert(d.name.clone(), t.clone());
        }
        ValueInfoProto { name: Some(d.name.clone()), r#type, ..Default::default() }
    }

    pub(super) fn finish(self) -> GraphProto {
        self.gp
    }
}

impl<'a> Build<'a> for ProtoBuilder {
    fn header(&mut self, h: Header) -> Result<(), ParseError> {
        self.gp.name = h.name;
        match h.opsets.first() {
            Some((_, _, pos)) => Err(invalid(*pos, "only the top-level graph has opsets")),
            None => Ok(()),
        }
    }

    fn item(&mut self, item: Item<'a>) -> Result<(), ParseError> {
        match item {
            Item::Input(d) => {
                no_quant(&d)?;
                let vi = self.value_info(&d);
                self.gp.input.push(vi);
            }
            Item::Const { name, origin, value, .. } => {
                let ty = Const { name: name.clone(), value: *value, origin: ConstOrigin::Initializer };
                if let Some(t) = ty.ty() {
                    self.types.insert(name.clone(), crate::onnx::type_proto(&t));
                }
                match (origin, ty.value) {
                    (Origin::Node, v) => {
                        let node = NodeProto { output: vec![name], ..constant_node(&v) };
                        self.gp.node.push(node);
                    }
                    (_, ConstValue::Dense(t)) => self.gp.initializer.push(t.proto),
                    (_, ConstValue::Elided(e)) => self.gp.initializer.push(e.to_proto(&name)),
                    (_, ConstValue::Sparse(s)) => self.gp.sparse_initializer.push(*s),
                }
            }
            Item::Node(n) => {
                let (_, domain) = resolve_op(n.domain.as_deref(), &n.op_type);
                let mut output = Vec::with_capacity(n.outputs.len());
                for d in &n.outputs {
                    no_quant(d)?;
                    if d.ty.is_some() {
                        let vi = self.value_info(d);
                        self.gp.value_info.push(vi);
                    }
                    output.push(d.name.clone());
                }
                self.gp.node.push(NodeProto {
                    input: n.inputs.into_iter().map(|(name, _)| name).collect(),
                    output,
                    name: n.name,
                    op_type: Some(n.op_type),
                    domain,
                    attribute: n.attrs,
                    ..Default::default()
                });
            }
            Item::Output { name, .. } => {
                let r#type = self.types.get(&name).cloned();
                self.gp.output.push(ValueInfoProto { name: Some(name), r#type, ..Default::default() });
            }
        }
        Ok(())
    }
}
