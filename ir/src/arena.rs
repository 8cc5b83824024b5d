//! The node and edge store under [`crate::Graph`]: a directed multigraph whose edge lists are
//! doubly linked, so that removing an edge is O(1).
//!
//! petgraph's `StableGraph` links each node's outgoing and incoming edges in singly linked
//! lists, so removing one edge walks its producer's whole list: rewriting each of the n consumers
//! of one value costs O(n²) (measured: 40k consumers of one activation took 12 s in a single
//! pass). This store keeps `StableGraph`'s observable behavior — stable indices, a freed node
//! index reused last-in first-out, edge lists in newest-first order — so that passes, their
//! output and every snapshot stay the same, and adds the back links.

use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

pub type NodeId = NodeIndex<u32>;

const END: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId(u32);

/// (`repr(C, align(64))`: a node starts a cache line, so the fields it keeps first share one.)
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct NodeSlot<N> {
    weight: Option<N>,
    /// First edge of the outgoing (0) and incoming (1) lists.
    head: [u32; 2],
}

#[derive(Clone, Debug)]
struct EdgeSlot<E> {
    weight: Option<E>,
    /// Source and target.
    ends: [NodeId; 2],
    /// Next and previous edge in the source's outgoing list (0) and the target's incoming list (1).
    next: [u32; 2],
    prev: [u32; 2],
}

/// A reference to a live edge.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRef<'a, E> {
    id: EdgeId,
    ends: [NodeId; 2],
    weight: &'a E,
}

impl<'a, E> EdgeRef<'a, E> {
    pub fn id(&self) -> EdgeId {
        self.id
    }
    pub fn source(&self) -> NodeId {
        self.ends[0]
    }
    pub fn target(&self) -> NodeId {
        self.ends[1]
    }
    pub fn weight(&self) -> &'a E {
        self.weight
    }
}

#[derive(Clone, Debug)]
pub struct Arena<N, E> {
    nodes: Vec<NodeSlot<N>>,
    edges: Vec<EdgeSlot<E>>,
    free_nodes: Vec<u32>,
    free_edges: Vec<u32>,
    node_count: usize,
}

impl<N, E> Default for Arena<N, E> {
    fn default() -> Self {
        Arena { nodes: Vec::new(), edges: Vec::new(), free_nodes: Vec::new(), free_edges: Vec::new(), node_count: 0 }
    }
}

fn dir(d: Direction) -> usize {
    match d {
        Direction::Outgoing => 0,
        Direction::Incoming => 1,
    }
}

impl<N, E> Arena<N, E> {
    pub fn add_node(&mut self, weight: N) -> NodeId {
        self.node_count += 1;
        let slot = NodeSlot { weight: Some(weight), head: [END; 2] };
        match self.free_nodes.pop() {
            Some(i) => {
                self.nodes[i as usize] = slot;
                NodeId::new(i as usize)
            }
            None => {
                self.nodes.push(slot);
                NodeId::new(self.nodes.len() - 1)
            }
        }
    }

    /// Makes room for `nodes` more nodes and `edges` more edges, exactly (see [`crate::Graph::reserve`]).
    pub fn reserve(&mut self, nodes: usize, edges: usize) {
        self.nodes.reserve_exact(nodes);
        self.edges.reserve_exact(edges);
    }

    /// Removes a node and every edge from or to it.
    pub fn remove_node(&mut self, id: NodeId) -> Option<N> {
        self.nodes.get(id.index())?.weight.as_ref()?;
        for d in 0..2 {
            while self.nodes[id.index()].head[d] != END {
                let e = self.nodes[id.index()].head[d];
                self.remove_edge(EdgeId(e));
            }
        }
        self.node_count -= 1;
        self.free_nodes.push(id.index() as u32);
        self.nodes[id.index()].weight.take()
    }

    /// Adds an edge at the front of `a`'s outgoing and `b`'s incoming lists.
    pub fn add_edge(&mut self, a: NodeId, b: NodeId, weight: E) -> EdgeId {
        assert!(self.contains_node(a) && self.contains_node(b), "add_edge: a node does not exist");
        let next = [self.nodes[a.index()].head[0], self.nodes[b.index()].head[1]];
        let slot = EdgeSlot { weight: Some(weight), ends: [a, b], next, prev: [END; 2] };
        let e = match self.free_edges.pop() {
            Some(i) => {
                self.edges[i as usize] = slot;
                i
            }
            None => {
                self.edges.push(slot);
                (self.edges.len() - 1) as u32
            }
        };
        for (d, n) in [a, b].into_iter().enumerate() {
            if next[d] != END {
                self.edges[next[d] as usize].prev[d] = e;
            }
            self.nodes[n.index()].head[d] = e;
        }
        EdgeId(e)
    }

    /// Unlinks an edge from both lists in O(1).
    pub fn remove_edge(&mut self, id: EdgeId) -> Option<E> {
        let slot = self.edges.get_mut(id.0 as usize)?;
        let weight = slot.weight.take()?;
        let (ends, next, prev) = (slot.ends, slot.next, slot.prev);
        for d in 0..2 {
            match prev[d] {
                END => self.nodes[ends[d].index()].head[d] = next[d],
                p => self.edges[p as usize].next[d] = next[d],
            }
            if next[d] != END {
                self.edges[next[d] as usize].prev[d] = prev[d];
            }
        }
        self.free_edges.push(id.0);
        Some(weight)
    }

