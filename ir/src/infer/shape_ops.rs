//! Ops that move, select or reduce data: Reshape, Flatten, Transpose, Squeeze/Unsqueeze,
//! Concat, Slice, Gather, Split, Pad, Resize, DepthToSpace/SpaceToDepth, Expand, Tile, Shape,
//! reductions.

use super::dims::{self, R};
use super::nn::show_dims;
use super::{one, ty, Ctx, OutputTypes, UNRANKED};
use crate::dtype::DType;
use crate::graph::Dim;
use crate::op::Op;
use std::sync::Arc;

/// Ranks taken from the length of a non-constant shape-like input are believed up to this.
const MAX_RANK: i64 = 1 << 12;

/// A list-valued operand: given and constant, given but not constant, or absent.
enum List {
    Known(Vec<i64>),
    Unknown,
    Absent,
}

/// The list in attribute `attr` (older opsets) or constant input `input` (newer ones).
fn list(ctx: &Ctx, attr: &str, input: usize) -> R<List> {
    if let Some(v) = ctx.attr_ints(attr) {
        return Ok(List::Known(v.to_vec()));
    }
    if !ctx.has(input) {
        return Ok(List::Absent);
    }
    Ok(match ctx.const_ints(input)? {
        Some(v) => List::Known(v),
        None => List::Unknown,
    })
}

/// The length of a 1-D input, from its type.
fn input_len(ctx: &Ctx, i: usize) -> Option<usize> {
    match *ctx.shape(i)? {
        [Dim::Known(k)] if k <= MAX_RANK => Some(k as usize),
        _ => None,
    }
}

pub(crate) fn reshape(ctx: &Ctx) -> R<OutputTypes> {
    let (dtype, xs) = (ctx.dtype(0), ctx.shape(0));
    let target = match list(ctx, "shape", 1)? {
        List::Known(t) => t,
        List::Unknown => return one(dtype, input_len(ctx, 1).map(|r| vec![Dim::Unknown; r])),
        List::Absent => return Err("the target shape is missing".into()),
    };
    let allowzero = ctx.attr_int("allowzero").unwrap_or(0) != 0;
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        let d = match t {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(format!("target shape {target:?} has more than one -1"));
                }
                Dim::Unknown
            }
            0 if !allowzero => match &xs {
                Some(x) if i < x.len() => x[i].clone(),
                Some(x) => {
                    return Err(format!(
                        "target shape {target:?} copies dim {i} (0) but the input has rank {}",
                        x.len()
                    ))
                }
                None => Dim::Unknown,
            },
            t if t < -1 => return Err(format!("target shape {target:?} has invalid value {t}")),
            t => Dim::Known(t),
        };
        out.push(d);
    }
    if allowzero && infer_at.is_some() && target.contains(&0) {
        return Err(format!("target shape {target:?} has both -1 and 0 with allowzero=1"));
    }
    if let Some(xs) = &xs {
        let whole = dims::product(xs.iter())?;
        let bad = |why: String| format!("cannot reshape {} to {target:?}: {why}", show_dims(xs));
        match infer_at {
            Some(at) => {
                let part = dims::product(out.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, d)| d))?;
                if let Some(d) = dims::quotient(&whole, &part).map_err(bad)? {
                    out[at] = d;
                }
            }
            None => {
                let p = dims::product(&out)?;
                if dims::surely_differ(&whole, &p) {
                    return Err(bad(format!("{} elements != {}", whole.known, p.known)));
                }
            }
        }
    }
    one(dtype, Some(out))
}

pub(crate) fn flatten(ctx: &Ctx) -> R<OutputTypes> {
    let shape = match ctx.shape(0) {
        Some(xs) => {
            let a = dims::axis_incl(ctx.attr_int("axis").unwrap_or(1), xs.len(), "axis")?;
            vec![dims::product(&xs[..a])?.dim(), dims::product(&xs[a..])?.dim()]
        }
        None => vec![Dim::Unknown, Dim::Unknown],
    };
    one(ctx.dtype(0), Some(shape))
}

pub(crate) fn transpose(ctx: &Ctx) -> R<OutputTypes> {
    let perm = ctx.attr_ints("perm");
    let Some(xs) = ctx.shape(0) else {
        return one(ctx.dtype(0), perm.map(|p| vec![Dim::Unknown; p.len()]));
    };
    let r = xs.len();
    let perm: Vec<i64> = match perm {
        Some(p) => p.to_vec(),
        None => (0..r as i64).rev().collect(),
    };
    let mut seen = vec![false; r];
    let ok = perm.len() == r
        && perm.iter().all(|&p| p >= 0 && (p as usize) < r && !std::mem::replace(&mut seen[p as usize], true));
    if !ok {
        return Err(format!("perm {perm:?} is not a permutation of the {r} input axes"));
    }
    one(ctx.dtype(0), Some(perm.iter().map(|&p| xs[p as usize].clone()).collect::<Vec<_>>()))
}

pub(crate) fn squeeze(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, UNRANKED);
    };
    let axes = match list(ctx, "axes", 1)? {
        List::Unknown => return one(dtype, UNRANKED),
        List::Absent => None,
        List::Known(a) => Some(a),
    };
    let out: Vec<_> = match axes {
        None => {
            // Without axes every size-1 dim goes; an unknown dim might be 1.
            if xs.iter().any(|d| d.known().is_none()) {
                return one(dtype, UNRANKED);
            }
            xs.iter().filter(|d| **d != Dim::Known(1)).cloned().collect()
        }
        Some(a) => {
            let axes = dims::axes(&a, xs.len(), "axis")?;
            for &i in &axes {
                if let Dim::Known(v) = xs[i] {
                    if v != 1 {
                        return Err(format!("cannot squeeze axis {i} of size {v}"));
                    }
                }
            }
            xs.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d.clone()).collect()
        }
    };
    one(dtype, Some(out))
}

pub(crate) fn unsqueeze(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let xs = ctx.shape(0);
    let axes = match list(ctx, "axes", 1)? {
        List::Known(a) => a,
        List::Unknown => {
            let rank = xs.as_ref().zip(input_len(ctx, 1)).map(|(x, k)| x.len() + k);
            return one(dtype, rank.map(|r| vec![Dim::Unknown; r]));
        }
        List::Absent => return Err("axes are missing".into()),
    };
    let Some(xs) = xs else {
        return one(dtype, UNRANKED);
    };
    let r = xs.len() + axes.len();
    let axes = dims::axes(&axes, r, "axis")?;
    let mut inputs = xs.iter().cloned();
    let out: Vec<_> = (0..r).map(|i| if axes.contains(&i) { Dim::Known(1) } else { inputs.next().unwrap() }).collect();
    one(dtype, Some(out))
}

