//! QuantizeLinear/DequantizeLinear, the integer and QLinear ops (ONNX and com.microsoft), and
//! the quantization parameters ([`Quant`]) of integer values.

use super::dims::{self, R};
use super::nn::{self, show_dims};
use super::shape_ops::{common_dtype, concat_shape};
use super::{one, Ctx, OutputTypes};
use crate::dtype::DType;
use crate::graph::{ConstId, Dim, Graph, Node, Operand, Outlet, Quant};
use crate::op::Op;

/// A scale of this shape quantizes per tensor: a scalar, or onnxruntime's one-element vector.
fn per_tensor(scale: &[Dim]) -> bool {
    scale.is_empty() || (scale.len() == 1 && scale[0] == Dim::Known(1))
}

/// Checks the scale and zero point of a Q/DQ node (inputs 1 and 2) against its input 0:
/// same shapes; per-tensor, per-axis (1-D, one value per slice of `axis`) or blocked
/// (`block_size`: the input's rank, `ceil(size / block_size)` values along `axis`).
fn check_qparams(ctx: &Ctx) -> R<()> {
    // The usual case: constant per-tensor parameters, not blocked. Nothing to compare (and no
    // shape to build).
    let const_per_tensor = |i| ctx.const_dims(i).is_some_and(|d| d.len() <= 1 && d.iter().all(|&x| x == 1));
    if const_per_tensor(1) && (!ctx.has(2) || const_per_tensor(2)) && ctx.attr_int("block_size").unwrap_or(0) == 0 {
        return Ok(());
    }
    let (xs, ss) = (ctx.shape(0), ctx.shape(1));
    if let (Some(s), Some(z)) = (&ss, ctx.has(2).then(|| ctx.shape(2)).flatten()) {
        // onnxruntime's quantizer writes [1] scales with scalar zero points: both per tensor.
        let same = s.len() == z.len() && s.iter().zip(z.iter()).all(|(a, b)| dims::unify(a, b).is_some());
        let both_per_tensor = per_tensor(s) && per_tensor(&z);
        if !same && !both_per_tensor {
            return Err(format!("zero point has shape {} but scale has shape {}", show_dims(&z), show_dims(s)));
        }
    }
    let block = ctx.attr_int("block_size").unwrap_or(0);
    if block < 0 {
        return Err(format!("attribute block_size must not be negative, not {block}"));
    }
    let Some(ss) = ss else { return Ok(()) };
    let axis = ctx.attr_int("axis").unwrap_or(1);
    if block > 0 {
        if let Some(xs) = &xs {
            if ss.len() != xs.len() {
                return Err(format!("blocked quantization needs a scale of rank {}, not {}", xs.len(), ss.len()));
            }
            let a = dims::axis(axis, xs.len(), "axis")?;
            if let (Some(x), Some(s)) = (xs[a].known(), ss[a].known()) {
                let want = x / block + i64::from(x % block != 0);
                if s != want {
                    return Err(format!(
                        "scale has {s} blocks along axis {a} but size {x} in blocks of {block} needs {want}"
                    ));
                }
            }
        }
        return Ok(());
    }
    if per_tensor(&ss) {
        return Ok(());
    }
    if ss.len() != 1 {
        return Err(format!("scale must be a scalar or 1-D (or blocked), not of shape {}", show_dims(&ss)));
    }
    if let Some(xs) = &xs {
        let a = dims::axis(axis, xs.len(), "axis")?;
        if let (Some(x), Some(s)) = (xs[a].known(), ss[0].known()) {
            if x != s {
                return Err(format!("scale has {s} values but axis {a} of the input has size {x}"));
            }
        }
    }
    Ok(())
}

