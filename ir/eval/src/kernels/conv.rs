//! Float Conv and ConvTranspose (any number of spatial dims, groups, dilations, pads, auto_pad),
//! and the convolution geometry and im2row shared with the pooling and integer convolutions.
//!
//! Conv is im2row + GEMM: for each image and group the receptive field of every output pixel is
//! gathered into a row (`[pixels, C/g · kernel]`), and `W_g · rowsᵀ` is one [`sgemm`]. A 1×1,
//! stride-1, unpadded convolution skips the gather.

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::Op;
use rayon::prelude::*;

use super::gemm::sgemm;
use super::{f32_input, f32_output, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::Conv, conv);
    r.add(Op::ConvTranspose, conv_transpose);
}

/// Spatial geometry of a convolution or pooling window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Geom {
    pub in_sp: Vec<usize>,
    pub out_sp: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
}

impl Geom {
    /// Reads `auto_pad`, `pads`, `strides`, `dilations` for a window of `kernel` over `in_sp`.
    /// `ceil_mode` rounds the output size up (pooling); a window that would start in the end
    /// padding is dropped, as ONNX specifies.
    pub(crate) fn new(c: &Ctx, in_sp: &[usize], kernel: &[usize], ceil_mode: bool) -> KResult<Geom> {
        let r = in_sp.len();
        ensure!(kernel.len() == r, "kernel {kernel:?} does not fit {r} spatial dims");
        ensure!((1..=8).contains(&r), "{r} spatial dims are not supported (1 to 8)");
        let list = |name: &str, default: usize| -> KResult<Vec<usize>> {
            match c.ints(name) {
                Some(v) if !v.is_empty() => {
                    ensure!(v.len() == r, "{name} {v:?} does not fit {r} spatial dims");
                    ensure!(v.iter().all(|&x| x > 0), "{name} {v:?} must be positive");
                    Ok(v.iter().map(|&x| x as usize).collect())
                }
                _ => Ok(vec![default; r]),
            }
        };
        let strides = list("strides", 1)?;
        let dilations = list("dilations", 1)?;
        let auto_pad = c.string("auto_pad", "NOTSET");
        let mut pad_begin = vec![0usize; r];
        let mut pad_end = vec![0usize; r];
        let mut out_sp = vec![0usize; r];
        let overflow = || crate::KernelError::Invalid(format!("window geometry overflows on input {in_sp:?}"));
        for i in 0..r {
            let ext =
                dilations[i].checked_mul(kernel[i].max(1) - 1).and_then(|e| e.checked_add(1)).ok_or_else(overflow)?;
            match auto_pad.as_str() {
                "NOTSET" => {
                    if let Some(p) = c.ints("pads").filter(|p| !p.is_empty()) {
                        ensure!(p.len() == 2 * r, "pads {p:?} do not fit {r} spatial dims");
                        ensure!(p.iter().all(|&x| x >= 0), "negative pads {p:?}");
                        pad_begin[i] = p[i] as usize;
                        pad_end[i] = p[i + r] as usize;
                    }
                    let span = in_sp[i]
                        .checked_add(pad_begin[i])
                        .and_then(|s| s.checked_add(pad_end[i]))
                        .ok_or_else(overflow)?;
                    ensure!(span >= ext, "window {ext} is larger than the padded input {span} on axis {i}");
                    let num = span - ext;
                    out_sp[i] = if ceil_mode { num.div_ceil(strides[i]) + 1 } else { num / strides[i] + 1 };
                    if ceil_mode && (out_sp[i] - 1) * strides[i] >= in_sp[i] + pad_begin[i] {
                        out_sp[i] -= 1;
                    }
                }
                "VALID" => {
                    ensure!(in_sp[i] >= ext, "window {ext} is larger than the input {} on axis {i}", in_sp[i]);
                    let num = in_sp[i] - ext;
                    out_sp[i] = if ceil_mode { num.div_ceil(strides[i]) + 1 } else { num / strides[i] + 1 };
                }
                "SAME_UPPER" | "SAME_LOWER" => {
                    out_sp[i] = in_sp[i].div_ceil(strides[i]);
                    let total = (out_sp[i].saturating_sub(1) * strides[i]).saturating_add(ext).saturating_sub(in_sp[i]);
                    let small = total / 2;
                    (pad_begin[i], pad_end[i]) =
                        if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                }
                a => bail!("unknown auto_pad '{a}'"),
            }
        }
        crate::limits::check_shape(&out_sp)?;
        Ok(Geom { in_sp: in_sp.to_vec(), out_sp, kernel: kernel.to_vec(), strides, dilations, pad_begin, pad_end })
    }

