//! Bytes → ONNX model (`Model::decode`), then back to bytes. Every malformed input must be an
//! `Err`; a model that decodes must export, and what it exports must decode again.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

fuzz_target!(|data: &[u8]| {
    let Some(model) = qdqc_fuzz::decode(data) else { return };
    let Some(bytes) = qdqc_fuzz::encode(&model) else { return };
    if let Err(e) = qdqc_ir::onnx::Model::decode(bytes.into(), std::path::Path::new(qdqc_fuzz::NO_DIR)) {
        panic!("a decoded model's export does not decode again: {e}");
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    qdqc_fuzz::mutate::mutate(data, size, max_size, seed)
});
