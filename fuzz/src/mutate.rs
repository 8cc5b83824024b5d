//! A structure-aware mutator for the ONNX targets: the input is decoded as a `ModelProto`, one
//! field is changed (tensor dims, dtypes or bytes, attributes, opsets, external-data fields,
//! value types, node wiring, op types, a node dropped or duplicated) and the model is encoded
//! again. Inputs that do not decode get libFuzzer's byte mutations, and so does one mutation in
//! eight of those that do, so the byte-level decoder is still exercised.

use libfuzzer_sys::fuzzer_mutate;
use prost::Message;
use qdqc_ir::proto::tensor_shape_proto::{dimension, Dimension};
use qdqc_ir::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A splitmix64 generator seeded by libFuzzer's seed: mutations stay reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u32) -> Rng {
        Rng(seed as u64 ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    -2,
    3,
    4,
    7,
    8,
    16,
    127,
    128,
    255,
    256,
    65535,
    65536,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 32,
    1 << 40,
    i64::MAX,
    i64::MIN,
];

const FLOATS: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-5,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MIN_POSITIVE,
    1e-45,
    f32::MAX,
    -f32::MAX,
];

const OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "Conv",
    "ConvInteger",
    "QLinearConv",
    "MatMul",
    "MatMulInteger",
    "QLinearMatMul",
    "Gemm",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "Reshape",
    "Transpose",
    "Concat",
    "Expand",
    "Tile",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Cast",
    "Identity",
    "Softmax",
    "Gather",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Pad",
    "BatchNormalization",
    "Resize",
    "Split",
    "Where",
    "ConstantOfShape",
    "Shape",
    "Constant",
];

const DOMAINS: &[&str] = &["", "ai.onnx", "com.microsoft", "ai.onnx.ml", "com.example"];

const ATTRS: &[&str] = &[
    "axis",
    "axes",
    "group",
    "kernel_shape",
    "pads",
    "strides",
    "dilations",
    "perm",
    "to",
    "block_size",
    "saturate",
    "alpha",
    "beta",
    "transA",
    "transB",
    "keepdims",
    "mode",
    "auto_pad",
    "value",
    "min",
    "max",
    "epsilon",
    "output_dtype",
];

fn int(r: &mut Rng) -> i64 {
    if r.chance(2) {
        *r.pick(INTS)
    } else {
        r.below(9) as i64 - 2
    }
}

fn float(r: &mut Rng) -> f32 {
    if r.chance(2) {
        *r.pick(FLOATS)
    } else {
        (r.below(2001) as f32 - 1000.0) / 100.0
    }
}

fn dtype(r: &mut Rng) -> i32 {
    // 0..=25 are the ONNX element types (0 undefined, 26 and up unknown).
    if r.chance(8) {
        *r.pick(&[-1, 26, 99, i32::MAX])
    } else {
        r.below(26) as i32
    }
}

/// Every tensor of the main graph: initializers, and the tensors of node attributes (Constant
/// values among them).
fn tensors(g: &mut GraphProto) -> Vec<&mut TensorProto> {
    let attr_tensors = g.node.iter_mut().flat_map(|n| {
        n.attribute.iter_mut().flat_map(|a| a.t.iter_mut().map(|b| &mut **b).chain(a.tensors.iter_mut()))
    });
    g.initializer
        .iter_mut()
        .chain(g.sparse_initializer.iter_mut().filter_map(|s| s.values.as_mut()))
        .chain(attr_tensors)
        .collect()
}

fn value_infos(g: &mut GraphProto) -> Vec<&mut ValueInfoProto> {
    g.input.iter_mut().chain(g.output.iter_mut()).chain(g.value_info.iter_mut()).collect()
}

/// The names a node input may be rewired to.
fn names(g: &GraphProto) -> Vec<String> {
    let mut out: Vec<String> = g.input.iter().filter_map(|v| v.name.clone()).collect();
    out.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
    out.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    out.push(String::new());
    out.push("fuzz_undefined".to_string());
    out
}

fn mutate_dims(dims: &mut Vec<i64>, r: &mut Rng) {
    match r.below(4) {
        0 if !dims.is_empty() => {
            dims.pop();
        }
        1 => dims.push(int(r)),
        _ if !dims.is_empty() => {
            let i = r.below(dims.len());
            dims[i] = int(r);
        }
        _ => dims.push(int(r)),
    }
}

