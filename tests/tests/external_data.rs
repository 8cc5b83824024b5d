//! External data: `tests/fixtures/external_data.onnx` + `.data` (the 25 initializers held in
//! `raw_data` are external at contiguous unaligned offsets, written by onnx 1.23; the 37 in typed
//! fields stay inline) through each `ExternalData` mode, the errors for broken references, the
//! model's folder as the boundary of what it reads, and saves that must never write over what
//! the input reads.
//!
//! The >2 GiB external-data model is exercised by `scripts/bench_io.sh`, not here (too slow);
//! only the refusal to inline past protobuf's 2 GiB limit is tested, with a sparse side file.

mod common;

use common::{byte_difference, copy_fixture, debug_difference, decode_ref_file, first_difference, fixtures_dir};
use qdqc_ir::onnx::{load, read_proto, save, Error, ExternalData, FileError, Model, SaveOptions};
use qdqc_ir::proto::ModelProto;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MODEL: &str = "external_data.onnx";
const DATA: &str = "external_data.onnx.data";
/// The same model with every tensor inline (external_data.onnx was saved from it).
const INLINE_TWIN: &str = "resnet_block.u8.pc.onnx";

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn opts(external: ExternalData) -> SaveOptions {
    SaveOptions { external, replace_input: false }
}

fn replacing(external: ExternalData) -> SaveOptions {
    SaveOptions { external, replace_input: true }
}

const MODES: [ExternalData; 3] = [ExternalData::Keep, ExternalData::Inline, ExternalData::File { threshold: 1024 }];

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `location`, `offset`, `length` of a tensor's external_data entries (independent decoder).
fn ext_ref(t: &onnx_protobuf::TensorProto) -> Option<(String, usize, usize)> {
    let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
    Some((get("location")?, get("offset")?.parse().ok()?, get("length")?.parse().ok()?))
}

fn is_external(t: &onnx_protobuf::TensorProto) -> bool {
    t.data_location.value() == onnx_protobuf::tensor_proto::DataLocation::EXTERNAL as i32
}

/// Every dense initializer's data as raw little-endian bytes, by name, through the IR.
fn tensor_bytes(m: &Model) -> BTreeMap<String, Vec<u8>> {
    m.graph
        .constants()
        .filter_map(|(_, c)| c.tensor().map(|t| (c.name.clone(), t.raw().expect("tensor data").into_owned())))
        .collect()
}

/// Same tensor names and bytes; a failure names the tensors instead of printing their bytes.
fn assert_same_tensors(expected: &BTreeMap<String, Vec<u8>>, got: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(expected), names(got), "{what}: tensor names");
    let differ: Vec<&String> = expected.keys().filter(|n| expected[*n] != got[*n]).collect();
    assert!(differ.is_empty(), "{what}: bytes differ for {differ:?}");
}

/// The bytes of the external initializers, read directly from the side file (no qdqc code
/// involved). Only tensors with `raw_data` were moved out by onnx: scales in `float_data` and
/// zero points in `int32_data` (37 of the 62) stay inline in the fixture.
fn original_external_bytes() -> BTreeMap<String, Vec<u8>> {
    let data = std::fs::read(fixture(DATA)).unwrap();
    let m = decode_ref_file(&fixture(MODEL)).unwrap();
    let ext: BTreeMap<String, Vec<u8>> = m
        .graph
        .initializer
        .iter()
        .filter_map(|t| ext_ref(t).map(|(loc, off, len)| (t, loc, off, len)))
        .map(|(t, loc, off, len)| {
            assert_eq!(loc, DATA);
            (t.name.clone(), data[off..off + len].to_vec())
        })
        .collect();
    assert!(!ext.is_empty());
    ext
}

fn write_proto(m: &ModelProto, path: &Path) {
    std::fs::write(path, prost::Message::encode_to_vec(m)).unwrap();
}

/// Copies the fixture pair into `dir`, applies `edit` to the first initializer's external_data
/// entries (key → value) and returns (model path, that tensor's name).
fn with_edited_ref(dir: &Path, edit: &[(&str, &str)]) -> (PathBuf, String) {
    let path = copy_fixture(MODEL, dir, &[DATA]);
    let mut m = read_proto(&path).unwrap();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    for (k, v) in edit {
        let e = t.external_data.iter_mut().find(|e| e.key.as_deref() == Some(k)).expect("entry exists");
        e.value = Some(v.to_string());
    }
    let name = t.name.clone().unwrap();
    write_proto(&m, &path);
    (path, name)
}

