//! Element-wise ops with numpy broadcasting: arithmetic, comparisons, activations, Clip, Cast.
//!
//! Float math is done in f64 and rounded once to the tensor's type. For `+ - * /` and `sqrt` this
//! is bit-identical to computing in f32 (f64 has more than 2·24+2 bits, so the double rounding is
//! innocuous); transcendental functions come out correctly rounded, which is within an ulp or two
//! of onnxruntime's vectorised approximations. Multi-step formulas that usually feed a
//! QuantizeLinear (HardSigmoid, HardSwish) are evaluated step by step in f32, as onnxruntime does.
//! Integer arithmetic wraps like C++.

use ndarray::{ArrayD, IxDyn, Zip};
use qdqc_ir::{DType, Op};

use super::{broadcast_shapes, Ctx, Registry};
use crate::error::{bail, ensure, KResult};
use crate::num::Scalar;
use crate::value::Value;

/// Element count above which element-wise loops run on rayon.
pub(crate) const PAR_LEN: usize = 1 << 15;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::Add, |c| arith(c, BinOp::Add));
    r.add(Op::Sub, |c| arith(c, BinOp::Sub));
    r.add(Op::Mul, |c| arith(c, BinOp::Mul));
    r.add(Op::Div, |c| arith(c, BinOp::Div));
    r.add_onnx("Mod", |c| arith(c, if c.int("fmod", 0) == 1 { BinOp::Fmod } else { BinOp::Mod }));
    r.add(Op::Pow, pow);
    r.add(Op::Max, |c| variadic(c, BinOp::Max));
    r.add(Op::Min, |c| variadic(c, BinOp::Min));
    r.add_onnx("Sum", |c| variadic(c, BinOp::Add));
    r.add_onnx("Mean", mean);
    r.add_onnx("Equal", |c| compare(c, |o| o == std::cmp::Ordering::Equal));
    r.add_onnx("Less", |c| compare(c, |o| o == std::cmp::Ordering::Less));
    r.add_onnx("LessOrEqual", |c| compare(c, |o| o != std::cmp::Ordering::Greater));
    r.add_onnx("Greater", |c| compare(c, |o| o == std::cmp::Ordering::Greater));
    r.add_onnx("GreaterOrEqual", |c| compare(c, |o| o != std::cmp::Ordering::Less));
    r.add_onnx("And", |c| logical(c, |a, b| a & b));
    r.add_onnx("Or", |c| logical(c, |a, b| a | b));
    r.add_onnx("Xor", |c| logical(c, |a, b| a ^ b));
    r.add_onnx("Not", not);
    r.add_onnx("Where", where_);

    r.add(Op::Relu, |c| unary_num(c, |x| x.max(0.0), |x| x.max(0)));
    r.add_onnx("Abs", |c| unary_num(c, f64::abs, i128::abs));
    r.add_onnx("Neg", |c| unary_num(c, |x| -x, |x| -x));
    r.add_onnx("Sign", |c| {
        unary_num(
            c,
            |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            },
            i128::signum,
        )
    });
    r.add(Op::Sqrt, |c| unary_f64(c, f64::sqrt));
    r.add(Op::Tanh, |c| unary_f64(c, f64::tanh));
    r.add(Op::Erf, |c| unary_f64(c, libm::erf));
    r.add(Op::Sigmoid, |c| Ok(vec![map_f32(c.input(0)?, super::contrib::mlas_logistic, sigmoid)?]));
    r.add_onnx("Exp", |c| unary_f64(c, f64::exp));
    r.add_onnx("Log", |c| unary_f64(c, f64::ln));
    r.add_onnx("Reciprocal", |c| unary_f64(c, |x| 1.0 / x));
    r.add_onnx("Floor", |c| unary_f64(c, f64::floor));
    r.add_onnx("Ceil", |c| unary_f64(c, f64::ceil));
    r.add_onnx("Round", |c| unary_f64(c, f64::round_ties_even));
    r.add_onnx("Sin", |c| unary_f64(c, f64::sin));
    r.add_onnx("Cos", |c| unary_f64(c, f64::cos));
    r.add_onnx("Softplus", |c| unary_f64(c, |x| if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }));
    r.add_onnx("Softsign", |c| unary_f64(c, |x| x / (1.0 + x.abs())));
    r.add_onnx("IsNaN", is_nan);
    r.add(Op::LeakyRelu, leaky_relu);
    r.add_onnx("Elu", elu);
    r.add_onnx("Selu", selu);
    r.add(Op::HardSigmoid, hard_sigmoid);
    r.add(Op::HardSwish, hard_swish);
    r.add(Op::Gelu, gelu);
    r.add(Op::Clip, clip);
    r.add(Op::Cast, cast);
    r.add_onnx("CastLike", |c| Ok(vec![c.input(0)?.cast(c.input(1)?.dtype())?]));
}

