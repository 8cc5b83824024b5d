//! What a model must claim for qdqc to compile it: checked once after loading, before any pass.
//!
//! [`compilable`] checks, in this order, and reports the first problem:
//!
//! 1. the model imports the default domain (`""` or `"ai.onnx"`), at one version;
//! 2. every top-level node of the default domain is an operator that exists (and is not
//!    deprecated) at the imported opset, and for the ops qdqc models ([`crate::Op`]) every attribute
//!    exists at that opset, has the schema's type, and every required attribute is present;
//! 3. the default domain's opset is within [`MIN_OPSET`]..=[`MAX_OPSET`];
//! 4. the IR version is one qdqc writes correctly: [`MIN_IR_VERSION`] to
//!    [`crate::onnx::MAX_IR_VERSION`] (IR 3 must list every initializer as a graph input, which
//!    the constants passes add are not);
//! 5. com.microsoft, when imported, is at opset 1 (the only one onnxruntime defines);
//! 6. the graph has at least one output.
//!
//! Node checks (2) come before the range check (3) so that a node the opset cannot have is named
//! (QuantizeLinear at opset 7, a per-axis `axis` at opset 12) rather than only the opset.
//!
//! The schemas are onnx's own, generated into `schemas.rs` by `scripts/gen_onnx_schemas.py`.
//! Not checked: nodes inside subgraphs (If/Loop/Scan bodies) and model-local functions, which qdqc
//! passes through; the attributes of default-domain ops qdqc does not model; other domains.
//!
//! Why opsets 13 to 28: everything qdqc's rules emit exists from opset 13 on — per-axis
//! QuantizeLinear/DequantizeLinear (`axis`, opset 13; fold-bn writes per-channel weight DQs and
//! propagate remaps per-axis parameters), integer Max/Min/Clip, MaxPool and ReduceMax/Min on
//! int8/uint8 (opset 12), Pad on integers (11), QLinearConv/QLinearMatMul/ConvInteger/
//! MatMulInteger (10). 28 is the newest opset onnx 1.23 defines: the schemas of a newer one are
//! unknown to qdqc.

#[rustfmt::skip]
mod schemas;

use crate::attr;
use crate::graph::Node;
use crate::onnx::{Model, MAX_IR_VERSION};
use crate::op::{Op, OpKind, MS_DOMAIN};
use crate::proto::attribute_proto::AttributeType;

pub use schemas::{NEWEST_OPSET, ONNX_RELEASE};

/// The oldest ai.onnx opset qdqc compiles (see the module documentation).
pub const MIN_OPSET: i64 = 13;
/// The newest ai.onnx opset qdqc compiles: the newest its schemas know.
pub const MAX_OPSET: i64 = NEWEST_OPSET;
/// The oldest IR version qdqc compiles.
pub const MIN_IR_VERSION: i64 = 4;

/// One ai.onnx operator's schemas over the opsets.
pub struct Schema {
    pub op: &'static str,
    /// Each opset at which the op changed, oldest first.
    pub versions: &'static [Version],
}

/// An operator's schema from opset `since` on (until the next version).
pub struct Version {
    pub since: i64,
    /// This version removes the op (it does not exist from `since` on, unless a later version
    /// brings it back).
    pub deprecated: bool,
    /// The attributes, for the ops qdqc models (`None`: not checked).
    pub attrs: Option<&'static [Attr]>,
}

/// An attribute of a schema.
pub struct Attr {
    pub name: &'static str,
    pub ty: AttributeType,
    pub required: bool,
}

/// The ai.onnx schemas of `op` (`None`: no such ai.onnx operator).
pub fn schema(op: &str) -> Option<&'static Schema> {
    let i = schemas::SCHEMAS.binary_search_by(|s| s.op.cmp(op)).ok()?;
    Some(&schemas::SCHEMAS[i])
}

impl Schema {
    /// The version in force at `opset` (`None`: the op does not exist yet).
    pub fn at(&self, opset: i64) -> Option<&'static Version> {
        self.versions.iter().rev().find(|v| v.since <= opset)
    }
}

