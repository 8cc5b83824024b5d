//! qdqc's library API: [`compile`] a QDQ model, [`stats`] about a model, [`diff`] of two models'
//! text forms, [`verify`] and [`accuracy`] measurements, [`calibrate`] a partial placement. The
//! `qdqc` binary only parses flags and prints what these return.
//!
//! Compile a model and check the result with the reference interpreter:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/resnet_block.u8.pc.onnx"));
//! let model = qdqc::load(path)?;
//! let original = model.graph.clone();
//! let compiled = qdqc::compile(model, path, &qdqc::Options::default())?;
//! println!("{} nodes, was {}", compiled.model.graph.op_count(), compiled.input_nodes);
//! assert_eq!(compiled.report_stats().float_compute, 0);
//!
//! let samples: Vec<_> = (0..2).map(|k| qdqc::verify::random_inputs(&original, k, 1)).collect::<Result<_, _>>()?;
//! let report = qdqc::verify::verify(&original, &compiled.model.graph, &samples, 0, &|_| {})?;
//! assert!(report.passed);
//! # Ok(()) }
//! ```
//!
//! [`compile_file`] does the same from file to file (atomic writes, external data, verification
//! and the speed check); `compiler/examples/embed.rs` runs chosen passes and one of its own.

pub mod accuracy;
pub mod alloc;
pub mod calibrate;
pub mod diff;
pub mod html;
pub mod inputs;
pub mod keep_float;
pub mod report;
pub mod speed;
pub mod stats;
pub mod verify;

use qdqc_ir::onnx::{self, FileError, FileKey, LoadOptions, Model, SaveOptions, SavePlan};
use qdqc_passes::{Approx, Config, Instrument, OrtLevel, PassError, PassManager, PassRun, Remarks, Target};
use std::path::{Path, PathBuf};

pub use qdqc_eval as eval;
pub use qdqc_ir as ir;
pub use qdqc_passes as passes;

/// What to run and how to write the result.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Comma-separated pass names, `none` for a lossless round trip, or `+NAME`/`-NAME` items
    /// that edit the named pipeline; `None` for the named pipeline.
    pub passes: Option<String>,
    /// A named pipeline (`O0`, `O2`, `O3`; the `O` may be left out) when `passes` is `None`; `None`
    /// for the default (`O2`).
    pub opt_level: Option<String>,
    /// What the output may contain: `ort` (default) or standard `onnx` ops only.
    pub target: Target,
    /// The approximations the compile may make (none by default: every rewrite is exact).
    pub approx: Approx,
    /// The onnxruntime level the output will run at (`--target ort`): the measured costs the
    /// choices between forms read.
    pub ort_level: OrtLevel,
    /// `--print-after`, `--diff`, `--stop-after`.
    pub instrument: Instrument,
    pub load: LoadOptions,
    /// How the output is written; `replace_input` allows the output to be the input itself.
    pub save: SaveOptions,
    /// Complete the model's Q/DQ placement by calibration before compiling
    /// ([`calibrate::calibrate`]). This changes what the model computes; with verification, the
    /// compiled model is measured against the input model ([`VerifyOptions::min_sqnr`]).
    pub calibrate: Option<calibrate::CalibrateOptions>,
    /// Tensors (or nodes) to leave in float ([`keep_float::keep_float`]), after calibration.
    pub keep_float: Vec<String>,
    /// The float model the QDQ model was quantized from: `keep_float` takes the weights of the
    /// ops it keeps from it.
    pub float_model: Option<PathBuf>,
}

/// The approximations a compile allows ([`Options::approx`]): those `spec` names (`--approx`),
/// else every one when calibrating (calibration changes the numerics already and is measured
/// against the input model), else none.
pub fn approx(spec: Option<&str>, calibrating: bool) -> Result<Approx, Error> {
    match spec {
        Some(spec) => Approx::parse(spec).map_err(Error::UnknownPass),
        None if calibrating => Ok(Approx::All),
        None => Ok(Approx::None),
    }
}

