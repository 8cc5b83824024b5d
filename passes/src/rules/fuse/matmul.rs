//! MatMul and Gemm between DequantizeLinear inputs become integer ops:
//!
//! - `qlinearmatmul`: `Q(MatMul(DQ a, DQ b))` ⇒ `QLinearMatMul` (weight × activation and
//!   activation × activation, as in attention). `a` and `y` per tensor; `b` per tensor or per
//!   column (a 2-D `b` quantized along its last axis).
//! - `qgemm` (ort): `Q(Gemm(DQ a, DQ b, C))` ⇒ com.microsoft `QGemm` with `C` as int32 at
//!   `alpha·s_a·s_b` (per column), `beta` folded into it.
//! - `matmul-add-bias` (ort): `Q(Add(MatMul(DQ a, DQ b), bias))` with a 2-D `a` and a constant
//!   (or DQ'd constant) bias ⇒ `QGemm`; `bias-add-matmul` the same with the bias on the left.
//! - `gemm-as-conv`, `matmul-add-bias-as-conv` (onnx): the same two matches as standard ops only:
//!   `Reshape(a, [N,K,1,1])` → 1×1 `QLinearConv` (weight `[M,K,1,1]`, per output channel) →
//!   `Reshape([N,M])`, bias int32 at `s_a·s_w`.
//! - `qgemm-float-out` (ort): `Gemm(DQ a, DQ b, C)` whose output is not quantized (a TensorRT
//!   style logits layer) ⇒ `QGemm` without `y_scale`, which outputs `f32(acc)·alpha·s_a·s_b`.
//! - `gemm-integer`: the same Gemm in standard ops (the `--target onnx` fallback) ⇒
//!   `MatMulInteger(a, bᵀ)` → `Cast` → `Mul(alpha·s_a·s_b)` → `Add(beta·C)`.
//! - `matmul-integer`: `MatMul(DQ a, DQ b)` whose output is not quantized ⇒
//!   `MatMulInteger` → `Cast` → `Mul(s_a·s_b)`.
//!
//! Integer types are those onnxruntime 1.32's CPU provider runs (checked by building each op):
//! QLinearMatMul, QGemm and QLinearConv take (a, b) ∈ {(u8, u8), (u8, i8), (i8, i8)} with an
//! output of a's type; MatMulInteger takes any pair of u8/i8.
//!
//! Not yet here: the onnxruntime quantizer's `MatMul → Q → DQ → Add(DQ bias) → Q` (the inner Q
//! is fused by `qlinearmatmul` first; the Add is QLinearAdd's business: fusing it would drop
//! that Q's rounding and saturation, which onnxruntime keeps), and N-D activations for QGemm
//! (it is 2-D only; `matmul-integer` takes those).

use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::common::{self, QParams};
use crate::Target;
use qdqc_ir::attr::{self, view};
use qdqc_ir::{DType, Graph, Op, Operand, Outlet, Tensor};

/// `DQ a` and `DQ b`, the matched MatMul's or Gemm's inputs.
const A_B: &str = "(DequantizeLinear@adq ?a ?as ?az) (DequantizeLinear@bdq ?b ?bs ?bz)";

