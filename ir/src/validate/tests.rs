use super::*;
use crate::onnx::ExternalStore;
use crate::proto::{ModelProto, OperatorSetIdProto};
use std::path::Path;

/// A model of the IR text `text`, importing the text's opsets, at IR version 8.
fn model(text: &str) -> Model {
    let graph = crate::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let opset_import =
        graph.opsets.iter().map(|(d, v)| OperatorSetIdProto { domain: Some(d.clone()), version: Some(*v) }).collect();
    let meta = ModelProto { ir_version: Some(8), opset_import, ..Default::default() };
    Model { graph, meta, external: ExternalStore::new(Path::new("")) }
}

/// A graph importing `opsets` with `body` (indented items) between a float input and output.
fn graph(opsets: &str, body: &str) -> String {
    format!("graph \"g\" opset({opsets}) {{\n  input %x: f32[2,3]\n{body}  output %y\n}}\n")
}

const QDQ: &str = "  const %s: f32[] 0.5\n  const %z: u8[] 128\n  \
    %q: u8[2,3] = QuantizeLinear(%x, %s, %z)  \"q\"\n  %y: f32[2,3] = DequantizeLinear(%q, %s, %z)  \"dq\"\n";

/// A per-axis DequantizeLinear of a constant (axis given) added to the input.
const PER_AXIS: &str = "  const %w: i8[2,3] [1, 2, 3, 4, 5, 6]\n  const %ws: f32[3] [0.5, 0.25, 0.125]\n  \
    %wd: f32[2,3] = DequantizeLinear[axis=1](%w, %ws)  \"wdq\"\n  %y: f32[2,3] = Add(%x, %wd)  \"add\"\n";

fn err(m: &Model) -> String {
    compilable(m).expect_err("the model must be refused").to_string()
}

#[test]
fn accepts_every_supported_opset() {
    for opset in MIN_OPSET..=MAX_OPSET {
        compilable(&model(&graph(&format!("ai.onnx={opset}"), QDQ))).unwrap();
        compilable(&model(&graph(&format!("ai.onnx={opset}"), PER_AXIS))).unwrap();
    }
    compilable(&model(&graph("ai.onnx=17, com.microsoft=1", QDQ))).unwrap();
}

#[test]
fn refuses_a_model_without_the_default_domain() {
    let e = err(&model(&graph("com.microsoft=1", QDQ)));
    assert_eq!(e, "the model imports no ai.onnx opset (opset_import has no entry for the domain ''): qdqc compiles ai.onnx opsets 13 to 28");
}

#[test]
fn refuses_two_default_domain_versions() {
    let mut m = model(&graph("ai.onnx=17", QDQ));
    m.meta.opset_import.push(OperatorSetIdProto { domain: Some("ai.onnx".into()), version: Some(13) });
    assert_eq!(err(&m), "the model imports ai.onnx more than once, at opsets 17, 13");
    // The same version twice says nothing contradictory.
    let mut m = model(&graph("ai.onnx=17", QDQ));
    m.meta.opset_import.push(OperatorSetIdProto { domain: Some("ai.onnx".into()), version: Some(17) });
    compilable(&m).unwrap();
}

#[test]
fn refuses_opsets_outside_the_range() {
    assert_eq!(
        err(&model(&graph("ai.onnx=12", QDQ))),
        "ai.onnx opset 12 is older than qdqc compiles (13 to 28): upgrade the model with \
         onnx.version_converter.convert_version(model, 13)"
    );
    assert_eq!(
        err(&model(&graph("ai.onnx=99", QDQ))),
        "ai.onnx opset 99 is newer than qdqc knows (13 to 28, the newest of onnx 1.23.2); \
         onnx.version_converter.convert_version(model, 28) may convert it down"
    );
}

