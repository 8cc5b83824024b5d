//! The text form of the IR: [`print()`] and [`parse()`], with `print(parse(t)) == t` for every
//! printed graph. One node per line, in topological order, named by the ONNX value names, so
//! that snapshots and diffs between passes stay readable:
//!
//! ```text
//! graph "main" opset(ai.onnx=17, com.microsoft=1) {
//!   input %x: f32[N,3,32,32]
//!   const %w: i8[16,3,3,3] #9f3c2a1b00d4e5f6 [1, -3, 4, 2, …]
//!   const %s: f32[] 0.0213
//!   const %zp: u8[] 128
//!   %xq: u8[N,3,32,32] q(0.0213, 128) = QuantizeLinear(%x, %s, %zp)
//!   %y: f32[N,16,32,32] = Conv[kernel_shape=[3,3], pads=[1,1,1,1]](%xd, %wd, %b)  "conv1"
//!   %a: f32[2], _ = com.example.MyOp(%t, _)
//!   output %y
//! }
//! ```
//!
//! Grammar (`//` starts a comment; whitespace and line breaks are not significant):
//!
//! ```text
//! graph   := 'graph' STRING? ('opset' '(' domain '=' INT (',' …)* ')')? '{' item* '}'
//! item    := 'input' value
//!          | 'const' ('(' ('node' | 'default') ')')? NAME ':' (tensor | sparse)
//!          | (out (',' out)*)? '=' op attrs? '(' (operand (',' …)*)? ')' STRING?   (node name)
//!          | 'output' operand
//! value   := NAME (':' type)? quant?          out := value | '_'        operand := NAME | '_'
//! type    := '?' | DTYPE '[' ('*' | (dim (',' dim)*)?) ']'       dim := INT | IDENT | STRING | '?'
//! quant   := 'q' '(' (lit (',' lit)? | NAME (',' NAME)?) (',' ('axis' | 'block') '=' INT)* ')'
//! op      := IDENT                 (`Conv`, `com.example.MyOp`: the domain is before the last dot)
//!          | STRING '.' STRING     (domain and op type that are not identifiers)
//! attrs   := '[' (IDENT | STRING) '=' attr (',' …)* ']'
//! attr    := INT | FLOAT | STRING | tensor | sparse | 'graph' … | '[' (attr (',' attr)*)? ']'
//!          | ('ints' | 'floats' | 'strings' | 'tensors' | 'graphs' | 'sparse_tensors') '[' … ']'
//!          | 'proto' '(' HEX ')'   (any other attribute, as its protobuf bytes)
//! tensor  := DTYPE '[' (INT (',' INT)*)? ']' data
//!          | 'tensor' '(' HEX ')'  (a tensor whose data is not valid, as its protobuf bytes)
//! data    := lit | '[' (lit (',' lit)*)? ']' | FINGERPRINT '[' (lit ',')* '…' ']'
//! sparse  := 'sparse' '[' (INT (',' INT)*)? ']' '(' tensor ',' tensor ')'   (values, indices)
//! lit     := INT | FLOAT | HEX | STRING | 'true' | 'false' | 'inf' | '-inf' | 'NaN'
//! NAME    := '%' [A-Za-z0-9_.:/-]+ (not ending in ':') | '%' STRING
//! STRING  := '"' … '"' with \\ \" \n \t \r \0 \xNN (a byte) \u{…}     HEX := 0x[0-9a-f]*
//! ```
//!
//! - Names: `%name` are the ONNX names, so diffs between passes stay small. `_` is an omitted
//!   optional input or an output the node does not produce. `const(default) %x` is the initializer
//!   that gives graph input `%x` its default; `const(node)` was a `Constant` node.
//! - Values: float types print Rust's shortest round-trip form (f16/bf16 through f32), integers
//!   in decimal, bool as `true`/`false`, and types without a decimal form (float8/6/4, complex) as
//!   hex bit patterns (`0x3c`).
//! - A constant of more than [`PrintOptions::max_const_elems`] elements is written as its
//!   fingerprint ([`Tensor::fingerprint`]) and first values; parsing it gives an [`Elided`]
//!   constant: typed, but without data.
//! - `q(0.0213, 128)` shows the values of one-element scale and zero-point constants (when they
//!   are printed in full), `q(%s, %zp, axis=1, block=32)` names them otherwise. The parser finds
//!   a constant holding the values (if several do, inference picks the one the graph uses).
//! - Nested graphs (If/Loop bodies) are printed from their `GraphProto` with the same syntax:
//!   nodes in file order, `Constant` nodes as nodes, types from `value_info`.
//!
//! Parsing: nodes may come in any order; output types and `q(…)` may be left out, since
//! inference fills them in, and a written `q(…)` that inference contradicts is an error. The
//! parsed graph declares the types it shows (graph outputs, `value_info`) so that export keeps
//! them. The text leaves out doc strings, metadata, node order keys and the `ValueInfoProto`s
//! of graph inputs and outputs.

