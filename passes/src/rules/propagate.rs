//! The `propagate` rules: move QuantizeLinear earlier and DequantizeLinear later through ops that
//! commute with quantization, so that DQ→Q pairs meet (and `cleanup` removes them) and the fusion
//! passes see DQ→Conv→Q shapes. Every rule moves the op (it is never copied).
//!
//! - `dq-later-<op>`: `op(DQ(x, s, z))` ⇒ `DQ(op(x), s, z)` for data-movement ops that are exact
//!   on integers (MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Gather, Split,
//!   Pad, Resize, DepthToSpace, SpaceToDepth, Expand, Tile, Identity, ReduceMax, ReduceMin,
//!   Concat). A DQ with other consumers stays for them; a shape-like operand (Reshape's shape,
//!   Expand's shape, Tile's repeats) stays as it is. Per-axis DQs follow their axis through
//!   Transpose, through the reshaping ops where the axis survives as its own dim, and through
//!   Tile where the axis's repeat is 1; max/min need a positive scale.
//! - `q-earlier-<op>`: `Q(op(x), s, z)` ⇒ `op(Q(x, s, z))` for the same ops (not Split), when the
//!   op's float result has no other use and its input is no DQ (`dq-later` handles that). Concat
//!   quantizes each input (exact: Q is elementwise), turning unequal-scale Concats into per-input
//!   requantizations.
//! - `q-earlier-relu`: `Q(Relu(x), s, z)` ⇒ `Max(Q(x, s, z), z)`, or just `Q(x)` when `z` is the
//!   integer type's minimum. `q-earlier-clip`: `Q(Clip(x, a, b))` ⇒ `Clip(Q(x), Q(a), Q(b))`,
//!   dropping the bounds the Q already saturates to. Exact because Q is nondecreasing for a
//!   positive scale.
//!
//! - `argmax-int`, `argmin-int`: `ArgMax(DQ(x, s, z))` ⇒ `ArgMax(x)` (and ArgMin): the indices
//!   are the same, since a per-tensor DQ with a positive, finite scale maps distinct 8- or 16-bit
//!   integers to distinct floats in the same order (no product overflows, and neighbours differ
//!   by far more than a float32 rounding), so ties stay ties.
//!
//! GlobalMaxPool has no integer form in ONNX (onnxruntime rejects int8/uint8), so it is not here.

use super::common::{self, int_scalar, QParams};
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::Who;
use qdqc_ir::{attr, Dim, Graph, NodeId, Op, Operand, Outlet};

/// The data-movement ops ([`Op::is_data_movement`] but Concat, whose rules take a list, and
/// GlobalMaxPool, which has no integer form) and their rules' names: DQ later, Q earlier (none
/// for Split, whose outputs are many).
const MOVABLE: &[(&str, &str, Op)] = &[
    ("dq-later-maxpool", "q-earlier-maxpool", Op::MaxPool),
    ("dq-later-reshape", "q-earlier-reshape", Op::Reshape),
    ("dq-later-flatten", "q-earlier-flatten", Op::Flatten),
    ("dq-later-transpose", "q-earlier-transpose", Op::Transpose),
    ("dq-later-squeeze", "q-earlier-squeeze", Op::Squeeze),
    ("dq-later-unsqueeze", "q-earlier-unsqueeze", Op::Unsqueeze),
    ("dq-later-slice", "q-earlier-slice", Op::Slice),
    ("dq-later-gather", "q-earlier-gather", Op::Gather),
    ("dq-later-split", "", Op::Split),
    ("dq-later-pad", "q-earlier-pad", Op::Pad),
    ("dq-later-resize", "q-earlier-resize", Op::Resize),
    ("dq-later-depthtospace", "q-earlier-depthtospace", Op::DepthToSpace),
    ("dq-later-spacetodepth", "q-earlier-spacetodepth", Op::SpaceToDepth),
    ("dq-later-expand", "q-earlier-expand", Op::Expand),
    ("dq-later-tile", "q-earlier-tile", Op::Tile),
    ("dq-later-identity", "q-earlier-identity", Op::Identity),
    ("dq-later-reducemax", "q-earlier-reducemax", Op::ReduceMax),
    ("dq-later-reducemin", "q-earlier-reducemin", Op::ReduceMin),
];

