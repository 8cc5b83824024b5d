//! The `qdqc` command line. It parses flags, calls the library and prints; nothing else.
//! Exit status: 0 success, 1 verification failure (or a pass failing), 2 bad input or usage.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use qdqc::ir::escape;
use qdqc::ir::onnx::{ExternalData, LoadOptions, SaveOptions};
use qdqc::{Error, Options, VerifyOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc instead of the system allocator (see `qdqc::alloc`).
#[global_allocator]
static GLOBAL: qdqc::alloc::Mimalloc = qdqc::alloc::Mimalloc;

/// `mi_option_purge_delay` of mimalloc.h, which libmimalloc-sys does not export by name; it
/// comes right before `mi_option_use_numa_nodes` in both mimalloc v2 and v3.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

#[derive(Parser)]
#[command(name = "qdqc", version, about = "Compiles quantized ONNX models in QDQ form into integer ONNX graphs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Read external data through symlinks that lead outside the model's folder (model caches
    /// that link each file into a blob store). By default a model reads only files inside its
    /// folder.
    #[arg(long, global = true)]
    follow_symlinks: bool,
    /// The largest tensor the reference interpreter (run, verify, accuracy, compile --verify) may build,
    /// in bytes at 8 bytes per element; a model that needs a larger one fails with an error
    /// naming the node. Default 4 GiB.
    #[arg(long, global = true, value_name = "BYTES")]
    max_tensor_bytes: Option<usize>,
    /// Print no summary on stdout (compile's table and messages, verify's and accuracy's tables;
    /// --report, --json and --html still write theirs) and no progress bar. Errors still go to
    /// stderr.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Color in diffs: `auto` (when stdout is a terminal), `always` or `never`.
    #[arg(long, value_enum, global = true, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Subcommand)]
// Parsed once per run; boxing `Compile`'s many flags would only add noise.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Print the model's graph as text IR.
    Show {
        /// The model (.onnx).
        model: PathBuf,
        /// Constants with more elements are shown as dtype, shape, fingerprint and first values.
        #[arg(long, default_value_t = 16)]
        max_const: usize,
    },
    /// Op histogram, Q/DQ counts, integer vs float compute ops.
    Stats {
        /// The model (.onnx).
        model: PathBuf,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compile a QDQ model and write the result.
    Compile {
        /// The QDQ model (.onnx) to compile.
        input: PathBuf,
        /// Where to write the compiled model; external data goes beside it in OUTPUT.data. It may
        /// not be a file the input reads (use --in-place for that).
        #[arg(short, long, required_unless_present = "in_place")]
        output: Option<PathBuf>,
        /// Replace the input model with the compiled one (its new side file, if any, gets a name
        /// the old model does not read; a crash leaves the old model or the new one).
        #[arg(long, conflicts_with = "output")]
        in_place: bool,
        /// Comma-separated passes to run, `none` for a lossless round trip, or +NAME,-NAME to add
        /// passes to or remove them from the -O level's pipeline. Default: the -O2 pipeline.
        #[arg(long, value_name = "LIST|none|+NAME,-NAME", allow_hyphen_values = true)]
        passes: Option<String>,
        /// Named pipeline: -O0 (no passes), -O2 (the default, greedy rewriting) or -O3 (equality
        /// saturation, docs/saturate.md).
        #[arg(short = 'O', value_name = "LEVEL")]
        opt_level: Option<String>,
        /// How rules are applied: `greedy` (the -O2 pipeline) or `saturate` (the -O3 pipeline).
        #[arg(long, value_enum, conflicts_with_all = ["opt_level", "passes"])]
        search: Option<SearchArg>,
        /// Approximations to allow, comma-separated, or `all`: rewrites that compute close to, not
        /// exactly, what the QDQ model computes. None by default (`--help` lists them).
        #[arg(long, value_name = "NAME,...|all")]
        approx: Option<String>,
        /// What the output may contain: `ort` (standard ops plus the com.microsoft ops onnxruntime
        /// runs) or `onnx` (standard ops only; what has no standard form stays a DQ→op→Q island).
        #[arg(long, value_enum, default_value_t = TargetArg::Ort)]
        target: TargetArg,
        /// The onnxruntime graph optimization level the output will run at (with `--target ort`):
        /// choices between forms (a conv kept in float or made integer) follow onnxruntime's
        /// measured costs at this level.
        #[arg(long, value_enum, default_value_t = OrtLevelArg::All)]
        ort_level: OrtLevelArg,
        /// Print the text IR after PASS (or after every pass with `all`).
        #[arg(long, value_name = "PASS|all")]
        print_after: Option<String>,
        /// Print a unified diff of the text IR for every pass that changed something.
        #[arg(long)]
        diff: bool,
        /// Write --print-after dumps and --diff diffs as files NN-PASS.ir / NN-PASS.diff in DIR
        /// instead of printing them.
        #[arg(long, value_name = "DIR")]
        dump_dir: Option<PathBuf>,
        /// Stop after N pass runs (for bisecting a bad rewrite).
        #[arg(long, value_name = "N")]
        stop_after: Option<usize>,
        /// Check the graph's invariants after every pass that changed it, naming the pass that
        /// broke one (the default in debug builds; release builds check once, after the pipeline).
        #[arg(long)]
        check_each_pass: bool,
        /// List why rules did not fire.
        #[arg(long)]
        remarks: bool,
        /// Print the wall time of loading, each pass (and the graph check after it), verifying
        /// and saving, on stderr.
        #[arg(long)]
        time_passes: bool,
        /// With --remarks: print them as JSON (and nothing else on stdout).
        #[arg(long, requires = "remarks")]
        json: bool,
        /// Where tensor data goes: `keep` (external tensors stay external, in OUTPUT.data),
        /// `inline`, or `file` (every tensor of at least --external-threshold bytes in OUTPUT.data).
        #[arg(long, value_enum, default_value_t = ExternalMode::Keep)]
        external_data: ExternalMode,
        /// With `--external-data file`: tensors of at least this many bytes go to the side file.
        #[arg(long, default_value_t = 1024)]
        external_threshold: usize,
        /// Verify the result on N seeded random samples; on failure write nothing (exit 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        verify: Option<u32>,
        /// With --verify: write the output even when verification fails (the exit status is
        /// still 1).
        #[arg(long, requires = "verify")]
        force: bool,
        /// With --verify: verify on the samples in DIR (read as `verify --inputs` reads them: one
        /// .npz per sample, or NAME.npy files) instead of N random ones.
        #[arg(long, visible_alias = "inputs", value_name = "DIR", requires = "verify")]
        verify_inputs: Option<PathBuf>,
        /// Complete the model's Q/DQ placement before compiling: measure the float tensors that
        /// keep it from lowering to integer ops (residual Adds, float BatchNormalization/Relu
        /// outputs, pooling and Concat inputs, outputs) on the samples in DIR (as --verify-inputs
        /// reads them) and insert a QuantizeLinear/DequantizeLinear pair on each, reusing the
        /// model's own scales where it fixes one (docs/calibration.md). This changes numerics:
        /// it allows `--approx all` unless --approx is given, and --verify then measures the
        /// output against the input model (SQNR, cosine, top-1; see --min-sqnr).
        #[arg(long, value_name = "DIR", conflicts_with = "calibrate_random")]
        calibrate: Option<PathBuf>,
        /// Like --calibrate, on N seeded random samples (--seed; floats standard normal unless
        /// --input-dist says otherwise).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        calibrate_random: Option<u32>,
        /// The distribution of a random float input for --calibrate-random and --verify N
        /// (repeatable); the default is standard normal.
        #[arg(long = "input-dist", value_name = "NAME=normal|uniform:LO,HI")]
        input_dist: Vec<String>,
        /// With --calibrate: how a range is chosen from the values seen: `mse` (the clipping
        /// threshold with the least expected squared error over a 2048-bin histogram),
        /// `minmax`, `percentile` (99.999% of the values, onnxruntime's default; `percentile:P`
        /// for another), or `entropy` (TensorRT's KL-divergence threshold over a 2048-bin |x|
        /// histogram quantized to 128 bins). Graph outputs always take min-max.
        #[arg(long, value_name = "METHOD", default_value = "mse")]
        calib_method: String,
        /// With --calibrate and --verify: fail (exit 1) when an output's SQNR against the input
        /// model is below DB on the verification samples. Default 15: a floor that catches broken
        /// calibration data, not an accuracy target (docs/calibration.md).
        #[arg(long, value_name = "DB", requires = "verify")]
        min_sqnr: Option<f64>,
        /// Leave these tensors (rows of `accuracy --layers`) or nodes in float, comma-separated:
        /// their QuantizeLinear/DequantizeLinear pairs are removed (and a QAT float weight's
        /// fake quantization); the compile verifies the rest as usual (docs/accuracy.md).
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        keep_float: Vec<String>,
        /// With --keep-float: the float model the input was quantized from; a kept op's integer
        /// weights are replaced by its float ones (same node name and op, same shape).
        #[arg(long, value_name = "FLOAT.onnx", requires = "keep_float")]
        float: Option<PathBuf>,
        /// Measure the output against the input in onnxruntime (at --ort-level, --threads,
        /// --batch; interleaved runs) and print the latency ratio with its spread. Needs a Python
        /// with onnxruntime's package (--python).
        #[arg(long)]
        check_speed: bool,
        /// With --check-speed: when the output is slower than the input, write the input model
        /// unchanged instead (exit 0, with a warning).
        #[arg(long, requires = "check_speed")]
        fallback: bool,
        /// With --check-speed: the Python to measure with (default: $QDQC_PYTHON, else python3).
        #[arg(long, value_name = "PATH", requires = "check_speed")]
        python: Option<PathBuf>,
        /// With --check-speed: onnxruntime's intra-op threads.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "check_speed")]
        threads: u32,
        /// With --check-speed: the size of symbolic input dims (the batch).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "check_speed")]
        batch: u32,
        /// With --check-speed: interleaved rounds to measure.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(3..), requires = "check_speed")]
        speed_rounds: u32,
        /// The first seed of random samples (--verify N, --calibrate-random N): sample k uses
        /// seed + k.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the report (stats before/after, pass changes, remarks, verify result) as JSON.
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
        /// List every op in the before/after table, not only those whose count changed.
        #[arg(long)]
        all_ops: bool,
    },
    /// Run a model with the reference interpreter and write one .npy per output.
    Run {
        /// The model (.onnx).
        model: PathBuf,
        /// An input as NAME=FILE.npy (repeatable). Inputs not given are an error unless --random.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Seeded random inputs (floats standard normal, integers uniform).
        #[arg(long)]
        random: bool,
        /// The seed of --random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of symbolic dims (such as the batch N) in random inputs.
        #[arg(long, default_value_t = 1)]
        dim: usize,
        /// The folder to write OUTPUT.npy files into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run two models on the same inputs and compare every output and every shared tensor.
    Verify {
        /// The reference model (the QDQ input).
        orig: PathBuf,
        /// The model to check against it (the compiled output).
        compiled: PathBuf,
        /// Seeded random samples to run (ignored with --inputs).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        samples: u32,
        /// The first seed of random samples: sample k uses seed + k.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of symbolic dims (such as the batch N) in random inputs.
        #[arg(long, default_value_t = 1)]
        dim: usize,
        /// A folder of input samples: .npz files (np.savez), one sample each; or NAME.npy files
        /// (one sample), or subfolders of them, one sample each.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Also write the report as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// List every compared tensor, not only outputs and failures.
        #[arg(long)]
        all: bool,
    },
    /// Measure a QDQ model (and the model compiled from it) against the float model: SQNR,
    /// cosine similarity, max and mean absolute error per output (docs/accuracy.md).
    Accuracy {
        /// The QDQ model (.onnx).
        qdq: PathBuf,
        /// The model compiled from it (optional), measured beside it.
        compiled: Option<PathBuf>,
        /// The float model the QDQ model was quantized from: the reference.
        #[arg(long, value_name = "FLOAT.onnx")]
        float: PathBuf,
        /// A folder of input samples: .npz files (np.savez), one sample each; or NAME.npy files
        /// (one sample), or subfolders of them, one sample each.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["samples", "seed", "input_dist"])]
        inputs: Option<PathBuf>,
        /// Seeded random samples to run (without --inputs).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        samples: u32,
        /// The first seed of random samples: sample k uses seed + k.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of symbolic dims (such as the batch N) in random inputs.
        #[arg(long, default_value_t = 1)]
        dim: usize,
        /// The distribution of a random float input (repeatable); the default is standard normal.
        #[arg(long = "input-dist", value_name = "NAME=normal|uniform:LO,HI")]
        input_dist: Vec<String>,
        /// Also measure top-1 and top-5 agreement with the float model (outputs whose last dim
        /// is larger than 1, one row per last-dim vector).
        #[arg(long)]
        topk: bool,
        /// Also measure every tensor the QDQ model quantizes that the float model computes: its
        /// SQNR in the quantized run (accumulated) and as its op computes it from the float run's
        /// values (own), ranked by own SQNR (rank 1: the most sensitive op).
        #[arg(long)]
        layers: bool,
        /// Also write the numbers as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write the report as one self-contained HTML page (inline SVG chart of the
        /// per-tensor SQNR with --layers, the ranked table, the op counts before and after with
        /// a compiled model; nothing fetched).
        #[arg(long, value_name = "FILE.html")]
        html: Option<PathBuf>,
        /// A text file with one class index per line, one per row of the first output over the
        /// samples in order (one per sample for a batch of 1): also measure each model's task
        /// accuracy (top-1 against the label).
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
    },
    /// Unified diff of the text IR of two models; exit status 1 when they differ (as diff(1)).
    Diff {
        /// The first model.
        a: PathBuf,
        /// The second model.
        b: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SearchArg {
    Greedy,
    Saturate,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Ort,
    Onnx,
}

/// onnxruntime's graph optimization levels a model is compiled for.
#[derive(Clone, Copy, ValueEnum)]
enum OrtLevelArg {
    /// ORT_ENABLE_ALL (onnxruntime's default).
    All,
    /// ORT_DISABLE_ALL.
    Disable,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExternalMode {
    Keep,
    Inline,
    File,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Writes to stdout; a closed pipe (`qdqc show m.onnx | head`) is not an error.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// The process is about to exit, and the OS takes back its memory at once, faster than freeing a
/// large graph one allocation at a time (clang's `-disable-free`). The output is written and
/// closed by then.
fn exit_without_freeing<T>(value: T) {
    std::mem::forget(value);
}

/// Where the compile command writes, checked before any work: each file must be writable and
/// none may be the input model or the compiled model.
fn check_outputs(input: &Path, output: &Path, others: &[&Path]) -> Result<(), Error> {
    for &p in others {
        qdqc::check_writable(p)?;
        if p == output || qdqc::same_file(p, input) || p == input || qdqc::same_file(p, output) {
            return Err(Error::File { path: p.to_path_buf(), msg: "is also the input or the output model".into() });
        }
    }
    Ok(())
}

/// `--quiet`: no summary on stdout and no progress bar.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    let load = LoadOptions { follow_symlinks: cli.follow_symlinks };
    let max_tensor_bytes = cli.max_tensor_bytes;
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let color = cli.color;
    match cli.command {
        Command::Show { model, max_const } => {
            let m = qdqc::load_with(&model, &load)?;
            let opts = qdqc::ir::text::PrintOptions { max_const_elems: max_const };
            emit(&qdqc::ir::text::print_with(&m.graph, &opts));
        }
        Command::Stats { model, json } => {
            let graph = qdqc::load_with(&model, &load)?.graph;
            emit(&if json {
                qdqc::stats::stats_json(&graph)
            } else {
                format!("{}{}", qdqc::stats::stats(&graph), qdqc::stats::predicted(&graph))
            });
        }
        Command::Compile {
            input,
            output,
            in_place,
            passes,
            opt_level,
            search,
            approx,
            target,
            ort_level,
            print_after,
            diff,
            dump_dir,
            stop_after,
            check_each_pass,
            remarks,
            time_passes,
            json,
            external_data,
            external_threshold,
            verify,
            force,
            verify_inputs,
            calibrate,
            calibrate_random,
            input_dist,
            calib_method,
            min_sqnr,
            keep_float,
            float,
            check_speed,
            fallback,
            python,
            threads,
            batch,
            speed_rounds,
            seed,
            report: report_file,
            all_ops,
        } => {
            let output = output.unwrap_or_else(|| input.clone());
            let external = match external_data {
                ExternalMode::Keep => ExternalData::Keep,
                ExternalMode::Inline => ExternalData::Inline,
                ExternalMode::File => ExternalData::File { threshold: external_threshold },
            };
            let instrument = qdqc::passes::Instrument {
                print_after: print_after.as_deref().map(qdqc::passes::PrintAfter::parse),
                diff,
                stop_after,
                check_each_pass: check_each_pass || qdqc::passes::Instrument::default().check_each_pass,
            };
            let target = match target {
                TargetArg::Ort => qdqc::passes::Target::Ort,
                TargetArg::Onnx => qdqc::passes::Target::Onnx,
            };
            let opt_level = opt_level.or(search.map(|s| match s {
                SearchArg::Greedy => "O2".to_string(),
                SearchArg::Saturate => "O3".to_string(),
            }));
            let save = SaveOptions { external, replace_input: in_place };
            let method = qdqc::calibrate::Method::parse(&calib_method).map_err(Error::Usage)?;
            let dists = qdqc::accuracy::parse_dists(&input_dist)?;
            let calib_samples = match (&calibrate, calibrate_random) {
                (Some(dir), _) => {
                    Some(qdqc::accuracy::Samples::Files { samples: qdqc::inputs::read_dir(dir)?, dir: dir.clone() })
                }
                (None, Some(count)) => {
                    Some(qdqc::accuracy::Samples::Random { count: count as usize, seed, dim: 1, dists: dists.clone() })
                }
                (None, None) => None,
            };
            if let (Some(c), Some(v)) = (&calibrate, &verify_inputs) {
                if qdqc::same_file(c, v) {
                    return Err(Error::Usage(format!(
                        "--verify-inputs {} is the calibration folder: verify on held-out samples",
                        v.display()
                    )));
                }
            }
            let calibrate =
                calib_samples.map(|samples| qdqc::calibrate::CalibrateOptions { samples, method, max_tensor_bytes });
            let approx = qdqc::approx(approx.as_deref(), calibrate.is_some())?;
            let ort_level = match ort_level {
                OrtLevelArg::All => qdqc::passes::OrtLevel::All,
                OrtLevelArg::Disable => qdqc::passes::OrtLevel::DisableAll,
            };
            let speed = check_speed.then(|| qdqc::speed::SpeedOptions {
                python: python
                    .or_else(|| std::env::var_os("QDQC_PYTHON").map(PathBuf::from))
                    .unwrap_or_else(|| "python3".into()),
                level: ort_level,
                threads: threads as usize,
                batch: batch as usize,
                rounds: speed_rounds as usize,
                fallback,
            });
            let opts = Options {
                passes,
                opt_level,
                target,
                approx,
                ort_level,
                instrument,
                load,
                save,
                calibrate,
                keep_float,
                float_model: float,
            };
            check_outputs(&input, &output, &report_file.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
            if let Some(dir) = &dump_dir {
                std::fs::create_dir_all(dir).map_err(|e| Error::File { path: dir.clone(), msg: plain_io(&e) })?;
            }
            let inputs = verify_inputs.map(|dir| qdqc::inputs::read_dir(&dir)).transpose()?;
            let check = verify.map(|samples| VerifyOptions {
                samples: inputs.as_ref().map_or(samples as usize, Vec::len),
                seed,
                force,
                inputs,
                max_tensor_bytes,
                min_sqnr,
                dists: dists.clone(),
                ..Default::default()
            });
            let bar = (check.is_some() || opts.calibrate.is_some()).then(|| Bar::new("working", 0));
            let progress = |what: &'static str, d, n| {
                if let Some(b) = &bar {
                    b.set_phase(what, d, n)
                }
            };
            let mut c = qdqc::compile_file(&input, &output, &opts, check.as_ref(), speed.as_ref(), &progress)?;
            if let Some(b) = &bar {
                b.finish();
            }
            if time_passes {
                eprint!("{}", qdqc::times_text(&c));
            }
            let failure = c.verify_failure.take();
            let summary = qdqc::report::Report::new(&c);
            if let Some(path) = &report_file {
                qdqc::write_atomic(path, summary.to_json().as_bytes())?;
            }
            for (i, run) in c.passes.iter().enumerate() {
                for (text, ext) in [(&run.dump, "ir"), (&run.diff, "diff")] {
                    let Some(text) = text else { continue };
                    match &dump_dir {
                        Some(dir) => {
                            qdqc::write_atomic(&dir.join(format!("{:02}-{}.{ext}", i + 1, run.pass)), text.as_bytes())?;
                        }
                        // With --json, stdout holds only the JSON.
                        None if json => eprint!("{text}"),
                        None if ext == "ir" => emit(&format!("// after {} (#{})\n{text}", run.pass, i + 1)),
                        None => emit(text),
                    }
                }
            }
            if json {
                emit(&qdqc::remarks_json(&c.remarks));
            } else if !quiet() {
                if let Some(cal) = &c.calibration {
                    emit(&cal.text());
                }
                for k in &c.kept_float {
                    let mut line = format!("keep-float: '{}': {} Q/DQ pair(s) removed", k.tensor, k.pairs);
                    if !k.float_weights.is_empty() {
                        line += &format!("; float weights {}", k.float_weights.join(", "));
                    }
                    if !k.integer_weights.is_empty() {
                        line += &format!("; integer weights stay dequantized: {}", k.integer_weights.join(", "));
                    }
                    emit(&(line + "\n"));
                }
                if let Some(report) = &c.verify {
                    emit(&report.table(false));
                }
                if let Some(report) = &c.calibrated_check {
                    emit(&format!(
                        "verification on {} held-out samples: the compiled model against the input model (minimum SQNR {} dB)\n",
                        report.samples,
                        min_sqnr.unwrap_or(qdqc::DEFAULT_MIN_SQNR_DB)
                    ));
                    emit(&report.pair_table());
                }
                if remarks {
                    emit(&qdqc::remarks_text(&c.remarks));
                }
                emit(&summary.table(remarks, all_ops));
                let runs: Vec<String> =
                    c.passes.iter().map(|r| format!("{} ({} changes)", r.pass, r.changes)).collect();
                let mut runs = if runs.is_empty() { "none".to_string() } else { runs.join(", ") };
                if !c.converged {
                    runs.push_str(" (stopped before a fixed point)");
                }
                let what = match &c.written {
                    Some(_) => format!("wrote {}", output.display()),
                    None => format!("did not write {}", output.display()),
                };
                emit(&format!(
                    "{what}: {} nodes (input had {}); passes: {runs}\n",
                    c.model.graph.op_count(),
                    c.input_nodes
                ));
            }
            if let Some(sp) = &c.speed {
                let line = sp.line() + "\n";
                if json {
                    eprint!("{line}");
                } else if !quiet() {
                    emit(&line);
                }
                if sp.kept_input {
                    eprintln!(
                        "qdqc: warning: the compiled model is slower than the input ({:.3}×); wrote the input model unchanged (--fallback)",
                        sp.ratio
                    );
                }
            }
            drop(summary);
            exit_without_freeing(c);
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Command::Run { model, inputs, random, seed, dim, out } => {
            let given = if inputs.is_empty() && random { None } else { Some(parse_inputs(&model, &inputs)?) };
            let outputs = qdqc::run_file(&model, &load, given, seed, dim, max_tensor_bytes)?;
            std::fs::create_dir_all(&out).map_err(|e| Error::File { path: out.clone(), msg: plain_io(&e) })?;
            for (name, value) in outputs {
                let path = out.join(format!("{}.npy", file_stem(&name)));
                let bytes = value.to_npy().map_err(|e| Error::File { path: path.clone(), msg: e.to_string() })?;
                qdqc::write_atomic(&path, &bytes)?;
                emit(&format!("{}: {} {:?} -> {}\n", escape(&name), value.dtype(), value.shape(), path.display()));
            }
        }
        Command::Verify { orig, compiled, samples, seed, dim, inputs, json, all } => {
            if let Some(path) = &json {
                qdqc::check_writable(path)?;
            }
            let inputs = inputs.map(|dir| qdqc::inputs::read_dir(&dir)).transpose()?;
            let opts =
                VerifyOptions { samples: samples as usize, seed, dim, inputs, max_tensor_bytes, ..Default::default() };
            let bar = Bar::new("verifying", opts.inputs.as_ref().map_or(opts.samples, Vec::len));
            let (report, failure) = qdqc::verify_files(&orig, &compiled, &load, &opts, &|_, d, n| bar.set(d, n))?;
            bar.finish();
            if !quiet() {
                emit(&report.table(all));
            }
            if let Some(path) = json {
                qdqc::write_atomic(&path, report.to_json().as_bytes())?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Command::Accuracy {
            qdq,
            compiled,
            float,
            inputs,
            samples,
            seed,
            dim,
            input_dist,
            topk,
            layers,
            json,
            html,
            labels,
        } => {
            for path in json.iter().chain(&html) {
                qdqc::check_writable(path)?;
                let models = [Some(&float), Some(&qdq), compiled.as_ref()];
                if let Some(m) = models.into_iter().flatten().find(|m| *m == path || qdqc::same_file(m, path)) {
                    return Err(Error::File { path: path.clone(), msg: format!("is also the model {}", m.display()) });
                }
            }
            let samples = match inputs {
                Some(dir) => qdqc::accuracy::Samples::Files { samples: qdqc::inputs::read_dir(&dir)?, dir },
                None => qdqc::accuracy::Samples::Random {
                    count: samples as usize,
                    seed,
                    dim,
                    dists: qdqc::accuracy::parse_dists(&input_dist)?,
                },
            };
            let labels = labels.map(|p| qdqc::accuracy::Labels::read(&p)).transpose()?;
            let opts = qdqc::accuracy::AccuracyOptions { samples, topk, layers, labels, max_tensor_bytes };
            let bar = Bar::new("measuring", 0);
            let report =
                qdqc::accuracy::accuracy_files(&float, &qdq, compiled.as_deref(), &load, &opts, &|what, d, n| {
                    bar.set_phase(what, d, n)
                })?;
            bar.finish();
            if !quiet() {
                emit(&report.table());
            }
            if let Some(path) = json {
                qdqc::write_atomic(&path, report.to_json().as_bytes())?;
            }
            if let Some(path) = html {
                let page = qdqc::html::accuracy_page_files(&report, &qdq, compiled.as_deref(), &load)?;
                qdqc::write_atomic(&path, page.as_bytes())?;
            }
        }
        Command::Diff { a, b } => {
            let (ga, gb) = (qdqc::load_with(&a, &load)?, qdqc::load_with(&b, &load)?);
            let color = match color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal(),
            };
            let (ta, tb) = (qdqc::ir::text::print(&ga.graph), qdqc::ir::text::print(&gb.graph));
            emit(&qdqc::diff::unified(&ta, &tb, &a.display().to_string(), &b.display().to_string(), color));
            if ta != tb {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An I/O error's message without any path it carries (the error line names the file itself).
fn plain_io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => std::io::Error::from(e.kind()).to_string(),
    }
}

/// A progress bar on stderr, shown only when stderr is a terminal and only once the work has
/// taken a while (a quick verification prints no bar at all).
struct Bar(Option<(indicatif::ProgressBar, std::time::Instant)>);

/// How long work runs before its progress bar appears.
const BAR_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

impl Bar {
    fn new(what: &'static str, total: usize) -> Bar {
        Bar((std::io::stderr().is_terminal() && !quiet()).then(|| {
            let b =
                indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::hidden());
            let style = indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed}]");
            b.set_style(style.expect("valid template"));
            b.set_message(what);
            (b, std::time::Instant::now())
        }))
    }
    fn set(&self, done: usize, total: usize) {
        if let Some((b, start)) = &self.0 {
            if b.is_hidden() && start.elapsed() >= BAR_DELAY && done < total {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    }
    /// Shows `what` as the bar's message (a new phase restarts the bar's count).
    fn set_phase(&self, what: &'static str, done: usize, total: usize) {
        if let Some((b, _)) = &self.0 {
            if b.message() != what {
                b.set_message(what);
            }
        }
        self.set(done, total);
    }
    fn finish(&self) {
        if let Some((b, _)) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// `NAME=FILE.npy` arguments.
/// `run`'s `NAME=FILE.npy` arguments as a sample of `model` (which names an input that is missing).
fn parse_inputs(model: &std::path::Path, args: &[String]) -> Result<qdqc::inputs::Sample, Error> {
    let mut sample = qdqc::inputs::Sample { path: model.to_path_buf(), inputs: Vec::new(), files: Vec::new() };
    for a in args {
        let (name, file) = a
            .split_once('=')
            .ok_or_else(|| Error::File { path: PathBuf::from(a), msg: "expected NAME=FILE.npy".into() })?;
        sample.inputs.push((name.to_string(), qdqc::read_npy(std::path::Path::new(file))?));
        sample.files.push(PathBuf::from(file));
    }
    Ok(sample)
}

/// A file name for a tensor name (ONNX names may hold `/` or `:`).
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// `compile --approx`'s and `--passes`' long help, listing every approximation with its worst
/// case (from `passes::APPROXIMATIONS`) and every pass (from the registry), so the lists cannot
/// drift from the code.
fn with_approximations(cmd: clap::Command) -> clap::Command {
    let mut help = String::from(
        "Approximations to allow, comma-separated, or `all`: rewrites that compute close to, not exactly, \
         what the QDQ model computes (docs/exactness.md). None by default:",
    );
    for a in qdqc::passes::APPROXIMATIONS {
        help += &format!("\n  {}: {}. Worst case: {}", a.name, a.what, a.worst);
    }
    let passes: Vec<&str> = qdqc::passes::registry().iter().map(|p| p.name()).collect();
    let o2 = qdqc::passes::pipeline("O2").unwrap_or_default().join(",");
    let passes_help = format!(
        "Comma-separated passes to run, `none` for a lossless round trip, or +NAME,-NAME to add passes to \
         or remove them from the -O level's pipeline (e.g. `--passes=-int8-to-uint8`). Default: the -O2 \
         pipeline, repeated to a fixed point: {o2}.\nPasses: {}",
        passes.join(", ")
    );
    cmd.mut_subcommand("compile", |c| {
        c.mut_arg("approx", |a| a.long_help(help)).mut_arg("passes", |a| a.long_help(passes_help))
    })
}

fn main() -> ExitCode {
    // Never hand freed memory back to the OS during a run: a compile frees and reallocates
    // hundreds of MB (the decoded protobuf, grown tables), and purging makes the kernel zero the
    // same pages again.
    // SAFETY: sets a process-wide allocator option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    qdqc::alloc::disable_transparent_huge_pages();
    let cli = match with_approximations(Cli::command()).try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the names in it hold.
            eprintln!("qdqc: error: {}", escape(&e.to_string()));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every positional and option of every subcommand says what it is.
    #[test]
    fn every_argument_has_help() {
        let cmd = with_approximations(Cli::command());
        let mut missing = Vec::new();
        for sub in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            for a in sub.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{} {id}", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn passes_help_lists_every_pass() {
        let mut cmd = with_approximations(Cli::command());
        let compile = cmd.find_subcommand_mut("compile").unwrap();
        let help =
            compile.get_arguments().find(|a| a.get_id() == "passes").unwrap().get_long_help().unwrap().to_string();
        for p in qdqc::passes::registry() {
            assert!(help.contains(p.name()), "{} missing from: {help}", p.name());
        }
    }
}
