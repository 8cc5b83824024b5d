//! onnxruntime's com.microsoft quantized ops, with onnxruntime's own arithmetic (CPU provider,
//! x86-64 with AVX2/FMA, which is what the parity checks run on):
//!
//! | op | onnxruntime computes (all f32) |
//! |---|---|
//! | QLinearAdd | `rA = sA/sC`, `rB = sB/sC`, `F = zC − (rA·zA + rB·zB)`; `y = sat(rne(fma(a, rA, fma(b, rB, F))))`; when one operand is constant along the innermost broadcast span it is folded into `F` first (`F += s·r`, unfused) — see `qlinear_add` |
//! | QLinearMul | `r = sA·sB/sC`; `y = sat(rne(f32((a−zA)(b−zB))·r + zC))` |
//! | QLinearGlobalAveragePool | `acc = Σx − zX·n` (i32); `y = requantize(acc, sX/(sY·f32(n)), zY)`; refused for n ≥ 2²⁴ or a factor outside [2⁻³², 256) |
//! | QLinearAveragePool | dequantize `sX·(x−zX)`, sum the window in order, `/ count`, `y = sat(rne(avg/sY + zY))`; count_include_pad counts the whole kernel; a window that is the whole unpadded image takes the global pool's integer path |
//! | QLinearConcat | per input: copy if its (scale, zp) equal the output's, else a 256-entry table `Q(DQ(v))` |
//! | QGemm | `s = alpha·sA·sB[n] (/ sY)`; `acc = C + Σ(a−zA)(b−zB)`; quantized: `requantize(acc, s, zY)`, float: `f32(acc)·s` |
//! | QLinearSigmoid, QLinearLeakyRelu | a 256-entry table: `Q(f(DQ(v)))`, f = MLAS logistic (FMA rational approximation) / `v ≥ 0 ? v : alpha·v` |
//! | QLinearSoftmax | onnxruntime's table of `exp` scaled by a bit shift, f32 sums, `sat(rne(e·floor(1/sY)/Σ) + zY)` |

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Op};
use rayon::prelude::*;

use super::conv::Geom;
use super::linalg::MatMulShape;
use super::pool::all_taps;
use super::qlinear::{int8_data, int_matmul, pack, requantize_one, scalar_param, scales, zps};
use super::quant::{dequantize_one, quantize_one};
use super::{broadcast_shapes, norm_axis, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::QLinearAdd, qlinear_add);
    r.add(Op::QLinearMul, qlinear_mul);
    r.add(Op::QLinearGlobalAveragePool, qlinear_global_average_pool);
    r.add(Op::QLinearAveragePool, qlinear_average_pool);
    r.add(Op::QLinearConcat, qlinear_concat);
    r.add(Op::QGemm, qgemm);
    r.add(Op::QLinearSigmoid, |c| qlinear_lookup(c, mlas_logistic));
    r.add(Op::QLinearLeakyRelu, |c| {
        let alpha = c.float("alpha", 0.01);
        qlinear_lookup_with(c, move |v| if v >= 0.0 { v } else { alpha * v })
    });
    r.add(Op::QLinearSoftmax, qlinear_softmax);
}

/// Range of an 8-bit (or 16-bit) quantized type.
fn range(dtype: DType) -> KResult<(i32, i32)> {
    let (lo, hi) =
        dtype.int_range().ok_or_else(|| crate::KernelError::Invalid(format!("{dtype} is not a quantized type")))?;
    Ok((lo as i32, hi as i32))
}

/// Round half to even and saturate, like `cvtps2dq` followed by saturating packs (NaN → lo).
#[inline]
fn rne_sat(v: f32, lo: i32, hi: i32) -> i32 {
    if v.is_nan() {
        return lo;
    }
    let r = crate::num::round_half_even(v);
    if r <= lo as f32 {
        lo
    } else if r >= hi as f32 {
        hi
    } else {
        r as i32
    }
}

/// The integer values of an 8/16-bit quantized tensor.
fn qdata(v: &Value, what: &str) -> KResult<Vec<i32>> {
    match v {
        Value::U8(_) | Value::I8(_) => int8_data(v, what),
        Value::U16(a) => Ok(a.iter().map(|&x| x as i32).collect()),
        Value::I16(a) => Ok(a.iter().map(|&x| x as i32).collect()),
        _ => bail!("{what} must be a quantized integer tensor, got {}", v.dtype()),
    }
}

/// How an element of a broadcast binary op is computed by onnxruntime: it walks the output in
/// spans along the innermost broadcast dimension, and an operand that is constant along that
/// span is handled as a scalar.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Span {
    Both,
    ScalarA,
    ScalarB,
}

