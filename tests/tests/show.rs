//! The text IR of every fixture, as `qdqc show` prints it, kept as insta snapshots (reviewed like
//! code: a change to the printer or to import shows up here as a diff). Also checks that the text
//! parses back to the same text.

mod common;

use common::fixtures;

#[test]
fn show_every_fixture() {
    let all = fixtures();
    assert!(all.len() >= 18, "fixtures missing: {all:?}");
    for path in all {
        let model = qdqc_ir::onnx::load(&path).unwrap();
        model.graph.verify().unwrap();
        let text = qdqc_ir::text::print(&model.graph);
        let stem = path.file_name().unwrap().to_string_lossy().trim_end_matches(".onnx").replace('.', "_");
        insta::assert_snapshot!(format!("show_{stem}"), text);
        let reparsed = qdqc_ir::text::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(qdqc_ir::text::print(&reparsed), text, "{}: print(parse(t)) != t", path.display());
    }
}
