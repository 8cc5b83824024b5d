//! Rebuilding a graph from an extraction. The result is the input graph (inputs, constants,
//! metadata, value_info, opsets) with its nodes replaced by the chosen e-nodes: an original
//! node's template keeps its name, attributes and doc string; a value keeps the name of an
//! original value of its e-class when it has one (graph outputs first), so that `qdqc verify`
//! compares what it can by name; nodes keep their order keys (a rewrite's nodes take the key of
//! the node they replaced).

use super::lang::{ConstEntry, ConstSource, EGraph, QNode};
use super::lower::Lowered;
use egg::{Id, Language};
use qdqc_ir::{Const, ConstOrigin, ConstValue, Graph, NodeId, Op, Operand, Outlet, Value};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Builds the graph that `choice` (the chosen e-node per canonical e-class) extracts.
pub fn rebuild(original: &Graph, low: &Lowered, choice: &HashMap<Id, QNode>) -> Result<Graph, String> {
    let eg: &EGraph = &low.egraph;
    let find = |id: Id| eg.find(id);
    let roots: Vec<Id> = low.outputs.iter().map(|&o| find(o)).collect();
    // The needed e-classes, children first (iterative post-order).
    let mut post: Vec<Id> = Vec::new();
    let mut state: HashMap<Id, bool> = HashMap::default(); // false: open, true: done
    for &r in &roots {
        let mut stack = vec![(r, false)];
        while let Some((c, expanded)) = stack.pop() {
            if expanded {
                state.insert(c, true);
                post.push(c);
                continue;
            }
            match state.get(&c) {
                Some(true) => continue,
                Some(false) => return Err("the extraction has a cycle".into()),
                None => {}
            }
            state.insert(c, false);
            stack.push((c, true));
            let node = choice.get(&c).ok_or("an e-class has no chosen e-node")?;
            for &ch in node.children().iter().rev() {
                let ch = find(ch);
                if state.get(&ch) == Some(&false) {
                    return Err("the extraction has a cycle".into());
                }
                stack.push((ch, false));
            }
        }
    }
    // Names: graph outputs first, then the e-class's first original value name, then hints.
    let mut records: HashMap<Id, Vec<(&str, bool)>> = HashMap::default();
    for (id, name, original) in &low.names {
        records.entry(find(*id)).or_default().push((name, *original));
    }
    let mut orders: HashMap<Id, u64> = HashMap::default();
    for &(id, order) in &low.orders {
        let o = orders.entry(find(id)).or_insert(order);
        *o = (*o).min(order);
    }
    let mut reserved: HashSet<String> = HashSet::default();
    for id in original.node_ids() {
        reserved.extend(original.node(id).outputs.iter().map(|v| v.name.clone()));
    }
    reserved.extend(original.constants().map(|(_, c)| c.name.clone()));
    reserved.extend(original.value_info_orphans.iter().cloned());
    reserved.extend(original.outputs().iter().map(|o| o.name().to_string()));
    // Graph inputs keep their names (their e-classes choose the input, which costs nothing).
    let mut taken: HashSet<String> =
        original.inputs.iter().map(|&i| original.node(i).outputs[0].name.clone()).collect();
    let fresh = |base: &str, taken: &mut HashSet<String>| -> String {
        let base = if base.is_empty() { "v" } else { base };
        let mut name = base.to_string();
        let mut i = 1;
        while reserved.contains(&name) || taken.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        taken.insert(name.clone());
        name
    };
    let mut name_of: HashMap<Id, String> = HashMap::default();
    let via_identity = needs_identity(original, low, choice);
    for (i, out) in original.outputs().iter().enumerate() {
        if !via_identity[i] && matches!(choice[&roots[i]], QNode::Op { .. } | QNode::Get { .. }) {
            name_of.insert(roots[i], out.name().to_string());
            taken.insert(out.name().to_string());
        }
    }
    let needs_name = |c: Id| matches!(choice.get(&c), Some(QNode::Op { .. } | QNode::Get { .. }));
    let name_class = |c: Id, name_of: &mut HashMap<Id, String>, taken: &mut HashSet<String>| {
        if name_of.contains_key(&c) {
            return;
        }
        let recs = records.get(&c).map(Vec::as_slice).unwrap_or(&[]);
        let orig = recs.iter().find(|(n, o)| *o && !n.is_empty() && !taken.contains(*n));
        let name = match orig {
            Some((n, _)) => {
                taken.insert(n.to_string());
                n.to_string()
            }
            None => {
                let hint = recs.iter().find(|(n, o)| !*o && !n.is_empty()).map_or("v", |(n, _)| n);
                fresh(hint, taken)
            }
        };
        name_of.insert(c, name);
    };
    for &c in &post {
        if needs_name(c)
            && !matches!(choice[&c], QNode::Op { ref tmpl, .. } if eg.analysis.tables.templates[*tmpl as usize].n_outputs > 1)
        {
            name_class(c, &mut name_of, &mut taken);
        }
    }
    // The graph: the original without its nodes.
    let mut g = original.clone();
    for i in 0..g.outputs().len() {
        g.set_output(i, Operand::None);
    }
    let mut order = original.topo_order().map_err(|e| e.to_string())?;
    order.reverse();
    for id in order {
        g.remove_node(id).map_err(|e| e.to_string())?;
    }
    let mut operand_of: HashMap<Id, Operand> = HashMap::default();
    let mut node_names: HashSet<String> = HashSet::default();
    let mut new_consts: HashMap<u32, Operand> = HashMap::default();
    for &c in &post {
        let operand = match &choice[&c] {
            QNode::Omitted => Operand::None,
            QNode::Input(k) => Operand::Value(Outlet::new(g.inputs[*k as usize], 0)),
            QNode::Const(k) => match &eg.analysis.tables.consts[*k as usize] {
                ConstEntry { source: ConstSource::Original(id), .. } => Operand::Const(*id),
                ConstEntry { source: ConstSource::New { base }, tensor, .. } => {
                    *new_consts.entry(*k).or_insert_with(|| {
                        let name = fresh(base, &mut taken);
                        let mut tensor = tensor.clone().expect("rules make dense constants");
                        tensor.proto.name = Some(name.clone());
                        let k = Const { name, value: ConstValue::Dense(tensor), origin: ConstOrigin::Initializer };
                        Operand::Const(g.add_const(k).expect("fresh name"))
                    })
                }
            },
            QNode::Get { slot, tuple } => match operand_of.get(&find(tuple[0])) {
                Some(Operand::Value(o)) => Operand::Value(Outlet::new(o.node, *slot)),
                _ => return Err("a projection of a missing tuple".into()),
            },
            QNode::Op { tmpl, args } => {
                let t = &eg.analysis.tables.templates[*tmpl as usize];
                let inputs: Vec<Operand> = args.iter().map(|&a| operand_of[&find(a)]).collect();
                let outputs: Vec<Value> = if t.n_outputs == 1 {
                    vec![Value { name: name_of[&c].clone(), ty: eg[c].data[0].clone(), ..Default::default() }]
                } else {
                    (0..t.n_outputs as u32)
                        .map(|slot| {
                            let ty = eg[c].data.get(slot as usize).cloned().flatten();
                            let name = match eg.lookup(QNode::Get { slot, tuple: [c] }) {
                                Some(gc) => {
                                    name_class(gc, &mut name_of, &mut taken);
                                    name_of[&gc].clone()
                                }
                                None => String::new(),
                            };
                            Value { name, ty, ..Default::default() }
                        })
                        .collect()
                };
                let mut proto = t.proto.clone();
                if let Some(n) = proto.name.as_deref().filter(|n| !n.is_empty()) {
                    if !node_names.insert(n.to_string()) {
                        let mut i = 1;
                        while node_names.contains(&format!("{n}_{i}")) {
                            i += 1;
                        }
                        let n = format!("{n}_{i}");
                        node_names.insert(n.clone());
                        proto.name = Some(n);
                    }
                }
                // A rule may have introduced a domain (com.microsoft), as `Patch::apply` does.
                g.import_domain_of(&t.op);
                let key = orders.get(&c).copied().unwrap_or(0);
                let id = g
                    .add_node_at(t.op.clone(), proto, t.attrs.clone(), inputs, outputs, key)
                    .map_err(|e| e.to_string())?;
                type_node(&mut g, id)?;
                Operand::Value(Outlet::new(id, 0))
            }
        };
        operand_of.insert(c, operand);
    }
    for (i, out) in original.outputs().iter().enumerate() {
        let operand = operand_of[&roots[i]];
        let operand = if via_identity[i] {
            let v = Value { name: out.name().to_string(), ty: g.operand_type(operand), ..Default::default() };
            let proto = qdqc_ir::proto::NodeProto::default();
            let id = g.add_node(Op::Identity, proto, vec![], vec![operand], vec![v]).map_err(|e| e.to_string())?;
            type_node(&mut g, id)?;
            Operand::Value(Outlet::new(id, 0))
        } else {
            operand
        };
        g.set_output(i, operand);
    }
    Ok(g)
}

