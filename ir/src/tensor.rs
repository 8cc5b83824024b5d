//! Constant tensors. A [`Tensor`] keeps the `TensorProto` it was read from untouched (so writing it
//! back is lossless: same data field, same name, doc string, metadata, external-data entries) and adds
//! the bytes of an external-data tensor, resolved from the mmap of its side file. Values are decoded
//! on demand, with every length checked, from whichever field holds them.

use crate::dtype::DType;
use crate::proto::TensorProto;
use bytes::Bytes;
use std::borrow::Cow;

/// Why a tensor's data cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("unknown data type {0}")]
    UnknownDType(i32),
    #[error("negative dimension in {0:?}")]
    NegativeDim(Vec<i64>),
    #[error("dims {0:?} overflow the element count")]
    TooLarge(Vec<i64>),
    #[error("dims {dims:?} of {dtype} need {expected} {unit} but the tensor holds {actual}")]
    LengthMismatch { dtype: DType, dims: Vec<i64>, expected: usize, actual: usize, unit: &'static str },
    #[error("{field} is not valid for data type {dtype}")]
    WrongField { dtype: DType, field: &'static str },
    #[error("external data has not been loaded")]
    ExternalNotLoaded,
    #[error("cannot convert {0} values to {1}")]
    Unsupported(DType, &'static str),
}

/// A constant tensor: its `TensorProto` plus the payload of external data.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    /// The tensor as read (or as built). For external-data tensors `raw_data` is unset and
    /// `external_data` keeps the original location/offset/length entries.
    pub proto: TensorProto,
    /// The payload of an external-data tensor, a zero-copy slice of the mmapped side file.
    pub external: Option<Bytes>,
}

impl Tensor {
    pub fn dtype(&self) -> Result<DType, TensorError> {
        let code = self.proto.data_type.unwrap_or(0);
        DType::from_onnx(code).ok_or(TensorError::UnknownDType(code))
    }

    pub fn dims(&self) -> &[i64] {
        &self.proto.dims
    }

    pub fn name(&self) -> &str {
        self.proto.name.as_deref().unwrap_or("")
    }

    /// Number of elements, checked for negative dims and overflow.
    pub fn numel(&self) -> Result<usize, TensorError> {
        numel(&self.proto.dims)
    }

    /// True when the proto says its data lives in an external file.
    pub fn is_external(&self) -> bool {
        self.proto.data_location == Some(crate::proto::tensor_proto::DataLocation::External as i32)
    }

    /// Checks dtype, dims and that the data present has exactly the length the dims need.
    pub fn check(&self) -> Result<(), TensorError> {
        let dtype = self.dtype()?;
        let n = self.numel()?;
        let p = &self.proto;
        let mismatch = |expected, actual, unit| {
            Err(TensorError::LengthMismatch { dtype, dims: p.dims.clone(), expected, actual, unit })
        };
        if let Some(raw) = self.raw_source() {
            if dtype == DType::String {
                return Err(TensorError::WrongField { dtype, field: "raw_data" });
            }
            let expected = dtype.raw_len(n).ok_or(TensorError::TooLarge(p.dims.clone()))?;
            return if raw.len() == expected { Ok(()) } else { mismatch(expected, raw.len(), "bytes") };
        }
        if self.is_external() {
            return Err(TensorError::ExternalNotLoaded);
        }
        let (field, len) = self.typed_field(dtype)?;
        let expected = match field {
            "int32_data" => match dtype.bits() {
                4 => n.div_ceil(2),
                2 => n.div_ceil(4),
                _ => n,
            },
            "float_data" | "double_data" if matches!(dtype, DType::C64 | DType::C128) => n * 2,
            _ => n,
        };
        if len == expected || (n == 0 && len == 0) {
            Ok(())
        } else {
            mismatch(expected, len, "values")
        }
    }

    /// The typed field that holds the data of this dtype, and its length.
    fn typed_field(&self, dtype: DType) -> Result<(&'static str, usize), TensorError> {
        let p = &self.proto;
        let (field, len) = match dtype {
            DType::F32 | DType::C64 => ("float_data", p.float_data.len()),
            DType::F64 | DType::C128 => ("double_data", p.double_data.len()),
            DType::I64 => ("int64_data", p.int64_data.len()),
            DType::U32 | DType::U64 => ("uint64_data", p.uint64_data.len()),
            DType::String => ("string_data", p.string_data.len()),
            _ => ("int32_data", p.int32_data.len()),
        };
        // Data in a field the dtype does not allow is malformed.
        let others = [
            ("float_data", p.float_data.len()),
            ("double_data", p.double_data.len()),
            ("int64_data", p.int64_data.len()),
            ("uint64_data", p.uint64_data.len()),
            ("string_data", p.string_data.len()),
            ("int32_data", p.int32_data.len()),
        ];
        if let Some((bad, _)) = others.iter().find(|(f, l)| *f != field && *l > 0) {
            return Err(TensorError::WrongField { dtype, field: bad });
        }
        Ok((field, len))
    }

    fn raw_source(&self) -> Option<&Bytes> {
        self.proto.raw_data.as_ref().or(self.external.as_ref())
    }

    /// The data as packed little-endian bytes, exactly as `raw_data` would hold it.
    /// Borrowed when the tensor already stores raw or external data.
    pub fn raw(&self) -> Result<Cow<'_, [u8]>, TensorError> {
        self.check()?;
        let dtype = self.dtype()?;
        if let Some(raw) = self.raw_source() {
            return Ok(Cow::Borrowed(&raw[..]));
        }
        let p = &self.proto;
        let n = self.numel()?;
        let mut out = Vec::with_capacity(dtype.raw_len(n).unwrap_or(0));
        match dtype {
            DType::String => return Err(TensorError::Unsupported(dtype, "raw bytes")),
            DType::F32 | DType::C64 => p.float_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
            DType::F64 | DType::C128 => p.double_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
            DType::I64 => p.int64_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
            DType::U64 => p.uint64_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
            DType::U32 => p.uint64_data.iter().for_each(|&v| out.extend((v as u32).to_le_bytes())),
            _ => match dtype.bits() {
                // Sub-byte types already hold one packed byte per int32.
                4 | 2 => out.extend(p.int32_data.iter().map(|&v| v as u8)),
                6 => pack_bits(p.int32_data.iter().map(|&v| v as u64 & 0x3f), 6, &mut out),
                bits => {
                    let width = bits / 8;
                    p.int32_data.iter().for_each(|v| out.extend(&v.to_le_bytes()[..width]))
                }
            },
        }
        Ok(Cow::Owned(out))
    }

    /// Values as i64, for integer and bool tensors (sub-byte types unpacked, sign-extended).
    pub fn to_i64(&self) -> Result<Vec<i64>, TensorError> {
        let dtype = self.dtype()?;
        let n = self.numel()?;
        if !dtype.is_int() && dtype != DType::Bool {
            return Err(TensorError::Unsupported(dtype, "integers"));
        }
        if dtype == DType::I64 && self.raw_source().is_none() {
            self.check()?;
            return Ok(self.proto.int64_data.clone());
        }
        let raw = self.raw()?;
        Ok(decode_ints(dtype, &raw, n))
    }

    /// Values as f32, for float (f32, f16, bf16, f64) and integer tensors.
    pub fn to_f32(&self) -> Result<Vec<f32>, TensorError> {
        let dtype = self.dtype()?;
        let n = self.numel()?;
        if dtype == DType::F32 && self.raw_source().is_none() {
            self.check()?;
            return Ok(self.proto.float_data.clone());
        }
        let raw = self.raw()?;
        let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
        Ok(match dtype {
            DType::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            DType::F64 => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            DType::F16 => raw.chunks_exact(2).map(|c| f16_to_f32(le2(c))).collect(),
            DType::BF16 => raw.chunks_exact(2).map(|c| f32::from_bits((le2(c) as u32) << 16)).collect(),
            d if d.is_int() || d == DType::Bool => decode_ints(d, &raw, n).into_iter().map(|v| v as f32).collect(),
            d => return Err(TensorError::Unsupported(d, "f32")),
        })
    }

    /// Strings of a STRING tensor.
    pub fn strings(&self) -> Result<&[Bytes], TensorError> {
        self.check()?;
        match self.dtype()? {
            DType::String => Ok(&self.proto.string_data),
            d => Err(TensorError::Unsupported(d, "strings")),
        }
    }

    /// A stable 64-bit fingerprint (FNV-1a) of dtype, dims and data; shown in the text form.
    pub fn fingerprint(&self) -> Result<u64, TensorError> {
        let mut h = Fnv::default();
        h.write(&self.proto.data_type.unwrap_or(0).to_le_bytes());
        for d in self.dims() {
            h.write(&d.to_le_bytes());
        }
        if self.dtype()? == DType::String {
            for s in self.strings()? {
                h.write(&(s.len() as u64).to_le_bytes());
                h.write(s);
            }
        } else {
            h.write(&self.raw()?);
        }
        Ok(h.0)
    }

    /// A tensor with `raw_data`.
    pub fn from_raw(name: &str, dtype: DType, dims: &[i64], raw: Bytes) -> Tensor {
        Tensor {
            proto: TensorProto {
                dims: dims.to_vec(),
                data_type: Some(dtype.to_onnx()),
                name: (!name.is_empty()).then(|| name.to_string()),
                raw_data: Some(raw),
                ..Default::default()
            },
            external: None,
        }
    }

    pub fn from_f32(name: &str, dims: &[i64], values: &[f32]) -> Tensor {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_raw(name, DType::F32, dims, raw.into())
    }

    /// An integer tensor of `dtype` from i64 values (truncated to the type's width; sub-byte packed).
    pub fn from_i64(name: &str, dtype: DType, dims: &[i64], values: &[i64]) -> Tensor {
        let mut raw = Vec::new();
        match dtype.bits() {
            bits @ (2 | 4 | 6) => {
                let mask = (1u64 << bits) - 1;
                pack_bits(values.iter().map(|&v| v as u64 & mask), bits, &mut raw)
            }
            bits => values.iter().for_each(|v| raw.extend(&v.to_le_bytes()[..bits / 8])),
        }
        Tensor::from_raw(name, dtype, dims, raw.into())
    }
}