/// The rule table. The rules rooted at a QuantizeLinear come first; the float-output forms give
/// way to them where they fire.
pub fn rules() -> Vec<Rule> {
    let q_matmul = format!("(QuantizeLinear (MatMul@prod {A_B}) ?ys ?yz)");
    let q_gemm = format!("(QuantizeLinear (Gemm@prod {A_B} ?c) ?ys ?yz)");
    let q_matmul_add = format!("(QuantizeLinear (Add (MatMul@prod {A_B}) ?c) ?ys ?yz)");
    let q_add_matmul = format!("(QuantizeLinear (Add ?c (MatMul@prod {A_B})) ?ys ?yz)");
    const ORT: &[Target] = &[Target::Ort];
    const ONNX: &[Target] = &[Target::Onnx];
    vec![
        Rule::new("qlinearmatmul", &q_matmul, qlinearmatmul_fits, build_qlinearmatmul),
        Rule::new("qgemm", &q_gemm, qgemm_fits, build_qgemm).exact_where("bias-int32", bias_exact).only(ORT),
        Rule::new("gemm-as-conv", &q_gemm, conv_form_fits, build_conv).exact_where("bias-int32", bias_exact).only(ONNX),
        Rule::new("matmul-add-bias", &q_matmul_add, qgemm_fits, build_qgemm)
            .exact_where("bias-int32", bias_exact)
            .only(ORT),
        Rule::new("matmul-add-bias-as-conv", &q_matmul_add, conv_form_fits, build_conv)
            .exact_where("bias-int32", bias_exact)
            .only(ONNX),
        Rule::new("bias-add-matmul", &q_add_matmul, qgemm_fits, build_qgemm)
            .exact_where("bias-int32", bias_exact)
            .only(ORT),
        Rule::new("bias-add-matmul-as-conv", &q_add_matmul, conv_form_fits, build_conv)
            .exact_where("bias-int32", bias_exact)
            .only(ONNX),
        // The float-output forms give way to the QuantizeLinear-rooted rules. (The Gemm's defer
        // to `qgemm` on either target: on `--target onnx` a Gemm that `gemm-as-conv` refuses but
        // `qgemm` would take stays float, with `qgemm`'s remark.)
        Rule::new("qgemm-float-out", &format!("(Gemm@prod {A_B} ?c)"), fc_fits, build_qgemm_float)
            .only(ORT)
            .defers_to(&["qgemm"])
            .by_cost(crate::cost::integer_form_pays),
        Rule::new("gemm-integer", &format!("(Gemm@prod {A_B} ?c)"), gemm_integer_fits, build_gemm_integer)
            .defers_to(&["qgemm"])
            .by_cost(crate::cost::integer_form_pays),
        Rule::new("matmul-integer", &format!("(MatMul@prod {A_B})"), matmul_integer_fits, build_matmul_integer)
            .defers_to(&["qlinearmatmul", "matmul-add-bias", "bias-add-matmul"])
            .by_cost(crate::cost::integer_form_pays),
    ]
}

// ---- reading the match -------------------------------------------------------------------

/// A quantized operand: the integer value and its DequantizeLinear's parameters.
struct Side {
    q: Operand,
    scale: Operand,
    zp: Operand,
    p: QParams,
    /// The integer value's dims (`None` where unknown, e.g. a batch `N`); `None` if the rank is unknown.
    dims: Option<Vec<Option<i64>>>,
}

fn side(g: &Graph, m: &Match, v: &str) -> Result<Side, Refusal> {
    let dq = m.node(if v == "a" { "adq" } else { "bdq" });
    let (q, scale, zp) = (m.get(v), m.get(&format!("{v}s")), m.get(&format!("{v}z")));
    let p = common::of_node(g, dq)?;
    let ty = g.operand_type(q);
    let dims = ty.and_then(|t| {
        let r = t.rank()?;
        let d: Vec<Option<i64>> = t.shape.iter().flat_map(|s| s.iter()).map(|d| d.known()).collect();
        (d.len() == r).then_some(d)
    });
    Ok(Side { q, scale, zp, p, dims })
}

/// The output QuantizeLinear's parameters (root of the `Q(...)` rules).
fn out_params(g: &Graph, m: &Match) -> Result<Option<QParams>, Refusal> {
    let root = m.root();
    match g.node(root).op {
        Op::QuantizeLinear => Ok(Some(common::of_node(g, root)?)),
        _ => Ok(None),
    }
}

/// `Y = alpha·op(A)·op(B) + beta·C`: the Gemm's attributes (MatMul + Add: the defaults).
struct Fc {
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    c: Operand,
}

fn fc_of(g: &Graph, m: &Match) -> Fc {
    let prod = g.node(m.node("prod"));
    let c = m.try_get("c").unwrap_or(Operand::None);
    // (A MatMul, with or without an Add, is a Gemm with the defaults.)
    let gemm = view::Gemm::of(if prod.op == Op::Gemm { &prod.attrs } else { &[] });
    Fc { trans_a: gemm.trans_a, trans_b: gemm.trans_b, alpha: gemm.alpha, beta: gemm.beta, c }
}

/// What the checks decode and the builds use: both sides, the output's parameters (for the
/// `Q(...)` rules) and the Gemm form.
struct Parts {
    a: Side,
    b: Side,
    y: Option<QParams>,
    fc: Fc,
}

/// The (a, b) pairs onnxruntime 1.32 CPU runs QLinearMatMul, QGemm and QLinearConv for.
fn ort_pair(a: DType, b: DType) -> bool {
    matches!((a, b), (DType::U8, DType::U8) | (DType::U8, DType::I8) | (DType::I8, DType::I8))
}

