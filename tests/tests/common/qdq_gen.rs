//! The random QDQ graph generator of the property tests (`compile_props`, `saturate`): graphs
//! are built as IR text from a list of [`Step`]s, so a failure shrinks to a short list. See
//! `compile_props.rs` for what it covers.

use proptest::prelude::*;
use std::fmt::Write as _;

/// One node to add: which op, which earlier values it reads, and its parameters.
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    a: usize,
    b: usize,
    /// log2 of the output scale.
    scale_log2: f64,
    zp: i64,
    /// Keep the input's quantization parameters (as quantizers do for MaxPool, Reshape, …).
    same_q: bool,
    /// Op-specific choices (kernel size, per-channel, bias kind, channel counts).
    variant: u8,
    seed: u64,
}

/// A quantized value of the graph being built.
#[derive(Clone, Debug)]
struct QValue {
    name: String,
    shape: Vec<usize>,
    signed: bool,
    scale: f64,
    zp: i64,
}

struct Gen {
    text: String,
    values: Vec<QValue>,
    consumed: Vec<bool>,
    n: usize,
    rng: u64,
}

fn dims(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

impl Gen {
    fn next(&mut self) -> u64 {
        // SplitMix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    fn fresh(&mut self, what: &str) -> String {
        self.n += 1;
        format!("%{what}{}", self.n)
    }
    fn scalar_q(&mut self, scale: f64, zp: i64, signed: bool) -> (String, String) {
        let (s, z) = (self.fresh("s"), self.fresh("z"));
        let t = if signed { "i8" } else { "u8" };
        let _ = writeln!(self.text, "  const {s}: f32[] {}", scale as f32);
        let _ = writeln!(self.text, "  const {z}: {t}[] {zp}");
        (s, z)
    }
    /// DequantizeLinear of value `i`; returns the float name.
    fn dq(&mut self, i: usize) -> String {
        self.consumed[i] = true;
        let v = self.values[i].clone();
        let (s, z) = self.scalar_q(v.scale, v.zp, v.signed);
        let d = self.fresh("d");
        let _ = writeln!(self.text, "  {d} = DequantizeLinear({}, {s}, {z})", v.name);
        d
    }
    /// QuantizeLinear of float `f`; adds the result to the pool.
    fn q(&mut self, f: &str, shape: Vec<usize>, scale: f64, zp: i64, signed: bool) {
        let (s, z) = self.scalar_q(scale, zp, signed);
        let q = self.fresh("q");
        let _ = writeln!(self.text, "  {q} = QuantizeLinear({f}, {s}, {z})");
        self.values.push(QValue { name: q, shape, signed, scale, zp });
        self.consumed.push(false);
    }
    /// An int8 weight behind DQ (per-channel along `axis` when `per_channel`); returns the float name.
    fn weight(&mut self, shape: &[usize], per_channel: bool, axis: usize) -> (String, Vec<f64>) {
        let count: usize = shape.iter().product();
        let w: Vec<i64> = (0..count).map(|_| self.int(-127, 127)).collect();
        let (wn, d) = (self.fresh("w"), self.fresh("wd"));
        let _ = writeln!(self.text, "  const {wn}: i8[{}] [{}]", dims(shape), list(&w));
        let channels = if per_channel { shape[axis] } else { 1 };
        let scales: Vec<f64> = (0..channels).map(|_| 2f64.powf(self.int(-90, -30) as f64 / 10.0)).collect();
        let (s, z) = (self.fresh("ws"), self.fresh("wz"));
        if per_channel {
            let sv: Vec<f32> = scales.iter().map(|&x| x as f32).collect();
            let _ = writeln!(self.text, "  const {s}: f32[{channels}] [{}]", list(&sv));
            let _ = writeln!(self.text, "  const {z}: i8[{channels}] [{}]", list(&vec![0; channels]));
            let _ = writeln!(self.text, "  {d} = DequantizeLinear[axis={axis}]({wn}, {s}, {z})");
        } else {
            let _ = writeln!(self.text, "  const {s}: f32[] {}", scales[0] as f32);
            let _ = writeln!(self.text, "  const {z}: i8[] 0");
            let _ = writeln!(self.text, "  {d} = DequantizeLinear({wn}, {s}, {z})");
        }
        (d, scales)
    }
    /// A bias for `n` outputs: none, int32 behind DQ (scale = input scale × weight scale), or float.
    fn bias(&mut self, kind: u8, n: usize, x_scale: f64, w_scales: &[f64]) -> Option<String> {
        match kind % 3 {
            0 => None,
            1 => {
                let b: Vec<i64> = (0..n).map(|_| self.int(-2000, 2000)).collect();
                let (bn, s, z, d) = (self.fresh("b"), self.fresh("bs"), self.fresh("bz"), self.fresh("bd"));
                let _ = writeln!(self.text, "  const {bn}: i32[{n}] [{}]", list(&b));
                if w_scales.len() > 1 {
                    let sv: Vec<f32> = w_scales.iter().map(|&w| (x_scale * w) as f32).collect();
                    let _ = writeln!(self.text, "  const {s}: f32[{n}] [{}]", list(&sv));
                    let _ = writeln!(self.text, "  const {z}: i32[{n}] [{}]", list(&vec![0; n]));
                    let _ = writeln!(self.text, "  {d} = DequantizeLinear[axis=0]({bn}, {s}, {z})");
                } else {
                    let _ = writeln!(self.text, "  const {s}: f32[] {}", (x_scale * w_scales[0]) as f32);
                    let _ = writeln!(self.text, "  const {z}: i32[] 0");
                    let _ = writeln!(self.text, "  {d} = DequantizeLinear({bn}, {s}, {z})");
                }
                Some(d)
            }
            _ => {
                let b: Vec<f32> = (0..n).map(|_| self.int(-1000, 1000) as f32 / 1000.0).collect();
                let bn = self.fresh("bf");
                let _ = writeln!(self.text, "  const {bn}: f32[{n}] [{}]", list(&b));
                Some(bn)
            }
        }
    }

    fn step(&mut self, st: &Step) {
        let op = st.op % 16;
        // The operand: the first value from `a` on of the rank the op takes. MatMul and Gemm on a
        // 4-D value get a quantized Flatten first; other ops without a 4-D operand become Relu.
        let n = self.values.len();
        let find = |g: &Gen, rank: usize| (0..n).map(|k| (st.a + k) % n).find(|&k| g.values[k].shape.len() == rank);
        let (ai, op) = match op {
            0 | 5 | 6 | 7 | 8 | 12 => match find(self, 4) {
                Some(i) => (i, op),
                None => (st.a % n, 1),
            },
            2 | 3 => match find(self, 2) {
                Some(i) => (i, op),
                None => {
                    let i = st.a % n;
                    let flat = Step { op: 8, a: i, same_q: true, ..st.clone() };
                    self.step(&flat);
                    (self.values.len() - 1, op)
                }
            },
            _ => (st.a % n, op),
        };
        let x = self.values[ai].clone();
        let signed = x.signed;
        let (lo, hi) = if signed { (-128, 127) } else { (0, 255) };
        let zp_range = |zp: i64| zp.clamp(lo, hi);
        let scale = 2f64.powf(st.scale_log2);
        let (mut out_scale, mut out_zp) = (scale, zp_range(st.zp));
        let same_shape_partner = |g: &Gen, want: &dyn Fn(&[usize]) -> bool| -> Option<usize> {
            let n = g.values.len();
            (0..n).map(|k| (st.b + k) % n).find(|&k| want(&g.values[k].shape))
        };
        match op {
            0 => {
                // Conv
                let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
                let cout = 1 + (st.seed % 8) as usize;
                let k = if st.variant & 1 == 1 && h >= 3 && w >= 3 { 3 } else { 1 };
                let per_channel = st.variant & 2 == 2;
                let pad = st.variant & 4 == 4 && k == 3;
                let d = self.dq(ai);
                let (wd, ws) = self.weight(&[cout, c, k, k], per_channel, 0);
                let b = self.bias(st.variant >> 3, cout, x.scale, &ws);
                let y = self.fresh("conv");
                let pads = if pad { ", pads=[1,1,1,1]" } else { "" };
                let args = match b {
                    Some(b) => format!("{d}, {wd}, {b}"),
                    None => format!("{d}, {wd}"),
                };
                let _ = writeln!(self.text, "  {y} = Conv[kernel_shape=[{k},{k}]{pads}]({args})");
                let (oh, ow) = if pad || k == 1 { (h, w) } else { (h - 2, w - 2) };
                self.q(&y, vec![x.shape[0], cout, oh, ow], out_scale, out_zp, signed);
            }
            1 | 4 | 13 => {
                // Relu, Clip, Sigmoid
                let d = self.dq(ai);
                let y = self.fresh("u");
                match op {
                    1 => {
                        let _ = writeln!(self.text, "  {y} = Relu({d})");
                    }
                    4 => {
                        let (a, b) = (self.fresh("cmin"), self.fresh("cmax"));
                        let mn = self.int(-20, 5) as f32 / 10.0;
                        let _ = writeln!(self.text, "  const {a}: f32[] {mn}");
                        let mx = mn + self.int(1, 60) as f32 / 10.0;
                        let _ = writeln!(self.text, "  const {b}: f32[] {mx}");
                        let _ = writeln!(self.text, "  {y} = Clip({d}, {a}, {b})");
                    }
                    _ => {
                        let _ = writeln!(self.text, "  {y} = Sigmoid({d})");
                        // Sigmoid's output is in [0, 1]: a step of 1/256 or so.
                        out_scale = 2f64.powf(-(self.int(70, 90) as f64) / 10.0);
                    }
                }
                self.q(&y, x.shape.clone(), out_scale, out_zp, signed);
            }
            2 | 3 => {
                // MatMul [B,K]x[K,N], Gemm [B,K]x[N,K]^T (+ bias)
                let kdim = x.shape[1];
                let n = 1 + (st.seed % 8) as usize;
                let d = self.dq(ai);
                let y = self.fresh("mm");
                if op == 2 {
                    let (wd, _) = self.weight(&[kdim, n], st.variant & 2 == 2, 1);
                    let _ = writeln!(self.text, "  {y} = MatMul({d}, {wd})");
                } else {
                    let (wd, ws) = self.weight(&[n, kdim], st.variant & 2 == 2, 0);
                    let b = self.bias(st.variant >> 3, n, x.scale, &ws);
                    let args = match b {
                        Some(b) => format!("{d}, {wd}, {b}"),
                        None => format!("{d}, {wd}"),
                    };
                    let _ = writeln!(self.text, "  {y} = Gemm[transB=1]({args})");
                }
                self.q(&y, vec![x.shape[0], n], out_scale, out_zp, signed);
            }
            5 | 6 => {
                // MaxPool, AveragePool
                let (h, w) = (x.shape[2], x.shape[3]);
                let k = if h >= 2 && w >= 2 && st.variant & 1 == 1 { 2 } else { 1 };
                let d = self.dq(ai);
                let y = self.fresh("pool");
                let name = if op == 5 { "MaxPool" } else { "AveragePool" };
                let _ = writeln!(self.text, "  {y} = {name}[kernel_shape=[{k},{k}], strides=[{k},{k}]]({d})");
                if op == 5 || st.same_q {
                    (out_scale, out_zp) = (x.scale, x.zp);
                }
                self.q(&y, vec![x.shape[0], x.shape[1], h / k, w / k], out_scale, out_zp, signed);
            }
            7 => {
                let d = self.dq(ai);
                let y = self.fresh("gap");
                let _ = writeln!(self.text, "  {y} = GlobalAveragePool({d})");
                self.q(&y, vec![x.shape[0], x.shape[1], 1, 1], out_scale, out_zp, signed);
            }
            8..=10 => {
                // Flatten (axis 1), Reshape to [B, rest], Transpose
                let d = self.dq(ai);
                let y = self.fresh("t");
                let rest: usize = x.shape[1..].iter().product();
                let shape = match op {
                    8 => {
                        let _ = writeln!(self.text, "  {y} = Flatten[axis=1]({d})");
                        vec![x.shape[0], rest]
                    }
                    9 => {
                        let s = self.fresh("shape");
                        let _ = writeln!(self.text, "  const {s}: i64[2] [{}, {rest}]", x.shape[0]);
                        let _ = writeln!(self.text, "  {y} = Reshape({d}, {s})");
                        vec![x.shape[0], rest]
                    }
                    _ => {
                        let mut perm: Vec<usize> = (0..x.shape.len()).collect();
                        let r = perm.len();
                        perm.swap(r - 1, r - 2);
                        let _ = writeln!(self.text, "  {y} = Transpose[perm=[{}]]({d})", dims(&perm));
                        perm.iter().map(|&p| x.shape[p]).collect()
                    }
                };
                if st.same_q {
                    (out_scale, out_zp) = (x.scale, x.zp);
                }
                self.q(&y, shape, out_scale, out_zp, signed);
            }
            11 | 14 | 15 => {
                // Add, Mul (same shape, same signedness), Add of a value with itself
                let xs = x.shape.clone();
                let bi = if op == 15 { ai } else { same_shape_partner(self, &|s| s == xs.as_slice()).unwrap_or(ai) };
                let bi = if self.values[bi].signed == signed { bi } else { ai };
                let (da, db) = (self.dq(ai), self.dq(bi));
                let y = self.fresh("e");
                let name = if op == 14 { "Mul" } else { "Add" };
                let _ = writeln!(self.text, "  {y} = {name}({da}, {db})");
                self.q(&y, xs, out_scale, out_zp, signed);
            }
            _ => {
                // Concat along channels with a value of the same batch and spatial size
                let xs = x.shape.clone();
                let want = |s: &[usize]| s.len() == xs.len() && s[0] == xs[0] && s[2..] == xs[2..];
                let bi = same_shape_partner(self, &want).unwrap_or(ai);
                let bi = if self.values[bi].signed == signed { bi } else { ai };
                let other = self.values[bi].shape[1];
                let (da, db) = (self.dq(ai), self.dq(bi));
                let y = self.fresh("cat");
                let _ = writeln!(self.text, "  {y} = Concat[axis=1]({da}, {db})");
                let mut shape = xs;
                shape[1] += other;
                self.q(&y, shape, out_scale, out_zp, signed);
            }
        }
    }
}

/// The IR text of a random graph: input `%x: f32[B,C,H,W]`, quantized, the steps, and every value
/// no step consumed dequantized as a graph output.
fn build(shape: [usize; 4], signed: bool, in_scale_log2: f64, in_zp: i64, steps: &[Step]) -> String {
    let mut g = Gen { text: String::new(), values: Vec::new(), consumed: Vec::new(), n: 0, rng: 0 };
    g.rng = steps.iter().fold(shape.iter().sum::<usize>() as u64, |h, s| h.wrapping_mul(31).wrapping_add(s.seed));
    let _ = writeln!(g.text, "graph \"props\" opset(ai.onnx=17) {{");
    let _ = writeln!(g.text, "  input %x: f32[{}]", dims(&shape));
    let zp = if signed { in_zp.clamp(-128, 127) } else { in_zp.clamp(0, 255) };
    g.q("%x", shape.to_vec(), 2f64.powf(in_scale_log2), zp, signed);
    for st in steps {
        g.step(st);
    }
    for i in 0..g.values.len() {
        if !g.consumed[i] {
            let d = g.dq(i);
            let _ = writeln!(g.text, "  output {d}");
        }
    }
    g.text.push_str("}\n");
    g.text
}

fn step() -> impl Strategy<Value = Step> {
    (0u8..16, 0usize..8, 0usize..8, -8.0f64..1.0, -128i64..256, any::<bool>(), any::<u8>(), any::<u64>()).prop_map(
        |(op, a, b, scale_log2, zp, same_q, variant, seed)| Step { op, a, b, scale_log2, zp, same_q, variant, seed },
    )
}

pub fn graph_text() -> impl Strategy<Value = String> {
    (
        1usize..3,
        1usize..9,
        1usize..7,
        1usize..7,
        any::<bool>(),
        -7.0f64..-2.0,
        -128i64..256,
        prop::collection::vec(step(), 1..7),
    )
        .prop_map(|(b, c, h, w, signed, s, zp, steps)| build([b, c, h, w], signed, s, zp, &steps))
}
