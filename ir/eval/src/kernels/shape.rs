//! Layout ops that move elements without computing on them (any element type): Reshape, Flatten,
//! Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Gather, Pad, Expand, Tile, DepthToSpace,
//! SpaceToDepth, Identity, Shape, Size, Constant, ConstantOfShape, Range.

use ndarray::{ArrayD, Axis, Dimension, IxDyn, Order, Slice};
use qdqc_ir::{DType, Op};

use super::{int_list, norm_axis, Ctx, Registry};
use crate::error::{bail, ensure, unsupported, KResult};
use crate::num::Scalar;
use crate::value::{map_all, map_list, match_numeric, Value};

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::Identity, |c| Ok(vec![c.input(0)?.clone()]));
    r.add_onnx("Dropout", dropout);
    r.add(Op::Reshape, reshape);
    r.add(Op::Flatten, flatten);
    r.add(Op::Transpose, transpose);
    r.add(Op::Squeeze, squeeze);
    r.add(Op::Unsqueeze, unsqueeze);
    r.add(Op::Concat, concat);
    r.add(Op::Split, split);
    r.add(Op::Slice, slice);
    r.add(Op::Gather, gather);
    r.add(Op::Pad, pad);
    r.add(Op::DepthToSpace, depth_to_space);
    r.add(Op::SpaceToDepth, space_to_depth);
    r.add(Op::Shape, shape_op);
    r.add(Op::Constant, constant);
    r.add_onnx("Size", |c| Ok(vec![Value::scalar(c.input(0)?.len() as i64)]));
    r.add(Op::Expand, expand);
    r.add(Op::Tile, tile);
    r.add_onnx("ConstantOfShape", constant_of_shape);
    r.add_onnx("Range", range);
}

// ---- helpers ----------------------------------------------------------------------------------------

/// A row-major reshape of any value.
pub(crate) fn reshape_value(v: &Value, shape: &[usize]) -> KResult<Value> {
    fn go<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> KResult<ArrayD<T>> {
        Ok(a.to_shape((IxDyn(shape), Order::RowMajor))?.into_owned())
    }
    let n: usize = shape.iter().product();
    ensure!(n == v.len(), "cannot reshape {:?} ({} elements) to {shape:?}", v.shape(), v.len());
    Ok(map_all!(v, a => go(a, shape)?))
}

/// Permutes the axes of any value (result in standard layout).
pub(crate) fn transpose_value(v: &Value, perm: &[usize]) -> KResult<Value> {
    let mut seen = vec![false; v.rank()];
    ensure!(perm.len() == v.rank(), "perm {perm:?} does not fit rank {}", v.rank());
    for &p in perm {
        ensure!(p < v.rank() && !seen[p], "perm {perm:?} is not a permutation");
        seen[p] = true;
    }
    Ok(map_all!(v, a => a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()))
}

/// Axes from the attribute (before `input_from`) or from input `idx`.
fn axes_arg(c: &Ctx, idx: usize, input_from: i64) -> KResult<Option<Vec<i64>>> {
    if c.opset >= input_from {
        c.opt(idx).map(int_list).transpose()
    } else {
        Ok(c.ints("axes").map(<[i64]>::to_vec))
    }
}

fn to_usize_shape(v: &[i64], what: &str) -> KResult<Vec<usize>> {
    v.iter()
        .map(|&d| if d < 0 { Err(crate::KernelError::Invalid(format!("negative {what} {d}"))) } else { Ok(d as usize) })
        .collect()
}

// ---- kernels ----------------------------------------------------------------------------------------

/// Dropout in inference: the identity (and an all-true mask). Training mode with a non-zero
/// ratio is random, so it is refused.
fn dropout(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let training = c.opt(2).map(|t| t.to_i64_vec()).transpose()?.is_some_and(|v| v.first() == Some(&1));
    if training {
        let ratio = match c.opt(1) {
            Some(r) => r.to_f64_vec()?.first().copied().unwrap_or(0.5),
            None => 0.5,
        };
        if ratio != 0.0 {
            unsupported!("training_mode=1 with ratio > 0 (random output)");
        }
    }
    let mask = Value::Bool(ArrayD::from_elem(IxDyn(x.shape()), true));
    Ok(vec![x.clone(), mask])
}

