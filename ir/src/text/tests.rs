//! Unit tests of each piece of the syntax, of errors and of what elided constants mean.

use super::values::{f32_to_bf16, f32_to_f16};
use super::*;
use crate::attr;
use crate::graph::{Const, ConstOrigin, ConstValue, Operand, Value};
use crate::proto::attribute_proto::AttributeType as A;
use crate::proto::{AttributeProto, GraphProto, NodeProto, TypeProto};

/// Parses `text` (a whole graph) and checks that it prints back exactly.
#[track_caller]
fn rt(text: &str) -> crate::Graph {
    let g = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(print(&g), text);
    g
}

/// `body` (indented items) inside a graph header.
fn graph(body: &str) -> String {
    format!("graph \"g\" opset(ai.onnx=21) {{\n{body}}}\n")
}

/// The parse error of `text`, as displayed.
#[track_caller]
fn error(text: &str) -> String {
    match parse(text) {
        Ok(g) => panic!("parsed:\n{}", print(&g)),
        Err(e) => e.to_string(),
    }
}

// ---- names, types, values ------------------------------------------------------------------

#[test]
fn names_are_bare_or_quoted() {
    let g = rt(&graph(
        "  input %x: f32[2]\n  input %\"a b\": f32[2]\n  input %\"x:\": f32[2]\n  input %\"\\\"q\\\"\\n\": f32[2]\n  \
         %onnx::Add_3:0: f32[2] = Add(%x, %\"a b\")\n  %conv/BiasAdd-1.y: f32[2] = Add(%onnx::Add_3:0, %\"x:\")\n  \
         output %conv/BiasAdd-1.y\n",
    ));
    assert!(g.lookup("x:").is_some() && g.lookup("\"q\"\n").is_some() && g.lookup("onnx::Add_3:0").is_some());
}

#[test]
fn types_known_symbolic_unknown() {
    rt(&graph(
        "  input %a: f32[N,3,?,\"batch size\",0]\n  input %b: u8[*]\n  input %c\n  input %d: bool[]\n  \
         %e, _, %f: i4[\"3\",\"?\"] = com.x.Op(%a, _, %b, %c, %d)\n  output %e\n  output %f\n",
    ));
    let text = graph("  input %a: ?\n  output %a\n");
    assert_eq!(print(&parse(&text).unwrap()), graph("  input %a\n  output %a\n"));
}

#[test]
fn every_dtype_has_a_name_and_a_value_syntax() {
    let mut body = String::new();
    for (i, d) in crate::DType::ALL.iter().enumerate() {
        let v = match d.name() {
            "str" => "[\"a\", \"\\xff\\x00\"]".to_string(),
            "bool" => "[true, false]".into(),
            "f32" | "f64" | "f16" | "bf16" => "[1.5, -inf]".into(),
            "c128" => "[0x0000000000000000000000000000003f, 0xffffffffffffffffffffffffffffffff]".into(),
            "c64" => "[0x000000000000003f, 0xffffffffffffffff]".into(),
            n if n.starts_with("f8") => "[0x3c, 0xff]".into(),
            "f6e2m3" | "f6e3m2" => "[0x3f, 0x01]".into(),
            "f4e2m1" => "[0xf, 0x1]".into(),
            _ if d.is_signed_int() => "[-1, 1]".into(),
            _ => "[0, 1]".into(),
        };
        body.push_str(&format!("  const %c{i}: {}[2] {v}\n", d.name()));
    }
    let g = rt(&graph(&body));
    assert_eq!(g.constants().count(), 28);
}

