//! The `table` rules: what is left of a float island after fusion, on `--target onnx`.
//!
//! - `elementwise-table`: `Q(f(DQ x))` or `Q(f(DQ a, DQ b))`, where `f` is a chain of
//!   elementwise float ops that reads one or two 8-bit tensors (HardSwish written as
//!   `x * Clip(x + 3, 0, 6) / 6`, HardSigmoid, Sigmoid, Tanh, Gelu/Erf pieces, Add/Sub/Mul/Div/Pow/
//!   Max/Min by constants, Relu/Clip, an inference BatchNormalization, `x * g(x)`, a residual Add,
//!   an SE block's scaling Mul) ⇒ `Gather(table, position)`. The output is a function of the 256
//!   values of `x` (per channel when the chain's constants vary along one axis), or of the 65,536
//!   pairs of `a` and `b`: the table holds, for each, what the island computes, so the rewrite is
//!   exact by construction. The position is `Cast<int32>(x)` plus an offset: 128 for int8, and
//!   `c·256` for channel `c` of a per-channel table (flat, `[C·256]`); for two inputs,
//!   `256·a + b` (numpy broadcasting, as the float ops broadcast) plus the offsets of int8 inputs.
//!   Standard ops only (Cast, Mul, Add, Gather), which integer-only hardware runs; onnxruntime runs
//!   a Gather about 14× slower than a depthwise QLinearConv over the same tensor, and slower than
//!   the float island, so the rule is `--target onnx` only.
//!
//! The table is computed by running the island on every input value in the interpreter: the
//! DequantizeLinear, the chain's ops with their attributes and constants, and the
//! QuantizeLinear, at the model's opset.

use super::common::{self, QParams};
use super::Who;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, Refusal, Rule};
use crate::Target;
use qdqc_eval::{RunOptions, Value};
use qdqc_ir::builder::GraphBuilder;
use qdqc_ir::{attr, ConstId, DType, Dim, Graph, NodeId, Op, Operand, Outlet, Tensor, TensorType};
use rustc_hash::FxHashMap;
use std::sync::Arc;

const ONNX: &[Target] = &[Target::Onnx];

/// The most float ops a chain may have (HardSwish written out has four).
const MAX_OPS: usize = 32;

/// The most entries a table may have (4096 channels of 256 values).
const MAX_ENTRIES: usize = 1 << 20;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![Rule::new("elementwise-table", "(QuantizeLinear ?f ?ys ?yz)", chain, build).only(ONNX)]
}

/// A checked island: the one or two 8-bit activations it reads (with their type) and their
/// DQs, the float ops (producers first, the Q's producer last), the Q's parameters, and the
/// shape of the table.
struct Island {
    sources: Vec<(Operand, DType)>,
    dqs: Vec<NodeId>,
    ops: Vec<NodeId>,
    y: QParams,
    /// The output's rank.
    rank: usize,
    /// The axis the chain's constants vary along, and its size (`None`: one table).
    channel: Option<(usize, usize)>,
}

/// Whether `op` computes each output element from the elements at the same position of its
/// inputs (numpy broadcasting; BatchNormalization per channel of axis 1).
fn elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::Clip
            | Op::LeakyRelu
            | Op::Sigmoid
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Tanh
            | Op::Gelu
            | Op::Erf
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Pow
            | Op::Sqrt
            | Op::Max
            | Op::Min
            | Op::Identity
            | Op::BatchNormalization
    )
}

/// An 8-bit per-tensor Q/DQ with an f32 scale.
fn eight_bit(g: &Graph, id: NodeId) -> Result<QParams, Refusal> {
    let p = common::of_node(g, id)?;
    let who = Who(g, id);
    ensure!(p.axis.is_none(), "{who} is per axis: a table needs one input and one output quantization");
    ensure!(matches!(p.dtype, DType::U8 | DType::I8), "{who} is {}: a table takes u8 or i8", p.dtype);
    ensure!(p.scale_dtype == DType::F32, "the scale of {who} is {}, not f32", p.scale_dtype);
    Ok(p)
}

