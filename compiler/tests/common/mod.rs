//! Helpers the CLI test files share: running the binary, the fixtures, input samples.
#![allow(dead_code)] // each test file uses some of them

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `qdqc` binary.
pub fn qdqc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdqc")).args(args).output().expect("qdqc runs")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes an `.npz` file (members stored, or deflated) as numpy's `savez` does.
pub fn write_npz(path: &Path, members: &[(&str, qdqc::eval::Value)], deflate: bool) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, v) in members {
        w.start_file(format!("{name}.npy"), opts).unwrap();
        w.write_all(&v.to_npy().unwrap()).unwrap();
    }
    w.finish().unwrap();
}

/// A deterministic float input of `shape` in about [-2, 2].
pub fn wave(shape: &[usize], phase: f32) -> qdqc::eval::Value {
    let n: usize = shape.iter().product();
    qdqc::eval::Value::f32(shape, (0..n).map(|i| 2.0 * (i as f32 * 0.37 + phase).sin()).collect()).unwrap()
}

/// A JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
