//! `int8-to-uint8`: int8 activations become uint8 where every op that makes or reads them can
//! take uint8. onnxruntime's CPU kernels are much faster on uint8 activations (QLinearConv about
//! 3x: MLAS has fast u8×s8 kernels, and its own graph optimizer makes the same rewrite).
//!
//! The rewrite is exact: an int8 tensor `q` with parameters `(s, z)` holds the same reals as the
//! uint8 tensor `q + 128` with `(s, z + 128)`, saturation bounds included
//! (`[-128, 127]` ↔ `[0, 255]`), and data movement, max/min and clipping commute with `+ 128`.
//!
//! The int8 values (node outputs) are joined into islands: values that one node requires to have
//! the same element type (a QLinearConv's `x` and `y`, a Concat's inputs and output, ...). An
//! island converts only when every node touching it can take uint8 in every port it touches it
//! through; one graph input, graph output, Cast or unknown op keeps the whole island int8. Per
//! node, what changes with the island is a `Group`: its data values, its constant data operands
//! (Max/Min/Clip bounds, Pad's value, a QLinearAdd's constant operand) and its zero points, all
//! shifted by 128 into new uint8 constants (the originals may be shared; the `dedup-consts` pass
//! merges equal copies). Weights stay int8 (`u8 × s8` is onnxruntime's fast path, ConvInteger's
//! too); a QLinearMatMul/QGemm `B` that is itself an int8 activation joins `A`'s island.
//!
//! Where: after fusion (a QLinear op's x and y must have one type, so the fusion rules refuse a
//! DQ→op→Q whose ends differ). Inside the repeated -O2 pipeline, right before `dedup-consts`, it
//! gives the same graphs on the fixtures (see the tests).

use crate::{Pass, PassError, Remarks};
use qdqc_ir::{ConstId, DType, Graph, Node, NodeId, Op, Operand, Outlet, Tensor};
use std::collections::{HashMap, HashSet};

pub struct Int8ToUint8;

impl Pass for Int8ToUint8 {
    fn name(&self) -> &'static str {
        "int8-to-uint8"
    }

    fn run(&self, graph: &mut Graph, _remarks: &mut Remarks) -> Result<usize, PassError> {
        let convert = convertible_values(graph);
        if convert.is_empty() {
            return Ok(0);
        }
        let fail = |error| PassError::Failed { pass: "int8-to-uint8", error };
        let order = graph.topo_order().map_err(fail)?;
        let mut shifted: HashMap<ConstId, ConstId> = HashMap::new();
        let mut touched: Vec<NodeId> = Vec::new();
        for &id in &order {
            let Some(groups) = groups(graph, graph.node(id)) else { continue };
            let mut any = false;
            for group in groups {
                if !group.members(graph, id).iter().any(|o| convert.contains(o)) {
                    continue;
                }
                any = true;
                for &i in &group.inputs {
                    if let Operand::Const(c) = graph.node(id).input(i) {
                        let new = shift_const(graph, c, &mut shifted);
                        graph.set_input(id, i, Operand::Const(new));
                    }
                }
                for &(i, scale) in &group.defaults {
                    let new = match graph.node(id).input(i) {
                        Operand::Const(c) => shift_const(graph, c, &mut shifted),
                        // Checked by `group_ok`: the scale (if any) is a dense constant.
                        _ => {
                            let scale = scale.and_then(|s| graph.const_tensor(graph.node(id).input(s)));
                            let dims = scale.map_or(vec![], |t| t.dims().to_vec());
                            let n = scale.map_or(Ok(1), |t| t.numel()).unwrap_or(0);
                            let t = Tensor::from_raw("", DType::U8, &dims, vec![128u8; n].into());
                            graph.add_initializer("zero_point_u8", t)
                        }
                    };
                    graph.set_input(id, i, Operand::Const(new));
                }
            }
            let reads = graph.node(id).inputs().iter().any(|i| matches!(i, Operand::Value(o) if convert.contains(o)));
            if any || reads {
                touched.push(id);
            }
        }
        for &o in &convert {
            let v = graph.value_mut(o);
            if let Some(t) = &mut v.ty {
                t.dtype = DType::U8;
            }
            // Names the old zero point: inferred again below.
            v.quant = None;
        }
        // `touched` is in topological order: a data-movement op takes its input's new parameters.
        for id in touched {
            qdqc_ir::infer::infer_quant(graph, id);
        }
        Ok(convert.len())
    }
}

