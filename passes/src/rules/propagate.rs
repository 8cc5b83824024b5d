//! The `propagate` rules: move QuantizeLinear earlier and DequantizeLinear later through ops that
//! commute with quantization, so that DQ→Q pairs meet (and `cleanup` removes them) and the fusion
//! passes see DQ→Conv→Q shapes. Every rule moves the op (it is never copied).
//!
//! - `dq-later-<op>`: `op(DQ(x, s, z))` ⇒ `DQ(op(x), s, z)` for data-movement ops that are exact
//!   on integers (MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Gather, Split,
//!   Pad, Resize, DepthToSpace, SpaceToDepth, Identity, ReduceMax, ReduceMin, Concat). A DQ with
//!   other consumers stays for them. Per-axis DQs follow their axis through Transpose and through
//!   the reshaping ops where the axis survives as its own dim; max/min need a positive scale.
//! - `q-earlier-<op>`: `Q(op(x), s, z)` ⇒ `op(Q(x, s, z))` for the same ops (not Split), when the
//!   op's float result has no other use and its input is no DQ (`dq-later` handles that). Concat
//!   quantizes each input (exact: Q is elementwise), turning unequal-scale Concats into per-input
//!   requantizations.
//! - `q-earlier-relu`: `Q(Relu(x), s, z)` ⇒ `Max(Q(x, s, z), z)`, or just `Q(x)` when `z` is the
//!   integer type's minimum. `q-earlier-clip`: `Q(Clip(x, a, b))` ⇒ `Clip(Q(x), Q(a), Q(b))`,
//!   dropping the bounds the Q already saturates to. Exact because Q is nondecreasing for a
//!   positive scale.
//!
//! GlobalMaxPool has no integer form in ONNX (onnxruntime rejects int8/uint8), so it is not here.

use super::qparams::{self, QParams};
use crate::driver::RulePass;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::Who;
use qdqc_ir::{attr, DType, Dim, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// The data-movement ops: rule-name suffix, op, how many inputs the pattern allows.
const MOVABLE: &[(&str, &str, Op, usize)] = &[
    ("dq-later-maxpool", "q-earlier-maxpool", Op::MaxPool, 1),
    ("dq-later-reshape", "q-earlier-reshape", Op::Reshape, 2),
    ("dq-later-flatten", "q-earlier-flatten", Op::Flatten, 1),
    ("dq-later-transpose", "q-earlier-transpose", Op::Transpose, 1),
    ("dq-later-squeeze", "q-earlier-squeeze", Op::Squeeze, 2),
    ("dq-later-unsqueeze", "q-earlier-unsqueeze", Op::Unsqueeze, 2),
    ("dq-later-slice", "q-earlier-slice", Op::Slice, 5),
    ("dq-later-gather", "q-earlier-gather", Op::Gather, 2),
    ("dq-later-split", "", Op::Split, 2),
    ("dq-later-pad", "q-earlier-pad", Op::Pad, 4),
    ("dq-later-resize", "q-earlier-resize", Op::Resize, 4),
    ("dq-later-depthtospace", "q-earlier-depthtospace", Op::DepthToSpace, 1),
    ("dq-later-spacetodepth", "q-earlier-spacetodepth", Op::SpaceToDepth, 1),
    ("dq-later-identity", "q-earlier-identity", Op::Identity, 1),
    ("dq-later-reducemax", "q-earlier-reducemax", Op::ReduceMax, 2),
    ("dq-later-reducemin", "q-earlier-reducemin", Op::ReduceMin, 2),
];

/// Concat's pattern takes this many inputs (more is left alone).
const CONCAT_ARITY: usize = 32;

fn vars(n: usize) -> String {
    (0..n).map(|i| format!(" ?i{i}")).collect()
}

/// The rule table.
pub fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for &(dq_name, _, ref op, arity) in MOVABLE {
        let pattern = format!("({} (DequantizeLinear ?x ?s ?z){})", op.name(), vars(arity - 1));
        rules.push(Rule::new(dq_name, &pattern, &[dq_input_is_activation], dq_later));
    }
    rules.push(Rule::new(
        "dq-later-concat",
        &format!("(Concat{})", vars(CONCAT_ARITY)),
        &[concat_inputs_are_equal_dqs],
        dq_later,
    ));
    for &(_, q_name, ref op, arity) in MOVABLE {
        if q_name.is_empty() {
            continue;
        }
        let pattern = format!("(QuantizeLinear ({} ?x{}) ?s ?z)", op.name(), vars(arity - 1));
        rules.push(Rule::new(q_name, &pattern, &[op_input_is_no_dq, op_has_no_other_use], q_earlier));
    }
    rules.push(Rule::new(
        "q-earlier-concat",
        &format!("(QuantizeLinear (Concat{}) ?s ?z)", vars(CONCAT_ARITY)),
        &[concat_is_not_for_dq_later, op_has_no_other_use],
        q_earlier,
    ));
    rules.push(Rule::new("q-earlier-relu", "(QuantizeLinear (Relu ?x) ?s ?z)", &[op_has_no_other_use], q_relu));
    rules.push(Rule::new("q-earlier-clip", "(QuantizeLinear (Clip ?x ?lo ?hi) ?s ?z)", &[op_has_no_other_use], q_clip));
    rules
}

pub fn pass() -> RulePass {
    RulePass::new("propagate", rules)
}

// ---- shared checks -----------------------------------------------------------------------

fn is_dq_output(g: &Graph, o: Operand) -> Option<NodeId> {
    match o {
        Operand::Value(v) if g.node(v.node).op == Op::DequantizeLinear => Some(v.node),
        _ => None,
    }
}

fn shape_of(g: &Graph, o: Operand) -> Option<std::sync::Arc<[Dim]>> {
    g.operand_type(o).and_then(|t| t.shape)
}

fn check_scales(p: &QParams, positive: bool) -> Result<(), Refusal> {
    let bad = p.scale.iter().find(|s| !s.is_finite() || (positive && **s <= 0.0) || **s == 0.0);
    match bad {
        None => Ok(()),
        Some(s) if positive => {
            Err(Refusal(format!("scale {s} is not positive and finite (max/min commute with it only then)")))
        }
        Some(s) => Err(Refusal(format!("scale {s} is not finite and nonzero"))),
    }
}

