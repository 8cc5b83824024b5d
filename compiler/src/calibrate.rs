//! Completing a partial Q/DQ placement by calibration (`qdqc compile --calibrate`).
//!
//! TensorRT-style QAT exports quantize only the inputs of Conv, Gemm and MatMul; the residual
//! Add, the float BatchNormalization and Relu between them stay float, and so does every Conv
//! whose output is not quantized. [`calibrate`] finds the float tensors that keep such a graph
//! from lowering to integer ops ([`sites`]), measures their ranges by running the model with the
//! reference interpreter on calibration samples — with the model's own Q/DQ active, so the
//! values are the ones the quantized model sees — and inserts a QuantizeLinear → DequantizeLinear
//! pair on each. The compile pipeline then fuses the completed placement as it fuses any QDQ model.
//!
//! Scales are reused before they are invented: a tensor that a QuantizeLinear already reads gets
//! that QuantizeLinear's DequantizeLinear (the identity branch of a residual block), and a tensor
//! whose only float use is a Relu, MaxPool or reshaping op whose result is quantized takes that
//! result's scale and zero point (the Add before the Relu that feeds the next conv). Only the
//! rest is measured. New parameters are per tensor, with the integer type and symmetry of the
//! model's own activation QuantizeLinear nodes (`uint8` asymmetric when there are none).
//!
//! Calibration changes what the model computes, so it runs only when asked for; every inserted
//! pair is listed in [`Calibration::inserted`] with its range, scale and zero point.

use crate::accuracy::Samples;
use crate::Error;
use qdqc_eval::{Interpreter, RunOptions, Value};
use qdqc_ir::{DType, Graph, NodeId, NodeMeta, Op, Operand, Outlet, Port, Tensor, TensorType, Value as Decl};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Bins of the histograms `percentile` and `entropy` read (onnxruntime's percentile default).
pub const HIST_BINS: usize = 2048;
/// Quantized bins the `entropy` method compares the clipped histogram against (TensorRT's
/// choice: 128 levels on each side of zero for int8).
pub const ENTROPY_QUANTIZED_BINS: usize = 128;
/// The percentile `percentile` keeps by default (onnxruntime's default).
pub const DEFAULT_PERCENTILE: f64 = 99.999;

/// How a measured distribution becomes a range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The smallest and largest value seen.
    MinMax,
    /// The range holding this percentage of the values: of |x| for symmetric parameters, of x
    /// with half the rest cut on each side otherwise (as onnxruntime's percentile calibrator).
    Percentile(f64),
    /// The clipping threshold on |x| that minimizes the KL divergence between the histogram
    /// ([`HIST_BINS`] bins) and its quantization to [`ENTROPY_QUANTIZED_BINS`] levels (TensorRT's
    /// entropy calibration).
    Entropy,
    /// The clipping threshold on |x| that minimizes the expected squared error of quantizing the
    /// histogram ([`HIST_BINS`] bins): values clipped beyond it plus the rounding of those
    /// within (a uniform error of step²/12), as TensorRT Model Optimizer's `mse` calibrator.
    Mse,
}

impl Method {
    /// `minmax`, `percentile`, `percentile:P` (0 < P ≤ 100) or `entropy`.
    pub fn parse(s: &str) -> Result<Method, String> {
        match s {
            "minmax" => return Ok(Method::MinMax),
            "percentile" => return Ok(Method::Percentile(DEFAULT_PERCENTILE)),
            "entropy" => return Ok(Method::Entropy),
            "mse" => return Ok(Method::Mse),
            _ => {}
        }
        if let Some(p) = s.strip_prefix("percentile:") {
            return match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Method::Percentile(p)),
                _ => Err(format!("'{p}' is not a percentage in (0, 100]")),
            };
        }
        Err(format!("'{s}' is not a calibration method (minmax, percentile, percentile:P, entropy or mse)"))
    }

    fn needs_histogram(self) -> bool {
        self != Method::MinMax
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => write!(f, "minmax"),
            Method::Percentile(p) => write!(f, "percentile {p}"),
            Method::Entropy => write!(f, "entropy ({HIST_BINS} bins, {ENTROPY_QUANTIZED_BINS} quantized bins)"),
            Method::Mse => write!(f, "mse ({HIST_BINS} bins)"),
        }
    }
}

/// What [`calibrate`] runs.
#[derive(Clone, Debug)]
pub struct CalibrateOptions {
    pub samples: Samples,
    pub method: Method,
    /// The interpreter's per-tensor limit (`None`: `qdqc_eval::DEFAULT_MAX_TENSOR_BYTES`).
    pub max_tensor_bytes: Option<usize>,
}

/// One inserted QuantizeLinear → DequantizeLinear pair (or, for a reused QuantizeLinear, the
/// DequantizeLinear the float uses now read).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inserted {
    /// The float tensor that is now quantized.
    pub tensor: String,
    /// The node that makes it (`input` for a graph input).
    pub producer: String,
    /// The smallest and largest value seen on the calibration samples.
    pub observed: [f32; 2],
    /// The range the parameters represent.
    pub range: [f32; 2],
    pub scale: f32,
    pub zero_point: i64,
    /// `uint8` or `int8`.
    pub dtype: String,
    /// Where the parameters come from: the calibration method, or the QuantizeLinear reused.
    pub source: String,
}

