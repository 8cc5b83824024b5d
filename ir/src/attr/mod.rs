//! Typed access to ONNX attributes, which nodes keep as the original `AttributeProto`s: one
//! attribute at a time here, and whole ops' attributes with their ONNX defaults in [`view`].

pub mod view;

use crate::proto::attribute_proto::AttributeType;
use crate::proto::AttributeProto;
use crate::tensor::Tensor;
use std::borrow::Cow;

/// The attribute's declared type (UNDEFINED when absent or unknown).
pub fn kind(a: &AttributeProto) -> AttributeType {
    a.r#type.and_then(|t| AttributeType::try_from(t).ok()).unwrap_or(AttributeType::Undefined)
}

pub fn find<'a>(attrs: &'a [AttributeProto], name: &str) -> Option<&'a AttributeProto> {
    attrs.iter().find(|a| a.name.as_deref() == Some(name))
}

pub fn int(attrs: &[AttributeProto], name: &str) -> Option<i64> {
    find(attrs, name).filter(|a| kind(a) == AttributeType::Int).and_then(|a| a.i)
}

pub fn float(attrs: &[AttributeProto], name: &str) -> Option<f32> {
    find(attrs, name).filter(|a| kind(a) == AttributeType::Float).and_then(|a| a.f)
}

pub fn ints<'a>(attrs: &'a [AttributeProto], name: &str) -> Option<&'a [i64]> {
    find(attrs, name).filter(|a| kind(a) == AttributeType::Ints).map(|a| a.ints.as_slice())
}

pub fn floats<'a>(attrs: &'a [AttributeProto], name: &str) -> Option<&'a [f32]> {
    find(attrs, name).filter(|a| kind(a) == AttributeType::Floats).map(|a| a.floats.as_slice())
}

/// A STRING attribute as UTF-8 (lossy).
pub fn string(attrs: &[AttributeProto], name: &str) -> Option<String> {
    str(attrs, name).map(Cow::into_owned)
}

/// A STRING attribute as UTF-8 (lossy), borrowed when it is valid UTF-8.
pub fn str<'a>(attrs: &'a [AttributeProto], name: &str) -> Option<Cow<'a, str>> {
    find(attrs, name)
        .filter(|a| kind(a) == AttributeType::String)
        .and_then(|a| a.s.as_deref())
        .map(String::from_utf8_lossy)
}

pub fn tensor(attrs: &[AttributeProto], name: &str) -> Option<Tensor> {
    find(attrs, name)
        .filter(|a| kind(a) == AttributeType::Tensor)
        .and_then(|a| a.t.clone())
        .map(|proto| Tensor { proto: *proto, external: None })
}

fn base(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto { name: Some(name.to_string()), r#type: Some(ty as i32), ..Default::default() }
}

pub fn make_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { i: Some(v), ..base(name, AttributeType::Int) }
}

pub fn make_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { f: Some(v), ..base(name, AttributeType::Float) }
}

pub fn make_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { ints: v.to_vec(), ..base(name, AttributeType::Ints) }
}

pub fn make_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { floats: v.to_vec(), ..base(name, AttributeType::Floats) }
}

pub fn make_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { s: Some(v.as_bytes().to_vec().into()), ..base(name, AttributeType::String) }
}

pub fn make_tensor(name: &str, t: Tensor) -> AttributeProto {
    AttributeProto { t: Some(Box::new(t.proto)), ..base(name, AttributeType::Tensor) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_check_the_type() {
        let attrs = vec![make_int("axis", 1), make_ints("pads", &[1, 1]), make_string("mode", "nearest")];
        assert_eq!(int(&attrs, "axis"), Some(1));
        assert_eq!(ints(&attrs, "pads"), Some(&[1i64, 1][..]));
        assert_eq!(string(&attrs, "mode").as_deref(), Some("nearest"));
        assert_eq!(ints(&attrs, "axis"), None);
        assert_eq!(float(&attrs, "alpha"), None);
    }
}
