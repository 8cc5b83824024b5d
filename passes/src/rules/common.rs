//! What the rule families share: the quantization parameters of a QuantizeLinear or
//! DequantizeLinear node read by value ([`QParams`]), quantizing values as onnxruntime does,
//! scale checks, single-use checks, Clip bounds and BatchNormalization's mode.

use crate::ensure;
use crate::rule::{Match, Refusal};
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor, TensorError};
use std::sync::Arc;

/// Whether input `i` of `op` is a scale or zero point of a fused op: the inputs whose schema
/// takes a per-tensor parameter as a scalar (onnxruntime's com.microsoft QLinear* ops and QGemm,
/// ONNX's QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger). QuantizeLinear and
/// DequantizeLinear are not listed: rules pass their parameters on as written.
pub(crate) fn is_param_input(op: &Op, i: usize) -> bool {
    match op {
        Op::QLinearConv | Op::QLinearMatMul | Op::QLinearAdd | Op::QLinearMul => matches!(i, 1 | 2 | 4 | 5 | 6 | 7),
        Op::QGemm => matches!(i, 1 | 2 | 4 | 5 | 7 | 8),
        Op::ConvInteger | Op::MatMulInteger => matches!(i, 2 | 3),
        Op::QLinearGlobalAveragePool
        | Op::QLinearAveragePool
        | Op::QLinearSigmoid
        | Op::QLinearLeakyRelu
        | Op::QLinearSoftmax => matches!(i, 1..=4),
        // (y_scale, y_zero_point, then (x, x_scale, x_zero_point) per input.)
        Op::QLinearConcat => i < 2 || (i - 2) % 3 != 0,
        _ => false,
    }
}

/// Scale and zero point by value, the integer type, and the axis when per-axis. The values are
/// the graph's decoded copies ([`Graph::const_f32s`]), shared.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QParams {
    pub scale: Arc<[f32]>,
    pub scale_dtype: DType,
    /// One per scale element (zeros when the node has no zero point).
    pub zero_point: Arc<[i64]>,
    /// The integer type: Q's output, DQ's input.
    pub dtype: DType,
    /// `Some(axis)` (normalized) for per-axis parameters, `None` per tensor.
    pub axis: Option<usize>,
}

/// Reads the parameters of a Q or DQ node. Refuses (with a reason) what it cannot read exactly:
/// non-constant or elided parameters, blocked quantization, unknown types.
pub(crate) fn of_node(graph: &Graph, id: NodeId) -> Result<QParams, Refusal> {
    let node = graph.node(id);
    let who = || super::Who(graph, id);
    let dtype = match node.op {
        Op::QuantizeLinear => node.outputs[0].ty.as_ref().map(|t| t.dtype),
        Op::DequantizeLinear => graph.operand_dtype(node.input(0)),
        _ => None,
    }
    .ok_or_else(|| Refusal::new(format!("integer type of {} is unknown", who())))?;
    if attr::int(&node.attrs, "block_size").unwrap_or(0) > 0 {
        return Err(Refusal::new(format!("{} uses blocked quantization", who())));
    }
    let scale_t = graph
        .const_tensor(node.input(1))
        .ok_or_else(|| Refusal::new(format!("scale of {} is not a constant with known data", who())))?;
    let scale_dtype = scale_t.dtype().map_err(|e| Refusal::new(e.to_string()))?;
    let scale = floats(graph, node.input(1))
        .ok_or_else(|| Refusal::new(format!("scale of {} is not a constant with known data", who())))?
        .map_err(|e| Refusal::new(format!("scale of {}: {e}", who())))?;
    let zero_point = match node.input(2) {
        Operand::None => vec![0; scale.len()].into(),
        z => ints(graph, z)
            .ok_or_else(|| Refusal::new(format!("zero point of {} is not a constant with known data", who())))?
            .map_err(|e| Refusal::new(format!("zero point of {}: {e}", who())))?,
    };
    if zero_point.len() != scale.len() {
        return Err(Refusal::new(format!("{}: {} scales but {} zero points", who(), scale.len(), zero_point.len())));
    }
    let per_tensor = scale_t.dims().iter().all(|&d| d == 1) && scale.len() == 1;
    let axis = if per_tensor {
        None
    } else {
        let rank = graph
            .operand_rank(node.input(0))
            .ok_or_else(|| Refusal::new(format!("{} is per-axis but its input's rank is unknown", who())))?;
        let a = attr::int(&node.attrs, "axis").unwrap_or(1);
        let a = if a < 0 { a + rank as i64 } else { a };
        if a < 0 || a >= rank as i64 {
            return Err(Refusal::new(format!("{}: axis {a} is out of range", who())));
        }
        Some(a as usize)
    };
    Ok(QParams { scale, scale_dtype, zero_point, dtype, axis })
}

