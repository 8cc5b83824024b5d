//! `qbn-as-depthwise-conv`: a BatchNormalization that the quantizer wrapped in DQ→BN→Q (what
//! onnxruntime's quantizer writes for a BN it could not fold: Conv → Q → DQ → BN → Q) becomes an
//! integer depthwise 1×1 QLinearConv — a standard op, so for every target.
//!
//! With `f = γ/√(var+ε)` and `o = β − mean·f` per channel, the BN is `y = f·x + o`: on the input
//! step `q − z_x` the exact output, in output steps, is `A·(q − z_x) + B` with `A = f·s_x/s_y`
//! and `B = o/s_y`. The QLinearConv computes `round(M·(w·(q − z_x) + b))` with an int8 weight
//! `w`, an int32 bias `b` and onnxruntime's f32 multiplier `M = (s_x·s_w)/s_y`. Per channel the
//! rule searches `w` (|w| from 127 down, the sign of `f`) and `b` (next to `B·w/A`), and for each
//! pair the interval of `M` in which all 256 input values round to the exactly rounded result
//! (or either neighbour of a tie); a weight scale whose f32 multiplier falls inside it makes the
//! channel exact. Every channel is then checked over its whole input domain by the interpreter
//! (`rules::exact::depthwise`). The searches are cached by their parameters.
//!
//! A channel without such a form gets `w = ±127`, `s_w = |f|/127` (so `w·s_w = f`) and the bias
//! rounded at `s_x·s_w`: within one output step, the approximation `bn-as-conv`, made only when
//! allowed. (A channel with `f = 0` gets weight 0 and the bias alone.)
//!
//! Folding such a BN into the conv before it instead (`fold-bn-qdq`, not in `-O2`) would drop the
//! conv's own rounding step and move the outputs by several steps against the QDQ model.

use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::bn_fold::Bn;
use crate::rules::common::{self, QParams};
use crate::rules::exact::{self, DepthwiseChannel, Q};
use qdqc_eval::exactness::{judge, Judgement};
use qdqc_ir::{attr, DType, Graph, Op, Operand, Outlet, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![Rule::new(
        "qbn-as-depthwise-conv",
        "(QuantizeLinear (BatchNormalization@bn (DequantizeLinear@dq ?x ?xs ?xz) ?gamma ?beta ?mean ?var) ?ys ?yz)",
        qbn_fits,
        build,
    )
    .exact_where("bn-as-conv", qbn_exact)]
}

/// What the build reads: the input's and output's parameters, the BN's, and the channel count
/// and rank.
struct Qbn {
    x: QParams,
    y: QParams,
    bn: Bn,
    c: usize,
    rank: usize,
}

fn qbn_fits(g: &Graph, m: &Match) -> Result<Qbn, Refusal> {
    let bn = m.node("bn");
    let training = attr::view::BatchNormalization::of(&g.node(bn).attrs).training_mode;
    ensure!(!training, "BatchNormalization is in training mode");
    let out = Operand::Value(Outlet::new(bn, 0));
    let other_uses = g.uses(bn).count() != 1 || g.is_output(out);
    ensure!(!other_uses, "the BatchNormalization's float output is also used elsewhere");
    common::bn_inference(g, bn)?;
    let (x, y) = (common::of_node(g, m.node("dq"))?, common::of_node(g, m.root())?);
    ensure!(x.axis.is_none() && y.axis.is_none(), "the input or output is quantized per axis");
    ensure!(
        matches!(x.dtype, DType::U8 | DType::I8) && x.dtype == y.dtype,
        "QLinearConv needs the same 8-bit type in and out, not {} → {}",
        x.dtype,
        y.dtype
    );
    for s in [x.scale[0], y.scale[0]] {
        ensure!(s.is_finite() && s > 0.0, "scale {s} is not positive and finite");
    }
    let (c, rank) = channel_count(g, m)?;
    let b = Bn::read(g, bn, m)?;
    for (name, v) in [("scale", &b.gamma), ("bias", &b.beta), ("mean", &b.mean), ("variance", &b.var)] {
        ensure!(v.len() == c, "BN {name} has {} values for {c} channels", v.len());
    }
    let bad = b.var.iter().position(|&v| (v as f64 + b.eps as f64).is_nan() || v as f64 + b.eps as f64 <= 0.0);
    ensure!(bad.is_none(), "BN variance + epsilon is not positive at channel {}", bad.unwrap());
    Ok(Qbn { x, y, bn: b, c, rank })
}

