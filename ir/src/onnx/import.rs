//! `ModelProto` → [`Model`]: graph nodes become IR nodes, initializers and `Constant` nodes become
//! side-table constants, and everything else is kept verbatim for export.

use super::external::{for_each_tensor, holds_tensors, is_external, nodes_tensors, ExternalStore};
use super::{Error, Model, MAX_IR_VERSION};
use crate::dtype::DType;
use crate::graph::{Const, ConstOrigin, ConstValue, Dim, Graph, Operand, TensorType, Value, ORDER_STEP};
use crate::op::Op;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto};
use crate::tensor::Tensor;
use bytes::Bytes;
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

/// `proto` without its graph's nodes, which come encoded in `nodes` ([`super::wire`]).
pub(crate) fn import_model(mut proto: ModelProto, nodes: Vec<Bytes>, mut store: ExternalStore) -> Result<Model, Error> {
    let ir = proto.ir_version.unwrap_or(0);
    if ir > MAX_IR_VERSION {
        return Err(Error::IrVersion { found: ir });
    }
    // Map every external tensor's side file now (the nodes' as they are decoded), so a missing or
    // short file fails the load.
    for_each_tensor(&mut proto, &mut |t| resolve_external(&mut store, t))?;
    let gp = proto.graph.take().ok_or(Error::NoGraph)?;
    let mut graph = Graph::new();
    for o in &proto.opset_import {
        let d = o.domain.as_deref().unwrap_or("");
        let d = if d == "ai.onnx" { "" } else { d };
        graph.opsets.insert(d.to_string(), o.version.unwrap_or(0));
    }
    import_graph(gp, nodes, &mut graph, &mut store)?;
    Ok(Model { graph, meta: proto, external: store })
}

fn resolve_external(store: &mut ExternalStore, t: &TensorProto) -> Result<(), Error> {
    if is_external(t) {
        store.resolve(t)?;
    }
    Ok(())
}

/// Reads a tensor element type from a `TypeProto`; `Ok(None)` for non-tensor or untyped values.
pub(crate) fn tensor_type(name: &str, t: Option<&TypeProto>) -> Result<Option<TensorType>, Error> {
    let Some(type_proto::Value::TensorType(tt)) = t.and_then(|t| t.value.as_ref()) else {
        return Ok(None);
    };
    let bad = |msg: String| Error::ValueInfo { name: name.to_string(), msg };
    let code = tt.elem_type.unwrap_or(0);
    if code == 0 {
        return Ok(None);
    }
    let dtype = DType::from_onnx(code).ok_or_else(|| bad(format!("unknown data type {code}")))?;
    let shape = match &tt.shape {
        None => None,
        Some(s) => Some(
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(v)) if *v < 0 => {
                        Err(bad(format!("negative dimension {v}")))
                    }
                    Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(v)) => Ok(Dim::Known(*v)),
                    Some(crate::proto::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                        Ok(Dim::Sym(p.clone()))
                    }
                    _ => Ok(Dim::Unknown),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Some(TensorType::with_shape(dtype, shape)))
}

fn checked_tensor(proto: TensorProto, store: &ExternalStore) -> Result<Tensor, Error> {
    let external = if is_external(&proto) { Some(store.lookup(&proto)?) } else { None };
    let t = Tensor { proto, external };
    t.check().map_err(|source| Error::Tensor { name: t.name().to_string(), source })?;
    Ok(t)
}

/// A `Constant` node's value as a tensor, when it has one dense value attribute.
fn constant_value(n: &NodeProto, store: &ExternalStore) -> Result<Option<Tensor>, Error> {
    let [a] = n.attribute.as_slice() else { return Ok(None) };
    if n.output.len() != 1 || !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
        return Ok(None);
    }
    let kind = crate::attr::kind(a);
    let t = match (a.name.as_deref(), kind) {
        (Some("value"), AttributeType::Tensor) => match &a.t {
            Some(t) => checked_tensor((**t).clone(), store)?,
            None => return Ok(None),
        },
        (Some("value_float"), AttributeType::Float) => Tensor::from_f32("", &[], &[a.f.unwrap_or(0.0)]),
        (Some("value_floats"), AttributeType::Floats) => Tensor::from_f32("", &[a.floats.len() as i64], &a.floats),
        (Some("value_int"), AttributeType::Int) => Tensor::from_i64("", DType::I64, &[], &[a.i.unwrap_or(0)]),
        (Some("value_ints"), AttributeType::Ints) => Tensor::from_i64("", DType::I64, &[a.ints.len() as i64], &a.ints),
        _ => return Ok(None),
    };
    Ok(Some(t))
}

