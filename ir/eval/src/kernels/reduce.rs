//! Reductions: ReduceMean/Max/Min/Sum/Prod/SumSquare/L1/L2/LogSum/LogSumExp (axes as attribute
//! before opset 18 — before 13 for ReduceSum — and as input after; keepdims;
//! noop_with_empty_axes), ArgMax/ArgMin. Sums accumulate in f64 (exact for integers up to 2^53);
//! Max/Min compare in the tensor's own type.

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Op};
use rayon::prelude::*;

use super::elementwise::match_num;
use super::{int_list, norm_axis, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::num::Scalar;
use crate::value::Value;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Red {
    Mean,
    Max,
    Min,
    Sum,
    Prod,
    SumSquare,
    L1,
    L2,
    LogSum,
    LogSumExp,
}

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::ReduceMean, |c| reduce(c, Red::Mean));
    r.add(Op::ReduceMax, |c| reduce(c, Red::Max));
    r.add(Op::ReduceMin, |c| reduce(c, Red::Min));
    r.add_onnx("ReduceSum", |c| reduce(c, Red::Sum));
    r.add_onnx("ReduceProd", |c| reduce(c, Red::Prod));
    r.add_onnx("ReduceSumSquare", |c| reduce(c, Red::SumSquare));
    r.add_onnx("ReduceL1", |c| reduce(c, Red::L1));
    r.add_onnx("ReduceL2", |c| reduce(c, Red::L2));
    r.add_onnx("ReduceLogSum", |c| reduce(c, Red::LogSum));
    r.add_onnx("ReduceLogSumExp", |c| reduce(c, Red::LogSumExp));
    r.add_onnx("ArgMax", |c| arg(c, true));
    r.add_onnx("ArgMin", |c| arg(c, false));
}

/// Moves the reduced axes last and returns (kept-axes element count, reduced count, data in that
/// order).
fn regroup<T: Copy>(a: &ArrayD<T>, axes: &[usize]) -> (usize, usize, Vec<T>) {
    let r = a.ndim();
    let mut perm: Vec<usize> = (0..r).filter(|i| !axes.contains(i)).collect();
    perm.extend(axes);
    let red: usize = axes.iter().map(|&i| a.shape()[i]).product();
    let keep = a
        .len()
        .checked_div(red)
        .unwrap_or_else(|| a.shape().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d).product());
    let data: Vec<T> = a.view().permuted_axes(IxDyn(&perm)).iter().copied().collect();
    (keep, red, data)
}

fn out_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| if axes.contains(&i) { keepdims.then_some(1) } else { Some(d) })
        .collect()
}

fn reduce(c: &Ctx, op: Red) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let input_from = if op == Red::Sum { 13 } else { 18 };
    let given =
        if c.opset >= input_from { c.opt(1).map(int_list).transpose()? } else { c.ints("axes").map(<[i64]>::to_vec) };
    let keepdims = c.int("keepdims", 1) != 0;
    let axes: Vec<usize> = match given {
        Some(a) if !a.is_empty() => {
            let mut v = a.iter().map(|&a| norm_axis(a, x.rank())).collect::<KResult<Vec<_>>>()?;
            v.sort_unstable();
            v.dedup();
            v
        }
        _ if c.int("noop_with_empty_axes", 0) != 0 => return Ok(vec![x.clone()]),
        _ => (0..x.rank()).collect(),
    };
    let shape = out_shape(x.shape(), &axes, keepdims);
    let y = match op {
        Red::Max | Red::Min => {
            fn go<T: Scalar>(a: &ArrayD<T>, axes: &[usize], max: bool, shape: &[usize]) -> KResult<Value> {
                let (keep, red, data) = regroup(a, axes);
                if red == 0 {
                    // The max of nothing is the lowest value (−inf), the min the highest.
                    let is_bool = std::any::TypeId::of::<T>() == std::any::TypeId::of::<bool>();
                    let v = match (is_bool, max) {
                        (true, m) => T::from_f64(if m { 0.0 } else { 1.0 }),
                        (false, true) => T::from_f64(f64::NEG_INFINITY),
                        (false, false) => T::from_f64(f64::INFINITY),
                    };
                    return Ok(Scalar::wrap(ArrayD::from_elem(IxDyn(shape), v)));
                }
                let out: Vec<T> = (0..keep)
                    .into_par_iter()
                    .map(|k| {
                        let row = &data[k * red..(k + 1) * red];
                        row.iter().copied().fold(row[0], |m, v| {
                            if v.to_f64().is_nan() || m.to_f64().is_nan() {
                                T::from_f64(f64::NAN)
                            } else if (max && v > m) || (!max && v < m) {
                                v
                            } else {
                                m
                            }
                        })
                    })
                    .collect();
                Ok(Scalar::wrap(ArrayD::from_shape_vec(IxDyn(shape), out)?))
            }
            match x {
                Value::Bool(a) => go(a, &axes, op == Red::Max, &shape)?,
                _ => match_num!(x, a => go(a, &axes, op == Red::Max, &shape)?,
                    bail!("{op:?} of {} is not supported", x.dtype())),
            }
        }
        _ => {
            let a = x.cast_array_to::<f64>();
            let (keep, red, data) = regroup(&a, &axes);
            let out: Vec<f64> = (0..keep)
                .into_par_iter()
                .map(|k| {
                    let row = &data[k * red..(k + 1) * red];
                    match op {
                        Red::Mean => row.iter().sum::<f64>() / red as f64,
                        Red::Sum => row.iter().sum(),
                        Red::Prod => row.iter().product(),
                        Red::SumSquare => row.iter().map(|v| v * v).sum(),
                        Red::L1 => row.iter().map(|v| v.abs()).sum(),
                        Red::L2 => row.iter().map(|v| v * v).sum::<f64>().sqrt(),
                        Red::LogSum => row.iter().sum::<f64>().ln(),
                        Red::LogSumExp => {
                            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            if m.is_infinite() {
                                row.iter().map(|v| v.exp()).sum::<f64>().ln()
                            } else {
                                m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
                            }
                        }
                        Red::Max | Red::Min => unreachable!(),
                    }
                })
                .collect();
            let v = Value::F64(ArrayD::from_shape_vec(IxDyn(&shape), out)?);
            if x.dtype().is_float() {
                v.cast(x.dtype())?
            } else {
                // Integer results: exact sums, cast back (wrapping like the tensor type).
                Value::I64(v.cast_array_to::<i64>()).cast(x.dtype())?
            }
        }
    };
    Ok(vec![y])
}

