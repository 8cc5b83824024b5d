//! The `fuse` rules: a float Conv/MatMul/Gemm between DequantizeLinear inputs and a
//! QuantizeLinear output becomes one integer op (QLinearConv, QLinearMatMul, QGemm, ...).
//! One file per op family; this table joins them.

use crate::driver::RulePass;
use crate::rule::Rule;

pub mod batchnorm;
pub mod conv;
pub mod matmul;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    conv::rules().into_iter().chain(matmul::rules()).chain(batchnorm::rules()).collect()
}

pub fn pass() -> RulePass {
    RulePass::new("fuse", rules)
}
