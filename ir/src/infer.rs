//! Type, shape and quantization-parameter inference for every op in [`crate::Op`].
//!
//! [`infer_graph`] fills in what the model did not declare; `check_node` (run by `Graph::verify`
//! on every node) checks that a node's recorded output types agree with what its inputs imply.
//!
//! One function per op computes the output types of a node from its input types, attributes and
//! constant inputs ([`infer_node`]); the families live in submodules:
//! - `elementwise`: unary ops, broadcasting binary and variadic ops, Cast, Identity, Constant;
//! - `nn`: Conv/ConvTranspose, pooling, normalization, MatMul/Gemm;
//! - `shape_ops`: Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Concat, Slice, Gather, Split,
//!   Pad, Resize, DepthToSpace/SpaceToDepth, Expand, Tile, Shape, the reductions;
//! - `quant`: QuantizeLinear/DequantizeLinear, the QLinear/Integer ops and the [`crate::Quant`]
//!   parameters of values.
//!
//! What is unknown stays unknown (`Dim::Unknown`, unknown rank, no type) and is never an error;
//! what is malformed (wrong input count, bad attribute, mismatched dims) is a `GraphError::Node`.
//! Dimension arithmetic is checked: a model may claim any dims.

mod dims;
mod elementwise;
mod nn;
mod quant;
mod shape_ops;

use crate::dtype::DType;
use crate::graph::{Dim, Graph, GraphError, Node, NodeId, Operand, TensorType};
use crate::op::Op;
use crate::tensor::Tensor;
use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use dims::R;

/// The inferred type of each output slot (`None`: nothing known). May be shorter than the
/// node's output list when the op produces fewer outputs than the node names (an error is
/// raised before that) or longer for optional outputs the node does not produce.
pub type OutputTypes = Vec<Option<TensorType>>;

/// Infers output types and quantization parameters of every node, in topological order.
/// Declared types are kept (merged with what inference knows); unknown ops keep what was declared.
pub fn infer_graph(graph: &mut Graph) -> Result<(), GraphError> {
    let order = graph.topo_order()?;
    for id in order {
        let node = graph.node(id);
        if matches!(node.op, Op::Input | Op::Other(_)) {
            continue;
        }
        // The inferred types become the merged ones in place, then are recorded.
        let mut types = infer_to_record(graph, id).map_err(|msg| node_error(node, msg))?;
        for (v, ty) in node.outputs.iter().zip(&mut types).filter(|(v, _)| !v.name.is_empty()) {
            *ty = merge(v.ty.as_ref(), ty.as_ref()).ok_or_else(|| {
                let msg = format!(
                    "output '{}' is declared {} but its inputs give {}",
                    v.name,
                    show(v.ty.as_ref()),
                    show(ty.as_ref())
                );
                node_error(node, msg)
            })?;
        }
        let node = graph.node_mut(id);
        for (v, ty) in node.outputs.iter_mut().zip(types).filter(|(v, _)| !v.name.is_empty()) {
            v.ty = ty;
        }
        infer_quant(graph, id);
    }
    Ok(())
}

/// Sets the quantization parameters of node `id`'s integer output (a Q, a QLinear op, or data
/// movement of a quantized value), and of the integer value a DequantizeLinear reads when that
/// has none yet. Output types must be inferred first.
pub fn infer_quant(graph: &mut Graph, id: NodeId) {
    let node = graph.node(id);
    let out_quant = quant::output_quant(graph, node);
    let in_quant = quant::dequantized_input_quant(graph, node);
    if let Some(q) = out_quant {
        // Every output of a Split; the first of anything else (MaxPool's indices are no quantized value).
        let n = if graph.node(id).op == Op::Split { usize::MAX } else { 1 };
        for v in graph.node_mut(id).outputs.iter_mut().take(n) {
            if v.ty.as_ref().is_some_and(|t| t.dtype.is_int()) {
                v.quant = Some(q.clone());
            }
        }
    }
    if let Some((outlet, q)) = in_quant {
        let v = graph.value_mut(outlet);
        if v.quant.is_none() {
            v.quant = Some(q);
        }
    }
}

