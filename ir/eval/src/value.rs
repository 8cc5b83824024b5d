//! [`Value`]: an n-dimensional tensor of any ONNX element type the interpreter computes with.

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use qdqc_ir::{DType, Tensor, TensorError};

use crate::num::Scalar;

/// A runtime tensor. Every variant is an `ndarray::ArrayD` in the natural Rust element type;
/// `f16`/`bf16` use the `half` crate; the sub-byte integer types (`U4`, `I4`, `U2`, `I2`) are
/// unpacked, one element per `u8`/`i8`, always within their type's range.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
    U16(ArrayD<u16>),
    I16(ArrayD<i16>),
    U32(ArrayD<u32>),
    I32(ArrayD<i32>),
    U64(ArrayD<u64>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
    U4(ArrayD<u8>),
    I4(ArrayD<i8>),
    U2(ArrayD<u8>),
    I2(ArrayD<i8>),
    Str(ArrayD<String>),
}

/// `match` over every variant, binding the array as `$a` and evaluating `$body` (which must have
/// the same type in every arm).
macro_rules! match_all {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            $crate::Value::F32($a) => $body,
            $crate::Value::F64($a) => $body,
            $crate::Value::F16($a) => $body,
            $crate::Value::BF16($a) => $body,
            $crate::Value::U8($a) => $body,
            $crate::Value::I8($a) => $body,
            $crate::Value::U16($a) => $body,
            $crate::Value::I16($a) => $body,
            $crate::Value::U32($a) => $body,
            $crate::Value::I32($a) => $body,
            $crate::Value::U64($a) => $body,
            $crate::Value::I64($a) => $body,
            $crate::Value::Bool($a) => $body,
            $crate::Value::U4($a) => $body,
            $crate::Value::I4($a) => $body,
            $crate::Value::U2($a) => $body,
            $crate::Value::I2($a) => $body,
            $crate::Value::Str($a) => $body,
        }
    };
}

/// Like [`match_all!`] but re-wraps `$body` (an array) in the same variant: for layout ops
/// (transpose, reshape, slice, gather, concat) that work on any element type.
macro_rules! map_all {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            $crate::Value::F32($a) => $crate::Value::F32($body),
            $crate::Value::F64($a) => $crate::Value::F64($body),
            $crate::Value::F16($a) => $crate::Value::F16($body),
            $crate::Value::BF16($a) => $crate::Value::BF16($body),
            $crate::Value::U8($a) => $crate::Value::U8($body),
            $crate::Value::I8($a) => $crate::Value::I8($body),
            $crate::Value::U16($a) => $crate::Value::U16($body),
            $crate::Value::I16($a) => $crate::Value::I16($body),
            $crate::Value::U32($a) => $crate::Value::U32($body),
            $crate::Value::I32($a) => $crate::Value::I32($body),
            $crate::Value::U64($a) => $crate::Value::U64($body),
            $crate::Value::I64($a) => $crate::Value::I64($body),
            $crate::Value::Bool($a) => $crate::Value::Bool($body),
            $crate::Value::U4($a) => $crate::Value::U4($body),
            $crate::Value::I4($a) => $crate::Value::I4($body),
            $crate::Value::U2($a) => $crate::Value::U2($body),
            $crate::Value::I2($a) => $crate::Value::I2($body),
            $crate::Value::Str($a) => $crate::Value::Str($body),
        }
    };
}

/// `match` over the numeric variants (every one but `Str`), binding the array as `$a`, whose
/// element type implements [`Scalar`]; `$other` is evaluated for strings.
macro_rules! match_numeric {
    ($v:expr, $a:ident => $body:expr, $s:pat => $other:expr) => {
        match $v {
            $crate::Value::F32($a) => $body,
            $crate::Value::F64($a) => $body,
            $crate::Value::F16($a) => $body,
            $crate::Value::BF16($a) => $body,
            $crate::Value::U8($a) => $body,
            $crate::Value::I8($a) => $body,
            $crate::Value::U16($a) => $body,
            $crate::Value::I16($a) => $body,
            $crate::Value::U32($a) => $body,
            $crate::Value::I32($a) => $body,
            $crate::Value::U64($a) => $body,
            $crate::Value::I64($a) => $body,
            $crate::Value::Bool($a) => $body,
            $crate::Value::U4($a) => $body,
            $crate::Value::I4($a) => $body,
            $crate::Value::U2($a) => $body,
            $crate::Value::I2($a) => $body,
            $s => $other,
        }
    };
}

