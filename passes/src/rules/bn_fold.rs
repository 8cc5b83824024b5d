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
//!   int8 negation). A bias `DQ(int32 b, s_b, 0)` stays int32, requantized at
//!   `s_b' = s_x·s_w'` when the conv input is a DQ with a constant per-tensor scale `s_x`:
//!   `b' = round((b·s_b·f + β − mean·f) / s_b')`; otherwise the new bias is float.
//!
//! BN parameters may be float constants or DQs of constants (quantizers quantize γ and β).
//!
//! The `fold-bn-qdq` pass (not in `-O2`) folds the quantizer's own Conv → Q → DQ → BN pattern
//! with the same builders, dropping the Q→DQ (a rounding step, and its saturation).
//!
//! Not yet here: MatMul producers, DQ'd ConvTranspose/Gemm weights, and an exact form for a
//! negated channel holding −128 (refused).

use super::qparams;
use crate::driver::RulePass;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new(
            "conv-bn-float",
            "(BatchNormalization (Conv ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            &[bn_inference, weight_is_float_const, producer_single_use, bn_params_fit],
            fold_float,
        ),
        Rule::new(
            "gemm-bn-float",
            "(BatchNormalization (Gemm ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            &[bn_inference, weight_is_float_const, producer_single_use, bn_params_fit],
            fold_float,
        ),
        Rule::new(
            "convtranspose-bn-float",
            "(BatchNormalization (ConvTranspose ?x ?w ?b) ?gamma ?beta ?mean ?var)",
            &[bn_inference, weight_is_float_const, producer_single_use, bn_params_fit],
            fold_float,
        ),
        Rule::new(
            "conv-bn-dq",
            "(BatchNormalization (Conv ?x (DequantizeLinear ?wq ?sw ?zw) ?b) ?gamma ?beta ?mean ?var)",
            &[bn_inference, producer_single_use, dq_weight_fits, bn_params_fit],
            fold_dq,
        ),
    ]
}

/// The `fold-bn-qdq` table: BN that the quantizer itself quantized. Not in `-O2`: dropping the
/// Q→DQ rounding moves the BN's quantized output by several steps on the ORT fixtures, beyond
/// `qdqc verify`'s per-tensor tolerance.
pub fn qdq_rules() -> Vec<Rule> {
    vec![
        Rule::new(
            "conv-qdq-bn-float",
            "(BatchNormalization (DequantizeLinear (QuantizeLinear (Conv ?x ?w ?b) ?s1 ?z1) ?s2 ?z2) ?gamma ?beta ?mean ?var)",
            &[bn_inference, weight_is_float_const, producer_single_use, bn_params_fit],
            fold_float,
        ),
        Rule::new(
            "conv-qdq-bn-dq",
            "(BatchNormalization (DequantizeLinear (QuantizeLinear (Conv ?x (DequantizeLinear ?wq ?sw ?zw) ?b) ?s1 ?z1) ?s2 ?z2) ?gamma ?beta ?mean ?var)",
            &[bn_inference, producer_single_use, dq_weight_fits, bn_params_fit],
            fold_dq,
        ),
    ]
}

pub fn pass() -> RulePass {
    RulePass::new("fold-bn", rules)
}

pub fn qdq_pass() -> RulePass {
    RulePass::new("fold-bn-qdq", qdq_rules)
}

// ---- reading constants -------------------------------------------------------------------

