#!/usr/bin/env python3
"""End-to-end drift of compiled models next to onnxruntime's own fusion.

    ort_drift.py [--qdqc target/release/qdqc] [--samples 8]

For every quantized fixture whose output comes from a DequantizeLinear: the largest difference of
the output, in output quantization steps, over seeded random inputs, against onnxruntime running
the original QDQ model with ORT_DISABLE_ALL, for
  (a) onnxruntime running the same model with ORT_ENABLE_EXTENDED (its own QDQ fusion), and
  (b) onnxruntime running `qdqc compile -O2`'s output with ORT_DISABLE_ALL.
Per-node rounding differences of one step (float versus integer requantization) compound through
a network; this measures how far each approach moves the end result. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent


def session(path: Path, level) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def output_step(m: onnx.ModelProto) -> float | None:
    out = m.graph.output[0].name
    init = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.output[0] == out and n.op_type == "DequantizeLinear" and n.input[1] in init:
            return float(numpy_helper.to_array(init[n.input[1]]).reshape(-1)[0])
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdqc", default=str(ROOT / "target/release/qdqc"))
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    print("| model | onnxruntime EXTENDED (own fusion) | qdqc -O2 |")
    print("|---|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted((ROOT / "tests/fixtures").glob("*.onnx")):
            m = onnx.load(str(f))
            step = output_step(m)
            if step is None:
                continue
            out = Path(tmp) / f.name
            subprocess.run([args.qdqc, "compile", str(f), "-o", str(out)], check=True, capture_output=True)
            if (f.parent / f"{f.name}.data").exists():
                (Path(tmp) / f"{f.name}.data").write_bytes((f.parent / f"{f.name}.data").read_bytes())
            ref = session(f, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            ext = session(f, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
            ours = session(out, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            i = ref.get_inputs()[0]
            shape = [1 if isinstance(d, str) else d for d in i.shape]
            worst_ext = worst_ours = 0.0
            for k in range(args.samples):
                x = np.random.default_rng(k).standard_normal(shape).astype(np.float32)
                y = ref.run(None, {i.name: x})[0]
                worst_ext = max(worst_ext, float(np.abs(y - ext.run(None, {i.name: x})[0]).max()))
                worst_ours = max(worst_ours, float(np.abs(y - ours.run(None, {i.name: x})[0]).max()))
            print(f"| {f.name} | {worst_ext / step:.0f} | {worst_ours / step:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
