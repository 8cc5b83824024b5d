//! Element types of tensors: every `TensorProto.DataType` of onnx 1.23 (IR version 14).

use std::fmt;

macro_rules! dtypes {
    ($( $var:ident = $code:literal, $text:literal, $bits:literal, $kind:ident; )*) => {
        /// An ONNX tensor element type. The discriminant is the `TensorProto.DataType` code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DType { $( $var = $code, )* }

        impl DType {
            /// Every data type, in code order.
            pub const ALL: &'static [DType] = &[ $( DType::$var, )* ];

            /// From a `TensorProto.DataType` code; `None` for UNDEFINED (0) and unknown codes.
            pub fn from_onnx(code: i32) -> Option<DType> {
                match code { $( $code => Some(DType::$var), )* _ => None }
            }

            /// The short name used in the text form (`f32`, `u8`, `f8e4m3fn`, ...).
            pub fn name(self) -> &'static str {
                match self { $( DType::$var => $text, )* }
            }

            /// Inverse of [`DType::name`].
            pub fn from_name(s: &str) -> Option<DType> {
                match s { $( $text => Some(DType::$var), )* _ => None }
            }

            /// Bits per element as stored in `raw_data` (0 for strings, which have no raw form).
            pub fn bits(self) -> usize {
                match self { $( DType::$var => $bits, )* }
            }

            fn kind(self) -> Kind {
                match self { $( DType::$var => Kind::$kind, )* }
            }
        }
    };
}

#[derive(PartialEq)]
enum Kind {
    Float,
    Signed,
    Unsigned,
    Other,
}

dtypes! {
    F32 = 1, "f32", 32, Float;
    U8 = 2, "u8", 8, Unsigned;
    I8 = 3, "i8", 8, Signed;
    U16 = 4, "u16", 16, Unsigned;
    I16 = 5, "i16", 16, Signed;
    I32 = 6, "i32", 32, Signed;
    I64 = 7, "i64", 64, Signed;
    String = 8, "str", 0, Other;
    Bool = 9, "bool", 8, Other;
    F16 = 10, "f16", 16, Float;
    F64 = 11, "f64", 64, Float;
    U32 = 12, "u32", 32, Unsigned;
    U64 = 13, "u64", 64, Unsigned;
    C64 = 14, "c64", 64, Other;
    C128 = 15, "c128", 128, Other;
    BF16 = 16, "bf16", 16, Float;
    F8E4M3FN = 17, "f8e4m3fn", 8, Float;
    F8E4M3FNUZ = 18, "f8e4m3fnuz", 8, Float;
    F8E5M2 = 19, "f8e5m2", 8, Float;
    F8E5M2FNUZ = 20, "f8e5m2fnuz", 8, Float;
    U4 = 21, "u4", 4, Unsigned;
    I4 = 22, "i4", 4, Signed;
    F4E2M1 = 23, "f4e2m1", 4, Float;
    F8E8M0 = 24, "f8e8m0", 8, Float;
    U2 = 25, "u2", 2, Unsigned;
    I2 = 26, "i2", 2, Signed;
    F6E2M3 = 27, "f6e2m3", 6, Float;
    F6E3M2 = 28, "f6e3m2", 6, Float;
}

impl DType {
    /// The `TensorProto.DataType` code.
    pub fn to_onnx(self) -> i32 {
        self as i32
    }
    pub fn is_float(self) -> bool {
        self.kind() == Kind::Float
    }
    /// Signed or unsigned integer (not bool).
    pub fn is_int(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }
    pub fn is_signed_int(self) -> bool {
        self.kind() == Kind::Signed
    }
    /// Integer range `(min, max)` of an integer type of at most 32 bits.
    pub fn int_range(self) -> Option<(i64, i64)> {
        let b = self.bits() as u32;
        match self.kind() {
            Kind::Signed if b <= 32 => Some((-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1)),
            Kind::Unsigned if b <= 32 => Some((0, (1i64 << b) - 1)),
            _ => None,
        }
    }
    /// Bytes `n` elements take in `raw_data` (sub-byte types are packed, rounded up).
    pub fn raw_len(self, n: usize) -> Option<usize> {
        match self {
            DType::String => None,
            _ => n.checked_mul(self.bits()).map(|b| b.div_ceil(8)),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for &d in DType::ALL {
            assert_eq!(DType::from_onnx(d.to_onnx()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_onnx(0), None);
        assert_eq!(DType::from_onnx(29), None);
        assert_eq!(DType::ALL.len(), 28);
    }

    #[test]
    fn ranges_and_sizes() {
        assert_eq!(DType::U8.int_range(), Some((0, 255)));
        assert_eq!(DType::I8.int_range(), Some((-128, 127)));
        assert_eq!(DType::I4.int_range(), Some((-8, 7)));
        assert_eq!(DType::U2.int_range(), Some((0, 3)));
        assert_eq!(DType::I4.raw_len(3), Some(2));
        assert_eq!(DType::F32.raw_len(3), Some(12));
        assert!(DType::F8E4M3FN.is_float() && !DType::Bool.is_int());
    }
}