/// What [`calibrate`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    pub method: String,
    pub samples: usize,
    /// `uint8`/`int8` and whether new parameters are symmetric (zero point 0).
    pub dtype: String,
    pub symmetric: bool,
    pub inserted: Vec<Inserted>,
}

impl Calibration {
    /// One line per inserted pair.
    pub fn text(&self) -> String {
        let mut out = format!(
            "calibration: {} float tensors quantized ({} samples, {}; new parameters {} {}):\n",
            self.inserted.len(),
            self.samples,
            self.method,
            self.dtype,
            if self.symmetric { "symmetric" } else { "asymmetric" }
        );
        for i in &self.inserted {
            out += &format!(
                "  calibrate: '{}' ({}): seen [{}, {}], range [{}, {}] -> scale {}, zero point {} ({}; {})\n",
                i.tensor,
                i.producer,
                i.observed[0],
                i.observed[1],
                i.range[0],
                i.range[1],
                i.scale,
                i.zero_point,
                i.dtype,
                i.source
            );
        }
        out
    }
}

/// Ops whose float result calibration quantizes, and whose float inputs it quantizes: the ones
/// qdqc lowers to integer ops, or that move quantized values unchanged.
fn quantizable(op: &Op) -> bool {
    use Op::*;
    matches!(
        op,
        Conv | ConvTranspose
            | MatMul
            | Gemm
            | BatchNormalization
            | Add
            | Mul
            | Relu
            | Clip
            | LeakyRelu
            | Sigmoid
            | HardSigmoid
            | HardSwish
            | MaxPool
            | AveragePool
            | GlobalAveragePool
            | GlobalMaxPool
            | Concat
            | Reshape
            | Flatten
            | Transpose
            | Squeeze
            | Unsqueeze
            | Resize
            | Split
            | Slice
            | Pad
            | DepthToSpace
            | SpaceToDepth
            | Identity
    )
}

/// Ops through which a quantized result's parameters hold for the input too:
/// `Q(op(x)) = op_int(Q(x))` for an op that moves or selects values or clamps them (Relu, Clip
/// with constant bounds: Q is nondecreasing, so it commutes with clamping).
fn passes_params(g: &Graph, node: &qdqc_ir::Node) -> bool {
    use Op::*;
    match node.op {
        Relu | MaxPool | GlobalMaxPool | Reshape | Flatten | Transpose | Squeeze | Unsqueeze | Identity => true,
        Clip => node.inputs().iter().skip(1).all(|o| matches!(o, Operand::Const(_) | Operand::None)) && g.opset() >= 11,
        _ => false,
    }
}

/// Per-tensor parameters of a QuantizeLinear: scale, zero point and integer type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Params {
    pub scale: f32,
    pub zero_point: i64,
    pub dtype: DType,
}

/// A QuantizeLinear that reads a dynamic tensor with per-tensor constant parameters.
fn activation_q(g: &Graph, id: NodeId) -> Option<Params> {
    let node = g.node(id);
    if node.op != Op::QuantizeLinear || !matches!(node.input(0), Operand::Value(_)) {
        return None;
    }
    let dtype = node.outputs[0].ty.as_ref().map(|t| t.dtype)?;
    if !matches!(dtype, DType::U8 | DType::I8) {
        return None;
    }
    let scale = g.const_tensor(node.input(1))?.to_f32().ok()?;
    let zero_point = match node.input(2) {
        Operand::None => vec![0],
        z => g.const_tensor(z)?.to_i64().ok()?,
    };
    (scale.len() == 1 && zero_point.len() == 1 && scale[0].is_finite() && scale[0] > 0.0).then(|| Params {
        scale: scale[0],
        zero_point: zero_point[0],
        dtype,
    })
}

/// The integer type and symmetry new parameters take: those of most of the model's activation
/// QuantizeLinear nodes (symmetric when all of those have zero point 0), `uint8` asymmetric when
/// it has none.
fn style(g: &Graph) -> (DType, bool) {
    let qs: Vec<Params> = g.node_ids().filter_map(|id| activation_q(g, id)).collect();
    if qs.is_empty() {
        return (DType::U8, false);
    }
    let signed = qs.iter().filter(|p| p.dtype == DType::I8).count();
    let dtype = if 2 * signed > qs.len() { DType::I8 } else { DType::U8 };
    let symmetric = dtype == DType::I8 && qs.iter().filter(|p| p.dtype == dtype).all(|p| p.zero_point == 0);
    (dtype, symmetric)
}

/// A float tensor calibration quantizes, and the uses that read it in float.
#[derive(Clone, Debug)]
pub struct Site {
    pub outlet: Outlet,
    /// Consumer ports that read the float value (not QuantizeLinear).
    uses: Vec<(NodeId, u32)>,
    /// Indices of graph outputs that are this tensor.
    outputs: Vec<usize>,
}

