//! UTF-8 → the IR text parser; what parses is printed and parsed again, and printing that gives
//! the same text (`print(parse(t)) == t` for every printed graph).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qdqc_ir::text;

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 20 {
        return;
    }
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(graph) = text::parse(src) else { return };
    let printed = text::print(&graph);
    let again = match text::parse(&printed) {
        Ok(g) => g,
        Err(e) => panic!("printed graph does not parse again: {e}\n--- printed:\n{printed}"),
    };
    let reprinted = text::print(&again);
    assert_eq!(printed, reprinted, "print(parse(print(g))) != print(g)");
});
