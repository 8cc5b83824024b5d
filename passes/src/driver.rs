//! The greedy worklist driver: applies a rule table to a graph in time linear in the graph.
//!
//! A sweep visits the nodes in topological order, tries the rules rooted at each node's op and
//! applies the first patch that a rule builds; the new nodes and the consumers of replaced values
//! go back on the worklist. Sweeps repeat until one makes no change (counted by rewrites, not by
//! node counts). The refusals of the last sweep, which saw the final graph, become remarks, and so
//! does every approximation a rewrite made (in any sweep). In a
//! pipeline, a rule pass makes one sweep per repetition ([`Pass::run_once`]): the pipeline's
//! repetitions are its sweeps.

use crate::rule::{Pattern, Refusal, Rule, RuleSet};
use crate::{Config, Pass, PassError, Remark, RemarkKind, Remarks, Target};
use qdqc_ir::{Graph, GraphError, NodeId, Op, OpKind, Operand};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Sweeps after which the driver gives up converging (each sweep is linear in the graph).
pub const MAX_SWEEPS: usize = 8;

/// Applies `rules` in sweeps until one changes nothing, `sweeps` at most. Returns the number of
/// rewrites. The refusals of a sweep that changed nothing (it saw the final graph) become remarks.
pub fn run_rules(
    pass: &'static str,
    graph: &mut Graph,
    rules: &RuleSet,
    target: Target,
    remarks: &mut Remarks,
    sweeps: usize,
) -> Result<usize, PassError> {
    let rules = Dispatch::new(rules);
    let mut total = 0;
    for _ in 0..sweeps {
        let (changes, refusals, approximations) =
            sweep(graph, &rules, target).map_err(|error| PassError::Failed { pass, error })?;
        total += changes;
        remarks.extend(approximations.into_iter().map(|(rule, node, op, reason)| Remark {
            pass,
            rule,
            node,
            op,
            reason,
            kind: RemarkKind::Approximation,
        }));
        if changes == 0 {
            remarks.extend(refusals.into_iter().map(|(rule, id, reason)| {
                let n = graph.node(id);
                let (node, op) = (n.ident().to_string(), n.op.to_string());
                Remark { pass, rule, node, op, reason, kind: RemarkKind::Missed }
            }));
            break;
        }
    }
    Ok(total)
}

