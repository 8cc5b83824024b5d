#!/usr/bin/env python3
"""onnxruntime CPU latency of qdqc's compiled models against the QDQ originals.

    bench_latency.py [--runs N] [--warmup W] [--big-runs N] [--threads 2,1] [--qdqc PATH] [--no-docs]

Models: the QDQ fixtures of tests/fixtures (every *.onnx but the float models, kitchen_sink, which
cannot run, and external_data, a copy of resnet_block.u8.pc), and ResNet-50 QDQ when
scripts/gen_resnet50.py's output is in target/bench_interp (`scripts/bench_interp.sh` makes it).
Each QDQ model is compiled with `target/release/qdqc compile MODEL -o OUT` (-O2, --target ort).

For each model and each intra-op thread count (default 2 and 1; inter-op 1, sequential), on the
CPU execution provider, batch 1 (symbolic dims 1), one seeded random input:
  (a) the original QDQ model at ORT_ENABLE_EXTENDED (onnxruntime's own QDQ fusion);
  (b) qdqc's compiled model at ORT_ENABLE_BASIC and at ORT_ENABLE_EXTENDED;
  (c) the float model at ORT_ENABLE_EXTENDED, for reference, when there is one.
A measurement creates the session (timed: session creation), runs W warm-up runs, then N timed
runs; latency is the median of the N runs. Models are measured one after the other in one
process.

Prints a markdown section and, unless --no-docs, puts it in docs/benchmarks.md as the section
"## onnxruntime latency of compiled models" (replaced on rerun; other sections stay).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.dont_write_bytecode = True  # importing ort_parity must not leave scripts/__pycache__ behind
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_parity import _random_input  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## onnxruntime latency of compiled models"
SKIP = {"kitchen_sink.onnx", "external_data.onnx"}
FLOAT_COMPUTE = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
LEVELS = {
    "BASIC": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "EXTENDED": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}


def models() -> list[tuple[str, Path, Path | None, bool]]:
    """(label, QDQ model, float model or None, big)."""
    fx = ROOT / "tests/fixtures"
    out = []
    for p in sorted(fx.glob("*.onnx")):
        # kitchen_sink cannot run; external_data is resnet_block.u8.pc with its tensors in a side file.
        if p.name in SKIP or p.name.endswith(".float.onnx"):
            continue
        flt = fx / f"{p.name.split('.')[0]}.float.onnx"
        out.append((p.stem, p, flt if flt.is_file() else None, False))
    big = ROOT / "target/bench_interp"
    if (big / "resnet50.qdq.onnx").is_file():
        flt = big / "resnet50.float.onnx"
        out.append(("ResNet-50 (QDQ)", big / "resnet50.qdq.onnx", flt if flt.is_file() else None, True))
    return out


def measure(path: Path, level: str, threads: int, runs: int, warmup: int) -> tuple[float, float]:
    """(session creation s, median latency s)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    t0 = time.perf_counter()
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    feed = {i.name: _random_input(rng, i.type, i.shape, 1, i.name) for i in s.get_inputs()}
    for _ in range(warmup):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - t)
    return created, statistics.median(times)


def ops_left(path: Path) -> tuple[int, int]:
    m = onnx.load(str(path), load_external_data=False)
    f = sum(n.op_type in FLOAT_COMPUTE and n.domain in ("", "ai.onnx") for n in m.graph.node)
    return f, len(m.graph.node)


def fmt_t(s: float) -> str:
    if s >= 0.1:
        return f"{s * 1e3:.0f} ms"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} µs"


def machine_line() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
    osname = next(
        (l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), ""
    )
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, "
        f"{osname}, Linux {platform.release()};\n{rustc}; Python {platform.python_version()}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}."
    )