fn reshape(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let spec = if c.opset < 5 { c.ints("shape").unwrap_or(&[]).to_vec() } else { int_list(c.input(1)?)? };
    let allowzero = c.int("allowzero", 0) == 1;
    let mut shape: Vec<i64> = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            0 if !allowzero => {
                ensure!(i < x.rank(), "shape {spec:?}: 0 at index {i} copies a dimension the input does not have");
                shape.push(x.shape()[i] as i64)
            }
            -1 => {
                ensure!(infer.is_none(), "shape {spec:?} has more than one -1");
                infer = Some(i);
                shape.push(1);
            }
            d if d < 0 => bail!("invalid dimension {d} in shape {spec:?}"),
            d => shape.push(d),
        }
    }
    if let Some(i) = infer {
        let known: i64 = shape.iter().product();
        ensure!(known != 0 && x.len() as i64 % known == 0, "cannot infer -1 in {spec:?} for {} elements", x.len());
        shape[i] = x.len() as i64 / known;
    }
    Ok(vec![reshape_value(x, &to_usize_shape(&shape, "dimension")?)?])
}

fn flatten(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let r = x.rank() as i64;
    let axis = c.int("axis", 1);
    let axis = if axis < 0 { axis + r } else { axis };
    ensure!((0..=r).contains(&axis), "axis {} is out of range for rank {r}", c.int("axis", 1));
    let outer: usize = x.shape()[..axis as usize].iter().product();
    let inner: usize = x.shape()[axis as usize..].iter().product();
    Ok(vec![reshape_value(x, &[outer, inner])?])
}

fn transpose(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let perm: Vec<usize> = match c.ints("perm") {
        Some(p) => p.iter().map(|&a| norm_axis(a, x.rank())).collect::<KResult<_>>()?,
        None => (0..x.rank()).rev().collect(),
    };
    Ok(vec![transpose_value(x, &perm)?])
}

fn squeeze(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let axes = axes_arg(c, 1, 13)?;
    let drop: Vec<usize> = match axes {
        Some(a) => {
            let mut v = a.iter().map(|&a| norm_axis(a, x.rank())).collect::<KResult<Vec<_>>>()?;
            v.sort_unstable();
            v.dedup();
            for &a in &v {
                ensure!(x.shape()[a] == 1, "cannot squeeze axis {a} of size {}", x.shape()[a]);
            }
            v
        }
        None => (0..x.rank()).filter(|&i| x.shape()[i] == 1).collect(),
    };
    let shape: Vec<usize> = x.shape().iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, &d)| d).collect();
    Ok(vec![reshape_value(x, &shape)?])
}

fn unsqueeze(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let axes = axes_arg(c, 1, 13)?.ok_or_else(|| crate::KernelError::Invalid("axes are required".into()))?;
    let out_rank = x.rank() + axes.len();
    let mut axes = axes.iter().map(|&a| norm_axis(a, out_rank)).collect::<KResult<Vec<_>>>()?;
    axes.sort_unstable();
    let n = axes.len();
    axes.dedup();
    ensure!(axes.len() == n, "axes contain duplicates");
    let mut shape = Vec::with_capacity(out_rank);
    let mut src = x.shape().iter();
    for i in 0..out_rank {
        shape.push(if axes.contains(&i) { 1 } else { *src.next().expect("rank") });
    }
    Ok(vec![reshape_value(x, &shape)?])
}

