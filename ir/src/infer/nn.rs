//! Convolution, pooling, normalization and matrix products. The shape functions here are
//! shared with the quantized ops (`QLinearConv`, `QLinearAveragePool`, `QGemm`, ...).

use super::dims::{self, R};
use super::{one, ty, Ctx, OutputTypes, UNRANKED};
use crate::dtype::DType;
use crate::graph::Dim;
use crate::op::Op;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// The sliding-window attributes of a conv or pool over `n` spatial axes.
struct Window<'a> {
    kernel: Vec<Option<i64>>,
    strides: Cow<'a, [i64]>,
    dilations: Cow<'a, [i64]>,
    pads: Cow<'a, [i64]>,
    auto_pad: AutoPad,
    ceil: bool,
}

/// The `n` values of ints attribute `name` (borrowed from the node), or `n` times `default`.
fn int_list<'a>(ctx: &Ctx<'a>, name: &str, n: usize, default: i64) -> R<Cow<'a, [i64]>> {
    match ctx.attr_ints(name) {
        None => Ok(Cow::Owned(vec![default; n])),
        Some(v) if v.len() == n => Ok(Cow::Borrowed(v)),
        Some(v) => Err(format!("attribute {name} has {} values, expected {n}", v.len())),
    }
}

fn window<'a>(ctx: &Ctx<'a>, kernel: Vec<Option<i64>>) -> R<Window<'a>> {
    let n = kernel.len();
    if let Some(k) = kernel.iter().flatten().find(|&&k| k <= 0) {
        return Err(format!("kernel size {k} must be positive"));
    }
    let strides = int_list(ctx, "strides", n, 1)?;
    let dilations = int_list(ctx, "dilations", n, 1)?;
    let pads = int_list(ctx, "pads", 2 * n, 0)?;
    for (name, list, min) in [("strides", &strides, 1), ("dilations", &dilations, 1), ("pads", &pads, 0)] {
        if let Some(v) = list.iter().find(|&&v| v < min) {
            return Err(format!("attribute {name} has invalid value {v}"));
        }
    }
    let auto_pad = match ctx.attr_string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => AutoPad::NotSet,
        Some("SAME_UPPER") => AutoPad::SameUpper,
        Some("SAME_LOWER") => AutoPad::SameLower,
        Some("VALID") => AutoPad::Valid,
        Some(other) => return Err(format!("attribute auto_pad has unknown value '{other}'")),
    };
    let ceil = ctx.attr_int("ceil_mode").unwrap_or(0) != 0;
    Ok(Window { kernel, strides, dilations, pads, auto_pad, ceil })
}

fn to_i64(v: i128, what: &str) -> R<i64> {
    i64::try_from(v).map_err(|_| dims::overflow(what))
}

fn ceil_div(a: i128, b: i128) -> i128 {
    // b > 0; a may be negative.
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}

impl Window<'_> {
    fn n(&self) -> usize {
        self.kernel.len()
    }

    /// The dilated kernel extent on axis `i`, if the kernel size is known.
    fn extent(&self, i: usize) -> Option<i128> {
        self.kernel[i].map(|k| (k as i128 - 1) * self.dilations[i] as i128 + 1)
    }

    fn pads(&self, i: usize) -> (i128, i128) {
        match self.auto_pad {
            AutoPad::NotSet => (self.pads[i] as i128, self.pads[i + self.n()] as i128),
            _ => (0, 0),
        }
    }

    /// Output size of a conv or pool on spatial axis `i`.
    fn out(&self, input: &Dim, i: usize) -> R<Dim> {
        let Some(eff) = self.extent(i) else {
            return Ok(Dim::Unknown);
        };
        let s = self.strides[i] as i128;
        let (pb, pe) = self.pads(i);
        let Dim::Known(x) = *input else {
            // A symbolic size survives only when the window keeps every size as it is.
            let keeps = match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => s == 1,
                _ => s == 1 && pb + pe + 1 == eff,
            };
            return Ok(if keeps { input.clone() } else { Dim::Unknown });
        };
        let x = x as i128;
        let out = match self.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => ceil_div(x, s),
            _ => {
                let num = x + pb + pe - eff;
                if num < 0 {
                    return Err(format!(
                        "kernel extent {eff} is larger than the padded input {} on spatial axis {i}",
                        x + pb + pe
                    ));
                }
                if self.ceil {
                    let mut out = ceil_div(num, s) + 1;
                    // A window that would start in the right padding is dropped.
                    if (out - 1) * s >= x + pb {
                        out -= 1;
                    }
                    out
                } else {
                    num / s + 1
                }
            }
        };
        Ok(Dim::Known(to_i64(out, "output size")?))
    }
}