// ---- generic helpers ------------------------------------------------------------------------------

/// Applies `f` to `a` and `b` broadcast against each other.
pub(crate) fn zip2<A, B, C, F>(a: &ArrayD<A>, b: &ArrayD<B>, f: F) -> KResult<ArrayD<C>>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync,
    C: Send,
    F: Fn(A, B) -> C + Send + Sync,
{
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape())?);
    let av = a.broadcast(shape.clone()).expect("broadcast shape");
    let bv = b.broadcast(shape).expect("broadcast shape");
    let z = Zip::from(av).and(bv);
    Ok(if z.size() >= PAR_LEN { z.par_map_collect(|&x, &y| f(x, y)) } else { z.map_collect(|&x, &y| f(x, y)) })
}

/// Applies `f` to every element.
pub(crate) fn map1<A, C, F>(a: &ArrayD<A>, f: F) -> ArrayD<C>
where
    A: Copy + Send + Sync,
    C: Send,
    F: Fn(A) -> C + Send + Sync,
{
    let z = Zip::from(a);
    if a.len() >= PAR_LEN {
        z.par_map_collect(|&x| f(x))
    } else {
        z.map_collect(|&x| f(x))
    }
}

/// `match` over pairs of equal full-width numeric types (sub-byte and string excluded), binding the
/// arrays as `$x`, `$y`; `$other` for any other pair.
macro_rules! match_pair {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr, $other:expr) => {
        match ($a, $b) {
            (Value::F32($x), Value::F32($y)) => $body,
            (Value::F64($x), Value::F64($y)) => $body,
            (Value::F16($x), Value::F16($y)) => $body,
            (Value::BF16($x), Value::BF16($y)) => $body,
            (Value::U8($x), Value::U8($y)) => $body,
            (Value::I8($x), Value::I8($y)) => $body,
            (Value::U16($x), Value::U16($y)) => $body,
            (Value::I16($x), Value::I16($y)) => $body,
            (Value::U32($x), Value::U32($y)) => $body,
            (Value::I32($x), Value::I32($y)) => $body,
            (Value::U64($x), Value::U64($y)) => $body,
            (Value::I64($x), Value::I64($y)) => $body,
            (Value::Bool($x), Value::Bool($y)) => $body,
            _ => $other,
        }
    };
}

/// `match` over the full-width numeric variants (not sub-byte, not string, not bool).
macro_rules! match_num {
    ($v:expr, $x:ident => $body:expr, $other:expr) => {
        match $v {
            Value::F32($x) => $body,
            Value::F64($x) => $body,
            Value::F16($x) => $body,
            Value::BF16($x) => $body,
            Value::U8($x) => $body,
            Value::I8($x) => $body,
            Value::U16($x) => $body,
            Value::I16($x) => $body,
            Value::U32($x) => $body,
            Value::I32($x) => $body,
            Value::U64($x) => $body,
            Value::I64($x) => $body,
            _ => $other,
        }
    };
}

pub(crate) use match_num;

#[derive(Clone, Copy, Debug)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Fmod,
    Max,
    Min,
}

