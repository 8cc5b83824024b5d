//! Helpers shared by the I/O integration tests: the fixture list, the independent decoder
//! (`onnx-protobuf`, rust-protobuf 3.4) and a reflection-based comparison that names the first
//! differing field, e.g. `graph.node[12].attribute[0].f`.

#![allow(dead_code)]

pub mod qdq_gen;

use onnx_protobuf::Message as _;
use protobuf::UnknownFields;
use std::path::{Path, PathBuf};

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every `*.onnx` file in `tests/fixtures`, sorted by name. Listed at run time, so a fixture added
/// to the folder is tested without touching the tests.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures must exist")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.onnx fixtures in {}", fixtures_dir().display());
    v
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Decodes with the independent decoder.
pub fn decode_ref(bytes: &[u8]) -> Result<onnx_protobuf::ModelProto, String> {
    onnx_protobuf::ModelProto::parse_from_bytes(bytes).map_err(|e| format!("onnx-protobuf cannot decode: {e}"))
}

pub fn decode_ref_file(path: &Path) -> Result<onnx_protobuf::ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode_ref(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first difference between two messages of the same type, as `path: left != right`, or
/// `None` if they are equal field by field (floats compared by bit pattern, unknown fields
/// included). onnx-protobuf is generated for rust-protobuf's lite runtime (no reflection), so
/// every message type lists its fields in [`messages!`] below.
pub fn first_difference<M: Msg>(a: &M, b: &M) -> Option<String> {
    a.diff(b, "")
}

/// Paths of every message (at any depth) that holds fields the independent decoder does not
/// know, with their field numbers, e.g. `graph.node[3] (NodeProto): fields [10]`.
pub fn unknown_fields<M: Msg>(m: &M) -> Vec<String> {
    let mut out = Vec::new();
    m.unknown("", &mut out);
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Field by field comparison and unknown-field scan of an onnx-protobuf value.
pub trait Msg {
    fn diff(&self, other: &Self, path: &str) -> Option<String>;
    fn unknown(&self, _path: &str, _out: &mut Vec<String>) {}
}

macro_rules! scalars {
    ($($t:ty => |$a:ident, $b:ident| $same:expr, $show:expr;)*) => {$(
        impl Msg for $t {
            fn diff(&self, other: &Self, path: &str) -> Option<String> {
                let ($a, $b) = (self, other);
                if $same {
                    None
                } else {
                    let show = $show;
                    Some(format!("{path}: {} != {}", show($a), show($b)))
                }
            }
        }
    )*};
}

scalars! {
    i32 => |a, b| a == b, |v: &i32| v.to_string();
    i64 => |a, b| a == b, |v: &i64| v.to_string();
    u64 => |a, b| a == b, |v: &u64| v.to_string();
    f32 => |a, b| a.to_bits() == b.to_bits(), |v: &f32| format!("{v:?} (bits {:#010x})", v.to_bits());
    f64 => |a, b| a.to_bits() == b.to_bits(), |v: &f64| format!("{v:?} (bits {:#018x})", v.to_bits());
    String => |a, b| a == b, |v: &String| format!("{v:?}");
    Vec<u8> => |a, b| a == b, show_bytes;
}

fn show_bytes(b: &Vec<u8>) -> String {
    if b.len() > 32 {
        format!("<{} bytes: {:02x?}...>", b.len(), &b[..32])
    } else {
        format!("{b:02x?}")
    }
}

impl<E: protobuf::Enum + std::fmt::Debug> Msg for protobuf::EnumOrUnknown<E> {
    fn diff(&self, other: &Self, path: &str) -> Option<String> {
        (self.value() != other.value()).then(|| format!("{path}: {:?} != {:?}", self.enum_value(), other.enum_value()))
    }
}

// Strings and bytes are `Vec<u8>`/`String`; every other repeated field is a list of messages or
// numbers: compare element-wise, then the lengths.
macro_rules! repeated {
    ($($t:ty),*) => {$(
        impl Msg for Vec<$t> {
            fn diff(&self, other: &Self, path: &str) -> Option<String> {
                for (i, (x, y)) in self.iter().zip(other).enumerate() {
                    if let Some(d) = x.diff(y, &format!("{path}[{i}]")) {
                        return Some(d);
                    }
                }
                (self.len() != other.len()).then(|| format!("{path}: {} elements != {} elements", self.len(), other.len()))
            }
            fn unknown(&self, path: &str, out: &mut Vec<String>) {
                for (i, x) in self.iter().enumerate() {
                    x.unknown(&format!("{path}[{i}]"), out);
                }
            }
        }
    )*};
}

use onnx_protobuf as op;
repeated!(i64, i32, u64, f32, f64, String, Vec<u8>);
repeated!(op::AttributeProto, op::ValueInfoProto, op::NodeProto, op::TrainingInfoProto, op::StringStringEntryProto);
repeated!(op::TensorAnnotation, op::GraphProto, op::TensorProto, op::SparseTensorProto, op::TypeProto);
repeated!(op::OperatorSetIdProto, op::FunctionProto, op::tensor_shape_proto::Dimension);

impl<M: Msg + protobuf::Message> Msg for protobuf::MessageField<M> {
    fn diff(&self, other: &Self, path: &str) -> Option<String> {
        match (self.as_ref(), other.as_ref()) {
            (None, None) => None,
            (Some(x), Some(y)) => x.diff(y, path),
            (x, y) => {
                let show = |v: Option<&M>| if v.is_some() { "<set>" } else { "<unset>" };
                Some(format!("{path}: {} != {}", show(x), show(y)))
            }
        }
    }
    fn unknown(&self, path: &str, out: &mut Vec<String>) {
        if let Some(m) = self.as_ref() {
            m.unknown(path, out);
        }
    }
}

fn unknown_list(u: &UnknownFields) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = u.iter().map(|(n, v)| (n, format!("{v:?}"))).collect();
    v.sort();
    v
}

fn diff_unknown(a: &protobuf::SpecialFields, b: &protobuf::SpecialFields, path: &str) -> Option<String> {
    let (ua, ub) = (unknown_list(a.unknown_fields()), unknown_list(b.unknown_fields()));
    (ua != ub).then(|| format!("{}: unknown fields {ua:?} != {ub:?}", join(path, "<unknown>")))
}

fn scan_unknown(s: &protobuf::SpecialFields, name: &str, path: &str, out: &mut Vec<String>) {
    let u = unknown_list(s.unknown_fields());
    if !u.is_empty() {
        let nums: Vec<u32> = u.iter().map(|(n, _)| *n).collect();
        let at = if path.is_empty() { "<model>" } else { path };
        out.push(format!("{at} ({name}): fields {nums:?}"));
    }
}

/// `field name in the .proto`: rust-protobuf appends `_` to keywords (`type_`).
fn proto_name(rust: &str) -> &str {
    rust.strip_suffix('_').unwrap_or(rust)
}

/// Implements [`Msg`] for a message from its complete field list. The destructuring makes a
/// missing field a compile error, so no field can be skipped silently.
macro_rules! messages {
    ($($t:ty { $($f:ident),* $(,)? })*) => {$(
        impl Msg for $t {
            fn diff(&self, other: &Self, path: &str) -> Option<String> {
                let Self { $($f: _,)* special_fields: _ } = self;
                $(
                    if let Some(d) = self.$f.diff(&other.$f, &join(path, proto_name(stringify!($f)))) {
                        return Some(d);
                    }
                )*
                diff_unknown(&self.special_fields, &other.special_fields, path)
            }
            fn unknown(&self, path: &str, out: &mut Vec<String>) {
                scan_unknown(&self.special_fields, stringify!($t), path, out);
                $( self.$f.unknown(&join(path, proto_name(stringify!($f))), out); )*
            }
        }
    )*};
}

messages! {
    op::ModelProto { ir_version, opset_import, producer_name, producer_version, domain, model_version, doc_string, graph,
        metadata_props, training_info, functions }
    op::GraphProto { node, name, initializer, sparse_initializer, doc_string, input, output, value_info,
        quantization_annotation, metadata_props }
    op::NodeProto { input, output, name, op_type, domain, overload, attribute, doc_string, metadata_props }
    op::AttributeProto { name, ref_attr_name, doc_string, type_, f, i, s, t, g, sparse_tensor, tp, floats, ints, strings,
        tensors, graphs, sparse_tensors, type_protos }
    op::ValueInfoProto { name, type_, doc_string, metadata_props }
    op::TrainingInfoProto { initialization, algorithm, initialization_binding, update_binding }
    op::StringStringEntryProto { key, value }
    op::TensorAnnotation { tensor_name, quant_parameter_tensor_names }
    op::TensorProto { dims, data_type, segment, float_data, int32_data, string_data, int64_data, name, doc_string,
        raw_data, external_data, data_location, double_data, uint64_data, metadata_props }
    op::tensor_proto::Segment { begin, end }
    op::SparseTensorProto { values, indices, dims }
    op::TensorShapeProto { dim }
    op::tensor_shape_proto::Dimension { denotation, value }
    op::TypeProto { denotation, value }
    op::type_proto::Tensor { elem_type, shape }
    op::type_proto::Sequence { elem_type }
    op::type_proto::Map { key_type, value_type }
    op::type_proto::Optional { elem_type }
    op::type_proto::SparseTensor { elem_type, shape }
    op::OperatorSetIdProto { domain, version }
    op::FunctionProto { name, input, output, attribute, attribute_proto, node, doc_string, opset_import, domain,
        overload, value_info, metadata_props }
}

/// A oneof: same variant, then the variant's value. `path` names the oneof's field (`value`);
/// the path of a difference names the member field instead (`type.tensor_type.elem_type`).
macro_rules! oneof {
    ($t:ty { $($v:ident => $name:literal),* $(,)? }) => {
        impl Msg for Option<$t> {
            fn diff(&self, other: &Self, path: &str) -> Option<String> {
                type V = $t;
                let parent = path.strip_suffix("value").unwrap_or(path).trim_end_matches('.');
                match (self, other) {
                    (None, None) => None,
                    $( (Some(V::$v(x)), Some(V::$v(y))) => x.diff(y, &join(parent, $name)), )*
                    (x, y) => {
                        let which = |v: &Option<V>| match v {
                            None => "<unset>".to_string(),
                            $( Some(V::$v(_)) => format!("{} is set", $name), )*
                            #[allow(unreachable_patterns)]
                            Some(other) => format!("{other:?}"),
                        };
                        Some(format!("{}: {} != {}", join(parent, "<oneof value>"), which(x), which(y)))
                    }
                }
            }
            fn unknown(&self, path: &str, out: &mut Vec<String>) {
                type V = $t;
                let parent = path.strip_suffix("value").unwrap_or(path).trim_end_matches('.');
                match self {
                    $( Some(V::$v(x)) => x.unknown(&join(parent, $name), out), )*
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
        }
    };
}

oneof!(op::tensor_shape_proto::dimension::Value { DimValue => "dim_value", DimParam => "dim_param" });
oneof!(op::type_proto::Value {
    TensorType => "tensor_type",
    SequenceType => "sequence_type",
    MapType => "map_type",
    OptionalType => "optional_type",
    SparseTensorType => "sparse_tensor_type",
});

/// The first difference between the pretty `Debug` forms of two values (e.g. prost messages,
/// which keep field presence), as `path: left line != right line`, where the path is rebuilt
/// from the indentation: `graph.initializer[3].data_location`.
pub fn debug_difference<T: std::fmt::Debug>(a: &T, b: &T) -> Option<String> {
    let (da, db) = (format!("{a:#?}"), format!("{b:#?}"));
    let (la, lb): (Vec<&str>, Vec<&str>) = (da.lines().collect(), db.lines().collect());
    let d = la.iter().zip(&lb).position(|(x, y)| x != y).unwrap_or(la.len().min(lb.len()));
    if d == la.len() && d == lb.len() {
        return None;
    }
    struct Frame {
        indent: usize,
        seg: String,
        list: bool,
        count: usize,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let lines = if d < la.len() { &la[..=d] } else { &lb[..=d] };
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        while stack.last().is_some_and(|f| f.indent >= indent) {
            stack.pop();
        }
        if t.starts_with([']', '}', ')']) {
            continue;
        }
        let seg = match stack.last_mut() {
            Some(parent) if parent.list => {
                parent.count += 1;
                format!("[{}]", parent.count - 1)
            }
            _ => t.split_once(": ").map(|(n, _)| n.trim_start_matches("r#").to_string()).unwrap_or_default(),
        };
        stack.push(Frame { indent, seg, list: t.ends_with('['), count: 0 });
    }
    let mut path = String::new();
    for f in stack.iter().filter(|f| !f.seg.is_empty()) {
        if !path.is_empty() && !f.seg.starts_with('[') {
            path.push('.');
        }
        path.push_str(&f.seg);
    }
    let cut = |s: Option<&&str>| {
        let s = s.map_or("<end>", |s| s.trim());
        if s.chars().count() > 120 {
            format!("{}...", s.chars().take(120).collect::<String>())
        } else {
            s.to_string()
        }
    };
    Some(format!("{path}: `{}` != `{}` (line {} of the Debug form)", cut(la.get(d)), cut(lb.get(d)), d + 1))
}

/// Describes where two byte strings first differ (for byte-identity failures).
pub fn byte_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let window = |s: &[u8]| format!("{:02x?}", &s[i.saturating_sub(8).min(s.len())..(i + 16).min(s.len())]);
    Some(format!(
        "lengths {} vs {}, first difference at byte {i}: ...{} vs ...{}",
        a.len(),
        b.len(),
        window(a),
        window(b)
    ))
}

/// A fixture copied into `dir` (with its external-data side files), for tests that modify it.
pub fn copy_fixture(name: &str, dir: &Path, with_side_files: &[&str]) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(fixtures_dir().join(name), &to).unwrap();
    for s in with_side_files {
        std::fs::copy(fixtures_dir().join(s), dir.join(s)).unwrap();
    }
    to
}
