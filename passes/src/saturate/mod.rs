//! Equality saturation (`-O3`, `--search saturate`): the graph is lowered into an egg e-graph
//! ([`lower`], language in [`lang`]), the rule tables of `propagate`, `cleanup`, `fuse` and
//! `fuse-contrib` run on it until nothing new is found or a limit is hit ([`rewrite`]: each
//! rule's own pattern, guards and builder, run on a materialized fragment), and the cheapest
//! graph under [`cost`] is extracted ([`extract`]: DAG-aware, cycle-free by construction) and
//! rebuilt ([`rebuild`]). See `docs/saturate.md`.
//!
//! Every rule only adds equalities, so rules that undo each other (DQ-later and Q-earlier through
//! the same op) both run: the e-graph keeps every form and the extraction chooses. The loop is
//! egg's `SimpleScheduler` in effect (every rule on every e-class each iteration, no backoff),
//! written out because the searchers and appliers are qdqc rules rather than egg patterns: an
//! iteration searches the whole e-graph, then fires the new matches, then rebuilds. A match
//! already tried (same rule, same canonical e-nodes) is not tried again.

pub mod extract;
pub mod lang;
pub mod lower;
pub mod rebuild;
pub mod rewrite;

use crate::cost;
use crate::rule::RuleSet;
use crate::{Config, Pass, PassError, Remark, RemarkKind, Remarks};
use egg::{Id, Language};
use lang::QNode;
use qdqc_ir::{Graph, TensorType};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::time::{Duration, Instant};

/// When saturation stops (whichever comes first).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub iterations: usize,
    /// E-nodes in the e-graph (its hashcons size, O(1) to read).
    pub nodes: usize,
    pub time: Duration,
}

impl Limits {
    /// Limits sized to a graph of `ops` nodes: room for every op to be rewritten a few times
    /// over, and a time budget of 1 s plus 30 µs per op.
    pub fn for_graph(ops: usize) -> Limits {
        Limits {
            iterations: 30,
            nodes: 20 * ops + 10_000,
            time: Duration::from_secs(1) + Duration::from_micros(30) * ops as u32,
        }
    }
}

/// What a saturation run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub iterations: usize,
    /// Rule applications that added an equality.
    pub rewrites: usize,
    pub enodes: usize,
    pub eclasses: usize,
    pub stop: String,
    /// The exact DAG cost of the extraction ([`cost`]).
    pub cost: f64,
    pub lower_time: Duration,
    pub search_time: Duration,
    pub apply_time: Duration,
    pub extract_time: Duration,
    pub rebuild_time: Duration,
    /// Whether the extracted graph is the input graph.
    pub unchanged: bool,
    /// (rule, approximation) of the approximations rewrites offered to the extraction.
    pub approximations: std::collections::BTreeSet<(&'static str, &'static str)>,
}

/// The rules saturation runs for `config`: those of the families [`crate::pipeline::PASSES`]
/// marks as in the e-graph (fold-bn, propagate, cleanup, fuse, fuse-contrib: greedy runs fold-bn
/// before the fusions and again each round; in the e-graph a Conv must be able to absorb its BN
/// before or after the other rewrites).
pub fn rule_table(config: &Config) -> RuleSet {
    crate::pipeline::saturated_rules(config)
}

