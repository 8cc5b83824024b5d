//! The `fuse-contrib` rules: DQ→op→Q into onnxruntime's com.microsoft QLinear* ops (Add, Mul,
//! pools, Concat, activations). Every rule is `--target ort` only; on `--target onnx` a match
//! becomes a remark and the DQ→op→Q island stays float.
//!
//! - `qlinear-add`, `qlinear-mul`: `Q(Add(DQ a, DQ b))` ⇒ `QLinearAdd(a, as, az, b, bs, bz, ys, yz)`
//!   (either side may be the DQ of a constant; numpy broadcasting, as onnxruntime does).
//! - `qlinear-global-average-pool`: `Q(GlobalAveragePool(DQ x))` ⇒
//!   `QLinearGlobalAveragePool[channels_last=0](x, xs, xz, ys, yz)`.
//! - `qlinear-average-pool`: `Q(AveragePool(DQ x))` ⇒ `QLinearAveragePool` with the pool's
//!   attributes (no dilations: the contrib op has none).
//! - `qlinear-concat`: `Q(Concat(DQ a, DQ b, ...))` ⇒ `QLinearConcat[axis](ys, yz, a, as, az, ...)`.
//!   Concat is variadic and patterns have a fixed arity, so this rule matches the Q alone and
//!   reads the Concat and its DQs in the guard.
//! - `qlinear-sigmoid`, `qlinear-leaky-relu` (alpha), `qlinear-softmax` (axis and the Softmax's
//!   opset, which the contrib op needs to know the axis semantics). onnxruntime's QLinearSoftmax
//!   multiplies by `k = floor(1 / y_scale)` instead of dividing by `y_scale`: an output `p ≤ 1`
//!   moves by `p·(1/y_scale − k) < 1` step, so always within the one-step contract, and by up to
//!   a full step for the quantizer's usual `y_scale = 1/255` (which is just above 1/255 in f32,
//!   so `k = 254`). No guard can refuse on that bound; `qdqc verify` checks it.
//!
//! Shared guards: every Q/DQ is per tensor with a positive f32 scale,
//! all integer types are one of u8/i8 (what onnxruntime 1.32's CPU kernels take, for all of
//! these ops), and the float value between the DQs and the Q is read by that Q only.

use super::qparams::{self, QParams};
use super::Who;
use crate::driver::RulePass;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::Target;
use qdqc_ir::proto::AttributeProto;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

const ORT: &[Target] = &[Target::Ort];

/// The rule table.
pub fn rules() -> Vec<Rule> {
    let dq = |v: &str| format!("(DequantizeLinear ?{v} ?{v}s ?{v}z)");
    let unary = |op: &str| format!("(QuantizeLinear ({op} {}) ?ys ?yz)", dq("x"));
    let binary = |op: &str| format!("(QuantizeLinear ({op} {} {}) ?ys ?yz)", dq("a"), dq("b"));
    vec![
        Rule::new("qlinear-add", &binary("Add"), &[fusable], build_binary).only(ORT),
        Rule::new("qlinear-mul", &binary("Mul"), &[fusable], build_binary).only(ORT),
        Rule::new("qlinear-global-average-pool", &unary("GlobalAveragePool"), &[fusable, rank_at_least_3], build_unary)
            .only(ORT),
        Rule::new(
            "qlinear-average-pool",
            &unary("AveragePool"),
            &[fusable, rank_at_least_3, no_dilations],
            build_unary,
        )
        .only(ORT),
        Rule::new("qlinear-concat", "(QuantizeLinear ?y ?ys ?yz)", &[concat_fusable], build_concat).only(ORT),
        Rule::new("qlinear-sigmoid", &unary("Sigmoid"), &[fusable], build_unary).only(ORT),
        Rule::new("qlinear-leaky-relu", &unary("LeakyRelu"), &[fusable], build_unary).only(ORT),
        Rule::new("qlinear-softmax", &unary("Softmax"), &[fusable], build_unary).only(ORT),
    ]
}

pub fn pass() -> RulePass {
    RulePass::new("fuse-contrib", rules)
}