fn concat(c: &Ctx) -> KResult<Vec<Value>> {
    let vals: Vec<&Value> = (0..c.n_inputs()).filter_map(|i| c.opt(i)).collect();
    ensure!(!vals.is_empty(), "needs at least one input");
    let axis = norm_axis(c.int("axis", 0), vals[0].rank())?;
    Ok(vec![concat_values(&vals, axis)?])
}

/// Concatenates values of one type along `axis`.
pub(crate) fn concat_values(vals: &[&Value], axis: usize) -> KResult<Value> {
    fn go<T: Clone>(arrs: &[&ArrayD<T>], axis: usize) -> KResult<ArrayD<T>> {
        let views: Vec<_> = arrs.iter().map(|a| a.view()).collect();
        if let Some(first) = arrs.first() {
            let mut shape = first.shape().to_vec();
            if axis < shape.len() {
                shape[axis] = arrs
                    .iter()
                    .try_fold(0usize, |acc, a| acc.checked_add(*a.shape().get(axis)?))
                    .ok_or_else(|| crate::KernelError::Invalid("inputs do not concatenate".into()))?;
            }
            crate::limits::check_shape(&shape)?;
        }
        Ok(ndarray::concatenate(Axis(axis), &views)?)
    }
    Ok(map_list!(vals, arrs => go(&arrs, axis)?))
}

fn split(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let axis = norm_axis(c.int("axis", 0), x.rank())?;
    let dim = x.shape()[axis];
    let given = if c.opset >= 13 { c.opt(1).map(int_list).transpose()? } else { c.ints("split").map(<[i64]>::to_vec) };
    let n_out = c.n_outputs();
    let sizes: Vec<usize> = match given {
        Some(s) => to_usize_shape(&s, "split size")?,
        None => {
            let n = if c.opset >= 18 { c.int("num_outputs", n_out as i64) as usize } else { n_out };
            ensure!(n > 0, "no outputs to split into");
            let chunk = dim.div_ceil(n);
            (0..n).map(|i| chunk.min(dim.saturating_sub(i * chunk))).collect()
        }
    };
    ensure!(
        sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) == Some(dim),
        "split sizes {sizes:?} do not add up to dimension {dim}"
    );
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for s in sizes {
        let (a, b) = (start as isize, (start + s) as isize);
        out.push(map_all!(x, arr => arr.slice_axis(Axis(axis), Slice::new(a, Some(b), 1)).to_owned()));
        start += s;
    }
    Ok(out)
}

fn slice(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let (starts, ends, axes, steps) = if c.opset < 10 {
        let get = |n| c.ints(n).map(<[i64]>::to_vec);
        (get("starts").unwrap_or_default(), get("ends").unwrap_or_default(), get("axes"), None)
    } else {
        let opt = |i| c.opt(i).map(int_list).transpose();
        (int_list(c.input(1)?)?, int_list(c.input(2)?)?, opt(3)?, opt(4)?)
    };
    ensure!(starts.len() == ends.len(), "starts and ends have different lengths");
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| norm_axis(a, x.rank())).collect::<KResult<_>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    ensure!(axes.len() == starts.len() && steps.len() == starts.len(), "starts/ends/axes/steps lengths differ");
    let mut slices: Vec<Slice> = vec![Slice::from(..); x.rank()];
    for (i, &axis) in axes.iter().enumerate() {
        let dim = x.shape()[axis] as i64;
        ensure!(steps[i] != 0, "step 0 on axis {axis}");
        // A step longer than the axis takes one element, as a step of dim + 1 does.
        let step = steps[i].clamp(-dim - 1, dim + 1);
        let clampi = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
        let norm = |v: i64| if v < 0 { v + dim } else { v };
        let s = norm(starts[i]);
        let e = norm(ends[i]);
        slices[axis] = if step > 0 {
            let (s, e) = (clampi(s, 0, dim), clampi(e, 0, dim));
            if e <= s {
                Slice::new(0, Some(0), 1)
            } else {
                Slice::new(s as isize, Some(e as isize), step as isize)
            }
        } else {
            let (s, e) = (clampi(s, 0, dim - 1), clampi(e, -1, dim - 1));
            if s <= e {
                Slice::new(0, Some(0), 1)
            } else {
                // ONNX walks s, s+step, ... > e; ndarray walks the range [e+1, s+1) backwards from its end.
                let n = (s - e + (-step) - 1) / (-step);
                let last = s + (n - 1) * step;
                Slice::new(last as isize, Some(s as isize + 1), step as isize)
            }
        };
    }
    Ok(vec![map_all!(x, a => a.slice_each_axis(|d| slices[d.axis.index()]).to_owned())])
}