    pub fn get(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id.index())?.weight.as_ref()
    }

    pub fn contains_node(&self, id: NodeId) -> bool {
        self.nodes.get(id.index()).is_some_and(|s| s.weight.is_some())
    }

    /// Live nodes in index order.
    pub fn node_indices(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.iter().enumerate().filter(|(_, s)| s.weight.is_some()).map(|(i, _)| NodeId::new(i))
    }

    /// An upper bound of the node indices.
    pub fn node_bound(&self) -> usize {
        self.nodes.len()
    }

    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The source and target of every live edge, in edge index order.
    pub fn edge_ends(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.edges.iter().filter(|e| e.weight.is_some()).map(|e| (e.ends[0], e.ends[1]))
    }

    /// Whether any edge leaves (`Outgoing`) or enters (`Incoming`) a node. Reads the head of the
    /// list alone, not the node (a removed node has no edges).
    pub fn has_edges(&self, id: NodeId, d: Direction) -> bool {
        self.nodes.get(id.index()).is_some_and(|s| s.head[dir(d)] != END)
    }

    /// The edges leaving (`Outgoing`) or entering (`Incoming`) a node, newest first.
    pub fn edges_directed(&self, id: NodeId, d: Direction) -> impl Iterator<Item = EdgeRef<'_, E>> + '_ {
        let d = dir(d);
        let mut e = self.nodes.get(id.index()).filter(|s| s.weight.is_some()).map_or(END, |s| s.head[d]);
        std::iter::from_fn(move || {
            if e == END {
                return None;
            }
            let slot = &self.edges[e as usize];
            let r = EdgeRef {
                id: EdgeId(e),
                ends: slot.ends,
                weight: slot.weight.as_ref().expect("linked edges are live"),
            };
            e = slot.next[d];
            Some(r)
        })
    }
}

impl<N, E> std::ops::Index<NodeId> for Arena<N, E> {
    type Output = N;
    fn index(&self, id: NodeId) -> &N {
        self.nodes[id.index()].weight.as_ref().expect("node exists")
    }
}

impl<N, E> std::ops::IndexMut<NodeId> for Arena<N, E> {
    fn index_mut(&mut self, id: NodeId) -> &mut N {
        self.nodes[id.index()].weight.as_mut().expect("node exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petgraph::stable_graph::StableDiGraph;
    use petgraph::visit::EdgeRef as _;
    use proptest::prelude::*;

    /// Random edits applied to this store and to petgraph's `StableGraph` give the same node
    /// indices and the same edge lists in the same order.
    #[derive(Clone, Debug)]
    enum Edit {
        AddNode,
        RemoveNode(usize),
        AddEdge(usize, usize),
        RemoveEdge(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => Just(Edit::AddNode),
            1 => any::<usize>().prop_map(Edit::RemoveNode),
            4 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::AddEdge(a, b)),
            2 => (any::<usize>(), any::<usize>()).prop_map(|(n, k)| Edit::RemoveEdge(n, k)),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_stable_graph(edits in proptest::collection::vec(edit(), 1..200)) {
            let mut ours: Arena<u32, u32> = Arena::default();
            let mut theirs: StableDiGraph<u32, u32, u32> = StableDiGraph::default();
            let mut tag = 0;
            for e in edits {
                let live: Vec<NodeId> = theirs.node_indices().collect();
                tag += 1;
                match e {
                    Edit::AddNode => prop_assert_eq!(ours.add_node(tag), theirs.add_node(tag)),
                    Edit::RemoveNode(i) if !live.is_empty() => {
                        let n = live[i % live.len()];
                        prop_assert_eq!(ours.remove_node(n), theirs.remove_node(n));
                    }
                    Edit::AddEdge(a, b) if !live.is_empty() => {
                        let (a, b) = (live[a % live.len()], live[b % live.len()]);
                        ours.add_edge(a, b, tag);
                        theirs.add_edge(a, b, tag);
                    }
                    Edit::RemoveEdge(n, k) if !live.is_empty() => {
                        let n = live[n % live.len()];
                        let ids: Vec<_> = theirs.edges_directed(n, Direction::Outgoing).map(|e| e.id()).collect();
                        let ours_ids: Vec<_> = ours.edges_directed(n, Direction::Outgoing).map(|e| e.id()).collect();
                        if !ids.is_empty() {
                            prop_assert_eq!(ours.remove_edge(ours_ids[k % ids.len()]), theirs.remove_edge(ids[k % ids.len()]));
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(ours.node_indices().collect::<Vec<_>>(), theirs.node_indices().collect::<Vec<_>>());
                prop_assert_eq!(ours.node_count(), theirs.node_count());
                for n in theirs.node_indices() {
                    prop_assert_eq!(ours[n], theirs[n]);
                    for d in [Direction::Outgoing, Direction::Incoming] {
                        let a: Vec<_> = ours.edges_directed(n, d).map(|e| (e.source(), e.target(), *e.weight())).collect();
                        let b: Vec<_> = theirs.edges_directed(n, d).map(|e| (e.source(), e.target(), *e.weight())).collect();
                        prop_assert_eq!(a, b);
                    }
                }
            }
        }
    }

    /// Removing each of n consumers of one node is linear (it was quadratic with singly linked
    /// lists); this only checks the lists stay right at a size where that matters.
    #[test]
    fn many_consumers_of_one_node() {
        let mut g: Arena<u32, u32> = Arena::default();
        let src = g.add_node(0);
        let users: Vec<NodeId> = (1..=50_000).map(|i| g.add_node(i)).collect();
        for (i, &u) in users.iter().enumerate() {
            g.add_edge(src, u, i as u32);
        }
        for &u in users.iter().step_by(2) {
            g.remove_node(u);
        }
        let left: Vec<u32> = g.edges_directed(src, Direction::Outgoing).map(|e| *e.weight()).collect();
        assert_eq!(left.len(), 25_000);
        assert!(left.windows(2).all(|w| w[0] > w[1]), "newest first");
        assert!(left.iter().all(|w| w % 2 == 1));
    }
}
