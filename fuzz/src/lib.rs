//! Shared code of the qdqc fuzz targets: decoding and encoding models from and to bytes, the
//! structure-aware ONNX mutator ([`mutate`]) and input generation for the interpreter target.

pub mod mutate;

use prost::Message;
use qdqc_ir::onnx::Model;
use std::path::Path;

/// The folder external data is looked up in: one that does not exist, so a fuzz input never
/// reads a file (a model with external data fails to load, which is fine).
pub const NO_DIR: &str = "/nonexistent/qdqc-fuzz";

/// Inputs larger than this are skipped by the ONNX targets (the fixtures are at most 137 kB).
pub const MAX_MODEL_BYTES: usize = 1 << 20;

/// Decodes a model from fuzz bytes, `None` when it is refused (every refusal is an `Err`, never a
/// panic: a panic here is a finding).
pub fn decode(data: &[u8]) -> Option<Model> {
    if data.len() > MAX_MODEL_BYTES {
        return None;
    }
    Model::decode(bytes::Bytes::copy_from_slice(data), Path::new(NO_DIR)).ok()
}

/// Encodes a model as `save` would (tensors stay where they were), `None` when export refuses it.
pub fn encode(model: &Model) -> Option<Vec<u8>> {
    model.to_proto().ok().map(|p| p.encode_to_vec())
}

/// A small deterministic byte source over the fuzz input's tail: yields zeros once exhausted.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
}