/// Checks node `id`'s recorded output types against inference from its inputs' recorded types
/// alone (so `Graph::verify` checks the nodes independently, on both cores). Only contradictions
/// are reported: a recorded type may be less precise than the inferred one.
pub(crate) fn check_node(graph: &Graph, id: NodeId) -> Result<(), GraphError> {
    let node = graph.node(id);
    if matches!(node.op, Op::Input | Op::Other(_)) {
        return Ok(());
    }
    let inferred = infer_node(graph, id).map_err(|msg| node_error(node, msg))?;
    for (v, ty) in node.outputs.iter().zip(&inferred) {
        if v.name.is_empty() || compatible(v.ty.as_ref(), ty.as_ref()) {
            continue;
        }
        let msg = format!(
            "output '{}' is recorded as {} but its inputs give {}",
            v.name,
            show(v.ty.as_ref()),
            show(ty.as_ref())
        );
        return Err(node_error(node, msg));
    }
    Ok(())
}

/// The output types to record on node `id`: [`infer_node`]'s, with each shape that equals the
/// shape of a value input shared with that input (most ops keep the shape of an input, and
/// inference builds each output shape anew: a million-node graph held one copy per value).
pub fn infer_to_record(graph: &Graph, id: NodeId) -> Result<OutputTypes, String> {
    let mut types = infer_node(graph, id)?;
    let node = graph.node(id);
    for shape in types.iter_mut().flatten().filter_map(|t| t.shape.as_mut()) {
        let same = node.inputs().iter().find_map(|&i| match i {
            Operand::Value(o) => graph.value(o).ty.as_ref()?.shape.as_ref().filter(|s| *s == shape),
            _ => None,
        });
        if let Some(s) = same {
            *shape = s.clone();
        }
    }
    Ok(types)
}

/// The output types of one node, from its inputs' current types, its attributes and its
/// constant inputs. `Op::Input` and `Op::Other` give their recorded types back.
pub fn infer_node(graph: &Graph, id: NodeId) -> Result<OutputTypes, String> {
    let node = graph.node(id);
    if matches!(node.op, Op::Input | Op::Other(_)) {
        return Ok(node.outputs.iter().map(|v| v.ty.clone()).collect());
    }
    let ctx = Ctx::new(graph, node);
    ctx.check_arity()?;
    use Op::*;
    match &node.op {
        Input | Other(_) => unreachable!("handled above"),
        QuantizeLinear => quant::quantize_linear(&ctx),
        DequantizeLinear => quant::dequantize_linear(&ctx),
        QLinearConv
        | QLinearMatMul
        | ConvInteger
        | MatMulInteger
        | QLinearAdd
        | QLinearMul
        | QLinearGlobalAveragePool
        | QLinearAveragePool
        | QLinearConcat
        | QGemm
        | QLinearSigmoid
        | QLinearLeakyRelu
        | QLinearSoftmax => quant::qlinear(&ctx),
        Conv => nn::conv(&ctx),
        ConvTranspose => nn::conv_transpose(&ctx),
        BatchNormalization => nn::batch_norm(&ctx),
        LayerNormalization => nn::layer_norm(&ctx),
        MatMul => nn::matmul(&ctx),
        Gemm => nn::gemm(&ctx),
        MaxPool | AveragePool => nn::pool(&ctx),
        GlobalAveragePool | GlobalMaxPool => nn::global_pool(&ctx),
        Relu | Clip | LeakyRelu | Sigmoid | HardSigmoid | HardSwish | Tanh | Gelu | Erf | Sqrt | Identity => {
            elementwise::unary(&ctx)
        }
        Softmax => elementwise::softmax(&ctx),
        Add | Sub | Mul | Div | Pow | Max | Min => elementwise::broadcasting(&ctx),
        Cast => elementwise::cast(&ctx),
        Constant => elementwise::constant(&ctx),
        ReduceMean | ReduceMax | ReduceMin => shape_ops::reduce(&ctx),
        Reshape => shape_ops::reshape(&ctx),
        Flatten => shape_ops::flatten(&ctx),
        Transpose => shape_ops::transpose(&ctx),
        Squeeze => shape_ops::squeeze(&ctx),
        Unsqueeze => shape_ops::unsqueeze(&ctx),
        Concat => shape_ops::concat(&ctx),
        Slice => shape_ops::slice(&ctx),
        Gather => shape_ops::gather(&ctx),
        Split => shape_ops::split(&ctx),
        Pad => shape_ops::pad(&ctx),
        Resize => shape_ops::resize(&ctx),
        DepthToSpace | SpaceToDepth => shape_ops::depth_space(&ctx),
        Expand => shape_ops::expand(&ctx),
        Tile => shape_ops::tile(&ctx),
        Shape => shape_ops::shape(&ctx),
    }
}