/// The com.microsoft op that replaces a float op.
fn contrib_op(op: &Op) -> Op {
    match op {
        Op::Add => Op::QLinearAdd,
        Op::Mul => Op::QLinearMul,
        Op::GlobalAveragePool => Op::QLinearGlobalAveragePool,
        Op::AveragePool => Op::QLinearAveragePool,
        Op::Concat => Op::QLinearConcat,
        Op::Sigmoid => Op::QLinearSigmoid,
        Op::LeakyRelu => Op::QLinearLeakyRelu,
        Op::Softmax => Op::QLinearSoftmax,
        other => unreachable!("no contrib op for {other}: a rule table bug"),
    }
}

// ---- guards ------------------------------------------------------------------------------

/// Reads a Q/DQ's parameters and checks what the contrib op `op` can take.
fn per_tensor(g: &Graph, id: NodeId, op: &Op) -> Result<QParams, Refusal> {
    let p = qparams::of_node(g, id)?;
    let who = Who(g, id);
    ensure!(p.axis.is_none(), "per-axis quantization of {who} is not supported by {op}");
    ensure!(p.scale_dtype == DType::F32, "the scale of {who} is {}: {op} needs f32", p.scale_dtype);
    ensure!(p.scale[0].is_normal() && p.scale[0] > 0.0, "the scale of {who} ({}) is not positive", p.scale[0]);
    ensure!(matches!(p.dtype, DType::U8 | DType::I8), "{who} is {}: {op} supports u8 and i8", p.dtype);
    Ok(p)
}

/// The float value `id` produces is read by the Q `q` only.
fn single_use(g: &Graph, id: NodeId, q: NodeId) -> Result<(), Refusal> {
    let n = g.node(id);
    let out = Operand::Value(Outlet::new(id, 0));
    ensure!(!g.is_output(out), "the float result of {} {} is a graph output", n.op, n.label());
    ensure!(g.uses(id).all(|(c, _)| c == q), "the float result of {} {} has other consumers", n.op, n.label());
    Ok(())
}

/// The DQs and the Q are per tensor, of one 8-bit type, and the float op feeds only the Q.
fn check_island(g: &Graph, q: NodeId, op_node: NodeId, dqs: &[NodeId]) -> Result<(), Refusal> {
    let op = contrib_op(&g.node(op_node).op);
    let y = per_tensor(g, q, &op)?;
    for &dq in dqs {
        let x = per_tensor(g, dq, &op)?;
        ensure!(
            x.dtype == y.dtype,
            "{op} needs one integer type: input {} is {} but the output is {}",
            g.node(dq).label(),
            x.dtype,
            y.dtype
        );
    }
    single_use(g, op_node, q)
}

fn fusable(g: &Graph, m: &Match) -> Result<(), Refusal> {
    check_island(g, m.root(), m.nodes[1], &m.nodes[2..])
}

fn rank_at_least_3(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let rank = g.operand_type(m.get("x")).and_then(|t| t.rank());
    let op = contrib_op(&g.node(m.nodes[1]).op);
    let got = rank.map_or("an unknown rank".to_string(), |r| format!("rank {r}"));
    ensure!(rank.is_some_and(|r| r >= 3), "{op} needs an input of rank ≥ 3 (N, C, spatial...), got {got}");
    Ok(())
}

fn no_dilations(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let d = attr::ints(&g.node(m.nodes[1]).attrs, "dilations").unwrap_or(&[]);
    ensure!(d.iter().all(|&v| v == 1), "dilations {d:?} are not supported by QLinearAveragePool");
    Ok(())
}

/// The Concat feeding a Q and its DQ inputs, or not applicable.
fn concat_island(g: &Graph, m: &Match) -> Result<(NodeId, Vec<NodeId>), Refusal> {
    let Operand::Value(o) = m.get("y") else { return Err(Refusal::not_applicable()) };
    if o.slot != 0 || g.node(o.node).op != Op::Concat {
        return Err(Refusal::not_applicable());
    }
    let concat = g.node(o.node);
    let mut dqs = Vec::new();
    for (i, &x) in concat.inputs().iter().enumerate() {
        match x {
            Operand::Value(v) if v.slot == 0 && g.node(v.node).op == Op::DequantizeLinear => dqs.push(v.node),
            _ => {
                return Err(Refusal(format!(
                    "input {i} of Concat {} ('{}') is not a DequantizeLinear",
                    concat.label(),
                    g.operand_name(x)
                )))
            }
        }
    }
    ensure!(!dqs.is_empty(), "Concat {} has no inputs", concat.label());
    Ok((o.node, dqs))
}

