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
//! - `qlinear-sigmoid`, `qlinear-leaky-relu` (alpha), `qlinear-softmax` (axis and the Softmax's
//!   opset, which the contrib op needs to know the axis semantics). onnxruntime's QLinearSoftmax
//!   multiplies by `k = floor(1 / y_scale)` instead of dividing by `y_scale`: an output `p ≤ 1`
//!   moves by `p·(1/y_scale − k) < 1` step, so always within the one-step contract, and by up to
//!   a full step for the quantizer's usual `y_scale = 1/255` (which is just above 1/255 in f32,
//!   so `k = 254`). An approximation (`qlinear-softmax`); `qdqc verify` checks the bound.
//!
//! Shared guards: every Q/DQ is per tensor with a positive f32 scale,
//! all integer types are one of u8/i8 (what onnxruntime 1.32's CPU kernels take, for all of
//! these ops), and the float value between the DQs and the Q is read by that Q only.

use super::common::{self, QParams};
use super::exact;
use super::fuse::zero_point_or_new;
use super::Who;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::Target;
use qdqc_ir::proto::AttributeProto;
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

const ORT: &[Target] = &[Target::Ort];

/// The rule table.
pub fn rules() -> Vec<Rule> {
    let dq = |v: &str| format!("(DequantizeLinear@{v}dq ?{v} ?{v}s ?{v}z)");
    let unary = |op: &str| format!("(QuantizeLinear ({op}@op {}) ?ys ?yz)", dq("x"));
    let binary = |op: &str| format!("(QuantizeLinear ({op}@op {} {}) ?ys ?yz)", dq("a"), dq("b"));
    vec![
        Rule::new("qlinear-add", &binary("Add"), fusable, build_binary)
            .only(ORT)
            .exact_where("qlinear-add-mul", binary_exact),
        Rule::new("qlinear-mul", &binary("Mul"), fusable, build_binary)
            .only(ORT)
            .exact_where("qlinear-add-mul", binary_exact),
        Rule::new("qlinear-global-average-pool", &unary("GlobalAveragePool"), pool_fusable, build_unary).only(ORT),
        Rule::new("qlinear-average-pool", &unary("AveragePool"), average_pool_fusable, build_unary).only(ORT),
        Rule::new("qlinear-concat", "(QuantizeLinear (Concat@op ?xs...) ?ys ?yz)", concat_fusable, build_concat)
            .only(ORT)
            .exact_where("qlinear-lookup", concat_exact),
        Rule::new("qlinear-sigmoid", &unary("Sigmoid"), fusable, build_unary)
            .only(ORT)
            .exact_where("qlinear-lookup", lookup_exact),
        Rule::new("qlinear-leaky-relu", &unary("LeakyRelu"), fusable, build_unary)
            .only(ORT)
            .exact_where("qlinear-lookup", lookup_exact),
        Rule::new("qlinear-softmax", &unary("Softmax"), fusable, build_unary).only(ORT).approx("qlinear-softmax"),
    ]
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
    let p = common::of_node(g, id)?;
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

/// A checked island: its DQs in input order, their parameters and the Q's.
struct Island {
    dqs: Vec<NodeId>,
    x: Vec<QParams>,
    y: QParams,
}

/// The DQs and the Q are per tensor, of one 8-bit type, and the float op feeds only the Q.
fn check_island(g: &Graph, q: NodeId, op_node: NodeId, dqs: Vec<NodeId>) -> Result<Island, Refusal> {
    let op = contrib_op(&g.node(op_node).op);
    let y = per_tensor(g, q, &op)?;
    let mut xs = Vec::with_capacity(dqs.len());
    for &dq in &dqs {
        let x = per_tensor(g, dq, &op)?;
        ensure!(
            x.dtype == y.dtype,
            "{op} needs one integer type: input {} is {} but the output is {}",
            g.node(dq).label(),
            x.dtype,
            y.dtype
        );
        xs.push(x);
    }
    single_use(g, op_node, q)?;
    Ok(Island { dqs, x: xs, y })
}

/// The DQs of a unary or binary island, in input order.
fn island_dqs(m: &Match) -> Vec<NodeId> {
    ["xdq", "adq", "bdq"].iter().filter_map(|n| m.try_node(n)).collect()
}

/// The island is fusable.
fn fusable(g: &Graph, m: &Match) -> Result<Island, Refusal> {
    check_island(g, m.root(), m.node("op"), island_dqs(m))
}

/// A fusable pool, of an input of rank ≥ 3.
fn pool_fusable(g: &Graph, m: &Match) -> Result<Island, Refusal> {
    let island = fusable(g, m)?;
    let rank = g.operand_type(m.get("x")).and_then(|t| t.rank());
    let op = contrib_op(&g.node(m.node("op")).op);
    let got = rank.map_or("an unknown rank".to_string(), |r| format!("rank {r}"));
    ensure!(rank.is_some_and(|r| r >= 3), "{op} needs an input of rank ≥ 3 (N, C, spatial...), got {got}");
    global_pool_factor_fits(g, m, &island)?;
    Ok(island)
}

/// onnxruntime averages a whole image in integers with one f32 factor `x_scale / (y_scale · n)`
/// (n the image's element count), and refuses the op at run time for n ≥ 2²⁴ or a factor outside
/// [2⁻³², 256) (an AveragePool whose window is the whole image takes the same path). With n
/// unknown, every n below 2²⁴ must fit.
fn global_pool_factor_fits(g: &Graph, m: &Match, island: &Island) -> Result<(), Refusal> {
    let (xs, ys) = (island.x[0].scale[0], island.y.scale[0]);
    let shape = g.operand_type(m.get("x")).and_then(|t| t.shape);
    let image: Option<i64> =
        shape.and_then(|s| s[2..].iter().try_fold(1i64, |n, d| d.known().and_then(|k| n.checked_mul(k))));
    let fits = |n: f32| (2f32.powi(-32)..256.0).contains(&(xs / (ys * n)));
    let op = contrib_op(&g.node(m.node("op")).op);
    match image {
        Some(n) => {
            ensure!(n < 1 << 24, "{op}: onnxruntime refuses images of 2^24 elements or more ({n})");
            ensure!(fits(n as f32), "{op}: onnxruntime refuses x_scale / (y_scale · {n}) outside [2^-32, 256)");
        }
        None => ensure!(
            fits(1.0) && fits((1 << 24) as f32),
            "{op}: the image size is unknown and x_scale / y_scale = {} may put onnxruntime's factor outside [2^-32, 256)",
            xs / ys
        ),
    }
    Ok(())
}

/// A fusable pool without dilations (the contrib op has none).
fn average_pool_fusable(g: &Graph, m: &Match) -> Result<Island, Refusal> {
    let island = pool_fusable(g, m)?;
    let d = attr::ints(&g.node(m.node("op")).attrs, "dilations").unwrap_or(&[]);
    ensure!(d.iter().all(|&v| v == 1), "dilations {d:?} are not supported by QLinearAveragePool");
    Ok(island)
}

/// The Concat's DQ inputs.
fn concat_island(g: &Graph, m: &Match) -> Result<(NodeId, Vec<NodeId>), Refusal> {
    let concat = g.node(m.node("op"));
    let mut dqs = Vec::new();
    for (i, &x) in m.list("xs").iter().enumerate() {
        match x {
            Operand::Value(v) if v.slot == 0 && g.node(v.node).op == Op::DequantizeLinear => dqs.push(v.node),
            _ => {
                return Err(Refusal::new(format!(
                    "input {i} of Concat {} ('{}') is not a DequantizeLinear",
                    concat.label(),
                    g.operand_name(x)
                )))
            }
        }
    }
    ensure!(!dqs.is_empty(), "Concat {} has no inputs", concat.label());
    Ok((m.node("op"), dqs))
}

fn concat_fusable(g: &Graph, m: &Match) -> Result<Island, Refusal> {
    let (concat, dqs) = concat_island(g, m)?;
    ensure!(attr::int(&g.node(concat).attrs, "axis").is_some(), "Concat {} has no axis", g.node(concat).label());
    check_island(g, m.root(), concat, dqs)
}

// ---- exactness ----------------------------------------------------------------------------

/// The parameters of a Q or DQ the check has accepted (per tensor), for a proof.
fn proof_q(p: &QParams) -> Result<exact::Q, String> {
    exact::Q::new(p.scale[0], p.zero_point[0], p.dtype)
}

/// The distinct values of a constant integer operand (`None` for an activation).
fn constant_values(g: &Graph, o: Operand) -> Result<Option<Vec<i64>>, String> {
    match common::ints(g, o) {
        None => Ok(None),
        Some(v) => {
            let mut v = v.map_err(|e| e.to_string())?.to_vec();
            v.sort_unstable();
            v.dedup();
            Ok(Some(v))
        }
    }
}

/// The fully known shape of an operand.
fn known_shape(g: &Graph, o: Operand) -> Option<Vec<usize>> {
    let t = g.operand_type(o)?;
    t.shape?.iter().map(|d| d.known().and_then(|v| usize::try_from(v).ok())).collect()
}

/// QLinearAdd/QLinearMul is exact where a proof over every pair of inputs (a constant operand's
/// own values) finds no result off, in the broadcast form the shapes give (each form when a shape
/// is unknown).
fn binary_exact(g: &Graph, m: &Match, island: &Island) -> Result<(), String> {
    let op = contrib_op(&g.node(m.node("op")).op);
    let (a, b, y) = (proof_q(&island.x[0])?, proof_q(&island.x[1])?, proof_q(&island.y)?);
    let (av, bv) = (constant_values(g, m.get("a"))?, constant_values(g, m.get("b"))?);
    let (ash, bsh) = (known_shape(g, m.get("a")), known_shape(g, m.get("b")));
    for span in exact::spans(ash.as_deref(), bsh.as_deref()) {
        exact::binary(op.clone(), a, av.clone(), b, bv.clone(), y, span)?.verdict()?;
    }
    Ok(())
}

/// QLinearSigmoid/QLinearLeakyRelu is exact where a proof over every input value finds no
/// result off.
fn lookup_exact(g: &Graph, m: &Match, island: &Island) -> Result<(), String> {
    let float = g.node(m.node("op"));
    let alpha = attr::view::leaky_relu_alpha(&float.attrs);
    let (x, y) = (proof_q(&island.x[0])?, proof_q(&island.y)?);
    exact::lookup(contrib_op(&float.op), alpha, x, y)?.verdict()
}

/// QLinearConcat requantizes each input through a table: exact where a proof over every value of
/// each input finds no result off.
fn concat_exact(_: &Graph, _: &Match, island: &Island) -> Result<(), String> {
    let y = proof_q(&island.y)?;
    for (i, x) in island.x.iter().enumerate() {
        let x = proof_q(x)?;
        exact::lookup(Op::QLinearConcat, 0.0, x, y)?.verdict().map_err(|why| format!("input {i}: {why}"))?;
    }
    Ok(())
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
        Op::LeakyRelu => attrs.push(attr::make_float("alpha", attr::view::leaky_relu_alpha(&float.attrs))),
        Op::Softmax => {
            let opset = g.opset();
            attrs.push(attr::make_int("axis", attr::view::softmax_axis(&float.attrs, opset)));
            attrs.push(attr::make_int("opset", opset));
        }
        Op::Concat => attrs.push(attr::make_int("axis", attr::int(&float.attrs, "axis").expect("guarded"))),
        _ => {}
    }
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let n = p.add(PatchNode::new(contrib_op(&float.op), inputs).named(float.name()).attrs(attrs).output(out));
    p.replace(Outlet::new(m.root(), 0), n);
    p.remove(m.root());
    p.remove(op_node);
    for &dq in dqs {
        p.remove(dq);
    }
    p
}