/// Why a model cannot be compiled. Displays as one line (without the file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A node is at fault: `node 'NAME' (Op): msg`.
    #[error("node {node} ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    /// The model as a whole.
    #[error("{0}")]
    Model(String),
}

impl Error {
    /// The node at fault, when one is, as messages name it: `'NAME'`, or `(producing 'VALUE')`
    /// for a node without a name.
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::Node { node, .. } => Some(node),
            Error::Model(_) => None,
        }
    }
}

const CONVERT: &str = "onnx.version_converter.convert_version(model";

/// Checks that qdqc can compile `model` (see the module documentation). `qdqc compile` runs it
/// after loading, before any pass; `show`, `stats`, `diff`, `run`, `verify` and a compile
/// without passes (`--passes none`, `-O0`, a lossless round trip) do not.
pub fn compilable(model: &Model) -> Result<(), Error> {
    let g = &model.graph;
    let defaults: Vec<i64> = model
        .meta
        .opset_import
        .iter()
        .filter(|o| matches!(o.domain.as_deref().unwrap_or(""), "" | "ai.onnx"))
        .map(|o| o.version.unwrap_or(0))
        .collect();
    let Some(&opset) = g.opsets.get("") else {
        return Err(Error::Model(format!(
            "the model imports no ai.onnx opset (opset_import has no entry for the domain ''): qdqc compiles \
             ai.onnx opsets {MIN_OPSET} to {MAX_OPSET}"
        )));
    };
    if defaults.iter().any(|&v| v != opset) {
        let list: Vec<String> = defaults.iter().map(i64::to_string).collect();
        return Err(Error::Model(format!("the model imports ai.onnx more than once, at opsets {}", list.join(", "))));
    }
    if opset <= MAX_OPSET {
        check_nodes(model, opset)?;
    }
    if opset < MIN_OPSET {
        return Err(Error::Model(format!(
            "ai.onnx opset {opset} is older than qdqc compiles ({MIN_OPSET} to {MAX_OPSET}): upgrade the model \
             with {CONVERT}, {MIN_OPSET})"
        )));
    }
    if opset > MAX_OPSET {
        return Err(Error::Model(format!(
            "ai.onnx opset {opset} is newer than qdqc knows ({MIN_OPSET} to {MAX_OPSET}, the newest of onnx \
             {ONNX_RELEASE}); {CONVERT}, {MAX_OPSET}) may convert it down"
        )));
    }
    let ir = model.meta.ir_version.unwrap_or(0);
    if ir < MIN_IR_VERSION {
        let what = if ir == 0 { "no IR version (ir_version is unset)".to_string() } else { format!("IR version {ir}") };
        return Err(Error::Model(format!(
            "the model has {what}: qdqc compiles IR versions {MIN_IR_VERSION} to {MAX_IR_VERSION} \
             (IR 3 lists every initializer as a graph input, which the constants qdqc adds are not)"
        )));
    }
    if let Some(&v) = g.opsets.get(MS_DOMAIN) {
        if v != 1 {
            return Err(Error::Model(format!(
                "the model imports {MS_DOMAIN} opset {v}: onnxruntime defines {MS_DOMAIN} opset 1 only"
            )));
        }
    }
    if g.outputs().is_empty() {
        return Err(Error::Model(
            "the graph has no outputs: nothing it computes can be read, so there is nothing to compile".into(),
        ));
    }
    Ok(())
}

/// Check 2 of the module documentation, for every top-level node.
fn check_nodes(model: &Model, opset: i64) -> Result<(), Error> {
    let g = &model.graph;
    // Per known op kind, the version in force (looked up once per kind, not per node).
    let mut known: Vec<Option<Result<&'static Version, String>>> = vec![None; OpKind::COUNT];
    for id in g.node_ids() {
        let n = g.node(id);
        if n.op == Op::Input || !matches!(n.domain().unwrap_or(""), "" | "ai.onnx") {
            continue;
        }
        let name = n.op.name();
        let found = match n.op {
            Op::Other(_) if is_local_function(model, name) => continue,
            Op::Other(_) => version_at(name, opset),
            _ => known[n.op.kind() as usize].get_or_insert_with(|| version_at(name, opset)).clone(),
        };
        let fail = |msg: String| Error::Node { node: n.label(), op: n.op.to_string(), msg };
        let version = found.map_err(fail)?;
        if let Some(attrs) = version.attrs {
            check_attrs(n, name, opset, version, attrs).map_err(fail)?;
        }
    }
    Ok(())
}

