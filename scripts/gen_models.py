#!/usr/bin/env python3
"""Deterministic generator of qdqc's model zoo: deep float models and their quantized forms.

    scripts/gen_models.py [--out DIR] [--only NAME,...] [--small] [--list]

Writes into --out (default target/models; not committed, regenerate on demand):

  <m>.float.onnx              the float model (onnx.helper + seeded numpy; opset 17, IR 8)
  <m>.prep.float.onnx         onnxruntime's quant_pre_process of it (BatchNormalization folded)
  <m>.qdq.<a>.<w>.onnx        quantize_static(QuantFormat.QDQ) of <m>.float.onnx: onnxruntime
                              quantizes BatchNormalization itself (Conv→Q→DQ→BN→Q)
  <m>.prep.qdq.<a>.<w>.onnx   the same of <m>.prep.float.onnx
  <m>.qop.<a>.pc.onnx         quantize_static(QuantFormat.QOperator) of <m>.float.onnx (resnet18,
                              resnet18_small)
  <m>.trt.onnx                TensorRT-style QAT placement: int8 symmetric Q→DQ on the inputs of
                              Conv/Gemm/MatMul only (weights per output channel), the rest float
  <m>/calib/NNN.npz           32 calibration samples, one .npz per sample keyed by input name
  <m>/heldout/NNN.npz         16 other samples
  <m>/manifest.json           every file above with its recipe, float reference, size and sha256

where <a> is the activation type (u8 = QUInt8, i8 = QInt8, asymmetric) and <w> the int8 weight
granularity (pt = per tensor, pc = per channel). Every sample is standard normal N(0, 1) float32
(seeded per model and set); onnxruntime's MinMax calibration and the TRT-style amax use calib/.

Models (NAME for --only): resnet18, resnet18_small (resnet18 on 64x64 inputs), resnet50,
mobilenetv2, mobilenetv3, transformer, small_cnn, vgg_small. --small selects the CI subset
resnet18_small, mobilenetv3, transformer, small_cnn. docs/models.md describes each.

Weights are seeded He/Xavier normal; every BatchNormalization's running mean and variance are the
per-channel statistics of its input on a batch of standard-normal inputs (each node is evaluated by
onnxruntime as the graph is built), so activations stay near unit scale as in a trained network.

Determinism: the same versions (scripts/requirements.txt) give byte-identical files. Statistics
and calibration ranges computed in float are rounded to 4 significant digits before they enter a
model, so last-ulp differences between CPUs do not change the bytes either.

Every written model passes onnx.checker's full check (com.microsoft schemas registered,
scripts/ms_schemas.py), runs in onnxruntime on held-out samples without NaN, and each quantized
model's SQNR against <m>.float.onnx is printed (not a failure criterion). Exit status 1 when a
model fails, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_fixtures import Builder, _round_cache, _round_sig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRODUCER_NAME = "qdqc-gen_models"
PRODUCER_VERSION = "1"
OPSET = 17  # LayerNormalization needs 17
IR_VERSION = 8  # onnx's IR version for opset 17

CALIB_SAMPLES = 32
HELDOUT_SAMPLES = 16
STAT_BATCH = 8  # standard-normal inputs the BatchNormalization statistics are taken over
SQNR_SAMPLES = 4  # held-out samples each quantized model is compared on
SIG_DIGITS = 4


def seed(tag: str) -> int:
    """Stable seed for a tag (independent of Python's hash randomization)."""
    return int.from_bytes(hashlib.sha256(f"qdqc-models/{tag}".encode()).digest()[:4], "little")


def round_sig(a: np.ndarray) -> np.ndarray:
    """Each element rounded to SIG_DIGITS significant digits, as float32."""
    return np.array([_round_sig(float(v), SIG_DIGITS) for v in np.asarray(a).ravel()], np.float32).reshape(np.shape(a))


# --------------------------------------------------------------------------------------
# graph builder that evaluates as it builds
# --------------------------------------------------------------------------------------


class Net(Builder):
    """gen_fixtures' Builder whose nodes are evaluated by onnxruntime as they are added, on
    STAT_BATCH standard-normal inputs: BatchNormalization takes its statistics from them."""

    def __init__(self, name: str, inputs: list[tuple[str, list[int]]]):
        super().__init__(seed(name))
        self.graph_name = name
        self.inputs = inputs
        self.arrays: dict[str, np.ndarray] = {}
        data = np.random.default_rng(seed(name + "/bn-statistics"))
        self.vals = {n: data.standard_normal([STAT_BATCH, *s[1:]]).astype(np.float32) for n, s in inputs}
        self.ranges: dict[str, tuple[float, float]] = {}  # output -> (std, max |x|)

    def init(self, name: str, arr: np.ndarray) -> str:
        if name in self.arrays:
            raise ValueError(f"initializer {name} defined twice")
        self.arrays[name] = np.asarray(arr)
        return super().init(name, arr)

    def const(self, name: str, value, dtype=np.float32) -> str:
        """A shared constant: defined on first use."""
        if name not in self.arrays:
            self.init(name, np.array(value, dtype))
        return name

    def node(self, op, inputs, outputs=None, name=None, **attrs):
        out = super().node(op, inputs, outputs, name, **attrs)
        self._eval(self.nodes[-1])
        return out

    def _eval(self, n: onnx.NodeProto) -> None:
        import onnxruntime as ort

        acts = [i for i in dict.fromkeys(n.input) if i in self.vals]
        consts = [i for i in dict.fromkeys(n.input) if i and i not in self.vals]
        g = helper.make_graph(
            [n], "eval",
            [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(self.vals[i].dtype), self.vals[i].shape) for i in acts],
            [onnx.ValueInfoProto(name=o) for o in n.output],
            [numpy_helper.from_array(self.arrays[c], c) for c in consts],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = IR_VERSION
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for o, v in zip(n.output, sess.run(None, {i: self.vals[i] for i in acts})):
            if not np.isfinite(v).all():
                raise RuntimeError(f"{self.graph_name}: node {n.name} ({n.op_type}) gives non-finite values")
            self.vals[o] = v
            self.ranges[o] = (float(v.std()), float(np.abs(v).max()))

    # -- parameters -----------------------------------------------------------------
    def channel_gains(self, c: int, spread: float) -> np.ndarray:
        """Log-normal per-channel factors: trained layers' channels differ in scale."""
        return np.exp(spread * self.rng.standard_normal(c)).astype(np.float32)

    # -- layers ---------------------------------------------------------------------
    def conv(self, x, cin, cout, k, stride=1, group=1, bias=False, prefix="conv", spread=0.3):
        name = self.name(prefix)
        fan_in = cin // group * k * k
        w = self.he((cout, cin // group, k, k), fan_in) * self.channel_gains(cout, spread)[:, None, None, None]
        ins = [x, self.init(f"{name}.weight", w.astype(np.float32))]
        if bias:
            ins.append(self.init(f"{name}.bias", self.small((cout,), 0.05)))
        return self.node("Conv", ins, name=name, kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride, stride],
                         group=group, dilations=[1, 1])

    def bn(self, x, gamma: float = 1.0):
        """BatchNormalization whose running mean/var are the statistics of x on the batch."""
        name = self.name("bn")
        v = self.vals[x].astype(np.float64)
        c = v.shape[1]
        axes = (0, *range(2, v.ndim))
        mean = round_sig(v.mean(axis=axes))
        var = round_sig(np.maximum(v.var(axis=axes), 1e-6))
        scale = (gamma * self.channel_gains(c, 0.2)).astype(np.float32)
        ins = [x, self.init(f"{name}.scale", scale), self.init(f"{name}.bias", self.small((c,), 0.1)),
               self.init(f"{name}.running_mean", mean), self.init(f"{name}.running_var", var)]
        return self.node("BatchNormalization", ins, name=name, epsilon=1e-5, momentum=0.9)

    def relu6(self, x):
        return self.node("Clip", [x, self.const("clip.min", 0.0), self.const("clip.max", 6.0)])

    def hswish(self, x):
        """HardSwish as x * Clip(x + 3, 0, 6) / 6 (how PaddlePaddle and older exporters write it)."""
        a = self.node("Add", [x, self.const("hswish.three", 3.0)], name=self.name("hswish_add"))
        c = self.node("Clip", [a, self.const("clip.min", 0.0), self.const("clip.max", 6.0)], name=self.name("hswish_clip"))
        m = self.node("Mul", [x, c], name=self.name("hswish_mul"))
        return self.node("Div", [m, self.const("hswish.six", 6.0)], name=self.name("hswish_div"))

    def gemm(self, x, cin, cout, output=None, prefix="fc"):
        name = self.name(prefix)
        w = self.init(f"{name}.weight", (self.rng.standard_normal((cout, cin)) * math.sqrt(1.0 / cin)).astype(np.float32))
        b = self.init(f"{name}.bias", self.small((cout,), 0.05))
        return self.node("Gemm", [x, w, b], [output] if output else None, name=name, transB=1)

    def head(self, x, cin, classes):
        """GlobalAveragePool, Flatten, Gemm to the logits."""
        x = self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        return self.gemm(x, cin, classes, output="logits")

    def model(self, outputs: list[tuple[str, list[int]]], doc: str) -> onnx.ModelProto:
        g = helper.make_graph(
            self.nodes, self.graph_name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in self.inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            initializer=self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], doc_string=doc)
        m.ir_version = IR_VERSION
        return finalize(m)


def finalize(m: onnx.ModelProto, doc: str | None = None) -> onnx.ModelProto:
    m.producer_name = PRODUCER_NAME
    m.producer_version = PRODUCER_VERSION
    if doc is not None:
        m.doc_string = doc
    return m


# --------------------------------------------------------------------------------------
# float models
# --------------------------------------------------------------------------------------


def build_resnet(name: str, depth: int, hw: int) -> tuple[onnx.ModelProto, Net]:
    """torchvision's ResNet-18 (basic blocks) / ResNet-50 v1.5 (bottlenecks, stride on the 3x3)."""
    net = Net(name, [("input", [1, 3, hw, hw])])
    y = net.relu(net.bn(net.conv("input", 3, 64, 7, 2)))
    y = net.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    cin = 64
    for stage, (blocks, width) in enumerate(zip({18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}[depth], [64, 128, 256, 512])):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            if depth == 18:
                cout = width
                h = net.relu(net.bn(net.conv(y, cin, width, 3, stride)))
                h = net.bn(net.conv(h, width, cout, 3), gamma=0.5)
            else:
                cout = width * 4
                h = net.relu(net.bn(net.conv(y, cin, width, 1)))
                h = net.relu(net.bn(net.conv(h, width, width, 3, stride)))
                h = net.bn(net.conv(h, width, cout, 1), gamma=0.5)
            short = net.bn(net.conv(y, cin, cout, 1, stride, prefix="downsample")) if stride != 1 or cin != cout else y
            y = net.relu(net.node("Add", [h, short]))
            cin = cout
    net.head(y, cin, 1000)
    what = {18: "ResNet-18 (basic blocks 2/2/2/2)", 50: "ResNet-50 v1.5 (bottleneck blocks 3/4/6/3)"}[depth]
    return net.model([("logits", [1, 1000])], f"{what}, input 1x3x{hw}x{hw}, Conv+BatchNormalization+Relu, MaxPool, "
                                               "residual Add, GlobalAveragePool, Gemm 1000"), net


def build_mobilenetv2() -> tuple[onnx.ModelProto, Net]:
    net = Net("mobilenetv2", [("input", [1, 3, 224, 224])])
    y = net.relu6(net.bn(net.conv("input", 3, 32, 3, 2)))
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            residual = stride == 1 and cin == c
            h = y
            if t != 1:
                h = net.relu6(net.bn(net.conv(h, cin, hidden, 1, prefix="expand")))
            h = net.relu6(net.bn(net.conv(h, hidden, hidden, 3, stride, group=hidden, prefix="dw")))
            h = net.bn(net.conv(h, hidden, c, 1, prefix="project"), gamma=0.5 if residual else 1.0)
            y = net.node("Add", [h, y]) if residual else h
            cin = c
    y = net.relu6(net.bn(net.conv(y, cin, 1280, 1)))
    net.head(y, 1280, 1000)
    return net.model([("logits", [1, 1000])], "MobileNetV2 (inverted residuals, depthwise Conv, ReLU6 as Clip(0, 6)), "
                                              "input 1x3x224x224"), net


def make_divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def build_mobilenetv3() -> tuple[onnx.ModelProto, Net]:
    """MobileNetV3-small (torchvision's layout) with HardSwish spelled out and HardSigmoid SE gates."""
    net = Net("mobilenetv3", [("input", [1, 3, 224, 224])])

    def se(x, c):
        sq = make_divisible(c / 4)
        s = net.node("GlobalAveragePool", [x], name=net.name("se_pool"))
        s = net.relu(net.conv(s, c, sq, 1, bias=True, prefix="se_fc1", spread=0.0))
        s = net.conv(s, sq, c, 1, bias=True, prefix="se_fc2", spread=0.0)
        s = net.node("HardSigmoid", [s], name=net.name("se_gate"), alpha=1.0 / 6.0, beta=0.5)
        return net.node("Mul", [x, s], name=net.name("se_scale"))

    y = net.hswish(net.bn(net.conv("input", 3, 16, 3, 2)))
    cin = 16
    # kernel, expanded channels, output channels, squeeze-excite, activation, stride
    for k, exp, c, use_se, nl, s in [
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
    ]:
        act = net.relu if nl == "RE" else net.hswish
        residual = s == 1 and cin == c
        h = y
        if exp != cin:
            h = act(net.bn(net.conv(h, cin, exp, 1, prefix="expand")))
        h = act(net.bn(net.conv(h, exp, exp, k, s, group=exp, prefix="dw")))
        if use_se:
            h = se(h, exp)
        h = net.bn(net.conv(h, exp, c, 1, prefix="project"), gamma=0.5 if residual else 1.0)
        y = net.node("Add", [h, y]) if residual else h
        cin = c
    y = net.hswish(net.bn(net.conv(y, cin, 576, 1)))
    y = net.node("Flatten", [net.node("GlobalAveragePool", [y])], axis=1)
    y = net.hswish(net.gemm(y, 576, 1024))
    net.gemm(y, 1024, 1000, output="logits")
    return net.model([("logits", [1, 1000])], "MobileNetV3-small: HardSwish as x*Clip(x+3,0,6)/6, squeeze-excite "
                                              "(GlobalAveragePool, 1x1 Conv, Relu, 1x1 Conv, HardSigmoid, Mul), "
                                              "input 1x3x224x224"), net


def build_transformer(layers: int = 4, seq: int = 128, d: int = 256, heads: int = 4, ffn: int = 1024) -> tuple[onnx.ModelProto, Net]:
    """BERT-style post-LN encoder as PyTorch exports it (MatMul + Add linears, erf GELU)."""
    hd = d // heads
    net = Net("transformer", [("input", [1, seq, d])])

    def linear(x, cin, cout, prefix):
        w = net.init(f"{prefix}.weight", (net.rng.standard_normal((cin, cout)) * math.sqrt(2.0 / (cin + cout))).astype(np.float32))
        h = net.node("MatMul", [x, w], name=f"{prefix}/MatMul")
        return net.node("Add", [h, net.init(f"{prefix}.bias", net.small((cout,), 0.02))], name=f"{prefix}/Add")

    def layer_norm(x, prefix, output=None):
        g = net.init(f"{prefix}.weight", (1.0 + 0.1 * net.rng.standard_normal(d)).astype(np.float32))
        b = net.init(f"{prefix}.bias", net.small((d,), 0.05))
        return net.node("LayerNormalization", [x, g, b], [output] if output else None, name=prefix, axis=-1, epsilon=1e-5)

    split = net.const("attn.split_heads", [0, 0, heads, hd], np.int64)
    merge = net.const("attn.merge_heads", [0, 0, d], np.int64)
    x = "input"
    for i in range(layers):
        p = f"layer{i}"
        q, k, v = (net.node("Reshape", [linear(x, d, d, f"{p}.attn.{t}"), split], name=f"{p}.attn.{t}/split") for t in "qkv")
        q = net.node("Transpose", [q], name=f"{p}.attn.q/perm", perm=[0, 2, 1, 3])
        k = net.node("Transpose", [k], name=f"{p}.attn.k/perm", perm=[0, 2, 3, 1])
        v = net.node("Transpose", [v], name=f"{p}.attn.v/perm", perm=[0, 2, 1, 3])
        s = net.node("MatMul", [q, k], name=f"{p}.attn/qk")
        s = net.node("Div", [s, net.const("attn.sqrt_head_dim", math.sqrt(hd))], name=f"{p}.attn/scale")
        s = net.node("Softmax", [s], name=f"{p}.attn/softmax", axis=-1)
        ctx = net.node("MatMul", [s, v], name=f"{p}.attn/pv")
        ctx = net.node("Transpose", [ctx], name=f"{p}.attn.ctx/perm", perm=[0, 2, 1, 3])
        ctx = net.node("Reshape", [ctx, merge], name=f"{p}.attn.ctx/merge")
        o = linear(ctx, d, d, f"{p}.attn.out")
        x = layer_norm(net.node("Add", [o, x], name=f"{p}.attn/residual"), f"{p}.ln1")
        h = linear(x, d, ffn, f"{p}.ffn.fc1")
        e = net.node("Erf", [net.node("Div", [h, net.const("gelu.sqrt2", math.sqrt(2.0))], name=f"{p}.gelu/div")], name=f"{p}.gelu/erf")
        e = net.node("Add", [e, net.const("gelu.one", 1.0)], name=f"{p}.gelu/add")
        h = net.node("Mul", [net.node("Mul", [h, e], name=f"{p}.gelu/mul"), net.const("gelu.half", 0.5)], name=f"{p}.gelu/half")
        h = linear(h, ffn, d, f"{p}.ffn.fc2")
        x = layer_norm(net.node("Add", [h, x], name=f"{p}.ffn/residual"), f"{p}.ln2", "output" if i == layers - 1 else None)
    return net.model([("output", [1, seq, d])], f"{layers}-layer BERT-style encoder (post-LN): {heads}-head MatMul "
                                                f"attention with Softmax, LayerNormalization, erf GELU, residual Add; "
                                                f"input 1x{seq}x{d}, FFN {ffn}"), net


def build_small_cnn() -> tuple[onnx.ModelProto, Net]:
    net = Net("small_cnn", [("input", [1, 3, 32, 32])])
    y = net.relu(net.bn(net.conv("input", 3, 16, 3)))
    y = net.relu(net.bn(net.conv(y, 16, 32, 3, 2)))
    h = net.relu(net.bn(net.conv(y, 32, 32, 3)))
    h = net.bn(net.conv(h, 32, 32, 3), gamma=0.5)
    y = net.relu(net.node("Add", [h, y]))
    y = net.node("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
    net.head(y, 32, 10)
    return net.model([("logits", [1, 10])], "4 Conv+BatchNormalization+Relu, a residual Add, AveragePool, "
                                            "GlobalAveragePool, Gemm 10; input 1x3x32x32"), net


def build_vgg_small() -> tuple[onnx.ModelProto, Net]:
    net = Net("vgg_small", [("input", [1, 3, 32, 32])])
    y, cin = "input", 3
    for v in [32, 32, "M", 64, 64, "M", 128, 128, "M"]:
        if v == "M":
            y = net.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
        else:
            y, cin = net.relu(net.bn(net.conv(y, cin, v, 3))), v
    y = net.node("Flatten", [y], axis=1)
    y = net.relu(net.gemm(y, cin * 4 * 4, 256))
    net.gemm(y, 256, 10, output="logits")
    return net.model([("logits", [1, 10])], "VGG-style plain stack: 6 Conv+BatchNormalization+Relu, MaxPool, "
                                            "Flatten, Gemm 256, Relu, Gemm 10; input 1x3x32x32"), net


@dataclass
class Spec:
    build: Callable[[], tuple[onnx.ModelProto, Net]]
    qop: bool = False  # also onnxruntime's QOperator format
    trt: bool = True  # also the TensorRT-style QAT placement


MODELS: dict[str, Spec] = {
    "resnet18": Spec(lambda: build_resnet("resnet18", 18, 224), qop=True),
    "resnet18_small": Spec(lambda: build_resnet("resnet18_small", 18, 64), qop=True),
    "resnet50": Spec(lambda: build_resnet("resnet50", 50, 224)),
    "mobilenetv2": Spec(build_mobilenetv2),
    "mobilenetv3": Spec(build_mobilenetv3),
    "transformer": Spec(build_transformer),
    "small_cnn": Spec(build_small_cnn),
    "vgg_small": Spec(build_vgg_small),
}
SMALL = ["resnet18_small", "mobilenetv3", "transformer", "small_cnn"]

QDQ_VARIANTS = [(a, w) for a in ("u8", "i8") for w in ("pt", "pc")]
QOP_VARIANTS = [("u8", "pc"), ("i8", "pc")]
QTYPE = {"u8": "QUInt8", "i8": "QInt8"}


@dataclass
class Variant:
    file: str
    kind: str  # float | prep | qdq | prep.qdq | qop | trt
    source: str  # the model it is made from ("" for the float model)
    recipe: str
    act: str = ""
    weights: str = ""


def variants(name: str) -> list[Variant]:
    spec = MODELS[name]
    out = [
        Variant(f"{name}.float.onnx", "float", "", "float model (onnx.helper, seeded weights, BatchNormalization "
                                               "statistics from standard-normal inputs)"),
        Variant(f"{name}.prep.float.onnx", "prep", f"{name}.float.onnx", f"onnxruntime.quantization.shape_inference.quant_pre_process of "
                                                   f"{name}.float.onnx (ORT basic optimizations: BatchNormalization "
                                                   "folded into Conv; symbolic shape inference skipped)"),
    ]
    for src, prefix in (("float", ""), ("prep.float", "prep.")):
        for a, w in QDQ_VARIANTS:
            out.append(Variant(f"{name}.{prefix}qdq.{a}.{w}.onnx", f"{prefix}qdq", f"{name}.{src}.onnx",
                               f"onnxruntime.quantization.quantize_static(QuantFormat.QDQ, activation_type={QTYPE[a]}, "
                               f"weight_type=QInt8, per_channel={w == 'pc'}, MinMax on calib/) of {name}.{src}.onnx", a, w))
    if spec.qop:
        for a, w in QOP_VARIANTS:
            out.append(Variant(f"{name}.qop.{a}.{w}.onnx", "qop", f"{name}.float.onnx",
                               f"onnxruntime.quantization.quantize_static(QuantFormat.QOperator, activation_type={QTYPE[a]}, "
                               f"weight_type=QInt8, per_channel={w == 'pc'}, MinMax on calib/) of {name}.float.onnx", a, w))
    if spec.trt:
        out.append(Variant(f"{name}.trt.onnx", "trt", f"{name}.float.onnx",
                           f"TensorRT-style QAT placement in {name}.float.onnx: QuantizeLinear->DequantizeLinear on the "
                           "inputs of Conv/Gemm/MatMul only; activations int8 symmetric per tensor (scale = max|x| "
                           "on calib/ / 127), float weights int8 symmetric per output channel (scale = max|w| / 127); "
                           "BatchNormalization, Relu, Add, pooling and the rest float, no Q on outputs"))
    return out


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def graph_inputs(m: onnx.ModelProto) -> list[tuple[str, list[int]]]:
    inits = {t.name for t in m.graph.initializer}
    return [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in m.graph.input if i.name not in inits]


def samples(m: onnx.ModelProto, name: str, kind: str, count: int) -> list[dict[str, np.ndarray]]:
    """`count` seeded standard-normal samples (batch 1, the model's input shapes)."""
    rng = np.random.default_rng(seed(f"{name}/{kind}"))
    return [{n: rng.standard_normal(s).astype(np.float32) for n, s in graph_inputs(m)} for _ in range(count)]


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez's layout (one NAME.npy per array, stored uncompressed) with fixed zip timestamps,
    so the bytes depend on the arrays only."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for k in sorted(arrays):
            b = io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arrays[k]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, b.getvalue())
    write_bytes(path, buf.getvalue())


def write_bytes(path: Path, data: bytes) -> None:
    """Written to a temporary name, then renamed: no half-written file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_model(m: onnx.ModelProto, path: Path) -> None:
    write_bytes(path, m.SerializeToString())


# --------------------------------------------------------------------------------------
# onnxruntime quantization
# --------------------------------------------------------------------------------------


class Reader:
    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def calibration_cache(src: Path, calib, tmp: Path) -> Path:
    """MinMax ranges of every tensor on `calib`, rounded to SIG_DIGITS, as onnxruntime's cache."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    raw = tmp / f"{src.stem}.calib.raw.json"
    quantize_static(str(src), str(tmp / "throwaway.onnx"), Reader(calib), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibration_cache_path=str(raw))
    rounded = tmp / f"{src.stem}.calib.json"
    rounded.write_text(json.dumps(_round_cache(json.loads(raw.read_text())), sort_keys=True))
    return rounded


def ort_quantize(src: Path, cache: Path, dst: Path, fmt: str, act: str, weights: str, doc: str, tmp: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    t = tmp / dst.name
    quantize_static(str(src), str(t), None, quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=getattr(QuantType, QTYPE[act]), weight_type=QuantType.QInt8,
                    per_channel=weights == "pc", calibration_cache_path=str(cache))
    save_model(finalize(onnx.load_model(str(t)), doc), dst)


def pre_process(src: Path, dst: Path, doc: str, tmp: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    t = tmp / dst.name
    # The models' shapes are static, so onnx's shape inference suffices; the symbolic one needs sympy.
    quant_pre_process(str(src), str(t), skip_symbolic_shape=True)
    save_model(finalize(onnx.load_model(str(t)), doc), dst)


# --------------------------------------------------------------------------------------
# TensorRT-style QAT placement
# --------------------------------------------------------------------------------------

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


def run_with_outputs(m: onnx.ModelProto, names: list[str], feeds) -> list[list[np.ndarray]]:
    """The values of `names` (intermediate tensors) for each feed, onnxruntime without graph optimizations."""
    import onnxruntime as ort

    m = copy.deepcopy(m)
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [sess.run(names, f) for f in feeds]


def activation_amax(m: onnx.ModelProto, calib) -> dict[str, float]:
    """max |x| over `calib` of every activation input of a Conv/Gemm/MatMul (pytorch-quantization's
    max calibrator), rounded to SIG_DIGITS."""
    inits = {t.name for t in m.graph.initializer}
    gin = {i.name for i in m.graph.input}
    wanted = list(dict.fromkeys(i for n in m.graph.node if n.op_type in QUANTIZED_OPS for i in n.input[:2] if i not in inits))
    inner = [n for n in wanted if n not in gin]
    amax = {n: 0.0 for n in wanted}
    for feed, vals in zip(calib, run_with_outputs(m, inner, calib) if inner else [[] for _ in calib]):
        for n in wanted:
            v = feed[n] if n in gin else vals[inner.index(n)]
            amax[n] = max(amax[n], float(np.abs(v).max()))
    for n, a in amax.items():
        if not a > 0.0 or not math.isfinite(a):
            raise RuntimeError(f"{m.graph.name}: tensor {n} has amax {a} on the calibration samples")
    return {n: float(round_sig(np.array(a))) for n, a in amax.items()}


def trt_style(m: onnx.ModelProto, amax: dict[str, float], doc: str) -> onnx.ModelProto:
    """Q->DQ pairs in front of every Conv/Gemm/MatMul input (each consumer its own quantizer, as
    pytorch-quantization's QuantConv2d/QuantLinear modules export), nothing else."""
    m = copy.deepcopy(m)
    g = m.graph
    weights = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes: list[onnx.NodeProto] = []
    new_inits: list[TensorProto] = []

    def qdq(x: str, q: str, scale: np.ndarray, axis: int | None) -> str:
        s, z = f"{q}.scale", f"{q}.zero_point"
        new_inits.append(numpy_helper.from_array(scale.astype(np.float32), s))
        new_inits.append(numpy_helper.from_array(np.zeros(scale.shape, np.int8), z))
        kw = {} if axis is None else {"axis": axis}
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{q}/QuantizeLinear_out"], name=f"{q}/QuantizeLinear", **kw))
        nodes.append(helper.make_node("DequantizeLinear", [f"{q}/QuantizeLinear_out", s, z], [f"{q}/DequantizeLinear_out"],
                                      name=f"{q}/DequantizeLinear", **kw))
        return f"{q}/DequantizeLinear_out"

    for n in g.node:
        if n.op_type in QUANTIZED_OPS:
            for idx in (0, 1):
                x = n.input[idx]
                if x in weights:
                    w = weights[x]
                    if n.op_type == "Conv":
                        axis = 0
                    elif n.op_type == "Gemm":
                        axis = 0 if helper.get_node_attr_value(n, "transB") else 1
                    else:
                        axis = w.ndim - 1  # MatMul B is [K, N]: output channels along N
                    per = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis))
                    if not (per > 0).all():
                        raise RuntimeError(f"{g.name}: weight {x} of node {n.name} has an all-zero output channel")
                    n.input[idx] = qdq(x, f"{n.name}/weight_quantizer", per / np.float32(127.0), axis)
                else:
                    q = f"{n.name}/input_quantizer" if idx == 0 else f"{n.name}/input_quantizer_1"
                    n.input[idx] = qdq(x, q, np.array(amax[x] / 127.0, np.float32), None)
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    return finalize(m, doc)


# --------------------------------------------------------------------------------------
# validation and report
# --------------------------------------------------------------------------------------


def check(path: Path) -> None:
    import ms_schemas

    try:
        ms_schemas.check_model(str(path))
    except Exception as e:  # noqa: BLE001 - any checker failure is reported with the file
        raise RuntimeError(f"{path.name}: onnx.checker full check failed: {str(e).splitlines()[0]}") from e


def session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(path: Path, feeds) -> list[list[np.ndarray]]:
    sess = session(path)
    outs = [sess.run(None, f) for f in feeds]
    for o in outs:
        for v in o:
            if not np.isfinite(v).all():
                raise RuntimeError(f"{path.name}: onnxruntime output has NaN or Inf")
    return outs


def sqnr_db(ref: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    sig = sum(float(np.sum(r.astype(np.float64) ** 2)) for rs in ref for r in rs)
    err = sum(float(np.sum((r.astype(np.float64) - g) ** 2)) for rs, gs in zip(ref, got) for r, g in zip(rs, gs))
    return math.inf if err == 0.0 else 10.0 * math.log10(sig / err)


def unwrapped_ops(m: onnx.ModelProto) -> collections.Counter:
    """Ops (other than Q/DQ) of a QDQ graph that take a float activation not coming from a
    DequantizeLinear, or give one not going only to QuantizeLinear: where the graph stays float."""
    inits = {t.name for t in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in m.graph.node:
        for i in n.input:
            consumers[i].append(n)
    gout = {o.name for o in m.graph.output}
    out = collections.Counter()
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        ins = [i for i in n.input if i and i not in inits and (i not in producer or producer[i].op_type != "Constant")]
        ok_in = all(i in producer and producer[i].op_type == "DequantizeLinear" for i in ins)
        ok_out = all(o not in gout and consumers[o] and all(c.op_type == "QuantizeLinear" for c in consumers[o])
                     for o in n.output)
        if not (ok_in and ok_out):
            out[n.op_type] += 1
    return out


def float_typed_ops(m: onnx.ModelProto) -> collections.Counter:
    """Ops (other than Q/DQ) with a float activation input: what runs in float in an integer graph."""
    import ms_schemas

    ms_schemas.register()
    g = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph
    inits = {t.name for t in g.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    return collections.Counter(
        n.op_type for n in g.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(i and i not in inits and types.get(i) == TensorProto.FLOAT for i in n.input))


def histogram(m: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def fmt_ops(c) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------


def generate(name: str, out: Path) -> tuple[int, list[tuple[str, str, float]]]:
    """Writes model `name`'s files; returns (bytes written, [(file, kind, SQNR dB)])."""
    spec = MODELS[name]
    vs = {v.kind + (f".{v.act}.{v.weights}" if v.act else ""): v for v in variants(name)}
    t0 = time.perf_counter()
    fm, net = spec.build()
    onnx.checker.check_model(fm, full_check=True)
    fpath = out / vs["float"].file
    save_model(fm, fpath)
    std_min = min(net.ranges.items(), key=lambda kv: kv[1][0])
    amax_max = max(net.ranges.items(), key=lambda kv: kv[1][1])
    print(f"  built {fpath.name} in {time.perf_counter() - t0:.1f} s: {len(fm.graph.node)} nodes, "
          f"{sum(int(np.prod(t.dims)) for t in fm.graph.initializer) / 1e6:.2f} M parameters; activations on the "
          f"statistics batch: smallest std {std_min[1][0]:.3g} ({std_min[0]}), largest |x| {amax_max[1][1]:.3g} ({amax_max[0]})")

    calib = samples(fm, name, "calib", CALIB_SAMPLES)
    heldout = samples(fm, name, "heldout", HELDOUT_SAMPLES)
    for kind, data in (("calib", calib), ("heldout", heldout)):
        d = out / name / kind
        if d.exists():
            shutil.rmtree(d)
        for i, feed in enumerate(data):
            write_npz(d / f"{i:03d}.npz", feed)

    with tempfile.TemporaryDirectory(prefix="qdqc-models-") as tmpd:
        tmp = Path(tmpd)
        ppath = out / vs["prep"].file
        pre_process(fpath, ppath, vs["prep"].recipe, tmp)
        caches = {"float": calibration_cache(fpath, calib, tmp), "prep": calibration_cache(ppath, calib, tmp)}
        for v in vs.values():
            if v.kind in ("qdq", "prep.qdq", "qop"):
                src, cache = (ppath, caches["prep"]) if v.kind == "prep.qdq" else (fpath, caches["float"])
                ort_quantize(src, cache, out / v.file, "qop" if v.kind == "qop" else "qdq", v.act, v.weights, v.recipe, tmp)
    if "trt" in vs:
        save_model(trt_style(fm, activation_amax(fm, calib), vs["trt"].recipe), out / vs["trt"].file)

    # validation: full check, onnxruntime runs without NaN, SQNR against the float model
    feeds = heldout[:SQNR_SAMPLES]
    ref = run(fpath, feeds)
    files, results, total = [], [], 0
    for v in vs.values():
        p = out / v.file
        check(p)
        got = ref if v.kind == "float" else run(p, feeds)
        m = onnx.load_model(str(p))
        sq = math.nan if v.kind == "float" else sqnr_db(ref, got)
        size = p.stat().st_size
        total += size
        if v.kind in ("qdq", "prep.qdq"):
            isl = f"; ops not between DQ and Q: {fmt_ops(unwrapped_ops(m))}"
        elif v.kind == "qop":
            isl = f"; float ops: {fmt_ops(float_typed_ops(m))}"
        else:
            isl = ""
        print(f"  {v.file:34s} {mb(size):>9s} {len(m.graph.node):5d} nodes"
              + ("" if v.kind == "float" else f"  SQNR {sq:6.1f} dB") + isl)
        results.append((v.file, v.kind, sq))
        files.append({"file": v.file, "kind": v.kind, "source": v.source, "recipe": v.recipe, "float_reference": fpath.name,
                      "bytes": size, "sha256": sha256(p), "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
                      "ir_version": m.ir_version, "ops": histogram(m)})
    manifest = {
        "model": name,
        "description": fm.doc_string,
        "inputs": [{"name": n, "shape": s, "dtype": "float32", "distribution": "standard normal N(0, 1)"} for n, s in graph_inputs(fm)],
        "outputs": [{"name": o.name, "shape": [d.dim_value for d in o.type.tensor_type.shape.dim]} for o in fm.graph.output],
        "data": {kind: {"dir": f"{name}/{kind}", "samples": n, "seed": seed(f"{name}/{kind}"),
                        "format": "one NNN.npz per sample, keyed by input name, batch 1"}
                 for kind, n in (("calib", CALIB_SAMPLES), ("heldout", HELDOUT_SAMPLES))},
        "files": files,
    }
    write_bytes(out / name / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    data_bytes = sum(f.stat().st_size for f in (out / name).rglob("*") if f.is_file())
    return total + data_bytes, results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "models", help="output folder (default target/models)")
    ap.add_argument("--only", help=f"comma-separated models (of: {', '.join(MODELS)})")
    ap.add_argument("--small", action="store_true", help=f"the CI subset: {', '.join(SMALL)}")
    ap.add_argument("--list", action="store_true", help="print the files it would write and exit")
    args = ap.parse_args(argv)

    names = SMALL if args.small else list(MODELS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in wanted if n not in names]
        if bad or not wanted:
            where = "the --small subset" if args.small else "the models"
            print(f"gen_models.py: --only {args.only}: {', '.join(bad) or 'no model given'} not among {where} "
                  f"({', '.join(names)})", file=sys.stderr)
            return 2
        names = [n for n in names if n in wanted]

    if args.list:
        for n in names:
            for v in variants(n):
                print(args.out / v.file)
            for kind, count in (("calib", CALIB_SAMPLES), ("heldout", HELDOUT_SAMPLES)):
                for i in range(count):
                    print(args.out / n / kind / f"{i:03d}.npz")
            print(args.out / n / "manifest.json")
        return 0

    logging.getLogger().setLevel(logging.ERROR)
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    total, table = 0, []
    for n in names:
        print(f"{n}:", flush=True)
        t = time.perf_counter()
        try:
            size, res = generate(n, args.out)
        except Exception as e:  # noqa: BLE001 - one line naming the model, then exit 1
            print(f"gen_models.py: {n}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        total += size
        table += [(n, *r) for r in res]
        print(f"{n}: {mb(size)} in {time.perf_counter() - t:.1f} s", flush=True)
    print(f"\n{len(names)} models, {sum(1 for _ in table)} files + data, {mb(total)} in "
          f"{time.perf_counter() - t_all:.1f} s (onnxruntime {ort.__version__}, {os.cpu_count()} CPUs) -> {args.out}")
    print("\nSQNR against <model>.float.onnx on "
          f"{SQNR_SAMPLES} held-out samples (dB):")
    suffix = lambda f: f.split(".", 1)[1].removesuffix(".onnx")  # noqa: E731
    present = {suffix(f) for _, f, k, _ in table if k != "float"}
    cols = [c for c in dict.fromkeys(suffix(v.file) for v in variants("resnet18")) if c in present]
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "--:|" * len(cols))
    for n in names:
        row = {suffix(f): s for m, f, _, s in table if m == n}
        print(f"| {n} | " + " | ".join(f"{row[c]:.1f}" if c in row else "" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
