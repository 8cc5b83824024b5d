//! The printer. It appends to one `String` (linear in the size of the graph) and never fails:
//! a broken graph prints too (dangling references as `<dangling>`, nodes of a cycle in
//! order-key order), so that it can be looked at; only valid graphs parse back.

use super::values::{head, write_string, write_values};
use super::{bare_op, hex, is_bare_name, is_decimal_float, is_ident, is_zero_point_type, norm_domain, Elided};
use crate::attr::kind;
use crate::dtype::DType;
use crate::graph::{Const, ConstId, ConstOrigin, ConstValue, Dim, Graph, NodeId, Operand, Quant, TensorType};
use crate::op::Op;
use crate::proto::attribute_proto::AttributeType as A;
use crate::proto::{
    tensor_shape_proto, type_proto, AttributeProto, GraphProto, SparseTensorProto, TensorProto, TypeProto,
};
use crate::tensor::{Tensor, TensorError};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// How [`print_with`] writes a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintOptions {
    /// Constants with more elements are written as fingerprint and first values.
    pub max_const_elems: usize,
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions { max_const_elems: 16 }
    }
}

/// The text form of a graph (see the [module documentation](super)).
pub fn print(graph: &Graph) -> String {
    print_with(graph, &PrintOptions::default())
}

pub fn print_with(graph: &Graph, opts: &PrintOptions) -> String {
    let mut p = Printer::new(opts, Some(graph));
    p.check_constants();
    p.graph(graph);
    p.out.push('\n');
    p.out
}

/// One node's line, e.g. for remarks: `%y: f32[1,16] = Relu(%x)`. Unlike [`print()`], it takes
/// time independent of the graph's size, and so assumes its constants exist.
pub fn print_node(graph: &Graph, id: NodeId) -> String {
    let opts = PrintOptions::default();
    let mut p = Printer::new(&opts, Some(graph));
    p.node(id);
    p.out
}

/// How a name is written after `%`: bare, or quoted.
pub(super) fn name_text(name: &str) -> String {
    let mut s = String::new();
    write_name_text(&mut s, name);
    s
}

fn write_name_text(out: &mut String, name: &str) {
    if is_bare_name(name) {
        out.push_str(name);
    } else {
        write_string(out, name.as_bytes());
    }
}

/// A quantization annotation as printed, e.g. `q(0.0213, 128)`.
pub(super) fn quant_text(graph: &Graph, q: &Quant) -> String {
    let opts = PrintOptions::default();
    let mut p = Printer::new(&opts, Some(graph));
    p.quant(q);
    p.out
}

/// A `TypeProto`'s tensor type (`None` for other or untyped values).
pub(super) fn tensor_type(t: Option<&TypeProto>) -> Option<TensorType> {
    use tensor_shape_proto::dimension::Value as D;
    let Some(type_proto::Value::TensorType(tt)) = t?.value.as_ref() else { return None };
    let dtype = crate::DType::from_onnx(tt.elem_type?)?;
    let shape = tt.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(D::DimValue(v)) => Dim::Known(*v),
                Some(D::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                _ => Dim::Unknown,
            })
            .collect()
    });
    Some(TensorType { dtype, shape })
}

struct Printer<'a> {
    out: String,
    opts: &'a PrintOptions,
    /// The IR graph being printed (nested graphs are printed from their protos).
    graph: Option<&'a Graph>,
    /// Live constants of `graph` by id, when checked (whole graphs), so that dangling references
    /// print instead of panicking.
    live: Option<Vec<bool>>,
    depth: usize,
}