/// The values of a float constant, or of a DequantizeLinear of an integer constant (computed as
/// onnxruntime does: `(q − z)·s` in f32).
fn const_floats(g: &Graph, o: Operand, what: &str) -> Result<Vec<f32>, Refusal> {
    let not_const = || Refusal(format!("{what} '{}' is not a constant", g.operand_name(o)));
    if let Some(t) = g.const_tensor(o) {
        let dtype = t.dtype().map_err(|e| Refusal(e.to_string()))?;
        ensure!(dtype.is_float(), "{what} '{}' is {dtype}, not float", g.operand_name(o));
        return t.to_f32().map_err(|e| Refusal(format!("{what} '{}': {e}", g.operand_name(o))));
    }
    let Operand::Value(out) = o else { return Err(not_const()) };
    let node = g.node(out.node);
    if node.op != Op::DequantizeLinear || out.slot != 0 {
        return Err(not_const());
    }
    let t = g.const_tensor(node.input(0)).ok_or_else(not_const)?;
    let q = t.to_i64().map_err(|_| not_const())?;
    let p = qparams::of_node(g, out.node)?;
    qparams::dequantize(&q, t.dims(), &p)
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
    /// The BN at the root of the match, whose parameters are bound to ?gamma ?beta ?mean ?var.
    fn read(g: &Graph, m: &Match) -> Result<Bn, Refusal> {
        Bn::read_node(g, m.root(), m)
    }

    /// The BN node `bn`, whose parameters are bound to ?gamma ?beta ?mean ?var in `m`.
    pub(crate) fn read_node(g: &Graph, bn: NodeId, m: &Match) -> Result<Bn, Refusal> {
        let eps = attr::float(&g.node(bn).attrs, "epsilon").unwrap_or(1e-5);
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

/// The index in `m.nodes` of the producer (Conv or Gemm): after the BN, and after the Q→DQ
/// pair in the `conv-qdq-bn-*` rules.
fn producer_index(m: &Match) -> usize {
    if is_qdq_rule(m) {
        3
    } else {
        1
    }
}

/// Whether the match goes through a Q→DQ pair between the producer and the BN.
fn is_qdq_rule(m: &Match) -> bool {
    // BN, DQ, Q, producer[, weight DQ]: the `conv-qdq-bn-*` patterns bind ?s1.
    m.try_get("s1").is_some()
}

/// The producer (Conv or Gemm) of the match.
fn producer(m: &Match) -> NodeId {
    m.nodes[producer_index(m)]
}

/// The weight's DequantizeLinear in the `*-bn-dq` rules.
fn weight_dq(m: &Match) -> NodeId {
    m.nodes[producer_index(m) + 1]
}

/// The number of output channels of the producer, from its weight's dims.
fn out_channels(g: &Graph, m: &Match) -> Result<usize, Refusal> {
    let node = g.node(producer(m));
    let w = g.operand_type(node.input(1)).ok_or_else(|| Refusal::new("the weight's type is unknown"))?;
    let dims: Option<Vec<i64>> = w.shape.iter().flat_map(|s| s.iter()).map(|d| d.known()).collect();
    let dims = dims.ok_or_else(|| Refusal::new("the weight's shape is not fully known"))?;
    let c = match node.op {
        Op::Gemm => {
            ensure!(dims.len() == 2, "the Gemm weight has rank {}, not 2", dims.len());
            let t = attr::int(&node.attrs, "transB").unwrap_or(0);
            if t == 0 {
                dims[1]
            } else {
                dims[0]
            }
        }
        Op::ConvTranspose => {
            // The weight is [C_in, C_out/group, k...].
            ensure!(dims.len() >= 3, "the ConvTranspose weight has rank {}", dims.len());
            let group = attr::int(&node.attrs, "group").unwrap_or(1);
            ensure!(group >= 1 && dims[0] % group == 0, "group {group} does not divide {} input channels", dims[0]);
            dims[1] * group
        }
        _ => *dims.first().ok_or_else(|| Refusal::new("the weight is a scalar"))?,
    };
    Ok(c as usize)
}

// ---- guards ------------------------------------------------------------------------------

fn bn_inference(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let bn = g.node(m.root());
    ensure!(attr::int(&bn.attrs, "training_mode").unwrap_or(0) == 0, "BatchNormalization is in training mode");
    let extra = g.uses(m.root()).any(|(_, e)| e.slot != 0)
        || g.outputs().iter().any(|o| matches!(o.operand, Operand::Value(v) if v.node == m.root() && v.slot != 0));
    ensure!(!extra, "BatchNormalization's running mean/var outputs are used");
    Ok(())
}

fn weight_is_float_const(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let w = m.get("w");
    let Some(t) = g.const_tensor(w) else {
        // A DQ'd weight is conv-bn-dq's business; anything else is worth a remark.
        if let Operand::Value(o) = w {
            if g.node(o.node).op == Op::DequantizeLinear {
                return Err(Refusal::not_applicable());
            }
        }
        return Err(Refusal(format!("weight '{}' is not a constant", g.operand_name(w))));
    };
    ensure!(
        t.dtype().is_ok_and(|d| d == DType::F32),
        "weight '{}' is not an f32 constant with known data",
        g.operand_name(w)
    );
    t.to_f32().map_err(|e| Refusal(format!("weight '{}': {e}", g.operand_name(w))))?;
    Ok(())
}

fn producer_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let p = g.node(producer(m));
    let what = if is_qdq_rule(m) { ", the Q→DQ after it" } else { "" };
    ensure!(!m.interior_used_elsewhere(g), "{} {}{what} has other consumers", p.op, p.label());
    Ok(())
}

fn bn_params_fit(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let bn = Bn::read(g, m)?;
    let c = out_channels(g, m)?;
    for (name, v) in [("scale", &bn.gamma), ("bias", &bn.beta), ("mean", &bn.mean), ("variance", &bn.var)] {
        ensure!(v.len() == c, "BN {name} has {} values for {c} output channels", v.len());
    }
    let bad = bn.var.iter().position(|&v| (v as f64 + bn.eps as f64).is_nan() || v as f64 + bn.eps as f64 <= 0.0);
    ensure!(bad.is_none(), "BN variance + epsilon is not positive at channel {}", bad.unwrap());
    Ok(())
}

fn dq_weight_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let dq = weight_dq(m);
    let wq = m.get("wq");
    let t = g
        .const_tensor(wq)
        .ok_or_else(|| Refusal(format!("quantized weight '{}' is not a constant", g.operand_name(wq))))?;
    ensure!(t.dtype().is_ok_and(|d| d == DType::I8), "quantized weight '{}' is not int8", g.operand_name(wq));
    t.to_i64().map_err(|e| Refusal(format!("quantized weight '{}': {e}", g.operand_name(wq))))?;
    let p = qparams::of_node(g, dq)?;
    ensure!(p.zero_point.iter().all(|&z| z == 0), "the weight's zero point is not 0");
    ensure!(p.axis.is_none() || p.axis == Some(0), "the weight is quantized along axis {}, not 0", p.axis.unwrap());
    ensure!(t.dims().len() >= 2, "the quantized weight has rank {}", t.dims().len());
    Ok(())
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
    let prod = g.node(producer(m));
    let n = p.add_node(PatchNode {
        op: prod.op.clone(),
        name: prod.name().to_string(),
        attrs: attrs.into(),
        inputs: vec![m.get("x").into(), w, b],
        outputs: vec![out_name(g, m)],
    });
    p.replace(Outlet::new(m.root(), 0), PatchOperand::NewNode(n, 0));
    p.remove(producer(m));
    for &id in m.nodes[1..].iter().filter(|&&id| id != producer(m)) {
        p.remove(id);
    }
    p.remove(m.root());
    p
}