#[test]
fn extreme_values() {
    rt(&graph(
        "  const %a: f32[6] [NaN, inf, -inf, -0.0, 1e-45, 3.4028235e38]\n  \
         const %b: f64[3] [1e-300, 0.1, -2.5]\n  const %c: i64[2] [-9223372036854775808, 9223372036854775807]\n  \
         const %d: u64[] 18446744073709551615\n  const %e: bool[2] [true, 7]\n  const %f: f16[3] [65504.0, 5.9604645e-8, -0.0]\n  \
         const %g: u2[5] [0, 1, 2, 3, 1]\n  const %h: f32[0] []\n",
    ));
    let e = error(&graph("  const %a: u8[] 256\n"));
    assert_eq!(e, "2:18: 256 is out of range for u8");
    let e = error(&graph("  const %a: i8[2] [1.5, 2]\n"));
    assert_eq!(e, "2:20: expected an integer, found 1.5");
    let e = error(&graph("  const %a: f6e2m3[] 0x40\n"));
    assert_eq!(e, "2:22: 0x40 is out of range for f6e2m3");
}

#[test]
fn half_precision_conversions_round_trip() {
    for h in 0..=u16::MAX {
        let f = crate::tensor::f16_to_f32(h);
        if !f.is_nan() {
            assert_eq!(f32_to_f16(f), h, "f16 {h:#06x}");
        }
        let b = f32::from_bits((h as u32) << 16);
        if !b.is_nan() {
            assert_eq!(f32_to_bf16(b), h, "bf16 {h:#06x}");
        }
    }
    // Rounding: ties to even, overflow to infinity, underflow to zero.
    assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
    assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02);
    assert_eq!(f32_to_f16(70000.0), 0x7c00);
    assert_eq!(f32_to_f16(1e-9), 0);
    assert_eq!(f32_to_f16(0.1), 0x2e66);
    assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
}

#[test]
fn strings_escape_controls_and_bytes_that_are_not_utf8() {
    let mut g = crate::Graph::new();
    let t = crate::Tensor {
        proto: crate::proto::TensorProto {
            dims: vec![3],
            data_type: Some(crate::DType::String.to_onnx()),
            string_data: vec![b"a\"\\\n\t\r\x01"[..].into(), b"\xff\xfe\xc3"[..].into(), "é…\u{85}".as_bytes().into()],
            ..Default::default()
        },
        external: None,
    };
    g.add_const(Const { name: "s".into(), value: ConstValue::Dense(t.clone()), origin: ConstOrigin::Initializer })
        .unwrap();
    let text = print(&g);
    assert_eq!(
        text,
        "graph {\n  const %s: str[3] [\"a\\\"\\\\\\n\\t\\r\\x01\", \"\\xff\\xfe\\xc3\", \"é…\\u{85}\"]\n}\n"
    );
    let back = parse(&text).unwrap();
    let (_, c) = back.constants().next().unwrap();
    assert_eq!(c.tensor().unwrap().strings().unwrap(), t.strings().unwrap());
}

// ---- quantization annotations ----------------------------------------------------------------

const QDQ: &str = "  input %x: f32[N,4]
  const %s: f32[] 0.0213
  const %zp: u8[] 128
  const %s2: f32[] 0.0213
  const %w: i8[4,4] #00000000000000ff [1, -3, 4, 2, …]
  const %ws: f32[4] [0.5, 0.25, 0.125, 1.0]
  const %wzp: i8[4] [0, 0, 0, 0]
";

#[test]
fn quant_of_scalars_prints_numbers_else_constants() {
    let g = rt(&graph(&format!(
        "{QDQ}  %xq: u8[N,4] q(0.0213, 128) = QuantizeLinear(%x, %s2, %zp)
  %xd: f32[N,4] = DequantizeLinear(%xq, %s2, %zp)
  %wd: f32[4,4] = DequantizeLinear[axis=0](%w, %ws, %wzp)
  %y: i8[N,4] q(%ws, %wzp, axis=1, block=32) = com.x.Q(%xd, %wd)
  %z: u8[N,4] q(%ws, axis=1) = com.x.Q(%xd)
  output %y
  output %z
"
    )));
    // The written q(0.0213, 128) may name %s or %s2: inference picked the one the node reads.
    let xq = g.lookup("xq").unwrap();
    let Operand::Value(o) = xq else { panic!() };
    assert_eq!(
        g.value(o).quant.as_ref().unwrap().scale,
        match g.lookup("s2") {
            Some(Operand::Const(c)) => c,
            _ => panic!(),
        }
    );
}