/// Kernel sizes from the `kernel_shape` attribute or the weight's spatial dims (checked to agree).
fn kernel_of(ctx: &Ctx, w: Option<&[Dim]>, n: usize) -> R<Vec<Option<i64>>> {
    let from_w = |i: usize| w.and_then(|w| w[2 + i].known());
    match ctx.attr_ints("kernel_shape") {
        None => Ok((0..n).map(from_w).collect()),
        Some(k) if k.len() != n => Err(format!("attribute kernel_shape has {} values, expected {n}", k.len())),
        Some(k) => {
            for (i, &a) in k.iter().enumerate() {
                if let Some(b) = from_w(i).filter(|&b| b != a) {
                    return Err(format!("kernel_shape {k:?} disagrees with the weight's spatial dim {i} ({b})"));
                }
            }
            Ok(k.iter().map(|&v| Some(v)).collect())
        }
    }
}

/// The rank shared by data input `x` and weight `w`.
fn conv_rank(x: Option<&[Dim]>, w: Option<&[Dim]>) -> R<Option<usize>> {
    let rank = match (x, w) {
        (Some(a), Some(b)) if a.len() != b.len() => {
            return Err(format!("input has rank {} but weight has rank {}", a.len(), b.len()))
        }
        (Some(a), _) => a.len(),
        (_, Some(b)) => b.len(),
        _ => return Ok(None),
    };
    if rank < 3 {
        return Err(format!("input and weight must have rank >= 3 (N, C and spatial dims), not {rank}"));
    }
    Ok(Some(rank))
}

fn group(ctx: &Ctx) -> R<i64> {
    match ctx.attr_int("group").unwrap_or(1) {
        g if g >= 1 => Ok(g),
        g => Err(format!("attribute group must be positive, not {g}")),
    }
}

/// Output shape of a convolution with data input `x`, weight `w` and optional bias `b`.
pub(crate) fn conv_shape(ctx: &Ctx, x: usize, w: usize, b: Option<usize>) -> R<Option<Vec<Dim>>> {
    let (xs, ws) = (ctx.shape(x), ctx.shape(w));
    let Some(rank) = conv_rank(xs.as_deref(), ws.as_deref())? else {
        return Ok(None);
    };
    let n = rank - 2;
    let win = window(ctx, kernel_of(ctx, ws.as_deref(), n)?)?;
    let group = group(ctx)?;
    let m = ws.as_ref().map_or(Dim::Unknown, |w| w[0].clone());
    if let (Some(c), Some(wc)) = (xs.as_ref().and_then(|s| s[1].known()), ws.as_ref().and_then(|s| s[1].known())) {
        if wc.checked_mul(group) != Some(c) {
            return Err(format!("input has {c} channels but the weight expects {wc} x group {group}"));
        }
    }
    if let Some(m) = m.known() {
        if m % group != 0 {
            return Err(format!("{m} output channels are not divisible by group {group}"));
        }
    }
    if let Some(bs) = b.filter(|&b| ctx.has(b)).and_then(|b| ctx.shape(b)) {
        match &bs[..] {
            [d] if dims::unify(d, &m).is_some() => {}
            _ => return Err(format!("bias has shape {} but there are {m} output channels", show_dims(&bs))),
        }
    }
    let mut out = Vec::with_capacity(rank);
    out.push(xs.as_ref().map_or(Dim::Unknown, |s| s[0].clone()));
    out.push(m);
    for i in 0..n {
        let d = xs.as_ref().map_or(&Dim::Unknown, |s| &s[2 + i]);
        out.push(win.out(d, i)?);
    }
    Ok(Some(out))
}

pub(crate) fn show_dims(dims: &[Dim]) -> String {
    format!("[{}]", dims.iter().map(Dim::to_string).collect::<Vec<_>>().join(","))
}

/// Checks that two inputs that must share an element type do.
pub(crate) fn same_dtype(ctx: &Ctx, a: usize, b: usize) -> R<Option<DType>> {
    match (ctx.dtype(a), ctx.dtype(b)) {
        (Some(x), Some(y)) if x != y => Err(format!("inputs {a} and {b} have different types {x} and {y}")),
        (x, y) => Ok(x.or(y)),
    }
}

pub(crate) fn conv(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = same_dtype(ctx, 0, 1)?;
    one(dtype, conv_shape(ctx, 0, 1, Some(2))?)
}