    pub(crate) fn kernel_len(&self) -> usize {
        self.kernel.iter().product()
    }

    pub(crate) fn out_len(&self) -> usize {
        self.out_sp.iter().product()
    }

    pub(crate) fn in_len(&self) -> usize {
        self.in_sp.iter().product()
    }

    /// For output pixel `o` (flat): the flat input offset of each kernel tap, or `None` in padding.
    pub(crate) fn taps(&self, o: usize, offs: &mut Vec<Option<usize>>) {
        let r = self.in_sp.len();
        let mut base = [0i64; 8];
        let mut rem = o;
        for i in (0..r).rev() {
            let oi = rem % self.out_sp[i];
            rem /= self.out_sp[i];
            base[i] = (oi * self.strides[i]) as i64 - self.pad_begin[i] as i64;
        }
        offs.clear();
        let kl = self.kernel_len();
        let mut kidx = [0usize; 8];
        for _ in 0..kl {
            let mut off = 0usize;
            let mut inside = true;
            for i in 0..r {
                let p = base[i] + (kidx[i] * self.dilations[i]) as i64;
                if p < 0 || p >= self.in_sp[i] as i64 {
                    inside = false;
                    break;
                }
                off = off * self.in_sp[i] + p as usize;
            }
            offs.push(if inside { Some(off) } else { None });
            for i in (0..r).rev() {
                kidx[i] += 1;
                if kidx[i] < self.kernel[i] {
                    break;
                }
                kidx[i] = 0;
            }
        }
    }

    /// Whether the window is a plain 1×1 with unit strides and no padding.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel.iter().all(|&k| k == 1)
            && self.strides.iter().all(|&s| s == 1)
            && self.pad_begin.iter().chain(&self.pad_end).all(|&p| p == 0)
    }
}

/// Gathers receptive fields: `out[o·stride + c·K + t] = x[c][tap_t(o)]` (or `pad` in the padding)
/// for the `channels` channels of `x` (each `g.in_len()` long). `out` is `[g.out_len(), stride]`
/// with `stride ≥ channels·K`; elements past `channels·K` in a row are left untouched.
pub(crate) fn im2row<T: Copy + Send + Sync>(x: &[T], channels: usize, g: &Geom, pad: T, out: &mut [T], stride: usize) {
    let kl = g.kernel_len();
    let row = channels * kl;
    let in_len = g.in_len();
    assert!(stride >= row && out.len() >= g.out_len() * stride && x.len() >= channels * in_len);
    assert!(in_len < u32::MAX as usize, "input planes of 2^32 elements are not supported");
    if row == 0 {
        return;
    }
    // Every output pixel's taps (u32::MAX in the padding), computed once.
    const PAD: u32 = u32::MAX;
    let ol = g.out_len();
    let mut taps = Vec::with_capacity(ol * kl);
    let mut offs = Vec::with_capacity(kl);
    for o in 0..ol {
        g.taps(o, &mut offs);
        taps.extend(offs.iter().map(|t| t.map_or(PAD, |i| i as u32)));
    }
    // Blocks of output rows; within a block, channel by channel, so that reads stay within one
    // input plane and writes within a block that fits in L1.
    let block = (16 * 1024 / (stride * std::mem::size_of::<T>()).max(1)).clamp(1, 256);
    out[..ol * stride].par_chunks_mut(block * stride).enumerate().for_each(|(bi, rows)| {
        let o0 = bi * block;
        let n = rows.len() / stride;
        for c in 0..channels {
            let xc = &x[c * in_len..(c + 1) * in_len];
            for j in 0..n {
                let tp = &taps[(o0 + j) * kl..(o0 + j + 1) * kl];
                let d = &mut rows[j * stride + c * kl..j * stride + (c + 1) * kl];
                for (dv, &t) in d.iter_mut().zip(tp) {
                    *dv = if t == PAD { pad } else { xc[t as usize] };
                }
            }
        }
    });
}