impl BinOp {
    fn float(self) -> fn(f64, f64) -> f64 {
        match self {
            BinOp::Add => |a, b| a + b,
            BinOp::Sub => |a, b| a - b,
            BinOp::Mul => |a, b| a * b,
            BinOp::Div => |a, b| a / b,
            BinOp::Fmod => |a, b| a % b,
            BinOp::Mod => |a, b| {
                let r = a % b;
                if r != 0.0 && (r < 0.0) != (b < 0.0) {
                    r + b
                } else {
                    r
                }
            },
            BinOp::Max => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) },
            BinOp::Min => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) },
        }
    }

    fn int(self) -> fn(i128, i128) -> i128 {
        match self {
            BinOp::Add => |a, b| a.wrapping_add(b),
            BinOp::Sub => |a, b| a.wrapping_sub(b),
            BinOp::Mul => |a, b| a.wrapping_mul(b),
            BinOp::Div => |a, b| a / b,
            BinOp::Fmod => |a, b| a % b,
            BinOp::Mod => |a, b| a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 },
            BinOp::Max => |a, b| a.max(b),
            BinOp::Min => |a, b| a.min(b),
        }
    }

    fn divides(self) -> bool {
        matches!(self, BinOp::Div | BinOp::Mod | BinOp::Fmod)
    }
}

fn arith_arrays<T: Scalar>(a: &ArrayD<T>, b: &ArrayD<T>, op: BinOp) -> KResult<Value> {
    Ok(T::wrap(if T::IS_FLOAT {
        let f = op.float();
        zip2(a, b, |x: T, y: T| T::from_f64(f(x.to_f64(), y.to_f64())))?
    } else {
        if op.divides() && b.iter().any(|y| y.to_i128() == 0) {
            bail!("integer division by zero");
        }
        let f = op.int();
        zip2(a, b, |x: T, y: T| T::from_i128(f(x.to_i128(), y.to_i128())))?
    }))
}

/// `a op b` for two values of the same type.
pub(crate) fn binary(a: &Value, b: &Value, op: BinOp) -> KResult<Value> {
    match_pair!(a, b, x, y => arith_arrays(x, y, op), {
        bail!("{op:?} of {} and {} is not supported", a.dtype(), b.dtype())
    })
}

fn arith(c: &Ctx, op: BinOp) -> KResult<Vec<Value>> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    if matches!(a, Value::Bool(_)) {
        bail!("{op:?} is not defined on bool tensors");
    }
    Ok(vec![binary(a, b, op)?])
}

fn variadic(c: &Ctx, op: BinOp) -> KResult<Vec<Value>> {
    ensure!(c.n_inputs() > 0, "needs at least one input");
    let mut acc = c.input(0)?.clone();
    for i in 1..c.n_inputs() {
        acc = binary(&acc, c.input(i)?, op)?;
    }
    Ok(vec![acc])
}

fn mean(c: &Ctx) -> KResult<Vec<Value>> {
    let sum = variadic(c, BinOp::Add)?.remove(0);
    let n = Value::from_f64(sum.dtype(), &[], &[c.n_inputs() as f64])?;
    Ok(vec![binary(&sum, &n, BinOp::Div)?])
}

/// Pow: the exponent may have another type than the base; computed in f64, output in the base type.
fn pow(c: &Ctx) -> KResult<Vec<Value>> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let e = Value::F64(b.cast_array_to::<f64>());
    let out = match_num!(a, x => {
        let Value::F64(e) = &e else { unreachable!() };
        zip2(x, e, pow_elem).map(Scalar::wrap)?
    }, bail!("Pow of {} is not supported", a.dtype()));
    Ok(vec![out])
}

fn pow_elem<T: Scalar>(p: T, q: f64) -> T {
    let r = p.to_f64().powf(q);
    if !T::IS_FLOAT && q.fract() == 0.0 && q >= 0.0 {
        // Exact integer powers (powf is exact for them as long as they fit f64's mantissa).
        T::from_f64(r.round())
    } else {
        T::from_f64(r)
    }
}

