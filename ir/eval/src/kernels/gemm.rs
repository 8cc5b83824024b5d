//! Matrix-multiply cores shared by Conv, MatMul, Gemm and the integer ops.
//!
//! - [`sgemm`]: f32, `matrixmultiply`'s packed kernels (runtime-detected AVX/FMA), rows split over
//!   rayon.
//! - [`igemm_nt`]: `i16 × i16 → i32` with exact (wrapping, hence order-independent) accumulation,
//!   `C[m][n] = Σ_k A[m][k]·B[n][k]`. Callers subtract zero points first (u8/i8 minus a zero
//!   point fits i16), so the result equals onnxruntime's i32 accumulator bit for bit. The dot
//!   product is compiled twice, for AVX2 (chosen at run time) and for the baseline.

use rayon::prelude::*;

/// `c (m×n, row-major) = alpha · a (m×k) · b (k×n) + beta · c`, with `a`/`b` given by row/column
/// strides (in elements). `c` is contiguous with row stride `n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n, "sgemm output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    // Check that the strided operands lie within their slices.
    assert!((m - 1) * rsa + (k - 1) * csa < a.len(), "sgemm: a out of bounds");
    assert!((k - 1) * rsb + (n - 1) * csb < b.len(), "sgemm: b out of bounds");
    let work = m * n * k;
    let threads = rayon::current_num_threads();
    let rows = if work < (1 << 18) || threads == 1 || m < 2 { m } else { m.div_ceil(threads * 2).max(8) };
    c[..m * n].par_chunks_mut(rows * n).enumerate().for_each(|(i, cc)| {
        let m0 = i * rows;
        let mm = cc.len() / n;
        // SAFETY: the bounds of a, b and cc were checked above; matrixmultiply reads
        // a[m0.., ..k] and b[..k, ..n] through the given strides and writes cc[..mm*n].
        unsafe {
            matrixmultiply::sgemm(
                mm,
                k,
                n,
                alpha,
                a.as_ptr().add(m0 * rsa),
                rsa as isize,
                csa as isize,
                b.as_ptr(),
                rsb as isize,
                csb as isize,
                beta,
                cc.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    });
}

#[inline(always)]
fn dot_i16_generic(a: &[i16], b: &[i16]) -> i32 {
    const L: usize = 16;
    let mut acc = [0i32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] = acc[i].wrapping_add(x[i] as i32 * y[i] as i32);
        }
    }
    let mut s = acc.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    for (&x, &y) in ra.iter().zip(rb) {
        s = s.wrapping_add(x as i32 * y as i32);
    }
    s
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i16_avx2(a: &[i16], b: &[i16]) -> i32 {
    dot_i16_generic(a, b)
}

type DotFn = fn(&[i16], &[i16]) -> i32;

fn pick_dot() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return |a, b| unsafe { dot_i16_avx2(a, b) };
        }
    }
    dot_i16_generic
}

/// The exact i16 dot product (wrapping i32 accumulation).
#[cfg(test)]
pub(crate) fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    static DOT: std::sync::OnceLock<DotFn> = std::sync::OnceLock::new();
    (DOT.get_or_init(pick_dot))(a, b)
}

/// `c[m][n] = Σ_k a[m][k] · bt[n][k]` exactly in i32 (wrapping). `a` is m×k, `bt` is n×k, both
/// row-major and contiguous; `c` is m×n.
pub(crate) fn igemm_nt(m: usize, n: usize, k: usize, a: &[i16], bt: &[i16], c: &mut [i32]) {
    assert!(a.len() >= m * k && bt.len() >= n * k && c.len() >= m * n, "igemm_nt: operand sizes");
    if m == 0 || n == 0 {
        return;
    }
    static DOT: std::sync::OnceLock<DotFn> = std::sync::OnceLock::new();
    let dot = *DOT.get_or_init(pick_dot);
    // Tile over n so that a tile of bt stays in cache while every row of a streams past it.
    let tile = (64 * 1024 / (2 * k.max(1))).clamp(4, 256);
    let work = m * n * k;
    let threads = rayon::current_num_threads();
    let rows = if work < (1 << 16) || threads == 1 { m } else { m.div_ceil(threads * 4).max(1) };
    c[..m * n].par_chunks_mut(rows * n).enumerate().for_each(|(i, cc)| {
        let m0 = i * rows;
        let mm = cc.len() / n;
        for n0 in (0..n).step_by(tile) {
            let n1 = (n0 + tile).min(n);
            for r in 0..mm {
                let ar = &a[(m0 + r) * k..(m0 + r + 1) * k];
                let out = &mut cc[r * n + n0..r * n + n1];
                for (j, o) in out.iter_mut().enumerate() {
                    let col = n0 + j;
                    *o = dot(ar, &bt[col * k..(col + 1) * k]);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_matches_naive() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0).collect();
        let mut c = vec![0f32; m * n];
        sgemm(m, k, n, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
        // Transposed b through strides.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![0f32; m * n];
        sgemm(m, k, n, 1.0, &a, k, 1, &bt, 1, k, 0.0, &mut c2);
        assert_eq!(c, c2);
    }

    #[test]
    fn igemm_is_exact() {
        let (m, n, k) = (70, 33, 301);
        let a: Vec<i16> = (0..m * k).map(|i| ((i * 31 % 511) as i16) - 255).collect();
        let bt: Vec<i16> = (0..n * k).map(|i| ((i * 17 % 256) as i16) - 128).collect();
        let mut c = vec![0i32; m * n];
        igemm_nt(m, n, k, &a, &bt, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: i64 = (0..k).map(|p| a[i * k + p] as i64 * bt[j * k + p] as i64).sum();
                assert_eq!(c[i * n + j] as i64, want);
            }
        }
        assert_eq!(dot_i16_generic(&a[..k], &bt[..k]), dot_i16(&a[..k], &bt[..k]));
    }
}