/// Output type: the zero point's type, else the `output_dtype` attribute (opset 21+), else u8.
pub(crate) fn quantize_linear(ctx: &Ctx) -> R<OutputTypes> {
    check_qparams(ctx)?;
    let from_attr = ctx.attr_dtype("output_dtype")?;
    let dtype = if ctx.has(2) {
        let z = ctx.dtype(2);
        if let (Some(z), Some(a)) = (z, from_attr) {
            if z != a {
                return Err(format!("zero point is {z} but output_dtype is {a}"));
            }
        }
        z.or(from_attr)
    } else {
        Some(from_attr.unwrap_or(DType::U8))
    };
    one(dtype, ctx.shape(0))
}

/// Output type: the `output_dtype` attribute (opset 23+) if given, else the scale's type.
pub(crate) fn dequantize_linear(ctx: &Ctx) -> R<OutputTypes> {
    check_qparams(ctx)?;
    if let (Some(x), Some(z)) = (ctx.dtype(0), ctx.dtype(2)) {
        if x != z {
            return Err(format!("input is {x} but its zero point is {z}"));
        }
    }
    let dtype = ctx.attr_dtype("output_dtype")?.or(ctx.dtype(1));
    one(dtype, ctx.shape(0))
}

/// The type of a quantized output: that of its zero point `zp` when given, else of input `x`.
fn out_dtype(ctx: &Ctx, zp: usize, x: usize) -> Option<DType> {
    if ctx.has(zp) {
        ctx.dtype(zp)
    } else {
        ctx.dtype(x)
    }
}

/// The integer ops: QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger and the
/// com.microsoft QLinear ops and QGemm.
pub(crate) fn qlinear(ctx: &Ctx) -> R<OutputTypes> {
    let channels_last = ctx.attr_int("channels_last").unwrap_or(0) != 0;
    match ctx.node.op {
        // x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, [B]
        Op::QLinearConv => {
            let shape = nn::conv_shape(ctx, 0, 3, Some(8))?;
            one(out_dtype(ctx, 7, 0), shape)
        }
        // a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp
        Op::QLinearMatMul => one(out_dtype(ctx, 7, 0), nn::matmul_shape(ctx, 0, 3)?),
        // x, w, [x_zp], [w_zp]
        Op::ConvInteger => one(Some(DType::I32), nn::conv_shape(ctx, 0, 1, None)?),
        Op::MatMulInteger => one(Some(DType::I32), nn::matmul_shape(ctx, 0, 1)?),
        // A, A_scale, [A_zp], B, B_scale, [B_zp], C_scale, [C_zp]
        Op::QLinearAdd | Op::QLinearMul => {
            let dtype = nn::same_dtype(ctx, 0, 3)?;
            let shape = match (ctx.shape(0), ctx.shape(3)) {
                (Some(a), Some(b)) => Some(dims::broadcast(&[&a, &b])?),
                _ => None,
            };
            one(dtype.or(ctx.dtype(7)), shape)
        }
        // X, x_scale, x_zp, y_scale, y_zp
        Op::QLinearGlobalAveragePool => {
            one(ctx.dtype(0).or(ctx.dtype(4)), nn::global_pool_shape(ctx.shape(0).as_deref(), channels_last)?)
        }
        Op::QLinearAveragePool => {
            one(ctx.dtype(0).or(ctx.dtype(4)), nn::pool_shape(ctx, ctx.shape(0).as_deref(), channels_last)?)
        }
        // Y_scale, Y_zp, then (X, X_scale, X_zp) per input
        Op::QLinearConcat => {
            let n = ctx.n_inputs();
            if (n - 2) % 3 != 0 {
                return Err(format!(
                    "inputs after Y_scale and Y_zero_point must be (X, scale, zero point) triples, got {}",
                    n - 2
                ));
            }
            let parts: Vec<usize> = (2..n).step_by(3).collect();
            let dtype = common_dtype(ctx, &parts)?;
            one(ctx.dtype(1).or(dtype), concat_shape(ctx, &parts)?)
        }
        // A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale], [y_zp]: float output without y_zp.
        Op::QGemm => {
            let dtype = if ctx.has(8) { ctx.dtype(8) } else { Some(DType::F32) };
            one(dtype, nn::gemm_shape(ctx, 0, 3, Some(6))?)
        }
        // X, X_scale, [X_zp], Y_scale, [Y_zp]
        Op::QLinearSigmoid | Op::QLinearLeakyRelu | Op::QLinearSoftmax => {
            let shape = ctx.shape(0);
            if ctx.node.op == Op::QLinearSoftmax {
                if let (Some(s), Some(a)) = (&shape, ctx.attr_int("axis")) {
                    dims::axis(a, s.len(), "axis")?;
                }
            }
            one(ctx.dtype(0).or(ctx.dtype(4)), shape)
        }
        _ => unreachable!("not an integer op: {}", ctx.node.op),
    }
}

