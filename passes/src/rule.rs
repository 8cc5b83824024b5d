//! Rewrite rules as data: a [`Rule`] is a name, a [`Pattern`] in s-expression syntax, guard
//! functions that refuse with a human reason ([`Refusal`]), and a builder that returns a
//! [`Patch`]. The patch is applied atomically: a rule that bails leaves the graph untouched.
//!
//! Pattern syntax (egg-compatible, so an e-graph engine can reuse the same strings):
//!
//! ```text
//! pattern := '(' OP arg* ')'          OP: an op name, e.g. QuantizeLinear
//! arg     := '?' NAME | pattern       ?x binds any operand (constants and omitted inputs too)
//! ```
//!
//! A nested pattern requires the operand to be output 0 of a node of that op. A variable used
//! twice must bind the same operand. Node inputs beyond the pattern's arguments must be omitted;
//! arguments beyond the node's inputs bind the omitted operand.

use crate::Target;
use qdqc_ir::{ConstId, Graph, NodeId, Op, Operand, Outlet, Tensor};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

// ---- patterns ----------------------------------------------------------------------------

/// A parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// (`Arc`: every match attempt binds it, and cloning must not allocate.)
    Var(Arc<str>),
    Node {
        op: Op,
        args: Vec<Pattern>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pattern `{text}`: {msg}")]
pub struct PatternError {
    pub text: String,
    pub msg: String,
}

impl Pattern {
    /// Parses a pattern; the root must be an op application.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let err = |msg: String| PatternError { text: text.to_string(), msg };
        let spaced = text.replace('(', " ( ").replace(')', " ) ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut pos = 0;
        let p = parse_expr(&tokens, &mut pos).map_err(err)?;
        if pos != tokens.len() {
            return Err(err(format!("unexpected `{}` after the pattern", tokens[pos])));
        }
        if matches!(p, Pattern::Var(_)) {
            return Err(err("the root must be an op application, not a variable".into()));
        }
        Ok(p)
    }

    /// The op at the root (`None` for a variable).
    pub fn root_op(&self) -> Option<&Op> {
        match self {
            Pattern::Node { op, .. } => Some(op),
            Pattern::Var(_) => None,
        }
    }
}

fn parse_expr(tokens: &[&str], pos: &mut usize) -> Result<Pattern, String> {
    let tok = *tokens.get(*pos).ok_or("unexpected end of the pattern")?;
    *pos += 1;
    match tok {
        "(" => {
            let name = *tokens.get(*pos).ok_or("expected an op name after `(`")?;
            if name == "(" || name == ")" || name.starts_with('?') {
                return Err(format!("expected an op name after `(`, found `{name}`"));
            }
            *pos += 1;
            let op = known_op(name).ok_or_else(|| format!("unknown op `{name}`"))?;
            let mut args = Vec::new();
            loop {
                match tokens.get(*pos) {
                    None => return Err("missing `)`".into()),
                    Some(&")") => {
                        *pos += 1;
                        return Ok(Pattern::Node { op, args });
                    }
                    Some(_) => args.push(parse_expr(tokens, pos)?),
                }
            }
        }
        ")" => Err("unexpected `)`".into()),
        v if v.len() > 1 && v.starts_with('?') => Ok(Pattern::Var(v[1..].into())),
        other => Err(format!("expected `(` or a `?variable`, found `{other}`")),
    }
}

/// A known op of ai.onnx or com.microsoft by its bare name.
fn known_op(name: &str) -> Option<Op> {
    [qdqc_ir::op::ONNX_DOMAIN, qdqc_ir::op::MS_DOMAIN]
        .into_iter()
        .map(|d| Op::from_onnx(d, name))
        .find(|op| !matches!(op, Op::Other(_)))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Var(v) => write!(f, "?{v}"),
            Pattern::Node { op, args } => {
                write!(f, "({}", op.name())?;
                for a in args {
                    write!(f, " {a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

// ---- matching ----------------------------------------------------------------------------

/// A match of a pattern rooted at a node: the operands bound to the `?vars` and the matched
/// nodes (root first, then nested patterns in pre-order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// (Inline: every node of every sweep is matched against its op's patterns, and an
    /// allocation per attempt was a measurable part of a sweep that changes nothing.)
    pub nodes: SmallVec<[NodeId; 6]>,
    bindings: SmallVec<[(Arc<str>, Operand); 8]>,
}

impl Match {
    pub fn root(&self) -> NodeId {
        self.nodes[0]
    }

    /// The operand bound to `?var` (panics for a variable the pattern does not have: a rule bug).
    pub fn get(&self, var: &str) -> Operand {
        self.bindings
            .iter()
            .find(|(v, _)| &**v == var)
            .map(|(_, o)| *o)
            .unwrap_or_else(|| panic!("pattern has no variable ?{var}"))
    }

    /// The operand bound to `?var`, or `None` for a variable the pattern does not have.
    pub fn try_get(&self, var: &str) -> Option<Operand> {
        self.bindings.iter().find(|(v, _)| &**v == var).map(|(_, o)| *o)
    }

    /// Whether a matched node other than the root has outputs used outside the match. A
    /// DequantizeLinear of a constant (a weight or bias DQ) does not count: a rewrite reads its
    /// inputs and leaves it to its other consumers (a patch removes only what became dead).
    pub fn interior_used_elsewhere(&self, graph: &Graph) -> bool {
        self.nodes[1..].iter().any(|&id| {
            let n = graph.node(id);
            let weight_dq = n.op == Op::DequantizeLinear && matches!(n.input(0), Operand::Const(_));
            !weight_dq && (graph.uses(id).any(|(c, _)| !self.nodes.contains(&c)) || graph.feeds_output(id))
        })
    }
}

/// Matches `pattern` rooted at node `id`.
pub fn match_at(graph: &Graph, pattern: &Pattern, id: NodeId) -> Option<Match> {
    // Most attempts fail on an op below the root: find that out before building a `Match` (a
    // few hundred bytes, copied on its way out, for every attempt at every node of every sweep).
    if !ops_match(graph, pattern, id) {
        return None;
    }
    let mut m = Match { nodes: SmallVec::new(), bindings: SmallVec::new() };
    match_node(graph, pattern, id, &mut m).then_some(m)
}

/// Whether the nodes under `id` have the pattern's ops and input counts (variables unchecked).
fn ops_match(graph: &Graph, pattern: &Pattern, id: NodeId) -> bool {
    let Pattern::Node { op, args } = pattern else { return true };
    let node = graph.node(id);
    &node.op == op
        && node.inputs().iter().skip(args.len()).all(|i| *i == Operand::None)
        && args.iter().enumerate().all(|(i, arg)| match (arg, node.input(i)) {
            (Pattern::Var(_), _) => true,
            (Pattern::Node { .. }, Operand::Value(o)) if o.slot == 0 => ops_match(graph, arg, o.node),
            (Pattern::Node { .. }, _) => false,
        })
}

fn match_node(graph: &Graph, pattern: &Pattern, id: NodeId, m: &mut Match) -> bool {
    let Pattern::Node { op, args } = pattern else { return false };
    let node = graph.node(id);
    if &node.op != op || node.inputs().iter().skip(args.len()).any(|i| *i != Operand::None) {
        return false;
    }
    m.nodes.push(id);
    args.iter().enumerate().all(|(i, arg)| {
        let operand = node.input(i);
        match arg {
            Pattern::Var(v) => match m.bindings.iter().find(|(b, _)| b == v) {
                Some((_, bound)) => *bound == operand,
                None => {
                    m.bindings.push((v.clone(), operand));
                    true
                }
            },
            Pattern::Node { .. } => match operand {
                Operand::Value(o) if o.slot == 0 => match_node(graph, arg, o.node, m),
                _ => false,
            },
        }
    })
}

// ---- rules -------------------------------------------------------------------------------

/// Why a rule did not fire, for the remarks (e.g. "zero points differ: 128 vs 0").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal(reason.into())
    }

    /// A refusal that is no remark: the rule does not apply here at all (e.g. `q-of-const` at
    /// a QuantizeLinear of an activation), which is nothing a user needs to hear about.
    pub fn not_applicable() -> Refusal {
        Refusal(String::new())
    }

    pub fn is_remark(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses with a formatted reason unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        // (`match`, not `if !`: a NaN must refuse, and clippy rightly dislikes `!(a < b)`.)
        match $cond {
            true => {}
            false => return Err($crate::rule::Refusal(format!($($reason)+))),
        }
    };
}

pub type Guard = fn(&Graph, &Match) -> Result<(), Refusal>;
pub type Build = fn(&Graph, &Match) -> Result<Patch, Refusal>;

/// A named rewrite: pattern, guards (checked in order; the first refusal is reported), builder.
pub struct Rule {
    pub name: &'static str,
    pub pattern: Pattern,
    pub guards: Vec<Guard>,
    pub build: Build,
    /// The targets whose ops the patch may use (all by default). On another target the driver
    /// reports a match that would have fired as a remark instead of applying it.
    pub targets: &'static [Target],
}

impl Rule {
    /// A rule from its pattern text; panics on a malformed pattern (rules are static data, and
    /// every rule table has a test that builds it).
    pub fn new(name: &'static str, pattern: &str, guards: &[Guard], build: Build) -> Rule {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("rule {name}: {e}"));
        Rule { name, pattern, guards: guards.to_vec(), build, targets: Target::ALL }
    }

    /// Restricts the rule to `targets` (e.g. a rewrite into com.microsoft ops: `&[Target::Ort]`).
    pub fn only(mut self, targets: &'static [Target]) -> Rule {
        self.targets = targets;
        self
    }

    /// Matches at `id`, checks the guards and builds the patch. `None`: the pattern does not
    /// match; `Some(Err(_))`: it matches but a guard or the builder refused.
    pub fn try_at(&self, graph: &Graph, id: NodeId) -> Option<Result<Patch, Refusal>> {
        let m = match_at(graph, &self.pattern, id)?;
        Some(self.guards.iter().try_for_each(|g| g(graph, &m)).and_then(|()| (self.build)(graph, &m)))
    }
}

// ---- patches -----------------------------------------------------------------------------

/// An operand in a patch: one of the graph's, or a constant or node output the patch adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOperand {
    Old(Operand),
    NewConst(usize),
    NewNode(usize, u32),
}

impl From<Operand> for PatchOperand {
    fn from(o: Operand) -> Self {
        PatchOperand::Old(o)
    }
}

/// A node a patch adds. Output names are bases made fresh when the patch is applied.
#[derive(Clone, Debug)]
pub struct PatchNode {
    pub op: Op,
    pub name: String,
    /// Shared with the node it is made from, when it keeps that node's attributes.
    pub attrs: std::sync::Arc<[qdqc_ir::proto::AttributeProto]>,
    pub inputs: Vec<PatchOperand>,
    pub outputs: Vec<String>,
}

/// A rewrite, tract-style: constants and nodes to add, values to replace, nodes to remove.
/// Nothing changes until [`Patch::apply`], which checks everything before editing.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    consts: Vec<(String, Tensor)>,
    nodes: Vec<PatchNode>,
    replace: Vec<(Outlet, PatchOperand)>,
    remove: Vec<NodeId>,
}