/// The load error, which must be an `External` error naming `tensor`, with `needles` in its text.
fn expect_external_error(r: Result<Model, FileError>, model: &Path, tensor: &str, needles: &[&str]) -> String {
    let e = match r {
        Ok(_) => panic!("loading {} should fail", model.display()),
        Err(e) => e,
    };
    let text = e.to_string();
    assert_eq!(e.path, model, "the error names the model file: {text}");
    match &e.error {
        Error::External { name, .. } => assert_eq!(name, tensor, "{text}"),
        other => panic!("expected an external-data error for '{tensor}', got {other:?} ({text})"),
    }
    for n in needles {
        assert!(text.contains(n), "error should mention {n:?}: {text}");
    }
    assert!(text.contains(tensor), "error should name the tensor: {text}");
    text
}

// ---------------------------------------------------------------------------------------------
// Keep

#[test]
fn keep_writes_the_side_file_next_to_the_output_under_the_output_s_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("renamed.onnx");
    save(&load(&fixture(MODEL)).unwrap(), &out, &opts(ExternalData::Keep)).unwrap();
    let side = dir.path().join("renamed.onnx.data");
    assert_eq!(files_in(dir.path()), ["renamed.onnx", "renamed.onnx.data"]);
    let (m, orig) = (decode_ref_file(&out).unwrap(), decode_ref_file(&fixture(MODEL)).unwrap());
    assert_eq!(m.graph.initializer.len(), orig.graph.initializer.len());
    for (t, o) in m.graph.initializer.iter().zip(&orig.graph.initializer) {
        assert_eq!(t.name, o.name);
        assert_eq!(is_external(t), is_external(o), "{}: Keep must not move tensors", t.name);
        let moved = ext_ref(o).map(|(_, off, len)| ("renamed.onnx.data".to_string(), off, len));
        assert_eq!(ext_ref(t), moved, "{}: same offset and length, the output's side file", t.name);
    }
    let d = byte_difference(&std::fs::read(fixture(DATA)).unwrap(), &std::fs::read(&side).unwrap());
    assert!(d.is_none(), "side file differs: {}", d.unwrap());
}

#[test]
fn keep_writes_the_model_file_equal_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(MODEL);
    save(&load(&fixture(MODEL)).unwrap(), &out, &opts(ExternalData::Keep)).unwrap();
    let (a, b) = (decode_ref_file(&fixture(MODEL)).unwrap(), decode_ref_file(&out).unwrap());
    if let Some(d) = first_difference(&a, &b) {
        panic!("output differs from the input at {d}");
    }
    let (a, b) = (read_proto(&fixture(MODEL)).unwrap(), read_proto(&out).unwrap());
    if let Some(d) = debug_difference(&a, &b) {
        panic!("prost: output differs from the input at {d}");
    }
}

/// Side files in a subfolder, or several of them: the output has one side file beside it, and a
/// symlinked folder of the same name in the output's folder receives nothing.
#[test]
fn keep_writes_one_side_file_beside_the_output_whatever_the_input_locations() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("w")).unwrap();
    let mut m = read_proto(&fixture(MODEL)).unwrap();
    for (i, t) in m.graph.as_mut().unwrap().initializer.iter_mut().enumerate() {
        for e in &mut t.external_data {
            if e.key.as_deref() == Some("location") {
                e.value = Some(if i % 2 == 0 { "w/weights.bin".into() } else { "other.bin".into() });
            }
        }
    }
    write_proto(&m, &src.join("m.onnx"));
    std::fs::copy(fixture(DATA), src.join("w/weights.bin")).unwrap();
    std::fs::copy(fixture(DATA), src.join("other.bin")).unwrap();
    let model = load(&src.join("m.onnx")).unwrap();
    let out_dir = dir.path().join("out");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&elsewhere, out_dir.join("w")).unwrap();
    let out = out_dir.join("m.onnx");
    save(&model, &out, &opts(ExternalData::Keep)).unwrap();
    assert!(files_in(&elsewhere).is_empty(), "wrote through the symlinked folder: {:?}", files_in(&elsewhere));
    assert!(out_dir.join("m.onnx.data").is_file());
    let after = tensor_bytes(&load(&out).unwrap());
    for (name, bytes) in original_external_bytes() {
        assert!(after[&name] == bytes, "{name}: reloaded bytes differ");
    }
    // The second side file starts after the first, 4096-aligned.
    let locations: std::collections::BTreeSet<String> =
        decode_ref_file(&out).unwrap().graph.initializer.iter().filter_map(ext_ref).map(|r| r.0).collect();
    assert_eq!(locations.into_iter().collect::<Vec<_>>(), ["m.onnx.data"]);
}