/// For a non-empty list of values of one variant: binds `$arrs` to their arrays (a `Vec<&ArrayD<T>>`)
/// and re-wraps `$body` (an `ArrayD<T>`) in that variant. Bails (from a kernel) if the variants differ.
macro_rules! map_list {
    ($vals:expr, $arrs:ident => $body:expr) => {
        $crate::value::map_list!(@go $vals, $arrs => $body;
            F32, F64, F16, BF16, U8, I8, U16, I16, U32, I32, U64, I64, Bool, U4, I4, U2, I2, Str)
    };
    (@go $vals:expr, $arrs:ident => $body:expr; $($var:ident),*) => {{
        let vals: &[&$crate::Value] = $vals;
        match vals[0] {
            $($crate::Value::$var(_) => {
                let mut $arrs = Vec::with_capacity(vals.len());
                for v in vals {
                    match v {
                        $crate::Value::$var(a) => $arrs.push(a),
                        o => $crate::error::bail!("inputs have different types: {} and {}", vals[0].dtype(), o.dtype()),
                    }
                }
                $crate::Value::$var($body)
            })*
        }
    }};
}

pub(crate) use {map_all, map_list, match_numeric};

/// What is wrong with data handed to or produced by the interpreter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("the interpreter does not compute with {0} tensors")]
    UnsupportedDType(DType),
    #[error("{0}")]
    Tensor(#[from] TensorError),
    #[error("{len} values do not fill shape {shape:?}")]
    Shape { shape: Vec<usize>, len: usize },
    #[error("shape {0:?} is too large to allocate")]
    TooLarge(Vec<usize>),
    #[error("value {value} is outside the range of {dtype}")]
    OutOfRange { dtype: DType, value: i64 },
    #[error("{dtype} values cannot be read as {want}")]
    Type { dtype: DType, want: &'static str },
    #[error("npy: {0}")]
    Npy(String),
}

fn shaped<T>(shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, DataError> {
    let len = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|_| DataError::Shape { shape: shape.to_vec(), len })
}

impl Value {
    /// The ONNX element type.
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::F16(_) => DType::F16,
            Value::BF16(_) => DType::BF16,
            Value::U8(_) => DType::U8,
            Value::I8(_) => DType::I8,
            Value::U16(_) => DType::U16,
            Value::I16(_) => DType::I16,
            Value::U32(_) => DType::U32,
            Value::I32(_) => DType::I32,
            Value::U64(_) => DType::U64,
            Value::I64(_) => DType::I64,
            Value::Bool(_) => DType::Bool,
            Value::U4(_) => DType::U4,
            Value::I4(_) => DType::I4,
            Value::U2(_) => DType::U2,
            Value::I2(_) => DType::I2,
            Value::Str(_) => DType::String,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match_all!(self, a => a.shape())
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match_all!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the interpreter can hold values of `dtype`.
    pub fn supports(dtype: DType) -> bool {
        use DType::*;
        matches!(
            dtype,
            F32 | F64 | F16 | BF16 | U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64 | Bool | U4 | I4 | U2 | I2 | String
        )
    }

    /// An f32 tensor.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Value, DataError> {
        Ok(Value::F32(shaped(shape, data)?))
    }

    /// A tensor of a numeric `dtype` from f64 values (rounded/saturated like a Cast; sub-byte
    /// types saturate to their range).
    pub fn from_f64(dtype: DType, shape: &[usize], data: &[f64]) -> Result<Value, DataError> {
        let data: Vec<f64> = match dtype.int_range() {
            Some((lo, hi)) if dtype.bits() < 8 => data.iter().map(|v| v.clamp(lo as f64, hi as f64)).collect(),
            _ => data.to_vec(),
        };
        Value::F64(shaped(shape, data)?).cast(dtype)
    }

    /// A tensor of an integer or bool `dtype` from i64 values, each checked against the type's range.
    pub fn from_i64(dtype: DType, shape: &[usize], data: &[i64]) -> Result<Value, DataError> {
        if let Some((lo, hi)) = dtype.int_range() {
            if let Some(&value) = data.iter().find(|&&v| v < lo || v > hi) {
                return Err(DataError::OutOfRange { dtype, value });
            }
        }
        if dtype == DType::U64 {
            if let Some(&value) = data.iter().find(|&&v| v < 0) {
                return Err(DataError::OutOfRange { dtype, value });
            }
        }
        if !(dtype.is_int() || dtype == DType::Bool) {
            return Err(DataError::Type { dtype, want: "integers" });
        }
        let v = Value::I64(shaped(shape, data.to_vec())?);
        v.cast(dtype)
    }

    /// A zero-filled tensor (empty strings for `String`).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Value, DataError> {
        let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if len.is_none_or(|n| n > isize::MAX as usize / 8) {
            return Err(DataError::TooLarge(shape.to_vec()));
        }
        let sh = IxDyn(shape);
        Ok(match dtype {
            DType::String => Value::Str(ArrayD::default(sh)),
            _ => Value::F64(ArrayD::zeros(sh)).cast(dtype)?,
        })
    }

    /// A 0-d (scalar) tensor.
    pub fn scalar<T: Scalar>(v: T) -> Value {
        T::wrap(ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// The f32 array, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Value::F32(a) => Some(a),
            _ => None,
        }
    }

    /// The array of element type `T` (for `u8`/`i8`, only the full-width `U8`/`I8` variants).
    pub fn as_array<T: Scalar>(&self) -> Option<&ArrayD<T>> {
        T::unwrap(self)
    }

    /// All elements in logical (row-major) order as f64 (integers exactly up to 2^53).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, DataError> {
        match_numeric!(self, a => Ok(a.iter().map(|x| x.to_f64()).collect()),
            _ => Err(DataError::Type { dtype: DType::String, want: "numbers" }))
    }

    /// All elements as f32 (floats rounded, integers converted).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, DataError> {
        match self {
            Value::F32(a) => Ok(a.iter().copied().collect()),
            _ => match_numeric!(self, a => Ok(a.iter().map(|x| x.cast::<f32>()).collect()),
                _ => Err(DataError::Type { dtype: DType::String, want: "numbers" })),
        }
    }

    /// All elements as i64, for integer and bool tensors (u64 above i64::MAX wraps).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, DataError> {
        let dtype = self.dtype();
        if !(dtype.is_int() || dtype == DType::Bool) {
            return Err(DataError::Type { dtype, want: "integers" });
        }
        match_numeric!(self, a => Ok(a.iter().map(|x| x.to_i128() as i64).collect()),
            _ => unreachable!("strings are not integers"))
    }

    /// Converts to another element type like ONNX `Cast` (as onnxruntime computes it:
    /// floats round to nearest even, float → integer truncates (saturating here), integers wrap,
    /// and conversions to a sub-byte type keep the low bits, sign-extended).
    pub fn cast(&self, to: DType) -> Result<Value, DataError> {
        if to == self.dtype() {
            return Ok(self.clone());
        }
        match_numeric!(self, a => cast_array(a, to),
            Value::Str(_) => Err(DataError::UnsupportedDType(DType::String)))
    }

    // ---- ONNX tensors ---------------------------------------------------------------------

    /// Decodes a constant tensor (raw_data, typed fields or external data).
    pub fn from_tensor(t: &Tensor) -> Result<Value, DataError> {
        let dtype = t.dtype()?;
        let dims = t.dims();
        if let Some(&d) = dims.iter().find(|&&d| d < 0) {
            return Err(TensorError::NegativeDim(vec![d]).into());
        }
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        fn decode<T: Scalar>(raw: &[u8], shape: &[usize]) -> Result<Value, DataError> {
            let data: Vec<T> = raw.chunks_exact(T::SIZE).map(T::read_le).collect();
            Ok(T::wrap(shaped(shape, data)?))
        }
        match dtype {
            DType::String => {
                let s = t.strings()?.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
                Ok(Value::Str(shaped(&shape, s)?))
            }
            DType::U4 | DType::I4 | DType::U2 | DType::I2 => {
                let v = t.to_i64()?;
                let v = Value::I64(shaped(&shape, v)?);
                Ok(match dtype {
                    DType::U4 => Value::U4(v.cast_array_to::<u8>()),
                    DType::U2 => Value::U2(v.cast_array_to::<u8>()),
                    DType::I4 => Value::I4(v.cast_array_to::<i8>()),
                    _ => Value::I2(v.cast_array_to::<i8>()),
                })
            }
            _ => {
                let raw = t.raw()?;
                match dtype {
                    DType::F32 => decode::<f32>(&raw, &shape),
                    DType::F64 => decode::<f64>(&raw, &shape),
                    DType::F16 => decode::<f16>(&raw, &shape),
                    DType::BF16 => decode::<bf16>(&raw, &shape),
                    DType::U8 => decode::<u8>(&raw, &shape),
                    DType::I8 => decode::<i8>(&raw, &shape),
                    DType::U16 => decode::<u16>(&raw, &shape),
                    DType::I16 => decode::<i16>(&raw, &shape),
                    DType::U32 => decode::<u32>(&raw, &shape),
                    DType::I32 => decode::<i32>(&raw, &shape),
                    DType::U64 => decode::<u64>(&raw, &shape),
                    DType::I64 => decode::<i64>(&raw, &shape),
                    DType::Bool => decode::<bool>(&raw, &shape),
                    d => Err(DataError::UnsupportedDType(d)),
                }
            }
        }
    }

    /// Encodes as a tensor with `raw_data` (string tensors use `string_data`).
    pub fn to_tensor(&self, name: &str) -> Tensor {
        let dims: Vec<i64> = self.shape().iter().map(|&d| d as i64).collect();
        let dtype = self.dtype();
        match self {
            Value::Str(a) => {
                let mut t = Tensor::from_raw(name, DType::String, &dims, Default::default());
                t.proto.raw_data = None;
                t.proto.string_data = a.iter().map(|s| bytes::Bytes::from(s.clone().into_bytes())).collect();
                t
            }
            Value::U4(_) | Value::I4(_) | Value::U2(_) | Value::I2(_) => {
                Tensor::from_i64(name, dtype, &dims, &self.to_i64_vec().expect("integers"))
            }
            _ => {
                let mut raw = Vec::with_capacity(dtype.raw_len(self.len()).unwrap_or(0));
                match_numeric!(self, a => a.iter().for_each(|x| x.write_le(&mut raw)), _ => unreachable!());
                Tensor::from_raw(name, dtype, &dims, raw.into())
            }
        }
    }

    // ---- .npy -----------------------------------------------------------------------------

    /// Reads a `.npy` file's bytes (see [`crate::npy`] for the dtype mapping).
    pub fn from_npy(bytes: &[u8]) -> Result<Value, DataError> {
        crate::npy::read(bytes)
    }

    /// Writes `.npy` bytes (see [`crate::npy`] for the dtype mapping).
    pub fn to_npy(&self) -> Result<Vec<u8>, DataError> {
        crate::npy::write(self)
    }

    /// The array converted element-wise to `T` (see [`Scalar::cast`]).
    pub(crate) fn cast_array_to<T: Scalar>(&self) -> ArrayD<T> {
        match_numeric!(self, a => a.mapv(|x| x.cast::<T>()), _ => panic!("strings have no numeric value"))
    }
}

