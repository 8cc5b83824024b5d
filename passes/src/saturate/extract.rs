//! A DAG-aware extractor: chooses one e-node per needed e-class so that the extracted graph is
//! acyclic and the sum of the costs of the chosen e-nodes, **each counted once** however many
//! consumers share it, is low.
//!
//! egg's `Extractor` minimizes tree cost (a shared input is paid once per consumer, so costs grow
//! exponentially along residual networks and overflow), recurses (stack overflow on deep graphs)
//! and iterates to a fixed point. This one works in two linear-ish phases:
//!
//! 1. **Ranking** (Knuth's generalization of Dijkstra): an e-node becomes ready when all its
//!    children's e-classes are finalized; the ready e-node of least estimated cost finalizes its
//!    e-class, which gets the next *rank*. The estimate charges each child's estimate divided by
//!    the child's number of parent e-nodes (sharing is amortized, so estimates stay bounded by
//!    the graph's total cost). Every e-node chosen here has children of lower rank.
//! 2. **Improvement** on the exact DAG cost: with reference counts of the live e-classes, each
//!    live e-class with alternatives tries its other e-nodes and keeps a switch when the exact
//!    total decreases (switching adds what the new e-node makes live and frees what only the old
//!    one kept alive; a switch that does not pay is undone by the inverse operations). Rounds
//!    repeat while something improves (at most [`ROUNDS`]).
//!
//! Ranks are kept a topological order of the choice graph (each chosen e-node's children rank
//! lower). A switch to an e-node whose children all rank lower cannot close a cycle; otherwise a
//! bounded search from its higher-ranked children (skipping everything ranked below the e-class,
//! which cannot reach it) must prove that none reaches the e-class, and after the switch the
//! ranks of the e-class and its choosing parents are raised. No cycle can be extracted, and no
//! phase recurses.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Improvement rounds at most.
pub const ROUNDS: usize = 4;

/// An extraction problem: per e-class, its e-nodes as (cost, child e-classes).
#[derive(Clone, Debug, Default)]
pub struct Problem {
    pub classes: Vec<Vec<(f64, Vec<usize>)>>,
}

/// The chosen e-node per e-class (`None` for e-classes that are not reachable acyclically) and
/// the exact DAG cost of what the roots need.
#[derive(Clone, Debug)]
pub struct Extraction {
    pub choice: Vec<Option<usize>>,
    pub cost: f64,
}

/// Non-negative floats ordered by their bits.
fn key(c: f64) -> u64 {
    c.max(0.0).to_bits()
}