/// Concatenation of inputs `parts` along the `axis` attribute.
pub(crate) fn concat_shape(ctx: &Ctx, parts: &[usize]) -> R<Option<Vec<Dim>>> {
    let axis = ctx.attr_int("axis").ok_or("attribute axis is missing")?;
    let shapes: Vec<Option<Arc<[Dim]>>> = parts.iter().map(|&i| ctx.shape(i)).collect();
    let Some(first) = shapes.iter().flatten().next() else {
        return Ok(None);
    };
    let r = first.len();
    let a = dims::axis(axis, r, "axis")?;
    let mut out = vec![Dim::Unknown; r];
    let mut total = Some(0i64);
    for (k, s) in shapes.iter().enumerate() {
        let Some(s) = s else {
            total = None;
            continue;
        };
        if s.len() != r {
            return Err(format!("input {} has rank {} but input {} has rank {r}", parts[k], s.len(), parts[0]));
        }
        for (i, d) in s.iter().enumerate() {
            if i == a {
                total = match (total, d.known()) {
                    (Some(t), Some(v)) => Some(t.checked_add(v).ok_or_else(|| dims::overflow("concatenated size"))?),
                    _ => None,
                };
            } else {
                out[i] = dims::unify(&out[i], d).ok_or_else(|| {
                    format!("inputs differ in dimension {i} ({} vs {d}) outside the concat axis {a}", out[i])
                })?;
            }
        }
    }
    if let Some(t) = total {
        out[a] = Dim::Known(t);
    } else if parts.len() == 1 {
        out[a] = first[a].clone();
    }
    Ok(Some(out))
}

/// The one element type of inputs `parts` (an error if they disagree).
pub(crate) fn common_dtype(ctx: &Ctx, parts: &[usize]) -> R<Option<DType>> {
    let mut dtype = None;
    for &i in parts {
        if !ctx.has(i) {
            return Err(format!("input {i} is missing"));
        }
        match (dtype, ctx.dtype(i)) {
            (None, d) => dtype = d,
            (Some(a), Some(b)) if a != b => return Err(format!("inputs have different types {a} and {b}")),
            _ => {}
        }
    }
    Ok(dtype)
}

pub(crate) fn concat(ctx: &Ctx) -> R<OutputTypes> {
    let parts: Vec<usize> = (0..ctx.n_inputs()).collect();
    let dtype = common_dtype(ctx, &parts)?;
    one(dtype, concat_shape(ctx, &parts)?)
}

/// A slice of a dim whose size is not known keeps it only when it takes all of it.
fn slice_unknown(d: &Dim, start: i64, end: i64, step: i64) -> Dim {
    let whole =
        (step == 1 && start == 0 && end >= i32::MAX as i64) || (step == -1 && start == -1 && end <= i32::MIN as i64);
    if whole {
        d.clone()
    } else {
        Dim::Unknown
    }
}

/// The length of `d[start:end:step]` (ONNX Slice semantics: negative indices count from the
/// end, out-of-range ones are clamped).
fn slice_dim(d: &Dim, start: i64, end: i64, step: i64) -> Dim {
    let n = match *d {
        Dim::Known(n) if n >= 0 => n,
        _ => return slice_unknown(d, start, end, step),
    };
    let (n, step) = (n as i128, step as i128);
    let (mut s, mut e) = (start as i128, end as i128);
    if s < 0 {
        s += n;
    }
    if e < 0 {
        e += n;
    }
    let len = if step > 0 {
        let (s, e) = (s.clamp(0, n), e.clamp(0, n));
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else {
        let (s, e) = (s.max(0).min(n - 1), e.max(-1).min(n - 1));
        if s > e {
            (s - e - step - 1) / -step
        } else {
            0
        }
    };
    Dim::Known(len as i64)
}

pub(crate) fn slice(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let attr_form = ctx.opset < 10 || (ctx.n_inputs() == 1 && ctx.has_attr("starts"));
    let (starts, ends, axes, steps) = if attr_form {
        let get = |name: &str| ctx.attr_ints(name).map(|v| List::Known(v.to_vec()));
        let starts = get("starts").ok_or("attribute starts is missing")?;
        let ends = get("ends").ok_or("attribute ends is missing")?;
        (starts, ends, get("axes").unwrap_or(List::Absent), List::Absent)
    } else {
        let get = |i: usize| -> R<List> {
            if !ctx.has(i) {
                return Ok(List::Absent);
            }
            Ok(ctx.const_ints(i)?.map_or(List::Unknown, List::Known))
        };
        (get(1)?, get(2)?, get(3)?, get(4)?)
    };
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, UNRANKED);
    };
    let r = xs.len();
    let axes: Option<Vec<usize>> = match &axes {
        List::Known(a) => Some(dims::axes(a, r, "axis")?),
        List::Unknown => None,
        List::Absent => match (&starts, &ends) {
            (List::Known(s), _) | (_, List::Known(s)) => {
                Some(dims::axes(&(0..s.len() as i64).collect::<Vec<_>>(), r, "axis")?)
            }
            _ => None,
        },
    };
    let (List::Known(starts), List::Known(ends), Some(axes)) = (&starts, &ends, &axes) else {
        // Which axes change is known, or none is.
        let mut out = xs.to_vec();
        for (i, d) in out.iter_mut().enumerate() {
            if axes.as_ref().is_none_or(|a| a.contains(&i)) {
                *d = Dim::Unknown;
            }
        }
        return one(dtype, Some(out));
    };
    let steps = match steps {
        List::Known(s) => s,
        List::Absent => vec![1; starts.len()],
        List::Unknown => {
            let mut out = xs.to_vec();
            for &a in axes {
                out[a] = Dim::Unknown;
            }
            return one(dtype, Some(out));
        }
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(format!(
            "starts, ends, axes and steps have different lengths ({}, {}, {}, {})",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        ));
    }
    let mut out = xs.to_vec();
    for (k, &a) in axes.iter().enumerate() {
        if steps[k] == 0 {
            return Err("step 0 is not allowed".into());
        }
        out[a] = slice_dim(&out[a], starts[k], ends[k], steps[k]);
    }
    one(dtype, Some(out))
}

pub(crate) fn gather(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    if let Some(d) = ctx.dtype(1) {
        if !matches!(d, DType::I32 | DType::I64) {
            return Err(format!("indices must be i32 or i64, not {d}"));
        }
    }
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, UNRANKED);
    };
    if xs.is_empty() {
        return Err("data must have rank >= 1".into());
    }
    let a = dims::axis(ctx.attr_int("axis").unwrap_or(0), xs.len(), "axis")?;
    let Some(is) = ctx.shape(1) else {
        return one(dtype, UNRANKED);
    };
    let mut out = xs[..a].to_vec();
    out.extend_from_slice(&is);
    out.extend_from_slice(&xs[a + 1..]);
    one(dtype, Some(out))
}