/// Where quantization axis `a` (of length `len`) of a tensor of shape `from` lands in `to`, when a
/// reshape keeps it as its own dim: same length and same number of elements after it.
fn axis_through_reshape(from: &[Dim], to: &[Dim], a: usize, len: usize) -> Option<usize> {
    let inner = |dims: &[Dim]| dims.iter().map(Dim::known).product::<Option<i64>>();
    if from.get(a)?.known()? != len as i64 {
        return None;
    }
    let after = inner(&from[a + 1..])?;
    (0..to.len()).find(|&j| to[j].known() == Some(len as i64) && inner(&to[j + 1..]) == Some(after))
}

/// Which way a rule moves quantization past the op.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// `p` describes the op's input; the result is the axis on its output.
    DqLater,
    /// `p` describes the op's output; the result is the axis on its input.
    QEarlier,
}

/// Checks that the data-movement op `id` runs exactly on integers of `p`'s type and returns the
/// quantization axis on the other side of it. Reasons do not name the op (the caller does).
fn check_op(g: &Graph, id: NodeId, p: &QParams, dir: Dir) -> Result<Option<usize>, Refusal> {
    let node = g.node(id);
    let op = &node.op;
    let opset = g.opset();
    let lower = op.name().to_lowercase();
    let monotone = matches!(op, Op::MaxPool | Op::ReduceMax | Op::ReduceMin);
    check_scales(p, monotone)?;
    if matches!(op, Op::MaxPool | Op::ReduceMax | Op::ReduceMin) {
        ensure!(opset >= 12, "{} on integers needs opset 12 (the model has {opset})", op.name());
    }
    match op {
        Op::MaxPool => {
            let indices_used = node.outputs.len() > 1 && g.uses(id).any(|(_, e)| e.slot == 1)
                || g.is_output(Operand::Value(Outlet::new(id, 1)));
            ensure!(!indices_used, "its Indices output is used");
        }
        Op::Pad => {
            ensure!(opset >= 11, "Pad takes integers from opset 11 (the model has {opset})");
            let mode = attr::string(&node.attrs, "mode").unwrap_or_else(|| "constant".into());
            ensure!(mode == "constant", "mode '{mode}' is not 'constant'");
            ensure!(p.axis.is_none(), "per-axis quantization (axis {}) cannot give one pad value", p.axis.unwrap());
            pad_value(g, id, p, dir)?;
        }
        Op::Resize => {
            let mode = attr::string(&node.attrs, "mode").unwrap_or_else(|| "nearest".into());
            ensure!(mode == "nearest", "mode '{mode}' is not 'nearest'");
            let ct = attr::string(&node.attrs, "coordinate_transformation_mode").unwrap_or_default();
            ensure!(
                ct != "tf_crop_and_resize",
                "coordinate_transformation_mode 'tf_crop_and_resize' extrapolates a float"
            );
        }
        _ => {}
    }
    let Some(a) = p.axis else { return Ok(None) };
    let len = p.scale.len();
    let (from, to) = match dir {
        Dir::DqLater => (node.input(0), Operand::Value(Outlet::new(id, 0))),
        Dir::QEarlier => (Operand::Value(Outlet::new(id, 0)), node.input(0)),
    };
    let fail = || Refusal(format!("per-axis quantization on axis {a} does not survive the {lower}"));
    match op {
        Op::Identity => Ok(Some(a)),
        Op::MaxPool if a <= 1 => Ok(Some(a)),
        Op::Transpose => {
            let rank = shape_of(g, from).map(|s| s.len()).ok_or_else(fail)?;
            let perm: Vec<usize> = match attr::ints(&node.attrs, "perm") {
                Some(p) => p.iter().map(|&x| x as usize).collect(),
                None => (0..rank).rev().collect(),
            };
            ensure!(perm.len() == rank, "perm {perm:?} does not fit rank {rank}");
            let mapped = match dir {
                // Output axis j reads input axis perm[j].
                Dir::DqLater => perm.iter().position(|&x| x == a),
                Dir::QEarlier => perm.get(a).copied(),
            };
            mapped.map(Some).ok_or_else(fail)
        }
        Op::Reshape | Op::Flatten | Op::Squeeze | Op::Unsqueeze => {
            let (f, t) = (shape_of(g, from).ok_or_else(fail)?, shape_of(g, to).ok_or_else(fail)?);
            axis_through_reshape(&f, &t, a, len).map(Some).ok_or_else(fail)
        }
        _ => Err(fail()),
    }
}

/// The integer pad value of a constant-mode Pad: DQ-later needs a `q` with `(q - z)·s` equal to
/// the float value exactly; Q-earlier quantizes the value.
fn pad_value(g: &Graph, id: NodeId, p: &QParams, dir: Dir) -> Result<i64, Refusal> {
    let v = match g.node(id).input(2) {
        Operand::None => 0.0,
        o => {
            let t = g.const_tensor(o).ok_or_else(|| Refusal::new("the pad value is not a constant"))?;
            let vals = t.to_f32().map_err(|e| Refusal(format!("pad value: {e}")))?;
            ensure!(vals.len() == 1, "the pad value has {} elements", vals.len());
            vals[0]
        }
    };
    let (s, z) = (p.scale[0], p.zero_point[0]);
    match dir {
        Dir::QEarlier => quantize(v, s, z, p.dtype),
        Dir::DqLater => {
            let (lo, hi) = p.dtype.int_range().ok_or_else(|| Refusal(format!("{} has no integer range", p.dtype)))?;
            let q = (v / s).round() as i64 + z;
            ensure!(
                (lo..=hi).contains(&q) && (q - z) as f32 * s == v,
                "pad value {v} is no dequantized {} value (scale {s}, zero point {z})",
                p.dtype
            );
            Ok(q)
        }
    }
}

