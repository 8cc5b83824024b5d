//! A small fluent builder of [`Graph`]s, for tests across the project.
//!
//! ```
//! use qdqc_ir::builder::GraphBuilder;
//! use qdqc_ir::{attr, DType, Op};
//!
//! let mut b = GraphBuilder::new(17); // ai.onnx opset
//! let x = b.input("x", DType::F32, &["N", "3", "8", "8"]); // numbers, symbols, or "?"
//! let s = b.scalar_f32("s", 0.02);
//! let z = b.scalar("z", DType::U8, 128);
//! let q = b.node(Op::QuantizeLinear, &[x, s, z]).name("q0").out1(); // output "q0_out"
//! let d = b.node(Op::DequantizeLinear, &[q, s, z]).out1();
//! let y = b.node(Op::Relu, &[d]).attr(attr::make_int("unused", 0)).out_named("y");
//! b.output(y);
//! let g = b.finish().unwrap(); // runs inference, then verify
//! assert_eq!(g.operand_name(q), "q0_out");
//! assert_eq!(qdqc_ir::infer::show(g.operand_type(y).as_ref()), "f32[N,3,8,8]");
//! ```
//!
//! Values are [`Operand`]s. Unnamed nodes get output names from their op and position
//! (`Relu_2_out`); named ones from their name (`q0_out`, or `q0_out0`, `q0_out1`, ... for
//! several outputs). Errors (a duplicate name, a bad dim) are kept and returned by
//! [`GraphBuilder::finish`].

use crate::dtype::DType;
use crate::graph::{Const, ConstOrigin, ConstValue, Dim, Graph, GraphError, GraphOutput, Operand, TensorType, Value};
use crate::onnx::type_proto;
use crate::op::{Op, MS_DOMAIN};
use crate::proto::{AttributeProto, NodeProto, ValueInfoProto};
use crate::tensor::Tensor;

pub struct GraphBuilder {
    g: Graph,
    nodes: usize,
    err: Option<GraphError>,
}

impl GraphBuilder {
    /// A builder for a graph importing ai.onnx at `opset` (com.microsoft is added when used).
    pub fn new(opset: i64) -> GraphBuilder {
        let mut g = Graph::new();
        g.opsets.insert(String::new(), opset);
        GraphBuilder { g, nodes: 0, err: None }
    }

    /// Sets the opset version of another domain.
    pub fn opset(&mut self, domain: &str, version: i64) -> &mut Self {
        self.g.opsets.insert(domain.to_string(), version);
        self
    }

    fn fail(&mut self, e: GraphError) {
        self.err.get_or_insert(e);
    }

    /// A graph input. Dims are numbers, symbols (`"N"`) or `"?"` for unknown.
    pub fn input(&mut self, name: &str, dtype: DType, dims: &[&str]) -> Operand {
        let shape = dims.iter().map(|d| self.dim(name, d)).collect();
        self.input_typed(name, Some(TensorType::new(dtype, shape)))
    }

    /// A graph input with the given type (or none).
    pub fn input_typed(&mut self, name: &str, ty: Option<TensorType>) -> Operand {
        match self.g.add_input(Value { name: name.to_string(), ty, quant: None, declared: None }) {
            Ok(o) => Operand::Value(o),
            Err(e) => {
                self.fail(e);
                Operand::None
            }
        }
    }

    /// A graph input without a type.
    pub fn input_untyped(&mut self, name: &str) -> Operand {
        self.input_typed(name, None)
    }

    fn dim(&mut self, name: &str, d: &str) -> Dim {
        match d {
            "?" | "" => Dim::Unknown,
            _ => match d.parse::<i64>() {
                Ok(v) if v >= 0 => Dim::Known(v),
                Ok(v) => {
                    self.fail(GraphError::Invariant(format!("input '{name}': negative dim {v}")));
                    Dim::Unknown
                }
                Err(_) => Dim::Sym(d.to_string()),
            },
        }
    }

    /// An initializer holding `tensor` (renamed to `name`).
    pub fn tensor(&mut self, name: &str, mut tensor: Tensor) -> Operand {
        tensor.proto.name = Some(name.to_string());
        let c = Const { name: name.to_string(), value: ConstValue::Dense(tensor), origin: ConstOrigin::Initializer };
        match self.g.add_const(c) {
            Ok(id) => Operand::Const(id),
            Err(e) => {
                self.fail(e);
                Operand::None
            }
        }
    }

    pub fn const_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> Operand {
        self.tensor(name, Tensor::from_f32(name, dims, values))
    }