fn channel_count(g: &Graph, m: &Match) -> Result<(usize, usize), Refusal> {
    let ty = g.operand_type(m.get("x")).ok_or_else(|| Refusal::new("the input's type is unknown"))?;
    let rank = ty.rank().ok_or_else(|| Refusal::new("the input's rank is unknown"))?;
    ensure!(rank >= 3, "the input has rank {rank}; a QLinearConv needs [N, C, spatial...]");
    let c = ty.shape.as_ref().and_then(|s| s[1].known()).ok_or_else(|| Refusal::new("the channel count is unknown"))?;
    ensure!(c > 0, "the input has no channels");
    Ok((c as usize, rank))
}

/// Exact when every channel has an exact integer form.
fn qbn_exact(_: &Graph, _: &Match, q: &Qbn) -> Result<(), String> {
    let form = form(q);
    match form.inexact {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} channels have no exact depthwise form with |w| ≤ 127{}",
            q.c,
            form.why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
        )),
    }
}

/// The depthwise parameters of every channel; `inexact` channels have the ±127 form.
struct Form {
    channels: Vec<DepthwiseChannel>,
    exact: Vec<bool>,
    inexact: usize,
    /// Why no channel could be proven, when none could.
    why: Option<String>,
}

/// The form of a quantized BN, searched once per set of parameters.
fn form(q: &Qbn) -> Arc<Form> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Arc<Form>>>> = OnceLock::new();
    let (f, o) = q.bn.factors();
    let mut key = Vec::new();
    for p in [&q.x, &q.y] {
        key.extend(p.scale[0].to_bits().to_le_bytes());
        key.extend(p.zero_point[0].to_le_bytes());
        key.push(p.dtype as u8);
    }
    for v in f.iter().chain(&o) {
        key.extend(v.to_bits().to_le_bytes());
    }
    let cache = CACHE.get_or_init(Default::default);
    if let Some(form) = cache.lock().expect("not poisoned").get(&key) {
        return form.clone();
    }
    let form = Arc::new(search(q, &f, &o));
    cache.lock().expect("not poisoned").insert(key, form.clone());
    form
}

fn search(q: &Qbn, f: &[f64], o: &[f64]) -> Form {
    let approx: Vec<DepthwiseChannel> =
        (0..q.c).map(|c| approx_channel(f[c], o[c], q.x.scale[0] as f64, q.y.scale[0] as f64)).collect();
    let params = Q::new(q.x.scale[0], q.x.zero_point[0], q.x.dtype)
        .and_then(|x| Ok((x, Q::new(q.y.scale[0], q.y.zero_point[0], q.y.dtype)?)));
    let (x, y) = match params {
        Ok(p) => p,
        Err(why) => return Form { channels: approx, exact: vec![false; q.c], inexact: q.c, why: Some(why) },
    };
    let found: Vec<Option<DepthwiseChannel>> = (0..q.c).map(|c| exact_channel(&x, &y, f[c], o[c])).collect();
    let mut channels: Vec<DepthwiseChannel> = found.iter().zip(&approx).map(|(e, a)| e.unwrap_or(*a)).collect();
    let reference = |c: usize, v: i64| (f[c] * x.dequantize(v) + o[c]) / y.scale as f64;
    let proofs = match exact::depthwise(x, y, &channels, reference) {
        Ok(p) => p,
        Err(why) => return Form { channels: approx, exact: vec![false; q.c], inexact: q.c, why: Some(why) },
    };
    let exact: Vec<bool> = (0..q.c).map(|c| found[c].is_some() && proofs[c].off == 0).collect();
    for c in 0..q.c {
        if !exact[c] {
            channels[c] = approx[c];
        }
    }
    let inexact = exact.iter().filter(|&&e| !e).count();
    Form { channels, exact, inexact, why: None }
}

/// The ±127 form of one channel (see the module documentation).
fn approx_channel(f: f64, o: f64, xs: f64, ys: f64) -> DepthwiseChannel {
    let s = (f.abs() / 127.0) as f32;
    // A channel with f = 0 is its bias alone: any weight scale does; one that puts the bias
    // step at 1/127 of the output step.
    let flat = (ys / xs / 127.0) as f32;
    let (w, sw) = if s > 0.0 && s.is_finite() { (127 * f.signum() as i64, s) } else { (0, flat) };
    let b = (o / (xs * sw as f64)).round_ties_even();
    DepthwiseChannel { w, sw, b: b.clamp(i64::MIN as f64, i64::MAX as f64) as i64 }
}

/// The exact integer form of one channel, if the search finds one.
fn exact_channel(x: &Q, y: &Q, f: f64, o: f64) -> Option<DepthwiseChannel> {
    let a = f * x.scale as f64 / y.scale as f64;
    let bb = o / y.scale as f64;
    exact_channel_of(x, y, |d| a * d as f64 + bb, a, bb)
}

