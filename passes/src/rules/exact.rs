//! Proofs over whole input domains: a rewrite whose integer output depends elementwise on one
//! 8-bit input (256 cases) or two (65,536 pairs) is run on every case, by the interpreter with
//! the fused op (the kernel model: onnxruntime's arithmetic, `docs/exactness.md`), and each
//! result is judged against the QDQ model's computation in f64: exact, tie-ambiguous or off
//! ([`qdqc_eval::exactness`]).
//!
//! A rewrite is exact when no case is off. Proofs are cached by their parameters (scales, zero
//! points, types, constant operands, broadcast form), so a model that repeats a layer proves it
//! once.

use qdqc_eval::exactness::{judge, Judgement};
use qdqc_eval::{RunOptions, Span, Value};
use qdqc_ir::builder::GraphBuilder;
use qdqc_ir::{attr, DType, Op, Operand};
use rustc_hash::FxHashMap as HashMap;
use std::sync::{Mutex, OnceLock};

/// What a proof found over an input domain.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Proof {
    pub cases: usize,
    pub ties: usize,
    pub off: usize,
}

impl Proof {
    /// `Ok` when no case is off; else why the rewrite is not exact.
    pub fn verdict(&self) -> Result<(), String> {
        match self.off {
            0 => Ok(()),
            off => {
                let ties = match self.ties {
                    0 => String::new(),
                    t => format!("; {t} more lie within the tie tolerance"),
                };
                Err(format!("{off} of {} inputs round away from the exactly rounded result{ties}", self.cases))
            }
        }
    }
}

/// One side's quantization: scale, zero point, integer type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Q {
    pub scale: f32,
    pub zp: i64,
    pub dtype: DType,
    /// The type's range.
    pub lo: i64,
    pub hi: i64,
}

impl Q {
    /// Parameters a proof can enumerate: an 8-bit type (16-bit pairs, 2³² cases, are not
    /// enumerated), a positive normal scale and a zero point in the type's range.
    pub fn new(scale: f32, zp: i64, dtype: DType) -> Result<Q, String> {
        let (lo, hi) = match dtype {
            DType::U8 | DType::I8 => dtype.int_range().expect("an integer type"),
            _ => return Err(format!("{dtype} inputs are not proven exhaustively (8-bit types only)")),
        };
        if !(scale.is_normal() && scale > 0.0) {
            return Err(format!("scale {scale} is not a positive normal number"));
        }
        if !(lo..=hi).contains(&zp) {
            return Err(format!("zero point {zp} is outside the {dtype} range"));
        }
        Ok(Q { scale, zp, dtype, lo, hi })
    }

    pub fn values(&self) -> Vec<i64> {
        (self.lo..=self.hi).collect()
    }

    fn key(&self, k: &mut Vec<u8>) {
        k.extend(self.scale.to_bits().to_le_bytes());
        k.extend(self.zp.to_le_bytes());
        k.push(self.dtype as u8);
    }

    pub fn dequantize(&self, v: i64) -> f64 {
        (v - self.zp) as f64 * self.scale as f64
    }
}

/// Judges `results` against the exact values `v` (same order).
fn tally(results: &[i64], v: impl Iterator<Item = f64>, y: &Q) -> Proof {
    let mut p = Proof { cases: results.len(), ..Proof::default() };
    for (&r, v) in results.iter().zip(v) {
        match judge(r, v, y.zp, y.lo, y.hi) {
            Judgement::Exact => {}
            Judgement::Tie => p.ties += 1,
            Judgement::Off => p.off += 1,
        }
    }
    p
}

/// The proofs made so far, by their parameters.
fn cache() -> &'static Mutex<HashMap<Vec<u8>, Proof>> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Proof>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cached(key: Vec<u8>, prove: impl FnOnce() -> Result<Proof, String>) -> Result<Proof, String> {
    if let Some(p) = cache().lock().expect("not poisoned").get(&key) {
        return Ok(*p);
    }
    let p = prove()?;
    cache().lock().expect("not poisoned").insert(key, p);
    Ok(p)
}

/// Runs a one-node graph of `op` on `inputs` (name, value) and returns its output as integers.
fn run_kernel(
    build: impl FnOnce(&mut GraphBuilder, &[Operand]) -> Operand,
    inputs: Vec<(&str, Value)>,
) -> Result<Vec<i64>, String> {
    let mut b = GraphBuilder::new(17);
    b.opset(qdqc_ir::op::MS_DOMAIN, 1);
    let ops: Vec<Operand> = inputs
        .iter()
        .map(|(name, v)| {
            let dims: Vec<String> = v.shape().iter().map(|d| d.to_string()).collect();
            let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
            b.input(name, v.dtype(), &dims)
        })
        .collect();
    let y = build(&mut b, &ops);
    b.output(y);
    let g = b.finish().map_err(|e| format!("the proof's graph: {e}"))?;
    let given: Vec<(String, Value)> = inputs.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    let r = qdqc_eval::run(&g, &given, &RunOptions::default()).map_err(|e| format!("the proof's run: {e}"))?;
    r.outputs[0].1.to_i64_vec().map_err(|e| e.to_string())
}

