//! The `elementwise` rules: what is left of a float island after fusion, when its ops are
//! elementwise on 8-bit inputs. `Q(f(DQ x))` or `Q(f(DQ a, DQ b))`, where `f` is a chain of
//! elementwise float ops that reads one or two 8-bit tensors (HardSwish written as
//! `x * Clip(x + 3, 0, 6) / 6`, HardSigmoid, Sigmoid, Tanh, Gelu/Erf pieces, Add/Sub/Mul/Div/Pow/
//! Max/Min by constants, Relu/Clip, an inference BatchNormalization, `x * g(x)`, a residual Add,
//! an SE block's scaling Mul; constants also through a DequantizeLinear), is a function of the 256
//! values of `x` (per channel when the chain's constants vary along one axis), or of the 65,536
//! pairs of `a` and `b`.
//!
//! - `elementwise-as-depthwise-conv`: where that function of one input is, per channel, a
//!   straight line up to the output's saturation (a Mul/Div/Add by constants, a BatchNormalization,
//!   HardSigmoid when its clip is the saturation), a depthwise 1×1 QLinearConv with the searched
//!   weight, weight scale and bias of `qbn-as-depthwise-conv` (`fuse/batchnorm.rs`), proven over
//!   every input value. A standard op, and onnxruntime's fastest form: every target.
//! - `elementwise-table`: else `Gather(table, position)`, the table holding the island's result
//!   for every input. The position is `Cast<int32>(x)` plus an offset: 128 for int8, and `c·256`
//!   for channel `c` of a per-channel table (flat, `[C·256]`); for two inputs, `256·a + b` (numpy
//!   broadcasting, as the float ops broadcast) plus the offsets of int8 inputs. Standard ops only
//!   (Cast, Mul, Add, Gather), which integer-only hardware runs; onnxruntime runs a Gather about
//!   14× slower than a depthwise QLinearConv over the same tensor, and slower than the float
//!   island, so the rule is `--target onnx` only.
//!
//! Both run the island on every input value in the interpreter: the DequantizeLinears, the
//! chain's ops with their attributes and constants, and the QuantizeLinear, at the model's opset,
//! in float32 as the model computes it; and again in f64 (dequantized inputs and constants in
//! f64, the value the QuantizeLinear reads divided by its scale), which is the reference
//! (`docs/exactness.md`). The depthwise form is searched and proven against the reference; every
//! entry of a table is judged against it, and a table with an entry off is refused (the float32
//! island itself rounds away from the exact result there: a cancellation, say), with the count.

use super::common::{self, QParams};
use super::exact::{self, DepthwiseChannel, Q};
use super::fuse::batchnorm::{add_depthwise_conv, exact_channel_of};
use super::Who;
use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, Refusal, Rule};
use crate::Target;
use qdqc_eval::exactness::{judge, Judgement};
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

/// The rule table: a depthwise QLinearConv where the island has an exact one (a standard op, and
/// onnxruntime's fastest form of it), else a table on `--target onnx`.
pub fn rules() -> Vec<Rule> {
    let island = "(QuantizeLinear ?f ?ys ?yz)";
    vec![
        Rule::new("elementwise-as-depthwise-conv", island, affine, build_depthwise),
        Rule::new("elementwise-table", island, chain, build_table).only(ONNX),
    ]
}

/// A checked island: the one or two 8-bit activations it reads (with their type) and their
/// DQs, the float ops (producers first, the Q's producer last), the Q's parameters, and the
/// shape of the table.
struct Island {
    sources: Vec<(Operand, DType)>,
    /// Each DQ of an input, with its parameters.
    dqs: Vec<(NodeId, QParams)>,
    ops: Vec<NodeId>,
    y: QParams,
    /// The output's rank.
    rank: usize,
    /// The axis the chain's constants vary along, and its size (`None`: one table).
    channel: Option<(usize, usize)>,
}

impl Island {
    /// The name of the node that replaces the island: its last op's (the Q's producer), as the
    /// fused ops of `fuse-contrib` are named after their float op.
    fn name<'g>(&self, g: &'g Graph) -> &'g str {
        g.node(*self.ops.last().expect("an island has an op")).name()
    }
}