fn concat_fusable(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let (concat, dqs) = concat_island(g, m)?;
    ensure!(attr::int(&g.node(concat).attrs, "axis").is_some(), "Concat {} has no axis", g.node(concat).label());
    check_island(g, m.root(), concat, &dqs)
}

// ---- builders ----------------------------------------------------------------------------

/// Adds the contrib node in place of the Q and removes the island (shared DQs stay).
fn finish(g: &Graph, m: &Match, mut p: Patch, op_node: NodeId, dqs: &[NodeId], inputs: Vec<PatchOperand>) -> Patch {
    let float = g.node(op_node);
    let mut attrs: Vec<AttributeProto> = Vec::new();
    match float.op {
        Op::GlobalAveragePool => attrs.push(attr::make_int("channels_last", 0)),
        Op::AveragePool => {
            attrs = float.attrs.iter().filter(|a| a.name.as_deref() != Some("dilations")).cloned().collect()
        }
        Op::LeakyRelu => attrs.push(attr::make_float("alpha", attr::float(&float.attrs, "alpha").unwrap_or(0.01))),
        Op::Softmax => {
            let opset = g.opset();
            let axis = attr::int(&float.attrs, "axis").unwrap_or(if opset < 13 { 1 } else { -1 });
            attrs.push(attr::make_int("axis", axis));
            attrs.push(attr::make_int("opset", opset));
        }
        Op::Concat => attrs.push(attr::make_int("axis", attr::int(&float.attrs, "axis").expect("guarded"))),
        _ => {}
    }
    let n = p.add_node(PatchNode {
        op: contrib_op(&float.op),
        name: float.name().to_string(),
        attrs: attrs.into(),
        inputs,
        outputs: vec![g.value(Outlet::new(m.root(), 0)).name.clone()],
    });
    p.replace(Outlet::new(m.root(), 0), PatchOperand::NewNode(n, 0));
    p.remove(m.root());
    p.remove(op_node);
    for &dq in dqs {
        p.remove(dq);
    }
    p
}

fn build_unary(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let inputs = ["x", "xs", "xz", "ys", "yz"].iter().map(|v| m.get(v).into()).collect();
    Ok(finish(g, m, Patch::new(), m.nodes[1], &m.nodes[2..], inputs))
}

fn build_binary(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let inputs = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"].iter().map(|v| m.get(v).into()).collect();
    Ok(finish(g, m, Patch::new(), m.nodes[1], &m.nodes[2..], inputs))
}

