//! Patches: what a rule's builder returns. Nothing changes until [`Patch::apply`], which checks
//! everything before editing, so a rule that bails leaves the graph untouched.

use super::Refusal;
use qdqc_ir::proto::AttributeProto;
use qdqc_ir::{ConstId, Graph, NodeId, Op, Operand, Outlet, Tensor};
use std::sync::Arc;

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

impl PatchOperand {
    /// Output `slot` of the same new node (for multi-output nodes).
    pub fn slot(self, slot: u32) -> PatchOperand {
        match self {
            PatchOperand::NewNode(i, _) => PatchOperand::NewNode(i, slot),
            other => other,
        }
    }
}

/// A node a patch adds. Output names are bases made fresh when the patch is applied.
///
/// ```ignore
/// let y = p.add(PatchNode::new(Op::DequantizeLinear, [q, s, z]).attrs([attr::make_int("axis", 0)]).output("w_dq"));
/// ```
#[derive(Clone, Debug)]
pub struct PatchNode {
    pub op: Op,
    pub name: String,
    /// Shared with the node it is made from, when it keeps that node's attributes.
    pub attrs: Arc<[AttributeProto]>,
    pub inputs: Vec<PatchOperand>,
    pub outputs: Vec<String>,
}

impl PatchNode {
    /// A node of `op` reading `inputs`, without a name or attributes, with one output named
    /// after its op (see [`PatchNode::output`]).
    pub fn new<I: Into<PatchOperand>>(op: Op, inputs: impl IntoIterator<Item = I>) -> PatchNode {
        let outputs = vec![op.name().to_string()];
        PatchNode {
            op,
            name: String::new(),
            attrs: Arc::from([]),
            inputs: inputs.into_iter().map(Into::into).collect(),
            outputs,
        }
    }

    /// The node's name.
    pub fn named(mut self, name: impl Into<String>) -> PatchNode {
        self.name = name.into();
        self
    }

    /// The node's attributes (an `Arc` of another node's shares them).
    pub fn attrs(mut self, attrs: impl Into<Arc<[AttributeProto]>>) -> PatchNode {
        self.attrs = attrs.into();
        self
    }

    /// One output, named fresh from `base`.
    pub fn output(mut self, base: impl Into<String>) -> PatchNode {
        self.outputs = vec![base.into()];
        self
    }

    /// Several outputs, named fresh from `bases`.
    pub fn outputs(mut self, bases: Vec<String>) -> PatchNode {
        self.outputs = bases;
        self
    }
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

    /// Passes the new nodes' one-element quantization parameters as scalars
    /// (`rules::common::is_param_input`): the fused ops' schemas take a per-tensor scale
    /// or zero point as a scalar (onnxruntime refuses a `[1]` in QLinearAdd and QLinearMul: "Scale
    /// and Zero-point must be a scalar"), while exporters may write per-tensor parameters as
    /// `[1]`. Such an input gets a rank-0 copy of the constant (one per value: equal constants are
    /// shared); the original stays for the nodes that read it as it is.
    pub fn scalar_params(mut self, graph: &Graph) -> Patch {
        for n in 0..self.nodes.len() {
            for i in 0..self.nodes[n].inputs.len() {
                if !crate::rules::common::is_param_input(&self.nodes[n].op, i) {
                    continue;
                }
                let (tensor, base) = match self.nodes[n].inputs[i] {
                    PatchOperand::Old(o) => (graph.const_tensor(o), graph.operand_name(o)),
                    PatchOperand::NewConst(c) => (Some(&self.consts[c].1), self.consts[c].0.as_str()),
                    PatchOperand::NewNode(..) => (None, ""),
                };
                let Some(t) = tensor.filter(|t| !t.dims().is_empty() && t.dims().iter().all(|&d| d == 1)) else {
                    continue;
                };
                let (Ok(dtype), Ok(raw)) = (t.dtype(), t.raw()) else { continue };
                let scalar = Tensor::from_raw("", dtype, &[], raw.into_owned().into());
                let base = format!("{base}_scalar");
                self.nodes[n].inputs[i] = self.add_const(&base, scalar);
            }
        }
        self
    }

    /// Adds a node; returns its output 0 (`.slot(k)` of that is output `k`).
    pub fn add(&mut self, node: PatchNode) -> PatchOperand {
        self.nodes.push(node);
        PatchOperand::NewNode(self.nodes.len() - 1, 0)
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
            let inferred = added_node.map_err(|e| Refusal::new(e.to_string())).and_then(|id| {
                added.push(id);
                qdqc_ir::infer::infer_to_record(graph, id).map(|t| (id, t)).map_err(Refusal::new)
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
                    true => Err(Refusal::new(format!("'{name}' is a graph output and {why}"))),
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
            return Err(Refusal::new(format!("patch removes a node that does not exist ({id:?})")));
        }
        Ok(renames)
    }
}

fn is_dead(graph: &Graph, id: NodeId) -> bool {
    graph.uses(id).next().is_none() && !graph.feeds_output(id) && graph.node(id).op != Op::Input
}
