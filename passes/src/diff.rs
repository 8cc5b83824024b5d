//! Unified diffs of text IR: `qdqc diff` and the per-pass diffs of `--diff`.

use similar::{ChangeTag, TextDiff};
use std::fmt::Write;

/// A unified diff of `old` and `new` with 3 lines of context; empty when they are equal.
/// With `color`, removed lines are red and added lines green (ANSI).
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str, color: bool) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    if diff.ratio() == 1.0 && old == new {
        return out;
    }
    let (red, green, cyan, reset) =
        if color { ("\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m") } else { ("", "", "", "") };
    let _ = writeln!(out, "--- {old_name}\n+++ {new_name}");
    for group in diff.grouped_ops(3) {
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let (o, n) = (first.old_range().start, first.new_range().start);
        let (ol, nl) = (last.old_range().end - o, last.new_range().end - n);
        let _ = writeln!(out, "{cyan}@@ -{},{} +{},{} @@{reset}", o + 1, ol, n + 1, nl);
        for op in group {
            for change in diff.iter_changes(&op) {
                let (sign, c) = match change.tag() {
                    ChangeTag::Delete => ("-", red),
                    ChangeTag::Insert => ("+", green),
                    ChangeTag::Equal => (" ", ""),
                };
                let reset = if c.is_empty() { "" } else { reset };
                let line = change.value();
                let nl = if line.ends_with('\n') { "" } else { "\n\\ No newline at end of file\n" };
                let _ = write!(out, "{c}{sign}{line}{reset}{nl}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_an_empty_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y", false), "");
    }

    #[test]
    fn changed_line_is_shown_with_context() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n", "x", "y", false);
        assert_eq!(d, "--- x\n+++ y\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