fn build_concat(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (concat, dqs) = concat_island(g, m)?;
    let dtype = qparams::of_node(g, m.root())?.dtype;
    // QLinearConcat's zero points are not optional: an omitted one becomes an explicit 0.
    let mut p = Patch::new();
    let mut zero: Option<PatchOperand> = None;
    let mut zp = |p: &mut Patch, z: Operand| -> PatchOperand {
        match z {
            Operand::None => {
                *zero.get_or_insert_with(|| p.add_const("zero_point", Tensor::from_i64("", dtype, &[], &[0])))
            }
            z => z.into(),
        }
    };
    let mut inputs = vec![m.get("ys").into(), zp(&mut p, m.get("yz"))];
    for &dq in &dqs {
        let n = g.node(dq);
        inputs.extend([n.input(0).into(), n.input(1).into(), zp(&mut p, n.input(2))]);
    }
    Ok(finish(g, m, p, concat, &dqs, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs fuse-contrib then dce; returns the printed graph followed by the remarks.
    fn check(text: &str) -> String {
        crate::rules::run_and_print(&pass(), text)
    }

    fn remarks(text: &str) -> String {
        check(text).lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "qlinear-add",
                "qlinear-mul",
                "qlinear-global-average-pool",
                "qlinear-average-pool",
                "qlinear-concat",
                "qlinear-sigmoid",
                "qlinear-leaky-relu",
                "qlinear-softmax"
            ]
        );
        assert!(rules().iter().all(|r| r.targets == [Target::Ort]));
    }

    /// `Q(OP(DQ x, DQ c))` with a constant `c` broadcast along the last axis.
    const BINARY: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: u8[N,4]
  const %xs: f32[] 0.5
  const %xz: u8[] 128
  const %c: u8[4] [1, 2, 3, 4]
  const %cs: f32[] 0.25
  const %cz: u8[] 0
  const %ys: f32[] 0.75
  const %yz: u8[] 100
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear(%c, %cs, %cz)
  %f = OP(%a, %b)  "op_node"
  %y = QuantizeLinear(%f, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn qlinear_add_with_a_constant_bias() {
        insta::assert_snapshot!(check(&BINARY.replace("OP", "Add")), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[N,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %c: u8[4] [1, 2, 3, 4]
          const %cs: f32[] 0.25
          const %cz: u8[] 0
          const %ys: f32[] 0.75
          const %yz: u8[] 100
          %y: u8[N,4] q(0.75, 100) = QLinearAdd(%x, %xs, %xz, %c, %cs, %cz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
    }

    #[test]
    fn qlinear_mul_i8() {
        let text = BINARY.replace("OP", "Mul").replace("u8", "i8").replace("128", "-3").replace("100", "5");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: i8[N,4] q(0.5, -3)
          const %xs: f32[] 0.5
          const %xz: i8[] -3
          const %c: i8[4] [1, 2, 3, 4]
          const %cs: f32[] 0.25
          const %cz: i8[] 0
          const %ys: f32[] 0.75
          const %yz: i8[] 5
          %y: i8[N,4] q(0.75, 5) = QLinearMul(%x, %xs, %xz, %c, %cs, %cz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
    }

    #[test]
    fn binary_refusals() {
        let add = BINARY.replace("OP", "Add");
        // Per-axis constant.
        let per_axis = add
            .replace("const %cs: f32[] 0.25", "const %cs: f32[4] [0.25, 0.5, 0.25, 0.5]")
            .replace("const %cz: u8[] 0", "const %cz: u8[4] [0, 0, 0, 0]")
            .replace("DequantizeLinear(%c,", "DequantizeLinear[axis=0](%c,");
        insta::assert_snapshot!(remarks(&per_axis), @"// remark qlinear-add: QuantizeLinear (producing 'y'): per-axis quantization of DequantizeLinear (producing 'b') is not supported by QLinearAdd");
        // Mixed integer types.
        let mixed =
            add.replace("const %ys: f32[] 0.75\n  const %yz: u8[] 100", "const %ys: f32[] 0.75\n  const %yz: i8[] 100");
        insta::assert_snapshot!(remarks(&mixed), @"// remark qlinear-add: QuantizeLinear (producing 'y'): QLinearAdd needs one integer type: input (producing 'a') is u8 but the output is i8");
        // 16-bit.
        insta::assert_snapshot!(remarks(&add.replace("u8", "u16")), @"// remark qlinear-add: QuantizeLinear (producing 'y'): QuantizeLinear (producing 'y') is u16: QLinearAdd supports u8 and i8");
        // A zero scale, an f16 scale (the contrib ops take f32 only).
        insta::assert_snapshot!(remarks(&add.replace("%ys: f32[] 0.75", "%ys: f32[] 0.0")), @"// remark qlinear-add: QuantizeLinear (producing 'y'): the scale of QuantizeLinear (producing 'y') (0) is not positive");
        insta::assert_snapshot!(remarks(&add.replace("%ys: f32[] 0.75", "%ys: f16[] 0.75")), @"// remark qlinear-add: QuantizeLinear (producing 'y'): the scale of QuantizeLinear (producing 'y') is f16: QLinearAdd needs f32");
        // The float sum is read elsewhere / is a graph output.
        insta::assert_snapshot!(remarks(&add.replace("  output %y\n", "  %r = Relu(%f)\n  output %y\n  output %r\n")), @"// remark qlinear-add: QuantizeLinear (producing 'y'): the float result of Add 'op_node' has other consumers");
        insta::assert_snapshot!(remarks(&add.replace("  output %y\n", "  output %y\n  output %f\n")), @"// remark qlinear-add: QuantizeLinear (producing 'y'): the float result of Add 'op_node' is a graph output");
    }

    #[test]
    fn the_onnx_target_gets_a_remark() {
        let out = crate::rules::run_and_print(&pass().for_target(Target::Onnx), &BINARY.replace("OP", "Add"));
        insta::assert_snapshot!(out.lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n"), @"// remark qlinear-add: QuantizeLinear (producing 'y'): the rewrite needs --target ort (this is --target onnx)");
        assert!(out.contains("= Add("), "the float island stays:\n{out}");
    }

    /// `Q(OP(DQ x))` on an NCHW tensor.
    const UNARY: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: u8[1,3,4,4]
  const %xs: f32[] 0.5
  const %xz: u8[] 128
  const %ys: f32[] 0.25
  const %yz: u8[] 10
  %d = DequantizeLinear(%x, %xs, %xz)
  %f = OP(%d)  "op_node"
  %y = QuantizeLinear(%f, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn qlinear_global_average_pool() {
        insta::assert_snapshot!(check(&UNARY.replace("OP", "GlobalAveragePool")), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[1,3,4,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ys: f32[] 0.25
          const %yz: u8[] 10
          %y: u8[1,3,1,1] q(0.25, 10) = QLinearGlobalAveragePool[channels_last=0](%x, %xs, %xz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
        let rank2 = UNARY.replace("OP", "GlobalAveragePool").replace("[1,3,4,4]", "[3,4]");
        // (GlobalAveragePool of a rank-2 tensor does not type-check; a rank-unknown one does.)
        let unknown = rank2.replace("input %x: u8[3,4]", "input %x: u8[*]");
        insta::assert_snapshot!(remarks(&unknown), @"// remark qlinear-global-average-pool: QuantizeLinear (producing 'y'): QLinearGlobalAveragePool needs an input of rank ≥ 3 (N, C, spatial...), got an unknown rank");
    }

    #[test]
    fn qlinear_average_pool_keeps_the_pool_attributes() {
        let text = UNARY
            .replace("OP", "AveragePool[kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=1]")
            .replace("u8", "i8")
            .replace("128", "-1");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: i8[1,3,4,4] q(0.5, -1)
          const %xs: f32[] 0.5
          const %xz: i8[] -1
          const %ys: f32[] 0.25
          const %yz: i8[] 10
          %y: i8[1,3,2,2] q(0.25, 10) = QLinearAveragePool[kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2], count_include_pad=1](%x, %xs, %xz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
        let dilated = UNARY.replace("OP", "AveragePool[kernel_shape=[2, 2], dilations=[2, 2]]");
        insta::assert_snapshot!(remarks(&dilated), @"// remark qlinear-average-pool: QuantizeLinear (producing 'y'): dilations [2, 2] are not supported by QLinearAveragePool");
    }

    #[test]
    fn qlinear_sigmoid_and_leaky_relu() {
        insta::assert_snapshot!(check(&UNARY.replace("OP", "Sigmoid")), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[1,3,4,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ys: f32[] 0.25
          const %yz: u8[] 10
          %y: u8[1,3,4,4] q(0.25, 10) = QLinearSigmoid(%x, %xs, %xz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
        insta::assert_snapshot!(check(&UNARY.replace("OP", "LeakyRelu[alpha=0.2]").replace("u8", "i8").replace("128", "0")), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: i8[1,3,4,4] q(0.5, 0)
          const %xs: f32[] 0.5
          const %xz: i8[] 0
          const %ys: f32[] 0.25
          const %yz: i8[] 10
          %y: i8[1,3,4,4] q(0.25, 10) = QLinearLeakyRelu[alpha=0.2](%x, %xs, %xz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
        insta::assert_snapshot!(check(&UNARY.replace("OP", "LeakyRelu")).lines().find(|l| l.contains("QLinear")).unwrap(), @r#"  %y: u8[1,3,4,4] q(0.25, 10) = QLinearLeakyRelu[alpha=0.01](%x, %xs, %xz, %ys, %yz)  "op_node""#);
    }

    #[test]
    fn qlinear_softmax_takes_axis_and_opset() {
        let text = UNARY
            .replace("OP", "Softmax[axis=1]")
            .replace("%ys: f32[] 0.25", "%ys: f32[] 0.00390625")
            .replace("%yz: u8[] 10", "%yz: u8[] 0");
        insta::assert_snapshot!(check(&text), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[1,3,4,4] q(0.5, 128)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ys: f32[] 0.00390625
          const %yz: u8[] 0
          %y: u8[1,3,4,4] q(0.00390625, 0) = QLinearSoftmax[axis=1, opset=17](%x, %xs, %xz, %ys, %yz)  "op_node"
          output %y
        }
        "#);
        let i8_default = text
            .replace("Softmax[axis=1]", "Softmax")
            .replace("u8", "i8")
            .replace("128", "0")
            .replace("%yz: i8[] 0", "%yz: i8[] -128");
        insta::assert_snapshot!(check(&i8_default).lines().find(|l| l.contains("QLinear")).unwrap(), @r#"  %y: i8[1,3,4,4] q(0.00390625, -128) = QLinearSoftmax[axis=-1, opset=17](%x, %xs, %xz, %ys, %yz)  "op_node""#);
        let opset11 = i8_default.replace("ai.onnx=17", "ai.onnx=11");
        insta::assert_snapshot!(check(&opset11).lines().find(|l| l.contains("QLinear")).unwrap(), @r#"  %y: i8[1,3,4,4] q(0.00390625, -128) = QLinearSoftmax[axis=1, opset=11](%x, %xs, %xz, %ys, %yz)  "op_node""#);
        // The quantizer's 1/255 fuses too: floor(1/y_scale) = 254 moves outputs by < 1 step.
        let scale = text.replace("0.00390625", "0.003921569");
        insta::assert_snapshot!(check(&scale).lines().find(|l| l.contains("QLinear")).unwrap(), @r#"  %y: u8[1,3,4,4] q(0.003921569, 0) = QLinearSoftmax[axis=1, opset=17](%x, %xs, %xz, %ys, %yz)  "op_node""#);
    }

    const CONCAT: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: u8[1,2,4]
  input %w: u8[1,3,4]
  const %xs: f32[] 0.5
  const %xz: u8[] 128
  const %ws: f32[] 0.25
  const %ys: f32[] 0.5
  const %yz: u8[] 128
  %a = DequantizeLinear(%x, %xs, %xz)
  %b = DequantizeLinear(%w, %ws)
  %c = Concat[axis=1](%a, %b, %a)  "cat"
  %y = QuantizeLinear(%c, %ys, %yz)
  output %y
}
"#;

    #[test]
    fn qlinear_concat_of_three_with_an_omitted_zero_point() {
        insta::assert_snapshot!(check(CONCAT), @r#"
        graph "g" opset(ai.onnx=17, com.microsoft=1) {
          input %x: u8[1,2,4] q(0.5, 128)
          input %w: u8[1,3,4] q(0.25, 0)
          const %xs: f32[] 0.5
          const %xz: u8[] 128
          const %ws: f32[] 0.25
          const %ys: f32[] 0.5
          const %yz: u8[] 128
          const %zero_point: u8[] 0
          %y: u8[1,7,4] q(0.5, 128) = QLinearConcat[axis=1](%ys, %yz, %x, %xs, %xz, %w, %ws, %zero_point, %x, %xs, %xz)  "cat"
          output %y
        }
        "#);
    }

    #[test]
    fn qlinear_concat_refusals() {
        let float_input = CONCAT
            .replace("Concat[axis=1](%a, %b, %a)", "Concat[axis=1](%a, %b, %c0)")
            .replace("  %a =", "  const %c0: f32[1,1,4] [1.0, 2.0, 3.0, 4.0]\n  %a =");
        insta::assert_snapshot!(remarks(&float_input), @"// remark qlinear-concat: QuantizeLinear (producing 'y'): input 2 of Concat 'cat' ('c0') is not a DequantizeLinear");
        insta::assert_snapshot!(remarks(&CONCAT.replace("%ws: f32[] 0.25", "%ws: f32[] -0.25")), @"// remark qlinear-concat: QuantizeLinear (producing 'y'): the scale of DequantizeLinear (producing 'b') (-0.25) is not positive");
        // Not a Concat: no remark from qlinear-concat.
        insta::assert_snapshot!(remarks(&UNARY.replace("OP", "Relu")), @"");
    }
}
