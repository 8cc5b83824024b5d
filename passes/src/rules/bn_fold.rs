//! The `fold-bn` rules: an inference-mode BatchNormalization after a Conv or Gemm folds into
//! the producer's weights and bias. With `f = γ/√(var+ε)` per output channel:
//!
//! - `conv-bn-float`: Conv with a float constant weight `W` (and optional float constant bias
//!   `B`) ⇒ Conv with `W' = W·f` per output channel and `B' = (B − mean)·f + β`.
//! - `convtranspose-bn-float`: the same for ConvTranspose, whose weight is `[C_in, C_out/group, k…]`.
//! - `gemm-bn-float`: the same for Gemm (`transB` 0 or 1, `alpha`, `beta`; `C` of shape `[N]`,
//!   `[1]` or omitted) with `beta` folded into the new `C` and set to 1.
//! - `conv-bn-dq`: `DQ(int8 W, s_w, 0, axis 0)` → Conv ⇒ the same integer weights with the
//!   per-channel scale `s_w' = s_w·|f|` (a per-tensor scale becomes per-channel); a channel with
//!   `f < 0` has its int8 weights negated. A negated channel holding −128 is refused (it has no
//!   int8 negation). The new bias `(b − mean)·f + β` is a float constant (a bias `DQ(int32 b)`
//!   dequantized first): rounding it to int32 is the fusion's decision, which knows the output's
//!   scale and judges whether the rounding keeps the result exact (`bias-int32`).
//!
//! BN parameters may be float constants or DQs of constants (quantizers quantize γ and β).
//!
//! The `fold-bn-qdq` pass (not in `-O2`) folds the quantizer's own Conv → Q → DQ → BN pattern
//! with the same builders, dropping the Q→DQ (a rounding step, and its saturation).
//!
//! Not yet here: MatMul producers, DQ'd ConvTranspose/Gemm weights, and an exact form for a
//! negated channel holding −128 (refused).

use super::common::{self, QParams};
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use qdqc_ir::attr::{self, view};
use qdqc_ir::{DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new(
            "conv-bn-float",
            "(BatchNormalization@bn (Conv@prod ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            float_fold_fits,
            fold_float,
        ),
        Rule::new(
            "gemm-bn-float",
            "(BatchNormalization@bn (Gemm@prod ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            float_fold_fits,
            fold_float,
        ),
        Rule::new(
            "convtranspose-bn-float",
            "(BatchNormalization@bn (ConvTranspose@prod ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            float_fold_fits,
            fold_float,
        ),
        Rule::new(
            "conv-bn-dq",
            "(BatchNormalization@bn (Conv@prod ?x (DequantizeLinear@wdq ?wq ?sw ?zw) ?b) ?gamma ?beta ?mean ?var)",
            dq_fold_fits,
            fold_dq,
        ),
    ]
}

/// The `fold-bn-qdq` table: BN that the quantizer itself quantized. An approximation (not in
/// `-O2`): dropping the Q→DQ rounding moves the BN's quantized output by several steps on the ORT
/// fixtures, beyond `qdqc verify`'s per-tensor tolerance.
pub fn qdq_rules() -> Vec<Rule> {
    vec![
        Rule::new(
            "conv-qdq-bn-float",
            "(BatchNormalization@bn (DequantizeLinear (QuantizeLinear (Conv@prod ?x ?w ?b) ?s1 ?z1) ?s2 ?z2) ?gamma ?beta ?mean ?var)",
            float_fold_fits,
            fold_float,
        )
        .approx("fold-bn-qdq"),
        Rule::new(
            "conv-qdq-bn-dq",
            "(BatchNormalization@bn (DequantizeLinear (QuantizeLinear (Conv@prod ?x (DequantizeLinear@wdq ?wq ?sw ?zw) ?b) ?s1 ?z1) ?s2 ?z2) ?gamma ?beta ?mean ?var)",
            dq_fold_fits,
            fold_dq,
        )
        .approx("fold-bn-qdq"),
    ]
}