// ---------------------------------------------------------------------------------------------
// Inline

#[test]
fn inline_puts_the_external_bytes_into_raw_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inline.onnx");
    save(&load(&fixture(MODEL)).unwrap(), &out, &opts(ExternalData::Inline)).unwrap();
    assert!(!dir.path().join(DATA).exists(), "Inline must not write a side file");
    let expected = original_external_bytes();
    let (m, orig) = (decode_ref_file(&out).unwrap(), decode_ref_file(&fixture(MODEL)).unwrap());
    assert_eq!(m.graph.initializer.len(), orig.graph.initializer.len());
    for (t, o) in m.graph.initializer.iter().zip(&orig.graph.initializer) {
        assert!(!is_external(t) && t.external_data.is_empty(), "{} is still external", t.name);
        match expected.get(&t.name) {
            Some(bytes) => assert_eq!(&t.raw_data, bytes, "{}: raw_data must be the external bytes", t.name),
            None => assert!(first_difference(t, o).is_none(), "{}: an inline tensor must stay as it was", t.name),
        }
    }
    // data_location is cleared (absent), not set to DEFAULT.
    let p = read_proto(&out).unwrap();
    assert!(p.graph.unwrap().initializer.iter().all(|t| t.data_location.is_none()));
}

/// external_data.onnx is resnet_block.u8.pc.onnx saved with external data (and another model
/// doc_string): inlining it again gives that model back byte for byte.
#[test]
fn inline_gives_back_the_model_the_fixture_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inline.onnx");
    save(&load(&fixture(MODEL)).unwrap(), &out, &opts(ExternalData::Inline)).unwrap();
    let twin = read_proto(&fixture(INLINE_TWIN)).unwrap();
    let mut m = read_proto(&out).unwrap();
    assert_eq!(
        m.doc_string.as_deref(),
        Some("resnet_block.u8.pc.onnx saved with all tensors in external_data.onnx.data")
    );
    m.doc_string = twin.doc_string.clone();
    if let Some(d) = debug_difference(&twin, &m) {
        panic!("{INLINE_TWIN} vs inlined {MODEL} differ at {d}");
    }
    let d = byte_difference(&std::fs::read(fixture(INLINE_TWIN)).unwrap(), &prost::Message::encode_to_vec(&m));
    assert!(d.is_none(), "{INLINE_TWIN} vs inlined {MODEL}: {}", d.unwrap());
}

// ---------------------------------------------------------------------------------------------
// File { location, threshold }

/// What [`check_file_mode`] found.
#[derive(Debug)]
struct Placement {
    /// Tensors now in the side file.
    moved: usize,
    /// Tensors with `raw_data` under the threshold.
    inline_raw: usize,
    /// Tensors whose data is in a typed field (`float_data`, `int32_data`, ...).
    typed: usize,
}

