//! The quantization parameters of a QuantizeLinear or DequantizeLinear node, read by value from
//! its constant inputs, for rules to compare and compute with.

use crate::ensure;
use crate::rule::Refusal;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, TensorError};
use std::sync::Arc;

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
    .ok_or_else(|| Refusal(format!("integer type of {} is unknown", who())))?;
    if attr::int(&node.attrs, "block_size").unwrap_or(0) > 0 {
        return Err(Refusal(format!("{} uses blocked quantization", who())));
    }
    let scale_t = graph
        .const_tensor(node.input(1))
        .ok_or_else(|| Refusal(format!("scale of {} is not a constant with known data", who())))?;
    let scale_dtype = scale_t.dtype().map_err(|e| Refusal(e.to_string()))?;
    let scale = floats(graph, node.input(1))
        .ok_or_else(|| Refusal(format!("scale of {} is not a constant with known data", who())))?
        .map_err(|e| Refusal(format!("scale of {}: {e}", who())))?;
    let zero_point = match node.input(2) {
        Operand::None => vec![0; scale.len()].into(),
        z => ints(graph, z)
            .ok_or_else(|| Refusal(format!("zero point of {} is not a constant with known data", who())))?
            .map_err(|e| Refusal(format!("zero point of {}: {e}", who())))?,
    };
    if zero_point.len() != scale.len() {
        return Err(Refusal(format!("{}: {} scales but {} zero points", who(), scale.len(), zero_point.len())));
    }
    let per_tensor = scale_t.dims().iter().all(|&d| d == 1) && scale.len() == 1;
    let axis = if per_tensor {
        None
    } else {
        let rank = graph
            .operand_type(node.input(0))
            .and_then(|t| t.rank())
            .ok_or_else(|| Refusal(format!("{} is per-axis but its input's rank is unknown", who())))?;
        let a = attr::int(&node.attrs, "axis").unwrap_or(1);
        let a = if a < 0 { a + rank as i64 } else { a };
        if a < 0 || a >= rank as i64 {
            return Err(Refusal(format!("{}: axis {a} is out of range", who())));
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
            Ok((p.scale.len(), dims[a + 1..].iter().product::<i64>().max(1) as usize))
        }
    }
}