    /// An integer (or bool) constant of any integer type.
    pub fn const_i64(&mut self, name: &str, dtype: DType, dims: &[i64], values: &[i64]) -> Operand {
        self.tensor(name, Tensor::from_i64(name, dtype, dims, values))
    }

    pub fn scalar_f32(&mut self, name: &str, v: f32) -> Operand {
        self.const_f32(name, &[], &[v])
    }

    /// A 0-d integer constant.
    pub fn scalar(&mut self, name: &str, dtype: DType, v: i64) -> Operand {
        self.const_i64(name, dtype, &[], &[v])
    }

    /// A 1-D i64 constant (shapes, axes, pads, ...).
    pub fn ints(&mut self, name: &str, values: &[i64]) -> Operand {
        self.const_i64(name, DType::I64, &[values.len() as i64], values)
    }

    /// Starts a node of `op` reading `inputs`; finish it with `out1`, `outs`, `out_named` or
    /// `outs_named`.
    pub fn node(&mut self, op: Op, inputs: &[Operand]) -> NodeBuilder<'_> {
        NodeBuilder { b: self, op, inputs: inputs.to_vec(), name: None, domain: None, attrs: vec![], types: vec![] }
    }

    /// Makes `op` a graph output (named like the value).
    pub fn output(&mut self, op: Operand) -> &mut Self {
        self.output_typed(op, None)
    }

    /// Makes `op` a graph output with a declared type, merged with inference like a model's.
    pub fn output_typed(&mut self, op: Operand, ty: Option<TensorType>) -> &mut Self {
        if let (Operand::Value(o), Some(t)) = (op, &ty) {
            self.g.value_mut(o).ty.get_or_insert(t.clone());
        }
        let name = self.g.operand_name(op).to_string();
        let declared = ValueInfoProto { name: Some(name), r#type: ty.as_ref().map(type_proto), ..Default::default() };
        self.g.add_output(GraphOutput { operand: op, declared });
        self
    }

    /// The graph being built, for what the builder does not cover.
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.g
    }

    /// Runs inference and `verify`; graph outputs without a declared type get the inferred one.
    pub fn finish(self) -> Result<Graph, GraphError> {
        let mut g = self.finish_unchecked()?;
        crate::infer::infer_graph(&mut g)?;
        for i in 0..g.outputs().len() {
            if g.outputs()[i].declared.r#type.is_none() {
                g.output_declared_mut(i).r#type = g.operand_type(g.outputs()[i].operand).as_ref().map(type_proto);
            }
        }
        g.verify()?;
        Ok(g)
    }

    /// The graph as built, without inference or checks (only building errors are reported).
    pub fn finish_unchecked(self) -> Result<Graph, GraphError> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.g),
        }
    }
}

/// A node being built. See [`GraphBuilder::node`].
pub struct NodeBuilder<'b> {
    b: &'b mut GraphBuilder,
    op: Op,
    inputs: Vec<Operand>,
    name: Option<String>,
    domain: Option<String>,
    attrs: Vec<AttributeProto>,
    types: Vec<(usize, TensorType)>,
}