#[test]
fn quant_with_a_float_zero_point_prints_the_constants() {
    // A float4/float8 zero point prints as bits (0x0) that no integer lookup matches back: name it.
    let text = "graph {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: f4e2m1[] 0x0
  %y: i32[4] q(%s, %z) = com.x.Q(%x)
  output %y
}
";
    rt(text);
}

#[test]
fn quant_annotations_may_be_left_out_and_are_checked() {
    let text = graph(&format!("{QDQ}  %xq = QuantizeLinear(%x, %s, %zp)\n  output %xq\n"));
    let printed = print(&parse(&text).unwrap());
    assert!(printed.contains("%xq: u8[N,4] q(0.0213, 128) = QuantizeLinear(%x, %s, %zp)"), "{printed}");
    let wrong = graph(&format!("{QDQ}  %xq q(0.0213, 0) = QuantizeLinear(%x, %s, %zp)\n  output %xq\n"));
    assert_eq!(error(&wrong), "9:7: q(0.0213, 0) disagrees with the inferred q(0.0213, 128)");
    let missing = graph(&format!("{QDQ}  %xq: u8[N,4] q(0.5, 128) = QuantizeLinear(%x, %s, %zp)\n  output %xq\n"));
    assert!(error(&missing).starts_with("9:18: no scalar float constant holds 0.5"), "{}", error(&missing));
    let not_const = graph(&format!("{QDQ}  %y: u8[N,4] q(%x) = com.x.Q(%x)\n  output %y\n"));
    assert_eq!(error(&not_const), "9:17: %x is not a constant");
}

// ---- constants -----------------------------------------------------------------------------

#[test]
fn large_constants_are_elided_and_elided_ones_have_no_data() {
    let mut g = crate::Graph::new();
    let w = crate::Tensor::from_i64("w", crate::DType::I8, &[4, 5], &(0..20).collect::<Vec<_>>());
    let fp = w.fingerprint().unwrap();
    g.add_initializer("w", w);
    let text = print(&g);
    assert_eq!(text, format!("graph {{\n  const %w: i8[4,5] #{fp:016x} [0, 1, 2, 3, …]\n}}\n"));
    let full = print_with(&g, &PrintOptions { max_const_elems: 20 });
    assert!(full.contains("const %w: i8[4,5] [0, 1, 2, 3, 4, 5, 6,") && !full.contains('#'));
    let back = rt(&text);
    let (_, c) = back.constants().next().unwrap();
    assert!(c.tensor().is_none());
    assert_eq!(c.ty(), Some(crate::TensorType::known(crate::DType::I8, &[4, 5])));
    assert!(
        matches!(&c.value, ConstValue::Elided(e) if e.fingerprint == fp && e.head.to_i64().unwrap() == [0, 1, 2, 3])
    );
    // Export refuses it, saying why.
    let model = crate::Model { graph: back, meta: Default::default(), external: Default::default() };
    let err = model.to_proto().unwrap_err().to_string();
    assert!(err.contains("elided in the text form"), "{err}");
}

#[test]
fn elided_forms_of_every_kind() {
    rt(&graph(
        "  const %a: str[100] #0123456789abcdef [\"x\", \"y\", …]\n  const %b: f8e5m2[9,9] #0123456789abcdef [0x3c, …]\n  \
         const %c: f32[3] #0123456789abcdef […]\n  const %d: i4[1000000000000] #0123456789abcdef [-8, 7, 0, 1, …]\n",
    ));
    assert_eq!(
        error(&graph("  const %a: f32[2] #0123456789abcdef [1.0, 2.0, 3.0, …]\n")),
        "2:20: 3 values shown for a tensor of 2"
    );
}

