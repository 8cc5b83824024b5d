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
use crate::rules::qparams::{self, QParams};
use crate::rules::Who;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

const CONV: &str = "(Conv (DequantizeLinear ?x ?xs ?xz) (DequantizeLinear ?w ?ws ?wz) ?b)";

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new("qlinearconv", &format!("(QuantizeLinear {CONV} ?ys ?yz)"), &[], build_qlinearconv),
        Rule::new("qconv-relu", &format!("(QuantizeLinear (Relu {CONV}) ?ys ?yz)"), &[], build_qlinearconv),
        Rule::new("qconv-clip", &format!("(QuantizeLinear (Clip {CONV} ?lo ?hi) ?ys ?yz)"), &[], build_qlinearconv),
        Rule::new("conv-integer", CONV, &[not_for_qlinearconv, no_bn_after], build_conv_integer),
        Rule::new(
            "qconvtranspose",
            "(QuantizeLinear (ConvTranspose (DequantizeLinear ?x ?xs ?xz) ?w ?b) ?ys ?yz)",
            &[convtranspose_has_no_qlinear_form],
            |_, _| Err(Refusal::not_applicable()),
        ),
    ]
}

// ---- reading the match -------------------------------------------------------------------

/// The Conv node of a match: the root for `conv-integer`, else after the Q (and Relu/Clip).
fn conv_node(g: &Graph, m: &Match) -> NodeId {
    *m.nodes.iter().find(|&&id| g.node(id).op == Op::Conv).expect("every pattern has a Conv")
}

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
    ensure!(p.scale_dtype == DType::F32, "{who}: {what} scale is {}, not f32", p.scale_dtype);
    let bad = p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0));
    ensure!(bad.is_none(), "{who}: {what} scale {} is not a positive finite number", bad.unwrap());
    Ok(())
}

fn read_conv(g: &Graph, m: &Match) -> Result<ConvQ, Refusal> {
    let conv = conv_node(g, m);
    let who = Who(g, conv);
    let x_dq = m.nodes[m.nodes.iter().position(|&n| n == conv).unwrap() + 1];
    let w_dq = m.nodes[m.nodes.iter().position(|&n| n == conv).unwrap() + 2];

    // Weights: a constant int8/uint8 tensor, per tensor or per output channel.
    let wt = g.const_tensor(m.get("w")).ok_or_else(|| Refusal(format!("{who}: weights are not constant integers")))?;
    let w_dtype = wt.dtype().map_err(|e| Refusal(format!("{who}: weights: {e}")))?;
    ensure!(
        matches!(w_dtype, DType::I8 | DType::U8),
        "{who}: weights are {w_dtype}, not int8/uint8 (QLinearConv and ConvInteger take 8-bit weights only)"
    );
    ensure!(wt.dims().len() >= 3, "{who}: weights have rank {}", wt.dims().len());
    let c = wt.dims()[0];
    ensure!(c > 0, "{who}: weights have no output channels");
    let c = c as usize;
    let w = qparams::of_node(g, w_dq)?;
    ensure!(
        w.axis.is_none() || w.axis == Some(0),
        "{who}: weights are quantized along axis {}, not per output channel (axis 0)",
        w.axis.unwrap_or(0)
    );
    ensure!(w.axis.is_none() || w.scale.len() == c, "{who}: {} weight scales for {c} output channels", w.scale.len());
    positive_f32_scales(&w, who, "weight")?;

    // Input: per tensor, 8-bit, and a pairing onnxruntime runs.
    let x = qparams::of_node(g, x_dq)?;
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
    let not_const = || Refusal(format!("{who}: bias '{name}' is not a constant (or a DequantizeLinear of one)"));
    let values: Vec<f32> = if let Some(t) = g.const_tensor(b) {
        let d = t.dtype().map_err(|e| Refusal(format!("{who}: bias: {e}")))?;
        ensure!(d == DType::F32, "{who}: bias '{name}' is {d}, not f32");
        t.to_f32().map_err(|e| Refusal(format!("{who}: bias: {e}")))?
    } else {
        let Operand::Value(o) = b else { return Err(not_const()) };
        let dq = g.node(o.node);
        if dq.op != Op::DequantizeLinear || o.slot != 0 {
            return Err(not_const());
        }
        let t = g.const_tensor(dq.input(0)).ok_or_else(not_const)?;
        let q =
            qparams::ints(g, dq.input(0)).ok_or_else(not_const)?.map_err(|e| Refusal(format!("{who}: bias: {e}")))?;
        let p = qparams::of_node(g, o.node)?;
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
        qparams::dequantize(&q, t.dims(), &p)?
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
    let act = m.nodes[1];
    let (qmin, qmax) = y.dtype.int_range().ok_or_else(|| Refusal(format!("{} is not an integer type", y.dtype)))?;
    let quantize = |v: f32| -> i64 {
        if v.is_infinite() {
            return if v < 0.0 { qmin } else { qmax };
        }
        ((v / y.scale[0]).round_ties_even() as i64).saturating_add(y.zero_point[0]).clamp(qmin, qmax)
    };
    let (lo, hi) = match g.node(act).op {
        Op::Relu => (y.zero_point[0].clamp(qmin, qmax), qmax),
        Op::Clip => {
            let node = g.node(act);
            let bound = |var: &str, attr_name: &str, default: f32| -> Result<f32, Refusal> {
                match m.get(var) {
                    Operand::None => Ok(attr::float(&node.attrs, attr_name).unwrap_or(default)),
                    o => {
                        let t = g.const_tensor(o).ok_or_else(|| {
                            Refusal(format!(
                                "{} {}: bound '{}' is not a constant",
                                node.op,
                                node.label(),
                                g.operand_name(o)
                            ))
                        })?;
                        let v = t.to_f32().map_err(|e| Refusal(format!("Clip bound: {e}")))?;
                        ensure!(v.len() == 1, "Clip bound '{}' has {} values", g.operand_name(o), v.len());
                        ensure!(!v[0].is_nan(), "Clip bound '{}' is NaN", g.operand_name(o));
                        Ok(v[0])
                    }
                }
            };
            let (lo, hi) = (bound("lo", "min", f32::NEG_INFINITY)?, bound("hi", "max", f32::INFINITY)?);
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(Refusal(format!("Clip bounds [{lo}, {hi}] are not an interval")));
            }
            (quantize(lo), quantize(hi))
        }
        _ => return Ok(None),
    };
    Ok((lo > qmin || hi < qmax).then_some((lo, hi)))
}

