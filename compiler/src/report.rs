//! What a compilation did, for people (`qdqc compile` prints [`Report::table`]) and for tools
//! (`qdqc compile --report FILE.json` writes [`Report::to_json`]): op counts before and after,
//! Q/DQ left, float and integer compute ops, what each pass changed, the remarks and the
//! verification result.

use crate::stats::Stats;
use crate::verify::VerifyReport;
use crate::Compiled;
use qdqc_ir::op::MS_DOMAIN;
use qdqc_ir::{Graph, Op};
use qdqc_passes::RemarkKind;

/// The approximation an approximation remark names: its reason reads "the approximation 'NAME'…".
fn approximation_name(reason: &str) -> String {
    reason.split('\'').nth(1).unwrap_or(reason).to_string()
}
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many remarks the table shows when the full list is not asked for.
pub const REMARKS_SHOWN: usize = 3;

/// One pass run of the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PassChange {
    pub pass: String,
    /// Which repetition of the pipeline (0-based).
    pub iteration: usize,
    pub changes: usize,
}

/// A remark, as the JSON report holds it (borrowed from the compilation: a large model has tens of
/// thousands).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemarkEntry<'a> {
    /// `missed` (why a rule did not fire) or `approximation` (a rewrite the compile allowed).
    pub kind: &'a str,
    pub pass: &'a str,
    pub rule: &'a str,
    pub op: &'a str,
    pub node: &'a str,
    pub reason: &'a str,
}

/// Before/after summary of one compilation.
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    /// [`crate::REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    pub before: Stats,
    pub after: Stats,
    /// Nodes in the com.microsoft domain, before and after.
    pub microsoft_ops_before: usize,
    pub microsoft_ops_after: usize,
    /// Every pass run, in order.
    pub passes: Vec<PassChange>,
    /// Changes per pass name, summed over the pipeline's repetitions.
    pub changes_by_pass: BTreeMap<String, usize>,
    /// The pipeline reached a fixed point.
    pub converged: bool,
    /// Remarks per rule, by rule name (approximations aside).
    pub remarks_by_rule: BTreeMap<&'a str, usize>,
    /// Approximations made, per approximation name (`--approx`); each is listed in `remarks`.
    pub approximations: BTreeMap<String, usize>,
    pub remarks: Vec<RemarkEntry<'a>>,
    /// The verification result, when the compilation was verified.
    pub verify: Option<VerifyReport>,
    /// The speed check against the input (`--check-speed`).
    pub speed: Option<crate::speed::SpeedReport>,
    /// The Q/DQ pairs calibration inserted (`--calibrate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibrate::Calibration>,
    /// What `--keep-float` left in float.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_float: Vec<crate::keep_float::Kept>,
    /// With calibration and verification: the compiled model against the input model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibrated_check: Option<crate::accuracy::AccuracyReport>,
}

/// Nodes in the com.microsoft domain (QLinearAdd, QGemm, …): the ops only onnxruntime runs. The
/// domain is the one export writes: the node's own spelling when it names the op, else the op's.
pub fn microsoft_ops(graph: &Graph) -> usize {
    graph
        .node_ids()
        .map(|id| graph.node(id))
        .filter(|n| n.op != Op::Input)
        .filter(|n| {
            // (A node without a domain in its proto is in its op's default one: no lookup of
            // the op by name, which is most of the work for most nodes.)
            let domain = match n.domain() {
                Some(spelled) if Op::from_onnx(spelled, n.op.name()) == n.op => spelled,
                _ => n.op.default_domain(),
            };
            domain == MS_DOMAIN
        })
        .count()
}