fn node_error(node: &Node, msg: String) -> GraphError {
    GraphError::Node { node: node.label(), op: node.op.to_string(), msg }
}

/// A type as the text form writes it: `f32[N,3,?]`, `f32[*]` for an unknown rank, `?` for none.
pub fn show(ty: Option<&TensorType>) -> String {
    match ty {
        None => "?".to_string(),
        Some(TensorType { dtype, shape: None }) => format!("{dtype}[*]"),
        Some(TensorType { dtype, shape: Some(dims) }) => {
            let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
            format!("{dtype}[{}]", dims.join(","))
        }
    }
}

/// The more precise of two descriptions of one dimension; `None` when both are known and differ.
/// A known size beats a symbol, which beats unknown; of two symbols the first (declared) is kept
/// unless it is one of onnx's placeholder names (`unk__0`).
pub fn merge_dim(declared: &Dim, inferred: &Dim) -> Option<Dim> {
    match (declared, inferred) {
        (Dim::Known(a), Dim::Known(b)) => (a == b).then_some(Dim::Known(*a)),
        (Dim::Known(a), _) | (_, Dim::Known(a)) => Some(Dim::Known(*a)),
        // onnx's shape inference names dims it could not infer `unk__<n>`: a real symbol is better.
        (Dim::Sym(d), Dim::Sym(i)) if d.starts_with("unk__") => Some(Dim::Sym(i.clone())),
        (Dim::Sym(s), _) | (Dim::Unknown, Dim::Sym(s)) => Some(Dim::Sym(s.clone())),
        (Dim::Unknown, Dim::Unknown) => Some(Dim::Unknown),
    }
}

/// Merges a declared type with an inferred one, keeping what is most precise in each;
/// `None` on a contradiction (different element types, ranks, or known dims).
pub fn merge(declared: Option<&TensorType>, inferred: Option<&TensorType>) -> Option<Option<TensorType>> {
    let (d, i) = match (declared, inferred) {
        (None, t) | (t, None) => return Some(t.cloned()),
        (Some(d), Some(i)) => (d, i),
    };
    if d.dtype != i.dtype {
        return None;
    }
    let shape = match (&d.shape, &i.shape) {
        (None, s) | (s, None) => s.clone(),
        (Some(a), Some(b)) if a == b => Some(a.clone()),
        (Some(a), Some(b)) => {
            if a.len() != b.len() {
                return None;
            }
            Some(a.iter().zip(b.iter()).map(|(x, y)| merge_dim(x, y)).collect::<Option<Arc<[_]>>>()?)
        }
    };
    Some(Some(TensorType { dtype: d.dtype, shape }))
}

/// Whether two descriptions of one value can both hold (the test [`merge`] makes, without
/// building the merged type).
pub fn compatible(a: Option<&TensorType>, b: Option<&TensorType>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    if a.dtype != b.dtype {
        return false;
    }
    match (&a.shape, &b.shape) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(p, q)| !matches!((p, q), (Dim::Known(u), Dim::Known(v)) if u != v))
        }
        _ => true,
    }
}

/// The opset a graph without an opset import is taken to use: the newest.
const LATEST_OPSET: i64 = i64::MAX;

/// Constant inputs read for shape computation (shapes, axes, pads, scales) are at most this
/// long; longer ones are treated as unknown rather than decoded.
const MAX_CONST_LEN: usize = 1 << 16;