fn build_qlinearconv(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let cq = read_conv(g, m)?;
    let who = Who(g, cq.conv);
    // Single-use chain: Conv → [Relu/Clip →] Q.
    let chain: Vec<NodeId> = m.nodes[..m.nodes.iter().position(|&n| n == cq.conv).unwrap() + 1].to_vec();
    for pair in chain.windows(2) {
        ensure!(
            only_feeds(g, pair[1], pair[0]),
            "{}: its output has other consumers than {}",
            Who(g, pair[1]),
            Who(g, pair[0])
        );
    }
    let y = qparams::of_node(g, m.root())?;
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
            super::bias_rounding_fits(&v, &b, &cq.acc_scale, y.scale[0]).map_err(|r| Refusal(format!("{who}: {r}")))?;
        }
        let b_name = format!("{}_quantized", g.operand_name(m.get("b")));
        inputs.push(p.add_const(&b_name, Tensor::from_i64("", DType::I32, &[cq.c as i64], &b)));
    }
    let qconv = p.add_node(PatchNode {
        op: Op::QLinearConv,
        name: conv.name().to_string(),
        attrs: conv.attrs.clone(),
        inputs,
        outputs: vec![if bounds.is_some() { g.value(Outlet::new(cq.conv, 0)).name.clone() } else { out_name.clone() }],
    });
    let mut result = PatchOperand::NewNode(qconv, 0);
    if let Some((lo, hi)) = bounds {
        let act = g.node(m.nodes[1]);
        let (op, inputs) = if act.op == Op::Relu {
            (Op::Max, vec![result, yz])
        } else {
            let lo = p.add_const(&format!("{out_name}_min"), Tensor::from_i64("", y.dtype, &[], &[lo]));
            let hi = p.add_const(&format!("{out_name}_max"), Tensor::from_i64("", y.dtype, &[], &[hi]));
            (Op::Clip, vec![result, lo, hi])
        };
        let n = p.add_node(PatchNode {
            op,
            name: act.name().to_string(),
            attrs: vec![].into(),
            inputs,
            outputs: vec![out_name],
        });
        result = PatchOperand::NewNode(n, 0);
    }
    p.replace(Outlet::new(m.root(), 0), result);
    for &id in &m.nodes {
        p.remove(id);
    }
    if let Operand::Value(b) = m.get("b") {
        p.remove(b.node);
    }
    Ok(p)
}

// ---- conv-integer ------------------------------------------------------------------------

/// Whether a Conv's output goes to a Q, directly or through a Relu/Clip: that is the QLinearConv
/// rules' case (their remarks say why they did not fire).
fn feeds_a_q(g: &Graph, id: NodeId) -> bool {
    g.uses(id).any(|(c, _)| match g.node(c).op {
        Op::QuantizeLinear => true,
        Op::Relu | Op::Clip => g.uses(c).any(|(n, _)| g.node(n).op == Op::QuantizeLinear),
        _ => false,
    })
}

