//! The `cleanup` rules: rewrites that only remove work.
//!
//! - `dq-q-same`: `Q(DQ(q, s, z), s', z')` with equal parameters by value and equal integer type
//!   is `q` (exact: `(q - z)·s / s` rounds back to `q - z` for any finite positive `s`).
//! - `q-of-const`: a QuantizeLinear of a constant float tensor is an integer constant, computed
//!   as onnxruntime does (f32 division, saturation, round half to even), per tensor or per axis,
//!   so QAT-style float weights behind Q→DQ become integer initializers.
//! - `identity`: an Identity is its input; one producing a graph output gives its name to its
//!   input, or stays when the input cannot take it (a graph input, a constant, another output).
//!
//! No `dq-q-requant` rule, by design: `Q(DQ(q, s1, z1), s2, z2)` with different parameters
//! computes `sat(rne(f32(q − z1)·s1 / s2) + z2)`, and no ONNX op does exactly that in integers
//! (QLinearMatMul/QLinearConv fold `s1 / s2` into one f32 factor, which rounds differently;
//! QLinearAdd uses an FMA form). The only contrib forms that reproduce it bit for bit are
//! 256-entry tables `Q(DQ(v))` (a one-input QLinearConcat, or QLinearLeakyRelu with alpha = 1),
//! which are the same DQ→Q computation under another name. So the DQ→Q pair already is the exact
//! requantize: a DQ feeding several Qs stays shared (nothing to gain), and a chain
//! `Q(DQ(Q(DQ(x))))` of two requantizes is not one requantize (the middle rounding matters) and
//! stays as it is.

use super::qparams::{self, first_difference, QParams};
use crate::driver::RulePass;
use crate::ensure;
use crate::rule::{Match, Patch, Refusal, Rule};
use qdqc_ir::{DType, Graph, Op, Operand, Outlet, Tensor};

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule::new("dq-q-same", "(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)", &[same_params], remove_dq_q),
        Rule::new("q-of-const", "(QuantizeLinear ?x ?s ?z)", &[input_is_float_const, output_is_integer], fold_q),
        Rule::new("identity", "(Identity ?x)", &[output_name_can_be_kept], remove_identity),
    ]
}

pub fn pass() -> RulePass {
    RulePass::new("cleanup", rules)
}

fn out0(m: &Match) -> Outlet {
    Outlet::new(m.root(), 0)
}

// ---- dq-q-same ---------------------------------------------------------------------------

/// The DQ and the Q have one integer type and equal parameters by value.
fn same_params(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let (dq, q) = (qparams::of_node(g, m.nodes[1])?, qparams::of_node(g, m.root())?);
    ensure!(dq.dtype == q.dtype, "integer types differ: {} vs {}", dq.dtype, q.dtype);
    ensure!(dq.axis == q.axis, "quantization axes differ: {:?} vs {:?}", dq.axis, q.axis);
    ensure!(dq.scale_dtype == q.scale_dtype, "scale types differ: {} vs {}", dq.scale_dtype, q.scale_dtype);
    if let Some(d) = first_difference(&dq.scale, &q.scale) {
        return Err(Refusal(format!("scales differ: {d}")));
    }
    if let Some(d) = first_difference(&dq.zero_point, &q.zero_point) {
        return Err(Refusal(format!("zero points differ: {d}")));
    }
    let bad = dq.scale.iter().find(|s| !(s.is_normal() && **s > 0.0));
    ensure!(bad.is_none(), "scale {} is not a positive normal number", bad.unwrap());
    Ok(())
}

fn remove_dq_q(_: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.replace(out0(m), m.get("q"));
    p.remove(m.root());
    p.remove(m.nodes[1]); // kept when it has other consumers
    Ok(p)
}

// ---- q-of-const --------------------------------------------------------------------------