/// What an op function sees of its node.
pub(crate) struct Ctx<'a> {
    pub g: &'a Graph,
    pub node: &'a Node,
    /// The opset version of the node's domain.
    pub opset: i64,
}

impl<'a> Ctx<'a> {
    fn new(g: &'a Graph, node: &'a Node) -> Ctx<'a> {
        let domain = node.domain().unwrap_or_else(|| node.op.default_domain());
        let v = g.opset_of(domain);
        Ctx { g, node, opset: if v <= 0 { LATEST_OPSET } else { v } }
    }

    pub fn n_inputs(&self) -> usize {
        self.node.inputs().len()
    }

    /// Whether input `i` is given (not omitted).
    pub fn has(&self, i: usize) -> bool {
        !matches!(self.node.input(i), Operand::None)
    }

    pub fn dtype(&self, i: usize) -> Option<DType> {
        self.g.operand_dtype(self.node.input(i))
    }

    /// The shape of input `i`: a value's own (shared, not copied: an op that keeps it passes it
    /// on to [`one`] as it is), or a constant's dims. A constant of unknown element type has no
    /// type, so no shape either (as [`Graph::operand_type`] has it).
    pub fn shape(&self, i: usize) -> Option<Arc<[Dim]>> {
        match self.node.input(i) {
            Operand::Value(o) => self.g.value(o).ty.as_ref()?.shape.clone(),
            Operand::Const(c) => {
                let c = self.g.constant(c);
                c.dtype().map(|_| c.dims().iter().map(|&d| Dim::Known(d)).collect())
            }
            Operand::None => None,
        }
    }

    /// The dims of a constant input (`None` for any other input), without building a shape.
    pub fn const_dims(&self, i: usize) -> Option<&'a [i64]> {
        match self.node.input(i) {
            Operand::Const(c) => Some(self.g.constant(c).dims()),
            _ => None,
        }
    }

    pub fn rank(&self, i: usize) -> Option<usize> {
        self.g.operand_rank(self.node.input(i))
    }

    /// The tensor of a dense constant input.
    pub fn const_tensor(&self, i: usize) -> Option<&'a Tensor> {
        self.g.const_tensor(self.node.input(i))
    }

    /// A constant input's values as integers; `None` when the input is not a (small) constant.
    pub fn const_ints(&self, i: usize) -> R<Option<Vec<i64>>> {
        let Some(t) = self.const_tensor(i) else {
            return Ok(None);
        };
        if t.numel().map_or(true, |n| n > MAX_CONST_LEN) {
            return Ok(None);
        }
        t.to_i64().map(Some).map_err(|e| format!("input {i} ('{}'): {e}", self.input_name(i)))
    }

    /// A constant input's values as floats; `None` when the input is not a (small) constant.
    pub fn const_floats(&self, i: usize) -> R<Option<Vec<f32>>> {
        let Some(t) = self.const_tensor(i) else {
            return Ok(None);
        };
        if t.numel().map_or(true, |n| n > MAX_CONST_LEN) {
            return Ok(None);
        }
        t.to_f32().map(Some).map_err(|e| format!("input {i} ('{}'): {e}", self.input_name(i)))
    }

    pub fn input_name(&self, i: usize) -> &str {
        self.g.operand_name(self.node.input(i))
    }

    pub fn attr_int(&self, name: &str) -> Option<i64> {
        crate::attr::int(&self.node.attrs, name)
    }

    pub fn attr_ints(&self, name: &str) -> Option<&'a [i64]> {
        crate::attr::ints(&self.node.attrs, name)
    }

    /// A STRING attribute as UTF-8 ([`crate::attr::str`]: lossy, borrowed when valid).
    pub fn attr_string(&self, name: &str) -> Option<Cow<'a, str>> {
        crate::attr::str(&self.node.attrs, name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.node.attr(name).is_some()
    }

    /// The `to`/`output_dtype`-style attribute `name` as a data type (0 or absent: `None`).
    pub fn attr_dtype(&self, name: &str) -> R<Option<DType>> {
        match self.attr_int(name) {
            None | Some(0) => Ok(None),
            Some(code) => {
                let code = i32::try_from(code).ok().and_then(DType::from_onnx);
                code.map(Some)
                    .ok_or_else(|| format!("attribute {name}: unknown data type {}", self.attr_int(name).unwrap()))
            }
        }
    }

    /// Checks the number of inputs and outputs, and that required inputs are given.
    fn check_arity(&self) -> R<()> {
        let (min, max, max_out) = arity(&self.node.op, self.opset);
        let n = self.n_inputs();
        if n < min || n > max {
            let want = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(format!("has {n} inputs, expected {want}"));
        }
        for i in 0..min {
            if !self.has(i) && !optional_input(&self.node.op, i) {
                return Err(format!("required input {i} is missing"));
            }
        }
        if self.node.outputs.len() > max_out {
            return Err(format!("has {} outputs, at most {max_out} expected", self.node.outputs.len()));
        }
        if self.node.outputs.is_empty() {
            return Err("has no outputs".into());
        }
        Ok(())
    }
}

