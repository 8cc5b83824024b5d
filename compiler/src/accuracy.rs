//! `qdqc accuracy`: how far a QDQ model (and, optionally, the model compiled from it) is from the
//! float model it was quantized from, measured on the graph outputs with the reference
//! interpreter.
//!
//! Every model runs on the same samples (given ones, [`crate::inputs`], or seeded random ones);
//! samples run in parallel. Outputs are matched by name and must be float in every model. For
//! each output and each model pair (QDQ vs float, compiled vs float), pooled over all samples and
//! elements, with `r` the float model's values and `x` the other model's (both widened to f64):
//! - SQNR in dB: `10·log10(Σr² / Σ(r−x)²)`; `+inf` when `x` equals `r` everywhere, `-inf` when
//!   `r` is all zero and `x` is not;
//! - cosine similarity: `Σr·x / √(Σr²·Σx²)` (1 when both are all zero, 0 when one is);
//! - largest and mean absolute error `|r−x|`;
//! - with top-k, for outputs whose last dimension is larger than 1, each row along the last
//!   dimension: top-1, the share of rows whose argmax equals the float model's argmax, and top-5,
//!   the share of rows where the float model's argmax is among the other model's 5 largest.
//!   Ties rank by index (the first of equal values ranks higher), as numpy's `argmax` does.

use crate::inputs::{self, Sample};
use crate::verify::{self, Dist, Inputs, VerifyError};
use crate::Error;
use qdqc_eval::{Interpreter, RunOptions, Value};
use qdqc_ir::onnx::LoadOptions;
use qdqc_ir::{Dim, Graph, TensorType};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The version of the JSON report's layout ([`AccuracyReport`]).
pub const SCHEMA_VERSION: u32 = 2;

/// How many of the largest values the top-5 agreement looks at.
pub const TOP_K: usize = 5;

/// The samples to run.
#[derive(Clone, Debug)]
pub enum Samples {
    /// Samples read from the files in `dir` ([`inputs::read_dir`]).
    Files { dir: PathBuf, samples: Vec<Sample> },
    /// `count` seeded random samples (sample `k` drawn with seed `seed + k`, as `verify` draws
    /// them): floats standard normal unless `dists` names another distribution for the input;
    /// symbolic and unknown dims take `dim`.
    Random { count: usize, seed: u64, dim: usize, dists: Vec<(String, Dist)> },
}

impl Samples {
    /// The samples' inputs for `graph` (read from `path`): the files' values, each checked
    /// against the graph's inputs, or the random ones drawn. `what` names the command in the
    /// error for no samples.
    pub fn inputs(
        &self,
        graph: &Graph,
        path: &Path,
        limit: usize,
        what: &str,
    ) -> Result<(Vec<Inputs>, InputsInfo), Error> {
        let none = || Error::Usage(format!("{what} needs at least one sample"));
        match self {
            Samples::Files { dir, samples } => {
                if samples.is_empty() {
                    return Err(none());
                }
                for s in samples {
                    inputs::check_sample(graph, s)?;
                }
                let info = InputsInfo::Files { path: dir.display().to_string() };
                Ok((samples.iter().map(|s| s.inputs.clone()).collect(), info))
            }
            Samples::Random { count, seed, dim, dists } => {
                if *count == 0 {
                    return Err(none());
                }
                let samples = (0..*count)
                    .map(|k| verify::random_inputs_with_dists(graph, seed.wrapping_add(k as u64), *dim, limit, dists))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| Error::Run { path: path.to_path_buf(), error })?;
                Ok((samples, InputsInfo::Random { seed: *seed, dim: *dim, dists: dists.clone() }))
            }
        }
    }
}

/// What `accuracy` runs and measures.
#[derive(Clone, Debug)]
pub struct AccuracyOptions {
    pub samples: Samples,
    /// Also measure top-1 and top-5 agreement.
    pub topk: bool,
    /// Also measure every quantized tensor that stands for a float tensor ([`LayerReport`]).
    pub layers: bool,
    /// Also measure each model's task accuracy against these labels ([`TaskAccuracy`]).
    pub labels: Option<Labels>,
    /// The interpreter's per-tensor limit (`None`: `qdqc_eval::DEFAULT_MAX_TENSOR_BYTES`).
    pub max_tensor_bytes: Option<usize>,
}

/// A model and the path that names it in errors and in the report.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    pub path: &'a Path,
    pub graph: &'a Graph,
}

/// The metrics of one model pair on one output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Signal-to-quantization-noise ratio in dB; serialized as a number, or the string `"inf"`
    /// (`"-inf"`) when infinite, or `null` when undefined (NaN in an output).
    #[serde(serialize_with = "ser_db")]
    pub sqnr_db: f64,
    pub cosine: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// Share of rows whose argmax agrees (with top-k, for outputs whose last dim is > 1).
    pub top1: Option<f64>,
    /// Share of rows whose float argmax is among the 5 largest.
    pub top5: Option<f64>,
    /// The number of rows the top-k shares count.
    pub rows: Option<usize>,
}

fn ser_db<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_none()
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(*v)
    }
}

fn ser_db_opt<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_db(v, s),
        None => s.serialize_none(),
    }
}

/// One graph output's metrics for each model pair.
#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    pub name: String,
    /// The output's shape in the first sample.
    pub shape: Vec<usize>,
    /// Elements compared per model pair, over all samples.
    pub elements: usize,
    /// The QDQ model against the float model.
    pub qdq: Metrics,
    /// The compiled model against the float model (when one is given).
    pub compiled: Option<Metrics>,
}

/// Where the samples came from.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum InputsInfo {
    /// Read from `path` ([`inputs::read_dir`]).
    Files { path: String },
    /// Seeded random samples; `dists` lists the inputs not drawn standard normal.
    Random { seed: u64, dim: usize, dists: Vec<(String, Dist)> },
}

/// The result of [`accuracy`] (`qdqc accuracy --json` writes it as is).
#[derive(Clone, Debug, Serialize)]
pub struct AccuracyReport {
    pub schema_version: u32,
    pub float_model: String,
    pub qdq_model: String,
    pub compiled_model: Option<String>,
    pub samples: usize,
    pub inputs: InputsInfo,
    pub topk: bool,
    /// In the float model's output order.
    pub outputs: Vec<OutputReport>,
    /// With labels: each model's task accuracy on the first output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskAccuracy>,
    /// With `layers`: every QuantizeLinear of the QDQ model whose input the float model also
    /// computes, in the QDQ model's topological order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerReport>>,
    /// With `layers`: three tensors kept in float together — chosen greedily among the
    /// best-ranked — against three seeded random triples of the tensors that can be kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_float_check: Option<KeepFloatCheck>,
}

