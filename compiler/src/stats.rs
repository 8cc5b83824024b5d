//! Op histogram and quantization summary of a model (`qdqc stats`).

use qdqc_ir::{Graph, Op, OpKind};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Nodes per op (`domain.op` for ops outside the default domains), sorted by name.
    pub ops: BTreeMap<String, usize>,
    pub nodes: usize,
    pub constants: usize,
    pub inputs: usize,
    pub outputs: usize,
    pub quantize_linear: usize,
    pub dequantize_linear: usize,
    /// Ops computing in float: every op with a float output except QuantizeLinear,
    /// DequantizeLinear, Cast, Shape, Constant and data movement (Reshape, Transpose, MaxPool,
    /// nearest Resize, …): Conv, LayerNormalization, Erf, BatchNormalization, Softmax, Add, ….
    pub float_compute: usize,
    /// Of those, the multiply-accumulate-heavy ones (Conv, ConvTranspose, MatMul, Gemm).
    pub float_mac: usize,
    /// Integer compute ops (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, QLinear*, QGemm).
    pub integer_compute: usize,
}

pub fn stats(graph: &Graph) -> Stats {
    let mut s = Stats {
        ops: BTreeMap::new(),
        nodes: graph.op_count(),
        constants: graph.constants().count(),
        inputs: graph.inputs.len(),
        outputs: graph.outputs().len(),
        quantize_linear: 0,
        dequantize_linear: 0,
        float_compute: 0,
        float_mac: 0,
        integer_compute: 0,
    };
    // Counted by kind (an array) or, for the ops qdqc does not model, by op, and named once per
    // op, not once per node.
    let mut by_kind: Vec<Option<(&Op, usize)>> = vec![None; OpKind::COUNT];
    let mut other: HashMap<&Op, usize> = HashMap::default();
    for id in graph.node_ids() {
        let node = graph.node(id);
        match node.op.kind() {
            OpKind::Input => continue,
            OpKind::Other => *other.entry(&node.op).or_default() += 1,
            k => by_kind[k as usize].get_or_insert((&node.op, 0)).1 += 1,
        }
        if computes_in_float(node) {
            s.float_compute += 1;
            s.float_mac += node.op.is_mac_heavy() as usize;
        }
    }
    for (op, n) in by_kind.into_iter().flatten().chain(other) {
        *s.ops.entry(op.to_string()).or_default() += n;
        s.quantize_linear += n * (*op == Op::QuantizeLinear) as usize;
        s.dequantize_linear += n * (*op == Op::DequantizeLinear) as usize;
        s.integer_compute += n * op.is_integer_compute() as usize;
    }
    s
}

/// Whether a node does arithmetic on floats (see [`Stats::float_compute`]).
fn computes_in_float(node: &qdqc_ir::Node) -> bool {
    let moves = match node.op {
        Op::Resize => qdqc_ir::attr::str(&node.attrs, "mode").is_none_or(|m| m == "nearest"),
        ref op => op.is_data_movement(),
    };
    let no_arithmetic =
        matches!(node.op, Op::QuantizeLinear | Op::DequantizeLinear | Op::Cast | Op::Shape | Op::Constant | Op::Input);
    !moves && !no_arithmetic && node.outputs.iter().any(|v| v.ty.as_ref().is_some_and(|t| t.dtype.is_float()))
}

impl Stats {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("stats serialize")
    }
}

/// The `qdqc stats --json` document: [`stats`] and the [`predicted`] latency of `graph`, with
/// the `schema_version` (docs/json.md).
pub fn stats_json(graph: &Graph) -> String {
    let mut v = serde_json::to_value(stats(graph)).expect("stats serialize");
    v["predicted"] = serde_json::to_value(predicted(graph)).expect("prediction serializes");
    v["schema_version"] = crate::REPORT_SCHEMA_VERSION.into();
    serde_json::to_string_pretty(&v).expect("stats serialize") + "\n"
}

/// The latency the measured cost table predicts for a graph in onnxruntime, one thread.
#[derive(Clone, Debug, Serialize)]
pub struct Predicted {
    /// The table's name (`qdqc.cost_table` in compiled models).
    pub cost_table: &'static str,
    /// At ORT_ENABLE_ALL and at ORT_DISABLE_ALL, in milliseconds.
    pub all_ms: f64,
    pub disable_ms: f64,
}

pub fn predicted(graph: &Graph) -> Predicted {
    use qdqc_passes::cost::{table_name, Costs};
    use qdqc_passes::{Config, OrtLevel};
    let at = |ort_level| {
        let config = Config { ort_level, ..Config::default() };
        Costs::of(&config).of_graph(graph) / 1e6
    };
    Predicted { cost_table: table_name(), all_ms: at(OrtLevel::All), disable_ms: at(OrtLevel::DisableAll) }
}

impl fmt::Display for Predicted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "predicted onnxruntime latency, one thread: {:.3} ms at ORT_ENABLE_ALL, {:.3} ms at ORT_DISABLE_ALL (cost table {})",
            self.all_ms, self.disable_ms, self.cost_table
        )
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes {}  constants {}  inputs {}  outputs {}",
            self.nodes, self.constants, self.inputs, self.outputs
        )?;
        writeln!(f, "QuantizeLinear {}  DequantizeLinear {}", self.quantize_linear, self.dequantize_linear)?;
        writeln!(
            f,
            "float compute ops {} (Conv/MatMul/Gemm {})  integer compute ops {}",
            self.float_compute, self.float_mac, self.integer_compute
        )?;
        writeln!(f)?;
        let width = self.ops.keys().map(String::len).max().unwrap_or(0);
        let mut ops: Vec<_> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            writeln!(f, "{op:<width$}  {n:>6}")?;
        }
        Ok(())
    }
}