/// Wrapping conversion into a sub-byte range: keep the low `bits`, sign-extend when signed.
fn wrap_bits(v: i128, bits: u32, signed: bool) -> i128 {
    let m = v & ((1i128 << bits) - 1);
    if signed && m >> (bits - 1) == 1 {
        m - (1i128 << bits)
    } else {
        m
    }
}

fn cast_array<S: Scalar>(a: &ArrayD<S>, to: DType) -> Result<Value, DataError> {
    fn c<S: Scalar, T: Scalar>(a: &ArrayD<S>) -> ArrayD<T> {
        a.mapv(|x| x.cast::<T>())
    }
    fn sub<S: Scalar, T: Scalar>(a: &ArrayD<S>, bits: u32, signed: bool) -> ArrayD<T> {
        a.mapv(|x| T::from_i128(wrap_bits(x.cast::<i64>() as i128, bits, signed)))
    }
    Ok(match to {
        DType::F32 => Value::F32(c(a)),
        DType::F64 => Value::F64(c(a)),
        DType::F16 => Value::F16(c(a)),
        DType::BF16 => Value::BF16(c(a)),
        DType::U8 => Value::U8(c(a)),
        DType::I8 => Value::I8(c(a)),
        DType::U16 => Value::U16(c(a)),
        DType::I16 => Value::I16(c(a)),
        DType::U32 => Value::U32(c(a)),
        DType::I32 => Value::I32(c(a)),
        DType::U64 => Value::U64(c(a)),
        DType::I64 => Value::I64(c(a)),
        DType::Bool => Value::Bool(c(a)),
        DType::U4 => Value::U4(sub(a, 4, false)),
        DType::I4 => Value::I4(sub(a, 4, true)),
        DType::U2 => Value::U2(sub(a, 2, false)),
        DType::I2 => Value::I2(sub(a, 2, true)),
        d => return Err(DataError::UnsupportedDType(d)),
    })
}