fn gather(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, idx) = (c.input(0)?, c.input(1)?);
    let axis = norm_axis(c.int("axis", 0), x.rank())?;
    let dim = x.shape()[axis] as i64;
    let raw = int_list(idx)?;
    let flat: Vec<usize> = raw
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            if (0..dim).contains(&j) {
                Ok(j as usize)
            } else {
                Err(crate::KernelError::Invalid(format!("index {i} is out of range for dimension {dim}")))
            }
        })
        .collect::<KResult<_>>()?;
    let mut shape: Vec<usize> = x.shape()[..axis].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&x.shape()[axis + 1..]);
    crate::limits::check_shape(&shape)?;
    let picked = map_all!(x, a => a.select(Axis(axis), &flat));
    Ok(vec![reshape_value(&picked, &shape)?])
}

#[derive(Clone, Copy, PartialEq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

fn pad(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let mode = match c.string("mode", "constant").as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => bail!("unknown mode '{m}'"),
    };
    let r = x.rank();
    let (pads, cval, axes) = if c.opset < 11 {
        let p = c.ints("pads").or(c.ints("paddings")).unwrap_or(&[]).to_vec();
        let v = Value::F64(ArrayD::from_elem(IxDyn(&[]), c.float("value", 0.0) as f64)).cast(x.dtype())?;
        (p, Some(v), None)
    } else {
        let axes = c.opt(3).map(int_list).transpose()?;
        (int_list(c.input(1)?)?, c.opt(2).cloned(), axes)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| norm_axis(a, r)).collect::<KResult<_>>()?,
        None => (0..r).collect(),
    };
    ensure!(pads.len() == 2 * axes.len(), "pads has {} values for {} axes", pads.len(), axes.len());
    let mut begin = vec![0i64; r];
    let mut end = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[i + axes.len()];
    }
    let out_shape: Vec<usize> = (0..r)
        .map(|i| {
            let d = x.shape()[i] as i128 + begin[i] as i128 + end[i] as i128;
            if d < 0 {
                Err(crate::KernelError::Invalid(format!("pads {pads:?} make axis {i} negative")))
            } else {
                Ok(d)
            }
        })
        .collect::<KResult<Vec<i128>>>()
        .and_then(|d| crate::limits::check_dims(&d))?;
    if mode != PadMode::Constant {
        for i in 0..r {
            let d = x.shape()[i];
            ensure!(
                d > 0 || out_shape[i] == 0,
                "cannot pad an empty axis {i} in {} mode",
                c.string("mode", "constant")
            );
            if mode == PadMode::Reflect {
                ensure!(
                    (begin[i] < d as i64 && end[i] < d as i64) || d > 1,
                    "reflect pads on axis {i} must be smaller than its size {d}"
                );
            }
        }
    }
    fn go<T: Clone + Default>(
        a: &ArrayD<T>,
        cval: Option<&ArrayD<T>>,
        out_shape: &[usize],
        begin: &[i64],
        mode: PadMode,
    ) -> ArrayD<T> {
        let fill = cval.and_then(|v| v.iter().next().cloned()).unwrap_or_default();
        let shape = a.shape().to_vec();
        let mut src = vec![0usize; shape.len()];
        ArrayD::from_shape_fn(IxDyn(out_shape), |idx| {
            for k in 0..idx.ndim() {
                let i = idx[k];
                let d = shape[k] as i64;
                let mut j = i as i64 - begin[k];
                if j < 0 || j >= d {
                    match mode {
                        PadMode::Constant => return fill.clone(),
                        PadMode::Edge => j = j.clamp(0, d - 1),
                        PadMode::Wrap => j = j.rem_euclid(d),
                        PadMode::Reflect => {
                            if d == 1 {
                                j = 0;
                            } else {
                                let period = 2 * (d - 1);
                                j = j.rem_euclid(period);
                                if j >= d {
                                    j = period - j;
                                }
                            }
                        }
                    }
                }
                src[k] = j as usize;
            }
            a[IxDyn(&src)].clone()
        })
    }
    let mut args: Vec<&Value> = vec![x];
    if let Some(v) = &cval {
        ensure!(v.len() <= 1, "constant_value must be a scalar");
        if v.len() == 1 {
            args.push(v);
        }
    }
    Ok(vec![map_list!(&args, arrs => go(arrs[0], arrs.get(1).copied(), &out_shape, &begin, mode))])
}

