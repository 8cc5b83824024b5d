//! The [`PassManager`]: runs a list of passes to a fixed point, checking the graph after each
//! pass (or once at the end), with the instrumentation of `--print-after`, `--diff` and
//! `--stop-after`, and explains the ops left in float ([`unfused_remarks`]).

use crate::pipeline::{entry, pipeline, PASSES};
use crate::{diff, Config, Pass, PassError, Remark, RemarkKind, Remarks, Target};
use qdqc_ir::Graph;

/// How many times a pipeline is repeated, at most, to reach a fixed point.
pub const MAX_ITERATIONS: usize = 8;

/// What one pass did in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassRun {
    pub pass: &'static str,
    pub changes: usize,
    /// Which repetition of the pipeline (0-based).
    pub iteration: usize,
    /// The text IR after the pass, when `print_after` asked for it.
    pub dump: Option<String>,
    /// The unified diff of the text IR before/after the pass, with `diff`, when it changed it.
    pub diff: Option<String>,
    /// Wall time of the pass, and of the `Graph::verify` after it (skipped when it changed nothing).
    pub time: std::time::Duration,
    pub verify_time: std::time::Duration,
}

/// Which passes `--print-after` dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrintAfter {
    All,
    Pass(String),
}

impl PrintAfter {
    /// `all` or a pass name.
    pub fn parse(s: &str) -> PrintAfter {
        if s == "all" {
            PrintAfter::All
        } else {
            PrintAfter::Pass(s.to_string())
        }
    }
    fn wants(&self, pass: &str) -> bool {
        match self {
            PrintAfter::All => true,
            PrintAfter::Pass(p) => p == pass,
        }
    }
}

/// Instrumentation of a run (rustc's `-Z dump-mir`, `-Z mir-opt-bisect-limit` in spirit).
#[derive(Clone, Debug)]
pub struct Instrument {
    pub print_after: Option<PrintAfter>,
    pub diff: bool,
    /// Stop after this many pass executions (for bisecting a bad rewrite).
    pub stop_after: Option<usize>,
    /// Run the graph check ([`Graph::verify`]) after every pass that changed the graph, naming
    /// the pass that broke an invariant (LLVM's `-verify-each`, rustc's `-Z validate-mir`).
    /// Otherwise the graph is checked once, after the pipeline. On by default in debug builds
    /// (so every test checks every pass); `qdqc --check-each-pass` turns it on in release.
    pub check_each_pass: bool,
}

impl Default for Instrument {
    fn default() -> Instrument {
        Instrument { print_after: None, diff: false, stop_after: None, check_each_pass: cfg!(debug_assertions) }
    }
}

/// The outcome of [`PassManager::run_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineRun {
    pub runs: Vec<PassRun>,
    /// Why rules did not fire in the final graph (the last repetition's remarks), and every
    /// approximation a rewrite made ([`RemarkKind::Approximation`], from any repetition).
    pub remarks: Remarks,
    /// The last repetition of the pipeline made no change.
    pub converged: bool,
    /// `stop_after` cut the run short.
    pub stopped: bool,
    /// The graph check after the pipeline (zero when every pass was checked on its own).
    pub final_check_time: std::time::Duration,
}

/// Runs a list of passes to a fixed point, checking the graph after each one or once at the end
/// ([`Instrument::check_each_pass`]).
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    config: Config,
}

impl PassManager {
    /// A pipeline from a comma-separated list of pass names; `none` runs nothing. An empty list
    /// or an empty name in it (`fuse,,dce`) is an error.
    pub fn parse(spec: &str) -> Result<PassManager, PassError> {
        if spec.trim() == "none" {
            return Ok(PassManager { passes: Vec::new(), config: Config::default() });
        }
        let names: Vec<&str> = spec.split(',').map(str::trim).collect();
        if names.iter().any(|n| n.is_empty() || *n == "none") {
            return Err(PassError::BadList { spec: spec.to_string() });
        }
        PassManager::from_names(&names)
    }

    /// The named pipeline `level` edited by `spec`, a comma-separated list of `+NAME` (append
    /// the pass to the pipeline) and `-NAME` (remove every run of it), applied in order.
    pub fn edited(level: &str, spec: &str) -> Result<PassManager, PassError> {
        let shown = format!("O{}", level.strip_prefix('O').unwrap_or(level));
        let mut names = pipeline(level).ok_or(PassError::UnknownPipeline { name: shown.clone() })?;
        for item in spec.split(',').map(str::trim) {
            match (item.strip_prefix('+'), item.strip_prefix('-')) {
                (Some(add), _) if !add.is_empty() => {
                    let known = entry(add).ok_or_else(|| PassError::Unknown {
                        name: add.to_string(),
                        known: PASSES.iter().map(|e| e.name).collect::<Vec<_>>().join(", "),
                    })?;
                    names.push(known.name);
                }
                (_, Some(drop)) if !drop.is_empty() => {
                    if !names.contains(&drop) {
                        return Err(PassError::NotInPipeline { name: drop.to_string(), pipeline: shown });
                    }
                    names.retain(|n| *n != drop);
                }
                _ => return Err(PassError::BadList { spec: spec.to_string() }),
            }
        }
        PassManager::from_names(&names)
    }

