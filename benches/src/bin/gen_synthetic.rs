//! Writes a synthetic QDQ CNN of about N ops, shaped as onnxruntime's quantizer writes models:
//! uint8 activations, int8 per-channel weights and int32 biases behind DequantizeLinear.
//!
//! ```text
//! x → Q → DQ → [block]×B → GlobalAveragePool → Q → DQ → Flatten → Gemm → Q → DQ → y
//! block:  a → Conv(DQ W, DQ b) → Q → DQ → Relu → Q → DQ → Conv(DQ W', DQ b') → Q → DQ ─┐
//!         a ─────────────────────────────────────────────────────────────────────→ Add → Q → DQ
//!         (every 4th block then MaxPool 3×3 pad 1 → Q → DQ; every 8th Transpose → Q → DQ)
//! ```
//!
//! Shared tensors: 16 weight/bias DequantizeLinear nodes serve every block's convs (tens of
//! thousands of consumers each at 1M ops), and one scale/zero-point pair per kind is read by
//! every Q/DQ. Activations are tiny ([1, 8, 4, 4]) so the models also run.
//!
//! `cargo run --release -p qdqc-bench --bin gen_synthetic -- --ops 1000000 -o synth-1M.onnx`
//!
//! `--fanout` writes a stress test for use lists instead: one dequantized activation read by
//! every branch, each `Relu → Q → DQ` summed into a running `Add → Q → DQ` (N/6 consumers of
//! one value at N ops; with singly linked edge lists rewriting them was quadratic).

use anyhow::Result;
use clap::Parser;
use qdqc_ir::builder::GraphBuilder;
use qdqc_ir::onnx::{save, Model, SaveOptions};
use qdqc_ir::proto::{ModelProto, OperatorSetIdProto};
use qdqc_ir::{attr, DType, Op, Operand};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Approximate number of ops.
    #[arg(long, default_value_t = 10_000)]
    ops: usize,
    #[arg(short, long)]
    output: PathBuf,
    /// One activation read by N/6 branches instead of the CNN.
    #[arg(long)]
    fanout: bool,
}