/// The version of the layout of compile's `--report`, `--remarks --json`, `stats --json` and
/// `verify --json` (docs/json.md); `accuracy --json` has its own
/// ([`accuracy::SCHEMA_VERSION`]).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Why qdqc failed. [`Error::exit_code`] maps each to the CLI's exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file cannot be read, decoded or makes no sense (bad input: exit 2).
    #[error("{0}")]
    Model(#[from] FileError),
    /// The model decodes but is not a valid graph (bad input: exit 2).
    #[error("{}: {error}", path.display())]
    InvalidGraph { path: PathBuf, error: qdqc_ir::GraphError },
    /// The model claims what qdqc cannot compile: IR version, opsets, attributes, no outputs
    /// ([`qdqc_ir::validate`]; bad input: exit 2).
    #[error("{}: {error}", path.display())]
    Unsupported { path: PathBuf, error: qdqc_ir::validate::Error },
    /// An unknown pass name (bad usage: exit 2).
    #[error("{0}")]
    UnknownPass(PassError),
    /// A pass failed or left an invalid graph: a qdqc bug, reported with the pass name (exit 1).
    #[error("{}: {error}", path.display())]
    Pass { path: PathBuf, error: PassError },
    /// The models could not be run or compared (an op the interpreter lacks, bad inputs: exit 2).
    #[error("{}: {error}", path.display())]
    Run { path: PathBuf, error: verify::VerifyError },
    /// An input or output file (`.npy`, report) could not be read or written (exit 2).
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// The compiled model does not compute what the original computed (exit 1).
    #[error("{}: verification failed: tensor '{tensor}' moved beyond tolerance ({steps}){}", path.display(),
        if *written { "; the output was written anyway (--force)" } else { "; nothing was written" })]
    VerificationFailed { path: PathBuf, tensor: String, steps: String, written: bool },
    /// An input sample or a model does not fit the model it goes with: input names, shapes,
    /// dtypes, values that are not finite, models whose inputs or outputs differ (exit 2).
    #[error("{}: {msg}", path.display())]
    Mismatch { path: PathBuf, msg: String },
    /// Bad usage of the library or the command line (exit 2).
    #[error("{0}")]
    Usage(String),
    /// `--check-speed` could not measure (no Python with onnxruntime, a model onnxruntime
    /// refuses: exit 2).
    #[error("--check-speed: {0}")]
    Speed(String),
    /// The calibration samples cannot calibrate the model: a tensor they never reach, or on
    /// which they take one value only (bad input: exit 2).
    #[error("{}: calibration: {msg}", path.display())]
    Calibration { path: PathBuf, msg: String },
    /// A calibrated model's output is further from the input model's than allowed (exit 1).
    #[error("{}: output '{output}' has SQNR {sqnr_db:.2} dB against the input model, below --min-sqnr {min_db} dB{}", path.display(),
        if *written { "; the output was written anyway (--force)" } else { "; nothing was written" })]
    BelowMinSqnr { path: PathBuf, output: String, sqnr_db: f64, min_db: f64, written: bool },
}

impl Error {
    /// The file the error concerns, when one does (the model, a sample, a report).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Model(e) => Some(&e.path),
            Error::InvalidGraph { path, .. }
            | Error::Unsupported { path, .. }
            | Error::Pass { path, .. }
            | Error::Run { path, .. }
            | Error::File { path, .. }
            | Error::VerificationFailed { path, .. }
            | Error::Mismatch { path, .. }
            | Error::Calibration { path, .. }
            | Error::BelowMinSqnr { path, .. } => Some(path),
            Error::UnknownPass(_) | Error::Usage(_) | Error::Speed(_) => None,
        }
    }

    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::Model(e) => e.error.node(),
            Error::InvalidGraph { error, .. } => error.node(),
            Error::Unsupported { error, .. } => error.node(),
            Error::Pass { error, .. } => error.node(),
            Error::Run { error: verify::VerifyError::Eval(e), .. } => e.node(),
            _ => None,
        }
    }

    /// The CLI's exit status for this error: 2 for bad input or usage, 1 for a failed check or a
    /// qdqc bug.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Model(_) | Error::InvalidGraph { .. } | Error::Unsupported { .. } | Error::UnknownPass(_) => 2,
            Error::Pass { .. } | Error::VerificationFailed { .. } | Error::BelowMinSqnr { .. } => 1,
            Error::Run { .. }
            | Error::File { .. }
            | Error::Mismatch { .. }
            | Error::Usage(_)
            | Error::Speed(_)
            | Error::Calibration { .. } => 2,
        }
    }
}