fn not_for_qlinearconv(g: &Graph, m: &Match) -> Result<(), Refusal> {
    if feeds_a_q(g, m.root()) {
        return Err(Refusal::not_applicable());
    }
    Ok(())
}

fn no_bn_after(g: &Graph, m: &Match) -> Result<(), Refusal> {
    if let Some((bn, _)) = g.uses(m.root()).find(|(c, _)| g.node(*c).op == Op::BatchNormalization) {
        return Err(Refusal(format!("its output feeds {} (left for fold-bn to fold first)", Who(g, bn))));
    }
    Ok(())
}

fn build_conv_integer(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    // The remark already names the Conv (the root): drop the reasons' "Conv 'name': " prefix.
    conv_integer(g, m).map_err(|r| {
        let prefix = format!("{}: ", Who(g, m.root()));
        Refusal(r.0.strip_prefix(&prefix).map(str::to_string).unwrap_or(r.0))
    })
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
    let acc = p.add_node(PatchNode {
        op: Op::ConvInteger,
        name: conv.name().to_string(),
        attrs: conv.attrs.clone(),
        inputs: vec![m.get("x").into(), m.get("w").into(), xz, wz],
        outputs: vec![format!("{out_name}_acc")],
    });
    let cast = p.add_node(PatchNode {
        op: Op::Cast,
        name: String::new(),
        attrs: vec![attr::make_int("to", DType::F32.to_onnx() as i64)].into(),
        inputs: vec![PatchOperand::NewNode(acc, 0)],
        outputs: vec![format!("{out_name}_acc_f32")],
    });
    let dims = channel_dims(cq.c, cq.w_rank);
    let scale = p.add_const(&format!("{out_name}_scale"), Tensor::from_f32("", &dims, &cq.acc_scale));
    let bias: Option<Vec<f32>> = match &cq.bias {
        Bias::None => None,
        Bias::Float(v) => Some(v.clone()),
        Bias::Exact(_, q) => Some(q.iter().zip(&cq.acc_scale).map(|(&b, &s)| b as f32 * s).collect()),
    };
    let mul = p.add_node(PatchNode {
        op: Op::Mul,
        name: String::new(),
        attrs: vec![].into(),
        inputs: vec![PatchOperand::NewNode(cast, 0), scale],
        outputs: vec![if bias.is_some() { format!("{out_name}_scaled") } else { out_name.clone() }],
    });
    let mut result = PatchOperand::NewNode(mul, 0);
    if let Some(b) = bias {
        let b = p.add_const(&format!("{out_name}_bias"), Tensor::from_f32("", &dims, &b));
        let add = p.add_node(PatchNode {
            op: Op::Add,
            name: String::new(),
            attrs: vec![].into(),
            inputs: vec![result, b],
            outputs: vec![out_name],
        });
        result = PatchOperand::NewNode(add, 0);
    }
    p.replace(Outlet::new(cq.conv, 0), result);
    for &id in &m.nodes {
        p.remove(id);
    }
    if let Operand::Value(b) = m.get("b") {
        p.remove(b.node);
    }
    Ok(p)
}

// ---- qconvtranspose ----------------------------------------------------------------------

