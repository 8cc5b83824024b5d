#!/usr/bin/env python3
"""Compile time and memory at scale: qdqc's greedy -O2 on synthetic QDQ CNNs of 1k to 1M ops,
next to onnxruntime's session optimization of the same models.

    bench_scale.py [--sizes 1000,10000,100000,1000000] [--dir target/bench_scale]
                   [--ort-max 100000] [--ort-timeout 600] [--no-docs]

Models come from `benches/src/bin/gen_synthetic.rs` (ORT-style QDQ residual blocks, uint8
activations, int8 per-channel weights, 16 weight DQs shared by every block). For each size:

  - `qdqc compile MODEL -o OUT --time-passes` (the -O2 pipeline): wall time and peak RSS of the
    process (`/usr/bin/time`), and the load / passes / save split that `--time-passes` prints;
  - onnxruntime 1.32: `InferenceSession` creation with ORT_ENABLE_EXTENDED (its QDQ fusion runs
    there) and with ORT_DISABLE_ALL; the difference is its optimization time. Sizes above
    --ort-max are skipped, and a session taking longer than --ort-timeout seconds is reported as
    such.

Writes a markdown table and, unless --no-docs, replaces the section "Compile time at scale" in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Compile time at scale (issue 5)"

ORT_SNIPPET = """
import sys, time, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, sys.argv[2])
so.intra_op_num_threads = 1
t = time.perf_counter()
ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
print(time.perf_counter() - t)
"""


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MB, stderr."""
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    m = re.search(r"TIME ([0-9.]+) ([0-9]+)", r.stderr)
    return float(m.group(1)), int(m.group(2)) // 1024, r.stderr


def ort_session(model: Path, level: str, timeout: float) -> str:
    try:
        r = subprocess.run(
            [sys.executable, "-c", ORT_SNIPPET, str(model), level], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} s"
    if r.returncode != 0:
        return "failed"
    return f"{float(r.stdout.strip()):.2f} s"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--dir", default=str(ROOT / "target/bench_scale"))
    ap.add_argument("--ort-max", type=int, default=100000)
    ap.add_argument("--ort-timeout", type=float, default=600)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "qdqc", "-p", "qdqc-bench"], check=True, cwd=ROOT)
    qdqc, gen = ROOT / "target/release/qdqc", ROOT / "target/release/gen_synthetic"
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        model = out / f"synthetic-{n}.onnx"
        if not model.exists():
            subprocess.run([str(gen), "--ops", str(n), "-o", str(model)], check=True, capture_output=True)
        wall, rss, err = timed([str(qdqc), "compile", str(model), "-o", str(out / f"compiled-{n}.onnx"), "--time-passes"])
        phase = {k: float(v) for k, v in re.findall(r"time: (load|passes|save) ([0-9.]+) s", err)}
        check = sum(float(v) for v in re.findall(r"graph check ([0-9.]+) s", err))
        rt_wall, rt_rss, _ = timed([str(qdqc), "compile", str(model), "-o", str(out / f"rt-{n}.onnx"), "--passes", "none"])
        ops = int(re.search(r"input had (\d+)", subprocess.run(
            [str(qdqc), "compile", str(model), "-o", str(out / "tmp.onnx"), "--passes", "none"],
            capture_output=True, text=True).stdout).group(1))
        if n <= args.ort_max:
            ext = ort_session(model, "ORT_ENABLE_EXTENDED", args.ort_timeout)
            off = ort_session(model, "ORT_DISABLE_ALL", args.ort_timeout)
        else:
            ext = off = "not run"
        rows.append((n, ops, model.stat().st_size / 1e6, wall, rss, phase, check, rt_wall, rt_rss, ext, off))
        print(rows[-1], flush=True)
    lines = [
        "| ops | file | qdqc -O2 wall | peak RSS | load / passes (graph checks) / save | round trip (--passes none) | onnxruntime session EXTENDED | onnxruntime session DISABLE_ALL |",
        "|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for n, ops, mb, wall, rss, ph, check, rt_wall, rt_rss, ext, off in rows:
        split = f"{ph.get('load', 0):.2f} / {ph.get('passes', 0):.2f} ({check:.2f}) / {ph.get('save', 0):.2f} s"
        lines.append(
            f"| {ops:,} | {mb:.1f} MB | {wall:.2f} s | {rss:,} MB | {split} | {rt_wall:.2f} s, {rt_rss:,} MB | {ext} | {off} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_docs:
        head = (
            f"{SECTION}\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, {platform.platform()}; qdqc at "
            f"`{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()}`. "
            "Reproduce: `scripts/bench_scale.py` (models from `cargo run --release -p qdqc-bench --bin gen_synthetic -- --ops N`).\n"
            "One run each; wall time and peak RSS of the whole process (`/usr/bin/time`); the split is what `--time-passes` prints, "
            "the graph checks being `Graph::verify` after each pass that changed the graph.\n\n"
        )
        doc = ROOT / "docs/benchmarks.md"
        text = doc.read_text()
        if SECTION in text:
            start = text.index(SECTION)
            nxt = text.find("\n## ", start + len(SECTION))
            text = text[:start] + head + table + "\n" + (text[nxt:] if nxt >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + head + table + "\n"
        doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