// ---- reading constants -------------------------------------------------------------------

/// The values of a float constant, or of a DequantizeLinear of an integer constant (computed as
/// onnxruntime does: `(q − z)·s` in f32).
fn const_floats(g: &Graph, o: Operand, what: &str) -> Result<Vec<f32>, Refusal> {
    let not_const = || Refusal::new(format!("{what} '{}' is not a constant", g.operand_name(o)));
    if let Some(t) = g.const_tensor(o) {
        let dtype = t.dtype().map_err(|e| Refusal::new(e.to_string()))?;
        ensure!(dtype.is_float(), "{what} '{}' is {dtype}, not float", g.operand_name(o));
        return t.to_f32().map_err(|e| Refusal::new(format!("{what} '{}': {e}", g.operand_name(o))));
    }
    let Operand::Value(out) = o else { return Err(not_const()) };
    let node = g.node(out.node);
    if node.op != Op::DequantizeLinear || out.slot != 0 {
        return Err(not_const());
    }
    let t = g.const_tensor(node.input(0)).ok_or_else(not_const)?;
    let q = t.to_i64().map_err(|_| not_const())?;
    let p = common::of_node(g, out.node)?;
    common::dequantize(&q, t.dims(), &p)
}

/// γ, β, mean, var and ε of the matched BatchNormalization.
pub(crate) struct Bn {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

impl Bn {
    /// The BN node `bn`, whose parameters are bound to ?gamma ?beta ?mean ?var in `m`.
    pub(crate) fn read(g: &Graph, bn: NodeId, m: &Match) -> Result<Bn, Refusal> {
        let eps = view::BatchNormalization::of(&g.node(bn).attrs).epsilon;
        Ok(Bn {
            gamma: const_floats(g, m.get("gamma"), "BN scale")?,
            beta: const_floats(g, m.get("beta"), "BN bias")?,
            mean: const_floats(g, m.get("mean"), "BN mean")?,
            var: const_floats(g, m.get("var"), "BN variance")?,
            eps,
        })
    }

