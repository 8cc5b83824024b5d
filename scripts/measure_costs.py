#!/usr/bin/env python3
"""Measure onnxruntime's cost per op class and write qdqc's cost table (passes/src/cost/measured.rs).

    measure_costs.py [--out passes/src/cost/measured.rs] [--rounds R] [--burst-ms MS] [--json FILE]

For every op class of `passes/src/cost/table.rs` the script builds one-node models of the class at
two sizes (uint8 activations, int8 weights, NCHW, as qdqc writes them), times them in onnxruntime
(CPU execution provider, one intra-op thread, sequential execution) at ORT_ENABLE_ALL and at
ORT_DISABLE_ALL, and fits `call_ns + unit_ns · units` through the two medians: the units are
multiply-accumulates for convolutions and matrix products, output elements for everything else
(input elements for pools). Every session's runs are interleaved with every other's, round after
round, so that they share the machine's state.

What a one-node model cannot show: at ORT_ENABLE_ALL onnxruntime runs uint8 QLinearConv chains
channels-last and wraps a lone QLinearConv in two Transposes, so the measured QLinearConv cost
includes them; `call_ns` includes the Python call into onnxruntime (a few microseconds), the same
for every class.

The table's name (recorded in every compiled model's metadata as `qdqc.cost_table`) names the
onnxruntime version, the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
MS = "com.microsoft"
U8, I8, F32, I32 = TP.UINT8, TP.INT8, TP.FLOAT, TP.INT32


def const(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr, name)


def scalar(name: str, v, dtype) -> onnx.TensorProto:
    return const(name, np.array(v, dtype=dtype))


def model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "m", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(MS, 1)])


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def qparams() -> list[onnx.TensorProto]:
    return [scalar("xs", 0.02, np.float32), scalar("xz", 128, np.uint8), scalar("ws", 0.01, np.float32),
            scalar("wz", 0, np.int8), scalar("ys", 0.05, np.float32), scalar("yz", 128, np.uint8),
            scalar("bs", 0.04, np.float32), scalar("bz", 128, np.uint8)]


RNG = np.random.default_rng(0)


def conv_weight(c: int, depthwise: bool, k: int = 3, dtype=np.int8) -> np.ndarray:
    shape = (c, 1, k, k) if depthwise else (c, c, k, k)
    if dtype == np.float32:
        return RNG.standard_normal(shape).astype(np.float32) * 0.1
    return RNG.integers(-127, 128, shape).astype(dtype)


def conv(kind: str, depthwise: bool, h: int, c: int = 64):
    """A 3×3 'same' convolution over [1, c, h, h]; returns (model, units = MACs)."""
    attrs = {"pads": [1, 1, 1, 1], "group": c if depthwise else 1}
    shape = [1, c, h, h]
    macs = c * h * h * 9 * (1 if depthwise else c)
    if kind == "float":
        w = conv_weight(c, depthwise, dtype=np.float32)
        n = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
        return model([n], [vi("x", F32, shape)], [vi("y", F32, shape)], [const("w", w)]), macs
    w = conv_weight(c, depthwise)
    if kind == "qlinear":
        n = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], **attrs)
        return model([n], [vi("x", U8, shape)], [vi("y", U8, shape)], [const("w", w), *qparams()]), macs
    n = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], **attrs)
    return model([n], [vi("x", U8, shape)], [vi("y", I32, shape)], [const("w", w), *qparams()]), macs


def matmul(kind: str, m: int, k: int = 256, n: int = 256):
    macs = m * k * n
    if kind == "float":
        b = RNG.standard_normal((k, n)).astype(np.float32) * 0.1
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        return model([node], [vi("a", F32, [m, k])], [vi("y", F32, [m, n])], [const("b", b)]), macs
    b = RNG.integers(-127, 128, (k, n)).astype(np.int8)
    if kind == "qlinear":
        node = helper.make_node("QLinearMatMul", ["a", "xs", "xz", "b", "ws", "wz", "ys", "yz"], ["y"])
        return model([node], [vi("a", U8, [m, k])], [vi("y", U8, [m, n])], [const("b", b), *qparams()]), macs
    if kind == "qgemm":
        node = helper.make_node("QGemm", ["a", "xs", "xz", "b", "ws", "wz", "", "ys", "yz"], ["y"], domain=MS)
        return model([node], [vi("a", U8, [m, k])], [vi("y", U8, [m, n])], [const("b", b), *qparams()]), macs
    node = helper.make_node("MatMulInteger", ["a", "b", "xz", "wz"], ["y"])
    return model([node], [vi("a", U8, [m, k])], [vi("y", I32, [m, n])], [const("b", b), *qparams()]), macs


def elementwise(kind: str, h: int, c: int = 64):
    """An elementwise op over [1, c, h, h]; returns (model, units = output elements)."""
    shape, n = [1, c, h, h], c * h * h
    x8, xf = vi("x", U8, shape), vi("x", F32, shape)
    if kind == "quantize":
        node = helper.make_node("QuantizeLinear", ["x", "ys", "yz"], ["y"])
        return model([node], [xf], [vi("y", U8, shape)], qparams()), n
    if kind == "dequantize":
        node = helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["y"])
        return model([node], [x8], [vi("y", F32, shape)], qparams()), n
    if kind in ("qlinear_add", "qlinear_mul"):
        op = "QLinearAdd" if kind == "qlinear_add" else "QLinearMul"
        node = helper.make_node(op, ["x", "xs", "xz", "b", "bs", "bz", "ys", "yz"], ["y"], domain=MS)
        return model([node], [x8, vi("b", U8, shape)], [vi("y", U8, shape)], qparams()), n
    if kind == "qlinear_lookup":
        node = helper.make_node("QLinearSigmoid", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS)
        return model([node], [x8], [vi("y", U8, shape)], qparams()), n
    if kind == "float_elementwise":
        node = helper.make_node("Add", ["x", "b"], ["y"])
        return model([node], [xf, vi("b", F32, shape)], [vi("y", F32, shape)], []), n
    if kind == "integer_elementwise":
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        inits = [scalar("lo", 10, np.uint8), scalar("hi", 240, np.uint8)]
        return model([node], [x8], [vi("y", U8, shape)], inits), n
    if kind == "cast":
        node = helper.make_node("Cast", ["x"], ["y"], to=F32)
        return model([node], [x8], [vi("y", F32, shape)], []), n
    raise ValueError(kind)


def pool(kind: str, h: int, c: int = 64):
    """A global average pool over [1, c, h, h]; returns (model, units = input elements)."""
    shape, n = [1, c, h, h], c * h * h
    if kind == "qlinear_pool":
        node = helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                                domain=MS, channels_last=0)
        return model([node], [vi("x", U8, shape)], [vi("y", U8, [1, c, 1, 1])], qparams()), n
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    return model([node], [vi("x", F32, shape)], [vi("y", F32, [1, c, 1, 1])], []), n


def softmax(rows: int, cols: int = 1000):
    node = helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS, axis=-1, opset=13)
    ys = [scalar("xs", 0.1, np.float32), scalar("xz", 128, np.uint8),
          scalar("ys", 1 / 256, np.float32), scalar("yz", 0, np.uint8)]
    return model([node], [vi("x", U8, [rows, cols])], [vi("y", U8, [rows, cols])], ys), rows * cols


# The table's classes (passes/src/cost/table.rs `Level`'s fields) and their models at two sizes.
CLASSES = {
    "conv": lambda s: conv("float", False, (14, 28)[s]),
    "conv_depthwise": lambda s: conv("float", True, (28, 56)[s]),
    "qlinear_conv": lambda s: conv("qlinear", False, (14, 28)[s]),
    "qlinear_conv_depthwise": lambda s: conv("qlinear", True, (28, 56)[s]),
    "conv_integer": lambda s: conv("integer", False, (14, 28)[s]),
    "conv_integer_depthwise": lambda s: conv("integer", True, (28, 56)[s]),
    "matmul": lambda s: matmul("float", (32, 256)[s]),
    "qlinear_matmul": lambda s: matmul("qlinear", (32, 256)[s]),
    "qgemm": lambda s: matmul("qgemm", (32, 256)[s]),
    "matmul_integer": lambda s: matmul("integer", (32, 256)[s]),
    "quantize": lambda s: elementwise("quantize", (14, 56)[s]),
    "dequantize": lambda s: elementwise("dequantize", (14, 56)[s]),
    "qlinear_add": lambda s: elementwise("qlinear_add", (14, 56)[s]),
    "qlinear_mul": lambda s: elementwise("qlinear_mul", (14, 56)[s]),
    "qlinear_lookup": lambda s: elementwise("qlinear_lookup", (14, 56)[s]),
    "qlinear_pool": lambda s: pool("qlinear_pool", (14, 56)[s]),
    "qlinear_softmax": lambda s: softmax((4, 64)[s]),
    "float_elementwise": lambda s: elementwise("float_elementwise", (14, 56)[s]),
    "float_pool": lambda s: pool("float_pool", (14, 56)[s]),
    "integer_elementwise": lambda s: elementwise("integer_elementwise", (14, 56)[s]),
    "cast": lambda s: elementwise("cast", (14, 56)[s]),
}


def session(m: onnx.ModelProto, level: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def feed(s: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for i in s.get_inputs():
        if i.type == "tensor(float)":
            out[i.name] = rng.standard_normal(i.shape).astype(np.float32)
        else:
            out[i.name] = rng.integers(0, 256, i.shape).astype(np.uint8)
    return out


def measure(level: str, rounds: int, burst_ms: float) -> dict[str, list[tuple[float, float]]]:
    """Per class, [(units, median ns)] at both sizes."""
    runs = []
    for cls, make in CLASSES.items():
        for size in (0, 1):
            m, units = make(size)
            s = session(m, level)
            f = feed(s)
            for _ in range(3):
                s.run(None, f)
            t, n = time.perf_counter(), 0
            while time.perf_counter() - t < burst_ms / 2e3 or n < 3:
                s.run(None, f)
                n += 1
            count = max(3, int(burst_ms / 1e3 / ((time.perf_counter() - t) / n)))
            runs.append((cls, units, s, f, count, []))
    for r in range(rounds):
        order = runs[r % len(runs):] + runs[: r % len(runs)]
        for cls, units, s, f, count, lat in order:
            t = time.perf_counter()
            for _ in range(count):
                s.run(None, f)
            lat.append((time.perf_counter() - t) / count * 1e9)
    out: dict[str, list[tuple[float, float]]] = {}
    for cls, units, _, _, _, lat in runs:
        out.setdefault(cls, []).append((units, statistics.median(lat)))
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(call_ns, unit_ns) through the two points; a slope or intercept below 0 is clamped to 0."""
    (u0, t0), (u1, t1) = points
    unit = max(0.0, (t1 - t0) / (u1 - u0))
    call = max(0.0, t0 - unit * u0)
    return call, unit


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown-cpu"


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def render(name: str, fits: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = [
        "// Generated by scripts/measure_costs.py; do not edit. Regenerate on the target machine:",
        "//     python scripts/measure_costs.py --out passes/src/cost/measured.rs",
        "// then re-bless the tests whose remarks quote costs (QDQC_BLESS=1 cargo test -p qdqc-passes",
        "// --test rules; INSTA_UPDATE=always cargo test -p qdqc-tests --test pipeline) and review them.",
        "// Times in nanoseconds on one thread: a cost per call and per unit (table.rs).",
        "use super::table::{Level, Linear, Table};",
        "",
        "const fn l(call_ns: f64, unit_ns: f64) -> Linear {",
        "    Linear { call_ns, unit_ns }",
        "}",
        "",
        "pub const TABLE: Table = Table {",
        f"    name: \"{name}\",",
    ]
    for level in ("all", "disable_all"):
        lines.append(f"    {level}: Level {{")
        for cls in CLASSES:
            call, unit = fits[level][cls]
            lines.append(f"        {cls}: l({call:.1f}, {unit:.6f}),")
        lines.append("    },")
    lines.append("};")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("passes/src/cost/measured.rs"))
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--burst-ms", type=float, default=30.0)
    ap.add_argument("--json", type=Path, help="also write the raw medians and fits as JSON")
    a = ap.parse_args()
    date = datetime.date.today().strftime("%Y%m%d")
    name = f"onnxruntime-{ort.__version__}-{platform.machine()}-{slug(cpu_name())}-{date}"
    raw, fits = {}, {}
    for level in LEVELS:
        raw[level] = measure(level, a.rounds, a.burst_ms)
        fits[level] = {cls: fit(p) for cls, p in raw[level].items()}
        for cls, (call, unit) in fits[level].items():
            print(f"{level:11} {cls:24} call {call / 1e3:8.1f} µs  unit {unit:.5f} ns", file=sys.stderr)
    a.out.write_text(render(name, fits))
    print(f"wrote {a.out} ({name})")
    if a.json:
        a.json.write_text(json.dumps({"name": name, "raw": raw, "fits": fits}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
