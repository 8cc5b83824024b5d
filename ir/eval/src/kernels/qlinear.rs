//! Integer convolution and matrix multiply: QLinearConv, QLinearMatMul, ConvInteger,
//! MatMulInteger.
//!
//! Accumulation is exact: `acc = Σ (x − x_zp)·(w − w_zp)` in i32 (wrapping, like onnxruntime's
//! i32 accumulators), plus the i32 bias. The QLinear ops then requantize exactly as onnxruntime
//! (MLAS `MlasRequantizeOutput`, used by both kernels) does, all in f32:
//!
//! ```text
//! scale[c] = x_scale · w_scale[c] / y_scale      (left to right: (x_scale · w_scale) / y_scale)
//! v        = f32(acc) · scale[c]                 (i32 → f32 rounds to nearest even)
//! y        = round_half_even(clamp(v, lo − y_zp, hi − y_zp)) + y_zp
//! ```
//!
//! (onnxruntime `QLinearConv::Compute` and `QLinearMatMul::Compute` build `scale` that way; the
//! result was checked bit for bit against onnxruntime 1.32, see the tests.)

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Op};
use rayon::prelude::*;

use super::conv::{conv_dims, im2row, kernel_shape, Geom};
use super::gemm::{igemm_nt, padded_k};
use super::linalg::MatMulShape;
use super::{Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::num::Scalar;
use crate::value::{match_numeric, Value};

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::QLinearConv, qlinear_conv);
    r.add(Op::ConvInteger, conv_integer);
    r.add(Op::QLinearMatMul, qlinear_matmul);
    r.add(Op::MatMulInteger, matmul_integer);
}

/// onnxruntime's requantization of one accumulator (see the module documentation).
#[inline]
pub fn requantize_one(acc: i32, scale: f32, zp: i32, lo: i32, hi: i32) -> i32 {
    // `f32::max` returns the other operand for NaN, so NaN lands on the lower bound.
    let v = (acc as f32 * scale).max((lo - zp) as f32).min((hi - zp) as f32);
    crate::num::round_half_even_small(v) as i32 + zp
}

/// The values of an 8-bit integer tensor as i32.
pub(crate) fn int8_data(v: &Value, what: &str) -> KResult<Vec<i32>> {
    fn widen<T: Copy + Into<i32>>(a: &ndarray::ArrayD<T>) -> Vec<i32> {
        match a.as_slice() {
            Some(s) => s.iter().map(|&x| x.into()).collect(),
            None => a.iter().map(|&x| x.into()).collect(),
        }
    }
    match v {
        Value::U8(a) => Ok(widen(a)),
        Value::I8(a) => Ok(widen(a)),
        _ => bail!("{what} must be uint8 or int8, got {}", v.dtype()),
    }
}

/// Zero points as i32: `n` of them (a single one is repeated); zeros when absent.
pub(crate) fn zps(v: Option<&Value>, n: usize, like: DType, what: &str) -> KResult<Vec<i32>> {
    match v {
        None => Ok(vec![0; n]),
        Some(z) => {
            ensure!(z.dtype() == like, "{what} has type {}, expected {like}", z.dtype());
            let vals: Vec<i32> = z.to_i64_vec()?.into_iter().map(|x| x as i32).collect();
            match vals.len() {
                1 => Ok(vec![vals[0]; n]),
                l if l == n => Ok(vals),
                l => bail!("{what} has {l} values, expected 1 or {n}"),
            }
        }
    }
}

/// Scales as f32: `n` of them (a single one is repeated).
pub(crate) fn scales(v: &Value, n: usize, what: &str) -> KResult<Vec<f32>> {
    ensure!(v.dtype().is_float(), "{what} must be a float tensor, got {}", v.dtype());
    let vals = v.to_f32_vec()?;
    match vals.len() {
        1 => Ok(vec![vals[0]; n]),
        l if l == n => Ok(vals),
        l => bail!("{what} has {l} values, expected 1 or {n}"),
    }
}

/// A single (per-tensor) parameter.
pub(crate) fn scalar_param(v: &Value, what: &str) -> KResult<f32> {
    ensure!(v.len() == 1, "{what} must be a scalar, has shape {:?}", v.shape());
    Ok(v.to_f32_vec()?[0])
}

