//! Tensor elements in the text form: writing the values of a tensor by element type, and building
//! a tensor back from literals.
//!
//! f32/f16/bf16 values are written with Rust's shortest round-trip form of the f32 value (f16 and
//! bf16 widen exactly), f64 with its own; integers in decimal, bool as `true`/`false`; types
//! without a decimal form (float8/6/4, complex) as hex bit patterns, one per element.

use super::lex::Tok;
use super::parse::{ParseError, Pos};
use crate::dtype::DType;
use crate::proto::TensorProto;
use crate::tensor::{Tensor, TensorError};
use std::borrow::Cow;
use std::fmt::Write;

/// A literal element as written.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Lit<'a> {
    /// A decimal number, `inf`, `-inf` or `NaN`, as written.
    Num(&'a str),
    /// Hex digits (of `0x…`).
    Hex(&'a str),
    Str(Cow<'a, [u8]>),
    Bool(bool),
}

impl<'a> Lit<'a> {
    /// The literal a token starts, if it is one.
    pub fn from_token(t: &Tok<'a>) -> Option<Lit<'a>> {
        Some(match t {
            Tok::Num(s) => Lit::Num(s),
            Tok::Ident(s @ ("inf" | "NaN")) => Lit::Num(s),
            Tok::Ident("true") => Lit::Bool(true),
            Tok::Ident("false") => Lit::Bool(false),
            Tok::Hex(s) => Lit::Hex(s),
            Tok::Str(b) => Lit::Str(b.clone()),
            _ => return None,
        })
    }
}

/// Whether a decimal literal is a float (has a point or an exponent, or is inf/NaN).
pub(super) fn is_float_text(s: &str) -> bool {
    s.contains(['.', 'e', 'E']) || s.ends_with("inf") || s == "NaN"
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Str,
    F32,
    F64,
    F16,
    BF16,
    Int,
    Bool,
    /// Written as hex bit patterns.
    Bits,
}

fn class(d: DType) -> Class {
    match d {
        DType::String => Class::Str,
        DType::F32 => Class::F32,
        DType::F64 => Class::F64,
        DType::F16 => Class::F16,
        DType::BF16 => Class::BF16,
        DType::Bool => Class::Bool,
        d if d.is_int() => Class::Int,
        _ => Class::Bits,
    }
}

/// Writes every value of `t`, separated by `, `.
pub(super) fn write_values(out: &mut String, t: &Tensor) -> Result<(), TensorError> {
    let dtype = t.dtype()?;
    let mut sep = (0usize..).map(|i| if i == 0 { "" } else { ", " });
    match class(dtype) {
        Class::Str => {
            for s in t.strings()? {
                out.push_str(sep.next().unwrap());
                write_string(out, s);
            }
        }
        Class::F32 | Class::F16 | Class::BF16 => {
            for v in t.to_f32()? {
                let _ = write!(out, "{}{v:?}", sep.next().unwrap());
            }
        }
        Class::F64 => {
            for c in t.raw()?.chunks_exact(8) {
                let v = f64::from_le_bytes(c.try_into().unwrap());
                let _ = write!(out, "{}{v:?}", sep.next().unwrap());
            }
        }
        Class::Int => {
            for v in t.to_i64()? {
                let s = sep.next().unwrap();
                let _ = if dtype == DType::U64 { write!(out, "{s}{}", v as u64) } else { write!(out, "{s}{v}") };
            }
        }
        Class::Bool => {
            for v in t.to_i64()? {
                out.push_str(sep.next().unwrap());
                match v {
                    0 => out.push_str("false"),
                    1 => out.push_str("true"),
                    v => {
                        let _ = write!(out, "{v}");
                    }
                }
            }
        }
        Class::Bits => {
            let raw = t.raw()?;
            let bits = dtype.bits();
            for i in 0..t.numel()? {
                let _ =
                    write!(out, "{}0x{:02$x}", sep.next().unwrap(), bits_at(&raw, i * bits, bits), bits.div_ceil(4));
            }
        }
    }
    Ok(())
}

/// `bits` bits starting at bit `start`, least significant first.
fn bits_at(raw: &[u8], start: usize, bits: usize) -> u128 {
    (0..bits).filter(|k| raw[(start + k) / 8] >> ((start + k) % 8) & 1 == 1).fold(0, |v, k| v | 1 << k)
}

/// A string literal: printable characters as they are, `\"`, `\\`, `\n`, `\t`, `\r`, other
/// control characters as `\xNN` (ASCII) or `\u{…}`, and bytes that are not UTF-8 as `\xNN`.
pub(super) fn write_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() && c.is_ascii() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
}

/// A rank-1 tensor of the first `k` values of `t` (the head of an elided constant).
pub(super) fn head(t: &Tensor, k: usize) -> Result<Tensor, TensorError> {
    let dtype = t.dtype()?;
    if dtype == DType::String {
        let proto = TensorProto {
            dims: vec![k as i64],
            data_type: Some(dtype.to_onnx()),
            string_data: t.strings()?[..k].to_vec(),
            ..Default::default()
        };
        return Ok(Tensor { proto, external: None });
    }
    let raw = t.raw()?;
    let len = dtype.raw_len(k).unwrap_or(0);
    Ok(Tensor::from_raw("", dtype, &[k as i64], raw[..len].to_vec().into()))
}

fn bad(pos: Pos, msg: String) -> ParseError {
    ParseError::Invalid { pos, msg }
}

/// A tensor of `dtype` and `dims` from one literal per element (`raw_data`, or `string_data` for
/// strings).
pub(super) fn tensor_from_lits(dtype: DType, dims: &[i64], lits: &[(Lit, Pos)]) -> Result<Tensor, ParseError> {
    let class = class(dtype);
    if class == Class::Str {
        let strings = lits
            .iter()
            .map(|(l, p)| match l {
                Lit::Str(b) => Ok(bytes::Bytes::copy_from_slice(b)),
                _ => Err(bad(*p, "expected a string".into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proto = TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dtype.to_onnx()),
            string_data: strings,
            ..Default::default()
        };
        return Ok(Tensor { proto, external: None });
    }
    if matches!(class, Class::Int | Class::Bits) {
        let (min, max) = range(dtype);
        let mut vals = Vec::with_capacity(lits.len());
        for (l, p) in lits {
            let v = integer(l, *p, class == Class::Bits)?;
            if v < min || v > max {
                return Err(bad(*p, format!("{} is out of range for {dtype}", lit_text(l))));
            }
            vals.push(v);
        }
        if dtype.bits() <= 64 {
            let vals: Vec<i64> = vals.iter().map(|&v| v as i64).collect();
            return Ok(Tensor::from_i64("", dtype, dims, &vals));
        }
        let raw: Vec<u8> = vals.iter().flat_map(|&v| (v as u128).to_le_bytes()).collect();
        return Ok(Tensor::from_raw("", dtype, dims, raw.into()));
    }
    let mut raw = Vec::with_capacity(dtype.raw_len(lits.len()).unwrap_or(0));
    for l in lits {
        match class {
            Class::F32 => raw.extend(float::<f32>(l)?.to_le_bytes()),
            Class::F64 => raw.extend(float::<f64>(l)?.to_le_bytes()),
            Class::F16 => raw.extend(f32_to_f16(float(l)?).to_le_bytes()),
            Class::BF16 => raw.extend(f32_to_bf16(float(l)?).to_le_bytes()),
            _ => raw.push(bool_byte(l)?),
        }
    }
    Ok(Tensor::from_raw("", dtype, dims, raw.into()))
}

pub(super) fn lit_text<'s>(l: &'s Lit) -> Cow<'s, str> {
    match l {
        Lit::Num(s) => Cow::Borrowed(s),
        Lit::Hex(s) => Cow::Owned(format!("0x{s}")),
        Lit::Str(_) => Cow::Borrowed("a string"),
        Lit::Bool(b) => Cow::Owned(b.to_string()),
    }
}

fn float<T: std::str::FromStr>((l, p): &(Lit, Pos)) -> Result<T, ParseError> {
    match l {
        Lit::Num(s) => s.parse().map_err(|_| bad(*p, format!("invalid number {s}"))),
        _ => Err(bad(*p, format!("expected a decimal number, found {}", lit_text(l)))),
    }
}

fn bool_byte((l, p): &(Lit, Pos)) -> Result<u8, ParseError> {
    match l {
        Lit::Bool(b) => Ok(*b as u8),
        Lit::Num(s) => s.parse().map_err(|_| bad(*p, format!("expected true, false or a byte, found {s}"))),
        _ => Err(bad(*p, format!("expected true or false, found {}", lit_text(l)))),
    }
}

/// An integer literal (decimal, or hex when `hex_ok`) as i128.
fn integer(l: &Lit, p: Pos, hex_ok: bool) -> Result<i128, ParseError> {
    let r = match l {
        Lit::Num(s) if !is_float_text(s) => s.parse::<i128>().ok(),
        Lit::Hex(s) if hex_ok => u128::from_str_radix(s, 16).ok().map(|v| v as i128),
        _ => None,
    };
    let kind = if hex_ok { "a hex bit pattern like 0x3c" } else { "an integer" };
    r.ok_or_else(|| bad(p, format!("expected {kind}, found {}", lit_text(l))))
}

/// The values an integer or bit-pattern element can take (bit patterns as unsigned).
fn range(d: DType) -> (i128, i128) {
    match d {
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        d if d.is_int() => d.int_range().map(|(a, b)| (a as i128, b as i128)).unwrap(),
        d if d.bits() >= 128 => (i128::MIN, i128::MAX),
        d => (0, (1i128 << d.bits()) - 1),
    }
}

/// The text a literal denotes as one element of `dtype`, as the printer writes it; `None` if it
/// is not a valid element of that type.
pub(super) fn canonical(dtype: DType, l: &Lit) -> Option<String> {
    let pos = Pos { line: 0, col: 0 };
    let t = tensor_from_lits(dtype, &[], &[(l.clone(), pos)]).ok()?;
    let mut s = String::new();
    write_values(&mut s, &t).ok()?;
    Some(s)
}

/// Nearest f16 (round to nearest, ties to even).
pub(super) fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |v: u32, shift: u32| -> u32 {
        let (q, rem, half) = (v >> shift, v & ((1 << shift) - 1), 1 << (shift - 1));
        q + (rem > half || (rem == half && q & 1 == 1)) as u32
    };
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: the implicit bit joins the mantissa; a carry may make it the smallest normal.
        return sign | round(man | 0x80_0000, (14 - e) as u32) as u16;
    }
    // A carry out of the mantissa bumps the exponent (up to infinity), as it should.
    sign | round(((e as u32) << 23) | man, 13) as u16
}

/// Nearest bfloat16 (round to nearest, ties to even); NaN stays NaN.
pub(super) fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}