pub(crate) fn split(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let n = ctx.node.outputs.len();
    let split = list(ctx, "split", 1)?;
    let num_outputs = ctx.attr_int("num_outputs");
    if let Some(k) = num_outputs {
        if !matches!(split, List::Absent) {
            return Err("split and num_outputs are both given".into());
        }
        if k != n as i64 {
            return Err(format!("num_outputs is {k} but the node has {n} outputs"));
        }
    }
    let Some(xs) = ctx.shape(0) else {
        return Ok(vec![ty(dtype, UNRANKED); n]);
    };
    let a = dims::axis(ctx.attr_int("axis").unwrap_or(0), xs.len(), "axis")?;
    let d = &xs[a];
    let sizes: Vec<Dim> = match split {
        List::Known(s) => {
            if s.len() != n {
                return Err(format!("split {s:?} has {} sizes but the node has {n} outputs", s.len()));
            }
            if let Some(v) = s.iter().find(|&&v| v < 0) {
                return Err(format!("split {s:?} has negative size {v}"));
            }
            let sum =
                s.iter().try_fold(0i64, |acc, &v| acc.checked_add(v)).ok_or_else(|| dims::overflow("split sum"))?;
            if d.known().is_some_and(|v| v != sum) {
                return Err(format!("split {s:?} sums to {sum} but axis {a} has size {d}"));
            }
            s.iter().map(|&v| Dim::Known(v)).collect()
        }
        List::Unknown => vec![Dim::Unknown; n],
        List::Absent if n == 1 => vec![d.clone()],
        List::Absent => match d.known() {
            None => vec![Dim::Unknown; n],
            Some(v) if num_outputs.is_some() || ctx.opset >= 18 => {
                // Equal chunks, the last one smaller when the size does not divide.
                let chunk = v / n as i64 + i64::from(v % n as i64 != 0);
                let last = v - chunk * (n as i64 - 1);
                if last < 0 {
                    return Err(format!("axis {a} of size {v} cannot be split into {n} chunks"));
                }
                (0..n).map(|i| Dim::Known(if i + 1 == n { last } else { chunk })).collect()
            }
            Some(v) => {
                if v % n as i64 != 0 {
                    return Err(format!("axis {a} of size {v} does not split evenly into {n} outputs"));
                }
                vec![Dim::Known(v / n as i64); n]
            }
        },
    };
    Ok(sizes
        .into_iter()
        .map(|s| {
            let mut o = xs.to_vec();
            o[a] = s;
            ty(dtype, Some(o))
        })
        .collect())
}

pub(crate) fn pad(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    match ctx.attr_string("mode").as_deref() {
        None | Some("constant" | "reflect" | "edge" | "wrap") => {}
        Some(m) => return Err(format!("attribute mode has unknown value '{m}'")),
    }
    let pads = if ctx.has(1) {
        list(ctx, "", 1)?
    } else {
        match ctx.attr_ints("pads").or(ctx.attr_ints("paddings")) {
            Some(p) => List::Known(p.to_vec()),
            None => return Err("pads are missing".into()),
        }
    };
    let axes = if ctx.has(3) { list(ctx, "", 3)? } else { List::Absent };
    let xs = match (ctx.shape(0), &pads, &axes) {
        (Some(xs), _, _) => xs,
        (None, List::Known(p), List::Absent) => return one(dtype, Some(vec![Dim::Unknown; p.len() / 2])),
        _ => return one(dtype, UNRANKED),
    };
    let r = xs.len();
    let axes: Vec<usize> = match axes {
        List::Absent => (0..r).collect(),
        List::Known(a) => dims::axes(&a, r, "axis")?,
        List::Unknown => return one(dtype, Some(vec![Dim::Unknown; r])),
    };
    let mut out = xs.to_vec();
    let List::Known(pads) = pads else {
        for &a in &axes {
            out[a] = Dim::Unknown;
        }
        return one(dtype, Some(out));
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return Err(format!("pads has {} values, expected {} (2 per padded axis)", pads.len(), 2 * k));
    }
    for (j, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[j] as i128, pads[j + k] as i128);
        out[a] = match out[a] {
            Dim::Known(v) => {
                let v = v as i128 + b + e;
                if v < 0 {
                    return Err(format!("padding axis {a} by ({b}, {e}) gives negative size {v}"));
                }
                Dim::Known(i64::try_from(v).map_err(|_| dims::overflow("padded size"))?)
            }
            ref d if b == 0 && e == 0 => d.clone(),
            _ => Dim::Unknown,
        };
    }
    one(dtype, Some(out))
}

/// Whether an optional input is given with at least one element (Resize passes empty
/// tensors for "not given").
fn non_empty(ctx: &Ctx, i: usize) -> bool {
    if !ctx.has(i) {
        return false;
    }
    match ctx.shape(i).as_deref() {
        Some([Dim::Known(0)]) => false,
        Some(s) => s.iter().all(|d| d.known() != Some(0)),
        None => true,
    }
}

pub(crate) fn resize(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    // Resize-10 takes (X, scales); later versions (X, roi, scales, sizes).
    let (scales_at, sizes_at) = if ctx.opset < 11 { (1, usize::MAX) } else { (2, 3) };
    let use_sizes = sizes_at != usize::MAX && non_empty(ctx, sizes_at);
    let use_scales = !use_sizes && non_empty(ctx, scales_at);
    if !use_sizes && !use_scales {
        return Err("needs scales or sizes".into());
    }
    let Some(xs) = ctx.shape(0) else {
        // The sizes give the rank (and the shape, without axes).
        if use_sizes && !ctx.has_attr("axes") {
            if let Some(s) = ctx.const_ints(sizes_at)? {
                return one(dtype, Some(s.into_iter().map(Dim::Known).collect::<Vec<_>>()));
            }
        }
        return one(dtype, UNRANKED);
    };
    let r = xs.len();
    let axes = match ctx.attr_ints("axes") {
        Some(a) => dims::axes(a, r, "axis")?,
        None => (0..r).collect(),
    };
    let mut out = xs.to_vec();
    let values_len = |len: usize, what: &str| -> R<()> {
        if len == axes.len() {
            Ok(())
        } else {
            Err(format!("{what} has {len} values, expected {}", axes.len()))
        }
    };
    if use_sizes {
        let Some(sizes) = ctx.const_ints(sizes_at)? else {
            for &a in &axes {
                out[a] = Dim::Unknown;
            }
            return one(dtype, Some(out));
        };
        values_len(sizes.len(), "sizes")?;
        if let Some(v) = sizes.iter().find(|&&v| v < 0) {
            return Err(format!("sizes has negative value {v}"));
        }
        let policy = ctx.attr_string("keep_aspect_ratio_policy");
        match policy.as_deref() {
            None | Some("stretch") => {
                for (k, &a) in axes.iter().enumerate() {
                    out[a] = Dim::Known(sizes[k]);
                }
            }
            Some(p @ ("not_larger" | "not_smaller")) => {
                // One scale for all axes; needs every input size along them.
                let ins: Option<Vec<i64>> = axes.iter().map(|&a| xs[a].known()).collect();
                let Some(ins) = ins else {
                    for &a in &axes {
                        out[a] = Dim::Unknown;
                    }
                    return one(dtype, Some(out));
                };
                let ratios = sizes.iter().zip(&ins).map(|(&s, &i)| s as f32 / i as f32);
                let scale =
                    if p == "not_larger" { ratios.fold(f32::INFINITY, f32::min) } else { ratios.fold(0.0, f32::max) };
                for (k, &a) in axes.iter().enumerate() {
                    out[a] = Dim::Known(scaled(ins[k], scale, true)?);
                }
            }
            Some(p) => return Err(format!("attribute keep_aspect_ratio_policy has unknown value '{p}'")),
        }
        return one(dtype, Some(out));
    }
    let crop = ctx.attr_string("coordinate_transformation_mode").as_deref() == Some("tf_crop_and_resize");
    let Some(scales) = ctx.const_floats(scales_at)?.filter(|_| !crop) else {
        for &a in &axes {
            out[a] = Dim::Unknown;
        }
        return one(dtype, Some(out));
    };
    values_len(scales.len(), "scales")?;
    for (k, &a) in axes.iter().enumerate() {
        let s = scales[k];
        if !(s > 0.0 && s.is_finite()) {
            return Err(format!("scale {s} must be positive"));
        }
        out[a] = match &xs[a] {
            Dim::Known(v) => Dim::Known(scaled(*v, s, false)?),
            d if s == 1.0 => d.clone(),
            _ => Dim::Unknown,
        };
    }
    one(dtype, Some(out))
}