/// Packs i32 values (already within the type's range) into a tensor of integer `dtype`.
pub(crate) fn pack(dtype: DType, shape: &[usize], vals: Vec<i32>) -> KResult<Value> {
    fn narrow<T>(shape: &[usize], vals: &[i32], f: impl Fn(i32) -> T) -> KResult<ArrayD<T>> {
        Ok(ArrayD::from_shape_vec(IxDyn(shape), vals.iter().map(|&v| f(v)).collect())?)
    }
    Ok(match dtype {
        DType::U8 => Value::U8(narrow(shape, &vals, |v| v as u8)?),
        DType::I8 => Value::I8(narrow(shape, &vals, |v| v as i8)?),
        DType::U16 => Value::U16(narrow(shape, &vals, |v| v as u16)?),
        DType::I16 => Value::I16(narrow(shape, &vals, |v| v as i16)?),
        DType::U4 => Value::U4(narrow(shape, &vals, |v| v as u8)?),
        DType::I4 => Value::I4(narrow(shape, &vals, |v| v as i8)?),
        DType::U2 => Value::U2(narrow(shape, &vals, |v| v as u8)?),
        DType::I2 => Value::I2(narrow(shape, &vals, |v| v as i8)?),
        DType::I32 => Value::I32(ArrayD::from_shape_vec(IxDyn(shape), vals)?),
        d => Value::I32(ArrayD::from_shape_vec(IxDyn(shape), vals)?).cast(d)?,
    })
}

/// The exact i32 accumulators of a grouped convolution of `x − x_zp` with `w − w_zp[m]`:
/// `[n, m, out pixels]`, plus the geometry.
pub(crate) fn int_conv(c: &Ctx, x: &Value, x_zp: i32, w: &Value, w_zp: &[i32]) -> KResult<(Vec<i32>, Vec<usize>)> {
    let (n, ch, group, m) = conv_dims(c, x.shape(), w.shape())?;
    let kernel = kernel_shape(c, w.shape())?;
    let g = Geom::new(c, &x.shape()[2..], &kernel, false)?;
    let xd: Vec<i16> = int8_data(x, "x")?.into_iter().map(|v| (v - x_zp) as i16).collect();
    let wd = int8_data(w, "w")?;
    let (cg, mg) = (ch / group, m / group);
    let (kl, ol, il) = (g.kernel_len(), g.out_len(), g.in_len());
    let kk = cg * kl;
    crate::limits::check_shape(&[n, m, ol])?;
    crate::limits::check_shape(&[ol, padded_k(kk)])?;
    // Both operands are packed with rows padded to a multiple of 16 (zeros), as igemm_nt needs.
    let kp = padded_k(kk);
    let mut wq = vec![0i16; m * kp];
    for (mi, (dst, src)) in wq.chunks_mut(kp).zip(wd.chunks(kk.max(1))).enumerate() {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v - w_zp[mi]) as i16;
        }
    }
    let mut acc = vec![0i32; n * m * ol];
    let mut rows = vec![0i16; ol * kp];
    for b in 0..n {
        for gi in 0..group {
            let xg = &xd[(b * ch + gi * cg) * il..(b * ch + (gi + 1) * cg) * il];
            let wg = &wq[gi * mg * kp..(gi + 1) * mg * kp];
            im2row(xg, cg, &g, 0i16, &mut rows, kp);
            let yg = &mut acc[(b * m + gi * mg) * ol..(b * m + (gi + 1) * mg) * ol];
            igemm_nt(mg, ol, kk, wg, kp, &rows, kp, yg);
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&g.out_sp);
    Ok((acc, shape))
}

