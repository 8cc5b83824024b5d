//! The one table of passes: every pass by name, in pipeline order, with the pipelines it is part
//! of. The registry (`--passes`), the `-O2` and `-O3` pipelines and the rules the e-graph runs are
//! all read from [`PASSES`]; a rule family is one entry here and one file in `rules/`.

use crate::driver::RulePass;
use crate::rule::{Rule, RuleSet};
use crate::rules;
#[cfg(test)]
use crate::Target;
use crate::{Config, DeadCodeElimination, DedupConsts, Int8ToUint8, Pass, UniqueDq};

/// Builds a pass of its own for a configuration.
pub type MakePass = fn(&Config) -> Box<dyn Pass>;

/// A pass and where it runs.
pub struct Entry {
    pub name: &'static str,
    /// A rule family's table (run by the greedy driver as the pass `name`), or `None` for a
    /// pass of its own.
    pub rules: Option<fn() -> Vec<Rule>>,
    /// Builds a pass of its own for a configuration (`None` for a rule family).
    pub pass: Option<MakePass>,
    /// Part of the default greedy pipeline, `-O2`.
    pub o2: bool,
    /// Run as a pass by `-O3`.
    pub o3: bool,
    /// Its rules run inside the e-graph of `-O3`'s `saturate`.
    pub saturated: bool,
}

const fn family(name: &'static str, rules: fn() -> Vec<Rule>, o2: bool, o3: bool, saturated: bool) -> Entry {
    Entry { name, rules: Some(rules), pass: None, o2, o3, saturated }
}

const fn own(name: &'static str, pass: MakePass, o2: bool, o3: bool) -> Entry {
    Entry { name, rules: None, pass: Some(pass), o2, o3, saturated: false }
}

/// Every pass, in pipeline order.
///
/// | pass | what | -O2 | -O3 |
/// |---|---|---|---|
/// | `unique-dq` | a weight DQ per consumer (onnxruntime's form; by name only) | | |
/// | `fold-bn` | BatchNormalization into the Conv/Gemm before it | pass | pass, and in the e-graph |
/// | `fold-bn-qdq` | the same through the quantizer's own Q→DQ (an approximation) | | |
/// | `propagate` | DQ later and Q earlier through data movement | pass | in the e-graph |
/// | `cleanup` | DQ→Q pairs, Q of constants, Identity | pass | in the e-graph |
/// | `fuse` | integer Conv/MatMul/Gemm/BatchNormalization | pass | in the e-graph |
/// | `fuse-contrib` | com.microsoft QLinear* ops | pass | in the e-graph |
/// | `saturate` | equality saturation over the rules marked "in the e-graph" | | pass |
/// | `int8-to-uint8` | int8 activations to uint8 | pass | pass |
/// | `dedup-consts`, `dce` | equal constants merged, dead nodes removed | pass | pass |
pub const PASSES: &[Entry] = &[
    own("unique-dq", |_| Box::new(UniqueDq), false, false),
    family("fold-bn", rules::bn_fold::rules, true, true, true),
    family("fold-bn-qdq", rules::bn_fold::qdq_rules, false, false, false),
    family("propagate", rules::propagate::rules, true, false, true),
    family("cleanup", rules::cleanup::rules, true, false, true),
    family("fuse", rules::fuse::rules, true, false, true),
    family("fuse-contrib", rules::fuse_contrib::rules, true, false, true),
    own("saturate", |config| Box::new(crate::saturate::Saturate { config: config.clone() }), false, true),
    family("elementwise", rules::elementwise::rules, true, true, false),
    own("int8-to-uint8", |_| Box::new(Int8ToUint8), true, true),
    own("dedup-consts", |_| Box::new(DedupConsts), true, true),
    own("dce", |_| Box::new(DeadCodeElimination), true, true),
];

impl Entry {
    /// The pass for `config`.
    pub fn build(&self, config: &Config) -> Box<dyn Pass> {
        match (self.rules, self.pass) {
            (Some(rules), _) => Box::new(RulePass::new(self.name, rules).configured(config.clone())),
            (None, Some(pass)) => pass(config),
            (None, None) => unreachable!("an entry is a rule family or a pass"),
        }
    }
}

/// Every pass by name, in pipeline order, for the default configuration.
pub fn registry() -> Vec<Box<dyn Pass>> {
    registry_for(&Config::default())
}

/// Every pass by name, in pipeline order, for `config`.
pub fn registry_for(config: &Config) -> Vec<Box<dyn Pass>> {
    PASSES.iter().map(|e| e.build(config)).collect()
}

/// The entry of the pass called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    PASSES.iter().find(|e| e.name == name)
}

/// The passes of a named pipeline: `O0` (none), `O2` (the default, greedy) or `O3` (saturation);
/// the `O` may be left out.
pub fn pipeline(name: &str) -> Option<Vec<&'static str>> {
    let pick = |keep: fn(&Entry) -> bool| PASSES.iter().filter(|e| keep(e)).map(|e| e.name).collect();
    match name.strip_prefix('O').unwrap_or(name) {
        "0" => Some(Vec::new()),
        "2" => Some(pick(|e| e.o2)),
        "3" => Some(pick(|e| e.o3)),
        _ => None,
    }
}

/// The rules `saturate` runs in the e-graph for `config`, in table order (those of other targets
/// inactive).
pub fn saturated_rules(config: &Config) -> RuleSet {
    let rules = PASSES.iter().filter(|e| e.saturated).flat_map(|e| (e.rules.expect("a family"))());
    RuleSet::configured(rules.collect(), config)
}

/// The families `saturate` falls back to running greedily when the e-graph cannot be built: those
/// in the e-graph that `-O3` does not already run as passes.
pub fn saturate_fallback() -> impl Iterator<Item = &'static Entry> {
    PASSES.iter().filter(|e| e.saturated && !e.o3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_come_from_the_table() {
        assert_eq!(
            pipeline("O2").unwrap(),
            [
                "fold-bn",
                "propagate",
                "cleanup",
                "fuse",
                "fuse-contrib",
                "elementwise",
                "int8-to-uint8",
                "dedup-consts",
                "dce"
            ]
        );
        assert_eq!(
            pipeline("3").unwrap(),
            ["fold-bn", "saturate", "elementwise", "int8-to-uint8", "dedup-consts", "dce"]
        );
        assert!(pipeline("O0").unwrap().is_empty() && pipeline("O1").is_none());
        let fallback: Vec<_> = saturate_fallback().map(|e| e.name).collect();
        assert_eq!(fallback, ["propagate", "cleanup", "fuse", "fuse-contrib"]);
    }

    /// Every family's table builds as a rule set (patterns parse, names are unique, every
    /// `defers_to` names a rule of the family), the e-graph's combined set builds too, and every
    /// approximation a rule declares is one of [`crate::APPROXIMATIONS`].
    #[test]
    fn every_rule_table_builds() {
        for e in PASSES {
            if let Some(rules) = e.rules {
                let set = RuleSet::new(rules());
                assert!(!set.rules().is_empty(), "{}", e.name);
                for r in set.rules() {
                    if let crate::rule::Numerics::Approx(n) | crate::rule::Numerics::ExactWhere(n, _) = r.numerics {
                        assert!(
                            crate::APPROXIMATIONS.iter().any(|a| a.name == n),
                            "{}: unknown approximation {n}",
                            r.name
                        );
                    }
                }
            }
        }
        for &target in Target::ALL {
            saturated_rules(&Config { target, ..Config::default() });
        }
    }
}
