#!/usr/bin/env python3
"""Compiled models run in onnxruntime and compute what the originals compute.

    ort_compiled.py [--fixtures DIR] [--qdqc PATH] [-O 2|3] [--samples N] [--seed S] [--keep DIR] [--strict]

For every runnable fixture (every *.onnx in DIR except the I/O-only ones of ort_parity.IO_ONLY),
and for each target (`--target ort`, `--target onnx`): `qdqc compile F -o OUT --target T -O L` (L = 2,
greedy, by default; -O 3 checks equality saturation's output), then
run OUT and F in onnxruntime (CPUExecutionProvider, GraphOptimizationLevel.ORT_DISABLE_ALL, one
thread) on the same seeded random inputs (ort_parity's inputs: symbolic dims 1 for even samples, 2
for odd ones) and compare every output per element, in steps:

  - an output produced by DequantizeLinear in the original: |compiled - original| in units of
    that DequantizeLinear's scale (per element for per-axis scales), with a relative slack of
    STEP_SLACK = 1e-3 for the f32 rounding of dequantized values;
  - an integer output (produced by QuantizeLinear): in units of 1;
  - a float output without a step (no DequantizeLinear produces it): in units of the float
    tolerance FLOAT_TOL * max(1, max |original|), FLOAT_TOL = 1e-4 (marked `f` in the table).

This is the end-to-end ("free-running") difference: one-step rounding differences of single
nodes compound through a network. qdqc's contract (`qdqc verify`, compiler/src/verify.rs) judges
each tensor on its own error (teacher forcing) and only reports the end-to-end drift. So, on the
same inputs (written as .npy and passed with `qdqc verify F OUT --inputs DIR`), the script also
asks the reference interpreter, and an output passes when:

  - `qdqc verify` passes (every tensor within one step of its own error), and
  - onnxruntime's end-to-end difference is at most max(1, the interpreter's end-to-end
    difference) steps: onnxruntime running the compiled model adds nothing to what qdqc verified.

With --strict, the end-to-end difference itself must be at most 1 step.

The table shows per model and target: onnxruntime's largest end-to-end difference, the
interpreter's on the same inputs, the float compute ops left (Conv, ConvTranspose, MatMul, Gemm)
and the com.microsoft ops in the compiled model. A `--target onnx` output holding any
com.microsoft op fails.

Every compiled model must also pass onnx.checker.check_model(full_check=True): the model checker
(opset imports, every node's attributes and arity against its schema) and strict shape inference
with type checks. onnx has no com.microsoft schemas, so the checker would skip those nodes and
leave their outputs untyped; scripts/ms_schemas.py registers onnxruntime's schemas of the
com.microsoft ops qdqc writes first (with their scalar scale and zero point requirements).

Besides the fixtures, the script derives `<name>.params1d.onnx` from each of PARAMS_1D (written
to a temporary folder): the same model with every scalar scale and zero point of its Q/DQ nodes
stored as a `[1]` tensor, as some exporters write them.

Exit status: 0 all passed, 1 any failure (a compile error, an onnx.checker or shape inference rejection, an output
beyond tolerance, a failed
`qdqc verify`, a com.microsoft op on --target onnx, a model onnxruntime cannot load or run), 2 bad
usage.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.dont_write_bytecode = True  # importing ort_parity must not leave scripts/__pycache__ behind
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ms_schemas  # noqa: E402
from ort_parity import IO_ONLY, LoadError, _random_input, _session  # noqa: E402

FLOAT_TOL = 1e-4
# Outputs are f32 (q - zp) * scale: a difference of exactly one step can come out a hair above it.
STEP_SLACK = 1e-3
FLOAT_COMPUTE = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
TARGETS = ("ort", "onnx")
# Fixtures whose Q/DQ parameters are also tried as [1] tensors (Add, Mul, pools, Softmax, MatMul).
PARAMS_1D = ("resnet_block.u8.pt.onnx", "transformer_block.u8.pt.onnx")
ROOT = Path(__file__).resolve().parent.parent


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def output_steps(model: onnx.ModelProto) -> dict[str, tuple[str, np.ndarray | None, int]]:
    """Per graph output: ("dq", scale, axis) / ("int", None, 0) / ("float", None, 0)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consts = _consts(model)
    kinds = {}
    for o in model.graph.output:
        n = producer.get(o.name)
        if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in consts:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            kinds[o.name] = ("dq", consts[n.input[1]].astype(np.float64), axis)
        elif n is not None and n.op_type == "QuantizeLinear":
            kinds[o.name] = ("int", None, 0)
        else:
            kinds[o.name] = ("float", None, 0)
    return kinds


def _per_element_step(scale: np.ndarray, axis: int, shape) -> np.ndarray:
    if scale.size == 1:
        return np.full(shape, float(scale.reshape(-1)[0]))
    axis = axis % len(shape)
    bshape = [1] * len(shape)
    bshape[axis] = scale.size
    return np.broadcast_to(scale.reshape(bshape), shape)


