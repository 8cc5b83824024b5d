//! Rule families, one file each: a `rules()` table and a `pass()` that runs it with the greedy
//! driver.

pub mod bn_fold;
pub mod cleanup;
pub mod fuse;
pub mod fuse_contrib;
pub mod propagate;
mod qparams;

use qdqc_ir::{Graph, NodeId};

/// How refusals name a node, "Conv 'name'", formatted only when a refusal is (every fused node
/// passes the same checks: formatting its label up front was a measurable part of fusing).
#[derive(Clone, Copy)]
pub(crate) struct Who<'a>(pub &'a Graph, pub NodeId);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.node(self.1);
        write!(f, "{} {}", n.op, n.label())
    }
}

/// Test harness of the rule families: parses `text`, runs `pass` then dce (verifying after each),
/// and returns the printed graph followed by one `// remark ...` line per remark.
#[cfg(test)]
pub(crate) fn run_and_print(pass: &dyn crate::Pass, text: &str) -> String {
    let mut g = qdqc_ir::text::parse(text).unwrap();
    let mut remarks = crate::Remarks::new();
    pass.run(&mut g, &mut remarks).unwrap();
    g.verify().unwrap();
    crate::Pass::run(&crate::DeadCodeElimination, &mut g, &mut remarks).unwrap();
    g.verify().unwrap();
    let mut out = qdqc_ir::text::print(&g);
    for r in &remarks {
        out.push_str(&format!("// remark {r}\n"));
    }
    out
}