/// Loads a model and checks that its graph is valid (import inferred and checked its types).
pub fn load(path: &Path) -> Result<Model, Error> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model, Error> {
    let model = onnx::load_with(path, opts)?;
    model.graph.verify_structure().map_err(|error| Error::InvalidGraph { path: path.to_path_buf(), error })?;
    Ok(model)
}

/// Whether two paths name the same existing file (through links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    matches!((FileKey::of(a), FileKey::of(b)), (Some(x), Some(y)) if x == y)
}

/// Checks, before any work, that a file can be written at `path`: its folder exists and can be
/// written, and `path` is not a folder. Nothing is left behind.
pub fn check_writable(path: &Path) -> Result<(), Error> {
    let err = |msg: String| Error::File { path: path.to_path_buf(), msg };
    if path.file_name().is_none() {
        return Err(err("is not a file name".into()));
    }
    if path.is_dir() {
        return Err(err("is a directory".into()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(err(format!("folder '{}' does not exist", dir.display())));
    }
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| err(format!("cannot write in folder '{}': {}", dir.display(), std::io::Error::from(e.kind()))))
}

/// The result of a compilation.
#[derive(Debug)]
pub struct Compiled {
    pub model: Model,
    /// Node count of the input graph (graph inputs excluded).
    pub input_nodes: usize,
    /// Statistics of the input graph (for [`report::Report`]).
    pub before: stats::Stats,
    /// Nodes of the input graph in the com.microsoft domain (for [`report::Report`]).
    pub before_microsoft_ops: usize,
    /// The verification report, when compiling with verification (without calibration).
    pub verify: Option<verify::VerifyReport>,
    /// The Q/DQ pairs calibration inserted, when compiling with calibration.
    pub calibration: Option<calibrate::Calibration>,
    /// What `--keep-float` removed.
    pub kept_float: Vec<keep_float::Kept>,
    /// With calibration and verification: the compiled model measured against the input model
    /// on the verification samples (the "float" side of the report is the input model).
    pub calibrated_check: Option<accuracy::AccuracyReport>,
    /// Why verification failed, if it did (the error to exit with once the report is out).
    pub verify_failure: Option<Error>,
    /// Where the output was written ([`compile_file`] only; `None` when a failed verification
    /// kept it from being written).
    pub written: Option<SavePlan>,
    pub passes: Vec<PassRun>,
    /// Why rules did not fire (deduplicated, in a deterministic order).
    pub remarks: Remarks,
    /// The pipeline reached a fixed point (false when cut short or out of iterations).
    pub converged: bool,
    /// Wall times of the phases around the passes (each pass's own is in [`PassRun`]).
    pub times: Times,
    /// The speed check against the input, when compiling with one.
    pub speed: Option<speed::SpeedReport>,
}

impl Compiled {
    /// [`stats::stats`] of the compiled graph.
    pub fn report_stats(&self) -> stats::Stats {
        stats::stats(&self.model.graph)
    }
}

/// Wall times of a [`compile_file`] run (zero for phases that did not run).
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    pub load: std::time::Duration,
    pub passes: std::time::Duration,
    /// The graph check after the pipeline (part of `passes`; zero with `check_each_pass`).
    pub graph_check: std::time::Duration,
    pub check: std::time::Duration,
    pub save: std::time::Duration,
    pub calibrate: std::time::Duration,
}

