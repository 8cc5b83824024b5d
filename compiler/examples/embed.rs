//! Embedding qdqc's passes in another program: load a model, run chosen passes and a pass of
//! the program's own, check the result with the reference interpreter, save it.
//!
//!     cargo run --release -p qdqc --example embed -- IN.onnx OUT.onnx [PASSES]
//!
//! PASSES is a `--passes` list (default: the -O2 pipeline). The example's own pass names every
//! unnamed node `<op>_<n>` (tools that key on node names want one). Exit status 0 when the
//! result verifies, 1 when it does not, 2 on bad input.

use qdqc::ir::onnx::{load, save, SaveOptions};
use qdqc::ir::{Graph, Op};
use qdqc::passes::{Pass, PassError, PassManager, Remarks};
use qdqc::verify;
use std::path::Path;
use std::process::ExitCode;

/// Gives every unnamed node a name made of its op and a counter.
struct NameNodes;

impl Pass for NameNodes {
    fn name(&self) -> &'static str {
        "name-nodes"
    }

    fn run(&self, graph: &mut Graph, _: &mut Remarks) -> Result<usize, PassError> {
        let unnamed: Vec<_> =
            graph.node_ids().filter(|&id| graph.node(id).op != Op::Input && graph.node(id).name().is_empty()).collect();
        for (n, &id) in unnamed.iter().enumerate() {
            let name = format!("{}_{n}", graph.node(id).op);
            graph.node_mut(id).meta.name = Some(name.into());
        }
        Ok(unnamed.len())
    }
}

fn run(args: &[String]) -> Result<bool, String> {
    let [input, output, rest @ ..] = args else {
        return Err("usage: embed IN.onnx OUT.onnx [PASSES]".into());
    };
    let mut model = load(Path::new(input)).map_err(|e| e.to_string())?;
    let original = model.graph.clone();
    let pm = match rest.first() {
        Some(spec) => PassManager::parse(spec).map_err(|e| e.to_string())?,
        None => PassManager::default_pipeline(),
    };
    let pm = pm.with_pass(Box::new(NameNodes));
    let runs = pm.run(&mut model.graph).map_err(|e| e.to_string())?;
    for r in runs.iter().filter(|r| r.changes > 0) {
        eprintln!("{}: {} changes", r.pass, r.changes);
    }
    // Four seeded random samples through both graphs, every shared tensor compared.
    let samples: Vec<_> =
        (0..4).map(|k| verify::random_inputs(&original, k, 1)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let report = verify::verify(&original, &model.graph, &samples, 0, &|_| {}).map_err(|e| e.to_string())?;
    println!("{}", report.table(false).trim_end());
    save(&model, Path::new(output), &SaveOptions::default()).map_err(|e| e.to_string())?;
    println!("wrote {output}: {} nodes", model.graph.op_count());
    Ok(report.passed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::from(2)
        }
    }
}
