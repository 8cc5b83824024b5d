//! `dedup-consts`: constants with equal dtype, dims and bytes are merged. Every node input that
//! reads a duplicate reads the first of them (in constant-table order) not left alone (below)
//! instead, and the duplicate, now unused, is removed. Passes make such duplicates (each fused
//! node gets its own quantized weights, zero points, folded scales), and exporters often repeat
//! scales and zero points.
//!
//! Left alone: graph input defaults ([`ConstOrigin::InputDefault`]: the caller may override
//! them), constants that are graph outputs (their names are interface), constants a subgraph
//! captures (the body refers to them by name), sparse constants and elided data.

use crate::{Pass, PassError, Remarks};
use qdqc_ir::{ConstId, ConstOrigin, DType, Graph, Operand, Outlet};
use std::collections::HashMap;

pub struct DedupConsts;

impl Pass for DedupConsts {
    fn name(&self) -> &'static str {
        "dedup-consts"
    }

    fn run(&self, graph: &mut Graph, _remarks: &mut Remarks) -> Result<usize, PassError> {
        // Constants that must keep their identity: graph outputs here, captured ones below.
        // (Tables by constant index: every node input is looked up below.)
        let mut pinned = vec![false; graph.const_bound()];
        for out in graph.outputs() {
            if let Operand::Const(c) = out.operand {
                pinned[c.0 as usize] = true;
            }
        }
        // Classes of equal constants, each named by its first member in constant-table order:
        // candidates are grouped by (dtype, dims, fingerprint), and within a group compared by
        // bytes with the first member of each class.
        let mut groups: HashMap<(DType, Vec<i64>, u64), Vec<ConstId>> = HashMap::new();
        let mut class_of: Vec<Option<ConstId>> = vec![None; graph.const_bound()];
        let mut equal = false;
        for (id, c) in graph.constants() {
            if pinned[id.0 as usize] || c.origin == ConstOrigin::InputDefault {
                continue;
            }
            let Some(t) = c.tensor() else { continue };
            let (Ok(dtype), Ok(fp)) = (t.dtype(), t.fingerprint()) else { continue };
            if dtype == DType::String {
                continue;
            }
            let Ok(bytes) = t.raw() else { continue };
            let group = groups.entry((dtype, t.dims().to_vec(), fp)).or_default();
            let same = group.iter().copied().find(|&k| {
                graph.constant(k).tensor().and_then(|kt| kt.raw().ok()).is_some_and(|kb| kb[..] == bytes[..])
            });
            class_of[id.0 as usize] = Some(match same {
                Some(k) => {
                    equal = true;
                    k
                }
                None => {
                    group.push(id);
                    id
                }
            });
        }
        // Nothing to merge: no node need be read (pinning more constants cannot make any equal).
        if !equal {
            return Ok(0);
        }
        // Every node, graph inputs included (their values may carry quantization parameters).
        let ids: Vec<_> = graph.node_ids().collect();
        for &id in &ids {
            for o in graph.node(id).captures() {
                if let Operand::Const(c) = o {
                    pinned[c.0 as usize] = true;
                }
            }
        }
        // In each class the first constant not pinned is kept, and the others are duplicates of it.
        let mut kept: Vec<Option<ConstId>> = vec![None; graph.const_bound()];
        let mut keeper_of: Vec<Option<ConstId>> = vec![None; graph.const_bound()];
        let mut dups: Vec<ConstId> = Vec::new();
        for (i, class) in class_of.iter().enumerate() {
            let (Some(class), false) = (class, pinned[i]) else { continue };
            match kept[class.0 as usize] {
                Some(k) => {
                    keeper_of[i] = Some(k);
                    dups.push(ConstId(i as u32));
                }
                None => kept[class.0 as usize] = Some(ConstId(i as u32)),
            }
        }
        if dups.is_empty() {
            return Ok(0);
        }
        let keeper = |c: ConstId| keeper_of[c.0 as usize];
        for &id in &ids {
            let edits: Vec<(usize, ConstId)> = graph
                .node(id)
                .inputs()
                .iter()
                .enumerate()
                .filter_map(|(i, o)| match o {
                    Operand::Const(c) => keeper(*c).map(|k| (i, k)),
                    _ => None,
                })
                .collect();
            for (i, k) in edits {
                graph.set_input(id, i, Operand::Const(k));
            }
            // Values' quantization parameters name constants too. (`value_mut`, not `node_mut`:
            // this edits no order key, so the cached topological order stays.)
            for slot in 0..graph.node(id).outputs.len() {
                if let Some(q) = &mut graph.value_mut(Outlet::new(id, slot as u32)).quant {
                    if let Some(k) = keeper(q.scale) {
                        q.scale = k;
                    }
                    if let Some(k) = q.zero_point.and_then(keeper) {
                        q.zero_point = Some(k);
                    }
                }
            }
        }
        for &c in &dups {
            graph.remove_const(c);
        }
        Ok(dups.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (usize, String) {
        let mut g = qdqc_ir::text::parse(text).unwrap();
        let n = DedupConsts.run(&mut g, &mut Remarks::new()).unwrap();
        g.verify().unwrap();
        (n, qdqc_ir::text::print(&g))
    }

    #[test]
    fn equal_constants_are_merged_and_others_kept() {
        // s2 = s (merged); s3 has other bytes, z16 another dtype, v another shape, nz is -0.0.
        let (n, out) = run(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2]
  const %s: f32[] 0.5
  const %s2: f32[] 0.5
  const %s3: f32[] 0.25
  const %z: u8[] 0
  const %z16: u16[] 0
  const %v: f32[1] [0.5]
  const %zero: f32[] 0.0
  const %nz: f32[] -0.0
  %a = QuantizeLinear(%x, %s, %z)
  %b = QuantizeLinear(%x, %s2, %z)
  %c = QuantizeLinear(%x, %s3, %z)
  %d = QuantizeLinear(%x, %s2, %z16)
  %e = Mul(%x, %v)
  %f = Add(%x, %zero)
  %h = Add(%f, %nz)
  output %a
  output %b
  output %c
  output %d
  output %e
  output %h
}
"#);
        assert_eq!(n, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[2]
          const %s: f32[] 0.5
          const %s3: f32[] 0.25
          const %z: u8[] 0
          const %z16: u16[] 0
          const %v: f32[1] [0.5]
          const %zero: f32[] 0.0
          const %nz: f32[] -0.0
          %a: u8[2] q(0.5, 0) = QuantizeLinear(%x, %s, %z)
          %b: u8[2] q(0.5, 0) = QuantizeLinear(%x, %s, %z)
          %c: u8[2] q(0.25, 0) = QuantizeLinear(%x, %s3, %z)
          %d: u16[2] q(0.5, 0) = QuantizeLinear(%x, %s, %z16)
          %e: f32[2] = Mul(%x, %v)
          %f: f32[2] = Add(%x, %zero)
          %h: f32[2] = Add(%f, %nz)
          output %a
          output %b
          output %c
          output %d
          output %e
          output %h
        }
        "#);
    }

    #[test]
    fn outputs_input_defaults_and_captures_stay() {
        // `o` is a graph output: it is neither merged into `k` nor does anything read it in `k`'s
        // stead; `w` (an input's default) is interface; `dup` merges into `k`.
        let (n, out) = run(r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2]
  input %w: f32[]
  const(default) %w: f32[] 0.5
  const %k: f32[] 0.5
  const %o: f32[] 0.5
  const %dup: f32[] 0.5
  %a = Mul(%x, %k)
  %b = Mul(%a, %dup)
  %c = Mul(%b, %w)
  %d = Mul(%c, %o)
  output %d
  output %o
}
"#);
        assert_eq!(n, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %x: f32[2]
          input %w: f32[]
          const(default) %w: f32[] 0.5
          const %k: f32[] 0.5
          const %o: f32[] 0.5
          %a: f32[2] = Mul(%x, %k)
          %b: f32[2] = Mul(%a, %k)
          %c: f32[2] = Mul(%b, %w)
          %d: f32[2] = Mul(%c, %o)
          output %d
          output %o
        }
        "#);
    }

    #[test]
    fn a_captured_constant_stays_and_the_next_equal_one_is_kept() {
        // `k`, first of the three equal constants, is read by a subgraph: it stays, `a` is kept
        // and `b` reads `a`.
        let (n, out) = run(r#"graph "g" opset(ai.onnx=17) {
  input %c: bool[]
  input %x: f32[2]
  const %k: f32[] 0.5
  const %a: f32[] 0.5
  const %b: f32[] 0.5
  %y: f32[2] = If[then_branch=graph {
    %r: f32[2] = Mul(%x, %k)
    output %r
  }, else_branch=graph {
    output %x
  }](%c)
  %p = Mul(%y, %a)
  %q = Mul(%p, %b)
  %s = Mul(%q, %k)
  output %s
}
"#);
        assert_eq!(n, 1);
        insta::assert_snapshot!(out, @r#"
        graph "g" opset(ai.onnx=17) {
          input %c: bool[]
          input %x: f32[2]
          const %k: f32[] 0.5
          const %a: f32[] 0.5
          %y: f32[2] = If[then_branch=graph {
            %r: f32[2] = Mul(%x, %k)
            output %r
          }, else_branch=graph {
            output %x
          }](%c)
          %p: f32[2] = Mul(%y, %a)
          %q: f32[2] = Mul(%p, %a)
          %s: f32[2] = Mul(%q, %k)
          output %s
        }
        "#);
    }

    #[test]
    fn a_constant_equal_only_to_a_captured_one_stays() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %c: bool[]
  input %x: f32[2]
  const %k: f32[] 0.5
  const %a: f32[] 0.5
  %y: f32[2] = If[then_branch=graph {
    %r: f32[2] = Mul(%x, %k)
    output %r
  }, else_branch=graph {
    output %x
  }](%c)
  %p: f32[2] = Mul(%y, %a)
  output %p
}
"#;
        assert_eq!(run(text), (0, text.to_string()));
    }

    #[test]
    fn nothing_to_do_is_zero_changes() {
        let text = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[2]
  const %k: f32[] 0.5
  %a = Mul(%x, %k)
  output %a
}
"#;
        let (n, out) = run(text);
        assert_eq!((n, out.as_str()), (0, qdqc_ir::text::print(&qdqc_ir::text::parse(text).unwrap()).as_str()));
    }
}