/// What applying a patch touched, for the driver's worklist.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub new_nodes: Vec<NodeId>,
    /// Nodes that now read a replacement value.
    pub touched: Vec<NodeId>,
}

impl Patch {
    pub fn new() -> Patch {
        Patch::default()
    }

    /// Adds a constant (its name is made fresh from `base`), or shares an equal one an earlier
    /// patch added ([`Graph::add_shared_initializer`]).
    pub fn add_const(&mut self, base: &str, tensor: Tensor) -> PatchOperand {
        self.consts.push((base.to_string(), tensor));
        PatchOperand::NewConst(self.consts.len() - 1)
    }

    /// Adds a node; returns the index to use in [`PatchOperand::NewNode`].
    pub fn add_node(&mut self, node: PatchNode) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Makes every use of `old` (including a graph output, whose name is kept) use `new`.
    pub fn replace(&mut self, old: Outlet, new: impl Into<PatchOperand>) {
        self.replace.push((old, new.into()));
    }

    /// Removes a node if nothing uses it once the replacements are done; a node still used
    /// (e.g. a DQ with other consumers) is kept.
    pub fn remove(&mut self, id: NodeId) {
        self.remove.push(id);
    }

    /// Checks the patch against the graph, then applies it. On `Err` the graph is unchanged.
    pub fn apply(self, graph: &mut Graph) -> Result<Applied, Refusal> {
        let renames = self.check(graph)?;
        // (An equal constant made by an earlier rewrite is shared; the undo removes only new ones.)
        let mut consts: Vec<ConstId> = Vec::new();
        let mut created: Vec<ConstId> = Vec::new();
        for (base, tensor) in self.consts {
            let (c, new) = graph.add_shared_initializer(&base, tensor);
            consts.push(c);
            if new {
                created.push(c);
            }
        }
        let mut added: Vec<NodeId> = Vec::new();
        let resolve = |p: PatchOperand, added: &[NodeId]| match p {
            PatchOperand::Old(o) => o,
            PatchOperand::NewConst(i) => Operand::Const(consts[i]),
            PatchOperand::NewNode(i, slot) => Operand::Value(Outlet::new(added[i], slot)),
        };
        for (i, n) in self.nodes.into_iter().enumerate() {
            graph.import_domain_of(&n.op);
            let inputs = n.inputs.iter().map(|&p| resolve(p, &added)).collect();
            // An output that takes the name of the value it replaces is named once that value is
            // gone; until then it has none (a fresh name, then a rename, cost two more name
            // lookups, a formatted name and a naming hint per fused node).
            let renamed = |slot: usize| renames.iter().any(|(r, _, _)| *r == PatchOperand::NewNode(i, slot as u32));
            let outputs = (n.outputs.iter().enumerate())
                .map(|(slot, b)| qdqc_ir::Value::named(if renamed(slot) { String::new() } else { graph.fresh_name(b) }))
                .collect();
            let meta = qdqc_ir::NodeMeta {
                name: (!n.name.is_empty()).then(|| n.name.as_str().into()),
                domain: (!n.op.default_domain().is_empty()).then(|| n.op.default_domain().into()),
                rest: None,
            };
            // New nodes take the place of the first node the patch removes, so that the printed
            // and exported order (and hence diffs) stay local.
            let added_node = match self.remove.first() {
                Some(&r) => graph.add_node_at(n.op, meta, n.attrs, inputs, outputs, graph.node(r).order()),
                None => graph.add_node(n.op, meta, n.attrs, inputs, outputs),
            };
            let inferred = added_node.map_err(|e| Refusal(e.to_string())).and_then(|id| {
                added.push(id);
                qdqc_ir::infer::infer_to_record(graph, id).map(|t| (id, t)).map_err(Refusal)
            });
            let (id, types) = match inferred {
                Ok(x) => x,
                Err(r) => {
                    // Undo: the new nodes and constants are not used by anything yet.
                    for &id in added.iter().rev() {
                        let _ = graph.remove_node(id);
                    }
                    for &c in &created {
                        graph.remove_const(c);
                    }
                    return Err(r);
                }
            };
            for (slot, ty) in types.into_iter().enumerate() {
                if let Some(v) = graph.node_mut(id).outputs.get_mut(slot) {
                    v.ty = ty;
                }
            }
            qdqc_ir::infer::infer_quant(graph, id);
        }
        let mut touched = Vec::new();
        for (old, new) in self.replace {
            // The nodes whose input changes (not every reader of `new`: a shared value would make
            // repeated rewrites quadratic).
            touched.extend(graph.consumers(old).into_iter().map(|(n, _)| n));
            graph.replace_uses(old, resolve(new, &added));
        }
        // Remove what became dead; consumers before producers, whatever order the rule gave.
        let mut pending = self.remove;
        loop {
            let before = pending.len();
            pending.retain(|&id| !(graph.contains(id) && is_dead(graph, id) && graph.remove_node(id).is_ok()));
            if pending.len() == before {
                break;
            }
        }
        for (operand, name, is_output) in renames {
            let renamed = graph.rename(resolve(operand, &added), &name);
            assert!(renamed.is_ok() || !is_output, "checked: the old value of graph output '{name}' is removed");
        }
        touched.retain(|&n| graph.contains(n));
        Ok(Applied { new_nodes: added, touched })
    }