/// Element count of `dims`, rejecting negative dims and overflow.
pub fn numel(dims: &[i64]) -> Result<usize, TensorError> {
    dims.iter().try_fold(1usize, |acc, &d| {
        if d < 0 {
            return Err(TensorError::NegativeDim(dims.to_vec()));
        }
        acc.checked_mul(d as usize).ok_or_else(|| TensorError::TooLarge(dims.to_vec()))
    })
}

fn pack_bits(values: impl Iterator<Item = u64>, bits: usize, out: &mut Vec<u8>) {
    let (mut acc, mut filled) = (0u64, 0usize);
    for v in values {
        acc |= v << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
}

fn decode_ints(dtype: DType, raw: &[u8], n: usize) -> Vec<i64> {
    let bits = dtype.bits();
    let signed = dtype.is_signed_int();
    if bits < 8 {
        let mask = (1u64 << bits) - 1;
        return (0..n)
            .map(|i| {
                let (byte, shift) = (i * bits / 8, i * bits % 8);
                let v = (raw[byte] as u64 >> shift) & mask;
                if signed && v >> (bits - 1) == 1 {
                    v as i64 - (1i64 << bits)
                } else {
                    v as i64
                }
            })
            .collect();
    }
    raw.chunks_exact(bits / 8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            let v = u64::from_le_bytes(b);
            let shift = 64 - bits;
            if signed {
                ((v << shift) as i64) >> shift
            } else {
                v as i64
            }
        })
        .collect()
}

