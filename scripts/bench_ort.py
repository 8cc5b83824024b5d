#!/usr/bin/env python3
"""The benchmark table: qdqc's compiled models against onnxruntime's own optimization of the input.

    bench_ort.py [--zoo DIR] [--only TEXT] [--variants LIST] [--base PATH] [--levels all,disable]
                 [--threads 1,2] [--batches 1,4] [--rounds R] [--qdqc PATH] [--section TITLE] [--docs]

Models: the quantized fixtures of tests/fixtures and, with --zoo DIR, the quantized models of
scripts/gen_models.py's output (*.qdq.*, *.qop.*, *.trt.onnx). Each is compiled by
`--qdqc` (default target/release/qdqc) once per variant:

  O2        `qdqc compile -O2` (the default: exact rewrites only)
  O3        `qdqc compile -O3`
  approx    `qdqc compile --approx all`
  before    `--base PATH compile` (another qdqc binary, e.g. an earlier commit's, with its defaults)

For each onnxruntime graph optimization level, intra-op thread count and batch (symbolic dims set
to it; a model whose inputs have no symbolic dim runs at its own batch only), scripts/ort_bench.py
runs the original model and every variant interleaved, all at that level: the table gives the
original's latency and each variant's median ratio to it (below 1: faster), with the spread of
the per-round ratios (10th–90th percentile).

Prints a markdown section; --docs puts it into docs/benchmarks.md as the section --section
(replaced on rerun; other sections stay).
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx
import onnxruntime as ort

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_bench import BenchError, compare, fmt_t, reproduce  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"kitchen_sink.onnx", "external_data.onnx"}
VARIANTS = {"O2": ["-O2"], "O3": ["-O3"], "approx": ["--approx", "all"], "before": []}


def quantized(path: Path) -> bool:
    m = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in m.graph.node)


def models(zoo: Path | None, only: str | None) -> list[Path]:
    found = [f for f in sorted((ROOT / "tests/fixtures").glob("*.onnx")) if f.name not in SKIP and quantized(f)]
    if zoo is not None:
        found += [f for f in sorted(zoo.glob("*.onnx")) if re.search(r"\.(qdq|qop)\.|\.trt\.onnx$", f.name)]
    return [f for f in found if only is None or only in f.name]


def symbolic(path: Path) -> bool:
    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    return any(
        d.dim_param or not d.HasField("dim_value")
        for i in m.graph.input
        if i.name not in init
        for d in i.type.tensor_type.shape.dim
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", type=Path)
    ap.add_argument("--only")
    ap.add_argument("--variants", default="O2,O3,approx")
    ap.add_argument("--base", type=Path, help="another qdqc binary: the variant 'before'")
    ap.add_argument("--levels", default="all,disable")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--qdqc", type=Path, default=ROOT / "target/release/qdqc")
    ap.add_argument("--section", default="## onnxruntime latency against the input's own optimization")
    ap.add_argument("--docs", action="store_true")
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if v]
    if a.base and "before" not in variants:
        variants.append("before")
    for v in variants:
        if v not in VARIANTS or (v == "before" and not a.base):
            print(f"bench_ort: unknown variant '{v}' (O2, O3, approx; before needs --base)", file=sys.stderr)
            return 2
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cmd = reproduce("scripts/bench_ort.py", sys.argv[1:])
    lines = [
        a.section,
        "",
        f"Reproduce: `{cmd}` (after `cargo build --release -p qdqc`). Measured "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, qdqc at `{rev}`, onnxruntime {ort.__version__}, "
        f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs; {a.rounds} interleaved rounds.",
        "Each cell: the compiled model's latency over the original's, both at the same onnxruntime level "
        "(median, and the 10th–90th percentile of the rounds); the original's own latency in the first columns.",
        "",
    ]
    head = "| model | level | threads | batch | original | " + " | ".join(variants) + " |"
    lines += [head, "|---|---|--:|--:|--:|" + "--:|" * len(variants)]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for f in models(a.zoo, a.only):
            compiled = []
            for v in variants:
                out = tmp / f"{f.stem}.{v}.onnx"
                exe = str(a.base) if v == "before" else str(a.qdqc)
                subprocess.run([exe, "compile", str(f), "-o", str(out), *VARIANTS[v]], check=True, capture_output=True)
                compiled.append(out)
            batches = [int(b) for b in a.batches.split(",")] if symbolic(f) else [1]
            for level in a.levels.split(","):
                for threads in [int(x) for x in a.threads.split(",")]:
                    for batch in batches:
                        try:
                            r = compare(f, compiled, level, threads, batch, a.rounds)
                        except BenchError as e:
                            print(f"bench_ort: {f.name}: {e}", file=sys.stderr)
                            return 2
                        cells = [f"{m['ratio']:.2f} ({m['ratio_p10']:.2f}–{m['ratio_p90']:.2f})" for m in r["models"]]
                        row = (f"| {f.stem} | {level} | {threads} | {batch} | {fmt_t(r['reference']['median_s'])} | "
                               + " | ".join(cells) + " |")
                        print(row, flush=True)
                        lines.append(row)
            for p in compiled:
                p.unlink()
    if a.docs:
        doc = ROOT / "docs/benchmarks.md"
        text = doc.read_text()
        section = "\n".join(lines) + "\n"
        if a.section in text:
            before, rest = text.split(a.section, 1)
            nxt = rest.find("\n## ")
            text = before + section + (rest[nxt + 1:] if nxt >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