    /// Whether `spec` edits a pipeline (`+NAME`/`-NAME` items) rather than listing passes.
    pub fn is_edit(spec: &str) -> bool {
        spec.split(',').map(str::trim).any(|i| i.starts_with('+') || i.starts_with('-'))
    }

    /// A named pipeline (`O0`, `O2`, see [`pipeline`]).
    pub fn named(name: &str) -> Result<PassManager, PassError> {
        let shown = format!("O{}", name.strip_prefix('O').unwrap_or(name));
        let names = pipeline(name).ok_or(PassError::UnknownPipeline { name: shown })?;
        PassManager::from_names(&names)
    }

    pub fn from_names(names: &[&str]) -> Result<PassManager, PassError> {
        PassManager::from_names_for(names, &Config::default())
    }

    /// The same passes, built for `target` (and the approximations configured so far).
    pub fn for_target(self, target: Target) -> PassManager {
        let config = Config { target, ..self.config.clone() };
        self.configured(config)
    }

    /// The same passes, built for `config` (passes added with [`PassManager::with_pass`] stay as
    /// they are).
    pub fn configured(self, config: Config) -> PassManager {
        let passes = self
            .passes
            .into_iter()
            .map(|p| match entry(p.name()) {
                Some(e) => e.build(&config),
                None => p,
            })
            .collect();
        PassManager { passes, config }
    }

    /// The pipeline with `pass` appended: a pass of the embedding program's own, run in every
    /// repetition after the others.
    pub fn with_pass(mut self, pass: Box<dyn Pass>) -> PassManager {
        self.passes.push(pass);
        self
    }

    pub fn target(&self) -> Target {
        self.config.target
    }

