//! QuantizeLinear and DequantizeLinear, opsets 10–23: per-tensor, per-axis and blocked; output
//! types u8/i8/u16/i16/u4/i4 (and u2/i2); scales f32/f16/bf16.
//!
//! The arithmetic is onnxruntime's (MLAS `MlasQuantizeLinear`, CPU provider `DequantizeLinear`),
//! checked bit for bit against onnxruntime 1.32 on x86-64 (see the tests):
//!
//! ```text
//! Q:  v = x / scale                       (f32 division, not a multiplication by 1/scale)
//!     v = NaN ? lo - zp : clamp(v, lo - zp, hi - zp)
//!     q = round_half_even(v) + zp         (lo, hi: the output type's range)
//! DQ: y = f32(i32(q) - i32(zp)) * scale   (f32 multiply; rounded to f16 for f16 scales)
//! ```
//!
//! Inputs in f16/bf16 (and scales in f16/bf16) are widened to f32 first, as onnxruntime does.

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Op};
use rayon::prelude::*;

use super::{norm_axis, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::num::Scalar;
use crate::value::{match_numeric, Value};

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::QuantizeLinear, quantize_linear);
    r.add(Op::DequantizeLinear, dequantize_linear);
}

/// Quantizes one value (see the module documentation).
#[inline]
pub fn quantize_one(x: f32, scale: f32, zp: i32, lo: i32, hi: i32) -> i32 {
    // `f32::max` returns the other operand for NaN, so NaN lands on the lower bound.
    let v = (x / scale).max((lo - zp) as f32).min((hi - zp) as f32);
    crate::num::round_half_even_small(v) as i32 + zp
}

/// Dequantizes one value (see the module documentation).
#[inline]
pub fn dequantize_one(q: i32, scale: f32, zp: i32) -> f32 {
    q.wrapping_sub(zp) as f32 * scale
}

/// How scale/zero-point elements map onto the elements of `x`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Granularity {
    PerTensor,
    /// One parameter per index of `axis`.
    PerAxis {
        axis: usize,
    },
    /// Parameters shaped like `x` except `ceil(x.shape[axis] / block)` along `axis`.
    Blocked {
        axis: usize,
        block: usize,
    },
}

impl Granularity {
    /// Works out the granularity from the scale's shape and the `axis`/`block_size` attributes.
    pub(crate) fn of(x_shape: &[usize], scale_shape: &[usize], axis: i64, block: i64) -> KResult<Granularity> {
        let n: usize = scale_shape.iter().product();
        if block > 0 {
            let a = norm_axis(axis, x_shape.len())?;
            ensure!(scale_shape.len() == x_shape.len(), "blocked quantization needs a scale of rank {}", x_shape.len());
            for (i, (&s, &d)) in scale_shape.iter().zip(x_shape).enumerate() {
                let want = if i == a { d.div_ceil(block as usize) } else { d };
                ensure!(
                    s == want,
                    "scale shape {scale_shape:?} does not fit input {x_shape:?} with block_size {block}"
                );
            }
            return Ok(Granularity::Blocked { axis: a, block: block as usize });
        }
        if n == 1 && scale_shape.len() <= 1 {
            return Ok(Granularity::PerTensor);
        }
        let a = norm_axis(axis, x_shape.len())?;
        ensure!(
            scale_shape.len() == 1 && scale_shape[0] == x_shape[a],
            "per-axis scale of shape {scale_shape:?} does not match axis {a} of input {x_shape:?}"
        );
        Ok(Granularity::PerAxis { axis: a })
    }

