//! The `cleanup` rules: rewrites that only remove work.
//!
//! - `dq-q-same`: `Q(DQ(q, s, z), s', z')` with equal parameters by value and equal integer type
//!   is `q` (exact: `(q - z)·s / s` rounds back to `q - z` for any finite positive `s`).
//! - `q-of-const`: a QuantizeLinear of a constant float tensor is an integer constant, computed
//!   as onnxruntime does (f32 division, saturation, round half to even), per tensor or per axis,
//!   so QAT-style float weights behind Q→DQ become integer initializers.
//! - `q-twin`: a QuantizeLinear that reads the same value as an earlier one, with the same
//!   parameter operands, attributes and output type, is that one (exact: the same computation).
//!   Exporters quantize a tensor once per consumer (a residual block's conv and downsample conv);
//!   one Q lets the Q move before the op that makes the tensor.
//! - `identity`: an Identity is its input; one producing a graph output gives its name to its
//!   input, or stays when the input cannot take it (a graph input, a constant, another output).
//!
//! No `dq-q-requant` rule, by design: `Q(DQ(q, s1, z1), s2, z2)` with different parameters
//! computes `sat(rne(f32(q − z1)·s1 / s2) + z2)`, and no ONNX op does exactly that in integers
//! (QLinearMatMul/QLinearConv fold `s1 / s2` into one f32 factor, which rounds differently;
//! QLinearAdd uses an FMA form). The only contrib forms that reproduce it bit for bit are
//! 256-entry tables `Q(DQ(v))` (a one-input QLinearConcat, or QLinearLeakyRelu with alpha = 1),
//! which are the same DQ→Q computation under another name. So the DQ→Q pair already is the exact
//! requantize: a DQ feeding several Qs stays shared (nothing to gain), and a chain
//! `Q(DQ(Q(DQ(x))))` of two requantizes is not one requantize (the middle rounding matters) and
//! stays as it is.

use super::common::{self, first_difference, QParams};
use crate::ensure;
use crate::rule::{Match, Patch, Refusal, Rule};
use qdqc_ir::{DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new("dq-q-same", "(QuantizeLinear (DequantizeLinear@dq ?q ?s1 ?z1) ?s2 ?z2)", same_params, remove_dq_q),
        Rule::new("q-of-const", "(QuantizeLinear ?x ?s ?z)", float_const_to_integer, fold_q),
        Rule::new("q-twin", "(QuantizeLinear ?x ?s ?z)", earlier_twin, use_twin),
        Rule::new("identity", "(Identity ?x)", output_name_can_be_kept, remove_identity),
    ]
}

fn out0(m: &Match) -> Outlet {
    Outlet::new(m.root(), 0)
}

// ---- dq-q-same ---------------------------------------------------------------------------

/// The DQ and the Q have one integer type and equal parameters by value.
fn same_params(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let (dq, q) = (common::of_node(g, m.node("dq"))?, common::of_node(g, m.root())?);
    ensure!(dq.dtype == q.dtype, "integer types differ: {} vs {}", dq.dtype, q.dtype);
    ensure!(
        dq.axis == q.axis,
        "quantization axes differ: {} vs {}",
        common::axis_text(dq.axis),
        common::axis_text(q.axis)
    );
    ensure!(dq.scale_dtype == q.scale_dtype, "scale types differ: {} vs {}", dq.scale_dtype, q.scale_dtype);
    if let Some(d) = first_difference(&dq.scale, &q.scale) {
        return Err(Refusal::new(format!("scales differ: {d}")));
    }
    if let Some(d) = first_difference(&dq.zero_point, &q.zero_point) {
        return Err(Refusal::new(format!("zero points differ: {d}")));
    }
    let bad = dq.scale.iter().find(|s| !(s.is_normal() && **s > 0.0));
    ensure!(bad.is_none(), "scale {} is not a positive normal number", bad.unwrap());
    Ok(())
}

