//! Normalisations and softmax: Softmax / LogSoftmax (axis semantics before and after opset 13),
//! BatchNormalization (inference), LayerNormalization, InstanceNormalization, PRelu.
//! Row statistics are accumulated in f64 and results rounded once to the tensor's type.

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::Op;
use rayon::prelude::*;

use super::{broadcast_shapes, norm_axis, Ctx, Registry};
use crate::error::{ensure, KResult};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::Softmax, |c| softmax(c, false));
    r.add_onnx("LogSoftmax", |c| softmax(c, true));
    r.add(Op::BatchNormalization, batch_norm);
    r.add(Op::LayerNormalization, layer_norm);
    r.add_onnx("InstanceNormalization", instance_norm);
    r.add_onnx("PRelu", prelu);
}

/// A float tensor as row-major f64 values.
fn f64_data(v: &Value, what: &str) -> KResult<Vec<f64>> {
    ensure!(v.dtype().is_float(), "{what} must be a float tensor, got {}", v.dtype());
    Ok(v.to_f64_vec()?)
}

/// Back to a value of `like`'s float type and `shape`.
fn from_f64(data: Vec<f64>, shape: &[usize], like: &Value) -> KResult<Value> {
    Ok(Value::F64(ArrayD::from_shape_vec(IxDyn(shape), data)?).cast(like.dtype())?)
}

/// Softmax over groups of `len` elements that are `inner` apart: element `(o, i, j)` is at
/// `(o·len + i)·inner + j`.
///
/// The steps follow Softmax's ONNX function body (`Exp(X − ReduceMax(X))`, `ReduceSum`, `Div`;
/// LogSoftmax: `X − max`, `Log(ReduceSum(Exp(…)))`, `Sub`), and every intermediate the body
/// names is a tensor of the input type, so `round` (to that type) is applied to each: exp values,
/// the sum, the log of the sum. The arithmetic itself is f64. For f32 this changes results by at
/// most an ulp; for f16/bf16 it is what makes them agree with the ONNX reference (computing the
/// whole row in f64 and rounding once gives a different f16 in about one element in ten).
pub(crate) fn softmax_rows(data: &mut [f64], len: usize, inner: usize, log: bool, round: fn(f64) -> f64) {
    if len == 0 || inner == 0 {
        return;
    }
    data.par_chunks_mut(len * inner).for_each(|block| {
        for j in 0..inner {
            let max = (0..len).map(|i| block[i * inner + j]).fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for i in 0..len {
                let v = &mut block[i * inner + j];
                if log {
                    *v = round(*v - max);
                    sum += round(v.exp());
                } else {
                    *v = round((*v - max).exp());
                    sum += *v;
                }
            }
            let sum = round(sum);
            let log_sum = round(sum.ln());
            for i in 0..len {
                let v = &mut block[i * inner + j];
                *v = if log { *v - log_sum } else { *v / sum };
            }
        }
    });
}

/// Rounding of an f64 to the float type `dtype` (identity for f64).
fn rounding(dtype: qdqc_ir::DType) -> fn(f64) -> f64 {
    match dtype {
        qdqc_ir::DType::F32 => |x| x as f32 as f64,
        qdqc_ir::DType::F16 => |x| half::f16::from_f64(x).to_f64(),
        qdqc_ir::DType::BF16 => |x| half::bf16::from_f64(x).to_f64(),
        _ => |x| x,
    }
}

/// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row of the
/// flattened `[d0·…·d(axis-1), d(axis)·…]` matrix is normalised; from opset 13 only `axis`
/// (default -1) is.
fn softmax(c: &Ctx, log: bool) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let mut data = f64_data(x, "input")?;
    let shape = x.shape();
    if shape.is_empty() {
        let v = if log { 0.0 } else { 1.0 };
        return Ok(vec![from_f64(vec![v], shape, x)?]);
    }
    if c.opset < 13 {
        let axis = norm_axis(c.int("axis", 1), shape.len())?;
        let len: usize = shape[axis..].iter().product();
        softmax_rows(&mut data, len, 1, log, rounding(x.dtype()));
    } else {
        let axis = norm_axis(c.int("axis", -1), shape.len())?;
        let inner: usize = shape[axis + 1..].iter().product();
        softmax_rows(&mut data, shape[axis], inner, log, rounding(x.dtype()));
    }
    Ok(vec![from_f64(data, shape, x)?])
}

/// Per-channel parameters (`[C]`) as f64.
fn channel_param(v: &Value, ch: usize, what: &str) -> KResult<Vec<f64>> {
    let p = f64_data(v, what)?;
    ensure!(p.len() == ch, "{what} has {} values for {ch} channels", p.len());
    Ok(p)
}