def params_1d(src: Path, dst: Path) -> Path:
    """Writes `src` with every scalar scale and zero point of its Q/DQ nodes as a [1] tensor."""
    m = onnx.load(str(src))
    qdq = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    params = {name for n in qdq for name in n.input[1:3]}
    changed = 0
    for t in m.graph.initializer:
        if t.name in params and len(t.dims) == 0:
            t.dims.append(1)
            changed += 1
    if not changed:
        raise SystemExit(f"error: {src} has no scalar Q/DQ parameters to reshape")
    out = dst / f"{src.stem}.params1d.onnx"
    onnx.save(m, str(out))
    return out


def op_counts(model: onnx.ModelProto) -> tuple[int, collections.Counter]:
    float_ops, ms = 0, collections.Counter()
    for n in model.graph.node:
        if n.domain in ("", "ai.onnx") and n.op_type in FLOAT_COMPUTE:
            float_ops += 1
        if n.domain == "com.microsoft":
            ms[n.op_type] += 1
    return float_ops, ms


def make_feeds(model: Path, samples: int, seed: int) -> list[dict[str, np.ndarray]]:
    ins = _session(model).get_inputs()
    rng = np.random.default_rng(seed)
    feeds = []
    for k in range(samples):
        dim = 1 if k % 2 == 0 else 2
        feeds.append({i.name: _random_input(rng, i.type, i.shape, dim, i.name) for i in ins})
    return feeds


