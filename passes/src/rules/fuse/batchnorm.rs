//! `qbn-as-depthwise-conv`: a BatchNormalization that the quantizer wrapped in DQ→BN→Q (what
//! onnxruntime's quantizer writes for a BN it could not fold: Conv → Q → DQ → BN → Q) becomes an
//! integer depthwise 1×1 QLinearConv — a standard op, so for every target.
//!
//! With `f = γ/√(var+ε)` and `o = β − mean·f` per channel, the BN is `y = f·x + o`. The
//! QLinearConv has one int8 weight per channel, `w = ±127` (the sign of `f`) with the per-channel
//! weight scale `s_w = |f|/127`, so `w·s_w = f`; and the int32 bias `round(o / (s_x·s_w))`,
//! whose step is 127× finer than the input's step scaled by `f`. The accumulation is exact in
//! integers; the result rounds once, to the output's step, as the BN → Q did. (A channel with
//! `f = 0` gets weight 0 and the bias alone, at a step of 1/127 of the output's.)
//!
//! Folding such a BN into the conv before it instead (`fold-bn-qdq`, not in `-O2`) would drop the
//! conv's own rounding step and move the outputs by several steps against the QDQ model.

use crate::ensure;
use crate::rule::{Match, Patch, PatchNode, PatchOperand, Refusal, Rule};
use crate::rules::bn_fold::Bn;
use crate::rules::qparams::{self, QParams};
use qdqc_ir::{attr, DType, Graph, NodeId, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![Rule::new(
        "qbn-as-depthwise-conv",
        "(QuantizeLinear (BatchNormalization (DequantizeLinear ?x ?xs ?xz) ?gamma ?beta ?mean ?var) ?ys ?yz)",
        &[bn_inference_single_use, io_params, channels],
        build,
    )]
}

fn bn(m: &Match) -> NodeId {
    m.nodes[1]
}

fn bn_inference_single_use(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let n = g.node(bn(m));
    ensure!(attr::int(&n.attrs, "training_mode").unwrap_or(0) == 0, "BatchNormalization is in training mode");
    let out = Operand::Value(Outlet::new(bn(m), 0));
    let other_uses = g.uses(bn(m)).count() != 1 || g.outputs().iter().any(|o| o.operand == out);
    ensure!(!other_uses, "the BatchNormalization's float output is also used elsewhere");
    let extra = g.outputs().iter().any(|o| matches!(o.operand, Operand::Value(v) if v.node == bn(m) && v.slot != 0));
    ensure!(!extra, "BatchNormalization's running mean/var outputs are used");
    Ok(())
}

/// The DQ's and Q's parameters: per tensor, the same 8-bit type, positive finite scales.
fn params(g: &Graph, m: &Match) -> Result<(QParams, QParams), Refusal> {
    Ok((qparams::of_node(g, m.nodes[2])?, qparams::of_node(g, m.root())?))
}

fn io_params(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let (x, y) = params(g, m)?;
    ensure!(x.axis.is_none() && y.axis.is_none(), "the input or output is quantized per axis");
    ensure!(
        matches!(x.dtype, DType::U8 | DType::I8) && x.dtype == y.dtype,
        "QLinearConv needs the same 8-bit type in and out, not {} → {}",
        x.dtype,
        y.dtype
    );
    for s in [x.scale[0], y.scale[0]] {
        ensure!(s.is_finite() && s > 0.0, "scale {s} is not positive and finite");
    }
    Ok(())
}

/// The channel count (dim 1 of the input, known) and a rank QLinearConv takes (≥ 3).
fn channels(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let (c, _) = channel_count(g, m)?;
    let b = Bn::read_node(g, bn(m), m)?;
    for (name, v) in [("scale", &b.gamma), ("bias", &b.beta), ("mean", &b.mean), ("variance", &b.var)] {
        ensure!(v.len() == c, "BN {name} has {} values for {c} channels", v.len());
    }
    let bad = b.var.iter().position(|&v| (v as f64 + b.eps as f64).is_nan() || v as f64 + b.eps as f64 <= 0.0);
    ensure!(bad.is_none(), "BN variance + epsilon is not positive at channel {}", bad.unwrap());
    Ok(())
}

