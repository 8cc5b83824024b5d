//! Properties of the -O2 pipeline on random QDQ graphs: the compiled graph verifies against the
//! original (every shared tensor within one quantization step), a second run changes nothing, and
//! two compilations of the same graph are identical (text and saved bytes).
//!
//! Graphs (`common::qdq_gen`) are built as IR text from a list of steps, so a failure shrinks to a short list and
//! the assertion message prints the whole graph. Ops: Conv (int8 weights, per-tensor or
//! per-channel, no/int32/float bias), MatMul, Gemm, Relu, Clip, Sigmoid, MaxPool, AveragePool,
//! GlobalAveragePool, Reshape, Flatten, Transpose, Concat, Add, Mul; each wrapped DQ → op → Q, with
//! random scales (log-uniform), zero points (u8/i8, not only the minimum) and small shapes. A
//! step picks its operands among all values so far: values get several consumers, and Add, Mul
//! and Concat join branches (residual DAGs).

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use qdqc_passes::{PassManager, Target};

mod common;

use common::qdq_gen::graph_text;

fn compile(text: &str) -> Result<qdqc_ir::Graph, String> {
    let mut g = qdqc_ir::text::parse(text).map_err(|e| format!("generator bug, graph does not parse: {e}"))?;
    PassManager::default_pipeline().run(&mut g).map_err(|e| format!("-O2 failed: {e}"))?;
    Ok(g)
}

fn saved_bytes(g: &qdqc_ir::Graph) -> Vec<u8> {
    let m = qdqc_ir::Model { graph: g.clone(), meta: Default::default(), external: Default::default() };
    prost::Message::encode_to_vec(&m.to_proto().expect("exports"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// -O2 keeps every shared tensor within one step, is idempotent and deterministic; so does
    /// -O2 for `--target onnx`, which leaves no com.microsoft op.
    #[test]
    fn o2_verifies_is_idempotent_and_deterministic(text in graph_text()) {
        let orig = qdqc_ir::text::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut g = compile(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let out = qdqc_ir::text::print(&g);
        // (a) verify
        let samples: Vec<_> = (0..2)
            .map(|k| qdqc::verify::random_inputs(&orig, k, 1))
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let report = qdqc::verify::verify(&orig, &g, &samples, 0, &|_| {})
            .map_err(|e| TestCaseError::fail(format!("cannot verify: {e}\noriginal:\n{text}\ncompiled:\n{out}")))?;
        prop_assert!(
            report.passed,
            "verification failed at '{}'\n{}original:\n{text}\ncompiled:\n{out}",
            report.first_failure.clone().unwrap_or_default(),
            report.table(true)
        );
        // (b) idempotent
        PassManager::default_pipeline().run(&mut g).map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?;
        let again = qdqc_ir::text::print(&g);
        prop_assert!(again == out, "a second -O2 changed the graph\noriginal:\n{text}\nfirst:\n{out}\nsecond:\n{again}");
        // (c) deterministic
        let other = compile(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let other_text = qdqc_ir::text::print(&other);
        prop_assert!(other_text == out, "two compilations differ\noriginal:\n{text}\nfirst:\n{out}\nsecond:\n{other_text}");
        prop_assert!(saved_bytes(&other) == saved_bytes(&g), "saved bytes differ\noriginal:\n{text}");
        // (d) --target onnx: standard ops only, and it verifies too
        let mut std_only = orig.clone();
        PassManager::default_pipeline()
            .for_target(Target::Onnx)
            .run(&mut std_only)
            .map_err(|e| TestCaseError::fail(format!("-O2 --target onnx failed: {e}\n{text}")))?;
        let std_text = qdqc_ir::text::print(&std_only);
        let ms: Vec<String> =
            qdqc::stats::stats(&std_only).ops.into_keys().filter(|op| op.starts_with("com.microsoft.")).collect();
        prop_assert!(ms.is_empty(), "--target onnx left {ms:?}\noriginal:\n{text}\ncompiled:\n{std_text}");
        let report = qdqc::verify::verify(&orig, &std_only, &samples, 0, &|_| {})
            .map_err(|e| TestCaseError::fail(format!("cannot verify: {e}\noriginal:\n{text}\ncompiled:\n{std_text}")))?;
        prop_assert!(
            report.passed,
            "--target onnx: verification failed at '{}'\n{}original:\n{text}\ncompiled:\n{std_text}",
            report.first_failure.clone().unwrap_or_default(),
            report.table(true)
        );
    }
}

/// The generator makes what it claims: every op kind appears, graphs parse and are valid, and
/// some graphs have a value with several consumers and several outputs (DAGs, not only chains).
#[test]
fn generator_covers_every_op() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let (mut dags, mut multi_out) = (0, 0);
    for _ in 0..300 {
        let text = graph_text().new_tree(&mut runner).unwrap().current();
        let g = qdqc_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        g.verify().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut reads = std::collections::BTreeMap::<&str, usize>::new();
        for line in text.lines() {
            if let Some((_, rhs)) = line.split_once(" = ") {
                *seen.entry(rhs.split(['(', '[']).next().unwrap().to_string()).or_default() += 1;
                if rhs.starts_with("DequantizeLinear(%q") {
                    *reads.entry(rhs[17..].split(',').next().unwrap()).or_default() += 1;
                }
            }
        }
        dags += reads.values().any(|&n| n > 1) as usize;
        multi_out += (text.matches("  output ").count() > 1) as usize;
    }
    for op in [
        "Conv",
        "MatMul",
        "Gemm",
        "Relu",
        "Clip",
        "MaxPool",
        "Reshape",
        "Transpose",
        "Flatten",
        "Concat",
        "Add",
        "Mul",
        "GlobalAveragePool",
        "AveragePool",
        "Sigmoid",
    ] {
        assert!(seen.get(op).copied().unwrap_or(0) >= 5, "{op} rarely generated: {seen:?}");
    }
    assert!(dags >= 30 && multi_out >= 30, "{dags} graphs with a shared value, {multi_out} with several outputs");
}
