//! Lossless load → save round trips of every fixture in `tests/fixtures` (listed at run time).
//!
//! Each test runs over all fixtures and reports every failing fixture, not just the first.
//! - field by field: the independent decoder (`onnx-protobuf`, rust-protobuf) sees the same
//!   message in the input and in the output, and so do our prost types (which, unlike the proto3
//!   independent decoder, also see field presence);
//! - schema completeness: prost drops nothing the independent decoder knows, re-encodes every
//!   fixture byte for byte, and the fixtures carry no field unknown to the independent decoder;
//! - bytes: the output (and its external-data side files) is byte-identical to the input, saving
//!   is deterministic, and saving the output again gives the same bytes.

mod common;

use common::{byte_difference, debug_difference, decode_ref, file_name, first_difference, fixtures, unknown_fields};
use qdqc_ir::onnx::{load, read_proto, save, SaveOptions};
use std::path::{Path, PathBuf};

/// Runs `check` on every fixture; fails listing every fixture that failed.
fn for_every_fixture(check: impl Fn(&Path) -> Result<(), String>) {
    let all = fixtures();
    let failures: Vec<String> =
        all.iter().filter_map(|p| check(p).err().map(|e| format!("  {}: {e}", file_name(p)))).collect();
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n{}", failures.len(), all.len(), failures.join("\n"));
}

/// The side files (`location`s of external-data tensors) a model file refers to, sorted.
fn side_files(path: &Path) -> Result<Vec<String>, String> {
    let m = decode_ref(&std::fs::read(path).map_err(|e| e.to_string())?)?;
    let mut locs: Vec<String> = m
        .graph
        .initializer
        .iter()
        .flat_map(|t| t.external_data.iter().filter(|e| e.key == "location").map(|e| e.value.clone()))
        .collect();
    locs.sort();
    locs.dedup();
    Ok(locs)
}

/// `load` then `save` with default options into `dir` under the same file name.
fn load_save(input: &Path, dir: &Path) -> Result<PathBuf, String> {
    let model = load(input).map_err(|e| format!("load: {e}"))?;
    let out = dir.join(input.file_name().unwrap());
    save(&model, &out, &SaveOptions::default()).map_err(|e| format!("save: {e}"))?;
    Ok(out)
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Every `.onnx` file plus its side files must be byte-identical between two folders.
fn same_files(a: &Path, b: &Path) -> Result<(), String> {
    let (ba, bb) = (read(a)?, read(b)?);
    if let Some(d) = byte_difference(&ba, &bb) {
        return Err(format!("{} vs {}: {d}", a.display(), b.display()));
    }
    for loc in side_files(a)? {
        let (sa, sb) = (a.parent().unwrap().join(&loc), b.parent().unwrap().join(&loc));
        if let Some(d) = byte_difference(&read(&sa)?, &read(&sb)?) {
            return Err(format!("side file '{loc}': {d}"));
        }
    }
    Ok(())
}

#[test]
fn fixture_list_includes_the_known_fixtures() {
    let names: Vec<String> = fixtures().iter().map(|p| file_name(p)).collect();
    for must in ["kitchen_sink.onnx", "external_data.onnx", "trt_style.onnx", "resnet_block.u8.pc.onnx"] {
        assert!(names.iter().any(|n| n == must), "{must} missing from {names:?}");
    }
    assert!(names.len() >= 18, "expected at least the 18 fixtures of tests/fixtures/README.md, found {names:?}");
}

/// (a) The independent decoder sees the same message in the input and the output.
#[test]
fn load_save_preserves_every_field_for_the_independent_decoder() {
    for_every_fixture(|input| {
        let dir = tempfile::tempdir().unwrap();
        let out = load_save(input, dir.path())?;
        let (a, b) = (decode_ref(&read(input)?)?, decode_ref(&read(&out)?)?);
        match first_difference(&a, &b) {
            None => Ok(()),
            Some(d) => Err(format!("input vs output differ at {d}")),
        }
    });
}

/// (a') Our prost types, which keep field presence (proto2 `optional`), see the same message too.
#[test]
fn load_save_preserves_every_field_for_prost() {
    for_every_fixture(|input| {
        let dir = tempfile::tempdir().unwrap();
        let out = load_save(input, dir.path())?;
        let a = read_proto(input).map_err(|e| e.to_string())?;
        let b = read_proto(&out).map_err(|e| e.to_string())?;
        match debug_difference(&a, &b) {
            None if a == b => Ok(()),
            None => Err("prost ModelProtos differ but print the same".into()),
            Some(d) => Err(format!("input vs output differ at {d}")),
        }
    });
}

/// (b) prost's schema drops nothing the independent decoder knows: decode with prost, re-encode
/// with prost, decode that with onnx-protobuf and compare with onnx-protobuf's decode of the file.
#[test]
fn prost_schema_drops_nothing_the_independent_decoder_knows() {
    for_every_fixture(|input| {
        let original = read(input)?;
        let proto = read_proto(input).map_err(|e| e.to_string())?;
        let reencoded = prost::Message::encode_to_vec(&proto);
        let (a, b) = (decode_ref(&original)?, decode_ref(&reencoded)?);
        match first_difference(&a, &b) {
            None => Ok(()),
            Some(d) => Err(format!("prost re-encoding differs at {d}")),
        }
    });
}

/// (b') Stronger, and independent of the other decoder's schema: prost re-encodes every fixture to
/// exactly the input bytes, so it dropped nothing at all (prost discards unknown fields, which
/// would make the re-encoding shorter).
#[test]
fn prost_reencodes_every_fixture_byte_for_byte() {
    for_every_fixture(|input| {
        let original = read(input)?;
        let proto = read_proto(input).map_err(|e| e.to_string())?;
        let reencoded = prost::Message::encode_to_vec(&proto);
        byte_difference(&original, &reencoded).map_or(Ok(()), Err)
    });
}

/// (b'') The fixtures hold no field the independent decoder (onnx 1.16-era schema, IR 10) does not
/// know, at any depth — otherwise the field-by-field comparisons above would not look at it.
#[test]
fn independent_decoder_sees_no_unknown_fields() {
    for_every_fixture(|input| {
        let m = decode_ref(&read(input)?)?;
        let unknown = unknown_fields(&m);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("fields unknown to onnx-protobuf: {}", unknown.join("; ")))
        }
    });
}

/// (c) The output, and each external-data side file, is byte-identical to the input (the
/// fixtures were written by the canonical protobuf serializer, which prost matches).
#[test]
fn load_save_is_byte_identical() {
    for_every_fixture(|input| {
        let dir = tempfile::tempdir().unwrap();
        let out = load_save(input, dir.path())?;
        same_files(input, &out)
    });
}

#[test]
fn saving_twice_gives_identical_bytes() {
    for_every_fixture(|input| {
        let model = load(input).map_err(|e| format!("load: {e}"))?;
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let name = input.file_name().unwrap();
        for d in [&d1, &d2] {
            save(&model, &d.path().join(name), &SaveOptions::default()).map_err(|e| format!("save: {e}"))?;
        }
        same_files(&d1.path().join(name), &d2.path().join(name))
    });
}

#[test]
fn loading_and_saving_the_output_again_gives_the_same_bytes() {
    for_every_fixture(|input| {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = load_save(input, d1.path())?;
        let second = load_save(&first, d2.path())?;
        same_files(&first, &second)
    });
}