/// IEEE half to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[derive(Clone, Copy)]
struct Fnv(u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_fields_and_raw_agree() {
        let typed = Tensor {
            proto: TensorProto {
                dims: vec![2, 2],
                data_type: Some(DType::I8.to_onnx()),
                int32_data: vec![-128, -1, 0, 127],
                ..Default::default()
            },
            external: None,
        };
        let raw = Tensor::from_i64("", DType::I8, &[2, 2], &[-128, -1, 0, 127]);
        assert_eq!(typed.raw().unwrap(), raw.raw().unwrap());
        assert_eq!(typed.to_i64().unwrap(), vec![-128, -1, 0, 127]);
        assert_eq!(typed.fingerprint().unwrap(), raw.fingerprint().unwrap());
    }

    #[test]
    fn sub_byte_types_pack_lsb_first() {
        let t = Tensor::from_i64("", DType::I4, &[3], &[-8, 7, -1]);
        assert_eq!(&t.raw().unwrap()[..], &[0x78, 0x0f]);
        assert_eq!(t.to_i64().unwrap(), vec![-8, 7, -1]);
        let u2 = Tensor::from_i64("", DType::U2, &[5], &[0, 1, 2, 3, 1]);
        assert_eq!(u2.to_i64().unwrap(), vec![0, 1, 2, 3, 1]);
        let f6 = Tensor::from_i64("", DType::U8, &[1], &[200]);
        assert_eq!(f6.to_f32().unwrap(), vec![200.0]);
    }

    #[test]
    fn lengths_are_checked() {
        let mut t = Tensor::from_f32("w", &[2, 3], &[0.0; 6]);
        assert!(t.check().is_ok());
        t.proto.dims = vec![1_000_000, 1_000];
        assert!(matches!(t.check(), Err(TensorError::LengthMismatch { expected: 4_000_000_000, actual: 24, .. })));
        t.proto.dims = vec![1_000_000_000, 1_000_000_000];
        assert!(matches!(t.check(), Err(TensorError::TooLarge(_))), "bytes overflow usize");
        t.proto.dims = vec![i64::MAX, 4];
        assert!(matches!(t.check(), Err(TensorError::TooLarge(_))));
        t.proto.dims = vec![-1];
        assert!(matches!(t.check(), Err(TensorError::NegativeDim(_))));
        t.proto.data_type = Some(99);
        assert_eq!(t.check(), Err(TensorError::UnknownDType(99)));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
