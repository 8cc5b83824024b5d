//! File-based rule tests, in the style of Cranelift's filetests: each `tests/rules/*.qdq` file
//! holds cases, each case a pass to run, an input graph in the text IR, and the expected graph
//! and remarks after the pass (and dce).
//!
//! ```text
//! ; A comment (kept as it is).
//! case dq-q-same removes the pair        <- starts a case; the rest of the line names it
//! run cleanup                            <- passes to run, each to its fixed point, in order, then
//!                                           dce (comma-separated; default: the file's name)
//! target onnx                            <- optional: ort (default) or onnx
//! approx bn-as-conv                      <- optional: the approximations allowed (names, or all;
//!                                           none by default, as in a compile)
//! skip matmul-integer,gemm-integer       <- optional: leave these rules of the family out (to show
//!                                           the remarks of rules that a fallback would hide)
//! verify exact                           <- optional: the interpreter runs the graph before and after
//!                                           on 4 seeded random inputs; outputs must be bit-equal
//!                                           (`verify max-diff 1`: within that absolute difference,
//!                                           integer steps for an integer output; `verify rel-diff
//!                                           1e-5`: relative to the largest output magnitude)
//! inputs -2 2                            <- optional: float inputs uniform in [-2, 2) (default
//!                                           [-4, 4); integer inputs cover their type's range)
//! graph "g" opset(ai.onnx=17) {          <- the input, up to the `}` that closes it
//!   ...
//! }
//! expect                                 <- the expected graph and `// remark` lines, up to the
//! graph "g" opset(ai.onnx=17) {             next case
//!   ...
//! }
//! // remark dq-q-same: ...
//! ```
//!
//! `QDQC_BLESS=1 cargo test -p qdqc-passes --test rules` writes what each case gives as its
//! expected part (review the diff before committing it).

use qdqc_eval::{RunOptions, Value};
use qdqc_ir::{DType, Dim, Graph};
use qdqc_passes::driver::{run_rules, MAX_SWEEPS};
use qdqc_passes::pipeline::entry;
use qdqc_passes::rule::RuleSet;
use qdqc_passes::{Approx, Config, Remarks, Target};
use std::path::{Path, PathBuf};

#[derive(Debug)]
struct Case {
    name: String,
    /// The case's lines before `expect`, as written.
    head: Vec<String>,
    passes: Option<String>,
    target: Target,
    approx: Approx,
    skip: Vec<String>,
    verify: Option<Verify>,
    /// The range of float inputs for `verify`.
    inputs: (f64, f64),
    input: String,
    expect: String,
}

#[derive(Clone, Copy, Debug)]
enum Verify {
    Exact,
    MaxDiff(f64),
    RelDiff(f64),
}

/// A file: lines before the first case, then the cases.
fn parse_file(path: &Path, text: &str) -> (Vec<String>, Vec<Case>) {
    let mut preamble = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut lines = text.lines().peekable();
    let at = |line: &str| format!("{}: {line}", path.display());
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("case ") else {
            assert!(cases.is_empty(), "{}: a line after `expect` that belongs to no case", at(line));
            preamble.push(line.to_string());
            continue;
        };
        let mut case = Case {
            name: name.trim().to_string(),
            head: vec![line.to_string()],
            passes: None,
            target: Target::Ort,
            approx: Approx::None,
            skip: Vec::new(),
            verify: None,
            inputs: (-4.0, 4.0),
            input: String::new(),
            expect: String::new(),
        };
        // Directives and the input graph.
        let mut in_graph = false;
        loop {
            let line = lines.next().unwrap_or_else(|| panic!("{}: case without `expect`", at(name)));
            if !in_graph && line.trim() == "expect" {
                case.head.push(line.to_string());
                break;
            }
            case.head.push(line.to_string());
            if in_graph {
                case.input.push_str(line);
                case.input.push('\n');
                in_graph = line != "}";
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [w, ..] if w.starts_with(';') => {}
                ["run", passes] => case.passes = Some(passes.to_string()),
                ["target", t] => case.target = Target::parse(t).unwrap_or_else(|| panic!("{}", at(line))),
                ["inputs", lo, hi] => case.inputs = (lo.parse().expect("a number"), hi.parse().expect("a number")),
                ["approx", names] => case.approx = Approx::parse(names).unwrap_or_else(|e| panic!("{}: {e}", at(line))),
                ["skip", rules] => case.skip = rules.split(',').map(str::to_string).collect(),
                ["verify", "exact"] => case.verify = Some(Verify::Exact),
                ["verify", "max-diff", d] => case.verify = Some(Verify::MaxDiff(d.parse().expect("a number"))),
                ["verify", "rel-diff", d] => case.verify = Some(Verify::RelDiff(d.parse().expect("a number"))),
                ["graph", ..] => {
                    case.input.push_str(line);
                    case.input.push('\n');
                    in_graph = !line.trim_end().ends_with('}');
                }
                _ => panic!("{}: unknown directive", at(line)),
            }
        }
        // The expected part: up to the next case.
        while let Some(line) = lines.peek() {
            if line.starts_with("case ") {
                break;
            }
            case.expect.push_str(lines.next().unwrap());
            case.expect.push('\n');
        }
        cases.push(case);
    }
    (preamble, cases)
}