    /// Calls `f(range, param_index)` for runs of consecutive elements (row-major) that share one
    /// parameter, in order. `f` receives the element range within the flat buffer.
    fn runs(self, shape: &[usize]) -> Vec<(std::ops::Range<usize>, usize)> {
        let total: usize = shape.iter().product();
        match self {
            Granularity::PerTensor => vec![(0..total, 0)],
            Granularity::PerAxis { axis } => {
                let d = shape[axis];
                let inner: usize = shape[axis + 1..].iter().product();
                let outer: usize = shape[..axis].iter().product();
                let mut v = Vec::with_capacity(outer * d);
                for o in 0..outer {
                    for i in 0..d {
                        let start = (o * d + i) * inner;
                        v.push((start..start + inner, i));
                    }
                }
                v
            }
            Granularity::Blocked { axis, block } => {
                let d = shape[axis];
                let dq = d.div_ceil(block);
                let inner: usize = shape[axis + 1..].iter().product();
                let outer: usize = shape[..axis].iter().product();
                // Within one row along `axis`, consecutive elements along the inner dims use
                // consecutive parameters; emit one run per element when inner > 1.
                let mut v = Vec::new();
                for o in 0..outer {
                    for i in 0..d {
                        let start = (o * d + i) * inner;
                        let base = (o * dq + i / block) * inner;
                        if inner == 1 {
                            v.push((start..start + 1, base));
                        } else {
                            for k in 0..inner {
                                v.push((start + k..start + k + 1, base + k));
                            }
                        }
                    }
                }
                v
            }
        }
    }
}

/// The output type: the zero point's type, else `output_dtype` (opset 21+), else uint8.
fn q_out_dtype(c: &Ctx, zp: Option<&Value>) -> KResult<DType> {
    let attr = c.int("output_dtype", 0);
    let from_attr = if attr != 0 {
        Some(
            DType::from_onnx(attr as i32)
                .ok_or_else(|| crate::KernelError::Invalid(format!("unknown output_dtype {attr}")))?,
        )
    } else {
        None
    };
    Ok(match (zp, from_attr) {
        (Some(z), Some(a)) if z.dtype() != a => {
            bail!("output_dtype {a} differs from the zero point's type {}", z.dtype())
        }
        (Some(z), _) => z.dtype(),
        (None, Some(a)) => a,
        (None, None) => DType::U8,
    })
}

/// Zero points as i32 (all zeros when absent), with as many entries as `n_params`.
fn zero_points(zp: Option<&Value>, n_params: usize) -> KResult<Vec<i32>> {
    match zp {
        None => Ok(vec![0; n_params]),
        Some(z) => {
            ensure!(z.dtype().is_int(), "zero point must be an integer tensor, got {}", z.dtype());
            ensure!(z.len() == n_params, "zero point has {} elements, scale has {n_params}", z.len());
            Ok(z.to_i64_vec()?.into_iter().map(|v| v as i32).collect())
        }
    }
}

/// A standard-layout f32 copy (or borrow) of a float/int32 tensor.
fn f32_data(v: &Value) -> KResult<std::borrow::Cow<'_, [f32]>> {
    match v {
        Value::F32(a) if a.is_standard_layout() => {
            Ok(std::borrow::Cow::Borrowed(a.as_slice().expect("standard layout")))
        }
        Value::F32(_) | Value::F16(_) | Value::BF16(_) | Value::F64(_) | Value::I32(_) => {
            Ok(std::borrow::Cow::Owned(v.to_f32_vec()?))
        }
        _ => bail!("expected a float tensor, got {}", v.dtype()),
    }
}

/// Quantizes `x` with the given parameters into a value of `dtype`.
pub(crate) fn quantize(x: &Value, scale: &Value, zp: Option<&Value>, dtype: DType, g: Granularity) -> KResult<Value> {
    // ONNX quantizes to integers of at most 16 bits (the rounding below is exact for those).
    let (lo, hi) = match dtype.int_range() {
        Some(r) if dtype.bits() <= 16 => r,
        _ => bail!("cannot quantize to {dtype}"),
    };
    let (lo, hi) = (lo as i32, hi as i32);
    let xs = f32_data(x)?;
    let scales = scale.to_f32_vec()?;
    let zps = zero_points(zp, scales.len())?;
    let mut out = vec![0i32; xs.len()];
    let runs = g.runs(x.shape());
    let quant_run = |(r, p): &(std::ops::Range<usize>, usize), dst: &mut [i32]| {
        let (s, z) = (scales[*p], zps[*p]);
        for (d, &v) in dst.iter_mut().zip(&xs[r.clone()]) {
            *d = quantize_one(v, s, z, lo, hi);
        }
    };
    if runs.len() == 1 && out.len() >= super::elementwise::PAR_LEN {
        let (s, z) = (scales[runs[0].1], zps[runs[0].1]);
        out.par_chunks_mut(1 << 14)
            .zip(xs.par_chunks(1 << 14))
            .for_each(|(d, x)| d.iter_mut().zip(x).for_each(|(d, &v)| *d = quantize_one(v, s, z, lo, hi)));
    } else {
        for run in &runs {
            let r = run.0.clone();
            quant_run(run, &mut out[r]);
        }
    }
    // Values are in range, so narrowing is exact.
    super::qlinear::pack(dtype, x.shape(), out)
}

