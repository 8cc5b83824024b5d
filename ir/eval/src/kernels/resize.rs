//! Resize (opsets 10–19) and Upsample: nearest on any element type with every
//! coordinate_transformation_mode and nearest_mode; linear (N-d, float tensors); cubic and
//! `antialias=1` (float tensors) as the ONNX reference implementation computes them.
//!
//! Coordinates are computed in f32 exactly as onnxruntime's `UpsampleBase` does (including the
//! f64 steps of `half_pixel_symmetric` and `tf_crop_and_resize`), and an axis with scale 1 maps
//! straight through as in onnxruntime, so the chosen source pixels match (checked against
//! onnxruntime 1.32 for every mode pair; the one known difference: `half_pixel_symmetric`
//! coordinates that are exact halves in real arithmetic may round the other way). Opset 10 and Upsample use `asymmetric` coordinates and onnxruntime's legacy rounding
//! (truncate when upsampling, ceil when downsampling).
//!
//! Cubic, and linear with `antialias=1`, follow the ONNX reference (`onnx/reference/ops/op_resize.py`):
//! separable, one axis after the other in f64, each output position a weighted sum of a window
//! of input positions (4 for cubic; wider when antialiasing a downsampled axis), indices clamped
//! to the edge, `exclude_outside` zeroing and renormalising the weights of outside positions, and
//! `tf_crop_and_resize` extrapolation applied per axis.

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::Op;

use super::{int_list, norm_axis, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::Resize, resize);
    r.add_onnx("Upsample", upsample);
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Before opset 11: truncate when upsampling, ceil when downsampling.
    Simple,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

struct Plan {
    out_shape: Vec<usize>,
    scales: Vec<f32>,
    /// The scales came from the `scales` input (not derived from `sizes`).
    scales_given: bool,
    roi: Vec<f32>,
    coord: Coord,
    nearest: Nearest,
    mode: Mode,
    extrapolation: f32,
    /// `antialias=1` (opset 18+).
    antialias: bool,
    /// Cubic's `cubic_coeff_a`.
    cubic_a: f32,
    exclude_outside: bool,
}