fn arg(c: &Ctx, max: bool) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let axis = norm_axis(c.int("axis", 0), x.rank())?;
    let keepdims = c.int("keepdims", 1) != 0;
    let last = c.int("select_last_index", 0) != 0;
    let shape = out_shape(x.shape(), &[axis], keepdims);
    fn go<T: Scalar>(a: &ArrayD<T>, axis: usize, max: bool, last: bool) -> KResult<Vec<i64>> {
        let (keep, red, data) = regroup(a, &[axis]);
        ensure!(red > 0, "ArgMax/ArgMin of an empty axis");
        Ok((0..keep)
            .map(|k| {
                let row = &data[k * red..(k + 1) * red];
                let mut best = 0usize;
                for (i, &v) in row.iter().enumerate().skip(1) {
                    let better = if max { v > row[best] } else { v < row[best] };
                    if better || (last && v == row[best]) {
                        best = i;
                    }
                }
                best as i64
            })
            .collect())
    }
    let idx = match_num!(x, a => go(a, axis, max, last)?, bail!("ArgMax/ArgMin of {} is not supported", x.dtype()));
    Ok(vec![Value::from_i64(DType::I64, &shape, &idx)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, i64v, run_op};
    use qdqc_ir::attr::{make_int, make_ints};

    #[test]
    fn reduce_mean_axes_attr_and_input() {
        let x = f32v(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let y = run_op(Op::ReduceMean, vec![make_ints("axes", &[1])], &[Some(x.clone())], 13).remove(0);
        assert_eq!(y, f32v(&[2, 1], &[2., 5.]));
        let y = run_op(Op::ReduceMean, vec![make_int("keepdims", 0)], &[Some(x.clone()), Some(i64v(&[1], &[0]))], 18)
            .remove(0);
        assert_eq!(y, f32v(&[3], &[2.5, 3.5, 4.5]));
        let y = run_op(Op::ReduceMax, vec![make_int("keepdims", 0)], &[Some(x.clone())], 18).remove(0);
        assert_eq!(y, f32v(&[], &[6.]));
        let y = run_op(Op::ReduceMin, vec![make_int("noop_with_empty_axes", 1)], &[Some(x.clone())], 18).remove(0);
        assert_eq!(y, x);
    }

    #[test]
    fn integer_reductions_and_argmax() {
        let x = Value::from_i64(DType::I8, &[2, 2], &[-5, 7, 3, -1]).unwrap();
        let y = run_op(Op::ReduceMax, vec![make_ints("axes", &[0])], &[Some(x.clone())], 13).remove(0);
        assert_eq!(y.dtype(), DType::I8);
        assert_eq!(y.to_i64_vec().unwrap(), [3, 7]);
        let am = run_op(Op::other("", "ArgMax"), vec![make_int("axis", 1)], &[Some(x)], 13);
        assert_eq!(am[0].to_i64_vec().unwrap(), [1, 0]);
    }
}