fn pipeline(opts: &Options) -> Result<PassManager, Error> {
    if let Some(qdqc_passes::PrintAfter::Pass(name)) = &opts.instrument.print_after {
        let known: Vec<&str> = qdqc_passes::registry().iter().map(|p| p.name()).collect();
        if !known.contains(&name.as_str()) {
            let known = known.into_iter().chain(["all"]).collect::<Vec<_>>().join(", ");
            return Err(Error::UnknownPass(PassError::Unknown { name: name.clone(), known }));
        }
    }
    let pm = match (&opts.passes, &opts.opt_level) {
        (Some(spec), level) if PassManager::is_edit(spec) => {
            PassManager::edited(level.as_deref().unwrap_or("O2"), spec).map_err(Error::UnknownPass)?
        }
        (Some(_), Some(level)) => {
            return Err(Error::Usage(format!(
                "--passes LIST and -O{} both choose the pipeline: give one of them, or edit the -O pipeline with --passes +NAME,-NAME",
                level.strip_prefix('O').unwrap_or(level)
            )))
        }
        (Some(spec), None) => PassManager::parse(spec).map_err(Error::UnknownPass)?,
        (None, Some(level)) => PassManager::named(level).map_err(Error::UnknownPass)?,
        (None, None) => PassManager::default_pipeline(),
    };
    Ok(pm.configured(Config { target: opts.target, approx: opts.approx.clone(), ort_level: opts.ort_level }))
}

/// Runs the pipeline on a loaded model. `path` names the model in errors.
pub fn compile(mut model: Model, path: &Path, opts: &Options) -> Result<Compiled, Error> {
    let pm = pipeline(opts)?;
    let input_nodes = model.graph.op_count();
    let before = stats::stats(&model.graph);
    let before_microsoft_ops = report::microsoft_ops(&model.graph);
    let start = std::time::Instant::now();
    let run = pm
        .run_with(&mut model.graph, &opts.instrument)
        .map_err(|error| Error::Pass { path: path.to_path_buf(), error })?;
    let times = Times { passes: start.elapsed(), graph_check: run.final_check_time, ..Times::default() };
    if !pm.names().is_empty() {
        stamp(&mut model, &pm, opts);
    }
    Ok(Compiled {
        model,
        input_nodes,
        before,
        before_microsoft_ops,
        passes: run.runs,
        remarks: run.remarks,
        converged: run.converged,
        verify: None,
        calibration: None,
        kept_float: Vec::new(),
        calibrated_check: None,
        verify_failure: None,
        written: None,
        times,
        speed: None,
    })
}

/// The arithmetic a compiled model's exactness is claimed for: the integer ops as onnxruntime 1.32
/// (GCC-built Linux wheel) computes them on x86-64 with VNNI (AVX512-VNNI or AVX-VNNI), where
/// uint8 × int8 products accumulate exactly; without VNNI onnxruntime saturates pairs of such
/// products to int16 (`docs/exactness.md`).
pub const KERNEL_MODEL: &str = "onnxruntime-1.32-x86_64-vnni";

/// Records in the model's metadata what made it: `qdqc.version`, `qdqc.options` (the pipeline,
/// target, onnxruntime level and approximations), `qdqc.kernel_model` ([`KERNEL_MODEL`]) and
/// `qdqc.cost_table` (the measured table the choices read, for `--target ort`). Entries of an
/// earlier compile are replaced; the model's other metadata stays as it was.
fn stamp(model: &mut Model, pm: &PassManager, opts: &Options) {
    let approx = match &opts.approx {
        Approx::None => "none".to_string(),
        Approx::All => "all".to_string(),
        Approx::Only(names) => names.iter().copied().collect::<Vec<_>>().join(","),
    };
    let options = format!(
        "--passes {} --target {} --ort-level {} --approx {approx}",
        pm.names().join(","),
        opts.target,
        opts.ort_level
    );
    let costs = match opts.target {
        Target::Ort => qdqc_passes::cost::table_name().to_string(),
        Target::Onnx => "none (work in integer MACs)".to_string(),
    };
    let entries = [
        ("qdqc.version", env!("CARGO_PKG_VERSION").to_string()),
        ("qdqc.options", options),
        ("qdqc.kernel_model", KERNEL_MODEL.to_string()),
        ("qdqc.cost_table", costs),
    ];
    let props = &mut model.meta.metadata_props;
    props.retain(|p| !entries.iter().any(|(k, _)| p.key.as_deref() == Some(k)));
    props.extend(
        entries
            .into_iter()
            .map(|(k, v)| qdqc_ir::proto::StringStringEntryProto { key: Some(k.to_string()), value: Some(v) }),
    );
}

