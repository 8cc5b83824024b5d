//! Conv fusion: a float Conv whose input and weights are DequantizeLinears becomes an integer
//! convolution.
//!
//! - `qlinearconv`: `Q(Conv(DQ x, DQ w, b))` ⇒ `QLinearConv(x, xs, xz, w, ws, wz, ys, yz, B)` with
//!   the Conv's attributes. x and y per tensor and of the same type, w a constant int8/uint8
//!   tensor per tensor or per output channel (axis 0), f32 scales > 0. The bias becomes int32 at
//!   `xs·ws[c]`: a `DQ(int32, xs·ws, 0)` bias is taken as is (the scale compared bit for bit with
//!   the f32 product, as onnxruntime's quantizer writes it); any other constant bias (another
//!   int32 scale, float) is requantized from its f32 value, round half to even, saturated.
//!   onnxruntime 1.32 CPU runs QLinearConv for (x, w) = (u8, u8), (u8, i8), (i8, i8), not
//!   (i8, u8): that one is refused.
//! - `qconv-relu` / `qconv-clip`: `Q(Relu(Conv(..)))` and `Q(Clip(Conv(..)))` ⇒ QLinearConv, then
//!   an integer `Max(·, yz)` (Relu) or `Clip(·, Q(lo), Q(hi))` unless the Q's own saturation
//!   already clamps (Relu with yz = type minimum; Clip bounds at or beyond the quantized range).
//!   Exact because Q is monotone: `Q(max(v, 0)) = max(Q(v), yz)`. onnxruntime 1.32 CPU runs Max
//!   and Clip on int8 and uint8 (opset 12+).
//! - `conv-integer`: a DQ'd Conv whose output does not go (directly or through Relu/Clip) to a Q,
//!   e.g. TensorRT-style Conv → BN → Add ⇒ `ConvInteger(x, w, xz, wz)` → `Cast(float)` →
//!   `Mul(xs·ws[c] as [1,C,1..])` → `Add(bias as [1,C,1..])`. The accumulation is exact; only the
//!   float rescale rounds. onnxruntime 1.32 CPU's ConvInteger takes every u8/i8 pairing but only
//!   a per-tensor weight zero point: per-channel weights need equal zero points (they are
//!   usually all 0). A Conv feeding a BatchNormalization is left for fold-bn.
//! - `qconvtranspose`: ONNX has no QLinear ConvTranspose; the rule only leaves a remark.

use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::common::{self, QParams};
use crate::rules::Who;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};
use std::cell::OnceCell;

const CONV: &str = "(Conv@conv (DequantizeLinear@xdq ?x ?xs ?xz) (DequantizeLinear@wdq ?w ?ws ?wz) ?b)";

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new("qlinearconv", &format!("(QuantizeLinear {CONV} ?ys ?yz)"), decode, build_qlinearconv)
            .exact_where("bias-int32", bias_exact),
        Rule::new("qconv-relu", &format!("(QuantizeLinear (Relu@act {CONV}) ?ys ?yz)"), decode, build_qlinearconv)
            .exact_where("bias-int32", bias_exact),
        Rule::new(
            "qconv-clip",
            &format!("(QuantizeLinear (Clip@act {CONV} ?lo ?hi) ?ys ?yz)"),
            decode,
            build_qlinearconv,
        )
        .exact_where("bias-int32", bias_exact),
        Rule::new("conv-integer", CONV, no_bn_after, build_conv_integer)
            .defers_to(&["qlinearconv", "qconv-relu", "qconv-clip"])
            .by_cost(crate::cost::integer_form_pays),
        Rule::new(
            "qconvtranspose",
            "(QuantizeLinear (ConvTranspose@conv (DequantizeLinear ?x ?xs ?xz) ?w ?b) ?ys ?yz)",
            convtranspose_has_no_qlinear_form,
            |_, _, ()| Err(Refusal::NotApplicable),
        ),
    ]
}

// ---- reading the match -------------------------------------------------------------------

/// Whether node `id`'s outputs are read by `consumer` only (and are no graph output).
fn only_feeds(g: &Graph, id: NodeId, consumer: NodeId) -> bool {
    g.uses(id).all(|(c, _)| c == consumer) && !g.feeds_output(id)
}

