//! `qdqc verify`: runs two models on the same seeded inputs with the reference interpreter and
//! compares every output and every tensor the two graphs share by name.
//!
//! Each tensor is judged on its own error: the second model runs with every tensor it shares
//! with the first *forced* to the first model's value (teacher forcing), so a node's result is
//! computed from the reference inputs, and only that node's own rounding counts. Rounding
//! differences of one step per layer otherwise compound through a deep network (onnxruntime's
//! own fusion moves ResNet outputs by 2–4 steps that way). The free-running, end-to-end
//! difference is measured too and reported beside it (`end_to_end_steps`), not judged.
//!
//! A tensor's *step* is its quantization step: the scale of the DequantizeLinear that produces it
//! or of the QuantizeLinear it feeds (per channel for per-axis scales), and 1 for integer tensors.
//! A tensor passes when its largest difference is at most [`MAX_STEPS`] steps. A float tensor with
//! no step (a float op's output that no Q reads) passes within a relative tolerance
//! [`FLOAT_RTOL`] of its largest magnitude (plus [`FLOAT_ATOL`]).

use qdqc_eval::exactness::{judge, Judgement};
use qdqc_eval::{Interpreter, RunOptions, Value};
use qdqc_ir::{DType, Dim, Graph, Op, Operand};
use serde::Serialize;
use std::collections::HashMap;

/// Largest allowed difference of a quantized tensor, in quantization steps.
pub const MAX_STEPS: f64 = 1.0;
/// Tolerance for float tensors without a quantization step: relative to the largest |value|.
pub const FLOAT_RTOL: f64 = 1e-4;
pub const FLOAT_ATOL: f64 = 1e-6;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Eval(#[from] qdqc_eval::EvalError),
    #[error("input '{name}': {msg}")]
    Input { name: String, msg: String },
    #[error("the models' inputs differ: {0}")]
    Interface(String),
}

/// How a tensor compared over all samples.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub is_output: bool,
    pub max_abs_diff: f64,
    /// Largest difference in quantization steps (`None` for float tensors without a step), each
    /// node computed from the first model's values of its inputs.
    pub max_steps: Option<f64>,
    /// The same, both models running freely from the graph inputs (errors compound): reported,
    /// not judged.
    pub end_to_end_steps: Option<f64>,
    pub end_to_end_abs_diff: f64,
    /// Share of elements bit-equal to the first model's.
    pub bit_equal: f64,
    /// For a tensor a QuantizeLinear of the first model makes: the elements judged against that
    /// Q's input in f64 ([`qdqc_eval::exactness`]), and how many of them are tie-ambiguous and
    /// off (0 when the tensor is not judged).
    pub judged: usize,
    pub tie_ambiguous: usize,
    pub off: usize,
    pub ok: bool,
    /// Why it could not be compared (dtype or shape differ), if so.
    pub mismatch: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub samples: usize,
    pub seed: u64,
    /// Outputs first, then shared tensors in the original graph's topological order.
    pub tensors: Vec<TensorReport>,
    pub passed: bool,
    /// The first tensor (in topological order) beyond tolerance.
    pub first_failure: Option<String>,
}

/// Inputs for one sample, by graph input name.
pub type Inputs = Vec<(String, Value)>;

/// Deterministic random inputs for every graph input: floats standard normal, integers uniform over
/// their type's range; symbolic and unknown dims take `dim`.
pub fn random_inputs(graph: &Graph, seed: u64, dim: usize) -> Result<Inputs, VerifyError> {
    random_inputs_with_limit(graph, seed, dim, qdqc_eval::DEFAULT_MAX_TENSOR_BYTES)
}

/// [`random_inputs`], refusing an input larger than `max_tensor_bytes` (counted as the
/// interpreter counts, at `qdqc_eval::BYTES_PER_ELEMENT` bytes per element) before making it.
pub fn random_inputs_with_limit(
    graph: &Graph,
    seed: u64,
    dim: usize,
    max_tensor_bytes: usize,
) -> Result<Inputs, VerifyError> {
    random_inputs_with_dists(graph, seed, dim, max_tensor_bytes, &[])
}