fn input_is_float_const(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let x = m.get("x");
    if !matches!(x, Operand::Const(_)) {
        return Err(Refusal::not_applicable());
    }
    let t = g.const_tensor(x).ok_or_else(|| Refusal::new("the constant's data is not available"))?;
    let dtype = t.dtype().map_err(|e| Refusal(e.to_string()))?;
    ensure!(matches!(dtype, DType::F32 | DType::F16 | DType::BF16), "the constant is {dtype}, not f32/f16/bf16");
    Ok(())
}

fn output_is_integer(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let p = qparams::of_node(g, m.root())?;
    ensure!(p.dtype.is_int() && p.dtype.bits() <= 16, "output type {} is not an integer of at most 16 bits", p.dtype);
    Ok(())
}

fn fold_q(g: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let p = qparams::of_node(g, m.root())?;
    let x = g.const_tensor(m.get("x")).expect("guarded");
    let values = x.to_f32().map_err(|e| Refusal(e.to_string()))?;
    let q = quantize(&values, x.dims(), &p)?;
    let base = format!("{}_quantized", g.operand_name(m.get("x")));
    let mut patch = Patch::new();
    let c = patch.add_const(&base, Tensor::from_i64("", p.dtype, x.dims(), &q));
    patch.replace(out0(m), c);
    patch.remove(m.root());
    Ok(patch)
}

/// ONNX QuantizeLinear as onnxruntime computes it: `clamp(x / s, lo - z, hi - z)` (NaN to the
/// low end), rounded half to even, plus `z`.
fn quantize(x: &[f32], dims: &[i64], p: &QParams) -> Result<Vec<i64>, Refusal> {
    let (lo, hi) = p.dtype.int_range().ok_or_else(|| Refusal(format!("{} has no integer range", p.dtype)))?;
    let (len, inner) = match p.axis {
        None => (1, 1),
        Some(a) => {
            ensure!(
                dims.get(a) == Some(&(p.scale.len() as i64)),
                "{} scales for axis {a} of a constant of dims {dims:?}",
                p.scale.len()
            );
            (p.scale.len(), dims[a + 1..].iter().product::<i64>().max(1) as usize)
        }
    };
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % len;
            let (s, z) = (p.scale[c], p.zero_point[c]);
            let v = (v / s).max((lo - z) as f32).min((hi - z) as f32);
            v.round_ties_even() as i64 + z
        })
        .collect())
}

// ---- identity ----------------------------------------------------------------------------

fn output_name_can_be_kept(g: &Graph, m: &Match) -> Result<(), Refusal> {
    let out = out0(m);
    if !g.is_output(Operand::Value(out)) {
        return Ok(());
    }
    let name = &g.value(out).name;
    let x = m.get("x");
    let ok = match x {
        Operand::Value(o) => g.node(o.node).op != Op::Input && !g.is_output(x),
        _ => false,
    };
    ensure!(ok, "graph output '{name}' is a copy of '{}', which cannot take its name", g.operand_name(x));
    Ok(())
}