/// The bias as the original graph adds it.
enum Bias {
    None,
    /// `DQ(int32 q, s, 0)` with `s[c]` equal to `xs·ws[c]` in f32: `q` (a `[C]` constant) is the
    /// QLinearConv bias as is.
    Exact(Operand, std::sync::Arc<[i64]>),
    /// The f32 value per output channel.
    Float(Vec<f32>),
}

/// What both QLinearConv and ConvInteger need, checked.
struct ConvQ {
    conv: NodeId,
    x: QParams,
    w: QParams,
    /// The weight's integer type.
    w_dtype: DType,
    /// Output channels.
    c: usize,
    /// The weight's rank (2 + spatial dims).
    w_rank: usize,
    bias: Bias,
    /// `xs·ws[c]` in f32, per output channel.
    acc_scale: Vec<f32>,
}

fn positive_f32_scales(p: &QParams, who: Who, what: &str) -> Result<(), Refusal> {
    common::positive_f32_scales(p, what).map_err(|r| r.map(|r| format!("{who}: {r}")))
}

fn read_conv(g: &Graph, m: &Match) -> Result<ConvQ, Refusal> {
    let conv = m.node("conv");
    let who = Who(g, conv);
    let (x_dq, w_dq) = (m.node("xdq"), m.node("wdq"));

    // Weights: a constant int8/uint8 tensor, per tensor or per output channel.
    let wt =
        g.const_tensor(m.get("w")).ok_or_else(|| Refusal::new(format!("{who}: weights are not constant integers")))?;
    let w_dtype = wt.dtype().map_err(|e| Refusal::new(format!("{who}: weights: {e}")))?;
    ensure!(
        matches!(w_dtype, DType::I8 | DType::U8),
        "{who}: weights are {w_dtype}, not int8/uint8 (QLinearConv and ConvInteger take 8-bit weights only)"
    );
    ensure!(wt.dims().len() >= 3, "{who}: weights have rank {}", wt.dims().len());
    let c = wt.dims()[0];
    ensure!(c > 0, "{who}: weights have no output channels");
    let c = c as usize;
    let w = common::of_node(g, w_dq)?;
    ensure!(
        w.axis.is_none() || w.axis == Some(0),
        "{who}: weights are quantized along axis {}, not per output channel (axis 0)",
        w.axis.unwrap_or(0)
    );
    ensure!(w.axis.is_none() || w.scale.len() == c, "{who}: {} weight scales for {c} output channels", w.scale.len());
    positive_f32_scales(&w, who, "weight")?;

    // Input: per tensor, 8-bit, and a pairing onnxruntime runs.
    let x = common::of_node(g, x_dq)?;
    ensure!(x.axis.is_none(), "{who}: the input is quantized per axis, not per tensor");
    ensure!(matches!(x.dtype, DType::I8 | DType::U8), "{who}: the input is {}, not int8/uint8", x.dtype);
    positive_f32_scales(&x, who, "input")?;

    let acc_scale: Vec<f32> = (0..c).map(|ch| x.scale[0] * w.scale[if w.axis.is_some() { ch } else { 0 }]).collect();
    ensure!(
        acc_scale.iter().all(|s| s.is_normal()),
        "{who}: the accumulator scale (input scale × weight scale) is not a normal f32"
    );
    let bias = read_bias(g, m.get("b"), c, &acc_scale, who)?;
    Ok(ConvQ { conv, x, w, w_dtype, c, w_rank: wt.dims().len(), bias, acc_scale })
}