/// The distribution a random float input is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Dist {
    /// Standard normal (the default).
    Normal,
    /// Uniform over `[lo, hi)`.
    Uniform { lo: f64, hi: f64 },
}

impl Dist {
    /// `normal` or `uniform:LO,HI` (finite, `LO < HI`).
    pub fn parse(s: &str) -> Result<Dist, String> {
        if s == "normal" {
            return Ok(Dist::Normal);
        }
        let bad = || format!("'{s}' is not a distribution (expected normal or uniform:LO,HI with LO < HI)");
        let (lo, hi) = s.strip_prefix("uniform:").and_then(|r| r.split_once(',')).ok_or_else(bad)?;
        let (lo, hi): (f64, f64) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(bad());
        }
        Ok(Dist::Uniform { lo, hi })
    }
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dist::Normal => write!(f, "normal"),
            Dist::Uniform { lo, hi } => write!(f, "uniform:{lo},{hi}"),
        }
    }
}

/// [`random_inputs_with_limit`], drawing the float inputs named in `dists` from their
/// distribution (the others standard normal). A name that is not a float graph input is an error.
pub fn random_inputs_with_dists(
    graph: &Graph,
    seed: u64,
    dim: usize,
    max_tensor_bytes: usize,
    dists: &[(String, Dist)],
) -> Result<Inputs, VerifyError> {
    for (name, _) in dists {
        let ty = graph.inputs.iter().map(|&i| &graph.node(i).outputs[0]).find(|v| &v.name == name);
        match ty {
            None => {
                return Err(VerifyError::Input { name: name.clone(), msg: "the model has no such input".into() });
            }
            Some(v) if !v.ty.as_ref().is_some_and(|t| t.dtype.is_float()) => {
                return Err(VerifyError::Input {
                    name: name.clone(),
                    msg: "is not a float input; only float inputs take a distribution".into(),
                });
            }
            Some(_) => {}
        }
    }
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    for &id in &graph.inputs {
        let v = &graph.node(id).outputs[0];
        let err = |msg: &str| VerifyError::Input { name: v.name.clone(), msg: msg.to_string() };
        let ty = v.ty.as_ref().ok_or_else(|| err("has no tensor type"))?;
        let shape: Vec<usize> = ty
            .shape
            .as_ref()
            .ok_or_else(|| err("has unknown rank"))?
            .iter()
            .map(|d| match d {
                Dim::Known(k) => usize::try_from(*k).map_err(|_| err(&format!("has a negative dimension {k}"))),
                _ => Ok(dim),
            })
            .collect::<Result<_, _>>()?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|n| n.checked_mul(qdqc_eval::BYTES_PER_ELEMENT).is_some_and(|b| b <= max_tensor_bytes))
            .ok_or_else(|| {
                err(&format!(
                    "shape {shape:?} exceeds the limit of {max_tensor_bytes} bytes per tensor \
                     (counted at {} bytes per element)",
                    qdqc_eval::BYTES_PER_ELEMENT
                ))
            })?;
        let value = if ty.dtype.is_float() {
            let dist = dists.iter().find(|(name, _)| name == &v.name).map_or(Dist::Normal, |(_, d)| *d);
            let data: Vec<f64> = match dist {
                Dist::Normal => (0..n).map(|_| rng.normal()).collect(),
                Dist::Uniform { lo, hi } => (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect(),
            };
            Value::from_f64(ty.dtype, &shape, &data)
        } else if let Some((lo, hi)) = ty.dtype.int_range().or((ty.dtype == DType::Bool).then_some((0, 1))) {
            let span = (hi - lo + 1) as u64;
            let data: Vec<i64> = (0..n).map(|_| lo + (rng.next() % span) as i64).collect();
            Value::from_i64(ty.dtype, &shape, &data)
        } else {
            return Err(err(&format!("random {} inputs are not supported", ty.dtype)));
        };
        out.push((v.name.clone(), value.map_err(|e| err(&e.to_string()))?));
    }
    Ok(out)
}