/// What changes together at one node when its values become uint8.
#[derive(Debug, Default)]
struct Group {
    /// Data inputs: int8 values of the island, or int8 constants (shifted by 128).
    inputs: Vec<usize>,
    /// Output slots (int8 values of the island).
    outputs: Vec<u32>,
    /// Int8 constants that default to 0 when omitted: zero points (with the input holding their
    /// scale, whose shape an added zero point takes) and Pad's value (scalar).
    defaults: Vec<(usize, Option<usize>)>,
}

impl Group {
    fn new(inputs: &[usize], outputs: &[u32], zero_points: &[(usize, usize)]) -> Group {
        Group {
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            defaults: zero_points.iter().map(|&(z, s)| (z, Some(s))).collect(),
        }
    }

    /// The values (node outputs) of the group.
    fn members(&self, g: &Graph, id: NodeId) -> Vec<Outlet> {
        let node = g.node(id);
        let ins = self.inputs.iter().filter_map(|&i| match node.input(i) {
            Operand::Value(o) => Some(o),
            _ => None,
        });
        let outs = self
            .outputs
            .iter()
            .filter(|&&s| node.outputs.get(s as usize).is_some_and(|v| !v.name.is_empty()))
            .map(|&s| Outlet::new(id, s));
        ins.chain(outs).collect()
    }
}

fn is_i8_value(g: &Graph, op: Operand) -> bool {
    matches!(op, Operand::Value(o) if g.value(o).ty.as_ref().is_some_and(|t| t.dtype == DType::I8))
}

fn is_i8_const(g: &Graph, op: Operand) -> bool {
    g.const_tensor(op).is_some_and(|t| t.dtype().ok() == Some(DType::I8) && t.raw().is_ok())
}

/// The groups of a node that can take uint8, or `None` when it cannot (any int8 value it
/// touches stays int8).
fn groups(g: &Graph, n: &Node) -> Option<Vec<Group>> {
    let all_inputs: Vec<usize> = (0..n.inputs().len()).collect();
    let one = |group: Group| Some(vec![group]);
    match &n.op {
        // A zero point is what makes the output int8; `output_dtype` would have to change too.
        Op::QuantizeLinear if n.input(2) != Operand::None && n.attr("output_dtype").is_none() => {
            one(Group::new(&[], &[0], &[(2, 1)]))
        }
        Op::DequantizeLinear => one(Group::new(&[0], &[], &[(2, 1)])),
        // x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, [B]: w stays int8.
        Op::QLinearConv => one(Group::new(&[0], &[0], &[(2, 1), (7, 6)])),
        // a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp: an int8 activation b converts with a.
        Op::QLinearMatMul if is_i8_value(g, n.input(3)) => one(Group::new(&[0, 3], &[0], &[(2, 1), (5, 4), (7, 6)])),
        Op::QLinearMatMul => one(Group::new(&[0], &[0], &[(2, 1), (7, 6)])),
        // A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale, y_zp]: float output without y_zp.
        Op::QGemm => {
            let mut group = Group::new(&[0], &[], &[(2, 1)]);
            if is_i8_value(g, n.input(3)) {
                group.inputs.push(3);
                group.defaults.push((5, Some(4)));
            }
            if n.input(8) != Operand::None {
                group.outputs.push(0);
                group.defaults.push((8, Some(7)));
            }
            one(group)
        }
        // x, w, [x_zp], [w_zp] (A, B, [a_zp], [b_zp]): the int32 output is unchanged; an omitted
        // x zero point (0) becomes a scalar 128 (MatMulInteger's per-row a_zp shifts elementwise).
        Op::ConvInteger | Op::MatMulInteger => {
            Some(vec![Group { inputs: vec![0], outputs: vec![], defaults: vec![(2, None)] }])
        }
        Op::QLinearAdd | Op::QLinearMul => one(Group::new(&[0, 3], &[0], &[(2, 1), (5, 4), (7, 6)])),
        Op::QLinearGlobalAveragePool
        | Op::QLinearAveragePool
        | Op::QLinearSigmoid
        | Op::QLinearLeakyRelu
        | Op::QLinearSoftmax => one(Group::new(&[0], &[0], &[(2, 1), (4, 3)])),
        // Y_scale, Y_zp, then (X, X_scale, X_zp) per input.
        Op::QLinearConcat => {
            let mut group = Group::new(&[], &[0], &[(1, 0)]);
            for x in (2..n.inputs().len()).step_by(3) {
                group.inputs.push(x);
                group.defaults.push((x + 2, Some(x + 1)));
            }
            one(group)
        }
        Op::MaxPool
        | Op::Reshape
        | Op::Flatten
        | Op::Transpose
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Slice
        | Op::Gather
        | Op::Identity
        | Op::DepthToSpace
        | Op::SpaceToDepth
        | Op::Expand
        | Op::Tile
        | Op::ReduceMax
        | Op::ReduceMin => one(Group::new(&[0], &[0], &[])),
        // Only nearest: interpolation would round differently on shifted values.
        Op::Resize if qdqc_ir::attr::string(&n.attrs, "mode").is_none_or(|m| m == "nearest") => {
            one(Group::new(&[0], &[0], &[]))
        }
        Op::Split => {
            let outputs: Vec<u32> = (0..n.outputs.len() as u32).collect();
            one(Group::new(&[0], &outputs, &[]))
        }
        // Before opset 11 pads and value were attributes. The value (0 when omitted) matters
        // only in constant mode.
        Op::Pad if n.attr("pads").is_none() && n.attr("value").is_none() => {
            let constant = qdqc_ir::attr::string(&n.attrs, "mode").is_none_or(|m| m == "constant");
            let (inputs, defaults) = match constant {
                true => (vec![0], vec![(2, None)]),
                false => (vec![0, 2], vec![]),
            };
            one(Group { inputs, outputs: vec![0], defaults })
        }
        // Bounds omitted from Clip are the type's limits, which map onto each other.
        Op::Concat | Op::Max | Op::Min | Op::Clip => one(Group::new(&all_inputs, &[0], &[])),
        _ => None,
    }
}