fn compare(c: &Ctx, pred: fn(std::cmp::Ordering) -> bool) -> KResult<Vec<Value>> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let out = match_pair!(a, b, x, y => zip2(x, y, |p, q| p.partial_cmp(&q).is_some_and(pred))?, {
        match (a, b) {
            (Value::Str(x), Value::Str(y)) => zip2_clone(x, y, |p, q| pred(p.cmp(q)))?,
            _ => bail!("cannot compare {} with {}", a.dtype(), b.dtype()),
        }
    });
    Ok(vec![Value::Bool(out)])
}

fn zip2_clone<A, B, C>(a: &ArrayD<A>, b: &ArrayD<B>, f: impl Fn(&A, &B) -> C) -> KResult<ArrayD<C>> {
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape())?);
    let av = a.broadcast(shape.clone()).expect("broadcast shape");
    let bv = b.broadcast(shape).expect("broadcast shape");
    Ok(Zip::from(av).and(bv).map_collect(f))
}

fn logical(c: &Ctx, f: fn(bool, bool) -> bool) -> KResult<Vec<Value>> {
    match (c.input(0)?, c.input(1)?) {
        (Value::Bool(a), Value::Bool(b)) => Ok(vec![Value::Bool(zip2(a, b, f)?)]),
        (a, b) => bail!("expected bool inputs, got {} and {}", a.dtype(), b.dtype()),
    }
}

fn not(c: &Ctx) -> KResult<Vec<Value>> {
    match c.input(0)? {
        Value::Bool(a) => Ok(vec![Value::Bool(a.mapv(|x| !x))]),
        v => bail!("expected a bool input, got {}", v.dtype()),
    }
}