    /// The per-channel factor `γ/√(var+ε)` and offset `β − mean·f`, in f64.
    pub(crate) fn factors(&self) -> (Vec<f64>, Vec<f64>) {
        let f: Vec<f64> = (0..self.gamma.len())
            .map(|c| self.gamma[c] as f64 / (self.var[c] as f64 + self.eps as f64).sqrt())
            .collect();
        let o = (0..f.len()).map(|c| self.beta[c] as f64 - self.mean[c] as f64 * f[c]).collect();
        (f, o)
    }
}

/// Whether the match goes through a Q→DQ pair between the producer and the BN.
fn is_qdq_rule(m: &Match) -> bool {
    // The `conv-qdq-bn-*` patterns bind ?s1.
    m.try_get("s1").is_some()
}

/// The number of output channels of the producer, from its weight's dims.
fn out_channels(g: &Graph, m: &Match) -> Result<usize, Refusal> {
    let node = g.node(m.node("prod"));
    let w = g.operand_type(node.input(1)).ok_or_else(|| Refusal::new("the weight's type is unknown"))?;
    let dims: Option<Vec<i64>> = w.shape.iter().flat_map(|s| s.iter()).map(|d| d.known()).collect();
    let dims = dims.ok_or_else(|| Refusal::new("the weight's shape is not fully known"))?;
    let c = match node.op {
        Op::Gemm => {
            ensure!(dims.len() == 2, "the Gemm weight has rank {}, not 2", dims.len());
            if view::Gemm::of(&node.attrs).trans_b {
                dims[0]
            } else {
                dims[1]
            }
        }
        Op::ConvTranspose => {
            // The weight is [C_in, C_out/group, k...].
            ensure!(dims.len() >= 3, "the ConvTranspose weight has rank {}", dims.len());
            let group = view::Conv::of(&node.attrs).group;
            ensure!(group >= 1 && dims[0] % group == 0, "group {group} does not divide {} input channels", dims[0]);
            dims[1] * group
        }
        _ => *dims.first().ok_or_else(|| Refusal::new("the weight is a scalar"))?,
    };
    Ok(c as usize)
}

// ---- checks ------------------------------------------------------------------------------

/// What a float fold reads: the BN's parameters and the float weight.
struct FloatFold {
    bn: Bn,
    w: Vec<f32>,
}

fn float_fold_fits(g: &Graph, m: &Match) -> Result<FloatFold, Refusal> {
    common::bn_inference(g, m.node("bn"))?;
    let w = float_weight(g, m)?;
    producer_single_use(g, m)?;
    Ok(FloatFold { bn: bn_params(g, m)?, w })
}

/// What a fold into DQ'd int8 weights reads: the BN's parameters, the int8 weight and its
/// DequantizeLinear's parameters.
struct DqFold {
    bn: Bn,
    q: Vec<i64>,
    wp: QParams,
}

fn dq_fold_fits(g: &Graph, m: &Match) -> Result<DqFold, Refusal> {
    common::bn_inference(g, m.node("bn"))?;
    producer_single_use(g, m)?;
    let (q, wp) = dq_weight(g, m)?;
    Ok(DqFold { bn: bn_params(g, m)?, q, wp })
}

/// The weight as f32: a float constant (a DQ'd weight is conv-bn-dq's business).
fn float_weight(g: &Graph, m: &Match) -> Result<Vec<f32>, Refusal> {
    let w = m.get("w");
    let Some(t) = g.const_tensor(w) else {
        if let Operand::Value(o) = w {
            if g.node(o.node).op == Op::DequantizeLinear {
                return Err(Refusal::NotApplicable);
            }
        }
        return Err(Refusal::new(format!("weight '{}' is not a constant", g.operand_name(w))));
    };
    ensure!(
        t.dtype().is_ok_and(|d| d == DType::F32),
        "weight '{}' is not an f32 constant with known data",
        g.operand_name(w)
    );
    t.to_f32().map_err(|e| Refusal::new(format!("weight '{}': {e}", g.operand_name(w))))
}

fn producer_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let p = g.node(m.node("prod"));
    let what = if is_qdq_rule(m) { ", the Q→DQ after it" } else { "" };
    common::interior_single_use(g, m, || format!("{} {}{what}", p.op, p.label()))
}

/// The BN's parameters, one per output channel of the producer, with a positive variance + ε.
fn bn_params(g: &Graph, m: &Match) -> Result<Bn, Refusal> {
    let bn = Bn::read(g, m.node("bn"), m)?;
    let c = out_channels(g, m)?;
    for (name, v) in [("scale", &bn.gamma), ("bias", &bn.beta), ("mean", &bn.mean), ("variance", &bn.var)] {
        ensure!(v.len() == c, "BN {name} has {} values for {c} output channels", v.len());
    }
    let bad = bn.var.iter().position(|&v| (v as f64 + bn.eps as f64).is_nan() || v as f64 + bn.eps as f64 <= 0.0);
    ensure!(bad.is_none(), "BN variance + epsilon is not positive at channel {}", bad.unwrap());
    Ok(bn)
}

/// The int8 weight of a zero-point-0 DequantizeLinear along axis 0 (or per tensor).
fn dq_weight(g: &Graph, m: &Match) -> Result<(Vec<i64>, QParams), Refusal> {
    let wq = m.get("wq");
    let t = g
        .const_tensor(wq)
        .ok_or_else(|| Refusal::new(format!("quantized weight '{}' is not a constant", g.operand_name(wq))))?;
    ensure!(t.dtype().is_ok_and(|d| d == DType::I8), "quantized weight '{}' is not int8", g.operand_name(wq));
    let q = t.to_i64().map_err(|e| Refusal::new(format!("quantized weight '{}': {e}", g.operand_name(wq))))?;
    let p = common::of_node(g, m.node("wdq"))?;
    ensure!(p.zero_point.iter().all(|&z| z == 0), "the weight's zero point is not 0");
    ensure!(p.axis.is_none() || p.axis == Some(0), "the weight is quantized along axis {}, not 0", p.axis.unwrap());
    ensure!(t.dims().len() >= 2, "the quantized weight has rank {}", t.dims().len());
    Ok((q, p))
}