/// Quantization parameters from a scale and zero-point operand, when both are constants (or
/// the zero point is omitted). `axis` is kept for non-scalar scales (and blocked ones),
/// normalized when the rank is known.
fn quant_from(
    g: &Graph,
    scale: Operand,
    zp: Operand,
    axis: i64,
    block: Option<i64>,
    rank: Option<usize>,
) -> Option<Quant> {
    let Operand::Const(s) = scale else {
        return None;
    };
    let zero_point = match zp {
        Operand::Const(z) => Some(z),
        Operand::None => None,
        Operand::Value(_) => return None,
    };
    let dims = &g.constant(s).tensor()?.proto.dims;
    let scalar = dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d)) == Some(1);
    let axis = (block.is_some() || !scalar).then(|| match rank {
        Some(r) => dims::axis(axis, r, "axis").map_or(axis, |a| a as i64),
        None => axis,
    });
    Some(Quant { scale: s, zero_point, axis, block_size: block })
}

/// The quantization parameters of a node's first output: a QuantizeLinear's, or the output
/// scale and zero point of a QLinear op. The caller keeps them only on integer values.
pub(crate) fn output_quant(g: &Graph, node: &Node) -> Option<Quant> {
    let out_rank = node.outputs.first().and_then(|v| v.ty.as_ref()).and_then(|t| t.rank());
    let (scale, zp, default_axis) = match node.op {
        Op::QuantizeLinear => {
            let block = crate::attr::int(&node.attrs, "block_size").filter(|&b| b > 0);
            let axis = crate::attr::int(&node.attrs, "axis").unwrap_or(1);
            return quant_from(g, node.input(1), node.input(2), axis, block, g.operand_rank(node.input(0)));
        }
        Op::QLinearConv => (6, 7, 1),
        Op::QLinearMatMul => (6, 7, -1),
        Op::QLinearAdd | Op::QLinearMul => (6, 7, 1),
        Op::QLinearGlobalAveragePool | Op::QLinearAveragePool => (3, 4, 1),
        Op::QLinearSigmoid | Op::QLinearLeakyRelu | Op::QLinearSoftmax => (3, 4, 1),
        Op::QLinearConcat => (0, 1, 1),
        Op::QGemm if node.input(7) != Operand::None => (7, 8, -1),
        // Data movement (and integer Relu/Clip: Max/Min/Clip against constants) of a value
        // quantized per tensor keeps its parameters.
        Op::MaxPool
        | Op::Reshape
        | Op::Flatten
        | Op::Transpose
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Slice
        | Op::Gather
        | Op::Split
        | Op::Pad
        | Op::Resize
        | Op::DepthToSpace
        | Op::SpaceToDepth
        | Op::Expand
        | Op::Tile
        | Op::Identity
        | Op::GlobalMaxPool
        | Op::ReduceMax
        | Op::ReduceMin
        | Op::Max
        | Op::Min
        | Op::Clip
        | Op::Concat => return moved_quant(g, node),
        _ => return None,
    };
    quant_from(g, node.input(scale), node.input(zp), default_axis, None, out_rank)
}