/// The rule table.
pub fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for &(dq_name, _, ref op) in MOVABLE {
        let pattern = format!("({} (DequantizeLinear@dq ?x ?s ?z) ?rest...)", op.name());
        rules.push(Rule::new(dq_name, &pattern, dq_input_is_activation, dq_later));
    }
    rules.push(Rule::new("dq-later-concat", "(Concat ?xs...)", concat_of_equal_dqs, dq_later));
    for &(_, q_name, ref op) in MOVABLE.iter().filter(|m| !m.1.is_empty()) {
        let pattern = format!("(QuantizeLinear ({}@op ?x ?rest...) ?s ?z)", op.name());
        rules.push(Rule::new(q_name, &pattern, op_input_is_no_dq_and_single_use, q_earlier));
    }
    rules.push(
        Rule::new("q-earlier-concat", "(QuantizeLinear (Concat@op ?xs...) ?s ?z)", op_has_no_other_use, q_earlier)
            .defers_to(&["dq-later-concat"]),
    );
    for (name, op) in [("argmax-int", "ArgMax"), ("argmin-int", "ArgMin")] {
        let pattern = format!("({op} (DequantizeLinear@dq ?x ?s ?z))");
        rules.push(Rule::new(name, &pattern, dq_keeps_the_order, read_integers));
    }
    rules.push(Rule::new("q-earlier-relu", "(QuantizeLinear (Relu@op ?x) ?s ?z)", op_has_no_other_use, q_relu));
    rules.push(Rule::new("q-earlier-clip", "(QuantizeLinear (Clip@op ?x ?lo ?hi) ?s ?z)", op_has_no_other_use, q_clip));
    rules
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
            Err(Refusal::new(format!("scale {s} is not positive and finite (max/min commute with it only then)")))
        }
        Some(s) => Err(Refusal::new(format!("scale {s} is not finite and nonzero"))),
    }
}