/// Loads `input`, checks that qdqc can compile it ([`qdqc_ir::validate::compilable`]; not when the
/// pipeline has no passes, a lossless round trip), compiles it, verifies it when `check` asks to,
/// measures it against the input in onnxruntime when `speed` asks to (and, with
/// [`speed::SpeedOptions::fallback`], writes the input model unchanged when the output is slower),
/// and writes `output` (atomically: a failed run leaves no file). Output paths are checked before
/// any work: `output` must be writable and must not be a file the input model reads (unless
/// `opts.save.replace_input`).
///
/// A failed verification is not an `Err`: the result carries it in [`Compiled::verify_failure`]
/// with the report, and nothing is written unless [`VerifyOptions::force`] is set.
pub fn compile_file(
    input: &Path,
    output: &Path,
    opts: &Options,
    check: Option<&VerifyOptions>,
    speed: Option<&speed::SpeedOptions>,
    progress: Progress,
) -> Result<Compiled, Error> {
    let round_trip = pipeline(opts)?.names().is_empty(); // reject bad pass names before reading anything
    if let Some(v) = check {
        v.validate()?;
    }
    check_writable(output)?;
    if same_file(input, output) && !opts.save.replace_input {
        return Err(onnx::FileError {
            path: output.to_path_buf(),
            error: onnx::Error::WouldReplaceInput { file: input.to_path_buf() },
        }
        .into());
    }
    let start = std::time::Instant::now();
    let mut model = load_with(input, &opts.load)?;
    if !round_trip {
        // A compile without passes writes what it read; one with passes must be able to write it.
        qdqc_ir::validate::compilable(&model)
            .map_err(|error| Error::Unsupported { path: input.to_path_buf(), error })?;
    }
    onnx::check_save(&model, output, &opts.save)?;
    let load_time = start.elapsed();
    let original = check.map(|_| model.graph.clone());
    let (before, before_microsoft_ops) = (stats::stats(&model.graph), report::microsoft_ops(&model.graph));
    let start = std::time::Instant::now();
    let calibration = match &opts.calibrate {
        Some(c) => Some(calibrate::calibrate(&mut model.graph, input, c, &|d, n| progress("calibrating", d, n))?),
        None => None,
    };
    let calibrate_time = start.elapsed();
    let float = match (&opts.float_model, opts.keep_float.is_empty()) {
        (Some(p), false) => Some(load_with(p, &opts.load)?),
        _ => None,
    };
    let kept_float =
        keep_float::keep_float(&mut model.graph, input, &opts.keep_float, float.as_ref().map(|m| &m.graph))?;
    // Without calibration, the compile is verified exact against the model as `--keep-float`
    // edited it (the numerics the user chose); with it, against the input model by SQNR.
    let original = match original {
        Some(_) if calibration.is_none() && !kept_float.is_empty() => Some(model.graph.clone()),
        o => o,
    };
    let mut compiled = compile(model, input, opts)?;
    compiled.kept_float = kept_float;
    compiled.times.load = load_time;
    compiled.times.calibrate = calibrate_time;
    // The report compares with the model as read, not as calibration completed it.
    (compiled.before, compiled.before_microsoft_ops) = (before, before_microsoft_ops);
    let start = std::time::Instant::now();
    match (check, original, &calibration) {
        (Some(v), Some(orig), Some(_)) => {
            let report = check_calibrated(&orig, input, &compiled.model.graph, output, v)?;
            compiled.verify_failure = below_min_sqnr(&report, output, v);
            compiled.calibrated_check = Some(report);
        }
        (Some(v), Some(orig), None) => {
            check_samples(&orig, v)?;
            let report = verify_graphs(&orig, &compiled.model.graph, v, &|d, n| progress("verifying", d, n))
                .map_err(|error| Error::Run { path: input.to_path_buf(), error })?;
            compiled.verify_failure = failure(&report, output, v.force);
            compiled.verify = Some(report);
        }
        _ => {}
    }
    compiled.calibration = calibration;
    compiled.times.check = start.elapsed();
    if let (Some(s), None) = (speed, &compiled.verify_failure) {
        let dir = tempfile::tempdir().map_err(|e| Error::Speed(format!("a temporary folder: {e}")))?;
        let measured = dir.path().join("compiled.onnx");
        let save = SaveOptions { external: onnx::ExternalData::File { threshold: 1 << 20 }, replace_input: false };
        onnx::save(&compiled.model, &measured, &save)?;
        let mut report = speed::measure(input, &measured, s)?;
        if s.fallback && report.slower() {
            // The input as it was read, written losslessly in place of the slower output.
            compiled.model = load_with(input, &opts.load)?;
            report.kept_input = true;
        }
        compiled.speed = Some(report);
    }
    if compiled.verify_failure.is_none() || check.is_some_and(|v| v.force) {
        let start = std::time::Instant::now();
        compiled.written = Some(onnx::save(&compiled.model, output, &opts.save)?);
        compiled.times.save = start.elapsed();
    }
    Ok(compiled)
}