/// Solves `p` for `roots`. Errors when a root has no acyclic e-node.
pub fn extract(p: &Problem, roots: &[usize]) -> Result<Extraction, String> {
    let n = p.classes.len();
    // parents[c]: the e-nodes having c as a (distinct) child; pending: distinct children left.
    let mut parents: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n];
    let mut pending: Vec<Vec<u32>> = Vec::with_capacity(n);
    let mut heap = BinaryHeap::new();
    for (c, nodes) in p.classes.iter().enumerate() {
        let mut pend = Vec::with_capacity(nodes.len());
        for (i, (cost, children)) in nodes.iter().enumerate() {
            let mut distinct = children.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for &ch in &distinct {
                parents[ch].push((c as u32, i as u32));
            }
            if distinct.is_empty() {
                heap.push(Reverse((key(*cost), c as u32, i as u32)));
            }
            pend.push(distinct.len() as u32);
        }
        pending.push(pend);
    }
    let share: Vec<f64> = parents.iter().map(|ps| ps.len().max(1) as f64).collect();
    let mut estimate = vec![0.0f64; n];
    let mut rank = vec![u32::MAX; n];
    let mut choice: Vec<Option<usize>> = vec![None; n];
    let mut next_rank = 0;
    while let Some(Reverse((_, c, i))) = heap.pop() {
        let c = c as usize;
        if rank[c] != u32::MAX {
            continue;
        }
        let (cost, children) = &p.classes[c][i as usize];
        estimate[c] = cost + children.iter().map(|&ch| estimate[ch] / share[ch]).sum::<f64>();
        rank[c] = next_rank;
        next_rank += 1;
        choice[c] = Some(i as usize);
        for &(pc, pi) in &parents[c] {
            let left = &mut pending[pc as usize][pi as usize];
            *left -= 1;
            if *left == 0 && rank[pc as usize] == u32::MAX {
                let (cost, children) = &p.classes[pc as usize][pi as usize];
                let e = cost + children.iter().map(|&ch| estimate[ch] / share[ch]).sum::<f64>();
                heap.push(Reverse((key(e), pc, pi)));
            }
        }
    }
    if let Some(&r) = roots.iter().find(|&&r| choice[r].is_none()) {
        return Err(format!("e-class {r} has no acyclic e-node"));
    }
    // Ranks with gaps, so that a switch can raise a few ranks without renumbering.
    let rank: Vec<u64> = rank.iter().map(|&r| if r == u32::MAX { u64::MAX } else { (r as u64 + 1) << 20 }).collect();
    let mut x = Refs { p, choice, rc: vec![0; n], stack: Vec::new(), rank, parents, seen: vec![0; n], epoch: 0 };
    let mut total = 0.0;
    for &r in roots {
        total += x.inc(r);
    }
    let mut order: Vec<usize> = (0..n).filter(|&c| p.classes[c].len() > 1 && x.rank[c] != u64::MAX).collect();
    order.sort_unstable_by_key(|&c| x.rank[c]);
    for _ in 0..ROUNDS {
        let mut improved = false;
        for &c in &order {
            for b in 0..p.classes[c].len() {
                let a = x.choice[c].expect("ranked");
                if x.rc[c] == 0 || b == a || !x.acyclic(c, b) {
                    continue;
                }
                let delta = x.switch(c, a, b);
                if delta < -1e-9 * total.abs().max(1.0) {
                    total += delta;
                    improved = true;
                    x.raise(c);
                } else {
                    x.switch(c, b, a);
                }
            }
        }
        if !improved {
            break;
        }
    }
    Ok(Extraction { choice: x.choice, cost: total })
}

/// Visits at most this many e-classes to prove that a switch creates no cycle.
const CYCLE_CHECK_BUDGET: usize = 4096;

/// Reference counts of the live e-classes under the current choice.
/// `rank` is a topological order of the choice graph (every chosen e-node's children rank lower).
struct Refs<'p> {
    p: &'p Problem,
    choice: Vec<Option<usize>>,
    rc: Vec<u32>,
    stack: Vec<usize>,
    rank: Vec<u64>,
    parents: Vec<Vec<(u32, u32)>>,
    seen: Vec<u32>,
    epoch: u32,
}