impl NodeBuilder<'_> {
    /// The node's name (also the base of its output names).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// The domain to write (default: the op's, e.g. com.microsoft for QLinearAdd).
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.to_string());
        self
    }

    pub fn attr(mut self, a: AttributeProto) -> Self {
        self.attrs.push(a);
        self
    }

    pub fn attrs(mut self, a: impl IntoIterator<Item = AttributeProto>) -> Self {
        self.attrs.extend(a);
        self
    }

    /// A declared type for output 0 (as a model's value_info would give it).
    pub fn out_type(self, ty: TensorType) -> Self {
        self.out_type_at(0, ty)
    }

    /// A declared type for output `slot`.
    pub fn out_type_at(mut self, slot: usize, ty: TensorType) -> Self {
        self.types.push((slot, ty));
        self
    }

    /// Adds the node with one output.
    pub fn out1(self) -> Operand {
        self.outs(1)[0]
    }

    /// Adds the node with `n` outputs named after it.
    pub fn outs(self, n: usize) -> Vec<Operand> {
        let base = match &self.name {
            Some(name) => name.clone(),
            None => format!("{}_{}", self.op.name(), self.b.nodes),
        };
        let names: Vec<String> = match n {
            1 => vec![self.b.g.fresh_name(&format!("{base}_out"))],
            _ => (0..n).map(|i| self.b.g.fresh_name(&format!("{base}_out{i}"))).collect(),
        };
        self.add(names)
    }

    /// Adds the node with one output called `name`.
    pub fn out_named(self, name: &str) -> Operand {
        self.add(vec![name.to_string()])[0]
    }

    /// Adds the node with outputs called `names`; `""` is an optional output not produced.
    pub fn outs_named(self, names: &[&str]) -> Vec<Operand> {
        self.add(names.iter().map(|s| s.to_string()).collect())
    }

    fn add(self, names: Vec<String>) -> Vec<Operand> {
        let NodeBuilder { b, op, inputs, name, domain, attrs, types } = self;
        b.nodes += 1;
        let domain = domain.unwrap_or_else(|| op.default_domain().to_string());
        if domain == MS_DOMAIN && !b.g.opsets.contains_key(MS_DOMAIN) {
            b.g.opsets.insert(MS_DOMAIN.to_string(), 1);
        }
        let proto = NodeProto { name, domain: (!domain.is_empty()).then_some(domain), ..Default::default() };
        let mut outputs: Vec<Value> = names.iter().map(Value::named).collect();
        for (slot, ty) in types {
            if let Some(v) = outputs.get_mut(slot) {
                v.ty = Some(ty);
            }
        }
        let n = outputs.len();
        match b.g.add_node(op, proto, attrs, inputs, outputs) {
            Ok(id) => (0..n)
                .map(|i| {
                    if names[i].is_empty() {
                        Operand::None
                    } else {
                        Operand::Value(crate::graph::Outlet::new(id, i as u32))
                    }
                })
                .collect(),
            Err(e) => {
                b.fail(e);
                vec![Operand::None; n]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use crate::infer::show;

    #[test]
    fn builds_named_and_unnamed_nodes() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3", "?", "8"]);
        let s = b.scalar_f32("s", 0.02);
        let z = b.scalar("z", DType::U8, 128);
        let q = b.node(Op::QuantizeLinear, &[x, s, z]).name("q0").attr(attr::make_int("axis", 1)).out1();
        let d = b.node(Op::DequantizeLinear, &[q, s, z]).out1();
        let parts =
            b.node(Op::Split, &[d]).attr(attr::make_int("axis", 1)).attr(attr::make_int("num_outputs", 3)).outs(3);
        let named = b.node(Op::Relu, &[parts[0]]).out_named("relu_y");
        b.output(named);
        b.output(parts[2]);
        let g = b.finish().unwrap();
        assert_eq!(g.operand_name(q), "q0_out");
        assert_eq!(g.operand_name(d), "DequantizeLinear_1_out");
        assert_eq!(g.operand_name(parts[1]), "Split_2_out1");
        assert_eq!(show(g.operand_type(named).as_ref()), "f32[N,1,?,8]");
        assert_eq!(g.outputs().len(), 2);
        // Outputs get declared types from inference.
        assert!(g.outputs()[0].declared.r#type.is_some());
        assert_eq!(g.opset(), 17);
        assert!(g.lookup("x").is_some() && g.lookup("s").is_some());
    }

    #[test]
    fn optional_outputs_and_microsoft_domain() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "4"]);
        let sc = b.const_f32("sc", &[4], &[1.0; 4]);
        let ys = b.node(Op::LayerNormalization, &[x, sc]).outs_named(&["y", "", "inv"]);
        assert_eq!(ys[1], Operand::None);
        let u = b.input("u", DType::U8, &["N", "4"]);
        let s = b.scalar_f32("s", 0.1);
        let z = b.scalar("z", DType::U8, 0);
        let a = b.node(Op::QLinearSigmoid, &[u, s, z, s, z]).out1();
        b.output(ys[0]).output(ys[2]).output(a);
        let g = b.finish().unwrap();
        assert_eq!(show(g.operand_type(ys[2]).as_ref()), "f32[N,1]");
        assert_eq!(g.opset_of(MS_DOMAIN), 1);
    }

    #[test]
    fn building_errors_are_reported_by_finish() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["2"]);
        let _ = b.node(Op::Relu, &[x]).out_named("x");
        assert_eq!(b.finish().unwrap_err(), GraphError::DuplicateName("x".into()));
        let mut b = GraphBuilder::new(17);
        let _ = b.input("x", DType::F32, &["-2"]);
        assert!(b.finish().is_err());
    }

    #[test]
    fn declared_output_types_merge() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["?", "3"]);
        let y = b.node(Op::Relu, &[x]).out1();
        b.output_typed(y, Some(TensorType::new(DType::F32, vec![Dim::Sym("N".into()), Dim::Unknown])));
        let g = b.finish().unwrap();
        assert_eq!(show(g.operand_type(y).as_ref()), "f32[N,3]");
    }
}
