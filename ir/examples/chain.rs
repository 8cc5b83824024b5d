//! Scale check of the IR itself: builds an N-node Relu chain through the Graph API and times
//! topological sort, inference, verify, print and parse. `cargo run --release -p qdqc-ir --example chain 1000000`
use qdqc_ir::*;
fn main() {
    eprintln!(
        "Node {} NodeProto {} Value {} Const {}",
        std::mem::size_of::<Node>(),
        std::mem::size_of::<proto::NodeProto>(),
        std::mem::size_of::<Value>(),
        std::mem::size_of::<Const>()
    );
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let t = std::time::Instant::now();
    let mut g = Graph::new();
    let mut prev = Operand::Value(g.add_input(Value::typed("x", TensorType::known(DType::F32, &[1, 4]))).unwrap());
    for i in 0..n {
        let id = g
            .add_node(Op::Relu, qdqc_ir::NodeMeta::default(), vec![], vec![prev], vec![Value::named(format!("v{i}"))])
            .unwrap();
        prev = Operand::Value(Outlet::new(id, 0));
    }
    eprintln!("build {n}: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let o = g.topo_order().unwrap();
    eprintln!("topo: {:?} {}", t.elapsed(), o.len());
    let t = std::time::Instant::now();
    infer::infer_graph(&mut g).unwrap();
    eprintln!("infer: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    g.verify().unwrap();
    eprintln!("verify: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let s = text::print(&g);
    eprintln!("print: {:?} {}", t.elapsed(), s.len());
    let t = std::time::Instant::now();
    let g2 = text::parse(&s).unwrap();
    eprintln!("parse: {:?} {}", t.elapsed(), g2.op_count());
}