/// The span form of operands of shapes `a` and `b` broadcast to `out`.
pub fn span_kind(a: &[usize], b: &[usize], out: &[usize]) -> Span {
    // One element: every dim is 1 (a product of the dims could overflow on a model's claims).
    let single = |s: &[usize]| s.iter().all(|&d| d == 1);
    if single(a) {
        return Span::ScalarA;
    }
    if single(b) {
        return Span::ScalarB;
    }
    let r = out.len();
    let dim = |s: &[usize], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    match (0..r).rev().find(|&i| out[i] > 1) {
        None => Span::ScalarA,
        Some(i) if dim(a, i) == 1 => Span::ScalarA,
        Some(i) if dim(b, i) == 1 => Span::ScalarB,
        Some(_) => Span::Both,
    }
}

/// Broadcasts `a` and `b` (flat, row-major, with shapes) to `out`, calling `f(a, b)` per element.
fn broadcast_map(
    a: &[i32],
    ash: &[usize],
    b: &[i32],
    bsh: &[usize],
    out: &[usize],
    f: impl Fn(i32, i32) -> i32 + Sync + Send,
) -> Vec<i32> {
    let av = ndarray::ArrayView::from_shape(IxDyn(ash), a).expect("shape");
    let bv = ndarray::ArrayView::from_shape(IxDyn(bsh), b).expect("shape");
    let ab = av.broadcast(IxDyn(out)).expect("broadcast");
    let bb = bv.broadcast(IxDyn(out)).expect("broadcast");
    ndarray::Zip::from(ab).and(bb).par_map_collect(|&x, &y| f(x, y)).into_iter().collect()
}

struct BinaryQ {
    a: Vec<i32>,
    b: Vec<i32>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    out_shape: Vec<usize>,
    sa: f32,
    za: i32,
    sb: f32,
    zb: i32,
    sc: f32,
    zc: i32,
    dtype: DType,
}

fn binary_q(c: &Ctx) -> KResult<BinaryQ> {
    let (a, b) = (c.input(0)?, c.input(3)?);
    ensure!(a.dtype() == b.dtype(), "A and B have different types ({} and {})", a.dtype(), b.dtype());
    let dtype = a.dtype();
    let zp = |i: usize, what: &str| -> KResult<i32> { Ok(zps(c.opt(i), 1, dtype, what)?[0]) };
    Ok(BinaryQ {
        a: qdata(a, "A")?,
        b: qdata(b, "B")?,
        a_shape: a.shape().to_vec(),
        b_shape: b.shape().to_vec(),
        out_shape: broadcast_shapes(a.shape(), b.shape())?,
        sa: scalar_param(c.input(1)?, "A_scale")?,
        za: zp(2, "A_zero_point")?,
        sb: scalar_param(c.input(4)?, "B_scale")?,
        zb: zp(5, "B_zero_point")?,
        sc: scalar_param(c.input(6)?, "C_scale")?,
        zc: zp(7, "C_zero_point")?,
        dtype,
    })
}

/// `b` broadcast to `out` as a contiguous vector (borrowed when no broadcast is needed).
fn broadcast_to<'a>(b: &'a [i32], bsh: &[usize], out: &[usize]) -> std::borrow::Cow<'a, [i32]> {
    if bsh == out {
        return std::borrow::Cow::Borrowed(b);
    }
    let bv = ndarray::ArrayView::from_shape(IxDyn(bsh), b).expect("shape");
    std::borrow::Cow::Owned(bv.broadcast(IxDyn(out)).expect("broadcast").iter().copied().collect())
}

struct AddParams {
    ra: f32,
    rb: f32,
    f: f32,
    lo: i32,
    hi: i32,
    span: Span,
}

crate::num::fma_kernel! {
    /// The 8-bit QLinearAdd inner loop (see [`qlinear_add`]).
    fn qadd_slices(a: &[i32], b: &[i32], out: &mut [i32], p: &AddParams) {
        let (ra, rb, f, lo, hi) = (p.ra, p.rb, p.f, p.lo, p.hi);
        match p.span {
            Span::Both => {
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    *o = rne_sat((a as f32).mul_add(ra, (b as f32).mul_add(rb, f)), lo, hi);
                }
            }
            Span::ScalarB => {
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    let fb = (b as f32).mul_add(rb, f);
                    *o = rne_sat((a as f32).mul_add(ra, fb), lo, hi);
                }
            }
            Span::ScalarA => {
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    let fa = (a as f32).mul_add(ra, f);
                    *o = rne_sat((b as f32).mul_add(rb, fa), lo, hi);
                }
            }
        }
    }
}