    /// Checks that the patch can be applied; returns the renames: a graph output keeps its name
    /// (or the patch is refused), and a value replaced by a new node's output whose producer goes
    /// away passes its name on when it can, so that names (and `qdqc verify`'s comparison of
    /// tensors by name) follow the values.
    fn check(&self, graph: &Graph) -> Result<Vec<(PatchOperand, String, bool)>, Refusal> {
        let mut renames = Vec::new();
        for &(old, new) in &self.replace {
            if !graph.contains(old.node) {
                return Err(Refusal::new("patch replaces a value of a removed node"));
            }
            let is_output = graph.is_output(Operand::Value(old));
            if !is_output && !matches!(new, PatchOperand::NewNode(..)) {
                continue;
            }
            let name = graph.value(old).name.clone();
            let keep = |why: &str| -> Result<(), Refusal> {
                match is_output {
                    true => Err(Refusal(format!("'{name}' is a graph output and {why}"))),
                    false => Ok(()),
                }
            };
            // A new node's output takes the name too (the rename happens once it exists).
            let o = match new {
                PatchOperand::Old(Operand::Value(o)) => Some(o),
                PatchOperand::NewNode(..) => None,
                _ => {
                    keep("the replacement is not a node output")?;
                    continue;
                }
            };
            if let Some(o) = o {
                if graph.node(o.node).op == Op::Input || graph.is_output(Operand::Value(o)) {
                    keep(&format!("'{}' cannot take its name", graph.value(o).name))?;
                    continue;
                }
            }
            if !self.remove.contains(&old.node) || o.is_some_and(|o| self.remove.contains(&o.node)) {
                keep("its producer is not removed")?;
                continue;
            }
            let slots = graph.node(old.node).outputs.len() as u32;
            let other_slot_used = graph.uses(old.node).any(|(_, e)| e.slot != old.slot)
                || (0..slots).any(|s| s != old.slot && graph.is_output(Operand::Value(Outlet::new(old.node, s))));
            let read_by_new = self.nodes.iter().any(|n| n.inputs.contains(&PatchOperand::Old(Operand::Value(old))));
            if other_slot_used || read_by_new || renames.iter().any(|(r, _, _)| *r == new) {
                keep("its producer stays")?;
                continue;
            }
            renames.push((new, name, is_output));
        }
        if let Some(&id) = self.remove.iter().find(|&&id| !graph.contains(id)) {
            return Err(Refusal(format!("patch removes a node that does not exist ({id:?})")));
        }
        Ok(renames)
    }
}