/// The broadcast forms onnxruntime may compute operands of shapes `a` and `b` in: the one their
/// shapes give, or every form when a shape is not fully known.
pub(crate) fn spans(a: Option<&[usize]>, b: Option<&[usize]>) -> Vec<Span> {
    let (Some(a), Some(b)) = (a, b) else { return vec![Span::Both, Span::ScalarA, Span::ScalarB] };
    let r = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    let out: Vec<usize> = (0..r).map(|i| dim(a, i).max(dim(b, i))).collect();
    vec![qdqc_eval::span_kind(a, b, &out)]
}

/// QLinearAdd or QLinearMul of `a` and `b` into `y`, over every value of `a` and `b` (or the
/// given values of a constant operand), in the broadcast form `span`, which decides onnxruntime's
/// arithmetic (an operand constant along the innermost span is handled as a scalar).
pub(crate) fn binary(
    op: Op,
    a: Q,
    a_values: Option<Vec<i64>>,
    b: Q,
    b_values: Option<Vec<i64>>,
    y: Q,
    span: Span,
) -> Result<Proof, String> {
    let mut key = vec![if op == Op::QLinearAdd { 0 } else { 1 }, span as u8];
    for q in [a, b, y] {
        q.key(&mut key);
    }
    // An activation's values (every value of its type) are named by its `Q` alone.
    for vals in [&a_values, &b_values] {
        match vals {
            None => key.push(0),
            Some(v) => {
                key.push(1);
                key.extend((v.len() as u64).to_le_bytes());
                key.extend(v.iter().flat_map(|v| v.to_le_bytes()));
            }
        }
    }
    cached(key, || {
        let av = a_values.unwrap_or_else(|| a.values());
        let bv = b_values.unwrap_or_else(|| b.values());
        // Every pair, in shapes that give the kernel the form `span`: a single value is written
        // twice, so that no operand is a scalar by accident.
        let twice = |v: Vec<i64>| if v.len() == 1 { vec![v[0]; 2] } else { v };
        let (av, bv) = (twice(av), twice(bv));
        let (na, nb) = (av.len(), bv.len());
        let (a_shape, b_shape, a_data, b_data): (Vec<usize>, Vec<usize>, Vec<i64>, Vec<i64>) = match span {
            // Both flat, a varying fastest.
            Span::Both => {
                let a_data = (0..nb).flat_map(|_| av.iter().copied()).collect();
                let b_data = bv.iter().flat_map(|&x| std::iter::repeat_n(x, na)).collect();
                (vec![na * nb], vec![na * nb], a_data, b_data)
            }
            // b constant along each row of a.
            Span::ScalarB => {
                (vec![nb, na], vec![nb, 1], (0..nb).flat_map(|_| av.iter().copied()).collect(), bv.clone())
            }
            // a constant along each row of b.
            Span::ScalarA => {
                (vec![na, 1], vec![na, nb], av.clone(), (0..na).flat_map(|_| bv.iter().copied()).collect())
            }
        };
        let out_shape = if a_shape.len() == 2 { vec![a_shape[0], a_shape[1].max(b_shape[1])] } else { a_shape.clone() };
        debug_assert_eq!(qdqc_eval::span_kind(&a_shape, &b_shape, &out_shape), span);
        let value =
            |q: &Q, shape: &[usize], data: &[i64]| Value::from_i64(q.dtype, shape, data).map_err(|e| e.to_string());
        let inputs = vec![("a", value(&a, &a_shape, &a_data)?), ("b", value(&b, &b_shape, &b_data)?)];
        let out = run_kernel(
            |g, x| {
                let (sa, za) = (g.scalar_f32("sa", a.scale), g.scalar("za", a.dtype, a.zp));
                let (sb, zb) = (g.scalar_f32("sb", b.scale), g.scalar("zb", b.dtype, b.zp));
                let (sy, zy) = (g.scalar_f32("sy", y.scale), g.scalar("zy", y.dtype, y.zp));
                g.node(op.clone(), &[x[0], sa, za, x[1], sb, zb, sy, zy]).domain(qdqc_ir::op::MS_DOMAIN).out1()
            },
            inputs,
        )?;
        // The pairs in the output's order.
        let pairs: Vec<(i64, i64)> = match span {
            Span::ScalarA => av.iter().flat_map(|&x| bv.iter().map(move |&z| (x, z))).collect(),
            _ => bv.iter().flat_map(|&z| av.iter().map(move |&x| (x, z))).collect(),
        };
        let exact: Vec<f64> = pairs
            .iter()
            .map(|&(x, z)| {
                let (fa, fb) = (a.dequantize(x), b.dequantize(z));
                let real = if op == Op::QLinearAdd { fa + fb } else { fa * fb };
                real / y.scale as f64
            })
            .collect();
        // onnxruntime converts to int32 without clamping first: from 2³¹ steps on, a result
        // wraps to the type's lowest value (the interpreter saturates). Refused from 2³⁰ on.
        if exact.iter().any(|v| v.abs() + y.zp.abs() as f64 >= (1u64 << 30) as f64) {
            return Err("the output scale is so fine that onnxruntime's int32 conversion overflows".into());
        }
        Ok(tally(&out, exact.into_iter(), &y))
    })
}