/// `--time-passes`: one line per phase and per pass run, in seconds.
pub fn times_text(c: &Compiled) -> String {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let mut out = format!("time: load {:.3} s\n", secs(c.times.load));
    if !c.times.calibrate.is_zero() {
        out += &format!("time: calibrate {:.3} s\n", secs(c.times.calibrate));
    }
    for (i, r) in c.passes.iter().enumerate() {
        out += &format!(
            "time: #{:<3} {:<14} {:.3} s  (graph check {:.3} s, {} changes)\n",
            i + 1,
            r.pass,
            secs(r.time),
            secs(r.verify_time),
            r.changes
        );
    }
    if !c.times.graph_check.is_zero() {
        out += &format!("time: graph check after the pipeline {:.3} s\n", secs(c.times.graph_check));
    }
    out += &format!("time: passes {:.3} s\n", secs(c.times.passes));
    if !c.times.check.is_zero() {
        out += &format!("time: verify {:.3} s\n", secs(c.times.check));
    }
    out += &format!("time: save {:.3} s\n", secs(c.times.save));
    out += &format!(
        "time: total {:.3} s\n",
        secs(c.times.load + c.times.calibrate + c.times.passes + c.times.check + c.times.save)
    );
    out
}

/// How `verify` runs the models.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub samples: usize,
    pub seed: u64,
    /// Value for symbolic and unknown input dims.
    pub dim: usize,
    /// Given samples instead of seeded random ones (each checked against the original model's
    /// inputs before anything runs).
    pub inputs: Option<Vec<inputs::Sample>>,
    /// Write the output even when verification fails.
    pub force: bool,
    /// The interpreter's per-tensor limit (`None`: `qdqc_eval::DEFAULT_MAX_TENSOR_BYTES`).
    pub max_tensor_bytes: Option<usize>,
    /// With calibration: the lowest SQNR (dB) an output of the compiled model may have against
    /// the input model's ([`DEFAULT_MIN_SQNR_DB`] when `None`).
    pub min_sqnr: Option<f64>,
    /// Distributions of random float inputs by name (standard normal otherwise).
    pub dists: Vec<(String, verify::Dist)>,
}

/// The default `--min-sqnr`: the compiled, calibrated model's outputs against the input model's.
pub const DEFAULT_MIN_SQNR_DB: f64 = 15.0;

/// Seeds of random verification samples after calibration are offset by this from the
/// calibration seeds, so the two never share a sample.
pub const HELDOUT_SEED_OFFSET: u64 = 1 << 32;

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            samples: 4,
            seed: 0,
            dim: 1,
            inputs: None,
            force: false,
            max_tensor_bytes: None,
            min_sqnr: None,
            dists: Vec::new(),
        }
    }
}

