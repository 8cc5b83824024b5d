//! Float MatMul (batched, broadcast) and Gemm, on [`super::gemm::sgemm`].

use ndarray::{ArrayD, IxDyn};
use qdqc_ir::Op;

use super::gemm::sgemm;
use super::{broadcast_shapes, f32_input, f32_output, Ctx, Registry};
use crate::error::{ensure, KResult};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.add(Op::MatMul, matmul);
    r.add(Op::Gemm, gemm);
}

/// The shapes of a (possibly batched, broadcast) matrix product `a [.., m, k] × b [.., k, n]`.
#[derive(Debug)]
pub(crate) struct MatMulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Element offset of each batch's matrix in `a` and `b` (contiguous, row-major), in output order.
    pub a_offsets: Vec<usize>,
    pub b_offsets: Vec<usize>,
    pub out_shape: Vec<usize>,
    /// `b` is one matrix shared by every batch (then `a`'s batches may be folded into `m`).
    pub b_shared: bool,
}

impl MatMulShape {
    pub(crate) fn of(a: &[usize], b: &[usize]) -> KResult<MatMulShape> {
        ensure!(!a.is_empty() && !b.is_empty(), "MatMul of a scalar");
        let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
        let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        ensure!(k == kb, "inner dimensions differ: {a:?} × {b:?}");
        let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
        let batch = broadcast_shapes(ab, bb)?;
        let offsets = |own: &[usize], mat: usize| -> Vec<usize> {
            // Strides of `own` (in matrices), zero where broadcast.
            let r = batch.len();
            let mut strides = vec![0usize; r];
            let mut s = mat;
            for i in (0..own.len()).rev() {
                let bi = i + r - own.len();
                strides[bi] = if own[i] == 1 { 0 } else { s };
                s *= own[i];
            }
            let total: usize = batch.iter().product();
            let mut out = Vec::with_capacity(total);
            let mut idx = vec![0usize; r];
            for _ in 0..total {
                out.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
                for d in (0..r).rev() {
                    idx[d] += 1;
                    if idx[d] < batch[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
            out
        };
        let mut out_shape = batch.clone();
        if a.len() > 1 {
            out_shape.push(m);
        }
        if b.len() > 1 {
            out_shape.push(n);
        }
        crate::limits::check_shape(&out_shape)?;
        Ok(MatMulShape {
            m,
            k,
            n,
            a_offsets: offsets(ab, m * k),
            b_offsets: offsets(bb, k * n),
            out_shape,
            b_shared: bb.iter().all(|&d| d == 1),
        })
    }

    pub(crate) fn batches(&self) -> usize {
        self.a_offsets.len()
    }

    /// Whether `a`'s batches are consecutive in memory, so that with a shared `b` they can be
    /// folded into one tall matrix.
    pub(crate) fn foldable(&self) -> bool {
        self.b_shared && self.a_offsets.iter().enumerate().all(|(i, &o)| o == i * self.m * self.k)
    }
}

fn contiguous(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn matmul(c: &Ctx) -> KResult<Vec<Value>> {
    let (av, bv) = (c.input(0)?, c.input(1)?);
    ensure!(av.dtype() == bv.dtype(), "input types differ: {} and {}", av.dtype(), bv.dtype());
    let (a, b) = (f32_input(av, "A")?, f32_input(bv, "B")?);
    let sh = MatMulShape::of(a.shape(), b.shape())?;
    let (ad, bd) = (contiguous(&a), contiguous(&b));
    let (m, k, n) = (sh.m, sh.k, sh.n);
    let mut out = vec![0f32; sh.batches() * m * n];
    if sh.foldable() {
        sgemm(sh.batches() * m, k, n, 1.0, &ad, k, 1, &bd, n, 1, 0.0, &mut out);
    } else {
        for (i, (&ao, &bo)) in sh.a_offsets.iter().zip(&sh.b_offsets).enumerate() {
            sgemm(m, k, n, 1.0, &ad[ao..], k, 1, &bd[bo..], n, 1, 0.0, &mut out[i * m * n..(i + 1) * m * n]);
        }
    }
    let y = ArrayD::from_shape_vec(IxDyn(&sh.out_shape), out)?;
    Ok(vec![f32_output(y, av.dtype())?])
}

/// `Y = alpha · op(A) · op(B) + beta · C`, C broadcast to [M, N].
fn gemm(c: &Ctx) -> KResult<Vec<Value>> {
    let (av, bv) = (c.input(0)?, c.input(1)?);
    let (a, b) = (f32_input(av, "A")?, f32_input(bv, "B")?);
    ensure!(a.ndim() == 2 && b.ndim() == 2, "A and B must be 2-D, got {:?} and {:?}", a.shape(), b.shape());
    let (ta, tb) = (c.int("transA", 0) != 0, c.int("transB", 0) != 0);
    let (alpha, beta) = (c.float("alpha", 1.0), c.float("beta", 1.0));
    let (m, k) = if ta { (a.shape()[1], a.shape()[0]) } else { (a.shape()[0], a.shape()[1]) };
    let (kb, n) = if tb { (b.shape()[1], b.shape()[0]) } else { (b.shape()[0], b.shape()[1]) };
    ensure!(k == kb, "inner dimensions differ: A {:?} (transA={ta}) × B {:?} (transB={tb})", a.shape(), b.shape());
    let (ad, bd) = (contiguous(&a), contiguous(&b));
    let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
    let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
    let mut out = vec![0f32; m * n];
    let mut beta_eff = 0.0;
    if let Some(cv) = c.opt(2) {
        if beta != 0.0 {
            let cc = f32_input(cv, "C")?;
            let shape = broadcast_shapes(cc.shape(), &[m, n])?;
            ensure!(shape == [m, n], "C of shape {:?} does not broadcast to [{m}, {n}]", cc.shape());
            let bc = cc.broadcast(IxDyn(&[m, n])).expect("broadcast shape");
            out.iter_mut().zip(bc.iter()).for_each(|(o, &v)| *o = v);
            beta_eff = beta;
        }
    }
    sgemm(m, k, n, alpha, &ad, rsa, csa, &bd, rsb, csb, beta_eff, &mut out);
    let y = ArrayD::from_shape_vec(IxDyn(&[m, n]), out)?;
    Ok(vec![f32_output(y, av.dtype())?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{f32v, run_op};
    use qdqc_ir::attr::{make_float, make_int};

    #[test]
    fn matmul_batched_broadcast_and_vectors() {
        // a [2, 1, 2, 3] × b [3, 3, 2] → [2, 3, 2, 2]
        let a = f32v(&[2, 1, 2, 3], &(0..12).map(|i| i as f32).collect::<Vec<_>>());
        let b = f32v(&[3, 3, 2], &(0..18).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>());
        let y = run_op(Op::MatMul, vec![], &[Some(a.clone()), Some(b.clone())], 13).remove(0);
        assert_eq!(y.shape(), &[2, 3, 2, 2]);
        let (ya, aa, ba) = (y.to_f32_vec().unwrap(), a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap());
        for i in 0..2 {
            for j in 0..3 {
                for r in 0..2 {
                    for col in 0..2 {
                        let want: f32 = (0..3).map(|p| aa[i * 6 + r * 3 + p] * ba[j * 6 + p * 2 + col]).sum();
                        assert_eq!(ya[((i * 3 + j) * 2 + r) * 2 + col], want);
                    }
                }
            }
        }
        let v = f32v(&[3], &[1., 2., 3.]);
        let w = f32v(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
        let y = run_op(Op::MatMul, vec![], &[Some(v.clone()), Some(w)], 13).remove(0);
        assert_eq!(y, f32v(&[2], &[4., 5.]));
        let y = run_op(Op::MatMul, vec![], &[Some(v.clone()), Some(v)], 13).remove(0);
        assert_eq!(y, f32v(&[], &[14.]));
    }

    #[test]
    fn gemm_transposes_alpha_beta() {
        let a = f32v(&[3, 2], &[1., 4., 2., 5., 3., 6.]); // Aᵀ = [[1,2,3],[4,5,6]]
        let b = f32v(&[2, 3], &[1., 0., 1., 0., 1., 1.]); // Bᵀ = [[1,0],[0,1],[1,1]]
        let cc = f32v(&[2], &[10., 20.]);
        let attrs =
            vec![make_int("transA", 1), make_int("transB", 1), make_float("alpha", 2.0), make_float("beta", 0.5)];
        let y = run_op(Op::Gemm, attrs, &[Some(a), Some(b), Some(cc)], 13).remove(0);
        // AᵀBᵀ = [[4, 5], [10, 11]]; ·2 + 0.5·[10, 20]
        assert_eq!(y, f32v(&[2, 2], &[13., 20., 25., 32.]));
    }
}
