//! A small `.npy` reader and writer (format versions 1.0–3.0), written here rather than taken from
//! `npyz`/`ndarray-npy` because the format is ~100 lines and we need a mapping those crates do not
//! offer: `float16` (`<f2`) in both directions, sub-byte ONNX types, and Fortran-order input.
//!
//! | ONNX | numpy `descr` written | read back as |
//! |---|---|---|
//! | f32, f64, f16 | `<f4`, `<f8`, `<f2` | same |
//! | u8…u64, i8…i64 | `|u1` `<u2` `<u4` `<u8`, `|i1` `<i2` `<i4` `<i8` | same |
//! | bool | `|b1` | bool |
//! | bf16 | `<f4` (exact; numpy has no bfloat16) | f32 |
//! | u4, u2 / i4, i2 | `|u1` / `|i1`, one element per byte | u8 / i8 |
//!
//! Strings and object arrays are not supported.

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use crate::num::Scalar;
use crate::value::{DataError, Value};

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(msg: impl Into<String>) -> DataError {
    DataError::Npy(msg.into())
}

/// Parses `.npy` bytes into a [`Value`].
pub fn read(bytes: &[u8]) -> Result<Value, DataError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not an .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header"));
            }
            (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
        }
        v => return Err(err(format!("unsupported format version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| err("header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or_else(|| err("header has no 'fortran_order'"))?;
    let fortran = match fortran.trim() {
        "True" => true,
        "False" => false,
        f => return Err(err(format!("bad fortran_order {f}"))),
    };
    let shape_text = dict_value(header, "shape").ok_or_else(|| err("header has no 'shape'"))?;
    let shape: Vec<usize> = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| err(format!("bad shape {shape_text}"))))
        .collect::<Result<_, _>>()?;
    let data = &bytes[start + hlen..];
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| n.checked_mul(8).is_some())
        .ok_or_else(|| err(format!("shape {shape_text} is too large")))?;

    fn decode<T: Scalar>(data: &[u8], n: usize, shape: &[usize], fortran: bool, big: bool) -> Result<Value, DataError> {
        let need = n * T::SIZE;
        if data.len() < need {
            return Err(err(format!("data holds {} bytes, shape needs {need}", data.len())));
        }
        let v: Vec<T> = data[..need]
            .chunks_exact(T::SIZE)
            .map(|c| {
                if big {
                    let mut r = c.to_vec();
                    r.reverse();
                    T::read_le(&r)
                } else {
                    T::read_le(c)
                }
            })
            .collect();
        let a = if fortran {
            ArrayD::from_shape_vec(IxDyn(shape).f(), v).map(|a| a.as_standard_layout().into_owned())
        } else {
            ArrayD::from_shape_vec(IxDyn(shape), v)
        };
        Ok(T::wrap(a.map_err(|e| err(e.to_string()))?))
    }
    let (order, kind) = descr.split_at(1.min(descr.len()));
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(err(format!("unsupported dtype '{descr}'"))),
    };
    match kind {
        "f4" => decode::<f32>(data, n, &shape, fortran, big),
        "f8" => decode::<f64>(data, n, &shape, fortran, big),
        "f2" => decode::<f16>(data, n, &shape, fortran, big),
        "u1" => decode::<u8>(data, n, &shape, fortran, big),
        "i1" => decode::<i8>(data, n, &shape, fortran, big),
        "u2" => decode::<u16>(data, n, &shape, fortran, big),
        "i2" => decode::<i16>(data, n, &shape, fortran, big),
        "u4" => decode::<u32>(data, n, &shape, fortran, big),
        "i4" => decode::<i32>(data, n, &shape, fortran, big),
        "u8" => decode::<u64>(data, n, &shape, fortran, big),
        "i8" => decode::<i64>(data, n, &shape, fortran, big),
        "b1" => decode::<bool>(data, n, &shape, fortran, big),
        _ => Err(err(format!("unsupported dtype '{descr}'"))),
    }
}

/// The text after `'key':` up to the next top-level `,` or `}`.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Serialises a [`Value`] as `.npy` (version 1.0, C order).
pub fn write(v: &Value) -> Result<Vec<u8>, DataError> {
    let (descr, body): (&str, Vec<u8>) = match v {
        Value::F32(a) => ("<f4", raw(a)),
        Value::F64(a) => ("<f8", raw(a)),
        Value::F16(a) => ("<f2", raw(a)),
        Value::BF16(a) => ("<f4", raw(&a.mapv(bf16::to_f32))),
        Value::U8(a) | Value::U4(a) | Value::U2(a) => ("|u1", raw(a)),
        Value::I8(a) | Value::I4(a) | Value::I2(a) => ("|i1", raw(a)),
        Value::U16(a) => ("<u2", raw(a)),
        Value::I16(a) => ("<i2", raw(a)),
        Value::U32(a) => ("<u4", raw(a)),
        Value::I32(a) => ("<i4", raw(a)),
        Value::U64(a) => ("<u8", raw(a)),
        Value::I64(a) => ("<i8", raw(a)),
        Value::Bool(a) => ("|b1", raw(a)),
        Value::Str(_) => return Err(DataError::UnsupportedDType(qdqc_ir::DType::String)),
    };
    let shape = match v.shape() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        s => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn raw<T: Scalar>(a: &ArrayD<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() * T::SIZE);
    a.iter().for_each(|x| x.write_le(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use qdqc_ir::DType;

    #[test]
    fn round_trips() {
        for v in [
            Value::f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap(),
            Value::from_i64(DType::I8, &[4], &[-128, 0, 1, 127]).unwrap(),
            Value::from_i64(DType::U16, &[], &[65535]).unwrap(),
            Value::from_i64(DType::Bool, &[1, 2], &[1, 0]).unwrap(),
            Value::from_f64(DType::F16, &[2], &[0.5, -1.0]).unwrap(),
            Value::from_i64(DType::I64, &[0, 3], &[]).unwrap(),
        ] {
            let bytes = v.to_npy().unwrap();
            assert_eq!((bytes.len() - v.len() * (v.dtype().bits() / 8).max(1)) % 64, 0);
            assert_eq!(Value::from_npy(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn reads_numpy_output() {
        // np.save(f, np.arange(6, dtype='>i4').reshape(2, 3).T)  (Fortran order, big endian)
        let mut b = MAGIC.to_vec();
        let h = "{'descr': '>i4', 'fortran_order': True, 'shape': (3, 2), }";
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for x in 0i32..6 {
            b.extend_from_slice(&x.to_be_bytes());
        }
        let v = Value::from_npy(&b).unwrap();
        assert_eq!(v.shape(), &[3, 2]);
        assert_eq!(v.to_i64_vec().unwrap(), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Value::from_npy(b"hello").is_err());
        // A shape whose product overflows, and one larger than the data.
        for shape in ["(4294967296, 4294967296, 16)", "(1000000,)"] {
            let mut b = MAGIC.to_vec();
            let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0; 16]);
            assert!(Value::from_npy(&b).is_err(), "{shape}");
        }
    }
}