/// QLinearAdd as onnxruntime's AVX2 kernel (`MlasQLinearAddKernelAvx2Helper`) computes it for
/// 8-bit types; 16-bit types use its scalar reference (`(sA(a−zA) + sB(b−zB))/sC + zC`).
pub(crate) fn qlinear_add(c: &Ctx) -> KResult<Vec<Value>> {
    let q = binary_q(c)?;
    let (lo, hi) = range(q.dtype)?;
    let span = span_kind(&q.a_shape, &q.b_shape, &q.out_shape);
    let out = if matches!(q.dtype, DType::U8 | DType::I8) {
        // The kernel sees the vector operand as "A" and a scalar one as "B".
        let (ra, rb) = (q.sa / q.sc, q.sb / q.sc);
        let fixed = |r1: f32, z1: i32, r2: f32, z2: i32| q.zc as f32 - r1.mul_add(z1 as f32, r2 * z2 as f32);
        let f = match span {
            Span::ScalarA => fixed(rb, q.zb, ra, q.za),
            _ => fixed(ra, q.za, rb, q.zb),
        };
        let av = broadcast_to(&q.a, &q.a_shape, &q.out_shape);
        let bv = broadcast_to(&q.b, &q.b_shape, &q.out_shape);
        let mut out = vec![0i32; av.len()];
        let p = AddParams { ra, rb, f, lo, hi, span };
        out.par_chunks_mut(1 << 14)
            .zip(av.par_chunks(1 << 14).zip(bv.par_chunks(1 << 14)))
            .for_each(|(o, (a, b))| qadd_slices(a, b, o, &p));
        out
    } else {
        let (sa, sb, sc, za, zb, zc) = (q.sa, q.sb, q.sc, q.za, q.zb, q.zc);
        broadcast_map(&q.a, &q.a_shape, &q.b, &q.b_shape, &q.out_shape, move |a, b| {
            let v = (sa * (a - za) as f32 + sb * (b - zb) as f32) / sc;
            let v = v.clamp((lo - zc) as f32, (hi - zc) as f32);
            crate::num::round_half_even(v + zc as f32) as i32
        })
    };
    Ok(vec![pack(q.dtype, &q.out_shape, out)?])
}

/// QLinearMul as onnxruntime's SSE2 kernel computes it: `rne(f32((a−zA)(b−zB))·r + zC)`.
fn qlinear_mul(c: &Ctx) -> KResult<Vec<Value>> {
    let q = binary_q(c)?;
    ensure!(matches!(q.dtype, DType::U8 | DType::I8), "QLinearMul supports uint8 and int8, got {}", q.dtype);
    let (lo, hi) = range(q.dtype)?;
    let r = q.sa * q.sb / q.sc;
    let (za, zb, zc) = (q.za, q.zb, q.zc);
    let out = broadcast_map(&q.a, &q.a_shape, &q.b, &q.b_shape, &q.out_shape, move |a, b| {
        rne_sat(((a - za) * (b - zb)) as f32 * r + zc as f32, lo, hi)
    });
    Ok(vec![pack(q.dtype, &q.out_shape, out)?])
}

/// onnxruntime's integer average of whole images (`MlasQLinearGlobalAveragePool`): per (image,
/// channel) the exact sum minus `x_zp · image`, requantized by one f32 factor
/// `x_scale / (y_scale · image)`. onnxruntime refuses images of 2²⁴ elements or more and factors
/// outside [2⁻³², 256).
#[allow(clippy::too_many_arguments)]
fn global_average(
    data: &[i32],
    n: usize,
    ch: usize,
    image: usize,
    channels_last: bool,
    (xs, xz): (f32, i32),
    (ys, yz): (f32, i32),
    (lo, hi): (i32, i32),
) -> KResult<Vec<i32>> {
    ensure!(image < 0x100_0000, "image size {image} is too large (onnxruntime takes fewer than 2^24 elements)");
    let scale = xs / (ys * image as f32);
    ensure!(
        (2f32.powi(-32)..256.0).contains(&scale),
        "x_scale / (y_scale · image size) = {scale:e} is outside [2^-32, 256), which onnxruntime refuses"
    );
    let mut out = vec![0i32; n * ch];
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let (b, k) = (i / ch, i % ch);
        let sum: i32 = if channels_last {
            (0..image).map(|p| data[(b * image + p) * ch + k]).sum()
        } else {
            data[(b * ch + k) * image..(b * ch + k + 1) * image].iter().sum()
        };
        *o = requantize_one(sum - xz * image as i32, scale, yz, lo, hi);
    });
    Ok(out)
}

fn qlinear_global_average_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    ensure!(x.rank() >= 3, "input rank must be ≥ 3, got {:?}", x.shape());
    let dtype = x.dtype();
    let (lo, hi) = range(dtype)?;
    let xs = scalar_param(c.input(1)?, "x_scale")?;
    let xz = zps(c.opt(2), 1, dtype, "x_zero_point")?[0];
    let ys = scalar_param(c.input(3)?, "y_scale")?;
    let yz = zps(c.opt(4), 1, dtype, "y_zero_point")?[0];
    let channels_last = c.int("channels_last", 0) != 0;
    let sh = x.shape();
    let (n, ch) = (sh[0], if channels_last { sh[sh.len() - 1] } else { sh[1] });
    let image: usize = if channels_last { sh[1..sh.len() - 1].iter().product() } else { sh[2..].iter().product() };
    let data = qdata(x, "x")?;
    let out = global_average(&data, n, ch, image, channels_last, (xs, xz), (ys, yz), (lo, hi))?;
    let mut shape = sh.to_vec();
    let spatial = if channels_last { 1..sh.len() - 1 } else { 2..sh.len() };
    for d in spatial {
        shape[d] = 1;
    }
    Ok(vec![pack(dtype, &shape, out)?])
}