/// A 256-entry lookup op (QLinearSigmoid, QLinearLeakyRelu with `alpha`, or a one-input
/// QLinearConcat: a requantization) from `x` into `y`, over every value of `x`.
pub(crate) fn lookup(op: Op, alpha: f32, x: Q, y: Q) -> Result<Proof, String> {
    let mut key = vec![2, op.kind() as u8];
    key.extend(alpha.to_bits().to_le_bytes());
    x.key(&mut key);
    y.key(&mut key);
    cached(key, || {
        let xv = x.values();
        let input = Value::from_i64(x.dtype, &[xv.len()], &xv).map_err(|e| e.to_string())?;
        let out = run_kernel(
            |g, i| {
                let (sx, zx) = (g.scalar_f32("sx", x.scale), g.scalar("zx", x.dtype, x.zp));
                let (sy, zy) = (g.scalar_f32("sy", y.scale), g.scalar("zy", y.dtype, y.zp));
                let ms = qdqc_ir::op::MS_DOMAIN;
                match op {
                    Op::QLinearConcat => g
                        .node(Op::QLinearConcat, &[sy, zy, i[0], sx, zx])
                        .domain(ms)
                        .attr(attr::make_int("axis", 0))
                        .out1(),
                    Op::QLinearLeakyRelu => g
                        .node(Op::QLinearLeakyRelu, &[i[0], sx, zx, sy, zy])
                        .domain(ms)
                        .attr(attr::make_float("alpha", alpha))
                        .out1(),
                    _ => g.node(op.clone(), &[i[0], sx, zx, sy, zy]).domain(ms).out1(),
                }
            },
            vec![("x", input)],
        )?;
        let f = |v: f64| match op {
            Op::QLinearSigmoid => 1.0 / (1.0 + (-v).exp()),
            Op::QLinearLeakyRelu if v < 0.0 => alpha as f64 * v,
            _ => v,
        };
        Ok(tally(&out, xv.iter().map(|&v| f(x.dequantize(v)) / y.scale as f64), &y))
    })
}

/// One channel of a depthwise 1×1 QLinearConv: int8 weight, weight scale, int32 bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DepthwiseChannel {
    pub w: i64,
    pub sw: f32,
    pub b: i64,
}