// ---- builders ----------------------------------------------------------------------------

/// The BN's output name, the base for the folded producer's output.
fn out_name(g: &Graph, m: &Match) -> String {
    g.value(Outlet::new(m.root(), 0)).name.clone()
}

/// Adds the folded producer node (reading `x`, `w`, `b`) and replaces the BN's output with it.
fn finish(
    g: &Graph,
    m: &Match,
    mut p: Patch,
    w: PatchOperand,
    b: PatchOperand,
    attrs: Vec<qdqc_ir::proto::AttributeProto>,
) -> Patch {
    let prod = g.node(m.node("prod"));
    let node = PatchNode::new(prod.op.clone(), [m.get("x").into(), w, b]).named(prod.name()).attrs(attrs);
    let n = p.add(node.output(out_name(g, m)));
    p.replace(Outlet::new(m.root(), 0), n);
    p.remove(m.node("prod"));
    for &id in m.nodes()[1..].iter().filter(|&&id| id != m.node("prod")) {
        p.remove(id);
    }
    p.remove(m.root());
    p
}

fn fold_float(g: &Graph, m: &Match, FloatFold { bn, w }: FloatFold) -> Result<Patch, Refusal> {
    let (f, off) = bn.factors();
    let prod = g.node(m.node("prod"));
    let dims = g.const_tensor(m.get("w")).expect("checked").dims().to_vec();
    let c = f.len();
    let mut attrs = prod.attrs.to_vec();
    let (w2, bias_scale) = if prod.op == Op::Gemm {
        let gemm = view::Gemm::of(&prod.attrs);
        let trans_b = gemm.trans_b;
        let cols = dims[1] as usize;
        let w2: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = if trans_b { i / cols } else { i % cols };
                (v as f64 * f[ch]) as f32
            })
            .collect();
        let beta = gemm.beta;
        attrs.retain(|a| a.name.as_deref() != Some("beta"));
        if m.get("b") != Operand::None {
            attrs.push(attr::make_float("beta", 1.0));
        }
        (w2, beta as f64)
    } else if prod.op == Op::ConvTranspose {
        // W is [C_in, C_out/group, k...]: output channel = group index·(C_out/group) + axis-1 index.
        let group = view::Conv::of(&prod.attrs).group.max(1) as usize;
        let (cin, per) = (dims[0] as usize, dims[1] as usize);
        let inner = w.len() / (cin * per).max(1);
        let w2 = w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (ci, j) = (i / (per * inner), (i / inner) % per);
                (v as f64 * f[ci / (cin / group) * per + j]) as f32
            })
            .collect();
        (w2, 1.0)
    } else {
        let inner = w.len() / c.max(1);
        let w2 = w.iter().enumerate().map(|(i, &v)| (v as f64 * f[i / inner]) as f32).collect();
        (w2, 1.0)
    };
    let b = match m.get("b") {
        Operand::None => vec![0.0; c],
        b => {
            let v = const_floats(g, b, "bias")?;
            match v.len() {
                1 => vec![v[0]; c],
                n if n == c => v,
                n => return Err(Refusal::new(format!("bias has {n} values for {c} output channels"))),
            }
        }
    };
    ensure!(
        m.get("b") == Operand::None || g.const_tensor(m.get("b")).is_none_or(|t| t.dims().len() <= 1),
        "bias has rank {}",
        g.const_tensor(m.get("b")).map_or(0, |t| t.dims().len())
    );
    let b2: Vec<f32> = (0..c).map(|i| (b[i] as f64 * bias_scale * f[i] + off[i]) as f32).collect();
    let mut p = Patch::new();
    let wn = format!("{}_bn", g.operand_name(m.get("w")));
    let w_op = p.add_const(&wn, Tensor::from_f32("", &dims, &w2));
    let b_op = p.add_const(&format!("{}_bias", out_name(g, m)), Tensor::from_f32("", &[c as i64], &b2));
    if prod.op == Op::Gemm && m.get("b") == Operand::None {
        attrs.push(attr::make_float("beta", 1.0));
    }
    Ok(finish(g, m, p, w_op, b_op, attrs))
}