/// Walks up from the Q's input through elementwise ops to the DequantizeLinears of the one or
/// two activations they read (DequantizeLinears of constants are part of the island: the
/// quantizer quantizes HardSwish's `3` and a BatchNormalization's bias).
fn chain(g: &Graph, m: &Match) -> Result<Island, Refusal> {
    let q = m.root();
    let Operand::Value(f) = m.get("f") else { return Err(Refusal::NotApplicable) };
    if !elementwise(&g.node(f.node).op) {
        return Err(Refusal::NotApplicable);
    }
    // Post-order over the nodes under the Q: each after the nodes it reads.
    let (mut ops, mut dqs) = (Vec::new(), Vec::new());
    let mut stack = vec![(f.node, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            if !ops.contains(&id) {
                ops.push(id);
            }
            continue;
        }
        if ops.contains(&id) || dqs.contains(&id) {
            continue;
        }
        let n = g.node(id);
        if n.op == Op::DequantizeLinear && matches!(n.input(0), Operand::Value(_)) {
            dqs.push(id);
            continue;
        }
        ensure!(
            elementwise(&n.op) || n.op == Op::DequantizeLinear,
            "{} reads {}, which is not elementwise",
            Who(g, f.node),
            Who(g, id)
        );
        ensure!(n.outputs.len() == 1 || n.op == Op::BatchNormalization, "{} has several outputs", Who(g, id));
        if n.op == Op::BatchNormalization {
            common::bn_inference(g, id)?;
        }
        ensure!(ops.len() + stack.len() < MAX_OPS, "more than {MAX_OPS} float ops");
        stack.push((id, true));
        for &i in n.inputs() {
            match i {
                Operand::Value(o) => {
                    ensure!(o.slot == 0, "{} reads a second output", Who(g, id));
                    stack.push((o.node, false));
                }
                Operand::Const(_) => ensure!(g.const_tensor(i).is_some(), "a constant of {} has no data", Who(g, id)),
                Operand::None => {}
            }
        }
    }
    ensure!(!dqs.is_empty(), "the float ops read no quantized tensor");
    // Every op computes from the inputs (a constant computed from constants is not a function of
    // their values, and its shape is not checked below), and its result is read inside the
    // island only.
    let mut derived = dqs.clone();
    for &id in &ops {
        if is_const_dq(g, id) {
            continue;
        }
        let reads = |o: &Operand| matches!(o, Operand::Value(v) if derived.contains(&v.node));
        ensure!(g.node(id).inputs().iter().any(reads), "{} computes a constant", Who(g, id));
        derived.push(id);
        let out = Operand::Value(Outlet::new(id, 0));
        ensure!(!g.is_output(out), "the float result of {} is a graph output", Who(g, id));
        let inside = |c: NodeId| c == q || ops.contains(&c);
        ensure!(g.uses(id).all(|(c, _)| inside(c)), "the float result of {} has other consumers", Who(g, id));
    }
    let y = eight_bit(g, q)?;
    // The activations: DQs of one tensor (the quantizer may dequantize it twice) read one.
    let (mut sources, mut shapes) = (Vec::new(), Vec::new());
    for &dq in &dqs {
        let x = eight_bit(g, dq)?;
        let input = g.node(dq).input(0);
        if sources.iter().any(|&(s, _)| s == input) {
            continue;
        }
        ensure!(sources.len() < 2, "the float ops read more than two quantized tensors");
        sources.push((input, x.dtype));
        let shape = g.operand_type(input).and_then(|t| t.shape);
        shapes.push(shape.ok_or_else(|| Refusal::new(format!("the rank of {}'s input is unknown", Who(g, dq))))?);
    }
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    ensure!(rank > 0, "the quantized input is a scalar");
    let channel = channel(g, &ops, &shapes, rank)?;
    ensure!(channel.is_none() || sources.len() == 1, "the constants vary along an axis and there are two inputs");
    let entries = channel.map_or(1, |(_, c)| c).saturating_mul(256);
    ensure!(entries <= MAX_ENTRIES, "a table of {entries} entries is larger than {MAX_ENTRIES}");
    Ok(Island { sources, dqs, ops, y, rank, channel })
}

/// A DequantizeLinear of a constant.
fn is_const_dq(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    n.op == Op::DequantizeLinear && matches!(n.input(0), Operand::Const(_))
}

/// The dims of a constant operand: a constant, or the DequantizeLinear of one.
fn const_dims(g: &Graph, o: Operand) -> Option<&[i64]> {
    match o {
        Operand::Const(_) => Some(g.const_tensor(o)?.dims()),
        Operand::Value(v) if is_const_dq(g, v.node) => Some(g.const_tensor(g.node(v.node).input(0))?.dims()),
        Operand::Value(_) | Operand::None => None,
    }
}