fn read_bias(g: &Graph, b: Operand, c: usize, acc_scale: &[f32], who: Who) -> Result<Bias, Refusal> {
    if b == Operand::None {
        return Ok(Bias::None);
    }
    let name = g.operand_name(b);
    let not_const = || Refusal::new(format!("{who}: bias '{name}' is not a constant (or a DequantizeLinear of one)"));
    let values: Vec<f32> = if let Some(t) = g.const_tensor(b) {
        let d = t.dtype().map_err(|e| Refusal::new(format!("{who}: bias: {e}")))?;
        ensure!(d == DType::F32, "{who}: bias '{name}' is {d}, not f32");
        t.to_f32().map_err(|e| Refusal::new(format!("{who}: bias: {e}")))?
    } else {
        let Operand::Value(o) = b else { return Err(not_const()) };
        let dq = g.node(o.node);
        if dq.op != Op::DequantizeLinear || o.slot != 0 {
            return Err(not_const());
        }
        let t = g.const_tensor(dq.input(0)).ok_or_else(not_const)?;
        let q = common::ints(g, dq.input(0))
            .ok_or_else(not_const)?
            .map_err(|e| Refusal::new(format!("{who}: bias: {e}")))?;
        let p = common::of_node(g, o.node)?;
        ensure!(q.len() == c, "{who}: bias has {} values for {c} output channels", q.len());
        ensure!(p.axis.is_none() || p.axis == Some(0), "{who}: the bias is quantized along axis {:?}", p.axis);
        ensure!(p.axis.is_none() || p.scale.len() == c, "{who}: {} bias scales for {c} output channels", p.scale.len());
        let at = |ch: usize| if p.axis.is_some() { ch } else { 0 };
        if p.dtype == DType::I32
            && t.dims() == [c as i64]
            && p.scale_dtype == DType::F32
            && (0..c).all(|ch| p.zero_point[at(ch)] == 0 && p.scale[at(ch)].to_bits() == acc_scale[ch].to_bits())
        {
            return Ok(Bias::Exact(dq.input(0), q));
        }
        common::dequantize(&q, t.dims(), &p)?
    };
    ensure!(values.len() == c, "{who}: bias has {} values for {c} output channels", values.len());
    ensure!(values.iter().all(|v| v.is_finite()), "{who}: bias has a non-finite value");
    Ok(Bias::Float(values))
}

/// The bias values as int32 at `xs·ws[c]`, round half to even, saturated (`Bias::Exact` is
/// used as is, not through here).
fn int32_bias(cq: &ConvQ) -> Option<Vec<i64>> {
    match &cq.bias {
        Bias::None | Bias::Exact(..) => None,
        Bias::Float(v) => Some(
            v.iter()
                .zip(&cq.acc_scale)
                .map(|(&b, &s)| (b as f64 / s as f64).round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i64)
                .collect(),
        ),
    }
}

/// The operand of a zero point, or a new scalar zero of `dtype` when it was omitted.
fn zero_point(p: &mut Patch, o: Operand, dtype: DType, base: impl FnOnce() -> String) -> PatchOperand {
    super::zero_point_or_new(p, o, dtype, 1, base)
}

/// A constant of shape `[1, C, 1, …]` for broadcasting along a conv output's channels.
fn channel_dims(c: usize, rank: usize) -> Vec<i64> {
    let mut d = vec![1i64; rank];
    d[1] = c as i64;
    d
}

// ---- qlinearconv, qconv-relu, qconv-clip -------------------------------------------------

/// The quantized bounds an activation between the Conv and the Q clamps to: `None` when the
/// Q's own saturation already does it.
fn activation_bounds(g: &Graph, m: &Match, y: &QParams) -> Result<Option<(i64, i64)>, Refusal> {
    let Some(act) = m.try_node("act") else { return Ok(None) };
    let (qmin, qmax) =
        y.dtype.int_range().ok_or_else(|| Refusal::new(format!("{} is not an integer type", y.dtype)))?;
    let quantize = |v: f32| -> i64 {
        if v.is_infinite() {
            return if v < 0.0 { qmin } else { qmax };
        }
        ((v / y.scale[0]).round_ties_even() as i64).saturating_add(y.zero_point[0]).clamp(qmin, qmax)
    };
    let (lo, hi) = match g.node(act).op {
        Op::Relu => (y.zero_point[0].clamp(qmin, qmax), qmax),
        Op::Clip => {
            let named = |r: Refusal| r.map(|r| format!("{}: {r}", Who(g, act)));
            let lo = common::clip_bound(g, act, 1, "min", f32::NEG_INFINITY).map_err(named)?;
            let hi = common::clip_bound(g, act, 2, "max", f32::INFINITY).map_err(named)?;
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(Refusal::new(format!("Clip bounds [{lo}, {hi}] are not an interval")));
            }
            (quantize(lo), quantize(hi))
        }
        _ => return Ok(None),
    };
    Ok((lo > qmin || hi < qmax).then_some((lo, hi)))
}

/// The conv as [`read_conv`] reads it, read at most once per match: by the exactness proof or
/// else by the build.
type Decoded = OnceCell<Result<ConvQ, Refusal>>;

/// The QLinearConv rules accept every match and leave a conv they cannot read to their build,
/// which refuses it with the reason (so `conv-integer` gives way to every match of theirs, and
/// asking whether it does reads nothing).
fn decode(_: &Graph, _: &Match) -> Result<Decoded, Refusal> {
    Ok(OnceCell::new())
}

