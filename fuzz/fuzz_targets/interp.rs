//! Small ONNX models (≤ 64 nodes) through the reference interpreter, with graph inputs filled
//! from the input's tail: `MODEL ++ TAIL ++ len(TAIL) as u16 LE` ([`qdqc_fuzz::mutate::split_tail`]).
//! Errors are fine (unsupported ops, bad shapes); panics, hangs and runaway memory are findings.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use qdqc_eval::{Interpreter, RunOptions, Value};
use qdqc_ir::{DType, Dim};

const MAX_NODES: usize = 64;
/// Inputs declaring more elements than this are not run.
const MAX_INPUT_ELEMS: usize = 65536;
/// The interpreter's per-tensor limit (`RunOptions::max_tensor_bytes`).
const MAX_TENSOR_BYTES: usize = 16 << 20;

/// A value of `dtype` and `shape` from the tail bytes, `None` for types without generated values.
fn input(dtype: DType, shape: &[usize], bytes: &mut qdqc_fuzz::Bytes) -> Option<Value> {
    let n: usize = shape.iter().product();
    if dtype.is_float() {
        let data: Vec<f64> = (0..n)
            .map(|_| match bytes.byte() {
                0xff => f64::NAN,
                0xfe => f64::INFINITY,
                0xfd => f64::NEG_INFINITY,
                b => (b as i8) as f64 / 16.0,
            })
            .collect();
        Value::from_f64(dtype, shape, &data).ok()
    } else if let Some((lo, hi)) = dtype.int_range().or((dtype == DType::Bool).then_some((0, 1))) {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        let data: Vec<i64> = (0..n)
            .map(|_| {
                let b = bytes.byte() as u128;
                (lo as i128 + (b % span) as i128) as i64
            })
            .collect();
        Value::from_i64(dtype, shape, &data).ok()
    } else {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let (model, tail) = qdqc_fuzz::mutate::split_tail(data);
    let Some(model) = qdqc_fuzz::decode(model) else { return };
    let graph = &model.graph;
    if graph.op_count() > MAX_NODES || graph.verify_structure().is_err() {
        return;
    }
    let mut bytes = qdqc_fuzz::Bytes::new(tail);
    let mut inputs = Vec::new();
    for &id in &graph.inputs {
        let v = &graph.node(id).outputs[0];
        let Some(ty) = v.ty.as_ref() else { return };
        let Some(dims) = ty.shape.as_ref() else { return };
        let shape: Vec<usize> = dims
            .iter()
            .map(|d| match d {
                Dim::Known(k) => usize::try_from(*k).unwrap_or(usize::MAX),
                _ => 1 + (bytes.byte() % 4) as usize,
            })
            .collect();
        match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
            Some(n) if n <= MAX_INPUT_ELEMS => {}
            _ => return,
        }
        let Some(value) = input(ty.dtype, &shape, &mut bytes) else { return };
        inputs.push((v.name.clone(), value));
    }
    // A per-tensor limit well under the RSS limit: an input that makes the interpreter build a
    // huge tensor must fail with an error before allocating it.
    let Ok(interp) = Interpreter::with_limit(graph, MAX_TENSOR_BYTES) else { return };
    let _ = interp.run(&inputs, &RunOptions { max_tensor_bytes: Some(MAX_TENSOR_BYTES), ..RunOptions::default() });
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    qdqc_fuzz::mutate::mutate_with_tail(data, size, max_size, seed)
});