/// Where quantization axis `a` (of length `len`) of a tensor of shape `from` lands in `to`, when a
/// reshape keeps it as its own dim: same length and same number of elements after it.
fn axis_through_reshape(from: &[Dim], to: &[Dim], a: usize, len: usize) -> Option<usize> {
    // (`None` for an unknown dim, or a count that overflows: a model's claims are not trusted.)
    let inner = |dims: &[Dim]| dims.iter().try_fold(1i64, |n, d| n.checked_mul(d.known()?));
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
            let mode = attr::view::pad_mode(&node.attrs);
            ensure!(mode == "constant", "mode '{mode}' is not 'constant'");
            ensure!(p.axis.is_none(), "per-axis quantization (axis {}) cannot give one pad value", p.axis.unwrap());
            pad_value(g, id, p, dir)?;
        }
        Op::Resize => {
            let r = attr::view::Resize::of(&node.attrs);
            ensure!(r.mode == "nearest", "mode '{}' is not 'nearest'", r.mode);
            ensure!(
                r.coordinate_transformation_mode != "tf_crop_and_resize",
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
    let fail = || Refusal::new(format!("per-axis quantization on axis {a} does not survive the {lower}"));
    match op {
        Op::Identity => Ok(Some(a)),
        Op::MaxPool if a <= 1 => Ok(Some(a)),
        Op::Transpose => {
            let rank = shape_of(g, from).map(|s| s.len()).ok_or_else(fail)?;
            let perm: Vec<usize> = attr::view::transpose_perm(&node.attrs, rank).iter().map(|&x| x as usize).collect();
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
        // Tile keeps the rank; an axis it does not repeat keeps its length and indices.
        Op::Tile if node.inputs().len() == 2 => {
            let reps = g.const_tensor(node.input(1)).and_then(|t| t.to_i64().ok());
            match reps {
                Some(r) if r.get(a) == Some(&1) => Ok(Some(a)),
                _ => Err(fail()),
            }
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
            let vals = t.to_f32().map_err(|e| Refusal::new(format!("pad value: {e}")))?;
            ensure!(vals.len() == 1, "the pad value has {} elements", vals.len());
            vals[0]
        }
    };
    let (s, z) = (p.scale[0], p.zero_point[0]);
    match dir {
        Dir::QEarlier => common::quantize_one(v, s, z, p.dtype),
        Dir::DqLater => {
            let (lo, hi) =
                p.dtype.int_range().ok_or_else(|| Refusal::new(format!("{} has no integer range", p.dtype)))?;
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

/// Weights stay DQ(constant) for the fusion passes: the DQ to move.
fn dq_input_is_activation(g: &Graph, m: &Match) -> Result<Vec<NodeId>, Refusal> {
    match g.node(m.node("dq")).input(0) {
        Operand::Const(_) => Err(Refusal::NotApplicable),
        _ => Ok(vec![m.node("dq")]),
    }
}

/// Every input of the Concat is a DQ, all with the same parameters, per tensor: the DQs to move.
fn concat_of_equal_dqs(g: &Graph, m: &Match) -> Result<Vec<NodeId>, Refusal> {
    let dqs: Vec<Option<NodeId>> = m.list("xs").iter().map(|&o| is_dq_output(g, o)).collect();
    if dqs.iter().any(Option::is_none) {
        return Err(Refusal::NotApplicable);
    }
    let first = common::of_node(g, dqs[0].unwrap())?;
    for (i, dq) in dqs.iter().enumerate().skip(1) {
        let p = common::of_node(g, dq.unwrap())?;
        ensure!(
            p.dtype == first.dtype
                && p.scale == first.scale
                && p.zero_point == first.zero_point
                && p.axis == first.axis,
            "input {i} is dequantized with other parameters than input 0 (q-earlier may requantize each input)"
        );
    }
    ensure!(first.axis.is_none(), "per-axis quantization (axis {}) is not moved through a concat", first.axis.unwrap());
    Ok(dqs.into_iter().flatten().collect())
}

/// Moves the op before the DQs `dqs` (one per data input: every input of a Concat, input 0
/// otherwise) and dequantizes its outputs.
fn dq_later(g: &Graph, m: &Match, dqs: Vec<NodeId>) -> Result<Patch, Refusal> {
    let id = m.root();
    let node = g.node(id);
    let data: Vec<usize> = if node.op == Op::Concat { (0..node.inputs().len()).collect() } else { vec![0] };
    let p = common::of_node(g, dqs[0])?;
    let axis = check_op(g, id, &p, Dir::DqLater)?;
    let mut patch = Patch::new();
    let mut inputs: Vec<PatchOperand> = node.inputs().iter().map(|&o| o.into()).collect();
    for (&i, &dq) in data.iter().zip(&dqs) {
        inputs[i] = g.node(dq).input(0).into();
    }
    if node.op == Op::Pad {
        let q = pad_value(g, id, &p, Dir::DqLater)?;
        inputs.resize(inputs.len().max(3), Operand::None.into());
        inputs[2] = patch.add_const("pad_value", int_scalar(p.dtype, q));
    }
    let n_out = if node.op == Op::Split { node.outputs.len() } else { 1 };
    let outputs = node.outputs[..n_out].iter().map(|v| format!("{}_int", v.name)).collect();
    let moved = patch.add(moved_op(node, inputs).outputs(outputs));
    let dq_attrs: std::sync::Arc<[_]> = with_axis(&g.node(dqs[0]).attrs, axis).into();
    for slot in 0..n_out {
        let out = &node.outputs[slot].name;
        let dq = PatchNode::new(Op::DequantizeLinear, qdq_inputs(g, dqs[0], moved.slot(slot as u32)));
        let dq = patch.add(dq.named(format!("{out}_dq")).attrs(dq_attrs.clone()).output(format!("{out}_dq")));
        patch.replace(Outlet::new(id, slot as u32), dq);
    }
    patch.remove(id);
    for dq in dqs {
        patch.remove(dq); // kept when it has other consumers
    }
    Ok(patch)
}

/// The op of the node `node`, with its name and attributes, reading `inputs`.
fn moved_op(node: &qdqc_ir::Node, inputs: Vec<PatchOperand>) -> PatchNode {
    PatchNode::new(node.op.clone(), inputs).named(node.name()).attrs(node.attrs.clone())
}

// ---- argmax-int, argmin-int --------------------------------------------------------------

/// The DQ maps distinct integers to distinct floats in the same order: per tensor, a positive
/// finite scale, an integer type of at most 16 bits (exact in float32 after `x - z`) whose whole
/// range times the scale stays finite.
fn dq_keeps_the_order(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let p = common::of_node(g, m.node("dq"))?;
    ensure!(p.axis.is_none(), "per-axis scales (axis {}) do not keep the order across channels", p.axis.unwrap());
    check_scales(&p, true)?;
    let (lo, hi) = p.dtype.int_range().ok_or_else(|| Refusal::new(format!("{} is not an integer type", p.dtype)))?;
    ensure!(hi - lo <= 65535, "{} integers are not all exact in float32", p.dtype);
    ensure!(
        (p.scale[0] * (hi - lo) as f32).is_finite(),
        "scale {} overflows float32 over the {} range",
        p.scale[0],
        p.dtype
    );
    Ok(())
}

/// The op reads the DQ's integers.
fn read_integers(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let id = m.root();
    let node = g.node(id);
    let mut patch = Patch::new();
    let out = &node.outputs[0].name;
    let op = patch.add(moved_op(node, vec![m.get("x").into()]).output(format!("{out}_int")));
    patch.replace(Outlet::new(id, 0), op);
    patch.remove(id);
    patch.remove(m.node("dq")); // kept when it has other consumers
    Ok(patch)
}

// ---- q-earlier ---------------------------------------------------------------------------

fn op_has_no_other_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    ensure!(!m.interior_used_elsewhere(g), "the float result of {} is used elsewhere", Who(g, m.node("op")));
    Ok(())
}

/// A DQ before the op is `dq-later`'s.
fn op_input_is_no_dq_and_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    match is_dq_output(g, m.get("x")) {
        Some(_) => Err(Refusal::NotApplicable),
        None => op_has_no_other_use(g, m),
    }
}

fn q_earlier(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let (q_id, id) = (m.root(), m.node("op"));
    let node = g.node(id);
    let named = |r: Refusal| r.map(|r| format!("through {}: {r}", Who(g, id)));
    let p = common::of_node(g, q_id)?;
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
        let q = PatchNode::new(Op::QuantizeLinear, qdq_inputs(g, q_id, x.into()));
        inputs[i] = patch.add(q.named(base.clone()).attrs(q_attrs.clone()).output(base));
    }
    if node.op == Op::Pad {
        let q = pad_value(g, id, &p, Dir::QEarlier).map_err(named)?;
        inputs.resize(inputs.len().max(3), Operand::None.into());
        inputs[2] = patch.add_const("pad_value", int_scalar(p.dtype, q));
    }
    let moved = patch.add(moved_op(node, inputs).output(format!("{}_int", node.outputs[0].name)));
    patch.replace(Outlet::new(q_id, 0), moved);
    patch.remove(q_id);
    patch.remove(id);
    Ok(patch)
}

// ---- q-earlier through Relu / Clip -------------------------------------------------------

/// The Q's parameters, checked for a clamp: positive scale, opset with integer Max/Clip.
fn clamp_params(g: &Graph, m: &Match) -> Result<(QParams, i64, i64), Refusal> {
    let p = common::of_node(g, m.root())?;
    check_scales(&p, true)?;
    let opset = g.opset();
    ensure!(opset >= 12, "integer Max/Clip need opset 12 (the model has {opset})");
    let (lo, hi) = p.dtype.int_range().ok_or_else(|| Refusal::new(format!("{} has no integer range", p.dtype)))?;
    Ok((p, lo, hi))
}

/// A new Q of `x` with the root Q's parameters.
fn requantize(g: &Graph, m: &Match, patch: &mut Patch) -> PatchOperand {
    let x = m.get("x");
    let base = format!("{}_q", g.operand_name(x));
    let q = PatchNode::new(Op::QuantizeLinear, qdq_inputs(g, m.root(), x.into()));
    patch.add(q.named(base.clone()).attrs(g.node(m.root()).attrs.clone()).output(base))
}

fn finish(m: &Match, mut patch: Patch, result: PatchOperand) -> Patch {
    patch.replace(Outlet::new(m.root(), 0), result);
    patch.remove(m.root());
    patch.remove(m.node("op"));
    patch
}

fn q_relu(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
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
        let z = patch.add_const("relu_floor", int_scalar(p.dtype, p.zero_point[0]));
        let name = match g.node(m.node("op")).name() {
            "" => format!("{out}_relu"),
            relu => relu.to_string(),
        };
        patch.add(PatchNode::new(Op::Max, [q, z]).named(name).output(format!("{out}_relu")))
    } else {
        q
    };
    Ok(finish(m, patch, result))
}

fn q_clip(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let (p, lo, hi) = clamp_params(g, m)?;
    ensure!(p.axis.is_none(), "per-axis quantization (axis {}) has no single integer bound", p.axis.unwrap());
    let clip = m.node("op");
    let a = common::clip_bound(g, clip, 1, "min", f32::MIN)?;
    let b = common::clip_bound(g, clip, 2, "max", f32::MAX)?;
    ensure!(!a.is_nan() && !b.is_nan(), "a clip bound is NaN");
    let (s, z) = (p.scale[0], p.zero_point[0]);
    let (qa, qb) = (common::quantize_one(a, s, z, p.dtype)?, common::quantize_one(b, s, z, p.dtype)?);
    let mut patch = Patch::new();
    let q = requantize(g, m, &mut patch);
    let out = g.node(m.root()).outputs[0].name.clone();
    let result = if qa <= lo && qb >= hi {
        q
    } else {
        let qa = if qa > lo { patch.add_const("clip_min", int_scalar(p.dtype, qa)) } else { Operand::None.into() };
        let mut inputs = vec![q, qa];
        if qb < hi {
            inputs.push(patch.add_const("clip_max", int_scalar(p.dtype, qb)));
        }
        patch.add(PatchNode::new(Op::Clip, inputs).named(g.node(clip).name()).output(format!("{out}_clip")))
    };
    Ok(finish(m, patch, result))
}
