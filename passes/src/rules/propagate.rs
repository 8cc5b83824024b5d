//! The `propagate` rules: move QuantizeLinear earlier and DequantizeLinear later through ops that commute with quantization.

use crate::driver::RulePass;
use crate::rule::Rule;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![]
}

pub fn pass() -> RulePass {
    RulePass::new("propagate", rules)
}
