#!/usr/bin/env python3
"""How well the measured cost table predicts whole-model latency in onnxruntime.

    cost_validation.py [--zoo DIR] [--only TEXT] [--rounds R] [--qdqc PATH] [--docs]

Models: the quantized fixtures of tests/fixtures and, with --zoo DIR, the quantized models of
scripts/gen_models.py's output. For each model, three graphs: the original, `qdqc compile` (-O2,
--target ort) and `qdqc compile --target onnx` (integer forms first, which onnxruntime often runs
slower). For each graph and each level (ORT_ENABLE_ALL, ORT_DISABLE_ALL): the latency `qdqc stats
--json` predicts from the cost table, and the latency scripts/ort_bench.py measures (one thread,
batch 1, interleaved with the model's other graphs). Prints both and the Spearman rank correlation
between them over all graphs, per level; --docs puts the section into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ort import models  # noqa: E402
from ort_bench import compare, fmt_t, reproduce  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Cost table validation"


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def predicted(qdqc: str, path: Path) -> dict:
    out = subprocess.run([qdqc, "stats", str(path), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["predicted"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", type=Path)
    ap.add_argument("--only")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--qdqc", default=str(ROOT / "target/release/qdqc"))
    ap.add_argument("--docs", action="store_true")
    a = ap.parse_args()
    rows, pairs = [], {"all": ([], []), "disable": ([], [])}
    table = None
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for f in models(a.zoo, a.only):
            graphs = [("original", f)]
            for label, extra in [("-O2", []), ("--target onnx", ["--target", "onnx"])]:
                out = tmp / f"{f.stem}.{len(graphs)}.onnx"
                subprocess.run([a.qdqc, "compile", str(f), "-o", str(out), *extra], check=True, capture_output=True)
                graphs.append((label, out))
            preds = [predicted(a.qdqc, p) for _, p in graphs]
            table = preds[0]["cost_table"]
            for level in ("all", "disable"):
                r = compare(graphs[0][1], [p for _, p in graphs[1:]], level, 1, 1, a.rounds)
                measured = [r["reference"]["median_s"]] + [m["median_s"] for m in r["models"]]
                for (label, _), p, m in zip(graphs, preds, measured):
                    ms = p["all_ms" if level == "all" else "disable_ms"]
                    pairs[level][0].append(ms)
                    pairs[level][1].append(m * 1e3)
                    row = f"| {f.stem} | {label} | {level} | {ms:.3f} ms | {fmt_t(m)} |"
                    print(row, flush=True)
                    rows.append(row)
            for _, p in graphs[1:]:
                p.unlink()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    corr = {lv: spearman(*pairs[lv]) for lv in pairs if len(pairs[lv][0]) > 2}
    cmd = reproduce("scripts/cost_validation.py", sys.argv[1:])
    lines = [
        TITLE,
        "",
        f"Reproduce: `{cmd}` (after `cargo build --release -p qdqc`). Measured {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"qdqc at `{rev}`, cost table `{table}`, onnxruntime {ort.__version__}, {platform.machine()}, one thread, batch 1.",
        "",
        "Spearman rank correlation between predicted and measured whole-model latency, over the "
        f"{len(pairs['all'][0])} graphs below (each model's original, `-O2` and `--target onnx` output): "
        + ", ".join(f"**{corr[lv]:.3f}** at ORT_{'ENABLE_ALL' if lv == 'all' else 'DISABLE_ALL'}" for lv in corr)
        + ".",
        "",
        "| model | graph | level | predicted | measured |",
        "|---|---|---|--:|--:|",
    ] + rows
    print("\n".join(lines[:6]))
    if a.docs:
        doc = ROOT / "docs/benchmarks.md"
        text = doc.read_text()
        section = "\n".join(lines) + "\n"
        if TITLE in text:
            before, rest = text.split(TITLE, 1)
            nxt = rest.find("\n## ")
            text = before + section + (rest[nxt + 1:] if nxt >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