/// Whether the non-value parts of a group can change: data constants and given zero points are
/// dense int8 constants, and a zero point to add has a dense constant scale to take its shape.
fn group_ok(g: &Graph, n: &Node, group: &Group) -> bool {
    let inputs_ok = group.inputs.iter().all(|&i| match n.input(i) {
        Operand::Value(_) => is_i8_value(g, n.input(i)),
        Operand::Const(_) => is_i8_const(g, n.input(i)),
        Operand::None => true,
    });
    let defaults_ok = group.defaults.iter().all(|&(i, scale)| match n.input(i) {
        Operand::Value(_) => false,
        Operand::Const(_) => is_i8_const(g, n.input(i)),
        Operand::None => scale.is_none_or(|s| g.const_tensor(n.input(s)).is_some_and(|t| t.numel().is_ok())),
    });
    inputs_ok && defaults_ok
}

/// Union-find over value indices.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        self.0[a.max(b)] = a.min(b);
    }
}

/// The int8 values that convert: those of islands that no node, graph input or graph output
/// keeps int8.
fn convertible_values(g: &Graph) -> HashSet<Outlet> {
    let mut values: Vec<Outlet> = Vec::new();
    let mut index: HashMap<Outlet, usize> = HashMap::new();
    for id in g.node_ids() {
        for (slot, v) in g.node(id).outputs.iter().enumerate() {
            if !v.name.is_empty() && v.ty.as_ref().is_some_and(|t| t.dtype == DType::I8) {
                let o = Outlet::new(id, slot as u32);
                index.insert(o, values.len());
                values.push(o);
            }
        }
    }
    if values.is_empty() {
        return HashSet::new();
    }
    let mut sets = Sets((0..values.len()).collect());
    let mut stuck = vec![false; values.len()];
    let ids: Vec<NodeId> = g.node_ids().collect();
    for &id in &ids {
        let node = g.node(id);
        let groups = groups(g, node).unwrap_or_default();
        let mut covered_in: HashSet<usize> = HashSet::new();
        let mut covered_out: HashSet<u32> = HashSet::new();
        for group in &groups {
            covered_in.extend(&group.inputs);
            covered_out.extend(&group.outputs);
            let members: Vec<usize> = group.members(g, id).iter().filter_map(|o| index.get(o).copied()).collect();
            let Some(&first) = members.first() else { continue };
            for &m in &members[1..] {
                sets.union(first, m);
            }
            if !group_ok(g, node, group) {
                stuck[first] = true;
            }
        }
        // An int8 value in a port no group covers (dynamic QLinearConv/ConvInteger weights, a
        // Cast's input, any port of an op that cannot take uint8) stays int8.
        for (i, &op) in node.inputs().iter().enumerate() {
            if let Operand::Value(o) = op {
                if let Some(&k) = index.get(&o) {
                    stuck[k] |= !covered_in.contains(&i);
                }
            }
        }
        for &op in node.captures() {
            if let Operand::Value(o) = op {
                if let Some(&k) = index.get(&o) {
                    stuck[k] = true;
                }
            }
        }
        for slot in 0..node.outputs.len() as u32 {
            if let Some(&k) = index.get(&Outlet::new(id, slot)) {
                stuck[k] |= !covered_out.contains(&slot);
            }
        }
    }
    for out in g.outputs() {
        if let Operand::Value(o) = out.operand {
            if let Some(&k) = index.get(&o) {
                stuck[k] = true;
            }
        }
    }
    let mut stuck_root = vec![false; values.len()];
    for (k, _) in stuck.iter().enumerate().filter(|(_, &s)| s) {
        let r = sets.find(k);
        stuck_root[r] = true;
    }
    (0..values.len()).filter(|&k| !stuck_root[sets.find(k)]).map(|k| values[k]).collect()
}