/// The inputs `vars` of the match, with an omitted zero point (`?xz` for `?x`) made an explicit 0
/// of the island's integer type `dtype`: QLinearGlobalAveragePool requires both of its zero points and
/// QLinearSoftmax its output's.
fn island_inputs(g: &Graph, m: &Match, p: &mut Patch, dtype: DType, vars: &[&str]) -> Vec<PatchOperand> {
    vars.iter()
        .map(|&v| match v {
            "xz" | "az" | "bz" => {
                zero_point_or_new(p, m.get(v), dtype, 1, || format!("{}_zero_point", g.operand_name(m.get(&v[..1]))))
            }
            "yz" => zero_point_or_new(p, m.get(v), dtype, 1, || {
                format!("{}_zero_point", g.value(Outlet::new(m.root(), 0)).name)
            }),
            _ => m.get(v).into(),
        })
        .collect()
}

fn build_unary(g: &Graph, m: &Match, island: Island) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    let inputs = island_inputs(g, m, &mut p, island.y.dtype, &["x", "xs", "xz", "ys", "yz"]);
    Ok(finish(g, m, p, m.node("op"), &island.dqs, inputs))
}

fn build_binary(g: &Graph, m: &Match, island: Island) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    let inputs = island_inputs(g, m, &mut p, island.y.dtype, &["a", "as", "az", "b", "bs", "bz", "ys", "yz"]);
    Ok(finish(g, m, p, m.node("op"), &island.dqs, inputs))
}

fn build_concat(g: &Graph, m: &Match, Island { dqs, y, .. }: Island) -> Result<Patch, Refusal> {
    let concat = m.node("op");
    let dtype = y.dtype;
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