#[test]
fn constant_origins_and_sparse_constants() {
    let g = rt(&graph(
        "  input %x: f32[2]\n  const(default) %x: f32[2] [1.0, 2.0]\n  const(node) %c: i64[2] [1, 2]\n  \
         const %sp: sparse[3,3](f32[2] [1.0, 2.0], i64[2] [0, 8])\n  const %sp2: sparse[3](tensor(0x), tensor(0x))\n  \
         %y = com.x.F(%x, %c, %sp)\n  output %y\n",
    ));
    let origins: Vec<_> = g.constants().map(|(_, c)| std::mem::discriminant(&c.origin)).collect();
    assert_eq!(origins[0], std::mem::discriminant(&ConstOrigin::InputDefault));
    assert!(matches!(g.constants().nth(1).unwrap().1.origin, ConstOrigin::ConstantNode { .. }));
    assert_eq!(g.constants().nth(2).unwrap().1.ty(), Some(crate::TensorType::known(crate::DType::F32, &[3, 3])));
    // Nodes read the input, not its default.
    let model = crate::Model { graph: g, meta: Default::default(), external: Default::default() };
    let p = model.to_proto().unwrap().graph.unwrap();
    assert_eq!(p.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect::<Vec<_>>(), ["Constant", "F"]);
    assert_eq!(p.initializer.len(), 1);
    assert_eq!(p.sparse_initializer.len(), 2);
}

#[test]
fn invalid_tensors_print_their_protobuf() {
    let mut g = crate::Graph::new();
    let mut t = crate::Tensor::from_f32("t", &[3], &[1.0, 2.0, 3.0]);
    t.proto.dims = vec![4];
    let c = Const { name: "t".into(), value: ConstValue::Dense(t.clone()), origin: ConstOrigin::Initializer };
    g.add_const(c).unwrap();
    let text = rt(&print(&g));
    assert!(print(&text).contains("const %t: tensor(0x"));
    assert_eq!(text.constants().next().unwrap().1.tensor().unwrap().proto, t.proto);
}

// ---- nodes and ops -------------------------------------------------------------------------

#[test]
fn ops_are_written_with_the_domain_only_when_needed() {
    let g = rt(&graph(
        "  input %x: f32[2]\n  const %s: f32[] 0.5\n  %a: u8[2] q(0.5, 0) = com.microsoft.QuantizeLinear(%x, %s)\n  \
         %c = com.example.MyOp(%a)\n  %d = ai.onnx.QLinearAdd(%c)\n  %e = \"a.b\".\"My Op\"(%d)\n  \
         %f = \"\".\"9\"(%e)\n  %g = ai.onnx.ml.Normalizer(%f)\n  output %g\n",
    ));
    let ops: Vec<_> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .map(|id| (g.node(id).op.clone(), g.node(id).domain().map(str::to_string)))
        .collect();
    assert_eq!(ops[0], (crate::Op::QuantizeLinear, Some("com.microsoft".into())));
    assert!(matches!(&ops[2].0, crate::Op::Other(o) if o.domain == "ai.onnx" && o.op_type == "QLinearAdd"));
    assert!(matches!(&ops[3].0, crate::Op::Other(o) if o.domain == "a.b" && o.op_type == "My Op"));
    // A bare name is a known op of ai.onnx or com.microsoft.
    let (op, domain) = super::build::resolve_op(None, "QLinearAdd");
    assert_eq!((op, domain.as_deref()), (crate::Op::QLinearAdd, Some("com.microsoft")));
    assert_eq!(super::build::resolve_op(None, "Conv"), (crate::Op::Conv, None));
    // Spellings that mean the same print the same.
    let text = graph("  input %x: f32[2]\n  %y = ai.onnx.Relu(%x)\n  output %y\n");
    assert_eq!(print(&parse(&text).unwrap()), graph("  input %x: f32[2]\n  %y: f32[2] = Relu(%x)\n  output %y\n"));
}