/// A uint8 copy of int8 constant `c` with every element + 128 (made once per pass run).
fn shift_const(g: &mut Graph, c: ConstId, shifted: &mut HashMap<ConstId, ConstId>) -> ConstId {
    if let Some(&s) = shifted.get(&c) {
        return s;
    }
    let old = g.constant(c);
    let t = old.tensor().expect("checked by group_ok: a dense int8 constant");
    let raw: Vec<u8> = t.raw().expect("checked by group_ok").iter().map(|b| b ^ 0x80).collect();
    let tensor = Tensor::from_raw("", DType::U8, t.dims(), raw.into());
    let base = format!("{}_u8", old.name);
    let new = g.add_initializer(&base, tensor);
    shifted.insert(c, new);
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_eval::{run, RunOptions, Value};
    use qdqc_ir::text::{parse, print};

    /// Runs the pass then dce, verifying after each; returns the change count and the graph.
    fn check(text: &str) -> (usize, String) {
        let mut g = parse(text).unwrap();
        let n = Int8ToUint8.run(&mut g, &mut Remarks::new()).unwrap();
        g.verify().unwrap();
        crate::DeadCodeElimination.run(&mut g, &mut Remarks::new()).unwrap();
        g.verify().unwrap();
        (n, print(&g))
    }

    const CHAIN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,4,4]
  const %s: f32[] 0.5
  const %z: i8[] -3
  const %w: i8[2,2,1,1] [10, -20, 127, -127]
  const %ws: f32[] 0.25
  const %wz: i8[] 0
  const %ys: f32[] 2.0
  const %yz: i8[] 5
  const %bq: i32[2] [100, -50]
  %xq = QuantizeLinear(%x, %s, %z)
  %c1 = QLinearConv[kernel_shape=[1,1]](%xq, %s, %z, %w, %ws, %wz, %ys, %yz, %bq)
  %p = MaxPool[kernel_shape=[2,2], strides=[2,2]](%c1)
  %c2 = QLinearConv[kernel_shape=[1,1]](%p, %ys, %yz, %w, %ws, %wz, %s, %z)
  %y = DequantizeLinear(%c2, %s, %z)
  output %y
}
"#;

    #[test]
    fn a_quantized_conv_chain_converts_entirely() {
        // Zero points -3 → 125 and 5 → 133; the weights and their zero point stay int8.
        let (n, out) = check(CHAIN);
        assert_eq!(n, 4);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2,4,4]
          const %s: f32[] 0.5
          const %w: i8[2,2,1,1] [10, -20, 127, -127]
          const %ws: f32[] 0.25
          const %wz: i8[] 0
          const %ys: f32[] 2.0
          const %bq: i32[2] [100, -50]
          const %z_u8: u8[] 125
          const %yz_u8: u8[] 133
          %xq: u8[1,2,4,4] q(0.5, 125) = QuantizeLinear(%x, %s, %z_u8)
          %c1: u8[1,2,4,4] q(2.0, 133) = QLinearConv[kernel_shape=[1,1]](%xq, %s, %z_u8, %w, %ws, %wz, %ys, %yz_u8, %bq)
          %p: u8[1,2,2,2] q(2.0, 133) = MaxPool[kernel_shape=[2,2], strides=[2,2]](%c1)
          %c2: u8[1,2,2,2] q(0.5, 125) = QLinearConv[kernel_shape=[1,1]](%p, %ys, %yz_u8, %w, %ws, %wz, %s, %z_u8)
          %y: f32[1,2,2,2] = DequantizeLinear(%c2, %s, %z_u8)
          output %y
        }
        "#);
    }

    #[test]
    fn expand_and_tile_carry_uint8_and_keep_their_shape_operands() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2,1]
  const %s: f32[] 0.05
  const %z: i8[] -3
  const %shape: i64[3] [2, 2, 3]
  const %reps: i64[3] [1, 2, 1]
  %xq = QuantizeLinear(%x, %s, %z)
  %e = Expand(%xq, %shape)
  %t = Tile(%e, %reps)
  %y = DequantizeLinear(%t, %s, %z)
  output %y
}
"#;
        let (n, out) = check(text);
        assert_eq!(n, 3);
        assert!(out.contains("%e: u8[2,2,3] q(0.05, 125) = Expand(%xq, %shape)"), "{out}");
        assert!(out.contains("%t: u8[2,4,3] q(0.05, 125) = Tile(%e, %reps)"), "{out}");
        let x = Value::f32(&[2, 1], vec![-7.0, 0.3]).unwrap();
        assert_same_outputs(text, &[("x".to_string(), x)]);
    }

    #[test]
    fn running_twice_changes_nothing_the_second_time() {
        let mut g = parse(CHAIN).unwrap();
        assert_eq!(Int8ToUint8.run(&mut g, &mut Remarks::new()).unwrap(), 4);
        let once = print(&g);
        assert_eq!(Int8ToUint8.run(&mut g, &mut Remarks::new()).unwrap(), 0);
        assert_eq!(print(&g), once);
    }

    #[test]
    fn an_int8_graph_output_keeps_its_whole_island() {
        // %p is an output: %xq, %c1, %p and %c2 are one island (each QLinearConv ties its x to
        // its y), so none converts.
        let text = CHAIN.replace("  output %y\n", "  output %y\n  output %p\n");
        let (n, out) = check(&text);
        assert_eq!((n, out), (0, print(&parse(&text).unwrap())));
    }

    #[test]
    fn an_island_read_by_cast_stays_and_another_converts() {
        // %a (read only by a DQ) converts; %b feeds a Cast (whose result would change by 128)
        // and stays.
        let (n, out) = check(
            r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,2,2]
  const %s: f32[] 0.5
  const %z: i8[] -3
  %a = QuantizeLinear(%x, %s, %z)
  %ad = DequantizeLinear(%a, %s, %z)
  %r = Relu(%ad)
  %b = QuantizeLinear(%r, %s, %z)
  %c = Cast[to=1](%b)
  output %c
}
"#,
        );
        assert_eq!(n, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2,2,2]
          const %s: f32[] 0.5
          const %z: i8[] -3
          const %z_u8: u8[] 125
          %a: u8[1,2,2,2] q(0.5, 125) = QuantizeLinear(%x, %s, %z_u8)
          %ad: f32[1,2,2,2] = DequantizeLinear(%a, %s, %z_u8)
          %r: f32[1,2,2,2] = Relu(%ad)
          %b: i8[1,2,2,2] q(0.5, -3) = QuantizeLinear(%r, %s, %z)
          %c: f32[1,2,2,2] = Cast[to=1](%b)
          output %c
        }
        "#);
    }

    #[test]
    fn conv_integer_and_matmul_integer_take_uint8_x_and_keep_int8_weights() {
        // ConvInteger omits its zero points: x's (0) becomes 128, w's stays omitted. The
        // MatMulInteger's B is an int8 activation in a port the pass does not convert: its island
        // (%bq) stays, and A's converts alone (u8 × s8).
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,2,2]
  input %m: f32[2,2]
  const %s: f32[] 0.05
  const %z: i8[] -3
  const %w: i8[1,2,1,1] [100, -90]
  %a = QuantizeLinear(%x, %s, %z)
  %c = ConvInteger(%a, %w)
  %aq = QuantizeLinear(%m, %s, %z)
  %bq = QuantizeLinear(%m, %s, %z)
  %mm = MatMulInteger(%aq, %bq, %z, %z)
  output %c
  output %mm
}
"#;
        let (n, out) = check(text);
        assert_eq!(n, 2);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2,2,2]
          input %m: f32[2,2]
          const %s: f32[] 0.05
          const %z: i8[] -3
          const %w: i8[1,2,1,1] [100, -90]
          const %z_u8: u8[] 125
          const %zero_point_u8: u8[] 128
          %a: u8[1,2,2,2] q(0.05, 125) = QuantizeLinear(%x, %s, %z_u8)
          %c: i32[1,1,2,2] = ConvInteger(%a, %w, %zero_point_u8)
          %aq: u8[2,2] q(0.05, 125) = QuantizeLinear(%m, %s, %z_u8)
          %bq: i8[2,2] q(0.05, -3) = QuantizeLinear(%m, %s, %z)
          %mm: i32[2,2] = MatMulInteger(%aq, %bq, %z_u8, %z)
          output %c
          output %mm
        }
        "#);
        let x: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) * 1.7).collect();
        let m: Vec<f32> = vec![-9.0, 0.3, 2.2, 7.5];
        let inputs = [
            ("x".to_string(), Value::f32(&[1, 2, 2, 2], x).unwrap()),
            ("m".to_string(), Value::f32(&[2, 2], m).unwrap()),
        ];
        assert_same_outputs(text, &inputs);
    }

    /// Runs `text` before and after the pass: every output is bit-identical, and varies.
    fn assert_same_outputs(text: &str, inputs: &[(String, Value)]) {
        let before = parse(text).unwrap();
        let mut after = before.clone();
        assert!(Int8ToUint8.run(&mut after, &mut Remarks::new()).unwrap() > 0);
        after.verify().unwrap();
        let a = run(&before, inputs, &RunOptions::default()).unwrap().outputs;
        let b = run(&after, inputs, &RunOptions::default()).unwrap().outputs;
        assert_eq!(a.len(), b.len());
        for ((na, va), (nb, vb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert_eq!(va.dtype(), vb.dtype());
            let (va, vb) = (va.to_f64_vec().unwrap(), vb.to_f64_vec().unwrap());
            assert_eq!(va, vb, "output {na}");
            // Not a vacuous comparison: the outputs vary.
            assert!(va.iter().any(|v| *v != va[0]), "output {na} is constant: {va:?}");
        }
    }

    #[test]
    fn per_axis_zero_points_shift_elementwise_and_an_omitted_one_is_added() {
        // %z2 is shared with %keep's island, which stays (graph output): a new constant is made.
        // The second DQ omits its zero point (0): it gets [128, 128], the scale's shape.
        let (n, out) = check(
            r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2,2]
  const %s2: f32[2] [0.5, 0.25]
  const %z2: i8[2] [-1, 3]
  %q = QuantizeLinear[axis=1](%x, %s2, %z2)
  %d = DequantizeLinear[axis=1](%q, %s2, %z2)
  %d0 = DequantizeLinear[axis=1](%q, %s2)
  %keep = QuantizeLinear[axis=1](%x, %s2, %z2)
  output %d
  output %d0
  output %keep
}
"#,
        );
        assert_eq!(n, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2,2]
          const %s2: f32[2] [0.5, 0.25]
          const %z2: i8[2] [-1, 3]
          const %z2_u8: u8[2] [127, 131]
          const %zero_point_u8: u8[2] [128, 128]
          %q: u8[1,2,2] q(%s2, %z2_u8, axis=1) = QuantizeLinear[axis=1](%x, %s2, %z2_u8)
          %d: f32[1,2,2] = DequantizeLinear[axis=1](%q, %s2, %z2_u8)
          %d0: f32[1,2,2] = DequantizeLinear[axis=1](%q, %s2, %zero_point_u8)
          %keep: i8[1,2,2] q(%s2, %z2, axis=1) = QuantizeLinear[axis=1](%x, %s2, %z2)
          output %d
          output %d0
          output %keep
        }
        "#);
    }

    /// Every kind of group: QLinearConv, MaxPool, QLinearAdd with a constant operand, Pad with
    /// its value omitted, Clip bounds, Transpose, QLinearMatMul with an activation b, Concat,
    /// QLinearGlobalAveragePool, and DQs of them.
    const MIXED: &str = r#"graph "g" opset(ai.onnx=17, com.microsoft=1) {
  input %x: f32[1,2,4,4]
  const %s: f32[] 0.05
  const %z: i8[] -3
  const %w: i8[2,2,1,1] [10, -20, 127, -127]
  const %ws: f32[] 0.01
  const %wz: i8[] 0
  const %ys: f32[] 0.04
  const %yz: i8[] 5
  const %bq: i32[2] [100, -50]
  const %b: i8[2,1,1] [100, -100]
  const %bs: f32[] 0.02
  const %bz: i8[] -7
  const %as: f32[] 0.06
  const %az: i8[] 1
  const %pads: i64[8] [0, 0, 1, 1, 0, 0, 1, 1]
  const %lo: i8[] -20
  const %hi: i8[] 90
  const %ms: f32[] 0.5
  const %mz: i8[] -10
  const %gs: f32[] 0.3
  const %gz: i8[] 2
  %xq = QuantizeLinear(%x, %s, %z)
  %c1 = QLinearConv[kernel_shape=[1,1]](%xq, %s, %z, %w, %ws, %wz, %ys, %yz, %bq)
  %p = MaxPool[kernel_shape=[2,2], strides=[2,2]](%c1)
  %a = com.microsoft.QLinearAdd(%p, %ys, %yz, %b, %bs, %bz, %as, %az)
  %pd = Pad(%a, %pads)
  %cl = Clip(%pd, %lo, %hi)
  %t = Transpose[perm=[0,1,3,2]](%cl)
  %mm = QLinearMatMul(%cl, %as, %az, %t, %as, %az, %ms, %mz)
  %cat = Concat[axis=1](%mm, %mm)
  %g = com.microsoft.QLinearGlobalAveragePool[channels_last=0](%cat, %ms, %mz, %gs, %gz)
  %y = DequantizeLinear(%g, %gs, %gz)
  %y2 = DequantizeLinear(%cat, %ms, %mz)
  output %y
  output %y2
}
"#;

    #[test]
    fn every_group_kind_converts_and_outputs_are_bit_identical() {
        let mut after = parse(MIXED).unwrap();
        assert_eq!(Int8ToUint8.run(&mut after, &mut Remarks::new()).unwrap(), 10);
        after.verify().unwrap();
        let text = print(&after);
        // Only constants (the originals, which dce would remove, and the weights) stay int8.
        assert!(text.lines().all(|l| l.trim_start().starts_with("const") || !l.contains(": i8[")), "{text}");
        // Pad's omitted value (int8 0) is now an explicit uint8 128.
        assert!(text.contains("Pad(%a, %pads, %zero_point_u8)"), "{text}");
        assert!(text.contains("const %zero_point_u8: u8[] 128"), "{text}");
        assert!(text.contains("Clip(%pd, %lo_u8, %hi_u8)"), "{text}");
        assert!(text.contains("const %b_u8: u8[2,1,1] [228, 28]"), "{text}");
        // Inputs from −10 to 10: saturate at both ends of the int8 range (±3.2 at scale 0.05).
        let n = 32;
        let data: Vec<f32> = (0..n).map(|i| ((i * 37 % n) as f32 - 16.0) * 0.63).collect();
        assert_same_outputs(MIXED, &[("x".to_string(), Value::f32(&[1, 2, 4, 4], data).unwrap())]);
    }

    #[test]
    fn fixtures_convert_after_the_default_pipeline() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let names = ["resnet_block", "mobilenet_block", "transformer_block"]
            .iter()
            .flat_map(|m| ["i8.pc", "i8.pt", "i8.sym"].map(|q| format!("{m}.{q}")))
            .filter(|n| n != "transformer_block.i8.sym")
            .chain(["trt_style".to_string()]);
        for name in names {
            let mut model = qdqc_ir::onnx::load(&dir.join(format!("{name}.onnx"))).unwrap();
            // -O2 runs the pass: no int8 activation is left, and running it again changes nothing.
            crate::PassManager::default_pipeline().run(&mut model.graph).unwrap();
            model.graph.verify().unwrap();
            let int8: Vec<String> = model
                .graph
                .node_ids()
                .flat_map(|id| model.graph.node(id).outputs.iter())
                .filter(|v| v.ty.as_ref().is_some_and(|t| t.dtype == qdqc_ir::DType::I8))
                .map(|v| v.name.clone())
                .collect();
            assert!(int8.is_empty(), "{name}: int8 activations left: {int8:?}");
            assert_eq!(Int8ToUint8.run(&mut model.graph, &mut Remarks::new()).unwrap(), 0, "{name}");
            // `QDQC_U8_OUT=dir` keeps the converted models (to run them in onnxruntime).
            if let Some(out) = std::env::var_os("QDQC_U8_OUT") {
                let path = std::path::Path::new(&out).join(format!("{name}.u8.onnx"));
                qdqc_ir::onnx::save(&model, &path, &Default::default()).unwrap();
            }
        }
    }

    /// Inside the repeated -O2 pipeline (before dedup-consts), the pass may convert an island
    /// before fusion has finished around it. The fusion rules refuse x/y of different types, so a
    /// conversion that came too early would show as a missed fusion. Against running the pass once
    /// after the pipeline: the same ops and as many uint8 values.
    #[test]
    fn in_the_pipeline_it_fuses_and_converts_as_after_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for name in ["resnet_block.i8.pc", "mobilenet_block.i8.sym", "transformer_block.i8.pt", "trt_style"] {
            let model = qdqc_ir::onnx::load(&dir.join(format!("{name}.onnx"))).unwrap();
            let mut after = model.graph.clone();
            crate::PassManager::default_pipeline().run(&mut after).unwrap();
            for pass in [&Int8ToUint8 as &dyn Pass, &crate::DedupConsts, &crate::DeadCodeElimination] {
                pass.run(&mut after, &mut Remarks::new()).unwrap();
            }
            let mut inside = model.graph.clone();
            let mut passes: Vec<Box<dyn Pass>> = Vec::new();
            for &n in &crate::pipeline("O2").unwrap() {
                if n == "dedup-consts" {
                    passes.push(Box::new(Int8ToUint8));
                }
                passes.push(crate::registry().into_iter().find(|p| p.name() == n).unwrap());
            }
            let mut converged = false;
            for _ in 0..crate::MAX_ITERATIONS {
                let mut changes = 0;
                for p in &passes {
                    changes += p.run(&mut inside, &mut Remarks::new()).unwrap();
                    inside.verify().unwrap();
                }
                if changes == 0 {
                    converged = true;
                    break;
                }
            }
            assert!(converged, "{name}");
            let census = |g: &Graph| {
                let mut ops: Vec<String> = g.node_ids().map(|id| g.node(id).op.to_string()).collect();
                ops.sort();
                let u8s = g
                    .node_ids()
                    .flat_map(|id| &g.node(id).outputs)
                    .filter(|v| v.ty.as_ref().is_some_and(|t| t.dtype == DType::U8))
                    .count();
                (ops, u8s)
            };
            let ((ops_in, u8_in), (ops_after, u8_after)) = (census(&inside), census(&after));
            assert_eq!(ops_in, ops_after, "{name}");
            assert_eq!(u8_in, u8_after, "{name}: uint8 values inside the pipeline and after it");
            if let Some(out) = std::env::var_os("QDQC_U8_OUT") {
                let model = qdqc_ir::onnx::Model { graph: inside, ..model };
                let path = std::path::Path::new(&out).join(format!("{name}.inside.onnx"));
                qdqc_ir::onnx::save(&model, &path, &Default::default()).unwrap();
            }
        }
    }
}
