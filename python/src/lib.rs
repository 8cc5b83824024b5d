//! `qdqc._qdqc`: the native half of the `qdqc` Python package, thin bindings over the `qdqc`
//! library, file to file. The package (`qdqc/__init__.py`) writes models held in memory to
//! files, turns calibration readers and arrays into `.npy` samples, parses the JSON documents
//! returned here and raises its own exception classes from [`NativeError`]'s arguments.
//!
//! Every call that does work releases the GIL.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qdqc::accuracy::{AccuracyOptions, Samples};
use qdqc::ir::onnx::{ExternalData, LoadOptions, SaveOptions};
use qdqc::passes::{Instrument, OrtLevel, Target};
use qdqc::{Error, Options, VerifyOptions};
use std::path::PathBuf;

pyo3::create_exception!(_qdqc, NativeError, pyo3::exceptions::PyException);

/// An error as the package's exceptions carry it: (kind, message, file, node, exit code).
type Failure = (&'static str, String, Option<String>, Option<String>, i32);

fn failure(e: &Error) -> Failure {
    let kind = match e {
        Error::Model(_) | Error::InvalidGraph { .. } | Error::Unsupported { .. } => "model",
        Error::UnknownPass(_) | Error::Usage(_) => "usage",
        Error::Pass { .. } => "internal",
        Error::Run { .. } | Error::Mismatch { .. } | Error::File { .. } => "data",
        Error::Calibration { .. } => "calibration",
        Error::VerificationFailed { .. } | Error::BelowMinSqnr { .. } => "verification",
        Error::Speed(_) => "speed",
    };
    let node = e.node().map(|label| unquote(label).to_string());
    (kind, e.to_string(), e.path().map(|p| p.display().to_string()), node, e.exit_code())
}

/// A node's name from its label in a message (`'NAME'`); an unnamed node's label
/// (`(producing 'VALUE')`) as it is.
fn unquote(label: &str) -> &str {
    label.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')).unwrap_or(label)
}

fn raise(e: Error) -> PyErr {
    NativeError::new_err(failure(&e))
}

fn usage(msg: String) -> PyErr {
    raise(Error::Usage(msg))
}

/// Samples as the package passes them: per sample, (input name, `.npy` bytes) pairs.
type SampleList<'py> = Vec<Vec<(String, Bound<'py, PyBytes>)>>;

/// Input samples: a folder read as the command line reads one ([`qdqc::inputs::read_dir`]), or
/// samples in memory.
#[derive(FromPyObject)]
enum SamplesArg<'py> {
    Folder(PathBuf),
    List(SampleList<'py>),
}

impl SamplesArg<'_> {
    /// The samples and the name of where they came from; samples in memory are named
    /// `{what} {k}` in errors (each is checked against the model before anything runs).
    fn read(self, what: &str) -> PyResult<(Vec<qdqc::inputs::Sample>, PathBuf)> {
        let list = match self {
            SamplesArg::Folder(dir) => return Ok((qdqc::inputs::read_dir(&dir).map_err(raise)?, dir)),
            SamplesArg::List(list) => list,
        };
        let mut out = Vec::with_capacity(list.len());
        for (k, sample) in list.into_iter().enumerate() {
            let path = PathBuf::from(format!("{what} {k}"));
            let mut inputs = Vec::with_capacity(sample.len());
            for (name, npy) in sample {
                let value = qdqc::eval::Value::from_npy(npy.as_bytes())
                    .map_err(|e| raise(Error::File { path: path.clone(), msg: format!("input '{name}': {e}") }))?;
                inputs.push((name, value));
            }
            let files = vec![path.clone(); inputs.len()];
            out.push(qdqc::inputs::Sample { path, inputs, files });
        }
        Ok((out, format!("{what}s").into()))
    }
}

/// The keyword arguments of `qdqc.compile` and `qdqc.compile_file`, as the package passes them
/// (every key present; see the package's docstrings).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CompileArgs {
    passes: Option<String>,
    opt_level: Option<String>,
    target: String,
    approx: Option<String>,
    ort_level: String,
    external_data: String,
    external_threshold: usize,
    in_place: bool,
    follow_symlinks: bool,
    verify: usize,
    seed: u64,
    force: bool,
    input_dist: Vec<String>,
    calibrate_random: Option<usize>,
    calib_method: String,
    min_sqnr: Option<f64>,
    keep_float: Vec<String>,
    float_model: Option<PathBuf>,
    check_speed: bool,
    fallback: bool,
    /// The package resolves it (`python=`, `$QDQC_PYTHON`, else its own interpreter).
    python: PathBuf,
    threads: usize,
    batch: usize,
    speed_rounds: usize,
    max_tensor_bytes: Option<usize>,
}

