#!/usr/bin/env python3
"""Deterministic generator of small ONNX test fixtures for qdqc.

Writes (into --out, default tests/fixtures):

  <name>.float.onnx             float model built with onnx.helper
  <name>.{u8,i8}.{pt,pc}.onnx   QDQ model made by onnxruntime.quantization.quantize_static
                                (u8/i8 = activation type, weights always int8;
                                 pt = per-tensor weights, pc = per-channel weights)
  <cnn>.i8.sym.onnx             the same with symmetric int8 activations (zero point 0, so the
                                quantizer keeps Relu/Clip: their Q zero point is not -128),
                                per-channel weights, for <cnn> in resnet_block, mobilenet_block
  trt_style.onnx                hand-built TensorRT/pytorch-quantization style QAT model
  external_data.onnx(+.data)    a QDQ model stored with external data
  kitchen_sink.onnx             I/O-only model with every "extra" a lossless round trip must keep

for <name> in resnet_block, mobilenet_block, transformer_block.

Every file is byte-deterministic: all random data comes from seeded numpy
generators, calibration ranges are computed once per float model and rounded
to 4 significant digits (so last-ulp differences between CPUs/ORT kernels do
not change the scales), and every model is re-serialized by onnx.save with
fixed producer fields.

Usage:  python scripts/gen_fixtures.py [--out tests/fixtures] [--check]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER_NAME = "qdqc-gen_fixtures"
PRODUCER_VERSION = "1"
BASE_SEED = 20240601

FLOAT_OPSET = 17
TRT_OPSET = 13  # what pytorch-quantization / TensorRT QAT exports typically use
KITCHEN_OPSET = 21  # needed for Identity on INT4/UINT4/FLOAT8 tensors

CALIB_SAMPLES = 8
CALIB_BATCH = 2

# Files that cannot run in onnxruntime (I/O round-trip only). ort_parity.py has the same list.
IO_ONLY = {"kitchen_sink.onnx"}


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _seed(tag: str) -> int:
    """Stable per-model seed (does not depend on Python's hash randomization)."""
    h = 0
    for ch in tag.encode():
        h = (h * 131 + ch) % (2**31)
    return (BASE_SEED + h) % (2**31)


class Builder:
    """Tiny graph builder around onnx.helper."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.counter = collections.Counter()

    def name(self, prefix: str) -> str:
        self.counter[prefix] += 1
        return f"{prefix}_{self.counter[prefix]}"

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def node(self, op: str, inputs, outputs=None, name=None, **attrs) -> str | list[str]:
        name = name or self.name(op.lower())
        if outputs is None:
            outputs = [f"{name}_out"]
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    # -- random parameters ---------------------------------------------------------
    def he(self, shape, fan_in) -> np.ndarray:
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    def small(self, shape, scale=0.1) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    # -- composite layers ----------------------------------------------------------
    def conv(self, x, cin, cout, k, stride=1, group=1, bias=True, prefix="conv"):
        name = self.name(prefix)
        w = self.init(f"{name}.weight", self.he((cout, cin // group, k, k), cin // group * k * k))
        ins = [x, w]
        if bias:
            ins.append(self.init(f"{name}.bias", self.small((cout,), 0.05)))
        pad = k // 2
        return self.node(
            "Conv", ins, name=name, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride],
            group=group, dilations=[1, 1],
        )

    def bn(self, x, c):
        name = self.name("bn")
        scale = self.init(f"{name}.scale", (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32))
        b = self.init(f"{name}.bias", self.small((c,), 0.1))
        mean = self.init(f"{name}.running_mean", self.small((c,), 0.1))
        var = self.init(f"{name}.running_var", (0.5 + self.rng.random(c)).astype(np.float32))
        return self.node("BatchNormalization", [x, scale, b, mean, var], name=name, epsilon=1e-5, momentum=0.9)

    def relu(self, x):
        return self.node("Relu", [x])

    def clip6(self, x):
        lo = "clip.min" if any(i.name == "clip.min" for i in self.inits) else self.init("clip.min", np.array(0.0, np.float32))
        hi = "clip.max" if any(i.name == "clip.max" for i in self.inits) else self.init("clip.max", np.array(6.0, np.float32))
        return self.node("Clip", [x, lo, hi])

    def model(self, graph_name, inputs, outputs, opset=FLOAT_OPSET, doc="") -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.inits)
        opsets = [helper.make_opsetid("", opset)]
        m = helper.make_model(g, opset_imports=opsets, doc_string=doc)
        # realistic IR version for the opset (what exporters write), not onnx's newest
        m.ir_version = helper.find_min_ir_version_for(opsets)
        return finalize(m)


def finalize(m: onnx.ModelProto) -> onnx.ModelProto:
    m.producer_name = PRODUCER_NAME
    m.producer_version = PRODUCER_VERSION
    return m


def save(m: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(m, str(path))


# --------------------------------------------------------------------------------------
# float models
# --------------------------------------------------------------------------------------


def build_resnet_block() -> onnx.ModelProto:
    b = Builder(_seed("resnet_block"))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    # stem: Conv(bias) + BN + Relu, MaxPool
    h = b.relu(b.bn(b.conv("input", 3, 16, 3, bias=True), 16))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    skip = h
    # basic residual block: conv(no bias)-bn-relu-conv(no bias)-bn, Add, Relu
    h = b.relu(b.bn(b.conv(h, 16, 16, 3, bias=False), 16))
    h = b.bn(b.conv(h, 16, 16, 3, bias=False), 16)
    h = b.relu(b.node("Add", [h, skip]))
    # head
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    w = b.init("fc.weight", b.he((10, 16), 16))
    bias = b.init("fc.bias", b.small((10,), 0.05))
    b.node("Gemm", [h, w, bias], ["logits"], name="fc", alpha=1.0, beta=1.0, transB=1)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    return b.model("resnet_block", [x], [y], doc="ResNet basic block (Conv+BN+Relu, residual Add, MaxPool, GAP, Gemm)")


def build_mobilenet_block() -> onnx.ModelProto:
    b = Builder(_seed("mobilenet_block"))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    # stem: 3x3 s2 conv + BN + ReLU6
    h = b.clip6(b.bn(b.conv("input", 3, 16, 3, stride=2, bias=False), 16))  # [N,16,16,16]
    skip = h
    # inverted residual: expand 1x1 -> depthwise 3x3 -> project 1x1 (linear), Add
    h = b.clip6(b.bn(b.conv(h, 16, 32, 1, bias=False, prefix="pw_expand"), 32))
    h = b.clip6(b.bn(b.conv(h, 32, 32, 3, group=32, bias=False, prefix="dw"), 32))
    h = b.bn(b.conv(h, 32, 16, 1, bias=False, prefix="pw_project"), 16)
    h = b.node("Add", [h, skip])
    # a second depthwise conv with bias and no BN (dw conv + Clip directly)
    h = b.clip6(b.conv(h, 16, 16, 3, group=16, bias=True, prefix="dw"))
    # head: GAP -> Reshape -> MatMul + Add
    h = b.node("GlobalAveragePool", [h])
    shape = b.init("head.shape", np.array([-1, 16], np.int64))
    h = b.node("Reshape", [h, shape])
    w = b.init("head.weight", b.he((16, 10), 16))
    h = b.node("MatMul", [h, w], name="head_matmul")
    bias = b.init("head.bias", b.small((10,), 0.05))
    b.node("Add", [h, bias], ["logits"], name="head_bias")
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    return b.model(
        "mobilenet_block", [x], [y],
        doc="MobileNetV2 inverted residual (depthwise Conv, Clip(0,6), pointwise Conv, BN, Add, GAP, Reshape, MatMul)",
    )


def build_transformer_block() -> onnx.ModelProto:
    S, D, H = 16, 64, 4
    HD = D // H
    F = 128
    b = Builder(_seed("transformer_block"))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", S, D])

    def ln(inp, prefix):
        g = b.init(f"{prefix}.weight", (1.0 + 0.05 * b.rng.standard_normal(D)).astype(np.float32))
        beta = b.init(f"{prefix}.bias", b.small((D,), 0.05))
        return b.node("LayerNormalization", [inp, g, beta], name=prefix, axis=-1, epsilon=1e-5)

    def linear(inp, cin, cout, prefix):
        w = b.init(f"{prefix}.weight", b.he((cin, cout), cin))
        bias = b.init(f"{prefix}.bias", b.small((cout,), 0.02))
        h = b.node("MatMul", [inp, w], name=f"{prefix}_matmul")
        return b.node("Add", [h, bias], name=f"{prefix}_add")

    heads_shape = b.init("attn.heads_shape", np.array([0, 0, H, HD], np.int64))
    merge_shape = b.init("attn.merge_shape", np.array([0, 0, D], np.int64))

    h = ln("input", "ln1")
    q = linear(h, D, D, "attn.q")
    k = linear(h, D, D, "attn.k")
    v = linear(h, D, D, "attn.v")
    q = b.node("Transpose", [b.node("Reshape", [q, heads_shape], name="q_split")], name="q_perm", perm=[0, 2, 1, 3])
    k = b.node("Transpose", [b.node("Reshape", [k, heads_shape], name="k_split")], name="k_perm", perm=[0, 2, 3, 1])
    v = b.node("Transpose", [b.node("Reshape", [v, heads_shape], name="v_split")], name="v_perm", perm=[0, 2, 1, 3])
    scores = b.node("MatMul", [q, k], name="attn_qk")  # [N,H,S,S]
    inv_sqrt = b.init("attn.scale", np.array(1.0 / math.sqrt(HD), np.float32))
    scores = b.node("Mul", [scores, inv_sqrt], name="attn_scale")
    probs = b.node("Softmax", [scores], name="attn_softmax", axis=-1)
    ctx = b.node("MatMul", [probs, v], name="attn_pv")  # [N,H,S,HD]
    ctx = b.node("Transpose", [ctx], name="ctx_perm", perm=[0, 2, 1, 3])
    ctx = b.node("Reshape", [ctx, merge_shape], name="ctx_merge")
    o = linear(ctx, D, D, "attn.o")
    h1 = b.node("Add", [o, "input"], name="residual1")

    # MLP with erf-based GELU (as exported by PyTorch at opset 17)
    h = ln(h1, "ln2")
    h = linear(h, D, F, "mlp.fc1")
    sqrt2 = b.init("gelu.sqrt2", np.array(math.sqrt(2.0), np.float32))
    one = b.init("gelu.one", np.array(1.0, np.float32))
    half = b.init("gelu.half", np.array(0.5, np.float32))
    e = b.node("Erf", [b.node("Div", [h, sqrt2], name="gelu_div")], name="gelu_erf")
    e = b.node("Add", [e, one], name="gelu_add")
    h = b.node("Mul", [b.node("Mul", [h, e], name="gelu_mul"), half], name="gelu_half")
    h = linear(h, F, D, "mlp.fc2")
    b.node("Add", [h, h1], ["output"], name="residual2")
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", S, D])
    return b.model(
        "transformer_block", [x], [y],
        doc="Pre-LN transformer encoder block (4-head attention, Softmax, LayerNormalization, erf-GELU MLP)",
    )


def build_mobilenetv3_block() -> onnx.ModelProto:
    """MobileNetV3 / PP-LCNet style: HardSwish written out as exporters write it
    (`x * Clip(x + 3, 0, 6) / 6`) and as the op, a squeeze-and-excitation block ending in
    HardSigmoid, depthwise and pointwise convs with BN, a residual Add."""
    b = Builder(_seed("mobilenetv3_block"))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    three = b.init("hswish.three", np.array(3.0, np.float32))
    six = b.init("hswish.six", np.array(6.0, np.float32))
    zero = b.init("hswish.zero", np.array(0.0, np.float32))

    def hardswish_written_out(h):
        r = b.node("Clip", [b.node("Add", [h, three]), zero, six])
        return b.node("Div", [b.node("Mul", [h, r]), six])

    # stem: 3x3 s2 conv + BN + HardSwish (written out)
    h = hardswish_written_out(b.bn(b.conv("input", 3, 16, 3, stride=2, bias=False), 16))  # [N,16,16,16]
    skip = h
    # depthwise 3x3 + BN + HardSwish (the op)
    h = b.node("HardSwish", [b.bn(b.conv(h, 16, 16, 3, group=16, bias=False, prefix="dw"), 16)])
    # squeeze-and-excitation: GAP, 1x1 reduce + Relu, 1x1 expand + HardSigmoid, Mul
    s = b.node("GlobalAveragePool", [h])
    s = b.relu(b.conv(s, 16, 8, 1, bias=True, prefix="se_reduce"))
    s = b.node("HardSigmoid", [b.conv(s, 8, 16, 1, bias=True, prefix="se_expand")], alpha=1.0 / 6, beta=0.5)
    h = b.node("Mul", [h, s])
    # pointwise 1x1 + BN (linear), residual Add, HardSwish (written out)
    h = b.bn(b.conv(h, 16, 16, 1, bias=False, prefix="pw"), 16)
    h = hardswish_written_out(b.node("Add", [h, skip]))
    # head: GAP, Flatten, Gemm
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    w = b.init("fc.weight", b.he((10, 16), 16))
    bias = b.init("fc.bias", b.small((10,), 0.05))
    b.node("Gemm", [h, w, bias], ["logits"], name="fc", alpha=1.0, beta=1.0, transB=1)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    return b.model(
        "mobilenetv3_block", [x], [y],
        doc="MobileNetV3 block (HardSwish as x*Clip(x+3,0,6)/6 and as the op, SE with HardSigmoid, depthwise Conv, BN, Add)",
    )


# CNNs also quantized with symmetric int8 activations (`<name>.i8.sym.onnx`).
SYMMETRIC_VARIANTS = ("resnet_block", "mobilenet_block")

FLOAT_MODELS = {
    "resnet_block": build_resnet_block,
    "mobilenet_block": build_mobilenet_block,
    "transformer_block": build_transformer_block,
    "mobilenetv3_block": build_mobilenetv3_block,
}


# --------------------------------------------------------------------------------------
# quantization with onnxruntime
# --------------------------------------------------------------------------------------


def _input_feed_shapes(model: onnx.ModelProto, batch: int):
    init_names = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in vi.type.tensor_type.shape.dim]
        out.append((vi.name, dims))
    return out


def calibration_batches(model: onnx.ModelProto, seed: int):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(CALIB_SAMPLES):
        feed = {}
        for name, dims in _input_feed_shapes(model, CALIB_BATCH):
            feed[name] = rng.standard_normal(dims).astype(np.float32)
        batches.append(feed)
    return batches


def _round_sig(x: float, digits: int = 4) -> float:
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits - 1}e}")


def _round_cache(obj):
    """Round every float in a calibration cache (JSON) to 4 significant digits."""
    if isinstance(obj, float):
        return _round_sig(obj)
    if isinstance(obj, list):
        return [_round_cache(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _round_cache(v) for k, v in obj.items()}
    return obj


def make_calibration_cache(float_path: Path, model: onnx.ModelProto, seed: int, tmp: Path) -> Path:
    """Run MinMax calibration once (seeded data) and write a rounded calibration cache."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calibration_batches(model, seed))

        def get_next(self):
            return next(self._it, None)

    raw = tmp / f"{float_path.stem}.calib.raw.json"
    if raw.exists():
        raw.unlink()
    # A throw-away quantization whose only purpose is to compute and store the ranges.
    quantize_static(
        str(float_path), str(tmp / "throwaway.onnx"), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibration_cache_path=str(raw),
    )
    data = json.loads(raw.read_text())
    rounded = tmp / f"{float_path.stem}.calib.json"
    rounded.write_text(json.dumps(_round_cache(data), sort_keys=True))
    return rounded


def quantize(
    float_path: Path, cache: Path, out_path: Path, act_u8: bool, per_channel: bool, tmp: Path, symmetric: bool = False
):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    tmp_out = tmp / out_path.name
    quantize_static(
        str(float_path),
        str(tmp_out),
        None,  # ranges come from the (rounded) calibration cache
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8 if act_u8 else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibration_cache_path=str(cache),
        extra_options={"ActivationSymmetric": True} if symmetric else None,
    )
    m = onnx.load_model(str(tmp_out))
    m.doc_string = (
        f"onnxruntime.quantization.quantize_static(QDQ, activation={'QUInt8' if act_u8 else 'QInt8'}, "
        f"weight=QInt8, per_channel={per_channel}{', ActivationSymmetric=True' if symmetric else ''}) of {float_path.name}"
    )
    save(finalize(m), out_path)


# --------------------------------------------------------------------------------------
# TensorRT-style QAT model (hand-built)
# --------------------------------------------------------------------------------------


def build_trt_style() -> onnx.ModelProto:
    """pytorch-quantization / TensorRT style explicit-quantization model.

    * Q/DQ pairs only in front of Conv / Gemm / MatMul inputs.
    * activations int8, symmetric, zero point 0 (per-tensor)
    * weights stay float initializers and go through QuantizeLinear->DequantizeLinear
      with per-channel int8 symmetric scales (axis=0 for Conv/Gemm(transB=1), axis=1 for MatMul B)
    * float bias, BatchNormalization left unfused after Conv, Relu, no Q on outputs.
    """
    b = Builder(_seed("trt_style"))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])

    def qdq_act(inp, amax):
        name = b.name("act_quant")
        s = b.init(f"{name}.scale", np.array(amax / 127.0, np.float32))
        z = b.init(f"{name}.zero_point", np.array(0, np.int8))
        q = b.node("QuantizeLinear", [inp, s, z], name=f"{name}_q")
        return b.node("DequantizeLinear", [q, s, z], name=f"{name}_dq")

    def qdq_weight(w: np.ndarray, wname: str, axis: int):
        reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=reduce_axes).astype(np.float32)
        amax = np.maximum(amax, 1e-8)
        b.init(wname, w)
        s = b.init(f"{wname}_scale", (amax / 127.0).astype(np.float32))
        z = b.init(f"{wname}_zero_point", np.zeros(amax.shape, np.int8))
        q = b.node("QuantizeLinear", [wname, s, z], name=f"{wname}_q", axis=axis)
        return b.node("DequantizeLinear", [q, s, z], name=f"{wname}_dq", axis=axis)

    def qconv(inp, cin, cout, k, amax):
        name = b.name("conv")
        xin = qdq_act(inp, amax)
        w = qdq_weight(b.he((cout, cin, k, k), cin * k * k), f"{name}.weight", 0)
        bias = b.init(f"{name}.bias", b.small((cout,), 0.05))
        return b.node("Conv", [xin, w, bias], name=name, kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1])

    h = b.relu(b.bn(qconv("input", 3, 16, 3, amax=4.0), 16))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    skip = h
    h = b.relu(b.bn(qconv(h, 16, 16, 3, amax=6.0), 16))
    h = b.bn(qconv(h, 16, 16, 3, amax=6.0), 16)
    h = b.relu(b.node("Add", [h, skip]))
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    # MatMul (weights [K, N], per-channel along axis=1) + float bias Add
    w = qdq_weight(b.he((16, 32), 16), "fc1.weight", 1)
    h = b.node("MatMul", [qdq_act(h, 3.0), w], name="fc1")
    h = b.relu(b.node("Add", [h, b.init("fc1.bias", b.small((32,), 0.05))], name="fc1_bias"))
    # Gemm head (transB=1, weights [N, K], per-channel along axis=0)
    w = qdq_weight(b.he((10, 32), 32), "fc2.weight", 0)
    bias = b.init("fc2.bias", b.small((10,), 0.05))
    b.node("Gemm", [qdq_act(h, 3.0), w, bias], ["logits"], name="fc2", transB=1)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    return b.model(
        "trt_style", [x], [y], opset=TRT_OPSET,
        doc="TensorRT-style QAT: QDQ on Conv/MatMul/Gemm inputs only, float weights through Q->DQ (per-channel), unfused BN",
    )


