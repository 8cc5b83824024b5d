//! The `fuse` rules: a float Conv/MatMul/Gemm between DequantizeLinear inputs and a
//! QuantizeLinear output becomes one integer op (QLinearConv, QLinearMatMul, QGemm, ...).
//! One file per op family; this table joins them.

use crate::rule::{Patch, PatchOperand, Refusal, Rule};
use qdqc_ir::{DType, Operand, Tensor};

pub mod batchnorm;
pub mod conv;
pub mod matmul;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    conv::rules().into_iter().chain(matmul::rules()).chain(batchnorm::rules()).collect()
}

/// Refuses when rounding a bias to int32 at the accumulator scale moves it by half an output step
/// or more: `|b − q·s|` (the values as computed, per channel) must stay below `y_scale / 2`, so
/// that with the fused op's own rounding the output stays within one step of the float path.
/// (Quantizers choose `s = s_x·s_w` far below `y_scale`; random scales need not.)
pub(crate) fn bias_rounding_fits(bias: &[f64], int32: &[i64], acc_scale: &[f32], y_scale: f32) -> Result<(), Refusal> {
    let worst = (0..bias.len())
        .map(|c| (bias[c] - int32[c] as f64 * acc_scale[c] as f64).abs() / y_scale as f64)
        .fold(0.0f64, f64::max);
    crate::ensure!(
        worst < 0.5,
        "the bias rounds to int32 at the input×weight scale with an error of {worst:.2} output steps (≥ 0.5)"
    );
    Ok(())
}

/// How far rounding a bias to int32 at the accumulator scale moves a fused op's pre-rounding
/// output: the largest `|b − q·s| / y_scale` over the channels, in output steps.
pub(crate) fn bias_shift(bias: &[f64], int32: &[i64], acc_scale: &[f32], y_scale: f32) -> f64 {
    (0..bias.len())
        .map(|c| (bias[c] - int32[c] as f64 * acc_scale[c] as f64).abs() / y_scale as f64)
        .fold(0.0f64, f64::max)
}

/// The most a bias rounded to int32 may move a fused op's pre-rounding output for the rewrite to
/// stay exact: half the tie tolerance. The other half covers the kernel's float32 requantization
/// (the accumulator converted to f32, the multiplier `s_x·s_w / s_y` rounded twice, the product
/// rounded: under 4·2⁻²⁴ relative, so under 2⁻¹⁴ step for the ≤ 255-step values that do not
/// saturate; `docs/exactness.md`).
pub(crate) const BIAS_SHIFT_EXACT: f64 = crate::rules::common::TIE / 2.0;

/// The int32 bias is exact under the tie tolerance when it moves the pre-rounding output by at
/// most [`BIAS_SHIFT_EXACT`]: wherever that, with the requantization's own error, changes the
/// rounding, the exact value lies within the tolerance of a tie.
pub(crate) fn bias_within_tie(bias: &[f64], int32: &[i64], acc_scale: &[f32], y_scale: f32) -> Result<(), String> {
    let shift = bias_shift(bias, int32, acc_scale, y_scale);
    // (Half a step or more, the build refuses the rewrite outright: `bias_rounding_fits`.)
    match shift <= BIAS_SHIFT_EXACT || shift >= 0.5 {
        true => Ok(()),
        false => Err(format!(
            "the float bias rounds to int32 at input scale × weight scale and moves the output by up to {shift:.1e} steps"
        )),
    }
}

/// A zero-point operand: the Q/DQ's own, or a new zero constant of `dtype` when it was omitted
/// (the fused ops take it as a required input): a scalar, or `n` zeros for per-axis parameters.
/// `base` names the new constant (made only when one is: most Q/DQs have a zero point).
pub(crate) fn zero_point_or_new(
    p: &mut Patch,
    zp: Operand,
    dtype: DType,
    n: usize,
    base: impl FnOnce() -> String,
) -> PatchOperand {
    match zp {
        Operand::None => {
            let dims: Vec<i64> = if n == 1 { vec![] } else { vec![n as i64] };
            p.add_const(&base(), Tensor::from_i64("", dtype, &dims, &vec![0; n]))
        }
        z => z.into(),
    }
}