fn qlinear_average_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let dtype = x.dtype();
    ensure!(matches!(dtype, DType::U8 | DType::I8), "QLinearAveragePool supports uint8 and int8, got {dtype}");
    ensure!(x.rank() >= 3, "input rank must be ≥ 3, got {:?}", x.shape());
    let (lo, hi) = range(dtype)?;
    let xs = scalar_param(c.input(1)?, "x_scale")?;
    let xz = zps(c.opt(2), 1, dtype, "x_zero_point")?[0];
    let ys = scalar_param(c.input(3)?, "y_scale")?;
    let yz = zps(c.opt(4), 1, dtype, "y_zero_point")?[0];
    let channels_last = c.int("channels_last", 0) != 0;
    let sh = x.shape().to_vec();
    let r = sh.len();
    // Work in NCHW; channels_last inputs are transposed in and out.
    let nchw: Vec<usize> = if channels_last {
        let mut v = vec![sh[0], sh[r - 1]];
        v.extend(&sh[1..r - 1]);
        v
    } else {
        sh.clone()
    };
    let data = qdata(x, "x")?;
    let data: Vec<i32> = if channels_last {
        let a = ArrayD::from_shape_vec(IxDyn(&sh), data)?;
        let mut perm = vec![0, r - 1];
        perm.extend(1..r - 1);
        a.permuted_axes(IxDyn(&perm)).iter().copied().collect()
    } else {
        data
    };
    let kernel: Vec<usize> = c
        .ints("kernel_shape")
        .ok_or_else(|| crate::KernelError::Invalid("kernel_shape is required".into()))?
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| crate::KernelError::Invalid(format!("kernel size {k}"))))
        .collect::<KResult<_>>()?;
    let g = Geom::new(c, &nchw[2..], &kernel, c.int("ceil_mode", 0) != 0)?;
    crate::limits::check_shape(&[nchw[0], nchw[1], g.out_len()])?;
    ensure!(g.dilations.iter().all(|&d| d == 1), "dilations are not supported by QLinearAveragePool");
    let planes = nchw[0] * nchw[1];
    let whole_image = g.kernel == nchw[2..] && g.pad_begin.iter().chain(&g.pad_end).all(|&p| p == 0);
    let out = if whole_image {
        // onnxruntime averages a window that is the whole unpadded image on its integer global
        // path, which rounds differently from the float one below.
        global_average(&data, nchw[0], nchw[1], g.in_len(), false, (xs, xz), (ys, yz), (lo, hi))?
    } else {
        let taps = all_taps(&g);
        let include_pad = c.int("count_include_pad", 0) != 0;
        let (kl, ol, il) = (g.kernel_len(), g.out_len(), g.in_len());
        let deq: Vec<f32> = data.iter().map(|&v| xs * (v - xz) as f32).collect();
        let mut out = vec![0i32; planes * ol];
        out.par_chunks_mut(ol.max(1)).enumerate().for_each(|(p, y)| {
            let xp = &deq[p * il..(p + 1) * il];
            for (o, yo) in y.iter_mut().enumerate() {
                let mut sum = 0f32;
                let mut n = 0usize;
                for off in taps[o * kl..(o + 1) * kl].iter().flatten() {
                    sum += xp[*off];
                    n += 1;
                }
                let count = if include_pad { kl } else { n };
                let avg = sum / count as f32;
                *yo = rne_sat(avg / ys + yz as f32, lo, hi);
            }
        });
        out
    };
    let mut out_shape = vec![nchw[0], nchw[1]];
    out_shape.extend(&g.out_sp);
    let y = pack(dtype, &out_shape, out)?;
    if channels_last {
        let mut perm = vec![0];
        perm.extend(2..r);
        perm.push(1);
        return Ok(vec![super::shape::transpose_value(&y, &perm)?]);
    }
    Ok(vec![y])
}

/// onnxruntime's 256-entry table: `table[v] = Q(f(DQ(v)))` over every raw byte `v`.
fn build_table(dtype: DType, xs: f32, xz: i32, ys: f32, yz: i32, f: &dyn Fn(f32) -> f32) -> KResult<Vec<i32>> {
    let (lo, hi) = range(dtype)?;
    let signed = dtype == DType::I8;
    Ok((0..256)
        .map(|i| {
            let x = if signed { i as u8 as i8 as i32 } else { i };
            quantize_one(f(dequantize_one(x, xs, xz)), ys, yz, lo, hi)
        })
        .collect())
}

