//! Running a qdqc [`crate::rule::Rule`] on the e-graph: its [`Pattern`] is matched on e-nodes, the match is
//! materialized as a small qdqc [`Graph`] *fragment*, the rule's own guards and builder run on
//! the fragment ([`RuleSet::try_at`]), the [`Patch`](crate::rule::Patch) is applied there, and every
//! value the patch replaced is lowered back and united with the e-class it replaced.
//!
//! In the fragment, the matched e-nodes are nodes; the producers of their operands are
//! materialized [`CONTEXT_DEPTH`] levels deep (a bias that is `DequantizeLinear(constant)`, the
//! DQs around a Concat); the root's consumers (its e-classes' parent e-nodes, at most
//! [`MAX_CONSUMERS`]) are nodes too; every other operand is a typed graph input, the interned
//! constant, or an omitted input. After the patch, a consumer's input (or, for an output nobody
//! reads, an `Identity` *sink*'s) is the replacement.
//!
//! So guards see what greedy's guards see around a match, with two differences. Interior values
//! have no consumers outside the match (guards such as "the float result is used elsewhere"
//! pass): sound, because the e-graph keeps the original form and the extraction pays for both
//! when both are needed. And past the context, operands are graph inputs, so a guard that looks
//! further refuses (a missed rewrite, not a wrong one). The root's consumers matter for
//! soundness: rules whose result is only close to the original (a float-output QGemm with a
//! rounded int32 bias) are guarded by the quantization of the consumer in greedy, and must be
//! here too.

use super::lang::{ConstSource, EGraph, QNode, Template};
use super::lower::{add_op, template_of};
use crate::rule::{Pattern, RuleSet};
use egg::{Id, Language};
use qdqc_ir::{Graph, NodeId, Op, Operand, Outlet, Value};
use rustc_hash::FxHashMap as HashMap;

/// Matches per root e-node at most (nested patterns can multiply).
pub const MAX_MATCHES: usize = 8;

/// Consumers of the root materialized at most.
pub const MAX_CONSUMERS: usize = 16;

/// A match: the matched op e-nodes (root first, pre-order) as (op e-class, e-node, the e-class of
/// the value the parent reads), and the `?var` bindings.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub nodes: Vec<(Id, QNode, Id)>,
    bindings: Vec<(std::sync::Arc<str>, Id)>,
}

impl Found {
    /// A key that identifies the match (the rule index and the canonical matched e-nodes).
    pub fn key(&self, rule: usize) -> (usize, Vec<QNode>) {
        (rule, self.nodes.iter().map(|(_, n, _)| n.clone()).collect())
    }
}

/// The op e-nodes of e-class `class` that produce output 0 of an `op` node: single-output e-nodes
/// of the class, or multi-output e-nodes whose output 0 the class projects.
fn candidates(eg: &EGraph, class: Id, op: &Op) -> Vec<(Id, QNode)> {
    let t = &eg.analysis.tables.templates;
    let is = |n: &QNode, multi: bool| matches!(n, QNode::Op { tmpl, .. } if t[*tmpl as usize].op == *op && (t[*tmpl as usize].n_outputs > 1) == multi);
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        if is(n, false) {
            out.push((class, n.clone()));
        } else if let QNode::Get { slot: 0, tuple: [t] } = n {
            let t = eg.find(*t);
            out.extend(eg[t].nodes.iter().filter(|m| is(m, true)).map(|m| (t, m.clone())));
        }
    }
    out
}

/// Matches `pattern` rooted at e-node `root` of e-class `class`.
pub fn search(eg: &EGraph, pattern: &Pattern, class: Id, root: &QNode, omitted: Id) -> Vec<Found> {
    let Pattern::Node { op, args, .. } = pattern else { return vec![] };
    let QNode::Op { tmpl, .. } = root else { return vec![] };
    if !eg.analysis.tables.templates[*tmpl as usize].op.same(op) {
        return vec![];
    }
    extend(eg, args, class, root, class, vec![Found::default()], omitted)
}

