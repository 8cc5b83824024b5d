//! The qdqc reference interpreter: executes a [`qdqc_ir::Graph`] on the CPU.
//!
//! It is the oracle behind `qdqc run` and `qdqc verify`: float ops compute in f32 (elementwise
//! math in f64, rounded once, so `+ - * / sqrt` are bit-exact f32), QuantizeLinear /
//! DequantizeLinear and the integer ops reproduce onnxruntime's arithmetic bit for bit (see
//! `kernels::quant` and `kernels::qlinear` for the exact formulas), and integer kernels
//! accumulate exactly in i32.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use qdqc_eval::{run, RunOptions, Value};
//! let model = qdqc_ir::onnx::load(std::path::Path::new("model.onnx"))?;
//! let x = Value::f32(&[1, 3, 224, 224], vec![0.0; 3 * 224 * 224])?;
//! let result = run(&model.graph, &[("input".to_string(), x)], &RunOptions::default())?;
//! for (name, v) in &result.outputs {
//!     println!("{name}: {} {:?}", v.dtype(), v.shape());
//! }
//! # Ok(()) }
//! ```
//!
//! To run many samples, build an [`Interpreter`] once (it decodes constants and computes liveness)
//! and call [`Interpreter::run`] per sample; it is `Sync`, so samples may run in parallel.
//! An op without a kernel fails with [`EvalError::Unsupported`] naming the node; see
//! [`supported_ops`].

mod error;
pub mod exactness;
mod exec;
pub mod kernels;
mod limits;
pub mod npy;
mod num;
mod value;

pub use error::{EvalError, KernelError};
pub use exec::{Interpreter, Progress, ProgressFn, RunOptions, RunResult};
pub use kernels::contrib::{span_kind, Span};
pub use limits::{BYTES_PER_ELEMENT, DEFAULT_MAX_TENSOR_BYTES};
pub use num::{round_half_even, Scalar};
pub use value::{DataError, Value};

use qdqc_ir::{Graph, Op};

/// Runs `graph` once on `inputs` (by graph input name). Graph inputs with an initializer of the
/// same name may be omitted (the initializer is their default).
pub fn run(graph: &Graph, inputs: &[(String, Value)], opts: &RunOptions) -> Result<RunResult, EvalError> {
    Interpreter::with_limit(graph, opts.limit())?.run(inputs, opts)
}

/// Every op the interpreter has a kernel for (ai.onnx ops outside [`Op`]'s variants appear as
/// `Op::Other` of domain `""`).
pub fn supported_ops() -> Vec<Op> {
    kernels::REGISTRY.ops()
}

/// Whether the interpreter has a kernel for `op`.
pub fn supports(op: &Op) -> bool {
    kernels::REGISTRY.get(op).is_some()
}
