//! Elementwise ops (unary, broadcasting binary and variadic), Softmax, Cast, Constant.

use super::dims::{self, R};
use super::{one, Ctx, OutputTypes};
use crate::attr;
use crate::dtype::DType;
use crate::graph::Dim;
use crate::op::Op;
use crate::proto::attribute_proto::AttributeType;
use std::sync::Arc;

/// Ops whose output has the type of their first input.
pub(crate) fn unary(ctx: &Ctx) -> R<OutputTypes> {
    one(ctx.dtype(0), ctx.shape(0))
}

pub(crate) fn softmax(ctx: &Ctx) -> R<OutputTypes> {
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let shape = ctx.shape(0);
    if let Some(s) = &shape {
        // A scalar has nothing to normalize over; ONNX requires rank >= 1.
        if s.is_empty() {
            return Err("input must have rank >= 1".into());
        }
        dims::axis(ctx.attr_int("axis").unwrap_or(default), s.len(), "axis")?;
    }
    one(ctx.dtype(0), shape)
}

/// Add/Sub/Mul/Div/Pow and the variadic Max/Min: multidirectional broadcast.
pub(crate) fn broadcasting(ctx: &Ctx) -> R<OutputTypes> {
    let n = ctx.n_inputs();
    if let Some(i) = (0..n).find(|&i| !ctx.has(i)) {
        return Err(format!("input {i} is missing"));
    }
    // Pow's exponent may have another type; the others need one type for all inputs.
    let dtype = if ctx.node.op == Op::Pow {
        ctx.dtype(0)
    } else {
        let mut dtype = None;
        for b in (0..n).filter_map(|i| ctx.dtype(i)) {
            match dtype {
                None => dtype = Some(b),
                Some(a) if a != b => return Err(format!("inputs have different types {a} and {b}")),
                _ => {}
            }
        }
        dtype
    };
    let shapes: Option<Vec<Arc<[Dim]>>> = (0..n).map(|i| ctx.shape(i)).collect();
    let shape = match shapes {
        Some(s) => Some(dims::broadcast(&s.iter().map(|s| &s[..]).collect::<Vec<_>>())?),
        None => None,
    };
    one(dtype, shape)
}

pub(crate) fn cast(ctx: &Ctx) -> R<OutputTypes> {
    let to = ctx.attr_dtype("to")?.ok_or("attribute 'to' is missing")?;
    one(Some(to), ctx.shape(0))
}

/// A `Constant` node import did not turn into a constant (strings, sparse values, ...).
pub(crate) fn constant(ctx: &Ctx) -> R<OutputTypes> {
    const VALUE_ATTRS: [&str; 8] = [
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "value_string",
        "value_strings",
        "sparse_value",
    ];
    let present: Vec<_> =
        ctx.node.attrs.iter().filter(|a| VALUE_ATTRS.contains(&a.name.as_deref().unwrap_or(""))).collect();
    let [a] = present.as_slice() else {
        return Err(format!("needs exactly one value attribute, has {}", present.len()));
    };
    let name = a.name.as_deref().unwrap_or("");
    let want = match name {
        "value" => AttributeType::Tensor,
        "value_float" => AttributeType::Float,
        "value_floats" => AttributeType::Floats,
        "value_int" => AttributeType::Int,
        "value_ints" => AttributeType::Ints,
        "value_string" => AttributeType::String,
        "value_strings" => AttributeType::Strings,
        _ => AttributeType::SparseTensor,
    };
    // An attribute referring to a function's attribute has no value here.
    if a.ref_attr_name.is_some() {
        return Ok(vec![None]);
    }
    if attr::kind(a) != want {
        return Err(format!("attribute '{name}' has type {:?}, expected {want:?}", attr::kind(a)));
    }
    let len = |n: usize| vec![Dim::Known(n as i64)];
    let (dtype, shape) = match name {
        "value" => {
            let t = a.t.as_ref().ok_or("attribute 'value' holds no tensor")?;
            (tensor_dtype(t.data_type)?, t.dims.iter().map(|&d| Dim::Known(d)).collect())
        }
        "value_float" => (DType::F32, vec![]),
        "value_floats" => (DType::F32, len(a.floats.len())),
        "value_int" => (DType::I64, vec![]),
        "value_ints" => (DType::I64, len(a.ints.len())),
        "value_string" => (DType::String, vec![]),
        "value_strings" => (DType::String, len(a.strings.len())),
        _ => {
            let s = a.sparse_tensor.as_ref().ok_or("attribute 'sparse_value' holds no tensor")?;
            let code = s.values.as_ref().and_then(|v| v.data_type);
            (tensor_dtype(code)?, s.dims.iter().map(|&d| Dim::Known(d)).collect())
        }
    };
    if let Some(d) = shape.iter().find(|d| d.known().is_some_and(|v| v < 0)) {
        return Err(format!("constant has negative dimension {d}"));
    }
    one(Some(dtype), Some(shape))
}

fn tensor_dtype(code: Option<i32>) -> R<DType> {
    let code = code.unwrap_or(0);
    DType::from_onnx(code).ok_or_else(|| format!("constant has unknown data type {code}"))
}

#[cfg(test)]
mod tests {
    use crate::attr;
    use crate::builder::GraphBuilder;
    use crate::dtype::DType;
    use crate::infer::show;
    use crate::op::Op;
    use crate::proto::{AttributeProto, SparseTensorProto, TensorProto};
    use crate::tensor::Tensor;