/// Compiles `src` into `dst` as `qdqc compile` does. Returns the `--report` JSON document and,
/// when verification failed, the error (nothing was written unless `force`).
#[pyfunction]
#[pyo3(signature = (src, dst, args, calibrate=None, verify_inputs=None))]
fn compile_file<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    args: CompileArgs,
    calibrate: Option<SamplesArg<'py>>,
    verify_inputs: Option<SamplesArg<'py>>,
) -> PyResult<(String, Option<Failure>)> {
    let target =
        Target::parse(&args.target).ok_or_else(|| usage(format!("target '{}': give 'ort' or 'onnx'", args.target)))?;
    let ort_level = OrtLevel::parse(&args.ort_level)
        .ok_or_else(|| usage(format!("ort_level '{}': give 'all' or 'disable'", args.ort_level)))?;
    let external = match args.external_data.as_str() {
        "keep" => ExternalData::Keep,
        "inline" => ExternalData::Inline,
        "file" => ExternalData::File { threshold: args.external_threshold },
        other => return Err(usage(format!("external_data '{other}': give 'keep', 'inline' or 'file'"))),
    };
    let method = qdqc::calibrate::Method::parse(&args.calib_method).map_err(usage)?;
    let dists = qdqc::accuracy::parse_dists(&args.input_dist).map_err(raise)?;
    let calib_samples = match (calibrate, args.calibrate_random) {
        (Some(given), _) => {
            let (samples, dir) = given.read("calibration sample")?;
            Some(Samples::Files { samples, dir })
        }
        (None, Some(count)) => Some(Samples::Random { count, seed: args.seed, dim: 1, dists: dists.clone() }),
        (None, None) => None,
    };
    let max_tensor_bytes = args.max_tensor_bytes;
    let calibrate =
        calib_samples.map(|samples| qdqc::calibrate::CalibrateOptions { samples, method, max_tensor_bytes });
    let approx = qdqc::approx(args.approx.as_deref(), calibrate.is_some()).map_err(raise)?;
    let opts = Options {
        passes: args.passes,
        opt_level: args.opt_level,
        target,
        approx,
        ort_level,
        instrument: Instrument::default(),
        load: LoadOptions { follow_symlinks: args.follow_symlinks },
        save: SaveOptions { external, replace_input: args.in_place },
        calibrate,
        keep_float: args.keep_float,
        float_model: args.float_model,
    };
    let inputs = verify_inputs.map(|given| given.read("verification sample")).transpose()?.map(|(s, _)| s);
    let check = (args.verify > 0 || inputs.is_some()).then(|| VerifyOptions {
        samples: inputs.as_ref().map_or(args.verify, Vec::len),
        seed: args.seed,
        force: args.force,
        inputs,
        max_tensor_bytes,
        min_sqnr: args.min_sqnr,
        dists,
        ..Default::default()
    });
    let speed = args.check_speed.then_some(qdqc::speed::SpeedOptions {
        python: args.python,
        level: ort_level,
        threads: args.threads,
        batch: args.batch,
        rounds: args.speed_rounds,
        fallback: args.fallback,
    });
    py.detach(|| {
        let mut c = qdqc::compile_file(&src, &dst, &opts, check.as_ref(), speed.as_ref(), &|_, _, _| {})?;
        let fail = c.verify_failure.take();
        Ok((qdqc::report::Report::new(&c).to_json(), fail.as_ref().map(failure)))
    })
    .map_err(raise)
}

/// The `qdqc stats --json` document of a model.
#[pyfunction]
fn stats(py: Python<'_>, path: PathBuf, follow_symlinks: bool) -> PyResult<String> {
    py.detach(|| Ok(qdqc::stats::stats_json(&qdqc::load_with(&path, &LoadOptions { follow_symlinks })?.graph)))
        .map_err(raise)
}

/// The text form of a model's graph (`qdqc show`).
#[pyfunction]
fn show(py: Python<'_>, path: PathBuf, max_const: usize, follow_symlinks: bool) -> PyResult<String> {
    py.detach(|| {
        let m = qdqc::load_with(&path, &LoadOptions { follow_symlinks })?;
        Ok(qdqc::ir::text::print_with(&m.graph, &qdqc::ir::text::PrintOptions { max_const_elems: max_const }))
    })
    .map_err(raise)
}