/// Dequantizes `x` (any integer type) to f32.
pub(crate) fn dequantize(x: &Value, scale: &Value, zp: Option<&Value>, g: Granularity) -> KResult<ArrayD<f32>> {
    ensure!(x.dtype().is_int(), "DequantizeLinear input must be an integer tensor, got {}", x.dtype());
    let scales = scale.to_f32_vec()?;
    let zps = zero_points(zp, scales.len())?;
    let q: Vec<i32> = match x {
        Value::U8(_) | Value::I8(_) => super::qlinear::int8_data(x, "x")?,
        _ => match_numeric!(x, a => a.iter().map(|v| v.to_i128() as i32).collect(), _ => unreachable!()),
    };
    let mut out = vec![0f32; q.len()];
    let runs = g.runs(x.shape());
    if runs.len() == 1 && out.len() >= super::elementwise::PAR_LEN {
        let (s, z) = (scales[0], zps[0]);
        out.par_chunks_mut(1 << 14)
            .zip(q.par_chunks(1 << 14))
            .for_each(|(d, q)| d.iter_mut().zip(q).for_each(|(d, &v)| *d = dequantize_one(v, s, z)));
    } else {
        for (r, p) in runs {
            let (s, z) = (scales[p], zps[p]);
            for (d, &v) in out[r.clone()].iter_mut().zip(&q[r]) {
                *d = dequantize_one(v, s, z);
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(x.shape()), out)?)
}

fn quantize_linear(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, scale, zp) = (c.input(0)?, c.input(1)?, c.opt(2));
    let dtype = q_out_dtype(c, zp)?;
    ensure!(c.int("saturate", 1) == 1 || !dtype.is_int(), "saturate=0 only applies to float8 outputs");
    let g = Granularity::of(x.shape(), scale.shape(), c.int("axis", 1), c.int("block_size", 0))?;
    Ok(vec![quantize(x, scale, zp, dtype, g)?])
}