/// The attribute lists of the nodes imported lately, shared by the nodes that repeat them: a
/// model repeats a few layer configurations thousands of times, and an `AttributeProto` takes
/// 400 bytes.
#[derive(Default)]
struct SharedAttrs {
    recent: Vec<Arc<[AttributeProto]>>,
    next: usize,
    empty: Option<Arc<[AttributeProto]>>,
}

impl SharedAttrs {
    /// Lists compared per node (the oldest is replaced).
    const RECENT: usize = 16;

    fn intern(&mut self, attrs: Vec<AttributeProto>) -> Arc<[AttributeProto]> {
        if attrs.is_empty() {
            return self.empty.get_or_insert_with(|| Arc::new([])).clone();
        }
        // Subgraphs are compared by value too, but a body is rarely repeated: not worth it.
        if attrs.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
            return attrs.into();
        }
        if let Some(a) = self.recent.iter().find(|a| ***a == *attrs) {
            return a.clone();
        }
        let a: Arc<[AttributeProto]> = attrs.into();
        if self.recent.len() < SharedAttrs::RECENT {
            self.recent.push(a.clone());
        } else {
            self.recent[self.next] = a.clone();
            self.next = (self.next + 1) % SharedAttrs::RECENT;
        }
        a
    }
}

/// A decoded node, readied for import on the decoding thread (import, on the other, is the
/// slower side): its parts, or its proto when its attributes hold tensors or subgraphs (a
/// `Constant`, or attributes that may point into the model's side files, which import reads).
enum Ready {
    Node(NodeParts),
    Proto(NodeProto),
}

/// What import makes a node from.
struct NodeParts {
    op: Op,
    meta: crate::graph::NodeMeta,
    attrs: Arc<[AttributeProto]>,
    inputs: Vec<String>,
    outputs: Vec<Value>,
    /// Names its subgraphs read from enclosing scopes.
    captured: Vec<String>,
}

impl NodeParts {
    fn of(mut n: NodeProto, shared: &mut SharedAttrs) -> NodeParts {
        let op = Op::from_onnx(n.domain.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or(""));
        let inputs = std::mem::take(&mut n.input);
        let outputs = std::mem::take(&mut n.output).into_iter().map(Value::named).collect();
        let attrs = std::mem::take(&mut n.attribute);
        let mut captured = Vec::new();
        for a in &attrs {
            for sub in a.g.iter().map(|g| &**g).chain(a.graphs.iter()) {
                free_names(sub, &mut captured);
            }
        }
        NodeParts { op, meta: n.into(), attrs: shared.intern(attrs), inputs, outputs, captured }
    }
}

/// The operand a node input names: the omitted input for the empty name.
fn operand_named(graph: &Graph, name: &str) -> Option<Operand> {
    if name.is_empty() {
        Some(Operand::None)
    } else {
        graph.lookup(name)
    }
}

/// Names a subgraph reads from enclosing scopes, in first-use order.
pub(crate) fn free_names(g: &GraphProto, out: &mut Vec<String>) {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(g.input.iter().filter_map(|v| v.name.as_deref()));
    defined.extend(g.initializer.iter().filter_map(|t| t.name.as_deref()));
    defined.extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref().and_then(|v| v.name.as_deref())));
    defined.extend(g.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    let push = |name: &str, out: &mut Vec<String>| {
        if !name.is_empty() && !defined.contains(name) && !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    };
    for n in &g.node {
        for i in &n.input {
            push(i, out);
        }
        for a in &n.attribute {
            for sub in a.g.iter().map(|g| &**g).chain(a.graphs.iter()) {
                let mut inner = Vec::new();
                free_names(sub, &mut inner);
                for name in inner {
                    push(&name, out);
                }
            }
        }
    }
}