fn fold_float(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let bn = Bn::read(g, m)?;
    let (f, off) = bn.factors();
    let prod = g.node(producer(m));
    let wt = g.const_tensor(m.get("w")).expect("guarded");
    let w = wt.to_f32().map_err(|e| Refusal(e.to_string()))?;
    let dims = wt.dims().to_vec();
    let c = f.len();
    let mut attrs = prod.attrs.to_vec();
    let (w2, bias_scale) = if prod.op == Op::Gemm {
        let trans_b = attr::int(&prod.attrs, "transB").unwrap_or(0) != 0;
        let cols = dims[1] as usize;
        let w2: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = if trans_b { i / cols } else { i % cols };
                (v as f64 * f[ch]) as f32
            })
            .collect();
        let beta = attr::float(&prod.attrs, "beta").unwrap_or(1.0);
        attrs.retain(|a| a.name.as_deref() != Some("beta"));
        if m.get("b") != Operand::None {
            attrs.push(attr::make_float("beta", 1.0));
        }
        (w2, beta as f64)
    } else if prod.op == Op::ConvTranspose {
        // W is [C_in, C_out/group, k...]: output channel = group index·(C_out/group) + axis-1 index.
        let group = attr::int(&prod.attrs, "group").unwrap_or(1).max(1) as usize;
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
                n => return Err(Refusal(format!("bias has {n} values for {c} output channels"))),
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

/// The constant per-tensor scale of the conv input's DequantizeLinear, if any.
fn input_scale(g: &Graph, x: Operand) -> Option<f32> {
    let Operand::Value(o) = x else { return None };
    if g.node(o.node).op != Op::DequantizeLinear {
        return None;
    }
    let p = qparams::of_node(g, o.node).ok()?;
    (p.axis.is_none()).then(|| p.scale[0])
}

/// The int32 values and per-channel scales of a bias `DQ(int32 b, s_b, 0)`.
fn int_bias(g: &Graph, b: Operand, c: usize) -> Option<(Vec<i64>, Vec<f32>)> {
    let Operand::Value(o) = b else { return None };
    if g.node(o.node).op != Op::DequantizeLinear {
        return None;
    }
    let t = g.const_tensor(g.node(o.node).input(0))?;
    if t.dtype().ok()? != DType::I32 || t.dims().len() != 1 || t.dims()[0] as usize != c {
        return None;
    }
    let p = qparams::of_node(g, o.node).ok()?;
    if p.zero_point.iter().any(|&z| z != 0) {
        return None;
    }
    let s = if p.scale.len() == 1 { vec![p.scale[0]; c] } else { p.scale.to_vec() };
    (s.len() == c).then(|| (t.to_i64().ok().unwrap_or_default(), s)).filter(|(q, _)| q.len() == c)
}

fn fold_dq(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let bn = Bn::read(g, m)?;
    let (f, off) = bn.factors();
    let c = f.len();
    let dq = weight_dq(m);
    let wt = g.const_tensor(m.get("wq")).expect("guarded");
    let dims = wt.dims().to_vec();
    let q = wt.to_i64().map_err(|e| Refusal(e.to_string()))?;
    let wp = qparams::of_node(g, dq)?;
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
    let dqn = p.add_node(PatchNode {
        op: Op::DequantizeLinear,
        name: g.node(dq).name().to_string(),
        attrs: vec![attr::make_int("axis", 0)].into(),
        inputs: vec![wq_op, s_op, z_op],
        outputs: vec![format!("{wname}_bn_dq")],
    });
    // The bias: int32 at s_x·s_w' when possible, float otherwise.
    let b = m.get("b");
    let sx = input_scale(g, m.get("x"));
    let ib = if b == Operand::None { Some((vec![0; c], vec![1.0; c])) } else { int_bias(g, b, c) };
    let bname = format!("{}_bias", out_name(g, m));
    let b_op = match (sx, ib) {
        (Some(sx), Some((bq, sb))) => {
            let sb2: Vec<f32> = sw2.iter().map(|&s| sx * s).collect();
            let vals: Vec<f64> = (0..c)
                .map(|ch| {
                    let real = if b == Operand::None { 0.0 } else { bq[ch] as f64 * sb[ch] as f64 };
                    ((real * f[ch] + off[ch]) / sb2[ch] as f64).round_ties_even()
                })
                .collect();
            if vals.iter().all(|v| v.abs() <= i32::MAX as f64) && sb2.iter().all(|s| s.is_normal()) {
                let bq2: Vec<i64> = vals.iter().map(|&v| v as i64).collect();
                let bq_op =
                    p.add_const(&format!("{bname}_quantized"), Tensor::from_i64("", DType::I32, &[c as i64], &bq2));
                let bs_op = p.add_const(&format!("{bname}_quantized_scale"), Tensor::from_f32("", &[c as i64], &sb2));
                let bz_op = p.add_const(
                    &format!("{bname}_quantized_zero_point"),
                    Tensor::from_i64("", DType::I32, &[c as i64], &vec![0; c]),
                );
                let n = p.add_node(PatchNode {
                    op: Op::DequantizeLinear,
                    name: String::new(),
                    attrs: vec![attr::make_int("axis", 0)].into(),
                    inputs: vec![bq_op, bs_op, bz_op],
                    outputs: vec![bname.clone()],
                });
                PatchOperand::NewNode(n, 0)
            } else {
                float_bias(g, &mut p, b, &f, &off, &bname)?
            }
        }
        _ => float_bias(g, &mut p, b, &f, &off, &bname)?,
    };
    let attrs = g.node(producer(m)).attrs.to_vec();
    Ok(finish(g, m, p, PatchOperand::NewNode(dqn, 0), b_op, attrs))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pass, Remarks};
    use qdqc_eval::{run, RunOptions, Value};
    use qdqc_ir::text::{parse, print};

    /// Runs fold-bn then dce; returns the printed graph followed by the remarks.
    fn check(text: &str) -> String {
        crate::rules::run_and_print(&pass(), text)
    }

    /// The remarks of `check` only.
    fn remarks(text: &str) -> String {
        check(text).lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n")
    }

    /// Runs fold-bn-qdq then dce; returns the printed graph followed by the remarks.
    fn check_qdq(text: &str) -> String {
        let mut g = parse(text).unwrap();
        let mut remarks = Remarks::new();
        qdq_pass().run(&mut g, &mut remarks).unwrap();
        g.verify().unwrap();
        crate::DeadCodeElimination.run(&mut g, &mut remarks).unwrap();
        g.verify().unwrap();
        let mut out = print(&g);
        for r in &remarks {
            out.push_str(&format!("// remark {r}\n"));
        }
        out
    }

    /// Runs the graph before and after fold-bn on a pseudo-random input `x` of `dims`; returns
    /// the largest difference, relative to the largest output magnitude.
    fn max_diff(text: &str, dims: &[usize]) -> f64 {
        max_diff_with(pass(), text, dims)
    }

    fn max_diff_with(pass: RulePass, text: &str, dims: &[usize]) -> f64 {
        diff_impl(pass, text, dims, false)
    }

    /// For graphs whose output is quantized: the largest difference in integer steps.
    fn max_steps(text: &str, dims: &[usize]) -> f64 {
        diff_impl(pass(), text, dims, true)
    }

    fn diff_impl(pass: RulePass, text: &str, dims: &[usize], quantized_output: bool) -> f64 {
        let before = parse(text).unwrap();
        let mut after = parse(text).unwrap();
        assert!(pass.run(&mut after, &mut Remarks::new()).unwrap() > 0, "nothing folded");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let n: usize = dims.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 2001) as f32 / 500.0 - 2.0
            })
            .collect();
        let input = [("x".to_string(), Value::f32(dims, x).unwrap())];
        let a = run(&before, &input, &RunOptions::default()).unwrap().outputs.remove(0).1.to_f64_vec().unwrap();
        let b = run(&after, &input, &RunOptions::default()).unwrap().outputs.remove(0).1.to_f64_vec().unwrap();
        if quantized_output {
            // Integer outputs: the largest difference in steps.
            return a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        }
        let scale = a.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs() / scale).fold(0.0, f64::max)
    }

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(names, ["conv-bn-float", "gemm-bn-float", "convtranspose-bn-float", "conv-bn-dq"]);
    }

    // f = γ/√(var+ε) = [2/√4, -1/√1] = [1, -1] with ε = 1.
    const CONV_BN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,1,2,2]
  const %w: f32[2,1,1,1] [1.0, 2.0]
  const %b: f32[2] [0.5, -0.5]
  const %gamma: f32[2] [2.0, -1.0]
  const %beta: f32[2] [0.1, 0.2]
  const %mean: f32[2] [0.5, 1.0]
  const %var: f32[2] [3.0, 0.0]
  %c = Conv[kernel_shape=[1,1]](%x, %w, %b)
  %y = BatchNormalization[epsilon=1.0](%c, %gamma, %beta, %mean, %var)
  output %y
}
"#;

    #[test]
    fn conv_bn_float_folds_into_weight_and_bias() {
        insta::assert_snapshot!(check(CONV_BN), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,1,2,2]
              const %w_bn: f32[2,1,1,1] [1.0, -2.0]
              const %y_bias: f32[2] [0.1, 1.7]
              %y: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%x, %w_bn, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(CONV_BN, &[1, 1, 2, 2]) < 1e-5);
    }

    #[test]
    fn conv_bn_float_without_bias() {
        let text = CONV_BN.replace("(%x, %w, %b)", "(%x, %w)");
        insta::assert_snapshot!(check(&text), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,1,2,2]
              const %w_bn: f32[2,1,1,1] [1.0, -2.0]
              const %y_bias: f32[2] [-0.4, 1.2]
              %y: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%x, %w_bn, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(&text, &[1, 1, 2, 2]) < 1e-5);
    }

    #[test]
    fn conv_bn_float_refusals() {
        insta::assert_snapshot!(remarks(&CONV_BN.replace("epsilon=1.0", "epsilon=1.0, training_mode=1")), @"// remark conv-bn-float: BatchNormalization (producing 'y'): BatchNormalization is in training mode");
        insta::assert_snapshot!(remarks(&CONV_BN.replace("const %gamma", "input %gamma").replace(" [2.0, -1.0]", "")), @"// remark conv-bn-float: BatchNormalization (producing 'y'): BN scale 'gamma' is not a constant");
        insta::assert_snapshot!(remarks(&CONV_BN.replace("  output %y", "  output %y\n  output %c")), @"// remark conv-bn-float: BatchNormalization (producing 'y'): Conv (producing 'c') has other consumers");
        insta::assert_snapshot!(remarks(&CONV_BN.replace("[3.0, 0.0]", "[-5.0, 0.0]")), @"// remark conv-bn-float: BatchNormalization (producing 'y'): BN variance + epsilon is not positive at channel 0");
        insta::assert_snapshot!(remarks(&CONV_BN.replace("const %w", "input %w").replace(" [1.0, 2.0]", "")), @"// remark conv-bn-float: BatchNormalization (producing 'y'): weight 'w' is not a constant");
    }

    #[test]
    fn conv_bn_float_refuses_when_the_running_stats_are_used() {
        let text = CONV_BN
            .replace("opset(ai.onnx=17)", "opset(ai.onnx=13)")
            .replace("  %y = BatchNormalization", "  %y, %rm = BatchNormalization")
            .replace("  output %y", "  output %y\n  output %rm");
        insta::assert_snapshot!(remarks(&text), @"// remark conv-bn-float: BatchNormalization (producing 'y'): BatchNormalization's running mean/var outputs are used");
    }

    const GEMM_BN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2,3]
  const %w: f32[2,3] [1.0, -2.0, 0.5, 0.25, 3.0, -1.0]
  const %b: f32[2] [0.5, -0.5]
  const %gamma: f32[2] [2.0, -1.0]
  const %beta: f32[2] [0.1, 0.2]
  const %mean: f32[2] [0.5, 1.0]
  const %var: f32[2] [3.0, 0.0]
  %c = Gemm[alpha=0.5, beta=2.0, transB=1](%x, %w, %b)
  %y = BatchNormalization[epsilon=1.0](%c, %gamma, %beta, %mean, %var)
  output %y
}
"#;

    #[test]
    fn gemm_bn_float_folds_trans_b_alpha_beta() {
        insta::assert_snapshot!(check(GEMM_BN), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[2,3]
              const %w_bn: f32[2,3] [1.0, -2.0, 0.5, -0.25, -3.0, 1.0]
              const %y_bias: f32[2] [0.6, 2.2]
              %y: f32[2,2] = Gemm[alpha=0.5, transB=1, beta=1.0](%x, %w_bn, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(GEMM_BN, &[2, 3]) < 1e-5);
        let t = GEMM_BN
            .replace("f32[2,3] [1.0, -2.0, 0.5, 0.25, 3.0, -1.0]", "f32[3,2] [1.0, -2.0, 0.5, 0.25, 3.0, -1.0]")
            .replace(", transB=1", "");
        assert!(max_diff(&t, &[2, 3]) < 1e-5);
    }

    #[test]
    fn convtranspose_bn_float_folds_along_the_output_channels() {
        // W is [C_in=2, C_out/group=1, 1, 1] with group 2: output channel = input channel.
        let text = CONV_BN
            .replace("input %x: f32[1,1,2,2]", "input %x: f32[1,2,2,2]")
            .replace("Conv[kernel_shape=[1,1]]", "ConvTranspose[group=2, kernel_shape=[1,1]]");
        insta::assert_snapshot!(check(&text), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,2,2,2]
              const %w_bn: f32[2,1,1,1] [1.0, -2.0]
              const %y_bias: f32[2] [0.1, 1.7]
              %y: f32[1,2,2,2] = ConvTranspose[group=2, kernel_shape=[1,1]](%x, %w_bn, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(&text, &[1, 2, 2, 2]) < 1e-5);
        // group 1, W [C_in=1, C_out=2, 1, 1]: the output channel is W's axis 1.
        let text = CONV_BN
            .replace("%w: f32[2,1,1,1]", "%w: f32[1,2,1,1]")
            .replace("Conv[kernel_shape=[1,1]]", "ConvTranspose[kernel_shape=[1,1]]");
        insta::assert_snapshot!(check(&text), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,1,2,2]
              const %w_bn: f32[1,2,1,1] [1.0, -2.0]
              const %y_bias: f32[2] [0.1, 1.7]
              %y: f32[1,2,2,2] = ConvTranspose[kernel_shape=[1,1]](%x, %w_bn, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(&text, &[1, 1, 2, 2]) < 1e-5);
    }

    // f = [1, -1]: channel 1's int8 weights are negated; s_w' = s_w.
    const DQ_BN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,2,2]
  const %sx: f32[] 0.02
  const %zx: u8[] 128
  const %wq: i8[2,2,1,1] [10, -20, 127, -127]
  const %sw: f32[2] [0.01, 0.02]
  const %zw: i8[2] [0, 0]
  const %bq: i32[2] [100, -50]
  const %sb: f32[2] [0.0002, 0.0004]
  const %zb: i32[2] [0, 0]
  const %gamma: f32[2] [2.0, -1.0]
  const %beta: f32[2] [0.1, 0.2]
  const %mean: f32[2] [0.5, 1.0]
  const %var: f32[2] [3.0, 0.0]
  %xq = QuantizeLinear(%x, %sx, %zx)
  %xd = DequantizeLinear(%xq, %sx, %zx)
  %w = DequantizeLinear[axis=0](%wq, %sw, %zw)
  %b = DequantizeLinear[axis=0](%bq, %sb, %zb)
  %c = Conv[kernel_shape=[1,1]](%xd, %w, %b)
  %y = BatchNormalization[epsilon=1.0](%c, %gamma, %beta, %mean, %var)
  output %y
}
"#;

    #[test]
    fn conv_bn_dq_folds_into_the_scale_and_requantizes_the_bias() {
        insta::assert_snapshot!(check(DQ_BN), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,2,2,2]
              const %sx: f32[] 0.02
              const %zx: u8[] 128
              const %wq_bn: i8[2,2,1,1] [10, -20, -127, 127]
              const %wq_bn_scale: f32[2] [0.01, 0.02]
              const %wq_bn_zero_point: i8[2] [0, 0]
              const %y_bias_quantized: i32[2] [-1900, 3050]
              const %y_bias_quantized_scale: f32[2] [0.0002, 0.0004]
              const %y_bias_quantized_zero_point: i32[2] [0, 0]
              %xq: u8[1,2,2,2] q(0.02, 128) = QuantizeLinear(%x, %sx, %zx)
              %xd: f32[1,2,2,2] = DequantizeLinear(%xq, %sx, %zx)
              %wq_bn_dq: f32[2,2,1,1] = DequantizeLinear[axis=0](%wq_bn, %wq_bn_scale, %wq_bn_zero_point)
              %y_bias: f32[2] = DequantizeLinear[axis=0](%y_bias_quantized, %y_bias_quantized_scale, %y_bias_quantized_zero_point)
              %y: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%xd, %wq_bn_dq, %y_bias)
              output %y
            }
        "#);
        // The bias is requantized: at most half a bias step (s_x·s_w') off, far below 1e-5 here.
        assert!(max_diff(DQ_BN, &[1, 2, 2, 2]) < 1e-5);
        // With an output Q (step 0.01), the folded graph is at most one step off.
        let q = DQ_BN.replace(
            "  output %y",
            "  const %sy: f32[] 0.01\n  const %zy: u8[] 128\n  %yq = QuantizeLinear(%y, %sy, %zy)\n  output %yq",
        );
        assert!(max_steps(&q, &[1, 2, 2, 2]) <= 1.0);
    }

    /// Two convs read one weight DQ and one bias DQ, each followed by its own BN: each fold makes
    /// new weights (the shared DQ is read, never changed) and the shared DQs go with their last
    /// reader.
    #[test]
    fn conv_bn_dq_with_shared_weight_dqs() {
        let text = DQ_BN.replace(
            "  output %y\n",
            "  %c2 = Conv[kernel_shape=[1,1]](%xd, %w, %b)\n  %y2 = BatchNormalization[epsilon=0.5](%c2, %gamma, %beta, %mean, %var)\n  output %y\n  output %y2\n",
        );
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2,2,2]
          const %sx: f32[] 0.02
          const %zx: u8[] 128
          const %wq_bn: i8[2,2,1,1] [10, -20, -127, 127]
          const %wq_bn_scale: f32[2] [0.01, 0.02]
          const %wq_bn_zero_point: i8[2] [0, 0]
          const %y_bias_quantized: i32[2] [-1900, 3050]
          const %y_bias_quantized_scale: f32[2] [0.0002, 0.0004]
          const %y_bias_quantized_zero_point: i32[2] [0, 0]
          const %wq_bn_scale_1: f32[2] [0.01069045, 0.02828427]
          const %y2_bias_quantized: i32[2] [-1932, 2904]
          const %y2_bias_quantized_scale: f32[2] [0.00021380899, 0.0005656854]
          %xq: u8[1,2,2,2] q(0.02, 128) = QuantizeLinear(%x, %sx, %zx)
          %xd: f32[1,2,2,2] = DequantizeLinear(%xq, %sx, %zx)
          %wq_bn_dq: f32[2,2,1,1] = DequantizeLinear[axis=0](%wq_bn, %wq_bn_scale, %wq_bn_zero_point)
          %y_bias: f32[2] = DequantizeLinear[axis=0](%y_bias_quantized, %y_bias_quantized_scale, %y_bias_quantized_zero_point)
          %y: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%xd, %wq_bn_dq, %y_bias)
          %wq_bn_dq_1: f32[2,2,1,1] = DequantizeLinear[axis=0](%wq_bn, %wq_bn_scale_1, %wq_bn_zero_point)
          %y2_bias: f32[2] = DequantizeLinear[axis=0](%y2_bias_quantized, %y2_bias_quantized_scale, %y_bias_quantized_zero_point)
          %y2: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%xd, %wq_bn_dq_1, %y2_bias)
          output %y
          output %y2
        }
        "#);
        // Each output as the fold's own test measures it: the requantized bias is at most half a
        // bias step off (s_x·s_w', a larger step for the second BN), at most one output step.
        let q = "  const %sy: f32[] 0.01\n  const %zy: u8[] 128\n  %q1 = QuantizeLinear(%y, %sy, %zy)\n  %q2 = QuantizeLinear(%y2, %sy, %zy)\n";
        for outputs in ["  output %q1\n  output %q2\n", "  output %q2\n  output %q1\n"] {
            let quantized = text.replace("  output %y\n  output %y2\n", &format!("{q}{outputs}"));
            assert!(max_steps(&quantized, &[1, 2, 2, 2]) <= 1.0, "{outputs}");
        }
    }

    #[test]
    fn conv_bn_dq_per_tensor_scale_and_float_bias() {
        // A per-tensor weight scale becomes per-channel; without a DQ'd input the bias is float.
        let text = DQ_BN
            .replace("%sw: f32[2] [0.01, 0.02]", "%sw: f32[] 0.01")
            .replace("%zw: i8[2] [0, 0]", "%zw: i8[] 0")
            .replace("(%xd, %w, %b)", "(%x, %w, %b)")
            .replace("[gamma_placeholder]", "");
        insta::assert_snapshot!(check(&text), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,2,2,2]
              const %wq_bn: i8[2,2,1,1] [10, -20, -127, 127]
              const %wq_bn_scale: f32[2] [0.01, 0.01]
              const %wq_bn_zero_point: i8[2] [0, 0]
              const %y_bias: f32[2] [-0.38, 1.22]
              %wq_bn_dq: f32[2,2,1,1] = DequantizeLinear[axis=0](%wq_bn, %wq_bn_scale, %wq_bn_zero_point)
              %y: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%x, %wq_bn_dq, %y_bias)
              output %y
            }
        "#);
        assert!(max_diff(&text, &[1, 2, 2, 2]) < 1e-5);
    }

    #[test]
    fn conv_bn_dq_refusals() {
        insta::assert_snapshot!(remarks(&DQ_BN.replace("[10, -20, 127, -127]", "[10, -20, 127, -128]")), @"// remark conv-bn-dq: BatchNormalization (producing 'y'): channel 1 has a negative BN factor and an int8 weight of -128");
        insta::assert_snapshot!(remarks(&DQ_BN.replace("%zw: i8[2] [0, 0]", "%zw: i8[2] [0, 1]")), @"// remark conv-bn-dq: BatchNormalization (producing 'y'): the weight's zero point is not 0");
        insta::assert_snapshot!(remarks(&DQ_BN.replace("  output %y", "  output %y\n  output %c")), @"// remark conv-bn-dq: BatchNormalization (producing 'y'): Conv (producing 'c') has other consumers");
        insta::assert_snapshot!(remarks(&DQ_BN.replace("const %mean", "input %mean").replace(" [0.5, 1.0]", "")), @"// remark conv-bn-dq: BatchNormalization (producing 'y'): BN mean 'mean' is not a constant");
        insta::assert_snapshot!(remarks(&DQ_BN.replace("const %wq: i8", "input %wq: i8").replace(" [10, -20, 127, -127]", "")), @"// remark conv-bn-dq: BatchNormalization (producing 'y'): quantized weight 'wq' is not a constant");
    }

    // The quantizer's own pattern: Conv → Q → DQ → BN → Q (γ and β quantized too).
    const QDQ_BN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,2,2]
  const %sx: f32[] 0.02
  const %zx: u8[] 128
  const %wq: i8[2,2,1,1] [10, -20, 127, -127]
  const %sw: f32[2] [0.01, 0.02]
  const %zw: i8[2] [0, 0]
  const %sc: f32[] 0.1
  const %zc: u8[] 128
  const %gq: i8[2] [100, -50]
  const %sg: f32[] 0.02
  const %zg: i8[] 0
  const %beta: f32[2] [0.1, 0.2]
  const %mean: f32[2] [0.5, 1.0]
  const %var: f32[2] [3.0, 0.0]
  const %sy: f32[] 0.01
  const %zy: u8[] 128
  %xq = QuantizeLinear(%x, %sx, %zx)
  %xd = DequantizeLinear(%xq, %sx, %zx)
  %w = DequantizeLinear[axis=0](%wq, %sw, %zw)
  %c = Conv[kernel_shape=[1,1]](%xd, %w)
  %cq = QuantizeLinear(%c, %sc, %zc)
  %cd = DequantizeLinear(%cq, %sc, %zc)
  %gamma = DequantizeLinear(%gq, %sg, %zg)
  %b = BatchNormalization[epsilon=1.0](%cd, %gamma, %beta, %mean, %var)
  %y = QuantizeLinear(%b, %sy, %zy)
  output %y
}
"#;

    #[test]
    fn conv_qdq_bn_dq_folds_and_drops_the_rounding_step() {
        insta::assert_snapshot!(check_qdq(QDQ_BN), @r#"
            graph "g" opset(ai.onnx=17) {
              input %x: f32[1,2,2,2]
              const %sx: f32[] 0.02
              const %zx: u8[] 128
              const %sy: f32[] 0.01
              const %zy: u8[] 128
              const %wq_bn: i8[2,2,1,1] [10, -20, -127, 127]
              const %wq_bn_scale: f32[2] [0.01, 0.02]
              const %wq_bn_zero_point: i8[2] [0, 0]
              const %b_bias_quantized: i32[2] [-2000, 3000]
              const %b_bias_quantized_scale: f32[2] [0.0002, 0.0004]
              const %b_bias_quantized_zero_point: i32[2] [0, 0]
              %xq: u8[1,2,2,2] q(0.02, 128) = QuantizeLinear(%x, %sx, %zx)
              %xd: f32[1,2,2,2] = DequantizeLinear(%xq, %sx, %zx)
              %wq_bn_dq: f32[2,2,1,1] = DequantizeLinear[axis=0](%wq_bn, %wq_bn_scale, %wq_bn_zero_point)
              %b_bias: f32[2] = DequantizeLinear[axis=0](%b_bias_quantized, %b_bias_quantized_scale, %b_bias_quantized_zero_point)
              %b: f32[1,2,2,2] = Conv[kernel_shape=[1,1]](%xd, %wq_bn_dq, %b_bias)
              %y: u8[1,2,2,2] q(0.01, 128) = QuantizeLinear(%b, %sy, %zy)
              output %y
            }
        "#);
        // With the output Q made an Identity, dropping the Q→DQ moves the output by at most the
        // dropped rounding, 0.05·|f| = 0.05 (|f| = 1 here); the largest output is 4.5.
        // (The intermediate Q's range, ±12.8, holds every conv output: dropping a saturating Q
        // would change more, which is why this pass is not in -O2.)
        let text =
            QDQ_BN.replace("  %y = QuantizeLinear(%b, %sy, %zy)\n  output %y", "  %y = Identity(%b)\n  output %y");
        assert!(max_diff_with(qdq_pass(), &text, &[1, 2, 2, 2]) <= 0.05 / 4.5 + 1e-6);
    }

    #[test]
    fn conv_qdq_bn_refuses_a_shared_q() {
        let text = QDQ_BN.replace("  output %y", "  output %y\n  output %cq");
        insta::assert_snapshot!(check_qdq(&text).lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n"), @"// remark conv-qdq-bn-dq: BatchNormalization (producing 'b'): Conv (producing 'c'), the Q→DQ after it has other consumers");
    }

    #[test]
    fn the_qdq_table_builds() {
        let names: Vec<_> = qdq_rules().iter().map(|r| r.name).collect();
        assert_eq!(names, ["conv-qdq-bn-float", "conv-qdq-bn-dq"]);
    }
}