fn qlinear_conv(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, xs, xz) = (c.input(0)?, c.input(1)?, c.opt(2));
    let (w, ws, wz) = (c.input(3)?, c.input(4)?, c.opt(5));
    let (ys, yz) = (c.input(6)?, c.opt(7));
    ensure!(w.rank() >= 3, "w must have rank ≥ 3, got {:?}", w.shape());
    let m = w.shape()[0];
    let x_zp = zps(xz, 1, x.dtype(), "x_zero_point")?[0];
    let w_zp = zps(wz, m, w.dtype(), "w_zero_point")?;
    let x_scale = scalar_param(xs, "x_scale")?;
    let y_scale = scalar_param(ys, "y_scale")?;
    let w_scale = scales(ws, m, "w_scale")?;
    let out_dtype = yz.map_or(x.dtype(), Value::dtype);
    let y_zp = zps(yz, 1, out_dtype, "y_zero_point")?[0];
    let (lo, hi) =
        out_dtype.int_range().ok_or_else(|| crate::KernelError::Invalid(format!("output type {out_dtype}")))?;
    let (mut acc, shape) = int_conv(c, x, x_zp, w, &w_zp)?;
    let ol: usize = shape[2..].iter().product();
    let bias = match c.opt(8) {
        Some(b) => {
            ensure!(b.dtype() == DType::I32, "B must be int32, got {}", b.dtype());
            let v: Vec<i32> = b.to_i64_vec()?.into_iter().map(|v| v as i32).collect();
            ensure!(v.len() == m, "B has {} values for {m} output channels", v.len());
            v
        }
        None => vec![0; m],
    };
    let out_scale: Vec<f32> = w_scale.iter().map(|&ws| x_scale * ws / y_scale).collect();
    acc.par_chunks_mut(ol.max(1)).enumerate().for_each(|(p, plane)| {
        let k = p % m;
        let (s, bv) = (out_scale[k], bias[k]);
        for v in plane {
            *v = requantize_one(v.wrapping_add(bv), s, y_zp, lo as i32, hi as i32);
        }
    });
    Ok(vec![pack(out_dtype, &shape, acc)?])
}

fn conv_integer(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    ensure!(w.rank() >= 3, "w must have rank ≥ 3, got {:?}", w.shape());
    let m = w.shape()[0];
    let x_zp = zps(c.opt(2), 1, x.dtype(), "x_zero_point")?[0];
    let w_zp = zps(c.opt(3), m, w.dtype(), "w_zero_point")?;
    let (acc, shape) = int_conv(c, x, x_zp, w, &w_zp)?;
    Ok(vec![Value::I32(ArrayD::from_shape_vec(IxDyn(&shape), acc)?)])
}

/// Exact i32 products of `(a − a_zp[row])` and `(b − b_zp[col])`, batched and broadcast like
/// MatMul: `[batches · m · n]`.
pub(crate) fn int_matmul(a: &Value, a_zp: &[i32], b: &Value, b_zp: &[i32]) -> KResult<(MatMulShape, Vec<i32>)> {
    let sh = MatMulShape::of(a.shape(), b.shape())?;
    let (m, k, n) = (sh.m, sh.k, sh.n);
    let ad = int8_data(a, "A")?;
    let bd = int8_data(b, "B")?;
    // Rows padded to a multiple of 16 with zeros, as igemm_nt needs.
    let kp = padded_k(k);
    let a_rows = |off: usize, rows: usize| -> Vec<i16> {
        let mut v = vec![0i16; rows * kp];
        for r in 0..rows {
            let z = a_zp[if a_zp.len() == 1 { 0 } else { r % m }];
            for (d, &x) in v[r * kp..r * kp + k].iter_mut().zip(&ad[off + r * k..off + (r + 1) * k]) {
                *d = (x - z) as i16;
            }
        }
        v
    };
    let b_t = |off: usize| -> Vec<i16> {
        let mut v = vec![0i16; n * kp];
        for kk in 0..k {
            for col in 0..n {
                let z = b_zp[if b_zp.len() == 1 { 0 } else { col }];
                v[col * kp + kk] = (bd[off + kk * n + col] - z) as i16;
            }
        }
        v
    };
    let mut out = vec![0i32; sh.batches() * m * n];
    if sh.foldable() {
        let rows = sh.batches() * m;
        let bt = b_t(sh.b_offsets.first().copied().unwrap_or(0));
        igemm_nt(rows, n, k, &a_rows(0, rows), kp, &bt, kp, &mut out);
    } else {
        let mut cached: Option<(usize, Vec<i16>)> = None;
        for (i, (&ao, &bo)) in sh.a_offsets.iter().zip(&sh.b_offsets).enumerate() {
            if cached.as_ref().is_none_or(|(o, _)| *o != bo) {
                cached = Some((bo, b_t(bo)));
            }
            let bt = &cached.as_ref().expect("cached").1;
            igemm_nt(m, n, k, &a_rows(ao, m), kp, bt, kp, &mut out[i * m * n..(i + 1) * m * n]);
        }
    }
    Ok((sh, out))
}

