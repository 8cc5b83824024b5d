"""The qdqc Python package against the qdqc command line and onnxruntime.

The command line is found at $QDQC_BIN, else target/release/qdqc then target/debug/qdqc in the
repository (build it with `cargo build --release -p qdqc --bin qdqc`)."""

import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import qdqc

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
RESNET = FIXTURES / "resnet_block.u8.pc.onnx"
TRT = FIXTURES / "trt_style.onnx"


def cli() -> Path:
    candidates = [os.environ.get("QDQC_BIN"), ROOT / "target/release/qdqc", ROOT / "target/debug/qdqc"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise RuntimeError("no qdqc binary: build it with `cargo build --release -p qdqc --bin qdqc` or set QDQC_BIN")


def cli_compile(src: Path, dst: Path, *flags: str) -> bytes:
    subprocess.run([str(cli()), "-q", "compile", str(src), "-o", str(dst), *flags], check=True)
    return dst.read_bytes()


def wave(shape, phase):
    """The samples compiler/tests/calibrate.rs draws: a smooth wave over the elements."""
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.float32)
    return (np.sin(k * 0.37 + phase) * 1.5 + np.cos(k * 0.011 + phase * 0.5)).astype(np.float32).reshape(shape)


@pytest.mark.parametrize(
    "name,kwargs,flags",
    [
        ("resnet_block.u8.pc.onnx", {}, []),
        ("resnet_block.i8.pt.onnx", {"opt_level": 3}, ["-O3"]),
        ("mobilenet_block.u8.pc.onnx", {"target": "onnx"}, ["--target", "onnx"]),
        ("transformer_block.u8.pc.onnx", {"approx": "all"}, ["--approx", "all"]),
        ("resnet_block.u8.pt.onnx", {"passes": "+dce,-dedup-consts"}, ["--passes", "+dce,-dedup-consts"]),
        ("kitchen_sink.onnx", {"passes": "none"}, ["--passes", "none"]),
    ],
)
def test_compile_returns_the_bytes_the_command_line_writes(tmp_path, name, kwargs, flags):
    src = FIXTURES / name
    expected = cli_compile(src, tmp_path / "cli.onnx", *flags)
    for model in (onnx.load(str(src)), str(src), src.read_bytes()):
        assert qdqc.compile(model, **kwargs).SerializeToString() == expected


