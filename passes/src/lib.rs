//! qdqc passes: the [`Pass`] trait, the [`PassManager`] that runs named pipelines and checks the
//! graph after every pass, rewrite rules as data ([`rule`]), the greedy worklist driver
//! ([`driver`]), the table of passes and pipelines ([`mod@pipeline`]) and the passes themselves.
//!
//! # Adding a rule (one rule file, one test file)
//!
//! 1. In the rule family's file under `src/rules/` (e.g. `rules/cleanup.rs`), write the check
//!    and build functions and add one line to the family's table:
//!    `Rule::new("my-rule", "(QuantizeLinear (Relu@relu ?x) ?s ?z)", my_check, build_my_rule)`.
//!    The pattern is an s-expression over op names with `?vars`, `?lists...` and `@node` names
//!    (see [`rule`]); the check returns `Err(Refusal)` with a human reason, which becomes a
//!    remark, or what it decoded, which the build receives; the build returns a [`rule::Patch`]
//!    (new constants and nodes, replaced values, nodes to remove) that the driver applies
//!    atomically. Declare an approximation with `.approx("name")`, a rule only for some targets
//!    with `.only(..)`, and a rule that gives way to another with `.defers_to(&["other"])`.
//! 2. In the family's test file `tests/rules/FAMILY.qdq`, add a case: the pass to run, the IR
//!    text in, and the IR text and remarks out (`QDQC_BLESS=1 cargo test -p qdqc-passes --test
//!    rules` writes the expected part; see `tests/rules.rs`).
//!
//! A new family is a new file in `src/rules/` with a `rules()` table and one line in
//! [`pipeline::PASSES`].
//!
//! # Running passes on a graph
//!
//! ```
//! use qdqc_passes::PassManager;
//! let mut g = qdqc_ir::text::parse(
//!     "graph {
//!   input %x: f32[4]
//!   const %s: f32[] 0.5
//!   const %z: u8[] 128
//!   %q = QuantizeLinear(%x, %s, %z)
//!   %d = DequantizeLinear(%q, %s, %z)
//!   %r = QuantizeLinear(%d, %s, %z)
//!   %y = DequantizeLinear(%r, %s, %z)
//!   output %y
//! }",
//! )
//! .unwrap();
//! // `cleanup` removes the DequantizeLinear → QuantizeLinear pair with equal parameters.
//! let runs = PassManager::parse("cleanup,dce").unwrap().run(&mut g).unwrap();
//! assert!(runs.iter().any(|r| r.pass == "cleanup" && r.changes == 1));
//! assert_eq!(g.op_count(), 2);
//! ```
//!
//! A program's own pass implements [`Pass`] and joins a pipeline with
//! [`PassManager::with_pass`].

pub mod cost;
pub mod diff;
pub mod driver;
pub mod manager;
pub mod pass;
pub mod pipeline;
pub mod rule;
pub mod rules;
pub mod saturate;

mod dce;
mod dedup_consts;
mod int8_to_uint8;
mod unique_dq;

pub use dce::DeadCodeElimination;
pub use dedup_consts::DedupConsts;
pub use int8_to_uint8::Int8ToUint8;
pub use manager::{unfused_remarks, Instrument, PassManager, PassRun, PipelineRun, PrintAfter, MAX_ITERATIONS};
pub use pass::{
    Approx, Approximation, Config, OrtLevel, Pass, PassError, Remark, RemarkKind, Remarks, Target, APPROXIMATIONS,
};
pub use pipeline::{pipeline, registry, registry_for};
pub use unique_dq::UniqueDq;