/// (min inputs, max inputs, max outputs) of an op at an opset.
fn arity(op: &Op, opset: i64) -> (usize, usize, usize) {
    use Op::*;
    const ANY: usize = usize::MAX;
    match op {
        Input | Other(_) => (0, ANY, ANY),
        QuantizeLinear | DequantizeLinear => (2, 3, 1),
        Conv | ConvTranspose => (2, 3, 1),
        BatchNormalization => (5, 5, if opset >= 14 { 3 } else { 5 }),
        LayerNormalization => (2, 3, 3),
        MatMul => (2, 2, 1),
        Gemm => (2, 3, 1),
        Relu | LeakyRelu | Sigmoid | HardSigmoid | HardSwish | Tanh | Softmax | Gelu | Erf | Sqrt => (1, 1, 1),
        Identity | Cast | Flatten | Transpose | GlobalAveragePool | GlobalMaxPool | DepthToSpace | SpaceToDepth
        | Shape => (1, 1, 1),
        Clip => (1, 3, 1),
        Add | Sub | Mul | Div | Pow => (2, 2, 1),
        Max | Min => (1, ANY, 1),
        MaxPool => (1, 1, 2),
        AveragePool => (1, 1, 1),
        ReduceMean | ReduceMax | ReduceMin => (1, 2, 1),
        Reshape => (if opset >= 5 { 2 } else { 1 }, 2, 1),
        Squeeze => (1, 2, 1),
        Unsqueeze => (if opset >= 13 { 2 } else { 1 }, 2, 1),
        Concat => (1, ANY, 1),
        Slice => (if opset >= 10 { 3 } else { 1 }, 5, 1),
        Gather => (2, 2, 1),
        Split => (1, 2, ANY),
        Pad => (if opset >= 11 { 2 } else { 1 }, 4, 1),
        Resize => (1, 4, 1),
        Expand => (2, 2, 1),
        Tile if opset >= 6 => (2, 2, 1),
        // Tile-1 took (input, tiles, axis).
        Tile => (3, 3, 1),
        Constant => (0, 0, 1),
        QLinearConv => (8, 9, 1),
        QLinearMatMul => (8, 8, 1),
        ConvInteger | MatMulInteger => (2, 4, 1),
        QLinearAdd | QLinearMul => (7, 8, 1),
        QLinearGlobalAveragePool => (5, 5, 1),
        QLinearAveragePool | QLinearSigmoid | QLinearLeakyRelu | QLinearSoftmax => (4, 5, 1),
        QLinearConcat => (5, ANY, 1),
        QGemm => (6, 9, 1),
    }
}

/// Optional inputs that come before required ones.
fn optional_input(op: &Op, i: usize) -> bool {
    match op {
        Op::QLinearAdd | Op::QLinearMul => i == 2 || i == 5,
        Op::QLinearAveragePool | Op::QLinearSigmoid | Op::QLinearLeakyRelu | Op::QLinearSoftmax => i == 2,
        _ => false,
    }
}