pub(crate) fn conv_transpose(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = same_dtype(ctx, 0, 1)?;
    let (xs, ws) = (ctx.shape(0), ctx.shape(1));
    let Some(rank) = conv_rank(xs.as_deref(), ws.as_deref())? else {
        return one(dtype, UNRANKED);
    };
    let n = rank - 2;
    let win = window(ctx, kernel_of(ctx, ws.as_deref(), n)?)?;
    let group = group(ctx)?;
    let m = match &ws {
        Some(w) => dims::mul(&w[1], &Dim::Known(group))?,
        None => Dim::Unknown,
    };
    if let (Some(c), Some(wc)) = (xs.as_ref().and_then(|s| s[1].known()), ws.as_ref().and_then(|s| s[0].known())) {
        if c != wc {
            return Err(format!("input has {c} channels but the weight has {wc}"));
        }
    }
    let output_padding = int_list(ctx, "output_padding", n, 0)?;
    let output_shape = match ctx.attr_ints("output_shape") {
        None => None,
        Some(s) if s.len() == n => Some(s),
        // Older exporters wrote the full shape; its spatial part is what counts.
        Some(s) if s.len() == rank => Some(&s[2..]),
        Some(s) => return Err(format!("attribute output_shape has {} values, expected {n}", s.len())),
    };
    let mut out = vec![xs.as_ref().map_or(Dim::Unknown, |s| s[0].clone()), m];
    for i in 0..n {
        if let Some(os) = output_shape {
            if os[i] < 0 {
                return Err(format!("attribute output_shape has negative value {}", os[i]));
            }
            out.push(Dim::Known(os[i]));
            continue;
        }
        let d = xs.as_ref().map_or(Dim::Unknown, |s| s[2 + i].clone());
        let s = win.strides[i] as i128;
        let op = output_padding[i] as i128;
        if op < 0 {
            return Err(format!("attribute output_padding has negative value {op}"));
        }
        let dim = match (win.auto_pad, d.known(), win.extent(i)) {
            (AutoPad::SameUpper | AutoPad::SameLower, Some(x), _) => Dim::Known(to_i64(x as i128 * s, "output size")?),
            (AutoPad::SameUpper | AutoPad::SameLower, None, _) => {
                if s == 1 {
                    d
                } else {
                    Dim::Unknown
                }
            }
            (_, _, None) => Dim::Unknown,
            (_, Some(x), Some(eff)) => {
                let (pb, pe) = win.pads(i);
                let v = s * (x as i128 - 1) + op + eff - pb - pe;
                if v < 0 {
                    return Err(format!("output size {v} on spatial axis {i} is negative"));
                }
                Dim::Known(to_i64(v, "output size")?)
            }
            (_, None, Some(eff)) => {
                let (pb, pe) = win.pads(i);
                if s == 1 && op + eff - 1 - pb - pe == 0 {
                    d
                } else {
                    Dim::Unknown
                }
            }
        };
        out.push(dim);
    }
    one(dtype, Some(out))
}

/// Output shape of a pool over `x` with the node's `kernel_shape` (channels first or last).
pub(crate) fn pool_shape(ctx: &Ctx, xs: Option<&[Dim]>, channels_last: bool) -> R<Option<Vec<Dim>>> {
    let kernel = ctx.attr_ints("kernel_shape").ok_or("attribute kernel_shape is missing")?;
    let n = kernel.len();
    if n == 0 {
        return Err("attribute kernel_shape is empty".into());
    }
    if let Some(xs) = &xs {
        if xs.len() != n + 2 {
            return Err(format!(
                "kernel_shape has {n} values but the input has rank {} (expected {})",
                xs.len(),
                n + 2
            ));
        }
    }
    let win = window(ctx, kernel.iter().map(|&k| Some(k)).collect())?;
    let Some(xs) = xs else {
        return Ok(Some(vec![Dim::Unknown; n + 2]));
    };
    let first = if channels_last { 1 } else { 2 };
    let mut out = xs.to_vec();
    for i in 0..n {
        out[first + i] = win.out(&xs[first + i], i)?;
    }
    Ok(Some(out))
}

/// MaxPool (with its optional Indices output) and AveragePool.
pub(crate) fn pool(ctx: &Ctx) -> R<OutputTypes> {
    let shape = pool_shape(ctx, ctx.shape(0).as_deref(), false)?;
    let mut out = vec![ty(ctx.dtype(0), shape.clone())];
    if ctx.node.op == Op::MaxPool {
        out.push(ty(Some(DType::I64), shape));
    }
    Ok(out)
}

/// `[N, C, 1, ...]` (or `[N, 1, ..., C]` channels last).
pub(crate) fn global_pool_shape(xs: Option<&[Dim]>, channels_last: bool) -> R<Option<Vec<Dim>>> {
    let Some(xs) = xs else { return Ok(None) };
    let mut xs = xs.to_vec();
    let r = xs.len();
    if r < 2 {
        return Err(format!("input must have rank >= 2 (N, C, ...), not {r}"));
    }
    let spatial = if channels_last { 1..r - 1 } else { 2..r };
    for d in &mut xs[spatial] {
        *d = Dim::Known(1);
    }
    Ok(Some(xs))
}