fn where_(c: &Ctx) -> KResult<Vec<Value>> {
    let Value::Bool(cond) = c.input(0)? else { bail!("condition must be bool, got {}", c.input(0)?.dtype()) };
    let (x, y) = (c.input(1)?, c.input(2)?);
    fn select<T: Clone>(cond: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> KResult<ArrayD<T>> {
        let shape = broadcast_shapes(&broadcast_shapes(cond.shape(), x.shape())?, y.shape())?;
        let sh = IxDyn(&shape);
        let cv = cond.broadcast(sh.clone()).expect("broadcast");
        let xv = x.broadcast(sh.clone()).expect("broadcast");
        let yv = y.broadcast(sh).expect("broadcast");
        Ok(Zip::from(cv).and(xv).and(yv).map_collect(|&c, p, q| if c { p.clone() } else { q.clone() }))
    }
    Ok(vec![crate::value::map_list!(&[x, y], xy => select(cond, xy[0], xy[1])?)])
}

// ---- unary ------------------------------------------------------------------------------------------

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Applies `f` (in f64) to a float tensor.
pub(crate) fn map_f64(v: &Value, f: impl Fn(f64) -> f64 + Send + Sync) -> KResult<Value> {
    Ok(match v {
        Value::F32(a) => Value::F32(map1(a, |x| f(x as f64) as f32)),
        Value::F64(a) => Value::F64(map1(a, f)),
        Value::F16(a) => Value::F16(map1(a, |x| half::f16::from_f64(f(x.to_f64())))),
        Value::BF16(a) => Value::BF16(map1(a, |x| half::bf16::from_f64(f(x.to_f64())))),
        _ => bail!("expected a float tensor, got {}", v.dtype()),
    })
}

/// Applies `f` (in f32) to a float tensor (f64 is computed in f64 by `f64f`).
pub(crate) fn map_f32(
    v: &Value,
    f: impl Fn(f32) -> f32 + Send + Sync,
    f64f: impl Fn(f64) -> f64 + Send + Sync,
) -> KResult<Value> {
    Ok(match v {
        Value::F32(a) => Value::F32(map1(a, f)),
        Value::F64(a) => Value::F64(map1(a, f64f)),
        Value::F16(a) => Value::F16(map1(a, |x| half::f16::from_f32(f(x.to_f32())))),
        Value::BF16(a) => Value::BF16(map1(a, |x| half::bf16::from_f32(f(x.to_f32())))),
        _ => bail!("expected a float tensor, got {}", v.dtype()),
    })
}

fn unary_f64(c: &Ctx, f: fn(f64) -> f64) -> KResult<Vec<Value>> {
    Ok(vec![map_f64(c.input(0)?, f)?])
}

fn unary_num_value(v: &Value, ff: fn(f64) -> f64, fi: fn(i128) -> i128) -> KResult<Value> {
    fn go<T: Scalar>(a: &ArrayD<T>, ff: fn(f64) -> f64, fi: fn(i128) -> i128) -> Value {
        T::wrap(if T::IS_FLOAT {
            map1(a, |x: T| T::from_f64(ff(x.to_f64())))
        } else {
            map1(a, |x: T| T::from_i128(fi(x.to_i128())))
        })
    }
    Ok(match_num!(v, a => go(a, ff, fi), bail!("{} tensors are not supported", v.dtype())))
}

fn unary_num(c: &Ctx, ff: fn(f64) -> f64, fi: fn(i128) -> i128) -> KResult<Vec<Value>> {
    Ok(vec![unary_num_value(c.input(0)?, ff, fi)?])
}

fn is_nan(c: &Ctx) -> KResult<Vec<Value>> {
    let v = c.input(0)?;
    ensure!(v.dtype().is_float(), "expected a float tensor, got {}", v.dtype());
    Ok(vec![Value::Bool(v.cast_array_to::<f64>().mapv(f64::is_nan))])
}

fn leaky_relu(c: &Ctx) -> KResult<Vec<Value>> {
    let alpha = c.float("alpha", 0.01);
    let a64 = alpha as f64;
    Ok(vec![map_f32(
        c.input(0)?,
        move |x| if x >= 0.0 { x } else { x * alpha },
        move |x| {
            if x >= 0.0 {
                x
            } else {
                x * a64
            }
        },
    )?])
}

fn elu(c: &Ctx) -> KResult<Vec<Value>> {
    let alpha = c.float("alpha", 1.0) as f64;
    Ok(vec![map_f64(c.input(0)?, move |x| if x >= 0.0 { x } else { alpha * x.exp_m1() })?])
}

fn selu(c: &Ctx) -> KResult<Vec<Value>> {
    let alpha = c.float("alpha", 1.673_263_2) as f64;
    let gamma = c.float("gamma", 1.050_701) as f64;
    Ok(vec![map_f64(c.input(0)?, move |x| if x > 0.0 { gamma * x } else { gamma * alpha * x.exp_m1() })?])
}

/// `max(0, min(1, alpha·x + beta))`, in f32 step by step.
fn hard_sigmoid(c: &Ctx) -> KResult<Vec<Value>> {
    let (alpha, beta) = (c.float("alpha", 0.2), c.float("beta", 0.5));
    let (a64, b64) = (alpha as f64, beta as f64);
    Ok(vec![map_f32(
        c.input(0)?,
        move |x| (alpha * x + beta).clamp(0.0, 1.0),
        move |x| (a64 * x + b64).clamp(0.0, 1.0),
    )?])
}

/// `x · max(0, min(1, x/6 + 0.5))`, in f32 step by step (alpha = 1/6 rounded to f32).
fn hard_swish(c: &Ctx) -> KResult<Vec<Value>> {
    const ALPHA: f32 = 1.0 / 6.0;
    Ok(vec![map_f32(c.input(0)?, |x| x * (ALPHA * x + 0.5).clamp(0.0, 1.0), |x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0))?])
}

fn gelu(c: &Ctx) -> KResult<Vec<Value>> {
    let approx = c.string("approximate", "none");
    let f: fn(f64) -> f64 = match approx.as_str() {
        "none" => |x| 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        "tanh" => |x| {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        },
        a => bail!("unknown approximate '{a}'"),
    };
    Ok(vec![map_f64(c.input(0)?, f)?])
}