def ort_steps(original: Path, compiled: Path, feeds):
    """onnxruntime, end to end. Returns (per output: (largest difference in steps, kind, float
    unit, where)), problems). Raises LoadError."""
    kinds = output_steps(onnx.load(str(original)))
    sa, sb = _session(original), _session(compiled)
    names = [o.name for o in sa.get_outputs()]
    if [o.name for o in sb.get_outputs()] != names:
        return {}, [f"output names differ: {names} vs {[o.name for o in sb.get_outputs()]}"]
    res = {n: [0.0, kinds[n][0], FLOAT_TOL, ""] for n in names}
    problems = []
    for k, feed in enumerate(feeds):
        try:
            ra = sa.run(None, feed)
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"cannot run {original}: {str(e).splitlines()[0]}") from None
        try:
            rb = sb.run(None, feed)
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"cannot run {compiled}: {str(e).splitlines()[0]}") from None
        for name, a, b in zip(names, ra, rb):
            if a.dtype != b.dtype or a.shape != b.shape:
                problems.append(f"'{name}': {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
                res[name][0] = float("inf")
                continue
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            kind, scale, axis = kinds[name]
            if kind == "dq":
                unit = _per_element_step(scale, axis, a.shape)
            elif kind == "int":
                unit = np.ones(a.shape)
            else:
                u = FLOAT_TOL * max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
                res[name][2] = max(res[name][2], u)
                unit = np.full(a.shape, u)
            steps = float(np.max(diff / unit)) if a.size else 0.0
            if not np.isfinite(steps) or np.any(np.isnan(a) != np.isnan(b)):
                steps = float("inf")
            if steps > res[name][0]:
                w = np.unravel_index(int(np.argmax(diff / unit)), a.shape) if a.size else ()
                res[name][0] = steps
                res[name][3] = f"sample {k} at {list(map(int, w))}: {float(a[w])} vs {float(b[w])}"
    return res, problems


def interpreter_steps(qdqc: Path, original: Path, compiled: Path, feeds, work: Path, float_units: dict[str, float]):
    """`qdqc verify` on the same inputs: (passed, message, per-output end-to-end steps)."""
    inputs = work / "inputs"
    for k, feed in enumerate(feeds):
        d = inputs / f"s{k:03}"
        d.mkdir(parents=True, exist_ok=True)
        for name, v in feed.items():
            np.save(d / f"{name}.npy", v)
    report = work / "verify.json"
    r = subprocess.run(
        [str(qdqc), "verify", str(original), str(compiled), "--inputs", str(inputs), "--json", str(report)],
        capture_output=True,
        text=True,
    )
    if r.returncode not in (0, 1) or not report.is_file():
        return False, f"qdqc verify could not run (exit {r.returncode}): {r.stderr.strip()}", {}
    rep = json.loads(report.read_text())
    steps = {}
    for t in rep["tensors"]:
        if t["is_output"]:
            e = t.get("end_to_end_steps")
            if e is None:  # a float output without a step: in this script's float tolerance
                e = t.get("end_to_end_abs_diff", 0.0) / float_units.get(t["name"], FLOAT_TOL)
            steps[t["name"]] = float(e)
    msg = "" if rep["passed"] else f"qdqc verify failed: {r.stderr.strip()}"
    return bool(rep["passed"]), msg, steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=ROOT / "tests/fixtures")
    ap.add_argument("--qdqc", type=Path, default=ROOT / "target/release/qdqc")
    ap.add_argument("-O", dest="opt", default="2", choices=["2", "3"], help="qdqc's pipeline (-O2 greedy, -O3 saturation)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the compiled models here (default: a temp dir)")
    ap.add_argument("--strict", action="store_true", help="the end-to-end difference itself must be <= 1 step")
    args = ap.parse_args(argv)
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    if not args.qdqc.is_file():
        print(f"error: no qdqc binary at {args.qdqc} (cargo build --release -p qdqc --bin qdqc)", file=sys.stderr)
        return 2
    models = sorted(p for p in args.fixtures.glob("*.onnx") if p.name not in IO_ONLY)
    if not models:
        print(f"error: no fixtures in {args.fixtures}", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="ort_compiled.")
    out_dir = args.keep or Path(tmp.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    derived = out_dir / "derived"
    derived.mkdir(exist_ok=True)
    models += [params_1d(p, derived) for p in models if p.name in PARAMS_1D]

    rows, failures = [], []
    for model in models:
        try:
            feeds = make_feeds(model, args.samples, args.seed)
        except LoadError as e:
            failures.append(f"{model.name}: {e}")
            rows.append((model.name, "-", "not run", "-", "-", "-", "-", "FAIL"))
            continue
        for target in TARGETS:
            out = out_dir / f"{model.stem}.{target}.onnx"
            label = f"{model.name} --target {target}"
            r = subprocess.run(
                [str(args.qdqc), "compile", str(model), "-o", str(out), "--target", target, f"-O{args.opt}"],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                failures.append(f"{label}: qdqc compile failed (exit {r.returncode}): {r.stderr.strip()}")
                rows.append((model.name, target, "-", "-", "-", "-", "-", "FAIL"))
                continue
            float_ops, ms = op_counts(onnx.load(str(out), load_external_data=False))
            ms_text = ", ".join(f"{op}×{n}" for op, n in sorted(ms.items())) or "-"
            ok = True
            try:  # a valid ONNX model, com.microsoft nodes included (see the module documentation)
                ms_schemas.check_model(str(out))
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
                why = " ".join(str(e).split())
                failures.append(f"{label}: onnx.checker (full_check) rejects the compiled model: {why}")
                ok = False
            if target == "onnx" and ms:
                failures.append(f"{label}: com.microsoft ops in a --target onnx output: {ms_text}")
                ok = False
            try:
                res, problems = ort_steps(model, out, feeds)
            except LoadError as e:
                failures.append(f"{label}: {e}")
                rows.append((model.name, target, "not run", "-", "-", str(float_ops), ms_text, "FAIL"))
                continue
            failures += [f"{label}: {p}" for p in problems]
            ok = ok and not problems
            work = out_dir / f"{model.stem}.{target}.verify"
            units = {n: v[2] for n, v in res.items()}
            v_ok, v_msg, interp = interpreter_steps(args.qdqc, model, out, feeds, work, units)
            if not v_ok:
                failures.append(f"{label}: {v_msg}")
                ok = False
            for name, (steps, kind, _, where) in res.items():
                allowed = 1.0 if args.strict else max(1.0, interp.get(name, 0.0))
                if steps > allowed * (1.0 + STEP_SLACK):
                    what = "float tolerances" if kind == "float" else "steps"
                    failures.append(
                        f"{label}: '{name}' {steps:.3g} {what} end to end (allowed {allowed:.3g}; the interpreter: "
                        f"{interp.get(name, float('nan')):.3g}), worst at {where}"
                    )
                    ok = False
            floaty = any(v[1] == "float" for v in res.values())
            ort_max = max((v[0] for v in res.values()), default=0.0)
            int_max = max(interp.values(), default=float("nan"))
            f = " f" if floaty else ""
            rows.append(
                (
                    model.name,
                    target,
                    f"{ort_max:.3f}{f}",
                    f"{int_max:.3f}{f}",
                    "ok" if v_ok else "FAIL",
                    str(float_ops),
                    ms_text,
                    "ok" if ok else "FAIL",
                )
            )

    head = ("model", "target", "ORT steps", "interp steps", "qdqc verify", "float ops left", "com.microsoft ops", "result")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    print(line(head))
    for r in rows:
        print(line(r))
    print(
        "(steps: largest end-to-end |compiled - original| over the outputs, in quantization steps; 'f': an output "
        f"without a step, in units of {FLOAT_TOL:g} x max(1, max |original|); ORT: onnxruntime "
        f"{__import__('onnxruntime').__version__}, ORT_DISABLE_ALL; interp: qdqc's interpreter on the same inputs; "
        f"{args.samples} samples, seed {args.seed}; pass: "
        + ("ORT steps <= 1" if args.strict else "qdqc verify passes and ORT steps <= max(1, interp steps)")
        + ")"
    )
    for f in failures:
        print(f"FAIL {f}")
    passed = sum(r[-1] == "ok" for r in rows)
    print(f"{passed} passed, {len(rows) - passed} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