/// Maps an output coordinate to the input coordinate (onnxruntime's float arithmetic).
#[allow(clippy::too_many_arguments)]
fn original(
    coord: Coord,
    x: f32,
    scale: f32,
    scale_given: bool,
    len_out: f32,
    len_in: f32,
    roi_start: f32,
    roi_end: f32,
) -> f32 {
    match coord {
        Coord::HalfPixel => (x + 0.5) / scale - 0.5,
        Coord::HalfPixelSymmetric => {
            let output_width = scale * len_in;
            let adjustment = len_out / output_width;
            let center = len_in / 2.0;
            let offset = center * (1.0 - adjustment);
            (offset as f64 + (x as f64 + 0.5) / scale as f64 - 0.5) as f32
        }
        Coord::PytorchHalfPixel => {
            if len_out > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        Coord::AlignCorners => {
            // The ONNX spec's length_resized is `scale · length_original` when scales are given
            // (onnx's reference and backend tests use it); onnxruntime uses the integer output
            // size instead, which differs when `scale · length` is not an integer.
            let len_resized = if scale_given { scale * len_in } else { len_out };
            if len_resized == 1.0 {
                0.0
            } else {
                x * (len_in - 1.0) / (len_resized - 1.0)
            }
        }
        Coord::Asymmetric => x / scale,
        Coord::TfHalfPixelForNn => (x + 0.5) / scale,
        Coord::TfCropAndResize => {
            if len_out > 1.0 {
                roi_start * (len_in - 1.0) + (x * (roi_end - roi_start) * (len_in - 1.0)) / (len_out - 1.0)
            } else {
                (0.5 * (roi_start as f64 + roi_end as f64) * (len_in as f64 - 1.0)) as f32
            }
        }
    }
}

fn nearest_index(mode: Nearest, x: f32, downsample: bool) -> i64 {
    match mode {
        Nearest::Simple => {
            if downsample {
                x.ceil() as i64
            } else {
                x as i64
            }
        }
        Nearest::RoundPreferCeil => x.round() as i64,
        Nearest::Floor => x.floor() as i64,
        Nearest::Ceil => x.ceil() as i64,
        Nearest::RoundPreferFloor => {
            if x == (x as i64) as f32 + 0.5 {
                x.floor() as i64
            } else {
                x.round() as i64
            }
        }
    }
}

fn parse_coord(s: &str) -> KResult<Coord> {
    Ok(match s {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_half_pixel_for_nn" => Coord::TfHalfPixelForNn,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        m => bail!("unknown coordinate_transformation_mode '{m}'"),
    })
}

impl Plan {
    /// The plan of opset-10 Resize and of Upsample: scales given, asymmetric coordinates, simple
    /// nearest rounding, output dims `floor(scale * dim)`.
    fn from_scales(scales: Vec<f32>, in_shape: &[usize], mode: Mode) -> KResult<Plan> {
        ensure!(scales.iter().all(|&s| s > 0.0 && s.is_finite()), "scales {scales:?} must be positive");
        let out_shape: Vec<usize> = scales.iter().zip(in_shape).map(|(&s, &d)| (s * d as f32) as usize).collect();
        crate::limits::check_shape(&out_shape)?;
        Ok(Plan {
            out_shape,
            scales,
            scales_given: true,
            roi: vec![],
            coord: Coord::Asymmetric,
            nearest: Nearest::Simple,
            mode,
            extrapolation: 0.0,
            antialias: false,
            cubic_a: -0.75,
            exclude_outside: false,
        })
    }
}

fn parse_mode(s: &str) -> KResult<Mode> {
    Ok(match s {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" | "trilinear" => Mode::Linear,
        "cubic" | "bicubic" | "tricubic" => Mode::Cubic,
        m => bail!("unknown mode '{m}'"),
    })
}

fn floats(v: &Value) -> KResult<Vec<f32>> {
    ensure!(v.dtype().is_float(), "expected a float tensor, got {}", v.dtype());
    Ok(v.to_f32_vec()?)
}

fn plan(c: &Ctx, x: &Value) -> KResult<Plan> {
    let in_shape = x.shape();
    let rank = in_shape.len();
    let mode = parse_mode(&c.string("mode", "nearest"))?;
    if c.opset < 11 {
        let scales = floats(c.input(1)?)?;
        ensure!(scales.len() == rank, "scales {scales:?} do not fit rank {rank}");
        return Plan::from_scales(scales, in_shape, mode);
    }
    let coord = parse_coord(&c.string("coordinate_transformation_mode", "half_pixel"))?;
    let nearest = match c.string("nearest_mode", "round_prefer_floor").as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        m => bail!("unknown nearest_mode '{m}'"),
    };
    let antialias = c.int("antialias", 0) != 0;
    ensure!(!(antialias && mode == Mode::Nearest), "antialias=1 applies to linear and cubic modes only");
    let axes: Vec<usize> = match c.ints("axes") {
        Some(a) if !a.is_empty() => a.iter().map(|&a| norm_axis(a, rank)).collect::<KResult<_>>()?,
        _ => (0..rank).collect(),
    };
    let scales_in = c.opt(2).filter(|v| !v.is_empty());
    let sizes_in = c.opt(3).filter(|v| !v.is_empty());
    let mut scales = vec![1.0f32; rank];
    let mut out_shape = in_shape.to_vec();
    let scales_given = scales_in.is_some();
    match (scales_in, sizes_in) {
        (Some(s), None) => {
            let s = floats(s)?;
            ensure!(s.len() == axes.len(), "scales {s:?} do not fit axes {axes:?}");
            for (&a, &v) in axes.iter().zip(&s) {
                if v <= 0.0 || v.is_nan() {
                    bail!("scale {v} must be positive");
                }
                scales[a] = v;
                out_shape[a] = (v * in_shape[a] as f32) as usize;
            }
        }
        (None, Some(sz)) => {
            let sz = int_list(sz)?;
            ensure!(sz.len() == axes.len(), "sizes {sz:?} do not fit axes {axes:?}");
            for (&a, &v) in axes.iter().zip(&sz) {
                ensure!(v >= 0, "negative size {v}");
                out_shape[a] = v as usize;
                scales[a] = if in_shape[a] == 0 { 1.0 } else { v as f32 / in_shape[a] as f32 };
            }
            let policy = c.string("keep_aspect_ratio_policy", "stretch");
            if policy != "stretch" {
                let pick = axes.iter().map(|&a| scales[a]);
                let s = match policy.as_str() {
                    "not_larger" => pick.fold(f32::MAX, f32::min),
                    "not_smaller" => pick.fold(f32::MIN_POSITIVE, f32::max),
                    p => bail!("unknown keep_aspect_ratio_policy '{p}'"),
                };
                for &a in &axes {
                    scales[a] = s;
                    out_shape[a] = (s * in_shape[a] as f32).round() as usize;
                }
            }
        }
        (Some(_), Some(_)) => bail!("only one of scales and sizes may be given"),
        (None, None) => bail!("one of scales and sizes is required"),
    }
    let mut roi = Vec::new();
    if coord == Coord::TfCropAndResize {
        let r = floats(c.input(1)?)?;
        roi = vec![0.0; 2 * rank];
        roi[rank..].iter_mut().for_each(|v| *v = 1.0);
        ensure!(r.len() == 2 * axes.len(), "roi {r:?} does not fit axes {axes:?}");
        for (i, &a) in axes.iter().enumerate() {
            roi[a] = r[i];
            roi[rank + a] = r[axes.len() + i];
        }
    }
    crate::limits::check_shape(&out_shape)?;
    Ok(Plan {
        out_shape,
        scales,
        scales_given,
        roi,
        coord,
        nearest,
        mode,
        extrapolation: c.float("extrapolation_value", 0.0),
        antialias,
        cubic_a: c.float("cubic_coeff_a", -0.75),
        exclude_outside: c.int("exclude_outside", 0) != 0,
    })
}