/// Saves `input` with `File { threshold }` into a fresh folder and checks placement: tensors
/// (with raw or external data) of at least `threshold` bytes are in `out.onnx.data` at
/// 4096-aligned offsets with the right length, smaller ones inline; reloading gives identical
/// tensor bytes.
fn check_file_mode(input: &Path, threshold: usize) -> Placement {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let location = "out.onnx.data";
    let model = load(input).unwrap();
    let before = tensor_bytes(&model);
    save(&model, &out, &opts(ExternalData::File { threshold })).unwrap();
    let side = std::fs::read(dir.path().join(location)).unwrap_or_default();
    let m = decode_ref_file(&out).unwrap();
    let mut p = Placement { moved: 0, inline_raw: 0, typed: 0 };
    let mut end = 0;
    for t in &m.graph.initializer {
        let len = before[&t.name].len();
        match ext_ref(t) {
            Some((loc, off, l)) => {
                assert!(is_external(t), "{}: data_location must be EXTERNAL", t.name);
                assert_eq!(loc, location, "{}", t.name);
                assert_eq!(off % 4096, 0, "{}: offset {off} is not 4096-aligned", t.name);
                assert_eq!(l, len, "{}: length", t.name);
                assert!(len >= threshold, "{}: {len} bytes is under the threshold {threshold}", t.name);
                assert!(t.raw_data.is_empty(), "{}: raw_data must be cleared", t.name);
                assert_eq!(&side[off..off + l], &before[&t.name][..], "{}: bytes in the side file", t.name);
                end = end.max(off + l);
                p.moved += 1;
            }
            None if !t.raw_data.is_empty() => {
                assert!(!is_external(t), "{}", t.name);
                assert!(len < threshold, "{}: {len} bytes should have moved out", t.name);
                p.inline_raw += 1;
            }
            None => {
                assert!(!is_external(t), "{}", t.name);
                p.typed += 1;
            }
        }
    }
    assert_eq!(side.len(), end, "the side file ends with the last tensor");
    assert_same_tensors(&before, &tensor_bytes(&load(&out).unwrap()), "reloaded");
    p
}

#[test]
fn file_mode_moves_big_tensors_of_an_external_model_to_aligned_offsets() {
    let external = original_external_bytes();
    let big = external.values().filter(|b| b.len() >= 1024).count();
    let p = check_file_mode(&fixture(MODEL), 1024);
    assert!(big > 0 && p.moved == big && p.inline_raw == external.len() - big, "{p:?}, {big} tensors >= 1024 bytes");
    // Tensors in typed fields are file_mode_moves_big_tensors_held_in_typed_fields's business.
    let p = check_file_mode(&fixture(MODEL), 0);
    assert!(p.moved >= external.len() && p.inline_raw == 0, "threshold 0 moves every raw tensor: {p:?}");
}

#[test]
fn file_mode_moves_big_tensors_of_an_inline_model_to_aligned_offsets() {
    let p = check_file_mode(&fixtures_dir().join("transformer_block.u8.pc.onnx"), 1024);
    assert!(p.moved > 0 && p.inline_raw > 0, "{p:?}");
}

/// `ExternalData::File` promises "every tensor of at least `threshold` bytes"; a big weight
/// held in `float_data` (as `onnx.helper.make_tensor` writes by default) must move too, or a
/// >2 GiB model written that way can never be saved.
#[test]
fn file_mode_moves_big_tensors_held_in_typed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = read_proto(&fixtures_dir().join("resnet_block.float.onnx")).unwrap();
    let g = m.graph.as_mut().unwrap();
    let t = g
        .initializer
        .iter_mut()
        .filter(|t| t.data_type == Some(1))
        .max_by_key(|t| t.raw_data.as_ref().map_or(0, |r| r.len()))
        .unwrap();
    let raw = t.raw_data.take().expect("raw float weight");
    assert!(raw.len() >= 1024);
    t.float_data = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let name = t.name.clone().unwrap();
    let input = dir.path().join("typed.onnx");
    write_proto(&m, &input);
    let p = check_file_mode(&input, 1024);
    assert_eq!(p.typed, 0, "'{name}' ({} bytes in float_data) stayed inline: {p:?}", raw.len());
}

// ---------------------------------------------------------------------------------------------
// Broken references: a clear FileError naming the model, the tensor and the side file.

#[test]
fn missing_side_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(MODEL, dir.path(), &[]);
    let first = decode_ref_file(&path).unwrap().graph.initializer[0].name.clone();
    expect_external_error(load(&path), &path, &first, &[DATA]);
}

#[test]
fn truncated_side_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(MODEL, dir.path(), &[DATA]);
    let data = std::fs::read(fixture(DATA)).unwrap();
    std::fs::write(dir.path().join(DATA), &data[..data.len() - 1]).unwrap();
    // The tensor whose bytes end at the end of the file is the one that no longer fits.
    let m = decode_ref_file(&path).unwrap();
    let last = m.graph.initializer.iter().find(|t| ext_ref(t).is_some_and(|(_, o, l)| o + l == data.len())).unwrap();
    expect_external_error(load(&path), &path, &last.name, &[DATA, "past the end"]);
}