/// Extends each state with the match of `args` under e-node `node` (of op e-class `op_class`,
/// read by its parent as e-class `value`).
fn extend(
    eg: &EGraph,
    args: &[Pattern],
    op_class: Id,
    node: &QNode,
    value: Id,
    states: Vec<Found>,
    omitted: Id,
) -> Vec<Found> {
    let children = node.children();
    let rest = matches!(args.last(), Some(Pattern::Rest(_)));
    if !rest && children.iter().skip(args.len()).any(|&c| eg.find(c) != omitted) {
        return vec![];
    }
    let mut states: Vec<Found> = states
        .into_iter()
        .map(|mut s| {
            s.nodes.push((op_class, node.clone(), value));
            s
        })
        .collect();
    for (i, arg) in args.iter().enumerate() {
        let child = children.get(i).map_or(omitted, |&c| eg.find(c));
        states = match_arg(eg, arg, child, states, omitted);
        if states.is_empty() {
            break;
        }
    }
    states
}

fn match_arg(eg: &EGraph, pat: &Pattern, class: Id, states: Vec<Found>, omitted: Id) -> Vec<Found> {
    match pat {
        Pattern::Var(v) => states
            .into_iter()
            .filter_map(|mut s| match s.bindings.iter().find(|(b, _)| b == v) {
                Some(&(_, bound)) => (eg.find(bound) == class).then_some(s),
                None => {
                    s.bindings.push((v.clone(), class));
                    Some(s)
                }
            })
            .collect(),
        // (The rule matches its pattern again on the fragment, which binds the list.)
        Pattern::Rest(_) => states,
        Pattern::Node { op, args, .. } => {
            let mut out = Vec::new();
            for (op_class, n) in candidates(eg, class, op) {
                out.extend(extend(eg, args, op_class, &n, class, states.clone(), omitted));
                if out.len() >= MAX_MATCHES {
                    out.truncate(MAX_MATCHES);
                    break;
                }
            }
            out
        }
    }
}

/// A match materialized as a graph.
pub struct Fragment {
    pub graph: Graph,
    pub root: NodeId,
    /// Per output slot of the root: its e-class and the (node, input) that reads it.
    sinks: Vec<(Id, (NodeId, usize))>,
    /// The e-class of each output of the fragment's matched nodes and inputs.
    known: HashMap<NodeId, Vec<Option<Id>>>,
}

/// Builds the fragment of a match. `names` gives e-classes their preferred value names. `None`
/// when an operand cannot be materialized (a constant without data).
pub fn materialize(
    eg: &EGraph,
    found: &Found,
    names: &HashMap<Id, String>,
    omitted: Id,
    base: &Graph,
) -> Option<Fragment> {
    let mut g = Graph::new();
    g.opsets = base.opsets.clone();
    let tables = &eg.analysis.tables;
    let mut cx = Cx { eg, names, omitted, g, value_of: HashMap::default(), known: HashMap::default() };
    let mut node_of: HashMap<Id, NodeId> = HashMap::default();
    for (op_class, node, _) in found.nodes.iter().rev() {
        if node_of.contains_key(op_class) {
            continue;
        }
        let QNode::Op { tmpl, args } = node else { return None };
        let t = &tables.templates[*tmpl as usize];
        let mut inputs = Vec::with_capacity(args.len());
        for &a in args.iter() {
            inputs.push(operand(&mut cx, eg.find(a), CONTEXT_DEPTH)?);
        }
        let n_out = t.n_outputs;
        let slot_classes: Vec<Option<Id>> = if n_out == 1 {
            vec![Some(*op_class)]
        } else {
            (0..n_out as u32).map(|slot| eg.lookup(QNode::Get { slot, tuple: [*op_class] })).collect()
        };
        let id = cx.add_node(*op_class, t, inputs, slot_classes)?;
        node_of.insert(*op_class, id);
    }
    let root = node_of[&found.nodes[0].0];
    // The root's consumers (its e-classes' parent e-nodes), for guards that look at them.
    let slots = cx.known[&root].clone();
    let mut consumers = 0;
    for c in slots.into_iter().flatten() {
        for p in eg[c].parents() {
            let pc = eg.find(p);
            if consumers >= MAX_CONSUMERS || cx.value_of.contains_key(&pc) {
                continue;
            }
            let QNode::Op { tmpl, args } = eg.id_to_node(p) else { continue };
            let t = &tables.templates[*tmpl as usize];
            if t.n_outputs != 1 {
                continue;
            }
            let mut inputs = Vec::with_capacity(args.len());
            for &a in args.iter() {
                inputs.push(operand(&mut cx, eg.find(a), 0)?);
            }
            cx.add_node(pc, t, inputs, vec![Some(pc)])?;
            consumers += 1;
        }
    }
    let Cx { mut g, known, .. } = cx;
    let mut sinks = Vec::new();
    for (slot, c) in known[&root].clone().into_iter().enumerate() {
        let Some(c) = c else { continue };
        let v = Outlet::new(root, slot as u32);
        // A consumer's input shows the replacement; without one, an Identity sink does.
        let sink = match g.consumers(v).into_iter().find_map(|(n, port)| match port {
            qdqc_ir::Port::Input(i) => Some((n, i as usize)),
            qdqc_ir::Port::Capture(_) => None,
        }) {
            Some(use_) => use_,
            None => {
                let out = Value { name: g.fresh_name("sink"), ty: g.value(v).ty.clone(), ..Default::default() };
                let id =
                    g.add_node(Op::Identity, qdqc_ir::NodeMeta::default(), vec![], vec![Operand::Value(v)], vec![out]);
                (id.ok()?, 0)
            }
        };
        sinks.push((c, sink));
    }
    Some(Fragment { graph: g, root, sinks, known })
}