// ---- checks ------------------------------------------------------------------------------

/// The MatMul/Gemm (and Add) inside the match feed nothing else; the DQs may be shared.
fn interior_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    for &id in &m.nodes()[1..] {
        let n = g.node(id);
        if n.op == Op::DequantizeLinear {
            continue;
        }
        let outside = g.uses(id).any(|(c, _)| !m.nodes().contains(&c)) || g.feeds_output(id);
        ensure!(!outside, "the output of {} {} has other consumers", n.op, n.label());
    }
    Ok(())
}

/// Common parameter checks: per-tensor `a` and `y`, `b` per tensor or per column `col_axis` of a
/// 2-D `b`, the integer types, positive scales.
fn params_fit(g: &Graph, m: &Match, col_axis: usize, y: Option<&QParams>) -> Result<(Side, Side), Refusal> {
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    ensure!(a.p.axis.is_none(), "a is quantized per axis (axis {}), not per tensor", a.p.axis.unwrap());
    if let Some(ax) = b.p.axis {
        let rank = b.dims.as_ref().map(|d| d.len());
        ensure!(
            rank == Some(2) && ax == col_axis,
            "b is quantized along axis {ax} of rank {}; only per tensor or per column (axis {col_axis} of a 2-D b) fits",
            rank.map_or("?".to_string(), |r| r.to_string())
        );
    }
    common::positive_f32_scales(&a.p, "a")?;
    common::positive_f32_scales(&b.p, "b")?;
    if let Some(y) = y {
        ensure!(y.axis.is_none(), "the output is quantized per axis (axis {}), not per tensor", y.axis.unwrap());
        common::positive_f32_scales(y, "output")?;
        ensure!(
            y.dtype == a.p.dtype,
            "the output is {} but a is {}: onnxruntime's integer matmuls output a's type",
            y.dtype,
            a.p.dtype
        );
    }
    ensure!(
        ort_pair(a.p.dtype, b.p.dtype),
        "a {} × b {}: onnxruntime 1.32 CPU runs u8×u8, u8×i8 and i8×i8 only",
        a.p.dtype,
        b.p.dtype
    );
    Ok((a, b))
}

fn qlinearmatmul_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    interior_single_use(g, m)?;
    let y = out_params(g, m)?;
    let (a, b) = params_fit(g, m, 1, y.as_ref())?;
    Ok(Parts { a, b, y, fc: fc_of(g, m) })
}

/// QGemm's form, fed by nothing outside the match.
fn qgemm_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    interior_single_use(g, m)?;
    fc_fits(g, m)
}

/// QGemm's form and the 1×1 QLinearConv's, fed by nothing outside the match.
fn conv_form_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    let parts = qgemm_fits(g, m)?;
    conv_fits(g, m, &parts)?;
    Ok(parts)
}

/// 2-D operands, the bias readable and per column.
fn fc_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    let fc = fc_of(g, m);
    let y = out_params(g, m)?;
    let (a, b) = params_fit(g, m, if fc.trans_b { 0 } else { 1 }, y.as_ref())?;
    let rank = |s: &Side| s.dims.as_ref().map_or("unknown".to_string(), |d| d.len().to_string());
    ensure!(
        a.dims.as_ref().is_some_and(|d| d.len() == 2),
        "a has rank {}, not 2 (QGemm and its 1×1 QLinearConv form are 2-D)",
        rank(&a)
    );
    ensure!(
        b.dims.as_ref().is_some_and(|d| d.len() == 2),
        "b has rank {}, not 2 (QGemm and its 1×1 QLinearConv form are 2-D)",
        rank(&b)
    );
    ensure!(fc.alpha.is_finite() && fc.alpha > 0.0, "alpha {} is not positive", fc.alpha);
    let n = out_cols(&b, &fc)?;
    if fc.c != Operand::None {
        bias_values(g, fc.c, n)?;
    }
    Ok(Parts { a, b, y, fc })
}

/// The standard 1×1-QLinearConv form: no transA, alpha 1, a constant weight.
fn conv_fits(g: &Graph, _: &Match, Parts { b, fc, .. }: &Parts) -> Result<(), Refusal> {
    ensure!(!fc.trans_a, "transA=1 has no 1×1 QLinearConv form");
    ensure!(fc.alpha == 1.0, "alpha {} has no QLinearConv form", fc.alpha);
    ensure!(g.const_tensor(b.q).is_some(), "the weight '{}' is not a constant", g.operand_name(b.q));
    ensure!(b.dims.as_ref().is_some_and(|d| d.iter().all(|x| x.is_some())), "the weight's dims are not known");
    Ok(())
}