    fn from_names_for(names: &[&str], config: &Config) -> Result<PassManager, PassError> {
        let passes = names
            .iter()
            .map(|&name| {
                entry(name).map(|e| e.build(config)).ok_or_else(|| PassError::Unknown {
                    name: name.to_string(),
                    known: PASSES.iter().map(|e| e.name).chain(["none"]).collect::<Vec<_>>().join(", "),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(PassManager { passes, config: config.clone() })
    }

    pub fn default_pipeline() -> PassManager {
        PassManager::named("O2").expect("-O2 is a pipeline")
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs the pipeline to a fixed point without instrumentation.
    pub fn run(&self, graph: &mut Graph) -> Result<Vec<PassRun>, PassError> {
        Ok(self.run_with(graph, &Instrument::default())?.runs)
    }

    /// Runs the passes in order, repeating the list until a repetition makes no change (at most
    /// [`MAX_ITERATIONS`] times), verifying the graph after every pass that changed it.
    pub fn run_with(&self, graph: &mut Graph, inst: &Instrument) -> Result<PipelineRun, PassError> {
        let mut out = PipelineRun::default();
        if self.passes.is_empty() {
            out.converged = true;
            return Ok(out);
        }
        let texts = inst.diff || inst.print_after.is_some();
        let mut text = texts.then(|| qdqc_ir::text::print(graph));
        // Approximations are made in any repetition; they are kept from the one that made them.
        let mut approximations = Remarks::new();
        'repeat: for iteration in 0..MAX_ITERATIONS {
            let mut changed = 0;
            let mut remarks = Remarks::new();
            for pass in &self.passes {
                if inst.stop_after.is_some_and(|n| out.runs.len() >= n) {
                    out.stopped = true;
                    out.remarks = remarks;
                    out.remarks.extend(approximations.iter().cloned());
                    break 'repeat;
                }
                let start = std::time::Instant::now();
                let changes = pass.run_once(graph, &mut remarks)?;
                let made: Vec<Remark> =
                    remarks.iter().filter(|r| r.kind == RemarkKind::Approximation).cloned().collect();
                for r in made {
                    remarks.remove(&r);
                    approximations.insert(r);
                }
                let time = start.elapsed();
                // A pass that changed nothing left the graph as the last check saw it.
                if changes > 0 && inst.check_each_pass {
                    graph.verify().map_err(|error| PassError::Invalid { pass: pass.name(), error })?;
                }
                let verify_time = start.elapsed() - time;
                changed += changes;
                let mut run =
                    PassRun { pass: pass.name(), changes, iteration, dump: None, diff: None, time, verify_time };
                if let Some(before) = &text {
                    let after = qdqc_ir::text::print(graph);
                    if inst.diff && after != *before {
                        let n = out.runs.len() + 1;
                        let (a, b) =
                            (format!("before {} (#{n})", pass.name()), format!("after {} (#{n})", pass.name()));
                        run.diff = Some(diff::unified(before, &after, &a, &b, false));
                    }
                    if inst.print_after.as_ref().is_some_and(|p| p.wants(pass.name())) {
                        run.dump = Some(after.clone());
                    }
                    text = Some(after);
                }
                out.runs.push(run);
            }
            // The remarks of the last repetition describe the final graph.
            out.remarks = remarks;
            out.remarks.extend(approximations.iter().cloned());
            if changed == 0 {
                out.converged = true;
                break;
            }
        }
        if !inst.check_each_pass {
            if let Some(last) = out.runs.iter().rev().find(|r| r.changes > 0) {
                let start = std::time::Instant::now();
                graph.verify().map_err(|error| PassError::Invalid { pass: last.pass, error })?;
                out.final_check_time = start.elapsed();
            }
        }
        if out.converged {
            out.remarks.extend(unfused_remarks(graph, &out.remarks));
        }
        Ok(out)
    }
}

/// A remark for every op still computing in float between quantized values (it reads a
/// DequantizeLinear or feeds a QuantizeLinear) that no rule explained: no rule has its pattern.
pub fn unfused_remarks(graph: &Graph, known: &Remarks) -> Vec<Remark> {
    use qdqc_ir::{Op, OpKind, Operand};
    let explained: std::collections::HashSet<&str> = known.iter().map(|r| r.node.as_str()).collect();
    let mut out = Vec::new();
    for id in graph.topo_order().unwrap_or_default() {
        let n = graph.node(id);
        if matches!(n.op, Op::QuantizeLinear | Op::DequantizeLinear | Op::Input) {
            continue;
        }
        // (Each test only when the ones before it pass: most nodes of a compiled graph compute in
        // integers, and their neighbours need not be read.)
        let float_out = || n.outputs.iter().any(|v| v.ty.as_ref().is_some_and(|t| t.dtype.is_float()));
        let reads_dq = || {
            n.inputs()
                .iter()
                .any(|&i| matches!(i, Operand::Value(o) if graph.kind(o.node) == Some(OpKind::DequantizeLinear)))
        };
        let feeds_q = || graph.uses(id).any(|(c, _)| graph.kind(c) == Some(OpKind::QuantizeLinear));
        if !(float_out() && (reads_dq() || feeds_q())) {
            continue;
        }
        let ident = n.ident();
        // A rule rooted at the Q after it (fusions match from their Q) may have explained it.
        let q_explained = graph.uses(id).any(|(c, _)| explained.contains(graph.node(c).ident()));
        if !explained.contains(ident) && !q_explained {
            let reason =
                format!("no rule fuses {} here: it stays in float between DequantizeLinear and QuantizeLinear", n.op);
            out.push(Remark {
                pass: "pipeline",
                rule: "unfused",
                node: ident.to_string(),
                op: n.op.to_string(),
                reason,
                kind: RemarkKind::Missed,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::pipeline;
    use qdqc_ir::text::parse;

    struct Mine;

    impl Pass for Mine {
        fn name(&self) -> &'static str {
            "mine"
        }
        fn run(&self, _: &mut Graph, _: &mut Remarks) -> Result<usize, PassError> {
            Ok(0)
        }
    }

    #[test]
    fn a_custom_pass_joins_and_survives_configuration() {
        let pm = PassManager::parse("cleanup,dce").unwrap().with_pass(Box::new(Mine));
        let pm = pm.configured(Config { target: Target::Onnx, ..Config::default() });
        assert_eq!(pm.names(), ["cleanup", "dce", "mine"]);
        assert_eq!(pm.target(), Target::Onnx);
    }

    #[test]
    fn edits_add_and_remove_passes_of_a_named_pipeline() {
        let o2 = pipeline("O2").unwrap();
        let pm = PassManager::edited("O2", "-int8-to-uint8,+dce").unwrap();
        let mut want: Vec<&str> = o2.iter().copied().filter(|n| *n != "int8-to-uint8").collect();
        want.push("dce");
        assert_eq!(pm.names(), want);
        assert!(matches!(PassManager::edited("O2", "-saturate"), Err(PassError::NotInPipeline { .. })));
        assert!(matches!(PassManager::edited("O2", "+nope"), Err(PassError::Unknown { .. })));
        assert!(matches!(PassManager::edited("O2", "dce,-fuse"), Err(PassError::BadList { .. })));
        assert!(PassManager::is_edit("-dce") && !PassManager::is_edit("fuse,dce"));
    }

    #[test]
    fn pipelines_parse_and_reject_unknown_names() {
        assert!(PassManager::parse("none").unwrap().names().is_empty());
        for bad in ["", " ", "fuse,,dce", "fuse,", ",dce", "none,dce"] {
            assert!(matches!(PassManager::parse(bad), Err(PassError::BadList { .. })), "{bad:?} must be refused");
        }
        assert_eq!(PassManager::parse("dce").unwrap().names(), vec!["dce"]);
        let err = PassManager::parse("dce,fuse-everything").err().unwrap();
        assert_eq!(err.to_string(), "unknown pass 'fuse-everything' (known: unique-dq, fold-bn, fold-bn-qdq, propagate, cleanup, fuse, fuse-contrib, saturate, elementwise, int8-to-uint8, dedup-consts, dce, none)");
        assert!(PassManager::named("O0").unwrap().names().is_empty());
        assert_eq!(PassManager::named("2").unwrap().names(), pipeline("O2").unwrap());
        assert_eq!(PassManager::parse("fuse").unwrap().for_target(Target::Onnx).target(), Target::Onnx);
        assert_eq!(PassManager::named("O3").unwrap().names(), pipeline("O3").unwrap());
        assert_eq!(PassManager::named("O4").err().unwrap().to_string(), "unknown pipeline 'O4' (known: O0, O2, O3)");
    }

    const G: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %i = Identity(%d)
  %r = QuantizeLinear(%i, %s, %z)
  %y = DequantizeLinear(%r, %s, %z)
  %dead = Relu(%x)
  output %y
}
"#;

    #[test]
    fn fixed_point_diffs_dumps_and_stop_after() {
        let pm = PassManager::parse("fold-bn,cleanup,dce").unwrap();
        let mut g = parse(G).unwrap();
        let inst = Instrument {
            print_after: Some(PrintAfter::parse("dce")),
            diff: true,
            stop_after: None,
            check_each_pass: true,
        };
        let r = pm.run_with(&mut g, &inst).unwrap();
        assert!(r.converged && !r.stopped);
        let summary: Vec<_> = r.runs.iter().map(|r| (r.pass, r.iteration, r.changes)).collect();
        // No BN to fold; cleanup removes the Identity and the DQ→Q pair (2); dce the dead Relu
        // (1); then nothing.
        let expected = vec![
            ("fold-bn", 0, 0),
            ("cleanup", 0, 2),
            ("dce", 0, 1),
            ("fold-bn", 1, 0),
            ("cleanup", 1, 0),
            ("dce", 1, 0),
        ];
        assert_eq!(summary, expected);
        assert!(r.runs[1].dump.is_none() && r.runs[2].dump.is_some());
        assert!(r.runs[0].diff.is_none(), "no diff for a pass that changed nothing");
        insta::assert_snapshot!(r.runs[2].diff.as_deref().unwrap(), @r"
        --- before dce (#3)
        +++ after dce (#3)
        @@ -4,6 +4,5 @@
           const %z: u8[] 128
           %q: u8[4] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
           %y: f32[4] = DequantizeLinear(%q, %s, %z)
        -  %dead: f32[4] = Relu(%x)
           output %y
         }
        ");
        let mut g = parse(G).unwrap();
        let r = pm.run_with(&mut g, &Instrument { stop_after: Some(1), ..Default::default() }).unwrap();
        assert!(r.stopped && !r.converged);
        assert_eq!(r.runs.len(), 1);
        assert!(qdqc_ir::text::print(&g).contains("%dead"), "dce did not run");
    }

    #[test]
    fn ops_left_in_float_between_q_and_dq_are_explained() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %e = ReduceMean(%d)  "mean1"
  %y = QuantizeLinear(%e, %s, %z)
  %r = Relu(%x)
  output %y
  output %r
}
"#;
        let mut g = parse(text).unwrap();
        let r = PassManager::default_pipeline().run_with(&mut g, &Instrument::default()).unwrap();
        let r: Vec<String> = r.remarks.iter().map(|r| format!("{}: {r}", r.pass)).collect();
        assert_eq!(
            r,
            ["pipeline: unfused: ReduceMean 'mean1': no rule fuses ReduceMean here: it stays in float between DequantizeLinear and QuantizeLinear"]
        );
    }
}
