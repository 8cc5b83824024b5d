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
use crate::rule::{match_at, Guard, Match, Patch, PatchNode, PatchOperand, Pattern, Refusal, Rule};
use crate::rules::qparams::{self, QParams};
use crate::Target;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// `Q(MatMul(DQ a, DQ b))`.
const QMATMUL: &str = "(QuantizeLinear (MatMul (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz)) ?ys ?yz)";
/// `Q(Gemm(DQ a, DQ b, C))`.
const QGEMM: &str = "(QuantizeLinear (Gemm (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz) ?c) ?ys ?yz)";
/// `Q(Add(MatMul(DQ a, DQ b), C))`.
const QMATMUL_ADD: &str =
    "(QuantizeLinear (Add (MatMul (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz)) ?c) ?ys ?yz)";

/// `Q(Add(C, MatMul(DQ a, DQ b)))`: the bias on the left.
const QADD_MATMUL: &str =
    "(QuantizeLinear (Add ?c (MatMul (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz))) ?ys ?yz)";

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new("qlinearmatmul", QMATMUL, &[interior_single_use, qlinearmatmul_fits], build_qlinearmatmul),
        Rule::new("qgemm", QGEMM, &[interior_single_use, fc_fits], build_qgemm).only(&[Target::Ort]),
        Rule::new("gemm-as-conv", QGEMM, &[interior_single_use, fc_fits, conv_fits], build_conv).only(&[Target::Onnx]),
        Rule::new("matmul-add-bias", QMATMUL_ADD, &[interior_single_use, fc_fits], build_qgemm).only(&[Target::Ort]),
        Rule::new("matmul-add-bias-as-conv", QMATMUL_ADD, &[interior_single_use, fc_fits, conv_fits], build_conv)
            .only(&[Target::Onnx]),
        Rule::new("bias-add-matmul", QADD_MATMUL, &[interior_single_use, fc_fits], build_qgemm).only(&[Target::Ort]),
        Rule::new("bias-add-matmul-as-conv", QADD_MATMUL, &[interior_single_use, fc_fits, conv_fits], build_conv)
            .only(&[Target::Onnx]),
        Rule::new(
            "qgemm-float-out",
            "(Gemm (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz) ?c)",
            &[output_not_quantized, fc_fits],
            build_qgemm_float,
        )
        .only(&[Target::Ort]),
        Rule::new(
            "gemm-integer",
            "(Gemm (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz) ?c)",
            &[output_not_quantized, gemm_integer_fits],
            build_gemm_integer,
        ),
        Rule::new(
            "matmul-integer",
            "(MatMul (DequantizeLinear ?a ?as ?az) (DequantizeLinear ?b ?bs ?bz))",
            &[output_not_quantized, matmul_integer_fits],
            build_matmul_integer,
        ),
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
    // The DQ produces input 0 (a) or 1 (b) of the MatMul/Gemm.
    let input = g.node(producer(g, m)).input(if v == "a" { 0 } else { 1 });
    let Operand::Value(o) = input else { return Err(Refusal::new("internal: the matched input is not a DQ")) };
    let (q, scale, zp) = (m.get(v), m.get(&format!("{v}s")), m.get(&format!("{v}z")));
    let p = qparams::of_node(g, o.node)?;
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
        Op::QuantizeLinear => Ok(Some(qparams::of_node(g, root)?)),
        _ => Ok(None),
    }
}

/// The MatMul or Gemm of the match.
fn producer(g: &Graph, m: &Match) -> NodeId {
    *m.nodes.iter().find(|&&n| matches!(g.node(n).op, Op::MatMul | Op::Gemm)).expect("every pattern has one")
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
    let prod = g.node(producer(g, m));
    let c = m.try_get("c").unwrap_or(Operand::None);
    match prod.op {
        Op::Gemm => Fc {
            trans_a: attr::int(&prod.attrs, "transA").unwrap_or(0) != 0,
            trans_b: attr::int(&prod.attrs, "transB").unwrap_or(0) != 0,
            alpha: attr::float(&prod.attrs, "alpha").unwrap_or(1.0),
            beta: attr::float(&prod.attrs, "beta").unwrap_or(1.0),
            c,
        },
        _ => Fc { trans_a: false, trans_b: false, alpha: 1.0, beta: 1.0, c },
    }
}

/// The (a, b) pairs onnxruntime 1.32 CPU runs QLinearMatMul, QGemm and QLinearConv for.
fn ort_pair(a: DType, b: DType) -> bool {
    matches!((a, b), (DType::U8, DType::U8) | (DType::U8, DType::I8) | (DType::I8, DType::I8))
}

fn check_scales(p: &QParams, what: &str) -> Result<(), Refusal> {
    ensure!(p.scale_dtype == DType::F32, "the {what} scale is {}, not f32", p.scale_dtype);
    let bad = p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0));
    ensure!(bad.is_none(), "the {what} scale {} is not positive and finite", bad.unwrap());
    Ok(())
}

// ---- guards ------------------------------------------------------------------------------