/// The per-tensor (scale bits, zero point) of each integer value with a quantization annotation,
/// by name: a pass may move a value to another integer type with a shifted zero point (int8 `q`
/// with `z` holds the same reals as uint8 `q + 128` with `z + 128`).
pub(crate) fn int_params(graph: &Graph) -> HashMap<String, (u32, i64)> {
    let mut out = HashMap::new();
    for id in graph.node_ids() {
        for v in &graph.node(id).outputs {
            let Some(q) = v.quant.as_ref().filter(|q| q.axis.is_none() && q.block_size.is_none()) else { continue };
            let scale = graph.constant(q.scale).tensor().and_then(|t| t.to_f32().ok()).filter(|s| s.len() == 1);
            let zp = match q.zero_point {
                Some(z) => graph.constant(z).tensor().and_then(|t| t.to_i64().ok()).filter(|z| z.len() == 1),
                None => Some(vec![0]),
            };
            if let (Some(s), Some(z)) = (scale, zp) {
                out.insert(v.name.clone(), (s[0].to_bits(), z[0]));
            }
        }
    }
    out
}

/// `v` (an integer value with zero point `from`) as `dtype` with zero point `to`: `v - from + to`.
fn shift(v: &Value, dtype: DType, from: i64, to: i64) -> Option<Value> {
    let data: Vec<i64> = v.to_i64_vec().ok()?.into_iter().map(|x| x - from + to).collect();
    Value::from_i64(dtype, v.shape(), &data).ok()
}

/// The quantization step of each float value that a DQ produces or a Q reads, by name, as one
/// scale per channel along `axis` (a single scale for per-tensor).
fn steps(graph: &Graph) -> HashMap<String, (Vec<f64>, Option<usize>)> {
    let mut steps = HashMap::new();
    let scale_of = |id| {
        let n = graph.node(id);
        let scale = graph.const_tensor(n.input(1))?.to_f32().ok()?;
        let axis = (scale.len() > 1).then(|| qdqc_ir::attr::int(&n.attrs, "axis").unwrap_or(1));
        Some((scale.into_iter().map(f64::from).collect::<Vec<_>>(), axis))
    };
    for id in graph.node_ids() {
        let node = graph.node(id);
        let (value, found) = match node.op {
            Op::DequantizeLinear => (graph.operand_name(Operand::Value(qdqc_ir::Outlet::new(id, 0))), scale_of(id)),
            Op::QuantizeLinear => (graph.operand_name(node.input(0)), scale_of(id)),
            _ => continue,
        };
        if let Some((scale, axis)) = found {
            let rank = graph.operand_type(node.input(0)).and_then(|t| t.rank()).unwrap_or(0) as i64;
            let axis = axis.map(|a| if a < 0 { a + rank } else { a } as usize);
            steps.entry(value.to_string()).or_insert((scale, axis));
        }
    }
    steps
}

/// A QuantizeLinear of the first model with constant parameters: the float value it reads, its
/// scale and zero point per channel along `axis` (one each per tensor), its type's range.
#[derive(Clone)]
struct Quantizer {
    input: String,
    scale: Vec<f64>,
    zero_point: Vec<i64>,
    axis: Option<usize>,
    lo: i64,
    hi: i64,
}

