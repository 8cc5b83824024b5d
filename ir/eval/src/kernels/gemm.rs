//! Matrix-multiply cores shared by Conv, MatMul, Gemm and the integer ops.
//!
//! - [`sgemm`]: f32, `matrixmultiply`'s packed kernels (runtime-detected AVX/FMA), rows split over
//!   rayon.
//! - [`igemm_nt`]: `i16 × i16 → i32` with exact (wrapping, hence order-independent) accumulation,
//!   `C[m][n] = Σ_k A[m][k]·B[n][k]`. Callers subtract zero points first (u8/i8 minus a zero
//!   point fits i16), so the result equals onnxruntime's i32 accumulator bit for bit. An AVX2
//!   `vpmaddwd` kernel (4×2 register blocks, chosen at run time) or a portable loop; tasks are
//!   blocks of rows × cache-sized column tiles, run on rayon.

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
    if work < (1 << 18) || threads == 1 {
        // SAFETY: bounds checked above.
        unsafe { sgemm_raw(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n) };
        return;
    }
    let out = FPtr(c.as_mut_ptr());
    if n >= m {
        // Split the columns: each task packs only its own slice of b.
        let cols = n.div_ceil(threads * 2).next_multiple_of(16).max(16);
        (0..n.div_ceil(cols)).into_par_iter().for_each(|t| {
            let (j0, j1) = (t * cols, ((t + 1) * cols).min(n));
            // SAFETY: bounds checked above; tasks write disjoint column ranges of c.
            unsafe {
                sgemm_raw(
                    m,
                    k,
                    j1 - j0,
                    alpha,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr().add(j0 * csb),
                    rsb,
                    csb,
                    beta,
                    out.get().add(j0),
                    n,
                )
            }
        });
    } else {
        let rows = m.div_ceil(threads * 2).max(8);
        (0..m.div_ceil(rows)).into_par_iter().for_each(|t| {
            let (i0, i1) = (t * rows, ((t + 1) * rows).min(m));
            // SAFETY: bounds checked above; tasks write disjoint row ranges of c.
            unsafe {
                sgemm_raw(
                    i1 - i0,
                    k,
                    n,
                    alpha,
                    a.as_ptr().add(i0 * rsa),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    beta,
                    out.get().add(i0 * n),
                    n,
                )
            }
        });
    }
}

#[derive(Clone, Copy)]
struct FPtr(*mut f32);
// SAFETY: tasks write disjoint elements only (see `sgemm`).
unsafe impl Send for FPtr {}
unsafe impl Sync for FPtr {}
impl FPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// # Safety
/// The operands must be valid for the given shapes and strides.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    beta: f32,
    c: *mut f32,
    rsc: usize,
) {
    matrixmultiply::sgemm(
        m,
        k,
        n,
        alpha,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        beta,
        c,
        rsc as isize,
        1,
    )
}

/// The exact i16 dot product (wrapping i32 accumulation), portable version.
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

/// The row stride to pack i16 GEMM operands with: `k` rounded up to 16, the padding zeroed, so
/// the AVX2 kernel needs no tail handling.
pub(crate) fn padded_k(k: usize) -> usize {
    k.next_multiple_of(16)
}

/// A raw output pointer shared by tasks that write disjoint blocks.
#[derive(Clone, Copy)]
struct OutPtr(*mut i32);
// SAFETY: tasks write disjoint elements only (see `igemm_nt`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut i32 {
        self.0
    }
}

