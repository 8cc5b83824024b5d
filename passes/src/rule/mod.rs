//! Rewrite rules as data. A [`Rule`] is a name, a [`Pattern`] in s-expression syntax, a *check*
//! that refuses with a human reason ([`Refusal`]) or returns what it decoded, and a *build* that
//! turns the match and that decoded value into a [`Patch`]. The patch is applied atomically: a
//! rule that bails leaves the graph untouched.
//!
//! A rule also declares
//! - its targets ([`Rule::only`]): on another target a match that would fire becomes a remark;
//! - its numerics ([`Numerics`]): exact, an approximation with a name (applied only where the
//!   compile allows it: [`crate::Approx`]), or exact where a proof or a bound says so;
//! - how it is chosen ([`Choice`]): always, or only where the cost model prefers its result;
//! - the rules it gives way to ([`Rule::defers_to`]): where one of those matches around it and
//!   passes its check, this one does not fire ([`RuleSet::try_at`]).
//!
//! Within a node, a family's rules are tried in table order and the first that fires wins.

mod patch;
mod pattern;

pub use patch::{Applied, Patch, PatchNode, PatchOperand};
pub use pattern::{match_at, Match, Pattern, PatternError};

use crate::{Config, Target};
use qdqc_ir::{Graph, NodeId};
use smallvec::SmallVec;
use std::any::Any;
use std::fmt;

/// Why a rule did not fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The rule does not apply here at all (e.g. `q-of-const` at a QuantizeLinear of an
    /// activation, or a rule giving way to another): nothing a user needs to hear about.
    NotApplicable,
    /// The rule matched and was refused, for this reason: a remark (e.g. "zero points differ:
    /// 128 vs 0").
    Reason(String),
}

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal::Reason(reason.into())
    }

    /// The same refusal with its reason rewritten (a `NotApplicable` stays one).
    pub fn map(self, f: impl FnOnce(String) -> String) -> Refusal {
        match self {
            Refusal::Reason(r) => Refusal::Reason(f(r)),
            n => n,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotApplicable => f.write_str("not applicable"),
            Refusal::Reason(r) => f.write_str(r),
        }
    }
}

/// Refuses with a formatted reason unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        // (`match`, not `if !`: a NaN must refuse, and clippy rightly dislikes `!(a < b)`.)
        match $cond {
            true => {}
            false => return Err($crate::rule::Refusal::Reason(format!($($reason)+))),
        }
    };
}

