//! The `qdqc` command line. It parses flags, calls the library and prints; nothing else.
//! Exit status: 0 success, 1 verification failure (or a pass failing), 2 bad input or usage.

use clap::{Parser, Subcommand, ValueEnum};
use qdqc::ir::onnx::{ExternalData, SaveOptions};
use qdqc::{Error, Options};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
        #[arg(long, value_name = "LIST|none")]
        passes: Option<String>,
        /// Where tensor data goes: `keep` (as read), `inline`, or `file` (one side file OUT.data).
        #[arg(long, value_enum, default_value_t = ExternalMode::Keep)]
        external_data: ExternalMode,
        /// With `--external-data file`: tensors of at least this many bytes go to the side file.
        #[arg(long, default_value_t = 1024)]
        external_threshold: usize,
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
        Command::Compile { input, output, passes, external_data, external_threshold } => {
            let external = match external_data {
                ExternalMode::Keep => ExternalData::Keep,
                ExternalMode::Inline => ExternalData::Inline,
                ExternalMode::File => {
                    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    ExternalData::File { location: format!("{name}.data"), threshold: external_threshold }
                }
            };
            let opts = Options { passes, save: SaveOptions { external } };
            let c = qdqc::compile_file(&input, &output, &opts)?;
            let runs: Vec<String> = c.passes.iter().map(|r| format!("{} ({} changes)", r.pass, r.changes)).collect();
            let runs = if runs.is_empty() { "none".to_string() } else { runs.join(", ") };
            emit(&format!(
                "wrote {}: {} nodes (input had {}); passes: {}\n",
                output.display(),
                c.model.graph.op_count(),
                c.input_nodes,
                runs
            ));
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

fn main() -> ExitCode {
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