#[test]
fn optional_inputs_outputs_node_names_and_nodes_without_outputs() {
    rt(&graph(
        "  input %x: f32[2]\n  %a, _, %b = com.x.Split(%x, _, _, %x)  \"split \\\"1\\\"\"\n  = com.x.Sink(%a, %b)\n  \
         %c = com.x.Zero()\n  output %c\n",
    ));
}

#[test]
fn nodes_may_be_written_in_any_order() {
    let text = graph("  %b = com.x.G(%a)\n  %a = com.x.F(%x)\n  input %x: f32[1]\n  output %b\n");
    let printed = print(&parse(&text).unwrap());
    assert_eq!(printed, graph("  input %x: f32[1]\n  %a = com.x.F(%x)\n  %b = com.x.G(%a)\n  output %b\n"));
}

#[test]
fn print_node_gives_one_line() {
    let g = rt(&graph("  input %x: f32[2]\n  %y: f32[2] = Relu(%x)  \"r\"\n  output %y\n"));
    let id = g.topo_order().unwrap()[0];
    assert_eq!(print_node(&g, id), "%y: f32[2] = Relu(%x)  \"r\"");
}

// ---- attributes ----------------------------------------------------------------------------

#[test]
fn attributes_of_every_kind() {
    rt(&graph(
        "  input %x: f32[2]
  %y = com.x.Op[i=-3, f=1.0, f2=1e-5, f3=-inf, f4=NaN, s=\"nearest\", b=\"\\xff\\x00\", ints=[1,-1], floats=[1.0, 2.5], \
strings=[\"a\", \"\"], t=i64[2] [1, 2], t2=f32[100] #0123456789abcdef [0.0, …], sp=sparse[4](f32[1] [1.0], i64[1] [2]), \
ts=[f32[] 1.0, str[] \"x\"], sps=[sparse[2](f32[1] [1.0], i64[1] [0])], e1=ints[], e2=floats[], e3=strings[], e4=tensors[], \
e5=graphs[], e6=sparse_tensors[], \"weird name\"=1](%x)
  output %y
",
    ));
    let g = parse(&graph("  input %x: f32[2]\n  %y = com.x.Op[a=[1, 2.5], b=floats[1, 2], c=[]](%x)\n  output %y\n"));
    assert_eq!(
        g.unwrap_err().to_string(),
        "3:47: an empty list needs its type: ints[], floats[], strings[], tensors[], graphs[] or sparse_tensors[]"
    );
    let g =
        parse(&graph("  input %x: f32[2]\n  %y = com.x.Op[a=[1, 2.5], b=floats[1, 2]](%x)\n  output %y\n")).unwrap();
    let n = g.node(g.topo_order().unwrap()[0]);
    assert_eq!(attr::floats(&n.attrs, "a"), Some(&[1.0, 2.5][..]));
    assert_eq!(attr::floats(&n.attrs, "b"), Some(&[1.0, 2.0][..]));
    assert_eq!(error(&graph("  %y = com.x.Op[a=[1, \"s\"]]()\n")), "2:23: this list holds ints");
}

#[test]
fn elided_tensor_attributes_have_no_data() {
    let g = rt(&graph("  %y = com.x.Op[t=f32[100] #0123456789abcdef [0.0, …]]()\n  output %y\n"));
    let n = g.node(g.topo_order().unwrap()[0]);
    let t = attr::tensor(&n.attrs, "t").unwrap();
    assert_eq!(t.check(), Err(crate::TensorError::ExternalNotLoaded));
    assert_eq!(Elided::from_proto(&t.proto).unwrap().fingerprint, 0x0123456789abcdef);
}

#[test]
fn other_attributes_are_written_as_protobuf_bytes() {
    let attrs = vec![
        AttributeProto { ref_attr_name: Some("alpha".into()), ..attr::make_float("alpha", 0.5) },
        AttributeProto { doc_string: Some("doc".into()), ..attr::make_int("i", 1) },
        AttributeProto {
            name: Some("tp".into()),
            r#type: Some(A::TypeProto as i32),
            tp: Some(Box::new(TypeProto::default())),
            ..Default::default()
        },
        AttributeProto { name: Some("untyped".into()), i: Some(3), ..Default::default() },
        AttributeProto { name: None, ..attr::make_int("", 1) },
    ];
    let mut g = crate::Graph::new();
    let x = g.add_input(Value::named("x")).unwrap();
    let op = crate::Op::from_onnx("com.x", "Op");
    g.add_node(op, NodeProto::default(), attrs.clone(), vec![Operand::Value(x)], vec![Value::named("y")]).unwrap();
    let text = print(&g);
    assert_eq!(text.matches("proto(0x").count(), 5, "{text}");
    let back = rt(&text);
    assert_eq!(*back.node(back.topo_order().unwrap()[0]).attrs, *attrs);
}

#[test]
fn nested_graphs_print_from_their_protos() {
    let text = graph(
        "  input %c: bool[]
  input %x: f32[2]
  const %k: f32[2] [1.0, 2.0]
  %y: f32[2] = If[then_branch=graph \"then\" {
    const %t: f32[2] [3.0, 4.0]
    %r: f32[2] = Add(%x, %t)  \"inner\"
    %u = Loop[body=graph {
      input %i: i64[]
      input %cond: bool[]
      %o: bool[] = Identity(%cond)
      output %o
      output %k
    }](_, _)
    output %r
  }, else_branch=graph \"else\" {
    input %z: f32[2]
    const(default) %z: f32[2] [0.0, 0.0]
    %n = Constant[value=f32[2] [5.0, 6.0]]()
    output %n
    output %x
  }](%c)
  output %y
",
    );
    let g = rt(&text);
    let id = g.topo_order().unwrap()[0];
    // The bodies read %x and %k from the enclosing graph: the node depends on them.
    let caps: Vec<&str> = g.node(id).captures().iter().map(|&c| g.operand_name(c)).collect();
    assert_eq!(caps, ["x", "k"]);
    let then = attr::find(&g.node(id).attrs, "then_branch").unwrap().g.as_ref().unwrap();
    assert_eq!(then.initializer[0].name.as_deref(), Some("t"));
    assert_eq!(then.value_info.len(), 1);
    assert_eq!(then.output[0].r#type, then.value_info[0].r#type);
    let undefined = graph("  %y = If[then_branch=graph {\n    output %nowhere\n  }](_)\n  output %y\n");
    assert_eq!(error(&undefined), "2:3: a subgraph of this node reads %nowhere, which is not defined");
    let q = graph("  %y = If[then_branch=graph {\n    input %a: u8[] q(%s)\n  }](_)\n");
    assert_eq!(error(&q), "3:20: nested graphs have no quantization annotations");
}