/// Per axis and output index: the input coordinate.
fn coords(p: &Plan, in_shape: &[usize]) -> Vec<Vec<f32>> {
    let rank = in_shape.len();
    (0..rank)
        .map(|a| {
            let (rs, re) = if p.roi.is_empty() { (0.0, 1.0) } else { (p.roi[a], p.roi[rank + a]) };
            (0..p.out_shape[a])
                .map(|o| {
                    original(
                        p.coord,
                        o as f32,
                        p.scales[a],
                        p.scales_given,
                        p.out_shape[a] as f32,
                        in_shape[a] as f32,
                        rs,
                        re,
                    )
                })
                .collect()
        })
        .collect()
}

fn run(x: &Value, p: Plan) -> KResult<Vec<Value>> {
    let in_shape = x.shape().to_vec();
    let rank = in_shape.len();
    let cs = coords(&p, &in_shape);
    let extrapolate = p.coord == Coord::TfCropAndResize;
    let outside = |a: usize, v: f32| extrapolate && (v < 0.0 || v > (in_shape[a] as f32 - 1.0));
    if p.mode == Mode::Cubic || (p.mode == Mode::Linear && p.antialias) {
        return windowed(x, &p, &cs);
    }
    match p.mode {
        Mode::Nearest => {
            // Per axis: the source index, or None to extrapolate.
            let idx: Vec<Vec<Option<usize>>> = (0..rank)
                .map(|a| {
                    // onnxruntime maps an unscaled axis straight through (whatever the modes).
                    if p.scales[a] == 1.0 && p.out_shape[a] == in_shape[a] && !extrapolate {
                        return (0..in_shape[a]).map(Some).collect();
                    }
                    cs[a]
                        .iter()
                        .map(|&v| {
                            if outside(a, v) {
                                return None;
                            }
                            let i = nearest_index(p.nearest, v, p.scales[a] < 1.0);
                            Some(i.clamp(0, in_shape[a] as i64 - 1).max(0) as usize)
                        })
                        .collect()
                })
                .collect();
            let fill = Value::F64(ArrayD::from_elem(IxDyn(&[]), p.extrapolation as f64)).cast(x.dtype())?;
            fn go<T: Clone>(a: &ArrayD<T>, fill: &ArrayD<T>, idx: &[Vec<Option<usize>>], out: &[usize]) -> ArrayD<T> {
                let mut src = vec![0usize; out.len()];
                let fill = fill.iter().next().expect("scalar").clone();
                ArrayD::from_shape_fn(IxDyn(out), |o| {
                    for (k, s) in src.iter_mut().enumerate() {
                        match idx[k][o[k]] {
                            Some(i) => *s = i,
                            None => return fill.clone(),
                        }
                    }
                    a[IxDyn(&src)].clone()
                })
            }
            Ok(vec![crate::value::map_list!(&[x, &fill], arrs => go(arrs[0], arrs[1], &idx, &p.out_shape))])
        }
        Mode::Linear => {
            ensure!(x.dtype().is_float(), "linear Resize of {} tensors is not supported", x.dtype());
            let xf = x.cast_array_to::<f32>();
            // Per axis and output index: (i1, i2, w1, w2) as onnxruntime's bilinear setup.
            let taps: Vec<Vec<Option<LinearTap>>> = (0..rank)
                .map(|a| {
                    let n = in_shape[a];
                    cs[a]
                        .iter()
                        .map(|&v| {
                            if outside(a, v) {
                                return None;
                            }
                            let v = v.clamp(0.0, n as f32 - 1.0);
                            let i1 = (v as usize).min(n - 1);
                            let i2 = (i1 + 1).min(n - 1);
                            let (mut d1, mut d2) = ((v - i1 as f32).abs(), (v - i2 as f32).abs());
                            if i1 == i2 {
                                d1 = 0.5;
                                d2 = 0.5;
                            }
                            // Weight of i1 is d2, of i2 is d1.
                            Some((i1, i2, d2, d1))
                        })
                        .collect()
                })
                .collect();
            let ext = p.extrapolation;
            let mut src = vec![0usize; rank];
            let y = ArrayD::from_shape_fn(IxDyn(&p.out_shape), |o| {
                let mut per: Vec<(usize, usize, f32, f32)> = Vec::with_capacity(rank);
                for a in 0..rank {
                    match taps[a][o[a]] {
                        Some(t) => per.push(t),
                        None => return ext,
                    }
                }
                let mut sum = 0f32;
                for corner in 0..(1usize << rank) {
                    let mut w = 1f32;
                    for (a, &(i1, i2, w1, w2)) in per.iter().enumerate() {
                        let hi = corner >> (rank - 1 - a) & 1 == 1;
                        src[a] = if hi { i2 } else { i1 };
                        w *= if hi { w2 } else { w1 };
                    }
                    if w != 0.0 {
                        sum += w * xf[IxDyn(&src)];
                    }
                }
                sum
            });
            Ok(vec![Value::F32(y).cast(x.dtype())?])
        }
        Mode::Cubic => unreachable!("handled by windowed()"),
    }
}