/// Per-row (`[M]`) or per-column (`[N]`) parameters may also come shaped `[M, 1]` / `[1, N]`.
fn param_len(v: Option<&Value>) -> usize {
    v.map_or(1, Value::len)
}

fn matmul_integer(c: &Ctx) -> KResult<Vec<Value>> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let sh = MatMulShape::of(a.shape(), b.shape())?;
    let (az, bz) = (c.opt(2), c.opt(3));
    let a_zp = zps(az, if param_len(az) == 1 { 1 } else { sh.m }, a.dtype(), "a_zero_point")?;
    let b_zp = zps(bz, if param_len(bz) == 1 { 1 } else { sh.n }, b.dtype(), "b_zero_point")?;
    let (sh, acc) = int_matmul(a, &a_zp, b, &b_zp)?;
    Ok(vec![Value::I32(ArrayD::from_shape_vec(IxDyn(&sh.out_shape), acc)?)])
}

fn qlinear_matmul(c: &Ctx) -> KResult<Vec<Value>> {
    let (a, a_s, a_z) = (c.input(0)?, c.input(1)?, c.opt(2));
    let (b, b_s, b_z) = (c.input(3)?, c.input(4)?, c.opt(5));
    let (y_s, y_z) = (c.input(6)?, c.opt(7));
    let sh = MatMulShape::of(a.shape(), b.shape())?;
    let n = sh.n;
    let a_zp = zps(a_z, 1, a.dtype(), "a_zero_point")?;
    let per_col = b_s.len() > 1 || param_len(b_z) > 1;
    let b_zp = zps(b_z, if per_col { n } else { 1 }, b.dtype(), "b_zero_point")?;
    let b_scale = scales(b_s, if per_col { n } else { 1 }, "b_scale")?;
    let (a_scale, y_scale) = (scalar_param(a_s, "a_scale")?, scalar_param(y_s, "y_scale")?);
    let out_dtype = y_z.map_or(a.dtype(), Value::dtype);
    let y_zp = zps(y_z, 1, out_dtype, "y_zero_point")?[0];
    let (lo, hi) =
        out_dtype.int_range().ok_or_else(|| crate::KernelError::Invalid(format!("output type {out_dtype}")))?;
    let (sh, mut acc) = int_matmul(a, &a_zp, b, &b_zp)?;
    let out_scale: Vec<f32> = b_scale.iter().map(|&bs| a_scale * bs / y_scale).collect();
    acc.par_chunks_mut(n.max(1)).for_each(|row| {
        for (j, v) in row.iter_mut().enumerate() {
            let s = out_scale[if out_scale.len() == 1 { 0 } else { j }];
            *v = requantize_one(*v, s, y_zp, lo as i32, hi as i32);
        }
    });
    Ok(vec![pack(out_dtype, &sh.out_shape, acc)?])
}

