//! `compile --check-speed`: the compiled model against its input in onnxruntime, measured at the
//! user's settings, because a per-op cost table cannot see onnxruntime's graph-level transforms
//! (channels-last chains at ORT_ENABLE_ALL, Conv+Add+Relu fusion on float paths).
//!
//! The measurement is `scripts/ort_bench.py` (built into the binary) run by a Python that has
//! onnxruntime's package (`pip install onnxruntime`): both models in interleaved rounds at one
//! graph optimization level, thread count and batch; the result is the median ratio of the
//! output's latency to the input's, with the spread of the rounds.

use crate::Error;
use qdqc_passes::OrtLevel;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The measuring script, as in the repository.
const SCRIPT: &str = include_str!("../../scripts/ort_bench.py");

/// How to measure.
#[derive(Clone, Debug)]
pub struct SpeedOptions {
    /// A Python with onnxruntime's package.
    pub python: PathBuf,
    pub level: OrtLevel,
    pub threads: usize,
    /// The size of symbolic input dims (the batch).
    pub batch: usize,
    pub rounds: usize,
    /// Write the input model instead of a slower output.
    pub fallback: bool,
}

impl Default for SpeedOptions {
    fn default() -> Self {
        SpeedOptions {
            python: "python3".into(),
            level: OrtLevel::All,
            threads: 1,
            batch: 1,
            rounds: 15,
            fallback: false,
        }
    }
}

/// What the measurement found.
#[derive(Clone, Debug, Serialize)]
pub struct SpeedReport {
    pub level: String,
    pub threads: usize,
    pub batch: usize,
    pub rounds: usize,
    /// Median latencies, in seconds.
    pub input_s: f64,
    pub output_s: f64,
    /// The output's latency over the input's: the median over the rounds, and the rounds' 10th
    /// and 90th percentiles.
    pub ratio: f64,
    pub ratio_p10: f64,
    pub ratio_p90: f64,
    /// The input model was written instead (`--fallback` and a ratio above 1).
    pub kept_input: bool,
}

impl SpeedReport {
    /// The output is slower than the input: its median ratio is above 1.
    pub fn slower(&self) -> bool {
        self.ratio > 1.0
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "speed in onnxruntime (level {}, {} thread{}, batch {}, {} interleaved rounds): {:.3}× the input's latency \
             (rounds {:.3}–{:.3}; input {}, output {})",
            self.level,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.batch,
            self.rounds,
            self.ratio,
            self.ratio_p10,
            self.ratio_p90,
            time(self.input_s),
            time(self.output_s)
        )
    }
}

fn time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// Measures `output` against `input` (model files) as `o` says.
pub fn measure(input: &Path, output: &Path, o: &SpeedOptions) -> Result<SpeedReport, Error> {
    let level = match o.level {
        OrtLevel::All => "all",
        OrtLevel::DisableAll => "disable",
    };
    let fail = |msg: String| Error::Speed(format!("{}: {msg}", o.python.display()));
    let run = Command::new(&o.python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(input)
        .arg(output)
        .args(["--level", level, "--json"])
        .args(["--threads", &o.threads.to_string(), "--batch", &o.batch.to_string()])
        .args(["--rounds", &o.rounds.to_string()])
        .output()
        .map_err(|e| fail(format!("cannot run it ({e}); --python names a Python with onnxruntime's package")))?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        let hint = if stderr.contains("No module named") {
            " (the measurement needs onnxruntime's Python package: pip install onnxruntime)"
        } else {
            ""
        };
        return Err(fail(format!("the measurement failed: {last}{hint}")));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run.stdout).map_err(|e| fail(format!("the measurement printed no result ({e})")))?;
    let num = |x: &serde_json::Value| x.as_f64().ok_or_else(|| fail("the measurement's result is incomplete".into()));
    let m = &v["models"][0];
    Ok(SpeedReport {
        level: level.to_string(),
        threads: o.threads,
        batch: o.batch,
        rounds: o.rounds,
        input_s: num(&v["reference"]["median_s"])?,
        output_s: num(&m["median_s"])?,
        ratio: num(&m["ratio"])?,
        ratio_p10: num(&m["ratio_p10"])?,
        ratio_p90: num(&m["ratio_p90"])?,
        kept_input: false,
    })
}