def test_compiled_model_runs_in_onnxruntime_close_to_the_qdq_model():
    compiled, report = qdqc.compile(str(RESNET), verify=4, return_report=True)
    assert report["schema_version"] == 1
    assert report["verify"]["passed"] is True
    assert report["after"]["float_compute"] == 0 < report["before"]["float_compute"]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(str(RESNET), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(compiled.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )[0]
    # Exact up to rounding ties: at most one step of the logits' scale apart.
    step = float(np.abs(np.diff(np.unique(want))).min())
    assert np.abs(got - want).max() <= step * 1.01, (np.abs(got - want).max(), step)


def test_compile_file_writes_atomically_and_keeps_the_input(tmp_path):
    dst = tmp_path / "out.onnx"
    report = qdqc.compile_file(RESNET, dst, verify=2)
    assert report["verify"]["passed"] is True
    assert dst.read_bytes() == cli_compile(RESNET, tmp_path / "cli.onnx")
    # A failed compile leaves nothing behind.
    bad = tmp_path / "bad.onnx"
    with pytest.raises(qdqc.UsageError):
        qdqc.compile_file(RESNET, bad, passes="no-such-pass")
    assert not bad.exists()
    # The output may not replace the input unless asked.
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(RESNET.read_bytes())
    with pytest.raises(qdqc.Error, match="--in-place"):
        qdqc.compile_file(copy, copy)
    assert copy.read_bytes() == RESNET.read_bytes()
    qdqc.compile_file(copy, in_place=True)
    assert copy.read_bytes() == dst.read_bytes()


def test_compile_file_handles_external_data_like_the_command_line(tmp_path):
    src = FIXTURES / "external_data.onnx"
    py, cli_dir = tmp_path / "py", tmp_path / "cli"
    py.mkdir(), cli_dir.mkdir()
    qdqc.compile_file(src, py / "out.onnx", passes="none")
    cli_compile(src, cli_dir / "out.onnx", "--passes", "none")
    # The side file is named after the output; the model records that name.
    for name in ("out.onnx", "out.onnx.data"):
        assert (py / name).read_bytes() == (cli_dir / name).read_bytes()
    # compile() holds the result in memory: the tensors come back inline.
    inline = qdqc.compile(str(src), passes="none")
    assert all(not t.external_data for t in inline.graph.initializer)
    expected = cli_compile(src, tmp_path / "inline.onnx", "--passes", "none", "--external-data", "inline")
    assert inline.SerializeToString() == expected


def test_errors_carry_the_message_the_file_and_the_node(tmp_path):
    with pytest.raises(qdqc.ModelError) as e:
        qdqc.compile(b"not a model")
    assert e.value.message.startswith("<model>: not a valid ONNX protobuf")
    assert e.value.file is None and e.value.node is None and e.value.exit_code == 2

    missing = tmp_path / "missing.onnx"
    with pytest.raises(qdqc.ModelError) as e:
        qdqc.stats(missing)
    assert e.value.file == str(missing) and str(missing) in str(e.value)

    # A node reading a value nothing defines, named as exporters name nodes.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Add", ["x", "ghost"], ["y"], name="/blocks.0/add@1")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "undefined.onnx"
    onnx.save(model, str(path))
    for given, file in ((model, None), (str(path), str(path))):
        with pytest.raises(qdqc.ModelError) as e:
            qdqc.compile(given)
        assert e.value.node == "/blocks.0/add@1", e.value.message
        assert e.value.file == file
    # The command line prints the same line and exits with the same status.
    o = subprocess.run([str(cli()), "compile", str(path), "-o", str(tmp_path / "o.onnx")], capture_output=True, text=True)
    assert o.returncode == e.value.exit_code
    assert e.value.message in o.stderr

    for bad in ({"target": "tpu"}, {"seed": -1}, {"verify": -2}, {"threads": 0}, {"max_tensor_bytes": 0}):
        with pytest.raises(qdqc.UsageError):
            qdqc.compile(str(RESNET), **bad)
    with pytest.raises(qdqc.UsageError):
        qdqc.run(str(RESNET), dim=0)
    with pytest.raises(qdqc.UsageError):
        qdqc.compile(str(RESNET), force=True)


def test_damaged_models_raise_errors_not_panics():
    data = RESNET.read_bytes()
    rng = np.random.default_rng(0)
    damaged = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(40):
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=8):
            b[i] = int(rng.integers(0, 256))
        damaged.append(bytes(b))
    for d in damaged:
        try:
            qdqc.compile(d, verify=1)
        except qdqc.Error as e:
            assert e.exit_code in (1, 2) and e.message, e
        # Anything else (a panic surfaces as pyo3's PanicException, a BaseException) fails the test.