/// `c[i][j] = Σ_k a[i·lda + k] · bt[j·ldb + k]` exactly in i32 (wrapping), for `i < m`, `j < n`,
/// `k < kp` where `kp = padded_k(k)`; both operands must hold zeros in `k..kp` of every row
/// (pack them with stride `padded_k`). `c` is `m × n`, row-major.
#[allow(clippy::too_many_arguments)]
pub(crate) fn igemm_nt(m: usize, n: usize, k: usize, a: &[i16], lda: usize, bt: &[i16], ldb: usize, c: &mut [i32]) {
    let kp = padded_k(k);
    assert!(lda >= kp && ldb >= kp, "igemm_nt: strides must be padded to a multiple of 16");
    assert!(m == 0 || a.len() >= (m - 1) * lda + kp, "igemm_nt: a too small");
    assert!(n == 0 || bt.len() >= (n - 1) * ldb + kp, "igemm_nt: bt too small");
    assert!(c.len() >= m * n, "igemm_nt: c too small");
    if m == 0 || n == 0 {
        return;
    }
    // Tasks: blocks of up to 64 rows × a column tile sized so the tile of bt stays in L2.
    let tile_n = (256 * 1024 / (2 * kp.max(16))).clamp(8, 512);
    let tile_m = 64;
    let (bm, bn) = (m.div_ceil(tile_m), n.div_ceil(tile_n));
    let out = OutPtr(c.as_mut_ptr());
    let task = move |t: usize| {
        let out = out.get();
        let (i0, j0) = ((t / bn) * tile_m, (t % bn) * tile_n);
        let (i1, j1) = ((i0 + tile_m).min(m), (j0 + tile_n).min(n));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is available; the block [i0, i1) × [j0, j1) is in bounds (checked
                // above) and written by this task only.
                unsafe { block_avx2(a, lda, bt, ldb, kp, out, n, i0, i1, j0, j1) };
                return;
            }
        }
        for i in i0..i1 {
            let ar = &a[i * lda..i * lda + kp];
            for j in j0..j1 {
                let v = dot_i16_generic(ar, &bt[j * ldb..j * ldb + kp]);
                // SAFETY: in bounds, and this task owns the block.
                unsafe { *out.add(i * n + j) = v };
            }
        }
    };
    let tasks = bm * bn;
    if tasks == 1 || m * n * kp < (1 << 16) {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// One block of [`igemm_nt`] with AVX2 `vpmaddwd`, register-blocked 4 rows × 2 columns.
///
/// # Safety
/// AVX2 must be available; rows `i0..i1` of `a` and `j0..j1` of `bt` must hold `kp` elements
/// (a multiple of 16); `c` must be valid for writes of `[i0, i1) × [j0, j1)` with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx2(
    a: &[i16],
    lda: usize,
    bt: &[i16],
    ldb: usize,
    kp: usize,
    c: *mut i32,
    ldc: usize,
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
    #[inline(always)]
    unsafe fn ld(p: *const i16, k: usize) -> __m256i {
        _mm256_loadu_si256(p.add(k) as *const __m256i)
    }
    let (ap, bp) = (a.as_ptr(), bt.as_ptr());
    let mut i = i0;
    while i + 4 <= i1 {
        let (a0, a1, a2, a3) = (ap.add(i * lda), ap.add((i + 1) * lda), ap.add((i + 2) * lda), ap.add((i + 3) * lda));
        let mut j = j0;
        while j + 2 <= j1 {
            let (b0, b1) = (bp.add(j * ldb), bp.add((j + 1) * ldb));
            let z = _mm256_setzero_si256();
            let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21, mut c30, mut c31) = (z, z, z, z, z, z, z, z);
            let mut k = 0;
            while k < kp {
                let (vb0, vb1) = (ld(b0, k), ld(b1, k));
                let va = ld(a0, k);
                c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(va, vb0));
                c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(va, vb1));
                let va = ld(a1, k);
                c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(va, vb0));
                c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(va, vb1));
                let va = ld(a2, k);
                c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(va, vb0));
                c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(va, vb1));
                let va = ld(a3, k);
                c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(va, vb0));
                c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(va, vb1));
                k += 16;
            }
            *c.add(i * ldc + j) = hsum(c00);
            *c.add(i * ldc + j + 1) = hsum(c01);
            *c.add((i + 1) * ldc + j) = hsum(c10);
            *c.add((i + 1) * ldc + j + 1) = hsum(c11);
            *c.add((i + 2) * ldc + j) = hsum(c20);
            *c.add((i + 2) * ldc + j + 1) = hsum(c21);
            *c.add((i + 3) * ldc + j) = hsum(c30);
            *c.add((i + 3) * ldc + j + 1) = hsum(c31);
            j += 2;
        }
        if j < j1 {
            let b0 = bp.add(j * ldb);
            let z = _mm256_setzero_si256();
            let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
            let mut k = 0;
            while k < kp {
                let vb = ld(b0, k);
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(ld(a0, k), vb));
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(ld(a1, k), vb));
                c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(ld(a2, k), vb));
                c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(ld(a3, k), vb));
                k += 16;
            }
            *c.add(i * ldc + j) = hsum(c0);
            *c.add((i + 1) * ldc + j) = hsum(c1);
            *c.add((i + 2) * ldc + j) = hsum(c2);
            *c.add((i + 3) * ldc + j) = hsum(c3);
        }
        i += 4;
    }
    while i < i1 {
        let a0 = ap.add(i * lda);
        for j in j0..j1 {
            let b0 = bp.add(j * ldb);
            let mut acc = _mm256_setzero_si256();
            let mut k = 0;
            while k < kp {
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(ld(a0, k), ld(b0, k)));
                k += 16;
            }
            *c.add(i * ldc + j) = hsum(acc);
        }
        i += 1;
    }
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
        let kp = padded_k(k);
        let pad = |v: &[i16], rows: usize| -> Vec<i16> {
            let mut out = vec![0i16; rows * kp];
            for r in 0..rows {
                out[r * kp..r * kp + k].copy_from_slice(&v[r * k..(r + 1) * k]);
            }
            out
        };
        let (ap, bp) = (pad(&a, m), pad(&bt, n));
        let mut c = vec![0i32; m * n];
        igemm_nt(m, n, k, &ap, kp, &bp, kp, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: i64 = (0..k).map(|p| a[i * k + p] as i64 * bt[j * k + p] as i64).sum();
                assert_eq!(c[i * n + j] as i64, want, "({i}, {j})");
            }
        }
    }
}