/// The quantizers of `graph`, by the name of the value each makes.
fn quantizers(graph: &Graph) -> HashMap<String, Quantizer> {
    let mut out = HashMap::new();
    for id in graph.node_ids() {
        let n = graph.node(id);
        if n.op != Op::QuantizeLinear || qdqc_ir::attr::int(&n.attrs, "block_size").unwrap_or(0) > 0 {
            continue;
        }
        let Some(scale) = graph.const_tensor(n.input(1)).and_then(|t| t.to_f32().ok()) else { continue };
        let zero_point = match n.input(2) {
            Operand::None => vec![0; scale.len()],
            z => match graph.const_tensor(z).and_then(|t| t.to_i64().ok()) {
                Some(z) => z,
                None => continue,
            },
        };
        let Some((lo, hi)) = n.outputs[0].ty.as_ref().and_then(|t| t.dtype.int_range()) else { continue };
        if zero_point.len() != scale.len() || scale.is_empty() {
            continue;
        }
        let rank = graph.operand_type(n.input(0)).and_then(|t| t.rank()).unwrap_or(0) as i64;
        let axis = (scale.len() > 1).then(|| {
            let a = qdqc_ir::attr::int(&n.attrs, "axis").unwrap_or(1);
            (if a < 0 { a + rank } else { a }) as usize
        });
        let q = Quantizer {
            input: graph.operand_name(n.input(0)).to_string(),
            scale: scale.into_iter().map(f64::from).collect(),
            zero_point,
            axis,
            lo,
            hi,
        };
        out.insert(n.outputs[0].name.clone(), q);
    }
    out
}

/// The channel of element `i` of a tensor of `shape` along `axis` (0 per tensor).
fn channel(shape: &[usize], axis: Option<usize>, i: usize) -> usize {
    match axis {
        Some(ax) if ax < shape.len() => {
            let inner: usize = shape[ax + 1..].iter().product();
            (i / inner.max(1)) % shape[ax].max(1)
        }
        _ => 0,
    }
}

struct Acc {
    report: TensorReport,
    step: Option<(Vec<f64>, Option<usize>)>,
    max_ref: f64,
    bit_equal: usize,
    total: usize,
    /// Some element moved more than [`MAX_STEPS`] steps (with [`within_steps`]' rounding slack).
    beyond: bool,
}

/// Whether `p` and `q` (f32 values widened to f64) are at most [`MAX_STEPS`] steps of size `step`
/// apart. Two dequantized values `(q - zp) * s` one step apart are each rounded to f32, so their
/// difference may exceed `s` by an ulp of the values: 2 ulps of the larger magnitude are allowed.
pub fn within_steps(p: f64, q: f64, step: f64) -> bool {
    let slack = 2.0 * f64::from(f32::EPSILON) * p.abs().max(q.abs());
    (p - q).abs() <= MAX_STEPS * step + slack
}

impl Acc {
    fn add(&mut self, a: &Value, b: &Value) {
        if a.dtype() != b.dtype() || a.shape() != b.shape() {
            self.report.mismatch = Some(format!(
                "{}{:?} in the first model, {}{:?} in the second",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ));
            return;
        }
        let (Ok(x), Ok(y)) = (a.to_f64_vec(), b.to_f64_vec()) else {
            self.report.mismatch = Some(format!("{} values cannot be compared", a.dtype()));
            return;
        };
        let shape = a.shape();
        let integer = a.dtype().is_int() || a.dtype() == DType::Bool;
        for (i, (&p, &q)) in x.iter().zip(&y).enumerate() {
            let same = p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
            self.bit_equal += same as usize;
            let d = if same { 0.0 } else { (p - q).abs() };
            let d = if d.is_nan() { f64::INFINITY } else { d };
            self.report.max_abs_diff = self.report.max_abs_diff.max(d);
            self.max_ref = self.max_ref.max(p.abs());
            let step = if integer {
                Some(1.0)
            } else {
                self.step.as_ref().map(|(scales, axis)| scales[channel(shape, *axis, i).min(scales.len() - 1)])
            };
            if let Some(s) = step {
                let steps = if d == 0.0 { 0.0 } else { d / s };
                self.report.max_steps = Some(self.report.max_steps.unwrap_or(0.0).max(steps));
                self.beyond |= !(d == 0.0 || if integer { d <= MAX_STEPS } else { within_steps(p, q, s) });
            }
        }
        self.total += x.len();
    }