/// Saturates `graph` with `rules` and returns the extracted graph.
pub fn saturate(graph: &Graph, set: &RuleSet, limits: Limits) -> Result<(Graph, Report), String> {
    let rules = set.rules();
    let start = Instant::now();
    let mut report = Report::default();
    let mut low = lower::lower(graph)?;
    report.lower_time = start.elapsed();
    // By the root's op name (an `Other` op is one by name and domain: `search` checks that).
    let mut by_op: HashMap<&str, Vec<usize>> = HashMap::default();
    for (i, r) in rules.iter().enumerate().filter(|&(i, _)| set.is_active(i)) {
        by_op.entry(r.pattern.root_op().expect("rule roots are ops").name()).or_default().push(i);
    }
    let mut tried: HashSet<(usize, Vec<QNode>)> = HashSet::default();
    report.stop = "saturated".into();
    for iteration in 0..limits.iterations {
        report.iterations = iteration + 1;
        let t = Instant::now();
        let eg = &low.egraph;
        let omitted = eg.find(low.omitted);
        // Search: every rule rooted at each op e-node.
        let mut found = Vec::new();
        for class in eg.classes() {
            for node in &class.nodes {
                let QNode::Op { tmpl, .. } = node else { continue };
                let Some(rs) = by_op.get(eg.analysis.tables.templates[*tmpl as usize].op.name()) else { continue };
                for &r in rs {
                    for f in rewrite::search(eg, &rules[r].pattern, class.id, node, omitted) {
                        if tried.insert(f.key(r)) {
                            found.push((r, f));
                        }
                    }
                }
            }
        }
        report.search_time += t.elapsed();
        let t = Instant::now();
        let names = first_records(eg, &low.names);
        let orders: HashMap<Id, u64> = {
            let mut m = HashMap::default();
            for &(id, o) in &low.orders {
                let e = m.entry(eg.find(id)).or_insert(o);
                *e = (*e).min(o);
            }
            m
        };
        let mut changed = false;
        for (r, f) in found {
            let Some(frag) = rewrite::materialize(&low.egraph, &f, &names, omitted, graph) else { continue };
            let order = orders.get(&low.egraph.find(f.nodes[0].0)).copied().unwrap_or(0);
            let fired = rewrite::fire(&mut low.egraph, set, r, frag, omitted, order, &mut low.names, &mut low.orders);
            if let Some(fired) = fired {
                if let Some((name, _)) = fired.approximation {
                    report.approximations.insert((rules[r].name, name));
                }
                for (a, b) in fired.unions {
                    if low.egraph.union(a, b) {
                        changed = true;
                        report.rewrites += 1;
                    }
                }
            }
            if low.egraph.total_size() > limits.nodes {
                break;
            }
        }
        low.egraph.rebuild();
        report.apply_time += t.elapsed();
        if !changed {
            break;
        }
        if low.egraph.total_size() > limits.nodes {
            report.stop = format!("node limit {}", limits.nodes);
            break;
        }
        if start.elapsed() > limits.time {
            report.stop = format!("time limit {:?}", limits.time);
            break;
        }
        if iteration + 1 == limits.iterations {
            report.stop = format!("iteration limit {}", limits.iterations);
        }
    }
    report.enodes = low.egraph.total_size();
    let t = Instant::now();
    let costs = cost::Costs::of(set.config());
    let (mut choice, mut total) = extract_choice(&low, &costs)?;
    total += keep_output_producers(graph, &low, &mut choice, &costs);
    report.cost = total;
    report.extract_time = t.elapsed();
    report.unchanged = is_original(graph, &low, &choice);
    let t = Instant::now();
    let out = if report.unchanged { graph.clone() } else { rebuild::rebuild(graph, &low, &choice)? };
    report.rebuild_time = t.elapsed();
    Ok((out, report))
}

/// The first name record of each e-class (original names come first: they are recorded first).
fn first_records(eg: &lang::EGraph, records: &[(Id, String, bool)]) -> HashMap<Id, String> {
    let mut m = HashMap::default();
    for (id, name, _) in records {
        if !name.is_empty() {
            m.entry(eg.find(*id)).or_insert_with(|| name.clone());
        }
    }
    m
}

/// The cost of one e-node from its e-class types.
fn enode_cost(eg: &lang::EGraph, class: Id, node: &QNode, costs: &cost::Costs) -> f64 {
    let QNode::Op { tmpl, args } = node else { return 0.0 };
    let op = &eg.analysis.tables.templates[*tmpl as usize].op;
    let ins: Vec<Option<&TensorType>> = args.iter().map(|&a| eg[a].data.first().and_then(Option::as_ref)).collect();
    let outs: Vec<Option<&TensorType>> = eg[class].data.iter().map(Option::as_ref).collect();
    costs.node(op, &ins, &outs)
}

/// Runs the extractor on the e-graph: the chosen e-node per canonical e-class.
fn extract_choice(low: &lower::Lowered, costs: &cost::Costs) -> Result<(HashMap<Id, QNode>, f64), String> {
    let eg = &low.egraph;
    let ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let problem = extract::Problem {
        classes: eg
            .classes()
            .map(|c| {
                c.nodes
                    .iter()
                    .map(|n| {
                        (enode_cost(eg, c.id, n, costs), n.children().iter().map(|&ch| index[&eg.find(ch)]).collect())
                    })
                    .collect()
            })
            .collect(),
    };
    let roots: Vec<usize> = low.outputs.iter().map(|&o| index[&eg.find(o)]).collect();
    let x = extract::extract(&problem, &roots)?;
    let choice = ids.iter().enumerate().filter_map(|(i, &id)| x.choice[i].map(|k| (id, eg[id].nodes[k].clone())));
    Ok((choice.collect(), x.cost))
}