/// The one axis the ops' constant operands vary along, with its size, or `None` when every
/// constant is one value. Refuses constants that would broadcast the inputs (of `shapes`, `rank`
/// axes when aligned to their last axes) to a larger shape: the position has the inputs' shape.
fn channel(g: &Graph, ops: &[NodeId], shapes: &[Arc<[Dim]>], rank: usize) -> Result<Option<(usize, usize)>, Refusal> {
    // The inputs' dim along an axis of the output, where one of them has it.
    let has = |axis: usize, d: i64| {
        shapes.iter().any(|s| axis + s.len() >= rank && s[axis + s.len() - rank].known() == Some(d))
    };
    let mut found: Option<(usize, usize)> = None;
    for &id in ops.iter().filter(|&&id| !is_const_dq(g, id)) {
        let n = g.node(id);
        for (i, &o) in n.inputs().iter().enumerate() {
            let Some(dims) = const_dims(g, o) else { continue };
            // BatchNormalization's parameters are per channel of axis 1; other constants
            // broadcast numpy-style, aligned to the last axes.
            let axes: Vec<(usize, i64)> = if n.op == Op::BatchNormalization && i > 0 {
                ensure!(rank >= 2 && dims.len() == 1, "{}'s parameters do not match its input's rank", Who(g, id));
                vec![(1, dims[0])]
            } else {
                ensure!(dims.len() <= rank, "a constant of {} has more axes than the input", Who(g, id));
                dims.iter().enumerate().map(|(j, &d)| (rank - dims.len() + j, d)).collect()
            };
            for (axis, d) in axes.into_iter().filter(|&(_, d)| d != 1) {
                ensure!(
                    has(axis, d),
                    "a constant of {} has {d} values along axis {axis}, which the input has not",
                    Who(g, id)
                );
                match found {
                    None => found = Some((axis, d as usize)),
                    Some((a, _)) if a == axis => {}
                    Some((a, _)) => return Err(Refusal::new(format!("the constants vary along axes {a} and {axis}"))),
                }
            }
        }
    }
    ensure!(found.is_none() || rank >= 2, "a per-channel table needs an input of rank 2 or more");
    Ok(found)
}

/// The island's output for every input value, or pair of values: channel-major `[C·256]`, or
/// `[256·256]` with the first input's value major.
fn table(g: &Graph, m: &Match, island: &Island) -> Result<Vec<i64>, Refusal> {
    // The inputs' shapes: one input has every value along its last axis (the one before it when
    // the constants vary along the last) and each channel along the channel axis; two inputs
    // have theirs along the last two axes, so that the output holds every pair.
    let r = island.rank.max(island.sources.len());
    let values_axis = match island.channel {
        Some((a, _)) if a == r - 1 => r - 2,
        _ => r - 1,
    };
    let shapes: Vec<Vec<usize>> = (0..island.sources.len())
        .map(|i| {
            let mut dims = vec![1usize; r];
            dims[values_axis - (island.sources.len() - 1 - i)] = 256;
            if let Some((a, c)) = island.channel {
                dims[a] = c;
            }
            dims
        })
        .collect();

    let mut b = GraphBuilder::new(g.opset());
    let mut values: FxHashMap<Outlet, Operand> = FxHashMap::default();
    let mut consts: FxHashMap<ConstId, Operand> = FxHashMap::default();
    let mut operand = |b: &mut GraphBuilder, values: &FxHashMap<Outlet, Operand>, o: Operand| match o {
        Operand::Value(v) => values[&v],
        Operand::Const(c) => *consts
            .entry(c)
            .or_insert_with(|| b.tensor(&format!("c{}", c.0), g.const_tensor(o).expect("checked").clone())),
        Operand::None => Operand::None,
    };
    let copy = |b: &mut GraphBuilder, id: NodeId, inputs: Vec<Operand>| {
        let n = g.node(id);
        b.node(n.op.clone(), &inputs).attrs(n.attrs.iter().cloned()).out1()
    };
    let mut given = Vec::new();
    let mut inputs_of = Vec::new();
    for (i, (&(_, dtype), dims)) in island.sources.iter().zip(&shapes).enumerate() {
        let name = format!("x{i}");
        let shape: Vec<Dim> = dims.iter().map(|&d| Dim::Known(d as i64)).collect();
        inputs_of.push(b.input_typed(&name, Some(TensorType { dtype, shape: Some(shape.into()) })));
        // Every value of the type along this input's values axis.
        let lo = dtype.int_range().expect("8-bit").0;
        let step: usize = dims[values_axis - (island.sources.len() - 1 - i) + 1..].iter().product();
        let count: usize = dims.iter().product();
        let data: Vec<i64> = (0..count).map(|e| lo + ((e / step) % 256) as i64).collect();
        let value = Value::from_i64(dtype, dims, &data).map_err(|e| Refusal::new(format!("the table's input: {e}")))?;
        given.push((name, value));
    }
    for &dq in &island.dqs {
        let source = island.sources.iter().position(|&(s, _)| s == g.node(dq).input(0)).expect("a source");
        let mut inputs = vec![inputs_of[source]];
        inputs.extend(g.node(dq).inputs()[1..].iter().map(|&o| operand(&mut b, &values, o)));
        values.insert(Outlet::new(dq, 0), copy(&mut b, dq, inputs));
    }
    for &id in &island.ops {
        let inputs: Vec<Operand> = g.node(id).inputs().iter().map(|&o| operand(&mut b, &values, o)).collect();
        values.insert(Outlet::new(id, 0), copy(&mut b, id, inputs));
    }
    let inputs: Vec<Operand> = g.node(m.root()).inputs().iter().map(|&o| operand(&mut b, &values, o)).collect();
    let y = copy(&mut b, m.root(), inputs);
    b.output(y);
    let fail = |what: &str, e: String| Refusal::new(format!("the table's {what}: {e}"));
    let island_graph = b.finish().map_err(|e| fail("graph", e.to_string()))?;
    let run = qdqc_eval::run(&island_graph, &given, &RunOptions::default()).map_err(|e| fail("run", e.to_string()))?;
    let (out_shape, out) =
        (run.outputs[0].1.shape().to_vec(), run.outputs[0].1.to_i64_vec().map_err(|e| fail("output", e.to_string()))?);
    // The output's shape is the inputs' broadcast: values (and channels) where the inputs put them.
    let mut want = vec![1usize; r];
    for dims in &shapes {
        for (w, &d) in want.iter_mut().zip(dims) {
            *w = (*w).max(d);
        }
    }
    ensure!(out_shape == want, "the table's run gave shape {out_shape:?}, not {want:?}");
    let strides: Vec<usize> = (0..r).map(|i| want[i + 1..].iter().product()).collect();
    let channels = island.channel.map_or(1, |(_, c)| c);
    let mut table = vec![0; channels * 256usize.pow(island.sources.len() as u32)];
    for (e, &v) in out.iter().enumerate() {
        let at = |axis: usize| (e / strides[axis]) % want[axis];
        let entry = match (island.sources.len(), island.channel) {
            (1, None) => at(values_axis),
            (1, Some((a, _))) => at(a) * 256 + at(values_axis),
            _ => at(values_axis - 1) * 256 + at(values_axis),
        };
        table[entry] = v;
    }
    Ok(table)
}

