//! The interpreter's error type.

use qdqc_ir::{DType, GraphError};

use crate::value::DataError;

/// Why a graph could not be run. Node errors name the node (see `Node::label`) and its op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("node {node}: the interpreter does not implement {op}")]
    Unsupported { node: String, op: String },
    /// The op has a kernel, but this use of it (an attribute value, a mode, an element type) is
    /// not implemented: `feature` names what.
    #[error("node {node} ({op}): the interpreter does not support {feature}")]
    UnsupportedFeature { node: String, op: String, feature: String },
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

impl EvalError {
    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            EvalError::Unsupported { node, .. }
            | EvalError::UnsupportedFeature { node, .. }
            | EvalError::Kernel { node, .. } => Some(node),
            EvalError::Graph(e) => e.node(),
            _ => None,
        }
    }

    /// If the model is valid but uses something the interpreter does not implement, what that
    /// is (`op Foo`, `Resize: mode 'cubic'`, `f8e4m3fn tensors`); `None` for every other error.
    /// Conformance runners count these as skipped rather than failed.
    pub fn unsupported(&self) -> Option<String> {
        match self {
            EvalError::Unsupported { op, .. } => Some(format!("op {op}")),
            EvalError::UnsupportedFeature { op, feature, .. } => Some(format!("{op}: {feature}")),
            EvalError::InputDType { dtype, .. } => Some(format!("{dtype} tensors")),
            EvalError::Constant { source, .. } | EvalError::Data(source) => source.unsupported(),
            _ => None,
        }
    }
}

impl DataError {
    /// The element type the interpreter cannot represent, as a feature name.
    pub fn unsupported(&self) -> Option<String> {
        match self {
            DataError::UnsupportedDType(d) => Some(format!("{d} tensors")),
            _ => None,
        }
    }
}

/// An error inside a kernel; the executor adds the node and op.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// The inputs or attributes are invalid for the op.
    Invalid(String),
    /// Valid, but not implemented: names the feature (see [`EvalError::UnsupportedFeature`]).
    Unsupported(String),
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::Invalid(m) => f.write_str(m),
            KernelError::Unsupported(what) => write!(f, "the interpreter does not support {what}"),
        }
    }
}

impl From<DataError> for KernelError {
    fn from(e: DataError) -> Self {
        match e.unsupported() {
            Some(what) => KernelError::Unsupported(what),
            None => KernelError::Invalid(e.to_string()),
        }
    }
}

impl From<ndarray::ShapeError> for KernelError {
    fn from(e: ndarray::ShapeError) -> Self {
        KernelError::Invalid(format!("shape error: {e}"))
    }
}

pub(crate) type KResult<T> = Result<T, KernelError>;

/// Returns a [`KernelError`] with a formatted message.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::error::KernelError::Invalid(format!($($t)*))) };
}

/// Returns [`KernelError::Unsupported`]: the formatted text names the unimplemented feature
/// (e.g. `unsupported!("mode '{m}'")`), without the op name (the executor adds it).
macro_rules! unsupported {
    ($($t:tt)*) => { return Err($crate::error::KernelError::Unsupported(format!($($t)*))) };
}

/// Bails unless the condition holds.
macro_rules! ensure {
    ($c:expr, $($t:tt)*) => { if !$c { $crate::error::bail!($($t)*) } };
}

pub(crate) use {bail, ensure, unsupported};