/// The exact integer form of a channel whose reference, in output steps before the zero point, is
/// `reference(q − z_x)` for each input value `q`, near `a·(q − z_x) + bb` where it does not
/// saturate (the search starts there), if the search finds one. A reference that is no affine
/// function of the input up to saturation has none.
pub(crate) fn exact_channel_of(
    x: &Q,
    y: &Q,
    reference: impl Fn(i64) -> f64,
    a: f64,
    bb: f64,
) -> Option<DepthwiseChannel> {
    if !a.is_finite() || !bb.is_finite() {
        return None;
    }
    // First a form that rounds every near-tie as the f64 reference does (as the QDQ model's
    // float32 run nearly always does too), else one that takes either neighbour of a tie.
    [true, false].into_iter().find_map(|strict| {
        // Per input step `q − z_x`: the open interval the kernel's value before rounding must lie in.
        let bounds: Vec<(i64, f64, f64)> = x
            .values()
            .into_iter()
            .map(|q| {
                let d = q - x.zp;
                let (l, u) = window(reference(d), y, strict);
                (d, l, u)
            })
            .collect();
        let weights: Vec<i64> =
            if a == 0.0 { vec![0] } else { (1..=127).rev().map(|k| if a < 0.0 { -k } else { k }).collect() };
        weights.into_iter().find_map(|w| {
            let ideal = if w == 0 { bb * 127.0 } else { bb * w as f64 / a };
            [0.0, -1.0, 1.0, -2.0, 2.0].into_iter().find_map(|db| {
                let b = ideal.round() + db;
                // The accumulator w·(q − z_x) + b stays within int32.
                let fits = b.abs() <= i32::MAX as f64 - 127.0 * 255.0;
                fits.then(|| fit_scale(&bounds, w, b as i64, x.scale, y.scale)).flatten()
            })
        })
    })
}

/// The open interval of the kernel's value before rounding (in output steps, before the zero
/// point) that rounds to an accepted result for the reference value `v` (`strict`: only the
/// exactly rounded one, not the other neighbour of a tie), narrowed by a margin for the
/// kernel's f32 product; unbounded on a side where the result saturates.
fn window(v: f64, y: &Q, strict: bool) -> (f64, f64) {
    let accepted = |r: i64| match judge(r, v, y.zp, y.lo, y.hi) {
        Judgement::Exact => true,
        Judgement::Tie => !strict,
        Judgement::Off => false,
    };
    let ok: Vec<i64> = [v.floor(), v.ceil()]
        .into_iter()
        .map(|r| (r as i64).saturating_add(y.zp).clamp(y.lo, y.hi))
        .filter(|&r| accepted(r))
        .collect();
    let (Some(&rmin), Some(&rmax)) = (ok.iter().min(), ok.iter().max()) else { return (0.0, 0.0) };
    let margin = |t: f64| t.abs().max(1.0) * 1e-6;
    let l = if rmin == y.lo { f64::NEG_INFINITY } else { (rmin - y.zp) as f64 - 0.5 };
    let u = if rmax == y.hi { f64::INFINITY } else { (rmax - y.zp) as f64 + 0.5 };
    (if l.is_finite() { l + margin(l) } else { l }, if u.is_finite() { u - margin(u) } else { u })
}

/// A weight scale for weight `w` and bias `b` whose multiplier puts every input's value inside
/// its window, if there is one.
fn fit_scale(bounds: &[(i64, f64, f64)], w: i64, b: i64, xs: f32, ys: f32) -> Option<DepthwiseChannel> {
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    for &(d, l, u) in bounds {
        let acc = (w * d + b) as f64;
        if acc > 0.0 {
            lo = lo.max(l / acc);
            hi = hi.min(u / acc);
        } else if acc < 0.0 {
            lo = lo.max(u / acc);
            hi = hi.min(l / acc);
        } else if !(l < 0.0 && 0.0 < u) {
            return None;
        }
        if lo >= hi {
            return None;
        }
    }
    let target = if hi.is_finite() {
        (lo + hi) / 2.0
    } else if lo > 0.0 {
        2.0 * lo
    } else {
        1.0 / 127.0
    };
    // onnxruntime's multiplier, in f32, left to right.
    let multiplier = |sw: f32| ((xs * sw) / ys) as f64;
    let sw0 = (target * ys as f64 / xs as f64) as f32;
    (0..=32i64).flat_map(|k| [k, -k]).find_map(|k| {
        let sw = f32::from_bits(u32::try_from(sw0.to_bits() as i64 + k).ok()?);
        let m = multiplier(sw);
        (sw.is_normal() && sw > 0.0 && lo < m && m < hi).then_some(DepthwiseChannel { w, sw, b })
    })
}