fn lookup(data: &[i32], table: &[i32]) -> Vec<i32> {
    data.iter().map(|&v| table[(v as u8) as usize]).collect()
}

fn qlinear_lookup_with(c: &Ctx, f: impl Fn(f32) -> f32) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let dtype = x.dtype();
    ensure!(matches!(dtype, DType::U8 | DType::I8), "supports uint8 and int8, got {dtype}");
    let xs = scalar_param(c.input(1)?, "X_scale")?;
    let xz = zps(c.opt(2), 1, dtype, "X_zero_point")?[0];
    let ys = scalar_param(c.input(3)?, "Y_scale")?;
    let yz = zps(c.opt(4), 1, dtype, "Y_zero_point")?[0];
    let table = build_table(dtype, xs, xz, ys, yz, &f)?;
    Ok(vec![pack(dtype, x.shape(), lookup(&int8_data(x, "X")?, &table))?])
}

fn qlinear_lookup(c: &Ctx, f: fn(f32) -> f32) -> KResult<Vec<Value>> {
    qlinear_lookup_with(c, f)
}

/// MLAS's logistic function (Eigen's rational approximation) evaluated as its FMA3 kernel does
/// (`LogisticKernelFma3.S`, which onnxruntime runs on AVX2 and AVX-512 CPUs).
/// The coefficients are MLAS's decimal literals, rounded to f32 exactly as C++ rounds them.
#[allow(clippy::excessive_precision)]
pub fn mlas_logistic(x: f32) -> f32 {
    const A9: f32 = 4.37031012579801e-11;
    const A7: f32 = 1.15627324459942e-07;
    const A5: f32 = 6.08574864600143e-05;
    const A3: f32 = 8.51377133304701e-03;
    const A1: f32 = 2.48287947061529e-01;
    const B10: f32 = 6.10247389755681e-13;
    const B8: f32 = 5.76102136993427e-09;
    const B6: f32 = 6.29106785017040e-06;
    const B4: f32 = 1.70198817374094e-03;
    const B2: f32 = 1.16817656904453e-01;
    const B0: f32 = 9.93151921023180e-01;
    if x.is_nan() {
        return x;
    }
    let v = x.clamp(-18.0, 18.0);
    let v2 = v * v;
    let p = v2.mul_add(A9, A7).mul_add(v2, A5).mul_add(v2, A3).mul_add(v2, A1) * v;
    let q = v2.mul_add(B10, B8).mul_add(v2, B6).mul_add(v2, B4).mul_add(v2, B2).mul_add(v2, B0);
    // (The FMA3 kernel clamps below only: for some inputs in [17.48, 17.99] it returns 1.0000001.)
    (p / q + 0.5).max(0.0)
}

fn qlinear_concat(c: &Ctx) -> KResult<Vec<Value>> {
    ensure!(
        c.n_inputs() >= 5 && (c.n_inputs() - 2) % 3 == 0,
        "inputs must be Y_scale, Y_zp, then (X, scale, zp) tuples"
    );
    let ys = c.input(0)?;
    let yzv = c.input(1)?;
    let dtype = yzv.dtype();
    let ys_v = scalar_param(ys, "Y_scale")?;
    let yz = zps(Some(yzv), 1, dtype, "Y_zero_point")?[0];
    let count = (c.n_inputs() - 2) / 3;
    let first = c.input(2)?;
    let axis = norm_axis(c.int("axis", 0), first.rank())?;
    let mut parts = Vec::with_capacity(count);
    for i in 0..count {
        let x = c.input(2 + 3 * i)?;
        ensure!(x.dtype() == dtype, "input {i} has type {}, output {dtype}", x.dtype());
        let xs = scalar_param(c.input(3 + 3 * i)?, "X_scale")?;
        let xz = zps(c.opt(4 + 3 * i), 1, dtype, "X_zero_point")?[0];
        let data = int8_data(x, "X")?;
        // onnxruntime copies when scale and zero point are the same (bit-for-bit scale).
        let mapped = if xs.to_bits() == ys_v.to_bits() && xz == yz {
            data
        } else {
            lookup(&data, &build_table(dtype, xs, xz, ys_v, yz, &|v| v)?)
        };
        parts.push(pack(dtype, x.shape(), mapped)?);
    }
    let refs: Vec<&Value> = parts.iter().collect();
    Ok(vec![super::shape::concat_values(&refs, axis)?])
}