/// One output of type `dtype` (if known) and `shape`.
pub(crate) fn one(dtype: Option<DType>, shape: Option<impl Into<Arc<[Dim]>>>) -> R<OutputTypes> {
    Ok(vec![ty(dtype, shape)])
}

/// A type of element type `dtype` (if known) and `shape`: a new one (`Vec<Dim>`) or an input's
/// (`Arc<[Dim]>`, kept shared).
pub(crate) fn ty(dtype: Option<DType>, shape: Option<impl Into<Arc<[Dim]>>>) -> Option<TensorType> {
    dtype.map(|dtype| TensorType { dtype, shape: shape.map(Into::into) })
}

/// The `shape` argument of [`one`] and [`ty`] when not even the rank is known.
pub(crate) const UNRANKED: Option<Arc<[Dim]>> = None;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use crate::builder::GraphBuilder;

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    #[test]
    fn outputs_share_the_shape_of_an_input_they_keep() {
        let text = "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4, 8]\n  %r = Relu(%x)\n  %t = Transpose(%r)\n  output %t\n}\n";
        let g = crate::text::parse(text).unwrap();
        let shape = |name: &str| {
            let Some(Operand::Value(o)) = g.lookup(name) else { panic!() };
            g.value(o).ty.as_ref().unwrap().shape.clone().unwrap()
        };
        assert!(Arc::ptr_eq(&shape("x"), &shape("r")), "Relu keeps its input's shape");
        assert_eq!(*shape("t"), [Dim::Known(8), Dim::Known(4)]);
        assert!(!Arc::ptr_eq(&shape("r"), &shape("t")));
    }

    #[test]
    fn merge_keeps_the_more_precise() {
        let d = TensorType::new(DType::F32, vec![sym("N"), Dim::Unknown, Dim::Known(3)]);
        let i = TensorType::new(DType::F32, vec![Dim::Unknown, Dim::Known(8), Dim::Known(3)]);
        let m = merge(Some(&d), Some(&i)).unwrap().unwrap();
        assert_eq!(*m.shape.unwrap(), [sym("N"), Dim::Known(8), Dim::Known(3)]);
        let known = TensorType::known(DType::F32, &[2, 8, 3]);
        assert_eq!(merge(Some(&d), Some(&known)).unwrap().unwrap(), known);
        // Symbols never contradict; the declared one is kept.
        let other = TensorType::new(DType::F32, vec![sym("B"), Dim::Unknown, Dim::Known(3)]);
        assert_eq!(merge(Some(&d), Some(&other)).unwrap().unwrap().shape.unwrap()[0], sym("N"));
        let unk = TensorType::new(DType::F32, vec![sym("unk__0"), Dim::Unknown, Dim::Known(3)]);
        assert_eq!(merge(Some(&unk), Some(&d)).unwrap().unwrap().shape.unwrap()[0], sym("N"));
        assert!(merge(Some(&d), Some(&TensorType::known(DType::F32, &[1, 1, 4]))).is_none());
        assert!(merge(Some(&d), Some(&TensorType::known(DType::F32, &[1, 1]))).is_none());
        assert!(merge(Some(&d), Some(&TensorType::new(DType::U8, vec![]))).is_none());
        let unranked = TensorType { dtype: DType::F32, shape: None };
        assert_eq!(merge(Some(&unranked), Some(&i)).unwrap().unwrap(), i);
        assert!(
            compatible(Some(&d), Some(&i)) && !compatible(Some(&d), Some(&TensorType::known(DType::F32, &[1, 1, 4])))
        );
    }

    #[test]
    fn declared_types_merge_and_contradictions_name_both_types() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let y = b
            .node(Op::Relu, &[x])
            .name("r")
            .out_type(TensorType::new(DType::F32, vec![Dim::Unknown, Dim::Unknown]))
            .out1();
        b.output(y);
        let g = b.finish().unwrap();
        assert_eq!(show(g.operand_type(y).as_ref()), "f32[N,3]");

        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let y = b.node(Op::Relu, &[x]).name("r").out_type(TensorType::known(DType::F32, &[2, 4])).out1();
        b.output(y);
        let err = b.finish().unwrap_err().to_string();
        assert_eq!(err, "node 'r' (Relu): output 'r_out' is declared f32[2,4] but its inputs give f32[N,3]");
    }

    #[test]
    fn unknown_ops_keep_declared_types_and_unknown_inputs_stay_unknown() {
        let mut b = GraphBuilder::new(17);
        let x = b.input_untyped("x");
        let y = b.node(Op::other("com.example", "MyOp"), &[x]).out_type(TensorType::known(DType::U8, &[4])).out1();
        let z = b.node(Op::Relu, &[x]).out1();
        let w = b.node(Op::Identity, &[y]).out1();
        b.output(z);
        b.output(w);
        let g = b.finish().unwrap();
        assert_eq!(g.operand_type(z), None);
        assert_eq!(show(g.operand_type(w).as_ref()), "u8[4]");
    }

    #[test]
    fn arity_is_checked() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["2"]);
        let y = b.node(Op::Add, &[x]).name("add").out1();
        b.output(y);
        let err = b.finish().unwrap_err().to_string();
        assert!(err.contains("has 1 inputs, expected 2"), "{err}");

        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["2"]);
        let y = b.node(Op::Relu, &[x]).outs(2);
        b.output(y[0]);
        assert!(b.finish().unwrap_err().to_string().contains("at most 1"));

        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["1", "3", "4", "4"]);
        let w = b.const_f32("w", &[2, 3, 1, 1], &[0.0; 6]);
        let y = b.node(Op::Conv, &[Operand::None, w]).out1();
        b.output(y);
        let _ = x;
        assert!(b.finish().unwrap_err().to_string().contains("required input 0 is missing"));
    }

    #[test]
    fn verify_reports_a_stale_output_type() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3", "8", "8"]);
        let y = b.node(Op::GlobalAveragePool, &[x]).name("gap").out1();
        b.output(y);
        let mut g = b.finish().unwrap();
        let Operand::Value(o) = y else { panic!() };
        g.value_mut(o).ty = Some(TensorType::known(DType::F32, &[1, 3, 8, 8]));
        let err = g.verify().unwrap_err().to_string();
        assert!(err.contains("recorded as f32[1,3,8,8] but its inputs give f32[N,3,1,1]"), "{err}");
        g.value_mut(o).ty = None;
        g.verify().unwrap();
        let _ = attr::make_int("x", 0);
    }
    /// Every fixture model loads (import runs inference), verifies, and gets a type on every
    /// value of a known op; the symbolic batch flows to the outputs.
    #[test]
    fn fixtures_infer_and_verify() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                continue;
            }
            let model = crate::onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let g = &model.graph;
            g.verify().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut quantized = 0;
            for id in g.topo_order().unwrap() {
                let n = g.node(id);
                if matches!(n.op, Op::Other(_)) {
                    continue;
                }
                for v in n.outputs.iter().filter(|v| !v.name.is_empty()) {
                    let t = v.ty.as_ref().unwrap_or_else(|| panic!("{}: '{}' has no type", path.display(), v.name));
                    assert!(t.shape.is_some(), "{}: '{}' has no shape", path.display(), v.name);
                    if v.quant.is_some() {
                        assert!(t.dtype.is_int());
                        quantized += 1;
                    }
                }
                if n.op == Op::QuantizeLinear {
                    assert!(n.outputs[0].quant.is_some(), "{}: Q output without quant", path.display());
                }
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            if name.contains(".u8.") || name.contains(".i8.") {
                assert!(quantized > 0, "{name}");
            }
            if name != "kitchen_sink.onnx" {
                let out = g.operand_type(g.outputs()[0].operand).unwrap();
                assert_eq!(out.shape.unwrap()[0], Dim::Sym("N".into()), "{name}");
            }
            seen += 1;
        }
        assert!(seen >= 15, "found {seen} fixtures");
    }

    /// Inference and the check are linear: a long chain of mixed ops (run with --ignored for 1M).
    #[test]
    fn long_chains_are_fast() {
        chain(20_000);
    }

    #[test]
    #[ignore]
    fn million_node_chain() {
        chain(1_000_000);
    }

    fn chain(n: usize) {
        let mut b = GraphBuilder::new(17);
        let mut x = b.input("x", DType::F32, &["N", "8"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 128);
        for i in 0..n / 2 {
            let q = b.node(Op::QuantizeLinear, &[x, s, z]).name(&format!("q{i}")).out1();
            x = b.node(Op::DequantizeLinear, &[q, s, z]).name(&format!("d{i}")).out1();
        }
        b.output(x);
        let t = std::time::Instant::now();
        let mut g = b.finish_unchecked().unwrap();
        infer_graph(&mut g).unwrap();
        let infer = t.elapsed();
        let t = std::time::Instant::now();
        g.verify().unwrap();
        eprintln!("{n} nodes: infer {infer:?}, verify {:?}", t.elapsed());
        assert_eq!(show(g.operand_type(x).as_ref()), "f32[N,8]");
    }
    /// Every op with odd inputs and hostile attributes gives a result or an error, never a panic.
    #[test]
    fn hostile_nodes_never_panic() {
        let big = i64::MAX;
        let attr_sets: Vec<Vec<crate::proto::AttributeProto>> = vec![
            vec![],
            vec![
                attr::make_int("axis", big),
                attr::make_ints("perm", &[5, -1, 0]),
                attr::make_ints("kernel_shape", &[0, big]),
                attr::make_ints("strides", &[-1, big]),
                attr::make_ints("pads", &[big, big, big, big]),
                attr::make_int("blocksize", big),
                attr::make_int("to", big),
                attr::make_ints("split", &[big, big]),
                attr::make_int("block_size", big),
                attr::make_int("group", big),
                attr::make_ints("axes", &[big, i64::MIN]),
            ],
            vec![
                attr::make_int("axis", -1),
                attr::make_ints("kernel_shape", &[3, 3]),
                attr::make_ints("dilations", &[big, big]),
                attr::make_ints("output_shape", &[big, big]),
                attr::make_ints("output_padding", &[big, big]),
                attr::make_string("auto_pad", "SAME_UPPER"),
                attr::make_int("ceil_mode", 1),
                attr::make_int("num_outputs", 2),
                attr::make_int("blocksize", 1 << 32),
                attr::make_ints("starts", &[i64::MIN]),
                attr::make_ints("ends", &[big]),
                attr::make_int("start", i64::MIN),
                attr::make_int("end", big),
                attr::make_ints("axes", &[1]),
                attr::make_string("keep_aspect_ratio_policy", "not_smaller"),
                attr::make_int("channels_last", 1),
            ],
        ];
        let huge = (1i64 << 62).to_string();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for op in Op::KNOWN {
            for round in 0..60 {
                let mut b = GraphBuilder::new([9, 13, 18, 21][round % 4]);
                let pool = [
                    b.input("x", DType::F32, &["N", "3", "8", "8"]),
                    b.input("h", DType::U8, &[&huge, "1", &huge, "2"]),
                    b.input_untyped("u"),
                    b.input("v", DType::I64, &["0"]),
                    b.input("r1", DType::F32, &["5"]),
                    b.input("r0", DType::F32, &[]),
                    b.input("r5", DType::I8, &["1", "N", "2", "3", "4"]),
                    b.ints("c", &[0, -1, big, i64::MIN]),
                    b.ints("e", &[]),
                    b.scalar_f32("s", 0.0),
                    b.scalar("z", DType::U8, 0),
                    b.const_f32("f", &[4], &[f32::NAN, f32::INFINITY, -1.0, 1e30]),
                    Operand::None,
                ];
                let n_in = next(10);
                let inputs: Vec<Operand> = (0..n_in).map(|_| pool[next(pool.len())]).collect();
                let attrs = attr_sets[next(attr_sets.len())].clone();
                let outs = b.node(op.clone(), &inputs).attrs(attrs).outs(1 + next(3));
                for o in outs {
                    b.output(o);
                }
                let _ = b.finish();
            }
        }
    }
}
