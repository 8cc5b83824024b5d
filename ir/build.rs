//! Compiles the vendored `proto/onnx.proto` (onnx 1.23.2, IR version 14) into prost
//! message types. protox parses the schema in pure Rust, so no `protoc` binary is needed.
//! Every `bytes` field decodes as `bytes::Bytes`, so `raw_data` slices the input buffer
//! (or the mmap of the model file) without copying.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["onnx.proto"], ["proto"]).expect("proto/onnx.proto must parse");
    prost_build::Config::new().bytes(["."]).compile_fds(fds).expect("prost code generation for onnx.proto");
}
