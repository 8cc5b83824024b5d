//! ONNX I/O: `.onnx` files ⇄ [`Model`].
//!
//! Loading memory-maps the file and decodes it with prost into `bytes::Bytes`, so tensor payloads
//! (`raw_data`, external data) are slices of the mapping, never copies. Saving encodes straight
//! into a buffered temporary file next to the output and renames it into place, so a failed save
//! never leaves a half-written output. Everything the IR does not model travels in [`Model::meta`]
//! and the graph's `meta`, verbatim.

mod export;
mod external;
mod import;
mod sink;
mod wire;

pub use export::{type_proto, SavePlan};
pub use external::{ExternalData, ExternalStore, FileKey, LoadOptions};

use crate::graph::{Graph, GraphError};
use crate::proto::ModelProto;
use crate::tensor::TensorError;
use std::path::{Path, PathBuf};

/// The newest ONNX IR version whose schema this build compiles (onnx 1.23, `proto/onnx.proto`).
/// Newer files may carry fields prost would silently drop, so they are refused.
pub const MAX_IR_VERSION: i64 = 14;

/// An ONNX model: the graph as IR plus every other `ModelProto` field, verbatim.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    /// The `ModelProto` without its graph: ir_version, opset_import, producer, doc_string,
    /// metadata_props, functions, training_info, configuration — written back unchanged.
    pub meta: ModelProto,
    /// The external-data files this model was read with.
    pub external: ExternalStore,
}

/// What can be wrong with an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("IR version {found} is newer than qdqc reads (up to {MAX_IR_VERSION}); refusing to drop fields it does not know")]
    IrVersion { found: i64 },
    #[error("the model has no graph")]
    NoGraph,
    #[error("tensor '{name}': {source}")]
    Tensor { name: String, source: TensorError },
    #[error("external data location '{location}' must be a relative path inside the output's folder")]
    OutputLocation { location: String },
    #[error("{msg}")]
    Output { msg: String },
    #[error("would replace '{}', which the input model reads; choose another output, or replace the input with --in-place", file.display())]
    WouldReplaceInput { file: PathBuf },
    #[error("tensor '{name}': external data {msg}")]
    External { name: String, msg: String },
    #[error("node {node} ({op}): input '{input}' is not defined")]
    UndefinedInput { node: String, op: String, input: String },
    #[error("value '{name}': {msg}")]
    ValueInfo { name: String, msg: String },
    #[error("{0}")]
    Graph(#[from] GraphError),
    #[error("the model would be {size} bytes, over protobuf's 2 GiB limit: write its tensors as external data")]
    TooLarge { size: usize },
}

impl Error {
    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::UndefinedInput { node, .. } => Some(node),
            Error::Graph(e) => e.node(),
            _ => None,
        }
    }
}

/// An [`Error`] with the file it concerns. Displays as `PATH: message`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub error: Error,
}

fn in_file<T>(path: &Path, r: Result<T, Error>) -> Result<T, FileError> {
    r.map_err(|error| FileError { path: path.to_path_buf(), error })
}

/// How [`save`] writes the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaveOptions {
    pub external: ExternalData,
    /// Allow the output to replace the file the model was read from. The new side file then gets
    /// a name the input does not read, every file is flushed to disk before it is renamed into
    /// place, and the input's own side files that the new model does not read are removed once it
    /// is: a crash at any moment leaves the old model or the new one loadable.
    pub replace_input: bool,
}

impl Model {
    /// Decodes an in-memory model (external data, if any, is looked up relative to `base_dir`).
    pub fn decode(bytes: bytes::Bytes, base_dir: &Path) -> Result<Model, Error> {
        Model::decode_with(bytes, base_dir, &LoadOptions::default())
    }

    /// [`Model::decode`] with options.
    pub fn decode_with(bytes: bytes::Bytes, base_dir: &Path, opts: &LoadOptions) -> Result<Model, Error> {
        let (proto, nodes) = wire::split_model(bytes)?;
        import::import_model(proto, nodes, ExternalStore::with_options(base_dir, opts))
    }

    /// The full `ModelProto` (tensors referencing external data stay external).
    pub fn to_proto(&self) -> Result<ModelProto, Error> {
        export::export_model(self)
    }
}

/// Reads an `.onnx` file (memory-mapped; external data mapped from its side files, which must be
/// regular files inside the model's folder).
pub fn load(path: &Path) -> Result<Model, FileError> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model, FileError> {
    in_file(path, load_inner(path, opts))
}

fn load_inner(path: &Path, opts: &LoadOptions) -> Result<Model, Error> {
    let bytes = external::map_file(path)?;
    let base = path.parent().unwrap_or(Path::new(""));
    let (proto, nodes) = wire::split_model(bytes)?;
    let mut store = ExternalStore::with_options(base, opts);
    store.add_source(path);
    import::import_model(proto, nodes, store)
}

/// Writes a model to `path` and, if it has external data, its side file `NAME.data` beside it,
/// atomically per file: all files are written to temporaries first and renamed into place only
/// once everything succeeded. Refuses to write over any file the model was read from unless
/// [`SaveOptions::replace_input`] is set (see [`check_save`]).
pub fn save(model: &Model, path: &Path, opts: &SaveOptions) -> Result<SavePlan, FileError> {
    in_file(path, export::save(model, path, opts))
}

/// What [`save`] would write, checked without writing anything: the same errors for an output that
/// would replace a file the model was read from or that is a folder.
pub fn check_save(model: &Model, path: &Path, opts: &SaveOptions) -> Result<SavePlan, FileError> {
    in_file(path, export::plan(model, path, opts))
}

/// Decodes an `.onnx` file into the raw prost `ModelProto` (no IR), e.g. for comparisons.
pub fn read_proto(path: &Path) -> Result<ModelProto, FileError> {
    let r = external::map_file(path).and_then(|b| Ok(<ModelProto as prost::Message>::decode(b)?));
    in_file(path, r)
}