/// The kernel shape: the attribute, else the weight's spatial dims.
pub(crate) fn kernel_shape(c: &Ctx, w_shape: &[usize]) -> KResult<Vec<usize>> {
    match c.ints("kernel_shape") {
        Some(k) if !k.is_empty() => {
            ensure!(k.len() + 2 == w_shape.len(), "kernel_shape {k:?} does not fit weights {w_shape:?}");
            ensure!(
                k.iter().zip(&w_shape[2..]).all(|(&a, &b)| a as usize == b),
                "kernel_shape {k:?} differs from weights {w_shape:?}"
            );
            Ok(k.iter().map(|&v| v as usize).collect())
        }
        _ => Ok(w_shape[2..].to_vec()),
    }
}

/// Checks the shapes of a grouped convolution; returns (batch, channels, groups, out channels).
pub(crate) fn conv_dims(c: &Ctx, x: &[usize], w: &[usize]) -> KResult<(usize, usize, usize, usize)> {
    ensure!(x.len() >= 3 && x.len() == w.len(), "X {x:?} and W {w:?} must have the same rank ≥ 3");
    let group = c.int("group", 1);
    ensure!(group >= 1, "group {group} must be positive");
    let group = group as usize;
    let (n, ch, m) = (x[0], x[1], w[0]);
    ensure!(ch % group == 0 && m % group == 0, "channels {ch} / out channels {m} are not divisible by group {group}");
    ensure!(w[1] * group == ch, "W {w:?} expects {} input channels, X {x:?} has {ch}", w[1] * group);
    Ok((n, ch, group, m))
}