/// How a rule's result relates to the QDQ model's exactly rounded result (`docs/exactness.md`).
pub enum Numerics {
    /// Computes what the matched QDQ nodes compute.
    Exact,
    /// Close to it, not equal: the approximation of [`crate::APPROXIMATIONS`] with this name.
    Approx(&'static str),
    /// Exact where the proof finds it so (over the whole input domain, or an error bound within
    /// the tie tolerance); elsewhere the approximation `name`, and the proof says why.
    ExactWhere(&'static str, Proof),
}

/// A proof of exactness at a match, given what the rule's check decoded ([`Rule::exact_where`]).
pub type Proof = Box<dyn Fn(&Graph, &Match, &dyn Any) -> Result<(), String> + Send + Sync>;

impl Numerics {
    /// `None` where the rewrite is exact at match `m` (whose check decoded `decoded`); else the
    /// approximation's name and why.
    fn approximation(&self, graph: &Graph, m: &Match, decoded: &dyn Any) -> Option<(&'static str, String)> {
        match self {
            Numerics::Exact => None,
            Numerics::Approx(name) => Some((name, String::new())),
            Numerics::ExactWhere(name, exact) => exact(graph, m, decoded).err().map(|why| (*name, why)),
        }
    }
}

/// When a rule that matches and passes its check is applied.
#[derive(Clone, Copy, Debug)]
pub enum Choice {
    /// Always: its result is the better form.
    Always,
    /// Only where the cost model prefers its result to what it replaces (an integer form of an
    /// op whose output stays float, say): this function of [`crate::cost`] says so, or refuses
    /// with the costs.
    ByCost(fn(&Graph, &Match, &crate::cost::Costs) -> Result<(), Refusal>),
}

type Check = Box<dyn Fn(&Graph, &Match) -> Result<(), Refusal> + Send + Sync>;
/// Checks, then runs the decision it is given (cost, approximation) on what the check decoded,
/// then builds from it: nothing is decoded twice.
type Build = Box<
    dyn Fn(&Graph, &Match, &mut dyn FnMut(&dyn Any) -> Result<(), Refusal>) -> Result<Patch, Refusal> + Send + Sync,
>;

/// A named rewrite.
pub struct Rule {
    pub name: &'static str,
    pub pattern: Pattern,
    /// The targets whose ops the patch may use (all by default).
    pub targets: &'static [Target],
    pub numerics: Numerics,
    pub choice: Choice,
    /// Rules this one gives way to (by name, in the same [`RuleSet`]).
    pub defers_to: &'static [&'static str],
    check: Check,
    rewrite: Build,
}

impl Rule {
    /// A rule from its pattern text, its check and its build; panics on a malformed pattern
    /// (rules are static data, and every rule table has a test that builds it). What `check`
    /// decodes (parameters, constants) is handed to `build`.
    pub fn new<T: 'static>(
        name: &'static str,
        pattern: &str,
        check: fn(&Graph, &Match) -> Result<T, Refusal>,
        build: fn(&Graph, &Match, T) -> Result<Patch, Refusal>,
    ) -> Rule {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("rule {name}: {e}"));
        Rule {
            name,
            pattern,
            targets: Target::ALL,
            numerics: Numerics::Exact,
            choice: Choice::Always,
            defers_to: &[],
            check: Box::new(move |g, m| check(g, m).map(drop)),
            rewrite: Box::new(move |g, m, decide| {
                let t = check(g, m)?;
                decide(&t)?;
                build(g, m, t)
            }),
        }
    }

    /// Restricts the rule to `targets` (e.g. a rewrite into com.microsoft ops: `&[Target::Ort]`).
    pub fn only(mut self, targets: &'static [Target]) -> Rule {
        self.targets = targets;
        self
    }

    /// Declares the rule an approximation called `name`.
    pub fn approx(mut self, name: &'static str) -> Rule {
        self.numerics = Numerics::Approx(name);
        self
    }

    /// Declares the rule exact where `exact` finds it so, and the approximation `name` elsewhere.
    /// `exact` is given what the rule's check returned: its `T` must be the check's (a rule table
    /// bug panics the first time the rule matches and passes its check, in the family's tests).
    pub fn exact_where<T: 'static>(
        mut self,
        name: &'static str,
        exact: fn(&Graph, &Match, &T) -> Result<(), String>,
    ) -> Rule {
        let rule = self.name;
        self.numerics = Numerics::ExactWhere(
            name,
            Box::new(move |g, m, decoded| {
                let decoded = decoded.downcast_ref::<T>().unwrap_or_else(|| {
                    panic!("rule {rule}: its proof takes {}, not what its check returns", std::any::type_name::<T>())
                });
                exact(g, m, decoded)
            }),
        );
        self
    }

    /// Declares that the rule is applied only where the cost model, asked by `prefers`, prefers
    /// its result.
    pub fn by_cost(mut self, prefers: fn(&Graph, &Match, &crate::cost::Costs) -> Result<(), Refusal>) -> Rule {
        self.choice = Choice::ByCost(prefers);
        self
    }

    /// Declares the rules this one gives way to.
    pub fn defers_to(mut self, rules: &'static [&'static str]) -> Rule {
        self.defers_to = rules;
        self
    }

    /// Runs the check on a match, without building.
    pub fn check(&self, graph: &Graph, m: &Match) -> Result<(), Refusal> {
        (self.check)(graph, m)
    }

    /// Checks a match, asks the cost model of `config` for a rule applied by cost, refuses an
    /// approximation that `config` does not allow, and builds its patch. The patch comes with the
    /// approximation it makes, if any (its name and why).
    pub fn rewrite(&self, graph: &Graph, m: &Match, config: &Config) -> Result<Rewrite, Refusal> {
        let mut approximation = None;
        let mut decide = |decoded: &dyn Any| {
            if let Choice::ByCost(prefers) = self.choice {
                prefers(graph, m, &crate::cost::Costs::of(config))?;
            }
            approximation = self.numerics.approximation(graph, m, decoded);
            if let Some((name, why)) = &approximation {
                if !config.approx.allows(name) {
                    let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                    return Err(Refusal::new(format!(
                        "the rewrite is the approximation '{name}'{why} (--approx {name} allows it)"
                    )));
                }
            }
            Ok(())
        };
        let patch = (self.rewrite)(graph, m, &mut decide)?;
        Ok(Rewrite { patch, approximation })
    }
}

/// A rule's patch, and the approximation it makes (its name and why), if any.
#[derive(Debug)]
pub struct Rewrite {
    pub patch: Patch,
    pub approximation: Option<(&'static str, String)>,
}

/// The last match made at a node ([`RuleSet::try_at_after`]): the rule whose pattern made it, and
/// the match, if any.
pub type LastMatch<'s> = Option<(usize, Option<Match<'s>>)>;

/// A table of rules with their `defers_to` resolved: what the greedy driver and the e-graph run.
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The target, the approximations the rules may make, the cost model's level.
    config: Config,
    /// Per rule, the indices of the rules it gives way to.
    defers: Vec<Vec<usize>>,
    /// Per rule, its pattern's depth ([`Pattern::depth`]).
    depths: Vec<usize>,
    /// Per rule, the first rule of the set whose pattern equals its own (itself if none).
    first_equal: Vec<usize>,
    /// Per rule, whether it may fire ([`RuleSet::for_target`]); an inactive rule is still asked
    /// by the rules that defer to it.
    active: Vec<bool>,
}