fn build_qlinearconv(g: &Graph, m: &Match, cq: Decoded) -> Result<Patch, Refusal> {
    let cq = cq.into_inner().unwrap_or_else(|| read_conv(g, m))?;
    let who = Who(g, cq.conv);
    // Single-use chain: Conv → [Relu/Clip →] Q.
    let chain: Vec<NodeId> = [Some(m.root()), m.try_node("act"), Some(cq.conv)].into_iter().flatten().collect();
    for pair in chain.windows(2) {
        ensure!(
            only_feeds(g, pair[1], pair[0]),
            "{}: its output has other consumers than {}",
            Who(g, pair[1]),
            Who(g, pair[0])
        );
    }
    let y = common::of_node(g, m.root())?;
    ensure!(y.axis.is_none(), "{who}: the output is quantized per axis, not per tensor");
    positive_f32_scales(&y, who, "output")?;
    ensure!(
        y.dtype == cq.x.dtype,
        "{who}: input is {} but output is {} (QLinearConv needs one type)",
        cq.x.dtype,
        y.dtype
    );
    ensure!(
        !(cq.x.dtype == DType::I8 && cq.w_dtype == DType::U8),
        "{who}: onnxruntime 1.32 CPU has no QLinearConv for int8 input with uint8 weights"
    );
    let bounds = activation_bounds(g, m, &y)?;
    if bounds.is_some() {
        ensure!(g.opset() >= 12, "{who}: integer Max/Clip need opset 12, the model has {}", g.opset());
    }

    let conv = g.node(cq.conv);
    let out_name = g.value(Outlet::new(m.root(), 0)).name.clone();
    let mut p = Patch::new();
    let xz = zero_point(&mut p, m.get("xz"), cq.x.dtype, || format!("{}_zero_point", g.operand_name(m.get("x"))));
    let wz = zero_point(&mut p, m.get("wz"), cq.w_dtype, || format!("{}_zero_point", g.operand_name(m.get("w"))));
    let yz = zero_point(&mut p, m.get("yz"), y.dtype, || format!("{out_name}_zero_point"));
    let mut inputs = vec![m.get("x").into(), m.get("xs").into(), xz, m.get("w").into(), m.get("ws").into(), wz];
    inputs.extend([m.get("ys").into(), yz]);
    if let Bias::Exact(b, _) = cq.bias {
        inputs.push(b.into());
    } else if let Some(b) = int32_bias(&cq) {
        if let Bias::Float(v) = &cq.bias {
            let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            super::bias_rounding_fits(&v, &b, &cq.acc_scale, y.scale[0])
                .map_err(|r| Refusal::new(format!("{who}: {r}")))?;
        }
        let b_name = format!("{}_quantized", g.operand_name(m.get("b")));
        inputs.push(p.add_const(&b_name, Tensor::from_i64("", DType::I32, &[cq.c as i64], &b)));
    }
    let qconv_out = if bounds.is_some() { g.value(Outlet::new(cq.conv, 0)).name.clone() } else { out_name.clone() };
    let qconv = PatchNode::new(Op::QLinearConv, inputs).named(conv.name()).attrs(conv.attrs.clone());
    let mut result = p.add(qconv.output(qconv_out));
    if let Some((lo, hi)) = bounds {
        let act = g.node(m.node("act"));
        let (op, inputs) = if act.op == Op::Relu {
            (Op::Max, vec![result, yz])
        } else {
            let lo = p.add_const(&format!("{out_name}_min"), Tensor::from_i64("", y.dtype, &[], &[lo]));
            let hi = p.add_const(&format!("{out_name}_max"), Tensor::from_i64("", y.dtype, &[], &[hi]));
            (Op::Clip, vec![result, lo, hi])
        };
        result = p.add(PatchNode::new(op, inputs).named(act.name()).output(out_name));
    }
    p.replace(Outlet::new(m.root(), 0), result);
    for &id in m.nodes() {
        p.remove(id);
    }
    if let Operand::Value(b) = m.get("b") {
        p.remove(b.node);
    }
    Ok(p)
}