/// The share of the first output's rows whose largest value is at the labelled class.
#[derive(Clone, Debug, Serialize)]
pub struct TaskAccuracy {
    /// The labels file.
    pub labels: String,
    /// Rows judged (one label each).
    pub rows: usize,
    pub float: f64,
    pub qdq: f64,
    pub compiled: Option<f64>,
}

/// Labels for `--labels`: one class index per row of the first output, over the samples in order.
#[derive(Clone, Debug)]
pub struct Labels {
    pub path: PathBuf,
    pub classes: Vec<usize>,
}

impl Labels {
    /// Reads a text file with one non-negative integer per line (blank lines and `#` comments
    /// skipped); an error names the file and the line.
    pub fn read(path: &Path) -> Result<Labels, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::File { path: path.to_path_buf(), msg: e.to_string() })?;
        let mut classes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.split('#').next().unwrap_or("").trim();
            if t.is_empty() {
                continue;
            }
            let c = t.parse::<usize>().map_err(|_| Error::File {
                path: path.to_path_buf(),
                msg: format!("line {}: '{t}' is not a class index (a non-negative integer)", i + 1),
            })?;
            classes.push(c);
        }
        if classes.is_empty() {
            return Err(Error::File { path: path.to_path_buf(), msg: "holds no labels".into() });
        }
        Ok(Labels { path: path.to_path_buf(), classes })
    }
}

/// How many of the best-ranked tensors the greedy choice of three to keep in float looks at.
const GREEDY_POOL: usize = 8;

/// Runs a closure when dropped (a progress step counted however its scope is left).
struct OnDrop<F: Fn()>(F);

impl<F: Fn()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// One sample's results per output: its shape, the QDQ model's and the compiled model's sums.
type PerOutput = Vec<(Vec<usize>, Acc, Option<Acc>)>;
/// One sample's [`PerOutput`] and, with labels, the predicted class of each row of the first
/// output (float, QDQ, compiled).
type PerSample = (PerOutput, Option<[Vec<usize>; 3]>);

/// The index of the largest value of each `width`-wide row (the first on ties; NaN never wins).
fn argmax_rows(v: &[f64], width: usize) -> Vec<usize> {
    v.chunks(width.max(1))
        .map(|row| row.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0)
        .collect()
}

fn task_accuracy(labels: &Labels, per_sample: &[PerSample], compiled: bool) -> Result<TaskAccuracy, Error> {
    let mut predicted: [Vec<usize>; 3] = Default::default();
    for (_, classes) in per_sample {
        if let Some(c) = classes {
            for (all, mine) in predicted.iter_mut().zip(c) {
                all.extend(mine);
            }
        }
    }
    let rows = predicted[0].len();
    if labels.classes.len() != rows {
        return Err(Error::Mismatch {
            path: labels.path.clone(),
            msg: format!(
                "holds {} labels; the first output has {rows} rows over the {} samples (one label per row)",
                labels.classes.len(),
                per_sample.len()
            ),
        });
    }
    let share = |p: &[usize]| p.iter().zip(&labels.classes).filter(|(a, b)| a == b).count() as f64 / rows as f64;
    Ok(TaskAccuracy {
        labels: labels.path.display().to_string(),
        rows,
        float: share(&predicted[0]),
        qdq: share(&predicted[1]),
        compiled: compiled.then(|| share(&predicted[2])),
    })
}

/// Output SQNR against the float model (pooled over outputs and samples) with some tensors kept
/// in float.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    pub tensors: Vec<String>,
    #[serde(serialize_with = "ser_db")]
    pub sqnr_db: f64,
}

/// Whether the three tensors the ranking points to buy more than three picked at random.
#[derive(Clone, Debug, Serialize)]
pub struct KeepFloatCheck {
    /// The QDQ model as it is.
    #[serde(serialize_with = "ser_db")]
    pub base_db: f64,
    /// The first-ranked tensor, then each next one (among the 8 best-ranked) that gives the
    /// highest SQNR kept with those before it.
    pub top3: Kept,
    /// Three triples drawn with a fixed seed.
    pub random3: Vec<Kept>,
}

/// A tensor the QDQ model quantizes (the input of one of its QuantizeLinear nodes) that the
/// float model computes under the same name, measured against the float model's value.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// The tensor's name in both models.
    pub tensor: String,
    /// The op that computes it (`input` for a graph input).
    pub op: String,
    pub elements: usize,
    /// The dequantized tensor (after its QuantizeLinear → DequantizeLinear) in the quantized run:
    /// the error accumulated up to here.
    #[serde(serialize_with = "ser_db")]
    pub accumulated_db: f64,
    /// The dequantized tensor when its op reads every quantized tensor as the model's own Q/DQ
    /// quantizes the float run's value: the error this op adds (its quantized weights and its
    /// output's rounding), without what it inherits.
    #[serde(serialize_with = "ser_db")]
    pub own_db: f64,
    /// The tensor in the compiled model's run: the integer tensor that stands for it there (the
    /// QuantizeLinear output of the QDQ model, under the same name), dequantized with its own
    /// scale and zero point. `None` without a compiled model, or when the compiled model has
    /// no such integer tensor (a rewrite gave the value another name, or left it in float).
    #[serde(serialize_with = "ser_db_opt")]
    pub compiled_db: Option<f64>,
    /// How much the outputs' SQNR against the float model (pooled over all outputs) rises when
    /// this tensor alone is kept in float as `compile --keep-float` keeps it (its Q/DQ removed,
    /// its op's weights taken from the float model): what keeping it buys. `None` when it
    /// cannot be kept (a per-axis quantizer, no float weights to restore).
    #[serde(serialize_with = "ser_db_opt")]
    pub keep_float_gain_db: Option<f64>,
    /// 1 for the largest `keep_float_gain_db` (the first tensor to keep in float), and so on;
    /// tensors without a gain come last, by lowest `own_db`.
    pub rank: usize,
}