fn dequantize_linear(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, scale, zp) = (c.input(0)?, c.input(1)?, c.opt(2));
    if let Some(z) = zp {
        ensure!(z.dtype() == x.dtype(), "zero point type {} differs from input type {}", z.dtype(), x.dtype());
    }
    let g = Granularity::of(x.shape(), scale.shape(), c.int("axis", 1), c.int("block_size", 0))?;
    let y = dequantize(x, scale, zp, g)?;
    let out_dtype = match c.int("output_dtype", 0) {
        0 => scale.dtype(),
        d => DType::from_onnx(d as i32)
            .ok_or_else(|| crate::KernelError::Invalid(format!("unknown output_dtype {d}")))?,
    };
    ensure!(out_dtype.is_float(), "DequantizeLinear output type {out_dtype} is not a float type");
    Ok(vec![super::f32_output(y, out_dtype)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, run_op};
    use qdqc_ir::attr::make_int;

    fn q(x: &[f32], scale: f32, zp: Value, opset: i64) -> Vec<i64> {
        let y = run_op(
            Op::QuantizeLinear,
            vec![],
            &[Some(f32v(&[x.len()], x)), Some(Value::scalar(scale)), Some(zp)],
            opset,
        );
        y[0].to_i64_vec().unwrap()
    }

    const EDGE: [f32; 15] = [
        0.5,
        1.5,
        2.5,
        -0.5,
        -1.5,
        -2.5,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e10,
        -1e10,
        0.0,
        -0.0,
        7.5,
        -8.5,
    ];

    /// Found by the `interp` fuzz target: an int32 zero point overflowed `lo − zp`.
    #[test]
    fn quantizing_to_wider_than_16_bits_is_refused() {
        for zp in [Value::scalar(7i32), Value::scalar(-1i64), Value::scalar(1u32)] {
            let ins = [Some(f32v(&[2], &[1.0, -1.0])), Some(Value::scalar(1f32)), Some(zp)];
            let e = crate::kernels::tests::try_run_op(Op::QuantizeLinear, vec![], &ins, 21, 1).unwrap_err();
            assert!(e.to_string().contains("cannot quantize to"), "{e}");
        }
    }

    #[test]
    fn rounding_ties_saturation_and_nan_match_onnxruntime() {
        // Expected values: onnxruntime 1.32 (CPU, ORT_DISABLE_ALL), scale 1.
        assert_eq!(q(&EDGE, 1.0, Value::scalar(0u8), 13), [0, 2, 2, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0, 8, 0]);
        assert_eq!(
            q(&EDGE, 1.0, Value::scalar(128u8), 13),
            [128, 130, 130, 128, 126, 126, 0, 255, 0, 255, 0, 128, 128, 136, 120]
        );
        assert_eq!(
            q(&EDGE, 1.0, Value::scalar(0i8), 13),
            [0, 2, 2, 0, -2, -2, -128, 127, -128, 127, -128, 0, 0, 8, -8]
        );
        assert_eq!(q(&EDGE, 1.0, Value::scalar(0u16), 21), [0, 2, 2, 0, 0, 0, 0, 65535, 0, 65535, 0, 0, 0, 8, 0]);
        assert_eq!(
            q(&EDGE, 1.0, Value::scalar(0i16), 21),
            [0, 2, 2, 0, -2, -2, -32768, 32767, -32768, 32767, -32768, 0, 0, 8, -8]
        );
        let i4 = |z: i64| Value::from_i64(DType::I4, &[], &[z]).unwrap();
        assert_eq!(q(&EDGE, 1.0, i4(0), 21), [0, 2, 2, 0, -2, -2, -8, 7, -8, 7, -8, 0, 0, 7, -8]);
        assert_eq!(q(&EDGE, 1.0, i4(-3), 21), [-3, -1, -1, -3, -5, -5, -8, 7, -8, 7, -8, -3, -3, 5, -8]);
        let u4 = Value::from_i64(DType::U4, &[], &[0]).unwrap();
        assert_eq!(q(&EDGE, 1.0, u4, 21), [0, 2, 2, 0, 0, 0, 0, 15, 0, 15, 0, 0, 0, 8, 0]);
    }

    #[test]
    fn divides_by_the_scale() {
        // onnxruntime 1.32 divides: 8.15 / 0.1 = 81.49999 → 81, 9.72345 / 0.0213 = 456.5 → 456 (tie),
        // 8.722349 / 0.0213 = 409.49997 → 409. Multiplying by the reciprocal would give 82, 457, 410.
        assert_eq!(q(&[8.15], 0.1, Value::scalar(0i8), 13), [81]);
        assert_eq!(q(&[9.72345, 8.722349], 0.0213, Value::scalar(0i16), 21), [456, 409]);
        assert_eq!((8.15f32 * (1.0 / 0.1f32)).round_ties_even(), 82.0);
        assert_eq!((9.72345f32 * (1.0 / 0.0213f32)).round_ties_even(), 457.0);
    }

    #[test]
    fn output_type_defaults_to_u8_or_output_dtype() {
        let x = f32v(&[3], &[-1.0, 0.4, 300.0]);
        let y = run_op(Op::QuantizeLinear, vec![], &[Some(x.clone()), Some(Value::scalar(1.0f32))], 13).remove(0);
        assert_eq!(y.dtype(), DType::U8);
        assert_eq!(y.to_i64_vec().unwrap(), [0, 0, 255]);
        let attrs = vec![make_int("output_dtype", DType::I4.to_onnx() as i64)];
        let y = run_op(Op::QuantizeLinear, attrs, &[Some(x), Some(Value::scalar(1.0f32))], 21).remove(0);
        assert_eq!(y.dtype(), DType::I4);
        assert_eq!(y.to_i64_vec().unwrap(), [-1, 0, 7]);
    }

    #[test]
    fn per_axis() {
        // x [2, 3], axis 1: scales per column.
        let x = f32v(&[2, 3], &[1.0, 1.0, 1.0, -2.0, 4.0, 9.0]);
        let s = f32v(&[3], &[0.5, 1.0, 2.0]);
        let z = Value::from_i64(DType::I8, &[3], &[0, 1, -1]).unwrap();
        let y = run_op(Op::QuantizeLinear, vec![], &[Some(x), Some(s.clone()), Some(z.clone())], 13).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [2, 2, -1, -4, 5, 3]); // 0.5 → 0 and 4.5 → 4 (ties to even)
        let d = run_op(Op::DequantizeLinear, vec![], &[Some(y), Some(s), Some(z)], 13).remove(0);
        assert_eq!(d, f32v(&[2, 3], &[1.0, 1.0, 0.0, -2.0, 4.0, 8.0]));
        // axis 0 on a [3, 2] weight, negative axis form.
        let w = f32v(&[3, 2], &[1.0, -1.0, 2.0, -2.0, 3.0, -3.0]);
        let s = f32v(&[3], &[1.0, 2.0, 3.0]);
        let z = Value::from_i64(DType::I8, &[3], &[0, 0, 0]).unwrap();
        let y = run_op(Op::QuantizeLinear, vec![make_int("axis", -2)], &[Some(w), Some(s), Some(z)], 13).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [1, -1, 1, -1, 1, -1]);
    }

    #[test]
    fn blocked() {
        // x [2, 6], axis 1, block_size 4: scale [2, 2] (the last block holds 2 elements).
        let x = f32v(&[2, 6], &[1., 2., 3., 4., 5., 6., -1., -2., -3., -4., -5., -6.]);
        let s = f32v(&[2, 2], &[1.0, 2.0, 0.5, 4.0]);
        let z = Value::from_i64(DType::I4, &[2, 2], &[0, 1, -1, 0]).unwrap();
        let attrs = vec![make_int("axis", 1), make_int("block_size", 4)];
        let y = run_op(Op::QuantizeLinear, attrs.clone(), &[Some(x), Some(s.clone()), Some(z.clone())], 21).remove(0);
        // Row 0: [1,2,3,4]/1 + 0, [5,6]/2 + 1 → 2.5→2 +1 = 3, 3+1 = 4.
        // Row 1: [-1,-2,-3,-4]/0.5 - 1 → -3, -5, -7, -8 (saturated); [-5,-6]/4 → -1.25→-1, -1.5→-2.
        assert_eq!(y.to_i64_vec().unwrap(), [1, 2, 3, 4, 3, 4, -3, -5, -7, -8, -1, -2]);
        let d = run_op(Op::DequantizeLinear, attrs, &[Some(y), Some(s), Some(z)], 21).remove(0);
        assert_eq!(d, f32v(&[2, 6], &[1., 2., 3., 4., 4., 6., -1., -2., -3., -3.5, -4., -8.]));
    }

    #[test]
    fn blocked_inner_dims() {
        // x [4, 2], axis 0, block 2: scale [2, 2]; parameters vary along the inner dim.
        let x = f32v(&[4, 2], &[1., 10., 2., 20., 3., 30., 4., 40.]);
        let s = f32v(&[2, 2], &[1., 10., 2., 20.]);
        let attrs = vec![make_int("axis", 0), make_int("block_size", 2)];
        let z = Value::from_i64(DType::U8, &[2, 2], &[0, 0, 0, 0]).unwrap();
        let y = run_op(Op::QuantizeLinear, attrs, &[Some(x), Some(s), Some(z)], 21).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [1, 1, 2, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn dequantize_int32_and_f16_scale() {
        let x = Value::from_i64(DType::I32, &[3], &[-1000, 0, 7]).unwrap();
        let y = run_op(Op::DequantizeLinear, vec![], &[Some(x), Some(Value::scalar(0.5f32))], 13).remove(0);
        assert_eq!(y, f32v(&[3], &[-500.0, 0.0, 3.5]));
        let x = Value::from_i64(DType::U8, &[2], &[0, 255]).unwrap();
        let s = Value::scalar(half::f16::from_f32(0.1));
        let z = Value::scalar(128u8);
        let y = run_op(Op::DequantizeLinear, vec![], &[Some(x), Some(s), Some(z)], 21).remove(0);
        assert_eq!(y.dtype(), DType::F16);
        // f16(0.1) = 0.0999755859375; -128 × it = -12.796875 (exact in f16);
        // 127 × it = 12.6968994140625 → f16 12.6953125.
        assert_eq!(y.to_f64_vec().unwrap(), [-12.796875, 12.6953125]);
    }
}
