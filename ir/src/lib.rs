//! The qdqc intermediate representation.
//!
//! - [`Graph`]: [`Node`]s in a stable-index arena with doubly linked edge lists (`arena`); a value
//!   is an [`Outlet`] `{node, slot}`; constants live once in a side table ([`ConstId`]).
//! - [`Op`]: the closed set of operators the compiler reasons about, plus `Other` for the rest.
//! - [`onnx`]: lossless ONNX I/O with prost (zero-copy tensor data, mmap, external data).
//! - [`infer`]: type, shape and quantization-parameter inference.
//! - [`text`]: the text form (printer and parser).
//! - [`validate`]: what a model must claim for qdqc to compile it (IR version, opsets, schemas).

mod arena;
pub mod attr;
pub mod builder;
pub mod dtype;
pub mod graph;
pub mod infer;
pub mod onnx;
pub mod op;
pub mod tensor;
pub mod text;
pub mod validate;

pub mod proto {
    //! prost message types generated from `proto/onnx.proto` (onnx 1.23.2, IR version 14).
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use dtype::DType;
pub use graph::{
    escape, Const, ConstId, ConstOrigin, ConstValue, Dim, Edge, Graph, GraphError, GraphOutput, Node, NodeId, NodeMeta,
    Operand, Outlet, Port, Quant, TensorType, Value,
};
pub use onnx::{load, save, Model, SaveOptions};
pub use op::{Op, OpKind, OtherOp};
pub use tensor::{Tensor, TensorError};
pub use text::{ParseError, PrintOptions};
