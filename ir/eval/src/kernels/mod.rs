//! Kernels, one module per op family, and the table that maps an [`Op`] to its kernel.
//!
//! A kernel is a plain function from a [`Ctx`] (the node, its input values, the opset) to its
//! output values. Each module registers its kernels in [`Registry`]; the executor looks the op up
//! and reports an op that is not there as [`crate::EvalError::Unsupported`].

use std::collections::HashMap;
use std::sync::LazyLock;

use qdqc_ir::attr;
use qdqc_ir::{DType, Node, Op};

use crate::error::{bail, KResult, KernelError};
use crate::value::Value;

pub mod contrib;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod linalg;
pub(crate) mod nn;
pub(crate) mod pool;
pub(crate) mod qlinear;
pub(crate) mod quant;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod shape;

/// What a kernel sees: the node (attributes, outputs), its input values (`None` for an omitted
/// optional input) and the opset of the node's domain.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub inputs: &'a [Option<&'a Value>],
    pub opset: i64,
}

impl<'a> Ctx<'a> {
    /// A required input.
    pub fn input(&self, i: usize) -> KResult<&'a Value> {
        match self.inputs.get(i) {
            Some(Some(v)) => Ok(v),
            _ => bail!("required input {i} is missing"),
        }
    }

    /// An optional input (`None` when omitted or absent).
    pub fn opt(&self, i: usize) -> Option<&'a Value> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// How many outputs the node declares (produced or not).
    pub fn n_outputs(&self) -> usize {
        self.node.outputs.len()
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        attr::int(&self.node.attrs, name).unwrap_or(default)
    }

    pub fn int_opt(&self, name: &str) -> Option<i64> {
        attr::int(&self.node.attrs, name)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        attr::float(&self.node.attrs, name).unwrap_or(default)
    }

    pub fn float_opt(&self, name: &str) -> Option<f32> {
        attr::float(&self.node.attrs, name)
    }

    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        attr::ints(&self.node.attrs, name)
    }

    pub fn floats(&self, name: &str) -> Option<&'a [f32]> {
        attr::floats(&self.node.attrs, name)
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        attr::string(&self.node.attrs, name).unwrap_or_else(|| default.to_string())
    }

    /// Whether the node carries the attribute at all.
    pub fn has(&self, name: &str) -> bool {
        self.node.attr(name).is_some()
    }
}

/// A kernel: computes a node's outputs (in order; trailing optional outputs may be left out).
pub type Kernel = fn(&Ctx) -> KResult<Vec<Value>>;

/// The op → kernel table.
#[derive(Default)]
pub struct Registry {
    map: HashMap<Op, Kernel>,
}

impl Registry {
    pub(crate) fn add(&mut self, op: Op, k: Kernel) {
        let prev = self.map.insert(op.clone(), k);
        debug_assert!(prev.is_none(), "kernel for {op} registered twice");
    }

    /// Registers an ai.onnx op that is not one of the [`Op`] enum's variants.
    pub(crate) fn add_onnx(&mut self, op_type: &str, k: Kernel) {
        self.add(Op::from_onnx("", op_type), k)
    }

    pub fn get(&self, op: &Op) -> Option<Kernel> {
        match op {
            Op::Other(o) if o.domain == "ai.onnx" => self.map.get(&Op::other("", &o.op_type)).copied(),
            _ => self.map.get(op).copied(),
        }
    }

    /// Every op with a kernel, sorted.
    pub fn ops(&self) -> Vec<Op> {
        let mut v: Vec<Op> = self.map.keys().cloned().collect();
        v.sort();
        v
    }
}

pub(crate) static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::default();
    elementwise::register(&mut r);
    shape::register(&mut r);
    quant::register(&mut r);
    linalg::register(&mut r);
    conv::register(&mut r);
    pool::register(&mut r);
    nn::register(&mut r);
    reduce::register(&mut r);
    resize::register(&mut r);
    qlinear::register(&mut r);
    contrib::register(&mut r);
    r
});

// ---- helpers shared by kernels -----------------------------------------------------------------

/// Normalises a possibly negative axis for a tensor of `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> KResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// The values of a 1-D (or scalar) integer tensor, e.g. a shape or axes input.
pub(crate) fn int_list(v: &Value) -> KResult<Vec<i64>> {
    if !v.dtype().is_int() {
        bail!("expected an integer tensor, got {}", v.dtype());
    }
    Ok(v.to_i64_vec()?)
}

/// The ONNX broadcast of two shapes (numpy rules).
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> KResult<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    crate::limits::check_shape(&out)?;
    Ok(out)
}

/// The f32 view of an f32 input, or a converted copy for other float types.
pub(crate) fn f32_input<'a>(v: &'a Value, what: &str) -> KResult<std::borrow::Cow<'a, ndarray::ArrayD<f32>>> {
    match v {
        Value::F32(a) => Ok(std::borrow::Cow::Borrowed(a)),
        Value::F16(_) | Value::BF16(_) | Value::F64(_) => Ok(std::borrow::Cow::Owned(v.cast_array_to::<f32>())),
        _ => bail!("{what} must be a float tensor, got {}", v.dtype()),
    }
}

/// Wraps an f32 result back into the float type `like` has (for f16/bf16/f64 inputs computed in f32).
pub(crate) fn f32_output(a: ndarray::ArrayD<f32>, like: DType) -> KResult<Value> {
    let v = Value::F32(a);
    Ok(if like == DType::F32 { v } else { v.cast(like)? })
}

impl From<String> for KernelError {
    fn from(s: String) -> Self {
        KernelError::Invalid(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers to run one kernel on given values.

    use super::*;
    use qdqc_ir::proto::{AttributeProto, NodeProto};
    use qdqc_ir::{Graph, Value as IrValue};

    pub(crate) fn f32v(shape: &[usize], data: &[f32]) -> Value {
        Value::f32(shape, data.to_vec()).unwrap()
    }

    /// 0, 1, 2, ... in f32, of the given shape.
    pub(crate) fn iota(shape: &[usize]) -> Value {
        let n: usize = shape.iter().product();
        f32v(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
    }

    pub(crate) fn i64v(shape: &[usize], data: &[i64]) -> Value {
        Value::from_i64(DType::I64, shape, data).unwrap()
    }

    /// Runs the kernel of `op` on `inputs` at `opset` with `n_out` declared outputs.
    pub(crate) fn run_op_n(
        op: Op,
        attrs: Vec<AttributeProto>,
        inputs: &[Option<Value>],
        opset: i64,
        n_out: usize,
    ) -> Vec<Value> {
        try_run_op(op, attrs, inputs, opset, n_out).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn try_run_op(
        op: Op,
        attrs: Vec<AttributeProto>,
        inputs: &[Option<Value>],
        opset: i64,
        n_out: usize,
    ) -> KResult<Vec<Value>> {
        let mut g = Graph::new();
        let proto = NodeProto { domain: Some(op.default_domain().to_string()), ..Default::default() };
        let outs = (0..n_out).map(|i| IrValue::named(format!("y{i}"))).collect();
        let id = g.add_node(op.clone(), proto, attrs, vec![], outs).unwrap();
        let node = g.node(id);
        let args: Vec<Option<&Value>> = inputs.iter().map(Option::as_ref).collect();
        let kernel = REGISTRY.get(&op).unwrap_or_else(|| panic!("no kernel for {op}"));
        kernel(&Ctx { node, inputs: &args, opset })
    }

    pub(crate) fn run_op(op: Op, attrs: Vec<AttributeProto>, inputs: &[Option<Value>], opset: i64) -> Vec<Value> {
        run_op_n(op, attrs, inputs, opset, 1)
    }
}