/// (rule, node, reason): labels are made only for the sweep whose refusals become remarks.
type Refusals = Vec<(&'static str, NodeId, String)>;

/// (rule, node, op, which approximation and why), named before the rewrite removes the node.
type Approximations = Vec<(&'static str, String, String, String)>;

/// The rules that may match at a node, in table order: those rooted at its op whose first
/// argument, when it is a nested pattern, names the op of the node's first input. Ops are compared
/// by kind, read from the graph's table of kinds: a sweep passes over the nodes no rule is
/// rooted at without reading them, and looks up the patterns that can match instead of scanning
/// its op's rules. (A sweep visits every node, and a QuantizeLinear is the root of a dozen rules
/// per family.)
struct Dispatch<'r> {
    set: &'r RuleSet,
    /// By the root's kind (`None`: no rule is rooted there).
    by_root: Vec<Option<Rooted>>,
}

/// The rules rooted at one kind of op, by the kind of the node's first input.
struct Rooted {
    /// Those whose first argument is not a nested pattern: what may match whatever the first
    /// input is.
    any: Vec<usize>,
    /// For each kind that some rule's first argument names: those rules and the `any` ones, in
    /// table order.
    by_first: FxHashMap<OpKind, Vec<usize>>,
}

impl<'r> Dispatch<'r> {
    fn new(set: &'r RuleSet) -> Dispatch<'r> {
        let mut by_root: Vec<Option<Rooted>> = (0..OpKind::COUNT).map(|_| None).collect();
        let keyed = set.rules().iter().enumerate().map(|(i, r)| {
            let Pattern::Node { op, args, .. } = &r.pattern else { unreachable!("rule roots are ops") };
            (i, op.kind(), args.first().and_then(Pattern::root_op).map(Op::kind))
        });
        let keyed: Vec<(usize, OpKind, Option<OpKind>)> = keyed.collect();
        for &(i, root, first) in &keyed {
            let rooted = by_root[root as usize]
                .get_or_insert_with(|| Rooted { any: Vec::new(), by_first: FxHashMap::default() });
            match first {
                None => rooted.any.push(i),
                Some(k) => {
                    // The rules of this root, in table order, that a first input of kind `k` admits.
                    rooted.by_first.entry(k).or_insert_with(|| {
                        keyed
                            .iter()
                            .filter(|&&(_, r, f)| r == root && f.is_none_or(|f| f == k))
                            .map(|&(j, ..)| j)
                            .collect()
                    });
                }
            }
        }
        Dispatch { set, by_root }
    }

    /// Whether some rule is rooted at node `id` (false for a removed node).
    fn roots(&self, graph: &Graph, id: NodeId) -> bool {
        graph.kind(id).is_some_and(|k| self.by_root[k as usize].is_some())
    }

    /// The indices of the rules that may match at `id`.
    fn at(&self, graph: &Graph, id: NodeId) -> &[usize] {
        let Some(rooted) = graph.kind(id).and_then(|k| self.by_root[k as usize].as_ref()) else { return &[] };
        let first = match graph.node(id).input(0) {
            Operand::Value(o) if o.slot == 0 => graph.kind(o.node),
            _ => None,
        };
        first.and_then(|k| rooted.by_first.get(&k)).unwrap_or(&rooted.any)
    }
}

fn sweep(graph: &mut Graph, rules: &Dispatch, target: Target) -> Result<(usize, Refusals, Approximations), GraphError> {
    let mut work: VecDeque<NodeId> = graph.topo_order()?.into_iter().filter(|&id| rules.roots(graph, id)).collect();
    // Queued flags by node index (grown as rewrites add nodes).
    let mut queued = vec![false; graph.node_bound()];
    for &id in &work {
        queued[id.index()] = true;
    }
    let mut changes = 0;
    let mut refusals = Vec::new();
    let mut approximations = Vec::new();
    while let Some(id) = work.pop_front() {
        queued[id.index()] = false;
        if !rules.roots(graph, id) {
            continue;
        }
        // (The candidates borrow the dispatch table, not the graph that a rewrite edits.)
        let mut last = None;
        for &i in rules.at(graph, id) {
            let rule: &Rule = &rules.set.rules()[i];
            let refusal = match rules.set.try_at_after(i, graph, id, &mut last) {
                None => continue,
                Some(Ok(_)) if !rule.targets.contains(&target) => Some(Refusal::new(format!(
                    "the rewrite needs --target {} (this is --target {target})",
                    rule.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join("|")
                ))),
                Some(Ok(rewrite)) => {
                    let named = rewrite.approximation.map(|(name, why)| {
                        let n = graph.node(id);
                        let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
                        (n.ident().to_string(), n.op.to_string(), format!("the approximation '{name}'{why}"))
                    });
                    match rewrite.patch.apply(graph) {
                        Ok(applied) => {
                            changes += 1;
                            if let Some((node, op, reason)) = named {
                                approximations.push((rule.name, node, op, reason));
                            }
                            let again = applied.new_nodes.into_iter().chain(applied.touched).chain([id]);
                            for n in again {
                                if n.index() >= queued.len() {
                                    queued.resize(graph.node_bound().max(n.index() + 1), false);
                                }
                                if rules.roots(graph, n) && !queued[n.index()] {
                                    queued[n.index()] = true;
                                    work.push_back(n);
                                }
                            }
                            None
                        }
                        Err(r) => Some(r),
                    }
                }
                Some(Err(r)) => Some(r),
            };
            match refusal {
                None => break,
                Some(Refusal::NotApplicable) => {}
                Some(Refusal::Reason(r)) => refusals.push((rule.name, id, r)),
            }
        }
    }
    Ok((changes, refusals, approximations))
}

/// A pass made of a rule family's table, run by the greedy driver for a target.
pub struct RulePass {
    pub name: &'static str,
    pub rules: fn() -> Vec<Rule>,
    pub config: Config,
}

impl RulePass {
    pub fn new(name: &'static str, rules: fn() -> Vec<Rule>) -> RulePass {
        RulePass { name, rules, config: Config::default() }
    }

    pub fn configured(self, config: Config) -> RulePass {
        RulePass { config, ..self }
    }

    fn set(&self) -> RuleSet {
        RuleSet::new((self.rules)()).with_config(&self.config)
    }
}

impl Pass for RulePass {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, graph: &mut Graph, remarks: &mut Remarks) -> Result<usize, PassError> {
        run_rules(self.name, graph, &self.set(), self.config.target, remarks, MAX_SWEEPS)
    }

    /// One sweep: the worklist already revisits what each rewrite touched, and the pipeline's
    /// last repetition, which changes nothing, is the confirming sweep of every rule pass.
    fn run_once(&self, graph: &mut Graph, remarks: &mut Remarks) -> Result<usize, PassError> {
        run_rules(self.name, graph, &self.set(), self.config.target, remarks, 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::rule::{Match, Patch, PatchNode, Refusal, Rule, RuleSet};
    use crate::{rules, Remarks, Target};
    use qdqc_ir::text::{parse, print};
    use qdqc_ir::Outlet;
    use qdqc_ir::{Graph, Op};

    /// A long chain of Relu → Identity: one sweep removes every Identity, a second sees nothing.
    /// A quadratic driver would take minutes here (speed is measured in benchmarks, not asserted).
    #[test]
    fn long_chains_are_rewritten_in_linear_time() {
        let n = 20_000;
        let mut text = String::from("graph \"g\" opset(ai.onnx=17) {\n  input %x0: f32[4]\n");
        for i in 0..n {
            text.push_str(&format!("  %r{i} = Relu(%x{i})\n  %x{} = Identity(%r{i})\n", i + 1));
        }
        text.push_str(&format!("  output %x{n}\n}}\n"));
        let mut g = parse(&text).unwrap();
        let changes = super::run_rules(
            "cleanup",
            &mut g,
            &RuleSet::new(rules::cleanup::rules()),
            Target::Ort,
            &mut Remarks::new(),
            super::MAX_SWEEPS,
        )
        .unwrap();
        assert_eq!(changes, n);
        assert_eq!(g.op_count(), n);
        g.verify().unwrap();
    }

    fn any(_: &Graph, _: &Match) -> Result<(), Refusal> {
        Ok(())
    }

    fn noop_refusal(_: &Graph, _: &Match, (): ()) -> Result<Patch, Refusal> {
        Err(Refusal::new("never fires"))
    }

    fn swap_to_sigmoid(g: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
        let mut p = Patch::new();
        let out = format!("{}_s", g.value(Outlet::new(m.root(), 0)).name);
        let s = p.add(PatchNode::new(Op::Sigmoid, [m.get("x")]).output(out));
        p.replace(Outlet::new(m.root(), 0), s);
        p.remove(m.root());
        Ok(p)
    }

    #[test]
    fn new_nodes_are_typed_and_remarks_come_from_the_final_sweep() {
        let rules = RuleSet::new(vec![
            Rule::new("refuse", "(Relu ?x)", any, noop_refusal),
            Rule::new("tanh-to-sigmoid", "(Tanh ?x)", any, swap_to_sigmoid),
        ]);
        let mut g = parse(
            r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  %t = Tanh(%x)
  %y = Relu(%t)
  output %y
}
"#,
        )
        .unwrap();
        let mut remarks = Remarks::new();
        assert_eq!(super::run_rules("test", &mut g, &rules, Target::Ort, &mut remarks, super::MAX_SWEEPS).unwrap(), 1);
        g.verify().unwrap();
        insta::assert_snapshot!(print(&g), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[4]
          %t: f32[4] = Sigmoid(%x)
          %y: f32[4] = Relu(%t)
          output %y
        }
        "#);
        let r: Vec<String> = remarks.iter().map(|r| r.to_string()).collect();
        assert_eq!(r, ["refuse: Relu 'y': never fires"]);
    }

    #[test]
    fn one_sweep_reports_remarks_only_when_it_changed_nothing() {
        let rules = RuleSet::new(vec![
            Rule::new("refuse", "(Relu ?x)", any, noop_refusal),
            Rule::new("tanh-to-sigmoid", "(Tanh ?x)", any, swap_to_sigmoid),
        ]);
        let text =
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %t = Tanh(%x)\n  %y = Relu(%t)\n  output %y\n}\n";
        let mut g = parse(text).unwrap();
        let mut remarks = Remarks::new();
        assert_eq!(super::run_rules("test", &mut g, &rules, Target::Ort, &mut remarks, 1).unwrap(), 1);
        assert!(remarks.is_empty(), "a sweep that changed the graph may have seen it half-way");
        assert_eq!(super::run_rules("test", &mut g, &rules, Target::Ort, &mut remarks, 1).unwrap(), 0);
        assert_eq!(remarks.len(), 1);
    }

    #[test]
    fn a_rule_outside_the_target_becomes_a_remark() {
        let rules =
            RuleSet::new(vec![Rule::new("tanh-to-sigmoid", "(Tanh ?x)", any, swap_to_sigmoid).only(&[Target::Ort])]);
        let text = "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %t = Tanh(%x)\n  output %t\n}\n";
        let mut g = parse(text).unwrap();
        let mut remarks = Remarks::new();
        assert_eq!(super::run_rules("test", &mut g, &rules, Target::Onnx, &mut remarks, super::MAX_SWEEPS).unwrap(), 0);
        assert!(print(&g).contains("= Tanh(%x)"));
        let r: Vec<String> = remarks.iter().map(|r| r.to_string()).collect();
        assert_eq!(r, ["tanh-to-sigmoid: Tanh 't': the rewrite needs --target ort (this is --target onnx)"]);
        assert_eq!(super::run_rules("test", &mut g, &rules, Target::Ort, &mut remarks, super::MAX_SWEEPS).unwrap(), 1);
    }
}