def test_verify_tells_a_changed_model_apart(tmp_path):
    compiled = qdqc.compile(str(RESNET))
    assert qdqc.verify(str(RESNET), compiled, samples=2)["passed"] is True
    # Change one weight of the compiled model's first convolution.
    broken = onnx.ModelProto()
    broken.CopyFrom(compiled)
    conv = next(n for n in broken.graph.node if n.op_type == "QLinearConv")
    w = next(i for i in broken.graph.initializer if i.name == conv.input[3])
    arr = onnx.numpy_helper.to_array(w).copy()
    arr.flat[: arr.size // 2] = 0
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    report = qdqc.verify(str(RESNET), broken, samples=2)
    assert report["passed"] is False and report["first_failure"], report


def test_a_failed_check_raises_with_the_report_and_writes_nothing(tmp_path):
    # After calibration, verification measures the output against the input model: no
    # calibrated model reaches 200 dB.
    dst = tmp_path / "out.onnx"
    with pytest.raises(qdqc.VerificationError) as e:
        qdqc.compile_file(TRT, dst, calibrate=4, verify=2, min_sqnr=200)
    assert e.value.exit_code == 1 and "below --min-sqnr 200" in e.value.message
    assert e.value.report["calibrated_check"]["outputs"][0]["qdq"]["sqnr_db"] < 200
    assert not dst.exists()
    # With force the output is written, and the error still says so.
    with pytest.raises(qdqc.VerificationError, match="written anyway"):
        qdqc.compile_file(TRT, dst, calibrate=4, verify=2, min_sqnr=200, force=True)
    assert dst.exists()
    # A verification that compares nothing is refused before any work.
    with pytest.raises(qdqc.UsageError):
        qdqc.compile(str(RESNET), verify_inputs=[])


class Reader:
    """An onnxruntime CalibrationDataReader (quantize_static's interface)."""

    def __init__(self, samples):
        self.samples = iter(samples)

    def get_next(self):
        return next(self.samples, None)


def test_calibration_from_a_reader_equals_calibration_from_a_folder(tmp_path):
    calib = [{"input": wave([1, 3, 32, 32], k * 0.7)} for k in range(8)]
    heldout = [{"input": wave([1, 3, 32, 32], (100 + k) * 0.7)} for k in range(4)]
    folder = tmp_path / "calib"
    folder.mkdir()
    for k, s in enumerate(calib):
        np.savez(folder / f"{k:03}.npz", **s)
    try:
        from onnxruntime.quantization import CalibrationDataReader

        class OrtReader(CalibrationDataReader):
            def __init__(self, samples):
                self.it = iter(samples)

            def get_next(self):
                return next(self.it, None)

        reader = OrtReader(calib)
    except ImportError:  # onnxruntime without its quantization tools: the same interface
        reader = Reader(calib)
    a, report = qdqc.compile(str(TRT), calibrate=reader, verify_inputs=heldout, return_report=True)
    b = qdqc.compile(str(TRT), calibrate=folder, verify_inputs=heldout)
    c = qdqc.compile(str(TRT), calibrate=calib, verify_inputs=heldout)
    assert a.SerializeToString() == b.SerializeToString() == c.SerializeToString()
    assert report["after"]["float_compute"] == 0 and report["after"]["quantize_linear"] == 1
    assert report["calibration"]["samples"] == 8
    assert report["calibrated_check"]["outputs"][0]["qdq"]["sqnr_db"] > 15
    expected = cli_compile(TRT, tmp_path / "cli.onnx", "--calibrate", str(folder))
    assert b.SerializeToString() == expected


def test_bad_calibration_data_names_the_sample():
    samples = [{"input": wave([1, 3, 32, 32], 0.0)}, {"input": np.zeros((1, 3, 16, 16), np.float32)}]
    with pytest.raises(qdqc.DataError) as e:
        qdqc.compile(str(TRT), calibrate=samples)
    assert "calibration sample 1" in e.value.message and "input" in e.value.message
    with pytest.raises(qdqc.UsageError):
        qdqc.compile(str(TRT), calibrate={"input": wave([1, 3, 32, 32], 0.0)})
    with pytest.raises(qdqc.UsageError):
        qdqc.compile(str(TRT), calibrate=Reader([]))


def test_check_speed_measures_in_onnxruntime_with_this_interpreter(tmp_path):
    _, report = qdqc.compile(str(RESNET), check_speed=True, speed_rounds=3, return_report=True)
    speed = report["speed"]
    assert speed["input_s"] > 0 and speed["output_s"] > 0 and speed["rounds"] == 3, speed
    assert speed["ratio_p10"] <= speed["ratio"] <= speed["ratio_p90"], speed


def test_stats_show_run_and_passes():
    s = qdqc.stats(str(RESNET))
    assert s["schema_version"] == 1 and s["quantize_linear"] > 0 and "predicted" in s
    text = qdqc.show(RESNET.read_bytes())
    assert text.startswith('graph "resnet_block"') and "QuantizeLinear" in text
    x = wave([1, 3, 32, 32], 0.3)
    out = qdqc.run(str(RESNET), {"input": x})
    want = ort.InferenceSession(str(RESNET), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(out["logits"], want, atol=1e-5)
    assert "fuse" in qdqc.passes() and "dce" in qdqc.passes()


def test_accuracy_against_the_float_model(tmp_path):
    float_model = FIXTURES / "resnet_block.float.onnx"
    compiled = qdqc.compile(str(RESNET))
    html = tmp_path / "report.html"
    report = qdqc.accuracy(str(float_model), str(RESNET), compiled, samples=4, topk=True, html=html)
    out = report["outputs"][0]
    assert out["qdq"]["sqnr_db"] > 10 and out["compiled"]["sqnr_db"] > 10, out
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_the_gil_is_released_while_compiling():
    """While one thread compiles (verification on 300 samples: over a second of Rust), another keeps
    running Python: its longest pause is far shorter than the compile."""
    done = {}

    def work():
        start = time.perf_counter()
        qdqc.compile(str(FIXTURES / "transformer_block.u8.pc.onnx"), verify=300)
        done["seconds"] = time.perf_counter() - start

    t = threading.Thread(target=work)
    t.start()
    last, longest = time.perf_counter(), 0.0
    while t.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    t.join()
    assert done["seconds"] > 0.5, done
    assert longest < done["seconds"] / 4, (longest, done)