/// QuantizeLinear of one value as onnxruntime computes it.
fn quantize(v: f32, s: f32, z: i64, dtype: DType) -> Result<i64, Refusal> {
    let (lo, hi) = dtype.int_range().ok_or_else(|| Refusal(format!("{dtype} has no integer range")))?;
    let x = (v / s).max((lo - z) as f32).min((hi - z) as f32);
    Ok(x.round_ties_even() as i64 + z)
}

fn scalar(dtype: DType, v: i64) -> Tensor {
    Tensor::from_i64("", dtype, &[], &[v])
}

/// `attrs` with `axis` set to `axis` (unchanged when per tensor).
fn with_axis(attrs: &[qdqc_ir::proto::AttributeProto], axis: Option<usize>) -> Vec<qdqc_ir::proto::AttributeProto> {
    let mut out: Vec<_> = attrs.to_vec();
    if let Some(a) = axis {
        out.retain(|x| x.name.as_deref() != Some("axis"));
        out.push(attr::make_int("axis", a as i64));
    }
    out
}

/// The inputs of a Q or DQ node without a trailing omitted zero point.
fn qdq_inputs(g: &Graph, id: NodeId, data: PatchOperand) -> Vec<PatchOperand> {
    let n = g.node(id);
    let mut v = vec![data, n.input(1).into()];
    if n.input(2) != Operand::None {
        v.push(n.input(2).into());
    }
    v
}

// ---- dq-later ----------------------------------------------------------------------------

/// Weights stay DQ(constant) for the fusion passes.
fn dq_input_is_activation(g: &Graph, m: &Match) -> Result<(), Refusal> {
    match g.node(m.nodes[1]).input(0) {
        Operand::Const(_) => Err(Refusal::not_applicable()),
        _ => Ok(()),
    }
}

fn concat_inputs_are_equal_dqs(g: &Graph, m: &Match) -> Result<(), Refusal> {
    concat_of_equal_dqs(g, m.root())
}

fn concat_of_equal_dqs(g: &Graph, concat: NodeId) -> Result<(), Refusal> {
    let inputs = g.node(concat).inputs();
    let dqs: Vec<Option<NodeId>> = inputs.iter().map(|&o| is_dq_output(g, o)).collect();
    if dqs.iter().any(Option::is_none) {
        return Err(Refusal::not_applicable());
    }
    let first = qparams::of_node(g, dqs[0].unwrap())?;
    for (i, dq) in dqs.iter().enumerate().skip(1) {
        let p = qparams::of_node(g, dq.unwrap())?;
        ensure!(
            p.dtype == first.dtype
                && p.scale == first.scale
                && p.zero_point == first.zero_point
                && p.axis == first.axis,
            "input {i} is dequantized with other parameters than input 0 (q-earlier may requantize each input)"
        );
    }
    ensure!(first.axis.is_none(), "per-axis quantization (axis {}) is not moved through a concat", first.axis.unwrap());
    Ok(())
}

fn dq_later(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let id = m.root();
    let node = g.node(id);
    let is_concat = node.op == Op::Concat;
    // The data inputs: every input of a Concat, input 0 otherwise.
    let data: Vec<usize> = if is_concat { (0..node.inputs().len()).collect() } else { vec![0] };
    let dqs: Vec<NodeId> = data.iter().map(|&i| is_dq_output(g, node.input(i)).expect("matched")).collect();
    let p = qparams::of_node(g, dqs[0])?;
    let axis = check_op(g, id, &p, Dir::DqLater)?;
    let mut patch = Patch::new();
    let mut inputs: Vec<PatchOperand> = node.inputs().iter().map(|&o| o.into()).collect();
    for (&i, &dq) in data.iter().zip(&dqs) {
        inputs[i] = g.node(dq).input(0).into();
    }
    if node.op == Op::Pad {
        let q = pad_value(g, id, &p, Dir::DqLater)?;
        inputs.resize(inputs.len().max(3), Operand::None.into());
        inputs[2] = patch.add_const("pad_value", scalar(p.dtype, q));
    }
    let n_out = if node.op == Op::Split { node.outputs.len() } else { 1 };
    let moved = patch.add_node(PatchNode {
        op: node.op.clone(),
        name: node.name().to_string(),
        attrs: node.attrs.clone(),
        inputs,
        outputs: node.outputs[..n_out].iter().map(|v| format!("{}_int", v.name)).collect(),
    });
    let dq_node = g.node(dqs[0]);
    for slot in 0..n_out {
        let out = &node.outputs[slot].name;
        let dq = patch.add_node(PatchNode {
            op: Op::DequantizeLinear,
            name: format!("{out}_dq"),
            attrs: with_axis(&dq_node.attrs, axis).into(),
            inputs: qdq_inputs(g, dqs[0], PatchOperand::NewNode(moved, slot as u32)),
            outputs: vec![format!("{out}_dq")],
        });
        patch.replace(Outlet::new(id, slot as u32), PatchOperand::NewNode(dq, 0));
    }
    patch.remove(id);
    for dq in dqs {
        patch.remove(dq); // kept when it has other consumers
    }
    Ok(patch)
}

// ---- q-earlier ---------------------------------------------------------------------------

fn op_has_no_other_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    ensure!(!m.interior_used_elsewhere(g), "the float result of {} is used elsewhere", Who(g, m.nodes[1]));
    Ok(())
}

fn op_input_is_no_dq(g: &Graph, m: &Match) -> Result<(), Refusal> {
    match is_dq_output(g, m.get("x")) {
        Some(_) => Err(Refusal::not_applicable()),
        None => Ok(()),
    }
}

/// A Concat of DQs with equal parameters is `dq-later-concat`'s.
fn concat_is_not_for_dq_later(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let c = m.nodes[1];
    match concat_of_equal_dqs(g, c) {
        Ok(()) => Err(Refusal::not_applicable()),
        Err(_) => Ok(()),
    }
}

