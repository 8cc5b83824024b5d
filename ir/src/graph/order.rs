//! The topological order, and keeping it across edits.

use super::*;
use crate::op::Op;
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The topological order, kept across edits. Every pass sorts the graph, and most of its nodes
/// stay where they were: when the last sort found the order keys running with the edges (the
/// usual case, see [`Graph::topo_order`]), the next order is that sorted list with the nodes
/// added since merged in and the removed ones dropped, provided the edges added since run with
/// the keys too. Edits record what they add and remove (`&mut` access: no locking); the lock is
/// taken once per [`Graph::topo_order`], which may run on any thread.
#[derive(Debug, Default)]
pub(super) struct Topo(std::sync::Mutex<TopoState>);

#[derive(Clone, Debug, Default)]
pub(super) struct TopoState {
    /// The order of the current graph, when no edit happened since it was computed.
    order: Option<Vec<NodeId>>,
    /// The (order key, id) of every node but graph inputs, sorted, as of the last sort that
    /// found the keys running with every edge; `None` after a sort that did not.
    sorted: Option<Vec<(u64, NodeId)>>,
    /// Edits since `sorted`: nodes added and removed (graph inputs left out), edges added.
    added: Vec<(u64, NodeId)>,
    removed: Vec<(u64, NodeId)>,
    edges: Vec<(NodeId, NodeId)>,
}

impl Clone for Topo {
    fn clone(&self) -> Topo {
        Topo(std::sync::Mutex::new(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()))
    }
}

impl Topo {
    /// The state for an edit (exclusive access: no locking).
    pub(super) fn edit(&mut self) -> &mut TopoState {
        let t = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        t.order = None;
        t
    }

    pub(super) fn node_added(&mut self, key: u64, id: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.added.push((key, id));
        }
    }

    pub(super) fn node_removed(&mut self, key: u64, id: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.removed.push((key, id));
        }
    }

    pub(super) fn edge_added(&mut self, a: NodeId, b: NodeId) {
        let t = self.edit();
        if t.sorted.is_some() {
            t.edges.push((a, b));
        }
    }
}

impl Graph {
    /// Nodes (graph inputs excluded) in topological order, preferring the smallest order key
    /// among ready nodes. Errors on a cycle, naming a node on it.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut t = self.topo.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(order) = &t.order {
            return Ok(order.clone());
        }
        let key = |id: NodeId| (self.g[id].order, id);
        let live = |id: NodeId| self.g.contains_node(id);
        // The edits since the last sort keep the keys running with the edges when every edge
        // added since does (an edge recorded since may be gone, or its ends reused: checking it
        // anyway can only send us to the full sort).
        let merged = match t.sorted.take() {
            Some(sorted) if t.edges.iter().all(|&(a, b)| !(live(a) && live(b)) || key(a) < key(b)) => {
                let (mut added, mut removed) = (std::mem::take(&mut t.added), std::mem::take(&mut t.removed));
                added.sort_unstable();
                removed.sort_unstable();
                Some(merge_sorted(&sorted, &added, &removed))
            }
            _ => None,
        };
        let sorted = match merged {
            Some(sorted) => Some(sorted),
            None => self.sort_by_keys(),
        };
        let order = match &sorted {
            Some(sorted) => sorted.iter().map(|&(_, id)| id).collect(),
            None => self.sort()?,
        };
        *t = TopoState { order: Some(order.clone()), sorted, ..TopoState::default() };
        Ok(order)
    }

    /// The nodes sorted by key, when the keys run with every edge.
    pub(super) fn sort_by_keys(&self) -> Option<Vec<(u64, NodeId)>> {
        let key = |id: NodeId| (self.g[id].order, id);
        // Usually the keys already run with the edges (an imported model lists its nodes in
        // order, and a rewrite's nodes take the key of a node they replace); then the smallest
        // key is always ready, and the order is simply the nodes sorted by key. One pass over
        // the edges tells, and a sort is far cheaper than the heap walk of `sort`.
        if !self.g.edge_ends().all(|(a, b)| key(a) < key(b)) {
            return None;
        }
        // (Sized up front: grown by doubling, a million keys moved through fresh pages.)
        let mut out: Vec<(u64, NodeId)> = Vec::with_capacity(self.g.node_count());
        out.extend(self.g.node_indices().filter(|&id| self.g[id].op != Op::Input).map(key));
        out.sort_unstable();
        Some(out)
    }

    /// The topological order that prefers the smallest `(order, id)` among ready nodes, by a walk
    /// over the edges (for graphs whose keys do not run with the edges).
    pub(super) fn sort(&self) -> Result<Vec<NodeId>, GraphError> {
        // In-degrees by node index (a Vec, not a map: this runs in every sweep of every pass).
        let mut indeg: Vec<u32> = vec![0; self.g.node_bound()];
        let mut ready = BinaryHeap::new();
        for id in self.g.node_indices() {
            let n = self.g.edges_directed(id, Direction::Incoming).count() as u32;
            if n == 0 {
                ready.push(Reverse((self.g[id].order, id)));
            } else {
                indeg[id.index()] = n;
            }
        }
        let mut out = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse((_, id))) = ready.pop() {
            if self.g[id].op != Op::Input {
                out.push(id);
            }
            for e in self.g.edges_directed(id, Direction::Outgoing) {
                let d = &mut indeg[e.target().index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse((self.g[e.target()].order, e.target())));
                }
            }
        }
        let on_cycle = self.g.node_indices().filter(|id| indeg[id.index()] > 0).min_by_key(|&id| self.g[id].order);
        if let Some(id) = on_cycle {
            let n = &self.g[id];
            return Err(GraphError::Cycle { node: n.label(), op: n.op.to_string() });
        }
        Ok(out)
    }

    // ---- editing -------------------------------------------------------------------------
}