fn matmul_integer_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    let (a, b) = matmul_integer_params(g, m, 1)?;
    Ok(Parts { a, b, y: None, fc: fc_of(g, m) })
}

/// MatMulInteger's parameters: per-tensor a, b per tensor or per column `col_axis` of a 2-D b.
fn matmul_integer_params(g: &Graph, m: &Match, col_axis: usize) -> Result<(Side, Side), Refusal> {
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    ensure!(a.p.axis.is_none(), "a is quantized per axis (axis {}), not per tensor", a.p.axis.unwrap());
    if let Some(ax) = b.p.axis {
        let rank = b.dims.as_ref().map(|d| d.len());
        ensure!(
            rank == Some(2) && ax == col_axis,
            "b is quantized along axis {ax}; only per tensor or per column (axis {col_axis} of a 2-D b) fits"
        );
    }
    common::positive_f32_scales(&a.p, "a")?;
    common::positive_f32_scales(&b.p, "b")?;
    for (s, w) in [(&a, "a"), (&b, "b")] {
        ensure!(matches!(s.p.dtype, DType::U8 | DType::I8), "{w} is {}: MatMulInteger takes u8 or i8", s.p.dtype);
    }
    Ok((a, b))
}

/// A float-output Gemm in standard ops: no transA, a constant weight when transB=1 (it is
/// transposed here), the bias readable.
fn gemm_integer_fits(g: &Graph, m: &Match) -> Result<Parts, Refusal> {
    let fc = fc_of(g, m);
    ensure!(!fc.trans_a, "transA=1 has no MatMulInteger form");
    let (a, b) = matmul_integer_params(g, m, if fc.trans_b { 0 } else { 1 })?;
    ensure!(b.dims.as_ref().is_some_and(|d| d.len() == 2), "b is not 2-D");
    if fc.trans_b {
        ensure!(g.const_tensor(b.q).is_some(), "transB=1 and the weight '{}' is not a constant", g.operand_name(b.q));
    }
    let n = out_cols(&b, &fc)?;
    if fc.c != Operand::None {
        bias_values(g, fc.c, n)?;
    }
    Ok(Parts { a, b, y: None, fc })
}

// ---- constants ---------------------------------------------------------------------------

/// The number of output columns N.
fn out_cols(b: &Side, fc: &Fc) -> Result<usize, Refusal> {
    let d = b.dims.as_ref().ok_or_else(|| Refusal::new("b's rank is unknown"))?;
    let n = if fc.trans_b { d[0] } else { d[1] };
    n.map(|n| n as usize).ok_or_else(|| Refusal::new("b's output dimension is not known"))
}

/// The bias as floats, one per output column: a float constant or a DQ of a constant, of shape
/// `[]`, `[1]`, `[N]` or `[1, N]`.
fn bias_values(g: &Graph, c: Operand, n: usize) -> Result<Vec<f64>, Refusal> {
    let name = g.operand_name(c).to_string();
    let not_const = || Refusal::new(format!("the bias '{name}' is not a constant or a DequantizeLinear of one"));
    let (vals, dims): (Vec<f32>, Vec<i64>) = if let Some(t) = g.const_tensor(c) {
        let dt = t.dtype().map_err(|e| Refusal::new(e.to_string()))?;
        ensure!(dt.is_float(), "the bias '{name}' is {dt}, not float");
        (t.to_f32().map_err(|e| Refusal::new(format!("bias '{name}': {e}")))?, t.dims().to_vec())
    } else {
        let Operand::Value(o) = c else { return Err(not_const()) };
        let node = g.node(o.node);
        ensure!(node.op == Op::DequantizeLinear && o.slot == 0, "{}", not_const());
        let t = g.const_tensor(node.input(0)).ok_or_else(not_const)?;
        let q = t.to_i64().map_err(|_| not_const())?;
        let p = common::of_node(g, o.node)?;
        ensure!(p.axis.is_none() || t.dims().len() == 1, "the bias '{name}' is quantized per axis of rank > 1");
        (common::dequantize(&q, t.dims(), &p)?, t.dims().to_vec())
    };
    let per_col = match dims.as_slice() {
        [] | [1] | [1, 1] => vals.len() == 1,
        [k] | [1, k] => *k as usize == n && vals.len() == n,
        _ => false,
    };
    ensure!(per_col, "the bias '{name}' has shape {dims:?}; only a scalar or one value per output column ({n}) fits");
    Ok(if vals.len() == 1 { vec![vals[0] as f64; n] } else { vals.iter().map(|&v| v as f64).collect() })
}