    /// Judges the second model's integer value `b` against the reference value of quantizer `q`
    /// whose float input is `x` (same shape).
    fn judge(&mut self, b: &Value, x: &Value, q: &Quantizer) {
        let (Ok(b), Ok(x)) = (b.to_i64_vec(), x.to_f64_vec()) else { return };
        if b.len() != x.len() {
            return;
        }
        let shape = &self.report.shape;
        for (i, (&r, &x)) in b.iter().zip(&x).enumerate() {
            let c = channel(shape, q.axis, i).min(q.scale.len() - 1);
            match judge(r, x / q.scale[c], q.zero_point[c], q.lo, q.hi) {
                Judgement::Exact => {}
                Judgement::Tie => self.report.tie_ambiguous += 1,
                Judgement::Off => self.report.off += 1,
            }
        }
        self.report.judged += b.len();
    }

    fn finish(mut self) -> TensorReport {
        self.report.bit_equal = if self.total == 0 { 1.0 } else { self.bit_equal as f64 / self.total as f64 };
        self.report.ok = self.report.mismatch.is_none()
            && match self.report.max_steps {
                Some(_) => !self.beyond,
                None => self.report.max_abs_diff <= FLOAT_ATOL + FLOAT_RTOL * self.max_ref,
            };
        self.report
    }
}

/// Runs both graphs on `samples` and compares them.
pub fn verify(
    orig: &Graph,
    compiled: &Graph,
    samples: &[Inputs],
    seed: u64,
    progress: &dyn Fn(usize),
) -> Result<VerifyReport, VerifyError> {
    verify_with_limit(orig, compiled, samples, seed, qdqc_eval::DEFAULT_MAX_TENSOR_BYTES, progress)
}

