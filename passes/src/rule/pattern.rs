//! Patterns and matching.
//!
//! Pattern syntax (egg-compatible, so an e-graph engine can reuse the same strings):
//!
//! ```text
//! pattern := '(' OP ('@' NAME)? arg* ')'   OP: an op name, e.g. QuantizeLinear (any ai.onnx op)
//! arg     := '?' NAME                     binds any operand (constants and omitted inputs too)
//!          | '?' NAME '...'               binds every remaining input as a list (last only)
//!          | pattern
//! ```
//!
//! A nested pattern requires the operand to be output 0 of a node of that op; `@NAME` names that
//! node (`(Conv@conv ?x ?w ?b)`: [`Match::node`]`("conv")`). A variable used twice must bind the
//! same operand. Node inputs beyond the pattern's arguments must be omitted; arguments beyond the
//! node's inputs bind the omitted operand.

use qdqc_ir::{Graph, NodeId, Op, Operand};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// A parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `?x`. (The parser gives every `?x` of a pattern one `Arc`, so a match, which borrows
    /// the names, compares variables by pointer.)
    Var(Arc<str>),
    /// `?xs...`: the remaining inputs.
    Rest(Arc<str>),
    /// `(Op@name args...)`.
    Node { op: Op, name: Option<Arc<str>>, args: Vec<Pattern> },
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
        let p = parse_expr(&tokens, &mut pos, &mut Vec::new()).map_err(err)?;
        if pos != tokens.len() {
            return Err(err(format!("unexpected `{}` after the pattern", tokens[pos])));
        }
        if !matches!(p, Pattern::Node { .. }) {
            return Err(err("the root must be an op application, not a variable".into()));
        }
        Ok(p)
    }

    /// The op at the root (`None` for a variable).
    pub fn root_op(&self) -> Option<&Op> {
        match self {
            Pattern::Node { op, .. } => Some(op),
            _ => None,
        }
    }

    /// How many ops deep the pattern is (1 for `(Relu ?x)`).
    pub fn depth(&self) -> usize {
        match self {
            Pattern::Node { args, .. } => 1 + args.iter().map(Pattern::depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// The one `Arc` of a variable's name in the pattern being parsed (`names`: those seen so far).
fn intern(names: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    match names.iter().find(|n| &***n == name) {
        Some(n) => n.clone(),
        None => {
            names.push(name.into());
            names[names.len() - 1].clone()
        }
    }
}

fn parse_expr(tokens: &[&str], pos: &mut usize, names: &mut Vec<Arc<str>>) -> Result<Pattern, String> {
    let tok = *tokens.get(*pos).ok_or("unexpected end of the pattern")?;
    *pos += 1;
    match tok {
        "(" => {
            let head = *tokens.get(*pos).ok_or("expected an op name after `(`")?;
            if head == "(" || head == ")" || head.starts_with('?') {
                return Err(format!("expected an op name after `(`, found `{head}`"));
            }
            *pos += 1;
            let (name, bind) = match head.split_once('@') {
                Some((_, "")) => return Err(format!("`{head}`: a node name after `@` is missing")),
                Some((op, n)) => (op, Some(Arc::from(n))),
                None => (head, None),
            };
            let op = known_op(name).ok_or_else(|| format!("unknown op `{name}`"))?;
            let mut args = Vec::new();
            loop {
                match tokens.get(*pos) {
                    None => return Err("missing `)`".into()),
                    Some(&")") => {
                        *pos += 1;
                        if args.iter().rev().skip(1).any(|a| matches!(a, Pattern::Rest(_))) {
                            return Err("a `?rest...` argument must be the last".into());
                        }
                        return Ok(Pattern::Node { op, name: bind, args });
                    }
                    Some(_) => args.push(parse_expr(tokens, pos, names)?),
                }
            }
        }
        ")" => Err("unexpected `)`".into()),
        v if v.len() > 4 && v.starts_with('?') && v.ends_with("...") => Ok(Pattern::Rest(v[1..v.len() - 3].into())),
        v if v.len() > 1 && v.starts_with('?') && !v.ends_with('.') => Ok(Pattern::Var(intern(names, &v[1..]))),
        other => Err(format!("expected `(` or a `?variable`, found `{other}`")),
    }
}

/// An op by its bare name: one the IR models (of ai.onnx or com.microsoft), or else any other
/// ai.onnx operator, as an [`Op::Other`] matched by its name ([`Op::same`]). A name that is
/// neither is refused, so a misspelt op does not make a rule that never fires.
fn known_op(name: &str) -> Option<Op> {
    [qdqc_ir::op::ONNX_DOMAIN, qdqc_ir::op::MS_DOMAIN]
        .into_iter()
        .map(|d| Op::from_onnx(d, name))
        .find(|op| !matches!(op, Op::Other(_)))
        .or_else(|| qdqc_ir::validate::schema(name).map(|_| Op::other(qdqc_ir::op::ONNX_DOMAIN, name)))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Var(v) => write!(f, "?{v}"),
            Pattern::Rest(v) => write!(f, "?{v}..."),
            Pattern::Node { op, name, args } => {
                write!(f, "({}", op.name())?;
                if let Some(n) = name {
                    write!(f, "@{n}")?;
                }
                for a in args {
                    write!(f, " {a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A match of a pattern rooted at a node: the operands bound to the `?vars`, the nodes bound to
/// `@names`, and every matched node (root first, then nested patterns in pre-order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match<'p> {
    /// (Inline, and names borrowed from the pattern: every node of every sweep is matched
    /// against its op's patterns, so a match attempt allocates and counts nothing.)
    nodes: SmallVec<[NodeId; 6]>,
    named: SmallVec<[(&'p str, NodeId); 4]>,
    bindings: SmallVec<[(&'p str, Operand); 8]>,
    rest: Option<(&'p str, Vec<Operand>)>,
}

impl Match<'_> {
    pub fn root(&self) -> NodeId {
        self.nodes[0]
    }

    /// Every matched node, root first.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The node named `@name` (panics for a name the pattern does not have: a rule bug).
    pub fn node(&self, name: &str) -> NodeId {
        self.try_node(name).unwrap_or_else(|| panic!("pattern has no node @{name}"))
    }

    /// The node named `@name`, or `None` for a name the pattern does not have (a table whose
    /// patterns differ in a node, such as an optional activation).
    pub fn try_node(&self, name: &str) -> Option<NodeId> {
        self.named.iter().find(|(n, _)| &**n == name).map(|(_, id)| *id)
    }

    /// The operand bound to `?var` (panics for a variable the pattern does not have: a rule bug).
    pub fn get(&self, var: &str) -> Operand {
        self.try_get(var).unwrap_or_else(|| panic!("pattern has no variable ?{var}"))
    }

    /// The operand bound to `?var`, or `None` for a variable the pattern does not have.
    pub fn try_get(&self, var: &str) -> Option<Operand> {
        self.bindings.iter().find(|(v, _)| &**v == var).map(|(_, o)| *o)
    }

    /// The operands bound to `?var...` (panics for a list the pattern does not have).
    pub fn list(&self, var: &str) -> &[Operand] {
        match &self.rest {
            Some((v, ops)) if &**v == var => ops,
            _ => panic!("pattern has no list ?{var}..."),
        }
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
pub fn match_at<'p>(graph: &Graph, pattern: &'p Pattern, id: NodeId) -> Option<Match<'p>> {
    // Most attempts fail on an op below the root: find that out before building a `Match` (a
    // few hundred bytes, copied on its way out, for every attempt at every node of every sweep).
    if !ops_match(graph, pattern, id) {
        return None;
    }
    let mut m = Match { nodes: SmallVec::new(), named: SmallVec::new(), bindings: SmallVec::new(), rest: None };
    match_node(graph, pattern, id, &mut m).then_some(m)
}

/// Whether inputs past the pattern's arguments are all omitted (a `?rest...` takes them all).
fn no_extra_inputs(inputs: &[Operand], args: &[Pattern]) -> bool {
    matches!(args.last(), Some(Pattern::Rest(_))) || inputs.iter().skip(args.len()).all(|i| *i == Operand::None)
}

/// Whether the nodes under `id` have the pattern's ops and input counts (variables unchecked).
fn ops_match(graph: &Graph, pattern: &Pattern, id: NodeId) -> bool {
    let Pattern::Node { op, args, .. } = pattern else { return true };
    let node = graph.node(id);
    node.op.same(op)
        && no_extra_inputs(node.inputs(), args)
        && args.iter().enumerate().all(|(i, arg)| match (arg, node.input(i)) {
            (Pattern::Var(_) | Pattern::Rest(_), _) => true,
            (Pattern::Node { .. }, Operand::Value(o)) if o.slot == 0 => ops_match(graph, arg, o.node),
            (Pattern::Node { .. }, _) => false,
        })
}

fn match_node<'p>(graph: &Graph, pattern: &'p Pattern, id: NodeId, m: &mut Match<'p>) -> bool {
    let Pattern::Node { op, name, args } = pattern else { return false };
    let node = graph.node(id);
    if !node.op.same(op) || !no_extra_inputs(node.inputs(), args) {
        return false;
    }
    m.nodes.push(id);
    if let Some(n) = name {
        m.named.push((n, id));
    }
    args.iter().enumerate().all(|(i, arg)| match arg {
        Pattern::Var(v) => {
            let operand = node.input(i);
            match m.bindings.iter().find(|(b, _)| std::ptr::eq(*b, &**v)) {
                Some((_, bound)) => *bound == operand,
                None => {
                    m.bindings.push((v, operand));
                    true
                }
            }
        }
        Pattern::Rest(v) => {
            m.rest = Some((v, node.inputs().get(i..).unwrap_or_default().to_vec()));
            true
        }
        Pattern::Node { .. } => match node.input(i) {
            Operand::Value(o) if o.slot == 0 => match_node(graph, arg, o.node, m),
            _ => false,
        },
    })
}