#[test]
fn names_an_op_the_opset_does_not_have() {
    assert_eq!(
        err(&model(&graph("ai.onnx=7", QDQ))),
        "node 'q' (QuantizeLinear): QuantizeLinear does not exist at ai.onnx opset 7 (ai.onnx has it from \
         opset 10): the model's opset_import does not match its nodes"
    );
    // At IR 3 (what opset 7 came with) the node is still what is named first.
    let mut m = model(&graph("ai.onnx=7", QDQ));
    m.meta.ir_version = Some(3);
    assert!(err(&m).starts_with("node 'q' (QuantizeLinear): QuantizeLinear does not exist at ai.onnx opset 7"));
    let gelu = "  %y: f32[2,3] = Gelu(%x)  \"gelu\"\n";
    assert!(err(&model(&graph("ai.onnx=17", gelu)))
        .starts_with("node 'gelu' (Gelu): Gelu does not exist at ai.onnx opset 17 (ai.onnx has it from opset 20)"));
    compilable(&model(&graph("ai.onnx=20", gelu))).unwrap();
}

#[test]
fn names_ops_onnx_does_not_define_or_removed() {
    let foo = "  %y: f32[2,3] = Foo(%x)  \"foo\"\n";
    assert_eq!(
        err(&model(&graph("ai.onnx=17", foo))),
        "node 'foo' (Foo): 'Foo' is not an ai.onnx operator (at any opset onnx 1.23.2 defines)"
    );
    let up = "  const %sc: f32[4] [1.0, 1.0, 2.0, 2.0]\n  %y: f32[?] = Upsample(%x, %sc)  \"up\"\n";
    assert_eq!(
        err(&model(&graph("ai.onnx=13", up))),
        "node 'up' (Upsample): Upsample is deprecated at ai.onnx opset 13 (from opset 10)"
    );
    // Ops of other domains are not onnx's to check.
    compilable(&model(&graph("ai.onnx=17, com.example=1", "  %y: f32[2,3] = com.example.Foo[bar=1](%x)\n"))).unwrap();
}

#[test]
fn refuses_attributes_the_opset_does_not_have() {
    assert_eq!(
        err(&model(&graph("ai.onnx=12", PER_AXIS))),
        "node 'wdq' (DequantizeLinear): attribute 'axis' does not exist at ai.onnx opset 12 (DequantizeLinear \
         has it from opset 13): upgrade the model with onnx.version_converter.convert_version(model, 13)"
    );
    let blocked = QDQ.replace("QuantizeLinear(", "QuantizeLinear[saturate=1](");
    assert!(err(&model(&graph("ai.onnx=17", &blocked))).contains(
        "node 'q' (QuantizeLinear): attribute 'saturate' does not exist at ai.onnx opset 17 (QuantizeLinear has \
         it from opset 19): upgrade the model with onnx.version_converter.convert_version(model, 19)"
    ));
    compilable(&model(&graph("ai.onnx=19", &blocked))).unwrap();
    let blocked = PER_AXIS
        .replace("%ws: f32[3] [0.5, 0.25, 0.125]", "%ws: f32[2,1] [0.5, 0.25]")
        .replace("[axis=1]", "[axis=1, block_size=3]");
    assert!(err(&model(&graph("ai.onnx=19", &blocked))).contains(
        "attribute 'block_size' does not exist at ai.onnx opset 19 (DequantizeLinear has it from opset 21): upgrade \
         the model with onnx.version_converter.convert_version(model, 21)"
    ));
    let out_dtype = QDQ.replace("DequantizeLinear(", "DequantizeLinear[output_dtype=1](");
    assert!(err(&model(&graph("ai.onnx=21", &out_dtype))).contains(
        "attribute 'output_dtype' does not exist at ai.onnx opset 21 (DequantizeLinear has it from opset 23)"
    ));
    // Removed at opset 13: Squeeze's axes became an input.
    let squeeze = "  %y: f32[3] = Squeeze[axes=[0]](%x)  \"sq\"\n";
    let text = graph("ai.onnx=13", squeeze).replace("%x: f32[2,3]", "%x: f32[1,3]");
    assert_eq!(
        err(&model(&text)),
        "node 'sq' (Squeeze): attribute 'axes' does not exist at ai.onnx opset 13 (Squeeze had it before opset 13)"
    );
    let conv = "  %y: f32[2,3] = Relu[alpha=1.0](%x)  \"relu\"\n";
    assert_eq!(
        err(&model(&graph("ai.onnx=17", conv))),
        "node 'relu' (Relu): Relu has no attribute 'alpha' (at any opset onnx 1.23.2 defines)"
    );
}

