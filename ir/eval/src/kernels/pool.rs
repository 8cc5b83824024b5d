//! Pooling: MaxPool (with optional Indices), AveragePool (ceil_mode, count_include_pad,
//! dilations), GlobalAveragePool, GlobalMaxPool. Windows and padding follow [`Geom`].

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Op};
use rayon::prelude::*;

use super::conv::Geom;
use super::elementwise::match_num;
use super::{f32_output, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::num::Scalar;
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::MaxPool, max_pool);
    r.add(Op::AveragePool, average_pool);
    r.add(Op::GlobalAveragePool, global_average_pool);
    r.add(Op::GlobalMaxPool, global_max_pool);
}

/// The taps of every output pixel (`out_len × kernel_len`, `None` in padding).
pub(crate) fn all_taps(g: &Geom) -> Vec<Option<usize>> {
    let kl = g.kernel_len();
    let mut all = Vec::with_capacity(g.out_len() * kl);
    let mut offs = Vec::with_capacity(kl);
    for o in 0..g.out_len() {
        g.taps(o, &mut offs);
        all.extend_from_slice(&offs);
    }
    all
}

/// For AveragePool with `count_include_pad`: per output pixel, how many taps lie inside the
/// padded input (a ceil_mode window may reach past the end padding; those taps do not count).
pub(crate) fn padded_counts(g: &Geom) -> Vec<usize> {
    let r = g.in_sp.len();
    (0..g.out_len())
        .map(|o| {
            let mut rem = o;
            let mut count = 1usize;
            for i in (0..r).rev() {
                let oi = rem % g.out_sp[i];
                rem /= g.out_sp[i];
                let start = (oi * g.strides[i]) as i64 - g.pad_begin[i] as i64;
                let hi = (g.in_sp[i] + g.pad_end[i]) as i64;
                let lo = -(g.pad_begin[i] as i64);
                let n = (0..g.kernel[i]).filter(|&k| (lo..hi).contains(&(start + (k * g.dilations[i]) as i64))).count();
                count *= n;
            }
            count
        })
        .collect()
}

fn pool_geom(c: &Ctx, x: &Value) -> KResult<Geom> {
    ensure!(x.rank() >= 3, "expects an input of rank ≥ 3, got {:?}", x.shape());
    let kernel: Vec<usize> = c
        .ints("kernel_shape")
        .ok_or_else(|| crate::KernelError::Invalid("kernel_shape is required".into()))?
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| crate::KernelError::Invalid(format!("kernel size {k}"))))
        .collect::<KResult<_>>()?;
    let g = Geom::new(c, &x.shape()[2..], &kernel, c.int("ceil_mode", 0) != 0)?;
    crate::limits::check_shape(&out_shape(x, &g))?;
    Ok(g)
}

fn out_shape(x: &Value, g: &Geom) -> Vec<usize> {
    let mut s = x.shape()[..2].to_vec();
    s.extend(&g.out_sp);
    s
}

fn max_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let g = pool_geom(c, x)?;
    let taps = all_taps(&g);
    let (kl, ol, il) = (g.kernel_len(), g.out_len(), g.in_len());
    let planes = x.shape()[0] * x.shape()[1];
    let want_indices = c.n_outputs() > 1 && !c.node.outputs[1].name.is_empty();
    let col_major = c.int("storage_order", 0) == 1;
    let sp = g.in_sp.clone();
    // Flat index of an input offset under the storage order (row-major offsets are ours).
    let to_index = move |plane: usize, off: usize| -> i64 {
        let idx = if col_major {
            let mut rem = off;
            let mut coords = vec![0usize; sp.len()];
            for i in (0..sp.len()).rev() {
                coords[i] = rem % sp[i];
                rem /= sp[i];
            }
            let mut v = 0usize;
            for i in (0..sp.len()).rev() {
                v = v * sp[i] + coords[i];
            }
            v
        } else {
            off
        };
        (plane * sp.iter().product::<usize>() + idx) as i64
    };
    fn go<T: Scalar>(
        a: &ArrayD<T>,
        taps: &[Option<usize>],
        planes: usize,
        kl: usize,
        ol: usize,
        il: usize,
    ) -> (Vec<T>, Vec<usize>) {
        let data: Vec<T> = a.iter().copied().collect();
        let mut out = vec![T::default(); planes * ol];
        let mut arg = vec![0usize; planes * ol];
        out.par_chunks_mut(ol.max(1)).zip(arg.par_chunks_mut(ol.max(1))).enumerate().for_each(|(p, (y, am))| {
            let xp = &data[p * il..(p + 1) * il];
            for o in 0..ol {
                let mut best: Option<(T, usize)> = None;
                for off in taps[o * kl..(o + 1) * kl].iter().flatten() {
                    let v = xp[*off];
                    // NaN never wins against a number; the first maximum is kept.
                    if best.is_none_or(|(b, _)| v > b || (b.to_f64().is_nan() && !v.to_f64().is_nan())) {
                        best = Some((v, *off));
                    }
                }
                let (v, i) = best.unwrap_or((T::from_f64(f64::NEG_INFINITY), 0));
                y[o] = v;
                am[o] = i;
            }
        });
        (out, arg)
    }
    let shape = out_shape(x, &g);
    let (y, arg) = match_num!(x, a => {
        let (out, arg) = go(a, &taps, planes, kl, ol, il);
        (Scalar::wrap(ArrayD::from_shape_vec(IxDyn(&shape), out)?), arg)
    }, bail!("MaxPool on {} is not supported", x.dtype()));
    let mut outs = vec![y];
    if want_indices {
        let idx: Vec<i64> = arg.iter().enumerate().map(|(i, &off)| to_index(i / ol.max(1), off)).collect();
        outs.push(Value::from_i64(DType::I64, &shape, &idx)?);
    }
    Ok(outs)
}