pub(crate) fn global_pool(ctx: &Ctx) -> R<OutputTypes> {
    one(ctx.dtype(0), global_pool_shape(ctx.shape(0).as_deref(), false)?)
}

pub(crate) fn batch_norm(ctx: &Ctx) -> R<OutputTypes> {
    let xs = ctx.shape(0);
    let c = match &xs {
        Some(s) if s.len() < 2 => return Err(format!("input must have rank >= 2 (N, C, ...), not {}", s.len())),
        Some(s) => s[1].clone(),
        None => Dim::Unknown,
    };
    let names = ["scale", "B", "input_mean", "input_var"];
    for (i, name) in names.iter().enumerate() {
        if let Some(s) = ctx.shape(i + 1) {
            match &s[..] {
                [d] if dims::unify(d, &c).is_some() => {}
                _ => return Err(format!("{name} has shape {} but the input has {c} channels", show_dims(&s))),
            }
        }
    }
    let x = ty(ctx.dtype(0), xs);
    // Running and saved statistics: one value per channel, typed like the mean input.
    let stat = ty(ctx.dtype(3).or(ctx.dtype(0)), Some(vec![c]));
    let extra = if ctx.opset >= 14 { 2 } else { 4 };
    let mut out = vec![x];
    out.extend(std::iter::repeat_n(stat, extra));
    Ok(out)
}

pub(crate) fn layer_norm(ctx: &Ctx) -> R<OutputTypes> {
    let xs = ctx.shape(0);
    let code = ctx.attr_int("stash_type").unwrap_or(1);
    let stash = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx)
        .ok_or_else(|| format!("attribute stash_type: unknown data type {code}"))?;
    let stats = match &xs {
        Some(s) => {
            let axis = dims::axis(ctx.attr_int("axis").unwrap_or(-1), s.len(), "axis")?;
            let mut m = s.to_vec();
            for d in &mut m[axis..] {
                *d = Dim::Known(1);
            }
            Some(m)
        }
        None => None,
    };
    let stat = ty(Some(stash), stats);
    Ok(vec![ty(ctx.dtype(0), xs), stat.clone(), stat])
}

/// numpy `matmul` shapes: 1-D operands are promoted and the added dim removed again; batch dims
/// broadcast.
pub(crate) fn matmul_dims(a: &[Dim], b: &[Dim]) -> R<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        return Err("matrix product inputs must have rank >= 1".into());
    }
    let a2: Vec<Dim> = if a.len() == 1 { vec![Dim::Known(1), a[0].clone()] } else { a.to_vec() };
    let b2: Vec<Dim> = if b.len() == 1 { vec![b[0].clone(), Dim::Known(1)] } else { b.to_vec() };
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if dims::unify(ka, kb).is_none() {
        return Err(format!("inner dimensions differ: {} x {}", show_dims(a), show_dims(b)));
    }
    let mut out = dims::broadcast(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}

pub(crate) fn matmul_shape(ctx: &Ctx, a: usize, b: usize) -> R<Option<Vec<Dim>>> {
    match (ctx.shape(a), ctx.shape(b)) {
        (Some(x), Some(y)) => Ok(Some(matmul_dims(&x, &y)?)),
        _ => Ok(None),
    }
}

pub(crate) fn matmul(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = same_dtype(ctx, 0, 1)?;
    one(dtype, matmul_shape(ctx, 0, 1)?)
}

/// `[M, N]` of a Gemm with inputs `a`, `b` and optional `c` (transA/transB attributes).
pub(crate) fn gemm_shape(ctx: &Ctx, a: usize, b: usize, c: Option<usize>) -> R<Option<Vec<Dim>>> {
    let (ta, tb) = (ctx.attr_int("transA").unwrap_or(0) != 0, ctx.attr_int("transB").unwrap_or(0) != 0);
    let two = |i: usize, what: &str| -> R<Option<Arc<[Dim]>>> {
        match ctx.shape(i) {
            Some(s) if s.len() != 2 => Err(format!("{what} must have rank 2, not {}", s.len())),
            s => Ok(s),
        }
    };
    let (sa, sb) = (two(a, "A")?, two(b, "B")?);
    let pick = |s: &Option<Arc<[Dim]>>, i: usize| s.as_ref().map_or(Dim::Unknown, |s| s[i].clone());
    let (m, ka) = (pick(&sa, usize::from(ta)), pick(&sa, usize::from(!ta)));
    let (kb, n) = (pick(&sb, usize::from(tb)), pick(&sb, usize::from(!tb)));
    if dims::unify(&ka, &kb).is_none() {
        return Err(format!("inner dimensions differ: K is {ka} in A and {kb} in B"));
    }
    let out = vec![m, n];
    if let Some(sc) = c.filter(|&c| ctx.has(c)).and_then(|c| ctx.shape(c)) {
        // C must broadcast to [M, N] in one direction.
        let ok = sc.len() <= 2
            && sc.iter().rev().zip(out.iter().rev()).all(|(c, o)| match (c.known(), o.known()) {
                (Some(cv), Some(ov)) => cv == 1 || cv == ov,
                _ => true,
            });
        if !ok {
            return Err(format!("C of shape {} does not broadcast to {}", show_dims(&sc), show_dims(&out)));
        }
    }
    Ok(Some(out))
}

