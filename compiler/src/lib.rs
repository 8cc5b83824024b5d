//! qdqc's library API: [`compile`] a QDQ model, [`stats`] about a model, [`diff`] of two models'
//! text forms. The `qdqc` binary only parses flags and prints what these return.

pub mod diff;
pub mod stats;

use qdqc_ir::onnx::{self, FileError, Model, SaveOptions};
use qdqc_passes::{PassError, PassManager, PassRun};
use std::path::{Path, PathBuf};

pub use qdqc_ir as ir;
pub use qdqc_passes as passes;

/// What to run and how to write the result.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Comma-separated pass names, `none` for a lossless round trip; `None` for the default pipeline.
    pub passes: Option<String>,
    pub save: SaveOptions,
}

/// Why qdqc failed. [`Error::exit_code`] maps each to the CLI's exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file cannot be read, decoded or makes no sense (bad input: exit 2).
    #[error("{0}")]
    Model(#[from] FileError),
    /// The model decodes but is not a valid graph (bad input: exit 2).
    #[error("{}: {error}", path.display())]
    InvalidGraph { path: PathBuf, error: qdqc_ir::GraphError },
    /// An unknown pass name (bad usage: exit 2).
    #[error("{0}")]
    UnknownPass(PassError),
    /// A pass failed or left an invalid graph: a qdqc bug, reported with the pass name (exit 1).
    #[error("{}: {error}", path.display())]
    Pass { path: PathBuf, error: PassError },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Model(_) | Error::InvalidGraph { .. } | Error::UnknownPass(_) => 2,
            Error::Pass { .. } => 1,
        }
    }
}

/// Loads a model and checks that its graph is valid.
pub fn load(path: &Path) -> Result<Model, Error> {
    let model = onnx::load(path)?;
    model.graph.verify().map_err(|error| Error::InvalidGraph { path: path.to_path_buf(), error })?;
    Ok(model)
}

/// The result of a compilation.
#[derive(Debug)]
pub struct Compiled {
    pub model: Model,
    /// Node count of the input graph (graph inputs excluded).
    pub input_nodes: usize,
    pub passes: Vec<PassRun>,
}

fn pipeline(opts: &Options) -> Result<PassManager, Error> {
    match &opts.passes {
        Some(spec) => PassManager::parse(spec).map_err(Error::UnknownPass),
        None => Ok(PassManager::default_pipeline()),
    }
}

/// Runs the pipeline on a loaded model. `path` names the model in errors.
pub fn compile(mut model: Model, path: &Path, opts: &Options) -> Result<Compiled, Error> {
    let pm = pipeline(opts)?;
    let input_nodes = model.graph.op_count();
    let passes = pm.run(&mut model.graph).map_err(|error| Error::Pass { path: path.to_path_buf(), error })?;
    Ok(Compiled { model, input_nodes, passes })
}

/// Loads `input`, compiles it and writes `output` (atomically: a failed run leaves no file).
pub fn compile_file(input: &Path, output: &Path, opts: &Options) -> Result<Compiled, Error> {
    pipeline(opts)?; // reject bad pass names before reading anything
    let compiled = compile(load(input)?, input, opts)?;
    onnx::save(&compiled.model, output, &opts.save)?;
    Ok(compiled)
}
