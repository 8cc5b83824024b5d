//! `load` + `save` and nothing else: the baseline of `scripts/bench_io.sh` (and its fallback
//! when the `qdqc` CLI is not built).
//!
//!     roundtrip IN.onnx OUT.onnx [keep|inline|file[:THRESHOLD]]
//!
//! Prints the load and save times to stderr. Exit status 0 on success, 2 on any error.

use qdqc_ir::onnx::{load, save, ExternalData, SaveOptions};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn mode(arg: Option<&str>) -> Result<ExternalData, String> {
    match arg.unwrap_or("keep") {
        "keep" => Ok(ExternalData::Keep),
        "inline" => Ok(ExternalData::Inline),
        "file" => Ok(ExternalData::File { threshold: 1024 }),
        m => match m.strip_prefix("file:").map(str::parse::<usize>) {
            Some(Ok(threshold)) => Ok(ExternalData::File { threshold }),
            _ => Err(format!("unknown mode '{m}' (keep, inline, file or file:THRESHOLD)")),
        },
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [input, output, rest @ ..] = args else {
        return Err("usage: roundtrip IN.onnx OUT.onnx [keep|inline|file[:THRESHOLD]]".into());
    };
    let (input, output) = (Path::new(input), Path::new(output));
    let external = mode(rest.first().map(String::as_str))?;
    let t = Instant::now();
    let model = load(input).map_err(|e| e.to_string())?;
    let loaded = t.elapsed();
    save(&model, output, &SaveOptions { external, ..Default::default() }).map_err(|e| e.to_string())?;
    eprintln!("load {:.3} s, save {:.3} s", loaded.as_secs_f64(), (t.elapsed() - loaded).as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roundtrip: {e}");
            ExitCode::from(2)
        }
    }
}
