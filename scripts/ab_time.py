#!/usr/bin/env python3
"""Interleaved timing of qdqc binaries on one model: an A/B for a change meant to be faster.

    ab_time.py MODEL [--runs 5] [--args "-O3 --target onnx"] BIN [BIN ...]

Each round compiles MODEL once with every binary, in turn (so that the machine's drift and
noise fall on all of them alike); after --runs rounds it prints, per binary, the median and
the minimum of: wall time (taken here), user and system time and peak RSS (`/usr/bin/time`),
the load / passes / save / total split and each pass's time summed over the pipeline's
repetitions (`--time-passes`). Pair it with scripts/ab_outputs.sh, which checks that the
binaries write the same bytes. Figures for docs/benchmarks.md come from scripts/bench_scale.py.
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def run(binary: str, model: str, extra: list[str], out: Path) -> dict[str, float]:
    cmd = ["/usr/bin/time", "-f", "TIME %U %S %M", binary, "compile", model, "-o", str(out), "--time-passes", *extra]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    user, system, rss = re.search(r"TIME ([0-9.]+) ([0-9.]+) ([0-9]+)", r.stderr).groups()
    row = {"wall s": wall, "user s": float(user), "sys s": float(system), "peak RSS MB": int(rss) / 1024}
    row.update({f"{k} s": float(v) for k, v in re.findall(r"time: (load|passes|save|total) ([0-9.]+) s", r.stderr)})
    for name, secs in re.findall(r"time: #\d+ +(\S+) +([0-9.]+) s", r.stderr):
        row[f"  {name}"] = row.get(f"  {name}", 0.0) + float(secs)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--args", default="", help="more `qdqc compile` flags, e.g. '-O3'")
    args = ap.parse_args()
    extra = shlex.split(args.args)
    rows: dict[str, list[dict[str, float]]] = {b: [] for b in args.binaries}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for b in args.binaries:
                rows[b].append(run(b, args.model, extra, Path(tmp) / "out.onnx"))
    keys = list(dict.fromkeys(k for b in args.binaries for r in rows[b] for k in r))
    width = max(len(k) for k in keys)
    print(f"{'median (min) of ' + str(args.runs):<{width}}" + "".join(f"{Path(b).name[-24:]:>26}" for b in args.binaries))
    for k in keys:
        cells = []
        for b in args.binaries:
            v = [r.get(k, 0.0) for r in rows[b]]
            cells.append(f"{statistics.median(v):>12.3f} ({min(v):>9.3f})")
        print(f"{k:<{width}}" + "".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