fn mutate_tensor(t: &mut TensorProto, r: &mut Rng) {
    match r.below(6) {
        0 | 1 => mutate_dims(&mut t.dims, r),
        2 => t.data_type = Some(dtype(r)),
        3 => {
            // The payload's bytes, through libFuzzer's byte mutations (at most doubling it).
            let mut raw = t.raw_data.as_deref().unwrap_or_default().to_vec();
            let size = raw.len();
            raw.resize(size * 2 + 16, 0);
            let n = fuzzer_mutate(&mut raw, size, size * 2 + 16);
            raw.truncate(n);
            t.raw_data = Some(raw.into());
        }
        4 => {
            // External data: a location (some outside the model's folder) and offsets.
            t.data_location = Some(if r.chance(4) { 0 } else { 1 });
            let key = *r.pick(&["location", "offset", "length", "checksum", "other"]);
            let value = match key {
                "location" => *r.pick(&["data", "x.data", "../x", "/etc/passwd", "", ".", "a/b", "./"]),
                _ => *r.pick(&["0", "1", "4096", "-1", "abc", "18446744073709551615", "99999999999"]),
            };
            t.external_data.retain(|e| e.key.as_deref() != Some(key) || r.chance(4));
            t.external_data.push(StringStringEntryProto { key: Some(key.into()), value: Some(value.into()) });
        }
        _ => match r.below(4) {
            0 => t.float_data.push(float(r)),
            1 => t.int32_data.push(int(r) as i32),
            2 => t.int64_data.push(int(r)),
            _ => {
                t.raw_data = None;
            }
        },
    }
}

fn mutate_attribute(a: &mut AttributeProto, r: &mut Rng) {
    match r.below(8) {
        0 => a.i = Some(int(r)),
        1 => a.f = Some(float(r)),
        2 | 3 => mutate_dims(&mut a.ints, r),
        4 => {
            if a.floats.is_empty() || r.chance(3) {
                a.floats.push(float(r));
            } else {
                let i = r.below(a.floats.len());
                a.floats[i] = float(r);
            }
        }
        5 => a.r#type = Some(r.below(15) as i32),
        6 => {
            a.s = Some(bytes::Bytes::from_static(r.pick(&[b"" as &[u8], b"NOTSET", b"SAME_UPPER", b"VALID", b"\xff"])))
        }
        _ => {
            if let Some(t) = a.t.as_mut() {
                mutate_tensor(t, r);
            } else {
                a.name = Some(r.pick(ATTRS).to_string());
            }
        }
    }
}

fn new_attribute(r: &mut Rng) -> AttributeProto {
    let mut a = AttributeProto { name: Some(r.pick(ATTRS).to_string()), ..Default::default() };
    match r.below(3) {
        0 => {
            a.r#type = Some(2); // INT
            a.i = Some(int(r));
        }
        1 => {
            a.r#type = Some(7); // INTS
            a.ints = (0..r.below(5)).map(|_| int(r)).collect();
        }
        _ => {
            a.r#type = Some(1); // FLOAT
            a.f = Some(float(r));
        }
    }
    a
}

fn mutate_type(ty: &mut TypeProto, r: &mut Rng) {
    let Some(type_proto::Value::TensorType(t)) = ty.value.as_mut() else {
        ty.value = Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(dtype(r)), shape: None }));
        return;
    };
    match r.below(4) {
        0 => t.elem_type = Some(dtype(r)),
        1 => t.shape = if r.chance(2) { None } else { Some(TensorShapeProto::default()) },
        _ => {
            let shape = t.shape.get_or_insert_with(TensorShapeProto::default);
            let dim = Dimension {
                value: Some(if r.chance(4) {
                    dimension::Value::DimParam(r.pick(&["N", "", "batch"]).to_string())
                } else {
                    dimension::Value::DimValue(int(r))
                }),
                denotation: None,
            };
            if shape.dim.is_empty() || r.chance(3) {
                shape.dim.push(dim);
            } else if r.chance(4) {
                shape.dim.pop();
            } else {
                let i = r.below(shape.dim.len());
                shape.dim[i] = dim;
            }
        }
    }
}

fn mutate_node(n: &mut NodeProto, names: &[String], r: &mut Rng) {
    match r.below(8) {
        0 | 1 => {
            // Rewire an input (or add one).
            let name = r.pick(names).clone();
            if n.input.is_empty() || r.chance(4) {
                n.input.push(name);
            } else {
                let i = r.below(n.input.len());
                n.input[i] = name;
            }
        }
        2 => {
            if !n.input.is_empty() {
                n.input.remove(r.below(n.input.len()));
            }
        }
        3 => {
            // Rename an output: to a fresh name, an existing one (defined twice) or nothing.
            let name = if r.chance(2) { format!("fuzz_{}", r.below(4)) } else { r.pick(names).clone() };
            if n.output.is_empty() || r.chance(4) {
                n.output.push(name);
            } else {
                let i = r.below(n.output.len());
                n.output[i] = name;
            }
        }
        4 => n.op_type = Some(r.pick(OPS).to_string()),
        5 => n.domain = Some(r.pick(DOMAINS).to_string()),
        _ => {
            if n.attribute.is_empty() || r.chance(4) {
                n.attribute.push(new_attribute(r));
            } else if r.chance(6) {
                n.attribute.remove(r.below(n.attribute.len()));
            } else {
                let i = r.below(n.attribute.len());
                mutate_attribute(&mut n.attribute[i], r);
            }
        }
    }
}