fn q_earlier(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (q_id, id) = (m.root(), m.nodes[1]);
    let node = g.node(id);
    let named = |r: Refusal| match r.is_remark() {
        true => Refusal(format!("through {}: {}", Who(g, id), r.0)),
        false => r,
    };
    let p = qparams::of_node(g, q_id)?;
    let axis = check_op(g, id, &p, Dir::QEarlier).map_err(named)?;
    if node.op == Op::Concat {
        ensure!(p.axis.is_none(), "per-axis quantization (axis {}) is not moved through a concat", p.axis.unwrap());
    }
    let data: Vec<usize> = if node.op == Op::Concat { (0..node.inputs().len()).collect() } else { vec![0] };
    let mut patch = Patch::new();
    let mut inputs: Vec<PatchOperand> = node.inputs().iter().map(|&o| o.into()).collect();
    let q_attrs: std::sync::Arc<[_]> = with_axis(&g.node(q_id).attrs, axis).into();
    for &i in &data {
        let x = node.input(i);
        let base = format!("{}_q", g.operand_name(x));
        let q = patch.add_node(PatchNode {
            op: Op::QuantizeLinear,
            name: base.clone(),
            attrs: q_attrs.clone(),
            inputs: qdq_inputs(g, q_id, x.into()),
            outputs: vec![base],
        });
        inputs[i] = PatchOperand::NewNode(q, 0);
    }
    if node.op == Op::Pad {
        let q = pad_value(g, id, &p, Dir::QEarlier).map_err(named)?;
        inputs.resize(inputs.len().max(3), Operand::None.into());
        inputs[2] = patch.add_const("pad_value", scalar(p.dtype, q));
    }
    let moved = patch.add_node(PatchNode {
        op: node.op.clone(),
        name: node.name().to_string(),
        attrs: node.attrs.clone(),
        inputs,
        outputs: vec![format!("{}_int", node.outputs[0].name)],
    });
    patch.replace(Outlet::new(q_id, 0), PatchOperand::NewNode(moved, 0));
    patch.remove(q_id);
    patch.remove(id);
    Ok(patch)
}

// ---- q-earlier through Relu / Clip -------------------------------------------------------

/// The Q's parameters, checked for a clamp: positive scale, opset with integer Max/Clip.
fn clamp_params(g: &Graph, m: &Match) -> Result<(QParams, i64, i64), Refusal> {
    let p = qparams::of_node(g, m.root())?;
    check_scales(&p, true)?;
    let opset = g.opset();
    ensure!(opset >= 12, "integer Max/Clip need opset 12 (the model has {opset})");
    let (lo, hi) = p.dtype.int_range().ok_or_else(|| Refusal(format!("{} has no integer range", p.dtype)))?;
    Ok((p, lo, hi))
}

/// A new Q of `x` with the root Q's parameters.
fn requantize(g: &Graph, m: &Match, patch: &mut Patch) -> usize {
    let x = m.get("x");
    let base = format!("{}_q", g.operand_name(x));
    patch.add_node(PatchNode {
        op: Op::QuantizeLinear,
        name: base.clone(),
        attrs: g.node(m.root()).attrs.clone(),
        inputs: qdq_inputs(g, m.root(), x.into()),
        outputs: vec![base],
    })
}

fn finish(m: &Match, mut patch: Patch, result: PatchOperand) -> Patch {
    patch.replace(Outlet::new(m.root(), 0), result);
    patch.remove(m.root());
    patch.remove(m.nodes[1]);
    patch
}

fn q_relu(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (p, lo, _) = clamp_params(g, m)?;
    let needs_max = p.zero_point.iter().any(|&z| z != lo);
    ensure!(
        !(needs_max && p.axis.is_some()),
        "per-axis zero points {:?} are not all the type's minimum {lo}",
        &p.zero_point[..p.zero_point.len().min(4)]
    );
    let mut patch = Patch::new();
    let q = requantize(g, m, &mut patch);
    let out = g.node(m.root()).outputs[0].name.clone();
    let result = if needs_max {
        let z = patch.add_const("relu_floor", scalar(p.dtype, p.zero_point[0]));
        let max = patch.add_node(PatchNode {
            op: Op::Max,
            name: match g.node(m.nodes[1]).name() {
                "" => format!("{out}_relu"),
                relu => relu.to_string(),
            },
            attrs: vec![].into(),
            inputs: vec![PatchOperand::NewNode(q, 0), z],
            outputs: vec![format!("{out}_relu")],
        });
        PatchOperand::NewNode(max, 0)
    } else {
        PatchOperand::NewNode(q, 0)
    };
    Ok(finish(m, patch, result))
}

fn clip_bound(g: &Graph, clip: NodeId, i: usize, name: &str, default: f32) -> Result<f32, Refusal> {
    let node = g.node(clip);
    if g.opset() < 11 {
        return Ok(attr::float(&node.attrs, name).unwrap_or(default));
    }
    match node.input(i) {
        Operand::None => Ok(default),
        o => {
            let t = g.const_tensor(o).ok_or_else(|| Refusal(format!("the clip {name} is not a constant")))?;
            let v = t.to_f32().map_err(|e| Refusal(format!("clip {name}: {e}")))?;
            ensure!(v.len() == 1, "the clip {name} has {} elements", v.len());
            Ok(v[0])
        }
    }
}

