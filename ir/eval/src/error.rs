//! The interpreter's error type.

use qdqc_ir::{DType, GraphError};

use crate::value::DataError;

/// Why a graph could not be run. Node errors name the node (see `Node::label`) and its op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("node {node}: the interpreter does not implement {op}")]
    Unsupported { node: String, op: String },
    #[error("node {node} ({op}): {msg}")]
    Kernel { node: String, op: String, msg: String },
    #[error("graph input '{0}' was not given and has no default")]
    MissingInput(String),
    #[error("'{0}' is not an input of the graph")]
    UnknownInput(String),
    #[error("input '{name}': expected {expected}, got {actual}")]
    InputMismatch { name: String, expected: String, actual: String },
    #[error("constant '{name}': {source}")]
    Constant { name: String, source: DataError },
    #[error("input '{name}' has dtype {dtype}, which the interpreter does not support")]
    InputDType { name: String, dtype: DType },
    #[error("{0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Data(#[from] DataError),
}

/// An error inside a kernel; the executor adds the node and op.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelError(pub String);

impl From<DataError> for KernelError {
    fn from(e: DataError) -> Self {
        KernelError(e.to_string())
    }
}

impl From<ndarray::ShapeError> for KernelError {
    fn from(e: ndarray::ShapeError) -> Self {
        KernelError(format!("shape error: {e}"))
    }
}

pub(crate) type KResult<T> = Result<T, KernelError>;

/// Returns a [`KernelError`] with a formatted message.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::error::KernelError(format!($($t)*))) };
}

/// Bails unless the condition holds.
macro_rules! ensure {
    ($c:expr, $($t:tt)*) => { if !$c { $crate::error::bail!($($t)*) } };
}

pub(crate) use {bail, ensure};
