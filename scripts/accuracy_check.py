#!/usr/bin/env python3
"""`qdqc accuracy` against an independent computation with onnxruntime and numpy.

    accuracy_check.py [--qdqc PATH] [--fixtures DIR] [--samples N] [--seed S] [--tolerance DB]

For each of the resnet_block, mobilenet_block and transformer_block fixtures (NAME.float.onnx and
NAME.u8.pt.onnx):
  1. numpy writes --samples input samples into a temporary folder, one .npz per sample keyed by
     input name (standard normal float32, seed = --seed + sample; symbolic dims are 1 on even
     samples and 2 on odd ones; np.savez and np.savez_compressed alternate, so both stored and
     deflated members are read);
  2. onnxruntime (CPU, GraphOptimizationLevel.ORT_DISABLE_ALL, one thread) runs the float and the
     QDQ model on each sample, and numpy computes each output's SQNR of the QDQ model against the
     float model pooled over all samples, in float64: 10·log10(Σr² / Σ(r−x)²);
  3. `qdqc accuracy NAME.u8.pt.onnx --float NAME.float.onnx --inputs DIR --json FILE` computes the
     same with the reference interpreter; each output's `sqnr_db` must agree within --tolerance dB
     (default 0.01).

  4. the layer ranking (`--layers`, --rank-samples random samples, default 48) for seeds 0, 1 and 2:
     its three best-ranked tensors must be the same set for the three seeds, and keeping them in
     float together must give a higher output SQNR than each of the three random triples the
     report measures.

Prints one line per model and output (and per model for the ranking), then "N passed, M failed". Exit status 0 if all agree, 1 if
any differs, 2 on bad usage or when a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

MODELS = ["resnet_block", "mobilenet_block", "transformer_block"]


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def write_samples(sess: ort.InferenceSession, folder: Path, samples: int, seed: int) -> list[dict]:
    out = []
    for k in range(samples):
        rng = np.random.default_rng(seed + k)
        feed = {}
        for i in sess.get_inputs():
            if i.type != "tensor(float)":
                raise SystemExit(f"accuracy_check: input '{i.name}' is {i.type}; only float inputs are drawn")
            shape = [d if isinstance(d, int) else 1 + k % 2 for d in i.shape]
            feed[i.name] = rng.standard_normal(shape).astype(np.float32)
        save = np.savez if k % 2 == 0 else np.savez_compressed
        save(folder / f"sample{k:03d}.npz", **feed)
        out.append(feed)
    return out


def sqnr_db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def check(qdqc: str, fixtures: Path, name: str, samples: int, seed: int, tol: float) -> list[tuple[str, bool, str]]:
    float_path, qdq_path = fixtures / f"{name}.float.onnx", fixtures / f"{name}.u8.pt.onnx"
    fs, qs = session(float_path), session(qdq_path)
    outputs = [o.name for o in fs.get_outputs()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "inputs"
        folder.mkdir()
        feeds = write_samples(qs, folder, samples, seed)
        signal = {o: 0.0 for o in outputs}
        noise = {o: 0.0 for o in outputs}
        for feed in feeds:
            ref = dict(zip(outputs, fs.run(outputs, feed)))
            got = dict(zip(outputs, qs.run(outputs, feed)))
            for o in outputs:
                r, x = ref[o].astype(np.float64), got[o].astype(np.float64)
                signal[o] += float(np.sum(r * r))
                noise[o] += float(np.sum((r - x) ** 2))
        report = Path(tmp) / "accuracy.json"
        cmd = [qdqc, "accuracy", str(qdq_path), "--float", str(float_path), "--inputs", str(folder), "--json", str(report)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            return [(o, False, f"qdqc accuracy exited {run.returncode}: {run.stderr.strip()}") for o in outputs]
        data = json.loads(report.read_text())
    assert data["schema_version"] == 2, data["schema_version"]
    assert data["samples"] == samples, data["samples"]
    got_db = {o["name"]: o["qdq"]["sqnr_db"] for o in data["outputs"]}
    results = []
    for o in outputs:
        want = sqnr_db(signal[o], noise[o])
        have = got_db.get(o)
        if isinstance(have, str):
            have = float(have)  # "inf" / "-inf"
        if have is None:
            results.append((o, False, f"qdqc reported no SQNR (ort {want:.4f} dB)"))
            continue
        ok = (math.isinf(want) and want == have) or abs(want - have) <= tol
        results.append((o, ok, f"qdqc {have:.4f} dB, onnxruntime+numpy {want:.4f} dB, |diff| {abs(want - have):.5f}"))
    return results


def ranking(qdqc: str, fixtures: Path, name: str, samples: int) -> list[tuple[str, bool, str]]:
    float_path, qdq_path = fixtures / f"{name}.float.onnx", fixtures / f"{name}.u8.pt.onnx"
    tops, results = [], []
    for seed in (0, 1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "accuracy.json"
            cmd = [qdqc, "-q", "accuracy", str(qdq_path), "--float", str(float_path), "--samples", str(samples)]
            cmd += ["--seed", str(seed), "--layers", "--json", str(report)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                return [("ranking", False, f"qdqc accuracy --layers exited {run.returncode}: {run.stderr.strip()}")]
            data = json.loads(report.read_text())
        layers = sorted(data["layers"], key=lambda l: l["rank"])
        tops.append(frozenset(l["tensor"] for l in layers[:3]))
        check = data["keep_float_check"]
        chosen, random = check["top3"]["sqnr_db"], [k["sqnr_db"] for k in check["random3"]]
        results.append(
            (
                f"keep-float, seed {seed}",
                chosen > max(random),
                f"top 3 kept in float {chosen:.2f} dB, random triples {', '.join(f'{r:.2f}' for r in random)} dB, "
                f"none {check['base_db']:.2f} dB",
            )
        )
    same = all(t == tops[0] for t in tops)
    results.append(("top 3 over seeds 0-2", same, ", ".join(sorted(tops[0])) if same else str([sorted(t) for t in tops])))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qdqc", default="target/release/qdqc")
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.01, help="largest SQNR difference in dB")
    ap.add_argument("--rank-samples", type=int, default=48, help="random samples of the ranking check")
    args = ap.parse_args()
    if args.samples < 1:
        print("accuracy_check: --samples must be at least 1", file=sys.stderr)
        return 2
    if not Path(args.qdqc).is_file():
        print(f"accuracy_check: {args.qdqc} not found (cargo build --release -p qdqc --bin qdqc)", file=sys.stderr)
        return 2
    passed = failed = 0
    for name in MODELS:
        results = check(args.qdqc, args.fixtures, name, args.samples, args.seed, args.tolerance)
        results += ranking(args.qdqc, args.fixtures, name, args.rank_samples)
        for output, ok, msg in results:
            print(f"{'ok  ' if ok else 'FAIL'} {name} {output}: {msg}")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