/// A graph output whose e-class extracts to a constant or input would need a new `Identity` to
/// carry its name; when its original producer is an op on such leaves (e.g. `Identity(constant)`)
/// it is kept instead, so that the pipeline reaches a fixed point. Returns the cost added.
fn keep_output_producers(
    graph: &Graph,
    low: &lower::Lowered,
    choice: &mut HashMap<Id, QNode>,
    costs: &cost::Costs,
) -> f64 {
    let eg = &low.egraph;
    let needs = rebuild::needs_identity(graph, low, choice);
    let mut added = 0.0;
    for (i, producer) in low.output_producers.iter().enumerate() {
        let (true, Some(p)) = (needs[i], producer) else { continue };
        let c = eg.find(low.outputs[i]);
        let p = p.clone().map_children(|x| eg.find(x));
        let on_leaves = p
            .children()
            .iter()
            .all(|ch| matches!(choice.get(ch), Some(QNode::Const(_) | QNode::Input(_) | QNode::Omitted)));
        if on_leaves && eg[c].nodes.contains(&p) && !matches!(choice[&c], QNode::Op { .. }) {
            added += enode_cost(eg, c, &p, costs);
            choice.insert(c, p);
        }
    }
    added
}

/// Whether the extraction chose exactly the original ops, each once (then the graph is kept as
/// it was).
fn is_original(graph: &Graph, low: &lower::Lowered, choice: &HashMap<Id, QNode>) -> bool {
    let eg = &low.egraph;
    let canon = |n: &QNode| n.clone().map_children(|c| eg.find(c));
    let original: HashSet<QNode> = low.original_ops.iter().map(canon).collect();
    // The needed op e-nodes, from the outputs.
    let mut seen: HashSet<Id> = HashSet::default();
    let mut stack: Vec<Id> = low.outputs.iter().map(|&o| eg.find(o)).collect();
    let mut needed_ops = 0;
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        let n = &choice[&c];
        if let QNode::Op { .. } = n {
            if !original.contains(n) {
                return false;
            }
            needed_ops += 1;
        }
        stack.extend(n.children().iter().map(|&ch| eg.find(ch)));
    }
    let outputs_kept = !rebuild::needs_identity(graph, low, choice).contains(&true);
    needed_ops == original.len() && original.len() == low.original_ops.len() && outputs_kept
}

/// The saturation pass: replaces the graph by the extraction when it differs; on a graph the
/// engine does not model, falls back to the greedy passes with a remark.
pub struct Saturate {
    pub config: Config,
}

/// A remark when saturation stopped at a limit rather than at a fixed point: the extraction is
/// then the cheapest graph among the forms found so far.
fn limit_remark(report: &Report) -> Option<Remark> {
    (report.stop != "saturated").then(|| Remark {
        pass: "saturate",
        rule: "saturate",
        node: "graph".into(),
        op: String::new(),
        reason: format!(
            "stopped at the {} after {} iterations ({} e-nodes): the result is the cheapest graph found so far",
            report.stop, report.iterations, report.enodes
        ),
        kind: RemarkKind::Missed,
    })
}