mod build;
mod lex;
mod parse;
mod print;
mod values;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use parse::{parse, ParseError, Pos};
pub use print::{print, print_node, print_with, PrintOptions};

use crate::dtype::DType;
use crate::op::{Op, MS_DOMAIN};
use crate::proto::tensor_proto::DataLocation;
use crate::proto::{StringStringEntryProto, TensorProto};
use crate::tensor::Tensor;
use prost::Message;

/// A constant whose data the text form elided: its type, the fingerprint of its data and its
/// first values. It has no data: [`crate::Const::tensor`] is `None` for it, inference sees an
/// unknown value of a known type, and export refuses it.
///
/// Inside `TensorProto`s (tensor attributes, nested graphs, sparse constants) it is stored as an
/// external-data tensor whose location is [`ELIDED_LOCATION`], so loading its data fails with
/// "external data has not been loaded".
#[derive(Clone, Debug, PartialEq)]
pub struct Elided {
    pub dtype: DType,
    pub dims: Vec<i64>,
    /// [`Tensor::fingerprint`] of the full tensor.
    pub fingerprint: u64,
    /// The first values, as a rank-1 tensor.
    pub head: Tensor,
}

/// The external-data location that marks an elided tensor inside a `TensorProto`.
pub const ELIDED_LOCATION: &str = "<data elided in the qdqc text form>";

impl Elided {
    /// The elided form of a `TensorProto` (see the type's documentation).
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
        TensorProto {
            dims: self.dims.clone(),
            data_type: Some(self.dtype.to_onnx()),
            name: (!name.is_empty()).then(|| name.to_string()),
            data_location: Some(DataLocation::External as i32),
            external_data: vec![
                kv("location", ELIDED_LOCATION.into()),
                kv("fingerprint", format!("{:016x}", self.fingerprint)),
                kv("head", hex(&self.head.proto.encode_to_vec())),
            ],
            ..Default::default()
        }
    }

    /// Reads back what [`Elided::to_proto`] wrote; `None` for any other tensor.
    pub fn from_proto(t: &TensorProto) -> Option<Elided> {
        let get = |k: &str| t.external_data.iter().find(|e| e.key.as_deref() == Some(k))?.value.as_deref();
        if t.data_location != Some(DataLocation::External as i32) || get("location")? != ELIDED_LOCATION {
            return None;
        }
        let fingerprint = u64::from_str_radix(get("fingerprint")?, 16).ok()?;
        let head = TensorProto::decode(&unhex(get("head")?)?[..]).ok()?;
        let dtype = DType::from_onnx(t.data_type?)?;
        Some(Elided { dtype, dims: t.dims.clone(), fingerprint, head: Tensor { proto: head, external: None } })
    }
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
        s.push(char::from_digit((b & 15) as u32, 16).unwrap());
    }
    s
}

/// Inverse of [`hex`] (either case); `None` for an odd length or a non-hex digit.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16);
    digits.chunks_exact(2).map(|p| Some((val(p[0])? * 16 + val(p[1])?) as u8)).collect()
}

/// A value or constant name that is written bare after `%`.
fn is_bare_name(s: &str) -> bool {
    !s.is_empty() && !s.ends_with(':') && s.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-')
}

/// An identifier token: attribute names, symbolic dims, dtypes, op names with their domain.
fn is_ident(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(is_ident_byte)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// The op a bare op name (no domain) denotes: a known op of ai.onnx or com.microsoft, else an
/// `Other` op of the default domain.
fn bare_op(op_type: &str) -> Op {
    let op = Op::from_onnx("", op_type);
    if !matches!(op, Op::Other(_)) {
        return op;
    }
    match Op::from_onnx(MS_DOMAIN, op_type) {
        Op::Other(_) => op,
        ms => ms,
    }
}

/// Types whose one-element constants a `q(0.0213, 128)` annotation shows as its scale...
fn is_decimal_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// ... and as its zero point: integers only, whose literals name one value in every integer type
/// (a float8/float4 zero point would print as hex bits that the lookup cannot match back).
fn is_zero_point_type(d: DType) -> bool {
    d.is_int()
}

/// `ai.onnx` and the empty domain are the same domain.
fn norm_domain(d: &str) -> &str {
    if d == "ai.onnx" {
        ""
    } else {
        d
    }
}