/// [`verify`] with the interpreter's per-tensor limit (see `qdqc_eval::RunOptions::max_tensor_bytes`).
pub fn verify_with_limit(
    orig: &Graph,
    compiled: &Graph,
    samples: &[Inputs],
    seed: u64,
    max_tensor_bytes: usize,
    progress: &dyn Fn(usize),
) -> Result<VerifyReport, VerifyError> {
    let names = |g: &Graph| g.inputs.iter().map(|&i| g.node(i).outputs[0].name.clone()).collect::<Vec<_>>();
    if names(orig) != names(compiled) {
        return Err(VerifyError::Interface(format!("{:?} vs {:?}", names(orig), names(compiled))));
    }
    let (ia, ib) =
        (Interpreter::with_limit(orig, max_tensor_bytes)?, Interpreter::with_limit(compiled, max_tensor_bytes)?);
    let keep_all = RunOptions { max_tensor_bytes: Some(max_tensor_bytes), ..RunOptions::keep_all() };
    let steps = steps(orig);
    let quantizers = quantizers(orig);
    // Integer tensors that changed type with their zero point (same scale): compared and forced
    // through the zero points. A compiled value without an annotation (a table lookup's output)
    // that int8-to-uint8 moved between int8 and uint8 moved by 128, the one retyping it makes.
    let (pa, pb) = (int_params(orig), int_params(compiled));
    let dtype = |g: &Graph, name: &str| g.lookup(name).and_then(|o| g.operand_type(o)).map(|t| t.dtype);
    let retyped: HashMap<String, (i64, i64)> = pa
        .iter()
        .filter_map(|(name, &(sa, za))| match pb.get(name) {
            Some(&(sb, zb)) => (sb == sa).then(|| (name.clone(), (za, zb))),
            None => match (dtype(orig, name), dtype(compiled, name)) {
                (Some(DType::I8), Some(DType::U8)) => Some((name.clone(), (za, za + 128))),
                (Some(DType::U8), Some(DType::I8)) => Some((name.clone(), (za, za - 128))),
                _ => None,
            },
        })
        .filter(|(_, (za, zb))| za != zb)
        .collect();
    let outputs: Vec<String> = orig.outputs().iter().map(|o| o.name().to_string()).collect();
    let mut order: Vec<String> = outputs.clone();
    for id in orig.topo_order().map_err(qdqc_eval::EvalError::from)? {
        for v in &orig.node(id).outputs {
            if !v.name.is_empty() && !outputs.contains(&v.name) {
                order.push(v.name.clone());
            }
        }
    }
    // Per tensor: the forced (judged) and the free-running comparison.
    let mut accs: Vec<Option<(Acc, Acc)>> = order.iter().map(|_| None).collect();
    for (k, inputs) in samples.iter().enumerate() {
        let ra = ia.run(inputs, &keep_all)?;
        let free = ib.run(inputs, &keep_all)?;
        let mut reference = ra.values.clone();
        reference.extend(ra.outputs.iter().cloned());
        let compiled_dtype = |name: &str| compiled.lookup(name).and_then(|o| compiled.operand_type(o)).map(|t| t.dtype);
        for (name, &(za, zb)) in &retyped {
            let (Some(v), Some(dt)) = (reference.get(name), compiled_dtype(name)) else { continue };
            if let Some(shifted) = shift(v, dt, za, zb) {
                reference.insert(name.clone(), shifted);
            }
        }
        let forced = RunOptions { forced: Some(std::sync::Arc::new(reference)), ..keep_all.clone() };
        let rf = ib.run(inputs, &forced)?;
        let get = |r: &qdqc_eval::RunResult, name: &str| r.output(name).or_else(|| r.values.get(name)).cloned();
        for (slot, name) in order.iter().enumerate() {
            let (Some(a), Some(mut b), Some(mut c)) = (get(&ra, name), get(&rf, name), get(&free, name)) else {
                continue;
            };
            if let Some(&(za, zb)) = retyped.get(name) {
                // Back into the first model's type and zero point.
                if let (Some(b2), Some(c2)) = (shift(&b, a.dtype(), zb, za), shift(&c, a.dtype(), zb, za)) {
                    (b, c) = (b2, c2);
                }
            }
            let (local, e2e) = accs[slot].get_or_insert_with(|| {
                let acc = || Acc {
                    report: TensorReport {
                        name: name.clone(),
                        dtype: a.dtype().to_string(),
                        shape: a.shape().to_vec(),
                        is_output: outputs.contains(name),
                        max_abs_diff: 0.0,
                        max_steps: None,
                        end_to_end_steps: None,
                        end_to_end_abs_diff: 0.0,
                        bit_equal: 0.0,
                        judged: 0,
                        tie_ambiguous: 0,
                        off: 0,
                        ok: false,
                        mismatch: None,
                    },
                    step: steps.get(name).cloned(),
                    max_ref: 0.0,
                    bit_equal: 0,
                    total: 0,
                    beyond: false,
                };
                (acc(), acc())
            });
            local.add(&a, &b);
            e2e.add(&a, &c);
            if let Some(q) = quantizers.get(name) {
                if let Some(x) = ra.values.get(&q.input).or_else(|| ra.output(&q.input)) {
                    if local.report.mismatch.is_none() {
                        local.judge(&b, x, q);
                    }
                }
            }
        }
        progress(k + 1);
    }
    let tensors: Vec<TensorReport> = accs
        .into_iter()
        .flatten()
        .map(|(local, e2e)| {
            let e2e = e2e.finish();
            TensorReport { end_to_end_steps: e2e.max_steps, end_to_end_abs_diff: e2e.max_abs_diff, ..local.finish() }
        })
        .collect();
    // The first failure in topological order, outputs judged with the rest.
    let topo_first = order
        .iter()
        .skip(outputs.len())
        .chain(outputs.iter())
        .find_map(|name| tensors.iter().find(|t| &t.name == name && !t.ok).map(|t| t.name.clone()));
    Ok(VerifyReport { samples: samples.len(), seed, passed: topo_first.is_none(), first_failure: topo_first, tensors })
}