fn channel_count(g: &Graph, m: &Match) -> Result<(usize, usize), Refusal> {
    let ty = g.operand_type(m.get("x")).ok_or_else(|| Refusal::new("the input's type is unknown"))?;
    let rank = ty.rank().ok_or_else(|| Refusal::new("the input's rank is unknown"))?;
    ensure!(rank >= 3, "the input has rank {rank}; a QLinearConv needs [N, C, spatial...]");
    let c = ty.shape.as_ref().and_then(|s| s[1].known()).ok_or_else(|| Refusal::new("the channel count is unknown"))?;
    ensure!(c > 0, "the input has no channels");
    Ok((c as usize, rank))
}

fn build(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let (c, rank) = channel_count(g, m)?;
    let (x, _) = params(g, m)?;
    let (f, o) = Bn::read_node(g, bn(m), m)?.factors();
    let (xs, ys) = (x.scale[0] as f64, params(g, m)?.1.scale[0] as f64);
    let (mut w, mut sw, mut bias) = (Vec::with_capacity(c), Vec::with_capacity(c), Vec::with_capacity(c));
    for ch in 0..c {
        let s = (f[ch].abs() / 127.0) as f32;
        // A channel with f = 0 is its bias alone: any weight scale does; one that puts the bias
        // step at 1/127 of the output step.
        let flat = (ys / xs / 127.0) as f32;
        let (wc, sc) = if s > 0.0 && s.is_finite() { (127 * f[ch].signum() as i64, s) } else { (0, flat) };
        let b = (o[ch] / (xs * sc as f64)).round_ties_even();
        ensure!(b.abs() <= i32::MAX as f64, "the bias of channel {ch} does not fit in int32 at the input's scale");
        w.push(wc);
        sw.push(sc);
        bias.push(b as i64);
    }
    let acc: Vec<f32> = sw.iter().map(|&s| (xs * s as f64) as f32).collect();
    super::bias_rounding_fits(&o, &bias, &acc, ys as f32)?;
    let mut p = Patch::new();
    let base = g.value(Outlet::new(bn(m), 0)).name.clone();
    let mut wdims = vec![c as i64, 1];
    wdims.extend(std::iter::repeat_n(1, rank - 2));
    let w_op = p.add_const(&format!("{base}_weight_quantized"), Tensor::from_i64("", DType::I8, &wdims, &w));
    let ws_op = p.add_const(&format!("{base}_weight_scale"), Tensor::from_f32("", &[c as i64], &sw));
    let wz_op =
        p.add_const(&format!("{base}_weight_zero_point"), Tensor::from_i64("", DType::I8, &[c as i64], &vec![0; c]));
    let b_op = p.add_const(&format!("{base}_bias_quantized"), Tensor::from_i64("", DType::I32, &[c as i64], &bias));
    let xz = super::zero_point_or_new(&mut p, m.get("xz"), x.dtype, 1, || format!("{base}_x_zero_point"));
    let yz = super::zero_point_or_new(&mut p, m.get("yz"), x.dtype, 1, || format!("{base}_y_zero_point"));
    let attrs = vec![attr::make_int("group", c as i64), attr::make_ints("kernel_shape", &vec![1; rank - 2])];
    let out = g.value(Outlet::new(m.root(), 0)).name.clone();
    let n = p.add_node(PatchNode {
        op: Op::QLinearConv,
        name: g.node(bn(m)).name().to_string(),
        attrs: attrs.into(),
        inputs: vec![m.get("x").into(), m.get("xs").into(), xz, w_op, ws_op, wz_op, m.get("ys").into(), yz, b_op],
        outputs: vec![out],
    });
    p.replace(Outlet::new(m.root(), 0), PatchOperand::NewNode(n, 0));
    for &id in &m.nodes {
        p.remove(id);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_eval::{run, RunOptions, Value};
    use qdqc_ir::text::parse;

    fn check(text: &str) -> String {
        crate::rules::run_and_print(&super::super::pass(), text)
    }

    // f = γ/√(var+ε) = [2/√4, −1/√1, 0] with ε = 1; o = β − mean·f = [0.5 − 1, 0.25 + 0.5, 0.125].
    const QBN: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,3,2,2]
  const %sx: f32[] 0.05
  const %zx: u8[] 128
  const %sy: f32[] 0.04
  const %zy: u8[] 100
  const %gamma: f32[3] [2.0, -1.0, 0.0]
  const %beta: f32[3] [0.5, 0.25, 0.125]
  const %mean: f32[3] [1.0, 0.5, 3.0]
  const %var: f32[3] [3.0, 0.0, 1.0]
  %xq = QuantizeLinear(%x, %sx, %zx)
  %xd = DequantizeLinear(%xq, %sx, %zx)
  %bn = BatchNormalization[epsilon=1.0](%xd, %gamma, %beta, %mean, %var)  "bn1"
  %y = QuantizeLinear(%bn, %sy, %zy)
  output %y
}
"#;

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(names, ["qbn-as-depthwise-conv"]);
    }

    #[test]
    fn quantized_bn_becomes_a_depthwise_qlinearconv() {
        insta::assert_snapshot!(check(QBN), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,3,2,2]
          const %sx: f32[] 0.05
          const %zx: u8[] 128
          const %sy: f32[] 0.04
          const %zy: u8[] 100
          const %bn_weight_quantized: i8[3,1,1,1] [127, -127, 0]
          const %bn_weight_scale: f32[3] [0.007874016, 0.007874016, 0.0062992126]
          const %bn_weight_zero_point: i8[3] [0, 0, 0]
          const %bn_bias_quantized: i32[3] [-1270, 1905, 397]
          %xq: u8[1,3,2,2] q(0.05, 128) = QuantizeLinear(%x, %sx, %zx)
          %y: u8[1,3,2,2] q(0.04, 100) = QLinearConv[group=3, kernel_shape=[1,1]](%xq, %sx, %zx, %bn_weight_quantized, %bn_weight_scale, %bn_weight_zero_point, %sy, %zy, %bn_bias_quantized)  "bn1"
          output %y
        }
        "#);
    }

    #[test]
    fn the_result_is_within_one_step() {
        let before = parse(QBN).unwrap();
        let mut after = parse(QBN).unwrap();
        let changes = crate::Pass::run(&super::super::pass(), &mut after, &mut crate::Remarks::new()).unwrap();
        assert_eq!(changes, 1);
        let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.77).sin() * 6.0).collect();
        let input = [("x".to_string(), Value::f32(&[1, 3, 2, 2], x).unwrap())];
        let out = |g| run(g, &input, &RunOptions::default()).unwrap().outputs.remove(0).1.to_f64_vec().unwrap();
        let (a, b) = (out(&before), out(&after));
        let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(worst <= 1.0, "{a:?} vs {b:?}");
    }

    #[test]
    fn refusals() {
        // The BN's float output has another consumer.
        let shared = QBN.replace("  output %y\n", "  output %y\n  output %bn\n");
        let out = check(&shared);
        assert!(out.contains("= BatchNormalization"), "{out}");
        assert!(out.contains("// remark qbn-as-depthwise-conv: QuantizeLinear (producing 'y'): the BatchNormalization's float output is also used elsewhere"), "{out}");
        // Rank 2: no spatial dims for a QLinearConv.
        let flat = QBN.replace("f32[1,3,2,2]", "f32[1,3]");
        assert!(check(&flat).contains("the input has rank 2; a QLinearConv needs [N, C, spatial...]"));
        // Different integer types in and out.
        let mixed = QBN.replace("const %zy: u8[] 100", "const %zy: i8[] 100");
        assert!(check(&mixed).contains("QLinearConv needs the same 8-bit type in and out, not u8 → i8"));
        // Training mode.
        let training =
            QBN.replace("BatchNormalization[epsilon=1.0]", "BatchNormalization[epsilon=1.0, training_mode=1]");
        assert!(check(&training).contains("BatchNormalization is in training mode"));
    }
}
