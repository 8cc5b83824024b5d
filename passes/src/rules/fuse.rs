//! The `fuse` rules: DQ→Conv/MatMul/Gemm(→Relu/Clip)→Q into QLinearConv, QLinearMatMul and their kin.

use crate::driver::RulePass;
use crate::rule::Rule;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![]
}

pub fn pass() -> RulePass {
    RulePass::new("fuse", rules)
}