/// `round(beta·C / s_j)` as int32 per column, `s_j` the accumulator scale of column j; with a
/// quantized output of scale `y_scale`, refused when the rounding would move it (see
/// [`super::bias_rounding_fits`]).
fn bias_int32(g: &Graph, c: Operand, beta: f32, acc_scale: &[f32], y_scale: Option<f32>) -> Result<Vec<i64>, Refusal> {
    let n = acc_scale.len();
    let v: Vec<f64> = bias_values(g, c, n)?.into_iter().map(|x| beta as f64 * x).collect();
    let q: Vec<f64> = (0..n).map(|j| (v[j] / acc_scale[j] as f64).round_ties_even()).collect();
    let bad = q.iter().position(|x| !x.is_finite() || x.abs() > i32::MAX as f64);
    ensure!(bad.is_none(), "the bias '{}' at column {} overflows int32", g.operand_name(c), bad.unwrap());
    let q: Vec<i64> = q.into_iter().map(|x| x as i64).collect();
    if let Some(ys) = y_scale {
        super::bias_rounding_fits(&v, &q, acc_scale, ys)?;
    }
    Ok(q)
}

/// A bias rounded to int32 at the accumulator scale keeps the fused op exact when the rounding moves
/// the output by no more than half the tie tolerance. (A match the build refuses is exact here: its
/// refusal says why.)
fn bias_exact(g: &Graph, _: &Match, Parts { a, b, y, fc }: &Parts) -> Result<(), String> {
    let Some(y) = y else { return Ok(()) };
    if fc.c == Operand::None {
        return Ok(());
    }
    let Ok(n) = out_cols(b, fc) else { return Ok(()) };
    let s: Vec<f32> = per_col(&b.p, n).iter().map(|&bs| fc.alpha * a.p.scale[0] * bs).collect();
    let Ok(v) = bias_values(g, fc.c, n) else { return Ok(()) };
    let v: Vec<f64> = v.into_iter().map(|x| fc.beta as f64 * x).collect();
    let q: Vec<i64> = (0..n).map(|j| (v[j] / s[j] as f64).round_ties_even() as i64).collect();
    super::bias_within_tie(&v, &q, &s, y.scale[0])
}

/// A zero point operand: the DQ/Q's own, or a new zero of its type when it was omitted.
fn zp_or_zero(p: &mut Patch, zp: Operand, params: &QParams, base: impl FnOnce() -> String) -> PatchOperand {
    super::zero_point_or_new(p, zp, params.dtype, params.scale.len(), base)
}

/// Per-column scales of b, `n` long.
fn per_col(p: &QParams, n: usize) -> Vec<f32> {
    if p.scale.len() == 1 {
        vec![p.scale[0]; n]
    } else {
        p.scale.to_vec()
    }
}

fn out_name(g: &Graph, m: &Match) -> String {
    g.value(Outlet::new(m.root(), 0)).name.clone()
}

fn node_name(g: &Graph, m: &Match) -> String {
    g.node(m.node("prod")).name().to_string()
}

/// Replaces the root's output with `new` and removes the matched nodes (shared DQs stay).
fn finish(m: &Match, mut p: Patch, new: PatchOperand) -> Patch {
    p.replace(Outlet::new(m.root(), 0), new);
    for &id in m.nodes() {
        p.remove(id);
    }
    p
}

// ---- builders ----------------------------------------------------------------------------

fn build_qlinearmatmul(g: &Graph, m: &Match, Parts { a, b, y, .. }: Parts) -> Result<Patch, Refusal> {
    let y = y.expect("the root is a Q");
    let mut p = Patch::new();
    let name = out_name(g, m);
    let az = zp_or_zero(&mut p, a.zp, &a.p, || format!("{name}_a_zero_point"));
    let bz = zp_or_zero(&mut p, b.zp, &b.p, || format!("{name}_b_zero_point"));
    let yz = zp_or_zero(&mut p, m.get("yz"), &y, || format!("{name}_zero_point"));
    let inputs = [a.q.into(), a.scale.into(), az, b.q.into(), b.scale.into(), bz, m.get("ys").into(), yz];
    let n = p.add(PatchNode::new(Op::QLinearMatMul, inputs).named(node_name(g, m)).output(name));
    Ok(finish(m, p, n))
}