/// The MatMul/Gemm (and Add) inside the match feed nothing else; the DQs may be shared.
fn interior_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    for &id in &m.nodes[1..] {
        let n = g.node(id);
        if n.op == Op::DequantizeLinear {
            continue;
        }
        let outside = g.uses(id).any(|(c, _)| !m.nodes.contains(&c)) || g.feeds_output(id);
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
    check_scales(&a.p, "a")?;
    check_scales(&b.p, "b")?;
    if let Some(y) = y {
        ensure!(y.axis.is_none(), "the output is quantized per axis (axis {}), not per tensor", y.axis.unwrap());
        check_scales(y, "output")?;
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

fn qlinearmatmul_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let y = out_params(g, m)?;
    params_fit(g, m, 1, y.as_ref()).map(|_| ())
}

/// 2-D operands, the bias readable and per column.
fn fc_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
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
    Ok(())
}

/// The standard 1×1-QLinearConv form: no transA, alpha 1, a constant weight.
fn conv_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let fc = fc_of(g, m);
    ensure!(!fc.trans_a, "transA=1 has no 1×1 QLinearConv form");
    ensure!(fc.alpha == 1.0, "alpha {} has no QLinearConv form", fc.alpha);
    let b = side(g, m, "b")?;
    ensure!(g.const_tensor(b.q).is_some(), "the weight '{}' is not a constant", g.operand_name(b.q));
    ensure!(b.dims.as_ref().is_some_and(|d| d.iter().all(|x| x.is_some())), "the weight's dims are not known");
    Ok(())
}

/// The output is not left to a `Q(...)` rule: neither read by a QuantizeLinear where
/// `qlinearmatmul`/`qgemm` would fire, nor by an `Add(·, bias) → Q` where `matmul-add-bias` would
/// (their guards are asked). Where they refuse (e.g. i8 × u8, a 3-D `Add(bias)`), the MatMul
/// still becomes integer here. (The Gemm case asks `qgemm`'s guards: on `--target onnx` a Gemm
/// that `gemm-as-conv` refuses but `qgemm` would take stays float.)
fn output_not_quantized(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let root = m.root();
    let is_mm = g.node(root).op == Op::MatMul;
    let q_rule_fires = |q: NodeId, pattern: &str, guards: &[Guard]| {
        let p = Pattern::parse(pattern).expect("a static pattern");
        match_at(g, &p, q).is_some_and(|m2| m2.nodes.contains(&root) && guards.iter().all(|gd| gd(g, &m2).is_ok()))
    };
    let deferred = g.uses(root).any(|(c, _)| match g.node(c).op {
        Op::QuantizeLinear if is_mm => q_rule_fires(c, QMATMUL, &[interior_single_use, qlinearmatmul_fits]),
        Op::QuantizeLinear => q_rule_fires(c, QGEMM, &[interior_single_use, fc_fits]),
        Op::Add if is_mm => g.uses(c).any(|(q, _)| {
            g.node(q).op == Op::QuantizeLinear
                && [QMATMUL_ADD, QADD_MATMUL].iter().any(|p| q_rule_fires(q, p, &[interior_single_use, fc_fits]))
        }),
        _ => false,
    });
    ensure!(!deferred, "");
    Ok(())
}

fn matmul_integer_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
    matmul_integer_params(g, m, 1)
}

/// MatMulInteger's parameters: per-tensor a, b per tensor or per column `col_axis` of a 2-D b.
fn matmul_integer_params(g: &Graph, m: &Match, col_axis: usize) -> Result<(), Refusal> {
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    ensure!(a.p.axis.is_none(), "a is quantized per axis (axis {}), not per tensor", a.p.axis.unwrap());
    if let Some(ax) = b.p.axis {
        let rank = b.dims.as_ref().map(|d| d.len());
        ensure!(
            rank == Some(2) && ax == col_axis,
            "b is quantized along axis {ax}; only per tensor or per column (axis {col_axis} of a 2-D b) fits"
        );
    }
    check_scales(&a.p, "a")?;
    check_scales(&b.p, "b")?;
    for (s, w) in [(&a, "a"), (&b, "b")] {
        ensure!(matches!(s.p.dtype, DType::U8 | DType::I8), "{w} is {}: MatMulInteger takes u8 or i8", s.p.dtype);
    }
    Ok(())
}

