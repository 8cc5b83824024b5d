"""onnxruntime's quantize_static → qdqc → onnxruntime: quantize a float model, compile the QDQ
model into integer ops, and print the speed-up and the accuracy against the float model.

    python python/examples/quantize_and_compile.py                  # the bundled ResNet block
    python python/examples/quantize_and_compile.py --model my.float.onnx --samples 32

The calibration data here is random (the same seeded normal values for every run); give your own
by replacing `RandomReader` with a reader over real inputs.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import qdqc

ROOT = Path(__file__).resolve().parents[2]


def input_shapes(model: onnx.ModelProto, batch: int):
    inits = {i.name for i in model.graph.initializer}
    shapes = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else batch for d in i.type.tensor_type.shape.dim]
        shapes[i.name] = dims
    return shapes


class RandomReader(CalibrationDataReader):
    """`count` seeded standard normal samples for every input of the model."""

    def __init__(self, shapes, count: int, seed: int):
        rng = np.random.default_rng(seed)
        self.samples = iter(
            [{n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()} for _ in range(count)]
        )

    def get_next(self):
        return next(self.samples, None)


def latency_ms(path: Path, feed, rounds: int) -> float:
    """Median latency of one run, onnxruntime at its default level (ORT_ENABLE_ALL), one thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "tests/fixtures/resnet_block.float.onnx", help="a float ONNX model")
    ap.add_argument("--samples", type=int, default=16, help="calibration samples")
    ap.add_argument("--rounds", type=int, default=50, help="timed runs per model")
    ap.add_argument("--out", type=Path, help="folder for the models (a temporary one by default)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        float_path, prep, qdq_path, int_path = (
            args.model,
            out / "model.prep.onnx",
            out / "model.qdq.onnx",
            out / "model.int.onnx",
        )
        # Fold BatchNormalization into the convolutions first, or the quantizer quantizes it too.
        quant_pre_process(str(float_path), str(prep), skip_symbolic_shape=True)
        shapes = input_shapes(onnx.load(str(prep)), batch=1)
        quantize_static(
            str(prep),
            str(qdq_path),
            RandomReader(shapes, args.samples, seed=0),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        print(f"quantize_static: {qdq_path.name}: {qdqc.stats(qdq_path)['float_compute']} float compute ops")

        report = qdqc.compile_file(qdq_path, int_path, verify=4)
        after = report["after"]
        print(
            f"qdqc: {int_path.name}: {after['nodes']} nodes (was {report['before']['nodes']}), "
            f"{after['float_compute']} float compute ops, verified: {report['verify']['passed']}"
        )

        feed = RandomReader(shapes, 1, seed=1).get_next()
        t_float, t_qdq, t_int = (latency_ms(p, feed, args.rounds) for p in (float_path, qdq_path, int_path))
        print(f"onnxruntime {ort.__version__}, 1 thread: float {t_float:.3f} ms, QDQ {t_qdq:.3f} ms, compiled {t_int:.3f} ms")
        print(f"speed-up of the compiled model over the QDQ model: {t_qdq / t_int:.2f}x")

        acc = qdqc.accuracy(float_path, qdq_path, int_path, samples=8, seed=100)
        for o in acc["outputs"]:
            print(
                f"output '{o['name']}' against the float model (8 held-out samples): "
                f"QDQ SQNR {o['qdq']['sqnr_db']:.2f} dB, compiled SQNR {o['compiled']['sqnr_db']:.2f} dB"
            )


if __name__ == "__main__":
    main()
