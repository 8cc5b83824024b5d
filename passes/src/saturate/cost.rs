//! The cost model that extraction minimizes and the differential tests compare: an estimate of
//! the work per inference, in integer multiply-accumulates.
//!
//! | what | cost |
//! |---|---|
//! | float Conv, ConvTranspose, MatMul, Gemm | [`FLOAT_MAC`] per multiply-accumulate |
//! | QLinearConv, QLinearMatMul, QGemm, ConvInteger, MatMulInteger | [`INT_MAC`] per MAC, plus [`REQUANT`] per output element |
//! | QuantizeLinear, DequantizeLinear | [`QDQ`] per element |
//! | other float ops | [`FLOAT_ELEM`] per output element |
//! | other integer ops (data movement, Max/Clip, QLinearAdd, ...) | [`INT_ELEM`] per output element |
//! | Identity | [`IDENTITY`] per element (a copy) |
//! | constants, graph inputs | 0 |
//!
//! Unknown and symbolic dims count as 1. MACs are the output elements times the reduction
//! length (the weight's elements per output channel for a convolution, `K` for a matrix product).

use qdqc_ir::{Dim, Op, TensorType};

pub const FLOAT_MAC: f64 = 4.0;
pub const INT_MAC: f64 = 1.0;
pub const REQUANT: f64 = 1.0;
pub const QDQ: f64 = 2.0;
pub const FLOAT_ELEM: f64 = 1.0;
pub const INT_ELEM: f64 = 0.5;
pub const IDENTITY: f64 = 0.25;

fn elems(t: Option<&TensorType>) -> f64 {
    let Some(shape) = t.and_then(|t| t.shape.as_ref()) else { return 1.0 };
    shape
        .iter()
        .map(|d| match d {
            Dim::Known(v) => (*v).max(1) as f64,
            _ => 1.0,
        })
        .product()
}

fn dim(t: Option<&TensorType>, i: isize) -> f64 {
    let Some(shape) = t.and_then(|t| t.shape.as_ref()) else { return 1.0 };
    let i = if i < 0 { shape.len() as isize + i } else { i };
    match usize::try_from(i).ok().and_then(|i| shape.get(i)) {
        Some(Dim::Known(v)) => (*v).max(1) as f64,
        _ => 1.0,
    }
}

/// The cost of one node given its input and output types.
pub fn node_cost(op: &Op, inputs: &[Option<&TensorType>], outputs: &[Option<&TensorType>]) -> f64 {
    let input = |i: usize| inputs.get(i).copied().flatten();
    let out = outputs.first().copied().flatten();
    let is_float = out.is_some_and(|t| t.dtype.is_float());
    // Reduction length per output element: weight elements per output channel, or K.
    let per_channel = |w: Option<&TensorType>| elems(w) / dim(w, 0);
    let name = op.name();
    match name {
        "Conv" | "ConvTranspose" => elems(out) * per_channel(input(1)) * FLOAT_MAC,
        "MatMul" | "Gemm" => elems(out) * dim(input(0), -1) * FLOAT_MAC,
        "QLinearConv" => elems(out) * (per_channel(input(3)) * INT_MAC + REQUANT),
        "ConvInteger" => elems(out) * per_channel(input(1)) * INT_MAC,
        "QLinearMatMul" | "QGemm" | "MatMulInteger" => elems(out) * (dim(input(0), -1) * INT_MAC + REQUANT),
        "QuantizeLinear" | "DequantizeLinear" => elems(out) * QDQ,
        "Identity" => elems(out) * IDENTITY,
        _ if matches!(op, Op::Input) => 0.0,
        _ => {
            let n: f64 = outputs.iter().map(|t| elems(*t)).sum::<f64>().max(1.0);
            n * if is_float { FLOAT_ELEM } else { INT_ELEM }
        }
    }
}

/// The cost of a graph: the sum of its nodes' costs.
pub fn graph_cost(graph: &qdqc_ir::Graph) -> f64 {
    graph
        .node_ids()
        .map(|id| {
            let n = graph.node(id);
            let ins: Vec<Option<TensorType>> = n.inputs().iter().map(|&o| graph.operand_type(o)).collect();
            let ins: Vec<Option<&TensorType>> = ins.iter().map(Option::as_ref).collect();
            let outs: Vec<Option<&TensorType>> = n.outputs.iter().map(|v| v.ty.as_ref()).collect();
            node_cost(&n.op, &ins, &outs)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_ir::DType;

    #[test]
    fn float_convolution_costs_more_than_its_integer_form() {
        let x = TensorType::known(DType::F32, &[1, 8, 16, 16]);
        let w = TensorType::known(DType::F32, &[8, 8, 3, 3]);
        let y = TensorType::known(DType::F32, &[1, 8, 16, 16]);
        let (xq, wq, yq) = (
            TensorType::known(DType::U8, &[1, 8, 16, 16]),
            TensorType::known(DType::I8, &[8, 8, 3, 3]),
            TensorType::known(DType::U8, &[1, 8, 16, 16]),
        );
        let float = node_cost(&Op::Conv, &[Some(&x), Some(&w)], &[Some(&y)])
            + node_cost(&Op::DequantizeLinear, &[Some(&xq)], &[Some(&x)])
            + node_cost(&Op::QuantizeLinear, &[Some(&y)], &[Some(&yq)]);
        let s = TensorType::known(DType::F32, &[]);
        let int = node_cost(
            &Op::QLinearConv,
            &[Some(&xq), Some(&s), Some(&s), Some(&wq), Some(&s), Some(&s), Some(&s), Some(&s)],
            &[Some(&yq)],
        );
        assert_eq!(int, 2048.0 * (72.0 + 1.0));
        assert!(float > 3.0 * int);
    }
}