fn remove_dq_q(_: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.replace(out0(m), m.get("q"));
    p.remove(m.root());
    p.remove(m.node("dq")); // kept when it has other consumers
    Ok(p)
}

// ---- q-of-const --------------------------------------------------------------------------

/// The input is a float constant and the output an integer of at most 16 bits: the constant's
/// values and the Q's parameters.
fn float_const_to_integer(g: &Graph, m: &Match) -> Result<(Vec<f32>, QParams), Refusal> {
    let x = m.get("x");
    if !matches!(x, Operand::Const(_)) {
        return Err(Refusal::NotApplicable);
    }
    let t = g.const_tensor(x).ok_or_else(|| Refusal::new("the constant's data is not available"))?;
    let dtype = t.dtype().map_err(|e| Refusal::new(e.to_string()))?;
    ensure!(matches!(dtype, DType::F32 | DType::F16 | DType::BF16), "the constant is {dtype}, not f32/f16/bf16");
    let p = common::of_node(g, m.root())?;
    ensure!(p.dtype.is_int() && p.dtype.bits() <= 16, "output type {} is not an integer of at most 16 bits", p.dtype);
    let values = t.to_f32().map_err(|e| Refusal::new(e.to_string()))?;
    Ok((values, p))
}

fn fold_q(g: &Graph, m: &Match, (values, p): (Vec<f32>, QParams)) -> Result<Patch, Refusal> {
    let x = g.const_tensor(m.get("x")).expect("checked");
    let q = common::quantize(&values, x.dims(), &p)?;
    let base = format!("{}_quantized", g.operand_name(m.get("x")));
    let mut patch = Patch::new();
    let c = patch.add_const(&base, Tensor::from_i64("", p.dtype, x.dims(), &q));
    patch.replace(out0(m), c);
    patch.remove(m.root());
    Ok(patch)
}

// ---- q-twin ------------------------------------------------------------------------------

/// An earlier QuantizeLinear (in graph order) computes exactly what this one computes.
fn earlier_twin(g: &Graph, m: &Match) -> Result<NodeId, Refusal> {
    let (Operand::Value(x), me) = (m.get("x"), g.node(m.root())) else { return Err(Refusal::NotApplicable) };
    // (The first in node order, without collecting the consumers.)
    let twin = g.uses(x.node).filter(|(_, e)| e.slot == x.slot).map(|(c, _)| c).filter(|&c| {
        let n = g.node(c);
        c != m.root()
            && n.op == Op::QuantizeLinear
            && n.inputs() == me.inputs()
            && n.attrs == me.attrs
            && n.outputs.len() == me.outputs.len()
            && n.outputs[0].ty == me.outputs[0].ty
            && n.order() < me.order()
    });
    let twin = twin.min().ok_or(Refusal::NotApplicable)?;
    ensure!(
        !g.is_output(Operand::Value(out0(m))),
        "its result is graph output '{}', a copy of QuantizeLinear '{}'",
        g.value(out0(m)).name,
        g.node(twin).ident()
    );
    Ok(twin)
}

fn use_twin(_: &Graph, m: &Match, twin: NodeId) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.replace(out0(m), Operand::Value(Outlet::new(twin, 0)));
    p.remove(m.root());
    Ok(p)
}

// ---- identity ----------------------------------------------------------------------------

fn output_name_can_be_kept(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let out = out0(m);
    if !g.is_output(Operand::Value(out)) {
        return Ok(());
    }
    let name = &g.value(out).name;
    let x = m.get("x");
    let ok = match x {
        Operand::Value(o) => g.node(o.node).op != Op::Input && !g.is_output(x),
        _ => false,
    };
    ensure!(ok, "graph output '{name}' is a copy of '{}', which cannot take its name", g.operand_name(x));
    Ok(())
}

fn remove_identity(_: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.replace(out0(m), m.get("x"));
    p.remove(m.root());
    Ok(p)
}