/// Running sums of one model pair on one output (pooled over samples).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acc {
    sum_ref2: f64,
    sum_err2: f64,
    dot: f64,
    sum_x2: f64,
    max_abs: f64,
    sum_abs: f64,
    n: usize,
    rows: usize,
    top1: usize,
    top5: usize,
}

impl Acc {
    /// Adds one sample: the float model's values `r` and the other model's `x` (same length);
    /// `row` is the last dim's size when top-k is measured.
    pub fn add(&mut self, r: &[f64], x: &[f64], row: Option<usize>) {
        debug_assert_eq!(r.len(), x.len());
        for (&a, &b) in r.iter().zip(x) {
            let e = a - b;
            self.sum_ref2 += a * a;
            self.sum_err2 += e * e;
            self.dot += a * b;
            self.sum_x2 += b * b;
            self.max_abs = if e.is_nan() { f64::NAN } else { self.max_abs.max(e.abs()) };
            self.sum_abs += e.abs();
        }
        self.n += r.len();
        if let Some(k) = row.filter(|&k| k > 1) {
            for (rr, xr) in r.chunks_exact(k).zip(x.chunks_exact(k)) {
                let best = argmax(rr);
                let rank = rank_of(xr, best);
                self.rows += 1;
                self.top1 += (rank == 0) as usize;
                self.top5 += (rank < TOP_K) as usize;
            }
        }
    }

    /// Adds another sample's sums (in sample order, so the totals are deterministic).
    pub fn merge(&mut self, o: &Acc) {
        self.sum_ref2 += o.sum_ref2;
        self.sum_err2 += o.sum_err2;
        self.dot += o.dot;
        self.sum_x2 += o.sum_x2;
        self.max_abs = if o.max_abs.is_nan() { f64::NAN } else { self.max_abs.max(o.max_abs) };
        self.sum_abs += o.sum_abs;
        self.n += o.n;
        self.rows += o.rows;
        self.top1 += o.top1;
        self.top5 += o.top5;
    }

    pub fn metrics(&self, topk: bool) -> Metrics {
        let sqnr_db = if self.sum_err2 == 0.0 {
            f64::INFINITY
        } else if self.sum_ref2 == 0.0 {
            f64::NEG_INFINITY
        } else {
            10.0 * (self.sum_ref2 / self.sum_err2).log10()
        };
        let cosine = match (self.sum_ref2 == 0.0, self.sum_x2 == 0.0) {
            (true, true) => 1.0,
            (true, false) | (false, true) => 0.0,
            _ => {
                let p = self.sum_ref2 * self.sum_x2;
                let c = if p.is_finite() {
                    self.dot / p.sqrt()
                } else {
                    self.dot / self.sum_ref2.sqrt() / self.sum_x2.sqrt()
                };
                c.clamp(-1.0, 1.0)
            }
        };
        let share = |k: usize| (topk && self.rows > 0).then(|| k as f64 / self.rows as f64);
        Metrics {
            sqnr_db,
            cosine,
            max_abs_error: self.max_abs,
            mean_abs_error: if self.n == 0 { 0.0 } else { self.sum_abs / self.n as f64 },
            top1: share(self.top1),
            top5: share(self.top5),
            rows: (topk && self.rows > 0).then_some(self.rows),
        }
    }
}

/// The index of the largest value (the first of equal ones).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The rank of element `i` in `v` from the largest (0 for the argmax): the values larger than
/// `v[i]`, and the equal ones before it.
fn rank_of(v: &[f64], i: usize) -> usize {
    v.iter().enumerate().filter(|&(j, &x)| x > v[i] || (x == v[i] && j < i)).count()
}

fn input_types(g: &Graph) -> Vec<(String, Option<TensorType>)> {
    g.inputs.iter().map(|&id| (g.node(id).outputs[0].name.clone(), g.node(id).outputs[0].ty.clone())).collect()
}

fn output_types(g: &Graph) -> Vec<(String, Option<TensorType>)> {
    g.outputs().iter().map(|o| (o.name().to_string(), g.operand_type(o.operand))).collect()
}

fn type_text(t: &Option<TensorType>) -> String {
    match t {
        Some(t) => match &t.shape {
            Some(d) => format!("{} {}", t.dtype, inputs::shape_text(d)),
            None => format!("{} of unknown rank", t.dtype),
        },
        None => "of unknown type".into(),
    }
}

/// Whether two declared types can hold the same values: equal dtypes, equal ranks, and known
/// dims equal where both are known.
fn compatible(a: &Option<TensorType>, b: &Option<TensorType>) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return true };
    if a.dtype != b.dtype {
        return false;
    }
    match (&a.shape, &b.shape) {
        (Some(x), Some(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|p| !matches!(p, (Dim::Known(i), Dim::Known(j)) if i != j))
        }
        _ => true,
    }
}