/// Clip: bounds from attributes `min`/`max` before opset 11, from optional inputs 1 and 2 after.
/// Works on every numeric type (integer Clip on int8/uint8 tensors included).
fn clip(c: &Ctx) -> KResult<Vec<Value>> {
    let x = c.input(0)?;
    fn bound<T: Scalar>(v: Option<&Value>, attr: Option<f32>, what: &str) -> KResult<Option<T>> {
        if let Some(v) = v {
            ensure!(v.len() == 1, "{what} must be a scalar, has shape {:?}", v.shape());
            return Ok(Some(
                match_num!(v, a => a.iter().next().unwrap().cast::<T>(), bail!("{what} has type {}", v.dtype())),
            ));
        }
        Ok(attr.map(|f| T::from_f64(f as f64)))
    }
    fn go<T: Scalar>(c: &Ctx, a: &ArrayD<T>) -> KResult<Value> {
        let (lo_in, hi_in, lo_attr, hi_attr) = if c.opset < 11 {
            (None, None, Some(c.float("min", f32::MIN)), Some(c.float("max", f32::MAX)))
        } else {
            (c.opt(1), c.opt(2), None, None)
        };
        let lo = bound::<T>(lo_in, lo_attr, "min")?;
        let hi = bound::<T>(hi_in, hi_attr, "max")?;
        Ok(T::wrap(map1(a, |x: T| {
            let mut y = x;
            if let Some(l) = lo {
                if y < l {
                    y = l;
                }
            }
            if let Some(h) = hi {
                if y > h {
                    y = h;
                }
            }
            y
        })))
    }
    Ok(vec![match_num!(x, a => go(c, a)?, bail!("{} tensors are not supported", x.dtype()))])
}