/// A float-output Gemm in standard ops: no transA, a constant weight when transB=1 (it is
/// transposed here), the bias readable.
fn gemm_integer_fits(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let fc = fc_of(g, m);
    ensure!(!fc.trans_a, "transA=1 has no MatMulInteger form");
    matmul_integer_params(g, m, if fc.trans_b { 0 } else { 1 })?;
    let b = side(g, m, "b")?;
    ensure!(b.dims.as_ref().is_some_and(|d| d.len() == 2), "b is not 2-D");
    if fc.trans_b {
        ensure!(g.const_tensor(b.q).is_some(), "transB=1 and the weight '{}' is not a constant", g.operand_name(b.q));
    }
    let n = out_cols(&b, &fc)?;
    if fc.c != Operand::None {
        bias_values(g, fc.c, n)?;
    }
    Ok(())
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
    let not_const = || Refusal(format!("the bias '{name}' is not a constant or a DequantizeLinear of one"));
    let (vals, dims): (Vec<f32>, Vec<i64>) = if let Some(t) = g.const_tensor(c) {
        let dt = t.dtype().map_err(|e| Refusal(e.to_string()))?;
        ensure!(dt.is_float(), "the bias '{name}' is {dt}, not float");
        (t.to_f32().map_err(|e| Refusal(format!("bias '{name}': {e}")))?, t.dims().to_vec())
    } else {
        let Operand::Value(o) = c else { return Err(not_const()) };
        let node = g.node(o.node);
        ensure!(node.op == Op::DequantizeLinear && o.slot == 0, "{}", not_const());
        let t = g.const_tensor(node.input(0)).ok_or_else(not_const)?;
        let q = t.to_i64().map_err(|_| not_const())?;
        let p = qparams::of_node(g, o.node)?;
        ensure!(p.axis.is_none() || t.dims().len() == 1, "the bias '{name}' is quantized per axis of rank > 1");
        (qparams::dequantize(&q, t.dims(), &p)?, t.dims().to_vec())
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
    g.node(producer(g, m)).name().to_string()
}

/// Replaces the root's output with `new` and removes the matched nodes (shared DQs stay).
fn finish(m: &Match, mut p: Patch, new: usize) -> Patch {
    p.replace(Outlet::new(m.root(), 0), PatchOperand::NewNode(new, 0));
    for &id in &m.nodes {
        p.remove(id);
    }
    p
}

// ---- builders ----------------------------------------------------------------------------

fn build_qlinearmatmul(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    let y = out_params(g, m)?.expect("the root is a Q");
    let mut p = Patch::new();
    let name = out_name(g, m);
    let az = zp_or_zero(&mut p, a.zp, &a.p, || format!("{name}_a_zero_point"));
    let bz = zp_or_zero(&mut p, b.zp, &b.p, || format!("{name}_b_zero_point"));
    let yz = zp_or_zero(&mut p, m.get("yz"), &y, || format!("{name}_zero_point"));
    let n = p.add_node(PatchNode {
        op: Op::QLinearMatMul,
        name: node_name(g, m),
        attrs: vec![].into(),
        inputs: vec![a.q.into(), a.scale.into(), az, b.q.into(), b.scale.into(), bz, m.get("ys").into(), yz],
        outputs: vec![name],
    });
    Ok(finish(m, p, n))
}

/// QGemm with a quantized output (`y` given) or a float one.
fn qgemm(g: &Graph, m: &Match, y: Option<&QParams>) -> Result<Patch, Refusal> {
    let fc = fc_of(g, m);
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
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
    let n = p.add_node(PatchNode {
        op: Op::QGemm,
        name: node_name(g, m),
        attrs: attrs.into(),
        inputs,
        outputs: vec![name],
    });
    Ok(finish(m, p, n))
}

fn build_qgemm(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let y = out_params(g, m)?.expect("the root is a Q");
    qgemm(g, m, Some(&y))
}

fn build_qgemm_float(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    qgemm(g, m, None)
}

/// `Reshape(a, [0,K,1,1])` → `QLinearConv` 1×1 → `Reshape([0,M])`.
fn build_conv(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let fc = fc_of(g, m);
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    let y = out_params(g, m)?.expect("the root is a Q");
    let wt = g.const_tensor(b.q).expect("guarded");
    let w = wt.to_i64().map_err(|e| Refusal(format!("weight '{}': {e}", g.operand_name(b.q))))?;
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
    let x4 = p.add_node(PatchNode {
        op: Op::Reshape,
        name: String::new(),
        attrs: vec![].into(),
        inputs: vec![a.q.into(), shape4],
        outputs: vec![format!("{name}_nchw_in")],
    });
    let mut inputs =
        vec![PatchOperand::NewNode(x4, 0), a.scale.into(), az, w4, b.scale.into(), bz, m.get("ys").into(), yz];
    if fc.c != Operand::None {
        // QLinearConv adds the bias to the accumulator at s_x·s_w.
        let s: Vec<f32> = per_col(&b.p, mo).iter().map(|&bs| a.p.scale[0] * bs).collect();
        let q = bias_int32(g, fc.c, fc.beta, &s, Some(y.scale[0]))?;
        inputs.push(p.add_const(&format!("{name}_bias_int32"), Tensor::from_i64("", DType::I32, &[mo as i64], &q)));
    }
    let conv = p.add_node(PatchNode {
        op: Op::QLinearConv,
        name: node_name(g, m),
        attrs: vec![].into(),
        inputs,
        outputs: vec![format!("{name}_nchw")],
    });
    let out = p.add_node(PatchNode {
        op: Op::Reshape,
        name: String::new(),
        attrs: vec![].into(),
        inputs: vec![PatchOperand::NewNode(conv, 0), shape2],
        outputs: vec![name],
    });
    Ok(finish(m, p, out))
}

/// `MatMulInteger(a, b, za, zb)` → `Cast(f32)` → `Mul(s_a·s_b)`.
fn build_matmul_integer(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    integer_matmul(g, m, false)
}

/// `MatMulInteger(a, b or bᵀ, za, zb)` → `Cast(f32)` → `Mul(alpha·s_a·s_b)` → `Add(beta·C)`.
fn build_gemm_integer(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    integer_matmul(g, m, true)
}

fn integer_matmul(g: &Graph, m: &Match, gemm: bool) -> Result<Patch, Refusal> {
    let fc = fc_of(g, m);
    let (a, b) = (side(g, m, "a")?, side(g, m, "b")?);
    let s: Vec<f32> = b.p.scale.iter().map(|&bs| fc.alpha * a.p.scale[0] * bs).collect();
    let mut p = Patch::new();
    let name = out_name(g, m);
    let dims: Vec<i64> = if s.len() == 1 { vec![] } else { vec![s.len() as i64] };
    let sc = p.add_const(&format!("{name}_scale"), Tensor::from_f32("", &dims, &s));
    let bq: PatchOperand = if fc.trans_b {
        // [N,K] → [K,N]; a per-row (output channel) scale becomes per column.
        let t = g.const_tensor(b.q).expect("guarded");
        let w = t.to_i64().map_err(|e| Refusal(format!("weight '{}': {e}", g.operand_name(b.q))))?;
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
    let mi = p.add_node(PatchNode {
        op: Op::MatMulInteger,
        name: node_name(g, m),
        attrs: vec![].into(),
        inputs,
        outputs: vec![format!("{name}_int32")],
    });
    let cast = p.add_node(PatchNode {
        op: Op::Cast,
        name: String::new(),
        attrs: vec![attr::make_int("to", DType::F32 as i64)].into(),
        inputs: vec![PatchOperand::NewNode(mi, 0)],
        outputs: vec![format!("{name}_acc")],
    });
    let mut last = p.add_node(PatchNode {
        op: Op::Mul,
        name: String::new(),
        attrs: vec![].into(),
        inputs: vec![PatchOperand::NewNode(cast, 0), sc],
        outputs: vec![base],
    });
    if gemm && fc.c != Operand::None {
        let n = out_cols(&b, &fc)?;
        let c: Vec<f32> = bias_values(g, fc.c, n)?.iter().map(|&v| (fc.beta as f64 * v) as f32).collect();
        let bias = p.add_const(&format!("{name}_bias"), Tensor::from_f32("", &[n as i64], &c));
        last = p.add_node(PatchNode {
            op: Op::Add,
            name: String::new(),
            attrs: vec![].into(),
            inputs: vec![PatchOperand::NewNode(last, 0), bias],
            outputs: vec![name],
        });
    }
    Ok(finish(m, p, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        crate::rules::run_and_print(&super::super::pass(), text)
    }

    /// The table without the float-output fallbacks, to show the `Q(...)` rules' refusals
    /// (with the whole table, `matmul-integer` takes what they refuse).
    fn check_q_rules(text: &str) -> String {
        let q_rules = || rules().into_iter().filter(|r| !r.name.ends_with("-integer")).collect();
        crate::rules::run_and_print(&crate::driver::RulePass::new("fuse", q_rules), text)
    }

    fn check_onnx(text: &str) -> String {
        crate::rules::run_and_print(&super::super::pass().for_target(Target::Onnx), text)
    }

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "qlinearmatmul",
                "qgemm",
                "gemm-as-conv",
                "matmul-add-bias",
                "matmul-add-bias-as-conv",
                "bias-add-matmul",
                "bias-add-matmul-as-conv",
                "qgemm-float-out",
                "gemm-integer",
                "matmul-integer"
            ]
        );
    }

    /// `Q(MatMul(DQ x, DQ w))` with the parameters spliced in.
    fn mm(x: &str, w: &str, y: &str, w_axis: &str, extra: &str) -> String {
        format!(
            r#"graph "g" opset(ai.onnx=17) {{
  input %x: {x}
  const %xs: f32[] 0.5
{w}
  const %ys: f32[] 0.75
{y}
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear{w_axis}(%w, %ws, %wz)
  %m = MatMul(%a, %b)
  %q = QuantizeLinear(%m, %ys, %yz)
  output %q
{extra}}}
"#
        )
    }

    const U8_X: &str = "u8[2,4]\n  const %xz: u8[] 128";
    const I8_X: &str = "i8[N,2,4]\n  const %xz: i8[] -3";
    const U8_W: &str =
        "  const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n  const %ws: f32[] 0.25\n  const %wz: u8[] 3";
    const I8_W_COL: &str = "  const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]\n  const %ws: f32[3] [0.25, 0.5, 0.125]\n  const %wz: i8[3] [0, 0, 0]";
    const U8_Y: &str = "  const %yz: u8[] 10";
    const I8_Y: &str = "  const %yz: i8[] -5";

    #[test]
    fn qlinearmatmul_u8_per_tensor() {
        insta::assert_snapshot!(check(&mm(U8_X, U8_W, U8_Y, "", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[2,4] q(0.5, 128)
          const %xz: u8[] 128
          const %xs: f32[] 0.5
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[] 0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %q: u8[2,3] q(0.75, 10) = QLinearMatMul(%x, %xs, %xz, %w, %ws, %wz, %ys, %yz)
          output %q
        }
        "#);
    }

    #[test]
    fn qlinearmatmul_i8_per_column_3d() {
        insta::assert_snapshot!(check(&mm(I8_X, I8_W_COL, I8_Y, "[axis=1]", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[N,2,4] q(0.5, -3)
          const %xz: i8[] -3
          const %xs: f32[] 0.5
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: i8[] -5
          %q: i8[N,2,3] q(0.75, -5) = QLinearMatMul(%x, %xs, %xz, %w, %ws, %wz, %ys, %yz)
          output %q
        }
        "#);
    }

    #[test]
    fn qlinearmatmul_u8_times_i8_per_column() {
        // u8 activations × i8 per-column weights, the onnxruntime quantizer's default.
        let x = "u8[N,16,4]\n  const %xz: u8[] 133";
        insta::assert_snapshot!(check(&mm(x, I8_W_COL, U8_Y, "[axis=1]", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[N,16,4] q(0.5, 133)
          const %xz: u8[] 133
          const %xs: f32[] 0.5
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %q: u8[N,16,3] q(0.75, 10) = QLinearMatMul(%x, %xs, %xz, %w, %ws, %wz, %ys, %yz)
          output %q
        }
        "#);
    }

    #[test]
    fn qlinearmatmul_activation_times_activation() {
        // Attention: both operands are DQ'd activations; the zero points are omitted (the three
        // zeros the patch makes are one constant).
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %q: u8[N,4,16,8]
  input %k: u8[N,4,8,16]
  const %s1: f32[] 0.05
  const %s2: f32[] 0.04
  const %ys: f32[] 0.3
  %a = DequantizeLinear(%q, %s1)
  %b = DequantizeLinear(%k, %s2)
  %m = MatMul(%a, %b)
  %y = QuantizeLinear(%m, %ys)
  output %y
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %q: u8[N,4,16,8] q(0.05, 0)
          input %k: u8[N,4,8,16] q(0.04, 0)
          const %s1: f32[] 0.05
          const %s2: f32[] 0.04
          const %ys: f32[] 0.3
          const %y_a_zero_point: u8[] 0
          %y: u8[N,4,16,16] q(0.3, 0) = QLinearMatMul(%q, %s1, %y_a_zero_point, %k, %s2, %y_a_zero_point, %ys, %y_a_zero_point)
          output %y
        }
        "#);
    }

    #[test]
    fn qlinearmatmul_refusals() {
        // i8 × u8: onnxruntime has no kernel.
        let i8x = "i8[2,4]\n  const %xz: i8[] 0";
        insta::assert_snapshot!(check_q_rules(&mm(i8x, U8_W, I8_Y, "", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[2,4] q(0.5, 0)
          const %xz: i8[] 0
          const %xs: f32[] 0.5
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[] 0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: i8[] -5
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear(%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %q: i8[2,3] q(0.75, -5) = QuantizeLinear(%m, %ys, %yz)
          output %q
        }
        // remark qlinearmatmul: QuantizeLinear (producing 'q'): a i8 × b u8: onnxruntime 1.32 CPU runs u8×u8, u8×i8 and i8×i8 only
        "#);
        // An output type other than a's.
        insta::assert_snapshot!(check_q_rules(&mm(U8_X, U8_W, I8_Y, "", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[2,4] q(0.5, 128)
          const %xz: u8[] 128
          const %xs: f32[] 0.5
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[] 0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: i8[] -5
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear(%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %q: i8[2,3] q(0.75, -5) = QuantizeLinear(%m, %ys, %yz)
          output %q
        }
        // remark qlinearmatmul: QuantizeLinear (producing 'q'): the output is i8 but a is u8: onnxruntime's integer matmuls output a's type
        "#);
        // Per-row weights (axis 0) are not per column.
        insta::assert_snapshot!(check_q_rules(&mm(U8_X, I8_W_COL.replace("[3] [0.25, 0.5, 0.125]", "[4] [0.25, 0.5, 0.125, 1]").replace("i8[3] [0, 0, 0]", "i8[4] [0, 0, 0, 0]").as_str(), U8_Y, "[axis=0]", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[2,4] q(0.5, 128)
          const %xz: u8[] 128
          const %xs: f32[] 0.5
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[4] [0.25, 0.5, 0.125, 1.0]
          const %wz: i8[4] [0, 0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear[axis=0](%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %q: u8[2,3] q(0.75, 10) = QuantizeLinear(%m, %ys, %yz)
          output %q
        }
        // remark qlinearmatmul: QuantizeLinear (producing 'q'): b is quantized along axis 0 of rank 2; only per tensor or per column (axis 1 of a 2-D b) fits
        "#);
        // A negative scale.
        insta::assert_snapshot!(check_q_rules(&mm(U8_X, &U8_W.replace("0.25", "-0.25"), U8_Y, "", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[2,4] q(0.5, 128)
          const %xz: u8[] 128
          const %xs: f32[] 0.5
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[] -0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear(%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %q: u8[2,3] q(0.75, 10) = QuantizeLinear(%m, %ys, %yz)
          output %q
        }
        // remark qlinearmatmul: QuantizeLinear (producing 'q'): the b scale -0.25 is not positive and finite
        "#);
        // The float MatMul output has another consumer.
        insta::assert_snapshot!(check_q_rules(&mm(U8_X, U8_W, U8_Y, "", "  output %m\n")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[2,4] q(0.5, 128)
          const %xz: u8[] 128
          const %xs: f32[] 0.5
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[] 0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear(%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %q: u8[2,3] q(0.75, 10) = QuantizeLinear(%m, %ys, %yz)
          output %q
          output %m
        }
        // remark qlinearmatmul: QuantizeLinear (producing 'q'): the output of MatMul (producing 'm') has other consumers
        "#);
    }

    #[test]
    fn matmul_integer_takes_what_qlinearmatmul_refuses() {
        // i8 × u8 has no QLinearMatMul in onnxruntime, but MatMulInteger runs it.
        let i8x = "i8[2,4]\n  const %xz: i8[] 0";
        insta::assert_snapshot!(check(&mm(i8x, U8_W, I8_Y, "", "")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[2,4]
          const %xz: i8[] 0
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: i8[] -5
          const %m_scale: f32[] 0.125
          %m_int32: i32[2,3] = MatMulInteger(%x, %w, %xz, %wz)
          %m_acc: f32[2,3] = Cast[to=1](%m_int32)
          %m: f32[2,3] = Mul(%m_acc, %m_scale)
          %q: i8[2,3] q(0.75, -5) = QuantizeLinear(%m, %ys, %yz)
          output %q
        }
        "#);
    }

    /// `Q(Gemm(DQ x, DQ w, C))`: u8 activations, i8 weights `[3,4]` per output channel (transB=1).
    const GEMM: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: u8[N,4]
  const %xs: f32[] 0.5
  const %xz: u8[] 128
  const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
  const %ws: f32[3] [0.25, 0.5, 0.125]
  const %wz: i8[3] [0, 0, 0]
  const %c: f32[3] [1.3, -2.6, 100]
  const %ys: f32[] 0.75
  const %yz: u8[] 10
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear[axis=0](%w, %ws, %wz)
  %g = Gemm[transB=1, beta=0.5](%a, %b, %c)
  %y = QuantizeLinear(%g, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn qgemm_per_channel_with_beta() {
        // C = round(0.5·[1.3, -2.6, 100] / (0.5·[0.25, 0.5, 0.125])) = [5, -5, 800].
        insta::assert_snapshot!(check(GEMM), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          const %y_bias_int32: i32[3] [5, -5, 800]
          %y: u8[N,3] q(0.75, 10) = QGemm[transB=1](%x, %xs, %xz, %w, %ws, %wz, %y_bias_int32, %ys, %yz)
          output %y
        }
        "#);
    }

    #[test]
    fn gemm_as_conv_on_target_onnx() {
        insta::assert_snapshot!(check_onnx(GEMM), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          const %w_1x1: i8[3,4,1,1] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %y_shape4: i64[4] [0, 4, 1, 1]
          const %y_shape2: i64[2] [0, 3]
          const %y_bias_int32: i32[3] [5, -5, 800]
          %y_nchw_in: u8[N,4,1,1] q(0.5, 128) = Reshape(%x, %y_shape4)
          %y_nchw: u8[N,3,1,1] q(0.75, 10) = QLinearConv(%y_nchw_in, %xs, %xz, %w_1x1, %ws, %wz, %ys, %yz, %y_bias_int32)
          %y: u8[N,3] q(0.75, 10) = Reshape(%y_nchw, %y_shape2)
          output %y
        }
        "#);
    }

    #[test]
    fn gemm_as_conv_transposes_a_k_by_n_weight() {
        // transB=0: the [K,N] weight becomes [N,K,1,1]; per-tensor u8 weights.
        let g = GEMM
            .replace(
                "const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]",
                "const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]",
            )
            .replace("const %ws: f32[3] [0.25, 0.5, 0.125]", "const %ws: f32[] 0.25")
            .replace("const %wz: i8[3] [0, 0, 0]", "const %wz: u8[] 3")
            .replace("[axis=0]", "")
            .replace("[transB=1, beta=0.5]", "");
        insta::assert_snapshot!(check_onnx(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ws: f32[] 0.25
          const %wz: u8[] 3
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          const %w_1x1: u8[3,4,1,1] [1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12]
          const %y_shape4: i64[4] [0, 4, 1, 1]
          const %y_shape2: i64[2] [0, 3]
          const %y_bias_int32: i32[3] [10, -21, 800]
          %y_nchw_in: u8[N,4,1,1] q(0.5, 128) = Reshape(%x, %y_shape4)
          %y_nchw: u8[N,3,1,1] q(0.75, 10) = QLinearConv(%y_nchw_in, %xs, %xz, %w_1x1, %ws, %wz, %ys, %yz, %y_bias_int32)
          %y: u8[N,3] q(0.75, 10) = Reshape(%y_nchw, %y_shape2)
          output %y
        }
        "#);
    }

    #[test]
    fn qgemm_refusals() {
        // A bias that is not one value per column.
        let g = GEMM.replace("const %c: f32[3] [1.3, -2.6, 100]", "const %c: f32[2,3] [1, 2, 3, 4, 5, 6]");
        insta::assert_snapshot!(check(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %c: f32[2,3] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %a: f32[N,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[3,4] = DequantizeLinear[axis=0](%w, %ws, %wz)
          %g: f32[N,3] = Gemm[transB=1, beta=0.5](%a, %b, %c)
          %y: u8[N,3] q(0.75, 10) = QuantizeLinear(%g, %ys, %yz)
          output %y
        }
        // remark gemm-as-conv: QuantizeLinear (producing 'y'): the bias 'c' has shape [2, 3]; only a scalar or one value per output column (3) fits
        // remark gemm-integer: Gemm (producing 'g'): the bias 'c' has shape [2, 3]; only a scalar or one value per output column (3) fits
        // remark qgemm: QuantizeLinear (producing 'y'): the bias 'c' has shape [2, 3]; only a scalar or one value per output column (3) fits
        // remark qgemm-float-out: Gemm (producing 'g'): the bias 'c' has shape [2, 3]; only a scalar or one value per output column (3) fits
        "#);
        // transA has no QLinearConv form (QGemm takes it).
        let g = GEMM
            .replace("input %x: u8[N,4]", "input %x: u8[4,N]")
            .replace("[transB=1, beta=0.5]", "[transA=1, transB=1]");
        insta::assert_snapshot!(check_onnx(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[4,N] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %c: f32[3] [1.3, -2.6, 100.0]
          const %ys: f32[] 0.75
          const %yz: u8[] 10
          %a: f32[4,N] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[3,4] = DequantizeLinear[axis=0](%w, %ws, %wz)
          %g: f32[N,3] = Gemm[transA=1, transB=1](%a, %b, %c)
          %y: u8[N,3] q(0.75, 10) = QuantizeLinear(%g, %ys, %yz)
          output %y
        }
        // remark gemm-as-conv: QuantizeLinear (producing 'y'): transA=1 has no 1×1 QLinearConv form
        // remark qgemm: QuantizeLinear (producing 'y'): the rewrite needs --target ort (this is --target onnx)
        "#);
    }

    #[test]
    fn qgemm_float_out() {
        // A TensorRT-style logits layer: no Q after the Gemm; QGemm without y_scale outputs f32.
        let g = GEMM.replace("  %y = QuantizeLinear(%g, %ys, %yz)\n  output %y", "  output %g");
        insta::assert_snapshot!(check(&g), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %w: i8[3,4] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %g_bias_int32: i32[3] [5, -5, 800]
          %g: f32[N,3] = QGemm[transB=1](%x, %xs, %xz, %w, %ws, %wz, %g_bias_int32)
          output %g
        }
        "#);
        // Standard ops only: MatMulInteger with the weight transposed, then the scale and the bias.
        insta::assert_snapshot!(check_onnx(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: u8[N,4]
          const %xz: u8[] 128
          const %wz: i8[3] [0, 0, 0]
          const %g_scale: f32[3] [0.125, 0.25, 0.0625]
          const %w_t: i8[4,3] [1, 5, 9, -2, -6, -10, 3, 7, 11, -4, -8, -12]
          const %g_bias: f32[3] [0.65, -1.3, 50.0]
          %g_int32: i32[N,3] = MatMulInteger(%x, %w_t, %xz, %wz)
          %g_acc: f32[N,3] = Cast[to=1](%g_int32)
          %g_matmul: f32[N,3] = Mul(%g_acc, %g_scale)
          %g: f32[N,3] = Add(%g_matmul, %g_bias)
          output %g
        }
        "#);
    }

    /// `Q(Add(MatMul(DQ x, DQ w), DQ(int32 bias)))`, the Linear layer of quantizers.
    const MM_ADD: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: i8[N,4]
  const %xs: f32[] 0.5
  const %xz: i8[] 1
  const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
  const %ws: f32[3] [0.25, 0.5, 0.125]
  const %wz: i8[3] [0, 0, 0]
  const %bq: i32[3] [10, -20, 30]
  const %bs: f32[3] [0.125, 0.25, 0.0625]
  const %ys: f32[] 0.75
  const %yz: i8[] 0
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear[axis=1](%w, %ws, %wz)
  %bias = DequantizeLinear[axis=0](%bq, %bs)
  %m = MatMul(%a, %b)
  %s = Add(%m, %bias)
  %y = QuantizeLinear(%s, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn matmul_add_bias() {
        // The bias already at s_x·s_w keeps its integers.
        insta::assert_snapshot!(check(MM_ADD), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: i8[N,4] q(0.5, 1)
          const %xs: f32[] 0.5
          const %xz: i8[] 1
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: i8[] 0
          const %y_bias_int32: i32[3] [10, -20, 30]
          %y: i8[N,3] q(0.75, 0) = QGemm(%x, %xs, %xz, %w, %ws, %wz, %y_bias_int32, %ys, %yz)
          output %y
        }
        "#);
        insta::assert_snapshot!(check_onnx(MM_ADD), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[N,4] q(0.5, 1)
          const %xs: f32[] 0.5
          const %xz: i8[] 1
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: i8[] 0
          const %w_1x1: i8[3,4,1,1] [1, -4, 7, -10, -2, 5, -8, 11, 3, -6, 9, -12]
          const %y_shape4: i64[4] [0, 4, 1, 1]
          const %y_shape2: i64[2] [0, 3]
          const %y_bias_int32: i32[3] [10, -20, 30]
          %y_nchw_in: i8[N,4,1,1] q(0.5, 1) = Reshape(%x, %y_shape4)
          %y_nchw: i8[N,3,1,1] q(0.75, 0) = QLinearConv(%y_nchw_in, %xs, %xz, %w_1x1, %ws, %wz, %ys, %yz, %y_bias_int32)
          %y: i8[N,3] q(0.75, 0) = Reshape(%y_nchw, %y_shape2)
          output %y
        }
        "#);
    }

    #[test]
    fn bias_add_matmul() {
        // The bias on the left of the Add.
        let g = MM_ADD.replace("Add(%m, %bias)", "Add(%bias, %m)");
        insta::assert_snapshot!(check(&g), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: i8[N,4] q(0.5, 1)
          const %xs: f32[] 0.5
          const %xz: i8[] 1
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: i8[] 0
          const %y_bias_int32: i32[3] [10, -20, 30]
          %y: i8[N,3] q(0.75, 0) = QGemm(%x, %xs, %xz, %w, %ws, %wz, %y_bias_int32, %ys, %yz)
          output %y
        }
        "#);
    }

    #[test]
    fn matmul_add_bias_3d_is_matmul_integer() {
        // A 3-D activation has no QGemm form (and QLinearMatMul needs the Q right after the
        // MatMul): the MatMul becomes MatMulInteger, the Add and Q stay.
        let g = MM_ADD.replace("input %x: i8[N,4]", "input %x: i8[N,5,4]");
        insta::assert_snapshot!(check(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[N,5,4]
          const %xz: i8[] 1
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %wz: i8[3] [0, 0, 0]
          const %bq: i32[3] [10, -20, 30]
          const %bs: f32[3] [0.125, 0.25, 0.0625]
          const %ys: f32[] 0.75
          const %yz: i8[] 0
          const %m_scale: f32[3] [0.125, 0.25, 0.0625]
          %bias: f32[3] = DequantizeLinear[axis=0](%bq, %bs)
          %m_int32: i32[N,5,3] = MatMulInteger(%x, %w, %xz, %wz)
          %m_acc: f32[N,5,3] = Cast[to=1](%m_int32)
          %m: f32[N,5,3] = Mul(%m_acc, %m_scale)
          %s: f32[N,5,3] = Add(%m, %bias)
          %y: i8[N,5,3] q(0.75, 0) = QuantizeLinear(%s, %ys, %yz)
          output %y
        }
        "#);
    }

    #[test]
    fn matmul_add_bias_refusal() {
        // A float bias that is not one value per column: the remark (with the whole table,
        // matmul-integer takes the MatMul).
        let g = MM_ADD
            .replace("input %x: i8[N,4]", "input %x: i8[2,4]")
            .replace("  %bias = DequantizeLinear[axis=0](%bq, %bs)\n", "  const %bias: f32[2,3] [1, 2, 3, 4, 5, 6]\n");
        insta::assert_snapshot!(check_q_rules(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[2,4] q(0.5, 1)
          const %xs: f32[] 0.5
          const %xz: i8[] 1
          const %w: i8[4,3] [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]
          const %ws: f32[3] [0.25, 0.5, 0.125]
          const %wz: i8[3] [0, 0, 0]
          const %ys: f32[] 0.75
          const %yz: i8[] 0
          const %bias: f32[2,3] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
          %a: f32[2,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear[axis=1](%w, %ws, %wz)
          %m: f32[2,3] = MatMul(%a, %b)
          %s: f32[2,3] = Add(%m, %bias)
          %y: i8[2,3] q(0.75, 0) = QuantizeLinear(%s, %ys, %yz)
          output %y
        }
        // remark matmul-add-bias: QuantizeLinear (producing 'y'): the bias 'bias' has shape [2, 3]; only a scalar or one value per output column (3) fits
        // remark matmul-add-bias-as-conv: QuantizeLinear (producing 'y'): the bias 'bias' has shape [2, 3]; only a scalar or one value per output column (3) fits
        "#);
    }

    #[test]
    fn matmul_integer() {
        // Float output: i8 × u8 is fine for MatMulInteger.
        let g = r#"graph "g" opset(ai.onnx=17) {
  input %x: i8[N,4]
  const %xs: f32[] 0.5
  const %xz: i8[] 1
  const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
  const %ws: f32[3] [0.25, 0.5, 0.125]
  const %wz: u8[3] [3, 0, 1]
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear[axis=1](%w, %ws, %wz)
  %m = MatMul(%a, %b)
  %r = Relu(%m)
  output %r
}
"#;
        insta::assert_snapshot!(check(g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[N,4]
          const %xz: i8[] 1
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %wz: u8[3] [3, 0, 1]
          const %m_scale: f32[3] [0.125, 0.25, 0.0625]
          %m_int32: i32[N,3] = MatMulInteger(%x, %w, %xz, %wz)
          %m_acc: f32[N,3] = Cast[to=1](%m_int32)
          %m: f32[N,3] = Mul(%m_acc, %m_scale)
          %r: f32[N,3] = Relu(%m)
          output %r
        }
        "#);
        // Per-row weights have no MatMulInteger form.
        let g = g
            .replace("[axis=1]", "[axis=0]")
            .replace("f32[3] [0.25, 0.5, 0.125]", "f32[4] [0.25, 0.5, 0.125, 1]")
            .replace("u8[3] [3, 0, 1]", "u8[4] [3, 0, 1, 2]");
        insta::assert_snapshot!(check(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: i8[N,4] q(0.5, 1)
          const %xs: f32[] 0.5
          const %xz: i8[] 1
          const %w: u8[4,3] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          const %ws: f32[4] [0.25, 0.5, 0.125, 1.0]
          const %wz: u8[4] [3, 0, 1, 2]
          %a: f32[N,4] = DequantizeLinear(%x, %xs, %xz)
          %b: f32[4,3] = DequantizeLinear[axis=0](%w, %ws, %wz)
          %m: f32[N,3] = MatMul(%a, %b)
          %r: f32[N,3] = Relu(%m)
          output %r
        }
        // remark matmul-integer: MatMul (producing 'm'): b is quantized along axis 0; only per tensor or per column (axis 1 of a 2-D b) fits
        "#);
    }
}