#[test]
fn nested_graph_protos_keep_what_the_text_shows() {
    let body = GraphProto {
        name: Some("b".into()),
        node: vec![NodeProto {
            input: vec!["a".into(), "".into()],
            output: vec!["o".into()],
            op_type: Some("Mul".into()),
            ..Default::default()
        }],
        input: vec![crate::proto::ValueInfoProto { name: Some("a".into()), ..Default::default() }],
        output: vec![crate::proto::ValueInfoProto { name: Some("o".into()), ..Default::default() }],
        ..Default::default()
    };
    let a = AttributeProto { g: Some(Box::new(body.clone())), ..AttributeProto::default() };
    let a = AttributeProto { name: Some("body".into()), r#type: Some(A::Graph as i32), ..a };
    let mut g = crate::Graph::new();
    g.add_node(crate::Op::from_onnx("com.x", "Scan"), NodeProto::default(), vec![a], vec![], vec![Value::named("y")])
        .unwrap();
    let back = rt(&print(&g));
    let n = back.node(back.topo_order().unwrap()[0]);
    assert_eq!(attr::find(&n.attrs, "body").unwrap().g.as_deref(), Some(&body));
}

// ---- the header, comments, errors ----------------------------------------------------------

#[test]
fn header_and_comments() {
    rt("graph {\n}\n");
    rt("graph \"\\u{85}\" opset(ai.onnx=1, \"ai.onnx\"=2, \"my domain\"=3, x.y=-1) {\n}\n");
    let text = "// leading comment\ngraph { // opset-less\n  input %x // no type\n  output %x // …é\n}";
    assert_eq!(print(&parse(text).unwrap()), "graph {\n  input %x\n  output %x\n}\n");
}

#[test]
fn errors_say_where_and_what() {
    let cases = [
        ("", "1:1: expected 'graph', found the end of the text"),
        ("graph {\n  input %x: f32[2]\n  input %x: f32[2]\n}", "3:9: %x is defined twice"),
        ("graph {\n  %y = Relu(%x)\n}", "2:13: %x is not defined"),
        ("graph {\n  %y = Relu(%\"a b\")\n}", "2:13: %\"a b\" is not defined"),
        ("graph {\n  input %x: f33[2]\n}", "2:13: unknown element type 'f33'"),
        ("graph {\n  input %x: f32[2\n}", "3:1: expected ',' or ']', found '}'"),
        ("graph {\n  input %x: f32[2]\n  output %x\n} extra", "4:3: expected the end of the text, found 'extra'"),
        ("graph {\n  input %\"abc\n}", "2:10: unterminated string"),
        ("graph {\n  input % x\n}", "2:9: expected a name after '%'"),
        ("graph {\n  input %x: f32[2] q(0.5, 1, axis=1, axis=2)\n}", "2:38: axis is given twice"),
        ("graph {\n  const %c: f32[2] [1.0]\n}", "2:20: f32[2] has 2 values, 1 are written"),
        ("graph {\n  const %c: f32[] \"s\"\n}", "2:19: expected a decimal number, found a string"),
        ("graph {\n  const %c: i8[-1] []\n}", "2:16: a dimension cannot be negative"),
        ("graph {\n  const %c: f32[] 1.5x\n}", "2:19: invalid number"),
        ("graph {\n  const %c: f32[] #12 []\n}", "2:19: a fingerprint is '#' and 16 hex digits"),
        ("graph {\n  const %c: tensor(0x0)\n}", "2:20: odd number of hex digits"),
        (
            "graph {\n  const %c: tensor(0xff)\n}",
            "2:20: invalid protobuf: failed to decode Protobuf message: invalid varint",
        ),
        (
            "graph {\n  %y = Relu[a=\"\\q\"](%x)\n}",
            "2:16: unknown escape (use \\\\, \\\", \\n, \\t, \\r, \\0, \\xNN or \\u{…})",
        ),
        ("graph {\n  %y = Relu[a=b](%x)\n}", "2:15: expected an attribute value, found 'b'"),
        ("graph {\n  ; \n}", "2:3: unexpected character ';'"),
        ("graph {\n  é\n}", "2:3: unexpected character 'é'"),
        ("graph {\n  \"é\" é\n}", "2:3: expected 'input', 'const', a node, 'output' or '}', found a string"),
        ("graph opset(ai.onnx=1, ai.onnx=2) {\n}", "1:24: the opset of '' is given twice"),
        ("graph {\n  %y = Op[a=graph opset(x=1) {\n  }]()\n}", "2:25: only the top-level graph has opsets"),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected, "{text}");
    }
    let deep = "graph { %y = If[g=".repeat(100);
    assert_eq!(error(&deep), "1:289: graphs nest more than 16 deep");
    let ok = format!("{}graph {{\n}}{}", "graph { %y = com.x.If[g=".repeat(15), "]()\n}".repeat(15));
    assert_eq!(print(&parse(&ok).unwrap()).lines().count(), 32);
}

