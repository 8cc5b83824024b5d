//! Keeping chosen tensors in float (`qdqc compile --keep-float NAME,...`): the "keep the
//! sensitive layers in higher precision" step after `qdqc accuracy --layers`.
//!
//! A NAME is a tensor the model quantizes (a row of `accuracy --layers`) or a node (its outputs).
//! Every QuantizeLinear → DequantizeLinear pair on the tensor goes: the uses of the
//! DequantizeLinear read the float tensor, clipped to the range the QuantizeLinear represented
//! (the rounding goes, the saturation stays: quantizers fold a Relu or Clip into it). When the op that makes the tensor has a weight that is
//! a float constant behind QuantizeLinear → DequantizeLinear (QAT exports), that pair goes too and
//! the op computes with the float weight. An integer weight constant (onnxruntime's quantizer
//! writes those) takes the float model's value when one is given: the constant at the same input
//! of its node of the same name and op, with the same shape; without one it stays dequantized
//! (the report says so).

use crate::calibrate::{represented, Params};
use crate::Error;
use qdqc_ir::{Graph, NodeId, NodeMeta, Op, Operand, Outlet, Tensor, Value};
use serde::Serialize;
use std::path::Path;

/// What keeping one name in float removed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kept {
    /// The tensor now left in float.
    pub tensor: String,
    /// QuantizeLinear → DequantizeLinear pairs removed on it.
    pub pairs: usize,
    /// Float weights of its op that are no longer fake-quantized.
    pub float_weights: Vec<String>,
    /// Weights of its op that stay dequantized integer constants.
    pub integer_weights: Vec<String>,
}

/// Keeps each of `names` in float (see the module documentation). A name that is neither a
/// tensor a QuantizeLinear reads nor a node producing one is an error naming it (exit 2).
pub fn keep_float(g: &mut Graph, path: &Path, names: &[String], float: Option<&Graph>) -> Result<Vec<Kept>, Error> {
    let bad = |msg: String| Error::Mismatch { path: path.to_path_buf(), msg };
    let mut out = Vec::new();
    for name in names {
        let tensors: Vec<Outlet> = match g.lookup(name) {
            Some(Operand::Value(o)) => vec![o],
            Some(_) => {
                return Err(bad(format!("--keep-float '{name}' is a constant, not a tensor the model computes")))
            }
            None => {
                let node = g.node_ids().find(|&id| g.node(id).op != Op::Input && g.node(id).name() == name);
                let Some(id) = node else {
                    return Err(bad(format!("--keep-float '{name}': no tensor or node has this name")));
                };
                (0..g.node(id).outputs.len() as u32).map(|s| Outlet::new(id, s)).collect()
            }
        };
        let mut any = false;
        for t in tensors {
            let pairs = remove_pairs(g, t, path)?;
            if pairs == 0 {
                continue;
            }
            any = true;
            let (mut float_weights, mut integer_weights) = (Vec::new(), Vec::new());
            if g.node(t.node).op != Op::Input {
                for i in 0..g.node(t.node).inputs().len() {
                    let w = g.node(t.node).input(i);
                    let Some(dq) = producer(g, w, Op::DequantizeLinear) else { continue };
                    let q_in = g.node(dq).input(0);
                    match producer(g, q_in, Op::QuantizeLinear) {
                        Some(q) if matches!(g.node(q).input(0), Operand::Const(_)) => {
                            let w = g.node(q).input(0);
                            float_weights.push(g.operand_name(w).to_string());
                            g.set_input(t.node, i, w);
                        }
                        _ if matches!(q_in, Operand::Const(_)) => match float.and_then(|f| float_twin(g, f, t.node, i))
                        {
                            Some((name, tensor)) => {
                                let c = g.add_initializer(&format!("{name}_float"), tensor);
                                float_weights.push(format!("{name} (from the float model)"));
                                g.set_input(t.node, i, Operand::Const(c));
                            }
                            None => integer_weights.push(g.operand_name(q_in).to_string()),
                        },
                        _ => {}
                    }
                }
            }
            out.push(Kept { tensor: g.value(t).name.clone(), pairs, float_weights, integer_weights });
        }
        if !any {
            return Err(bad(format!("--keep-float '{name}': no QuantizeLinear reads it, so it is float already")));
        }
    }
    Ok(out)
}