impl<'a> Printer<'a> {
    fn new(opts: &'a PrintOptions, graph: Option<&'a Graph>) -> Printer<'a> {
        Printer { out: String::new(), opts, graph, live: None, depth: 0 }
    }

    fn check_constants(&mut self) {
        let mut live = Vec::new();
        for (id, _) in self.graph.iter().flat_map(|g| g.constants()) {
            live.resize(id.0 as usize + 1, false);
            live[id.0 as usize] = true;
        }
        self.live = Some(live);
    }

    fn s(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// `items` separated by `, `.
    fn comma<T>(&mut self, items: impl IntoIterator<Item = T>, mut f: impl FnMut(&mut Self, T)) {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.s(", ");
            }
            f(self, item);
        }
    }

    fn string(&mut self, bytes: &[u8]) {
        write_string(&mut self.out, bytes);
    }

    fn ident_or_string(&mut self, s: &str) {
        if is_ident(s) {
            self.s(s);
        } else {
            self.string(s.as_bytes());
        }
    }

    /// `%name`, or `_` for the empty name.
    fn name(&mut self, name: &str) {
        if name.is_empty() {
            self.s("_");
        } else {
            self.s("%");
            write_name_text(&mut self.out, name);
        }
    }

    // ---- graphs ----------------------------------------------------------------------------

    fn header(&mut self, name: Option<&str>, opsets: &BTreeMap<String, i64>) {
        self.s("graph");
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.s(" ");
            self.string(name.as_bytes());
        }
        if !opsets.is_empty() {
            self.s(" opset(");
            self.comma(opsets, |p, (domain, version)| {
                match domain.as_str() {
                    "" => p.s("ai.onnx"),
                    // The empty domain is spelled ai.onnx: the literal spelling must be quoted.
                    "ai.onnx" => p.string(b"ai.onnx"),
                    d => p.ident_or_string(d),
                }
                let _ = write!(p.out, "={version}");
            });
            self.s(")");
        }
        self.s(" {");
    }

    fn graph(&mut self, g: &Graph) {
        self.header(g.meta.name.as_deref(), &g.opsets);
        self.depth += 1;
        for &id in &g.inputs {
            if let Some(v) = g.contains(id).then(|| g.node(id).outputs.first()).flatten() {
                self.newline();
                self.s("input ");
                self.value(&v.name, v.ty.as_ref(), v.quant.as_ref());
            }
        }
        for (_, c) in g.constants() {
            self.newline();
            self.constant(c);
        }
        let order = g.topo_order().unwrap_or_else(|_| {
            let mut ids: Vec<NodeId> = g.node_ids().filter(|&id| g.node(id).op != Op::Input).collect();
            ids.sort_by_key(|&id| (g.node(id).order(), id));
            ids
        });
        for id in order {
            self.newline();
            self.node(id);
        }
        for o in g.outputs() {
            self.newline();
            self.s("output ");
            self.operand(o.operand);
        }
        self.depth -= 1;
        self.newline();
        self.s("}");
    }

    /// A nested graph, from its proto: inputs, initializers, nodes in file order, outputs.
    fn proto_graph(&mut self, gp: &GraphProto) {
        self.header(gp.name.as_deref(), &BTreeMap::new());
        self.depth += 1;
        let mut types: HashMap<&str, TensorType> = HashMap::new();
        for vi in gp.value_info.iter().chain(&gp.output) {
            if let (Some(name), Some(ty)) = (vi.name.as_deref(), tensor_type(vi.r#type.as_ref())) {
                types.entry(name).or_insert(ty);
            }
        }
        for vi in &gp.input {
            self.newline();
            self.s("input ");
            self.value(vi.name.as_deref().unwrap_or(""), tensor_type(vi.r#type.as_ref()).as_ref(), None);
        }
        let inputs: HashSet<&str> = gp.input.iter().filter_map(|vi| vi.name.as_deref()).collect();
        for t in &gp.initializer {
            let name = t.name.as_deref().unwrap_or("");
            let is_input = inputs.contains(name);
            self.newline();
            self.s(if is_input { "const(default) " } else { "const " });
            self.const_name(name);
            self.tensor_proto(t);
        }
        for s in &gp.sparse_initializer {
            self.newline();
            self.s("const ");
            self.const_name(s.values.as_ref().and_then(|v| v.name.as_deref()).unwrap_or(""));
            self.sparse(s);
        }
        for n in &gp.node {
            self.newline();
            let outputs = n.output.iter().map(|o| (o.as_str(), types.get(o.as_str()), None));
            self.outputs(outputs);
            let op = Op::from_onnx(n.domain.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or(""));
            self.op(&op, n.domain.as_deref());
            self.attrs(&n.attribute);
            self.s("(");
            self.comma(&n.input, |p, i| p.name(i));
            self.s(")");
            self.node_name(n.name.as_deref());
        }
        for vi in &gp.output {
            self.newline();
            self.s("output ");
            self.name(vi.name.as_deref().unwrap_or(""));
        }
        self.depth -= 1;
        self.newline();
        self.s("}");
    }

    // ---- values ----------------------------------------------------------------------------

    /// `%name: type q(…)`, or `_` for an output the node does not produce.
    fn value(&mut self, name: &str, ty: Option<&TensorType>, quant: Option<&Quant>) {
        if name.is_empty() {
            self.s("_");
            return;
        }
        self.name(name);
        if let Some(ty) = ty {
            self.s(": ");
            self.ty(ty);
        }
        if let Some(q) = quant {
            self.s(" ");
            self.quant(q);
        }
    }

    fn ty(&mut self, ty: &TensorType) {
        self.s(ty.dtype.name());
        self.s("[");
        match &ty.shape {
            None => self.s("*"),
            Some(dims) => {
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        self.s(",");
                    }
                    match d {
                        Dim::Known(v) => {
                            let _ = write!(self.out, "{v}");
                        }
                        Dim::Unknown => self.s("?"),
                        Dim::Sym(s) => self.ident_or_string(s),
                    }
                }
            }
        }
        self.s("]");
    }

    /// The constant, if it is live (or not checked).
    fn const_ref(&self, id: ConstId) -> Option<&'a Const> {
        let g = self.graph?;
        let live = self.live.as_ref().is_none_or(|l| l.get(id.0 as usize).copied().unwrap_or(false));
        live.then(|| g.constant(id))
    }

    fn operand_name(&self, op: Operand) -> Option<&'a str> {
        let g = self.graph?;
        match op {
            Operand::Value(o) => {
                let n = g.contains(o.node).then(|| g.node(o.node))?;
                Some(n.outputs.get(o.slot as usize)?.name.as_str())
            }
            Operand::Const(c) => Some(self.const_ref(c)?.name.as_str()),
            Operand::None => Some(""),
        }
    }

    fn operand(&mut self, op: Operand) {
        match self.operand_name(op) {
            Some(name) => self.name(name),
            None => self.s("<dangling>"),
        }
    }

    /// `q(0.0213, 128)` for per-tensor scalar parameters, else `q(%scale, %zp, axis=1, block=32)`.
    fn quant(&mut self, q: &Quant) {
        self.s("q(");
        if !(q.axis.is_none() && q.block_size.is_none() && self.quant_numbers(q)) {
            self.operand(Operand::Const(q.scale));
            if let Some(zp) = q.zero_point {
                self.s(", ");
                self.operand(Operand::Const(zp));
            }
            if let Some(axis) = q.axis {
                let _ = write!(self.out, ", axis={axis}");
            }
            if let Some(block) = q.block_size {
                let _ = write!(self.out, ", block={block}");
            }
        }
        self.s(")");
    }

    /// Writes `scale, zero_point` when both are dense one-element constants, printed in full,
    /// of the types the parser looks such values up in.
    fn quant_numbers(&mut self, q: &Quant) -> bool {
        let shown = self.opts.max_const_elems >= 1;
        let scalar = |id, ok: fn(DType) -> bool| {
            let t = self.const_ref(id).and_then(Const::tensor)?;
            (shown && t.numel() == Ok(1) && t.dtype().is_ok_and(ok)).then_some(t)
        };
        let (Some(scale), zp) =
            (scalar(q.scale, is_decimal_float), q.zero_point.map(|z| scalar(z, is_zero_point_type)))
        else {
            return false;
        };
        let mark = self.out.len();
        let ok = write_values(&mut self.out, scale).is_ok()
            && match zp {
                None => {
                    self.s(", 0");
                    true
                }
                Some(None) => false,
                Some(Some(zp)) => {
                    self.s(", ");
                    write_values(&mut self.out, zp).is_ok()
                }
            };
        if !ok {
            self.out.truncate(mark);
        }
        ok
    }

    // ---- constants ---------------------------------------------------------------------------

    fn constant(&mut self, c: &Const) {
        self.s(match c.origin {
            ConstOrigin::ConstantNode { .. } => "const(node) ",
            ConstOrigin::InputDefault => "const(default) ",
            ConstOrigin::Initializer | ConstOrigin::SparseInitializer => "const ",
        });
        self.const_name(&c.name);
        match &c.value {
            ConstValue::Dense(t) => self.tensor(t),
            ConstValue::Sparse(s) => self.sparse(s),
            ConstValue::Elided(e) => self.elided(e),
        }
    }

    fn const_name(&mut self, name: &str) {
        self.s("%");
        write_name_text(&mut self.out, name);
        self.s(": ");
    }

    /// `dtype[dims] values`, or its elided form; `tensor(0x…)` (the proto's bytes) when the
    /// tensor's data is not valid.
    fn tensor(&mut self, t: &Tensor) {
        if let Some(e) = Elided::from_proto(&t.proto) {
            return self.elided(&e);
        }
        let mark = self.out.len();
        if self.tensor_data(t).is_err() {
            self.out.truncate(mark);
            self.s("tensor(0x");
            self.s(&hex(&t.proto.encode_to_vec()));
            self.s(")");
        }
    }

    fn tensor_proto(&mut self, t: &TensorProto) {
        self.tensor(&Tensor { proto: t.clone(), external: None });
    }

    fn tensor_data(&mut self, t: &Tensor) -> Result<(), TensorError> {
        t.check()?;
        let n = t.numel()?;
        self.dtype_dims(t.dtype()?.name(), t.dims());
        if n > self.opts.max_const_elems {
            let _ = write!(self.out, " #{:016x} [", t.fingerprint()?);
            return self.head(&head(t, n.min(4))?);
        }
        self.s(" ");
        if t.dims().is_empty() {
            return write_values(&mut self.out, t);
        }
        self.s("[");
        write_values(&mut self.out, t)?;
        self.s("]");
        Ok(())
    }

    fn dtype_dims(&mut self, dtype: &str, dims: &[i64]) {
        self.s(dtype);
        self.s("[");
        for (i, d) in dims.iter().enumerate() {
            let _ = write!(self.out, "{}{d}", if i > 0 { "," } else { "" });
        }
        self.s("]");
    }

    fn elided(&mut self, e: &Elided) {
        self.dtype_dims(e.dtype.name(), &e.dims);
        let _ = write!(self.out, " #{:016x} [", e.fingerprint);
        let mark = self.out.len();
        if self.head(&e.head).is_err() {
            self.out.truncate(mark);
            self.s("…]");
        }
    }

    /// The first values and `…]`.
    fn head(&mut self, head: &Tensor) -> Result<(), TensorError> {
        write_values(&mut self.out, head)?;
        self.s(if head.numel()? > 0 { ", …]" } else { "…]" });
        Ok(())
    }

    /// `sparse[dims](values, indices)`.
    fn sparse(&mut self, s: &SparseTensorProto) {
        self.dtype_dims("sparse", &s.dims);
        self.s("(");
        for (i, t) in [&s.values, &s.indices].into_iter().enumerate() {
            if i > 0 {
                self.s(", ");
            }
            match t {
                Some(t) => self.tensor_proto(t),
                None => self.s("tensor(0x)"),
            }
        }
        self.s(")");
    }

    // ---- nodes -----------------------------------------------------------------------------

    fn node(&mut self, id: NodeId) {
        let g = self.graph.expect("an IR graph");
        let n = g.node(id);
        self.outputs(n.outputs.iter().map(|v| (v.name.as_str(), v.ty.as_ref(), v.quant.as_ref())));
        self.op(&n.op, n.domain());
        self.attrs(&n.attrs);
        self.s("(");
        self.comma(n.inputs(), |p, &op| p.operand(op));
        self.s(")");
        self.node_name(n.meta.name.as_deref());
    }

    /// `%a: f32[2], _ = ` (just `= ` for a node without outputs).
    fn outputs<'v>(&mut self, outputs: impl Iterator<Item = (&'v str, Option<&'v TensorType>, Option<&'v Quant>)>) {
        let mark = self.out.len();
        self.comma(outputs, |p, (name, ty, q)| p.value(name, ty, q));
        self.s(if self.out.len() > mark { " = " } else { "= " });
    }

    fn node_name(&mut self, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.s("  ");
            self.string(name.as_bytes());
        }
    }

    /// The op, with the domain export writes when it is not the one its bare name implies.
    fn op(&mut self, op: &Op, domain: Option<&str>) {
        let name = op.name();
        let d = domain.unwrap_or("");
        let d = if Op::from_onnx(d, name) == *op { d } else { op.default_domain() };
        let simple = |s: &str| is_ident(s) && !s.contains('.');
        let bare = bare_op(name);
        if simple(name) && bare == *op && norm_domain(bare.default_domain()) == norm_domain(d) {
            self.s(name);
        } else if simple(name) && (d.is_empty() || is_ident(d)) {
            self.s(if d.is_empty() { "ai.onnx" } else { d });
            self.s(".");
            self.s(name);
        } else {
            self.string(d.as_bytes());
            self.s(".");
            self.string(name.as_bytes());
        }
    }

    // ---- attributes --------------------------------------------------------------------------

    fn attrs(&mut self, attrs: &[AttributeProto]) {
        if attrs.is_empty() {
            return;
        }
        self.s("[");
        self.comma(attrs, |p, a| {
            p.ident_or_string(a.name.as_deref().unwrap_or(""));
            p.s("=");
            p.attr(a);
        });
        self.s("]");
    }

    fn attr(&mut self, a: &AttributeProto) {
        if !is_plain(a) {
            self.s("proto(0x");
            self.s(&hex(&a.encode_to_vec()));
            self.s(")");
            return;
        }
        match kind(a) {
            A::Float => self.float(a.f.unwrap_or_default()),
            A::Int => {
                let _ = write!(self.out, "{}", a.i.unwrap_or_default());
            }
            A::String => self.string(a.s.as_deref().unwrap_or_default()),
            A::Tensor => self.tensor_proto(a.t.as_ref().unwrap()),
            A::Graph => self.nested(a.g.as_ref().unwrap()),
            A::SparseTensor => self.sparse(a.sparse_tensor.as_ref().unwrap()),
            A::Floats => self.list("floats", &a.floats, ", ", |p, &v| p.float(v)),
            A::Ints => self.list("ints", &a.ints, ",", |p, v| {
                let _ = write!(p.out, "{v}");
            }),
            A::Strings => self.list("strings", &a.strings, ", ", |p, s| p.string(s)),
            A::Tensors => self.list("tensors", &a.tensors, ", ", |p, t| p.tensor_proto(t)),
            A::Graphs => self.list("graphs", &a.graphs, ", ", |p, g| p.nested(g)),
            A::SparseTensors => self.list("sparse_tensors", &a.sparse_tensors, ", ", |p, s| p.sparse(s)),
            A::Undefined | A::TypeProto | A::TypeProtos => unreachable!("not plain"),
        }
    }

    /// `[a, b]`, or `kind[]` for an empty list, so that its type survives.
    fn list<T>(&mut self, kind: &str, items: &[T], sep: &str, mut f: impl FnMut(&mut Self, &T)) {
        if items.is_empty() {
            self.s(kind);
        }
        self.s("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.s(sep);
            }
            f(self, item);
        }
        self.s("]");
    }

    /// Rust's shortest round-trip form, which always has a point or an exponent (or is inf/NaN).
    fn float(&mut self, v: f32) {
        let _ = write!(self.out, "{v:?}");
    }

    fn nested(&mut self, g: &GraphProto) {
        let graph = self.graph.take();
        self.proto_graph(g);
        self.graph = graph;
    }
}

