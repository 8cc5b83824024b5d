//! Property tests: random graphs print, parse and print again to the same text; with nothing
//! elided the data survives exactly; parsing never panics, and errors point into the text.

use super::*;
use crate::graph::{Const, ConstOrigin, ConstValue, Dim, Operand, Quant, TensorType, Value};
use crate::proto::attribute_proto::AttributeType as A;
use crate::proto::{AttributeProto, GraphProto, NodeProto, SparseTensorProto, TypeProto, ValueInfoProto};
use crate::{DType, Graph, Op};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::FileFailurePersistence;

// ---- pieces ----------------------------------------------------------------------------------

/// Names: mostly identifiers, some needing quotes (spaces, quotes, trailing colons, Unicode).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9_]{0,4}",
        2 => "[a-zA-Z0-9_.:/ \"\\\\%#,=-]{1,5}",
        1 => "\\PC{1,4}",
        1 => any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

fn dim() -> impl Strategy<Value = Dim> {
    prop_oneof![4 => (0i64..64).prop_map(Dim::Known), 1 => name().prop_map(Dim::Sym), 1 => Just(Dim::Unknown)]
}

fn tensor_type() -> impl Strategy<Value = TensorType> {
    let dtype = prop_oneof![2 => Just(DType::F32), 3 => select(DType::ALL)];
    (dtype, prop::option::weighted(0.9, vec(dim(), 0..4)))
        .prop_map(|(dtype, shape)| TensorType::with_shape(dtype, shape))
}

/// A tensor of any dtype, small or above the elision limit, with data that prints exactly:
/// canonical NaNs and zero padding bits (the text cannot show other NaNs or padding).
fn tensor() -> impl Strategy<Value = Tensor> {
    let dims = prop_oneof![4 => vec(0i64..4, 0..3), 1 => vec(1i64..6, 2..4)];
    (select(DType::ALL), dims)
        .prop_flat_map(|(d, dims)| {
            let n = crate::tensor::numel(&dims).unwrap();
            (Just(d), Just(dims), vec(any::<u128>(), n), vec(vec(any::<u8>(), 0..4), n))
        })
        .prop_map(|(d, dims, bits, strings)| make_tensor(d, &dims, &bits, strings))
}

fn make_tensor(d: DType, dims: &[i64], bits: &[u128], strings: Vec<Vec<u8>>) -> Tensor {
    let mut raw = Vec::new();
    match d {
        DType::String => {
            let proto = crate::proto::TensorProto {
                dims: dims.to_vec(),
                data_type: Some(d.to_onnx()),
                string_data: strings.into_iter().map(Into::into).collect(),
                ..Default::default()
            };
            return Tensor { proto, external: None };
        }
        DType::F32 => bits.iter().for_each(|&b| {
            let v = f32::from_bits(b as u32);
            raw.extend(if v.is_nan() { f32::NAN } else { v }.to_le_bytes())
        }),
        DType::F64 => bits.iter().for_each(|&b| {
            let v = f64::from_bits(b as u64);
            raw.extend(if v.is_nan() { f64::NAN } else { v }.to_le_bytes())
        }),
        DType::F16 | DType::BF16 => bits.iter().for_each(|&b| {
            let (h, nan) = (b as u16, if d == DType::F16 { 0x7e00 } else { 0x7fc0 });
            let is_nan = if d == DType::F16 {
                h & 0x7c00 == 0x7c00 && h & 0x3ff != 0
            } else {
                h & 0x7f80 == 0x7f80 && h & 0x7f != 0
            };
            raw.extend(if is_nan { nan } else { h }.to_le_bytes())
        }),
        DType::C128 => bits.iter().for_each(|b| raw.extend(b.to_le_bytes())),
        _ => return Tensor::from_i64("", d, dims, &bits.iter().map(|&b| b as i64).collect::<Vec<_>>()),
    }
    Tensor::from_raw("", d, dims, raw.into())
}

fn sparse() -> impl Strategy<Value = SparseTensorProto> {
    (tensor(), vec(0i64..9, 1..3)).prop_map(|(mut values, dims)| {
        let n = values.numel().unwrap() as i64;
        values.proto.dims = vec![n];
        let indices = Tensor::from_i64("", DType::I64, &[n], &(0..n).collect::<Vec<_>>());
        SparseTensorProto { values: Some(values.proto), indices: Some(indices.proto), dims }
    })
}

