//! `qbn-as-depthwise-conv`: a BatchNormalization that the quantizer wrapped in DQ→BN→Q (what
//! onnxruntime's quantizer writes for a BN it could not fold: Conv → Q → DQ → BN → Q) becomes an
//! integer depthwise 1×1 QLinearConv — a standard op, so for every target.
//!
//! With `f = γ/√(var+ε)` and `o = β − mean·f` per channel, the BN is `y = f·x + o`. The
//! QLinearConv has one int8 weight per channel, `w = ±127` (the sign of `f`) with the per-channel
//! weight scale `s_w = |f|/127`, so `w·s_w = f`; and the int32 bias `round(o / (s_x·s_w))`,
//! whose step is 127× finer than the input's step scaled by `f`. The accumulation is exact in
//! integers; the result rounds once, to the output's step, as the BN → Q did. (A channel with
//! `f = 0` gets weight 0 and the bias alone, at a step of 1/127 of the output's.)
//!
//! Folding such a BN into the conv before it instead (`fold-bn-qdq`, not in `-O2`) would drop the
//! conv's own rounding step and move the outputs by several steps against the QDQ model.

use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, Refusal, Rule};
use crate::rules::bn_fold::Bn;
use crate::rules::common::{self, QParams};
use qdqc_ir::{attr, DType, Graph, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![Rule::new(
        "qbn-as-depthwise-conv",
        "(QuantizeLinear (BatchNormalization@bn (DequantizeLinear@dq ?x ?xs ?xz) ?gamma ?beta ?mean ?var) ?ys ?yz)",
        qbn_fits,
        build,
    )
    .approx("bn-as-conv")]
}

/// What the build reads: the input's and output's parameters, the BN's, and the channel count
/// and rank.
struct Qbn {
    x: QParams,
    y: QParams,
    bn: Bn,
    c: usize,
    rank: usize,
}

fn qbn_fits(g: &Graph, m: &Match) -> Result<Qbn, Refusal> {
    let bn = m.node("bn");
    let training = attr::view::BatchNormalization::of(&g.node(bn).attrs).training_mode;
    ensure!(!training, "BatchNormalization is in training mode");
    let out = Operand::Value(Outlet::new(bn, 0));
    let other_uses = g.uses(bn).count() != 1 || g.is_output(out);
    ensure!(!other_uses, "the BatchNormalization's float output is also used elsewhere");
    common::bn_inference(g, bn)?;
    let (x, y) = (common::of_node(g, m.node("dq"))?, common::of_node(g, m.root())?);
    ensure!(x.axis.is_none() && y.axis.is_none(), "the input or output is quantized per axis");
    ensure!(
        matches!(x.dtype, DType::U8 | DType::I8) && x.dtype == y.dtype,
        "QLinearConv needs the same 8-bit type in and out, not {} → {}",
        x.dtype,
        y.dtype
    );
    for s in [x.scale[0], y.scale[0]] {
        ensure!(s.is_finite() && s > 0.0, "scale {s} is not positive and finite");
    }
    let (c, rank) = channel_count(g, m)?;
    let b = Bn::read(g, bn, m)?;
    for (name, v) in [("scale", &b.gamma), ("bias", &b.beta), ("mean", &b.mean), ("variance", &b.var)] {
        ensure!(v.len() == c, "BN {name} has {} values for {c} channels", v.len());
    }
    let bad = b.var.iter().position(|&v| (v as f64 + b.eps as f64).is_nan() || v as f64 + b.eps as f64 <= 0.0);
    ensure!(bad.is_none(), "BN variance + epsilon is not positive at channel {}", bad.unwrap());
    Ok(Qbn { x, y, bn: b, c, rank })
}

fn channel_count(g: &Graph, m: &Match) -> Result<(usize, usize), Refusal> {
    let ty = g.operand_type(m.get("x")).ok_or_else(|| Refusal::new("the input's type is unknown"))?;
    let rank = ty.rank().ok_or_else(|| Refusal::new("the input's rank is unknown"))?;
    ensure!(rank >= 3, "the input has rank {rank}; a QLinearConv needs [N, C, spatial...]");
    let c = ty.shape.as_ref().and_then(|s| s[1].known()).ok_or_else(|| Refusal::new("the channel count is unknown"))?;
    ensure!(c > 0, "the input has no channels");
    Ok((c as usize, rank))
}

fn build(g: &Graph, m: &Match, Qbn { x, y, bn, c, rank }: Qbn) -> Result<Patch, Refusal> {
    let (f, o) = bn.factors();
    let (xs, ys) = (x.scale[0] as f64, y.scale[0] as f64);
    let (mut w, mut sw, mut bias) = (Vec::with_capacity(c), Vec::with_capacity(c), Vec::with_capacity(c));
    for ch in 0..c {
        let s = (f[ch].abs() / 127.0) as f32;
        // A channel with f = 0 is its bias alone: any weight scale does; one that puts the bias
        // step at 1/127 of the output step.
        let flat = (ys / xs / 127.0) as f32;
        let (wc, sc) = if s > 0.0 && s.is_finite() { (127 * f[ch].signum() as i64, s) } else { (0, flat) };
        let b = (o[ch] / (xs * sc as f64)).round_ties_even();
        ensure!(b.abs() <= i32::MAX as f64, "the bias of channel {ch} does not fit in int32 at the input's scale");
        w.push(wc);
        sw.push(sc);
        bias.push(b as i64);
    }
    let acc: Vec<f32> = sw.iter().map(|&s| (xs * s as f64) as f32).collect();
    super::bias_rounding_fits(&o, &bias, &acc, ys as f32)?;
    let mut p = Patch::new();
    let base = g.value(Outlet::new(m.node("bn"), 0)).name.clone();
    let mut wdims = vec![c as i64, 1];
    wdims.extend(std::iter::repeat_n(1, rank - 2));
    let w_op = p.add_const(&format!("{base}_weight_quantized"), Tensor::from_i64("", DType::I8, &wdims, &w));
    let ws_op = p.add_const(&format!("{base}_weight_scale"), Tensor::from_f32("", &[c as i64], &sw));
    let wz_op =
        p.add_const(&format!("{base}_weight_zero_point"), Tensor::from_i64("", DType::I8, &[c as i64], &vec![0; c]));
    let b_op = p.add_const(&format!("{base}_bias_quantized"), Tensor::from_i64("", DType::I32, &[c as i64], &bias));
    let xz = super::zero_point_or_new(&mut p, m.get("xz"), x.dtype, 1, || format!("{base}_x_zero_point"));
    let yz = super::zero_point_or_new(&mut p, m.get("yz"), x.dtype, 1, || format!("{base}_y_zero_point"));
    let attrs = vec![attr::make_int("group", c as i64), attr::make_ints("kernel_shape", &vec![1; rank - 2])];
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let inputs = [m.get("x").into(), m.get("xs").into(), xz, w_op, ws_op, wz_op, m.get("ys").into(), yz, b_op];
    let n = p.add(PatchNode::new(Op::QLinearConv, inputs).named(g.node(m.node("bn")).name()).attrs(attrs).output(out));
    p.replace(Outlet::new(m.root(), 0), n);
    for &id in m.nodes() {
        p.remove(id);
    }
    Ok(p)
}