/// Inference-mode BatchNormalization: `y = (x − mean) / sqrt(var + ε) · scale + B`.
fn batch_norm(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    ensure!(x.rank() >= 2, "expects rank ≥ 2, got {:?}", x.shape());
    let ch = x.shape()[1];
    let scale = channel_param(c.input(1)?, ch, "scale")?;
    let bias = channel_param(c.input(2)?, ch, "B")?;
    let input_mean = channel_param(c.input(3)?, ch, "mean")?;
    let input_var = channel_param(c.input(4)?, ch, "var")?;
    let eps = c.float("epsilon", 1e-5) as f64;
    let inner: usize = x.shape()[2..].iter().product();
    let mut data = f64_data(x, "X")?;
    let training = c.int("training_mode", 0) != 0;
    let (mean, var) = if training {
        // Normalise with the batch statistics (population variance over N and spatial dims).
        let mut sum = vec![0f64; ch];
        let mut sq = vec![0f64; ch];
        for (p, plane) in data.chunks(inner.max(1)).enumerate() {
            sum[p % ch] += plane.iter().sum::<f64>();
        }
        let count = (data.len() / ch.max(1)) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        for (p, plane) in data.chunks(inner.max(1)).enumerate() {
            let k = p % ch;
            sq[k] += plane.iter().map(|v| (v - mean[k]) * (v - mean[k])).sum::<f64>();
        }
        let var: Vec<f64> = sq.iter().map(|s| s / count).collect();
        (mean, var)
    } else {
        (input_mean.clone(), input_var.clone())
    };
    data.par_chunks_mut(inner.max(1)).enumerate().for_each(|(p, plane)| {
        let k = p % ch;
        let a = scale[k] / (var[k] + eps).sqrt();
        for v in plane {
            *v = (*v - mean[k]) * a + bias[k];
        }
    });
    let y = from_f64(data, x.shape(), x)?;
    if !training {
        return Ok(vec![y]);
    }
    // Training mode also outputs the updated running statistics.
    let momentum = c.float("momentum", 0.9) as f64;
    let running = |input: &[f64], batch: &[f64]| -> Vec<f64> {
        input.iter().zip(batch).map(|(i, b)| i * momentum + b * (1.0 - momentum)).collect()
    };
    let like = c.input(3)?;
    Ok(vec![y, from_f64(running(&input_mean, &mean), &[ch], like)?, from_f64(running(&input_var, &var), &[ch], like)?])
}

/// LayerNormalization over the dims from `axis` on; outputs Y and optionally Mean, InvStdDev
/// (f32, shaped like X with the normalised dims set to 1).
fn layer_norm(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    let shape = x.shape().to_vec();
    let axis = norm_axis(c.int("axis", -1), shape.len())?;
    let eps = c.float("epsilon", 1e-5) as f64;
    let norm_shape = &shape[axis..];
    let len: usize = norm_shape.iter().product();
    let outer: usize = shape[..axis].iter().product();
    let broadcast_param = |v: &Value, what: &str| -> KResult<Vec<f64>> {
        let b = broadcast_shapes(v.shape(), norm_shape)?;
        ensure!(b == norm_shape, "{what} of shape {:?} does not broadcast to {norm_shape:?}", v.shape());
        let a = v.cast_array_to::<f64>();
        Ok(a.broadcast(IxDyn(norm_shape)).expect("broadcast").iter().copied().collect())
    };
    let scale = broadcast_param(c.input(1)?, "Scale")?;
    let bias = match c.opt(2) {
        Some(b) => Some(broadcast_param(b, "B")?),
        None => None,
    };
    let mut data = f64_data(x, "X")?;
    let mut means = vec![0f64; outer];
    let mut inv = vec![0f64; outer];
    data.par_chunks_mut(len.max(1)).zip(means.par_iter_mut().zip(inv.par_iter_mut())).for_each(|(row, (m, is))| {
        let mean = row.iter().sum::<f64>() / len as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
        let inv_std = 1.0 / (var + eps).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) * inv_std * scale[i] + bias.as_ref().map_or(0.0, |b| b[i]);
        }
        *m = mean;
        *is = inv_std;
    });
    let mut outs = vec![from_f64(data, &shape, x)?];
    let mut stat_shape = shape[..axis].to_vec();
    stat_shape.extend(std::iter::repeat_n(1, shape.len() - axis));
    for stat in [means, inv] {
        outs.push(Value::F32(ArrayD::from_shape_vec(IxDyn(&stat_shape), stat.iter().map(|&v| v as f32).collect())?));
    }
    Ok(outs)
}

fn instance_norm(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    ensure!(x.rank() >= 3, "expects rank ≥ 3, got {:?}", x.shape());
    let ch = x.shape()[1];
    let scale = channel_param(c.input(1)?, ch, "scale")?;
    let bias = channel_param(c.input(2)?, ch, "B")?;
    let eps = c.float("epsilon", 1e-5) as f64;
    let inner: usize = x.shape()[2..].iter().product();
    let mut data = f64_data(x, "input")?;
    data.par_chunks_mut(inner.max(1)).enumerate().for_each(|(p, plane)| {
        let k = p % ch;
        let n = plane.len() as f64;
        let mean = plane.iter().sum::<f64>() / n;
        let var = plane.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let a = scale[k] / (var + eps).sqrt();
        for v in plane {
            *v = (*v - mean) * a + bias[k];
        }
    });
    Ok(vec![from_f64(data, x.shape(), x)?])
}