/// The values of operand `o` as f32 when it is a constant with data (`None` otherwise): the
/// graph's shared decoded copy, or decoded here for a constant the graph does not decode
/// (large, or not decodable: the error says why).
pub(crate) fn floats(g: &Graph, o: Operand) -> Option<Result<Arc<[f32]>, TensorError>> {
    let Operand::Const(c) = o else { return None };
    match g.const_f32s(c) {
        Some(v) => Some(Ok(v)),
        None => Some(g.const_tensor(o)?.to_f32().map(Into::into)),
    }
}

/// The values of operand `o` as i64, as [`floats`].
pub(crate) fn ints(g: &Graph, o: Operand) -> Option<Result<Arc<[i64]>, TensorError>> {
    let Operand::Const(c) = o else { return None };
    match g.const_i64s(c) {
        Some(v) => Some(Ok(v)),
        None => Some(g.const_tensor(o)?.to_i64().map(Into::into)),
    }
}

/// Shows a list of parameters briefly: the value, or the first differing element.
pub(crate) fn first_difference<T: PartialEq + std::fmt::Display>(a: &[T], b: &[T]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} vs {} values", a.len(), b.len()));
    }
    let i = a.iter().zip(b).position(|(x, y)| x != y)?;
    Some(if a.len() == 1 { format!("{} vs {}", a[0], b[0]) } else { format!("at {i}: {} vs {}", a[i], b[i]) })
}

/// The values `(q − z)·s` (in f32, as DequantizeLinear computes them) of integer data `q` of shape
/// `dims` under the parameters `p`, per tensor or per axis.
pub(crate) fn dequantize(q: &[i64], dims: &[i64], p: &QParams) -> Result<Vec<f32>, Refusal> {
    let (len, inner) = channels(dims, p)?;
    Ok(q.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % len;
            (v - p.zero_point[c]) as f32 * p.scale[c]
        })
        .collect())
}

/// The values `(q − z)·s` of [`dequantize`] in f64: the real values a reference computes with.
pub(crate) fn dequantize_f64(q: &[i64], dims: &[i64], p: &QParams) -> Result<Vec<f64>, Refusal> {
    let (len, inner) = channels(dims, p)?;
    Ok(q.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % len;
            (v - p.zero_point[c]) as f64 * p.scale[c] as f64
        })
        .collect())
}

/// How many parameter channels and the elements per channel step.
fn channels(dims: &[i64], p: &QParams) -> Result<(usize, usize), Refusal> {
    match p.axis {
        None => Ok((1, 1)),
        Some(a) => {
            ensure!(
                dims.get(a) == Some(&(p.scale.len() as i64)),
                "{} scales for axis {a} of dims {dims:?}",
                p.scale.len()
            );
            let inner = dims[a + 1..].iter().try_fold(1i64, |n, &d| n.checked_mul(d));
            let inner =
                inner.ok_or_else(|| Refusal::new(format!("dims {dims:?} hold more elements than fit in 64 bits")))?;
            Ok((p.scale.len(), inner.max(1) as usize))
        }
    }
}