/// How deep the producers of a match's operands are materialized too, so that guards that look
/// past the pattern (a bias or BN parameter that is `DequantizeLinear(constant)`, the DQs around a
/// Concat) see them.
pub const CONTEXT_DEPTH: usize = 2;

/// The fragment being built.
struct Cx<'a> {
    eg: &'a EGraph,
    names: &'a HashMap<Id, String>,
    omitted: Id,
    g: Graph,
    value_of: HashMap<Id, Operand>,
    known: HashMap<NodeId, Vec<Option<Id>>>,
}

impl Cx<'_> {
    fn name_for(&mut self, c: Option<Id>) -> String {
        let base = c.and_then(|c| self.names.get(&c)).map_or("v", String::as_str);
        self.g.fresh_name(base)
    }

    /// Adds a node of template `t` for op e-class `op_class` (its outputs' e-classes `slots`).
    fn add_node(&mut self, op_class: Id, t: &Template, inputs: Vec<Operand>, slots: Vec<Option<Id>>) -> Option<NodeId> {
        let outputs = slots
            .iter()
            .enumerate()
            .map(|(slot, &c)| Value {
                name: self.name_for(c),
                ty: self.eg[op_class].data.get(slot).cloned().flatten(),
                ..Default::default()
            })
            .collect();
        let id = self.g.add_node(t.op.clone(), t.proto.clone(), t.attrs.clone(), inputs, outputs).ok()?;
        for (slot, c) in slots.iter().enumerate() {
            if let Some(c) = c {
                self.value_of.insert(*c, Operand::Value(Outlet::new(id, slot as u32)));
            }
        }
        self.known.insert(id, slots);
        Some(id)
    }
}

/// The fragment operand for e-class `a`: a node already there, an omitted input, the interned
/// constant, a context node (its producer, `depth` levels deep) or a typed graph input.
fn operand(cx: &mut Cx, a: Id, depth: usize) -> Option<Operand> {
    if let Some(&o) = cx.value_of.get(&a) {
        return Some(o);
    }
    if a == cx.omitted {
        return Some(Operand::None);
    }
    let eg = cx.eg;
    let tables = &eg.analysis.tables;
    let konst = eg[a].nodes.iter().find_map(|n| match n {
        QNode::Const(k) => Some(*k),
        _ => None,
    });
    if let Some(k) = konst {
        let tensor = tables.consts[k as usize].tensor.clone()?;
        let name = cx.names.get(&a).map_or("c", String::as_str).to_string();
        let o = Operand::Const(cx.g.add_initializer(&name, tensor));
        cx.value_of.insert(a, o);
        return Some(o);
    }
    // A context producer: a single-output op, DequantizeLinear first.
    let single = |n: &&QNode| matches!(n, QNode::Op { tmpl, .. } if tables.templates[*tmpl as usize].n_outputs == 1);
    let producer = eg[a].nodes.iter().filter(single).min_by_key(|n| match n {
        QNode::Op { tmpl, .. } => tables.templates[*tmpl as usize].op != Op::DequantizeLinear,
        _ => true,
    });
    if let (true, Some(QNode::Op { tmpl, args })) = (depth > 0, producer) {
        let mut inputs = Vec::with_capacity(args.len());
        for &x in args.iter() {
            inputs.push(operand(cx, eg.find(x), depth - 1)?);
        }
        if let Some(&o) = cx.value_of.get(&a) {
            return Some(o); // reached through a cycle meanwhile
        }
        let id = cx.add_node(a, &tables.templates[*tmpl as usize], inputs, vec![Some(a)])?;
        return Some(Operand::Value(Outlet::new(id, 0)));
    }
    let name = cx.name_for(Some(a));
    let ty = eg[a].data.first().cloned().flatten();
    let o = cx.g.add_input(Value { name, ty, ..Default::default() }).ok()?;
    cx.known.insert(o.node, vec![Some(a)]);
    cx.value_of.insert(a, Operand::Value(o));
    Some(Operand::Value(o))
}