fn build(g: &Graph, m: &Match, island: Island) -> Result<Patch, Refusal> {
    let table = table(g, m, &island)?;
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let mut p = Patch::new();
    let to_i32 = || vec![attr::make_int("to", DType::I32.to_onnx() as i64)];
    let mut casts = island
        .sources
        .iter()
        .map(|&(x, _)| {
            p.add(PatchNode::new(Op::Cast, [x]).attrs(to_i32()).output(format!("{}_i32", g.operand_name(x))))
        })
        .collect::<Vec<_>>()
        .into_iter();
    let low = |i: usize| island.sources[i].1.int_range().expect("8-bit").0;
    // The position of each input value (pair) in the table, less an offset: the channel's first
    // entry, minus the least value of each input's type.
    let (position, offset_dims, offsets): (_, Vec<i64>, Vec<i64>) = match (island.sources.len(), island.channel) {
        (1, None) => (casts.next().expect("one"), vec![], vec![-low(0)]),
        (1, Some((a, c))) => {
            let mut dims = vec![1; island.rank - a];
            dims[0] = c as i64;
            (casts.next().expect("one"), dims, (0..c as i64).map(|i| i * 256 - low(0)).collect())
        }
        _ => {
            let (ca, cb) = (casts.next().expect("two"), casts.next().expect("two"));
            let k = p.add_const(&format!("{out}_stride"), Tensor::from_i64("", DType::I32, &[], &[256]));
            let hi = p.add(PatchNode::new(Op::Mul, [ca, k]).output(format!("{out}_row")));
            let pos = p.add(PatchNode::new(Op::Add, [hi, cb]).output(format!("{out}_pair")));
            (pos, vec![], vec![-low(0) * 256 - low(1)])
        }
    };
    let index = if offsets.iter().all(|&v| v == 0) {
        position
    } else {
        let offset = p.add_const(&format!("{out}_offset"), Tensor::from_i64("", DType::I32, &offset_dims, &offsets));
        p.add(PatchNode::new(Op::Add, [position, offset]).output(format!("{out}_position")))
    };
    let n = table.len() as i64;
    let table = p.add_const(&format!("{out}_table"), Tensor::from_i64("", island.y.dtype, &[n], &table));
    let gather = p.add(PatchNode::new(Op::Gather, [table, index]).named(g.node(m.root()).name()).output(out));
    p.replace(Outlet::new(m.root(), 0), gather);
    p.remove(m.root());
    for &id in island.ops.iter().rev() {
        p.remove(id);
    }
    for &dq in &island.dqs {
        p.remove(dq); // kept when it has other consumers
    }
    Ok(p)
}
