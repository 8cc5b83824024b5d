//! What a pass is: the [`Pass`] trait, the remarks passes make, their errors, and what they
//! compile for ([`Config`]: the target and the approximations allowed).

use qdqc_ir::{Graph, GraphError};
use std::collections::BTreeSet;

/// A transformation of the graph. Returns how many changes it made (0 = nothing to do), which is
/// how the manager detects convergence (node counts would miss rewrites that keep the count).
pub trait Pass {
    /// The name used in `--passes`, remarks and diffs.
    fn name(&self) -> &'static str;
    /// Runs the pass to its own fixed point; why rules did not fire goes to `remarks`.
    fn run(&self, graph: &mut Graph, remarks: &mut Remarks) -> Result<usize, PassError>;
    /// Runs the pass within a [`crate::PassManager`] pipeline, which repeats until a repetition changes
    /// nothing: an iterative pass may take one step towards its fixed point (and report remarks
    /// only from a step that changed nothing). By default, [`Pass::run`].
    fn run_once(&self, graph: &mut Graph, remarks: &mut Remarks) -> Result<usize, PassError> {
        self.run(graph, remarks)
    }
}

/// What a remark tells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RemarkKind {
    /// Why a rule did not fire.
    #[default]
    Missed,
    /// A rule fired as an approximation the compile allows (`--approx`).
    Approximation,
}

/// Why a rule did not fire at a node, or which approximation it made there. Ordered and
/// deduplicated in [`Remarks`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Remark {
    /// (Pass and rule names are static: a compile of a large model makes tens of thousands of
    /// remarks.)
    pub pass: &'static str,
    pub rule: &'static str,
    /// The node's name, or the value it produces when it has none ([`qdqc_ir::Node::ident`]).
    pub node: String,
    pub op: String,
    pub reason: String,
    pub kind: RemarkKind,
}

impl std::fmt::Display for Remark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let esc = qdqc_ir::escape;
        write!(f, "{}: {} '{}': {}", self.rule, self.op, esc(&self.node), esc(&self.reason))
    }
}

/// Remarks of a run: deduplicated, in a deterministic order.
pub type Remarks = BTreeSet<Remark>;

/// A rewrite that computes close to, not exactly, what the QDQ model computes: off by default,
/// allowed by name with `--approx NAME` (or all with `--approx all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approximation {
    pub name: &'static str,
    /// What it rewrites.
    pub what: &'static str,
    /// Its worst-case error against the exactly rounded result of the QDQ model.
    pub worst: &'static str,
}

/// Every approximation a rule may make.
pub const APPROXIMATIONS: &[Approximation] = &[
    Approximation {
        name: "bn-as-conv",
        what: "DQ→BatchNormalization→Q as a depthwise 1×1 QLinearConv where a channel has no exact form (weight ±127)",
        worst: "1 output step (the bias rounds at the weight's step; refused beyond half a step)",
    },
    Approximation {
        name: "bias-int32",
        what: "a float bias of a fused Conv/MatMul/Gemm rounded to int32 at input scale × weight scale",
        worst: "1 output step (refused when the rounding moves the output by half a step or more)",
    },
    Approximation {
        name: "fold-bn-qdq",
        what: "a BatchNormalization folded through the quantizer's own Q→DQ into the Conv before it",
        worst: "the dropped rounding, half an intermediate step times the BN's scale, and its saturation",
    },
    Approximation {
        name: "qlinear-add-mul",
        what: "QLinearAdd/QLinearMul where onnxruntime's float arithmetic misses the exact rounding",
        worst: "1 output step",
    },
    Approximation {
        name: "qlinear-lookup",
        what: "QLinearSigmoid/QLinearLeakyRelu/QLinearConcat whose 256-entry f32 table misses the exact rounding",
        worst: "1 output step",
    },
    Approximation {
        name: "qlinear-softmax",
        what: "Softmax as com.microsoft QLinearSoftmax, which multiplies by floor(1/y_scale)",
        worst: "1 output step",
    },
];

/// Which approximations a compile allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Approx {
    /// None: every rewrite is exact (the default).
    #[default]
    None,
    /// These, by name.
    Only(BTreeSet<&'static str>),
    /// Every one.
    All,
}

impl Approx {
    /// `all`, `none`, or comma-separated names of [`APPROXIMATIONS`].
    pub fn parse(spec: &str) -> Result<Approx, PassError> {
        match spec.trim() {
            "all" => return Ok(Approx::All),
            "none" => return Ok(Approx::None),
            _ => {}
        }
        let mut names = BTreeSet::new();
        for n in spec.split(',').map(str::trim) {
            let known = APPROXIMATIONS.iter().find(|a| a.name == n).ok_or_else(|| PassError::UnknownApprox {
                name: n.to_string(),
                known: APPROXIMATIONS.iter().map(|a| a.name).chain(["all"]).collect::<Vec<_>>().join(", "),
            })?;
            names.insert(known.name);
        }
        Ok(Approx::Only(names))
    }

    pub fn allows(&self, name: &str) -> bool {
        match self {
            Approx::None => false,
            Approx::Only(names) => names.contains(name),
            Approx::All => true,
        }
    }
}

/// What a pipeline compiles for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub target: Target,
    pub approx: Approx,
    /// The onnxruntime graph optimization level the output will run at (`--target ort`): which
    /// level of the measured cost table decides between forms.
    pub ort_level: OrtLevel,
}

/// An onnxruntime graph optimization level a user may run at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OrtLevel {
    /// ORT_ENABLE_ALL, onnxruntime's default.
    #[default]
    All,
    /// ORT_DISABLE_ALL.
    DisableAll,
}

impl OrtLevel {
    pub fn parse(s: &str) -> Option<OrtLevel> {
        match s {
            "all" => Some(OrtLevel::All),
            "disable" | "disable-all" => Some(OrtLevel::DisableAll),
            _ => None,
        }
    }
}

impl std::fmt::Display for OrtLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrtLevel::All => "all",
            OrtLevel::DisableAll => "disable",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("unknown pass '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("bad pass list '{spec}': give pass names separated by commas, 'none' alone, or +NAME/-NAME items that edit the -O level's pipeline")]
    BadList { spec: String },
    #[error("-{name}: the -{pipeline} pipeline has no pass '{name}'")]
    NotInPipeline { name: String, pipeline: String },
    #[error("unknown approximation '{name}' (known: {known})")]
    UnknownApprox { name: String, known: String },
    #[error("unknown pipeline '{name}' (known: O0, O2, O3)")]
    UnknownPipeline { name: String },
    #[error("after pass '{pass}': the graph is invalid: {error}")]
    Invalid { pass: &'static str, error: GraphError },
    #[error("pass '{pass}': {error}")]
    Failed { pass: &'static str, error: GraphError },
}

impl PassError {
    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            PassError::Invalid { error, .. } | PassError::Failed { error, .. } => error.node(),
            _ => None,
        }
    }
}

/// What the output may contain, as `qdqc compile --target` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Standard ONNX ops plus the com.microsoft ops onnxruntime runs (QLinearAdd, QGemm, ...).
    #[default]
    Ort,
    /// Standard ONNX ops only: what has no standard integer form stays a DQ→op→Q island.
    Onnx,
}

impl Target {
    pub const ALL: &'static [Target] = &[Target::Ort, Target::Onnx];

    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "ort" => Some(Target::Ort),
            "onnx" => Some(Target::Onnx),
            _ => None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Ort => "ort",
            Target::Onnx => "onnx",
        })
    }
}