#[test]
fn offset_past_the_end_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, name) = with_edited_ref(dir.path(), &[("offset", "1000000")]);
    expect_external_error(load(&path), &path, &name, &[DATA, "1000000"]);
}

#[test]
fn offset_plus_length_overflowing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let max = usize::MAX.to_string();
    let (path, name) = with_edited_ref(dir.path(), &[("offset", &max)]);
    expect_external_error(load(&path), &path, &name, &[DATA]);
}

#[test]
fn length_that_is_not_a_number_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, name) = with_edited_ref(dir.path(), &[("length", "-64")]);
    expect_external_error(load(&path), &path, &name, &["length", "-64"]);
}

#[test]
fn absolute_location_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Point at a real file, so the refusal is the path rule, not a missing file.
    let abs = dir.path().join(DATA).to_string_lossy().into_owned();
    let (path, name) = with_edited_ref(dir.path(), &[("location", &abs)]);
    expect_external_error(load(&path), &path, &name, &[&abs, "relative"]);
}

#[test]
fn parent_dir_location_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::copy(fixture(DATA), dir.path().join(DATA)).unwrap();
    let loc = format!("../{DATA}");
    let (path, name) = with_edited_ref(&inner, &[("location", &loc)]);
    expect_external_error(load(&path), &path, &name, &[&loc, "relative"]);
}

#[test]
fn lengths_that_disagree_with_the_dims_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, name) = with_edited_ref(dir.path(), &[("length", "60")]);
    let e = load(&path).expect_err("a 60-byte float[16] must be refused");
    let text = e.to_string();
    assert!(matches!(&e.error, Error::Tensor { name: n, .. } if *n == name), "{text}");
    assert!(text.contains(&name) && text.contains("64") && text.contains("60"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Outputs never write over what the input reads.

/// Copies the fixture pair into a fresh folder and returns (folder, model path, bytes of both).
fn copied_pair() -> (tempfile::TempDir, PathBuf, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(MODEL, dir.path(), &[DATA]);
    let (m, d) = (std::fs::read(&path).unwrap(), std::fs::read(dir.path().join(DATA)).unwrap());
    (dir, path, m, d)
}

/// The data-loss case: `model.onnx` + `model.onnx.data` in one folder, output `compiled.onnx` in
/// the same folder. The input's side file must not change, in any mode.
#[test]
fn an_output_beside_the_input_leaves_the_input_untouched() {
    for mode in MODES {
        let (dir, path, model_bytes, data_bytes) = copied_pair();
        let model = load(&path).unwrap();
        let before = tensor_bytes(&model);
        let out = dir.path().join("compiled.onnx");
        save(&model, &out, &opts(mode.clone())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), model_bytes, "{mode:?}: the input model changed");
        assert_eq!(std::fs::read(dir.path().join(DATA)).unwrap(), data_bytes, "{mode:?}: the input's data changed");
        assert_same_tensors(&before, &tensor_bytes(&load(&path).unwrap()), &format!("{mode:?}: input reloaded"));
        assert_same_tensors(&before, &tensor_bytes(&load(&out).unwrap()), &format!("{mode:?}: output reloaded"));
        let side = if mode == ExternalData::Inline { vec![] } else { vec!["compiled.onnx.data".to_string()] };
        let mut expect = vec![MODEL.to_string(), DATA.to_string(), "compiled.onnx".to_string()];
        expect.extend(side);
        expect.sort();
        assert_eq!(files_in(dir.path()), expect, "{mode:?}");
        // Saving to the same output again replaces the output and its side file.
        save(&model, &out, &opts(mode.clone())).unwrap();
        assert_eq!(files_in(dir.path()), expect, "{mode:?}: second save");
        assert_same_tensors(&before, &tensor_bytes(&load(&out).unwrap()), &format!("{mode:?}: output reloaded"));
    }
}

/// Saving over the input (its model file, or a name whose side file is the input's) is refused
/// without `replace_input`, and nothing changes.
#[test]
fn saving_over_what_the_input_reads_is_refused() {
    for mode in MODES {
        let (dir, path, model_bytes, data_bytes) = copied_pair();
        let model = load(&path).unwrap();
        let e = save(&model, &path, &opts(mode.clone())).expect_err("saving over the input");
        assert!(matches!(&e.error, Error::WouldReplaceInput { file } if file == &path), "{mode:?}: {e}");
        assert!(e.to_string().contains("--in-place"), "{e}");
        // Renamed to input.onnx, the model still reads external_data.onnx.data: an output named
        // external_data.onnx would write its side file over that.
        let renamed_input = dir.path().join("input.onnx");
        std::fs::rename(&path, &renamed_input).unwrap();
        let model = load(&renamed_input).unwrap();
        let e = save(&model, &path, &opts(mode.clone())).expect_err("saving where the side file is the input's");
        assert!(matches!(&e.error, Error::WouldReplaceInput { file } if file.ends_with(DATA)), "{mode:?}: {e}");
        std::fs::rename(&renamed_input, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), model_bytes);
        assert_eq!(std::fs::read(dir.path().join(DATA)).unwrap(), data_bytes);
        assert_eq!(files_in(dir.path()), [MODEL, DATA], "{mode:?}: files left behind");
    }
}

