#!/usr/bin/env python3
"""Build a large QDQ-shaped ONNX model for load/save benchmarks, streaming it to disk.

    gen_big_model.py --out PATH [--mb 500] [--external] [--channels 1024] [--op mixed|conv|matmul]
                     [--seed 0] [--selftest]

The model is a chain of ORT-style QDQ blocks (activations uint8, weights int8 per-channel,
bias int32 through DequantizeLinear):

    x -> QuantizeLinear -> DequantizeLinear -> Conv 1x1 / MatMul (+Add bias) -> ... -> Q -> DQ -> output
                 W int8 -> DequantizeLinear(axis) -^
              bias int32 -> DequantizeLinear ------^

Each block has a CxC int8 weight (raw_data), so the file holds about mb MiB of weights
(number of blocks = round(mb * 2**20 / C**2)). With --op mixed (default), Conv and MatMul blocks
alternate with a Reshape between them.

Memory: the model is never materialized. Everything except the weight bytes is a small protobuf;
weights are generated chunk-wise from a seeded numpy Generator and written straight to the file
(inline: hand-encoded TensorProto.raw_data fields inside the GraphProto; --external: into
PATH.data, 4096-byte aligned, referenced by location/offset/length). The encoding is canonical
(fields in field-number order), i.e. byte-identical to what onnx.save would write for the same
model; --selftest checks that on a small model. Peak RSS is a few tens of MB whatever --mb is.

Without --external the model must stay below protobuf's 2 GiB limit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER_NAME = "qdqc-gen_big_model"
PRODUCER_VERSION = "1"
OPSET = 17
CHUNK = 16 << 20  # bytes of weight data generated per step
EXTERNAL_THRESHOLD = 1024  # tensors with >= this many bytes go external (onnx's default)
ALIGN = 4096  # external data offsets of big tensors are page aligned


# ------------------------------------------------------------------------------------
# protobuf wire helpers
# ------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_tag(field: int) -> bytes:
    return _varint((field << 3) | 2)


def _split(msg, field_name: str) -> tuple[bytes, bytes]:
    """Serialize msg without field_name, split into (fields numbered below it, fields above it)."""
    number = msg.DESCRIPTOR.fields_by_name[field_name].number
    pre, post = type(msg)(), type(msg)()
    pre.CopyFrom(msg)
    post.CopyFrom(msg)
    for fd, _ in msg.ListFields():
        if fd.number >= number:
            pre.ClearField(fd.name)
        if fd.number <= number:
            post.ClearField(fd.name)
    return pre.SerializeToString(), post.SerializeToString()


# ------------------------------------------------------------------------------------
# model description
# ------------------------------------------------------------------------------------


class BigWeight:
    """A weight whose bytes are produced on demand (never all in memory)."""

    def __init__(self, name: str, dims: list[int], seed: int):
        self.name, self.dims, self.seed = name, dims, seed
        self.nbytes = int(np.prod(dims))  # int8

    def header(self) -> TensorProto:
        t = TensorProto()
        t.name = self.name
        t.data_type = TensorProto.INT8
        t.dims.extend(self.dims)
        return t

    def chunks(self):
        rng = np.random.default_rng(self.seed)
        left = self.nbytes
        while left:
            n = min(left, CHUNK)
            a = np.frombuffer(rng.bytes(n), dtype=np.int8).copy()
            a[a == -128] = -127  # symmetric int8 range like real quantizers produce
            yield a.data
            left -= n


def build(mb: float, channels: int, op: str, seed: int):
    """Return (ModelProto with big weights as header-only tensors, {name: BigWeight})."""
    C = channels
    n_blocks = max(1, round(mb * (1 << 20) / (C * C)))
    rng = np.random.default_rng(seed)
    nodes, inits, big = [], [], {}

    def kind(i):
        return {"conv": "conv", "matmul": "matmul"}.get(op, "conv" if i % 2 == 0 else "matmul")

    def small(name, arr):
        inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    four_d = kind(0) == "conv"
    x = "input"
    in_shape = ["N", C, 1, 1] if four_d else ["N", C]
    shapes = {}

    def shape_init(rank):  # created on first use so that no initializer is unused
        if rank not in shapes:
            shapes[rank] = small(f"shape_{rank}d", np.array([-1, C] + [1] * (rank - 2), np.int64))
        return shapes[rank]

    for i in range(n_blocks):
        k = kind(i)
        p = f"blk{i}"
        if k == "conv" and not four_d:
            nodes.append(helper.make_node("Reshape", [x, shape_init(4)], [f"{p}_in4d"], name=f"{p}_reshape"))
            x, four_d = f"{p}_in4d", True
        elif k == "matmul" and four_d:
            nodes.append(helper.make_node("Reshape", [x, shape_init(2)], [f"{p}_in2d"], name=f"{p}_reshape"))
            x, four_d = f"{p}_in2d", False
        a_scale_v = np.float32(rng.uniform(0.01, 0.1))
        a_scale = small(f"{p}.act_scale", a_scale_v)
        a_zp = small(f"{p}.act_zero_point", np.uint8(128))
        nodes.append(helper.make_node("QuantizeLinear", [x, a_scale, a_zp], [f"{p}_xq"], name=f"{p}_q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{p}_xq", a_scale, a_zp], [f"{p}_xdq"], name=f"{p}_dq"))
        w_scale_v = rng.uniform(0.001, 0.01, C).astype(np.float32)
        wname = f"{p}.weight_quantized"
        big[wname] = BigWeight(wname, [C, C, 1, 1] if k == "conv" else [C, C], seed * 100003 + i + 1)
        inits.append(big[wname].header())
        w_scale = small(f"{p}.weight_scale", w_scale_v)
        w_zp = small(f"{p}.weight_zero_point", np.zeros(C, np.int8))
        axis = 0 if k == "conv" else 1
        nodes.append(helper.make_node("DequantizeLinear", [wname, w_scale, w_zp], [f"{p}_wdq"],
                                      name=f"{p}_w_dq", axis=axis))
        b_q = small(f"{p}.bias_quantized", rng.integers(-1000, 1000, C, dtype=np.int32))
        b_scale = small(f"{p}.bias_scale", (w_scale_v * a_scale_v).astype(np.float32))
        b_zp = small(f"{p}.bias_zero_point", np.zeros(C, np.int32))
        nodes.append(helper.make_node("DequantizeLinear", [b_q, b_scale, b_zp], [f"{p}_bdq"],
                                      name=f"{p}_b_dq", axis=0))
        if k == "conv":
            nodes.append(helper.make_node("Conv", [f"{p}_xdq", f"{p}_wdq", f"{p}_bdq"], [f"{p}_y"],
                                          name=f"{p}_conv", kernel_shape=[1, 1]))
        else:
            nodes.append(helper.make_node("MatMul", [f"{p}_xdq", f"{p}_wdq"], [f"{p}_mm"], name=f"{p}_matmul"))
            nodes.append(helper.make_node("Add", [f"{p}_mm", f"{p}_bdq"], [f"{p}_y"], name=f"{p}_bias"))
        x = f"{p}_y"
    o_scale = small("out.scale", np.float32(0.05))
    o_zp = small("out.zero_point", np.uint8(128))
    nodes.append(helper.make_node("QuantizeLinear", [x, o_scale, o_zp], ["out_q"], name="out_q"))
    nodes.append(helper.make_node("DequantizeLinear", ["out_q", o_scale, o_zp], ["output"], name="out_dq"))
    out_shape = ["N", C, 1, 1] if four_d else ["N", C]

    graph = helper.make_graph(
        nodes, "big_qdq_chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets,
                              doc_string=f"{n_blocks} QDQ blocks, C={C}, op={op}, seed={seed}")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    model.producer_name, model.producer_version = PRODUCER_NAME, PRODUCER_VERSION
    return model, big


# ------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------


def write_inline(model: onnx.ModelProto, big: dict[str, BigWeight], path: Path) -> None:
    g = model.graph
    g_pre, g_post = _split(g, "initializer")
    parts = []  # (prefix bytes, BigWeight or None)
    graph_len = len(g_pre) + len(g_post)
    for t in g.initializer:
        if t.name in big:
            w = big[t.name]
            hdr = t.SerializeToString() + _len_tag(9) + _varint(w.nbytes)  # 9 = TensorProto.raw_data
            tlen = len(hdr) + w.nbytes
            pre = _len_tag(5) + _varint(tlen) + hdr  # 5 = GraphProto.initializer
            parts.append((pre, w))
            graph_len += len(pre) + w.nbytes
        else:
            b = t.SerializeToString()
            pre = _len_tag(5) + _varint(len(b)) + b
            parts.append((pre, None))
            graph_len += len(pre)
    if graph_len >= (1 << 31) - (1 << 20):
        raise SystemExit("error: model would exceed protobuf's 2 GiB limit; use --external")
    m_pre, m_post = _split(model, "graph")
    with open(path, "wb") as f:
        f.write(m_pre)
        f.write(_len_tag(7) + _varint(graph_len))  # 7 = ModelProto.graph
        f.write(g_pre)
        for pre, w in parts:
            f.write(pre)
            if w is not None:
                for c in w.chunks():
                    f.write(c)
        f.write(g_post)
        f.write(m_post)


def write_external(model: onnx.ModelProto, big: dict[str, BigWeight], path: Path) -> Path:
    data_path = path.with_name(path.name + ".data")
    offset = 0
    with open(data_path, "wb") as f:
        for t in model.graph.initializer:
            if t.name in big:
                w = big[t.name]
                data = None
            elif len(t.raw_data) >= EXTERNAL_THRESHOLD:
                data = bytes(t.raw_data)
                t.ClearField("raw_data")
            else:
                continue
            pad = (-offset) % ALIGN
            f.write(b"\0" * pad)
            offset += pad
            n = 0
            if data is None:
                for c in w.chunks():
                    f.write(c)
                n = w.nbytes
            else:
                f.write(data)
                n = len(data)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", data_path.name), ("offset", str(offset)), ("length", str(n))):
                e = t.external_data.add()
                e.key, e.value = k, v
            offset += n
    path.write_bytes(model.SerializeToString())
    return data_path


def selftest() -> int:
    """Compare the streaming writer with onnx.save on a small model (bytes and ORT run)."""
    import tempfile

    ok = True
    with tempfile.TemporaryDirectory() as d:
        for op in ("mixed", "conv", "matmul"):
            model, big = build(mb=0.25, channels=64, op=op, seed=7)
            p = Path(d) / f"{op}.onnx"
            write_inline(model, big, p)
            ref = onnx.ModelProto()
            ref.CopyFrom(model)
            for t in ref.graph.initializer:
                if t.name in big:
                    t.raw_data = b"".join(bytes(c) for c in big[t.name].chunks())
            onnx.checker.check_model(ref, full_check=True)
            same = p.read_bytes() == ref.SerializeToString()
            model_e, big_e = build(mb=0.25, channels=64, op=op, seed=7)
            pe = Path(d) / f"{op}.ext.onnx"
            write_external(model_e, big_e, pe)
            loaded = onnx.load_model(str(pe))
            for t in loaded.graph.initializer:
                t.ClearField("data_location")  # onnx sets it explicitly to DEFAULT when inlining
            same_ext = loaded.graph.SerializeToString() == ref.graph.SerializeToString()
            import onnxruntime as ort

            outs = []
            for q in (p, pe):
                so = ort.SessionOptions()
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                s = ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
                shp = [2 if isinstance(v, str) else v for v in s.get_inputs()[0].shape]
                outs.append(s.run(None, {"input": np.random.default_rng(0).standard_normal(shp).astype(np.float32)})[0])
            runs = outs[0].tobytes() == outs[1].tobytes()
            print(f"selftest {op:6s}: inline==onnx.save {same}, external==inline {same_ext}, ORT outputs equal {runs}")
            ok &= same and same_ext and runs
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output .onnx path")
    ap.add_argument("--mb", type=float, default=500.0, help="approximate weight payload in MiB (default 500)")
    ap.add_argument("--external", action="store_true", help="store tensors >= 1 KiB in OUT.data")
    ap.add_argument("--channels", type=int, default=1024, help="C: each weight is CxC int8 (default 1024)")
    ap.add_argument("--op", choices=["mixed", "conv", "matmul"], default="mixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selftest", action="store_true", help="verify the streaming writer against onnx.save")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if not args.out:
        ap.error("--out is required")
    if args.mb <= 0 or args.channels < 1:
        ap.error("--mb and --channels must be positive")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model, big = build(args.mb, args.channels, args.op, args.seed)
    if args.external:
        data = write_external(model, big, out)
        print(f"wrote {out} ({out.stat().st_size} bytes) + {data} ({data.stat().st_size} bytes), "
              f"{len(big)} blocks")
    else:
        write_inline(model, big, out)
        print(f"wrote {out} ({out.stat().st_size} bytes), {len(big)} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
