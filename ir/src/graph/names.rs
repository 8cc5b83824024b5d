//! Names: every value and constant by name, and fresh names for new ones.

use super::*;

/// Every value and constant by name, without copies of the names: an entry is a name's hash and
/// the operand, whose own name is compared on lookup (a `HashMap<String, _>` would hold a second
/// copy of every name: an allocation and 56 bytes per value).
///
/// Removing a node leaves its entries behind (a hash probe per removed node, three cache misses
/// each, was a tenth of a large compile): an entry is live when its operand exists and is still
/// called by that name ([`Graph::indexed`]). Registering a name reuses a dead entry of the same
/// hash. FxHash: names are hashed on every rewrite, and the graph is not exposed to untrusted
/// hash-flooding input beyond the model being compiled. An entry keeps 32 bits of the hash
/// (16 bytes an entry, not 24: the table of a million-node graph is touched at random, page by
/// page, as it fills).
#[derive(Clone, Debug, Default)]
pub(super) struct NameIndex {
    table: hashbrown::HashTable<(u32, Operand)>,
}

impl NameIndex {
    /// The upper half of the name's FxHash (its better-mixed bits).
    pub(super) fn hash(name: &str) -> u32 {
        use std::hash::BuildHasher;
        (rustc_hash::FxBuildHasher.hash_one(name) >> 32) as u32
    }

    /// The table's hash of an entry: the 32 bits in both halves (hashbrown places an entry by
    /// the low bits and tags it with the top seven).
    pub(super) fn spread(h: u32) -> u64 {
        (u64::from(h) << 32) | u64::from(h)
    }

    /// The live operand called `name`.
    pub(super) fn live(&self, graph: &Graph, name: &str) -> Option<Operand> {
        let h = NameIndex::hash(name);
        self.table.find(NameIndex::spread(h), |&(eh, op)| eh == h && graph.indexed(name, op)).map(|&(_, op)| op)
    }

    /// Whether `op` is indexed under `name` (live or not).
    pub(super) fn has(&self, name: &str, op: Operand) -> bool {
        let h = NameIndex::hash(name);
        self.table.find(NameIndex::spread(h), |&(eh, o)| eh == h && o == op).is_some()
    }

    /// Indexes `op` under `name`, which no live operand has. Reuses a stale entry of that hash:
    /// one whose operand is gone or now has a name of another hash.
    pub(super) fn insert(&mut self, graph: &Graph, name: &str, op: Operand) {
        let h = NameIndex::hash(name);
        let stale = |o: Operand| graph.live_name(o).is_none_or(|n| NameIndex::hash(n) != h);
        match self.table.find_mut(NameIndex::spread(h), |&(eh, o)| eh == h && stale(o)) {
            Some(entry) => *entry = (h, op),
            None => {
                self.table.insert_unique(NameIndex::spread(h), (h, op), |&(eh, _)| NameIndex::spread(eh));
            }
        }
    }

    /// Drops the entry of `op` under `name`, if any.
    pub(super) fn remove(&mut self, name: &str, op: Operand) {
        let h = NameIndex::hash(name);
        if let Ok(entry) = self.table.find_entry(NameIndex::spread(h), |&(eh, o)| eh == h && o == op) {
            entry.remove();
        }
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |&(h, _)| NameIndex::spread(h));
    }
}

impl Graph {
    /// A name not used in the graph, based on `base`.
    pub fn fresh_name(&mut self, base: &str) -> String {
        let free = |n: &str| self.lookup(n).is_none() && !self.value_info_orphans.contains(n);
        if !base.is_empty() && free(base) {
            return base.to_string();
        }
        let start = self.name_hints.get(base).copied().unwrap_or(1);
        let (i, name) = (start..).map(|i| (i, format!("{base}_{i}"))).find(|(_, n)| free(n)).unwrap();
        match self.name_hints.get_mut(base) {
            Some(next) => *next = i + 1,
            None => {
                self.name_hints.insert(base.to_string(), i + 1);
            }
        }
        name
    }

    pub(super) fn register(&mut self, name: &str, op: Operand) -> Result<(), GraphError> {
        if name.is_empty() {
            return Ok(());
        }
        match self.names.live(self, name) {
            Some(prev) if prev == op => Ok(()),
            Some(_) => Err(GraphError::DuplicateName(name.to_string())),
            None => {
                let mut names = std::mem::take(&mut self.names);
                names.insert(self, name, op);
                self.names = names;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod name_index {
    use crate::text::parse;
    use crate::{GraphError, NodeMeta, Op, Operand, Outlet, Value};

    /// Removing a node leaves its entry in the index; lookups, fresh names, registration and the
    /// structural check must all see through it, also when the node's index is reused.
    #[test]
    fn entries_of_removed_nodes_are_invisible() {
        let text =
            "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %a = Relu(%x)\n  %b = Neg(%x)\n  output %b\n}\n";
        let mut g = parse(text).unwrap();
        let Some(Operand::Value(a)) = g.lookup("a") else { panic!() };
        g.remove_node(a.node).unwrap();
        assert_eq!(g.lookup("a"), None);
        assert_eq!(g.fresh_name("a"), "a", "the name is free again");
        g.verify_structure().unwrap();
        // The freed index is reused by a node with another name: "a" stays free.
        let x = g.lookup("x").unwrap();
        let c = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("c")]).unwrap();
        assert_eq!(c, a.node, "index reused");
        assert_eq!(g.lookup("a"), None);
        assert_eq!(g.lookup("c"), Some(Operand::Value(Outlet::new(c, 0))));
        // A new value may take the old name; a live one may not be defined twice.
        let d = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("a")]).unwrap();
        assert_eq!(g.lookup("a"), Some(Operand::Value(Outlet::new(d, 0))));
        let twice = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("a")]);
        assert_eq!(twice, Err(GraphError::DuplicateName("a".into())));
        g.verify_structure().unwrap();
        // A rename frees the old name and takes the new one.
        g.rename(Operand::Value(Outlet::new(d, 0)), "e").unwrap();
        assert_eq!((g.lookup("a"), g.lookup("e")), (None, Some(Operand::Value(Outlet::new(d, 0)))));
        g.verify_structure().unwrap();
    }

    /// A name defined and removed over and over takes one entry: registering reuses the stale one.
    #[test]
    fn stale_entries_are_reused() {
        let text = "graph \"g\" opset(ai.onnx=17) {\n  input %x: f32[4]\n  %b = Neg(%x)\n  output %b\n}\n";
        let mut g = parse(text).unwrap();
        let x = g.lookup("x").unwrap();
        let entries = g.names.table.len();
        for _ in 0..100 {
            let n = g.add_node(Op::Relu, NodeMeta::default(), vec![], vec![x], vec![Value::named("t")]).unwrap();
            assert_eq!(g.lookup("t"), Some(Operand::Value(Outlet::new(n, 0))));
            g.remove_node(n).unwrap();
        }
        assert_eq!(g.names.table.len(), entries + 1);
        assert_eq!(g.lookup("t"), None);
        g.verify_structure().unwrap();
    }
}
