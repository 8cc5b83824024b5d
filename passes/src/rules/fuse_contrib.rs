//! The `fuse-contrib` rules: DQ→op→Q into onnxruntime's com.microsoft QLinear* ops (Add, Mul, pools, Concat, activations).

use crate::driver::RulePass;
use crate::rule::Rule;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![]
}

pub fn pass() -> RulePass {
    RulePass::new("fuse-contrib", rules)
}