impl Refs<'_> {
    /// Whether choosing e-node `b` for `c` keeps the choice graph acyclic: every child ranks
    /// lower, or no child reaches `c` (a search that skips what ranks below `c`, which cannot).
    fn acyclic(&mut self, c: usize, b: usize) -> bool {
        let children = &self.p.classes[c][b].1;
        if children.iter().any(|&ch| self.rank[ch] == u64::MAX) {
            return false;
        }
        if children.iter().all(|&ch| self.rank[ch] < self.rank[c]) {
            return true;
        }
        self.epoch += 1;
        let mut stack: Vec<usize> = children.iter().copied().filter(|&ch| self.rank[ch] >= self.rank[c]).collect();
        let mut visits = 0;
        while let Some(x) = stack.pop() {
            if x == c || visits > CYCLE_CHECK_BUDGET {
                return false;
            }
            if self.seen[x] == self.epoch {
                continue;
            }
            self.seen[x] = self.epoch;
            visits += 1;
            stack.extend(self.node(x).1.iter().copied().filter(|&ch| self.rank[ch] >= self.rank[c]));
        }
        true
    }

    /// Restores the rank order after `c` chose an e-node with higher-ranked children: `c` and
    /// then its choosing parents move above them.
    fn raise(&mut self, c: usize) {
        let mut stack = vec![c];
        while let Some(x) = stack.pop() {
            let need = self.node(x).1.iter().map(|&ch| self.rank[ch] + 1).max().unwrap_or(0);
            if need <= self.rank[x] {
                continue;
            }
            self.rank[x] = need;
            for &(pc, pi) in &self.parents[x] {
                if self.choice[pc as usize] == Some(pi as usize) {
                    stack.push(pc as usize);
                }
            }
        }
    }

    fn node(&self, c: usize) -> &(f64, Vec<usize>) {
        &self.p.classes[c][self.choice[c].expect("live classes are ranked")]
    }

    /// References `c`; returns the cost of what became live.
    fn inc(&mut self, c: usize) -> f64 {
        let mut added = 0.0;
        self.stack.push(c);
        while let Some(c) = self.stack.pop() {
            self.rc[c] += 1;
            if self.rc[c] == 1 {
                let (cost, children) = self.node(c);
                added += cost;
                let children = children.clone();
                self.stack.extend(children);
            }
        }
        added
    }

    /// Drops a reference to `c`; returns the cost of what died.
    fn dec(&mut self, c: usize) -> f64 {
        let mut freed = 0.0;
        self.stack.push(c);
        while let Some(c) = self.stack.pop() {
            self.rc[c] -= 1;
            if self.rc[c] == 0 {
                let (cost, children) = self.node(c);
                freed += cost;
                let children = children.clone();
                self.stack.extend(children);
            }
        }
        freed
    }

    /// Switches live e-class `c` from e-node `a` to `b`; returns the change of the total cost.
    fn switch(&mut self, c: usize, a: usize, b: usize) -> f64 {
        let (ca, cb) = (self.p.classes[c][a].0, self.p.classes[c][b].0);
        self.choice[c] = Some(b);
        let mut delta = cb - ca;
        for &ch in &self.p.classes[c][b].1 {
            delta += self.inc(ch);
        }
        for &ch in &self.p.classes[c][a].1 {
            delta -= self.dec(ch);
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class 0 is a leaf input; class 1 an expensive shared computation; classes 2 and 3 are two
    /// consumers; class 4 the root, which can read (2, 3) or one costlier e-node of its own.
    #[test]
    fn a_shared_input_is_counted_once() {
        let p = Problem {
            classes: vec![
                vec![(0.0, vec![])],
                vec![(100.0, vec![0])],
                vec![(1.0, vec![1])],
                vec![(1.0, vec![1])],
                vec![(1.0, vec![2, 3]), (150.0, vec![0])],
            ],
        };
        let x = extract(&p, &[4]).unwrap();
        // Tree cost would charge class 1 twice (203 > 150); the DAG cost is 103.
        assert_eq!(x.choice[4], Some(0));
        assert_eq!(x.cost, 103.0);
    }

    #[test]
    fn a_cycle_is_never_picked() {
        // Class 1 ≡ class 2 through a cheap cycle (1 → 2 → 1); only class 1's e-node that reads
        // the input breaks it.
        let p = Problem {
            classes: vec![
                vec![(0.0, vec![])],
                vec![(0.0, vec![2]), (10.0, vec![0])],
                vec![(0.0, vec![1])],
                vec![(1.0, vec![2])],
            ],
        };
        let x = extract(&p, &[3]).unwrap();
        assert_eq!(x.choice[1], Some(1));
        assert_eq!(x.choice[2], Some(0));
        assert_eq!(x.cost, 11.0);
        let only_cycle = Problem { classes: vec![vec![(0.0, vec![1])], vec![(0.0, vec![0])]] };
        assert!(extract(&only_cycle, &[0]).is_err());
    }

    #[test]
    fn improvement_corrects_the_amortized_estimate() {
        // Class 2 reads the input (cost 2) or class 1 (cost 1 + 4). Class 1 has nine other
        // parents that no root needs, so ranking estimates 1 + 4/10 and picks it; the exact DAG
        // cost switches back to the cheaper e-node.
        let mut classes = vec![vec![(0.0, vec![])], vec![(4.0, vec![0])], vec![(2.0, vec![0]), (1.0, vec![1])]];
        classes.push(vec![(1.0, vec![2])]);
        classes.extend((0..9).map(|_| vec![(1.0, vec![1])]));
        let x = extract(&Problem { classes }, &[3]).unwrap();
        assert_eq!(x.choice[2], Some(0));
        assert_eq!(x.cost, 3.0);
    }

    #[test]
    fn deep_chains_do_not_recurse() {
        let n = 200_000;
        let mut classes = vec![vec![(0.0, vec![])]];
        for i in 1..n {
            classes.push(vec![(1.0, vec![i - 1]), (3.0, vec![i - 1])]);
        }
        let x = extract(&Problem { classes }, &[n - 1]).unwrap();
        assert_eq!(x.cost, (n - 1) as f64);
    }
}