/// The float tensors calibration quantizes, in graph order: every float tensor computed from a
/// graph input by a quantizable op (or a graph input itself) that is a graph output or is
/// read in float by a quantizable op. Call it after BatchNormalization is folded into the Conv
/// before it, so the Conv's result is not quantized twice.
pub fn sites(g: &Graph) -> Result<Vec<Site>, qdqc_ir::GraphError> {
    let mut order = g.inputs.clone();
    order.extend(g.topo_order()?.into_iter().filter(|id| g.node(*id).op != Op::Input));
    let mut dynamic: HashSet<NodeId> = HashSet::new();
    let mut out = Vec::new();
    for &id in &order {
        let node = g.node(id);
        let is_input = node.op == Op::Input;
        if !is_input && !node.inputs().iter().any(|o| matches!(o, Operand::Value(v) if dynamic.contains(&v.node))) {
            continue;
        }
        dynamic.insert(id);
        if !is_input && !quantizable(&node.op) {
            continue;
        }
        for (slot, decl) in node.outputs.iter().enumerate() {
            if decl.name.is_empty() || decl.ty.as_ref().map(|t| t.dtype) != Some(DType::F32) {
                continue;
            }
            let o = Outlet::new(id, slot as u32);
            let mut uses = Vec::new();
            let mut captured = false;
            for (c, port) in g.consumers(o) {
                match port {
                    Port::Capture(_) => captured = true,
                    Port::Input(i) if g.node(c).op != Op::QuantizeLinear => uses.push((c, i)),
                    Port::Input(_) => {}
                }
            }
            let outputs: Vec<usize> = g
                .outputs()
                .iter()
                .enumerate()
                .filter(|(_, x)| x.operand == Operand::Value(o))
                .map(|(i, _)| i)
                .collect();
            let wanted = !outputs.is_empty() || uses.iter().any(|&(c, _)| quantizable(&g.node(c).op));
            if outputs.is_empty() && adds_bias(g, &node.op, &uses) {
                continue;
            }
            if wanted && !captured {
                out.push(Site { outlet: o, uses, outputs });
            }
        }
    }
    Ok(out)
}

/// A MatMul, Gemm or Conv result whose only use adds a constant (its bias, written as a separate
/// Add): the sum is quantized, not the product.
fn adds_bias(g: &Graph, op: &Op, uses: &[(NodeId, u32)]) -> bool {
    let [(c, _)] = uses[..] else { return false };
    let add = g.node(c);
    matches!(op, Op::MatMul | Op::Gemm | Op::Conv)
        && add.op == Op::Add
        && add.inputs().iter().any(|o| matches!(o, Operand::Const(_)))
}

/// How a site gets its parameters.
#[derive(Clone, Debug)]
enum Plan {
    /// A QuantizeLinear already reads the tensor: its float uses read its DequantizeLinear.
    Reuse { q: NodeId },
    /// The parameters of the QuantizeLinear `q` that quantizes the result of `through`.
    Borrow { q: NodeId, through: NodeId },
    /// The parameters of another site's new pair, through `through`.
    Follow { site: usize, through: NodeId },
    /// The signed, symmetric QuantizeLinear `q` reads the tensor, which is non-negative: half
    /// its levels are unused. `q` and its DequantizeLinear nodes get measured `uint8` parameters
    /// with zero point 0, and the float uses read its DequantizeLinear.
    Requantize { q: NodeId },
    /// Measured.
    Measure,
}

impl Plan {
    fn measured(&self) -> bool {
        matches!(self, Plan::Measure | Plan::Requantize { .. })
    }
}

/// Decides, for each site, whether it reuses parameters or needs measuring.
fn plan(g: &Graph, sites: &[Site]) -> Vec<Plan> {
    let index: HashMap<Outlet, usize> = sites.iter().enumerate().map(|(i, s)| (s.outlet, i)).collect();
    let q_of = |o: Outlet| {
        g.consumers(o)
            .into_iter()
            .map(|(c, _)| c)
            .find(|&c| activation_q(g, c).is_some() && g.node(c).input(0) == Operand::Value(o))
    };
    let mut plans = vec![Plan::Measure; sites.len()];
    for (i, s) in sites.iter().enumerate().rev() {
        if let Some(q) = q_of(s.outlet) {
            plans[i] = Plan::Reuse { q };
            continue;
        }
        let [(c, 0)] = s.uses[..] else { continue };
        if !s.outputs.is_empty() || !passes_params(g, g.node(c)) || g.node(c).outputs.len() != 1 {
            continue;
        }
        let next = Outlet::new(c, 0);
        if let Some(&j) = index.get(&next) {
            plans[i] = Plan::Follow { site: j, through: c };
        } else if let Some(q) = q_of(next) {
            plans[i] = Plan::Borrow { q, through: c };
        }
    }
    plans
}

/// Running statistics of one tensor.
#[derive(Clone, Debug)]
struct Stats {
    min: f32,
    max: f32,
    count: u64,
    /// With a histogram method, in the second pass: counts over `hist_lo..hist_hi` (of |x| when
    /// symmetric).
    hist: Vec<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { min: f32::INFINITY, max: f32::NEG_INFINITY, count: 0, hist: Vec::new() }
    }
}

impl Stats {
    fn merge(&mut self, o: &Stats) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.count += o.count;
        if self.hist.is_empty() {
            self.hist.clone_from(&o.hist);
        } else {
            for (a, b) in self.hist.iter_mut().zip(&o.hist) {
                *a += b;
            }
        }
    }
}

/// The histogram's span for a tensor: `[0, max |x|]` when symmetric, `[min, max]` otherwise.
fn hist_span(s: &Stats, symmetric: bool) -> (f32, f32) {
    if symmetric {
        (0.0, s.min.abs().max(s.max.abs()))
    } else {
        (s.min, s.max)
    }
}