# --------------------------------------------------------------------------------------
# kitchen sink (I/O only)
# --------------------------------------------------------------------------------------


def build_kitchen_sink() -> onnx.ModelProto:
    rng = np.random.default_rng(_seed("kitchen_sink"))
    nodes = []

    # Constant node
    nodes.append(helper.make_node(
        "Constant", [], ["const_vec"], name="const_node", doc_string="a Constant node",
        value=numpy_helper.from_array(np.array([1.0, 2.0, 3.0, 4.0], np.float32), "const_value"),
    ))
    nodes.append(helper.make_node("Add", ["x", "const_vec"], ["a"], name="add_const", doc_string="node doc string"))

    # custom-domain node carrying one attribute of every simple type
    attr_tensor = numpy_helper.from_array(np.arange(6, dtype=np.int32).reshape(2, 3), "attr_tensor")
    nodes.append(helper.make_node(
        "MyOp", ["a"], ["b"], name="my_op", domain="com.example", doc_string="custom-domain op (not runnable)",
        f=0.25, i=-7, s="hello", floats=[1.5, -2.0, 3.25], ints=[1, -2, 3, 1 << 40], strings=["a", "bc", ""],
        t=attr_tensor,
    ))

    # node with a missing optional input ("" min) -> Clip(b, "", max)
    nodes.append(helper.make_node("Clip", ["b", "", "clip_max"], ["c"], name="clip_optional_min"))

    # model-local function with an attribute reference
    alpha_const = helper.make_node("Constant", [], ["alpha_t"], name="fn_alpha")
    alpha_const.attribute.append(helper.make_attribute_ref("value_float", onnx.AttributeProto.FLOAT, ref_attr_name="alpha"))
    fn_nodes = [
        helper.make_node("Add", ["X", "Y"], ["S"], name="fn_add"),
        alpha_const,
        helper.make_node("Mul", ["S", "alpha_t"], ["Z"], name="fn_mul"),
    ]
    func = helper.make_function(
        "local.fn", "ScaledAdd", ["X", "Y"], ["Z"], fn_nodes,
        opset_imports=[helper.make_opsetid("", KITCHEN_OPSET)], attributes=["alpha"],
        doc_string="Z = (X + Y) * alpha",
    )
    nodes.append(helper.make_node("ScaledAdd", ["c", "x"], ["d"], name="scaled_add", domain="local.fn", alpha=0.5))

    # note: the sparse initializer "sparse_w" is deliberately unused: onnx's full checker
    # (shape inference) rejects a sparse_tensor feeding a standard op such as Mul.

    # Identity pass-throughs of exotic initializers
    nodes.append(helper.make_node("Identity", ["int4_w"], ["int4_out"], name="id_int4"))
    nodes.append(helper.make_node("Identity", ["uint4_w"], ["uint4_out"], name="id_uint4"))
    nodes.append(helper.make_node("Identity", ["f8_w"], ["f8_out"], name="id_f8"))
    nodes.append(helper.make_node("Identity", ["d"], ["y"], name="id_out"))

    inits = [
        helper.make_tensor("clip_max", TensorProto.FLOAT, [], [5.0]),
        # 5 elements -> odd count, exercises nibble packing with a padding nibble
        helper.make_tensor("int4_w", TensorProto.INT4, [5], [-8, -1, 0, 3, 7]),
        helper.make_tensor("uint4_w", TensorProto.UINT4, [2, 3], [0, 1, 2, 9, 14, 15]),
        helper.make_tensor("f8_w", TensorProto.FLOAT8E4M3FN, [4], [0.5, -1.75, 448.0, 0.001953125]),
        # same INT4 values in raw_data form (low nibble first: [-8,-1] [0,3] [7,pad])
        helper.make_tensor("unused_int4_raw", TensorProto.INT4, [5], bytes([0xF8, 0x30, 0x07]), raw=True),
        helper.make_tensor("unused_f8_raw", TensorProto.FLOAT8E4M3FN, [2], bytes([0x38, 0xB8]), raw=True),  # 1.0, -1.0
        # a few more dtypes, unused, in both typed-field and raw_data encodings
        helper.make_tensor("unused_f32_typed", TensorProto.FLOAT, [3], [0.1, 0.2, 0.3], raw=False),
        numpy_helper.from_array(rng.standard_normal((2, 2)).astype(np.float32), "unused_f32_raw"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float16), "unused_f16"),
        helper.make_tensor("unused_bf16", TensorProto.BFLOAT16, [2], [1.0, -3.5]),
        numpy_helper.from_array(np.array([1.0, -1e300], np.float64), "unused_f64"),
        numpy_helper.from_array(np.array([True, False, True]), "unused_bool"),
        numpy_helper.from_array(np.array([-(1 << 62), 0, 1 << 40], np.int64), "unused_i64"),
        helper.make_tensor("unused_i64_typed", TensorProto.INT64, [2], [7, -7]),
        numpy_helper.from_array(np.array([b"foo", b"", b"bar\x00baz"], dtype=object), "unused_str"),
    ]
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sparse_w", TensorProto.FLOAT, [2], [2.0, -3.0]),
        helper.make_tensor("sparse_w_indices", TensorProto.INT64, [2], [1, 3]),
        [4],
    )

    vi = lambda n, t, s, doc="": helper.make_tensor_value_info(n, t, s, doc_string=doc)  # noqa: E731
    graph = helper.make_graph(
        nodes, "kitchen_sink",
        [vi("x", TensorProto.FLOAT, ["N", 4], "graph input doc")],
        [
            vi("y", TensorProto.FLOAT, ["N", 4]),
            vi("int4_out", TensorProto.INT4, [5]),
            vi("uint4_out", TensorProto.UINT4, [2, 3]),
            vi("f8_out", TensorProto.FLOAT8E4M3FN, [4]),
        ],
        initializer=inits,
        doc_string="graph doc string",
        value_info=[
            vi("const_vec", TensorProto.FLOAT, [4]),
            vi("a", TensorProto.FLOAT, ["N", 4], "value_info doc"),
            vi("b", TensorProto.FLOAT, ["N", 4]),
            vi("c", TensorProto.FLOAT, ["N", 4]),
            vi("d", TensorProto.FLOAT, ["N", 4]),
        ],
        sparse_initializer=[sparse],
    )

    # training_info: an initialization graph that resets a state and an algorithm that updates it
    init_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["clip_max_init"], name="ti_init",
                          value=helper.make_tensor("v", TensorProto.FLOAT, [], [5.0]))],
        "training_initialization", [], [helper.make_tensor_value_info("clip_max_init", TensorProto.FLOAT, [])],
    )
    algo_graph = helper.make_graph(
        [helper.make_node("Mul", ["clip_max", "decay"], ["clip_max_new"], name="ti_step")],
        "training_algorithm", [],
        [helper.make_tensor_value_info("clip_max_new", TensorProto.FLOAT, [])],
        initializer=[helper.make_tensor("decay", TensorProto.FLOAT, [], [0.99])],
    )
    training = helper.make_training_info(
        algo_graph, [("clip_max", "clip_max_new")], init_graph, [("clip_max", "clip_max_init")]
    )

    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", KITCHEN_OPSET),
            helper.make_opsetid("com.example", 1),
            helper.make_opsetid("local.fn", 1),
        ],
        functions=[func],
        doc_string="model doc string: kitchen sink for lossless round trips",
        domain="ai.qdqc.fixtures",
        model_version=42,
    )
    model.ir_version = 10
    model.training_info.append(training)
    helper.set_model_props(model, {"author": "qdqc", "purpose": "round-trip fixture", "empty": "", "unicode": "π ≈ 3.14159"})
    return finalize(model)


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------