    fn ty(g: &crate::Graph, o: crate::Operand) -> String {
        show(g.operand_type(o).as_ref())
    }

    #[test]
    fn unary_ops_keep_the_input_type() {
        let mut b = GraphBuilder::new(20);
        let x = b.input("x", DType::F32, &["N", "3", "?"]);
        let mut outs = vec![];
        for op in
            [Op::Relu, Op::Sigmoid, Op::HardSigmoid, Op::HardSwish, Op::Tanh, Op::Gelu, Op::Erf, Op::Sqrt, Op::Identity]
        {
            outs.push(b.node(op, &[x]).out1());
        }
        outs.push(b.node(Op::LeakyRelu, &[x]).attr(attr::make_float("alpha", 0.1)).out1());
        let lo = b.scalar_f32("lo", 0.0);
        outs.push(b.node(Op::Clip, &[x, lo, crate::Operand::None]).out1());
        outs.push(b.node(Op::Softmax, &[x]).out1());
        for &o in &outs {
            b.output(o);
        }
        let g = b.finish().unwrap();
        for o in outs {
            assert_eq!(ty(&g, o), "f32[N,3,?]");
        }
    }

    #[test]
    fn softmax_axis_is_checked() {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let y = b.node(Op::Softmax, &[x]).attr(attr::make_int("axis", 2)).name("sm").out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("axis 2 is out of range for rank 2"));
    }

    #[test]
    fn binary_ops_broadcast() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3", "1", "8"]);
        let c = b.const_f32("c", &[4, 1], &[0.0; 4]);
        let s = b.scalar_f32("s", 2.0);
        let add = b.node(Op::Add, &[x, c]).out1();
        let mul = b.node(Op::Mul, &[s, x]).out1();
        let e = b.const_i64("e", DType::I64, &[], &[2]);
        let pow = b.node(Op::Pow, &[x, e]).out1();
        let y = b.input("y", DType::F32, &["M", "1"]);
        let max = b.node(Op::Max, &[x, c, y]).out1();
        for o in [add, mul, pow, max] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, add), "f32[N,3,4,8]");
        assert_eq!(ty(&g, mul), "f32[N,3,1,8]");
        assert_eq!(ty(&g, pow), "f32[N,3,1,8]");
        assert_eq!(ty(&g, max), "f32[N,3,4,8]");
    }

    #[test]
    fn broadcast_and_type_errors() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let c = b.const_f32("c", &[4], &[0.0; 4]);
        let y = b.node(Op::Sub, &[x, c]).name("sub").out1();
        b.output(y);
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("cannot broadcast dimension 3 with 4 (shapes [N,3] and [4])"), "{e}");

        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let c = b.const_i64("c", DType::I64, &[3], &[1, 2, 3]);
        let y = b.node(Op::Div, &[x, c]).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("different types f32 and i64"));
    }

    #[test]
    fn cast_uses_to() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N"]);
        let y = b.node(Op::Cast, &[x]).attr(attr::make_int("to", DType::F16.to_onnx() as i64)).out1();
        b.output(y);
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, y), "f16[N]");

        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N"]);
        let y = b.node(Op::Cast, &[x]).attr(attr::make_int("to", 99)).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("unknown data type 99"));
    }

    #[test]
    fn constant_nodes() {
        let mut b = GraphBuilder::new(17);
        let strings = AttributeProto {
            strings: vec![b"a".to_vec().into(), b"b".to_vec().into()],
            ..attr::make_string("value_strings", "")
        };
        let mut strings = strings;
        strings.s = None;
        strings.r#type = Some(crate::proto::attribute_proto::AttributeType::Strings as i32);
        let s = b.node(Op::Constant, &[]).attr(strings).out1();
        let f = b.node(Op::Constant, &[]).attr(attr::make_floats("value_floats", &[1.0, 2.0, 3.0])).out1();
        let i = b.node(Op::Constant, &[]).attr(attr::make_int("value_int", 3)).out1();
        let t = b
            .node(Op::Constant, &[])
            .attr(attr::make_tensor("value", Tensor::from_i64("", DType::I8, &[2, 2], &[1, 2, 3, 4])))
            .out1();
        let sparse = SparseTensorProto {
            values: Some(TensorProto {
                data_type: Some(DType::F32.to_onnx()),
                dims: vec![2],
                float_data: vec![1.0, 2.0],
                ..Default::default()
            }),
            indices: Some(TensorProto {
                data_type: Some(DType::I64.to_onnx()),
                dims: vec![2],
                int64_data: vec![1, 3],
                ..Default::default()
            }),
            dims: vec![4],
        };
        let sp = AttributeProto {
            name: Some("sparse_value".into()),
            r#type: Some(crate::proto::attribute_proto::AttributeType::SparseTensor as i32),
            sparse_tensor: Some(Box::new(sparse)),
            ..Default::default()
        };
        let sv = b.node(Op::Constant, &[]).attr(sp).out1();
        for o in [s, f, i, t, sv] {
            b.output(o);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, s), "str[2]");
        assert_eq!(ty(&g, f), "f32[3]");
        assert_eq!(ty(&g, i), "i64[]");
        assert_eq!(ty(&g, t), "i8[2,2]");
        assert_eq!(ty(&g, sv), "f32[4]");

        let mut b = GraphBuilder::new(17);
        let c = b.node(Op::Constant, &[]).out1();
        b.output(c);
        assert!(b.finish().unwrap_err().to_string().contains("exactly one value attribute"));
    }
}
