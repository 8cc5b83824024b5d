#!/usr/bin/env python3
"""The interpreter's 8-bit integer kernels against onnxruntime, bit for bit, over whole input domains.

    kernel_domains.py [--sets N] [--seed S] [--extreme] [--qdqc PATH] [--only KERNEL]
                      [--per-model N] [--keep DIR] [-v]

The interpreter (ir/eval, `qdqc run`) claims onnxruntime 1.32's arithmetic for these kernels (the
kernel model of docs/exactness.md). --sets parameter sets (default 1000) are spread evenly over
the kernels, and over uint8 and int8 within each; they are drawn from a seed (--seed and the
kernel's index: `--only KERNEL --sets N/5` draws that kernel's sets of a run of N). One model per kernel and
type (split into models of at most --per-model nodes) holds a node per set, each with its own
scale, zero-point (and weight, bias) initializers, all reading inputs that hold the whole domain:

  QLinearAdd, QLinearMul (com.microsoft): all 65,536 pairs (a, b), each set in every broadcast
      form that onnxruntime's broadcast loop and the interpreter (`Span` in
      ir/eval/src/kernels/contrib.rs) tell apart:
        both     A [65536], B [65536]: both operands vary along the innermost span (Span::Both)
        scalarA  A [256, 1], B [256, 256]: A is constant along each span of 256, onnxruntime's
                 "input0 scalar" call (its QLinearAdd swaps the operands; Span::ScalarA)
        scalarB  A [256, 256], B [256, 1]: B is constant along each span (Span::ScalarB)
        A[1]     A [1] (one value per set, random), B [256]: the literal scalar, 256 pairs
  QLinearSigmoid, QLinearLeakyRelu (com.microsoft): all 256 values; alpha uniform in (0, 1)
  QLinearConv (ai.onnx): depthwise 1×1, group = C = 16, input [1, 16, 256] with all 256 values in
      every channel; int8 weights, per-channel weight scales, one weight zero point, int32 bias
      (a set is one node, its 16 channels each with their own weight, scale and bias)

Parameters (default: what a quantizer makes). Scales are float32, log-uniform over 1e-4..1e2. An
output scale is drawn on its own or matched to the inputs' (so that outputs are neither all
saturated nor all one value); QLinearAdd / QLinearMul output scales lie within 1e-2..1e4 of the
scale a quantizer would give the output ((255·sA + 255·sB)/255 and 255²·sA·sB/255: the factor is
how many output steps one such step becomes; 1e4 covers an output range 10⁴ times narrower than
the worst case, as residual sums that cancel make), and 30% of their sets have nearly equal input
scales (large float32 products that cancel). Zero points are uniform over the type's range, a
quarter of them at or next to an end. Conv biases are a few hundred output steps either way, or 0.

--extreme makes half of the sets out of range, one way per set: scales over 1e-6..1e3 or special
ones (float32 subnormals down to 1.4e-45, 1e-38, the smallest normal 2^-126, 1e-30, 1e20, 1e30,
3e38); QLinearAdd / QLinearMul output scales 10⁴..10¹⁰ times finer (or 10²..10⁶ times coarser)
than a quantizer's; conv biases next to the int32 limits (the accumulator wraps). Such sets are
reported as "out of range" (with the reason).

onnxruntime 1.32 (CPUExecutionProvider, ORT_DISABLE_ALL, one thread) and `qdqc run MODEL --input
NAME=FILE.npy ... --out DIR` (one process per model) run every model; every output element is
compared bit for bit.

Prints one line per kernel: parameter sets, elements compared (and how many onnxruntime did not
saturate), mismatches and the number of sets with any; then, for the first 8 such sets (-v: all),
the mismatching elements per form, the first one's inputs and both outputs, and the parameters.
Exit status 0 when every element is equal, 1 on any mismatch or when either side cannot run a
model, 2 on bad usage or a missing tool.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

sys.dont_write_bytecode = True
from interp_parity import qdqc_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MS = "com.microsoft"
KERNELS = ["QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConv"]
TYPES = {"u8": (np.uint8, TensorProto.UINT8, 0, 255), "i8": (np.int8, TensorProto.INT8, -128, 127)}
FORMS = ("both", "scalarA", "scalarB", "A[1]")
CONV_C = 16

REAL_LO, REAL_HI = 1e-4, 1e2  # realistic scales
# Realistic QLinearAdd / QLinearMul output scales: within these factors of a quantizer's (see
# quantizer_scale; the factor is how many output steps one quantizer step becomes).
RATIO_LO, RATIO_HI = 1e-2, 1e4
BIAS_MAX = 2**24  # realistic conv biases: |B| ≤ 2^24
# Out-of-range scales for --extreme (float32 subnormals, the smallest normal, huge ones).
SPECIAL_SCALES = [1.4e-45, 1e-42, 1e-40, 1e-38, 2.0**-126, 2e-38, 1e-35, 1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30, 3e38]


def fmt(x) -> str:
    """A float32 printed so that it reads back as the same float32."""
    return f"{float(np.float32(x)):.9g}"


@dataclass
class PSet:
    """One parameter set (one node)."""

    kernel: str
    tname: str
    index: int
    params: dict
    extreme: bool = False
    why: list = field(default_factory=list)
    a1: int = 0  # QLinearAdd / QLinearMul: the value of the [1]-shaped A of the form "A[1]"

    def describe(self) -> str:
        parts = []
        for k, v in self.params.items():
            if isinstance(v, np.ndarray):
                if v.dtype == np.float32:
                    parts.append(f"{k}=[{', '.join(fmt(x) for x in v)}]")
                else:
                    parts.append(f"{k}={v.tolist()}")
            elif isinstance(v, np.floating):
                parts.append(f"{k}={fmt(v)}")
            else:
                parts.append(f"{k}={v}")
        return ", ".join(parts)


# --- drawing parameters ------------------------------------------------------------------------


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(10.0 ** rng.uniform(math.log10(lo), math.log10(hi)))


def positive_f32(x: float) -> bool:
    with np.errstate(over="ignore"):
        return 0.0 < float(np.float32(x)) < math.inf


def quantizer_scale(kernel: str, sa: float, sb: float) -> float:
    """The output scale a quantizer gives QLinearAdd / QLinearMul when the output's range is the
    worst case of the inputs' ranges (255 steps each): (255·sa + 255·sb) / 255, 255²·sa·sb / 255."""
    return sa + sb if kernel == "QLinearAdd" else sa * sb * 255.0