fn observe(v: &Value, st: &mut Stats, span: Option<(f32, f32)>, symmetric: bool) {
    let Some(a) = v.as_f32() else { return };
    if let Some((lo, hi)) = span {
        if st.hist.is_empty() {
            st.hist = vec![0; HIST_BINS];
        }
        let width = (hi - lo) as f64 / HIST_BINS as f64;
        for &x in a.iter() {
            let x = if symmetric { x.abs() } else { x };
            let b = if width > 0.0 { ((x - lo) as f64 / width) as usize } else { 0 };
            st.hist[b.min(HIST_BINS - 1)] += 1;
        }
    } else {
        for &x in a.iter() {
            st.min = st.min.min(x);
            st.max = st.max.max(x);
        }
        st.count += a.len() as u64;
    }
}

/// The range the method keeps from a tensor's statistics.
fn range(st: &Stats, method: Method, symmetric: bool) -> (f32, f32) {
    let (lo, hi) = hist_span(st, symmetric);
    let edge = |b: usize| lo + (hi - lo) * (b as f32 / HIST_BINS as f32);
    let total: u64 = st.hist.iter().sum();
    // The first bin at which the cumulative count reaches `frac` of all.
    let bin_at = |frac: f64| {
        let mut acc = 0u64;
        for (b, &n) in st.hist.iter().enumerate() {
            acc += n;
            if acc as f64 >= frac * total as f64 {
                return b;
            }
        }
        HIST_BINS - 1
    };
    let clip = |t: f32| (st.min.max(-t), st.max.min(t));
    match method {
        Method::MinMax => (st.min, st.max),
        _ if total == 0 => (st.min, st.max),
        Method::Percentile(p) if symmetric => clip(edge(bin_at(p / 100.0) + 1)),
        Method::Percentile(p) => {
            let cut = (100.0 - p) / 200.0;
            (edge(bin_at(cut)), edge(bin_at(1.0 - cut) + 1))
        }
        Method::Entropy | Method::Mse => {
            let abs = if symmetric { st.hist.clone() } else { abs_histogram(st) };
            let amax = st.min.abs().max(st.max.abs());
            let bins = if method == Method::Entropy {
                entropy_threshold(&abs)
            } else {
                // Levels on one side of zero: 127 for symmetric int8 or a signed tensor
                // stretched over 255 levels, 255 for a one-signed tensor.
                let one_sided = st.min >= 0.0 || (!symmetric && st.max <= 0.0);
                mse_threshold(&abs, if one_sided { 255.0 } else { 127.0 })
            };
            clip(bins as f32 / HIST_BINS as f32 * amax)
        }
    }
}

/// The number of |x| histogram bins to keep (a threshold at that bin's upper edge) that
/// minimizes the squared error of quantizing to `levels` steps between 0 and the threshold:
/// `Σ n·(centre − t)²` over the clipped bins plus `step²/12` per value within. In bin widths.
fn mse_threshold(hist: &[u64], levels: f64) -> usize {
    let n = hist.len();
    // Suffix sums of count, count·centre and count·centre² for the clipped part.
    let (mut c0, mut c1, mut c2) = (0f64, 0f64, 0f64);
    let mut best = (f64::INFINITY, n);
    let total: f64 = hist.iter().map(|&c| c as f64).sum();
    for i in (1..=n).rev() {
        let t = i as f64;
        let within = total - c0;
        let clipped = c2 - 2.0 * t * c1 + t * t * c0;
        let err = clipped + within * (t / levels).powi(2) / 12.0;
        if err < best.0 {
            best = (err, i);
        }
        let (c, centre) = (hist[i - 1] as f64, i as f64 - 0.5);
        c0 += c;
        c1 += c * centre;
        c2 += c * centre * centre;
    }
    best.1
}

/// An |x| histogram over `[0, max |x|]` from an x histogram over `[min, max]` (each bin's count
/// goes to the bin of its centre's magnitude).
fn abs_histogram(st: &Stats) -> Vec<u64> {
    let amax = st.min.abs().max(st.max.abs());
    let mut out = vec![0u64; HIST_BINS];
    if amax <= 0.0 {
        return out;
    }
    for (b, &n) in st.hist.iter().enumerate() {
        let centre = st.min + (st.max - st.min) * ((b as f32 + 0.5) / HIST_BINS as f32);
        let t = ((centre.abs() / amax) * HIST_BINS as f32) as usize;
        out[t.min(HIST_BINS - 1)] += n;
    }
    out
}