/// The tie tolerance, in output quantization steps ([`qdqc_eval::exactness`]).
pub(crate) use qdqc_eval::exactness::TIE;

/// QuantizeLinear of one value as onnxruntime computes it: `clamp(v / s, lo - z, hi - z)` (NaN to
/// the low end), rounded half to even, plus `z`.
pub(crate) fn quantize_one(v: f32, s: f32, z: i64, dtype: DType) -> Result<i64, Refusal> {
    let (lo, hi) = dtype.int_range().ok_or_else(|| Refusal::new(format!("{dtype} has no integer range")))?;
    let x = (v / s).max((lo - z) as f32).min((hi - z) as f32);
    Ok(x.round_ties_even() as i64 + z)
}

/// [`quantize_one`] of every value of `x` (of shape `dims`), per tensor or per axis.
pub(crate) fn quantize(x: &[f32], dims: &[i64], p: &QParams) -> Result<Vec<i64>, Refusal> {
    let (len, inner) = channels(dims, p)?;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % len;
            quantize_one(v, p.scale[c], p.zero_point[c], p.dtype)
        })
        .collect()
}

/// A scalar integer constant.
pub(crate) fn int_scalar(dtype: DType, v: i64) -> Tensor {
    Tensor::from_i64("", dtype, &[], &[v])
}

/// The scales are f32, finite and positive (`what` names them in the reason).
pub(crate) fn positive_f32_scales(p: &QParams, what: &str) -> Result<(), Refusal> {
    ensure!(p.scale_dtype == DType::F32, "the {what} scale is {}, not f32", p.scale_dtype);
    let bad = p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0));
    ensure!(bad.is_none(), "the {what} scale {} is not positive and finite", bad.unwrap());
    Ok(())
}

/// No matched node but the root is read outside the match (weight DQs aside: see
/// [`Match::interior_used_elsewhere`]); `what` names the node whose result is at stake.
pub(crate) fn interior_single_use(g: &Graph, m: &Match, what: impl FnOnce() -> String) -> Result<(), Refusal> {
    ensure!(!m.interior_used_elsewhere(g), "{} has other consumers", what());
    Ok(())
}

/// A bound of a Clip (`min` is input 1, `max` input 2; attributes before opset 11), `default`
/// when absent.
pub(crate) fn clip_bound(g: &Graph, clip: NodeId, i: usize, name: &str, default: f32) -> Result<f32, Refusal> {
    let node = g.node(clip);
    if g.opset() < 11 {
        return Ok(attr::float(&node.attrs, name).unwrap_or(default));
    }
    match node.input(i) {
        Operand::None => Ok(default),
        o => {
            let t = g.const_tensor(o).ok_or_else(|| Refusal::new(format!("the clip {name} is not a constant")))?;
            let v = t.to_f32().map_err(|e| Refusal::new(format!("clip {name}: {e}")))?;
            ensure!(v.len() == 1, "the clip {name} has {} elements", v.len());
            Ok(v[0])
        }
    }
}

/// A BatchNormalization computing its inference form: not in training mode, and its running
/// mean/var outputs unused.
pub(crate) fn bn_inference(g: &Graph, bn: NodeId) -> Result<(), Refusal> {
    ensure!(
        !attr::view::BatchNormalization::of(&g.node(bn).attrs).training_mode,
        "BatchNormalization is in training mode"
    );
    let extra = g.uses(bn).any(|(_, e)| e.slot != 0)
        || (1..g.node(bn).outputs.len() as u32).any(|s| g.is_output(Operand::Value(Outlet::new(bn, s))));
    ensure!(!extra, "BatchNormalization's running mean/var outputs are used");
    Ok(())
}

/// How a remark shows a quantization axis: `per tensor` or `axis N`.
pub(crate) fn axis_text(axis: Option<usize>) -> String {
    axis.map_or_else(|| "per tensor".to_string(), |a| format!("axis {a}"))
}