macro_rules! from_array {
    ($($t:ty => $var:ident),*) => {$(
        impl From<ArrayD<$t>> for Value {
            fn from(a: ArrayD<$t>) -> Value { Value::$var(a) }
        }
    )*};
}
from_array!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, u8 => U8, i8 => I8, u16 => U16, i16 => I16,
    u32 => U32, i32 => I32, u64 => U64, i64 => I64, bool => Bool, String => Str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_round_trip_every_dtype() {
        let ints = [0i64, 1, -1, -2];
        for dtype in [DType::I8, DType::I16, DType::I32, DType::I64, DType::I4, DType::I2] {
            let v = Value::from_i64(dtype, &[2, 2], &ints).unwrap();
            let t = v.to_tensor("x");
            assert_eq!(Value::from_tensor(&t).unwrap(), v, "{dtype}");
            assert_eq!(v.to_i64_vec().unwrap(), ints);
        }
        for dtype in [DType::U8, DType::U16, DType::U32, DType::U64, DType::U4, DType::U2, DType::Bool] {
            let v = Value::from_i64(dtype, &[4], &[0, 1, 1, 0]).unwrap();
            assert_eq!(Value::from_tensor(&v.to_tensor("x")).unwrap(), v, "{dtype}");
        }
        for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
            let v = Value::from_f64(dtype, &[3], &[1.5, -2.0, 0.25]).unwrap();
            assert_eq!(v.dtype(), dtype);
            assert_eq!(Value::from_tensor(&v.to_tensor("x")).unwrap(), v, "{dtype}");
            assert_eq!(v.to_f64_vec().unwrap(), vec![1.5, -2.0, 0.25]);
        }
        let s = Value::Str(ArrayD::from_shape_vec(IxDyn(&[2]), vec!["a".into(), "bc".into()]).unwrap());
        assert_eq!(Value::from_tensor(&s.to_tensor("s")).unwrap(), s);
    }

    #[test]
    fn typed_field_tensors_decode() {
        let t = Tensor::from_i64("", DType::I4, &[3], &[-8, 7, -1]);
        assert_eq!(
            Value::from_tensor(&t).unwrap(),
            Value::I4(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-8, 7, -1]).unwrap())
        );
        let f = Tensor::from_f32("", &[2], &[1.0, 2.0]);
        assert_eq!(Value::from_tensor(&f).unwrap().shape(), &[2]);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(matches!(Value::from_i64(DType::I4, &[1], &[8]), Err(DataError::OutOfRange { .. })));
        assert!(matches!(Value::from_i64(DType::U8, &[2], &[1]), Err(DataError::Shape { .. })));
    }

    #[test]
    fn casts_follow_onnxruntime() {
        let v = Value::f32(&[5], vec![2.7, -2.7, 300.0, f32::NAN, 0.5]).unwrap();
        assert_eq!(v.cast(DType::I32).unwrap().to_i64_vec().unwrap(), vec![2, -2, 300, 0, 0]);
        assert_eq!(v.cast(DType::Bool).unwrap().to_i64_vec().unwrap(), vec![1, 1, 1, 1, 1]);
        let big = Value::from_i64(DType::I64, &[1], &[16_777_217]).unwrap();
        assert_eq!(big.cast(DType::F32).unwrap().to_f64_vec().unwrap(), vec![16_777_216.0]);
        let w = Value::from_i64(DType::I32, &[2], &[300, -129]).unwrap();
        assert_eq!(w.cast(DType::U8).unwrap().to_i64_vec().unwrap(), vec![44, 127]);
        let h = Value::f32(&[1], vec![1.0 + 1.0 / 2048.0]).unwrap().cast(DType::F16).unwrap();
        assert_eq!(h.to_f64_vec().unwrap(), vec![1.0]); // tie → even
    }
}