impl VerifyReport {
    /// The `qdqc verify --json` document: the report with its `schema_version` (docs/json.md).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("report serializes");
        v["schema_version"] = crate::REPORT_SCHEMA_VERSION.into();
        serde_json::to_string_pretty(&v).expect("report serializes") + "\n"
    }

    /// A table: one row per compared tensor (all failures, and the outputs).
    pub fn table(&self, all: bool) -> String {
        let mut s = format!(
            "{:<48} {:>10} {:>12} {:>9} {:>8} {:>7} {:>7} {:>11}  {}\n",
            "tensor", "dtype", "max |diff|", "steps", "bit-eq", "ties", "off", "end-to-end", "result"
        );
        let share = |n: usize, of: usize| {
            if of == 0 {
                "-".to_string()
            } else {
                format!("{:.2}%", 100.0 * n as f64 / of as f64)
            }
        };
        for t in self.tensors.iter().filter(|t| all || t.is_output || !t.ok) {
            let steps = t.max_steps.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            let e2e = t
                .end_to_end_steps
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| format!("{:.2e}", t.end_to_end_abs_diff));
            let result = match (&t.mismatch, t.ok) {
                (Some(m), _) => format!("MISMATCH: {m}"),
                (None, true) => "ok".into(),
                (None, false) => "FAIL".into(),
            };
            let name = if t.is_output { format!("{} (output)", t.name) } else { t.name.clone() };
            s += &format!(
                "{:<48} {:>10} {:>12.6e} {:>9} {:>7.2}% {:>7} {:>7} {:>11}  {}\n",
                name,
                t.dtype,
                t.max_abs_diff,
                steps,
                100.0 * t.bit_equal,
                share(t.tie_ambiguous, t.judged),
                share(t.off, t.judged),
                e2e,
                result
            );
        }
        let failed = self.tensors.iter().filter(|t| !t.ok).count();
        s += &format!(
            "{} tensors compared over {} samples (seed {}): {} within tolerance, {} beyond",
            self.tensors.len(),
            self.samples,
            self.seed,
            self.tensors.len() - failed,
            failed
        );
        let (judged, ties, off) =
            self.tensors.iter().fold((0, 0, 0), |(j, t, o), r| (j + r.judged, t + r.tie_ambiguous, o + r.off));
        if judged > 0 {
            s += &format!("; of {judged} quantized elements, {ties} tie-ambiguous and {off} off");
        }
        if let Some(f) = &self.first_failure {
            s += &format!("; first tensor beyond tolerance: '{f}'");
        }
        s + "\n"
    }
}