pub(crate) fn gemm(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = same_dtype(ctx, 0, 1)?;
    one(dtype, gemm_shape(ctx, 0, 1, Some(2))?)
}

#[cfg(test)]
mod tests {
    use crate::attr::{make_int, make_ints, make_string};
    use crate::builder::GraphBuilder;
    use crate::dtype::DType;
    use crate::graph::{Graph, Operand};
    use crate::infer::show;
    use crate::op::Op;

    fn ty(g: &Graph, o: Operand) -> String {
        show(g.operand_type(o).as_ref())
    }

    fn conv_graph(x: &[&str], w: &[i64], attrs: Vec<crate::proto::AttributeProto>) -> Result<String, String> {
        let mut b = GraphBuilder::new(17);
        let xi = b.input("x", DType::F32, x);
        let n: i64 = w.iter().product();
        let wi = b.const_f32("w", w, &vec![0.0; n as usize]);
        let y = b.node(Op::Conv, &[xi, wi]).name("conv").attrs(attrs).out1();
        b.output(y);
        b.finish().map(|g| ty(&g, y)).map_err(|e| e.to_string())
    }

    #[test]
    fn conv_shapes() {
        let pads = || make_ints("pads", &[1, 1, 1, 1]);
        assert_eq!(conv_graph(&["N", "3", "32", "32"], &[16, 3, 3, 3], vec![pads()]).unwrap(), "f32[N,16,32,32]");
        let s2 = make_ints("strides", &[2, 2]);
        assert_eq!(
            conv_graph(&["N", "3", "32", "32"], &[16, 3, 3, 3], vec![pads(), s2.clone()]).unwrap(),
            "f32[N,16,16,16]"
        );
        assert_eq!(conv_graph(&["N", "3", "33", "32"], &[16, 3, 3, 3], vec![s2.clone()]).unwrap(), "f32[N,16,16,15]");
        let dil = make_ints("dilations", &[2, 2]);
        assert_eq!(conv_graph(&["1", "3", "10", "10"], &[4, 3, 3, 3], vec![dil]).unwrap(), "f32[1,4,6,6]");
        // Depthwise.
        let g = make_int("group", 32);
        assert_eq!(conv_graph(&["N", "32", "H", "W"], &[32, 1, 3, 3], vec![g, pads()]).unwrap(), "f32[N,32,H,W]");
        assert_eq!(conv_graph(&["N", "3", "H", "W"], &[8, 3, 3, 3], vec![]).unwrap(), "f32[N,8,?,?]");
        // 1-D and 3-D.
        assert!(conv_graph(&["N", "4", "100"], &[8, 4, 5], vec![s2.clone()])
            .unwrap_err()
            .contains("strides has 2 values"));
        assert_eq!(conv_graph(&["N", "4", "100"], &[8, 4, 5], vec![]).unwrap(), "f32[N,8,96]");
        assert_eq!(conv_graph(&["N", "4", "8", "8", "8"], &[8, 4, 1, 1, 1], vec![]).unwrap(), "f32[N,8,8,8,8]");
    }

    #[test]
    fn conv_auto_pad() {
        let ap = |s: &str| make_string("auto_pad", s);
        let s2 = || make_ints("strides", &[2, 2]);
        assert_eq!(
            conv_graph(&["N", "3", "7", "8"], &[4, 3, 3, 3], vec![ap("SAME_UPPER"), s2()]).unwrap(),
            "f32[N,4,4,4]"
        );
        assert_eq!(
            conv_graph(&["N", "3", "7", "8"], &[4, 3, 3, 3], vec![ap("SAME_LOWER"), s2()]).unwrap(),
            "f32[N,4,4,4]"
        );
        assert_eq!(conv_graph(&["N", "3", "7", "8"], &[4, 3, 3, 3], vec![ap("VALID"), s2()]).unwrap(), "f32[N,4,3,3]");
        assert_eq!(conv_graph(&["N", "3", "H", "8"], &[4, 3, 3, 3], vec![ap("SAME_UPPER")]).unwrap(), "f32[N,4,H,8]");
        // auto_pad wins over pads.
        let pads = make_ints("pads", &[5, 5, 5, 5]);
        assert_eq!(conv_graph(&["N", "3", "7", "8"], &[4, 3, 3, 3], vec![ap("VALID"), pads]).unwrap(), "f32[N,4,5,6]");
        assert!(conv_graph(&["N", "3", "7", "8"], &[4, 3, 3, 3], vec![ap("SAME")])
            .unwrap_err()
            .contains("unknown value 'SAME'"));
    }