impl VerifyOptions {
    /// Refuses a verification that would compare nothing.
    pub fn validate(&self) -> Result<(), Error> {
        match &self.inputs {
            Some(given) if given.is_empty() => Err(Error::Usage("verification needs at least one input sample".into())),
            None if self.samples == 0 => Err(Error::Usage("verification needs at least one sample".into())),
            _ => Ok(()),
        }
    }
}

/// Called with (phase, samples done, samples in all) as calibration (`"calibrating"`) and
/// verification (`"verifying"`) proceed.
pub type Progress<'a> = &'a dyn Fn(&'static str, usize, usize);

/// Measures a calibrated, compiled model against the model it came from on held-out samples
/// (the given ones, or random ones drawn with seeds [`HELDOUT_SEED_OFFSET`] past the
/// calibration's): per output SQNR, cosine similarity and top-1/top-5 agreement.
fn check_calibrated(
    orig: &qdqc_ir::Graph,
    input: &Path,
    compiled: &qdqc_ir::Graph,
    output: &Path,
    v: &VerifyOptions,
) -> Result<accuracy::AccuracyReport, Error> {
    let samples = match &v.inputs {
        Some(given) => accuracy::Samples::Files {
            dir: given.first().and_then(|s| s.path.parent()).map(Path::to_path_buf).unwrap_or_default(),
            samples: given.clone(),
        },
        None => accuracy::Samples::Random {
            count: v.samples,
            seed: v.seed.wrapping_add(HELDOUT_SEED_OFFSET),
            dim: v.dim,
            dists: v.dists.clone(),
        },
    };
    let opts = accuracy::AccuracyOptions {
        samples,
        topk: true,
        layers: false,
        labels: None,
        max_tensor_bytes: v.max_tensor_bytes,
    };
    let reference = accuracy::Model { path: input, graph: orig };
    let candidate = accuracy::Model { path: output, graph: compiled };
    accuracy::accuracy(reference, candidate, None, &opts)
}

fn below_min_sqnr(report: &accuracy::AccuracyReport, path: &Path, v: &VerifyOptions) -> Option<Error> {
    let min = v.min_sqnr.unwrap_or(DEFAULT_MIN_SQNR_DB);
    report.outputs.iter().find(|o| o.qdq.sqnr_db.is_nan() || o.qdq.sqnr_db < min).map(|o| Error::BelowMinSqnr {
        path: path.to_path_buf(),
        output: o.name.clone(),
        sqnr_db: o.qdq.sqnr_db,
        min_db: min,
        written: v.force,
    })
}

fn verify_graphs(
    orig: &qdqc_ir::Graph,
    compiled: &qdqc_ir::Graph,
    v: &VerifyOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<verify::VerifyReport, verify::VerifyError> {
    let limit = v.max_tensor_bytes.unwrap_or(qdqc_eval::DEFAULT_MAX_TENSOR_BYTES);
    let samples: Vec<verify::Inputs> = match &v.inputs {
        Some(given) => given.iter().map(|s| s.inputs.clone()).collect(),
        None => (0..v.samples)
            .map(|k| verify::random_inputs_with_dists(orig, v.seed.wrapping_add(k as u64), v.dim, limit, &v.dists))
            .collect::<Result<_, _>>()?,
    };
    let total = samples.len();
    verify::verify_with_limit(orig, compiled, &samples, v.seed, limit, &|done| progress(done, total))
}

/// Checks given verification samples against the model's inputs (names, dtypes, shapes, finite
/// values), naming the file of the first that does not fit.
fn check_samples(g: &qdqc_ir::Graph, v: &VerifyOptions) -> Result<(), Error> {
    v.inputs.iter().flatten().try_for_each(|s| inputs::check_sample(g, s))
}

fn failure(report: &verify::VerifyReport, path: &Path, written: bool) -> Option<Error> {
    let tensor = report.first_failure.clone()?;
    let t = report.tensors.iter().find(|t| t.name == tensor)?;
    let steps = match (&t.mismatch, t.max_steps) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => format!("{s:.2} steps, max |diff| {:e}", t.max_abs_diff),
        (None, None) => format!("max |diff| {:e}", t.max_abs_diff),
    };
    Some(Error::VerificationFailed { path: path.to_path_buf(), tensor, steps, written })
}

/// Runs `orig` and `compiled` (files) on the same inputs and compares them. Returns the report and,
/// when a tensor moved beyond tolerance, the error to exit with.
pub fn verify_files(
    orig: &Path,
    compiled: &Path,
    load: &LoadOptions,
    v: &VerifyOptions,
    progress: Progress,
) -> Result<(verify::VerifyReport, Option<Error>), Error> {
    v.validate()?;
    let (a, b) = (load_with(orig, load)?, load_with(compiled, load)?);
    check_samples(&a.graph, v)?;
    let report = verify_graphs(&a.graph, &b.graph, v, &|d, n| progress("verifying", d, n))
        .map_err(|error| Error::Run { path: compiled.to_path_buf(), error })?;
    let fail = failure(&report, compiled, false);
    Ok((report, fail))
}

/// Runs a model on the given sample, checked against the model's inputs first
/// ([`inputs::check_sample`]), or on seeded random inputs when `sample` is `None`.
pub fn run_file(
    path: &Path,
    load: &LoadOptions,
    sample: Option<inputs::Sample>,
    seed: u64,
    dim: usize,
    max_tensor_bytes: Option<usize>,
) -> Result<Vec<(String, qdqc_eval::Value)>, Error> {
    let model = load_with(path, load)?;
    let err = |error| Error::Run { path: path.to_path_buf(), error };
    let opts = qdqc_eval::RunOptions { max_tensor_bytes, ..Default::default() };
    let inputs = match sample {
        Some(s) => {
            inputs::check_sample(&model.graph, &s)?;
            s.inputs
        }
        None => verify::random_inputs_with_limit(&model.graph, seed, dim, opts.limit()).map_err(err)?,
    };
    let r = qdqc_eval::run(&model.graph, &inputs, &opts).map_err(|e| err(verify::VerifyError::Eval(e)))?;
    Ok(r.outputs)
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<qdqc_eval::Value, Error> {
    let file_err = |msg: String| Error::File { path: path.to_path_buf(), msg };
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    qdqc_eval::Value::from_npy(&bytes).map_err(|e| file_err(e.to_string()))
}

/// Writes a file atomically (temporary beside it, then rename), readable by all (0644, as models
/// are written). Errors name `path`, never the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_err =
        |e: std::io::Error| Error::File { path: path.to_path_buf(), msg: std::io::Error::from(e.kind()).to_string() };
    check_writable(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(file_err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(file_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(file_err)?;
    }
    tmp.persist(path).map_err(|e| file_err(e.error))?;
    Ok(())
}

/// The remarks as a JSON document: `{"remarks": [{"kind", "pass", "rule", "op", "node", "reason"}, …]}`.
pub fn remarks_json(remarks: &Remarks) -> String {
    let list: Vec<serde_json::Value> = remarks
        .iter()
        .map(|r| {
            let kind = match r.kind {
                qdqc_passes::RemarkKind::Missed => "missed",
                qdqc_passes::RemarkKind::Approximation => "approximation",
            };
            serde_json::json!({"kind": kind, "pass": r.pass, "rule": r.rule, "op": r.op, "node": r.node, "reason": r.reason})
        })
        .collect();
    let doc = serde_json::json!({ "schema_version": REPORT_SCHEMA_VERSION, "remarks": list });
    serde_json::to_string_pretty(&doc).expect("remarks serialize") + "\n"
}

/// The remarks as text, one per line.
pub fn remarks_text(remarks: &Remarks) -> String {
    let mut s = format!("remarks: {}\n", remarks.len());
    for r in remarks {
        s.push_str(&format!("  {}: {r}\n", r.pass));
    }
    s
}