fn qgemm(c: &Ctx) -> KResult<Vec<Value>> {
    let (a, a_s, a_z) = (c.input(0)?, c.input(1)?, c.opt(2));
    let (b, b_s, b_z) = (c.input(3)?, c.input(4)?, c.opt(5));
    let (bias, y_s, y_z) = (c.opt(6), c.opt(7), c.opt(8));
    ensure!(a.rank() == 2 && b.rank() == 2, "A and B must be 2-D, got {:?} and {:?}", a.shape(), b.shape());
    let (ta, tb) = (c.int("transA", 0) != 0, c.int("transB", 0) != 0);
    let alpha = c.float("alpha", 1.0);
    let at = if ta { super::shape::transpose_value(a, &[1, 0])? } else { a.clone() };
    let bt = if tb { super::shape::transpose_value(b, &[1, 0])? } else { b.clone() };
    let sh = MatMulShape::of(at.shape(), bt.shape())?;
    let (m, n) = (sh.m, sh.n);
    let a_zp = zps(a_z, 1, a.dtype(), "a_zero_point")?;
    let per_col = b_s.len() > 1;
    let b_zp = zps(b_z, if per_col { n } else { 1 }, b.dtype(), "b_zero_point")?;
    let b_scale = scales(b_s, if per_col { n } else { 1 }, "b_scale")?;
    let a_scale = scalar_param(a_s, "a_scale")?;
    let (_, mut acc) = int_matmul(&at, &a_zp, &bt, &b_zp)?;
    if let Some(cv) = bias {
        ensure!(cv.dtype() == DType::I32, "C must be int32, got {}", cv.dtype());
        let cs = broadcast_shapes(cv.shape(), &[m, n])?;
        ensure!(cs == [m, n], "C of shape {:?} does not broadcast to [{m}, {n}]", cv.shape());
        let ca = cv.cast_array_to::<i32>();
        let cb = ca.broadcast(IxDyn(&[m, n])).expect("broadcast");
        acc.iter_mut().zip(cb.iter()).for_each(|(v, &bb)| *v = v.wrapping_add(bb));
    }
    let y_scale = y_s.map(|v| scalar_param(v, "y_scale")).transpose()?;
    let out_scale: Vec<f32> = b_scale
        .iter()
        .map(|&bs| {
            let s = alpha * a_scale * bs;
            match y_scale {
                Some(ys) => s / ys,
                None => s,
            }
        })
        .collect();
    let col_scale = |j: usize| out_scale[if out_scale.len() == 1 { 0 } else { j }];
    match y_z {
        Some(z) => {
            let dtype = z.dtype();
            let (lo, hi) = range(dtype)?;
            let yz = zps(Some(z), 1, dtype, "y_zero_point")?[0];
            let out: Vec<i32> =
                acc.iter().enumerate().map(|(i, &v)| requantize_one(v, col_scale(i % n.max(1)), yz, lo, hi)).collect();
            Ok(vec![pack(dtype, &[m, n], out)?])
        }
        None => {
            let out: Vec<f32> = acc.iter().enumerate().map(|(i, &v)| v as f32 * col_scale(i % n.max(1))).collect();
            Ok(vec![Value::F32(ArrayD::from_shape_vec(IxDyn(&[m, n]), out)?)])
        }
    }
}