/// `(sorted ∪ added) − removed` as multisets of sorted lists (all three sorted): a node added
/// and removed since the last sort, or removed and added again under a reused index, counts
/// once per edit.
fn merge_sorted<T: Ord + Copy>(sorted: &[T], added: &[T], removed: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(sorted.len() + added.len());
    let (mut i, mut j, mut r) = (0, 0, 0);
    loop {
        let next = match (sorted.get(i), added.get(j)) {
            (Some(&a), Some(&b)) if b < a => {
                j += 1;
                b
            }
            (Some(&a), _) => {
                i += 1;
                a
            }
            (None, Some(&b)) => {
                j += 1;
                b
            }
            (None, None) => return out,
        };
        while removed.get(r).is_some_and(|&x| x < next) {
            r += 1;
        }
        if removed.get(r) == Some(&next) {
            r += 1;
        } else {
            out.push(next);
        }
    }
}

#[cfg(test)]
mod topo_order {
    use super::Topo;
    use crate::text::parse;
    use crate::{Graph, NodeMeta, Op, Operand, Outlet, Value};
    use proptest::prelude::*;

    /// The order computed from nothing (no cached order, no sorted list to merge into).
    fn from_scratch(g: &Graph) -> Result<Vec<crate::NodeId>, crate::GraphError> {
        let mut fresh = g.clone();
        fresh.topo = Topo::default();
        fresh.topo_order()
    }

    #[derive(Clone, Debug)]
    enum Edit {
        /// A node reading two values, keyed like an existing node (as rewrites do) or anew.
        Add { a: usize, b: usize, key_of: Option<usize> },
        /// Removes a node nothing reads.
        Remove(usize),
        /// Makes input 0 of a node read another value (possibly against the keys, or a cycle).
        Rewire { node: usize, to: usize },
        /// Computes the order (so that later edits merge into it).
        Order,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            4 => (any::<usize>(), any::<usize>(), proptest::option::of(any::<usize>()))
                .prop_map(|(a, b, key_of)| Edit::Add { a, b, key_of }),
            3 => any::<usize>().prop_map(Edit::Remove),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(node, to)| Edit::Rewire { node, to }),
            2 => Just(Edit::Order),
        ]
    }

    proptest! {
        /// After any edits, the order kept across them is the order computed from nothing.
        #[test]
        fn kept_order_equals_a_fresh_sort(edits in proptest::collection::vec(edit(), 1..120)) {
            let mut g = parse(
                "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %a = Relu(%x)\n  %b = Neg(%a)\n  %c = Add(%a, %b)\n  output %c\n}\n",
            )
            .unwrap();
            g.topo_order().unwrap();
            let mut n = 0;
            for e in edits {
                let ids: Vec<_> = g.node_ids().collect();
                let pick = |i: usize| ids[i % ids.len()];
                match e {
                    Edit::Add { a, b, key_of } => {
                        let inputs = vec![Operand::Value(Outlet::new(pick(a), 0)), Operand::Value(Outlet::new(pick(b), 0))];
                        let outputs = vec![Value::named(format!("n{n}"))];
                        n += 1;
                        match key_of {
                            Some(k) => {
                                let key = g.node(pick(k)).order();
                                g.add_node_at(Op::Add, NodeMeta::default(), vec![], inputs, outputs, key).unwrap();
                            }
                            None => {
                                g.add_node(Op::Add, NodeMeta::default(), vec![], inputs, outputs).unwrap();
                            }
                        }
                    }
                    Edit::Remove(i) => {
                        let id = pick(i);
                        if g.node(id).op != Op::Input && g.uses(id).next().is_none() && !g.feeds_output(id) {
                            g.remove_node(id).unwrap();
                        }
                    }
                    Edit::Rewire { node, to } => {
                        let id = pick(node);
                        if g.node(id).op != Op::Input {
                            g.set_input(id, 0, Operand::Value(Outlet::new(pick(to), 0)));
                        }
                    }
                    Edit::Order => {
                        prop_assert_eq!(g.topo_order(), from_scratch(&g));
                    }
                }
            }
            prop_assert_eq!(g.topo_order(), from_scratch(&g));
        }
    }
}