/// A model-local function of the default domain (ONNX allows none, but such a node is the
/// function's to define, not onnx's).
fn is_local_function(model: &Model, name: &str) -> bool {
    model
        .meta
        .functions
        .iter()
        .any(|f| f.name.as_deref() == Some(name) && matches!(f.domain.as_deref().unwrap_or(""), "" | "ai.onnx"))
}

/// The version of `op` in force at `opset`, or why there is none.
fn version_at(op: &str, opset: i64) -> Result<&'static Version, String> {
    let Some(s) = schema(op) else {
        return Err(format!("'{op}' is not an ai.onnx operator (at any opset onnx {ONNX_RELEASE} defines)"));
    };
    let first = s.versions[0].since;
    let Some(v) = s.at(opset) else {
        return Err(format!(
            "{op} does not exist at ai.onnx opset {opset} (ai.onnx has it from opset {first}): the model's \
             opset_import does not match its nodes"
        ));
    };
    if v.deprecated {
        let back = s.versions.iter().find(|w| w.since > opset && !w.deprecated);
        let again = back.map_or(String::new(), |w| format!(", and again from opset {}", w.since));
        return Err(format!("{op} is deprecated at ai.onnx opset {opset} (from opset {}{again})", v.since));
    }
    Ok(v)
}

fn type_name(t: AttributeType) -> String {
    t.as_str_name().to_string()
}

fn check_attrs(n: &Node, op: &str, opset: i64, version: &Version, attrs: &[Attr]) -> Result<(), String> {
    for a in n.attrs.iter() {
        let name = a.name.as_deref().unwrap_or("");
        let Some(spec) = attrs.iter().find(|s| s.name == name) else {
            return Err(unknown_attr(op, name, opset));
        };
        let kind = attr::kind(a);
        if kind == AttributeType::Undefined {
            return Err(format!(
                "attribute '{name}' has no type (ONNX requires one; {op} takes {})",
                type_name(spec.ty)
            ));
        }
        if kind != spec.ty {
            return Err(format!(
                "attribute '{name}' is {}, {op}-{} takes {}",
                type_name(kind),
                version.since,
                type_name(spec.ty)
            ));
        }
    }
    if let Some(missing) = attrs.iter().find(|s| s.required && n.attr(s.name).is_none()) {
        return Err(format!("attribute '{}' is required by {op}-{} and missing", missing.name, version.since));
    }
    Ok(())
}

/// Why attribute `name` is not in `op`'s schema at `opset`.
fn unknown_attr(op: &str, name: &str, opset: i64) -> String {
    let s = schema(op).expect("checked by the caller");
    let has = |v: &Version| v.attrs.is_some_and(|a| a.iter().any(|x| x.name == name));
    if let Some(later) = s.versions.iter().find(|v| v.since > opset && has(v)) {
        return format!(
            "attribute '{name}' does not exist at ai.onnx opset {opset} ({op} has it from opset {}): upgrade the \
             model with {CONVERT}, {})",
            later.since,
            later.since.max(MIN_OPSET)
        );
    }
    if let Some(i) = s.versions.iter().rposition(|v| v.since <= opset && has(v)) {
        let until = s.versions.get(i + 1).map_or(opset, |v| v.since);
        return format!(
            "attribute '{name}' does not exist at ai.onnx opset {opset} ({op} had it before opset {until})"
        );
    }
    format!("{op} has no attribute '{name}' (at any opset onnx {ONNX_RELEASE} defines)")
}

#[cfg(test)]
mod tests;