/// `floor(size * scale)` (or rounded), computed in f32 as onnxruntime does.
fn scaled(size: i64, scale: f32, round: bool) -> R<i64> {
    let v = size as f32 * scale;
    let v = if round { v.round() } else { v.floor() };
    if !(0.0..9.0e18).contains(&v) {
        return Err(format!("resized size {v} is out of range"));
    }
    Ok(v as i64)
}

pub(crate) fn depth_space(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let b = ctx.attr_int("blocksize").ok_or("attribute blocksize is missing")?;
    if b <= 0 {
        return Err(format!("attribute blocksize must be positive, not {b}"));
    }
    if let Some(m) = ctx.attr_string("mode") {
        if m != "DCR" && m != "CRD" {
            return Err(format!("attribute mode has unknown value '{m}'"));
        }
    }
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, Some(vec![Dim::Unknown; 4]));
    };
    let [n, c, h, w] = &xs[..] else {
        return Err(format!("input must have rank 4, not {}", xs.len()));
    };
    let bb = b.checked_mul(b).ok_or_else(|| dims::overflow("blocksize squared"))?;
    let div = |d: &Dim, by: i64, what: &str| -> R<Dim> {
        match d {
            Dim::Known(v) if v % by != 0 => Err(format!("{what} {v} is not divisible by {by}")),
            Dim::Known(v) => Ok(Dim::Known(v / by)),
            _ => Ok(Dim::Unknown),
        }
    };
    let out = if ctx.node.op == Op::DepthToSpace {
        vec![n.clone(), div(c, bb, "channels")?, dims::mul(h, &Dim::Known(b))?, dims::mul(w, &Dim::Known(b))?]
    } else {
        vec![n.clone(), dims::mul(c, &Dim::Known(bb))?, div(h, b, "height")?, div(w, b, "width")?]
    };
    one(dtype, Some(out))
}

/// Checks that input `i` (a shape-like list) is 1-D when its rank is known.
fn one_d(ctx: &Ctx, i: usize, what: &str) -> R<()> {
    match ctx.rank(i) {
        Some(r) if r != 1 => Err(format!("{what} must be 1-D, not of rank {r}")),
        _ => Ok(()),
    }
}

/// Expand: the input's shape broadcast both ways (numpy-style, right-aligned) with the `shape`
/// input, so the output rank is the larger of the two.
pub(crate) fn expand(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    one_d(ctx, 1, "shape")?;
    let spec: Vec<Dim> = match ctx.const_ints(1)? {
        Some(v) => {
            if let Some(d) = v.iter().find(|&&d| d < 0) {
                return Err(format!("shape {v:?} has negative value {d}"));
            }
            v.into_iter().map(Dim::Known).collect()
        }
        // Not constant: every dim of the shape is unknown, its length maybe known.
        None => match input_len(ctx, 1) {
            Some(k) => vec![Dim::Unknown; k],
            None => return one(dtype, UNRANKED),
        },
    };
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, UNRANKED);
    };
    one(dtype, Some(dims::broadcast(&[&xs, &spec])?))
}

/// Tile: each input dim times its entry of `repeats` (a symbolic dim stays only under a repeat
/// of 1). Tile-1 (before opset 6) copies along one `axis` input: the rank is all it gives here.
pub(crate) fn tile(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let xs = ctx.shape(0);
    if ctx.opset < 6 {
        return one(dtype, xs.map(|x| vec![Dim::Unknown; x.len()]));
    }
    one_d(ctx, 1, "repeats")?;
    let Some(reps) = ctx.const_ints(1)? else {
        return one(dtype, xs.map(|x| x.len()).or(input_len(ctx, 1)).map(|r| vec![Dim::Unknown; r]));
    };
    if let Some(v) = reps.iter().find(|&&v| v < 0) {
        return Err(format!("repeats {reps:?} has negative value {v}"));
    }
    let Some(xs) = xs else {
        return one(dtype, Some(vec![Dim::Unknown; reps.len()]));
    };
    if reps.len() != xs.len() {
        return Err(format!("repeats {reps:?} has {} values but the input has rank {}", reps.len(), xs.len()));
    }
    let out = xs.iter().zip(&reps).map(|(d, &k)| dims::mul(d, &Dim::Known(k))).collect::<R<Vec<_>>>()?;
    one(dtype, Some(out))
}

pub(crate) fn shape(ctx: &Ctx) -> R<OutputTypes> {
    let len = match ctx.rank(0) {
        Some(r) => {
            let r = r as i64;
            let norm = |v: i64| {
                if v < 0 {
                    (v.saturating_add(r)).max(0)
                } else {
                    v.min(r)
                }
            };
            let start = norm(ctx.attr_int("start").unwrap_or(0));
            let end = norm(ctx.attr_int("end").unwrap_or(r));
            Dim::Known((end - start).max(0))
        }
        None => Dim::Unknown,
    };
    one(Some(DType::I64), Some(vec![len]))
}