const C: i64 = 8;
const SHARED: usize = 16;
/// Ops per block, averaged over the every-4th MaxPool and every-8th Transpose extras.
const OPS_PER_BLOCK: f64 = 12.0 + 3.0 / 4.0 + 3.0 / 8.0;

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let blocks = ((args.ops as f64 - 12.0) / OPS_PER_BLOCK).max(1.0) as usize;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = GraphBuilder::new(17);
    let x = b.input("x", DType::F32, &["1", "8", "4", "4"]);
    let s = b.scalar_f32("act_scale", 0.05);
    let z = b.scalar("act_zero_point", DType::U8, 128);
    let sr = b.scalar_f32("relu_scale", 0.025);
    let zr = b.scalar("relu_zero_point", DType::U8, 0);
    let qdq = |b: &mut GraphBuilder, v: Operand, s: Operand, z: Operand| {
        let q = b.node(Op::QuantizeLinear, &[v, s, z]).out1();
        b.node(Op::DequantizeLinear, &[q, s, z]).out1()
    };
    if args.fanout {
        let shared = qdq(&mut b, x, s, z);
        let mut acc = shared;
        for _ in 0..(args.ops.saturating_sub(2) / 6).max(1) {
            let r = b.node(Op::Relu, &[shared]).out1();
            let r = qdq(&mut b, r, s, z);
            let sum = b.node(Op::Add, &[acc, r]).out1();
            acc = qdq(&mut b, sum, s, z);
        }
        b.output(acc);
        return write(b, &args, 0);
    }
    // The shared weights and biases, each behind one DequantizeLinear.
    let mut weights = Vec::new();
    for k in 0..SHARED {
        let w: Vec<i64> = (0..C * C * 9).map(|_| rng.int(-20, 20)).collect();
        let wq = b.const_i64(&format!("w{k}_quantized"), DType::I8, &[C, C, 3, 3], &w);
        let ws: Vec<f32> = (0..C).map(|c| 0.002 + 0.0001 * c as f32).collect();
        let ws = b.const_f32(&format!("w{k}_scale"), &[C], &ws);
        let wz = b.const_i64(&format!("w{k}_zero_point"), DType::I8, &[C], &[0; C as usize]);
        let wd = b
            .node(Op::DequantizeLinear, &[wq, ws, wz])
            .attr(attr::make_int("axis", 0))
            .name(&format!("w{k}_dq"))
            .out1();
        let bias: Vec<i64> = (0..C).map(|_| rng.int(-500, 500)).collect();
        let bq = b.const_i64(&format!("b{k}_quantized"), DType::I32, &[C], &bias);
        let bs: Vec<f32> = (0..C).map(|c| 0.05 * (0.002 + 0.0001 * c as f32)).collect();
        let bs = b.const_f32(&format!("b{k}_scale"), &[C], &bs);
        let bz = b.const_i64(&format!("b{k}_zero_point"), DType::I32, &[C], &[0; C as usize]);
        let bd = b
            .node(Op::DequantizeLinear, &[bq, bs, bz])
            .attr(attr::make_int("axis", 0))
            .name(&format!("b{k}_dq"))
            .out1();
        weights.push((wd, bd));
    }
    let conv_attrs = || [attr::make_ints("kernel_shape", &[3, 3]), attr::make_ints("pads", &[1, 1, 1, 1])];
    let mut a = qdq(&mut b, x, s, z);
    for i in 0..blocks {
        let (w1, b1) = weights[(2 * i) % SHARED];
        let (w2, b2) = weights[(2 * i + 1) % SHARED];
        let h = b.node(Op::Conv, &[a, w1, b1]).attrs(conv_attrs()).out1();
        let h = qdq(&mut b, h, s, z);
        let h = b.node(Op::Relu, &[h]).out1();
        let h = qdq(&mut b, h, sr, zr);
        let h = b.node(Op::Conv, &[h, w2, b2]).attrs(conv_attrs()).out1();
        let h = qdq(&mut b, h, s, z);
        let sum = b.node(Op::Add, &[h, a]).out1();
        a = qdq(&mut b, sum, s, z);
        if i % 4 == 3 {
            let p = b
                .node(Op::MaxPool, &[a])
                .attrs([attr::make_ints("kernel_shape", &[3, 3]), attr::make_ints("pads", &[1, 1, 1, 1])])
                .out1();
            a = qdq(&mut b, p, s, z);
        }
        if i % 8 == 7 {
            let t = b.node(Op::Transpose, &[a]).attr(attr::make_ints("perm", &[0, 1, 3, 2])).out1();
            a = qdq(&mut b, t, s, z);
        }
    }
    let gap = b.node(Op::GlobalAveragePool, &[a]).out1();
    let gap = qdq(&mut b, gap, s, z);
    let flat = b.node(Op::Flatten, &[gap]).out1();
    let fw: Vec<i64> = (0..10 * C).map(|_| rng.int(-60, 60)).collect();
    let fwq = b.const_i64("fc_w_quantized", DType::I8, &[10, C], &fw);
    let fws = b.scalar_f32("fc_w_scale", 0.004);
    let fwz = b.scalar("fc_w_zero_point", DType::I8, 0);
    let fwd = b.node(Op::DequantizeLinear, &[fwq, fws, fwz]).out1();
    let y = b.node(Op::Gemm, &[flat, fwd]).attr(attr::make_int("transB", 1)).out1();
    let y = qdq(&mut b, y, s, z);
    b.output(y);
    write(b, &args, blocks)
}

fn write(b: GraphBuilder, args: &Args, blocks: usize) -> Result<()> {
    let graph = b.finish()?;
    let ops = graph.op_count();
    let meta = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("qdqc-bench gen_synthetic".into()),
        ..Default::default()
    };
    let model = Model { graph, meta, external: Default::default() };
    save(&model, &args.output, &SaveOptions::default())?;
    eprintln!("wrote {}: {ops} ops, {blocks} blocks", args.output.display());
    Ok(())
}
