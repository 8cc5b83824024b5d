#!/usr/bin/env python3
"""onnxruntime latency of models against a reference model, in interleaved runs.

    ort_bench.py REF MODEL [MODEL...] [--level all|extended|basic|disable] [--threads N]
                 [--batch N] [--rounds R] [--burst-ms MS] [--json]

Every model gets its own onnxruntime session (CPU execution provider, `--level` graph
optimization for all of them, `--threads` intra-op threads, one inter-op thread, sequential
execution) and the same seeded inputs (standard normal floats; symbolic dims, such as the batch,
set to `--batch`). After warm-up, each round runs every model in turn (the order rotates from
round to round) for a burst of about `--burst-ms`, and records its mean latency in that burst.
Interleaving makes a model and its reference share the machine's state (frequency, caches, other
load); the per-round ratio of a model's latency to the reference's is the measurement.

Prints, per model, the median latency and the median ratio to the reference with the spread of
the per-round ratios (10th to 90th percentile); `--json` prints the same as JSON. Exit status 2 on
a model onnxruntime cannot load or run.

Used by scripts/bench_ort.py (the benchmark table) and by `qdqc compile --check-speed`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class BenchError(Exception):
    pass


def session(path: Path, level: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise BenchError(f"{path}: onnxruntime cannot load it: {str(e).splitlines()[0]}") from None


def feed(s: ort.InferenceSession, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in s.get_inputs():
        if i.type not in DTYPES:
            raise BenchError(f"input '{i.name}' has type {i.type}, which the benchmark cannot make")
        dims = [d if isinstance(d, int) and d >= 0 else batch for d in (i.shape or [])]
        dt = DTYPES[i.type]
        if np.issubdtype(dt, np.floating):
            out[i.name] = rng.standard_normal(dims).astype(dt)
        elif dt is np.bool_:
            out[i.name] = rng.integers(0, 2, dims).astype(dt)
        else:
            out[i.name] = rng.integers(0, 127, dims, endpoint=True).astype(dt)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def compare(ref: Path, models: list[Path], level: str = "all", threads: int = 1, batch: int = 1,
            rounds: int = 15, burst_ms: float = 40.0) -> dict:
    """Latencies of `ref` and `models`, interleaved; ratios to `ref` per round."""
    paths = [ref, *models]
    sessions = [session(p, level, threads) for p in paths]
    feeds = [feed(s, batch) for s in sessions]
    names = [set(f) for f in feeds]
    if any(n != names[0] for n in names):
        raise BenchError("the models' inputs differ")
    # Warm up, and size each model's burst to about burst_ms.
    counts = []
    for s, f in zip(sessions, feeds):
        try:
            for _ in range(3):
                s.run(None, f)
            t = time.perf_counter()
            n = 0
            while time.perf_counter() - t < burst_ms / 1e3 / 2 or n < 2:
                s.run(None, f)
                n += 1
        except Exception as e:
            raise BenchError(f"onnxruntime cannot run it: {str(e).splitlines()[0]}") from None
        per = (time.perf_counter() - t) / n
        counts.append(max(1, int(burst_ms / 1e3 / per)))
    lat: list[list[float]] = [[] for _ in paths]
    for r in range(rounds):
        order = list(range(len(paths)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            s, f, n = sessions[i], feeds[i], counts[i]
            t = time.perf_counter()
            for _ in range(n):
                s.run(None, f)
            lat[i].append((time.perf_counter() - t) / n)
    result = {
        "level": level, "threads": threads, "batch": batch, "rounds": rounds,
        "reference": {"model": str(ref), "median_s": statistics.median(lat[0])},
        "models": [],
    }
    for i, p in enumerate(models, start=1):
        ratios = [a / b for a, b in zip(lat[i], lat[0])]
        result["models"].append({
            "model": str(p),
            "median_s": statistics.median(lat[i]),
            "ratio": statistics.median(ratios),
            "ratio_p10": pct(ratios, 0.1),
            "ratio_p90": pct(ratios, 0.9),
        })
    return result


def fmt_t(s: float) -> str:
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} µs"


def reproduce(script: str, argv: list[str]) -> str:
    """The command line that reproduces a run, for the docs: the zoo as DIR; --qdqc and --docs
    left out."""
    out, skip = [script], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--qdqc":
            skip = True
            continue
        if arg == "--docs" or arg.startswith("--qdqc="):
            continue
        out.append("DIR" if i > 0 and argv[i - 1] == "--zoo" else shlex.quote(arg))
    return " ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--level", choices=sorted(LEVELS), default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--burst-ms", type=float, default=40.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        r = compare(a.ref, a.models, a.level, a.threads, a.batch, a.rounds, a.burst_ms)
    except BenchError as e:
        print(f"ort_bench: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"onnxruntime {ort.__version__}, level {a.level}, {a.threads} thread(s), batch {a.batch}, {a.rounds} rounds")
    print(f"{a.ref}: {fmt_t(r['reference']['median_s'])}")
    for m in r["models"]:
        print(f"{m['model']}: {fmt_t(m['median_s'])}, {m['ratio']:.3f}× the reference "
              f"(rounds {m['ratio_p10']:.3f}–{m['ratio_p90']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