fn average_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let g = pool_geom(c, x)?;
    let taps = all_taps(&g);
    let include_pad = c.int("count_include_pad", 0) != 0;
    let counts = if include_pad { padded_counts(&g) } else { Vec::new() };
    let xf = super::f32_input(x, "X")?;
    let data: Vec<f32> = xf.iter().copied().collect();
    let (kl, ol, il) = (g.kernel_len(), g.out_len(), g.in_len());
    let planes = x.shape()[0] * x.shape()[1];
    let mut out = vec![0f32; planes * ol];
    out.par_chunks_mut(ol.max(1)).enumerate().for_each(|(p, y)| {
        let xp = &data[p * il..(p + 1) * il];
        for (o, yo) in y.iter_mut().enumerate() {
            let mut sum = 0f32;
            let mut n = 0usize;
            for off in taps[o * kl..(o + 1) * kl].iter().flatten() {
                sum += xp[*off];
                n += 1;
            }
            let div = if include_pad { counts[o] } else { n };
            *yo = if div == 0 { 0.0 } else { sum / div as f32 };
        }
    });
    Ok(vec![f32_output(ArrayD::from_shape_vec(IxDyn(&out_shape(x, &g)), out)?, x.dtype())?])
}

fn global_shape(x: &Value) -> KResult<Vec<usize>> {
    ensure!(x.rank() >= 2, "expects an input of rank ≥ 2, got {:?}", x.shape());
    let mut s = x.shape()[..2].to_vec();
    s.extend(std::iter::repeat_n(1, x.rank() - 2));
    Ok(s)
}

fn global_average_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let shape = global_shape(x)?;
    let xf = super::f32_input(x, "X")?;
    let data: Vec<f32> = xf.iter().copied().collect();
    let il: usize = x.shape()[2..].iter().product();
    let out: Vec<f32> =
        data.par_chunks(il.max(1)).map(|p| p.iter().map(|&v| v as f64).sum::<f64>() as f32 / il as f32).collect();
    let out = if il == 0 { vec![f32::NAN; shape.iter().product()] } else { out };
    Ok(vec![f32_output(ArrayD::from_shape_vec(IxDyn(&shape), out)?, x.dtype())?])
}

