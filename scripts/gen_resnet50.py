#!/usr/bin/env python3
"""Generate a ResNet-50-size model (float, QDQ and QOperator/QLinearConv) for the interpreter benchmark.

    gen_resnet50.py --out DIR [--calib 4] [--seed 0]

Writes, into DIR:

  resnet50.float.onnx   ResNet-50 v1 (torchvision layout, BatchNormalization folded into the convs
                        as exporters do in eval mode): conv 7x7/2 + MaxPool, bottleneck stages of
                        3/4/6/3 blocks (64…2048 channels), GlobalAveragePool, Flatten, Gemm 2048→1000;
                        input "input" f32[N,3,224,224], output "logits" f32[N,1000]; opset 17;
                        25.6 M parameters (98 MB), 4.1 GMAC per image. Weights are seeded He-normal;
                        the last conv of each residual branch is scaled by 0.2 so activations stay in
                        range over 16 residual additions without BatchNormalization.
  resnet50.qdq.onnx     onnxruntime.quantization.quantize_static(QuantFormat.QDQ, activations QUInt8,
                        weights QInt8 per channel), MinMax calibration on --calib seeded
                        standard-normal images.
  resnet50.qop.onnx     the same with QuantFormat.QOperator: QLinearConv, com.microsoft QLinearAdd,
                        QLinearGlobalAveragePool, QGemm (the integer graph the compiler aims for).

Deterministic for fixed versions (scripts/requirements.txt). Takes ~1 minute (calibration).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Net:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.n = 0

    def name(self, p: str) -> str:
        self.n += 1
        return f"{p}_{self.n}"

    def init(self, name: str, a: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, gain: float = 1.0) -> str:
        n = self.name("conv")
        w = self.rng.standard_normal((cout, cin, k, k)).astype(np.float32) * np.float32(gain * np.sqrt(2.0 / (cin * k * k)))
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        y = f"{n}_out"
        self.nodes.append(helper.make_node(
            "Conv", [x, self.init(f"{n}.weight", w), self.init(f"{n}.bias", b)], [y], name=n,
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [f"{r}_out"], name=r))
            y = f"{r}_out"
        return y

    def bottleneck(self, x: str, cin: int, width: int, stride: int) -> str:
        cout = width * 4
        y = self.conv(x, cin, width, 1)
        y = self.conv(y, width, width, 3, stride)
        y = self.conv(y, width, cout, 1, relu=False, gain=0.2)
        short = self.conv(x, cin, cout, 1, stride, relu=False) if (stride != 1 or cin != cout) else x
        a, r = self.name("add"), self.name("relu")
        self.nodes.append(helper.make_node("Add", [y, short], [f"{a}_out"], name=a))
        self.nodes.append(helper.make_node("Relu", [f"{a}_out"], [f"{r}_out"], name=r))
        return f"{r}_out"


def build_float(seed: int) -> onnx.ModelProto:
    net = Net(seed)
    y = net.conv("input", 3, 64, 7, 2)
    net.nodes.append(helper.make_node("MaxPool", [y], ["pool_out"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    y, cin = "pool_out", 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for b in range(blocks):
            y = net.bottleneck(y, cin, width, 2 if (b == 0 and stage > 0) else 1)
            cin = width * 4
    net.nodes.append(helper.make_node("GlobalAveragePool", [y], ["gap_out"], name="gap"))
    net.nodes.append(helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten", axis=1))
    fw = (net.rng.standard_normal((1000, 2048)) * np.sqrt(1.0 / 2048)).astype(np.float32)
    fb = np.zeros(1000, np.float32)
    net.nodes.append(helper.make_node("Gemm", ["flat_out", net.init("fc.weight", fw), net.init("fc.bias", fb)], ["logits"], name="fc", transB=1))
    g = helper.make_graph(
        net.nodes, "resnet50",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        net.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qdqc-gen_resnet50")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def quantize(float_path: Path, out: Path, fmt: str, calib: int, seed: int) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed + 1)
            self.data = iter([{"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(calib)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(
        str(float_path), str(out), Reader(),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calib", type=int, default=4, help="calibration images (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    f = args.out / "resnet50.float.onnx"
    onnx.save(build_float(args.seed), str(f))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("qdq", "qop"):
            # quantize_static writes helper files next to its output; keep them out of --out.
            t = Path(tmp) / f"resnet50.{fmt}.onnx"
            quantize(f, t, fmt, args.calib, args.seed)
            onnx.save(onnx.load(str(t)), str(args.out / t.name))
    for p in sorted(args.out.glob("resnet50.*.onnx")):
        m = onnx.load(str(p), load_external_data=False)
        ops: dict[str, int] = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        print(f"{p}: {p.stat().st_size / 1e6:.1f} MB, {len(m.graph.node)} nodes: "
              + ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