/// Changes one field of `m`. Returns false when the chosen mutation found nothing to change.
pub fn mutate_model(m: &mut ModelProto, r: &mut Rng) -> bool {
    match r.below(10) {
        0 => {
            // Opsets and IR version.
            if r.chance(4) {
                m.ir_version = Some(if r.chance(2) { r.below(16) as i64 } else { int(r) });
            } else if m.opset_import.is_empty() || r.chance(4) {
                m.opset_import.push(OperatorSetIdProto {
                    domain: Some(r.pick(DOMAINS).to_string()),
                    version: Some(r.below(26) as i64),
                });
            } else {
                let i = r.below(m.opset_import.len());
                let o = &mut m.opset_import[i];
                match r.below(4) {
                    0 => o.domain = Some(r.pick(DOMAINS).to_string()),
                    1 => o.version = Some(int(r)),
                    _ => o.version = Some(r.below(26) as i64),
                }
            }
            return true;
        }
        _ => {}
    }
    let Some(g) = m.graph.as_mut() else { return false };
    match r.below(9) {
        0..=2 => {
            let mut ts = tensors(g);
            if ts.is_empty() {
                return false;
            }
            let i = r.below(ts.len());
            mutate_tensor(ts[i], r);
        }
        3 | 4 => {
            let names = names(g);
            if g.node.is_empty() {
                return false;
            }
            let i = r.below(g.node.len());
            mutate_node(&mut g.node[i], &names, r);
        }
        5 => {
            let mut vs = value_infos(g);
            if vs.is_empty() {
                return false;
            }
            let i = r.below(vs.len());
            mutate_type(vs[i].r#type.get_or_insert_with(TypeProto::default), r);
        }
        6 => {
            // Drop, duplicate or move a node.
            if g.node.is_empty() {
                return false;
            }
            let i = r.below(g.node.len());
            match r.below(3) {
                0 => {
                    g.node.remove(i);
                }
                1 => {
                    let n = g.node[i].clone();
                    g.node.insert(r.below(g.node.len() + 1), n);
                }
                _ => {
                    let j = r.below(g.node.len());
                    g.node.swap(i, j);
                }
            }
        }
        7 => {
            // Graph outputs: drop one, or declare another value as one.
            let names = names(g);
            if !g.output.is_empty() && r.chance(3) {
                g.output.remove(r.below(g.output.len()));
            } else {
                g.output.push(ValueInfoProto { name: Some(r.pick(&names).clone()), ..Default::default() });
            }
        }
        _ => {
            // Drop an initializer or a graph input.
            if !g.initializer.is_empty() && r.chance(2) {
                g.initializer.remove(r.below(g.initializer.len()));
            } else if !g.input.is_empty() {
                g.input.remove(r.below(g.input.len()));
            } else {
                return false;
            }
        }
    }
    true
}

/// The mutator of the ONNX targets (`fuzz_mutator!`): returns the new size of `data`.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut r = Rng::new(seed);
    if r.chance(8) {
        return fuzzer_mutate(data, size, max_size);
    }
    let Ok(mut model) = ModelProto::decode(&data[..size]) else {
        return fuzzer_mutate(data, size, max_size);
    };
    // A few tries: some mutations find nothing to change in a small model.
    let changed = (0..4).any(|_| mutate_model(&mut model, &mut r));
    let out = model.encode_to_vec();
    if !changed || out.len() > max_size {
        return fuzzer_mutate(data, size, max_size);
    }
    data[..out.len()].copy_from_slice(&out);
    out.len()
}

/// Splits an `interp` input into the model and the bytes its graph inputs are filled from:
/// `MODEL ++ TAIL ++ len(TAIL) as u16 LE`. An input too short for its trailer is all model.
pub fn split_tail(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let (body, len) = data.split_at(data.len() - 2);
    let n = (u16::from_le_bytes([len[0], len[1]]) as usize).min(body.len());
    body.split_at(body.len() - n)
}

/// [`mutate`] for `MODEL ++ TAIL ++ len(TAIL)` inputs: mutates the model (structurally) or the
/// tail (bytes), and writes the trailer back.
pub fn mutate_with_tail(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let (model, tail) = split_tail(&data[..size]);
    let (mut model, mut tail) = (model.to_vec(), tail.to_vec());
    let mut r = Rng::new(seed);
    const MAX_TAIL: usize = 4096;
    if r.chance(3) {
        let n = tail.len();
        tail.resize(MAX_TAIL, 0);
        let n = fuzzer_mutate(&mut tail, n, MAX_TAIL);
        tail.truncate(n);
    } else {
        let room = max_size.saturating_sub(tail.len() + 2).max(model.len());
        let n = model.len();
        model.resize(room, 0);
        let n = mutate(&mut model, n, room, seed.wrapping_add(1));
        model.truncate(n);
    }
    let total = model.len() + tail.len() + 2;
    if total > max_size {
        return fuzzer_mutate(data, size, max_size);
    }
    data[..model.len()].copy_from_slice(&model);
    data[model.len()..model.len() + tail.len()].copy_from_slice(&tail);
    data[total - 2..total].copy_from_slice(&(tail.len() as u16).to_le_bytes());
    total
}