fn global_max_pool(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let shape = global_shape(x)?;
    let il: usize = x.shape()[2..].iter().product();
    fn go<T: Scalar>(a: &ArrayD<T>, il: usize) -> Vec<T> {
        let data: Vec<T> = a.iter().copied().collect();
        data.chunks(il.max(1)).map(|p| p.iter().copied().fold(p[0], |m, v| if v > m { v } else { m })).collect()
    }
    let y = match_num!(x, a => Scalar::wrap(ArrayD::from_shape_vec(IxDyn(&shape), go(a, il))?),
        bail!("GlobalMaxPool on {} is not supported", x.dtype()));
    Ok(vec![y])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, iota, run_op, run_op_n};
    use qdqc_ir::attr::{make_int, make_ints, make_string};

    #[test]
    fn max_pool_with_indices() {
        let x = iota(&[1, 1, 4, 4]);
        let attrs = vec![make_ints("kernel_shape", &[2, 2]), make_ints("strides", &[2, 2])];
        let y = run_op_n(Op::MaxPool, attrs, &[Some(x)], 12, 2);
        assert_eq!(y[0], f32v(&[1, 1, 2, 2], &[5., 7., 13., 15.]));
        assert_eq!(y[1].to_i64_vec().unwrap(), [5, 7, 13, 15]);
    }

    #[test]
    fn max_pool_on_uint8_with_pads() {
        let x = Value::from_i64(DType::U8, &[1, 1, 2, 2], &[1, 9, 3, 4]).unwrap();
        let attrs = vec![make_ints("kernel_shape", &[2, 2]), make_ints("pads", &[1, 1, 1, 1])];
        let y = run_op(Op::MaxPool, attrs, &[Some(x)], 12).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), [1, 9, 9, 3, 9, 9, 3, 4, 4]);
    }

    #[test]
    fn global_pools() {
        let x = iota(&[1, 2, 2, 2]);
        let y = run_op(Op::GlobalAveragePool, vec![], &[Some(x.clone())], 13).remove(0);
        assert_eq!(y, f32v(&[1, 2, 1, 1], &[1.5, 5.5]));
        let y = run_op(Op::GlobalMaxPool, vec![], &[Some(x)], 13).remove(0);
        assert_eq!(y, f32v(&[1, 2, 1, 1], &[3., 7.]));
    }

    #[test]
    fn average_pool_same_upper() {
        let x = iota(&[1, 1, 3, 3]);
        let attrs = vec![make_ints("kernel_shape", &[2, 2]), make_string("auto_pad", "SAME_UPPER")];
        let y = run_op(Op::AveragePool, attrs, &[Some(x)], 19).remove(0);
        assert_eq!(y, f32v(&[1, 1, 3, 3], &[2., 3., 3.5, 5., 6., 6.5, 6.5, 7.5, 8.]));
    }

    /// Expected values from onnxruntime 1.32 (ORT_DISABLE_ALL) on x = arange(25).reshape(1, 1, 5, 5).
    #[test]
    fn ceil_mode_count_include_pad_dilations_match_onnxruntime() {
        let x = iota(&[1, 1, 5, 5]);
        let k = |v: &[i64]| make_ints("kernel_shape", v);
        let s = |v: &[i64]| make_ints("strides", v);
        let p = |v: &[i64]| make_ints("pads", v);
        let d = |v: &[i64]| make_ints("dilations", v);
        let cm = make_int("ceil_mode", 1);
        let cip = |v| make_int("count_include_pad", v);
        let cases: Vec<(Op, Vec<_>, Vec<usize>, Vec<f32>)> = vec![
            (
                Op::AveragePool,
                vec![k(&[3, 3]), s(&[2, 2]), p(&[1; 4]), cm.clone(), cip(0)],
                vec![3, 3],
                vec![3.0, 4.5, 6.0, 10.5, 12.0, 13.5, 18.0, 19.5, 21.0],
            ),
            (
                Op::AveragePool,
                vec![k(&[3, 3]), s(&[2, 2]), p(&[1; 4]), cm.clone(), cip(1)],
                vec![3, 3],
                vec![1.333_333_4, 3.0, 2.666_666_7, 7.0, 12.0, 9.0, 8.0, 13.0, 9.333_333],
            ),
            (
                Op::AveragePool,
                vec![k(&[2, 2]), s(&[2, 2]), cm.clone(), cip(1)],
                vec![3, 3],
                vec![3.0, 5.0, 6.5, 13.0, 15.0, 16.5, 20.5, 22.5, 24.0],
            ),
            (
                Op::AveragePool,
                vec![k(&[3, 3]), s(&[3, 3]), p(&[0, 0, 1, 1]), cm.clone(), cip(1)],
                vec![2, 2],
                vec![6.0, 5.666_666_5, 12.333_333, 9.333_333],
            ),
            (
                Op::AveragePool,
                vec![k(&[2, 2]), d(&[2, 2]), p(&[1; 4]), cip(1)],
                vec![5, 5],
                vec![
                    1.5, 3.0, 3.5, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0, 4.0, 5.5, 11.0, 12.0, 13.0, 6.5, 8.0, 16.0, 17.0,
                    18.0, 9.0, 4.0, 8.0, 8.5, 9.0, 4.5,
                ],
            ),
            (
                Op::MaxPool,
                vec![k(&[3, 3]), s(&[2, 2]), p(&[1; 4]), cm.clone()],
                vec![3, 3],
                vec![6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0],
            ),
            (
                Op::MaxPool,
                vec![k(&[2, 2]), s(&[2, 2]), cm.clone()],
                vec![3, 3],
                vec![6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0],
            ),
            (
                Op::MaxPool,
                vec![k(&[2, 2]), d(&[2, 2])],
                vec![3, 3],
                vec![12.0, 13.0, 14.0, 17.0, 18.0, 19.0, 22.0, 23.0, 24.0],
            ),
        ];
        for (op, attrs, hw, want) in cases {
            let y = run_op(op.clone(), attrs.clone(), &[Some(x.clone())], 19).remove(0);
            assert_eq!(y.shape(), &[1, 1, hw[0], hw[1]], "{op} {attrs:?}");
            assert_eq!(y.to_f32_vec().unwrap(), want, "{op} {attrs:?}");
        }
    }
}