impl<'a> Report<'a> {
    pub fn new(c: &'a Compiled) -> Report<'a> {
        let passes: Vec<PassChange> = c
            .passes
            .iter()
            .map(|r| PassChange { pass: r.pass.to_string(), iteration: r.iteration, changes: r.changes })
            .collect();
        let mut changes_by_pass = BTreeMap::new();
        for p in &passes {
            *changes_by_pass.entry(p.pass.clone()).or_default() += p.changes;
        }
        let mut remarks_by_rule = BTreeMap::new();
        let mut approximations = BTreeMap::new();
        for r in &c.remarks {
            match r.kind {
                RemarkKind::Missed => *remarks_by_rule.entry(r.rule).or_default() += 1,
                RemarkKind::Approximation => *approximations.entry(approximation_name(&r.reason)).or_default() += 1,
            }
        }
        let remarks = c
            .remarks
            .iter()
            .map(|r| RemarkEntry {
                kind: match r.kind {
                    RemarkKind::Missed => "missed",
                    RemarkKind::Approximation => "approximation",
                },
                pass: r.pass,
                rule: r.rule,
                op: &r.op,
                node: &r.node,
                reason: &r.reason,
            })
            .collect();
        Report {
            schema_version: crate::REPORT_SCHEMA_VERSION,
            before: c.before.clone(),
            microsoft_ops_before: c.before_microsoft_ops,
            microsoft_ops_after: microsoft_ops(&c.model.graph),
            after: crate::stats::stats(&c.model.graph),
            passes,
            changes_by_pass,
            converged: c.converged,
            remarks_by_rule,
            approximations,
            remarks,
            verify: c.verify.clone(),
            speed: c.speed.clone(),
            calibration: c.calibration.clone(),
            kept_float: c.kept_float.clone(),
            calibrated_check: c.calibrated_check.clone(),
        }
    }

    /// The report as pretty JSON (with a trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    /// The before/after table: ops whose count changed, totals, Q/DQ, compute ops, and a remarks
    /// summary (counts per rule; with `all_remarks` false also the first [`REMARKS_SHOWN`] reasons).
    pub fn table(&self, all_remarks: bool, all_ops: bool) -> String {
        let (b, a) = (&self.before, &self.after);
        let mut rows: Vec<(String, usize, usize)> = Vec::new();
        let ops: std::collections::BTreeSet<&String> = b.ops.keys().chain(a.ops.keys()).collect();
        let mut unchanged = 0;
        for op in ops {
            let (nb, na) = (b.ops.get(op).copied().unwrap_or(0), a.ops.get(op).copied().unwrap_or(0));
            if nb != na || all_ops {
                rows.push((op.clone(), nb, na));
            } else {
                unchanged += 1;
            }
        }
        let op_rows = rows.len();
        rows.push(("nodes".into(), b.nodes, a.nodes));
        rows.push(("constants".into(), b.constants, a.constants));
        rows.push(("QuantizeLinear left".into(), b.quantize_linear, a.quantize_linear));
        rows.push(("DequantizeLinear left".into(), b.dequantize_linear, a.dequantize_linear));
        rows.push(("float compute ops".into(), b.float_compute, a.float_compute));
        rows.push(("float Conv/MatMul/Gemm".into(), b.float_mac, a.float_mac));
        rows.push(("integer compute ops".into(), b.integer_compute, a.integer_compute));
        rows.push(("com.microsoft ops".into(), self.microsoft_ops_before, self.microsoft_ops_after));
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(2);
        let mut s = format!("{:<width$}  {:>7}  {:>7}\n", "op", "before", "after");
        for (i, (name, nb, na)) in rows.iter().enumerate() {
            if i == op_rows {
                let _ = writeln!(s, "{}", "-".repeat(width + 18));
            }
            let _ = writeln!(s, "{name:<width$}  {nb:>7}  {na:>7}");
        }
        if unchanged > 0 {
            let _ =
                writeln!(s, "({unchanged} op types whose count did not change are not listed; --all-ops lists them)");
        }
        if !self.approximations.is_empty() {
            let list: Vec<String> = self.approximations.iter().map(|(n, k)| format!("{n} {k}")).collect();
            let _ = writeln!(s, "approximations made (--approx): {}", list.join(", "));
        }
        if self.remarks_by_rule.is_empty() {
            s.push_str("remarks by rule: none\n");
            return s;
        }
        let by_rule: Vec<String> = self.remarks_by_rule.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(s, "remarks by rule: {}", by_rule.join(", "));
        if !all_remarks {
            let missed: Vec<&RemarkEntry> = self.remarks.iter().filter(|r| r.kind == "missed").collect();
            for r in missed.iter().take(REMARKS_SHOWN) {
                let esc = qdqc_ir::escape;
                let _ = writeln!(s, "  {}: {}: {} '{}': {}", r.pass, r.rule, r.op, esc(r.node), esc(r.reason));
            }
            if missed.len() > REMARKS_SHOWN {
                let _ = writeln!(s, "  ... {} more (--remarks lists all)", missed.len() - REMARKS_SHOWN);
            }
        }
        s
    }
}