/// TensorRT's entropy calibration: the number of |x| histogram bins to keep (a threshold at
/// that bin's upper edge) that minimizes KL(P‖Q), where P is the histogram clipped there (the
/// outliers added to its last bin) and Q is P's first bins quantized to
/// [`ENTROPY_QUANTIZED_BINS`] levels and expanded back over the bins that were not empty.
///
/// As pytorch-quantization does, the first bin counts as the second: the zeros a Relu makes
/// would otherwise dominate P and pull the threshold down.
fn entropy_threshold(hist: &[u64]) -> usize {
    let mut hist = hist.to_vec();
    hist[0] = hist[1];
    let hist = &hist[..];
    let n = hist.len();
    let levels = ENTROPY_QUANTIZED_BINS;
    let mut best = (f64::INFINITY, n);
    let mut outliers: u64 = hist[levels..].iter().sum();
    for i in levels..=n {
        if i > levels {
            outliers -= hist[i - 1];
        }
        let mut p: Vec<f64> = hist[..i].iter().map(|&c| c as f64).collect();
        p[i - 1] += outliers as f64;
        let mut q = vec![0f64; i];
        for j in 0..levels {
            let (start, end) = (j * i / levels, ((j + 1) * i / levels).max(j * i / levels + 1));
            let sum: u64 = hist[start..end].iter().sum();
            let nonzero = hist[start..end].iter().filter(|&&c| c > 0).count();
            if nonzero > 0 {
                for k in start..end {
                    if hist[k] > 0 {
                        q[k] = sum as f64 / nonzero as f64;
                    }
                }
            }
        }
        let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for k in 0..i {
            if p[k] > 0.0 {
                let (pk, qk) = (p[k] / ps, q[k] / qs);
                // A bin Q leaves empty that P fills (the outliers' bin): a large, finite penalty.
                kl += pk * (pk / qk.max(1e-12)).ln();
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// Scale and zero point for `[lo, hi]` (widened to hold 0), as onnxruntime's quantizer computes
/// them: symmetric `max(|lo|, |hi|) / 127` with zero point 0, or `(hi − lo) / 255` with the zero
/// point rounding `qmin − lo / scale`.
fn params_for(lo: f32, hi: f32, dtype: DType, symmetric: bool) -> (f32, i64, [f32; 2]) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let (qmin, qmax) = dtype.int_range().expect("an integer type");
    if symmetric {
        let amax = lo.abs().max(hi);
        let scale = amax / 127.0;
        return (scale, 0, [-amax, amax]);
    }
    let scale = (hi - lo) / (qmax - qmin) as f32;
    let zp = (qmin as f64 - lo as f64 / scale as f64).round_ties_even().clamp(qmin as f64, qmax as f64) as i64;
    (scale, zp, [lo, hi])
}

/// Calibrates `graph` (read from `path`) in place: folds BatchNormalization into the Conv before
/// it, finds the [`sites`], measures those that reuse no parameters on the samples and inserts
/// the Q/DQ pairs. `progress` is called with (samples done, samples in all) per pass over the
/// samples (two for the histogram methods).
pub fn calibrate(
    graph: &mut Graph,
    path: &Path,
    opts: &CalibrateOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<Calibration, Error> {
    // `cleanup` makes quantized weights integer constants, which `fold-bn` needs.
    let fold = qdqc_passes::PassManager::parse("cleanup,fold-bn").map_err(Error::UnknownPass)?;
    fold.run_with(graph, &Default::default()).map_err(|error| Error::Pass { path: path.to_path_buf(), error })?;
    let bad = |msg: String| Error::Calibration { path: path.to_path_buf(), msg };
    let sites = sites(graph).map_err(|error| Error::InvalidGraph { path: path.to_path_buf(), error })?;
    let mut plans = plan(graph, &sites);
    let (dtype, symmetric) = style(graph);
    let limit = opts.max_tensor_bytes.unwrap_or(qdqc_eval::DEFAULT_MAX_TENSOR_BYTES);
    let (samples, _) = opts.samples.inputs(graph, path, limit, "calibration")?;
    // Every site is observed (the report shows what each saw); only measured ones need histograms.
    let names: Vec<String> = sites.iter().map(|s| graph.value(s.outlet).name.clone()).collect();
    let interp = Interpreter::with_limit(graph, limit)
        .map_err(|error| Error::Run { path: path.to_path_buf(), error: error.into() })?;
    let keep: Arc<HashSet<String>> = Arc::new(names.iter().cloned().collect());
    let run_opts = RunOptions { keep: Some(keep), max_tensor_bytes: Some(limit), ..Default::default() };
    let passes = if opts.method.needs_histogram() { 2 } else { 1 };
    let mut stats = vec![Stats::default(); sites.len()];
    for pass in 0..passes {
        let spans: Option<Vec<(f32, f32)>> =
            (pass == 1).then(|| stats.iter().map(|s| hist_span(s, symmetric)).collect());
        let plans_now = plans.clone();
        let chunk = rayon::current_num_threads().max(1);
        let mut done = 0;
        for batch in samples.chunks(chunk) {
            let part: Vec<Vec<Stats>> = batch
                .par_iter()
                .map(|inputs| -> Result<Vec<Stats>, Error> {
                    let r = interp
                        .run(inputs, &run_opts)
                        .map_err(|error| Error::Run { path: path.to_path_buf(), error: error.into() })?;
                    let mut st = vec![Stats::default(); names.len()];
                    for (i, name) in names.iter().enumerate() {
                        let hist = spans.as_ref().filter(|_| plans_now[i].measured()).map(|s| s[i]);
                        if pass == 1 && hist.is_none() {
                            continue;
                        }
                        if let Some(v) = r.values.get(name) {
                            observe(v, &mut st[i], hist, symmetric);
                        }
                    }
                    Ok(st)
                })
                .collect::<Result<_, _>>()?;
            for st in part {
                for (a, b) in stats.iter_mut().zip(&st) {
                    a.merge(b);
                }
            }
            done += batch.len();
            progress(done, samples.len());
        }
        if pass == 0 {
            for (i, s) in stats.iter().enumerate() {
                let what = || describe(graph, &sites[i]);
                if s.count == 0 {
                    return Err(bad(format!(
                        "{} takes no value on the {} samples (it is empty on each): nothing to calibrate it from",
                        what(),
                        samples.len()
                    )));
                }
                if !(s.min.is_finite() && s.max.is_finite()) {
                    return Err(bad(format!("{} takes non-finite values on the samples", what())));
                }
                // A non-negative tensor that the model quantizes as signed symmetric int8 uses
                // half the levels; its QuantizeLinear is requantized (the residual stream of a
                // ResNet after its Relu, which the identity branch now reads quantized too).
                if let Plan::Reuse { q } = plans[i] {
                    let wasteful = activation_q(graph, q).is_some_and(|p| p.dtype == DType::I8 && p.zero_point == 0);
                    if wasteful && s.min >= 0.0 {
                        plans[i] = Plan::Requantize { q };
                    }
                }
                if plans[i].measured() && s.min == s.max {
                    return Err(bad(format!(
                        "{} takes the single value {} on all {} samples: its range is empty; give samples that exercise it",
                        what(),
                        s.min + 0.0,
                        samples.len()
                    )));
                }
            }
        }
    }
    let mut chosen: Vec<Option<(Params, [f32; 2], String)>> = vec![None; sites.len()];
    for i in (0..sites.len()).rev() {
        let s = &stats[i];
        chosen[i] = Some(match plans[i] {
            Plan::Measure | Plan::Requantize { .. } => {
                // A graph output is never clipped (its largest values are often the answer).
                let method = if sites[i].outputs.is_empty() { opts.method } else { Method::MinMax };
                let (lo, hi) = range(s, method, symmetric);
                // One-signed tensors take uint8 with zero point 0 (all levels used); graph
                // outputs take the model's integer type, asymmetric (no op reads them).
                let (dtype, symmetric) = if s.min >= 0.0 {
                    (DType::U8, false)
                } else if !sites[i].outputs.is_empty() {
                    (dtype, false)
                } else {
                    (dtype, symmetric)
                };
                let (scale, zero_point, r) = params_for(lo, hi, dtype, symmetric);
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(bad(format!(
                        "{}: range [{lo}, {hi}] gives no usable scale",
                        describe(graph, &sites[i])
                    )));
                }
                let source = match plans[i] {
                    Plan::Requantize { q } => format!(
                        "{method}; replaces the int8 symmetric parameters of QuantizeLinear '{}' (half its levels unused on this non-negative tensor)",
                        graph.node(q).ident()
                    ),
                    _ => method.to_string(),
                };
                (Params { scale, zero_point, dtype }, r, source)
            }
            Plan::Reuse { q } => {
                let p = activation_q(graph, q).expect("planned on an activation Q");
                (p, represented(p), format!("reuses QuantizeLinear '{}'", graph.node(q).ident()))
            }
            Plan::Borrow { q, through } => {
                let p = activation_q(graph, q).expect("planned on an activation Q");
                let how = format!(
                    "the parameters of QuantizeLinear '{}' after {} '{}'",
                    graph.node(q).ident(),
                    graph.node(through).op,
                    graph.node(through).ident()
                );
                (p, represented(p), how)
            }
            Plan::Follow { site, through } => {
                let (p, r, _) = chosen[site].clone().expect("later sites are chosen first");
                let how = format!(
                    "the parameters chosen for '{}' after {} '{}'",
                    names[site],
                    graph.node(through).op,
                    graph.node(through).ident()
                );
                (p, r, how)
            }
        });
    }
    let mut inserted = Vec::with_capacity(sites.len());
    for (i, site) in sites.iter().enumerate() {
        let (p, range, source) = chosen[i].clone().expect("every site is chosen");
        let producer = describe_producer(graph, site.outlet);
        match plans[i] {
            Plan::Reuse { q } => reuse_dq(graph, site, q),
            Plan::Requantize { q } => requantize(graph, q, p).and_then(|()| reuse_dq(graph, site, q)),
            Plan::Borrow { q, .. } => {
                let node = graph.node(q);
                let (s, z) = (node.input(1), node.input(2));
                insert_pair(graph, site, p, Some((s, z)))
            }
            Plan::Follow { .. } | Plan::Measure => insert_pair(graph, site, p, None),
        }
        .map_err(|error| Error::InvalidGraph { path: path.to_path_buf(), error })?;
        inserted.push(Inserted {
            tensor: names[i].clone(),
            producer,
            observed: [stats[i].min, stats[i].max],
            range,
            scale: p.scale,
            zero_point: p.zero_point,
            dtype: p.dtype.to_string(),
            source,
        });
    }
    Ok(Calibration {
        method: opts.method.to_string(),
        samples: samples.len(),
        dtype: dtype.to_string(),
        symmetric,
        inserted,
    })
}

/// Gives the QuantizeLinear `q` and the DequantizeLinear nodes that read it the parameters `p`
/// (new constants; the old ones may have other users).
fn requantize(g: &mut Graph, q: NodeId, p: Params) -> Result<(), qdqc_ir::GraphError> {
    let base = g.value(Outlet::new(q, 0)).name.clone();
    let s = g.add_initializer(&format!("{base}_scale"), Tensor::from_f32("", &[], &[p.scale]));
    let z = g.add_initializer(&format!("{base}_zero_point"), Tensor::from_i64("", p.dtype, &[], &[p.zero_point]));
    let (s, z) = (Operand::Const(s), Operand::Const(z));
    let dqs: Vec<NodeId> = g
        .consumers(Outlet::new(q, 0))
        .into_iter()
        .map(|(c, _)| c)
        .filter(|&c| g.node(c).op == Op::DequantizeLinear)
        .collect();
    for id in std::iter::once(q).chain(dqs) {
        g.set_input(id, 1, s);
        g.set_input(id, 2, z);
    }
    if let Some(t) = g.value_mut(Outlet::new(q, 0)).ty.as_mut() {
        t.dtype = p.dtype;
    }
    Ok(())
}

/// The range a per-tensor parameter set represents: its integer type's extremes dequantized.
pub(crate) fn represented(p: Params) -> [f32; 2] {
    let (qmin, qmax) = p.dtype.int_range().expect("an integer type");
    [(qmin - p.zero_point) as f32 * p.scale, (qmax - p.zero_point) as f32 * p.scale]
}

fn describe_producer(g: &Graph, o: Outlet) -> String {
    let node = g.node(o.node);
    if node.op == Op::Input {
        "graph input".to_string()
    } else {
        format!("{} '{}'", node.op, node.ident())
    }
}

fn describe(g: &Graph, s: &Site) -> String {
    format!("tensor '{}' (output of {})", g.value(s.outlet).name, describe_producer(g, s.outlet))
}

/// Points the site's float uses (and graph outputs) at a DequantizeLinear of the QuantizeLinear
/// `q` that already reads it: an existing one with the same parameters, or a new one.
fn reuse_dq(g: &mut Graph, site: &Site, q: NodeId) -> Result<(), qdqc_ir::GraphError> {
    let q_out = Outlet::new(q, 0);
    let (s, z) = (g.node(q).input(1), g.node(q).input(2));
    let existing = g.consumers(q_out).into_iter().map(|(c, _)| c).find(|&c| {
        let n = g.node(c);
        n.op == Op::DequantizeLinear && n.input(0) == Operand::Value(q_out) && n.input(1) == s && n.input(2) == z
    });
    let dq = match existing {
        Some(dq) if site.outputs.is_empty() => Operand::Value(Outlet::new(dq, 0)),
        _ => add_dq(g, site, Operand::Value(q_out), s, z)?,
    };
    rewire(g, site, dq)
}

/// Inserts QuantizeLinear → DequantizeLinear on the site with parameters `p` (the constants
/// `shared` when given) and points the float uses at the DequantizeLinear.
fn insert_pair(
    g: &mut Graph,
    site: &Site,
    p: Params,
    shared: Option<(Operand, Operand)>,
) -> Result<(), qdqc_ir::GraphError> {
    let base = g.value(site.outlet).name.clone();
    let (s, z) = match shared {
        Some(sz) => sz,
        None => {
            let s = g.add_initializer(&format!("{base}_calib_scale"), Tensor::from_f32("", &[], &[p.scale]));
            let z = g.add_initializer(
                &format!("{base}_calib_zero_point"),
                Tensor::from_i64("", p.dtype, &[], &[p.zero_point]),
            );
            (Operand::Const(s), Operand::Const(z))
        }
    };
    let shape = g.value(site.outlet).ty.as_ref().and_then(|t| t.shape.clone());
    let q_name = g.fresh_name(&format!("{base}_calib_q"));
    let q = g.add_node(
        Op::QuantizeLinear,
        NodeMeta { name: Some(q_name.as_str().into()), ..Default::default() },
        Vec::new(),
        vec![Operand::Value(site.outlet), s, z],
        vec![Decl::typed(q_name.clone(), TensorType { dtype: p.dtype, shape })],
    )?;
    let dq = add_dq(g, site, Operand::Value(Outlet::new(q, 0)), s, z)?;
    rewire(g, site, dq)
}

fn add_dq(g: &mut Graph, site: &Site, q: Operand, s: Operand, z: Operand) -> Result<Operand, qdqc_ir::GraphError> {
    let base = g.value(site.outlet).name.clone();
    let shape = g.value(site.outlet).ty.as_ref().and_then(|t| t.shape.clone());
    let name = g.fresh_name(&format!("{base}_calib_dq"));
    let dq = g.add_node(
        Op::DequantizeLinear,
        NodeMeta { name: Some(name.as_str().into()), ..Default::default() },
        Vec::new(),
        vec![q, s, z],
        vec![Decl::typed(name.clone(), TensorType { dtype: DType::F32, shape })],
    )?;
    Ok(Operand::Value(Outlet::new(dq, 0)))
}

/// Points the site's float uses at `dq`; a graph output that was the site becomes `dq`, which
/// takes the output's name (the float tensor gets a fresh one).
fn rewire(g: &mut Graph, site: &Site, dq: Operand) -> Result<(), qdqc_ir::GraphError> {
    for &(c, port) in &site.uses {
        g.set_input(c, port as usize, dq);
    }
    if !site.outputs.is_empty() {
        let name = g.value(site.outlet).name.clone();
        let fresh = g.fresh_name(&format!("{name}_float"));
        g.rename(Operand::Value(site.outlet), &fresh)?;
        g.rename(dq, &name)?;
        for &i in &site.outputs {
            g.set_output(i, dq);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A residual block: the identity branch is the graph input (which a Q already reads), the
    /// Add feeds a Relu whose result the next conv's Q reads, and the output is a Conv.
    const BLOCK: &str = "graph \"block\" opset(ai.onnx=17) {
  input %x: f32[1,2,4,4]
  const %s: f32[] 0.05
  const %z: i8[] 0
  const %w: i8[2,2,1,1] [1, 2, 3, 4]
  const %ws: f32[] 0.01
  %xq = QuantizeLinear(%x, %s, %z)
  %xd = DequantizeLinear(%xq, %s, %z)
  %wd = DequantizeLinear(%w, %ws, %z)
  %c = Conv(%xd, %wd)
  %a = Add(%c, %x)
  %r = Relu(%a)
  %rq = QuantizeLinear(%r, %s, %z)
  %rd = DequantizeLinear(%rq, %s, %z)
  %c2 = Conv(%rd, %wd)
  output %c2
}
";

    fn planned(text: &str) -> Vec<String> {
        let g = qdqc_ir::text::parse(text).unwrap();
        let sites = sites(&g).unwrap();
        let plans = plan(&g, &sites);
        sites
            .iter()
            .zip(plans)
            .map(|(s, p)| {
                let how = match p {
                    Plan::Reuse { q } => format!("reuse {}", g.node(q).ident()),
                    Plan::Borrow { q, through } => {
                        format!("borrow {} through {}", g.node(q).ident(), g.node(through).ident())
                    }
                    Plan::Follow { site, .. } => format!("follow {}", g.value(sites[site].outlet).name),
                    Plan::Requantize { .. } => "requantize".to_string(),
                    Plan::Measure => "measure".to_string(),
                };
                format!("{}: {how}", g.value(s.outlet).name)
            })
            .collect()
    }

    #[test]
    fn a_residual_block_reuses_the_scales_the_model_fixes_and_measures_the_rest() {
        assert_eq!(planned(BLOCK), ["x: reuse xq", "c: measure", "a: borrow rq through r", "c2: measure"]);
    }

    #[test]
    fn a_bias_add_quantizes_the_sum_and_a_clip_passes_its_parameters() {
        let text = "graph \"fc\" opset(ai.onnx=17) {
  input %x: f32[1,4]
  const %s: f32[] 0.05
  const %z: i8[] 0
  const %w: i8[4,4] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
  const %b: f32[4] [0.1, 0.2, 0.3, 0.4]
  const %lo: f32[] 0.0
  const %hi: f32[] 6.0
  %xq = QuantizeLinear(%x, %s, %z)
  %xd = DequantizeLinear(%xq, %s, %z)
  %wd = DequantizeLinear(%w, %s, %z)
  %m = MatMul(%xd, %wd)
  %y = Add(%m, %b)
  %k = Clip(%y, %lo, %hi)
  %kq = QuantizeLinear(%k, %s, %z)
  %kd = DequantizeLinear(%kq, %s, %z)
  %o = MatMul(%kd, %wd)
  output %o
}
";
        assert_eq!(planned(text), ["y: borrow kq through k", "o: measure"]);
    }

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse("minmax"), Ok(Method::MinMax));
        assert_eq!(Method::parse("percentile"), Ok(Method::Percentile(DEFAULT_PERCENTILE)));
        assert_eq!(Method::parse("percentile:99.9"), Ok(Method::Percentile(99.9)));
        assert!(Method::parse("percentile:0").is_err());
        assert!(Method::parse("kl").is_err());
    }

    #[test]
    fn parameters_follow_onnxruntime() {
        // u8 asymmetric: [-1, 3] → scale 4/255, zero point round(255/4) = 64.
        let (s, z, r) = params_for(-1.0, 3.0, DType::U8, false);
        assert_eq!((s, z, r), (4.0 / 255.0, 64, [-1.0, 3.0]));
        // The range always holds 0.
        assert_eq!(params_for(0.5, 2.0, DType::U8, false).1, 0);
        // i8 symmetric: max |x| / 127.
        assert_eq!(params_for(-0.5, 2.54, DType::I8, true), (0.02, 0, [-2.54, 2.54]));
    }

    #[test]
    fn percentile_cuts_the_tail_and_entropy_clips_outliers() {
        // 10,000 values in [0, 1) and one at 100: |x| histogram over [0, 100].
        let mut st = Stats { min: 0.0, max: 100.0, count: 10_001, hist: vec![0; HIST_BINS] };
        for k in 0..10_000 {
            let x = k as f32 / 10_000.0;
            st.hist[((x / 100.0) * HIST_BINS as f32) as usize] += 1;
        }
        st.hist[HIST_BINS - 1] += 1;
        let (_, hi) = range(&st, Method::Percentile(99.9), true);
        assert!(hi < 2.0, "99.9% of the values are below 1: {hi}");
        assert_eq!(range(&st, Method::Percentile(100.0), true).1, 100.0);
        let (_, hi) = range(&st, Method::Entropy, true);
        assert!(hi < 50.0, "entropy clips the lone outlier: {hi}");
        assert_eq!(range(&st, Method::MinMax, true), (0.0, 100.0));
    }
}
