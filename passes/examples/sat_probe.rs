//! Times the `saturate` pass on one model, phase by phase, and compares the cost of its result
//! with greedy's (`propagate, cleanup, fuse, fuse-contrib` to a fixed point), both after
//! `fold-bn` (as `-O3` runs it first):
//! `cargo run --release -p qdqc-passes --example sat_probe -- MODEL [ort|onnx]`.

use qdqc_passes::saturate::{rule_table, saturate, Limits};
use qdqc_passes::{PassManager, Target};

// The allocator of the `qdqc` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = std::time::Instant::now();
    let mut g = qdqc_ir::onnx::load(std::path::Path::new(&args[1])).unwrap().graph;
    let target = Target::parse(args.get(2).map_or("ort", String::as_str)).unwrap();
    eprintln!("load {:?}, {} ops", t.elapsed(), g.op_count());
    PassManager::from_names(&["fold-bn"]).unwrap().for_target(target).run(&mut g).unwrap();
    let mut greedy = g.clone();
    let t = std::time::Instant::now();
    let pm = PassManager::from_names(&["propagate", "cleanup", "fuse", "fuse-contrib"]).unwrap().for_target(target);
    pm.run(&mut greedy).unwrap();
    eprintln!("greedy propagate..fuse-contrib to a fixed point {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let config = qdqc_passes::Config { target, ..Default::default() };
    let (out, r) = saturate(&g, &rule_table(&config), Limits::for_graph(g.op_count())).unwrap();
    eprintln!("saturate {:?}: {r:#?}", t.elapsed());
    let cost = qdqc_passes::cost::graph_cost;
    eprintln!("cost before {}, saturate {}, greedy {}", cost(&g), cost(&out), cost(&greedy));
    out.verify().unwrap();
}