fn prelu(c: &Ctx) -> KResult<Vec<Value>> {
    let (x, slope) = (c.input(0)?, c.input(1)?);
    ensure!(x.dtype() == slope.dtype(), "X and slope types differ");
    let xa = x.cast_array_to::<f64>();
    let sa = slope.cast_array_to::<f64>();
    let y = super::elementwise::zip2(&xa, &sa, |v, s| if v < 0.0 { v * s } else { v })?;
    Ok(vec![Value::F64(y).cast(x.dtype())?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, run_op, run_op_n};
    use qdqc_ir::attr::{make_float, make_int};

    fn close(a: &Value, b: &[f32]) {
        for (x, y) in a.to_f32_vec().unwrap().iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn softmax_axis_semantics_differ_at_opset_13() {
        // x [2, 2, 2], axis 1. Opset 11 normalises over the last 4 elements of each batch row;
        // opset 13 over axis 1 only.
        let x = f32v(&[2, 2, 2], &[0., 1., 2., 3., 0., 0., 0., 0.]);
        let y11 = run_op(Op::Softmax, vec![make_int("axis", 1)], &[Some(x.clone())], 11).remove(0);
        let e: Vec<f64> = [0f64, 1., 2., 3.].iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        let mut want: Vec<f32> = e.iter().map(|v| (v / s) as f32).collect();
        want.extend([0.25f32; 4]);
        close(&y11, &want);
        let y13 = run_op(Op::Softmax, vec![make_int("axis", 1)], &[Some(x.clone())], 13).remove(0);
        let a = (1.0 / (1.0 + 2f64.exp())) as f32; // softmax([0, 2])[0]
        close(&y13, &[a, a, 1. - a, 1. - a, 0.5, 0.5, 0.5, 0.5]);
        // Defaults: axis 1 before 13 (here: the whole of each batch row), -1 from 13.
        let d11 = run_op(Op::Softmax, vec![], &[Some(x.clone())], 11).remove(0);
        assert_eq!(d11, y11);
        let d13 = run_op(Op::Softmax, vec![], &[Some(x)], 13).remove(0);
        let b = (1.0 / (1.0 + 1f64.exp())) as f32; // softmax([0, 1])[0]
        close(&d13, &[b, 1. - b, b, 1. - b, 0.5, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn f16_softmax_rounds_each_intermediate_of_the_function_body() {
        // exp values and their sum are f16 tensors in Softmax's function body; the result is
        // then the f16 quotient. Rounding the f64 softmax once gives 0.15942 / 0.19934 / 0.19373
        // for elements 0, 1, 3 instead (onnx's reference computes in f16, as here).
        let x: Vec<half::f16> =
            [0.62353515625, 0.8466796875, 1.6552734375, 0.818359375].iter().map(|&v| half::f16::from_f64(v)).collect();
        let x = Value::F16(ArrayD::from_shape_vec(IxDyn(&[1, 4]), x).unwrap());
        let y = run_op(Op::Softmax, vec![], &[Some(x)], 13).remove(0);
        assert_eq!(y.dtype(), qdqc_ir::DType::F16);
        assert_eq!(y.to_f64_vec().unwrap(), [0.1595458984375, 0.199462890625, 0.447509765625, 0.19384765625]);
    }

    #[test]
    fn batch_norm_inference() {
        let x = f32v(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
        let ins = [
            Some(x),
            Some(f32v(&[2], &[1., 2.])),
            Some(f32v(&[2], &[0., 1.])),
            Some(f32v(&[2], &[1., 3.])),
            Some(f32v(&[2], &[4., 1.])),
        ];
        let y = run_op(Op::BatchNormalization, vec![make_float("epsilon", 0.0)], &ins, 15).remove(0);
        assert_eq!(y, f32v(&[1, 2, 1, 2], &[0., 0.5, 1., 3.]));
    }

    #[test]
    fn layer_norm_with_stats() {
        let x = f32v(&[2, 2], &[1., 3., -1., 1.]);
        let ins = [Some(x), Some(f32v(&[2], &[1., 2.])), Some(f32v(&[2], &[0., 1.]))];
        let y = run_op_n(Op::LayerNormalization, vec![make_float("epsilon", 0.0)], &ins, 17, 3);
        assert_eq!(y[0], f32v(&[2, 2], &[-1., 3., -1., 3.]));
        assert_eq!(y[1], f32v(&[2, 1], &[2., 0.]));
        assert_eq!(y[2], f32v(&[2, 1], &[1., 1.]));
    }
}