/// A float bias rounded to int32 at `xs·ws[c]` keeps the QLinearConv exact when the rounding moves
/// the output by no more than half the tie tolerance. (A conv the build refuses is exact here: its
/// refusal says why.)
fn bias_exact(g: &Graph, m: &Match, cq: &Decoded) -> Result<(), String> {
    let (Ok(cq), Ok(y)) = (cq.get_or_init(|| read_conv(g, m)), common::of_node(g, m.root())) else { return Ok(()) };
    match (&cq.bias, int32_bias(cq)) {
        (Bias::Float(v), Some(b)) => {
            let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            super::bias_within_tie(&v, &b, &cq.acc_scale, y.scale[0])
        }
        _ => Ok(()),
    }
}

// ---- conv-integer ------------------------------------------------------------------------

/// A Conv feeding a BatchNormalization is left for fold-bn.
fn no_bn_after(g: &Graph, m: &Match) -> Result<(), Refusal> {
    if let Some((bn, _)) = g.uses(m.root()).find(|(c, _)| g.node(*c).op == Op::BatchNormalization) {
        return Err(Refusal::new(format!("its output feeds {} (left for fold-bn to fold first)", Who(g, bn))));
    }
    Ok(())
}

fn build_conv_integer(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    // The remark already names the Conv (the root): drop the reasons' "Conv 'name': " prefix.
    let prefix = format!("{}: ", Who(g, m.root()));
    conv_integer(g, m).map_err(|r| r.map(|r| r.strip_prefix(&prefix).map(str::to_string).unwrap_or(r)))
}

fn conv_integer(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let cq = read_conv(g, m)?;
    let who = Who(g, cq.conv);
    ensure!(g.opset() >= 10, "{who}: ConvInteger needs opset 10, the model has {}", g.opset());
    let wz = &cq.w.zero_point;
    ensure!(
        wz.iter().all(|&z| z == wz[0]),
        "{who}: onnxruntime 1.32 CPU ConvInteger takes one weight zero point, these differ per channel"
    );
    let conv = g.node(cq.conv);
    let out_name = g.value(Outlet::new(cq.conv, 0)).name.clone();
    let mut p = Patch::new();
    let xz = zero_point(&mut p, m.get("xz"), cq.x.dtype, || format!("{}_zero_point", g.operand_name(m.get("x"))));
    let wz = match (m.get("wz"), cq.w.axis) {
        (o @ Operand::Const(_), None) => o.into(),
        _ => p.add_const(
            &format!("{}_zero_point_scalar", g.operand_name(m.get("w"))),
            Tensor::from_i64("", cq.w_dtype, &[], &[wz[0]]),
        ),
    };
    let acc = PatchNode::new(Op::ConvInteger, [m.get("x").into(), m.get("w").into(), xz, wz]);
    let acc = p.add(acc.named(conv.name()).attrs(conv.attrs.clone()).output(format!("{out_name}_acc")));
    let to_f32 = vec![attr::make_int("to", DType::F32.to_onnx() as i64)];
    let cast = p.add(PatchNode::new(Op::Cast, [acc]).attrs(to_f32).output(format!("{out_name}_acc_f32")));
    let dims = channel_dims(cq.c, cq.w_rank);
    let scale = p.add_const(&format!("{out_name}_scale"), Tensor::from_f32("", &dims, &cq.acc_scale));
    let bias: Option<Vec<f32>> = match &cq.bias {
        Bias::None => None,
        Bias::Float(v) => Some(v.clone()),
        Bias::Exact(_, q) => Some(q.iter().zip(&cq.acc_scale).map(|(&b, &s)| b as f32 * s).collect()),
    };
    let mul_out = if bias.is_some() { format!("{out_name}_scaled") } else { out_name.clone() };
    let mut result = p.add(PatchNode::new(Op::Mul, [cast, scale]).output(mul_out));
    if let Some(b) = bias {
        let b = p.add_const(&format!("{out_name}_bias"), Tensor::from_f32("", &dims, &b));
        result = p.add(PatchNode::new(Op::Add, [result, b]).output(out_name));
    }
    p.replace(Outlet::new(cq.conv, 0), result);
    for &id in m.nodes() {
        p.remove(id);
    }
    if let Operand::Value(b) = m.get("b") {
        p.remove(b.node);
    }
    Ok(p)
}

// ---- qconvtranspose ----------------------------------------------------------------------

fn convtranspose_has_no_qlinear_form(g: &Graph, m: &Match) -> Result<(), Refusal> {
    Err(Refusal::new(format!(
        "{}: ONNX has no QLinear form of ConvTranspose (left in float between its DQ and Q)",
        Who(g, m.node("conv"))
    )))
}