/// Infers a new node's output types (keeping the e-class's type where inference knows nothing)
/// and quantization parameters.
fn type_node(g: &mut Graph, id: NodeId) -> Result<(), String> {
    let types =
        qdqc_ir::infer::infer_node(g, id).map_err(|e| format!("{} ({}): {e}", g.node(id).label(), g.node(id).op))?;
    for (slot, ty) in types.into_iter().enumerate() {
        if let (Some(ty), Some(v)) = (ty, g.node_mut(id).outputs.get_mut(slot)) {
            v.ty = Some(ty);
        }
    }
    qdqc_ir::infer::infer_quant(g, id);
    Ok(())
}

/// Which graph outputs need an `Identity` to carry their name: those whose e-class extracts to
/// a graph input or constant they were not already, and all but the first of outputs that share
/// an e-class.
pub fn needs_identity(original: &Graph, low: &Lowered, choice: &HashMap<Id, QNode>) -> Vec<bool> {
    let eg = &low.egraph;
    let mut named: HashSet<Id> = HashSet::default();
    let mut out = Vec::with_capacity(original.outputs().len());
    for (i, o) in original.outputs().iter().enumerate() {
        let c = eg.find(low.outputs[i]);
        let keep_as_is = match (&choice[&c], o.operand) {
            (QNode::Input(k), Operand::Value(v)) => original.inputs.get(*k as usize) == Some(&v.node),
            (QNode::Const(k), Operand::Const(cid)) => {
                matches!(eg.analysis.tables.consts[*k as usize].source, ConstSource::Original(o) if o == cid)
            }
            (QNode::Op { .. } | QNode::Get { .. }, _) => named.insert(c),
            _ => false,
        };
        out.push(!keep_as_is);
    }
    out
}