/// Removes the Q, the float ops and the DQs (each kept when it has other consumers).
fn remove_island(p: &mut Patch, m: &Match, island: &Island) {
    p.remove(m.root());
    for &id in island.ops.iter().rev() {
        p.remove(id);
    }
    for &(dq, _) in &island.dqs {
        p.remove(dq);
    }
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
                Operand::Const(_) => {
                    ensure!(g.const_tensor(i).is_some(), "a constant of {} has no data", Who(g, id))
                }
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
    let (mut sources, mut shapes, mut params) = (Vec::new(), Vec::new(), Vec::with_capacity(dqs.len()));
    for &dq in &dqs {
        let x = eight_bit(g, dq)?;
        let (input, dtype) = (g.node(dq).input(0), x.dtype);
        params.push((dq, x));
        if sources.iter().any(|&(s, _)| s == input) {
            continue;
        }
        ensure!(sources.len() < 2, "the float ops read more than two quantized tensors");
        sources.push((input, dtype));
        let shape = g.operand_type(input).and_then(|t| t.shape);
        shapes.push(shape.ok_or_else(|| Refusal::new(format!("the rank of {}'s input is unknown", Who(g, dq))))?);
    }
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    ensure!(rank > 0, "the quantized input is a scalar");
    let channel = channel(g, &ops, &shapes, rank)?;
    ensure!(channel.is_none() || sources.len() == 1, "the constants vary along an axis and there are two inputs");
    let entries = channel.map_or(1, |(_, c)| c).saturating_mul(256);
    ensure!(entries <= MAX_ENTRIES, "a table of {entries} entries is larger than {MAX_ENTRIES}");
    Ok(Island { sources, dqs: params, ops, y, rank, channel })
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

/// The island run on every input value, or pair of values: its float32 result and its reference
/// (`docs/exactness.md`: the island in f64, in output steps before the zero point), each in
/// table order — channel-major `[C·256]`, or `[256·256]` with the first input's value major.
struct Runs {
    out: Vec<i64>,
    reference: Vec<f64>,
}

fn evaluate(g: &Graph, m: &Match, island: &Island) -> Result<Runs, Refusal> {
    // The inputs' shapes: one input has every value along its last axis (the one before it when
    // the constants vary along the last) and each channel along the channel axis; two inputs
    // have theirs along the last two axes, so that the output holds every pair.
    let n = island.sources.len();
    let r = island.rank.max(n);
    let values_axis = match island.channel {
        Some((a, _)) if a == r - 1 => r - 2,
        _ => r - 1,
    };
    let mut given = Vec::new();
    let mut shapes = Vec::new();
    for (i, &(_, dtype)) in island.sources.iter().enumerate() {
        let mut dims = vec![1usize; r];
        let axis = values_axis - (n - 1 - i);
        dims[axis] = 256;
        if let Some((a, c)) = island.channel {
            dims[a] = c;
        }
        // Every value of the type along this input's values axis.
        let lo = dtype.int_range().expect("8-bit").0;
        let step: usize = dims[axis + 1..].iter().product();
        let count: usize = dims.iter().product();
        let data: Vec<i64> = (0..count).map(|e| lo + ((e / step) % 256) as i64).collect();
        let value =
            Value::from_i64(dtype, &dims, &data).map_err(|e| Refusal::new(format!("the island's input: {e}")))?;
        given.push((format!("x{i}"), value));
        shapes.push(dims);
    }
    let run = |precise: bool| -> Result<Value, Refusal> {
        let what = if precise { "reference" } else { "island" };
        let fail = |e: String| Refusal::new(format!("the {what}'s run: {e}"));
        let graph = island_graph(g, m, island, &shapes, precise).map_err(|e| fail(e.to_string()))?;
        let out = qdqc_eval::run(&graph, &given, &RunOptions::default()).map_err(|e| fail(e.to_string()))?;
        Ok(out.outputs.into_iter().next().expect("one output").1)
    };
    let (out, reference) = (run(false)?, run(true)?);
    // The output's shape is the inputs' broadcast: values (and channels) where the inputs put them.
    let mut want = vec![1usize; r];
    for dims in &shapes {
        for (w, &d) in want.iter_mut().zip(dims) {
            *w = (*w).max(d);
        }
    }
    for v in [&out, &reference] {
        ensure!(v.shape() == want, "the island's run gave shape {:?}, not {want:?}", v.shape());
    }
    let out = out.to_i64_vec().map_err(|e| Refusal::new(format!("the island's output: {e}")))?;
    let reference = reference.to_f64_vec().map_err(|e| Refusal::new(format!("the reference: {e}")))?;
    let strides: Vec<usize> = (0..r).map(|i| want[i + 1..].iter().product()).collect();
    let channels = island.channel.map_or(1, |(_, c)| c);
    let entries = channels * 256usize.pow(n as u32);
    let mut runs = Runs { out: vec![0; entries], reference: vec![0.0; entries] };
    let scale = island.y.scale[0] as f64;
    for (e, (&q, &v)) in out.iter().zip(&reference).enumerate() {
        let at = |axis: usize| (e / strides[axis]) % want[axis];
        let entry = match (n, island.channel) {
            (1, None) => at(values_axis),
            (1, Some((a, _))) => at(a) * 256 + at(values_axis),
            _ => at(values_axis - 1) * 256 + at(values_axis),
        };
        runs.out[entry] = q;
        runs.reference[entry] = v / scale;
    }
    Ok(runs)
}

/// The island alone, reading inputs `x0` (and `x1`) of `shapes`: as the model computes it, or,
/// `precise`, its reference: every DequantizeLinear and float constant in f64 and the value the
/// QuantizeLinear reads as the output.
fn island_graph(
    g: &Graph,
    m: &Match,
    island: &Island,
    shapes: &[Vec<usize>],
    precise: bool,
) -> Result<Graph, qdqc_ir::GraphError> {
    let mut b = GraphBuilder::new(g.opset());
    let mut values: FxHashMap<Outlet, Operand> = FxHashMap::default();
    let mut consts: FxHashMap<ConstId, Operand> = FxHashMap::default();
    let mut operand = |b: &mut GraphBuilder, values: &FxHashMap<Outlet, Operand>, o: Operand| match o {
        Operand::Value(v) => values[&v],
        Operand::Const(c) => *consts.entry(c).or_insert_with(|| {
            let t = g.const_tensor(o).expect("checked");
            let t = match (precise, common::floats(g, o)) {
                (true, Some(Ok(v))) if t.dtype().is_ok_and(|d| d.is_float()) => {
                    f64_tensor(t.dims(), v.iter().map(|&x| x as f64))
                }
                _ => t.clone(),
            };
            b.tensor(&format!("c{}", c.0), t)
        }),
        Operand::None => Operand::None,
    };
    let copy = |b: &mut GraphBuilder, id: NodeId, inputs: Vec<Operand>| {
        let n = g.node(id);
        b.node(n.op.clone(), &inputs).attrs(n.attrs.iter().cloned()).out1()
    };
    let mut inputs_of = Vec::new();
    for (i, (&(_, dtype), dims)) in island.sources.iter().zip(shapes).enumerate() {
        let shape: Vec<Dim> = dims.iter().map(|&d| Dim::Known(d as i64)).collect();
        inputs_of.push(b.input_typed(&format!("x{i}"), Some(TensorType { dtype, shape: Some(shape.into()) })));
    }
    let to_f64 = vec![attr::make_int("to", DType::F64.to_onnx() as i64)];
    for (dq, p) in &island.dqs {
        let dq = *dq;
        let source = island.sources.iter().position(|&(s, _)| s == g.node(dq).input(0)).expect("a source");
        let x = inputs_of[source];
        let value = if precise {
            let (z, s) = (p.zero_point[0] as f64, p.scale[0] as f64);
            let cast = b.node(Op::Cast, &[x]).attrs(to_f64.clone()).out1();
            let (z, s) = (
                b.tensor(&format!("z{}", dq.index()), f64_tensor(&[], [z])),
                b.tensor(&format!("s{}", dq.index()), f64_tensor(&[], [s])),
            );
            let centered = b.node(Op::Sub, &[cast, z]).out1();
            b.node(Op::Mul, &[centered, s]).out1()
        } else {
            let mut inputs = vec![x];
            inputs.extend(g.node(dq).inputs()[1..].iter().map(|&o| operand(&mut b, &values, o)));
            copy(&mut b, dq, inputs)
        };
        values.insert(Outlet::new(dq, 0), value);
    }
    for &id in &island.ops {
        let value = match (precise, is_const_dq(g, id)) {
            (true, true) => {
                let (dims, v) = dequantized_f64(g, id)
                    .ok_or_else(|| qdqc_ir::GraphError::Invariant(format!("{} cannot be read", Who(g, id))))?;
                b.tensor(&format!("d{}", id.index()), f64_tensor(&dims, v))
            }
            _ => {
                let inputs: Vec<Operand> = g.node(id).inputs().iter().map(|&o| operand(&mut b, &values, o)).collect();
                copy(&mut b, id, inputs)
            }
        };
        values.insert(Outlet::new(id, 0), value);
    }
    let q = g.node(m.root());
    let y = match precise {
        true => operand(&mut b, &values, q.input(0)),
        false => {
            let inputs: Vec<Operand> = q.inputs().iter().map(|&o| operand(&mut b, &values, o)).collect();
            copy(&mut b, m.root(), inputs)
        }
    };
    b.output(y);
    b.finish()
}

/// An f64 tensor.
fn f64_tensor(dims: &[i64], values: impl IntoIterator<Item = f64>) -> Tensor {
    let raw: Vec<u8> = values.into_iter().flat_map(f64::to_le_bytes).collect();
    Tensor::from_raw("", DType::F64, dims, raw.into())
}

/// The values a DequantizeLinear of a constant computes, in f64, with their dims.
fn dequantized_f64(g: &Graph, id: NodeId) -> Option<(Vec<i64>, Vec<f64>)> {
    let p = common::of_node(g, id).ok()?;
    let x = g.node(id).input(0);
    let dims = g.const_tensor(x)?.dims().to_vec();
    let q = common::ints(g, x)?.ok()?;
    let values = common::dequantize_f64(&q, &dims, &p).ok()?;
    Some((dims, values))
}

// ---- elementwise-as-depthwise-conv ---------------------------------------------------------

/// An island that a depthwise 1×1 QLinearConv can compute: one 8-bit input of the output's type,
/// `[N, C, spatial...]`, constants per tensor or per channel of axis 1. Returns the channel count.
fn affine(g: &Graph, m: &Match) -> Result<(Island, usize), Refusal> {
    // Why a match is no elementwise island is said once, by `elementwise-table`.
    let island = chain(g, m).map_err(|_| Refusal::NotApplicable)?;
    ensure!(island.sources.len() == 1, "a QLinearConv reads one input, the island two");
    let (x, dtype) = island.sources[0];
    ensure!(
        dtype == island.y.dtype,
        "QLinearConv needs the same 8-bit type in and out, not {dtype} → {}",
        island.y.dtype
    );
    ensure!(island.rank >= 3, "the input has rank {}; a QLinearConv needs [N, C, spatial...]", island.rank);
    ensure!(
        island.channel.is_none_or(|(a, _)| a == 1),
        "the constants vary along axis {}, not the channels (axis 1)",
        island.channel.map_or(0, |(a, _)| a)
    );
    let c = g.operand_type(x).and_then(|t| t.shape).and_then(|s| s[1].known());
    let c = c.filter(|&c| c > 0).ok_or_else(|| Refusal::new("the channel count is unknown"))?;
    Ok((island, c as usize))
}

/// The straight line through the island's reference where it does not saturate: its slope and
/// offset in output steps per input step `q − z_x` (flat when fewer than two inputs do not
/// saturate).
fn line(reference: &[f64], x: &Q, y: &Q) -> (f64, f64) {
    let d = |k: usize| x.lo + k as i64 - x.zp;
    let inside = |v: f64| {
        v.is_finite()
            && (v.round() as i64).saturating_add(y.zp) > y.lo
            && (v.round() as i64).saturating_add(y.zp) < y.hi
    };
    let first = reference.iter().position(|&v| inside(v));
    let last = reference.iter().rposition(|&v| inside(v));
    match (first, last) {
        (Some(i), Some(j)) if i < j => {
            let a = (reference[j] - reference[i]) / (d(j) - d(i)) as f64;
            (a, reference[i] - a * d(i) as f64)
        }
        _ => (0.0, reference[reference.len() / 2]),
    }
}

/// Searches each channel's depthwise parameters against the island's reference (the search of
/// `qbn-as-depthwise-conv`, `fuse/batchnorm.rs`), proves them over every input value, and builds
/// the QLinearConv.
fn build_depthwise(g: &Graph, m: &Match, (island, c): (Island, usize)) -> Result<Patch, Refusal> {
    let runs = evaluate(g, m, &island)?;
    let (dq, xp) = &island.dqs[0];
    let x = Q::new(xp.scale[0], xp.zero_point[0], xp.dtype).map_err(Refusal::new)?;
    let y = Q::new(island.y.scale[0], island.y.zero_point[0], island.y.dtype).map_err(Refusal::new)?;
    // One table per channel, or one for all.
    let tables = if island.channel.is_some() { c } else { 1 };
    let reference = |t: usize, q: i64| runs.reference[t * 256 + (q - x.lo) as usize];
    let mut found = Vec::with_capacity(tables);
    for t in 0..tables {
        let (a, b) = line(&runs.reference[t * 256..(t + 1) * 256], &x, &y);
        let channel = exact_channel_of(&x, &y, |d| reference(t, d + x.zp), a, b).ok_or_else(|| {
            let which = if tables == 1 { String::new() } else { format!(" in channel {t}") };
            Refusal::new(format!("no depthwise QLinearConv with |w| ≤ 127 computes the island exactly{which}"))
        })?;
        found.push(channel);
    }
    let table_of = |ch: usize| if tables == 1 { 0 } else { ch };
    let channels: Vec<DepthwiseChannel> = (0..c).map(|ch| found[table_of(ch)]).collect();
    let proofs = exact::depthwise(x, y, &channels, |ch, q| reference(table_of(ch), q)).map_err(Refusal::new)?;
    let off: usize = proofs.iter().map(|p| p.off).sum();
    ensure!(off == 0, "the depthwise QLinearConv rounds {off} inputs away from the exactly rounded result");
    let dq_node = g.node(*dq);
    let q = g.node(m.root());
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let params = [dq_node.input(0), dq_node.input(1), dq_node.input(2), q.input(1), q.input(2)];
    let mut p = Patch::new();
    let conv = add_depthwise_conv(&mut p, &out, island.name(g), &channels, island.rank, x.dtype, params, out.clone());
    p.replace(Outlet::new(m.root(), 0), conv);
    remove_island(&mut p, m, &island);
    Ok(p)
}

// ---- elementwise-table -----------------------------------------------------------------------

/// The table: the island's float32 result for every input, each judged against its reference; a
/// table with an entry off is refused.
fn table(g: &Graph, m: &Match, island: &Island) -> Result<Vec<i64>, Refusal> {
    let runs = evaluate(g, m, island)?;
    let y = &island.y;
    let (lo, hi) = y.dtype.int_range().expect("8-bit");
    let off = runs
        .out
        .iter()
        .zip(&runs.reference)
        .filter(|&(&q, &v)| judge(q, v, y.zero_point[0], lo, hi) == Judgement::Off)
        .count();
    ensure!(
        off == 0,
        "the island in float32 rounds {off} of {} inputs away from the exactly rounded result",
        runs.out.len()
    );
    Ok(runs.out)
}

fn build_table(g: &Graph, m: &Match, island: Island) -> Result<Patch, Refusal> {
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
    let gather = p.add(PatchNode::new(Op::Gather, [table, index]).named(island.name(g)).output(out));
    p.replace(Outlet::new(m.root(), 0), gather);
    remove_island(&mut p, m, &island);
    Ok(p)
}