def op_histogram(m: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def generate(out: Path) -> list[Path]:
    logging.getLogger().setLevel(logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="qdqc-fixtures-") as tmpd:
        tmp = Path(tmpd)
        for name, build in FLOAT_MODELS.items():
            fm = build()
            onnx.checker.check_model(fm, full_check=True)
            fpath = out / f"{name}.float.onnx"
            save(fm, fpath)
            written.append(fpath)
            cache = make_calibration_cache(fpath, fm, _seed(name + ".calib"), tmp)
            for act_u8 in (True, False):
                for pc in (False, True):
                    qpath = out / f"{name}.{'u8' if act_u8 else 'i8'}.{'pc' if pc else 'pt'}.onnx"
                    quantize(fpath, cache, qpath, act_u8, pc, tmp)
                    written.append(qpath)
            if name in SYMMETRIC_VARIANTS:
                qpath = out / f"{name}.i8.sym.onnx"
                quantize(fpath, cache, qpath, False, True, tmp, symmetric=True)
                written.append(qpath)

        trt = build_trt_style()
        onnx.checker.check_model(trt, full_check=True)
        save(trt, out / "trt_style.onnx")
        written.append(out / "trt_style.onnx")

        # external data: the u8 per-channel resnet, every tensor (even scalars) moved out.
        # (not mobilenet: ORT cannot shape-infer a Reshape whose shape tensor is external)
        ext = onnx.load_model(str(out / "resnet_block.u8.pc.onnx"))
        ext.doc_string = "resnet_block.u8.pc.onnx saved with all tensors in external_data.onnx.data"
        data_path = out / "external_data.onnx.data"
        if data_path.exists():
            data_path.unlink()  # onnx appends to an existing data file
        onnx.save_model(
            ext, str(out / "external_data.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
            location="external_data.onnx.data", size_threshold=0,
        )
        os.chmod(data_path, 0o644)  # onnx creates the data file with mode 0600
        written += [out / "external_data.onnx", data_path]

        ks = build_kitchen_sink()
        onnx.checker.check_model(ks, full_check=True)
        save(ks, out / "kitchen_sink.onnx")
        written.append(out / "kitchen_sink.onnx")
    return written


def check_runnable(paths: list[Path]) -> None:
    import onnxruntime as ort

    for p in paths:
        if p.suffix != ".onnx" or p.name in IO_ONLY:
            continue
        m = onnx.load_model(str(p), load_external_data=False)
        for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
            so = ort.SessionOptions()
            so.graph_optimization_level = level
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            feed = {i.name: np.random.default_rng(0).standard_normal(
                [d if isinstance(d, int) else 2 for d in i.shape]).astype(np.float32) for i in sess.get_inputs()}
            outs = sess.run(None, feed)
            assert all(np.isfinite(o).all() for o in outs), p
        print(f"  ok  {p.name:36s} runs in ORT (DISABLE_ALL + ENABLE_ALL)  ops={op_histogram(m)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
    ap.add_argument("--check", action="store_true", help="also run every runnable model in onnxruntime")
    args = ap.parse_args(argv)
    out = Path(args.out)
    written = generate(out)
    for p in written:
        print(f"{p.stat().st_size:>9}  {p}")
    if args.check:
        check_runnable(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