impl Pass for Saturate {
    fn name(&self) -> &'static str {
        "saturate"
    }

    fn run(&self, graph: &mut Graph, remarks: &mut Remarks) -> Result<usize, PassError> {
        let rules = rule_table(&self.config);
        let result = saturate(graph, &rules, Limits::for_graph(graph.op_count()));
        if let Ok((_, report)) = &result {
            remarks.extend(limit_remark(report));
            remarks.extend(report.approximations.iter().map(|&(rule, name)| Remark {
                pass: "saturate",
                rule,
                node: "graph".into(),
                op: String::new(),
                reason: format!("the approximation '{name}', offered to the extraction"),
                kind: RemarkKind::Approximation,
            }));
        }
        match result {
            Ok((_, report)) if report.unchanged => Ok(0),
            Ok((out, report)) => {
                *graph = out;
                Ok(report.rewrites.max(1))
            }
            Err(reason) => {
                remarks.insert(Remark {
                    pass: "saturate",
                    rule: "saturate",
                    node: "graph".into(),
                    op: String::new(),
                    reason: format!("falling back to the greedy passes: {reason}"),
                    kind: RemarkKind::Missed,
                });
                let mut n = 0;
                for entry in crate::pipeline::saturate_fallback() {
                    n += entry.build(&self.config).run(graph, remarks)?;
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;
    use qdqc_ir::text::{parse, print};

    #[test]
    fn stopping_at_a_limit_is_a_remark() {
        let at_limit = Report { stop: "time limit 1s".into(), iterations: 4, enodes: 900, ..Report::default() };
        assert_eq!(
            limit_remark(&at_limit).unwrap().reason,
            "stopped at the time limit 1s after 4 iterations (900 e-nodes): the result is the cheapest graph found so far"
        );
        assert!(limit_remark(&Report { stop: "saturated".into(), ..Report::default() }).is_none());
    }

    fn run(text: &str, target: Target) -> (String, Report) {
        let g = parse(text).unwrap();
        let config = Config { target, ..Config::default() };
        let (out, report) = saturate(&g, &rule_table(&config), Limits::for_graph(g.op_count())).unwrap();
        out.verify().unwrap();
        (print(&out), report)
    }

    /// Two unnamed DQs of the same value are one e-node: the extraction computes it once, and
    /// the Flatten stays in float because the shared DQ is needed by the AveragePool anyway.
    #[test]
    fn equal_nodes_are_shared_and_moving_a_dq_is_a_choice() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,1,1,1]
  const %s1: f32[] 0.25
  const %z2: u8[] 0
  const %s8: f32[] 1
  %q3 = QuantizeLinear(%x, %s1, %z2)
  %d6 = DequantizeLinear(%q3, %s1, %z2)
  %pool7 = AveragePool[kernel_shape=[1,1], strides=[1,1]](%d6)
  %q10 = QuantizeLinear(%pool7, %s8, %z2)
  %d13 = DequantizeLinear(%q3, %s1, %z2)
  %t14 = Flatten[axis=1](%d13)
  %q17 = QuantizeLinear(%t14, %s8, %z2)
  %d20 = DequantizeLinear(%q10, %s8, %z2)
  output %d20
  %d23 = DequantizeLinear(%q17, %s8, %z2)
  output %d23
}
"#;
        let (out, r) = run(text, Target::Onnx);
        assert!(!r.unchanged);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,1,1,1]
          const %s1: f32[] 0.25
          const %z2: u8[] 0
          const %s8: f32[] 1.0
          %q3: u8[1,1,1,1] q(0.25, 0) = QuantizeLinear(%x, %s1, %z2)
          %d6: f32[1,1,1,1] = DequantizeLinear(%q3, %s1, %z2)
          %pool7: f32[1,1,1,1] = AveragePool[kernel_shape=[1,1], strides=[1,1]](%d6)
          %q10: u8[1,1,1,1] q(1.0, 0) = QuantizeLinear(%pool7, %s8, %z2)
          %t14: f32[1,1] = Flatten[axis=1](%d6)
          %q17: u8[1,1] q(1.0, 0) = QuantizeLinear(%t14, %s8, %z2)
          %d20: f32[1,1,1,1] = DequantizeLinear(%q10, %s8, %z2)
          %d23: f32[1,1] = DequantizeLinear(%q17, %s8, %z2)
          output %d20
          output %d23
        }
        "#);
        // Without the AveragePool, the DQ moves after the Flatten (integer Flatten, one DQ).
        let text =
            text.replace("%pool7 = AveragePool[kernel_shape=[1,1], strides=[1,1]](%d6)", "%pool7 = Identity(%x)");
        let (out, _) = run(&text, Target::Onnx);
        assert!(out.contains("= Flatten[axis=1](%q3)"), "{out}");
    }

    #[test]
    fn an_untouched_graph_is_kept_as_is() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  %y = Relu(%x)  "relu"
  output %y
}
"#;
        let (out, r) = run(text, Target::Ort);
        assert!(r.unchanged);
        assert_eq!(out, print(&parse(text).unwrap()));
    }

    #[test]
    fn a_subgraph_reading_outer_values_falls_back_to_greedy() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %c: bool[]
  input %x: f32[2]
  %i = Identity(%x)
  %y: f32[2] = If[then_branch=graph "then" {
    %r: f32[2] = Relu(%x)
    output %r
  }, else_branch=graph "else" {
    %n: f32[2] = Neg(%x)
    output %n
  }](%c)
  output %y
  output %i
}
"#;
        let g = parse(text).unwrap();
        assert!(saturate(&g, &rule_table(&Config::default()), Limits::for_graph(2)).unwrap_err().contains("subgraph"));
        let mut g2 = g.clone();
        let mut remarks = Remarks::new();
        let n = Saturate { config: Config::default() }.run(&mut g2, &mut remarks).unwrap();
        let r: Vec<String> = remarks.iter().map(|r| format!("{}: {}", r.rule, r.reason)).collect();
        // The greedy passes ran: cleanup's remark about the Identity is there.
        assert_eq!(
            r,
            [
                "identity: graph output 'i' is a copy of 'x', which cannot take its name",
                "saturate: falling back to the greedy passes: node (producing 'y') (If) has a subgraph that reads outer values"
            ]
        );
        assert_eq!(n, 0);
        g2.verify().unwrap();
    }
}