#[test]
fn printing_is_linear() {
    // 200k nodes print in well under a second in release builds; this checks nothing is quadratic.
    let mut text = String::from("graph {\n  input %x0: f32[1]\n");
    let n = 20_000;
    for i in 1..=n {
        text.push_str(&format!("  %x{i} = com.x.F[k={i}](%x{})\n", i - 1));
    }
    text.push_str(&format!("  output %x{n}\n}}\n"));
    let start = std::time::Instant::now();
    let g = parse(&text).unwrap();
    let printed = print(&g);
    assert_eq!(printed, text);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn inference_errors_point_at_the_node() {
    let text = graph("  input %x: f32[2]\n  input %y: f32[3]\n  %z = Add(%x, %y)  \"add\"\n  output %z\n");
    assert!(error(&text).starts_with("4:3: type inference: node 'add' (Add): "), "{}", error(&text));
}

// ---- whole models ----------------------------------------------------------------------------

/// Every fixture model: its text parses back to the same text; with nothing elided, the parsed
/// graph verifies, keeps every value, and survives export and import unchanged.
#[test]
fn fixture_models_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "onnx"));
    paths.sort();
    assert!(paths.len() >= 10, "fixtures missing in {}", dir.display());
    let all = PrintOptions { max_const_elems: usize::MAX };
    for path in paths {
        let model = crate::load(&path).unwrap();
        let text = print(&model.graph);
        assert_eq!(print(&parse(&text).unwrap()), text, "{}", path.display());
        let full = parse(&print_with(&model.graph, &all)).unwrap();
        full.verify().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(print(&full), text, "{}", path.display());
        let exported = crate::Model { graph: full, meta: model.meta.clone(), external: Default::default() };
        let bytes = prost::Message::encode_to_vec(&exported.to_proto().unwrap());
        let reloaded = crate::Model::decode(bytes.into(), std::path::Path::new("")).unwrap();
        assert_eq!(print(&reloaded.graph), text, "{}", path.display());
    }
}