/// SplitMix64: a tiny, well-known generator whose sequence is fixed forever (a crate's `StdRng`
/// may change between versions, and seeded inputs must stay reproducible).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_between_rounded_dequantized_values_is_within_tolerance() {
        // Find dequantized values (k+1)*s and k*s (each rounded to f32) whose difference exceeds s.
        let s = 0.1f32;
        let (k, p, q) = (0..100_000)
            .map(|k| (k, f64::from((k + 1) as f32 * s), f64::from(k as f32 * s)))
            .find(|&(_, p, q)| (p - q) / f64::from(s) > 1.0)
            .expect("rounding makes some one-step difference exceed the step");
        assert!(within_steps(p, q, f64::from(s)), "k = {k}: one step apart");
        let two = f64::from((k + 2) as f32 * s);
        assert!(!within_steps(two, q, f64::from(s)), "two steps apart must fail");
    }

    #[test]
    fn distributions_parse_and_draw_within_their_range() {
        assert_eq!(Dist::parse("normal"), Ok(Dist::Normal));
        assert_eq!(Dist::parse("uniform:-1,2.5"), Ok(Dist::Uniform { lo: -1.0, hi: 2.5 }));
        for bad in ["uniform:2,1", "uniform:1", "uniform:a,b", "gauss", "uniform:0,inf"] {
            assert!(Dist::parse(bad).is_err(), "{bad}");
        }
        let g = qdqc_ir::text::parse("graph {\n  input %x: f32[64]\n  %y = Relu(%x)\n  output %y\n}\n").unwrap();
        let dists = [("x".to_string(), Dist::Uniform { lo: 2.0, hi: 3.0 })];
        let x = random_inputs_with_dists(&g, 1, 1, usize::MAX, &dists).unwrap();
        assert!(x[0].1.to_f64_vec().unwrap().iter().all(|&v| (2.0..3.0).contains(&v)));
        // Normal is what random_inputs draws.
        let n = random_inputs_with_dists(&g, 1, 1, usize::MAX, &[("x".into(), Dist::Normal)]).unwrap();
        assert_eq!(n[0].1.to_f64_vec().unwrap(), random_inputs(&g, 1, 1).unwrap()[0].1.to_f64_vec().unwrap());
        let e = random_inputs_with_dists(&g, 1, 1, usize::MAX, &[("z".into(), Dist::Normal)]).unwrap_err();
        assert!(e.to_string().contains("input 'z'"), "{e}");
    }

    #[test]
    fn splitmix_is_fixed() {
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xe220_a839_7b1d_cdaf);
    }

    fn run(a: &str, b: &str) -> VerifyReport {
        let (a, b) = (qdqc_ir::text::parse(a).unwrap(), qdqc_ir::text::parse(b).unwrap());
        let samples: Vec<Inputs> = (0..3).map(|k| random_inputs(&a, k, 2).unwrap()).collect();
        verify(&a, &b, &samples, 0, &|_| {}).unwrap()
    }

    #[test]
    fn an_int8_tensor_moved_to_uint8_with_its_zero_point_compares_equal() {
        let i8 = "graph {\n  input %x: f32[8]\n  const %s: f32[] 0.05\n  const %z: i8[] 3\n  %q = QuantizeLinear(%x, %s, %z)\n  %m = MaxPool[kernel_shape=[1]](%q)\n  %y = DequantizeLinear(%m, %s, %z)\n  output %y\n}\n";
        let u8 = i8.replace("const %z: i8[] 3", "const %z: u8[] 131");
        let r = run(
            &i8.replace("MaxPool[kernel_shape=[1]]", "Identity"),
            &u8.replace("MaxPool[kernel_shape=[1]]", "Identity"),
        );
        assert!(r.passed, "{}", r.table(true));
        let q = r.tensors.iter().find(|t| t.name == "q").expect("q is compared");
        assert_eq!((q.max_steps, q.bit_equal, q.judged, q.off), (Some(0.0), 1.0, 3 * 8, 0));
        // A real difference still shows: a dequantization zero point two steps off.
        let off = i8.replace("MaxPool[kernel_shape=[1]]", "Identity");
        let bad = u8
            .replace("MaxPool[kernel_shape=[1]]", "Identity")
            .replace("%y = DequantizeLinear(%m, %s, %z)", "%y = DequantizeLinear(%m, %s2, %z2)")
            .replace("const %z: u8[] 131", "const %z: u8[] 131\n  const %s2: f32[] 0.05\n  const %z2: u8[] 129");
        let r = run(&off, &bad);
        assert!(!r.passed, "{}", r.table(true));
    }

    /// A quantized tensor one step away from the reference where the Q's input lies near a
    /// rounding boundary: within the one-step tolerance, and judged off; one computed from a
    /// value within the tie tolerance of a tie is tie-ambiguous, not off.
    #[test]
    fn quantized_elements_are_judged_exact_tie_or_off() {
        let orig = "graph {\n  input %x: f32[64]\n  const %s: f32[] 0.125\n  const %z: u8[] 128\n  %q = QuantizeLinear(%x, %s, %z)\n  output %q\n}\n";
        let shifted = |d: &str| {
            orig.replace(
                "  %q = QuantizeLinear(%x, %s, %z)",
                &format!("  const %d: f32[] {d}\n  %x2 = Add(%x, %d)\n  %q = QuantizeLinear(%x2, %s, %z)"),
            )
        };
        let r = run(orig, &shifted("0.05"));
        let q = &r.tensors[0];
        assert!(r.passed && q.max_steps == Some(1.0), "{}", r.table(true));
        assert!(q.off > 0 && q.judged == 3 * 64, "{}", r.table(true));
        assert!(r.table(true).contains(&format!("{} off", q.off)));
        let r = run(orig, &shifted("0.00001"));
        let q = &r.tensors[0];
        assert_eq!(q.off, 0, "{}", r.table(true));
        let r = run(orig, orig);
        assert_eq!((r.tensors[0].off, r.tensors[0].tie_ambiguous), (0, 0));
    }
}