fn typed(name: String, ty: A) -> AttributeProto {
    AttributeProto { name: Some(name), r#type: Some(ty as i32), ..Default::default() }
}

/// An attribute of any kind except graphs (those need the names around them).
fn plain_attr() -> impl Strategy<Value = AttributeProto> {
    let f32s = || any::<f32>().prop_map(|f| if f.is_nan() { f32::NAN } else { f });
    let bytes = || vec(any::<u8>(), 0..6).prop_map(bytes::Bytes::from);
    let t = |ty: A| typed(String::new(), ty);
    let value = prop_oneof![
        any::<i64>().prop_map(move |i| AttributeProto { i: Some(i), ..t(A::Int) }),
        f32s().prop_map(move |f| AttributeProto { f: Some(f), ..t(A::Float) }),
        bytes().prop_map(move |s| AttributeProto { s: Some(s), ..t(A::String) }),
        vec(any::<i64>(), 0..4).prop_map(move |ints| AttributeProto { ints, ..t(A::Ints) }),
        vec(f32s(), 0..4).prop_map(move |floats| AttributeProto { floats, ..t(A::Floats) }),
        vec(bytes(), 0..3).prop_map(move |strings| AttributeProto { strings, ..t(A::Strings) }),
        tensor().prop_map(move |x| AttributeProto { t: Some(Box::new(x.proto)), ..t(A::Tensor) }),
        vec(tensor(), 0..3)
            .prop_map(move |ts| AttributeProto { tensors: ts.into_iter().map(|x| x.proto).collect(), ..t(A::Tensors) }),
        sparse().prop_map(move |s| AttributeProto { sparse_tensor: Some(Box::new(s)), ..t(A::SparseTensor) }),
        vec(sparse(), 0..2).prop_map(move |sparse_tensors| AttributeProto { sparse_tensors, ..t(A::SparseTensors) }),
        Just(AttributeProto { graphs: vec![], ..t(A::Graphs) }),
        // The rest are written as protobuf bytes.
        any::<i64>().prop_map(move |i| AttributeProto { ref_attr_name: Some("r".into()), i: Some(i), ..t(A::Int) }),
        any::<i64>().prop_map(move |i| AttributeProto { doc_string: Some("d".into()), i: Some(i), ..t(A::Int) }),
        Just(AttributeProto { tp: Some(Box::new(TypeProto::default())), ..t(A::TypeProto) }),
        any::<i64>().prop_map(|i| AttributeProto { i: Some(i), ..Default::default() }),
    ];
    (name(), value).prop_map(|(name, a)| AttributeProto { name: Some(name), ..a })
}

// ---- graph recipes -------------------------------------------------------------------------

/// A node of a nested graph; its inputs pick from the names defined so far, inside or around it.
#[derive(Clone, Debug)]
struct ProtoNode {
    op: (String, String),
    inputs: Vec<Option<Index>>,
    outputs: Vec<(String, Option<TensorType>)>,
    attrs: Vec<AttributeProto>,
}

#[derive(Clone, Debug)]
struct ProtoRecipe {
    name: Option<String>,
    inputs: Vec<(String, Option<TensorType>)>,
    inits: Vec<(String, Tensor)>,
    nodes: Vec<ProtoNode>,
    outputs: Vec<Index>,
}

#[derive(Clone, Debug)]
enum Attr {
    Plain(Box<AttributeProto>),
    Graph(String, ProtoRecipe),
    Graphs(String, Vec<ProtoRecipe>),
}

#[derive(Clone, Debug)]
enum Kind {
    /// Any op of any domain (inference keeps what it declares).
    Other(String, String),
    /// A QuantizeLinear/DequantizeLinear pair on an f32 value, with new scalar constants.
    Qdq(f32, u8),
    Relu,
}

/// Scale and zero point (picked among the constants), axis, block size.
type QuantRecipe = (Index, Option<Index>, Option<i64>, Option<i64>);
type OutputRecipe = (String, Option<TensorType>, Option<QuantRecipe>);

#[derive(Clone, Debug)]
struct NodeRecipe {
    kind: Kind,
    inputs: Vec<Option<Index>>,
    /// `None`: an output the node does not produce.
    outputs: Vec<Option<OutputRecipe>>,
    attrs: Vec<Attr>,
    name: String,
}

#[derive(Clone, Debug)]
struct Recipe {
    name: Option<String>,
    opsets: Vec<(String, i64)>,
    inputs: Vec<(String, Option<TensorType>)>,
    consts: Vec<(String, Tensor, u8)>,
    sparse: Vec<(String, SparseTensorProto)>,
    defaults: Vec<(Index, Tensor)>,
    nodes: Vec<NodeRecipe>,
    outputs: Vec<Index>,
}

fn op_name() -> impl Strategy<Value = (String, String)> {
    let domain = prop_oneof![Just(String::new()), Just("com.x".to_string()), Just("ai.onnx".into()), name()];
    let op_type = prop_oneof![4 => "[A-Z][a-zA-Z]{0,5}", 1 => Just("QLinearAdd".to_string()), 1 => name()];
    // A random name can spell an op qdqc models ("Div"), whose inference rejects random inputs
    // (one run in a few thousand made such a graph, and the strategy panicked): those ops are
    // built by `Kind::Qdq` and `Kind::Relu`, with inputs they accept.
    (domain, op_type).prop_filter("an op qdqc does not model", |(d, t)| matches!(Op::from_onnx(d, t), Op::Other(_)))
}

fn proto_recipe() -> impl Strategy<Value = ProtoRecipe> {
    let node = (
        op_name(),
        vec(prop::option::of(any::<Index>()), 0..3),
        vec((name(), prop::option::of(tensor_type())), 0..3),
        vec(plain_attr(), 0..2),
    )
        .prop_map(|(op, inputs, outputs, attrs)| ProtoNode { op, inputs, outputs, attrs });
    (
        prop::option::of(name()),
        vec((name(), prop::option::of(tensor_type())), 0..3),
        vec((name(), tensor()), 0..2),
        vec(node, 0..4),
        vec(any::<Index>(), 0..3),
    )
        .prop_map(|(name, inputs, inits, nodes, outputs)| ProtoRecipe { name, inputs, inits, nodes, outputs })
}

fn attr() -> impl Strategy<Value = Attr> {
    prop_oneof![
        6 => plain_attr().prop_map(|a| Attr::Plain(Box::new(a))),
        1 => (name(), proto_recipe()).prop_map(|(n, g)| Attr::Graph(n, g)),
        1 => (name(), vec(proto_recipe(), 1..3)).prop_map(|(n, g)| Attr::Graphs(n, g)),
    ]
}

fn node_recipe() -> impl Strategy<Value = NodeRecipe> {
    let kind = prop_oneof![
        6 => op_name().prop_map(|(d, t)| Kind::Other(d, t)),
        2 => (any::<f32>().prop_filter("a usable scale", |s| s.is_normal() && *s > 0.0), any::<u8>()).prop_map(|(s, z)| Kind::Qdq(s, z)),
        1 => Just(Kind::Relu),
    ];
    let quant = (
        any::<Index>(),
        prop::option::of(any::<Index>()),
        prop::option::of(-2i64..4),
        prop::option::weighted(0.2, 1i64..64),
    );
    let output =
        prop::option::weighted(0.85, (name(), prop::option::of(tensor_type()), prop::option::weighted(0.3, quant)));
    (
        kind,
        vec(prop::option::weighted(0.85, any::<Index>()), 0..4),
        vec(output, 0..3),
        vec(attr(), 0..3),
        prop_oneof![Just(String::new()), name()],
    )
        .prop_map(|(kind, inputs, outputs, attrs, name)| NodeRecipe { kind, inputs, outputs, attrs, name })
}

fn recipe() -> impl Strategy<Value = Recipe> {
    let opsets = vec((prop_oneof![Just(String::new()), Just("com.microsoft".into()), name()], 1i64..30), 0..3);
    let graph_name = prop::option::of(name());
    let inputs = vec((name(), prop::option::weighted(0.8, tensor_type())), 0..4);
    let consts = vec((name(), tensor(), 0..3u8), 0..6);
    let sparse = vec((name(), sparse()), 0..2);
    let defaults = vec((any::<Index>(), tensor()), 0..2);
    let nodes = vec(node_recipe(), 0..8);
    let outputs = vec(any::<Index>(), 0..4);
    (graph_name, opsets, inputs, consts, sparse, defaults, nodes, outputs).prop_map(
        |(name, opsets, inputs, consts, sparse, defaults, nodes, outputs)| Recipe {
            name,
            opsets,
            inputs,
            consts,
            sparse,
            defaults,
            nodes,
            outputs,
        },
    )
}

// ---- building ------------------------------------------------------------------------------

fn build(r: &Recipe) -> Graph {
    let mut g = Graph::new();
    g.meta.name = r.name.clone();
    g.opsets = r.opsets.iter().cloned().collect();
    let mut values: Vec<Operand> = Vec::new();
    for (name, ty) in &r.inputs {
        let name = g.fresh_name(name);
        values.push(Operand::Value(g.add_input(Value { name, ty: ty.clone(), ..Default::default() }).unwrap()));
    }
    let mut consts = Vec::new();
    for (name, t, origin) in &r.consts {
        let name = g.fresh_name(name);
        let origin = match origin {
            0 | 1 => ConstOrigin::Initializer,
            _ => ConstOrigin::ConstantNode { node: Box::default(), order: g.take_order() },
        };
        let id = g.add_const(Const { name, value: ConstValue::Dense(t.clone()), origin }).unwrap();
        consts.push(id);
        values.push(Operand::Const(id));
    }
    for (name, s) in &r.sparse {
        let name = g.fresh_name(name);
        let c = Const { name, value: ConstValue::Sparse(Box::new(s.clone())), origin: ConstOrigin::SparseInitializer };
        let id = g.add_const(c).unwrap();
        values.push(Operand::Const(id));
    }
    if !r.inputs.is_empty() {
        for (i, t) in &r.defaults {
            let input = g.inputs[i.index(g.inputs.len())];
            let name = g.node(input).outputs[0].name.clone();
            g.add_const(Const { name, value: ConstValue::Dense(t.clone()), origin: ConstOrigin::InputDefault })
                .unwrap();
        }
    }
    for n in &r.nodes {
        add_node(&mut g, n, &mut values, &consts);
    }
    for i in &r.outputs {
        if let Some(&operand) = (!values.is_empty()).then(|| &values[i.index(values.len())]) {
            let name = g.operand_name(operand).to_string();
            g.add_output(crate::GraphOutput {
                operand,
                declared: ValueInfoProto { name: Some(name), ..Default::default() },
            });
        }
    }
    g
}

fn add_node(g: &mut Graph, n: &NodeRecipe, values: &mut Vec<Operand>, consts: &[crate::ConstId]) {
    let proto = NodeProto { name: Some(n.name.clone()), ..Default::default() };
    let floats: Vec<Operand> = values
        .iter()
        .copied()
        .filter(|&v| matches!(v, Operand::Value(_)) && g.operand_type(v).is_some_and(|t| t.dtype == DType::F32))
        .collect();
    let pick = |i: &Index| floats[i.index(floats.len())];
    match &n.kind {
        Kind::Qdq(scale, zp) if !floats.is_empty() => {
            let x = n.inputs.iter().flatten().next().map_or(floats[0], pick);
            let s = Operand::Const(g.add_initializer("scale", Tensor::from_f32("", &[], &[*scale])));
            let z = Operand::Const(g.add_initializer("zp", Tensor::from_i64("", DType::U8, &[], &[*zp as i64])));
            let (qn, dn) = (g.fresh_name("q"), g.fresh_name("dq"));
            let q =
                g.add_node(Op::QuantizeLinear, proto.clone(), vec![], vec![x, s, z], vec![Value::named(qn)]).unwrap();
            let q = Operand::Value(crate::Outlet::new(q, 0));
            let d = g
                .add_node(Op::DequantizeLinear, NodeProto::default(), vec![], vec![q, s, z], vec![Value::named(dn)])
                .unwrap();
            values.extend([q, Operand::Value(crate::Outlet::new(d, 0))]);
        }
        Kind::Relu if !floats.is_empty() => {
            let x = n.inputs.iter().flatten().next().map_or(floats[0], pick);
            let out = g.fresh_name("relu");
            let id = g.add_node(Op::Relu, proto, vec![], vec![x], vec![Value::named(out)]).unwrap();
            values.push(Operand::Value(crate::Outlet::new(id, 0)));
        }
        Kind::Other(domain, op_type) => {
            let names: Vec<String> = values.iter().map(|&v| g.operand_name(v).to_string()).collect();
            let inputs = n.inputs.iter().map(|i| match i {
                Some(i) if !values.is_empty() => values[i.index(values.len())],
                _ => Operand::None,
            });
            let inputs: Vec<Operand> = inputs.collect();
            let attrs: Vec<AttributeProto> = n.attrs.iter().map(|a| build_attr(a, &names)).collect();
            let mut outs = Vec::new();
            for o in &n.outputs {
                let Some((name, ty, quant)) = o else {
                    outs.push(Value::default());
                    continue;
                };
                let quant = quant.as_ref().filter(|_| !consts.is_empty()).map(|(s, z, axis, block)| Quant {
                    scale: consts[s.index(consts.len())],
                    zero_point: z.map(|z| consts[z.index(consts.len())]),
                    axis: *axis,
                    block_size: *block,
                });
                let name = g.fresh_name(name);
                if outs.iter().any(|v: &Value| v.name == name) {
                    continue;
                }
                outs.push(Value { name, ty: ty.clone(), quant, declared: None });
            }
            let op = Op::from_onnx(domain, op_type);
            let proto = NodeProto { domain: Some(domain.clone()), ..proto };
            let id = g.add_node(op, proto, attrs, inputs, outs.clone()).unwrap();
            let mut captures = Vec::new();
            for sub in g.node(id).attrs.iter().flat_map(|a| a.g.iter().map(|g| &**g).chain(&a.graphs)) {
                super::build::free_names(sub, &mut captures);
            }
            let captures = captures.iter().map(|c| g.lookup(c).unwrap()).collect();
            g.set_captures(id, captures);
            for (slot, v) in outs.iter().enumerate() {
                if !v.name.is_empty() {
                    values.push(Operand::Value(crate::Outlet::new(id, slot as u32)));
                }
            }
        }
        _ => {}
    }
}

fn build_attr(a: &Attr, outer: &[String]) -> AttributeProto {
    match a {
        Attr::Plain(a) => (**a).clone(),
        Attr::Graph(n, r) => AttributeProto { g: Some(Box::new(build_proto(r, outer))), ..typed(n.clone(), A::Graph) },
        Attr::Graphs(n, rs) => {
            AttributeProto { graphs: rs.iter().map(|r| build_proto(r, outer)).collect(), ..typed(n.clone(), A::Graphs) }
        }
    }
}

/// A nested graph whose names are new (so that outer names it reads are never shadowed).
fn build_proto(r: &ProtoRecipe, outer: &[String]) -> GraphProto {
    let mut names: Vec<String> = outer.to_vec();
    let fresh = |base: &str, names: &mut Vec<String>| {
        let n = (0..)
            .map(|i| if i == 0 { format!("{base}'") } else { format!("{base}'{i}") })
            .find(|n| !names.contains(n))
            .unwrap();
        names.push(n.clone());
        n
    };
    let type_proto = |t: &Option<TensorType>| t.as_ref().map(crate::onnx::type_proto);
    let mut gp = GraphProto { name: r.name.clone(), ..Default::default() };
    for (n, ty) in &r.inputs {
        gp.input.push(ValueInfoProto {
            name: Some(fresh(n, &mut names)),
            r#type: type_proto(ty),
            ..Default::default()
        });
    }
    for (n, t) in &r.inits {
        let mut t = t.proto.clone();
        t.name = Some(fresh(n, &mut names));
        gp.initializer.push(t);
    }
    for n in &r.nodes {
        let input = n
            .inputs
            .iter()
            .map(|i| i.filter(|_| !names.is_empty()).map_or(String::new(), |i| names[i.index(names.len())].clone()));
        let input = input.collect();
        let mut node = NodeProto {
            input,
            op_type: Some(n.op.1.clone()),
            domain: Some(n.op.0.clone()),
            attribute: n.attrs.clone(),
            ..Default::default()
        };
        for (o, ty) in &n.outputs {
            let o = fresh(o, &mut names);
            if ty.is_some() {
                gp.value_info.push(ValueInfoProto {
                    name: Some(o.clone()),
                    r#type: type_proto(ty),
                    ..Default::default()
                });
            }
            node.output.push(o);
        }
        gp.node.push(node);
    }
    for i in &r.outputs {
        if !names.is_empty() {
            let name = names[i.index(names.len())].clone();
            let r#type = gp.value_info.iter().find(|v| v.name.as_ref() == Some(&name)).and_then(|v| v.r#type.clone());
            gp.output.push(ValueInfoProto { name: Some(name), r#type, ..Default::default() });
        }
    }
    gp
}

/// A random graph on which inference has run (so that parsing, which runs it, changes nothing).
fn graph() -> impl Strategy<Value = Graph> {
    recipe().prop_map(|r| {
        let mut g = build(&r);
        crate::infer::infer_graph(&mut g)
            .unwrap_or_else(|e| panic!("inference failed on a generated graph: {e}\n{}", print(&g)));
        g
    })
}

// ---- properties ----------------------------------------------------------------------------

fn parse_ok(text: &str) -> Result<Graph, TestCaseError> {
    parse(text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))
}

/// Checks that an error's position points into `text` (or just past its end).
fn check_pos(text: &str, e: &ParseError) -> Result<(), TestCaseError> {
    let Some(pos) = e.pos() else { return Ok(()) };
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(pos.line >= 1 && pos.line as usize <= lines.len(), "{e} is outside the text");
    let line = lines[pos.line as usize - 1];
    prop_assert!(pos.col >= 1 && pos.col as usize <= line.chars().count() + 1, "{e} is outside line {line:?}");
    Ok(())
}

proptest! {
    // Failing cases are kept beside this file, in proptests.regressions.
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// `print(parse(print(g))) == print(g)`, with constants elided at various limits.
    #[test]
    fn printed_graphs_parse_back_to_the_same_text(g in graph(), max in prop_oneof![Just(16usize), 0usize..4]) {
        let opts = PrintOptions { max_const_elems: max };
        let text = print_with(&g, &opts);
        let back = parse_ok(&text)?;
        prop_assert_eq!(print_with(&back, &opts), text);
    }

    /// With nothing elided, the data survives exactly: the reparsed graph prints with the same
    /// fingerprints and values as the original.
    #[test]
    fn unelided_text_keeps_every_value(g in graph()) {
        let full = print_with(&g, &PrintOptions { max_const_elems: usize::MAX });
        let back = parse_ok(&full)?;
        prop_assert_eq!(print(&back), print(&g));
    }

    #[test]
    fn parsing_random_text_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = parse(&text) {
            check_pos(&text, &e)?;
        }
    }

    #[test]
    fn parsing_token_soup_never_panics(tokens in vec(select(TOKENS), 0..80), seps in vec(select(&[" ", "\n", "", "  "][..]), 80)) {
        let text: String = tokens.iter().zip(&seps).flat_map(|(t, s)| [*t, *s]).collect();
        if let Err(e) = parse(&text) {
            check_pos(&text, &e)?;
        }
    }

    /// Printed graphs with a few characters deleted, duplicated or replaced: any result but a panic.
    #[test]
    fn parsing_mutated_text_never_panics(g in graph(), edits in vec((any::<Index>(), 0usize..12, 0u8..3, select(TOKENS)), 1..4)) {
        let mut text = print_with(&g, &PrintOptions { max_const_elems: 3 });
        for (at, len, how, token) in edits {
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            let start = at.index(chars.len() + 1);
            let end = (start + len).min(chars.len());
            let offset = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
            let (a, b) = (offset(start), offset(end));
            let middle = match how {
                0 => String::new(),
                1 => text[a..b].repeat(2),
                _ => token.to_string(),
            };
            text = format!("{}{middle}{}", &text[..a], &text[b..]);
        }
        if let Err(e) = parse(&text) {
            check_pos(&text, &e)?;
        }
    }
}

const TOKENS: &[&str] = &[
    "graph",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    ":",
    "?",
    "*",
    ".",
    "_",
    "input",
    "const",
    "output",
    "opset",
    "%x",
    "%y",
    "%\"a b\"",
    "%",
    "f32",
    "u8",
    "str",
    "i4",
    "c128",
    "f8e4m3fn",
    "q",
    "axis",
    "block",
    "Relu",
    "QuantizeLinear",
    "DequantizeLinear",
    "com.x.F",
    "ints",
    "floats",
    "tensors",
    "graphs",
    "sparse",
    "tensor",
    "proto",
    "node",
    "default",
    "0",
    "-1",
    "1.5",
    "1e-5",
    "-inf",
    "NaN",
    "true",
    "0x",
    "0x3c",
    "0xff0a",
    "\"s\"",
    "\"\\xff\"",
    "\"\\u{85}\"",
    "#0123456789abcdef",
    "…",
    "...",
    "// c",
    "\"",
    "é",
    "%\"",
    "ai.onnx",
];