pub(crate) fn reduce(ctx: &Ctx) -> R<OutputTypes> {
    let dtype = ctx.dtype(0);
    let keepdims = ctx.attr_int("keepdims").unwrap_or(1) != 0;
    let noop = ctx.attr_int("noop_with_empty_axes").unwrap_or(0) != 0;
    let mut axes = list(ctx, "axes", 1)?;
    if matches!(&axes, List::Known(a) if a.is_empty())
        || (matches!(axes, List::Unknown) && input_len(ctx, 1) == Some(0))
    {
        axes = List::Absent;
    }
    let Some(xs) = ctx.shape(0) else {
        return one(dtype, UNRANKED);
    };
    let r = xs.len();
    let reduced: Vec<bool> = match axes {
        List::Absent if noop => return one(dtype, Some(xs)),
        List::Absent => vec![true; r],
        List::Unknown if keepdims => {
            let out: Vec<_> =
                xs.iter().map(|d| if *d == Dim::Known(1) { Dim::Known(1) } else { Dim::Unknown }).collect();
            return one(dtype, Some(out));
        }
        List::Unknown => return one(dtype, UNRANKED),
        List::Known(a) => {
            let mut m = vec![false; r];
            for &v in &a {
                m[dims::axis(v, r, "axis")?] = true;
            }
            m
        }
    };
    let out: Vec<_> = xs
        .iter()
        .zip(reduced)
        .filter_map(|(d, red)| match (red, keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect();
    one(dtype, Some(out))
}

#[cfg(test)]
mod tests {
    use crate::attr::{make_float, make_int, make_ints, make_string};
    use crate::builder::GraphBuilder;
    use crate::dtype::DType;
    use crate::graph::{Graph, Operand};
    use crate::infer::show;
    use crate::op::Op;
    use crate::proto::AttributeProto;

    fn ty(g: &Graph, o: Operand) -> String {
        show(g.operand_type(o).as_ref())
    }

    /// Builds `op(x, extra inputs...)` on an f32 input of shape `x` and returns the output type(s).
    fn run(
        opset: i64,
        op: Op,
        x: &[&str],
        consts: &[Option<&[i64]>],
        attrs: Vec<AttributeProto>,
        n_out: usize,
    ) -> Result<Vec<String>, String> {
        let mut b = GraphBuilder::new(opset);
        let xi = if x == ["*"] { b.input_untyped("x") } else { b.input("x", DType::F32, x) };
        let mut ins = vec![xi];
        for (i, c) in consts.iter().enumerate() {
            ins.push(match c {
                Some(v) => b.ints(&format!("c{i}"), v),
                None => Operand::None,
            });
        }
        let ys = b.node(op, &ins).name("n").attrs(attrs).outs(n_out);
        for &y in &ys {
            b.output(y);
        }
        b.finish().map(|g| ys.iter().map(|&y| ty(&g, y)).collect()).map_err(|e| e.to_string())
    }

    fn run1(
        opset: i64,
        op: Op,
        x: &[&str],
        consts: &[Option<&[i64]>],
        attrs: Vec<AttributeProto>,
    ) -> Result<String, String> {
        run(opset, op, x, consts, attrs, 1).map(|v| v[0].clone())
    }

    #[test]
    fn reshape_shapes() {
        let r = |x: &[&str], s: &[i64]| run1(17, Op::Reshape, x, &[Some(s)], vec![]);
        assert_eq!(r(&["N", "16", "64"], &[0, 0, 4, 16]).unwrap(), "f32[N,16,4,16]");
        assert_eq!(r(&["N", "16", "1", "1"], &[-1, 16]).unwrap(), "f32[N,16]");
        assert_eq!(r(&["N", "16", "4", "16"], &[0, 0, 64]).unwrap(), "f32[N,16,64]");
        assert_eq!(r(&["2", "3", "4"], &[4, -1]).unwrap(), "f32[4,6]");
        assert_eq!(r(&["N", "M", "4"], &[-1, 4]).unwrap(), "f32[?,4]");
        assert_eq!(r(&["*"], &[0, -1]).unwrap(), "?");
        assert!(r(&["2", "3", "4"], &[5, -1]).unwrap_err().contains("cannot reshape [2,3,4] to [5, -1]"));
        assert!(r(&["2", "3", "4"], &[5, 5]).unwrap_err().contains("24 elements != 25"));
        assert!(r(&["N", "3", "8", "8"], &[0, 100]).unwrap_err().contains("192 elements != 100"));
        assert!(r(&["2", "3"], &[-1, -1]).unwrap_err().contains("more than one -1"));
        assert!(r(&["2", "3"], &[0, 0, 0]).unwrap_err().contains("copies dim 2"));
        assert!(r(&["2", "3"], &[-2, 3]).unwrap_err().contains("invalid value -2"));
        // allowzero keeps a literal 0.
        assert_eq!(
            run1(17, Op::Reshape, &["0", "3"], &[Some(&[0, 3])], vec![make_int("allowzero", 1)]).unwrap(),
            "f32[0,3]"
        );
        // A non-constant shape gives the rank only.
        let mut b = GraphBuilder::new(17);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let s = b.input("s", DType::I64, &["3"]);
        let y = b.node(Op::Reshape, &[x, s]).out1();
        b.output(y);
        assert_eq!(ty(&b.finish().unwrap(), y), "f32[?,?,?]");
    }

    #[test]
    fn flatten_and_transpose() {
        assert_eq!(run1(17, Op::Flatten, &["N", "16", "1", "1"], &[], vec![]).unwrap(), "f32[N,16]");
        assert_eq!(run1(17, Op::Flatten, &["N", "16", "2", "2"], &[], vec![make_int("axis", 2)]).unwrap(), "f32[?,4]");
        assert_eq!(run1(17, Op::Flatten, &["2", "3", "4"], &[], vec![make_int("axis", 0)]).unwrap(), "f32[1,24]");
        assert_eq!(run1(17, Op::Flatten, &["2", "3", "4"], &[], vec![make_int("axis", -1)]).unwrap(), "f32[6,4]");
        assert!(run1(17, Op::Flatten, &["2", "3"], &[], vec![make_int("axis", 3)])
            .unwrap_err()
            .contains("out of range"));
        let big = (1i64 << 40).to_string();
        assert!(run1(17, Op::Flatten, &[&big, &big], &[], vec![make_int("axis", 2)])
            .unwrap_err()
            .contains("overflows"));

        assert_eq!(
            run1(17, Op::Transpose, &["N", "16", "4", "8"], &[], vec![make_ints("perm", &[0, 2, 3, 1])]).unwrap(),
            "f32[N,4,8,16]"
        );
        assert_eq!(run1(17, Op::Transpose, &["N", "16", "4"], &[], vec![]).unwrap(), "f32[4,16,N]");
        assert!(run1(17, Op::Transpose, &["N", "16", "4"], &[], vec![make_ints("perm", &[0, 0, 1])])
            .unwrap_err()
            .contains("not a permutation"));
        assert!(run1(17, Op::Transpose, &["N", "16"], &[], vec![make_ints("perm", &[0, 1, 2])])
            .unwrap_err()
            .contains("not a permutation"));
    }

    #[test]
    fn squeeze_unsqueeze_across_opsets() {
        assert_eq!(run1(13, Op::Squeeze, &["N", "1", "4", "1"], &[Some(&[1, -1])], vec![]).unwrap(), "f32[N,4]");
        assert_eq!(
            run1(11, Op::Squeeze, &["N", "1", "4", "1"], &[], vec![make_ints("axes", &[1])]).unwrap(),
            "f32[N,4,1]"
        );
        assert_eq!(run1(13, Op::Squeeze, &["2", "1", "4", "1"], &[], vec![]).unwrap(), "f32[2,4]");
        assert_eq!(run1(13, Op::Squeeze, &["N", "1", "4", "1"], &[], vec![]).unwrap(), "f32[*]");
        assert!(run1(13, Op::Squeeze, &["N", "2"], &[Some(&[1])], vec![])
            .unwrap_err()
            .contains("cannot squeeze axis 1 of size 2"));

        assert_eq!(run1(13, Op::Unsqueeze, &["N", "4"], &[Some(&[1, -1])], vec![]).unwrap(), "f32[N,1,4,1]");
        assert_eq!(run1(11, Op::Unsqueeze, &["N", "4"], &[], vec![make_ints("axes", &[0])]).unwrap(), "f32[1,N,4]");
        assert!(run1(13, Op::Unsqueeze, &["N", "4"], &[Some(&[1, 1])], vec![]).unwrap_err().contains("repeated"));
        assert!(run1(13, Op::Unsqueeze, &["N", "4"], &[Some(&[3])], vec![]).unwrap_err().contains("out of range"));
        assert!(run1(13, Op::Unsqueeze, &["N", "4"], &[], vec![]).unwrap_err().contains("has 1 inputs, expected 2"));
    }

    #[test]
    fn concat_shapes() {
        let go = |shapes: &[&[&str]], axis: i64| {
            let mut b = GraphBuilder::new(17);
            let ins: Vec<_> =
                shapes.iter().enumerate().map(|(i, s)| b.input(&format!("x{i}"), DType::F32, s)).collect();
            let y = b.node(Op::Concat, &ins).attr(make_int("axis", axis)).out1();
            b.output(y);
            b.finish().map(|g| ty(&g, y)).map_err(|e| e.to_string())
        };
        assert_eq!(go(&[&["N", "3", "8"], &["N", "5", "8"]], 1).unwrap(), "f32[N,8,8]");
        assert_eq!(go(&[&["N", "3", "?"], &["?", "C", "8"]], -1).unwrap(), "f32[N,3,?]");
        assert_eq!(go(&[&["?", "3", "4"], &["N", "3", "5"]], 2).unwrap(), "f32[N,3,9]");
        assert!(go(&[&["N", "3"], &["N", "3", "1"]], 1)
            .unwrap_err()
            .contains("input 1 has rank 3 but input 0 has rank 2"));
        assert!(go(&[&["N", "3", "8"], &["N", "5", "7"]], 1).unwrap_err().contains("differ in dimension 2 (8 vs 7)"));
        assert!(go(&[&["N", "3"]], 2).unwrap_err().contains("out of range"));
    }

    #[test]
    fn slice_across_opsets() {
        let s = |x: &[&str], st: &[i64], en: &[i64], ax: Option<&[i64]>, sp: Option<&[i64]>| {
            run1(13, Op::Slice, x, &[Some(st), Some(en), ax, sp], vec![])
        };
        assert_eq!(s(&["N", "10", "8"], &[2], &[8], Some(&[1]), None).unwrap(), "f32[N,6,8]");
        assert_eq!(s(&["N", "10", "8"], &[-3], &[i64::MAX], Some(&[-1]), None).unwrap(), "f32[N,10,3]");
        assert_eq!(s(&["N", "10", "8"], &[0, 1], &[i64::MAX, -1], Some(&[0, 1]), None).unwrap(), "f32[N,8,8]");
        assert_eq!(s(&["N", "10", "8"], &[-1], &[i64::MIN], Some(&[1]), Some(&[-1])).unwrap(), "f32[N,10,8]");
        assert_eq!(s(&["N", "10", "8"], &[9], &[0], Some(&[1]), Some(&[-3])).unwrap(), "f32[N,3,8]");
        assert_eq!(s(&["N", "10", "8"], &[100], &[200], Some(&[1]), None).unwrap(), "f32[N,0,8]");
        assert_eq!(s(&["N", "10", "8"], &[0], &[10], Some(&[1]), Some(&[4])).unwrap(), "f32[N,3,8]");
        assert_eq!(s(&["N", "0"], &[0], &[-1], Some(&[1]), Some(&[-1])).unwrap(), "f32[N,0]");
        assert_eq!(s(&["N", "10"], &[1], &[5], None, None).unwrap(), "f32[?,10]");
        assert_eq!(s(&["N", "10"], &[i64::MIN], &[i64::MAX], Some(&[1]), Some(&[i64::MIN])).unwrap(), "f32[N,0]");
        assert!(s(&["N", "10"], &[0], &[1], Some(&[1]), Some(&[0])).unwrap_err().contains("step 0"));
        assert!(s(&["N", "10"], &[0, 0], &[1], Some(&[1]), None).unwrap_err().contains("different lengths"));
        assert!(s(&["N", "10"], &[0, 0], &[1, 1], Some(&[1, -1]), None).unwrap_err().contains("repeated"));
        // Opset 9: attributes.
        let attrs = vec![make_ints("starts", &[1]), make_ints("ends", &[3]), make_ints("axes", &[1])];
        assert_eq!(run1(9, Op::Slice, &["N", "10"], &[], attrs).unwrap(), "f32[N,2]");
        // Non-constant starts: only the sliced axes are unknown.
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "10", "8"]);
        let st = b.input("st", DType::I64, &["1"]);
        let en = b.ints("en", &[5]);
        let ax = b.ints("ax", &[2]);
        let y = b.node(Op::Slice, &[x, st, en, ax]).out1();
        b.output(y);
        assert_eq!(ty(&b.finish().unwrap(), y), "f32[N,10,?]");
    }

    #[test]
    fn gather_shapes() {
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "10", "8"]);
        let i = b.ints("i", &[1, 2, 3]);
        let s = b.const_i64("s", DType::I64, &[], &[1]);
        let y = b.node(Op::Gather, &[x, i]).attr(make_int("axis", 1)).out1();
        let z = b.node(Op::Gather, &[x, s]).attr(make_int("axis", -1)).out1();
        b.output(y);
        b.output(z);
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, y), "f32[N,3,8]");
        assert_eq!(ty(&g, z), "f32[N,10]");
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "10"]);
        let i = b.const_f32("i", &[1], &[0.0]);
        let y = b.node(Op::Gather, &[x, i]).out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("indices must be i32 or i64"));
    }

    #[test]
    fn split_across_opsets() {
        assert_eq!(
            run(13, Op::Split, &["N", "10"], &[Some(&[3, 7])], vec![make_int("axis", 1)], 2).unwrap(),
            ["f32[N,3]", "f32[N,7]"]
        );
        assert_eq!(
            run(11, Op::Split, &["N", "10"], &[], vec![make_int("axis", 1), make_ints("split", &[4, 6])], 2).unwrap(),
            ["f32[N,4]", "f32[N,6]"]
        );
        assert_eq!(
            run(13, Op::Split, &["N", "10"], &[], vec![make_int("axis", 1)], 2).unwrap(),
            ["f32[N,5]", "f32[N,5]"]
        );
        assert!(run(13, Op::Split, &["N", "10"], &[], vec![make_int("axis", 1)], 3)
            .unwrap_err()
            .contains("does not split evenly"));
        assert_eq!(
            run(18, Op::Split, &["N", "10"], &[], vec![make_int("axis", 1), make_int("num_outputs", 3)], 3).unwrap(),
            ["f32[N,4]", "f32[N,4]", "f32[N,2]"]
        );
        assert_eq!(
            run(18, Op::Split, &["N", "10"], &[], vec![make_int("num_outputs", 2)], 2).unwrap(),
            ["f32[?,10]", "f32[?,10]"]
        );
        assert!(run(18, Op::Split, &["N", "10"], &[], vec![make_int("num_outputs", 3)], 2)
            .unwrap_err()
            .contains("num_outputs is 3"));
        assert!(run(13, Op::Split, &["N", "10"], &[Some(&[3, 6])], vec![make_int("axis", 1)], 2)
            .unwrap_err()
            .contains("sums to 9"));
        assert!(run(13, Op::Split, &["N", "10"], &[Some(&[10])], vec![make_int("axis", 1)], 2)
            .unwrap_err()
            .contains("has 1 sizes"));
    }

    #[test]
    fn pad_across_opsets() {
        assert_eq!(
            run1(13, Op::Pad, &["N", "3", "8", "8"], &[Some(&[0, 0, 1, 2, 0, 0, 3, 4])], vec![]).unwrap(),
            "f32[N,3,12,14]"
        );
        assert_eq!(
            run1(18, Op::Pad, &["N", "3", "8", "8"], &[Some(&[1, 1, 1, 1]), None, Some(&[2, 3])], vec![]).unwrap(),
            "f32[N,3,10,10]"
        );
        assert_eq!(run1(2, Op::Pad, &["N", "3"], &[], vec![make_ints("pads", &[0, 1, 0, 1])]).unwrap(), "f32[N,5]");
        assert_eq!(
            run1(13, Op::Pad, &["N", "8"], &[Some(&[1, -2, 0, -2])], vec![make_string("mode", "reflect")]).unwrap(),
            "f32[?,4]"
        );
        assert!(run1(13, Op::Pad, &["N", "8"], &[Some(&[0, -5, 0, -5])], vec![])
            .unwrap_err()
            .contains("negative size"));
        assert!(run1(13, Op::Pad, &["N", "8"], &[Some(&[0, 1])], vec![])
            .unwrap_err()
            .contains("pads has 2 values, expected 4"));
        assert!(run1(13, Op::Pad, &["N", "8"], &[Some(&[0, 0, 0, 0])], vec![make_string("mode", "mirror")])
            .unwrap_err()
            .contains("mirror"));
    }

    #[test]
    fn resize_across_opsets() {
        let go = |opset: i64,
                  x: &[&str],
                  roi: bool,
                  scales: Option<&[f32]>,
                  sizes: Option<&[i64]>,
                  attrs: Vec<AttributeProto>| {
            let mut b = GraphBuilder::new(opset);
            let xi = b.input("x", DType::F32, x);
            let mut ins = vec![xi];
            if opset >= 11 {
                ins.push(if roi { b.const_f32("roi", &[0], &[]) } else { Operand::None });
            }
            ins.push(match scales {
                Some(s) => b.const_f32("scales", &[s.len() as i64], s),
                None if opset < 13 => b.const_f32("scales", &[0], &[]),
                None => Operand::None,
            });
            if let Some(s) = sizes {
                ins.push(b.ints("sizes", s));
            }
            let y = b.node(Op::Resize, &ins).attrs(attrs).out1();
            b.output(y);
            b.finish().map(|g| ty(&g, y)).map_err(|e| e.to_string())
        };
        assert_eq!(
            go(10, &["N", "3", "8", "8"], false, Some(&[1.0, 1.0, 2.0, 2.0]), None, vec![]).unwrap(),
            "f32[N,3,16,16]"
        );
        assert_eq!(go(11, &["N", "3", "8", "8"], true, None, Some(&[1, 3, 5, 7]), vec![]).unwrap(), "f32[1,3,5,7]");
        assert_eq!(
            go(13, &["N", "3", "7", "8"], false, Some(&[1.0, 1.0, 0.5, 1.5]), None, vec![]).unwrap(),
            "f32[N,3,3,12]"
        );
        assert_eq!(
            go(18, &["N", "3", "7", "8"], false, Some(&[2.0, 3.0]), None, vec![make_ints("axes", &[2, 3])]).unwrap(),
            "f32[N,3,14,24]"
        );
        assert_eq!(
            go(
                18,
                &["N", "3", "10", "20"],
                false,
                None,
                Some(&[5, 5]),
                vec![make_ints("axes", &[2, 3]), make_string("keep_aspect_ratio_policy", "not_larger")]
            )
            .unwrap(),
            "f32[N,3,3,5]"
        );
        assert!(go(13, &["N", "3", "8", "8"], false, Some(&[2.0, 2.0]), None, vec![])
            .unwrap_err()
            .contains("scales has 2 values, expected 4"));
        assert!(go(13, &["N", "3", "8", "8"], false, None, None, vec![])
            .unwrap_err()
            .contains("needs scales or sizes"));
        assert!(go(13, &["N", "3", "8", "8"], false, Some(&[1.0, 1.0, -2.0, 2.0]), None, vec![])
            .unwrap_err()
            .contains("must be positive"));
        let _ = make_float("x", 0.0);
    }

    #[test]
    fn depth_space_shapes() {
        let bs = || make_int("blocksize", 2);
        assert_eq!(run1(13, Op::DepthToSpace, &["N", "8", "3", "4"], &[], vec![bs()]).unwrap(), "f32[N,2,6,8]");
        assert_eq!(run1(13, Op::SpaceToDepth, &["N", "2", "6", "8"], &[], vec![bs()]).unwrap(), "f32[N,8,3,4]");
        assert_eq!(run1(13, Op::SpaceToDepth, &["N", "C", "H", "8"], &[], vec![bs()]).unwrap(), "f32[N,?,?,4]");
        assert!(run1(13, Op::DepthToSpace, &["N", "6", "3", "4"], &[], vec![bs()])
            .unwrap_err()
            .contains("channels 6 is not divisible by 4"));
        assert!(run1(13, Op::SpaceToDepth, &["N", "6", "3", "4"], &[], vec![bs()])
            .unwrap_err()
            .contains("height 3 is not divisible by 2"));
        assert!(run1(13, Op::SpaceToDepth, &["N", "6", "3"], &[], vec![bs()]).unwrap_err().contains("rank 4"));
        assert!(run1(13, Op::SpaceToDepth, &["N", "6", "3", "4"], &[], vec![])
            .unwrap_err()
            .contains("blocksize is missing"));
    }

    #[test]
    fn expand_shapes() {
        let e = |x: &[&str], s: &[i64]| run1(13, Op::Expand, x, &[Some(s)], vec![]);
        assert_eq!(e(&["3", "1"], &[2, 1, 6]).unwrap(), "f32[2,3,6]");
        assert_eq!(e(&["N", "1", "4"], &[1, 8, 1]).unwrap(), "f32[N,8,4]");
        // The input may have the larger rank, and a dim of 1 in the shape keeps the input's.
        assert_eq!(e(&["2", "3", "4"], &[3, 1]).unwrap(), "f32[2,3,4]");
        assert_eq!(e(&["N", "3"], &[5, 1]).unwrap(), "f32[5,3]");
        assert_eq!(e(&["1", "3"], &[0, 1]).unwrap(), "f32[0,3]");
        assert_eq!(e(&["N", "3"], &[]).unwrap(), "f32[N,3]");
        assert_eq!(
            e(&["2", "3"], &[2, 4]).unwrap_err(),
            "node 'n' (Expand): cannot broadcast dimension 3 with 4 (shapes [2,3] and [2,4])"
        );
        assert_eq!(e(&["2", "3"], &[-1, 3]).unwrap_err(), "node 'n' (Expand): shape [-1, 3] has negative value -1");
        // A shape of known length but unknown values: the rank, and the input's dims that no
        // shape value other than 1 can change.
        let go = |len: &str| {
            let mut b = GraphBuilder::new(13);
            let x = b.input("x", DType::F32, &["N", "1", "4"]);
            let s = b.input("s", DType::I64, &[len]);
            let y = b.node(Op::Expand, &[x, s]).out1();
            b.output(y);
            ty(&b.finish().unwrap(), y)
        };
        assert_eq!(go("4"), "f32[?,?,?,4]");
        assert_eq!(go("2"), "f32[N,?,4]");
        assert_eq!(go("K"), "f32[*]");
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["2", "3"]);
        let s = b.const_i64("s", DType::I64, &[1, 2], &[2, 3]);
        let y = b.node(Op::Expand, &[x, s]).name("n").out1();
        b.output(y);
        assert!(b.finish().unwrap_err().to_string().contains("shape must be 1-D, not of rank 2"));
    }

    #[test]
    fn tile_shapes() {
        let t = |x: &[&str], r: &[i64]| run1(13, Op::Tile, x, &[Some(r)], vec![]);
        assert_eq!(t(&["2", "3", "4"], &[1, 2, 0]).unwrap(), "f32[2,6,0]");
        // A symbolic dim stays only under a repeat of 1.
        assert_eq!(t(&["N", "3"], &[1, 2]).unwrap(), "f32[N,6]");
        assert_eq!(t(&["N", "3"], &[2, 1]).unwrap(), "f32[?,3]");
        assert_eq!(t(&["N", "3"], &[0, 1]).unwrap(), "f32[0,3]");
        assert_eq!(t(&["N", "3"], &[1, -2]).unwrap_err(), "node 'n' (Tile): repeats [1, -2] has negative value -2");
        assert_eq!(
            t(&["N", "3"], &[1, 2, 3]).unwrap_err(),
            "node 'n' (Tile): repeats [1, 2, 3] has 3 values but the input has rank 2"
        );
        let big = (1i64 << 40).to_string();
        assert!(t(&[&big], &[1 << 40]).unwrap_err().contains("overflows"));
        // Repeats not constant: the rank only.
        let mut b = GraphBuilder::new(13);
        let x = b.input("x", DType::F32, &["N", "3"]);
        let r = b.input("r", DType::I64, &["2"]);
        let y = b.node(Op::Tile, &[x, r]).out1();
        let u = b.input_untyped("u");
        let z = b.node(Op::Tile, &[u, r]).out1();
        b.output(y);
        b.output(z);
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, y), "f32[?,?]");
        assert_eq!(ty(&g, z), "?");
        // Tile-1 (input, tiles, axis) keeps the rank.
        assert_eq!(run1(5, Op::Tile, &["N", "3"], &[Some(&[2]), Some(&[1])], vec![]).unwrap(), "f32[?,?]");
        assert!(run1(13, Op::Tile, &["N", "3"], &[Some(&[2, 1]), Some(&[1])], vec![])
            .unwrap_err()
            .contains("has 3 inputs, expected 2"));
    }

    #[test]
    fn shape_op() {
        assert_eq!(run1(13, Op::Shape, &["N", "3", "8", "8"], &[], vec![]).unwrap(), "i64[4]");
        assert_eq!(
            run1(15, Op::Shape, &["N", "3", "8", "8"], &[], vec![make_int("start", 1), make_int("end", -1)]).unwrap(),
            "i64[2]"
        );
        assert_eq!(
            run1(15, Op::Shape, &["N", "3"], &[], vec![make_int("start", -10), make_int("end", 10)]).unwrap(),
            "i64[2]"
        );
        assert_eq!(
            run1(15, Op::Shape, &["N", "3"], &[], vec![make_int("start", 2), make_int("end", 1)]).unwrap(),
            "i64[0]"
        );
        assert_eq!(run1(15, Op::Shape, &["*"], &[], vec![]).unwrap(), "i64[?]");
    }

    #[test]
    fn reductions_across_opsets() {
        let x = &["N", "3", "8", "8"];
        for op in [Op::ReduceMean, Op::ReduceMax, Op::ReduceMin] {
            assert_eq!(run1(17, op.clone(), x, &[], vec![make_ints("axes", &[2, 3])]).unwrap(), "f32[N,3,1,1]");
            assert_eq!(run1(18, op.clone(), x, &[Some(&[-1])], vec![make_int("keepdims", 0)]).unwrap(), "f32[N,3,8]");
        }
        assert_eq!(run1(18, Op::ReduceMean, x, &[], vec![]).unwrap(), "f32[1,1,1,1]");
        assert_eq!(run1(18, Op::ReduceMean, x, &[], vec![make_int("keepdims", 0)]).unwrap(), "f32[]");
        assert_eq!(
            run1(18, Op::ReduceMean, x, &[Some(&[])], vec![make_int("noop_with_empty_axes", 1)]).unwrap(),
            "f32[N,3,8,8]"
        );
        assert!(run1(18, Op::ReduceMean, x, &[Some(&[4])], vec![]).unwrap_err().contains("out of range"));
        let mut b = GraphBuilder::new(18);
        let xi = b.input("x", DType::F32, &["N", "1", "8"]);
        let a = b.input("a", DType::I64, &["1"]);
        let y = b.node(Op::ReduceMax, &[xi, a]).out1();
        let z = b.node(Op::ReduceMax, &[xi, a]).attr(make_int("keepdims", 0)).out1();
        b.output(y);
        b.output(z);
        let g = b.finish().unwrap();
        assert_eq!(ty(&g, y), "f32[?,1,?]");
        assert_eq!(ty(&g, z), "f32[*]");
    }
}