impl RuleSet {
    /// Panics when a rule defers to a name the set does not hold, or two rules share a name (a
    /// rule table bug, caught by each family's table test).
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let index = |name: &str| rules.iter().position(|r| r.name == name);
        for (i, r) in rules.iter().enumerate() {
            assert_eq!(index(r.name), Some(i), "two rules are called {}", r.name);
        }
        let defers = rules
            .iter()
            .map(|r| {
                r.defers_to
                    .iter()
                    .map(|d| index(d).unwrap_or_else(|| panic!("rule {} defers to an unknown rule {d}", r.name)))
                    .collect()
            })
            .collect();
        let active = vec![true; rules.len()];
        let depths = rules.iter().map(|r| r.pattern.depth()).collect();
        let first_equal =
            rules.iter().map(|r| rules.iter().position(|o| o.pattern == r.pattern).expect("the rule itself")).collect();
        RuleSet { rules, config: Config::default(), defers, depths, first_equal, active }
    }

    /// The same rules under `config`: they may make the approximations it allows and ask its
    /// cost model.
    pub fn with_config(mut self, config: &Config) -> RuleSet {
        self.config = config.clone();
        self
    }

    /// The rules for `config` ([`RuleSet::with_config`]), those whose targets exclude its target
    /// in the set but inactive.
    pub fn configured(rules: Vec<Rule>, config: &Config) -> RuleSet {
        let mut set = RuleSet::new(rules).with_config(config);
        set.active = set.rules.iter().map(|r| r.targets.contains(&config.target)).collect();
        set
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether rule `i` may fire.
    pub fn is_active(&self, i: usize) -> bool {
        self.active[i]
    }

    /// Matches rule `i` at `id`, gives way where a rule it defers to would fire, checks and
    /// builds (one-element parameters of the new fused ops become scalars: [`Patch::scalar_params`]). `None`: the pattern does not match; `Some(Err(_))`: it matches but gives way, or
    /// its check or build refused.
    pub fn try_at(&self, i: usize, graph: &Graph, id: NodeId) -> Option<Result<Rewrite, Refusal>> {
        self.try_at_after(i, graph, id, &mut None)
    }

    /// [`RuleSet::try_at`] for the rules tried in turn at one node of an unchanged graph: `last`
    /// keeps the last match made there, so rules with equal patterns (`q-of-const` and `q-twin`
    /// both match every QuantizeLinear) match once.
    pub fn try_at_after<'s>(
        &'s self,
        i: usize,
        graph: &Graph,
        id: NodeId,
        last: &mut LastMatch<'s>,
    ) -> Option<Result<Rewrite, Refusal>> {
        let rule = &self.rules[i];
        let key = self.first_equal[i];
        if !matches!(last, Some((k, _)) if *k == key) {
            *last = Some((key, match_at(graph, &self.rules[key].pattern, id)));
        }
        let m = last.as_ref().and_then(|(_, m)| m.as_ref())?;
        if self.gives_way(i, graph, m) {
            return Some(Err(Refusal::NotApplicable));
        }
        Some(rule.rewrite(graph, m, &self.config).map(|r| Rewrite { patch: r.patch.scalar_params(graph), ..r }))
    }

    /// Whether a rule that rule `i` defers to matches at a node of `m` or above its root (as
    /// far up as that rule's pattern is deep), with a match that shares a node with `m`, and
    /// passes its check.
    fn gives_way(&self, i: usize, graph: &Graph, m: &Match) -> bool {
        let defers = &self.defers[i];
        let Some(depth) = defers.iter().map(|&d| self.depths[d]).max() else { return false };
        // The candidate roots with their level: the match's nodes (0), then their consumers, one
        // level further up each time, as far as the deepest of those patterns reaches.
        let mut roots: SmallVec<[(NodeId, usize); 16]> = m.nodes().iter().map(|&n| (n, 0)).collect();
        let mut frontier: SmallVec<[NodeId; 8]> = smallvec::smallvec![m.root()];
        for level in 1..depth {
            frontier = frontier.iter().flat_map(|&n| graph.uses(n).map(|(c, _)| c)).collect();
            frontier.sort_unstable();
            frontier.dedup();
            roots.extend(frontier.iter().map(|&n| (n, level)));
        }
        defers.iter().any(|&d| {
            let (other, depth) = (&self.rules[d], self.depths[d]);
            roots.iter().any(|&(r, level)| {
                level < depth
                    && match_at(graph, &other.pattern, r).is_some_and(|m2| {
                        m2.nodes().iter().any(|n| m.nodes().contains(n)) && other.check(graph, &m2).is_ok()
                    })
            })
        })
    }
}

#[cfg(test)]
mod tests;