def extreme_reasons(s: PSet) -> list[str]:
    """Why a set is outside what a quantizer makes (empty: realistic)."""
    p, why = s.params, []
    scales = [float(v) for k, v in p.items() if k.lower().endswith("scale") and np.ndim(v) == 0]
    if s.kernel == "QLinearConv":
        scales += [float(v) for v in p["w_scale"]]
    if any(not REAL_LO <= v <= REAL_HI for v in scales):
        why.append("scale")
    if s.kernel in ("QLinearAdd", "QLinearMul"):
        ratio = quantizer_scale(s.kernel, float(p["A_scale"]), float(p["B_scale"])) / float(p["C_scale"])
        if not RATIO_LO <= ratio <= RATIO_HI:
            why.append("ratio")
    if s.kernel == "QLinearConv" and np.any(np.abs(p["B"].astype(np.int64)) > BIAS_MAX):
        why.append("bias")
    return why


def draw_set(kernel: str, tname: str, index: int, rng: np.random.Generator, extreme: bool) -> PSet:
    """One parameter set; with `extreme`, half of the sets go out of range on purpose (which way:
    scales, the binary ops' output-scale ratio, the conv bias)."""
    lo, hi = TYPES[tname][2], TYPES[tname][3]
    dt = TYPES[tname][0]
    out = extreme and rng.random() < 0.5
    modes = ["scale"] + (["ratio"] if kernel in ("QLinearAdd", "QLinearMul") else []) + (
        ["bias"] if kernel == "QLinearConv" else [])
    mode = modes[rng.integers(len(modes))] if out else None

    def scale() -> float:
        if mode == "scale" and rng.random() < 0.5:
            if rng.random() < 0.5:
                return float(np.float32(loguniform(rng, 1e-6, 1e3)))
            return float(np.float32(SPECIAL_SCALES[rng.integers(len(SPECIAL_SCALES))]))
        return float(np.float32(loguniform(rng, REAL_LO, REAL_HI)))

    def zp(lo=lo, hi=hi) -> int:
        if rng.random() < 0.25:
            return int(rng.choice([lo, lo + 1, hi - 1, hi, (lo + hi + 1) // 2]))
        return int(rng.integers(lo, hi + 1))

    def real(x: float) -> float:
        """A derived scale, kept in the realistic range unless this set is out of range."""
        return x if mode == "scale" else min(max(x, REAL_LO), REAL_HI)

    for _ in range(1000):
        p: dict = {}
        if kernel in ("QLinearAdd", "QLinearMul"):
            sa = scale()
            if rng.random() < 0.3:  # nearly equal input scales: two large products that cancel
                near = rng.uniform(-3e-6, 3e-6) if rng.random() < 0.5 else rng.uniform(-0.5, 0.5)
                sb = real(sa * (1.0 + near))
            else:
                sb = scale()
            if mode == "ratio":  # an output step far finer (or coarser) than a quantizer's
                ratio = loguniform(rng, RATIO_HI, 1e10) if rng.random() < 0.8 else loguniform(rng, 1e-6, RATIO_LO)
            else:
                ratio = loguniform(rng, RATIO_LO, RATIO_HI)
            sc = quantizer_scale(kernel, sa, sb) / ratio
            if mode == "scale" and rng.random() < 0.5:
                sc = scale()
            p = {"A_scale": sa, "A_zero_point": zp(), "B_scale": sb, "B_zero_point": zp(), "C_scale": sc,
                 "C_zero_point": zp()}
        elif kernel in ("QLinearSigmoid", "QLinearLeakyRelu"):
            sx, sy = scale(), scale()
            if kernel == "QLinearSigmoid":
                if rng.random() < 0.5:  # inputs over about ±10, outputs over [0, 1]
                    sx = real(20.0 / 255.0 * loguniform(rng, 0.1, 10.0))
                if rng.random() < 0.4:
                    sy = 1.0 / float(rng.choice([255.0, 256.0]))
            elif rng.random() < 0.5:
                sy = real(sx * loguniform(rng, 0.3, 3.0))
            p = {"X_scale": sx, "X_zero_point": zp(), "Y_scale": sy, "Y_zero_point": zp()}
            if kernel == "QLinearLeakyRelu":
                alpha = 0.0
                while not 0.0 < alpha < 1.0:
                    alpha = float(np.float32([0.01, 0.1, 0.2, 0.3][rng.integers(4)] if rng.random() < 0.2
                                             else rng.uniform(0.0, 1.0)))
                p["alpha"] = alpha
        elif kernel == "QLinearConv":
            sx = scale()
            w = rng.integers(-128, 128, CONV_C).astype(np.int8)
            ends = rng.random(CONV_C) < 0.25
            w[ends] = rng.choice(np.array([-128, -127, -1, 0, 1, 127], dtype=np.int8), int(ends.sum()))
            ws = np.array([scale() for _ in range(CONV_C)], dtype=np.float32)
            wz = 0 if rng.random() < 0.6 else zp(-128, 127)
            if rng.random() < 0.5:
                sy = scale()
            else:  # the accumulator range of a typical channel onto the output's 256 steps
                sy = real(sx * float(np.median(ws)) * 128.0 * loguniform(rng, 0.05, 20.0))
            m = ws.astype(np.float64) * sx / sy
            # A few hundred output steps either way (a float bias / (sx · sw)), or 0.
            with np.errstate(all="ignore"):
                bias = np.round(rng.uniform(-300, 300, CONV_C) / np.maximum(m, 1e-300))
            bias[rng.random(CONV_C) < 0.2] = 0
            bias = np.clip(bias, -BIAS_MAX, BIAS_MAX)
            if mode == "bias":  # next to the int32 limits: the accumulator wraps
                k = rng.integers(CONV_C)
                bias[k] = rng.choice([2**31 - 1, -(2**31), 2**31 - 60000, -(2**31) + 60000])
            p = {"x_scale": sx, "x_zero_point": zp(), "w": w, "w_scale": ws, "w_zero_point": wz, "y_scale": sy,
                 "y_zero_point": zp(), "B": bias.astype(np.int64).astype(np.int32)}
        else:
            raise ValueError(kernel)
        scalars = [k for k, v in p.items() if k.lower().endswith("scale") and np.ndim(v) == 0]
        if not all(positive_f32(p[k]) for k in scalars):
            continue  # a derived scale that float32 cannot hold (0 or inf): draw again
        for k in scalars:
            p[k] = np.float32(p[k])
        for k in [k for k in p if k.lower().endswith("zero_point")]:
            p[k] = (np.int8 if kernel == "QLinearConv" and k == "w_zero_point" else dt)(p[k])
        if "alpha" in p:
            p["alpha"] = np.float32(p["alpha"])
        s = PSet(kernel, tname, index, p)
        s.why = extreme_reasons(s)
        s.extreme = bool(s.why)
        if s.extreme == out:
            s.a1 = int(rng.integers(lo, hi + 1))
            return s
    raise RuntimeError(f"cannot draw a {'n out-of-range' if out else ' realistic'} {kernel} set")


# --- models ------------------------------------------------------------------------------------


@dataclass
class Model:
    kernel: str
    tname: str
    sets: list[PSet]
    path: Path | None = None
    inputs: dict = field(default_factory=dict)  # name -> array
    outputs: list = field(default_factory=list)  # (output name, PSet, form)


def domain(tname: str) -> np.ndarray:
    """Every value of the type, in raw-byte order 0..255."""
    return np.arange(256, dtype=np.uint8).view(TYPES[tname][0])


def build(model: Model, work: Path, tag: str) -> None:
    dt, et = TYPES[model.tname][0], TYPES[model.tname][1]
    vals = domain(model.tname)
    nodes, inits, outs = [], [], []
    inputs: dict[str, np.ndarray] = {}

    def init(name: str, v) -> str:
        inits.append(nh.from_array(np.asarray(v), name))
        return name

    if model.kernel in ("QLinearAdd", "QLinearMul"):
        inputs["a_flat"] = np.repeat(vals, 256)  # a = values[i // 256]
        inputs["b_flat"] = np.tile(vals, 256)  # b = values[i % 256]
        inputs["col"] = vals.reshape(256, 1).copy()  # per row
        inputs["grid"] = np.tile(vals, (256, 1))  # grid[i, j] = values[j]
        inputs["vec"] = vals.copy()
        wiring = {"both": ("a_flat", "b_flat"), "scalarA": ("col", "grid"), "scalarB": ("grid", "col")}
        for s in model.sets:
            p, k = s.params, s.index
            names = [init(f"s{k}_{n}", v) for n, v in p.items()]
            wiring["A[1]"] = (init(f"s{k}_a1", np.array([s.a1], dtype=dt)), "vec")
            for form in FORMS:
                a, b = wiring[form]
                y = f"y{k}_{form.replace('[1]', '1')}"
                nodes.append(h.make_node(model.kernel, [a, names[0], names[1], b, names[2], names[3], names[4],
                                                        names[5]], [y], name=f"n{k}_{form}", domain=MS))
                shape = {"both": [65536], "A[1]": [256]}.get(form, [256, 256])
                outs.append(h.make_tensor_value_info(y, et, shape))
                model.outputs.append((y, s, form))
    elif model.kernel in ("QLinearSigmoid", "QLinearLeakyRelu"):
        inputs["x"] = vals.copy()
        for s in model.sets:
            p, k = s.params, s.index
            attrs = {"alpha": float(p["alpha"])} if "alpha" in p else {}
            ins = [init(f"s{k}_{n}", p[n]) for n in ("X_scale", "X_zero_point", "Y_scale", "Y_zero_point")]
            y = f"y{k}"
            nodes.append(h.make_node(model.kernel, ["x", *ins], [y], name=f"n{k}", domain=MS, **attrs))
            outs.append(h.make_tensor_value_info(y, et, [256]))
            model.outputs.append((y, s, "x"))
    else:  # QLinearConv, depthwise 1×1
        inputs["x"] = np.broadcast_to(vals, (1, CONV_C, 256)).copy()
        for s in model.sets:
            p, k = s.params, s.index
            ins = [
                "x",
                init(f"s{k}_x_scale", p["x_scale"]),
                init(f"s{k}_x_zero_point", p["x_zero_point"]),
                init(f"s{k}_w", p["w"].reshape(CONV_C, 1, 1)),
                init(f"s{k}_w_scale", p["w_scale"]),
                init(f"s{k}_w_zero_point", p["w_zero_point"]),
                init(f"s{k}_y_scale", p["y_scale"]),
                init(f"s{k}_y_zero_point", p["y_zero_point"]),
                init(f"s{k}_B", p["B"]),
            ]
            y = f"y{k}"
            nodes.append(h.make_node("QLinearConv", ins, [y], name=f"n{k}", group=CONV_C, kernel_shape=[1]))
            outs.append(h.make_tensor_value_info(y, et, [1, CONV_C, 256]))
            model.outputs.append((y, s, "x"))
    graph = h.make_graph(
        nodes,
        f"{model.kernel}_{model.tname}",
        [h.make_tensor_value_info(n, et, list(v.shape)) for n, v in inputs.items()],
        outs,
        inits,
    )
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid(MS, 1)], ir_version=8)
    model.path = work / f"{tag}.onnx"
    onnx.save(m, str(model.path))
    model.inputs = {n: v.astype(dt, copy=False) for n, v in inputs.items()}


# --- running -----------------------------------------------------------------------------------


def run_ort(model: Model) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model.path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, model.inputs)))