#[test]
fn refuses_mistyped_and_missing_attributes() {
    let float_axis = PER_AXIS.replace("axis=1", "axis=1.0");
    assert_eq!(
        err(&model(&graph("ai.onnx=17", &float_axis))),
        "node 'wdq' (DequantizeLinear): attribute 'axis' is FLOAT, DequantizeLinear-13 takes INT"
    );
    // (Inference already refuses a Cast without `to` at load; the check does not rely on it.)
    let mut m = model(&graph("ai.onnx=17", "  %y: f32[2,3] = Cast[to=1](%x)  \"cast\"\n"));
    let id = m.graph.node_ids().find(|&id| m.graph.node(id).name() == "cast").unwrap();
    m.graph.node_mut(id).attrs = Vec::new().into();
    assert_eq!(err(&m), "node 'cast' (Cast): attribute 'to' is required by Cast-13 and missing");
    let mut m = model(&graph("ai.onnx=17", PER_AXIS));
    let id = m.graph.node_ids().find(|&id| m.graph.node(id).name() == "wdq").unwrap();
    let mut untyped = m.graph.node(id).attrs.to_vec();
    untyped[0].r#type = None;
    m.graph.node_mut(id).attrs = untyped.into();
    assert_eq!(
        err(&m),
        "node 'wdq' (DequantizeLinear): attribute 'axis' has no type (ONNX requires one; DequantizeLinear takes INT)"
    );
}

#[test]
fn contrib_quantize_linear_is_not_checked_against_onnx() {
    // onnxruntime's com.microsoft QuantizeLinear has `axis` at every version.
    let ms = PER_AXIS.replace("DequantizeLinear[axis=1]", "com.microsoft.DequantizeLinear[axis=1]");
    compilable(&model(&graph("ai.onnx=13, com.microsoft=1", &ms))).unwrap();
}

#[test]
fn refuses_other_microsoft_opsets() {
    assert_eq!(
        err(&model(&graph("ai.onnx=17, com.microsoft=2", QDQ))),
        "the model imports com.microsoft opset 2: onnxruntime defines com.microsoft opset 1 only"
    );
}

#[test]
fn refuses_old_or_missing_ir_versions() {
    let mut m = model(&graph("ai.onnx=17", QDQ));
    m.meta.ir_version = Some(3);
    assert_eq!(
        err(&m),
        "the model has IR version 3: qdqc compiles IR versions 4 to 14 (IR 3 lists every initializer as a graph \
         input, which the constants qdqc adds are not)"
    );
    m.meta.ir_version = None;
    assert!(err(&m).starts_with("the model has no IR version (ir_version is unset): qdqc compiles IR versions 4 to 14"));
    m.meta.ir_version = Some(4);
    compilable(&m).unwrap();
}

#[test]
fn refuses_a_graph_without_outputs() {
    let text = graph("ai.onnx=17", QDQ).replace("  output %y\n", "");
    assert_eq!(
        err(&model(&text)),
        "the graph has no outputs: nothing it computes can be read, so there is nothing to compile"
    );
}

#[test]
fn every_modelled_op_has_its_attributes_in_the_table() {
    for op in Op::KNOWN.iter().filter(|op| op.default_domain().is_empty()) {
        let s = schema(op.name()).unwrap_or_else(|| panic!("{op} is not in the schema table"));
        assert!(s.versions.iter().all(|v| v.attrs.is_some()), "{op}: attributes missing (regenerate schemas.rs)");
    }
    assert!(schema("Upsample").unwrap().versions.iter().all(|v| v.attrs.is_none()));
    let names: Vec<&str> = schemas::SCHEMAS.iter().map(|s| s.op).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "the table must be sorted for binary search");
}
