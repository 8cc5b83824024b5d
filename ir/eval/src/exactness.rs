//! What an exact integer result is (`docs/exactness.md`): the reference value of a quantized
//! element is the QDQ model's computation in f64, divided by the output scale (`v`, in steps,
//! before the zero point). A result is
//!
//! - *exact* when it is `v` rounded half to even, plus the zero point, saturated;
//! - *tie-ambiguous* when `v` lies within [`TIE`] of a rounding tie `k + ½` and the result is
//!   either neighbour (the reference itself, computed in float32, breaks such ties either way);
//! - *off* otherwise.

/// The tie tolerance, in output quantization steps.
pub const TIE: f64 = 1.0 / 4096.0;

/// How one integer result compares with its reference value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    Exact,
    Tie,
    Off,
}

/// Judges `result` against the reference value `v` (in steps, before the zero point `zp`) of an
/// output whose type ranges over `lo..=hi`. A NaN reference is off.
pub fn judge(result: i64, v: f64, zp: i64, lo: i64, hi: i64) -> Judgement {
    if v.is_nan() {
        return Judgement::Off;
    }
    // (Saturating float-to-int casts: an infinite or huge v lands on the range's end.)
    let rounded = |r: f64| (r as i64).saturating_add(zp).clamp(lo, hi);
    if result == rounded(v.round_ties_even()) {
        return Judgement::Exact;
    }
    let tie = v.floor() + 0.5;
    if (v - tie).abs() <= TIE && (result == rounded(v.floor()) || result == rounded(v.ceil())) {
        return Judgement::Tie;
    }
    Judgement::Off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_neighbour_of_a_tie_only() {
        let j = |r, v| judge(r, v, 0, 0, 255);
        assert_eq!(j(2, 2.4), Judgement::Exact);
        assert_eq!(j(3, 2.4), Judgement::Off);
        assert_eq!(j(2, 2.5), Judgement::Exact);
        assert_eq!(j(3, 2.5), Judgement::Tie);
        assert_eq!(j(3, 2.5 - TIE / 2.0), Judgement::Tie);
        assert_eq!(j(3, 2.5 - 2.0 * TIE), Judgement::Off);
        assert_eq!(j(4, 2.5), Judgement::Off);
    }

    #[test]
    fn saturation_and_zero_points() {
        assert_eq!(judge(255, 300.0, 0, 0, 255), Judgement::Exact);
        assert_eq!(judge(0, -3.0, 0, 0, 255), Judgement::Exact);
        assert_eq!(judge(127, 1e30, 0, -128, 127), Judgement::Exact);
        assert_eq!(judge(-128, f64::NEG_INFINITY, 0, -128, 127), Judgement::Exact);
        assert_eq!(judge(130, 2.0, 128, 0, 255), Judgement::Exact);
        assert_eq!(judge(0, f64::NAN, 0, 0, 255), Judgement::Off);
    }
}