fn build(g: &Graph, m: &Match, q: Qbn) -> Result<Patch, Refusal> {
    let form = form(&q);
    let Qbn { x, y, bn, c, rank } = q;
    let (_, o) = bn.factors();
    let xs = x.scale[0] as f64;
    for (ch, p) in form.channels.iter().enumerate() {
        ensure!(p.b.abs() <= i32::MAX as i64, "the bias of channel {ch} does not fit in int32 at the input's scale");
    }
    // The ±127 channels: their bias rounding must stay within half an output step.
    let approx: Vec<usize> = (0..c).filter(|&ch| !form.exact[ch]).collect();
    let bias: Vec<i64> = approx.iter().map(|&ch| form.channels[ch].b).collect();
    let acc: Vec<f32> = approx.iter().map(|&ch| (xs * form.channels[ch].sw as f64) as f32).collect();
    let float_bias: Vec<f64> = approx.iter().map(|&ch| o[ch]).collect();
    super::bias_rounding_fits(&float_bias, &bias, &acc, y.scale[0])?;
    let mut p = Patch::new();
    let base = g.value(Outlet::new(m.node("bn"), 0)).name.clone();
    let x_params = [m.get("x"), m.get("xs"), m.get("xz"), m.get("ys"), m.get("yz")];
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let n =
        add_depthwise_conv(&mut p, &base, g.node(m.node("bn")).name(), &form.channels, rank, x.dtype, x_params, out);
    p.replace(Outlet::new(m.root(), 0), n);
    for &id in m.nodes() {
        p.remove(id);
    }
    Ok(p)
}

/// Adds a depthwise 1×1 QLinearConv named `name` with `channels` (weight zero point 0) reading `x`
/// of rank `rank` and 8-bit type `dtype` and writing `y`: `[x, x_scale, x_zero_point, y_scale,
/// y_zero_point]` are the operands of the Q/DQ it replaces (a zero point may be omitted there);
/// its constants are named from `base`, its output from `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_depthwise_conv(
    p: &mut Patch,
    base: &str,
    name: &str,
    channels: &[DepthwiseChannel],
    rank: usize,
    dtype: DType,
    [x, xs, xz, ys, yz]: [Operand; 5],
    out: String,
) -> PatchOperand {
    let c = channels.len();
    let w: Vec<i64> = channels.iter().map(|p| p.w).collect();
    let sw: Vec<f32> = channels.iter().map(|p| p.sw).collect();
    let bias: Vec<i64> = channels.iter().map(|p| p.b).collect();
    let mut wdims = vec![c as i64, 1];
    wdims.extend(std::iter::repeat_n(1, rank - 2));
    let w_op = p.add_const(&format!("{base}_weight_quantized"), Tensor::from_i64("", DType::I8, &wdims, &w));
    let ws_op = p.add_const(&format!("{base}_weight_scale"), Tensor::from_f32("", &[c as i64], &sw));
    let wz_op =
        p.add_const(&format!("{base}_weight_zero_point"), Tensor::from_i64("", DType::I8, &[c as i64], &vec![0; c]));
    let b_op = p.add_const(&format!("{base}_bias_quantized"), Tensor::from_i64("", DType::I32, &[c as i64], &bias));
    let xz = super::zero_point_or_new(p, xz, dtype, 1, || format!("{base}_x_zero_point"));
    let yz = super::zero_point_or_new(p, yz, dtype, 1, || format!("{base}_y_zero_point"));
    let attrs = vec![attr::make_int("group", c as i64), attr::make_ints("kernel_shape", &vec![1; rank - 2])];
    let inputs = [x.into(), xs.into(), xz, w_op, ws_op, wz_op, ys.into(), yz, b_op];
    p.add(PatchNode::new(Op::QLinearConv, inputs).named(name).attrs(attrs).output(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded stream of uniform numbers in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Random BN channels at the scales a quantizer gives (input and output steps around 0.01–0.1,
    /// factors 0.1–4 of either sign, offsets within ±3): the search finds an exact form for
    /// nearly all, and each one it finds is proven over all 256 inputs.
    #[test]
    fn most_channels_have_an_exact_form() {
        let mut r = uniform(7);
        let (mut found, mut total) = (0, 0);
        for _ in 0..200 {
            let x = Q::new((0.005 + 0.1 * r()) as f32, (r() * 255.0) as i64, DType::U8).unwrap();
            let y = Q::new((0.005 + 0.1 * r()) as f32, (r() * 255.0) as i64, DType::U8).unwrap();
            let f = (0.1 + 3.9 * r()) * if r() < 0.5 { -1.0 } else { 1.0 };
            let o = 6.0 * r() - 3.0;
            total += 1;
            if let Some(ch) = exact_channel(&x, &y, f, o) {
                found += 1;
                let p = exact::depthwise(x, y, &[ch], |_, v| (f * x.dequantize(v) + o) / y.scale as f64).unwrap();
                assert_eq!(p[0].off, 0, "f {f}, o {o}, {x:?} → {y:?}: {ch:?}");
            }
        }
        assert!(found * 100 >= total * 99, "{found} of {total}");
    }
}