/// `replace_input`: the new side file takes a name the old model does not read, and the old one
/// goes once the new model is in place; a second replacement alternates back.
#[test]
fn replacing_the_input_keeps_a_loadable_model_at_every_step() {
    for mode in MODES {
        let (dir, path, _, _) = copied_pair();
        let model = load(&path).unwrap();
        let before = tensor_bytes(&model);
        let plan = save(&model, &path, &replacing(mode.clone())).unwrap();
        let reloaded = load(&path).unwrap();
        assert_same_tensors(&before, &tensor_bytes(&reloaded), &format!("{mode:?}: reloaded"));
        assert_same_tensors(&before, &tensor_bytes(&model), &format!("{mode:?}: the old mapping"));
        let expect_side = "external_data.onnx.1.data";
        assert_eq!(plan.location, expect_side, "{mode:?}");
        let mut expect = vec![MODEL.to_string()];
        if mode != ExternalData::Inline {
            expect.push(expect_side.to_string());
        }
        assert_eq!(files_in(dir.path()), expect, "{mode:?}: the old side file is removed, nothing else left");
        // Again: back to `NAME.data`.
        let plan = save(&reloaded, &path, &replacing(mode.clone())).unwrap();
        assert_eq!(plan.location, DATA, "{mode:?}");
        assert_same_tensors(&before, &tensor_bytes(&load(&path).unwrap()), &format!("{mode:?}: reloaded twice"));
        let mut expect = vec![MODEL.to_string()];
        if mode != ExternalData::Inline {
            expect.push(DATA.to_string());
        }
        assert_eq!(files_in(dir.path()), expect, "{mode:?}: second replacement");
    }
}

/// An existing symlink where the side file goes is replaced, never written through.
#[cfg(unix)]
#[test]
fn a_symlink_at_the_side_file_s_place_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.bin");
    std::fs::write(&precious, b"keep me").unwrap();
    let out = dir.path().join("out.onnx");
    std::os::unix::fs::symlink(&precious, dir.path().join("out.onnx.data")).unwrap();
    save(&load(&fixture(MODEL)).unwrap(), &out, &opts(ExternalData::Keep)).unwrap();
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    assert!(!std::fs::symlink_metadata(dir.path().join("out.onnx.data")).unwrap().file_type().is_symlink());
    assert!(load(&out).is_ok());
}