/// What a fired rule adds to the e-graph.
pub struct Fired {
    /// (replaced e-class, replacement e-class).
    pub unions: Vec<(Id, Id)>,
    /// The approximation the rewrite made (allowed by the configuration), if any.
    pub approximation: Option<(&'static str, String)>,
}

/// Runs `rule` on the fragment; on success lowers the replacements into the e-graph.
/// `names` and `orders` receive the records of the new e-classes (named after the fragment's
/// values, ordered at `order`, the order key of the root).
#[allow(clippy::too_many_arguments)]
pub fn fire(
    eg: &mut EGraph,
    set: &RuleSet,
    rule: usize,
    mut frag: Fragment,
    omitted: Id,
    order: u64,
    names: &mut Vec<(Id, String, bool)>,
    orders: &mut Vec<(Id, u64)>,
) -> Option<Fired> {
    let rewrite = set.try_at(rule, &frag.graph, frag.root)?.ok()?;
    rewrite.patch.apply(&mut frag.graph).ok()?;
    let mut memo: HashMap<NodeId, Vec<Id>> = HashMap::default();
    let mut unions = Vec::new();
    for &(class, (sink, input)) in &frag.sinks {
        let new = frag.graph.node(sink).input(input);
        if let Some(id) = lower_operand(eg, &frag, new, omitted, order, &mut memo, names, orders) {
            unions.push((class, id));
        }
    }
    Some(Fired { unions, approximation: rewrite.approximation })
}

#[allow(clippy::too_many_arguments)]
fn lower_operand(
    eg: &mut EGraph,
    frag: &Fragment,
    operand: Operand,
    omitted: Id,
    order: u64,
    memo: &mut HashMap<NodeId, Vec<Id>>,
    names: &mut Vec<(Id, String, bool)>,
    orders: &mut Vec<(Id, u64)>,
) -> Option<Id> {
    let g = &frag.graph;
    match operand {
        Operand::None => Some(omitted),
        Operand::Const(c) => {
            let k = g.constant(c);
            let tensor = k.tensor()?.clone();
            let source = ConstSource::New { base: k.name.clone() };
            let k = eg.analysis.tables.constant(Some(&tensor), source, k.ty());
            Some(eg.add(QNode::Const(k)))
        }
        Operand::Value(o) => {
            if let Some(classes) = frag.known.get(&o.node) {
                return classes.get(o.slot as usize).copied().flatten();
            }
            if let Some(classes) = memo.get(&o.node) {
                return classes.get(o.slot as usize).copied();
            }
            let node = g.node(o.node);
            let mut args = Vec::with_capacity(node.inputs().len());
            for &i in node.inputs() {
                args.push(lower_operand(eg, frag, i, omitted, order, memo, names, orders)?);
            }
            let tmpl = eg.analysis.tables.template(template_of(g, o.node));
            let types = node.outputs.iter().map(|v| v.ty.clone()).collect();
            let (outs, op_class) = add_op(eg, tmpl, args, types);
            orders.push((op_class, order));
            for (v, &c) in node.outputs.iter().zip(&outs) {
                names.push((c, v.name.clone(), false));
                orders.push((c, order));
            }
            memo.insert(o.node, outs.clone());
            outs.get(o.slot as usize).copied()
        }
    }
}