fn convtranspose_has_no_qlinear_form(g: &Graph, m: &Match) -> Result<(), Refusal> {
    Err(Refusal(format!(
        "{}: ONNX has no QLinear form of ConvTranspose (left in float between its DQ and Q)",
        Who(g, m.nodes[1])
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_eval::{run, RunOptions, Value};
    use qdqc_ir::text::parse;

    fn pass() -> crate::driver::RulePass {
        super::super::pass()
    }

    /// Runs fuse then dce; returns the printed graph followed by the remarks.
    fn check(text: &str) -> String {
        crate::rules::run_and_print(&pass(), text)
    }

    /// The remarks of `check` only.
    fn remarks(text: &str) -> String {
        check(text).lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n")
    }

    /// Runs the graph before and after fuse on pseudo-random integer inputs `xq` of `dims`;
    /// returns the largest output difference: in integer steps for an integer output, relative
    /// to the largest magnitude for a float one.
    fn max_diff(text: &str, dtype: DType, dims: &[usize]) -> f64 {
        let before = parse(text).unwrap();
        let mut after = before.clone();
        crate::Pass::run(&pass(), &mut after, &mut crate::Remarks::new()).unwrap();
        let (lo, hi) = dtype.int_range().unwrap();
        let n: usize = dims.iter().product();
        let xq: Vec<i64> =
            pseudo_random(n, 0x9e3779b97f4a7c15).into_iter().map(|r| lo + (r % (hi - lo + 1) as u64) as i64).collect();
        let input = [("xq".to_string(), Value::from_i64(dtype, dims, &xq).unwrap())];
        let a = run(&before, &input, &RunOptions::default()).unwrap().outputs.remove(0).1;
        let b = run(&after, &input, &RunOptions::default()).unwrap().outputs.remove(0).1;
        assert_eq!(a.dtype(), b.dtype());
        let integer = a.dtype().is_int();
        let (a, b) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        if integer {
            d
        } else {
            d / a.iter().fold(1e-30f64, |m, v| m.max(v.abs()))
        }
    }

    fn pseudo_random(n: usize, mut seed: u64) -> Vec<u64> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            })
            .collect()
    }

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(names, ["qlinearconv", "qconv-relu", "qconv-clip", "conv-integer", "qconvtranspose"]);
    }

    // u8 activations, per-tensor int8 weights, an int32 bias at exactly xs·ws = 0.5·0.25.
    const U8_PT: &str = r#"graph "g" opset(ai.onnx=17) {
  input %xq: u8[1,2,3,3]
  const %xs: f32[] 0.5
  const %xz: u8[] 128
  const %w: i8[2,2,1,1] [10, -20, 127, -127]
  const %ws: f32[] 0.25
  const %wz: i8[] 0
  const %bq: i32[2] [100, -50]
  const %bs: f32[] 0.125
  const %bz: i32[] 0
  const %ys: f32[] 2.0
  const %yz: u8[] 100
  %x = DequantizeLinear(%xq, %xs, %xz)
  %wd = DequantizeLinear(%w, %ws, %wz)
  %b = DequantizeLinear(%bq, %bs, %bz)
  %c = Conv[kernel_shape=[1,1], pads=[0,0,0,0]](%x, %wd, %b)  "conv1"
  %y = QuantizeLinear(%c, %ys, %yz)
  output %y
}
"#;

    /// Two convs reading one weight DQ and one bias DQ (as in a model whose blocks share
    /// weights; `-O2` does not give each consumer a DQ of its own): both fuse, and the shared
    /// DQs go once nothing reads them.
    #[test]
    fn convs_sharing_weight_and_bias_dqs_both_fuse() {
        let text = U8_PT.replace(
            "  output %y\n",
            "  %c2 = Conv[kernel_shape=[1,1], pads=[0,0,0,0]](%x, %wd, %b)  \"conv2\"\n  %y2 = QuantizeLinear(%c2, %ys, %yz)\n  output %y\n  output %y2\n",
        );
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: u8[1,2,3,3] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %wz: i8[] 0
          const %bq: i32[2] [100, -50]
          const %ys: f32[] 2.0
          const %yz: u8[] 100
          %y: u8[1,2,3,3] q(2.0, 100) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv1"
          %y2: u8[1,2,3,3] q(2.0, 100) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv2"
          output %y
          output %y2
        }
        "#);
        assert!(max_diff(&text, DType::U8, &[1, 2, 3, 3]) <= 1.0);
    }

    #[test]
    fn qlinearconv_u8_per_tensor_exact_int32_bias() {
        insta::assert_snapshot!(check(U8_PT), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: u8[1,2,3,3] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %wz: i8[] 0
          const %bq: i32[2] [100, -50]
          const %ys: f32[] 2.0
          const %yz: u8[] 100
          %y: u8[1,2,3,3] q(2.0, 100) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv1"
          output %y
        }
        "#);
        assert!(max_diff(U8_PT, DType::U8, &[1, 2, 3, 3]) <= 1.0);
    }

    #[test]
    fn qlinearconv_requantizes_another_int32_scale() {
        // 100·0.0625 / 0.125 = 50, −50·0.0625 / 0.125 = −25.
        let text = U8_PT.replace("%bs: f32[] 0.125", "%bs: f32[] 0.0625");
        let out = check(&text);
        assert!(out.contains("const %b_quantized: i32[2] [50, -25]"), "{out}");
        assert!(
            out.contains(
                "QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %b_quantized)"
            ),
            "{out}"
        );
        assert!(max_diff(&text, DType::U8, &[1, 2, 3, 3]) <= 1.0);
    }

    #[test]
    fn qlinearconv_float_bias_rounds_half_to_even_unless_that_moves_the_output() {
        // 1.0/0.125 = 8, −0.3125/0.125 = −2.5 → −2 (half to even).
        let text = U8_PT
            .replace("  %b = DequantizeLinear(%bq, %bs, %bz)\n", "")
            .replace("const %bq: i32[2] [100, -50]", "const %b: f32[2] [1.0, -0.3125]");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: u8[1,2,3,3] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %wz: i8[] 0
          const %ys: f32[] 2.0
          const %yz: u8[] 100
          const %b_quantized: i32[2] [8, -2]
          %y: u8[1,2,3,3] q(2.0, 100) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %b_quantized)  "conv1"
          output %y
        }
        "#);
        assert!(max_diff(&text, DType::U8, &[1, 2, 3, 3]) <= 1.0);
        // A bias that saturates int32 (or rounds by half an output step) would move the output:
        // refused.
        let big = check(&text.replace("[1.0, -0.3125]", "[1e12, -1e12]"));
        assert!(big.contains("the bias rounds to int32 at the input×weight scale with an error of"), "{big}");
        assert!(!big.contains("QLinearConv"), "{big}");
        // xs·ws = 0.125 against ys = 0.01: 0.3125 rounds to 0.25, 6.25 output steps off.
        let coarse = check(&text.replace("const %ys: f32[] 2.0", "const %ys: f32[] 0.01"));
        assert!(coarse.contains("with an error of 6.25 output steps (≥ 0.5)"), "{coarse}");
    }

    #[test]
    fn qlinearconv_without_bias_and_with_omitted_zero_points() {
        let text = U8_PT
            .replace("(%x, %wd, %b)", "(%x, %wd)")
            .replace("DequantizeLinear(%w, %ws, %wz)", "DequantizeLinear(%w, %ws)")
            .replace("QuantizeLinear(%c, %ys, %yz)", "QuantizeLinear(%c, %ys)");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: u8[1,2,3,3] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %ys: f32[] 2.0
          const %w_zero_point: i8[] 0
          const %y_zero_point: u8[] 0
          %y: u8[1,2,3,3] q(2.0, 0) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %w_zero_point, %ys, %y_zero_point)  "conv1"
          output %y
        }
        "#);
        assert!(max_diff(&text, DType::U8, &[1, 2, 3, 3]) <= 1.0);
    }

    // int8 activations, per-channel int8 weights, a per-channel int32 bias at xs·ws[c].
    const I8_PC: &str = r#"graph "g" opset(ai.onnx=17) {
  input %xq: i8[1,2,3,3]
  const %xs: f32[] 0.5
  const %xz: i8[] -3
  const %w: i8[2,2,1,1] [10, -20, 127, -127]
  const %ws: f32[2] [0.25, 0.0625]
  const %wz: i8[2] [0, 0]
  const %bq: i32[2] [100, -50]
  const %bs: f32[2] [0.125, 0.03125]
  const %bz: i32[2] [0, 0]
  const %ys: f32[] 2.0
  const %yz: i8[] 5
  %x = DequantizeLinear(%xq, %xs, %xz)
  %wd = DequantizeLinear[axis=0](%w, %ws, %wz)
  %b = DequantizeLinear[axis=0](%bq, %bs, %bz)
  %c = Conv[kernel_shape=[1,1]](%x, %wd, %b)  "conv1"
  %y = QuantizeLinear(%c, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn qlinearconv_i8_per_channel() {
        insta::assert_snapshot!(check(I8_PC), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: i8[1,2,3,3] q(0.5, -3)
          const %xs: f32[] 0.5
          const %xz: i8[] -3
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[2] [0.25, 0.0625]
          const %wz: i8[2] [0, 0]
          const %bq: i32[2] [100, -50]
          const %ys: f32[] 2.0
          const %yz: i8[] 5
          %y: i8[1,2,3,3] q(2.0, 5) = QLinearConv[kernel_shape=[1,1]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv1"
          output %y
        }
        "#);
        assert!(max_diff(I8_PC, DType::I8, &[1, 2, 3, 3]) <= 1.0);
        // A per-channel bias scale off by one channel: requantized (−50·0.0625/0.03125 = −100).
        let text = I8_PC.replace("[0.125, 0.03125]", "[0.125, 0.0625]");
        assert!(check(&text).contains("const %b_quantized: i32[2] [100, -100]"));
        assert!(max_diff(&text, DType::I8, &[1, 2, 3, 3]) <= 1.0);
    }

    #[test]
    fn qlinearconv_keeps_an_input_dq_used_elsewhere() {
        let text = U8_PT.replace("  output %y", "  output %y\n  output %x");
        let out = check(&text);
        assert!(out.contains("= QLinearConv"), "{out}");
        assert!(out.contains("%x: f32[1,2,3,3] = DequantizeLinear(%xq, %xs, %xz)"), "{out}");
        assert!(!out.contains("Conv[") || out.matches("Conv[").count() == 1, "{out}");
    }

    #[test]
    fn qlinearconv_refusals() {
        let r = |t: &str| remarks(t);
        insta::assert_snapshot!(r(&U8_PT.replace("const %w: i8[2,2,1,1] [10, -20, 127, -127]", "input %w: i8[2,2,1,1]")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': weights are not constant integers");
        insta::assert_snapshot!(r(&U8_PT.replace("output %y", "output %y\n  output %c")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': its output has other consumers than QuantizeLinear (producing 'y')");
        insta::assert_snapshot!(r(&U8_PT.replace("%xs: f32[] 0.5", "%xs: f32[] 0.0")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': input scale 0 is not a positive finite number");
        insta::assert_snapshot!(r(&U8_PT.replace("%ys: f32[] 2.0", "%ys: f32[] -2.0")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': output scale -2 is not a positive finite number");
        insta::assert_snapshot!(r(&U8_PT.replace("%yz: u8[] 100", "%yz: i8[] 100")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': input is u8 but output is i8 (QLinearConv needs one type)");
        insta::assert_snapshot!(r(&I8_PC.replace("%w: i8[2,2,1,1]", "%w: u8[2,2,1,1]").replace("[10, -20, 127, -127]", "[10, 20, 127, 255]").replace("%wz: i8[2]", "%wz: u8[2]")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': onnxruntime 1.32 CPU has no QLinearConv for int8 input with uint8 weights");
        insta::assert_snapshot!(r(&U8_PT.replace("const %bq: i32[2] [100, -50]", "input %bq: i32[2]")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': bias 'b' is not a constant (or a DequantizeLinear of one)");
        insta::assert_snapshot!(r(&I8_PC.replace("DequantizeLinear[axis=0](%w, %ws, %wz)", "DequantizeLinear[axis=1](%w, %ws, %wz)")), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': weights are quantized along axis 1, not per output channel (axis 0)");
    }

    #[test]
    fn qlinearconv_refuses_per_axis_activations() {
        let x = U8_PT
            .replace("%xs: f32[] 0.5", "%xs: f32[2] [0.5, 0.25]")
            .replace("%xz: u8[] 128", "%xz: u8[2] [128, 128]");
        insta::assert_snapshot!(remarks(&x), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': the input is quantized per axis, not per tensor");
        let y =
            U8_PT.replace("%ys: f32[] 2.0", "%ys: f32[2] [2.0, 1.0]").replace("%yz: u8[] 100", "%yz: u8[2] [100, 100]");
        insta::assert_snapshot!(remarks(&y), @"// remark qlinearconv: QuantizeLinear (producing 'y'): Conv 'conv1': the output is quantized per axis, not per tensor");
    }

    #[test]
    fn qlinearconv_u8_input_with_u8_weights_runs() {
        let text = U8_PT
            .replace("%w: i8[2,2,1,1] [10, -20, 127, -127]", "%w: u8[2,2,1,1] [10, 200, 127, 3]")
            .replace("%wz: i8[] 0", "%wz: u8[] 128");
        assert!(check(&text).contains("= QLinearConv"));
        assert!(max_diff(&text, DType::U8, &[1, 2, 3, 3]) <= 1.0);
    }

    /// A 3×3 conv, 3 → 4 channels, pads 1, stride 2, with pseudo-random int8 weights.
    fn conv3x3(act: &str, xz: i64, yz: i64, per_channel: bool, tail: &str) -> String {
        let w: Vec<String> =
            pseudo_random(4 * 3 * 9, 42).into_iter().map(|r| ((r % 255) as i64 - 127).to_string()).collect();
        let (ws, wdq) = if per_channel {
            ("const %ws: f32[4] [0.01, 0.02, 0.005, 0.013]\n  const %wz: i8[4] [0, 0, 0, 0]", "[axis=0]")
        } else {
            ("const %ws: f32[] 0.011\n  const %wz: i8[] 0", "")
        };
        format!(
            r#"graph "g" opset(ai.onnx=17) {{
  input %xq: {act}[2,3,7,7]
  const %xs: f32[] 0.03
  const %xz: {act}[] {xz}
  const %w: i8[4,3,3,3] [{}]
  {ws}
  const %b: f32[4] [0.1, -0.2, 0.05, 0.7]
  const %ys: f32[] 0.07
  const %yz: {act}[] {yz}
  %x = DequantizeLinear(%xq, %xs, %xz)
  %wd = DequantizeLinear{wdq}(%w, %ws, %wz)
  %c = Conv[kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]](%x, %wd, %b)  "conv1"
{tail}}}
"#,
            w.join(", ")
        )
    }

    #[test]
    fn qlinearconv_numerics_within_one_step() {
        let q = "  %y = QuantizeLinear(%c, %ys, %yz)\n  output %y\n";
        for (act, xz, yz) in [("u8", 128, 120), ("i8", -5, 3)] {
            for pc in [false, true] {
                let text = conv3x3(act, xz, yz, pc, q);
                let out = check(&text);
                assert!(out.contains("= QLinearConv") && !out.contains("= Conv"), "{out}");
                let dtype = if act == "u8" { DType::U8 } else { DType::I8 };
                let d = max_diff(&text, dtype, &[2, 3, 7, 7]);
                assert!(d <= 1.0, "{act} per-channel={pc}: {d} steps");
            }
        }
    }

    #[test]
    fn qconv_relu_drops_the_relu_at_the_type_minimum_and_keeps_a_max_otherwise() {
        let relu = "  %r = Relu(%c)  \"relu1\"\n  %y = QuantizeLinear(%r, %ys, %yz)\n  output %y\n";
        for (act, xz, yz, max) in
            [("u8", 128, 0, false), ("u8", 128, 120, true), ("i8", -5, -128, false), ("i8", -5, 3, true)]
        {
            let text = conv3x3(act, xz, yz, true, relu);
            let out = check(&text);
            assert!(out.contains("= QLinearConv") && !out.contains("Relu"), "{out}");
            assert_eq!(out.contains("= Max("), max, "{out}");
            let dtype = if act == "u8" { DType::U8 } else { DType::I8 };
            assert!(max_diff(&text, dtype, &[2, 3, 7, 7]) <= 1.0, "{act} z={yz}");
        }
        let text = U8_PT
            .replace("QuantizeLinear(%c, %ys, %yz)", "QuantizeLinear(%r, %ys, %yz)")
            .replace("  %y = Q", "  %r = Relu(%c)  \"relu1\"\n  %y = Q");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: u8[1,2,3,3] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %wz: i8[] 0
          const %bq: i32[2] [100, -50]
          const %ys: f32[] 2.0
          const %yz: u8[] 100
          %c_1: u8[1,2,3,3] q(2.0, 100) = QLinearConv[kernel_shape=[1,1], pads=[0,0,0,0]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv1"
          %y: u8[1,2,3,3] q(2.0, 100) = Max(%c_1, %yz)  "relu1"
          output %y
        }
        "#);
        let text = I8_PC
            .replace("QuantizeLinear(%c, %ys, %yz)", "QuantizeLinear(%r, %ys, %yz)")
            .replace("  %y = Q", "  %r = Relu(%c)\n  %y = Q")
            .replace("%yz: i8[] 5", "%yz: i8[] -128");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: i8[1,2,3,3] q(0.5, -3)
          const %xs: f32[] 0.5
          const %xz: i8[] -3
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[2] [0.25, 0.0625]
          const %wz: i8[2] [0, 0]
          const %bq: i32[2] [100, -50]
          const %ys: f32[] 2.0
          const %yz: i8[] -128
          %y: i8[1,2,3,3] q(2.0, -128) = QLinearConv[kernel_shape=[1,1]](%xq, %xs, %xz, %w, %ws, %wz, %ys, %yz, %bq)  "conv1"
          output %y
        }
        "#);
    }

    #[test]
    fn qconv_clip_keeps_an_integer_clip_inside_the_range() {
        let clip = |lo: &str, hi: &str| {
            format!(
                "  const %lo: f32[] {lo}\n  const %hi: f32[] {hi}\n  %r = Clip(%c, %lo, %hi)\n  %y = QuantizeLinear(%r, %ys, %yz)\n  output %y\n"
            )
        };
        // ys = 0.07: 0 → yz, 6 → yz + 86; u8 yz = 120 → [120, 206] is inside [0, 255].
        let text = conv3x3("u8", 128, 120, true, &clip("0.0", "6.0"));
        insta::assert_snapshot!(check(&text).lines().filter(|l| l.contains("Clip") || l.contains("_m")).collect::<Vec<_>>().join("\n"), @"
        const %y_min: u8[] 120
        const %y_max: u8[] 206
        %y: u8[2,4,4,4] q(0.07, 120) = Clip(%c_1, %y_min, %y_max)
        ");
        assert!(max_diff(&text, DType::U8, &[2, 3, 7, 7]) <= 1.0);
        // i8 yz = -128: [0, 100] → [-128, 1301] saturates to the whole range: no Clip.
        let text = conv3x3("i8", -5, -128, false, &clip("0.0", "100.0"));
        let out = check(&text);
        assert!(out.contains("= QLinearConv") && !out.contains("Clip"), "{out}");
        assert!(max_diff(&text, DType::I8, &[2, 3, 7, 7]) <= 1.0);
        // i8 yz = 3, only a lower bound kept.
        let text = conv3x3("i8", -5, 3, false, &clip("-1.0", "100.0"));
        let out = check(&text);
        assert!(out.contains("const %y_min: i8[] -11") && out.contains("const %y_max: i8[] 127"), "{out}");
        assert!(out.contains("= Clip(%c_1, %y_min, %y_max)"), "{out}");
        assert!(max_diff(&text, DType::I8, &[2, 3, 7, 7]) <= 1.0);
    }

    #[test]
    fn qconv_relu_refuses_below_opset_12_when_a_max_is_needed() {
        let text = conv3x3("u8", 128, 120, true, "  %r = Relu(%c)\n  %y = QuantizeLinear(%r, %ys, %yz)\n  output %y\n")
            .replace("ai.onnx=17", "ai.onnx=11");
        insta::assert_snapshot!(remarks(&text), @"// remark qconv-relu: QuantizeLinear (producing 'y'): Conv 'conv1': integer Max/Clip need opset 12, the model has 11");
    }

    // TensorRT style: the DQ'd conv's float output feeds a float Add, no Q.
    fn trt(act: &str, xz: i64, per_channel: bool) -> String {
        conv3x3(act, xz, 0, per_channel, "  input %r: f32[2,4,4,4]\n  %y = Add(%c, %r)\n  output %y\n")
    }

    #[test]
    fn conv_integer_for_a_float_consumer() {
        insta::assert_snapshot!(check(&trt("i8", 0, true)).lines().filter(|l| !l.starts_with("  const %w:")).collect::<Vec<_>>().join("\n"), @r#"
        graph "g" opset(ai.onnx=17) {
          input %xq: i8[2,3,7,7]
          input %r: f32[2,4,4,4]
          const %xz: i8[] 0
          const %w_zero_point_scalar: i8[] 0
          const %c_scale: f32[1,4,1,1] [0.00029999999, 0.00059999997, 0.00014999999, 0.00039]
          const %c_bias: f32[1,4,1,1] [0.1, -0.2, 0.05, 0.7]
          %c_acc: i32[2,4,4,4] = ConvInteger[kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]](%xq, %w, %xz, %w_zero_point_scalar)  "conv1"
          %c_acc_f32: f32[2,4,4,4] = Cast[to=1](%c_acc)
          %c_scaled: f32[2,4,4,4] = Mul(%c_acc_f32, %c_scale)
          %c: f32[2,4,4,4] = Add(%c_scaled, %c_bias)
          %y: f32[2,4,4,4] = Add(%c, %r)
          output %y
        }
        "#);
    }

    #[test]
    fn conv_integer_numerics() {
        for (act, xz) in [("u8", 128), ("i8", -5), ("i8", 0)] {
            for pc in [false, true] {
                let text = trt(act, xz, pc);
                let out = check(&text);
                assert!(out.contains("= ConvInteger") && !out.contains("= Conv["), "{out}");
                let dtype = if act == "u8" { DType::U8 } else { DType::I8 };
                // The second input r is not fed: run with the conv as the output instead.
                let text = text.replace("  input %r: f32[2,4,4,4]\n  %y = Add(%c, %r)\n  output %y\n", "  output %c\n");
                let d = max_diff(&text, dtype, &[2, 3, 7, 7]);
                assert!(d < 1e-5, "{act} per-channel={pc}: relative difference {d}");
            }
        }
    }

    #[test]
    fn conv_integer_refusals() {
        insta::assert_snapshot!(remarks(&trt("i8", 0, true).replace("const %wz: i8[4] [0, 0, 0, 0]", "const %wz: i8[4] [0, 1, 0, 0]")), @"// remark conv-integer: Conv 'conv1': onnxruntime 1.32 CPU ConvInteger takes one weight zero point, these differ per channel");
        let bn = trt("i8", 0, true).replace(
            "  %y = Add(%c, %r)",
            "  const %g: f32[4] [1.0, 1.0, 1.0, 1.0]\n  const %be: f32[4] [0.0, 0.0, 0.0, 0.0]\n  %n = BatchNormalization(%c, %g, %be, %be, %g)  \"bn1\"\n  %y = Add(%n, %r)",
        );
        insta::assert_snapshot!(remarks(&bn), @"// remark conv-integer: Conv 'conv1': its output feeds BatchNormalization 'bn1' (left for fold-bn to fold first)");
    }

    #[test]
    fn convtranspose_is_left_with_a_remark() {
        let text = U8_PT.replace("Conv[kernel_shape=[1,1], pads=[0,0,0,0]]", "ConvTranspose[kernel_shape=[1,1]]");
        insta::assert_snapshot!(remarks(&text), @"// remark qconvtranspose: QuantizeLinear (producing 'y'): ConvTranspose 'conv1': ONNX has no QLinear form of ConvTranspose (left in float between its DQ and Q)");
    }
}