/// Checks that `m` has the inputs and outputs of `reference` (by name, with compatible types),
/// and that its outputs are float. Errors name `m`'s path.
fn check_interface(m: Model, reference: Model) -> Result<(), Error> {
    let err = |msg: String| Error::Mismatch { path: m.path.to_path_buf(), msg };
    for (name, ty) in output_types(m.graph) {
        if let Some(t) = ty.filter(|t| !t.dtype.is_float()) {
            return Err(not_float(m.path, &name, &t.dtype.to_string()));
        }
    }
    for (what, mine, theirs) in [
        ("input", input_types(m.graph), input_types(reference.graph)),
        ("output", output_types(m.graph), output_types(reference.graph)),
    ] {
        let names = |v: &[(String, Option<TensorType>)]| v.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>();
        let (mut a, mut b) = (names(&mine), names(&theirs));
        a.sort();
        b.sort();
        if a != b {
            return Err(err(format!(
                "its {what}s ({}) differ from those of {} ({})",
                a.join(", "),
                reference.path.display(),
                b.join(", ")
            )));
        }
        for (name, ty) in &mine {
            let other = &theirs.iter().find(|(n, _)| n == name).expect("same names").1;
            if !compatible(ty, other) {
                return Err(err(format!(
                    "{what} '{name}' is {} here and {} in {}",
                    type_text(ty),
                    type_text(other),
                    reference.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// An interpreter error of model `m`.
fn run_err(m: Model<'_>) -> impl Fn(qdqc_eval::EvalError) -> Error + '_ {
    move |e| Error::Run { path: m.path.to_path_buf(), error: VerifyError::Eval(e) }
}

fn not_float(path: &Path, name: &str, dtype: &str) -> Error {
    Error::Mismatch {
        path: path.to_path_buf(),
        msg: format!(
            "output '{name}' is {dtype}; accuracy compares float outputs only (an integer output's scale is not known here)"
        ),
    }
}

/// Called with (phase, steps done, steps in all) as [`accuracy_with_progress`] proceeds, from
/// any thread.
pub type Progress<'a> = &'a (dyn Fn(&'static str, usize, usize) + Sync);

/// Runs the float, QDQ and (optional) compiled models on the same samples and measures each
/// output of the QDQ and compiled models against the float model's.
pub fn accuracy(
    float: Model,
    qdq: Model,
    compiled: Option<Model>,
    opts: &AccuracyOptions,
) -> Result<AccuracyReport, Error> {
    accuracy_with_progress(float, qdq, compiled, opts, &|_, _, _| {})
}

/// [`accuracy`], reporting progress: `"measuring"` and `"layers"` count samples, `"keep-float
/// gains"` counts model variants run over all samples.
pub fn accuracy_with_progress(
    float: Model,
    qdq: Model,
    compiled: Option<Model>,
    opts: &AccuracyOptions,
    progress: Progress,
) -> Result<AccuracyReport, Error> {
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let step = |what: &'static str, total: usize| {
        let done = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(what, done, total);
    };
    check_interface(float, qdq)?;
    check_interface(qdq, float)?;
    if let Some(c) = compiled {
        check_interface(c, qdq)?;
    }
    let limit = opts.max_tensor_bytes.unwrap_or(qdqc_eval::DEFAULT_MAX_TENSOR_BYTES);
    let (samples, info) = opts.samples.inputs(qdq.graph, qdq.path, limit, "accuracy")?;
    let fi = Interpreter::with_limit(float.graph, limit).map_err(run_err(float))?;
    let qi = Interpreter::with_limit(qdq.graph, limit).map_err(run_err(qdq))?;
    let ci = compiled.map(|c| Interpreter::with_limit(c.graph, limit).map_err(run_err(c))).transpose()?;
    let run_opts = RunOptions { max_tensor_bytes: Some(limit), ..Default::default() };
    let names: Vec<String> = float.graph.outputs().iter().map(|o| o.name().to_string()).collect();
    let per_sample: Vec<PerSample> = samples
        .par_iter()
        .map(|inputs| -> Result<PerSample, Error> {
            let _done = OnDrop(|| step("measuring", samples.len()));
            let rf = fi.run(inputs, &run_opts).map_err(run_err(float))?;
            let rq = qi.run(inputs, &run_opts).map_err(run_err(qdq))?;
            let rc = match (&ci, compiled) {
                (Some(i), Some(c)) => Some((i.run(inputs, &run_opts).map_err(run_err(c))?, c)),
                _ => None,
            };
            let classes = match (&opts.labels, names.first()) {
                (Some(_), Some(first)) => {
                    let predict = |res: &qdqc_eval::RunResult, m: Model| -> Result<Vec<usize>, Error> {
                        let (shape, v) = output_values(res, first, m)?;
                        Ok(argmax_rows(&v, shape.last().copied().unwrap_or(1)))
                    };
                    let c = match &rc {
                        Some((res, m)) => predict(res, *m)?,
                        None => Vec::new(),
                    };
                    Some([predict(&rf, float)?, predict(&rq, qdq)?, c])
                }
                _ => None,
            };
            let per_output = names
                .iter()
                .map(|name| {
                    let r = output_values(&rf, name, float)?;
                    let row = r.0.last().copied().filter(|_| opts.topk);
                    let pair = |res: &qdqc_eval::RunResult, m: Model| -> Result<Acc, Error> {
                        let x = output_values(res, name, m)?;
                        if x.0 != r.0 {
                            return Err(Error::Mismatch {
                                path: m.path.to_path_buf(),
                                msg: format!(
                                    "output '{name}' has shape {:?} here and {:?} in {}",
                                    x.0,
                                    r.0,
                                    float.path.display()
                                ),
                            });
                        }
                        let mut acc = Acc::default();
                        acc.add(&r.1, &x.1, row);
                        Ok(acc)
                    };
                    let q = pair(&rq, qdq)?;
                    let c = rc.as_ref().map(|(res, m)| pair(res, *m)).transpose()?;
                    Ok((r.0, q, c))
                })
                .collect::<Result<_, Error>>()?;
            Ok((per_output, classes))
        })
        .collect::<Result<_, _>>()?;
    let task = match &opts.labels {
        Some(labels) => Some(task_accuracy(labels, &per_sample, compiled.is_some())?),
        None => None,
    };
    let per_sample: Vec<PerOutput> = per_sample.into_iter().map(|(o, _)| o).collect();
    let outputs = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (mut q, mut c) = (Acc::default(), compiled.map(|_| Acc::default()));
            for s in &per_sample {
                q.merge(&s[i].1);
                if let (Some(c), Some(sc)) = (&mut c, &s[i].2) {
                    c.merge(sc);
                }
            }
            OutputReport {
                name: name.clone(),
                shape: per_sample[0][i].0.clone(),
                elements: q.n,
                qdq: q.metrics(opts.topk),
                compiled: c.map(|c| c.metrics(opts.topk)),
            }
        })
        .collect();
    let (layers, keep_float_check) = if opts.layers {
        counter.store(0, std::sync::atomic::Ordering::Relaxed);
        let compiled = compiled.zip(ci.as_ref());
        let (rows, check) = layers(float, qdq, compiled, &fi, &qi, &samples, &run_opts, &step)?;
        (Some(rows), check)
    } else {
        (None, None)
    };
    Ok(AccuracyReport {
        schema_version: SCHEMA_VERSION,
        float_model: float.path.display().to_string(),
        qdq_model: qdq.path.display().to_string(),
        compiled_model: compiled.map(|c| c.path.display().to_string()),
        samples: samples.len(),
        inputs: info,
        topk: opts.topk,
        outputs,
        task,
        layers,
        keep_float_check,
    })
}

/// A tensor [`LayerReport`] measures ([`quantized_tensors`] lists them in the QDQ model's
/// topological order).
struct Quantized {
    /// The float tensor, in the float model and the QDQ model.
    tensor: String,
    /// The QuantizeLinear output: the integer tensor that stands for it, under the same name in
    /// the compiled model.
    q: String,
    /// The DequantizeLinear output that stands for it in the QDQ model.
    dq: String,
    /// The op that computes it (`input` for a graph input).
    op: String,
}

fn quantized_tensors(float: &Graph, qdq: &Graph) -> Result<Vec<Quantized>, qdqc_ir::GraphError> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in qdq.topo_order()? {
        let n = qdq.node(id);
        if n.op != qdqc_ir::Op::QuantizeLinear {
            continue;
        }
        let x = n.input(0);
        let name = qdq.operand_name(x).to_string();
        if !seen.insert(name.clone()) || float.lookup(&name).is_none() {
            continue;
        }
        let dq = qdq.uses(id).map(|(user, _)| qdq.node(user)).find(|u| u.op == qdqc_ir::Op::DequantizeLinear);
        let Some(dq) = dq else { continue };
        let op = match x {
            qdqc_ir::Operand::Value(o) if !qdq.inputs.contains(&o.node) => qdq.node(o.node).op.to_string(),
            _ => "input".to_string(),
        };
        out.push(Quantized { tensor: name, q: n.outputs[0].name.clone(), dq: dq.outputs[0].name.clone(), op });
    }
    Ok(out)
}

/// Runs the float model, the QDQ model, and the QDQ model with every tensor the float model
/// shares forced to the float run's value, on every sample; measures each quantized tensor, and
/// the integer tensor of the same name in the compiled model when there is one.
#[allow(clippy::too_many_arguments)]
fn layers(
    float: Model,
    qdq: Model,
    compiled: Option<(Model, &Interpreter)>,
    fi: &Interpreter,
    qi: &Interpreter,
    samples: &[Inputs],
    run_opts: &RunOptions,
    step: &(dyn Fn(&'static str, usize) + Sync),
) -> Result<(Vec<LayerReport>, Option<KeepFloatCheck>), Error> {
    let tensors =
        quantized_tensors(float.graph, qdq.graph).map_err(|e| run_err(qdq)(qdqc_eval::EvalError::Graph(e)))?;
    let keep = RunOptions { keep_intermediates: true, ..run_opts.clone() };
    // The compiled model's integer tensors by name, with their (scale, zero point).
    let params = compiled.map(|(c, _)| crate::verify::int_params(c.graph)).unwrap_or_default();
    let per_sample: Vec<Vec<[Acc; 3]>> = samples
        .par_iter()
        .map(|inputs| -> Result<Vec<[Acc; 3]>, Error> {
            let _done = OnDrop(|| step("layers", samples.len()));
            let rf = fi.run(inputs, &keep).map_err(run_err(float))?;
            let rq = qi.run(inputs, &keep).map_err(run_err(qdq))?;
            let rc = compiled.map(|(c, ci)| ci.run(inputs, &keep).map_err(run_err(c))).transpose()?;
            let get = |r: &qdqc_eval::RunResult, name: &str| r.output(name).or_else(|| r.values.get(name)).cloned();
            let forced: std::collections::HashMap<String, Value> = rq
                .values
                .iter()
                .filter_map(|(name, v)| {
                    let f = get(&rf, name)?;
                    (f.dtype() == v.dtype() && f.shape() == v.shape()).then(|| (name.clone(), f))
                })
                .collect();
            // The float run's values as the model's own Q/DQ quantizes them...
            let forced = RunOptions { forced: Some(std::sync::Arc::new(forced)), ..keep.clone() };
            let quantized = qi.run(inputs, &forced).map_err(run_err(qdq))?;
            let forced: std::collections::HashMap<String, Value> =
                tensors.iter().filter_map(|t| Some((t.dq.clone(), get(&quantized, &t.dq)?))).collect();
            // ...feed every op, whose own result is then quantized by its own Q/DQ.
            let forced = RunOptions { forced: Some(std::sync::Arc::new(forced)), ..keep.clone() };
            let rown = qi.run(inputs, &forced).map_err(run_err(qdq))?;
            let floats = |v: Option<Value>| v.filter(|v| v.dtype().is_float()).and_then(|v| v.to_f64_vec().ok());
            // The compiled model's integer tensor, dequantized with its own parameters.
            let dequantized = |name: &str| -> Option<Vec<f64>> {
                let (scale, zp) = params.get(name)?;
                let v = get(rc.as_ref()?, name).filter(|v| !v.dtype().is_float())?;
                // As DequantizeLinear computes it (in f32), so an exact compile measures the same.
                let scale = f32::from_bits(*scale);
                Some(v.to_i64_vec().ok()?.into_iter().map(|q| f64::from((q - zp) as f32 * scale)).collect())
            };
            Ok(tensors
                .iter()
                .map(|t| {
                    let mut accs: [Acc; 3] = Default::default();
                    if let Some(r) = floats(get(&rf, &t.tensor)) {
                        let measured = [floats(get(&rq, &t.dq)), floats(get(&rown, &t.dq)), dequantized(&t.q)];
                        for (acc, x) in accs.iter_mut().zip(measured) {
                            if let Some(x) = x.filter(|x| x.len() == r.len()) {
                                acc.add(&r, &x, None);
                            }
                        }
                    }
                    accs
                })
                .collect())
        })
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<LayerReport> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut accs: [Acc; 3] = Default::default();
            for s in &per_sample {
                for (acc, a) in accs.iter_mut().zip(&s[i]) {
                    acc.merge(a);
                }
            }
            let [acc, own, comp] = accs;
            LayerReport {
                tensor: t.tensor.clone(),
                op: t.op.clone(),
                elements: acc.n,
                accumulated_db: acc.metrics(false).sqnr_db,
                own_db: own.metrics(false).sqnr_db,
                compiled_db: (comp.n > 0).then(|| comp.metrics(false).sqnr_db),
                keep_float_gain_db: None,
                rank: 0,
            }
        })
        .filter(|l| l.elements > 0)
        .collect();
    let check = rank_by_gain(float, qdq, samples, run_opts, &mut rows, step)?;
    Ok((rows, check))
}

/// Fills in each row's [`LayerReport::keep_float_gain_db`] — the QDQ model with that tensor kept
/// in float ([`crate::keep_float::keep_float`], weights from the float model) against the float
/// model, minus the QDQ model itself, output SQNR pooled over all outputs and samples — ranks the
/// rows by it, and measures the top three kept together against three random triples.
fn rank_by_gain(
    float: Model,
    qdq: Model,
    samples: &[Inputs],
    run_opts: &RunOptions,
    rows: &mut [LayerReport],
    step: &(dyn Fn(&'static str, usize) + Sync),
) -> Result<Option<KeepFloatCheck>, Error> {
    // The variants: the model as it is, one per row, the greedy pairs and triples, and three
    // random triples.
    let pool = rows.len().min(GREEDY_POOL);
    let variants = 1 + rows.len() + pool.saturating_sub(1) + pool.saturating_sub(2) + 3;
    let fi = Interpreter::with_limit(float.graph, run_opts.limit()).map_err(run_err(float))?;
    let names: Vec<String> = float.graph.outputs().iter().map(|o| o.name().to_string()).collect();
    let refs: Vec<Vec<Vec<f64>>> = samples
        .par_iter()
        .map(|inputs| -> Result<Vec<Vec<f64>>, Error> {
            let r = fi.run(inputs, run_opts).map_err(run_err(float))?;
            names.iter().map(|n| Ok(output_values(&r, n, float)?.1)).collect()
        })
        .collect::<Result<_, _>>()?;
    // The output SQNR with `keep` kept in float; `None` when they cannot be kept.
    let sqnr = |keep: &[String]| -> Result<Option<f64>, Error> {
        let _done = OnDrop(|| step("keep-float gains", variants));
        let mut g = qdq.graph.clone();
        if crate::keep_float::keep_float(&mut g, qdq.path, keep, Some(float.graph)).is_err() {
            return Ok(None);
        }
        let interp = Interpreter::with_limit(&g, run_opts.limit()).map_err(run_err(qdq))?;
        let accs: Vec<Acc> = samples
            .par_iter()
            .zip(&refs)
            .map(|(inputs, refs)| -> Result<Acc, Error> {
                let r = interp.run(inputs, run_opts).map_err(run_err(qdq))?;
                let mut acc = Acc::default();
                for (n, rv) in names.iter().zip(refs) {
                    let x = output_values(&r, n, qdq)?.1;
                    if x.len() == rv.len() {
                        acc.add(rv, &x, None);
                    }
                }
                Ok(acc)
            })
            .collect::<Result<_, _>>()?;
        let mut all = Acc::default();
        for a in &accs {
            all.merge(a);
        }
        Ok(Some(all.metrics(false).sqnr_db))
    };
    let base = sqnr(&[])?.unwrap_or(f64::NAN);
    for row in rows.iter_mut() {
        row.keep_float_gain_db = sqnr(std::slice::from_ref(&row.tensor))?.map(|s| s - base);
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let key = |l: &LayerReport| l.keep_float_gain_db.filter(|g| !g.is_nan()).map_or(f64::INFINITY, |g| -g);
    order.sort_by(|&a, &b| {
        key(&rows[a]).total_cmp(&key(&rows[b])).then(rows[a].own_db.total_cmp(&rows[b].own_db)).then(a.cmp(&b))
    });
    for (rank, &i) in order.iter().enumerate() {
        rows[i].rank = rank + 1;
    }
    let keepable: Vec<&String> =
        order.iter().map(|&i| &rows[i]).filter(|l| l.keep_float_gain_db.is_some()).map(|l| &l.tensor).collect();
    if keepable.len() < 4 {
        return Ok(None);
    }
    let measure = |tensors: Vec<String>| -> Result<Option<Kept>, Error> {
        Ok(sqnr(&tensors)?.map(|sqnr_db| Kept { tensors, sqnr_db }))
    };
    // Gains do not add up, so the three are chosen greedily among the GREEDY_POOL best: each
    // next one is the one that, kept with those already chosen, gives the highest SQNR.
    let pool: Vec<String> = keepable.iter().take(GREEDY_POOL).map(|t| t.to_string()).collect();
    let mut chosen = vec![pool[0].clone()];
    let mut top3 = None;
    while chosen.len() < 3 {
        let mut best: Option<Kept> = None;
        for t in pool.iter().filter(|t| !chosen.contains(t)) {
            let mut trial = chosen.clone();
            trial.push(t.clone());
            if let Some(k) = measure(trial)? {
                if best.as_ref().is_none_or(|b| k.sqnr_db > b.sqnr_db) {
                    best = Some(k);
                }
            }
        }
        let Some(b) = best else { return Ok(None) };
        chosen = b.tensors.clone();
        top3 = Some(b);
    }
    let Some(top3) = top3 else { return Ok(None) };
    // A linear congruential sequence: the same triples on every run.
    let mut x: u64 = 0x5eed;
    let mut random3 = Vec::new();
    for _ in 0..3 {
        let mut pick: Vec<String> = Vec::new();
        while pick.len() < 3 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let t = keepable[(x >> 33) as usize % keepable.len()];
            if !pick.contains(t) {
                pick.push(t.clone());
            }
        }
        random3.extend(measure(pick)?);
    }
    Ok(Some(KeepFloatCheck { base_db: base, top3, random3 }))
}

/// An output's shape and values (widened to f64); an error naming the model when it is missing
/// or not float.
fn output_values(r: &qdqc_eval::RunResult, name: &str, m: Model) -> Result<(Vec<usize>, Vec<f64>), Error> {
    let v: &Value = r.output(name).ok_or_else(|| Error::Mismatch {
        path: m.path.to_path_buf(),
        msg: format!("the model did not produce output '{name}'"),
    })?;
    if !v.dtype().is_float() {
        return Err(not_float(m.path, name, &v.dtype().to_string()));
    }
    let data = v.to_f64_vec().map_err(|e| Error::Mismatch { path: m.path.to_path_buf(), msg: e.to_string() })?;
    Ok((v.shape().to_vec(), data))
}

/// Loads the models and runs [`accuracy`].
pub fn accuracy_files(
    float: &Path,
    qdq: &Path,
    compiled: Option<&Path>,
    load: &LoadOptions,
    opts: &AccuracyOptions,
    progress: Progress,
) -> Result<AccuracyReport, Error> {
    let f = crate::load_with(float, load)?;
    let q = crate::load_with(qdq, load)?;
    let c = compiled.map(|p| crate::load_with(p, load)).transpose()?;
    let cm = compiled.zip(c.as_ref()).map(|(path, m)| Model { path, graph: &m.graph });
    accuracy_with_progress(
        Model { path: float, graph: &f.graph },
        Model { path: qdq, graph: &q.graph },
        cm,
        opts,
        progress,
    )
}

/// `--input-dist NAME=DIST` arguments.
pub fn parse_dists(args: &[String]) -> Result<Vec<(String, Dist)>, Error> {
    let mut out: Vec<(String, Dist)> = Vec::new();
    for a in args {
        let (name, dist) = a
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--input-dist '{a}': expected NAME=normal or NAME=uniform:LO,HI")))?;
        let dist = Dist::parse(dist).map_err(|e| Error::Usage(format!("--input-dist '{name}': {e}")))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(Error::Usage(format!("--input-dist '{name}' is given twice")));
        }
        out.push((name.to_string(), dist));
    }
    Ok(out)
}

pub(crate) fn fmt_db(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:.2}")
    }
}

impl AccuracyReport {
    /// One row per output and model pair.
    pub fn table(&self) -> String {
        self.table_as("vs float", "qdq")
    }

    /// The per-output table of a report whose reference is not a float model and whose `qdq`
    /// side is a compiled model ([`crate::compile_file`] after calibration).
    pub fn pair_table(&self) -> String {
        self.table_as("vs input", "compiled")
    }

    fn table_as(&self, reference: &str, first: &str) -> String {
        let w = self.outputs.iter().map(|o| o.name.len()).max().unwrap_or(0).max("output".len());
        let mut s = format!(
            "{:<w$}  {:<14} {:>9} {:>10} {:>11} {:>11}",
            "output", reference, "SQNR dB", "cosine", "max |err|", "mean |err|"
        );
        if self.topk {
            s += &format!(" {:>8} {:>8}", "top-1", "top-5");
        }
        s += "\n";
        for o in &self.outputs {
            let pairs = [(first, Some(&o.qdq)), ("compiled", o.compiled.as_ref())];
            for (what, m) in pairs {
                let Some(m) = m else { continue };
                s += &format!(
                    "{:<w$}  {:<14} {:>9} {:>10.6} {:>11.4e} {:>11.4e}",
                    o.name,
                    what,
                    fmt_db(m.sqnr_db),
                    m.cosine,
                    m.max_abs_error,
                    m.mean_abs_error
                );
                if self.topk {
                    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
                    s += &format!(" {:>8} {:>8}", pct(m.top1), pct(m.top5));
                }
                s += "\n";
            }
        }
        let from = match &self.inputs {
            InputsInfo::Files { path } => format!("from {path}"),
            InputsInfo::Random { seed, .. } => format!("random, seed {seed}"),
        };
        s += &format!("{} samples ({from}); reference: {}\n", self.samples, self.float_model);
        if let Some(t) = &self.task {
            s += &format!(
                "task accuracy on {} labelled rows ({}): float {:.2}%, qdq {:.2}%{}\n",
                t.rows,
                t.labels,
                100.0 * t.float,
                100.0 * t.qdq,
                t.compiled.map_or(String::new(), |c| format!(", compiled {:.2}%", 100.0 * c))
            );
        }
        if let Some(layers) = &self.layers {
            let w = layers.iter().map(|l| l.tensor.len()).max().unwrap_or(0).max("tensor".len());
            // With a compiled model: the same tensor in its run.
            let compiled = |v: String| if self.compiled_model.is_some() { format!(" {v:>12}") } else { String::new() };
            s += &format!(
                "\n{:<w$}  {:<20} {:>16}{} {:>10} {:>18} {:>5}\n",
                "tensor",
                "op",
                "accumulated dB",
                compiled("compiled dB".into()),
                "own dB",
                "keep-float gain dB",
                "rank"
            );
            for l in layers {
                s += &format!(
                    "{:<w$}  {:<20} {:>16}{} {:>10} {:>18} {:>5}\n",
                    qdqc_ir::escape(&l.tensor),
                    l.op,
                    fmt_db(l.accumulated_db),
                    compiled(l.compiled_db.map_or("-".to_string(), fmt_db)),
                    fmt_db(l.own_db),
                    l.keep_float_gain_db.map_or("-".to_string(), |g| format!("{g:+.2}")),
                    l.rank
                );
            }
            if let Some(c) = &self.keep_float_check {
                s += &format!(
                    "\nkept in float: 3 chosen by gain ({}) {} dB; 3 random triples {} dB; none {} dB\n",
                    c.top3.tensors.join(", "),
                    fmt_db(c.top3.sqnr_db),
                    c.random3.iter().map(|k| fmt_db(k.sqnr_db)).collect::<Vec<_>>().join(", "),
                    fmt_db(c.base_db)
                );
            }
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("accuracy report serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(r: &[f64], x: &[f64], row: Option<usize>) -> Metrics {
        let mut a = Acc::default();
        a.add(r, x, row);
        a.metrics(row.is_some())
    }

    #[test]
    fn equal_values_give_infinite_sqnr_and_cosine_one() {
        let r = [0.3, -1.5, 2.25, 1e-3];
        let m = acc(&r, &r, Some(2));
        assert_eq!(m.sqnr_db, f64::INFINITY);
        assert_eq!(m.cosine, 1.0);
        assert_eq!((m.max_abs_error, m.mean_abs_error), (0.0, 0.0));
        assert_eq!((m.top1, m.top5, m.rows), (Some(1.0), Some(1.0), Some(2)));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["sqnr_db"], "inf");
    }

    #[test]
    fn sqnr_cosine_and_errors_match_their_formulas() {
        let r = [1.0, 2.0, -3.0, 4.0];
        let x = [1.1, 1.8, -3.0, 4.4];
        let m = acc(&r, &x, None);
        let signal: f64 = r.iter().map(|v| v * v).sum();
        let noise: f64 = r.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum();
        assert!((m.sqnr_db - 10.0 * (signal / noise).log10()).abs() < 1e-12);
        let dot: f64 = r.iter().zip(&x).map(|(a, b)| a * b).sum();
        let nx: f64 = x.iter().map(|v| v * v).sum();
        assert!((m.cosine - dot / (signal * nx).sqrt()).abs() < 1e-15);
        assert!((m.max_abs_error - 0.4).abs() < 1e-12);
        assert!((m.mean_abs_error - 0.7 / 4.0).abs() < 1e-12);
        assert_eq!(m.top1, None);
        // Pooled over samples: two halves merged equal the whole.
        let (mut a, mut b) = (Acc::default(), Acc::default());
        a.add(&r[..2], &x[..2], None);
        b.add(&r[2..], &x[2..], None);
        a.merge(&b);
        assert!((a.metrics(false).sqnr_db - m.sqnr_db).abs() < 1e-12);
        // An all-zero reference with noise: -inf; zero vs nonzero: cosine 0.
        let z = acc(&[0.0, 0.0], &[1.0, 0.0], None);
        assert_eq!((z.sqnr_db, z.cosine), (f64::NEG_INFINITY, 0.0));
        assert_eq!(serde_json::to_value(&z).unwrap()["sqnr_db"], "-inf");
        // A negated output: cosine -1.
        assert_eq!(acc(&r, &r.map(|v| -v), None).cosine, -1.0);
    }

    #[test]
    fn top1_and_top5_count_rows_by_the_float_argmax() {
        // Rows of 6: row 0 agrees; row 1's float argmax (index 5) is second in x; row 2's float
        // argmax (index 0) is last in x.
        let r = [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let x = [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 9.5, 9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let m = acc(&r, &x, Some(6));
        assert_eq!(m.rows, Some(3));
        assert_eq!(m.top1, Some(1.0 / 3.0));
        assert_eq!(m.top5, Some(2.0 / 3.0));
        // Ties rank by index: the first of equal values is the argmax.
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(rank_of(&[1.0, 3.0, 3.0], 2), 1);
        // A last dim of 1 has no rows to rank.
        assert_eq!(acc(&[1.0, 2.0], &[1.0, 2.0], Some(1)).top1, None);
    }

    const FLOAT: &str = "graph {\n  input %x: f32[N, 8]\n  const %w: f32[] 0.37\n  %y = Mul(%x, %w)\n  output %y\n}\n";
    const QDQ: &str = "graph {\n  input %x: f32[N, 8]\n  const %w: f32[] 0.37\n  const %s: f32[] 0.05\n  const %z: u8[] 128\n  %q = QuantizeLinear(%x, %s, %z)\n  %d = DequantizeLinear(%q, %s, %z)\n  %y = Mul(%d, %w)\n  output %y\n}\n";

    fn run(float: &str, qdq: &str, compiled: Option<&str>, samples: Samples) -> Result<AccuracyReport, Error> {
        let (f, q) = (qdqc_ir::text::parse(float).unwrap(), qdqc_ir::text::parse(qdq).unwrap());
        let c = compiled.map(|c| qdqc_ir::text::parse(c).unwrap());
        let m = |p: &'static str, g| Model { path: Path::new(p), graph: g };
        let opts = AccuracyOptions { samples, topk: true, layers: false, labels: None, max_tensor_bytes: None };
        accuracy(m("float", &f), m("qdq", &q), c.as_ref().map(|c| m("compiled", c)), &opts)
    }

    fn random(count: usize) -> Samples {
        Samples::Random { count, seed: 3, dim: 4, dists: vec![] }
    }

    #[test]
    fn a_quantized_model_is_measured_against_the_float_one() {
        let r = run(FLOAT, QDQ, Some(FLOAT), random(5)).unwrap();
        let o = &r.outputs[0];
        assert_eq!((o.name.as_str(), o.shape.as_slice(), o.elements), ("y", &[4usize, 8][..], 5 * 32));
        // Uniform rounding noise of step 0.05 on standard normal inputs: SQNR near
        // 10·log10(1 / (0.05²/12)) ≈ 36.8 dB (less where [-6.4, 6.35] clips, which it rarely does).
        assert!((30.0..45.0).contains(&o.qdq.sqnr_db), "{}", r.table());
        assert!(o.qdq.cosine > 0.999 && o.qdq.max_abs_error <= 0.37 * 0.025 + 1e-6, "{}", r.table());
        let c = o.compiled.as_ref().unwrap();
        assert_eq!((c.sqnr_db, c.cosine), (f64::INFINITY, 1.0));
        let table = r.table();
        assert!(table.contains("qdq") && table.contains("compiled") && table.contains("inf"), "{table}");
        // Seeded: the same report twice, whatever the threads did.
        let again = run(FLOAT, QDQ, Some(FLOAT), random(5)).unwrap();
        assert_eq!(r.to_json(), again.to_json());
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["schema_version"], 2);
        assert_eq!(json["outputs"][0]["compiled"]["sqnr_db"], "inf");
    }

    #[test]
    fn models_that_do_not_fit_together_are_refused_naming_the_model_and_value() {
        let other_input = FLOAT.replace("%x", "%image");
        let e = run(&other_input, QDQ, None, random(1)).unwrap_err();
        assert!(
            matches!(e, Error::Mismatch { .. })
                && e.to_string().starts_with("float: its inputs ('image') differ from those of qdq ('x')"),
            "{e}"
        );
        let e = run(&FLOAT.replace("f32[N, 8]", "f32[N, 9]"), QDQ, None, random(1)).unwrap_err();
        assert!(e.to_string().contains("input 'x' is f32 [N, 9] here and f32 [N, 8] in qdq"), "{e}");
        let renamed = FLOAT.replace("%y", "%out");
        let e = run(&renamed, QDQ, None, random(1)).unwrap_err();
        assert!(e.to_string().contains("outputs"), "{e}");
        // An integer output in the compiled model.
        let int_out = "graph {\n  input %x: f32[N, 8]\n  const %s: f32[] 0.05\n  const %z: u8[] 128\n  %y = QuantizeLinear(%x, %s, %z)\n  output %y\n}\n";
        let e = run(FLOAT, QDQ, Some(int_out), random(1)).unwrap_err();
        assert!(
            e.to_string().starts_with("compiled: output 'y' is") && e.to_string().contains("float outputs only"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        let e = run(
            FLOAT,
            QDQ,
            None,
            Samples::Random { count: 1, seed: 0, dim: 1, dists: vec![("nope".into(), Dist::Normal)] },
        )
        .unwrap_err();
        assert!(e.to_string().contains("input 'nope'"), "{e}");
    }

    #[test]
    fn input_distributions_parse_from_arguments() {
        let d = parse_dists(&["x=uniform:0,1".into(), "y=normal".into()]).unwrap();
        assert_eq!(d[0], ("x".to_string(), Dist::Uniform { lo: 0.0, hi: 1.0 }));
        assert!(parse_dists(&["x".into()]).is_err());
        assert!(parse_dists(&["x=normal".into(), "x=normal".into()]).is_err());
        assert!(parse_dists(&["x=uniform:1,0".into()]).is_err());
    }
}