fn contiguous(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn conv(c: &Ctx) -> KResult<Vec<Value>> {
    let (xv, wv) = (c.input(0)?, c.input(1)?);
    let (x, w) = (f32_input(xv, "X")?, f32_input(wv, "W")?);
    let (n, ch, group, m) = conv_dims(c, x.shape(), w.shape())?;
    let kernel = kernel_shape(c, w.shape())?;
    let g = Geom::new(c, &x.shape()[2..], &kernel, false)?;
    let bias = match c.opt(2) {
        Some(b) => {
            let b = b.to_f32_vec()?;
            ensure!(b.len() == m, "bias has {} values for {m} output channels", b.len());
            Some(b)
        }
        None => None,
    };
    let (xd, wd) = (contiguous(&x), contiguous(&w));
    let (cg, mg) = (ch / group, m / group);
    let (kl, ol, il) = (g.kernel_len(), g.out_len(), g.in_len());
    let kk = cg * kl;
    crate::limits::check_shape(&[n, m, ol])?;
    crate::limits::check_shape(&[ol, kk])?;
    let mut out = vec![0f32; n * m * ol];
    let pointwise = g.is_pointwise();
    let mut rows = if pointwise { Vec::new() } else { vec![0f32; ol * kk] };
    for b in 0..n {
        for gi in 0..group {
            let xg = &xd[(b * ch + gi * cg) * il..(b * ch + (gi + 1) * cg) * il];
            let wg = &wd[gi * mg * kk..(gi + 1) * mg * kk];
            let yg = &mut out[(b * m + gi * mg) * ol..(b * m + (gi + 1) * mg) * ol];
            if pointwise {
                // rowsᵀ is x itself: [cg, pixels].
                sgemm(mg, kk, ol, 1.0, wg, kk, 1, xg, ol, 1, 0.0, yg);
            } else {
                im2row(xg, cg, &g, 0.0, &mut rows, kk);
                sgemm(mg, kk, ol, 1.0, wg, kk, 1, &rows, 1, kk, 0.0, yg);
            }
        }
        if let Some(bias) = &bias {
            out[b * m * ol..(b + 1) * m * ol]
                .par_chunks_mut(ol.max(1))
                .zip(bias.par_iter())
                .for_each(|(y, &bv)| y.iter_mut().for_each(|v| *v += bv));
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&g.out_sp);
    Ok(vec![f32_output(ArrayD::from_shape_vec(IxDyn(&shape), out)?, xv.dtype())?])
}

/// ConvTranspose as GEMM + col2im: `cols = W_gᵀ · X_g`, then each column is scattered (added)
/// into the output window it came from.
fn conv_transpose(c: &Ctx) -> KResult<Vec<Value>> {
    let (xv, wv) = (c.input(0)?, c.input(1)?);
    let (x, w) = (f32_input(xv, "X")?, f32_input(wv, "W")?);
    let (xs, ws) = (x.shape(), w.shape());
    ensure!(xs.len() >= 3 && xs.len() == ws.len(), "X {xs:?} and W {ws:?} must have the same rank ≥ 3");
    let group = c.int("group", 1).max(1) as usize;
    let (n, ch) = (xs[0], xs[1]);
    ensure!(ws[0] == ch && ch % group == 0, "W {ws:?} does not fit {ch} input channels in {group} groups");
    let (cg, mg) = (ch / group, ws[1]);
    let m = mg * group;
    let kernel = kernel_shape(c, ws)?;
    let r = kernel.len();
    let in_sp = &xs[2..];
    let list = |name: &str, default: i64| -> KResult<Vec<i64>> {
        match c.ints(name) {
            Some(v) if !v.is_empty() => {
                ensure!(v.len() == r, "{name} {v:?} does not fit {r} spatial dims");
                Ok(v.to_vec())
            }
            _ => Ok(vec![default; r]),
        }
    };
    let strides = list("strides", 1)?;
    let dil = list("dilations", 1)?;
    let out_pad = list("output_padding", 0)?;
    let auto_pad = c.string("auto_pad", "NOTSET");
    ensure!(
        strides.iter().chain(&dil).all(|&v| (1..=1 << 20).contains(&v))
            && out_pad.iter().all(|&v| (0..1 << 20).contains(&v)),
        "strides {strides:?}, dilations {dil:?} or output_padding {out_pad:?} out of range"
    );
    ensure!(c.ints("pads").is_none_or(|p| p.iter().all(|&v| v.unsigned_abs() < 1 << 40)), "pads out of range");
    let mut pb = vec![0i64; r];
    let mut out_sp = vec![0usize; r];
    let explicit_out = match c.ints("output_shape").filter(|v| !v.is_empty()) {
        Some(v) => {
            ensure!(v.len() >= r && v.iter().all(|&d| (0..1 << 40).contains(&d)), "output_shape {v:?} out of range");
            Some(v[v.len() - r..].to_vec())
        }
        None => None,
    };
    for i in 0..r {
        // Kernel and input sizes are dims of real tensors and the attributes are bounded
        // above, so nothing here overflows i64.
        let ext = (kernel[i] as i64 - 1) * dil[i] + 1;
        let full = strides[i] * (in_sp[i] as i64 - 1) + out_pad[i] + ext;
        let target = match (&explicit_out, auto_pad.as_str()) {
            (Some(o), _) => Some(o[i]),
            (None, "SAME_UPPER" | "SAME_LOWER") => Some(in_sp[i] as i64 * strides[i]),
            _ => None,
        };
        match target {
            Some(t) => {
                // A larger requested output pads at the end (total padding clamped at 0, as
                // onnxruntime does).
                let total = (full - t).max(0);
                pb[i] = if auto_pad == "SAME_UPPER" { total / 2 } else { total - total / 2 };
                out_sp[i] = t.max(0) as usize;
            }
            None => {
                let (b, e) = match c.ints("pads").filter(|p| !p.is_empty()) {
                    Some(p) => {
                        ensure!(p.len() == 2 * r, "pads {p:?} do not fit {r} spatial dims");
                        (p[i], p[i + r])
                    }
                    None => (0, 0),
                };
                pb[i] = b;
                let o = full - b - e;
                ensure!(o >= 0, "negative output size on axis {i}");
                out_sp[i] = o as usize;
            }
        }
    }
    let kl: usize = kernel.iter().product();
    let il: usize = in_sp.iter().product();
    let ol = crate::limits::check_shape(&out_sp)?;
    crate::limits::check_shape(&[n, m, ol])?;
    crate::limits::check_shape(&[mg, kl, il])?;
    let (xd, wd) = (contiguous(&x), contiguous(&w));
    let mut out = vec![0f32; n * m * ol];
    let rows = mg * kl;
    let mut cols = vec![0f32; rows * il];
    for b in 0..n {
        for gi in 0..group {
            let xg = &xd[(b * ch + gi * cg) * il..(b * ch + (gi + 1) * cg) * il];
            let wg = &wd[gi * cg * rows..(gi + 1) * cg * rows];
            // cols [mg·kl, il] = W_gᵀ [mg·kl, cg] · X_g [cg, il]
            sgemm(rows, cg, il, 1.0, wg, 1, rows, xg, il, 1, 0.0, &mut cols);
            let yg = &mut out[(b * m + gi * mg) * ol..(b * m + (gi + 1) * mg) * ol];
            yg.par_chunks_mut(ol.max(1)).enumerate().for_each(|(mi, y)| {
                let mut kidx = vec![0usize; r];
                for t in 0..kl {
                    let col = &cols[(mi * kl + t) * il..(mi * kl + t + 1) * il];
                    let mut iidx = vec![0usize; r];
                    for &v in col {
                        let mut off = 0usize;
                        let mut inside = true;
                        for d in 0..r {
                            let p = iidx[d] as i64 * strides[d] - pb[d] + kidx[d] as i64 * dil[d];
                            if p < 0 || p >= out_sp[d] as i64 {
                                inside = false;
                                break;
                            }
                            off = off * out_sp[d] + p as usize;
                        }
                        if inside {
                            y[off] += v;
                        }
                        for d in (0..r).rev() {
                            iidx[d] += 1;
                            if iidx[d] < in_sp[d] {
                                break;
                            }
                            iidx[d] = 0;
                        }
                    }
                    for d in (0..r).rev() {
                        kidx[d] += 1;
                        if kidx[d] < kernel[d] {
                            break;
                        }
                        kidx[d] = 0;
                    }
                }
            });
        }
    }
    if let Some(bv) = c.opt(2) {
        let bias = bv.to_f32_vec()?;
        ensure!(bias.len() == m, "bias has {} values for {m} output channels", bias.len());
        for b in 0..n {
            for (mi, &bb) in bias.iter().enumerate() {
                out[(b * m + mi) * ol..(b * m + mi + 1) * ol].iter_mut().for_each(|v| *v += bb);
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&out_sp);
    Ok(vec![f32_output(ArrayD::from_shape_vec(IxDyn(&shape), out)?, xv.dtype())?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, run_op};
    use qdqc_ir::attr::{make_int, make_ints, make_string};

    fn iota(shape: &[usize], scale: f32) -> Value {
        let n: usize = shape.iter().product();
        f32v(shape, &(0..n).map(|i| i as f32 * scale).collect::<Vec<_>>())
    }

    /// Direct (naive) convolution for checking.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        group: usize,
        s: usize,
        p: usize,
        d: usize,
    ) -> Vec<f32> {
        let [n, ch, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + 2 * p - d * (kh - 1) - 1) / s + 1;
        let ow = (wd + 2 * p - d * (kw - 1) - 1) / s + 1;
        let mg = m / group;
        let mut out = vec![0f32; n * m * oh * ow];
        for b in 0..n {
            for o in 0..m {
                let gi = o / mg;
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = 0f32;
                        for c in 0..cg {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * s + i * d) as i64 - p as i64;
                                    let ix = (xx * s + j * d) as i64 - p as i64;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                        let cin = gi * cg + c;
                                        acc += x[((b * ch + cin) * h + iy as usize) * wd + ix as usize]
                                            * w[((o * cg + c) * kh + i) * kw + j];
                                    }
                                }
                            }
                        }
                        out[((b * m + o) * oh + y) * ow + xx] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv_matches_naive_with_groups_pads_dilations() {
        for (group, s, p, d, cin, m) in [(1, 1, 1, 1, 3, 4), (2, 2, 1, 1, 4, 6), (4, 1, 2, 2, 4, 4), (1, 2, 0, 1, 2, 3)]
        {
            let xs = [2, cin, 7, 6];
            let ws = [m, cin / group, 3, 3];
            let x = iota(&xs, 0.1);
            let w = iota(&ws, -0.05);
            let attrs = vec![
                make_int("group", group as i64),
                make_ints("strides", &[s as i64, s as i64]),
                make_ints("pads", &[p as i64; 4]),
                make_ints("dilations", &[d as i64, d as i64]),
            ];
            let y = run_op(Op::Conv, attrs, &[Some(x.clone()), Some(w.clone())], 13).remove(0);
            let want = naive(&x.to_f32_vec().unwrap(), xs, &w.to_f32_vec().unwrap(), ws, group, s, p, d);
            let got = y.to_f32_vec().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "{g} vs {w} (group {group})");
            }
        }
    }

    #[test]
    fn depthwise_and_bias() {
        // Depthwise 3×3 on two channels, all-ones weights, SAME_UPPER: each output sums its window.
        let x = f32v(&[1, 2, 3, 3], &[1., 1., 1., 1., 1., 1., 1., 1., 1., 2., 2., 2., 2., 2., 2., 2., 2., 2.]);
        let w = f32v(&[2, 1, 3, 3], &[1.0; 18]);
        let b = f32v(&[2], &[0.5, -1.0]);
        let attrs = vec![make_int("group", 2), make_string("auto_pad", "SAME_UPPER")];
        let y = run_op(Op::Conv, attrs, &[Some(x), Some(w), Some(b)], 13).remove(0);
        assert_eq!(
            y.to_f32_vec().unwrap(),
            [4.5, 6.5, 4.5, 6.5, 9.5, 6.5, 4.5, 6.5, 4.5, 7., 11., 7., 11., 17., 11., 7., 11., 7.]
        );
    }

    #[test]
    fn auto_pad_same_lower_vs_upper() {
        // 1-D, input 4, kernel 2, stride 1: total pad 1; SAME_UPPER pads at the end, SAME_LOWER at the start.
        let x = f32v(&[1, 1, 4], &[1., 2., 3., 4.]);
        let w = f32v(&[1, 1, 2], &[1., 10.]);
        let up = run_op(Op::Conv, vec![make_string("auto_pad", "SAME_UPPER")], &[Some(x.clone()), Some(w.clone())], 13);
        assert_eq!(up[0].to_f32_vec().unwrap(), [21., 32., 43., 4.]);
        let lo = run_op(Op::Conv, vec![make_string("auto_pad", "SAME_LOWER")], &[Some(x), Some(w)], 13);
        assert_eq!(lo[0].to_f32_vec().unwrap(), [10., 21., 32., 43.]);
    }

    #[test]
    fn conv_transpose_onnx_example() {
        // onnx backend test "convtranspose": x = arange(9).reshape(1,1,3,3), w = ones(1,2,3,3).
        let x = iota(&[1, 1, 3, 3], 1.0);
        let w = f32v(&[1, 2, 3, 3], &[1.0; 18]);
        let y = run_op(Op::ConvTranspose, vec![], &[Some(x), Some(w)], 13).remove(0);
        assert_eq!(y.shape(), &[1, 2, 5, 5]);
        let want = [
            0., 1., 3., 3., 2., 3., 8., 15., 12., 7., 9., 21., 36., 27., 15., 9., 20., 33., 24., 13., 6., 13., 21.,
            15., 8.,
        ];
        let got = y.to_f32_vec().unwrap();
        assert_eq!(&got[..25], &want);
        assert_eq!(&got[25..], &want);
        // Strides 3×2 with output_shape and pads (onnx "convtranspose_output_shape").
        let x = iota(&[1, 1, 3, 3], 1.0);
        let w = f32v(&[1, 2, 3, 3], &[1.0; 18]);
        let attrs = vec![make_ints("strides", &[3, 2]), make_ints("output_shape", &[10, 8])];
        let y = run_op(Op::ConvTranspose, attrs, &[Some(x), Some(w)], 13).remove(0);
        assert_eq!(y.shape(), &[1, 2, 10, 8]);
        assert_eq!(&y.to_f32_vec().unwrap()[..8], &[0., 0., 1., 1., 3., 2., 2., 0.]);
    }
}