/// A depthwise 1×1 QLinearConv from `x` into `y` (weight zero point 0), over every value of `x`
/// in every channel, judged per channel against `reference(channel, x)` (in output steps, before
/// the zero point). Not cached: the caller caches the search this checks.
pub(crate) fn depthwise(
    x: Q,
    y: Q,
    channels: &[DepthwiseChannel],
    reference: impl Fn(usize, i64) -> f64,
) -> Result<Vec<Proof>, String> {
    let c = channels.len();
    let xv = x.values();
    let n = xv.len();
    let data: Vec<i64> = (0..c).flat_map(|_| xv.iter().copied()).collect();
    let input = Value::from_i64(x.dtype, &[1, c, n], &data).map_err(|e| e.to_string())?;
    let out = run_kernel(
        |g, i| {
            let (sx, zx) = (g.scalar_f32("sx", x.scale), g.scalar("zx", x.dtype, x.zp));
            let (sy, zy) = (g.scalar_f32("sy", y.scale), g.scalar("zy", y.dtype, y.zp));
            let w = g.const_i64("w", DType::I8, &[c as i64, 1, 1], &channels.iter().map(|ch| ch.w).collect::<Vec<_>>());
            let sw = g.const_f32("sw", &[c as i64], &channels.iter().map(|ch| ch.sw).collect::<Vec<_>>());
            let zw = g.const_i64("zw", DType::I8, &[c as i64], &vec![0; c]);
            let b = g.const_i64("b", DType::I32, &[c as i64], &channels.iter().map(|ch| ch.b).collect::<Vec<_>>());
            g.node(Op::QLinearConv, &[i[0], sx, zx, w, sw, zw, sy, zy, b])
                .attrs([attr::make_int("group", c as i64), attr::make_ints("kernel_shape", &[1])])
                .out1()
        },
        vec![("x", input)],
    )?;
    Ok(out.chunks(n).enumerate().map(|(ch, r)| tally(r, xv.iter().map(|&v| reference(ch, v)), &y)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u8q(scale: f32, zp: i64) -> Q {
        Q::new(scale, zp, DType::U8).unwrap()
    }

    #[test]
    fn only_enumerable_parameters_are_proven() {
        assert!(Q::new(0.1, 0, DType::U16).unwrap_err().contains("8-bit types only"));
        for bad in [0.0, -0.1, f32::NAN, f32::INFINITY, 1e-40] {
            assert!(Q::new(bad, 0, DType::U8).is_err(), "{bad}");
        }
        assert!(Q::new(0.1, 256, DType::U8).is_err());
        assert!(Q::new(0.1, -129, DType::I8).is_err());
        assert!(Q::new(0.1, -128, DType::I8).is_ok());
    }

    #[test]
    fn qlinear_add_proofs_over_every_pair() {
        let q = u8q(0.05, 128);
        for y in [q, u8q(0.1, 128)] {
            let p = binary(Op::QLinearAdd, q, None, q, None, y, Span::Both).unwrap();
            assert_eq!((p.cases, p.off), (65536, 0), "{p:?}");
            assert!(p.verdict().is_ok());
        }
        for span in [Span::ScalarA, Span::ScalarB] {
            let p = binary(Op::QLinearAdd, q, None, q, Some(vec![100, 130, 200]), q, span).unwrap();
            assert_eq!((p.cases, p.off), (768, 0), "{span:?}: {p:?}");
        }
    }

    #[test]
    fn spans_come_from_known_shapes_only() {
        assert_eq!(spans(Some(&[1, 16, 8, 8]), Some(&[16, 1, 1])), vec![Span::ScalarB]);
        assert_eq!(spans(Some(&[1, 16, 8, 8]), Some(&[1, 16, 8, 8])), vec![Span::Both]);
        assert_eq!(spans(Some(&[1]), Some(&[4])), vec![Span::ScalarA]);
        assert_eq!(spans(None, Some(&[4])).len(), 3);
    }

    /// A constant operand of a single value is still proven in the form asked for.
    #[test]
    fn a_single_constant_value_keeps_its_form() {
        let q = u8q(0.05, 128);
        for span in [Span::Both, Span::ScalarA, Span::ScalarB] {
            let p = binary(Op::QLinearMul, q, None, q, Some(vec![140]), u8q(0.02, 128), span).unwrap();
            assert_eq!((p.cases, p.off), (512, 0), "{span:?}: {p:?}");
        }
    }

    /// Nearly equal input scales over a tiny output scale: the kernel's two f32 products of about
    /// a million steps cancel to a few steps, and their rounding errors (~0.06 step) move some
    /// results to the wrong integer. The proof finds them, in both broadcast forms.
    #[test]
    fn a_qlinear_add_that_rounds_off_is_found() {
        let (a, b, y) = (u8q(0.1, 128), u8q(0.1000003, 128), u8q(0.00001, 128));
        for span in [Span::Both, Span::ScalarB] {
            let p = binary(Op::QLinearAdd, a, None, b, None, y, span).unwrap();
            assert_eq!(p.cases, 65536);
            assert!(p.off > 0, "{span:?}: {p:?}");
            assert!(p.verdict().unwrap_err().contains("of 65536 inputs round away"), "{p:?}");
        }
    }

    #[test]
    fn lookups_over_every_value() {
        let (x, y) = (u8q(0.1, 128), u8q(1.0 / 256.0, 0));
        let p = lookup(Op::QLinearSigmoid, 0.0, x, y).unwrap();
        assert_eq!(p.cases, 256);
        let p = lookup(Op::QLinearConcat, 0.0, x, x).unwrap();
        assert_eq!((p.cases, p.off, p.ties), (256, 0, 0), "requantizing to the same parameters is the identity");
        let p = lookup(Op::QLinearLeakyRelu, 0.25, x, u8q(0.05, 64)).unwrap();
        assert_eq!(p.cases, 256);
    }
}