/// The parameters of a data-movement op's first input when it is a value quantized per tensor;
/// for Concat and Max/Min, every input that is a value must have the same parameters.
fn moved_quant(g: &Graph, node: &Node) -> Option<Quant> {
    let quant_of = |op: Operand| match op {
        Operand::Value(o) => g.value(o).quant.clone(),
        _ => None,
    };
    let q = quant_of(node.input(0))?;
    if q.axis.is_some() || q.block_size.is_some() {
        return None;
    }
    if matches!(node.op, Op::Concat | Op::Max | Op::Min) {
        let all_same = node.inputs().iter().all(|&i| match i {
            Operand::Value(_) => quant_of(i).is_some_and(|p| same_params(g, &p, &q)),
            _ => !matches!(node.op, Op::Concat),
        });
        if !all_same {
            return None;
        }
    }
    Some(q)
}

/// Whether two annotations give the same parameters: the same constants, or constants of the
/// same type and values (a pass may make an equal zero point for each value it retypes).
pub(crate) fn same_params(g: &Graph, a: &Quant, b: &Quant) -> bool {
    if a == b {
        return true;
    }
    let same_const = |x: ConstId, y: ConstId| {
        x == y
            || (g.constant(x).dtype() == g.constant(y).dtype()
                && g.constant(x).dims() == g.constant(y).dims()
                && match (g.const_i64s(x), g.const_i64s(y)) {
                    (Some(p), Some(q)) if g.constant(x).dtype().is_some_and(|d| d.is_int()) => p == q,
                    _ => match (g.const_f32s(x), g.const_f32s(y)) {
                        (Some(p), Some(q)) => p.iter().map(|v| v.to_bits()).eq(q.iter().map(|v| v.to_bits())),
                        _ => false,
                    },
                })
    };
    a.axis == b.axis
        && a.block_size == b.block_size
        && same_const(a.scale, b.scale)
        && match (a.zero_point, b.zero_point) {
            (None, None) => true,
            (Some(x), Some(y)) => same_const(x, y),
            _ => false,
        }
}

/// For a DequantizeLinear reading an integer value: that value and the parameters it is
/// dequantized with (the caller sets them when the value has none yet).
pub(crate) fn dequantized_input_quant(g: &Graph, node: &Node) -> Option<(Outlet, Quant)> {
    if node.op != Op::DequantizeLinear {
        return None;
    }
    let Operand::Value(x) = node.input(0) else {
        return None;
    };
    // The element type: the value's, else its zero point's; with neither it is taken as integer.
    let dtype = g.operand_dtype(node.input(0)).or_else(|| g.operand_dtype(node.input(2)));
    if dtype.is_some_and(|d| !d.is_int()) {
        return None;
    }
    let block = crate::attr::int(&node.attrs, "block_size").filter(|&b| b > 0);
    let axis = crate::attr::int(&node.attrs, "axis").unwrap_or(1);
    let rank = g.value(x).ty.as_ref().and_then(|t| t.rank());
    quant_from(g, node.input(1), node.input(2), axis, block, rank).map(|q| (x, q))
}

#[cfg(test)]
mod tests {
    use crate::attr::{make_int, make_ints};
    use crate::builder::GraphBuilder;
    use crate::dtype::DType;
    use crate::graph::{Graph, Operand, Quant};
    use crate::infer::show;
    use crate::op::Op;

    fn ty(g: &Graph, o: Operand) -> String {
        show(g.operand_type(o).as_ref())
    }

    fn quant(g: &Graph, o: Operand) -> Option<Quant> {
        let Operand::Value(o) = o else { panic!("not a value") };
        g.value(o).quant.clone()
    }

    fn cid(o: Operand) -> crate::ConstId {
        let Operand::Const(c) = o else { panic!("not a constant") };
        c
    }

