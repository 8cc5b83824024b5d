//! Unified diffs of text IR (`qdqc diff`); the implementation lives in `qdqc_passes::diff`, which
//! the pass manager also uses for `--diff`.

pub use qdqc_passes::diff::unified;