fn qlinear_softmax(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let dtype = x.dtype();
    ensure!(matches!(dtype, DType::U8 | DType::I8), "QLinearSoftmax supports uint8 and int8, got {dtype}");
    let signed = dtype == DType::I8;
    let (lo, hi) = range(dtype)?;
    let opset =
        c.int_opt("opset").ok_or_else(|| crate::KernelError::Invalid("attribute 'opset' is required".into()))?;
    let axis_attr = c.int("axis", if opset < 13 { 1 } else { -1 });
    let shape = x.shape().to_vec();
    if x.is_empty() {
        return Ok(vec![x.clone()]);
    }
    let axis = norm_axis(axis_attr, shape.len())?;
    let xs = scalar_param(c.input(1)?, "x_scale")?;
    let ys = scalar_param(c.input(3)?, "y_scale")?;
    let yz = zps(c.opt(4), 1, dtype, "y_zero_point")?[0];
    // Bring the reduced axis last for opset ≥ 13 (onnxruntime transposes too).
    let (work, perm) = if opset >= 13 && axis != shape.len() - 1 {
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        perm.swap(axis, shape.len() - 1);
        (super::shape::transpose_value(x, &perm)?, Some(perm))
    } else {
        (x.clone(), None)
    };
    let wshape = work.shape().to_vec();
    let d: usize = if opset < 13 { wshape[axis..].iter().product() } else { wshape[wshape.len() - 1] };
    let data = int8_data(&work, "X")?;
    // The table of scaled exponentials (f32), indexed by raw byte. onnxruntime computes
    // `log(FLT_MAX / reduce_len)` in f32 (`std::log(float)`), then continues in f64; an f64 log
    // here moves some table entries by an ulp and flips about one output in 2000.
    let bit_shift = (f32::MAX / d as f32).ln() as f64;
    let bit_shift = (bit_shift - 5.0).max(0.0) / xs as f64;
    let mut table = [0f32; 256];
    for i in 0..256i32 {
        let e = ((i as f64 - 255.0 + bit_shift) * xs as f64).exp();
        let idx = if signed { (i - 128) as u8 } else { i as u8 };
        table[idx as usize] = e as f32;
    }
    let y_scale = (1.0f32 / ys).floor();
    let mut out = vec![0i32; data.len()];
    out.par_chunks_mut(d).zip(data.par_chunks(d)).for_each(|(y, row)| {
        let xmax = *row.iter().max().expect("non-empty row");
        let index = |v: i32| -> usize {
            if signed {
                (127 - xmax + v) as u8 as usize
            } else {
                (v + 255 - xmax) as usize
            }
        };
        let mut sum = 0f32;
        for &v in row {
            sum += table[index(v)];
        }
        if sum == 0.0 {
            return;
        }
        for (o, &v) in y.iter_mut().zip(row) {
            let q = crate::num::round_half_even((table[index(v)] * y_scale) / sum) as i32 + yz;
            // onnxruntime 1.32 saturates (older versions wrapped int8 results above 127).
            *o = q.clamp(lo, hi);
        }
    });
    let y = pack(dtype, &wshape, out)?;
    Ok(vec![match perm {
        Some(p) => super::shape::transpose_value(&y, &p)?,
        None => y,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::run_op;
    use qdqc_ir::attr::{make_float, make_int};

    fn u8v(shape: &[usize], v: &[i64]) -> Value {
        Value::from_i64(DType::U8, shape, v).unwrap()
    }

    #[test]
    fn span_kinds_follow_onnxruntime_broadcasting() {
        assert_eq!(span_kind(&[1, 3, 4, 4], &[1, 3, 1, 1], &[1, 3, 4, 4]), Span::ScalarB);
        assert_eq!(span_kind(&[1, 3, 1, 1], &[1, 3, 4, 4], &[1, 3, 4, 4]), Span::ScalarA);
        assert_eq!(span_kind(&[2, 1, 4], &[2, 3, 4], &[2, 3, 4]), Span::Both);
        assert_eq!(span_kind(&[1], &[5], &[5]), Span::ScalarA);
        assert_eq!(span_kind(&[5], &[], &[5]), Span::ScalarB);
        // Shapes a model may claim whose element count overflows (found by fuzzing the pipeline).
        let huge = 1usize << 40;
        assert_eq!(span_kind(&[huge, huge], &[huge, 1], &[huge, huge]), Span::ScalarB);
        assert_eq!(span_kind(&[huge, huge], &[huge, huge], &[huge, huge]), Span::Both);
    }

    #[test]
    fn qlinear_add_and_mul_basic() {
        let a = u8v(&[4], &[0, 10, 200, 255]);
        let b = u8v(&[4], &[128, 130, 100, 255]);
        let ins = |a: &Value, b: &Value| {
            vec![
                Some(a.clone()),
                Some(Value::scalar(0.5f32)),
                Some(Value::scalar(0u8)),
                Some(b.clone()),
                Some(Value::scalar(0.25f32)),
                Some(Value::scalar(128u8)),
                Some(Value::scalar(1.0f32)),
                Some(Value::scalar(10u8)),
            ]
        };
        // a·0.5 + (b−128)·0.25 + 10: [10, 15.5→16, 103, 169.25→169]
        let y = run_op(Op::QLinearAdd, vec![], &ins(&a, &b), 1).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [10, 16, 103, 169]);
        // a·0.5 · (b−128)·0.25 + 10: [10, 12.5→12, 10−700 → 0, 127.5·31.75+10 → 255]
        let y = run_op(Op::QLinearMul, vec![], &ins(&a, &b), 1).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [10, 12, 0, 255]);
    }

    fn pool_inputs(x: Value, xs: f32, ys: f32) -> Vec<Option<Value>> {
        let z = || Some(Value::scalar(0u8));
        vec![Some(x), Some(Value::scalar(xs)), z(), Some(Value::scalar(ys)), z()]
    }

    /// A window that is the whole unpadded image takes onnxruntime's integer global path; the
    /// same window over a larger image the float path. The two round differently for some pairs
    /// (`(a + b)·0.1 / (0.1·2)` exactly versus the f32 sum and quotient): the first such pair tells.
    #[test]
    fn qlinear_average_pool_of_the_whole_image_is_the_global_pool() {
        let (s, lo, hi) = (0.1f32, 0, 255);
        let int_path = |a: i32, b: i32| requantize_one(a + b, s / (s * 2.0), 0, lo, hi);
        let float_path = |a: i32, b: i32| rne_sat((s * a as f32 + s * b as f32) / 2.0 / s, lo, hi);
        let (a, b) = (0..256)
            .flat_map(|a| (0..256).map(move |b| (a, b)))
            .find(|&(a, b)| int_path(a, b) != float_path(a, b))
            .expect("the paths differ somewhere");
        let k = || vec![qdqc_ir::attr::make_ints("kernel_shape", &[1, 2])];
        let whole = u8v(&[1, 1, 1, 2], &[a as i64, b as i64]);
        let y = run_op(Op::QLinearAveragePool, k(), &pool_inputs(whole, s, s), 1);
        assert_eq!((y[0].to_i64_vec().unwrap(), y[0].shape()), (vec![int_path(a, b) as i64], &[1, 1, 1, 1][..]));
        let wider = u8v(&[1, 1, 1, 3], &[a as i64, b as i64, 0]);
        let y = run_op(Op::QLinearAveragePool, k(), &pool_inputs(wider, s, s), 1);
        assert_eq!(y[0].to_i64_vec().unwrap()[0], float_path(a, b) as i64);
    }

    #[test]
    fn qlinear_global_average_pool_refuses_what_onnxruntime_refuses() {
        let x = || u8v(&[1, 1, 2, 2], &[1, 2, 3, 4]);
        let ok =
            crate::kernels::tests::try_run_op(Op::QLinearGlobalAveragePool, vec![], &pool_inputs(x(), 1.0, 1.0), 1, 1);
        assert!(ok.is_ok());
        for (xs, ys) in [(1024.0, 1.0), (1e-12, 1.0)] {
            let e = crate::kernels::tests::try_run_op(
                Op::QLinearGlobalAveragePool,
                vec![],
                &pool_inputs(x(), xs, ys),
                1,
                1,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("outside [2^-32, 256)"), "{e}");
        }
    }

    #[test]
    fn mlas_logistic_is_not_clamped_above() {
        let above =
            (17.48f32.to_bits()..=17.99f32.to_bits()).filter(|&b| mlas_logistic(f32::from_bits(b)) > 1.0).count();
        assert!(above > 0, "onnxruntime's FMA3 kernel returns 1.0000001 for some inputs in [17.48, 17.99]");
        assert_eq!(mlas_logistic(-100.0), 0.0);
    }

    #[test]
    fn qlinear_global_average_pool_nchw_and_nhwc() {
        let x = u8v(&[1, 2, 2, 2], &[1, 2, 3, 4, 10, 20, 30, 40]);
        let ins = [
            Some(x),
            Some(Value::scalar(1.0f32)),
            Some(Value::scalar(0u8)),
            Some(Value::scalar(1.0f32)),
            Some(Value::scalar(0u8)),
        ];
        let y = run_op(Op::QLinearGlobalAveragePool, vec![], &ins, 1).remove(0);
        assert_eq!(y.shape(), &[1, 2, 1, 1]);
        assert_eq!(y.to_i64_vec().unwrap(), [2, 25]); // 2.5 → 2, 25
        let mut ins2 = ins.clone();
        ins2[0] = Some(u8v(&[1, 2, 2, 2], &[1, 10, 2, 20, 3, 30, 4, 40]));
        let y = run_op(Op::QLinearGlobalAveragePool, vec![make_int("channels_last", 1)], &ins2, 1).remove(0);
        assert_eq!(y.shape(), &[1, 1, 1, 2]);
        assert_eq!(y.to_i64_vec().unwrap(), [2, 25]);
    }

    #[test]
    fn qlinear_leaky_relu_table() {
        let x = Value::from_i64(DType::I8, &[4], &[-128, -10, 0, 127]).unwrap();
        let ins = [
            Some(x),
            Some(Value::scalar(0.1f32)),
            Some(Value::scalar(0i8)),
            Some(Value::scalar(0.1f32)),
            Some(Value::scalar(0i8)),
        ];
        let y = run_op(Op::QLinearLeakyRelu, vec![make_float("alpha", 0.5)], &ins, 1).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [-64, -5, 0, 127]);
    }

    #[test]
    fn qlinear_softmax_table_uses_an_f32_log_like_onnxruntime() {
        // A row of the transformer fixture lowered by onnxruntime (sample 3 of
        // scripts/interp_parity.py); onnxruntime 1.32 gives 67 for element 8, an f64 log 66.
        let row = [146, 105, 136, 103, 117, 127, 84, 133, 148, 117, 93, 102, 95, 135, 123, 128];
        let ins = [
            Some(u8v(&[1, 16], &row)),
            Some(Value::scalar(0.07687843f32)),
            Some(Value::scalar(110u8)),
            Some(Value::scalar(0.003921569f32)),
            Some(Value::scalar(0u8)),
        ];
        let attrs = vec![make_int("opset", 13), make_int("axis", -1)];
        let y = run_op(Op::QLinearSoftmax, attrs, &ins, 1).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [57, 2, 26, 2, 6, 13, 0, 21, 67, 6, 1, 2, 1, 24, 10, 14]);
    }

    #[test]
    fn logistic_matches_the_reference_shape() {
        for x in [-20.0f32, -3.0, -0.5, 0.0, 0.5, 3.0, 20.0] {
            let exact = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((mlas_logistic(x) as f64 - exact).abs() < 1e-6, "{x}");
        }
    }
}