/// `qdqc verify`: the `--json` document and, when a tensor moved beyond tolerance, the error.
#[pyfunction]
#[pyo3(signature = (orig, compiled, samples_count, seed, dim, follow_symlinks, max_tensor_bytes, inputs=None))]
#[allow(clippy::too_many_arguments)]
fn verify<'py>(
    py: Python<'py>,
    orig: PathBuf,
    compiled: PathBuf,
    samples_count: usize,
    seed: u64,
    dim: usize,
    follow_symlinks: bool,
    max_tensor_bytes: Option<usize>,
    inputs: Option<SamplesArg<'py>>,
) -> PyResult<(String, Option<Failure>)> {
    let inputs = inputs.map(|given| given.read("sample")).transpose()?.map(|(s, _)| s);
    let opts = VerifyOptions { samples: samples_count, seed, dim, inputs, max_tensor_bytes, ..Default::default() };
    py.detach(|| {
        let load = LoadOptions { follow_symlinks };
        let (report, fail) = qdqc::verify_files(&orig, &compiled, &load, &opts, &|_, _, _| {})?;
        Ok((report.to_json(), fail.as_ref().map(failure)))
    })
    .map_err(raise)
}

/// The keyword arguments of `qdqc.accuracy`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct AccuracyArgs {
    samples: usize,
    seed: u64,
    dim: usize,
    input_dist: Vec<String>,
    topk: bool,
    layers: bool,
    labels: Option<PathBuf>,
    html: Option<PathBuf>,
    follow_symlinks: bool,
    max_tensor_bytes: Option<usize>,
}

/// `qdqc accuracy`: the `--json` document (and the `--html` page, when asked).
#[pyfunction]
#[pyo3(signature = (float, qdq, compiled, args, inputs=None))]
fn accuracy<'py>(
    py: Python<'py>,
    float: PathBuf,
    qdq: PathBuf,
    compiled: Option<PathBuf>,
    args: AccuracyArgs,
    inputs: Option<SamplesArg<'py>>,
) -> PyResult<String> {
    let samples = match inputs {
        Some(given) => {
            let (samples, dir) = given.read("sample")?;
            Samples::Files { samples, dir }
        }
        None => Samples::Random {
            count: args.samples,
            seed: args.seed,
            dim: args.dim,
            dists: qdqc::accuracy::parse_dists(&args.input_dist).map_err(raise)?,
        },
    };
    py.detach(|| {
        let labels = args.labels.as_deref().map(qdqc::accuracy::Labels::read).transpose()?;
        if let Some(path) = &args.html {
            qdqc::check_writable(path)?;
        }
        let load = LoadOptions { follow_symlinks: args.follow_symlinks };
        let opts = AccuracyOptions {
            samples,
            topk: args.topk,
            layers: args.layers,
            labels,
            max_tensor_bytes: args.max_tensor_bytes,
        };
        let report = qdqc::accuracy::accuracy_files(&float, &qdq, compiled.as_deref(), &load, &opts, &|_, _, _| {})?;
        if let Some(path) = &args.html {
            let page = qdqc::html::accuracy_page_files(&report, &qdq, compiled.as_deref(), &load)?;
            qdqc::write_atomic(path, page.as_bytes())?;
        }
        Ok(report.to_json())
    })
    .map_err(raise)
}

/// Runs a model in qdqc's interpreter (`qdqc run`): the outputs as (name, `.npy` bytes) pairs.
#[pyfunction]
#[pyo3(signature = (path, inputs, seed, dim, follow_symlinks, max_tensor_bytes))]
fn run<'py>(
    py: Python<'py>,
    path: PathBuf,
    inputs: Option<Vec<(String, Bound<'py, PyBytes>)>>,
    seed: u64,
    dim: usize,
    follow_symlinks: bool,
    max_tensor_bytes: Option<usize>,
) -> PyResult<Vec<(String, Py<PyBytes>)>> {
    let given = inputs.map(|i| SamplesArg::List(vec![i]).read("inputs")).transpose()?.map(|(mut s, _)| s.remove(0));
    let outputs = py
        .detach(|| {
            let load = LoadOptions { follow_symlinks };
            let outputs = qdqc::run_file(&path, &load, given, seed, dim, max_tensor_bytes)?;
            outputs
                .into_iter()
                .map(|(name, value)| {
                    let npy = value
                        .to_npy()
                        .map_err(|e| Error::File { path: path.clone(), msg: format!("output '{name}': {e}") })?;
                    Ok((name, npy))
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .map_err(raise)?;
    Ok(outputs.into_iter().map(|(name, npy)| (name, PyBytes::new(py, &npy).unbind())).collect())
}

/// The names of qdqc's passes, in registry order.
#[pyfunction]
fn pass_names() -> Vec<&'static str> {
    qdqc::passes::registry().iter().map(|p| p.name()).collect()
}

#[pymodule]
fn _qdqc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("KERNEL_MODEL", qdqc::KERNEL_MODEL)?;
    m.add_function(wrap_pyfunction!(compile_file, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(show, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(accuracy, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(pass_names, m)?)?;
    Ok(())
}