def commit_line() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    c = head.stdout.strip() or "unknown"
    dirty = []
    for d in ("passes", "ir", "compiler"):
        st = subprocess.run(["git", "status", "--porcelain", "--", d], capture_output=True, text=True, cwd=ROOT)
        if st.stdout.strip():
            dirty.append(f"{d}/")
    if "passes/" in dirty:
        return f"commit {c} with uncommitted rule work (uncommitted changes in {', '.join(dirty)})"
    return f"commit {c}" + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="timed runs per fixture measurement (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up runs per fixture measurement (default 20)")
    ap.add_argument("--big-runs", type=int, default=20, help="timed runs for ResNet-50 (default 20; warm-up 3)")
    ap.add_argument("--threads", default="2,1", help="intra-op thread counts (default 2,1)")
    ap.add_argument("--qdqc", type=Path, default=ROOT / "target/release/qdqc")
    ap.add_argument("--no-docs", action="store_true", help="print the section only")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if not args.qdqc.is_file():
        print(f"error: no qdqc binary at {args.qdqc} (cargo build --release -p qdqc --bin qdqc)", file=sys.stderr)
        return 2
    load_before = open("/proc/loadavg").read().split()[0]
    tmp = tempfile.TemporaryDirectory(prefix="bench_latency.")
    rows, problems = [], []
    for label, qdq, flt, big in models():
        out = Path(tmp.name) / f"{qdq.stem}.qdqc.onnx"
        t0 = time.perf_counter()
        r = subprocess.run([str(args.qdqc), "compile", str(qdq), "-o", str(out)], capture_output=True, text=True)
        compile_s = time.perf_counter() - t0
        if r.returncode != 0:
            problems.append(f"{label}: qdqc compile failed: {r.stderr.strip()}")
            continue
        (f_before, n_before), (f_after, n_after) = ops_left(qdq), ops_left(out)
        runs, warmup = (args.big_runs, 3) if big else (args.runs, args.warmup)
        print(f"[bench_latency] {label}", file=sys.stderr)
        for t in threads:
            m = {
                "qdq": measure(qdq, "EXTENDED", t, runs, warmup),
                "basic": measure(out, "BASIC", t, runs, warmup),
                "ext": measure(out, "EXTENDED", t, runs, warmup),
                "float": measure(flt, "EXTENDED", t, runs, warmup) if flt else None,
            }
            rows.append((label, t, m, (n_before, n_after, f_before, f_after, compile_s)))

    cmd = "scripts/bench_latency.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    lines = [TITLE, ""]
    lines.append(machine_line() + f" 1-min load average before the runs: {load_before} (the machine is shared, so "
                 "expect noise).")
    lines.append("")
    lines.append(f"qdqc at {commit_line()}. Reproduce: `{cmd}` (ResNet-50 from `scripts/bench_interp.sh`, which runs "
                 "`scripts/gen_resnet50.py` into target/bench_interp).")
    lines.append("")
    lines.append(
        "onnxruntime CPU execution provider, batch 1, one seeded random input. Each cell: median latency of "
        f"{args.runs} runs after {args.warmup} warm-up runs ({args.big_runs} after 3 for ResNet-50), in a fresh "
        "session. *QDQ EXT*: the original QDQ model at ORT_ENABLE_EXTENDED (onnxruntime fuses the QDQ groups itself); "
        "*qdqc BASIC* / *qdqc EXT*: `qdqc compile MODEL -o OUT` (-O2, --target ort) at ORT_ENABLE_BASIC / "
        "ORT_ENABLE_EXTENDED; *float EXT*: the float model at ORT_ENABLE_EXTENDED. Speed-up = QDQ EXT / qdqc BASIC "
        "(above 1: the compiled model without onnxruntime's QDQ fusion is faster). Session creation is the "
        "`InferenceSession` constructor. Nodes and float compute ops (Conv, ConvTranspose, MatMul, Gemm) are before → "
        "after qdqc; compile is the wall time of the `qdqc compile` process. The compiled models' numerics are "
        "checked by `scripts/ort_compiled.py`, not here."
    )
    lines.append("")
    lines.append(
        "| model | threads | QDQ EXT | qdqc BASIC | qdqc EXT | float EXT | speed-up | session creation QDQ EXT / "
        "qdqc BASIC / qdqc EXT | nodes | float ops | compile |"
    )
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, t, m, (nb, na, fb, fa, cs) in rows:
        flt = fmt_t(m["float"][1]) if m["float"] else "–"
        lines.append(
            f"| {label} | {t} | {fmt_t(m['qdq'][1])} | {fmt_t(m['basic'][1])} | {fmt_t(m['ext'][1])} | {flt} | "
            f"{m['qdq'][1] / m['basic'][1]:.2f}× | {fmt_t(m['qdq'][0])} / {fmt_t(m['basic'][0])} / "
            f"{fmt_t(m['ext'][0])} | {nb} → {na} | {fb} → {fa} | {cs:.2f} s |"
        )
    for p in problems:
        lines.append(f"\nNot measured: {p}")
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_docs:
        doc = ROOT / "docs/benchmarks.md"
        text = doc.read_text()
        pat = re.compile(r"^" + re.escape(TITLE) + r"\n.*?(?=^## |\Z)", re.S | re.M)
        if pat.search(text):
            text = pat.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
        else:
            text = text.rstrip("\n") + "\n\n" + section
        doc.write_text(text)
        print(f"[bench_latency] updated {doc}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