    #[test]
    fn quantize_output_types() {
        let mut b = GraphBuilder::new(21);
        let x = b.input("x", DType::F32, &["N", "3", "8", "8"]);
        let s = b.scalar_f32("s", 0.02);
        let zu = b.scalar("zu", DType::U8, 128);
        let zi = b.scalar("zi", DType::I8, 0);
        let q_u8 = b.node(Op::QuantizeLinear, &[x, s, zu]).out1();
        let q_i8 = b.node(Op::QuantizeLinear, &[x, s, zi]).out1();
        let q_def = b.node(Op::QuantizeLinear, &[x, s]).out1();
        let q_attr =
            b.node(Op::QuantizeLinear, &[x, s]).attr(make_int("output_dtype", DType::I4.to_onnx() as i64)).out1();
        let q_f8 =
            b.node(Op::QuantizeLinear, &[x, s]).attr(make_int("output_dtype", DType::F8E4M3FN.to_onnx() as i64)).out1();
        for o in [q_u8, q_i8, q_def, q_attr, q_f8] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, q_u8), "u8[N,3,8,8]");
        assert_eq!(ty(&g, q_i8), "i8[N,3,8,8]");
        assert_eq!(ty(&g, q_def), "u8[N,3,8,8]");
        assert_eq!(ty(&g, q_attr), "i4[N,3,8,8]");
        assert_eq!(ty(&g, q_f8), "f8e4m3fn[N,3,8,8]");
        // Per-tensor: no axis. Float8 outputs carry no quant.
        assert_eq!(
            quant(&g, q_u8),
            Some(Quant { scale: cid(s), zero_point: Some(cid(zu)), axis: None, block_size: None })
        );
        assert_eq!(quant(&g, q_def), Some(Quant { scale: cid(s), zero_point: None, axis: None, block_size: None }));
        assert_eq!(quant(&g, q_f8), None);

        let mut b = GraphBuilder::new(21);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let s = b.scalar_f32("s", 0.02);
        let z = b.scalar("z", DType::U8, 0);
        let q = b
            .node(Op::QuantizeLinear, &[x, s, z])
            .name("q")
            .attr(make_int("output_dtype", DType::I8.to_onnx() as i64))
            .out1();
        b.output(q);
        assert!(b.finish().unwrap_err().to_string().contains("zero point is u8 but output_dtype is i8"));
    }

    #[test]
    fn per_axis_and_blocked_quant() {
        let mut b = GraphBuilder::new(21);
        let w = b.input("w", DType::F32, &["16", "3", "3", "3"]);
        let s = b.const_f32("s", &[16], &[0.1; 16]);
        let z = b.const_i64("z", DType::I8, &[16], &[0; 16]);
        let q0 = b.node(Op::QuantizeLinear, &[w, s, z]).attr(make_int("axis", 0)).out1();
        let x = b.input("x", DType::F32, &["N", "16", "4"]);
        let q1 = b.node(Op::QuantizeLinear, &[x, s, z]).out1();
        let q2 = b.node(Op::QuantizeLinear, &[x, s, z]).attr(make_int("axis", -2)).out1();
        let m = b.input("m", DType::F32, &["4", "64"]);
        let bs = b.const_f32("bs", &[4, 2], &[0.1; 8]);
        let q3 = b
            .node(Op::QuantizeLinear, &[m, bs])
            .attrs(vec![
                make_int("axis", 1),
                make_int("block_size", 32),
                make_int("output_dtype", DType::I4.to_onnx() as i64),
            ])
            .out1();
        let d3 =
            b.node(Op::DequantizeLinear, &[q3, bs]).attrs(vec![make_int("axis", 1), make_int("block_size", 32)]).out1();
        for o in [q0, q1, q2, q3, d3] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(quant(&g, q0).unwrap().axis, Some(0));
        assert_eq!(quant(&g, q1).unwrap().axis, Some(1));
        assert_eq!(quant(&g, q2).unwrap().axis, Some(1));
        assert_eq!(
            quant(&g, q3),
            Some(Quant { scale: cid(bs), zero_point: None, axis: Some(1), block_size: Some(32) })
        );
        assert_eq!(ty(&g, d3), "f32[4,64]");

        let err = |opset: i64, xs: &[&str], sdims: &[i64], attrs: Vec<crate::proto::AttributeProto>| {
            let mut b = GraphBuilder::new(opset);
            let x = b.input("x", DType::F32, xs);
            let n: i64 = sdims.iter().product();
            let s = b.const_f32("s", sdims, &vec![0.1; n as usize]);
            let q = b.node(Op::QuantizeLinear, &[x, s]).attrs(attrs).out1();
            b.output(q);
            b.finish().unwrap_err().to_string()
        };
        assert!(err(13, &["N", "16"], &[8], vec![]).contains("scale has 8 values but axis 1 of the input has size 16"));
        assert!(err(13, &["N", "16"], &[16], vec![make_int("axis", 2)]).contains("axis 2 is out of range for rank 2"));
        assert!(err(13, &["N", "16"], &[2, 8], vec![]).contains("scale must be a scalar or 1-D"));
        assert!(err(21, &["4", "64"], &[4, 3], vec![make_int("block_size", 32)])
            .contains("scale has 3 blocks along axis 1"));
        assert!(err(21, &["4", "64"], &[4], vec![make_int("block_size", 32)]).contains("needs a scale of rank 2"));
    }

    #[test]
    fn dequantize_output_types_and_input_quant() {
        let mut b = GraphBuilder::new(23);
        let x = b.input("x", DType::U8, &["N", "3"]);
        let s = b.scalar_f32("s", 0.5);
        let z = b.scalar("z", DType::U8, 128);
        let d = b.node(Op::DequantizeLinear, &[x, s, z]).out1();
        let s16 = b.tensor("s16", crate::tensor::Tensor::from_raw("", DType::F16, &[], vec![0, 0x38].into()));
        let d16 = b.node(Op::DequantizeLinear, &[x, s16, z]).out1();
        let dattr = b
            .node(Op::DequantizeLinear, &[x, s, z])
            .attr(make_int("output_dtype", DType::BF16.to_onnx() as i64))
            .out1();
        let bias = b.const_i64("bias", DType::I32, &[3], &[1, 2, 3]);
        let sb = b.const_f32("sb", &[3], &[0.1, 0.2, 0.3]);
        let db = b.node(Op::DequantizeLinear, &[bias, sb]).attr(make_int("axis", 0)).out1();
        for o in [d, d16, dattr, db] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, d), "f32[N,3]");
        assert_eq!(ty(&g, d16), "f16[N,3]");
        assert_eq!(ty(&g, dattr), "bf16[N,3]");
        assert_eq!(ty(&g, db), "f32[3]");
        // The graph input gets the parameters of the first DequantizeLinear reading it.
        assert_eq!(quant(&g, x), Some(Quant { scale: cid(s), zero_point: Some(cid(z)), axis: None, block_size: None }));
        assert_eq!(quant(&g, d), None);

        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::I8, &["N", "3"]);
        let s = b.scalar_f32("s", 0.5);
        let z = b.scalar("z", DType::U8, 128);
        let d = b.node(Op::DequantizeLinear, &[x, s, z]).out1();
        b.output(d);
        assert!(b.finish().unwrap_err().to_string().contains("input is i8 but its zero point is u8"));
    }

    #[test]
    fn unknown_op_output_read_by_dequantize_gets_quant() {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let u = b.node(Op::other("com.example", "Quant8"), &[x]).out1();
        let s = b.const_f32("s", &[3], &[0.1, 0.2, 0.3]);
        let z = b.const_i64("z", DType::I8, &[3], &[0; 3]);
        let d = b.node(Op::DequantizeLinear, &[u, s, z]).attr(make_int("axis", -1)).out1();
        // A float value read by DequantizeLinear (float8 input) gets nothing.
        let f = b.input("f", DType::F8E4M3FN, &["4"]);
        let sf = b.scalar_f32("sf", 1.0);
        let df = b.node(Op::DequantizeLinear, &[f, sf]).out1();
        b.output(d);
        b.output(df);
        let g = b.finish().unwrap();
        // The untyped value's rank is unknown: the axis stays as written.
        assert_eq!(
            quant(&g, u),
            Some(Quant { scale: cid(s), zero_point: Some(cid(z)), axis: Some(-1), block_size: None })
        );
        assert_eq!(quant(&g, f), None);
        assert_eq!(ty(&g, d), "f32[*]");
    }

    /// The com.microsoft/ONNX QLinear ops: shapes, types and output quant.
    #[test]
    fn qlinear_conv_and_matmul() {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::U8, &["N", "3", "8", "8"]);
        let xs = b.scalar_f32("xs", 0.1);
        let xz = b.scalar("xz", DType::U8, 128);
        let w = b.const_i64("w", DType::I8, &[4, 3, 3, 3], &[0; 108]);
        let ws = b.const_f32("ws", &[4], &[0.1; 4]);
        let wz = b.const_i64("wz", DType::I8, &[4], &[0; 4]);
        let ys = b.scalar_f32("ys", 0.2);
        let yz = b.scalar("yz", DType::U8, 100);
        let bias = b.const_i64("bias", DType::I32, &[4], &[0; 4]);
        let c = b
            .node(Op::QLinearConv, &[x, xs, xz, w, ws, wz, ys, yz, bias])
            .attr(make_ints("pads", &[1, 1, 1, 1]))
            .out1();
        let ci = b.node(Op::ConvInteger, &[x, w, xz]).out1();
        let a = b.input("a", DType::I8, &["N", "16", "64"]);
        let az = b.scalar("az", DType::I8, 0);
        let m = b.const_i64("m", DType::I8, &[64, 32], &[0; 64 * 32]);
        let mz = b.scalar("mz", DType::I8, 0);
        let mm = b.node(Op::QLinearMatMul, &[a, xs, az, m, xs, mz, ys, az]).out1();
        let mi = b.node(Op::MatMulInteger, &[a, m]).out1();
        for o in [c, ci, mm, mi] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, c), "u8[N,4,8,8]");
        assert_eq!(ty(&g, ci), "i32[N,4,6,6]");
        assert_eq!(ty(&g, mm), "i8[N,16,32]");
        assert_eq!(ty(&g, mi), "i32[N,16,32]");
        assert_eq!(
            quant(&g, c),
            Some(Quant { scale: cid(ys), zero_point: Some(cid(yz)), axis: None, block_size: None })
        );
        assert_eq!(quant(&g, ci), None);
        assert_eq!(quant(&g, mm).unwrap().zero_point, Some(cid(az)));
    }

    #[test]
    fn microsoft_qlinear_ops() {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::U8, &["N", "8", "7", "7"]);
        let nhwc = b.input("nhwc", DType::U8, &["N", "7", "7", "8"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 128);
        let c = b.const_i64("c", DType::U8, &[8, 1, 1], &[0; 8]);
        let add = b.node(Op::QLinearAdd, &[x, s, z, c, s, z, s, z]).out1();
        let mul = b.node(Op::QLinearMul, &[x, s, Operand::None, c, s, Operand::None, s]).out1();
        let gap = b.node(Op::QLinearGlobalAveragePool, &[x, s, z, s, z]).out1();
        let gap_nhwc =
            b.node(Op::QLinearGlobalAveragePool, &[nhwc, s, z, s, z]).attr(make_int("channels_last", 1)).out1();
        let k = || vec![make_ints("kernel_shape", &[3, 3]), make_ints("strides", &[2, 2])];
        let ap = b.node(Op::QLinearAveragePool, &[x, s, z, s, z]).attrs(k()).out1();
        let mut attrs = k();
        attrs.push(make_int("channels_last", 1));
        let ap_nhwc = b.node(Op::QLinearAveragePool, &[nhwc, s, z, s, z]).attrs(attrs).out1();
        let cat = b.node(Op::QLinearConcat, &[s, z, x, s, z, x, s, z]).attr(make_int("axis", 1)).out1();
        let sig = b.node(Op::QLinearSigmoid, &[x, s, z, s, z]).out1();
        let lrelu = b.node(Op::QLinearLeakyRelu, &[x, s, z, s, z]).out1();
        let sm = b.node(Op::QLinearSoftmax, &[x, s, z, s, z]).attr(make_int("axis", -1)).out1();
        for o in [add, mul, gap, gap_nhwc, ap, ap_nhwc, cat, sig, lrelu, sm] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, add), "u8[N,8,7,7]");
        assert_eq!(ty(&g, mul), "u8[N,8,7,7]");
        assert_eq!(ty(&g, gap), "u8[N,8,1,1]");
        assert_eq!(ty(&g, gap_nhwc), "u8[N,1,1,8]");
        assert_eq!(ty(&g, ap), "u8[N,8,3,3]");
        assert_eq!(ty(&g, ap_nhwc), "u8[N,3,3,8]");
        assert_eq!(ty(&g, cat), "u8[N,16,7,7]");
        for o in [sig, lrelu, sm] {
            assert_eq!(ty(&g, o), "u8[N,8,7,7]");
        }
        for o in [add, gap, ap, cat, sig] {
            assert_eq!(
                quant(&g, o),
                Some(Quant { scale: cid(s), zero_point: Some(cid(z)), axis: None, block_size: None }),
                "{o:?}"
            );
        }
        assert_eq!(quant(&g, mul).unwrap().zero_point, None);
        let n = g.node(match add {
            Operand::Value(o) => o.node,
            _ => unreachable!(),
        });
        assert_eq!(n.domain(), Some("com.microsoft"));

        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::U8, &["N", "8"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 128);
        let y = b.node(Op::QLinearConcat, &[s, z, x, s]).attr(make_int("axis", 1)).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("has 4 inputs, expected at least 5"));
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::U8, &["N", "8"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 128);
        let y = b.node(Op::QLinearConcat, &[s, z, x, s, z, x]).attr(make_int("axis", 1)).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("triples"));
    }

    #[test]
    fn qgemm_float_and_quantized_outputs() {
        let mut b = GraphBuilder::new(13);
        let a = b.input("a", DType::U8, &["N", "16"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 128);
        let w = b.const_i64("w", DType::I8, &[10, 16], &[0; 160]);
        let wz = b.scalar("wz", DType::I8, 0);
        let c = b.const_i64("c", DType::I32, &[10], &[0; 10]);
        let yf = b.node(Op::QGemm, &[a, s, z, w, s, wz, c]).attr(make_int("transB", 1)).out1();
        let yq = b.node(Op::QGemm, &[a, s, z, w, s, wz, c, s, z]).attr(make_int("transB", 1)).out1();
        b.output(yf);
        b.output(yq);
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, yf), "f32[N,10]");
        assert_eq!(ty(&g, yq), "u8[N,10]");
        assert_eq!(quant(&g, yf), None);
        assert_eq!(quant(&g, yq).unwrap().scale, cid(s));
    }

    /// A pass may give each value it retypes a zero point of its own: a Concat of values whose
    /// parameters are equal constants, not the same constant, still keeps them.
    #[test]
    fn concat_of_equal_parameters_in_distinct_constants_keeps_them() {
        let g = crate::text::parse(
            "graph {
  input %x: f32[1,2]
  const %s: f32[] 0.5
  const %z1: u8[] 128
  const %z2: u8[] 128
  const %z3: u8[] 127
  %a = QuantizeLinear(%x, %s, %z1)
  %b = QuantizeLinear(%x, %s, %z2)
  %c = QuantizeLinear(%x, %s, %z3)
  %ab = Concat[axis=1](%a, %b)
  %ac = Concat[axis=1](%a, %c)
  output %ab
  output %ac
}
",
        )
        .unwrap();
        let q = |name: &str| match g.lookup(name) {
            Some(Operand::Value(o)) => g.value(o).quant.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(q("ab"), q("a"), "equal values, distinct constants");
        assert_eq!(q("ac"), None, "different zero points");
    }
}