/// Whether an attribute is written in the typed syntax: it has a name, a type that syntax covers,
/// the value field of its type (only), and no doc string or reference. Others are written as
/// their protobuf bytes.
fn is_plain(a: &AttributeProto) -> bool {
    let k = kind(a);
    let fields = [
        (A::Float, a.f.is_some(), true),
        (A::Int, a.i.is_some(), true),
        (A::String, a.s.is_some(), true),
        (A::Tensor, a.t.is_some(), true),
        (A::Graph, a.g.is_some(), true),
        (A::SparseTensor, a.sparse_tensor.is_some(), true),
        (A::TypeProto, a.tp.is_some(), true),
        (A::Floats, !a.floats.is_empty(), false),
        (A::Ints, !a.ints.is_empty(), false),
        (A::Strings, !a.strings.is_empty(), false),
        (A::Tensors, !a.tensors.is_empty(), false),
        (A::Graphs, !a.graphs.is_empty(), false),
        (A::SparseTensors, !a.sparse_tensors.is_empty(), false),
        (A::TypeProtos, !a.type_protos.is_empty(), false),
    ];
    a.name.is_some()
        && a.ref_attr_name.is_none()
        && a.doc_string.is_none()
        && !matches!(k, A::Undefined | A::TypeProto | A::TypeProtos)
        && fields.iter().all(|&(t, present, required)| if t == k { present || !required } else { !present })
}
