//! Rule families, one file each, with a `rules()` table; [`crate::pipeline::PASSES`] says which
//! pass runs each family and in which pipelines. `common` holds what the families share.

pub mod bn_fold;
pub mod cleanup;
pub(crate) mod common;
pub mod elementwise;
pub(crate) mod exact;
pub mod fuse;
pub mod fuse_contrib;
pub mod propagate;

use qdqc_ir::{Graph, NodeId};

/// How refusals name a node, "Conv 'name'", formatted only when a refusal is (every fused node
/// passes the same checks, and most never need the label).
#[derive(Clone, Copy)]
pub(crate) struct Who<'a>(pub &'a Graph, pub NodeId);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.node(self.1);
        write!(f, "{} {}", n.op, n.label())
    }
}
