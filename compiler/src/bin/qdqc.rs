//! The `qdqc` command line. It parses flags, calls the library and prints; nothing else.
//! Exit status: 0 success, 1 verification failure (or a pass failing), 2 bad input or usage.

use clap::{Parser, Subcommand, ValueEnum};
use qdqc::eval::Value;
use qdqc::ir::onnx::{ExternalData, SaveOptions};
use qdqc::{Error, Options, VerifyOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
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
}

#[derive(Subcommand)]
enum Command {
    /// Print the model's graph as text IR.
    Show {
        model: PathBuf,
        /// Constants with more elements are shown as dtype, shape, fingerprint and first values.
        #[arg(long, default_value_t = 16)]
        max_const: usize,
    },
    /// Op histogram, Q/DQ counts, integer vs float compute ops.
    Stats {
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compile a QDQ model and write the result.
    Compile {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Comma-separated passes to run, or `none` for a lossless round trip. Default: the -O2 pipeline.
        #[arg(long, value_name = "LIST|none", conflicts_with = "opt_level")]
        passes: Option<String>,
        /// Named pipeline: -O0 (no passes), -O2 (the default, greedy rewriting) or -O3 (equality
        /// saturation, docs/saturate.md).
        #[arg(short = 'O', value_name = "LEVEL")]
        opt_level: Option<String>,
        /// How rules are applied: `greedy` (the -O2 pipeline) or `saturate` (the -O3 pipeline).
        #[arg(long, value_enum, conflicts_with_all = ["opt_level", "passes"])]
        search: Option<SearchArg>,
        /// What the output may contain: `ort` (standard ops plus the com.microsoft ops onnxruntime
        /// runs) or `onnx` (standard ops only; what has no standard form stays a DQ→op→Q island).
        #[arg(long, value_enum, default_value_t = TargetArg::Ort)]
        target: TargetArg,
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
        /// Where tensor data goes: `keep` (as read), `inline`, or `file` (one side file OUT.data).
        #[arg(long, value_enum, default_value_t = ExternalMode::Keep)]
        external_data: ExternalMode,
        /// With `--external-data file`: tensors of at least this many bytes go to the side file.
        #[arg(long, default_value_t = 1024)]
        external_threshold: usize,
        /// Verify the result on N seeded random samples; on failure write nothing (exit 1).
        #[arg(long, value_name = "N")]
        verify: Option<usize>,
        /// With --verify: write the output even when verification fails.
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the report (stats before/after, pass changes, remarks, verify result) as JSON.
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
    },
    /// Run a model with the reference interpreter and write one .npy per output.
    Run {
        model: PathBuf,
        /// An input as NAME=FILE.npy (repeatable). Inputs not given are an error unless --random.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Seeded random inputs (floats standard normal, integers uniform).
        #[arg(long)]
        random: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of symbolic dims (such as the batch N) in random inputs.
        #[arg(long, default_value_t = 1)]
        dim: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run two models on the same inputs and compare every output and every shared tensor.
    Verify {
        orig: PathBuf,
        compiled: PathBuf,
        #[arg(long, default_value_t = 4)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of symbolic dims (such as the batch N) in random inputs.
        #[arg(long, default_value_t = 1)]
        dim: usize,
        /// A folder of NAME.npy inputs (one sample), or of subfolders, one sample each.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Also write the report as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// List every compared tensor, not only outputs and failures.
        #[arg(long)]
        all: bool,
    },
    /// Unified diff of the text IR of two models.
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
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

/// The process is about to exit, and the OS takes back its memory at once: freeing a
/// million-node graph one allocation at a time took a tenth of a second (clang's
/// `-disable-free`). The output is written and closed by then.
fn exit_without_freeing<T>(value: T) {
    std::mem::forget(value);
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Show { model, max_const } => {
            let m = qdqc::load(&model)?;
            let opts = qdqc::ir::text::PrintOptions { max_const_elems: max_const };
            emit(&qdqc::ir::text::print_with(&m.graph, &opts));
        }
        Command::Stats { model, json } => {
            let s = qdqc::stats::stats(&qdqc::load(&model)?.graph);
            emit(&if json { s.to_json() + "\n" } else { s.to_string() });
        }
        Command::Compile {
            input,
            output,
            passes,
            opt_level,
            search,
            target,
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
            seed,
            report: report_file,
        } => {
            let external = match external_data {
                ExternalMode::Keep => ExternalData::Keep,
                ExternalMode::Inline => ExternalData::Inline,
                ExternalMode::File => {
                    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    ExternalData::File { location: format!("{name}.data"), threshold: external_threshold }
                }
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
            let opts = Options { passes, opt_level, target, instrument, save: SaveOptions { external } };
            let check = verify.map(|samples| VerifyOptions { samples, seed, force, ..Default::default() });
            let bar = Bar::new("verifying", verify.unwrap_or(0));
            let c = qdqc::compile_file(&input, &output, &opts, check.as_ref(), &|d, n| bar.set(d, n))?;
            bar.finish();
            if time_passes {
                eprint!("{}", qdqc::times_text(&c));
            }
            let summary = qdqc::report::Report::new(&c);
            if let Some(path) = &report_file {
                qdqc::write_atomic(path, summary.to_json().as_bytes())?;
            }
            for (i, run) in c.passes.iter().enumerate() {
                for (text, ext) in [(&run.dump, "ir"), (&run.diff, "diff")] {
                    let Some(text) = text else { continue };
                    match &dump_dir {
                        Some(dir) => {
                            std::fs::create_dir_all(dir)
                                .map_err(|e| Error::File { path: dir.clone(), msg: e.to_string() })?;
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
                exit_without_freeing(c);
                return Ok(());
            }
            if let Some(report) = &c.verify {
                emit(&report.table(false));
            }
            if remarks {
                emit(&qdqc::remarks_text(&c.remarks));
            }
            emit(&summary.table(remarks));
            let runs: Vec<String> = c.passes.iter().map(|r| format!("{} ({} changes)", r.pass, r.changes)).collect();
            let mut runs = if runs.is_empty() { "none".to_string() } else { runs.join(", ") };
            if !c.converged {
                runs.push_str(" (stopped before a fixed point)");
            }
            emit(&format!(
                "wrote {}: {} nodes (input had {}); passes: {}\n",
                output.display(),
                c.model.graph.op_count(),
                c.input_nodes,
                runs
            ));
            exit_without_freeing(c);
        }
        Command::Run { model, inputs, random, seed, dim, out } => {
            let given = if inputs.is_empty() && random { None } else { Some(parse_inputs(&inputs)?) };
            let outputs = qdqc::run_file(&model, given, seed, dim)?;
            std::fs::create_dir_all(&out).map_err(|e| Error::File { path: out.clone(), msg: e.to_string() })?;
            for (name, value) in outputs {
                let path = out.join(format!("{}.npy", file_stem(&name)));
                let bytes = value.to_npy().map_err(|e| Error::File { path: path.clone(), msg: e.to_string() })?;
                qdqc::write_atomic(&path, &bytes)?;
                emit(&format!("{name}: {} {:?} -> {}\n", value.dtype(), value.shape(), path.display()));
            }
        }
        Command::Verify { orig, compiled, samples, seed, dim, inputs, json, all } => {
            let inputs = inputs.map(|dir| read_input_dir(&dir)).transpose()?;
            let opts = VerifyOptions { samples, seed, dim, inputs, force: false };
            let bar = Bar::new("verifying", opts.inputs.as_ref().map_or(samples, Vec::len));
            let (report, failure) = qdqc::verify_files(&orig, &compiled, &opts, &|d, n| bar.set(d, n))?;
            bar.finish();
            emit(&report.table(all));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report).expect("report serializes") + "\n";
                qdqc::write_atomic(&path, text.as_bytes())?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Command::Diff { a, b, color } => {
            let (ga, gb) = (qdqc::load(&a)?, qdqc::load(&b)?);
            let color = match color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal(),
            };
            let (ta, tb) = (qdqc::ir::text::print(&ga.graph), qdqc::ir::text::print(&gb.graph));
            emit(&qdqc::diff::unified(&ta, &tb, &a.display().to_string(), &b.display().to_string(), color));
        }
    }
    Ok(())
}

/// A progress bar on stderr, shown only when stderr is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(what: &'static str, total: usize) -> Bar {
        Bar(std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} samples [{elapsed}]");
            b.set_style(style.expect("valid template"));
            b.set_message(what);
            b
        }))
    }
    fn set(&self, done: usize, total: usize) {
        if let Some(b) = &self.0 {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// `NAME=FILE.npy` arguments.
fn parse_inputs(args: &[String]) -> Result<Vec<(String, Value)>, Error> {
    args.iter()
        .map(|a| {
            let (name, file) = a
                .split_once('=')
                .ok_or_else(|| Error::File { path: PathBuf::from(a), msg: "expected NAME=FILE.npy".into() })?;
            Ok((name.to_string(), qdqc::read_npy(std::path::Path::new(file))?))
        })
        .collect()
}

/// A folder of `NAME.npy` files is one sample; a folder of such folders is one sample each.
fn read_input_dir(dir: &std::path::Path) -> Result<Vec<Vec<(String, Value)>>, Error> {
    let err = |e: std::io::Error| Error::File { path: dir.to_path_buf(), msg: e.to_string() };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(err)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(err)?;
    entries.sort();
    let read_sample = |d: &std::path::Path| -> Result<Vec<(String, Value)>, Error> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(d).map_err(err)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(err)?;
        files.sort();
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .map(|p| Ok((p.file_stem().unwrap().to_string_lossy().into_owned(), qdqc::read_npy(p)?)))
            .collect()
    };
    let subdirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    if subdirs.is_empty() {
        Ok(vec![read_sample(dir)?])
    } else {
        subdirs.into_iter().map(|d| read_sample(d)).collect()
    }
}

/// A file name for a tensor name (ONNX names may hold `/` or `:`).
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

fn main() -> ExitCode {
    // Never hand freed memory back to the OS during a run: a compile frees and reallocates
    // hundreds of MB (the decoded protobuf, grown tables), and purging made the kernel zero the
    // same pages again (4 s of system time in a 1M-node compile, docs/benchmarks.md).
    // SAFETY: sets a process-wide allocator option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    qdqc::alloc::disable_transparent_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qdqc: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
