//! Element types: the [`Scalar`] trait gives every numeric element (and `bool`) one set of
//! conversions, so kernels are written once, generically, and dispatched over [`crate::Value`]'s
//! variants by the macros in `value.rs`.

use half::{bf16, f16};
use ndarray::ArrayD;

use crate::value::Value;

mod sealed {
    pub trait Sealed {}
}

/// A numeric element type a [`Value`] can hold (sub-byte types reuse `u8`/`i8` storage).
///
/// Conversions follow C++ `static_cast` as onnxruntime uses it, made total: float → integer
/// truncates toward zero and saturates (NaN → 0); integer → integer wraps; integer → float and
/// float → float round to nearest even.
pub trait Scalar: Copy + Send + Sync + PartialOrd + Default + std::fmt::Debug + sealed::Sealed + 'static {
    /// Bytes per element in little-endian raw form.
    const SIZE: usize;
    const IS_FLOAT: bool;
    fn to_f64(self) -> f64;
    /// From f64: rounds (floats) or truncates and saturates (integers).
    fn from_f64(v: f64) -> Self;
    /// Integers exactly; floats truncated toward zero (saturating, NaN → 0).
    fn to_i128(self) -> i128;
    /// From i128: wraps (integers) or rounds to nearest even (floats).
    fn from_i128(v: i128) -> Self;
    fn read_le(b: &[u8]) -> Self;
    fn write_le(self, out: &mut Vec<u8>);
    /// Wraps an array in the [`Value`] variant of this type (the full-width one for `u8`/`i8`).
    fn wrap(a: ArrayD<Self>) -> Value;
    /// The array of a value of exactly this storage type.
    fn unwrap(v: &Value) -> Option<&ArrayD<Self>>;

    /// Converts between element types (see the trait documentation).
    #[inline]
    fn cast<T: Scalar>(self) -> T {
        if Self::IS_FLOAT {
            T::from_f64(self.to_f64())
        } else {
            T::from_i128(self.to_i128())
        }
    }
}

macro_rules! int_scalar {
    ($($t:ty => $var:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const IS_FLOAT: bool = false;
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            #[inline] fn from_f64(v: f64) -> Self { v as $t }
            #[inline] fn to_i128(self) -> i128 { self as i128 }
            #[inline] fn from_i128(v: i128) -> Self { v as $t }
            #[inline] fn read_le(b: &[u8]) -> Self { <$t>::from_le_bytes(b.try_into().expect("element size")) }
            #[inline] fn write_le(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) }
            fn wrap(a: ArrayD<Self>) -> Value { Value::$var(a) }
            fn unwrap(v: &Value) -> Option<&ArrayD<Self>> { match v { Value::$var(a) => Some(a), _ => None } }
        }
    )*};
}
int_scalar!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64);

macro_rules! float_scalar {
    ($($t:ty => $var:ident, $to:expr, $from:expr, $from_i:expr);*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const IS_FLOAT: bool = true;
            #[inline] fn to_f64(self) -> f64 { $to(self) }
            #[inline] fn from_f64(v: f64) -> Self { $from(v) }
            #[inline] fn to_i128(self) -> i128 { $to(self) as i128 }
            #[inline] fn from_i128(v: i128) -> Self { $from_i(v) }
            #[inline] fn read_le(b: &[u8]) -> Self { <$t>::from_le_bytes(b.try_into().expect("element size")) }
            #[inline] fn write_le(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) }
            fn wrap(a: ArrayD<Self>) -> Value { Value::$var(a) }
            fn unwrap(v: &Value) -> Option<&ArrayD<Self>> { match v { Value::$var(a) => Some(a), _ => None } }
        }
    )*};
}
float_scalar!(
    f32 => F32, |x: f32| x as f64, |v: f64| v as f32, |v: i128| v as f32;
    f64 => F64, |x: f64| x, |v: f64| v, |v: i128| v as f64;
    // i128 → f32 rounds once; f32 → f16 rounds again, which is what onnxruntime's Cast does too.
    f16 => F16, |x: f16| x.to_f64(), f16::from_f64, |v: i128| f16::from_f32(v as f32);
    bf16 => BF16, |x: bf16| x.to_f64(), bf16::from_f64, |v: i128| bf16::from_f32(v as f32)
);

impl sealed::Sealed for bool {}
impl Scalar for bool {
    const SIZE: usize = 1;
    const IS_FLOAT: bool = false;
    #[inline]
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    #[inline]
    fn to_i128(self) -> i128 {
        self as i128
    }
    #[inline]
    fn from_i128(v: i128) -> Self {
        v != 0
    }
    #[inline]
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
    #[inline]
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8)
    }
    fn wrap(a: ArrayD<Self>) -> Value {
        Value::Bool(a)
    }
    fn unwrap(v: &Value) -> Option<&ArrayD<Self>> {
        match v {
            Value::Bool(a) => Some(a),
            _ => None,
        }
    }
}

/// Round half to even (IEEE `roundTiesToEven`, C's `nearbyint` in the default rounding mode).
///
/// Same result as `f32::round_ties_even`, which on baseline x86-64 (no SSE4.1) is a libm call;
/// this is two additions: for |x| < 2²³, |x| + 2²³ lands where the spacing of f32 is exactly 1,
/// so the addition itself rounds |x| to the nearest integer, ties to even.
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const TWO23: f32 = 8_388_608.0;
    let a = x.abs();
    if a < TWO23 {
        ((a + TWO23) - TWO23).copysign(x)
    } else {
        x
    }
}

/// [`round_half_even`] for |x| < 2²³ (e.g. a value already clamped to a quantized range):
/// branch-free, so loops over it vectorise.
#[inline(always)]
pub(crate) fn round_half_even_small(x: f32) -> f32 {
    const TWO23: f32 = 8_388_608.0;
    ((x.abs() + TWO23) - TWO23).copysign(x)
}

/// Whether the CPU has fused multiply-add instructions (x86-64 FMA3). Kernels that call
/// `mul_add` in hot loops compile a copy with the feature enabled and pick it when this is true;
/// `mul_add` is always fused (a software routine otherwise), so results are identical.
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FMA.get_or_init(|| std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name(args)` running `$body` compiled with FMA enabled when the CPU has it (so
/// `mul_add` is a single instruction), and the portable build otherwise.
macro_rules! fma_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])* $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "fma")]
            unsafe fn imp_fma($($arg: $ty),*) {
                imp($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::num::has_fma() {
                    // SAFETY: the CPU supports FMA (checked at run time).
                    return unsafe { imp_fma($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use fma_kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_matches_std() {
        let specials =
            [0.0f32, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 8_388_607.5, 8_388_608.0, -8_388_609.0];
        for x in specials.into_iter().chain((0..100_000).map(|i| (i as f32 - 50_000.0) * 0.013_7)) {
            assert_eq!(round_half_even(x).to_bits(), x.round_ties_even().to_bits(), "{x}");
        }
        assert!(round_half_even(f32::NAN).is_nan());
        assert_eq!(round_half_even(f32::INFINITY), f32::INFINITY);
    }
}
