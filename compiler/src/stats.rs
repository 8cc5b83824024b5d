//! Op histogram and quantization summary of a model (`qdqc stats`).

use qdqc_ir::{Graph, Op};
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
    /// MAC-heavy ops still computing in float (Conv, ConvTranspose, MatMul, Gemm).
    pub float_compute: usize,
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
        integer_compute: 0,
    };
    // Counted by op, named once per op (a name per node was an allocation per node, twice per compile).
    let mut by_op: HashMap<&Op, usize> = HashMap::default();
    for id in graph.node_ids() {
        let op = &graph.node(id).op;
        if *op != Op::Input {
            *by_op.entry(op).or_default() += 1;
        }
    }
    for (op, n) in by_op {
        *s.ops.entry(op.to_string()).or_default() += n;
        s.quantize_linear += n * (*op == Op::QuantizeLinear) as usize;
        s.dequantize_linear += n * (*op == Op::DequantizeLinear) as usize;
        s.float_compute += n * op.is_float_compute() as usize;
        s.integer_compute += n * op.is_integer_compute() as usize;
    }
    s
}

impl Stats {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("stats serialize")
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
        writeln!(f, "float compute ops {}  integer compute ops {}", self.float_compute, self.integer_compute)?;
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
