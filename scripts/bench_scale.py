#!/usr/bin/env python3
"""Compile time and memory at scale: qdqc's greedy -O2 on synthetic QDQ CNNs of 1k to 1M ops,
next to onnxruntime's session optimization of the same models.

    bench_scale.py [--sizes 1000,10000,100000,1000000] [--dir target/bench_scale] [--runs 3] [--small-runs 11]
                   [--ort-max 100000] [--saturate-max 100000] [--ort-timeout 600]
                   [--curve-sizes 3000,10000,...,2000000] [--no-docs]

Models come from `benches/src/bin/gen_synthetic.rs` (ORT-style QDQ residual blocks, uint8
activations, int8 per-channel weights, 16 weight DQs shared by every block). For each size:

  - `qdqc compile MODEL -o OUT --time-passes` (the -O2 pipeline), and with -O3 (equality
    saturation) up to --saturate-max ops: wall time (taken here) and peak RSS (`/usr/bin/time`)
    of the process, the median of --runs runs (--small-runs below 1M ops), the load / passes /
    save split and each pass's time that `--time-passes` prints;
  - the cost per op of -O2 at the --curve-sizes (between and beyond the decades): where the
    time per op rises, the working set has outgrown a cache, not an algorithm its linear bound;
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
SECTION = "## Compile time at scale"

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
    """Wall seconds, peak RSS in MB, stderr. The wall time is taken here, to the microsecond
    (`/usr/bin/time` reports hundredths of a second, which moved the ratio of a 10k-op compile,
    about 0.05 s, to the next size by ±1.5); `/usr/bin/time` reports the peak RSS."""
    start = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    m = re.search(r"TIME ([0-9.]+) ([0-9]+)", r.stderr)
    return wall, int(m.group(2)) // 1024, r.stderr


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


def median_run(cmd: list[str], runs: int) -> tuple[float, int, str]:
    """The run with the median wall time of `runs` runs (the first run after a build or another
    process freeing memory pays several seconds of kernel page zeroing; see docs)."""
    results = sorted((timed(cmd) for _ in range(runs)), key=lambda r: r[0])
    return results[len(results) // 2]


def split(err: str) -> tuple[dict[str, float], float, list[tuple[str, float, int]]]:
    """Phases, graph-check total and per-pass (name, seconds, changes) from --time-passes."""
    phase = {k: float(v) for k, v in re.findall(r"time: (load|passes|save) ([0-9.]+) s", err)}
    check = sum(float(v) for v in re.findall(r"graph check ([0-9.]+) s", err))
    check += sum(float(v) for v in re.findall(r"graph check after the pipeline ([0-9.]+) s", err))
    passes = [(m[0], float(m[1]), int(m[2])) for m in re.findall(r"time: #\d+ +(\S+) +([0-9.]+) s .*?(\d+) changes", err)]
    return phase, check, passes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--dir", default=str(ROOT / "target/bench_scale"))
    ap.add_argument("--runs", type=int, default=3, help="qdqc runs per measurement (the median is reported)")
    ap.add_argument("--small-runs", type=int, default=11,
                    help="runs per measurement below 1M ops (a 10k-op compile takes a few hundredths of a second, "
                         "and its noise moves the ratio to the next size)")
    ap.add_argument("--curve-sizes", default="3000,10000,20000,30000,50000,100000,200000,300000,500000,1000000,2000000",
                    help="sizes for the time-per-op table ('' for none)")
    ap.add_argument("--ort-max", type=int, default=100000)
    ap.add_argument("--saturate-max", type=int, default=100000)
    ap.add_argument("--ort-timeout", type=float, default=600)
    ap.add_argument("--fanout-sizes", default="10000,100000,1000000",
                    help="sizes of the use-list stress test (gen_synthetic --fanout); empty for none")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "qdqc", "-p", "qdqc-bench"], check=True, cwd=ROOT)
    release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    qdqc, gen = release / "qdqc", release / "gen_synthetic"
    rows, per_pass = [], {}
    for n in [int(s) for s in args.sizes.split(",")]:
        model = out / f"synthetic-{n}.onnx"
        if not model.exists():
            subprocess.run([str(gen), "--ops", str(n), "-o", str(model)], check=True, capture_output=True)
        compile_cmd = [str(qdqc), "compile", str(model), "--time-passes", "-o"]
        runs = args.runs if n >= 1_000_000 else max(args.runs, args.small_runs)
        wall, rss, err = median_run([*compile_cmd, str(out / f"compiled-{n}.onnx")], runs)
        phase, check, passes = split(err)
        per_pass[("greedy -O2", n)] = passes
        sat = None
        if n <= args.saturate_max:
            probe = subprocess.run([*compile_cmd, str(out / f"o3-{n}.onnx"), "-O3"], capture_output=True, text=True)
            if probe.returncode == 0:
                s_wall, s_rss, s_err = median_run([*compile_cmd, str(out / f"o3-{n}.onnx"), "-O3"], runs)
                s_phase, _, s_passes = split(s_err)
                per_pass[("saturate -O3", n)] = s_passes
                sat = (s_wall, s_rss, s_phase)
        rt_wall, rt_rss, _ = median_run([*compile_cmd, str(out / f"rt-{n}.onnx"), "--passes", "none"], runs)
        ops = int(re.search(r"input had (\d+)", subprocess.run(
            [str(qdqc), "compile", str(model), "-o", str(out / "tmp.onnx"), "--passes", "none"],
            capture_output=True, text=True).stdout).group(1))
        if n <= args.ort_max:
            ext = ort_session(model, "ORT_ENABLE_EXTENDED", args.ort_timeout)
            off = ort_session(model, "ORT_DISABLE_ALL", args.ort_timeout)
        else:
            ext = off = "not run"
        rows.append((n, ops, model.stat().st_size / 1e6, wall, rss, phase, check, sat, rt_wall, rt_rss, ext, off))
        print(rows[-1], flush=True)
    lines = [
        "| ops | file | qdqc -O2 wall | ×time per 10× ops | peak RSS | load / passes (graph check) / save | qdqc -O3 (saturate) wall, RSS | round trip (--passes none) | onnxruntime session EXTENDED | onnxruntime session DISABLE_ALL |",
        "|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    prev = None
    for n, ops, mb, wall, rss, ph, check, sat, rt_wall, rt_rss, ext, off in rows:
        ratio = f"{wall / prev[1]:.1f}×" if prev and prev[1] > 0 and n == 10 * prev[0] else ""
        prev = (n, wall)
        sp = f"{ph.get('load', 0):.2f} / {ph.get('passes', 0):.2f} ({check:.2f}) / {ph.get('save', 0):.2f} s"
        o3 = f"{sat[0]:.2f} s, {sat[1]:,} MB" if sat else ("not run" if n > args.saturate_max else "unavailable")
        lines.append(
            f"| {ops:,} | {mb:.1f} MB | {wall:.2f} s | {ratio} | {rss:,} MB | {sp} | {o3} | {rt_wall:.2f} s, {rt_rss:,} MB | {ext} | {off} |"
        )
    fan_rows = []
    for n in [int(x) for x in args.fanout_sizes.split(",") if x]:
        model = out / f"fanout-{n}.onnx"
        if not model.exists():
            subprocess.run([str(gen), "--fanout", "--ops", str(n), "-o", str(model)], check=True, capture_output=True)
        runs = args.runs if n >= 1_000_000 else max(args.runs, args.small_runs)
        wall, rss, err = median_run([str(qdqc), "compile", str(model), "--time-passes", "-o", str(out / f"fanout-o-{n}.onnx")], runs)
        phase, check, _ = split(err)
        fan_rows.append((n, wall, rss, phase))
        print(fan_rows[-1], flush=True)
    if fan_rows:
        lines += ["", "Use-list stress test (`gen_synthetic --fanout`: one activation read by N/6 branches):", "",
                  "| ops | consumers of one value | qdqc -O2 wall | ×time per 10× ops | peak RSS | load / passes / save |",
                  "|--:|--:|--:|--:|--:|---|"]
        prev = None
        for n, wall, rss, ph in fan_rows:
            ratio = f"{wall / prev[1]:.1f}×" if prev and prev[1] > 0 and n == 10 * prev[0] else ""
            prev = (n, wall)
            sp = f"{ph.get('load', 0):.2f} / {ph.get('passes', 0):.2f} / {ph.get('save', 0):.2f} s"
            lines.append(f"| {n:,} | {max((n - 2) // 6, 1):,} | {wall:.2f} s | {ratio} | {rss:,} MB | {sp} |")
    curve = []
    for n in [int(x) for x in args.curve_sizes.split(",") if x]:
        model = out / f"synthetic-{n}.onnx"
        if not model.exists():
            subprocess.run([str(gen), "--ops", str(n), "-o", str(model)], check=True, capture_output=True)
        runs = args.runs if n >= 1_000_000 else max(args.runs, args.small_runs)
        wall, rss, err = median_run([str(qdqc), "compile", str(model), "--time-passes", "-o", str(out / "curve-out.onnx")], runs)
        phase, _, _ = split(err)
        curve.append((n, wall, rss, phase))
        print(curve[-1], flush=True)
    if curve:
        lines += ["", "Time per op of greedy -O2 (same models, more sizes; µs per op of the input, so a linear compile "
                  "keeps each column flat):", "",
                  "| ops | wall | µs/op | load µs/op | passes µs/op | save µs/op | peak RSS |",
                  "|--:|--:|--:|--:|--:|--:|--:|"]
        for n, wall, rss, ph in curve:
            us = [1e6 * ph.get(k, 0) / n for k in ("load", "passes", "save")]
            lines.append(f"| {n:,} | {wall:.3f} s | {1e6 * wall / n:.2f} | {us[0]:.2f} | {us[1]:.2f} | {us[2]:.2f} | {rss:,} MB |")
    biggest = {}
    for (mode, n), passes in per_pass.items():
        if passes and n >= biggest.get(mode, (0, None))[0]:
            biggest[mode] = (n, passes)
    for mode, (n, passes) in sorted(biggest.items()):
        lines += ["", f"Each pass of {mode} at {n:,} ops (the median run; a pass listed twice ran in both repetitions of the pipeline):", "",
                  "| # | pass | time | changes |", "|--:|---|--:|--:|"]
        lines += [f"| {i + 1} | {name} | {t:.3f} s | {c:,} |" for i, (name, t, c) in enumerate(passes)]
    table = "\n".join(lines)
    print(table)
    if not args.no_docs:
        head = (
            f"{SECTION}\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs, {platform.platform()}; qdqc at "
            f"`{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()}`. "
            "Reproduce: `scripts/bench_scale.py` (models from `cargo run --release -p qdqc-bench --bin gen_synthetic -- --ops N`; "
            "qdqc built with the workspace's release profile: fat LTO, one codegen unit).\n"
            f"qdqc: the median of {args.runs} runs ({max(args.runs, args.small_runs)} below 1M ops), wall time of the whole process (taken by the script) and its peak RSS (`/usr/bin/time`); the split is what "
            "`--time-passes` prints (in release builds the graph check runs once, after the pipeline; `--check-each-pass` runs it "
            "after every pass). onnxruntime: one session creation each.\n\n"
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
