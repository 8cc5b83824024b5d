//! Compiles the vendored `proto/onnx.proto` (onnx 1.23.2, IR version 14) into prost
//! message types. protox parses the schema in pure Rust, so no `protoc` binary is needed.
//! Every `bytes` field decodes as `bytes::Bytes`, so `raw_data` slices the input buffer
//! (or the mmap of the model file) without copying.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["onnx.proto"], ["proto"]).expect("proto/onnx.proto must parse");
    // AttributeProto holds a TensorProto, GraphProto, SparseTensorProto and TypeProto inline:
    // 1672 bytes per attribute, 8 kB per Conv node, most of a million-node graph's memory.
    // Boxed, these rare payloads cost a pointer each.
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    for field in ["t", "g", "sparse_tensor", "tp"] {
        config.boxed(format!(".onnx.AttributeProto.{field}"));
    }
    config.compile_fds(fds).expect("prost code generation for onnx.proto");
}