fn is_dead(graph: &Graph, id: NodeId) -> bool {
    graph.uses(id).next().is_none() && !graph.feeds_output(id) && graph.node(id).op != Op::Input
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_ir::text::parse;

    #[test]
    fn patterns_parse_and_print_back() {
        let text = "(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)";
        let p = Pattern::parse(text).unwrap();
        assert_eq!(p.to_string(), text);
        assert_eq!(p.root_op(), Some(&Op::QuantizeLinear));
        assert_eq!(Pattern::parse("  (Identity\n ?x ) ").unwrap().to_string(), "(Identity ?x)");
        let err = |t: &str| Pattern::parse(t).unwrap_err().msg;
        assert_eq!(err("?x"), "the root must be an op application, not a variable");
        assert_eq!(err("(Frobnicate ?x)"), "unknown op `Frobnicate`");
        assert_eq!(err("(Relu ?x"), "missing `)`");
        assert_eq!(err("(Relu ?x))"), "unexpected `)` after the pattern");
        assert_eq!(err("(Relu x)"), "expected `(` or a `?variable`, found `x`");
        assert_eq!(err("(?x)"), "expected an op name after `(`, found `?x`");
        assert_eq!(err(""), "unexpected end of the pattern");
    }

    const G: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %r = QuantizeLinear(%d, %s)
  %y = Add(%x, %x)
  output %r
  output %y
}
"#;

    #[test]
    fn matcher_follows_producers_and_binds_operands() {
        let g = parse(G).unwrap();
        let node = |name: &str| match g.lookup(name) {
            Some(Operand::Value(o)) => o.node,
            _ => panic!(),
        };
        let p = Pattern::parse("(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)").unwrap();
        let m = match_at(&g, &p, node("r")).unwrap();
        assert_eq!(m.nodes[..], [node("r"), node("d")]);
        assert_eq!(m.get("q"), g.lookup("q").unwrap());
        assert_eq!(m.get("s1"), g.lookup("s").unwrap());
        assert_eq!(m.get("z2"), Operand::None, "an omitted input binds None");
        assert!(!m.interior_used_elsewhere(&g));
        assert!(match_at(&g, &p, node("q")).is_none(), "input of q is not produced by a DQ");
        // A repeated variable must bind the same operand.
        let same = Pattern::parse("(Add ?a ?a)").unwrap();
        assert!(match_at(&g, &same, node("y")).is_some());
        let two = Pattern::parse("(QuantizeLinear (DequantizeLinear ?q ?s ?z) ?s ?z)").unwrap();
        assert!(match_at(&g, &two, node("r")).is_none(), "z is bound to %z, then to nothing");
        // Extra non-omitted inputs do not match a shorter pattern.
        assert!(match_at(&g, &Pattern::parse("(Add ?a)").unwrap(), node("y")).is_none());
    }

    #[test]
    fn a_patch_that_fails_its_check_changes_nothing() {
        let mut g = parse(G).unwrap();
        let before = qdqc_ir::text::print(&g);
        let Some(Operand::Value(r)) = g.lookup("r") else { panic!() };
        let Some(Operand::Value(x)) = g.lookup("x") else { panic!() };
        let mut p = Patch::new();
        p.replace(r, Operand::Value(x));
        p.remove(r.node);
        let err = p.apply(&mut g).unwrap_err();
        assert_eq!(err.0, "'r' is a graph output and 'x' cannot take its name");
        assert_eq!(qdqc_ir::text::print(&g), before);
    }
}