    #[test]
    fn conv_errors() {
        let e = conv_graph(&["N", "4", "8", "8"], &[16, 3, 3, 3], vec![]).unwrap_err();
        assert!(e.contains("input has 4 channels but the weight expects 3 x group 1"), "{e}");
        let e = conv_graph(&["N", "3", "2", "8"], &[16, 3, 3, 3], vec![]).unwrap_err();
        assert!(e.contains("kernel extent 3 is larger than the padded input 2"), "{e}");
        let e = conv_graph(&["N", "3", "8"], &[16, 3, 3, 3], vec![]).unwrap_err();
        assert!(e.contains("input has rank 3 but weight has rank 4"), "{e}");
        let e =
            conv_graph(&["N", "3", "8", "8"], &[16, 3, 3, 3], vec![make_ints("kernel_shape", &[5, 5])]).unwrap_err();
        assert!(e.contains("disagrees"), "{e}");
        let e = conv_graph(&["N", "3", "8", "8"], &[16, 3, 3, 3], vec![make_ints("strides", &[0, 1])]).unwrap_err();
        assert!(e.contains("strides has invalid value 0"), "{e}");
        // Absurd dims overflow cleanly.
        let huge = (1i64 << 62).to_string();
        let e = conv_graph(&["N", "3", &huge, "8"], &[16, 3, 3, 3], vec![make_ints("pads", &[1 << 62, 0, 1 << 62, 0])])
            .unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3", "8", "8"]);
        let w = b.const_f32("w", &[4, 3, 1, 1], &[0.0; 12]);
        let bias = b.const_f32("b", &[5], &[0.0; 5]);
        let y = b.node(Op::Conv, &[x, w, bias]).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("bias has shape [5] but there are 4 output channels"));
    }

    #[test]
    fn conv_transpose_shapes() {
        let run = |x: &[&str], w: &[i64], attrs: Vec<crate::proto::AttributeProto>| {
            let mut b = GraphBuilder::new(17);
            let xi = b.input("x", DType::F32, x);
            let n: i64 = w.iter().product();
            let wi = b.const_f32("w", w, &vec![0.0; n as usize]);
            let y = b.node(Op::ConvTranspose, &[xi, wi]).attrs(attrs).out1();
            b.output(y);
            b.finish().map(|g| ty(&g, y)).map_err(|e| e.to_string())
        };
        let s2 = || make_ints("strides", &[2, 2]);
        assert_eq!(run(&["N", "8", "5", "5"], &[8, 4, 3, 3], vec![]).unwrap(), "f32[N,4,7,7]");
        assert_eq!(
            run(&["N", "8", "5", "5"], &[8, 4, 3, 3], vec![s2(), make_ints("pads", &[1, 1, 1, 1])]).unwrap(),
            "f32[N,4,9,9]"
        );
        assert_eq!(
            run(
                &["N", "8", "5", "5"],
                &[8, 4, 3, 3],
                vec![s2(), make_ints("pads", &[1, 1, 1, 1]), make_ints("output_padding", &[1, 1])]
            )
            .unwrap(),
            "f32[N,4,10,10]"
        );
        assert_eq!(
            run(
                &["N", "8", "5", "5"],
                &[8, 2, 3, 3],
                vec![s2(), make_string("auto_pad", "SAME_UPPER"), make_int("group", 2)]
            )
            .unwrap(),
            "f32[N,4,10,10]"
        );
        assert_eq!(
            run(&["N", "8", "5", "5"], &[8, 4, 3, 3], vec![make_ints("output_shape", &[12, 11])]).unwrap(),
            "f32[N,4,12,11]"
        );
        assert_eq!(
            run(&["N", "8", "H", "5"], &[8, 4, 3, 3], vec![make_ints("pads", &[1, 1, 1, 1])]).unwrap(),
            "f32[N,4,H,5]"
        );
        assert!(run(&["N", "3", "5", "5"], &[8, 4, 3, 3], vec![])
            .unwrap_err()
            .contains("input has 3 channels but the weight has 8"));
    }

    fn pool_graph(op: Op, x: &[&str], attrs: Vec<crate::proto::AttributeProto>) -> Result<Vec<String>, String> {
        let mut b = GraphBuilder::new(19);
        let xi = b.input("x", DType::F32, x);
        let n = if op == Op::MaxPool { 2 } else { 1 };
        let ys = b.node(op, &[xi]).name("pool").attrs(attrs).outs(n);
        for &y in &ys {
            b.output(y);
        }
        b.finish().map(|g| ys.iter().map(|&y| ty(&g, y)).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn pools() {
        let k = |v: &[i64]| make_ints("kernel_shape", v);
        let s = |v: &[i64]| make_ints("strides", v);
        assert_eq!(
            pool_graph(Op::MaxPool, &["N", "16", "32", "32"], vec![k(&[2, 2]), s(&[2, 2])]).unwrap(),
            ["f32[N,16,16,16]", "i64[N,16,16,16]"]
        );
        assert_eq!(
            pool_graph(Op::AveragePool, &["N", "16", "7", "7"], vec![k(&[3, 3]), s(&[2, 2])]).unwrap(),
            ["f32[N,16,3,3]"]
        );
        // ceil_mode, and the window that would start in the right padding is dropped.
        let ceil = || make_int("ceil_mode", 1);
        assert_eq!(
            pool_graph(Op::MaxPool, &["N", "16", "7", "7"], vec![k(&[2, 2]), s(&[2, 2]), ceil()]).unwrap()[0],
            "f32[N,16,4,4]"
        );
        assert_eq!(
            pool_graph(Op::MaxPool, &["1", "1", "5"], vec![k(&[2]), s(&[2]), make_ints("pads", &[1, 1]), ceil()])
                .unwrap()[0],
            "f32[1,1,3]"
        );
        assert_eq!(
            pool_graph(Op::MaxPool, &["1", "1", "4"], vec![k(&[2]), s(&[2]), make_ints("pads", &[1, 1]), ceil()])
                .unwrap()[0],
            "f32[1,1,3]"
        );
        // dilations
        assert_eq!(
            pool_graph(Op::MaxPool, &["1", "1", "10"], vec![k(&[3]), make_ints("dilations", &[2])]).unwrap()[0],
            "f32[1,1,6]"
        );
        // auto_pad
        let ap = |v: &str| make_string("auto_pad", v);
        assert_eq!(
            pool_graph(Op::AveragePool, &["N", "1", "7"], vec![k(&[3]), s(&[2]), ap("SAME_UPPER")]).unwrap()[0],
            "f32[N,1,4]"
        );
        assert_eq!(
            pool_graph(Op::AveragePool, &["N", "1", "7"], vec![k(&[3]), s(&[2]), ap("SAME_LOWER")]).unwrap()[0],
            "f32[N,1,4]"
        );
        assert_eq!(
            pool_graph(Op::AveragePool, &["N", "1", "7"], vec![k(&[3]), s(&[2]), ap("VALID")]).unwrap()[0],
            "f32[N,1,3]"
        );
        assert_eq!(
            pool_graph(Op::AveragePool, &["N", "1", "7"], vec![k(&[3]), s(&[2]), ap("VALID"), ceil()]).unwrap()[0],
            "f32[N,1,3]"
        );
        // errors
        assert!(pool_graph(Op::MaxPool, &["N", "16", "32"], vec![k(&[2, 2])])
            .unwrap_err()
            .contains("input has rank 3 (expected 4)"));
        assert!(pool_graph(Op::MaxPool, &["N", "16", "32"], vec![]).unwrap_err().contains("kernel_shape is missing"));
        assert!(pool_graph(Op::MaxPool, &["N", "16", "1"], vec![k(&[2])])
            .unwrap_err()
            .contains("larger than the padded input"));
    }

    #[test]
    fn global_pools() {
        for op in [Op::GlobalAveragePool, Op::GlobalMaxPool] {
            let mut b = GraphBuilder::new(17);
            let x = b.input("x", DType::F32, &["N", "16", "7", "H"]);
            let y = b.node(op, &[x]).out1();
            b.output(y);
            let g = b.finish().unwrap();
            assert_eq!(ty(&g, y), "f32[N,16,1,1]");
        }
    }

    #[test]
    fn batch_norm_outputs() {
        let build = |opset: i64, n_out: usize, mean_ty: DType| {
            let mut b = GraphBuilder::new(opset);
            let x = b.input("x", DType::F32, &["N", "4", "8", "8"]);
            let s = b.const_f32("s", &[4], &[1.0; 4]);
            let bias = b.const_f32("b", &[4], &[0.0; 4]);
            let m = b.tensor("m", crate::tensor::Tensor::from_i64("", mean_ty, &[4], &[0; 4]));
            let v = b.const_f32("v", &[4], &[1.0; 4]);
            let ys = b.node(Op::BatchNormalization, &[x, s, bias, m, v]).attr(make_int("training_mode", 1)).outs(n_out);
            for &y in &ys {
                b.output(y);
            }
            b.finish().map(|g| ys.iter().map(|&y| ty(&g, y)).collect::<Vec<_>>()).map_err(|e| e.to_string())
        };
        assert_eq!(build(15, 3, DType::F32).unwrap(), ["f32[N,4,8,8]", "f32[4]", "f32[4]"]);
        assert_eq!(build(9, 5, DType::F32).unwrap(), ["f32[N,4,8,8]", "f32[4]", "f32[4]", "f32[4]", "f32[4]"]);
        assert!(build(15, 5, DType::F32).unwrap_err().contains("at most 3"));

        let mut b = GraphBuilder::new(15);
        let x = b.input("x", DType::F32, &["N", "4", "8", "8"]);
        let s = b.const_f32("s", &[3], &[1.0; 3]);
        let y = b.node(Op::BatchNormalization, &[x, s, s, s, s]).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("scale has shape [3] but the input has 4 channels"));
    }

    #[test]
    fn layer_norm_outputs() {
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F16, &["N", "16", "64"]);
        let s = b.tensor("s", crate::tensor::Tensor::from_raw("", DType::F16, &[64], vec![0u8; 128].into()));
        let ys = b.node(Op::LayerNormalization, &[x, s]).attr(make_int("axis", 1)).outs(3);
        for &y in &ys {
            b.output(y);
        }
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, ys[0]), "f16[N,16,64]");
        assert_eq!(ty(&g, ys[1]), "f32[N,1,1]");
        assert_eq!(ty(&g, ys[2]), "f32[N,1,1]");
    }

    fn matmul_graph(a: &[&str], b_: &[&str]) -> Result<String, String> {
        let mut b = GraphBuilder::new(17);
        let x = b.input("a", DType::F32, a);
        let y = b.input("b", DType::F32, b_);
        let z = b.node(Op::MatMul, &[x, y]).name("mm").out1();
        b.output(z);
        b.finish().map(|g| ty(&g, z)).map_err(|e| e.to_string())
    }

    #[test]
    fn matmul_shapes() {
        assert_eq!(matmul_graph(&["N", "16", "64"], &["64", "32"]).unwrap(), "f32[N,16,32]");
        assert_eq!(matmul_graph(&["N", "4", "16", "16"], &["N", "4", "16", "8"]).unwrap(), "f32[N,4,16,8]");
        assert_eq!(matmul_graph(&["3", "1", "4", "5"], &["2", "5", "6"]).unwrap(), "f32[3,2,4,6]");
        assert_eq!(matmul_graph(&["5"], &["N", "5", "6"]).unwrap(), "f32[N,6]");
        assert_eq!(matmul_graph(&["N", "4", "5"], &["5"]).unwrap(), "f32[N,4]");
        assert_eq!(matmul_graph(&["5"], &["5"]).unwrap(), "f32[]");
        assert!(matmul_graph(&["N", "4", "5"], &["6", "2"])
            .unwrap_err()
            .contains("inner dimensions differ: [N,4,5] x [6,2]"));
        assert!(matmul_graph(&["2", "4", "5"], &["3", "5", "2"]).unwrap_err().contains("cannot broadcast"));
        assert!(matmul_graph(&[], &["3"]).unwrap_err().contains("rank >= 1"));
    }

    #[test]
    fn gemm_shapes() {
        let run = |a: &[&str], bs: &[&str], c: Option<&[i64]>, ta: i64, tb: i64| {
            let mut b = GraphBuilder::new(17);
            let x = b.input("a", DType::F32, a);
            let y = b.input("b", DType::F32, bs);
            let mut ins = vec![x, y];
            if let Some(c) = c {
                let n: i64 = c.iter().product();
                ins.push(b.const_f32("c", c, &vec![0.0; n as usize]));
            }
            let z = b.node(Op::Gemm, &ins).attrs(vec![make_int("transA", ta), make_int("transB", tb)]).out1();
            b.output(z);
            b.finish().map(|g| ty(&g, z)).map_err(|e| e.to_string())
        };
        assert_eq!(run(&["N", "16"], &["10", "16"], Some(&[10]), 0, 1).unwrap(), "f32[N,10]");
        assert_eq!(run(&["16", "N"], &["16", "10"], None, 1, 0).unwrap(), "f32[N,10]");
        assert!(run(&["N", "16"], &["16", "10"], None, 0, 1).unwrap_err().contains("K is 16 in A and 10 in B"));
        assert!(run(&["N", "16", "1"], &["16", "10"], None, 0, 0).unwrap_err().contains("A must have rank 2"));
        assert!(run(&["N", "16"], &["16", "10"], Some(&[3]), 0, 0).unwrap_err().contains("does not broadcast"));
    }
}