def run_qdqc(qdqc: Path, model: Model, work: Path) -> dict[str, np.ndarray]:
    args = []
    for name, v in model.inputs.items():
        f = work / f"{model.path.stem}.{name}.npy"
        np.save(f, v)
        args += ["--input", f"{name}={f}"]
    return qdqc_run(qdqc, model.path, args, work / f"{model.path.stem}.out")


@dataclass
class BadSet:
    """The mismatches of one parameter set: how many per form, and the first one."""

    pset: PSet
    counts: dict = field(default_factory=dict)  # form -> mismatching elements
    first: tuple | None = None  # (form, input values, onnxruntime, qdqc)


@dataclass
class Tally:
    sets: int = 0
    extreme_sets: int = 0
    elements: int = 0
    unsaturated: int = 0  # elements onnxruntime put strictly inside the type's range
    mismatches: int = 0
    bad: dict = field(default_factory=dict)  # (type, set index) -> BadSet
    errors: list = field(default_factory=list)
    seconds: float = 0.0


def where(model: Model, pset: PSet, form: str, flat: int) -> str:
    """The input values of output element `flat`."""
    vals = domain(model.tname).astype(int)
    if model.kernel in ("QLinearAdd", "QLinearMul"):
        if form == "A[1]":
            return f"a={pset.a1}, b={vals[flat]}"
        hi, lo = vals[flat // 256], vals[flat % 256]
        a, b = (lo, hi) if form == "scalarB" else (hi, lo)
        return f"a={a}, b={b}"
    if model.kernel == "QLinearConv":
        c, i = divmod(flat, 256)
        p = pset.params
        acc = (vals[i] - int(p["x_zero_point"])) * (int(p["w"][c]) - int(p["w_zero_point"])) + int(p["B"][c])
        return (f"channel {c} (w={int(p['w'][c])}, w_scale={fmt(p['w_scale'][c])}, B={int(p['B'][c])}), x={vals[i]}, "
                f"int32 accumulator {acc}")
    return f"x={vals[flat]}"


def compare(model: Model, want: dict, got: dict, t: Tally) -> None:
    lo, hi = TYPES[model.tname][2], TYPES[model.tname][3]
    for name, pset, form in model.outputs:
        w, g = want[name], got.get(name)
        if g is None:
            t.errors.append(f"{model.path.stem}: qdqc run wrote no output '{name}'")
            continue
        if w.dtype != g.dtype or w.shape != g.shape:
            t.errors.append(f"{model.path.stem} '{name}': qdqc {g.dtype}{list(g.shape)} vs "
                            f"onnxruntime {w.dtype}{list(w.shape)}")
            continue
        w, g = w.reshape(-1), g.reshape(-1)
        t.elements += w.size
        wi = w.astype(np.int32)
        t.unsaturated += int(((wi > lo) & (wi < hi)).sum())
        diff = np.flatnonzero(w != g)
        if diff.size:
            t.mismatches += int(diff.size)
            b = t.bad.setdefault((pset.tname, pset.index), BadSet(pset))
            b.counts[form] = b.counts.get(form, 0) + int(diff.size)
            if b.first is None:
                i = int(diff[0])
                b.first = (form, where(model, pset, form, i), int(w[i]), int(g[i]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=int, default=1000, help="parameter sets in all, spread over the kernels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extreme", action="store_true",
                    help="half of the sets out of what a quantizer makes (scales, output-scale ratios, biases)")
    ap.add_argument("--per-model", type=int, default=100, help="nodes (parameter sets) per model at most")
    ap.add_argument("--only", default="", help="only kernels whose name contains TEXT")
    ap.add_argument("--qdqc", type=Path, default=ROOT / "target" / "release" / "qdqc")
    ap.add_argument("--keep", type=Path, help="keep models, inputs and outputs in DIR")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every set with a mismatch, not the first 8")
    args = ap.parse_args(argv)
    kernels = [k for k in KERNELS if args.only.lower() in k.lower()]
    if not kernels:
        ap.error(f"--only {args.only!r} names no kernel of {', '.join(KERNELS)}")
    if args.sets < len(kernels):
        ap.error(f"--sets must be at least {len(kernels)} (one per kernel)")
    if args.per_model < 1:
        ap.error("--per-model must be >= 1")
    if not os.access(args.qdqc, os.X_OK):
        print(f"error: {args.qdqc} is missing; build it with cargo build --release -p qdqc --bin qdqc", file=sys.stderr)
        return 2
    try:
        import onnxruntime as ort
    except ImportError:
        print("error: onnxruntime is not installed (pip install -r scripts/requirements.txt)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kernel_domains.")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    tallies: dict[str, Tally] = {}
    try:
        for kernel in kernels:
            t0 = time.monotonic()
            t = tallies[kernel] = Tally()
            ki = kernels.index(kernel)
            n = args.sets // len(kernels) + (ki < args.sets % len(kernels))
            rng = np.random.default_rng([args.seed, KERNELS.index(kernel)])
            for ti, tname in enumerate(TYPES):
                count = n // 2 + (ti < n % 2)
                sets = [draw_set(kernel, tname, i, rng, args.extreme) for i in range(count)]
                t.sets += len(sets)
                t.extreme_sets += sum(s.extreme for s in sets)
                for c in range(0, len(sets), args.per_model):
                    model = Model(kernel, tname, sets[c:c + args.per_model])
                    tag = f"{kernel}_{tname}_{c // args.per_model}"
                    build(model, work, tag)
                    try:
                        want = run_ort(model)
                    except Exception as e:  # noqa: BLE001 (onnxruntime raises its own types)
                        t.errors.append(f"{tag}: onnxruntime cannot run it: {str(e).splitlines()[0]}")
                        continue
                    try:
                        got = run_qdqc(args.qdqc, model, work)
                    except RuntimeError as e:
                        t.errors.append(f"{tag}: {e}")
                        continue
                    compare(model, want, got, t)
                    if args.keep is None:
                        for f in work.glob(f"{tag}*"):
                            shutil.rmtree(f) if f.is_dir() else f.unlink()
            t.seconds = time.monotonic() - t0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    qdqc = args.qdqc.relative_to(ROOT) if args.qdqc.is_relative_to(ROOT) else args.qdqc
    print(f"onnxruntime {ort.__version__} vs {qdqc} run, seed {args.seed}"
          + (", half of the sets out of range (--extreme)" if args.extreme else ""))
    width = max(len(k) for k in tallies)
    failed = False
    for kernel, t in tallies.items():
        ext = f" ({t.extreme_sets} out of range)" if args.extreme else ""
        where_bad = ""
        if t.bad:
            where_bad = f" in {len(t.bad)} sets"
            if args.extreme:
                where_bad += f" ({sum(b.pset.extreme for b in t.bad.values())} of them out of range)"
        ok = not (t.mismatches or t.errors)
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {kernel:<{width}} {t.sets:5} parameter sets{ext}, {t.elements:11,} elements "
              f"compared ({t.unsaturated:,} unsaturated), {t.mismatches:,} mismatches{where_bad}  [{t.seconds:.1f} s]")
    print(f"total: {sum(t.sets for t in tallies.values())} parameter sets, "
          f"{sum(t.elements for t in tallies.values()):,} elements, "
          f"{sum(t.mismatches for t in tallies.values()):,} mismatches, {time.monotonic() - start:.1f} s")
    bad = [b for t in tallies.values() for b in t.bad.values()]
    for t in tallies.values():
        for e in t.errors:
            print(f"error: {e}")
    for b in bad if args.verbose else bad[:8]:
        s = b.pset
        form, inputs, o, q = b.first
        counts = ", ".join(f"{n} {f}" if f != "x" else str(n) for f, n in b.counts.items())
        rng_note = f" (out of range: {', '.join(s.why)})" if s.extreme else ""
        print(f"mismatch: {s.kernel} {s.tname} set {s.index}{rng_note}: elements differing: {counts}; first"
              f"{' (' + form + ')' if form != 'x' else ''}: {inputs}: onnxruntime {o}, qdqc {q}\n"
              f"          {s.describe()}")
    if len(bad) > 8 and not args.verbose:
        print(f"… and {len(bad) - 8} more sets with mismatches (-v lists them all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