/// All elements of an integer tensor as i32 (for kernels that take any integer width).
#[allow(dead_code)]
pub(crate) fn int_data(v: &Value) -> KResult<Vec<i32>> {
    ensure!(v.dtype().is_int(), "expected an integer tensor, got {}", v.dtype());
    Ok(match_numeric!(v, a => a.iter().map(|x| x.to_i128() as i32).collect(), _ => unreachable!()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::run_op;
    use qdqc_ir::attr::{make_int, make_ints};

    fn u8v(shape: &[usize], v: &[i64]) -> Value {
        Value::from_i64(DType::U8, shape, v).unwrap()
    }
    fn i8v(shape: &[usize], v: &[i64]) -> Value {
        Value::from_i64(DType::I8, shape, v).unwrap()
    }

    #[test]
    fn requantize_rounds_half_even_after_the_f32_product() {
        // acc · scale exactly at .5 → even.
        assert_eq!(requantize_one(5, 0.5, 0, 0, 255), 2);
        assert_eq!(requantize_one(7, 0.5, 0, 0, 255), 4);
        assert_eq!(requantize_one(-7, 0.5, 10, 0, 255), 6);
        // Saturation.
        assert_eq!(requantize_one(100_000, 0.5, 128, 0, 255), 255);
        assert_eq!(requantize_one(-100_000, 0.5, 0, -128, 127), -128);
        // f32(acc) rounds first: 16777217 → 16777216.
        assert_eq!(requantize_one(16_777_217, 1.0 / 65536.0, 0, -128, 127), 127);
        assert_eq!(requantize_one(16_777_217, 1.0 / 262_144.0, 0, -128, 127), 64);
    }

    #[test]
    fn matmul_integer_with_zero_points() {
        // onnx backend test "matmulinteger".
        let a = u8v(&[4, 3], &[11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0]);
        let b = u8v(&[3, 2], &[1, 4, 2, 5, 3, 6]);
        let ins = [Some(a), Some(b), Some(Value::scalar(12u8)), Some(Value::scalar(0u8))];
        let y = run_op(Op::MatMulInteger, vec![], &ins, 10).remove(0);
        assert_eq!(y.dtype(), DType::I32);
        assert_eq!(y.to_i64_vec().unwrap(), [-38, -83, -44, -98, -50, -113, -56, -128]);
    }

    #[test]
    fn qlinear_matmul_onnx_example() {
        // onnx backend test "qlinearmatmul_2D_uint8_float32".
        let a = u8v(&[2, 4], &[208, 236, 0, 238, 3, 214, 255, 29]);
        let b = u8v(&[4, 3], &[152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247]);
        let ins = [
            Some(a),
            Some(Value::scalar(0.0066f32)),
            Some(Value::scalar(113u8)),
            Some(b),
            Some(Value::scalar(0.00705f32)),
            Some(Value::scalar(114u8)),
            Some(Value::scalar(0.0107f32)),
            Some(Value::scalar(118u8)),
        ];
        let y = run_op(Op::QLinearMatMul, vec![], &ins, 10).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [168, 115, 255, 1, 66, 151]);
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the onnx test's literals, verbatim
    fn qlinear_conv_onnx_example() {
        // onnx backend test "qlinearconv": 7×7 u8 image, 1×1 kernel, per-tensor.
        let x = u8v(
            &[1, 1, 7, 7],
            &[
                255, 174, 162, 25, 203, 168, 58, 15, 59, 237, 95, 129, 0, 64, 56, 242, 153, 221, 168, 12, 166, 232,
                178, 186, 195, 237, 162, 237, 188, 39, 124, 77, 80, 102, 43, 127, 230, 21, 83, 41, 40, 134, 255, 154,
                92, 141, 42, 148, 247,
            ],
        );
        let ins = [
            Some(x),
            Some(Value::scalar(0.00369204697f32)),
            Some(Value::scalar(132u8)),
            Some(u8v(&[1, 1, 1, 1], &[0])),
            Some(Value::scalar(0.00172794575f32)),
            Some(Value::scalar(255u8)),
            Some(Value::scalar(0.00162681262f32)),
            Some(Value::scalar(123u8)),
        ];
        let y = run_op(Op::QLinearConv, vec![], &ins, 10).remove(0);
        assert_eq!(
            y.to_i64_vec().unwrap(),
            [
                0, 81, 93, 230, 52, 87, 197, 240, 196, 18, 160, 126, 255, 191, 199, 13, 102, 34, 87, 243, 89, 23, 77,
                69, 60, 18, 93, 18, 67, 216, 131, 178, 175, 153, 212, 128, 25, 234, 172, 214, 215, 121, 0, 101, 163,
                114, 213, 107, 8
            ]
        );
    }

    #[test]
    fn conv_integer_with_pads() {
        // onnx backend test "convinteger_with_padding".
        let x = u8v(&[1, 1, 3, 3], &[2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let w = u8v(&[1, 1, 2, 2], &[1, 1, 1, 1]);
        let y = run_op(
            Op::ConvInteger,
            vec![make_ints("pads", &[1, 1, 1, 1])],
            &[Some(x), Some(w), Some(Value::scalar(1u8))],
            10,
        )
        .remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9]);
        let _ = (make_int, i8v);
    }
}