/// One output position along an axis: `(input index, weight)` pairs, or `None` to extrapolate.
type Window = Option<Vec<(usize, f64)>>;

/// Cubic convolution weights of the 4 positions around a point at `ratio` ∈ (0, 1] past the
/// second one (Keys' kernel with parameter `a`).
fn cubic_coeffs(ratio: f64, a: f64) -> Vec<f64> {
    let (r, s) = (ratio, 1.0 - ratio);
    vec![
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
        ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
    ]
}

/// Antialiasing weights: the kernel (`support` 1 for linear, 2 for cubic) stretched by
/// `1 / scale` when downsampling, normalised to sum 1.
fn antialias_coeffs(ratio: f64, scale: f64, cubic: bool, a: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let support = if cubic { 2.0 } else { 1.0 };
    // Positions start..2−start around the point: 2 for scale 1, more as the kernel widens.
    let start = (-support / scale).floor() as i64 + 1;
    let end = 2 - start;
    let kernel = |x: f64| -> f64 {
        let x = x.abs();
        if !cubic {
            return (1.0 - x).clamp(0.0, 1.0);
        }
        if x <= 1.0 {
            (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0
        } else if x < 2.0 {
            a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    };
    let w: Vec<f64> = (start..end).map(|i| kernel(scale * (i as f64 - ratio))).collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| v / sum).collect()
}

/// The window of each output position along one axis (ONNX reference semantics).
fn windows(p: &Plan, axis: usize, coords: &[f32], n_in: usize) -> Vec<Window> {
    let scale = p.scales[axis] as f64;
    let extrapolate = p.coord == Coord::TfCropAndResize;
    coords
        .iter()
        .map(|&x| {
            let x = x as f64;
            if extrapolate && (x < 0.0 || x > n_in as f64 - 1.0) {
                return None;
            }
            // The ratio is in (0, 1]: an integral coordinate takes the pixel on its left.
            let ratio = if x == x.floor() { 1.0 } else { x - x.floor() };
            let mut w = match (p.mode, p.antialias) {
                (Mode::Cubic, false) => cubic_coeffs(ratio, p.cubic_a as f64),
                (Mode::Cubic, true) => antialias_coeffs(ratio, scale, true, p.cubic_a as f64),
                _ => antialias_coeffs(ratio, scale, false, 0.0),
            };
            // The n nearest positions of the edge-padded axis, ties to the smaller index.
            let n = w.len() as i64;
            let pad = (n + 1) / 2;
            let xp = x + pad as f64;
            let fl = xp.floor();
            let offset = if n % 2 == 0 {
                if xp == fl {
                    -(n / 2)
                } else {
                    -(n / 2) + 1
                }
            } else if xp - fl <= 0.5 {
                -((n - 1) / 2)
            } else {
                -((n - 1) / 2) + 1
            };
            let first = fl as i64 + offset - pad;
            if p.exclude_outside {
                for (k, v) in w.iter_mut().enumerate() {
                    let i = first + k as i64;
                    if i < 0 || i >= n_in as i64 {
                        *v = 0.0;
                    }
                }
                let sum: f64 = w.iter().sum();
                if sum != 0.0 {
                    w.iter_mut().for_each(|v| *v /= sum);
                }
            }
            Some(
                w.into_iter()
                    .enumerate()
                    .map(|(k, v)| ((first + k as i64).clamp(0, n_in as i64 - 1) as usize, v))
                    .collect(),
            )
        })
        .collect()
}

/// Cubic, or antialiased linear, Resize: one axis after the other, in f64.
fn windowed(x: &Value, p: &Plan, cs: &[Vec<f32>]) -> KResult<Vec<Value>> {
    ensure!(x.dtype().is_float(), "{:?} Resize of {} tensors is not supported", p.mode, x.dtype());
    let in_shape = x.shape().to_vec();
    let mut data = x.cast_array_to::<f64>().as_standard_layout().into_owned();
    let fill = p.extrapolation as f64;
    for a in 0..in_shape.len() {
        let n_in = data.shape()[a];
        let n_out = p.out_shape[a];
        let identity = p.scales[a] == 1.0 && n_out == n_in && p.coord != Coord::TfCropAndResize;
        if identity || n_in == 0 {
            if n_out != n_in {
                let mut shape = data.shape().to_vec();
                shape[a] = n_out;
                data = ArrayD::zeros(IxDyn(&shape));
            }
            continue;
        }
        let win = windows(p, a, &cs[a], n_in);
        let outer: usize = data.shape()[..a].iter().product();
        let inner: usize = data.shape()[a + 1..].iter().product();
        let src = data.as_slice().expect("standard layout");
        let mut out = vec![0f64; outer * n_out * inner];
        for o in 0..outer {
            for (j, w) in win.iter().enumerate() {
                let dst = &mut out[(o * n_out + j) * inner..(o * n_out + j + 1) * inner];
                match w {
                    None => dst.iter_mut().for_each(|v| *v = fill),
                    Some(taps) => {
                        for &(i, wt) in taps {
                            let row = &src[(o * n_in + i) * inner..(o * n_in + i + 1) * inner];
                            dst.iter_mut().zip(row).for_each(|(d, &s)| *d += wt * s);
                        }
                    }
                }
            }
        }
        let mut shape = data.shape().to_vec();
        shape[a] = n_out;
        data = ArrayD::from_shape_vec(IxDyn(&shape), out)?;
    }
    Ok(vec![Value::F64(data).cast(x.dtype())?])
}

/// Linear interpolation along one axis: (first index, second index, first weight, second weight).
type LinearTap = (usize, usize, f32, f32);

fn resize(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let p = plan(c, x)?;
    run(x, p)
}

/// Upsample (opsets 7–9): scales from the attribute (7) or input 1 (9); asymmetric coordinates.
fn upsample(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let scales = match c.opt(1) {
        Some(s) => floats(s)?,
        None => c.floats("scales").ok_or_else(|| crate::KernelError::Invalid("scales are required".into()))?.to_vec(),
    };
    ensure!(scales.len() == x.rank(), "scales {scales:?} do not fit rank {}", x.rank());
    let mode = parse_mode(&c.string("mode", "nearest"))?;
    let p = Plan::from_scales(scales, x.shape(), mode)?;
    run(x, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, i64v, run_op};
    use qdqc_ir::attr::{make_float, make_int, make_string};
    use qdqc_ir::DType;

    fn iota(shape: &[usize]) -> Value {
        let n: usize = shape.iter().product();
        f32v(shape, &(0..n).map(|i| (i + 1) as f32).collect::<Vec<_>>())
    }

    fn assert_close(got: &Value, want: &[f64]) {
        let got = got.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn cubic_and_antialias_onnx_examples() {
        // Outputs of onnx's reference (backend node tests of the same names), 4×4 iota input.
        // resize_upsample_scales_cubic: ×2, A = −0.75, half_pixel; the first two output rows.
        let scales = f32v(&[4], &[1., 1., 2., 2.]);
        let y = run_op(
            Op::Resize,
            vec![make_string("mode", "cubic")],
            &[Some(iota(&[1, 1, 4, 4])), None, Some(scales)],
            19,
        )
        .remove(0);
        assert_eq!(y.shape(), &[1, 1, 8, 8]);
        let first_rows = Value::f32(&[16], y.to_f32_vec().unwrap()[..16].to_vec()).unwrap(); // rows 0 and 1
        assert_close(
            &first_rows,
            &[
                0.47265625, 0.76953125, 1.24609375, 1.875, 2.28125, 2.91015625, 3.38671875, 3.68359375, 1.66015625,
                1.95703125, 2.43359375, 3.0625, 3.46875, 4.09765625, 4.57421875, 4.87109375,
            ],
        );
        // resize_downsample_scales_cubic_A_n0p5_exclude_outside: ×0.8, A = −0.5.
        let scales = f32v(&[4], &[1., 1., 0.8, 0.8]);
        let attrs =
            vec![make_string("mode", "cubic"), make_float("cubic_coeff_a", -0.5), make_int("exclude_outside", 1)];
        let y = run_op(Op::Resize, attrs, &[Some(iota(&[1, 1, 4, 4])), None, Some(scales)], 19).remove(0);
        assert_close(
            &y,
            &[1.3681267, 2.6695013, 4.0133367, 6.573625, 7.875, 9.218835, 11.948966, 13.250341, 14.594176],
        );
        // resize_downsample_scales_linear_antialias: ×0.6, the triangle widened to 1/0.6.
        let scales = f32v(&[4], &[1., 1., 0.6, 0.6]);
        let attrs = vec![make_string("mode", "linear"), make_int("antialias", 1)];
        let y = run_op(Op::Resize, attrs, &[Some(iota(&[1, 1, 4, 4])), None, Some(scales)], 19).remove(0);
        assert_close(&y, &[2.875, 4.5, 9.375, 11.0]);
    }

    #[test]
    fn antialias_is_refused_for_nearest() {
        let scales = f32v(&[4], &[1., 1., 0.5, 0.5]);
        let attrs = vec![make_int("antialias", 1)];
        let err = crate::kernels::tests::try_run_op(
            Op::Resize,
            attrs,
            &[Some(iota(&[1, 1, 4, 4])), None, Some(scales)],
            19,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("antialias"), "{err}");
    }

    #[test]
    fn nearest_upsample_and_downsample_onnx_examples() {
        // onnx "resize_upsample_scales_nearest": [[1,2],[3,4]] ×(2,3).
        let x = iota(&[1, 1, 2, 2]);
        let scales = f32v(&[4], &[1., 1., 2., 3.]);
        let y = run_op(Op::Resize, vec![], &[Some(x), Some(f32v(&[0], &[])), Some(scales)], 13).remove(0);
        assert_eq!(y.shape(), &[1, 1, 4, 6]);
        assert_eq!(
            y.to_f32_vec().unwrap(),
            [1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2., 3., 3., 3., 4., 4., 4., 3., 3., 3., 4., 4., 4.]
        );
        // onnx "resize_downsample_scales_nearest": 2×4 → ×0.6 → 1×2: [[1, 3]].
        let x = iota(&[1, 1, 2, 4]);
        let scales = f32v(&[4], &[1., 1., 0.6, 0.6]);
        let y = run_op(Op::Resize, vec![], &[Some(x), None, Some(scales)], 13).remove(0);
        assert_eq!(y.to_f32_vec().unwrap(), [1., 3.]);
    }

    #[test]
    fn nearest_modes_and_sizes() {
        // onnx "resize_upsample_sizes_nearest_ceil_half_pixel": 4×4 → 8×8, first row.
        let x = iota(&[1, 1, 4, 4]);
        let attrs = vec![make_string("nearest_mode", "ceil")];
        let y =
            run_op(Op::Resize, attrs, &[Some(x.clone()), None, None, Some(i64v(&[4], &[1, 1, 8, 8]))], 13).remove(0);
        assert_eq!(&y.to_f32_vec().unwrap()[..8], &[1., 2., 2., 3., 3., 4., 4., 4.]);
        // "..._floor_align_corners": first row [1, 1, 1, 2, 2, 3, 3, 4].
        let attrs =
            vec![make_string("nearest_mode", "floor"), make_string("coordinate_transformation_mode", "align_corners")];
        let y =
            run_op(Op::Resize, attrs, &[Some(x.clone()), None, None, Some(i64v(&[4], &[1, 1, 8, 8]))], 13).remove(0);
        assert_eq!(&y.to_f32_vec().unwrap()[..8], &[1., 1., 1., 2., 2., 3., 3., 4.]);
        // "..._round_prefer_ceil_asymmetric": first row [1, 2, 2, 3, 3, 4, 4, 4].
        let attrs = vec![
            make_string("nearest_mode", "round_prefer_ceil"),
            make_string("coordinate_transformation_mode", "asymmetric"),
        ];
        let y = run_op(Op::Resize, attrs, &[Some(x), None, None, Some(i64v(&[4], &[1, 1, 8, 8]))], 13).remove(0);
        assert_eq!(&y.to_f32_vec().unwrap()[..8], &[1., 2., 2., 3., 3., 4., 4., 4.]);
    }

    #[test]
    fn nearest_on_uint8_and_opset10() {
        let x = Value::from_i64(DType::U8, &[1, 1, 1, 3], &[10, 20, 30]).unwrap();
        let scales = f32v(&[4], &[1., 1., 1., 2.]);
        let y = run_op(Op::Resize, vec![], &[Some(x), Some(scales)], 10).remove(0);
        assert_eq!(y.dtype(), DType::U8);
        assert_eq!(y.to_i64_vec().unwrap(), [10, 10, 20, 20, 30, 30]);
    }

    #[test]
    fn linear_matches_onnx_example() {
        // onnx "resize_upsample_scales_linear": [[1,2],[3,4]] ×2 half_pixel.
        let x = iota(&[1, 1, 2, 2]);
        let attrs = vec![make_string("mode", "linear")];
        let y = run_op(Op::Resize, attrs, &[Some(x), None, Some(f32v(&[4], &[1., 1., 2., 2.]))], 13).remove(0);
        let want = [1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.];
        assert_eq!(y.to_f32_vec().unwrap(), want);
    }

    #[test]
    fn crop_and_resize_extrapolates() {
        // onnx "resize_tf_crop_and_resize_extrapolation_value" with nearest: out-of-roi → 10.
        let x = iota(&[1, 1, 4, 4]);
        let roi = f32v(&[8], &[0., 0., 0.4, 0.6, 1., 1., 1.2, 1.7]);
        let attrs = vec![
            make_string("coordinate_transformation_mode", "tf_crop_and_resize"),
            make_float("extrapolation_value", 10.0),
        ];
        let y = run_op(Op::Resize, attrs, &[Some(x), Some(roi), None, Some(i64v(&[4], &[1, 1, 3, 3]))], 13).remove(0);
        let v = y.to_f32_vec().unwrap();
        assert_eq!(v.len(), 9);
        assert_eq!(v[2], 10.0);
        assert_eq!(v[8], 10.0);
    }
}
