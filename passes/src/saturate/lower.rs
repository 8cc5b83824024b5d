//! Lowering the IR graph into the e-graph, and the bookkeeping that lets the extraction be
//! rebuilt into a graph that keeps what no rule rewrote (value names, node order).

use super::lang::{ConstSource, EGraph, QNode, Template, Types};
use egg::Id;
use qdqc_ir::{Graph, NodeId, Op, Operand, Outlet, TensorType};
use rustc_hash::FxHashMap as HashMap;

/// The e-graph of a graph and what the rebuild needs to know about its e-classes.
pub struct Lowered {
    pub egraph: EGraph,
    /// The e-class of each graph output, in order.
    pub outputs: Vec<Id>,
    /// The e-class of every original value.
    pub values: HashMap<Outlet, Id>,
    /// Value names: (e-class, name, whether the name is an original value's), in creation order.
    pub names: Vec<(Id, String, bool)>,
    /// Order keys (export order) of e-classes: an original node's key, or the key of the node a
    /// rewrite replaced.
    pub orders: Vec<(Id, u64)>,
    /// The e-class of an omitted input.
    pub omitted: Id,
    /// The e-node of every original op (equal ops share one).
    pub original_ops: Vec<QNode>,
    /// Per graph output, the e-node of its original producer (a single-output op).
    pub output_producers: Vec<Option<QNode>>,
}

/// Adds an e-node whose output types are `types` (for an op; leaves know their own).
pub fn add(egraph: &mut EGraph, node: QNode, types: Vec<Option<TensorType>>) -> Id {
    egraph.analysis.pending = Some(types);
    let id = egraph.add(node);
    egraph.analysis.pending = None;
    id
}

/// The template of a node.
pub fn template_of(graph: &Graph, id: NodeId) -> Template {
    let n = graph.node(id);
    Template { op: n.op.clone(), attrs: n.attrs.clone(), proto: n.meta.to_proto(), n_outputs: n.outputs.len() }
}

/// Adds an op e-node for a node with output types `types`; returns the e-class of each output
/// (the op's class for a single output, `Get` projections of the tuple class otherwise) and the
/// op's own e-class.
pub fn add_op(egraph: &mut EGraph, tmpl: u32, args: Vec<Id>, types: Vec<Option<TensorType>>) -> (Vec<Id>, Id) {
    let n = types.len();
    let id = add(egraph, QNode::Op { tmpl, args: args.into_boxed_slice() }, types);
    if n == 1 {
        return (vec![id], id);
    }
    let outs = (0..n as u32).map(|slot| add(egraph, QNode::Get { slot, tuple: [id] }, vec![])).collect();
    (outs, id)
}

/// The e-class of an operand: a lowered value, the omitted input, or its constant (interned once).
fn operand_class(
    graph: &Graph,
    egraph: &mut EGraph,
    values: &HashMap<Outlet, Id>,
    consts: &mut HashMap<qdqc_ir::ConstId, Id>,
    omitted: Id,
    operand: Operand,
) -> Id {
    match operand {
        Operand::Value(o) => values[&o],
        Operand::None => omitted,
        Operand::Const(c) => *consts.entry(c).or_insert_with(|| {
            let k = graph.constant(c);
            let k = egraph.analysis.tables.constant(k.tensor(), ConstSource::Original(c), k.ty());
            egraph.add(QNode::Const(k))
        }),
    }
}

/// Lowers `graph`. Fails (for a fallback to greedy) on what the engine does not model.
pub fn lower(graph: &Graph) -> Result<Lowered, String> {
    let mut egraph = EGraph::new(Types::default());
    let omitted = egraph.add(QNode::Omitted);
    let mut values: HashMap<Outlet, Id> = HashMap::default();
    let mut names = Vec::new();
    let mut orders = Vec::new();
    let mut consts: HashMap<qdqc_ir::ConstId, Id> = HashMap::default();
    for (i, &id) in graph.inputs.iter().enumerate() {
        let v = &graph.node(id).outputs[0];
        egraph.analysis.tables.input_types.push(v.ty.clone());
        let c = egraph.add(QNode::Input(i as u32));
        values.insert(Outlet::new(id, 0), c);
        names.push((c, v.name.clone(), true));
    }
    let order = graph.topo_order().map_err(|e| e.to_string())?;
    let mut original_ops = Vec::with_capacity(order.len());
    let mut op_of: HashMap<qdqc_ir::NodeId, usize> = HashMap::default();
    for id in order {
        let node = graph.node(id);
        if !node.captures().is_empty() {
            return Err(format!("node {} ({}) has a subgraph that reads outer values", node.label(), node.op));
        }
        if node.op == Op::Input {
            continue;
        }
        let args = node
            .inputs()
            .iter()
            .map(|&o| operand_class(graph, &mut egraph, &values, &mut consts, omitted, o))
            .collect();
        let tmpl = egraph.analysis.tables.template(template_of(graph, id));
        let types = node.outputs.iter().map(|v| v.ty.clone()).collect();
        let (outs, op_class) = add_op(&mut egraph, tmpl, args, types);
        let enode = egraph[op_class].nodes.iter().find(|n| matches!(n, QNode::Op { tmpl: t, .. } if *t == tmpl));
        op_of.insert(id, original_ops.len());
        original_ops.push(enode.cloned().expect("just added"));
        orders.push((op_class, node.order()));
        for (slot, c) in outs.into_iter().enumerate() {
            values.insert(Outlet::new(id, slot as u32), c);
            let name = &node.outputs[slot].name;
            if !name.is_empty() {
                names.push((c, name.clone(), true));
            }
            orders.push((c, node.order()));
        }
    }
    let outputs = graph
        .outputs()
        .iter()
        .map(|o| operand_class(graph, &mut egraph, &values, &mut consts, omitted, o.operand))
        .collect();
    let output_producers = graph
        .outputs()
        .iter()
        .map(|o| match o.operand {
            Operand::Value(v) if graph.node(v.node).outputs.len() == 1 => {
                op_of.get(&v.node).map(|&i| original_ops[i].clone())
            }
            _ => None,
        })
        .collect();
    egraph.rebuild();
    Ok(Lowered { egraph, outputs, values, names, orders, omitted, original_ops, output_producers })
}