fn cast(c: &Ctx) -> KResult<Vec<Value>> {
    let to = c.int_opt("to").ok_or_else(|| crate::KernelError::Invalid("missing attribute 'to'".into()))?;
    let dtype = DType::from_onnx(to as i32).ok_or_else(|| crate::KernelError::Invalid(format!("unknown type {to}")))?;
    Ok(vec![c.input(0)?.cast(dtype)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, run_op};
    use qdqc_ir::attr::{make_float, make_int};

    #[test]
    fn add_broadcasts() {
        let a = f32v(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let b = f32v(&[3], &[10., 20., 30.]);
        let y = run_op(Op::Add, vec![], &[Some(a.clone()), Some(b)], 13).remove(0);
        assert_eq!(y, f32v(&[2, 3], &[11., 22., 33., 14., 25., 36.]));
        let col = f32v(&[2, 1], &[1., 2.]);
        let y = run_op(Op::Mul, vec![], &[Some(a), Some(col)], 13).remove(0);
        assert_eq!(y, f32v(&[2, 3], &[1., 2., 3., 8., 10., 12.]));
    }

    #[test]
    fn integer_arithmetic_wraps_and_divides_toward_zero() {
        let a = Value::from_i64(DType::I8, &[3], &[100, -7, 7]).unwrap();
        let b = Value::from_i64(DType::I8, &[3], &[100, 2, -2]).unwrap();
        let s = run_op(Op::Add, vec![], &[Some(a.clone()), Some(b.clone())], 14).remove(0);
        assert_eq!(s.to_i64_vec().unwrap(), vec![-56, -5, 5]);
        let d = run_op(Op::Div, vec![], &[Some(a), Some(b)], 14).remove(0);
        assert_eq!(d.to_i64_vec().unwrap(), vec![1, -3, -3]);
    }

    #[test]
    fn variadic_max_min_on_int8() {
        let a = Value::from_i64(DType::I8, &[3], &[-5, 0, 9]).unwrap();
        let b = Value::from_i64(DType::I8, &[1], &[1]).unwrap();
        let c = Value::from_i64(DType::I8, &[3], &[0, -2, 3]).unwrap();
        let y = run_op(Op::Max, vec![], &[Some(a.clone()), Some(b.clone()), Some(c.clone())], 13).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), vec![1, 1, 9]);
        let y = run_op(Op::Min, vec![], &[Some(a), Some(b), Some(c)], 13).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), vec![-5, -2, 1]);
    }

    #[test]
    fn clip_attr_and_input_forms() {
        let x = f32v(&[4], &[-2., -0.5, 0.5, 8.]);
        let y =
            run_op(Op::Clip, vec![make_float("min", -1.0), make_float("max", 6.0)], &[Some(x.clone())], 6).remove(0);
        assert_eq!(y, f32v(&[4], &[-1., -0.5, 0.5, 6.]));
        let lo = Value::scalar(0.0f32);
        let y = run_op(Op::Clip, vec![], &[Some(x), Some(lo), None], 13).remove(0);
        assert_eq!(y, f32v(&[4], &[0., 0., 0.5, 8.]));
        let q = Value::from_i64(DType::U8, &[4], &[0, 10, 200, 255]).unwrap();
        let lo = Value::scalar(10u8);
        let hi = Value::scalar(200u8);
        let y = run_op(Op::Clip, vec![], &[Some(q), Some(lo), Some(hi)], 13).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), vec![10, 10, 200, 200]);
    }

    #[test]
    fn activations() {
        let x = f32v(&[5], &[-4., -1., 0., 1., 4.]);
        let y = run_op(Op::Relu, vec![], &[Some(x.clone())], 14).remove(0);
        assert_eq!(y, f32v(&[5], &[0., 0., 0., 1., 4.]));
        let y = run_op(Op::LeakyRelu, vec![make_float("alpha", 0.1)], &[Some(x.clone())], 16).remove(0);
        assert_eq!(y, f32v(&[5], &[-0.4, -0.1, 0., 1., 4.]));
        let y = run_op(Op::HardSigmoid, vec![], &[Some(x.clone())], 6).remove(0);
        assert_eq!(y, f32v(&[5], &[0., 0.3, 0.5, 0.7, 1.]));
        let y = run_op(Op::HardSwish, vec![], &[Some(x.clone())], 14).remove(0);
        // onnxruntime 1.32, bit for bit (it also computes x · clamp(x · f32(1/6) + 0.5, 0, 1)).
        assert_eq!(y, f32v(&[5], &[-0., f32::from_bits(0xbeaa_aaaa), 0., f32::from_bits(0x3f2a_aaab), 4.]));
        let y = run_op(Op::Sigmoid, vec![], &[Some(x.clone())], 13).remove(0);
        // onnxruntime 1.32 (an approximation within ~1.3e-7 of the exact value).
        let want = [0.017_986_238, 0.268_941_43, 0.5, 0.731_058_6, 0.982_013_76];
        for (g, w) in y.to_f32_vec().unwrap().iter().zip(want) {
            assert!((g - w).abs() <= 1e-7, "{g} vs {w}");
        }
        let y = run_op(Op::Gelu, vec![], &[Some(x.clone())], 20).remove(0);
        let want = [-1.267_194_7e-4, -0.158_655_26, 0., 0.841_344_7, 3.999_873_2];
        for (g, w) in y.to_f32_vec().unwrap().iter().zip(want) {
            assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
        }
        let y = run_op(Op::Erf, vec![], &[Some(f32v(&[2], &[0.5, -1.0]))], 13).remove(0);
        assert_eq!(y, f32v(&[2], &[0.520_499_9, -0.842_700_8]));
    }

    #[test]
    fn cast_to_int_truncates() {
        let x = f32v(&[3], &[1.9, -1.9, 2.5]);
        let y = run_op(Op::Cast, vec![make_int("to", DType::I32.to_onnx() as i64)], &[Some(x)], 19).remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), vec![1, -1, 2]);
    }

    #[test]
    fn pow_and_sqrt() {
        let x = f32v(&[3], &[2., 4., 9.]);
        let e = Value::from_i64(DType::I64, &[], &[2]).unwrap();
        let y = run_op(Op::Pow, vec![], &[Some(x.clone()), Some(e)], 15).remove(0);
        assert_eq!(y, f32v(&[3], &[4., 16., 81.]));
        let y = run_op(Op::Sqrt, vec![], &[Some(x)], 13).remove(0);
        assert_eq!(y, f32v(&[3], &[2f32.sqrt(), 2., 3.]));
    }
}