/// Two external tensors sharing bytes of the side file (onnxruntime and onnx.checker accept it):
/// they load, save in every mode, and reload with the same data.
#[test]
fn external_tensors_sharing_an_offset_save_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(MODEL, dir.path(), &[DATA]);
    let mut m = read_proto(&path).unwrap();
    let inits = &mut m.graph.as_mut().unwrap().initializer;
    let ext: Vec<usize> = (0..inits.len()).filter(|&i| inits[i].data_location == Some(1)).collect();
    // The second external tensor reads from the first one's offset (its own length).
    let first_offset =
        inits[ext[0]].external_data.iter().find(|e| e.key.as_deref() == Some("offset")).unwrap().value.clone();
    let entry = inits[ext[1]].external_data.iter_mut().find(|e| e.key.as_deref() == Some("offset")).unwrap();
    entry.value = first_offset;
    write_proto(&m, &path);
    let model = load(&path).unwrap();
    let before = tensor_bytes(&model);
    for mode in MODES {
        let out = dir.path().join(format!("out-{}.onnx", files_in(dir.path()).len()));
        save(&model, &out, &opts(mode.clone())).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_same_tensors(&before, &tensor_bytes(&load(&out).unwrap()), &format!("{mode:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The model's folder is the boundary of what it reads.

#[cfg(unix)]
#[test]
fn a_side_file_symlinked_outside_the_folder_is_refused_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, blobs) = (dir.path().join("model"), dir.path().join("blobs"));
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::create_dir_all(&blobs).unwrap();
    let path = copy_fixture(MODEL, &inner, &[]);
    std::fs::copy(fixture(DATA), blobs.join("sha256-1234")).unwrap();
    std::os::unix::fs::symlink(blobs.join("sha256-1234"), inner.join(DATA)).unwrap();
    let first = decode_ref_file(&path).unwrap().graph.initializer[0].name.clone();
    expect_external_error(load(&path), &path, &first, &["outside the model's folder", "--follow-symlinks"]);
    let follow = qdqc_ir::onnx::LoadOptions { follow_symlinks: true };
    let model = qdqc_ir::onnx::load_with(&path, &follow).unwrap();
    for (name, bytes) in original_external_bytes() {
        assert!(tensor_bytes(&model)[&name] == bytes, "{name}");
    }
    // A symlink that stays inside the folder is fine.
    std::fs::remove_file(inner.join(DATA)).unwrap();
    std::fs::copy(fixture(DATA), inner.join("real.data")).unwrap();
    std::os::unix::fs::symlink("real.data", inner.join(DATA)).unwrap();
    assert!(load(&path).is_ok());
}

/// A FIFO (or device) as a side file or as the model is refused at once: opening a FIFO for
/// reading would wait forever for a writer.
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(MODEL, dir.path(), &[]);
    let made = std::process::Command::new("mkfifo").arg(dir.path().join(DATA)).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let first = decode_ref_file(&path).unwrap().graph.initializer[0].name.clone();
    expect_external_error(load(&path), &path, &first, &["not a regular file"]);
    let e = load(&dir.path().join(DATA)).map(|_| ()).expect_err("a FIFO as the model");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn a_folder_as_the_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path()).map(|_| ()).expect_err("a folder is no model");
    assert!(e.to_string().contains("is a directory"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Over 2 GiB: inlining is refused before anything is written. The side file is sparse, so the
// test neither writes nor maps 2 GiB of real data.

#[test]
fn inlining_past_the_protobuf_limit_is_refused_cleanly() {
    use qdqc_ir::proto::{tensor_proto::DataLocation, StringStringEntryProto};
    let dir = tempfile::tempdir().unwrap();
    let n: u64 = (1 << 31) + 4096;
    let side = std::fs::File::create(dir.path().join("big.data")).unwrap();
    if side.set_len(n).is_err() {
        eprintln!("skipped: the file system cannot create a sparse {n}-byte file");
        return;
    }
    let mut m = read_proto(&fixture(MODEL)).unwrap();
    // An extra, unused int8 initializer of n elements, external in the sparse file.
    let mut t = m.graph.as_ref().unwrap().initializer.iter().find(|t| t.data_type == Some(3)).unwrap().clone();
    t.name = Some("huge".into());
    t.data_type = Some(3);
    t.dims = vec![n as i64];
    t.data_location = Some(DataLocation::External as i32);
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    t.external_data = vec![kv("location", "big.data".into()), kv("offset", "0".into()), kv("length", n.to_string())];
    m.graph.as_mut().unwrap().initializer.push(t);
    let path = dir.path().join("big.onnx");
    write_proto(&m, &path);
    std::fs::copy(fixture(DATA), dir.path().join(DATA)).unwrap();
    let model = load(&path).unwrap();
    let out = dir.path().join("inline.onnx");
    let e = save(&model, &out, &opts(ExternalData::Inline)).expect_err("a >2 GiB inline model must be refused");
    assert!(matches!(e.error, Error::TooLarge { .. }), "expected TooLarge, got {e}");
    assert!(e.to_string().contains("external data"), "the error should suggest external data: {e}");
    assert!(!out.exists(), "nothing may be written");
}