/// The float model's value of input `i` of `node`: the constant at the same input of the float
/// model's node of the same name and op, when its shape is the dequantized weight's.
fn float_twin(g: &Graph, float: &Graph, node: NodeId, i: usize) -> Option<(String, Tensor)> {
    let n = g.node(node);
    if n.name().is_empty() {
        return None;
    }
    let twin = float.node_ids().map(|id| float.node(id)).find(|f| f.op == n.op && f.name() == n.name())?;
    let c = *twin.inputs().get(i)?;
    let t = float.const_tensor(c)?;
    let dims = g.operand_type(n.input(i))?.shape?;
    let same = dims.len() == t.dims().len() && dims.iter().zip(t.dims()).all(|(d, &k)| d.known() == Some(k));
    let values = t.to_f32().ok().filter(|_| same)?;
    Some((float.operand_name(c).to_string(), Tensor::from_f32("", t.dims(), &values)))
}

/// The node of kind `op` that makes `o`, if any.
fn producer(g: &Graph, o: Operand, op: Op) -> Option<NodeId> {
    match o {
        Operand::Value(v) if g.node(v.node).op == op => Some(v.node),
        _ => None,
    }
}

/// Points the uses of every DequantizeLinear after a QuantizeLinear that reads `t` at a float
/// Clip of `t` to the range the QuantizeLinear represents: the rounding goes, the saturation
/// stays (quantizers fold a Relu or Clip into it: onnxruntime's writes `BatchNormalization → Q`
/// with the Clip(0, 6) that followed it gone). The DequantizeLinear nodes go, and the
/// QuantizeLinear when nothing else reads it. Graph outputs that a DequantizeLinear makes keep it (their name and type are the
/// model's interface).
fn remove_pairs(g: &mut Graph, t: Outlet, path: &Path) -> Result<usize, Error> {
    let bad = |msg: String| Error::Mismatch { path: path.to_path_buf(), msg };
    let mut n = 0;
    let qs: Vec<NodeId> =
        g.consumers(t).into_iter().map(|(c, _)| c).filter(|&c| g.node(c).op == Op::QuantizeLinear).collect();
    for q in qs {
        let dqs: Vec<NodeId> = g
            .consumers(Outlet::new(q, 0))
            .into_iter()
            .map(|(c, _)| c)
            .filter(|&c| {
                g.node(c).op == Op::DequantizeLinear && g.node(c).input(0) == Operand::Value(Outlet::new(q, 0))
            })
            .filter(|&c| !g.is_output(Operand::Value(Outlet::new(c, 0))))
            .collect();
        if dqs.is_empty() {
            continue;
        }
        let who = || format!("--keep-float '{}': QuantizeLinear '{}'", g.value(t).name, g.node(q).ident());
        let dtype = g.value(Outlet::new(q, 0)).ty.as_ref().map(|t| t.dtype).filter(|d| d.is_int() && d.bits() <= 16);
        let dtype = dtype.ok_or_else(|| bad(format!("{}: its integer type is unknown", who())))?;
        let scale = g.const_tensor(g.node(q).input(1)).and_then(|t| t.to_f32().ok());
        let zero = match g.node(q).input(2) {
            Operand::None => Some(vec![0]),
            z => g.const_tensor(z).and_then(|t| t.to_i64().ok()),
        };
        let (Some(scale), Some(zero)) = (scale, zero) else {
            return Err(bad(format!("{}: its scale or zero point is not a constant", who())));
        };
        if scale.len() != 1 || zero.len() != 1 {
            return Err(bad(format!("{}: per-axis parameters have no single float range to keep", who())));
        }
        if g.opset() < 11 {
            return Err(bad(format!(
                "{}: a float Clip with input bounds needs opset 11 (the model has {})",
                who(),
                g.opset()
            )));
        }
        let [lo, hi] = represented(Params { scale: scale[0], zero_point: zero[0], dtype });
        let name = g.value(t).name.clone();
        let lo = g.add_initializer(&format!("{name}_keep_float_min"), Tensor::from_f32("", &[], &[lo]));
        let hi = g.add_initializer(&format!("{name}_keep_float_max"), Tensor::from_f32("", &[], &[hi]));
        let out = g.fresh_name(&format!("{name}_kept_float"));
        let ty = g.value(t).ty.clone();
        let clip = g
            .add_node(
                Op::Clip,
                NodeMeta { name: Some(out.as_str().into()), ..Default::default() },
                Vec::new(),
                vec![Operand::Value(t), Operand::Const(lo), Operand::Const(hi)],
                vec![Value { ty, ..Value::named(out.clone()) }],
            )
            .map_err(|error| Error::InvalidGraph { path: path.to_path_buf(), error })?;
        let gone = |e| Error::InvalidGraph { path: path.to_path_buf(), error: e };
        for dq in dqs {
            g.replace_uses(Outlet::new(dq, 0), Operand::Value(Outlet::new(clip, 0)));
            g.remove_node(dq).map_err(gone)?;
            n += 1;
        }
        if !g.has_uses(q) && !g.is_output(Operand::Value(Outlet::new(q, 0))) {
            g.remove_node(q).map_err(gone)?;
        }
    }
    Ok(n)
}