/// Runs a case: each of its passes to its own fixed point, in order, then dce, checking the graph
/// after each; returns the printed graph followed by the remarks, one `// remark` line each.
fn run_case(family: &str, case: &Case) -> Result<String, String> {
    let mut g = qdqc_ir::text::parse(&case.input).map_err(|e| format!("input: {e}"))?;
    let before = g.clone();
    let mut remarks = Remarks::new();
    let names = case.passes.as_deref().unwrap_or(family);
    let config = Config { target: case.target, approx: case.approx.clone(), ..Config::default() };
    for name in names.split(',').chain(["dce"]) {
        let entry = entry(name).ok_or_else(|| format!("unknown pass '{name}'"))?;
        match entry.rules {
            Some(rules) if !case.skip.is_empty() => {
                let kept = rules().into_iter().filter(|r| !case.skip.iter().any(|s| s == r.name)).collect();
                let set = RuleSet::new(kept).with_config(&config);
                run_rules(entry.name, &mut g, &set, case.target, &mut remarks, MAX_SWEEPS)
                    .map_err(|e| e.to_string())?;
            }
            _ => {
                entry.build(&config).run(&mut g, &mut remarks).map_err(|e| e.to_string())?;
            }
        }
        g.verify().map_err(|e| format!("after {name}: {e}"))?;
    }
    if let Some(v) = case.verify {
        check_numerics(&before, &g, v, case.inputs)?;
    }
    let mut out = qdqc_ir::text::print(&g);
    for r in &remarks {
        out.push_str(&format!("// remark {r}\n"));
    }
    Ok(out)
}

/// The graphs' outputs on seeded random inputs agree as `v` asks.
fn check_numerics(before: &Graph, after: &Graph, v: Verify, range: (f64, f64)) -> Result<(), String> {
    for seed in 0..4u64 {
        let inputs = random_inputs(before, seed, range)?;
        let run = |g: &Graph| qdqc_eval::run(g, &inputs, &RunOptions::default()).map_err(|e| e.to_string());
        let (a, b) = (run(before)?, run(after)?);
        for ((name, x), (_, y)) in a.outputs.iter().zip(&b.outputs) {
            let (x, y) = (x.to_f64_vec().map_err(|e| e.to_string())?, y.to_f64_vec().map_err(|e| e.to_string())?);
            let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            let largest = x.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
            let ok = match v {
                Verify::Exact => x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                Verify::MaxDiff(d) => worst <= d,
                Verify::RelDiff(d) => worst / largest <= d,
            };
            if !ok {
                return Err(format!("output '{name}' moved by {worst} (seed {seed}), beyond the case's `verify`"));
            }
        }
    }
    Ok(())
}

/// Floats uniform in `[lo, hi)`, integers uniform over their type; symbolic dims are 1.
fn random_inputs(g: &Graph, seed: u64, (lo, hi): (f64, f64)) -> Result<Vec<(String, Value)>, String> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for &id in &g.inputs {
        let v = &g.node(id).outputs[0];
        let ty = v.ty.as_ref().ok_or_else(|| format!("input '{}' has no type", v.name))?;
        let shape: Vec<usize> = ty
            .shape
            .iter()
            .flat_map(|s| s.iter())
            .map(|d| match d {
                Dim::Known(k) => *k as usize,
                _ => 1,
            })
            .collect();
        let n = shape.iter().product();
        let value = match ty.dtype.int_range() {
            Some((a, b)) => {
                let data: Vec<i64> = (0..n).map(|_| a + (next() % (b - a + 1) as u64) as i64).collect();
                Value::from_i64(ty.dtype, &shape, &data)
            }
            None if ty.dtype == DType::F32 => {
                let data: Vec<f64> =
                    (0..n).map(|_| lo + (next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)).collect();
                Value::from_f64(ty.dtype, &shape, &data)
            }
            None => return Err(format!("input '{}': random {} inputs are not supported", v.name, ty.dtype)),
        };
        out.push((v.name.clone(), value.map_err(|e| e.to_string())?));
    }
    Ok(out)
}

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "qdq"))
        .collect();
    files.sort();
    files
}

#[test]
fn rule_files() {
    let bless = std::env::var_os("QDQC_BLESS").is_some_and(|v| v != "0");
    let mut failures = Vec::new();
    let mut count = 0;
    for path in files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let family = path.file_stem().unwrap().to_string_lossy().into_owned();
        let (preamble, cases) = parse_file(&path, &text);
        let mut blessed: Vec<String> = preamble;
        for case in &cases {
            count += 1;
            let got = run_case(&family, case).unwrap_or_else(|e| format!("// error: {e}\n"));
            let want = case.expect.trim_end();
            if got.trim_end() != want {
                failures.push(format!(
                    "{}: case {}\n{}",
                    path.display(),
                    case.name,
                    qdqc_passes::diff::unified(&format!("{want}\n"), got.trim_end(), "expected", "got", false)
                ));
            }
            blessed.extend(case.head.iter().cloned());
            blessed.push(got.trim_end().to_string());
            blessed.push(String::new());
        }
        if bless {
            let mut out = blessed.join("\n");
            while out.ends_with("\n\n") {
                out.pop();
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
            std::fs::write(&path, out).unwrap();
        }
    }
    assert!(count > 0, "no cases found in tests/rules");
    if !bless {
        assert!(
            failures.is_empty(),
            "{} of {count} cases differ (QDQC_BLESS=1 rewrites them):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