/// QGemm with a quantized output (`y` given) or a float one.
fn qgemm(g: &Graph, m: &Match, Parts { a, b, fc, .. }: Parts, y: Option<&QParams>) -> Result<Patch, Refusal> {
    let n_cols = out_cols(&b, &fc)?;
    let mut p = Patch::new();
    let name = out_name(g, m);
    let az = zp_or_zero(&mut p, a.zp, &a.p, || format!("{name}_a_zero_point"));
    let bz = zp_or_zero(&mut p, b.zp, &b.p, || format!("{name}_b_zero_point"));
    let c = match fc.c {
        Operand::None => PatchOperand::Old(Operand::None),
        c => {
            // QGemm adds C to the accumulator, whose scale is alpha·s_a·s_b (as onnxruntime computes it).
            let s: Vec<f32> = per_col(&b.p, n_cols).iter().map(|&bs| fc.alpha * a.p.scale[0] * bs).collect();
            let q = bias_int32(g, c, fc.beta, &s, y.map(|y| y.scale[0]))?;
            p.add_const(&format!("{name}_bias_int32"), Tensor::from_i64("", DType::I32, &[n_cols as i64], &q))
        }
    };
    let mut inputs = vec![a.q.into(), a.scale.into(), az, b.q.into(), b.scale.into(), bz, c];
    if let Some(y) = y {
        let yz = zp_or_zero(&mut p, m.get("yz"), y, || format!("{name}_zero_point"));
        inputs.extend([m.get("ys").into(), yz]);
    }
    let mut attrs = vec![];
    if fc.trans_a {
        attrs.push(attr::make_int("transA", 1));
    }
    if fc.trans_b {
        attrs.push(attr::make_int("transB", 1));
    }
    if fc.alpha != 1.0 {
        attrs.push(attr::make_float("alpha", fc.alpha));
    }
    let n = p.add(PatchNode::new(Op::QGemm, inputs).named(node_name(g, m)).attrs(attrs).output(name));
    Ok(finish(m, p, n))
}

fn build_qgemm(g: &Graph, m: &Match, parts: Parts) -> Result<Patch, Refusal> {
    let y = parts.y.clone().expect("the root is a Q");
    qgemm(g, m, parts, Some(&y))
}

fn build_qgemm_float(g: &Graph, m: &Match, parts: Parts) -> Result<Patch, Refusal> {
    qgemm(g, m, parts, None)
}

/// `Reshape(a, [0,K,1,1])` → `QLinearConv` 1×1 → `Reshape([0,M])`.
fn build_conv(g: &Graph, m: &Match, Parts { a, b, y, fc }: Parts) -> Result<Patch, Refusal> {
    let y = y.expect("the root is a Q");
    let wt = g.const_tensor(b.q).expect("checked");
    let w = wt.to_i64().map_err(|e| Refusal::new(format!("weight '{}': {e}", g.operand_name(b.q))))?;
    let (r, c) = (wt.dims()[0] as usize, wt.dims()[1] as usize);
    // Weight as [M, K]: rows are output channels.
    let (mo, k, wmk) =
        if fc.trans_b { (r, c, w) } else { (c, r, (0..c * r).map(|i| w[(i % r) * c + i / r]).collect::<Vec<i64>>()) };
    let mut p = Patch::new();
    let name = out_name(g, m);
    let wname = g.operand_name(b.q).to_string();
    let w4 = p.add_const(&format!("{wname}_1x1"), Tensor::from_i64("", b.p.dtype, &[mo as i64, k as i64, 1, 1], &wmk));
    let az = zp_or_zero(&mut p, a.zp, &a.p, || format!("{name}_a_zero_point"));
    let bz = zp_or_zero(&mut p, b.zp, &b.p, || format!("{name}_w_zero_point"));
    let yz = zp_or_zero(&mut p, m.get("yz"), &y, || format!("{name}_zero_point"));
    let shape4 = p.add_const(&format!("{name}_shape4"), Tensor::from_i64("", DType::I64, &[4], &[0, k as i64, 1, 1]));
    let shape2 = p.add_const(&format!("{name}_shape2"), Tensor::from_i64("", DType::I64, &[2], &[0, mo as i64]));
    let x4 = p.add(PatchNode::new(Op::Reshape, [a.q.into(), shape4]).output(format!("{name}_nchw_in")));
    let mut inputs = vec![x4, a.scale.into(), az, w4, b.scale.into(), bz, m.get("ys").into(), yz];
    if fc.c != Operand::None {
        // QLinearConv adds the bias to the accumulator at s_x·s_w.
        let s: Vec<f32> = per_col(&b.p, mo).iter().map(|&bs| a.p.scale[0] * bs).collect();
        let q = bias_int32(g, fc.c, fc.beta, &s, Some(y.scale[0]))?;
        inputs.push(p.add_const(&format!("{name}_bias_int32"), Tensor::from_i64("", DType::I32, &[mo as i64], &q)));
    }
    let conv = PatchNode::new(Op::QLinearConv, inputs).named(node_name(g, m));
    let conv = p.add(conv.output(format!("{name}_nchw")));
    let out = p.add(PatchNode::new(Op::Reshape, [conv, shape2]).output(name));
    Ok(finish(m, p, out))
}