fn depth_to_space(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    ensure!(x.rank() == 4, "expects a 4-D input, got {:?}", x.shape());
    let b = c.int("blocksize", 0) as usize;
    let [n, ch, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    ensure!(b > 0 && ch % (b * b) == 0, "channels {ch} are not divisible by blocksize² ({b})");
    let co = ch / (b * b);
    let t = match c.string("mode", "DCR").as_str() {
        "DCR" => transpose_value(&reshape_value(x, &[n, b, b, co, h, w])?, &[0, 3, 4, 1, 5, 2])?,
        "CRD" => transpose_value(&reshape_value(x, &[n, co, b, b, h, w])?, &[0, 1, 4, 2, 5, 3])?,
        m => bail!("unknown mode '{m}'"),
    };
    Ok(vec![reshape_value(&t, &[n, co, h * b, w * b])?])
}

fn space_to_depth(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    ensure!(x.rank() == 4, "expects a 4-D input, got {:?}", x.shape());
    let b = c.int("blocksize", 0) as usize;
    let [n, ch, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    ensure!(b > 0 && h % b == 0 && w % b == 0, "spatial size {h}x{w} is not divisible by blocksize {b}");
    let r = reshape_value(x, &[n, ch, h / b, b, w / b, b])?;
    let t = match c.string("mode", "DCR").as_str() {
        "DCR" => transpose_value(&r, &[0, 3, 5, 1, 2, 4])?,
        "CRD" => transpose_value(&r, &[0, 1, 3, 5, 2, 4])?,
        m => bail!("unknown mode '{m}'"),
    };
    Ok(vec![reshape_value(&t, &[n, ch * b * b, h / b, w / b])?])
}

fn shape_op(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let r = x.rank() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(c.int("start", 0));
    let end = clampi(c.int("end", r));
    let dims: Vec<i64> = x.shape()[start..end.max(start)].iter().map(|&d| d as i64).collect();
    Ok(vec![Value::from_i64(DType::I64, &[dims.len()], &dims)?])
}

fn constant(c: &Ctx) -> KResult<Vec<Value>> {
    let attrs = &c.node.attrs;
    if let Some(t) = qdqc_ir::attr::tensor(attrs, "value") {
        return Ok(vec![Value::from_tensor(&t)?]);
    }
    if let Some(f) = c.float_opt("value_float") {
        return Ok(vec![Value::scalar(f)]);
    }
    if let Some(f) = c.floats("value_floats") {
        return Ok(vec![Value::f32(&[f.len()], f.to_vec())?]);
    }
    if let Some(i) = c.int_opt("value_int") {
        return Ok(vec![Value::scalar(i)]);
    }
    if let Some(i) = c.ints("value_ints") {
        return Ok(vec![Value::from_i64(DType::I64, &[i.len()], i)?]);
    }
    bail!("only dense value / value_float(s) / value_int(s) constants are supported")
}

fn expand(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let spec = to_usize_shape(&int_list(c.input(1)?)?, "dimension")?;
    let shape = super::broadcast_shapes(x.shape(), &spec)?;
    Ok(vec![map_all!(x, a => a.broadcast(IxDyn(&shape)).expect("broadcast shape").to_owned())])
}

fn tile(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let reps = to_usize_shape(&int_list(c.input(1)?)?, "repeat")?;
    ensure!(reps.len() == x.rank(), "repeats {reps:?} do not fit rank {}", x.rank());
    let out: Vec<i128> = x.shape().iter().zip(&reps).map(|(&d, &n)| d as i128 * n as i128).collect();
    crate::limits::check_dims(&out)?;
    let mut v = x.clone();
    for (axis, &n) in reps.iter().enumerate() {
        if n != 1 {
            let copies: Vec<&Value> = std::iter::repeat_n(&v, n).collect();
            v = if n == 0 {
                map_all!(&v, a => a.slice_axis(Axis(axis), Slice::new(0, Some(0), 1)).to_owned())
            } else {
                concat_values(&copies, axis)?
            };
        }
    }
    Ok(vec![v])
}

fn constant_of_shape(c: &Ctx) -> KResult<Vec<Value>> {
    let shape = to_usize_shape(&int_list(c.input(0)?)?, "dimension")?;
    let fill = match qdqc_ir::attr::tensor(&c.node.attrs, "value") {
        Some(t) => Value::from_tensor(&t)?,
        None => Value::scalar(0f32),
    };
    ensure!(fill.len() == 1, "value must have one element");
    crate::limits::check_shape(&shape)?;
    fn filled<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> ArrayD<T> {
        ArrayD::from_elem(IxDyn(shape), a.iter().next().expect("one element").clone())
    }
    Ok(vec![map_all!(&fill, a => filled(a, &shape))])
}

fn range(c: &Ctx) -> KResult<Vec<Value>> {
    let (start, limit, delta) = (c.input(0)?, c.input(1)?, c.input(2)?);
    fn go<T: Scalar>(s: T, l: T, d: T) -> KResult<ArrayD<T>> {
        let (sf, lf, df) = (s.to_f64(), l.to_f64(), d.to_f64());
        ensure!(df != 0.0, "delta is 0");
        let n = ((lf - sf) / df).ceil().max(0.0);
        ensure!(n.is_finite(), "start, limit and delta give no finite length");
        let n = crate::limits::check_dims(&[n as i128])?[0];
        let v: Vec<T> = if T::IS_FLOAT {
            // onnxruntime accumulates start + i·delta in the tensor type.
            (0..n).map(|i| T::from_f64(sf + i as f64 * df)).collect()
        } else {
            (0..n).map(|i| T::from_i128(s.to_i128() + i as i128 * d.to_i128())).collect()
        };
        Ok(ArrayD::from_shape_vec(IxDyn(&[n]), v)?)
    }
    fn first<T: Scalar>(a: &ArrayD<T>) -> KResult<T> {
        a.iter().next().copied().ok_or_else(|| crate::KernelError::Invalid("empty scalar".into()))
    }
    let out = match_numeric!(start, a => {
        let l: Vec<f64> = limit.to_f64_vec()?;
        let d: Vec<f64> = delta.to_f64_vec()?;
        ensure!(l.len() == 1 && d.len() == 1, "limit and delta must be scalars");
        let s = first(a)?;
        Scalar::wrap(go(s, Scalar::from_f64(l[0]), Scalar::from_f64(d[0]))?)
    }, _ => bail!("Range of strings"));
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, i64v, iota, run_op, run_op_n, try_run_op};
    use qdqc_ir::attr::{make_int, make_ints, make_string};

    #[test]
    fn reshape_flatten_squeeze_unsqueeze() {
        let x = iota(&[2, 3, 4]);
        let y = run_op(Op::Reshape, vec![], &[Some(x.clone()), Some(i64v(&[3], &[0, -1, 2]))], 14).remove(0);
        assert_eq!(y.shape(), &[2, 6, 2]);
        let y = run_op(Op::Flatten, vec![make_int("axis", -1)], &[Some(x.clone())], 13).remove(0);
        assert_eq!(y.shape(), &[6, 4]);
        let u = run_op(Op::Unsqueeze, vec![], &[Some(x.clone()), Some(i64v(&[2], &[0, -1]))], 13).remove(0);
        assert_eq!(u.shape(), &[1, 2, 3, 4, 1]);
        let u11 = run_op(Op::Unsqueeze, vec![make_ints("axes", &[1])], &[Some(x.clone())], 11).remove(0);
        assert_eq!(u11.shape(), &[2, 1, 3, 4]);
        let s = run_op(Op::Squeeze, vec![], &[Some(u)], 13).remove(0);
        assert_eq!(s, x);
    }

    #[test]
    fn transpose_and_concat_split() {
        let x = iota(&[2, 3]);
        let t = run_op(Op::Transpose, vec![], &[Some(x.clone())], 13).remove(0);
        assert_eq!(t, f32v(&[3, 2], &[0., 3., 1., 4., 2., 5.]));
        let c = run_op(Op::Concat, vec![make_int("axis", -1)], &[Some(x.clone()), Some(x.clone())], 13).remove(0);
        assert_eq!(c.shape(), &[2, 6]);
        let parts = run_op_n(Op::Split, vec![make_int("axis", 1)], &[Some(c), Some(i64v(&[2], &[4, 2]))], 13, 2);
        assert_eq!(parts[0], f32v(&[2, 4], &[0., 1., 2., 0., 3., 4., 5., 3.]));
        assert_eq!(parts[1], f32v(&[2, 2], &[1., 2., 4., 5.]));
        let parts = run_op_n(Op::Split, vec![make_int("num_outputs", 2)], &[Some(iota(&[5]))], 18, 2);
        assert_eq!(parts[0], f32v(&[3], &[0., 1., 2.]));
        assert_eq!(parts[1], f32v(&[2], &[3., 4.]));
    }

    #[test]
    fn slice_positive_negative_steps() {
        let x = iota(&[10]);
        let s = |st: i64, en: i64, step: i64| {
            run_op(
                Op::Slice,
                vec![],
                &[Some(x.clone()), Some(i64v(&[1], &[st])), Some(i64v(&[1], &[en])), None, Some(i64v(&[1], &[step]))],
                13,
            )
            .remove(0)
            .to_f64_vec()
            .unwrap()
        };
        assert_eq!(s(1, 8, 3), [1., 4., 7.]);
        assert_eq!(s(-1, -100, -3), [9., 6., 3., 0.]);
        assert_eq!(s(8, 1, -2), [8., 6., 4., 2.]);
        assert_eq!(s(0, i64::MAX, 1).len(), 10);
        assert_eq!(s(5, 2, 1), Vec::<f64>::new());
        assert_eq!(s(20, 0, -1), [9., 8., 7., 6., 5., 4., 3., 2., 1.]);
    }

    #[test]
    fn gather_with_negative_indices() {
        let x = iota(&[3, 2]);
        let y = run_op(Op::Gather, vec![], &[Some(x.clone()), Some(i64v(&[2, 1], &[-1, 0]))], 13).remove(0);
        assert_eq!(y, f32v(&[2, 1, 2], &[4., 5., 0., 1.]));
        let y = run_op(Op::Gather, vec![make_int("axis", 1)], &[Some(x), Some(i64v(&[], &[1]))], 13).remove(0);
        assert_eq!(y, f32v(&[3], &[1., 3., 5.]));
    }

    #[test]
    fn pad_modes() {
        let x = f32v(&[1, 3], &[1., 2., 3.]);
        let pads = i64v(&[4], &[0, 2, 0, 1]);
        let p = |mode: &str| {
            run_op(Op::Pad, vec![make_string("mode", mode)], &[Some(x.clone()), Some(pads.clone())], 19)
                .remove(0)
                .to_f64_vec()
                .unwrap()
        };
        assert_eq!(p("constant"), [0., 0., 1., 2., 3., 0.]);
        assert_eq!(p("reflect"), [3., 2., 1., 2., 3., 2.]);
        assert_eq!(p("edge"), [1., 1., 1., 2., 3., 3.]);
        assert_eq!(p("wrap"), [2., 3., 1., 2., 3., 1.]);
        let cv = Value::scalar(9f32);
        let y = run_op(Op::Pad, vec![], &[Some(x.clone()), Some(i64v(&[4], &[0, -1, 0, 1])), Some(cv)], 13).remove(0);
        assert_eq!(y, f32v(&[1, 3], &[2., 3., 9.]));
        let y = run_op(Op::Pad, vec![make_ints("pads", &[0, 1, 0, 0])], &[Some(x)], 2).remove(0);
        assert_eq!(y, f32v(&[1, 4], &[0., 1., 2., 3.]));
    }

    #[test]
    fn depth_space_round_trip() {
        let x = iota(&[1, 8, 2, 3]);
        for mode in ["DCR", "CRD"] {
            let attrs = vec![make_int("blocksize", 2), make_string("mode", mode)];
            let d = run_op(Op::DepthToSpace, attrs, &[Some(x.clone())], 13).remove(0);
            assert_eq!(d.shape(), &[1, 2, 4, 6]);
            if mode == "DCR" {
                let back = run_op(Op::SpaceToDepth, vec![make_int("blocksize", 2)], &[Some(d)], 13).remove(0);
                assert_eq!(back, x);
            }
        }
        // onnx's DepthToSpace CRD example: x = arange(16).reshape(1, 4, 2, 2), blocksize 2.
        let x = iota(&[1, 4, 2, 2]);
        let attrs = vec![make_int("blocksize", 2), make_string("mode", "CRD")];
        let d = run_op(Op::DepthToSpace, attrs, &[Some(x)], 13).remove(0);
        assert_eq!(d.to_f64_vec().unwrap(), [0., 4., 1., 5., 8., 12., 9., 13., 2., 6., 3., 7., 10., 14., 11., 15.]);
    }

    #[test]
    fn shape_and_expand() {
        let x = iota(&[2, 3, 4]);
        let s = run_op(Op::Shape, vec![make_int("start", 1)], &[Some(x)], 15).remove(0);
        assert_eq!(s.to_i64_vec().unwrap(), [3, 4]);
        let e = run_op(Op::Expand, vec![], &[Some(iota(&[3, 1])), Some(i64v(&[3], &[2, 1, 4]))], 13);
        assert_eq!(e[0].shape(), &[2, 3, 4]);
        assert_eq!(e[0].to_f64_vec().unwrap()[..12], [0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
    }

    #[test]
    fn tile_repeats_each_axis() {
        let t = run_op(Op::Tile, vec![], &[Some(iota(&[2, 2])), Some(i64v(&[2], &[2, 3]))], 13).remove(0);
        assert_eq!(t.shape(), &[4, 6]);
        assert_eq!(t.to_f64_vec().unwrap()[..12], [0., 1., 0., 1., 0., 1., 2., 3., 2., 3., 2., 3.]);
        let z = run_op(Op::Tile, vec![], &[Some(iota(&[2, 2])), Some(i64v(&[2], &[1, 0]))], 13).remove(0);
        assert_eq!(z.shape(), &[2, 0]);
        assert!(try_run_op(Op::Tile, vec![], &[Some(iota(&[2, 2])), Some(i64v(&[1], &[2]))], 13, 1).is_err());
    }
}