fn q_clip(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (p, lo, hi) = clamp_params(g, m)?;
    ensure!(p.axis.is_none(), "per-axis quantization (axis {}) has no single integer bound", p.axis.unwrap());
    let clip = m.nodes[1];
    let a = clip_bound(g, clip, 1, "min", f32::MIN)?;
    let b = clip_bound(g, clip, 2, "max", f32::MAX)?;
    ensure!(!a.is_nan() && !b.is_nan(), "a clip bound is NaN");
    let (s, z) = (p.scale[0], p.zero_point[0]);
    let (qa, qb) = (quantize(a, s, z, p.dtype)?, quantize(b, s, z, p.dtype)?);
    let mut patch = Patch::new();
    let q = requantize(g, m, &mut patch);
    let out = g.node(m.root()).outputs[0].name.clone();
    let result = if qa <= lo && qb >= hi {
        PatchOperand::NewNode(q, 0)
    } else {
        let qa = if qa > lo { patch.add_const("clip_min", scalar(p.dtype, qa)) } else { Operand::None.into() };
        let mut inputs = vec![PatchOperand::NewNode(q, 0), qa];
        if qb < hi {
            inputs.push(patch.add_const("clip_max", scalar(p.dtype, qb)));
        }
        let c = patch.add_node(PatchNode {
            op: Op::Clip,
            name: g.node(clip).name().to_string(),
            attrs: vec![].into(),
            inputs,
            outputs: vec![format!("{out}_clip")],
        });
        PatchOperand::NewNode(c, 0)
    };
    Ok(finish(m, patch, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        crate::rules::run_and_print(&pass(), text)
    }

    #[test]
    fn the_table_builds() {
        let rules = rules();
        assert_eq!(rules.len(), 2 * MOVABLE.len() + 3);
        assert!(rules.iter().any(|r| r.name == "q-earlier-relu"));
        let mut names: Vec<_> = rules.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), rules.len(), "rule names are unique");
    }

    /// A u8 activation `%d` (scale 0.5, zero point 128) of shape [N,4,8,8], then BODY.
    fn dq4(body: &str) -> String {
        format!(
            r#"graph "g" opset(ai.onnx=17) {{
  input %x: f32[N,4,8,8]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
{body}}}
"#
        )
    }

    #[test]
    fn dq_later_through_maxpool_and_transpose() {
        insta::assert_snapshot!(check(&dq4(r#"  %m = MaxPool[kernel_shape=[2,2], strides=[2,2]](%d)  "pool"
  %t = Transpose[perm=[0,2,3,1]](%m)  "tr"
  %y = QuantizeLinear(%t, %s, %z)
  output %y
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %m_int: u8[N,4,4,4] q(0.5, 128) = MaxPool[kernel_shape=[2,2], strides=[2,2]](%q)  "pool"
          %t_int: u8[N,4,4,4] q(0.5, 128) = Transpose[perm=[0,2,3,1]](%m_int)  "tr"
          %t: f32[N,4,4,4] = DequantizeLinear(%t_int, %s, %z)  "t_dq"
          %y: u8[N,4,4,4] q(0.5, 128) = QuantizeLinear(%t, %s, %z)
          output %y
        }
        "#);
    }

    #[test]
    fn dq_later_through_reshape_flatten_squeeze_unsqueeze_identity() {
        insta::assert_snapshot!(check(&dq4(r#"  const %shape: i64[3] [0, 4, 64]
  %r = Reshape(%d, %shape)  "r1"
  const %ax: i64[1] [1]
  %u = Unsqueeze(%r, %ax)
  %sq = Squeeze(%u, %ax)
  %i = Identity(%sq)
  %f = Flatten[axis=1](%i)
  output %f
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %shape: i64[3] [0, 4, 64]
          const %ax: i64[1] [1]
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %r_int: u8[N,4,64] q(0.5, 128) = Reshape(%q, %shape)  "r1"
          %u_int: u8[N,1,4,64] q(0.5, 128) = Unsqueeze(%r_int, %ax)
          %sq_int: u8[N,4,64] q(0.5, 128) = Squeeze(%u_int, %ax)
          %i_int: u8[N,4,64] q(0.5, 128) = Identity(%sq_int)
          %f_int: u8[N,256] q(0.5, 128) = Flatten[axis=1](%i_int)
          %f: f32[N,256] = DequantizeLinear(%f_int, %s, %z)  "f_dq"
          output %f
        }
        "#);
    }

    #[test]
    fn dq_later_through_slice_gather_split() {
        insta::assert_snapshot!(check(&dq4(r#"  const %st: i64[1] [0]
  const %en: i64[1] [4]
  const %axes: i64[1] [2]
  %sl = Slice(%d, %st, %en, %axes)
  const %idx: i64[2] [0, 2]
  %ga = Gather[axis=1](%sl, %idx)
  %a, %b = Split[axis=1, num_outputs=2](%ga)
  %ra = Relu(%a)
  %rb = Relu(%b)
  output %ra
  output %rb
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %st: i64[1] [0]
          const %en: i64[1] [4]
          const %axes: i64[1] [2]
          const %idx: i64[2] [0, 2]
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %sl_int: u8[N,4,4,8] q(0.5, 128) = Slice(%q, %st, %en, %axes)
          %ga_int: u8[N,2,4,8] q(0.5, 128) = Gather[axis=1](%sl_int, %idx)
          %a_int: u8[N,1,4,8] q(0.5, 128), %b_int: u8[N,1,4,8] q(0.5, 128) = Split[axis=1, num_outputs=2](%ga_int)
          %a_dq: f32[N,1,4,8] = DequantizeLinear(%a_int, %s, %z)  "a_dq"
          %b_dq: f32[N,1,4,8] = DequantizeLinear(%b_int, %s, %z)  "b_dq"
          %ra: f32[N,1,4,8] = Relu(%a_dq)
          %rb: f32[N,1,4,8] = Relu(%b_dq)
          output %ra
          output %rb
        }
        "#);
    }

    #[test]
    fn dq_later_through_pad_resize_depth_to_space_reduce() {
        insta::assert_snapshot!(check(&dq4(r#"  const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
  const %pv: f32[] 0
  %p = Pad(%p_in, %pads, %pv)
  const %sc: f32[4] [1, 1, 2, 2]
  %rs = Resize[mode="nearest"](%p, _, %sc)
  %ds = DepthToSpace[blocksize=2](%rs)
  %sd = SpaceToDepth[blocksize=2](%ds)
  %mx = ReduceMax[keepdims=1](%sd)
  %mn = ReduceMin[keepdims=0](%sd)
  output %mx
  output %mn
"#).replace("%p_in", "%d")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
          const %sc: f32[4] [1.0, 1.0, 2.0, 2.0]
          const %pad_value: u8[] 128
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %p_int: u8[N,4,10,10] q(0.5, 128) = Pad(%q, %pads, %pad_value)
          %rs_int: u8[N,4,20,20] q(0.5, 128) = Resize[mode="nearest"](%p_int, _, %sc)
          %ds_int: u8[N,1,40,40] q(0.5, 128) = DepthToSpace[blocksize=2](%rs_int)
          %sd_int: u8[N,4,20,20] q(0.5, 128) = SpaceToDepth[blocksize=2](%ds_int)
          %mx_int: u8[1,1,1,1] q(0.5, 128) = ReduceMax[keepdims=1](%sd_int)
          %mx: f32[1,1,1,1] = DequantizeLinear(%mx_int, %s, %z)  "mx_dq"
          %mn_int: u8[] q(0.5, 128) = ReduceMin[keepdims=0](%sd_int)
          %mn: f32[] = DequantizeLinear(%mn_int, %s, %z)  "mn_dq"
          output %mx
          output %mn
        }
        "#);
    }

    #[test]
    fn dq_later_refuses_a_pad_value_that_is_no_grid_point() {
        insta::assert_snapshot!(check(&dq4(r#"  const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
  const %pv: f32[] 0.25
  %p = Pad(%d, %pads, %pv)  "pad"
  const %pads2: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
  %p2 = Pad[mode="reflect"](%d, %pads2)  "pad2"
  output %p
  output %p2
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
          const %pv: f32[] 0.25
          const %pads2: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[N,4,8,8] = DequantizeLinear(%q, %s, %z)
          %p: f32[N,4,10,10] = Pad(%d, %pads, %pv)  "pad"
          %p2: f32[N,4,10,10] = Pad[mode="reflect"](%d, %pads2)  "pad2"
          output %p
          output %p2
        }
        // remark dq-later-pad: Pad 'pad': pad value 0.25 is no dequantized u8 value (scale 0.5, zero point 128)
        // remark dq-later-pad: Pad 'pad2': mode 'reflect' is not 'constant'
        "#);
    }

    #[test]
    fn dq_later_refuses_linear_resize_and_negative_scale_maxpool() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4,8,8]
  const %s: f32[] -0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %m = MaxPool[kernel_shape=[2,2]](%d)  "pool"
  const %sc: f32[4] [1, 1, 2, 2]
  %rs = Resize[mode="linear"](%d, _, %sc)  "up"
  output %m
  output %rs
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] -0.5
          const %z: u8[] 128
          const %sc: f32[4] [1.0, 1.0, 2.0, 2.0]
          %q: u8[N,4,8,8] q(-0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[N,4,8,8] = DequantizeLinear(%q, %s, %z)
          %m: f32[N,4,7,7] = MaxPool[kernel_shape=[2,2]](%d)  "pool"
          %rs: f32[N,4,16,16] = Resize[mode="linear"](%d, _, %sc)  "up"
          output %m
          output %rs
        }
        // remark dq-later-maxpool: MaxPool 'pool': scale -0.5 is not positive and finite (max/min commute with it only then)
        // remark dq-later-resize: Resize 'up': mode 'linear' is not 'nearest'
        "#);
    }

    #[test]
    fn dq_later_refuses_maxpool_before_opset_12() {
        insta::assert_snapshot!(check(&dq4(r#"  %m = MaxPool[kernel_shape=[2,2]](%d)  "pool"
  output %m
"#).replace("ai.onnx=17", "ai.onnx=11")), @r#"
        graph "g" opset(ai.onnx=11) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[N,4,8,8] = DequantizeLinear(%q, %s, %z)
          %m: f32[N,4,7,7] = MaxPool[kernel_shape=[2,2]](%d)  "pool"
          output %m
        }
        // remark dq-later-maxpool: MaxPool 'pool': MaxPool on integers needs opset 12 (the model has 11)
        "#);
    }

    #[test]
    fn a_dq_with_two_consumers_stays_for_the_other() {
        insta::assert_snapshot!(check(&dq4(r#"  %m = MaxPool[kernel_shape=[2,2]](%d)  "pool"
  %r = Relu(%d)
  output %m
  output %r
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[N,4,8,8] = DequantizeLinear(%q, %s, %z)
          %m_int: u8[N,4,7,7] q(0.5, 128) = MaxPool[kernel_shape=[2,2]](%q)  "pool"
          %m: f32[N,4,7,7] = DequantizeLinear(%m_int, %s, %z)  "m_dq"
          %r: f32[N,4,8,8] = Relu(%d)
          output %m
          output %r
        }
        "#);
    }

    #[test]
    fn dq_later_concat_of_equal_params_and_refusal_of_unequal() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4]
  input %w: f32[N,4]
  const %s: f32[] 0.5
  const %s2: f32[] 0.5
  const %s3: f32[] 0.25
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %qw = QuantizeLinear(%w, %s2, %z)
  %dw = DequantizeLinear(%qw, %s2, %z)
  %dw3 = DequantizeLinear(%qw, %s3, %z)
  %c = Concat[axis=1](%d, %dw)  "same"
  %c3 = Concat[axis=1](%d, %dw3)  "other"
  output %c
  output %c3
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          input %w: f32[N,4]
          const %s: f32[] 0.5
          const %s2: f32[] 0.5
          const %s3: f32[] 0.25
          const %z: u8[] 128
          %q: u8[N,4] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[N,4] = DequantizeLinear(%q, %s, %z)
          %qw: u8[N,4] q(0.5, 128) = QuantizeLinear(%w, %s2, %z)
          %dw3: f32[N,4] = DequantizeLinear(%qw, %s3, %z)
          %c_int: u8[N,8] q(0.5, 128) = Concat[axis=1](%q, %qw)  "same"
          %c: f32[N,8] = DequantizeLinear(%c_int, %s, %z)  "c_dq"
          %c3: f32[N,8] = Concat[axis=1](%d, %dw3)  "other"
          output %c
          output %c3
        }
        // remark dq-later-concat: Concat 'other': input 1 is dequantized with other parameters than input 0 (q-earlier may requantize each input)
        "#);
    }

    /// A per-channel i8 DQ on axis 1 of [2,3,4].
    fn per_axis(body: &str) -> String {
        format!(
            r#"graph "g" opset(ai.onnx=17) {{
  input %q: i8[2,3,4]
  const %s: f32[3] [0.5, 0.25, 0.125]
  const %z: i8[3] [0, 1, 2]
  %d = DequantizeLinear[axis=1](%q, %s, %z)
{body}}}
"#
        )
    }

    #[test]
    fn per_axis_dq_follows_its_axis_through_transpose_and_reshape() {
        insta::assert_snapshot!(check(&per_axis(r#"  %t = Transpose[perm=[2,0,1]](%d)  "tr"
  const %shape: i64[2] [8, 3]
  %r = Reshape(%t, %shape)  "r0"
  output %r
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %q: i8[2,3,4] q(%s, %z, axis=1)
          const %s: f32[3] [0.5, 0.25, 0.125]
          const %z: i8[3] [0, 1, 2]
          const %shape: i64[2] [8, 3]
          %t_int: i8[4,2,3] q(%s, %z, axis=2) = Transpose[perm=[2,0,1]](%q)  "tr"
          %r_int: i8[8,3] q(%s, %z, axis=1) = Reshape(%t_int, %shape)  "r0"
          %r: f32[8,3] = DequantizeLinear[axis=1](%r_int, %s, %z)  "r_dq"
          output %r
        }
        "#);
    }

    #[test]
    fn per_axis_dq_refuses_a_reshape_that_merges_its_axis() {
        insta::assert_snapshot!(check(&per_axis(r#"  const %shape: i64[2] [2, 12]
  %r = Reshape(%d, %shape)  "r1"
  const %st: i64[1] [0]
  const %en: i64[1] [2]
  const %ax: i64[1] [1]
  %sl = Slice(%d, %st, %en, %ax)  "sl"
  output %r
  output %sl
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %q: i8[2,3,4] q(%s, %z, axis=1)
          const %s: f32[3] [0.5, 0.25, 0.125]
          const %z: i8[3] [0, 1, 2]
          const %shape: i64[2] [2, 12]
          const %st: i64[1] [0]
          const %en: i64[1] [2]
          const %ax: i64[1] [1]
          %d: f32[2,3,4] = DequantizeLinear[axis=1](%q, %s, %z)
          %r: f32[2,12] = Reshape(%d, %shape)  "r1"
          %sl: f32[2,2,4] = Slice(%d, %st, %en, %ax)  "sl"
          output %r
          output %sl
        }
        // remark dq-later-reshape: Reshape 'r1': per-axis quantization on axis 1 does not survive the reshape
        // remark dq-later-slice: Slice 'sl': per-axis quantization on axis 1 does not survive the slice
        "#);
    }

    #[test]
    fn q_earlier_through_data_movement() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4,8,8]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %r = Relu(%x)
  %m = MaxPool[kernel_shape=[2,2], strides=[2,2]](%r)  "pool"
  const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
  const %pv: f32[] -1
  %p = Pad(%m, %pads, %pv)  "pad"
  %f = Flatten[axis=1](%p)  "flat"
  %y = QuantizeLinear(%f, %s, %z)
  output %y
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
          const %pad_value: u8[] 126
          const %relu_floor: u8[] 128
          %x_q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)  "x_q"
          %r_q: u8[N,4,8,8] q(0.5, 128) = Max(%x_q, %relu_floor)  "r_q_relu"
          %m_q: u8[N,4,4,4] q(0.5, 128) = MaxPool[kernel_shape=[2,2], strides=[2,2]](%r_q)  "pool"
          %p_q: u8[N,4,6,6] q(0.5, 128) = Pad(%m_q, %pads, %pad_value)  "pad"
          %y: u8[N,144] q(0.5, 128) = Flatten[axis=1](%p_q)  "flat"
          output %y
        }
        "#);
    }

    #[test]
    fn q_earlier_maps_a_per_axis_q_back_through_transpose() {
        // The Q's axis 2 of the [4,2,3] output is axis perm[2] = 1 of the input.
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2,3,4]
  const %s: f32[3] [0.5, 0.25, 0.125]
  const %z: i8[3] [0, 1, 2]
  %t = Transpose[perm=[2,0,1]](%x)  "tr"
  %y = QuantizeLinear[axis=2](%t, %s, %z)
  output %y
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[2,3,4]
          const %s: f32[3] [0.5, 0.25, 0.125]
          const %z: i8[3] [0, 1, 2]
          %x_q: i8[2,3,4] q(%s, %z, axis=1) = QuantizeLinear[axis=1](%x, %s, %z)  "x_q"
          %y: i8[4,2,3] = Transpose[perm=[2,0,1]](%x_q)  "tr"
          output %y
        }
        "#);
    }

    #[test]
    fn q_earlier_leaves_a_dq_input_to_dq_later() {
        // No ping-pong: the DQ moves down and meets the Q as a requantizing DQ→Q pair.
        insta::assert_snapshot!(check(&dq4(r#"  const %s2: f32[] 0.25
  %t = Transpose[perm=[0,2,3,1]](%d)  "tr"
  %y = QuantizeLinear(%t, %s2, %z)
  output %y
"#)), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          const %s2: f32[] 0.25
          %q: u8[N,4,8,8] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %t_int: u8[N,8,8,4] q(0.5, 128) = Transpose[perm=[0,2,3,1]](%q)  "tr"
          %t: f32[N,8,8,4] = DequantizeLinear(%t_int, %s, %z)  "t_dq"
          %y: u8[N,8,8,4] q(0.25, 128) = QuantizeLinear(%t, %s2, %z)
          output %y
        }
        "#);
    }

    #[test]
    fn q_earlier_refuses_when_the_float_result_is_used_elsewhere() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4,8,8]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %m = MaxPool[kernel_shape=[2,2]](%x)  "pool"
  %y = QuantizeLinear(%m, %s, %z)
  %t = Sigmoid(%m)
  output %y
  output %t
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4,8,8]
          const %s: f32[] 0.5
          const %z: u8[] 128
          %m: f32[N,4,7,7] = MaxPool[kernel_shape=[2,2]](%x)  "pool"
          %y: u8[N,4,7,7] q(0.5, 128) = QuantizeLinear(%m, %s, %z)
          %t: f32[N,4,7,7] = Sigmoid(%m)
          output %y
          output %t
        }
        // remark q-earlier-maxpool: QuantizeLinear (producing 'y'): the float result of MaxPool 'pool' is used elsewhere
        "#);
    }

    #[test]
    fn q_earlier_through_concat_with_unequal_input_scales() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[N,4]
  input %w: f32[N,4]
  const %s1: f32[] 0.5
  const %s2: f32[] 0.25
  const %s: f32[] 0.125
  const %z: i8[] 0
  %q1 = QuantizeLinear(%x, %s1, %z)
  %d1 = DequantizeLinear(%q1, %s1, %z)
  %q2 = QuantizeLinear(%w, %s2, %z)
  %d2 = DequantizeLinear(%q2, %s2, %z)
  %c = Concat[axis=1](%d1, %d2)  "cat"
  %y = QuantizeLinear(%c, %s, %z)
  output %y
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          input %w: f32[N,4]
          const %s1: f32[] 0.5
          const %s2: f32[] 0.25
          const %s: f32[] 0.125
          const %z: i8[] 0
          %q1: i8[N,4] q(0.5, 0) = QuantizeLinear(%x, %s1, %z)
          %d1: f32[N,4] = DequantizeLinear(%q1, %s1, %z)
          %q2: i8[N,4] q(0.25, 0) = QuantizeLinear(%w, %s2, %z)
          %d2: f32[N,4] = DequantizeLinear(%q2, %s2, %z)
          %d1_q: i8[N,4] q(0.125, 0) = QuantizeLinear(%d1, %s, %z)  "d1_q"
          %d2_q: i8[N,4] q(0.125, 0) = QuantizeLinear(%d2, %s, %z)  "d2_q"
          %y: i8[N,8] q(0.125, 0) = Concat[axis=1](%d1_q, %d2_q)  "cat"
          output %y
        }
        "#);
    }

    fn relu(zero_point: &str) -> String {
        format!(
            r#"graph "g" opset(ai.onnx=17) {{
  input %x: f32[N,4]
  const %s: f32[] 0.5
  const %z: {zero_point}
  %r = Relu(%x)  "relu"
  %y = QuantizeLinear(%r, %s, %z)
  output %y
}}
"#
        )
    }

    #[test]
    fn q_earlier_through_relu_with_z_at_the_minimum_needs_no_max() {
        insta::assert_snapshot!(check(&relu("u8[] 0")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.5
          const %z: u8[] 0
          %y: u8[N,4] q(0.5, 0) = QuantizeLinear(%x, %s, %z)  "x_q"
          output %y
        }
        "#);
        insta::assert_snapshot!(check(&relu("i8[] -128")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.5
          const %z: i8[] -128
          %y: i8[N,4] q(0.5, -128) = QuantizeLinear(%x, %s, %z)  "x_q"
          output %y
        }
        "#);
    }

    #[test]
    fn q_earlier_through_relu_with_another_z_keeps_a_max() {
        insta::assert_snapshot!(check(&relu("i8[] 0")), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.5
          const %z: i8[] 0
          const %relu_floor: i8[] 0
          %x_q: i8[N,4] q(0.5, 0) = QuantizeLinear(%x, %s, %z)  "x_q"
          %y: i8[N,4] q(0.5, 0) = Max(%x_q, %relu_floor)  "relu"
          output %y
        }
        "#);
    }

    #[test]
    fn q_earlier_through_relu_refuses_before_opset_12() {
        insta::assert_snapshot!(check(&relu("i8[] 0").replace("ai.onnx=17", "ai.onnx=11")), @r#"
        graph "g" opset(ai.onnx=11) {
          input %x: f32[N,4]
          const %s: f32[] 0.5
          const %z: i8[] 0
          %r: f32[N,4] = Relu(%x)  "relu"
          %y: i8[N,4] q(0.5, 0) = QuantizeLinear(%r, %s, %z)
          output %y
        }
        // remark q-earlier-relu: QuantizeLinear (producing 'y'): integer Max/Clip need opset 12 (the model has 11)
        "#);
    }

    #[test]
    fn q_earlier_through_clip() {
        let clip = |lo: &str, hi: &str| {
            check(&format!(
                r#"graph "g" opset(ai.onnx=17) {{
  input %x: f32[N,4]
  const %s: f32[] 0.05
  const %z: i8[] 0
  const %lo: f32[] {lo}
  const %hi: f32[] {hi}
  %r = Clip(%x, %lo, %hi)  "clip"
  %y = QuantizeLinear(%r, %s, %z)
  output %y
}}
"#
            ))
        };
        // Relu6: both bounds are inside the i8 range.
        insta::assert_snapshot!(clip("0", "6"), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.05
          const %z: i8[] 0
          const %clip_min: i8[] 0
          const %clip_max: i8[] 120
          %x_q: i8[N,4] q(0.05, 0) = QuantizeLinear(%x, %s, %z)  "x_q"
          %y: i8[N,4] q(0.05, 0) = Clip(%x_q, %clip_min, %clip_max)  "clip"
          output %y
        }
        "#);
        // The lower bound saturates: a Clip with only a max.
        insta::assert_snapshot!(clip("-100", "6"), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.05
          const %z: i8[] 0
          const %clip_max: i8[] 120
          %x_q: i8[N,4] q(0.05, 0) = QuantizeLinear(%x, %s, %z)  "x_q"
          %y: i8[N,4] q(0.05, 0) = Clip(%x_q, _, %clip_max)  "clip"
          output %y
        }
        "#);
        // Both bounds saturate: the Q alone clamps.
        insta::assert_snapshot!(clip("-100", "100"), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[N,4]
          const %s: f32[] 0.05
          const %z: i8[] 0
          %y: i8[N,4] q(0.05, 0) = QuantizeLinear(%x, %s, %z)  "x_q"
          output %y
        }
        "#);
    }
}