fn fold_dq(g: &Graph, m: &Match, DqFold { bn, q, wp }: DqFold) -> Result<Patch, Refusal> {
    let (f, off) = bn.factors();
    let c = f.len();
    let dq = m.node("wdq");
    let dims = g.const_tensor(m.get("wq")).expect("checked").dims().to_vec();
    let sw: Vec<f32> = if wp.scale.len() == 1 { vec![wp.scale[0]; c] } else { wp.scale.to_vec() };
    ensure!(sw.len() == c && dims[0] as usize == c, "the weight has {} channels for {c} BN channels", dims[0]);
    let inner = q.len() / c;
    let mut q2 = q.clone();
    for ch in 0..c {
        if f[ch] < 0.0 {
            let row = &mut q2[ch * inner..(ch + 1) * inner];
            ensure!(!row.contains(&-128), "channel {ch} has a negative BN factor and an int8 weight of -128");
            row.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let sw2: Vec<f32> = (0..c).map(|ch| (sw[ch] as f64 * f[ch].abs()) as f32).collect();
    ensure!(
        sw2.iter().all(|s| s.is_normal() && *s > 0.0),
        "a folded weight scale is not a positive normal number (a BN scale of 0?)"
    );
    let wname = g.operand_name(m.get("wq")).to_string();
    let mut p = Patch::new();
    let wq_op = p.add_const(&format!("{wname}_bn"), Tensor::from_i64("", DType::I8, &dims, &q2));
    let s_op = p.add_const(&format!("{wname}_bn_scale"), Tensor::from_f32("", &[c as i64], &sw2));
    let z_op =
        p.add_const(&format!("{wname}_bn_zero_point"), Tensor::from_i64("", DType::I8, &[c as i64], &vec![0; c]));
    let dqn = PatchNode::new(Op::DequantizeLinear, [wq_op, s_op, z_op]).named(g.node(dq).name());
    let dqn = p.add(dqn.attrs(vec![attr::make_int("axis", 0)]).output(format!("{wname}_bn_dq")));
    // The bias in float: rounding it to int32 here, before the output's scale is known, could
    // move the output by more than the tie tolerance; the fusion that makes it int32 judges that.
    let bname = format!("{}_bias", out_name(g, m));
    let b_op = float_bias(g, &mut p, m.get("b"), &f, &off, &bname)?;
    let attrs = g.node(m.node("prod")).attrs.to_vec();
    Ok(finish(g, m, p, dqn, b_op, attrs))
}

fn float_bias(
    g: &Graph,
    p: &mut Patch,
    b: Operand,
    f: &[f64],
    off: &[f64],
    name: &str,
) -> Result<PatchOperand, Refusal> {
    let c = f.len();
    let b = if b == Operand::None { vec![0.0; c] } else { const_floats(g, b, "bias")? };
    ensure!(b.len() == c, "bias has {} values for {c} output channels", b.len());
    let v: Vec<f32> = (0..c).map(|i| (b[i] as f64 * f[i] + off[i]) as f32).collect();
    Ok(p.add_const(name, Tensor::from_f32("", &[c as i64], &v)))
}