fn remove_identity(_: &Graph, m: &Match) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.replace(out0(m), m.get("x"));
    p.remove(m.root());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs cleanup then dce; returns the printed graph followed by the remarks.
    fn check(text: &str) -> String {
        crate::rules::run_and_print(&pass(), text)
    }

    #[test]
    fn the_table_builds() {
        let names: Vec<_> = rules().iter().map(|r| r.name).collect();
        assert_eq!(names, ["dq-q-same", "q-of-const", "identity"]);
    }

    #[test]
    fn dq_q_same_removes_the_pair() {
        // Equal by value, not by name; the DQ with another consumer stays for it.
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  const %s2: f32[] 0.5
  const %z2: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %r = QuantizeLinear(%d, %s2, %z2)
  %y = DequantizeLinear(%r, %s, %z)
  %t = Relu(%d)
  output %y
  output %t
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[4]
          const %s: f32[] 0.5
          const %z: u8[] 128
          %q: u8[4] q(0.5, 128) = QuantizeLinear(%x, %s, %z)
          %d: f32[4] = DequantizeLinear(%q, %s, %z)
          %y: f32[4] = DequantizeLinear(%q, %s, %z)
          %t: f32[4] = Relu(%d)
          output %y
          output %t
        }
        "#);
    }

    #[test]
    fn dq_q_same_per_axis_and_graph_output_name() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[1,2]
  const %s: f32[2] [0.5, 0.25]
  const %z: i8[2] [0, 1]
  %q = QuantizeLinear[axis=1](%x, %s, %z)
  %d = DequantizeLinear[axis=-1](%q, %s, %z)
  %r = QuantizeLinear[axis=1](%d, %s, %z)
  output %r
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[1,2]
          const %s: f32[2] [0.5, 0.25]
          const %z: i8[2] [0, 1]
          %r: i8[1,2] q(%s, %z, axis=1) = QuantizeLinear[axis=1](%x, %s, %z)
          output %r
        }
        "#);
    }

    const PAIR: &str = r#"graph "g" opset(ai.onnx=21) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %r = QuantizeLinearA(%d, S2, Z2)
  %y = DequantizeLinearA(%r, S2, Z2)
  output %y
}
"#;

    fn pair(s2: &str, z2: &str, consts: &str) -> String {
        let axis = if s2 == "%sv" { "[axis=0]" } else { "" };
        PAIR.replace("S2", s2)
            .replace("Z2", z2)
            .replace("LinearA", &format!("Linear{axis}"))
            .replace("  %q =", &format!("{consts}  %q ="))
    }

    #[test]
    fn dq_q_same_refuses_other_params() {
        let out =
            |s2, z2, c| check(&pair(s2, z2, c)).lines().filter(|l| l.starts_with("// ")).collect::<Vec<_>>().join("\n");
        insta::assert_snapshot!(out("%s", "%z0", "  const %z0: u8[] 0\n"), @"// remark dq-q-same: QuantizeLinear (producing 'r'): zero points differ: 128 vs 0");
        insta::assert_snapshot!(out("%s4", "%z", "  const %s4: f32[] 0.25\n"), @"// remark dq-q-same: QuantizeLinear (producing 'r'): scales differ: 0.5 vs 0.25");
        insta::assert_snapshot!(out("%s", "%zi", "  const %zi: i8[] 0\n"), @"// remark dq-q-same: QuantizeLinear (producing 'r'): integer types differ: u8 vs i8");
        insta::assert_snapshot!(out("%sv", "%zv", "  const %sv: f32[4] [0.5, 0.5, 0.5, 0.5]\n  const %zv: u8[4] [128, 128, 128, 128]\n"), @"// remark dq-q-same: QuantizeLinear (producing 'r'): quantization axes differ: None vs Some(0)");
        insta::assert_snapshot!(out("%sx", "%z", "  input %sx: f32[]\n"), @"// remark dq-q-same: QuantizeLinear (producing 'r'): scale of QuantizeLinear (producing 'r') is not a constant with known data");
    }

    #[test]
    fn dq_q_same_refuses_a_zero_scale_and_keeps_a_graph_input() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %q: u8[4]
  const %s: f32[] 0.0
  const %z: u8[] 128
  %d = DequantizeLinear(%q, %s, %z)
  %r = QuantizeLinear(%d, %s, %z)
  output %r
}
"#;
        insta::assert_snapshot!(check(text), @r#"
        graph "g" opset(ai.onnx=17) {
          input %q: u8[4] q(0.0, 128)
          const %s: f32[] 0.0
          const %z: u8[] 128
          %d: f32[4] = DequantizeLinear(%q, %s, %z)
          %r: u8[4] q(0.0, 128) = QuantizeLinear(%d, %s, %z)
          output %r
        }
        // remark dq-q-same: QuantizeLinear (producing 'r'): scale 0 is not a positive normal number
        "#);
        let text = text.replace("0.0\n", "0.5\n");
        insta::assert_snapshot!(check(&text).lines().last().unwrap(), @"// remark dq-q-same: QuantizeLinear (producing 'r'): 'r' is a graph output and 'q' cannot take its name");
    }

    #[test]
    fn q_of_const_folds_per_tensor_and_per_axis() {
        // 1.25/0.5 = 2.5 → 2 (half to even), 300/0.5 saturates at 127, NaN goes to the low end.
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2,3]
  const %w: f32[2,3] [1.25, -0.75, 300.0, 0.3, -1.0, NaN]
  const %s: f32[] 0.5
  const %z: i8[] 0
  const %sc: f32[2] [0.5, 0.1]
  const %zc: u8[2] [128, 10]
  %wq = QuantizeLinear(%w, %s, %z)
  %wd = DequantizeLinear(%wq, %s, %z)
  %wq2 = QuantizeLinear[axis=0](%w, %sc, %zc)
  %wd2 = DequantizeLinear[axis=0](%wq2, %sc, %zc)
  %a = Add(%x, %wd)
  %y = Add(%a, %wd2)
  output %y
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[2,3]
          const %s: f32[] 0.5
          const %z: i8[] 0
          const %sc: f32[2] [0.5, 0.1]
          const %zc: u8[2] [128, 10]
          const %w_quantized: i8[2,3] [2, -2, 127, 1, -2, -128]
          const %w_quantized_1: u8[2,3] [130, 126, 255, 13, 0, 0]
          %wd: f32[2,3] = DequantizeLinear(%w_quantized, %s, %z)
          %wd2: f32[2,3] = DequantizeLinear[axis=0](%w_quantized_1, %sc, %zc)
          %a: f32[2,3] = Add(%x, %wd)
          %y: f32[2,3] = Add(%a, %wd2)
          output %y
        }
        "#);
    }

    #[test]
    fn q_of_const_refusals() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[20]
  const %w: W
  const %s: f32[] 0.5
  const %z: ZT 0
  %wq = QuantizeLinear(%w, %s, %z)
  %wd = DequantizeLinear(%wq, %s, %z)
  %y = Add(%x, %wd)
  output %y
}
"#;
        let remark =
            |w: &str, zt: &str| check(&text.replace("W", w).replace("ZT", zt)).lines().last().unwrap().to_string();
        insta::assert_snapshot!(remark("f64[1] [1.0]", "u8[]"), @"// remark q-of-const: QuantizeLinear (producing 'wq'): the constant is f64, not f32/f16/bf16");
        insta::assert_snapshot!(remark("f32[20] #0123456789abcdef [1.0, …]", "u8[]"), @"// remark q-of-const: QuantizeLinear (producing 'wq'): the constant's data is not available");
        insta::assert_snapshot!(remark("f32[1] [1.0]", "i32[]"), @"// remark q-of-const: QuantizeLinear (producing 'wq'): output type i32 is not an integer of at most 16 bits");
    }

    #[test]
    fn identity_is_removed_and_output_names_kept() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  %a = Relu(%x)
  %b = Identity(%a)
  %c = Identity(%b)
  %y = Identity(%c)
  %z = Sigmoid(%b)
  output %y
  output %z
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[4]
          %y: f32[4] = Relu(%x)
          %z: f32[4] = Sigmoid(%y)
          output %y
          output %z
        }
        "#);
    }

    #[test]
    fn identity_of_an_input_or_another_output_stays() {
        insta::assert_snapshot!(check(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  %y = Identity(%x)
  %r = Relu(%x)
  %r2 = Identity(%r)
  output %y
  output %r
  output %r2
}
"#), @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[4]
          %y: f32[4] = Identity(%x)
          %r: f32[4] = Relu(%x)
          %r2: f32[4] = Identity(%r)
          output %y
          output %r
          output %r2
        }
        // remark identity: Identity (producing 'r2'): graph output 'r2' is a copy of 'r', which cannot take its name
        // remark identity: Identity (producing 'y'): graph output 'y' is a copy of 'x', which cannot take its name
        "#);
    }
}
