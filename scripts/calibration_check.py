#!/usr/bin/env python3
"""`qdqc compile --calibrate` on TensorRT-style QAT models, checked in onnxruntime.

    calibration_check.py [--qdqc PATH] [--zoo DIR] [--models NAME,...] [--method M]
                         [--max-loss DB] [--speed] [--json FILE]

For each model NAME (default resnet18, mobilenetv2, small_cnn) of scripts/gen_models.py's zoo
(generated into --zoo when missing: NAME.float.onnx, NAME.trt.onnx, NAME/calib/*.npz — 32
samples — and NAME/heldout/*.npz — 16 others):
  1. `qdqc compile NAME.trt.onnx --calibrate NAME/calib --verify 16 --verify-inputs NAME/heldout`
     must exit 0 (the compiled model within --min-sqnr of the input model on held-out samples);
  2. the output must be fully integer: `qdqc stats` counts no float compute op, no Conv, Gemm,
     MatMul, ConvInteger or Add, one QuantizeLinear and one DequantizeLinear;
  3. onnxruntime (CPU, ORT_ENABLE_ALL, one thread) runs the float, the TRT-style and the compiled
     model on the held-out samples; numpy computes each output's SQNR against the float model
     pooled over the samples in float64, 10·log10(Σr² / Σ(r−x)²). The compiled model's may be at
     most --max-loss dB (default 0.5) below the TRT-style model's.
With --speed, also measures the compiled model's latency against the TRT-style model's in
onnxruntime (ORT_ENABLE_ALL, one thread, batch 1, interleaved rounds; scripts/ort_bench.py) and
prints the ratio; speed is reported, not judged.

Prints one line per model, then "N passed, M failed". Exit status 0 if all pass, 1 if any
fails, 2 on bad usage or a missing tool.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
MODELS = ["resnet18", "mobilenetv2", "small_cnn"]
FLOAT_OPS = ["Conv", "Gemm", "MatMul", "ConvInteger", "Add"]


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def sqnr_db(ref: list[np.ndarray], x: list[np.ndarray]) -> float:
    r = np.concatenate([a.astype(np.float64).ravel() for a in ref])
    d = r - np.concatenate([a.astype(np.float64).ravel() for a in x])
    noise = float(np.sum(d * d))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(r * r)) / noise)


def outputs(path: Path, samples: list[dict]) -> dict[str, list[np.ndarray]]:
    s = session(path)
    names = [o.name for o in s.get_outputs()]
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in samples:
        for n, v in zip(names, s.run(names, feed)):
            out[n].append(v)
    return out


def ensure_zoo(zoo: Path, models: list[str]) -> None:
    missing = [m for m in models if not all(
        p.exists() for p in [zoo / f"{m}.float.onnx", zoo / f"{m}.trt.onnx", zoo / m / "calib", zoo / m / "heldout"])]
    if missing:
        print(f"generating {', '.join(missing)} into {zoo} (scripts/gen_models.py)", flush=True)
        subprocess.run([sys.executable, str(HERE / "gen_models.py"), "--out", str(zoo), "--only", ",".join(missing)],
                       check=True, stdout=subprocess.DEVNULL)


def check(qdqc: str, zoo: Path, m: str, method: str, max_loss: float, speed: bool, tmp: Path) -> dict:
    trt, flt = zoo / f"{m}.trt.onnx", zoo / f"{m}.float.onnx"
    calib, heldout = zoo / m / "calib", zoo / m / "heldout"
    out = tmp / f"{m}.calibrated.onnx"
    cmd = [qdqc, "compile", str(trt), "-o", str(out), "--calibrate", str(calib), "--calib-method", method,
           "--verify", "16", "--verify-inputs", str(heldout), "--time-passes"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    res: dict = {"model": m, "method": method, "problems": []}
    if p.returncode != 0:
        res["problems"].append(f"qdqc compile exit {p.returncode}: {p.stderr.strip()}")
        return res
    t = re.search(r"time: calibrate ([0-9.]+) s", p.stderr)
    res["calibrate_s"] = float(t.group(1)) if t else None
    res["inserted"] = len(re.findall(r"^  calibrate: ", p.stdout, re.M))
    stats = json.loads(subprocess.run([qdqc, "stats", "--json", str(out)], capture_output=True, text=True,
                                      check=True).stdout)
    ops = stats["ops"]
    res["after"] = {"float_compute": stats["float_compute"], "Q": stats["quantize_linear"],
                    "DQ": stats["dequantize_linear"]}
    if stats["float_compute"] != 0:
        res["problems"].append(f"{stats['float_compute']} float compute ops left")
    left = {o: ops[o] for o in FLOAT_OPS if ops.get(o)}
    if left:
        res["problems"].append(f"float ops left: {left}")
    if stats["quantize_linear"] != 1 or stats["dequantize_linear"] != 1:
        res["problems"].append(f"{stats['quantize_linear']} Q and {stats['dequantize_linear']} DQ (want 1 and 1)")
    samples = [dict(np.load(f)) for f in sorted(heldout.glob("*.npz"))]
    ref, base, comp = outputs(flt, samples), outputs(trt, samples), outputs(out, samples)
    res["outputs"] = []
    for name in ref:
        a, b = sqnr_db(ref[name], base[name]), sqnr_db(ref[name], comp[name])
        res["outputs"].append({"name": name, "trt_db": a, "compiled_db": b})
        if not b >= a - max_loss:
            res["problems"].append(f"output '{name}': {b:.2f} dB is more than {max_loss} dB below the input's {a:.2f}")
    if speed:
        sys.path.insert(0, str(HERE))
        import ort_bench
        r = ort_bench.compare(trt, [out], level="all", threads=1, batch=1)
        mm = r["models"][0]
        res["speed"] = {"ratio": mm["ratio"], "p10": mm["ratio_p10"], "p90": mm["ratio_p90"],
                        "input_ms": r["reference"]["median_s"] * 1e3, "output_ms": mm["median_s"] * 1e3}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qdqc", default=str(HERE.parent / "target/release/qdqc"))
    ap.add_argument("--zoo", type=Path, default=HERE.parent / "target/models")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--method", default="mse")
    ap.add_argument("--max-loss", type=float, default=0.5)
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not Path(a.qdqc).exists():
        print(f"calibration_check: {a.qdqc} not found (cargo build --release -p qdqc)", file=sys.stderr)
        return 2
    models = [m for m in a.models.split(",") if m]
    ensure_zoo(a.zoo, models)
    results, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            r = check(a.qdqc, a.zoo, m, a.method, a.max_loss, a.speed, Path(tmp))
            results.append(r)
            outs = ", ".join(f"{o['name']} {o['trt_db']:.2f} -> {o['compiled_db']:.2f} dB" for o in r.get("outputs", []))
            line = f"{m}: {r.get('inserted', 0)} tensors calibrated in {r.get('calibrate_s')} s; vs float: {outs}"
            if "after" in r:
                line += f"; after: {r['after']}"
            if "speed" in r:
                s = r["speed"]
                line += (f"; latency {s['ratio']:.3f}x the input's ({s['p10']:.3f}-{s['p90']:.3f}; "
                         f"{s['input_ms']:.2f} -> {s['output_ms']:.2f} ms)")
            if r["problems"]:
                failed += 1
                line += "\n  FAIL: " + "; ".join(r["problems"])
            print(line, flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(models) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