/// `MatMulInteger(a, b, za, zb)` → `Cast(f32)` → `Mul(s_a·s_b)`.
fn build_matmul_integer(g: &Graph, m: &Match, parts: Parts) -> Result<Patch, Refusal> {
    integer_matmul(g, m, parts, false)
}

/// `MatMulInteger(a, b or bᵀ, za, zb)` → `Cast(f32)` → `Mul(alpha·s_a·s_b)` → `Add(beta·C)`.
fn build_gemm_integer(g: &Graph, m: &Match, parts: Parts) -> Result<Patch, Refusal> {
    integer_matmul(g, m, parts, true)
}

fn integer_matmul(g: &Graph, m: &Match, Parts { a, b, fc, .. }: Parts, gemm: bool) -> Result<Patch, Refusal> {
    let s: Vec<f32> = b.p.scale.iter().map(|&bs| fc.alpha * a.p.scale[0] * bs).collect();
    let mut p = Patch::new();
    let name = out_name(g, m);
    let dims: Vec<i64> = if s.len() == 1 { vec![] } else { vec![s.len() as i64] };
    let sc = p.add_const(&format!("{name}_scale"), Tensor::from_f32("", &dims, &s));
    let bq: PatchOperand = if fc.trans_b {
        // [N,K] → [K,N]; a per-row (output channel) scale becomes per column.
        let t = g.const_tensor(b.q).expect("checked");
        let w = t.to_i64().map_err(|e| Refusal::new(format!("weight '{}': {e}", g.operand_name(b.q))))?;
        let (r, c) = (t.dims()[0] as usize, t.dims()[1] as usize);
        let wt: Vec<i64> = (0..r * c).map(|i| w[(i % r) * c + i / r]).collect();
        let wname = format!("{}_t", g.operand_name(b.q));
        p.add_const(&wname, Tensor::from_i64("", b.p.dtype, &[c as i64, r as i64], &wt))
    } else {
        b.q.into()
    };
    let mut inputs: Vec<PatchOperand> = vec![a.q.into(), bq, a.zp.into(), b.zp.into()];
    while inputs.last() == Some(&PatchOperand::Old(Operand::None)) {
        inputs.pop();
    }
    let base = if gemm && fc.c != Operand::None { format!("{name}_matmul") } else { name.clone() };
    let mi = PatchNode::new(Op::MatMulInteger, inputs).named(node_name(g, m));
    let mi = p.add(mi.output(format!("{name}_int32")));
    let to_f32 = vec![attr::make_int("to", DType::F32 as i64)];
    let cast = p.add(PatchNode::new(Op::Cast, [mi]).attrs(to_f32).output(format!("{name}_acc")));
    let mut last = p.add(PatchNode::new(Op::Mul, [cast, sc]).output(base));
    if gemm && fc.c != Operand::None {
        let n = out_cols(&b, &fc)?;
        let c: Vec<f32> = bias_values(g, fc.c, n)?.iter().map(|&v| (fc.beta as f64 * v) as f32).collect();
        let bias = p.add_const(&format!("{name}_bias"), Tensor::from_f32("", &[n as i64], &c));
        last = p.add(PatchNode::new(Op::Add, [last, bias]).output(name));
    }
    Ok(finish(m, p, last))
}