fn import_graph(
    mut gp: GraphProto,
    nodes: Vec<Bytes>,
    graph: &mut Graph,
    store: &mut ExternalStore,
) -> Result<(), Error> {
    let input_names: HashSet<String> = gp.input.iter().filter_map(|v| v.name.clone()).collect();
    for t in std::mem::take(&mut gp.initializer) {
        let tensor = checked_tensor(t, store)?;
        let name = tensor.name().to_string();
        let origin = if input_names.contains(&name) { ConstOrigin::InputDefault } else { ConstOrigin::Initializer };
        graph.add_const(Const { name, value: ConstValue::Dense(tensor), origin })?;
    }
    for s in std::mem::take(&mut gp.sparse_initializer) {
        let name = s.values.as_ref().and_then(|v| v.name.clone()).unwrap_or_default();
        graph.add_const(Const {
            name,
            value: ConstValue::Sparse(Box::new(s)),
            origin: ConstOrigin::SparseInitializer,
        })?;
    }
    for vi in std::mem::take(&mut gp.input) {
        let name = vi.name.clone().unwrap_or_default();
        let ty = tensor_type(&name, vi.r#type.as_ref())?;
        graph.add_input(Value { name, ty, quant: None, declared: Some(Box::new(vi)) })?;
    }
    // A node's inputs are wired when all of them are defined; the others wait until every node
    // is in, so a model whose nodes are not topologically sorted still loads (and a real cycle is
    // reported by verify).
    graph.reserve(nodes.len());
    let mut pending = Vec::new();
    let (mut i, mut imported) = (0, 0);
    // (Attribute lists are interned on the decoding thread; a node read from its proto here has
    // lists of its own.)
    let (mut shared, mut here) = (SharedAttrs::default(), SharedAttrs::default());
    let prepare = move |n: NodeProto| match holds_tensors(&n.attribute) {
        true => Ready::Proto(n),
        false => Ready::Node(NodeParts::of(n, &mut shared)),
    };
    super::wire::decode_nodes(nodes, prepare, |ready: Ready| -> Result<(), Error> {
        i += 1;
        let order = i as u64 * ORDER_STEP;
        let node = match ready {
            Ready::Node(node) => node,
            Ready::Proto(mut n) => {
                nodes_tensors(std::slice::from_mut(&mut n), &mut |t| resolve_external(store, t))?;
                let op = Op::from_onnx(n.domain.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or(""));
                if op == Op::Constant {
                    if let Some(mut tensor) = constant_value(&n, store)? {
                        let name = n.output[0].clone();
                        tensor.proto.name.get_or_insert_with(|| name.clone());
                        let origin = ConstOrigin::ConstantNode { node: Box::new(n), order };
                        graph.add_const(Const { name, value: ConstValue::Dense(tensor), origin })?;
                        return Ok(());
                    }
                }
                NodeParts::of(n, &mut here)
            }
        };
        let NodeParts { op, meta, attrs, inputs, outputs, captured } = node;
        let id = graph.add_node_at(op, meta, attrs, vec![], outputs, order)?;
        imported += 1;
        // Inputs defined already (all of them, in a topologically sorted model) are wired now,
        // while their producers are fresh in cache, and their names freed; the others wait until
        // every node is in. (A name is defined once, or the load fails, so either way binds the
        // same value.)
        let ready: Option<Vec<Operand>> = inputs.iter().map(|i| operand_named(graph, i)).collect();
        match ready {
            Some(ops) if captured.is_empty() => graph.set_inputs(id, ops),
            _ => pending.push((id, inputs, captured)),
        }
        Ok(())
    })?;
    graph.reserve_order((imported as u64 + 1) * ORDER_STEP);
    // Names are looked up on both cores (a hash probe, and mostly a cache miss, per input); the
    // edges are added in order, and the first undefined input in node order is the one reported.
    let resolved: Vec<Result<_, Error>> = {
        let graph = &*graph;
        pending
            .into_par_iter()
            .map(|(id, inputs, captured)| {
                let resolve = |name: &String| -> Result<Operand, Error> {
                    operand_named(graph, name).ok_or_else(|| {
                        let n = graph.node(id);
                        Error::UndefinedInput { node: n.label(), op: n.op.to_string(), input: name.to_string() }
                    })
                };
                let ops = inputs.iter().map(resolve).collect::<Result<Vec<_>, _>>()?;
                let caps = captured.iter().map(resolve).collect::<Result<Vec<_>, _>>()?;
                Ok((id, ops, caps))
            })
            .collect()
    };
    for r in resolved {
        let (id, ops, caps) = r?;
        graph.set_inputs(id, ops);
        if !caps.is_empty() {
            graph.set_captures(id, caps);
        }
    }
    for vi in std::mem::take(&mut gp.output) {
        let name = vi.name.clone().unwrap_or_default();
        let operand = graph.lookup(&name).ok_or_else(|| crate::graph::GraphError::DanglingOutput(name.clone()))?;
        if let (Operand::Value(o), Some(ty)) = (operand, tensor_type(&name, vi.r#type.as_ref())?) {
            graph.value_mut(o).ty.get_or_insert(ty);
        }
        graph.add_output(crate::graph::GraphOutput { operand, declared: vi });
    }
    for vi in &gp.value_info {
        let name = vi.name.as_deref().unwrap_or("");
        match (graph.lookup(name), tensor_type(name, vi.r#type.as_ref())?) {
            (None, _) => {
                graph.value_info_orphans.insert(name.to_string());
            }
            (Some(Operand::Value(o)), Some(ty)) if graph.value(o).ty.is_none() => graph.value_mut(o).ty = Some(ty),
            _ => {}
        }
    }
    graph.value_info = std::mem::take(&mut gp.value_info);
    graph.meta = gp;
    crate::infer::infer_graph(graph)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
    use crate::Operand;
    use prost::Message;

    fn node(op: &str, input: &str, output: &str) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn model(nodes: Vec<NodeProto>) -> bytes::Bytes {
        let vi = |name: &str| ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(crate::onnx::type_proto(&crate::TensorType {
                dtype: crate::DType::F32,
                shape: Some(vec![crate::Dim::Known(4)].into()),
            })),
            ..Default::default()
        };
        ModelProto {
            ir_version: Some(9),
            opset_import: vec![OperatorSetIdProto { domain: None, version: Some(17) }],
            graph: Some(GraphProto { node: nodes, input: vec![vi("x")], output: vec![vi("z")], ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec()
        .into()
    }

    /// A consumer listed before its producer still loads: its input waits until every node is in.
    #[test]
    fn nodes_out_of_order_load() {
        let bytes = model(vec![node("Neg", "y", "z"), node("Relu", "x", "y")]);
        let m = crate::onnx::Model::decode(bytes, std::path::Path::new("")).unwrap();
        m.graph.verify().unwrap();
        let Some(Operand::Value(z)) = m.graph.lookup("z") else { panic!() };
        let Operand::Value(y) = m.graph.node(z.node).input(0) else { panic!() };
        assert_eq!(m.graph.value(y).name, "y");
        assert_eq!(m.graph.node(y.node).op, crate::Op::Relu);
    }

    #[test]
    fn equal_attribute_lists_are_shared() {
        use crate::attr::make_int;
        use std::sync::Arc;
        let mut shared = super::SharedAttrs::default();
        let a = shared.intern(vec![make_int("axis", 1)]);
        let b = shared.intern(vec![make_int("axis", 1)]);
        let c = shared.intern(vec![make_int("axis", 2)]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c) && *c == [make_int("axis", 2)]);
        assert!(Arc::ptr_eq(&shared.intern(vec![]), &shared.intern(vec![])));
        // Past the recent lists, a list is copied again, still equal.
        for i in 0..2 * super::SharedAttrs::RECENT as i64 {
            shared.intern(vec![make_int("k", i)]);
        }
        let d = shared.intern(vec![make_int("axis", 1)]);
        assert!(!Arc::ptr_eq(&a, &d) && a == d);
    }

    #[test]
    fn an_undefined_input_names_the_node() {
        let bytes = model(vec![node("Relu", "x", "y"), node("Neg", "w", "z")]);
        let err = crate::onnx::Model::decode(bytes, std::path::Path::new("")).unwrap_err();
        assert_eq!(err.to_string(), "node (producing 'z') (Neg): input 'w' is not defined");
    }
}