/// Printing is linear: a 1M-node graph prints in about a second in release builds.
/// `cargo test --release -p qdqc-ir text::tests::million_nodes -- --ignored --nocapture`
#[test]
#[ignore]
fn million_nodes() {
    let mut g = crate::Graph::new();
    let s = g.add_initializer("s", crate::Tensor::from_f32("", &[], &[0.5]));
    let z = g.add_initializer("z", crate::Tensor::from_i64("", crate::DType::U8, &[], &[0]));
    let ty = crate::TensorType::known(crate::DType::U8, &[1, 64]);
    let mut x = Operand::Value(g.add_input(Value::typed("x", ty.clone())).unwrap());
    let q = crate::graph::Quant { scale: s, zero_point: Some(z), axis: None, block_size: None };
    for i in 0..1_000_000 {
        let v = Value { name: format!("v{i}"), ty: Some(ty.clone()), quant: Some(q.clone()), declared: None };
        let op = crate::Op::from_onnx("com.x", "F");
        let attrs = vec![attr::make_ints("k", &[i, 2]), attr::make_float("a", 0.5)];
        let id = g.add_node(
            op,
            NodeProto { name: Some(format!("n{i}")), ..Default::default() },
            attrs,
            vec![x, Operand::Const(s)],
            vec![v],
        );
        x = Operand::Value(crate::Outlet::new(id.unwrap(), 0));
    }
    let start = std::time::Instant::now();
    let text = print(&g);
    let printed = start.elapsed();
    let start = std::time::Instant::now();
    let back = parse(&text).unwrap();
    let parsed = start.elapsed();
    println!("{} bytes: printed in {printed:?}, parsed in {parsed:?}", text.len());
    assert_eq!(back.op_count(), 1_000_000);
}

/// Found by the `text` fuzz target: `%""` parsed as a graph input with the empty name, which
/// prints as `_` and does not parse again. The printer writes the empty name only as `_`.
#[test]
fn the_empty_name_is_written_as_an_underscore_only() {
    let msg = error("graph \"g\" opset(ai.onnx=17) {\n  input %\"\"\n}\n");
    assert!(msg.contains("may not be empty"), "{msg}");
    let msg = error("graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[1]\n  %\"\" = Relu(%x)\n  output %x\n}\n");
    assert!(msg.contains("may not be empty"), "{msg}");
}
