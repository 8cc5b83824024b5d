"""qdqc: compile QDQ ONNX models into integer ONNX graphs whose numerics qdqc's own interpreter verifies.

The functions here do what the ``qdqc`` command does, on models given as an ``onnx.ModelProto``,
a path or the serialized bytes::

    import onnx, qdqc
    compiled = qdqc.compile(onnx.load("model.qdq.onnx"), verify=4)
    onnx.save(compiled, "model.int.onnx")

``compile`` returns the same bytes ``qdqc compile`` writes for the same options; ``compile_file``
works from file to file (models over 2 GiB, external data, writes that never leave a
half-written file). Errors are :class:`Error` subclasses carrying the message, the file and the
node. The work runs in Rust with the GIL released.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from . import _qdqc

__all__ = [
    "compile",
    "compile_file",
    "verify",
    "accuracy",
    "stats",
    "show",
    "run",
    "passes",
    "Error",
    "ModelError",
    "UsageError",
    "DataError",
    "CalibrationError",
    "VerificationError",
    "SpeedError",
    "InternalError",
    "KERNEL_MODEL",
    "__version__",
]

__version__: str = _qdqc.__version__
#: The arithmetic a compiled model's exactness is claimed for (recorded in its metadata).
KERNEL_MODEL: str = _qdqc.KERNEL_MODEL

#: A model: an ``onnx.ModelProto``, a path to an ``.onnx`` file, or its serialized bytes.
ModelLike = Union[onnx.ModelProto, str, "os.PathLike[str]", bytes]
#: Input samples: a folder of ``.npz`` files (as the command line reads), an onnxruntime
#: ``CalibrationDataReader`` (anything with ``get_next()`` returning a dict or ``None``), or an
#: iterable of ``{input name: numpy array}`` dicts.
SamplesLike = Union[str, "os.PathLike[str]", Any, Iterable[Mapping[str, np.ndarray]]]


class Error(Exception):
    """A qdqc error. ``message`` is the one-line message the command line prints, ``file`` the
    file it concerns (``None`` for a model given in memory or no file at all), ``node`` the node
    at fault when there is one, ``exit_code`` the command line's exit status for it."""

    def __init__(self, message: str, file: Optional[str] = None, node: Optional[str] = None, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node
        self.exit_code = exit_code


class ModelError(Error):
    """The model cannot be read, is not a valid graph, or claims what qdqc cannot compile."""


class UsageError(Error, ValueError):
    """An option is wrong: an unknown pass or approximation, options that conflict."""


class DataError(Error):
    """Input samples or files do not fit: names, shapes, dtypes, values, unreadable files, an op
    the interpreter lacks."""


class CalibrationError(DataError):
    """The calibration samples cannot calibrate the model."""


class VerificationError(Error):
    """The compiled model does not compute what the input computed (or, after calibration, an
    output is below ``min_sqnr``). ``report`` holds the compile report with the measurements."""

    report: Optional[Dict[str, Any]] = None


class SpeedError(Error):
    """``check_speed`` could not measure (no Python with onnxruntime, a model onnxruntime refuses)."""


class InternalError(Error):
    """A pass failed or left an invalid graph: a bug in qdqc."""


_KINDS = {
    "model": ModelError,
    "usage": UsageError,
    "data": DataError,
    "calibration": CalibrationError,
    "verification": VerificationError,
    "speed": SpeedError,
    "internal": InternalError,
}


class _Names:
    """Names that temporary files stand for in error messages (models given in memory)."""

    def __init__(self) -> None:
        self.names: Dict[str, str] = {}

    def error(self, failure: Tuple[str, str, Optional[str], Optional[str], int]) -> Error:
        kind, message, file, node, code = failure
        for tmp, name in self.names.items():
            message = message.replace(tmp, name)
            if file == tmp:
                file = None
        return _KINDS.get(kind, Error)(message, file, node, code)

    def call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _qdqc.NativeError as e:
            raise self.error(e.args) from None


def _at_least(**bounds: Tuple[Optional[int], int]) -> None:
    """Refuses an integer option below its least value (as the command line's parser does)."""
    for name, (value, least) in bounds.items():
        if value is not None and value < least:
            raise UsageError(f"{name}={value}: give at least {least}")


def _model_path(model: ModelLike, tmp: Path, stem: str, names: _Names, what: str) -> Path:
    """The path of `model`: a path as given, or a temporary file holding it."""
    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    if isinstance(model, onnx.ModelProto):
        data = model.SerializeToString()
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    else:
        raise UsageError(f"{what}: expected an onnx.ModelProto, a path or bytes, got {type(model).__name__}")
    path = tmp / f"{stem}.onnx"
    path.write_bytes(data)
    names.names[str(path)] = f"<{what}>"
    return path


def _npy(value: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
    return buf.getvalue()


def _sample(sample: Mapping[str, Any]) -> List[Tuple[str, bytes]]:
    if not isinstance(sample, Mapping):
        raise UsageError(f"a sample must be a dict of input name to array, got {type(sample).__name__}")
    return [(str(k), _npy(v)) for k, v in sample.items()]


def _samples(samples: SamplesLike, what: str) -> Union[str, List[List[Tuple[str, bytes]]]]:
    """A folder of samples as its path, samples in memory as (name, .npy bytes) lists."""
    if isinstance(samples, (str, os.PathLike)):
        return os.fspath(samples)
    if hasattr(samples, "get_next"):
        out = []
        while (s := samples.get_next()) is not None:
            out.append(_sample(s))
        return out
    if isinstance(samples, Mapping):
        raise UsageError(f"{what}: give a list of samples (dicts), a folder or a CalibrationDataReader, not one dict")
    try:
        return [_sample(s) for s in samples]
    except TypeError:
        raise UsageError(
            f"{what}: expected a folder, a CalibrationDataReader or an iterable of dicts, got {type(samples).__name__}"
        ) from None


def _level(opt_level: Union[int, str, None]) -> Optional[str]:
    if opt_level is None:
        return None
    return f"O{opt_level}" if isinstance(opt_level, int) else str(opt_level)


def _compile(
    src: Path,
    dst: Path,
    names: _Names,
    *,
    opt_level: Union[int, str, None],
    target: str,
    passes: Union[str, Sequence[str], None],
    approx: Union[str, Sequence[str], None],
    ort_level: str,
    verify: int,
    verify_inputs: Optional[SamplesLike],
    seed: int,
    force: bool,
    input_dist: Optional[Mapping[str, str]],
    calibrate: Union[int, SamplesLike, None],
    calib_method: str,
    min_sqnr: Optional[float],
    keep_float: Optional[Sequence[str]],
    float_model: Union[str, "os.PathLike[str]", None],
    check_speed: bool,
    fallback: bool,
    python: Optional[str],
    threads: int,
    batch: int,
    speed_rounds: int,
    external_data: str,
    external_threshold: int,
    in_place: bool,
    follow_symlinks: bool,
    max_tensor_bytes: Optional[int],
) -> Dict[str, Any]:
    verifying = verify > 0 or verify_inputs is not None
    if (force or min_sqnr is not None) and not verifying:
        raise UsageError("force and min_sqnr need verification: give verify=N or verify_inputs")
    _at_least(
        verify=(verify, 0),
        seed=(seed, 0),
        threads=(threads, 1),
        batch=(batch, 1),
        speed_rounds=(speed_rounds, 3),
        external_threshold=(external_threshold, 0),
        max_tensor_bytes=(max_tensor_bytes, 1),
    )
    if fallback and not check_speed:
        raise UsageError("fallback needs check_speed=True")
    if isinstance(passes, (list, tuple)):
        passes = ",".join(passes)
    if isinstance(approx, (list, tuple)):
        approx = ",".join(approx)
    calibrate_random = calib_samples = None
    if isinstance(calibrate, bool):
        raise UsageError("calibrate: give a sample count, a folder, a CalibrationDataReader or samples")
    if isinstance(calibrate, int):
        if calibrate < 1:
            raise UsageError(f"calibrate={calibrate}: give at least one random sample")
        calibrate_random = calibrate
    elif calibrate is not None:
        calib_samples = _samples(calibrate, "calibrate")
        if not calib_samples:
            raise UsageError("calibrate: no samples (the reader or the list is empty)")
    verify_samples = None if verify_inputs is None else _samples(verify_inputs, "verify_inputs")
    args = {
        "passes": passes,
        "opt_level": _level(opt_level),
        "target": target,
        "approx": approx,
        "ort_level": ort_level,
        "external_data": external_data,
        "external_threshold": external_threshold,
        "in_place": in_place,
        "follow_symlinks": follow_symlinks,
        "verify": verify,
        "seed": seed,
        "force": force,
        "input_dist": [f"{k}={v}" for k, v in (input_dist or {}).items()],
        "calibrate_random": calibrate_random,
        "calib_method": calib_method,
        "min_sqnr": min_sqnr,
        "keep_float": list(keep_float or []),
        "float_model": None if float_model is None else os.fspath(float_model),
        "check_speed": check_speed,
        "fallback": fallback,
        # The interpreter running this package (it has onnxruntime if the caller measures with it).
        "python": python or os.environ.get("QDQC_PYTHON") or sys.executable,
        "threads": threads,
        "batch": batch,
        "speed_rounds": speed_rounds,
        "max_tensor_bytes": max_tensor_bytes,
    }
    doc, failure = names.call(_qdqc.compile_file, os.fspath(src), os.fspath(dst), args, calib_samples, verify_samples)
    report = json.loads(doc)
    if failure is not None:
        err = names.error(failure)
        if isinstance(err, VerificationError):
            err.report = report
        raise err
    return report


_COMPILE_DOC = """
    Options (the ``qdqc compile`` flags of the same names):

    - ``opt_level``: the pipeline, 0, 2 (default) or 3 (equality saturation); ``passes``: a pass
      list (comma-separated or a sequence), ``"none"`` for a lossless round trip, or
      ``+NAME``/``-NAME`` items that edit the ``opt_level`` pipeline (``qdqc.passes()`` lists them).
    - ``target``: ``"ort"`` (onnxruntime, with its com.microsoft ops) or ``"onnx"`` (standard ops
      only); ``ort_level``: ``"all"`` or ``"disable"``, the onnxruntime level the output will run
      at (the measured costs choices read).
    - ``approx``: approximations to allow: ``"all"`` or names; none by default (every rewrite is
      exact). Each one made is listed in the report's remarks.
    - ``verify``: verify on N seeded random samples (``seed``; ``input_dist`` maps an input name
      to ``"normal"`` or ``"uniform:LO,HI"``); ``verify_inputs``: verify on given samples instead.
      A failed verification raises :class:`VerificationError` (with ``report``); nothing is
      written unless ``force``.
    - ``calibrate``: complete a partial Q/DQ placement before compiling, from N random samples
      (an int), a folder of ``.npz`` samples, an onnxruntime ``CalibrationDataReader`` or an
      iterable of ``{name: array}`` dicts; ``calib_method``: ``"mse"``, ``"minmax"``,
      ``"percentile[:P]"`` or ``"entropy"``; ``min_sqnr``: with verification, the lowest SQNR
      (dB) an output may have against the input model (default 15).
    - ``keep_float``: tensors or nodes to leave in float; ``float_model``: the float model their
      weights come from.
    - ``check_speed``: time the output against the input in onnxruntime (run by ``python``:
      ``$QDQC_PYTHON``, else this interpreter; ``threads``, ``batch``, ``speed_rounds``);
      ``fallback``: keep the input when the output is slower.
    - ``max_tensor_bytes``: the interpreter's per-tensor limit; ``follow_symlinks``: read external
      data through symlinks that leave the model's folder.
"""


def compile(
    model: ModelLike,
    *,
    opt_level: Union[int, str, None] = None,
    target: str = "ort",
    passes: Union[str, Sequence[str], None] = None,
    approx: Union[str, Sequence[str], None] = None,
    verify: int = 0,
    calibrate: Union[int, SamplesLike, None] = None,
    ort_level: str = "all",
    verify_inputs: Optional[SamplesLike] = None,
    seed: int = 0,
    force: bool = False,
    input_dist: Optional[Mapping[str, str]] = None,
    calib_method: str = "mse",
    min_sqnr: Optional[float] = None,
    keep_float: Optional[Sequence[str]] = None,
    float_model: Union[str, "os.PathLike[str]", None] = None,
    check_speed: bool = False,
    fallback: bool = False,
    python: Optional[str] = None,
    threads: int = 1,
    batch: int = 1,
    speed_rounds: int = 15,
    max_tensor_bytes: Optional[int] = None,
    follow_symlinks: bool = False,
    return_report: bool = False,
) -> Union[onnx.ModelProto, Tuple[onnx.ModelProto, Dict[str, Any]]]:
    """Compiles a QDQ model and returns the compiled ``onnx.ModelProto``: the model
    ``qdqc compile`` writes for the same options, byte for byte. With ``return_report``, returns
    ``(model, report)``, the report being the ``qdqc compile --report`` document (op counts
    before and after, passes, remarks, verification; docs/json.md).

    A model given by path may have external data; the result holds its tensors in memory, so it
    must stay under protobuf's 2 GiB (use :func:`compile_file` beyond).
    """
    options = {k: v for k, v in locals().items() if k not in ("model", "return_report")}
    names = _Names()
    with tempfile.TemporaryDirectory(prefix="qdqc-") as d:
        tmp = Path(d)
        src = _model_path(model, tmp, "input", names, "model")
        dst = tmp / "compiled.onnx"
        names.names[str(dst)] = "<compiled model>"
        # In memory: one protobuf, the tensors inline.
        report = _compile(src, dst, names, external_data="inline", external_threshold=1024, in_place=False, **options)
        out = onnx.load_model_from_string(dst.read_bytes())
    return (out, report) if return_report else out


def compile_file(
    src: Union[str, "os.PathLike[str]"],
    dst: Union[str, "os.PathLike[str]", None] = None,
    *,
    opt_level: Union[int, str, None] = None,
    target: str = "ort",
    passes: Union[str, Sequence[str], None] = None,
    approx: Union[str, Sequence[str], None] = None,
    verify: int = 0,
    calibrate: Union[int, SamplesLike, None] = None,
    ort_level: str = "all",
    verify_inputs: Optional[SamplesLike] = None,
    seed: int = 0,
    force: bool = False,
    input_dist: Optional[Mapping[str, str]] = None,
    calib_method: str = "mse",
    min_sqnr: Optional[float] = None,
    keep_float: Optional[Sequence[str]] = None,
    float_model: Union[str, "os.PathLike[str]", None] = None,
    check_speed: bool = False,
    fallback: bool = False,
    python: Optional[str] = None,
    threads: int = 1,
    batch: int = 1,
    speed_rounds: int = 15,
    external_data: str = "keep",
    external_threshold: int = 1024,
    in_place: bool = False,
    max_tensor_bytes: Optional[int] = None,
    follow_symlinks: bool = False,
) -> Dict[str, Any]:
    """Compiles the model in file ``src`` into ``dst`` as ``qdqc compile SRC -o DST`` does and
    returns the report (the ``--report`` document). The write is atomic: a failure leaves no
    file. ``dst`` may be ``src`` itself only with ``in_place=True``.

    ``external_data``: ``"keep"`` (tensors external in the input stay external, in
    ``DST.data``), ``"inline"``, or ``"file"`` (every tensor of ``external_threshold`` bytes or
    more goes to ``DST.data``).
    """
    options = {k: v for k, v in locals().items() if k not in ("src", "dst")}
    if dst is None:
        if not in_place:
            raise UsageError("compile_file: give dst, or in_place=True to replace src")
        dst = src
    return _compile(Path(src), Path(dst), _Names(), **options)


compile.__doc__ = (compile.__doc__ or "") + _COMPILE_DOC
compile_file.__doc__ = (compile_file.__doc__ or "") + _COMPILE_DOC


def verify(
    original: ModelLike,
    compiled: ModelLike,
    *,
    samples: int = 4,
    inputs: Optional[SamplesLike] = None,
    seed: int = 0,
    dim: int = 1,
    max_tensor_bytes: Optional[int] = None,
    follow_symlinks: bool = False,
) -> Dict[str, Any]:
    """Runs both models in qdqc's interpreter on the same inputs (``samples`` seeded random ones,
    or the given ``inputs``) and compares every tensor they share, as ``qdqc verify`` does.
    Returns the ``qdqc verify --json`` document; ``report["passed"]`` says whether every tensor
    stayed within tolerance and ``report["first_failure"]`` names the first that did not."""
    _at_least(samples=(samples, 1), seed=(seed, 0), dim=(dim, 1), max_tensor_bytes=(max_tensor_bytes, 1))
    names = _Names()
    with tempfile.TemporaryDirectory(prefix="qdqc-") as d:
        tmp = Path(d)
        a = _model_path(original, tmp, "original", names, "original model")
        b = _model_path(compiled, tmp, "compiled", names, "compiled model")
        given = None if inputs is None else _samples(inputs, "inputs")
        doc, _failure = names.call(
            _qdqc.verify, os.fspath(a), os.fspath(b), samples, seed, dim, follow_symlinks, max_tensor_bytes, given
        )
    return json.loads(doc)


def accuracy(
    float_model: ModelLike,
    qdq_model: ModelLike,
    compiled: Optional[ModelLike] = None,
    *,
    samples: int = 8,
    inputs: Optional[SamplesLike] = None,
    seed: int = 0,
    dim: int = 1,
    input_dist: Optional[Mapping[str, str]] = None,
    topk: bool = False,
    layers: bool = False,
    labels: Union[str, "os.PathLike[str]", None] = None,
    html: Union[str, "os.PathLike[str]", None] = None,
    max_tensor_bytes: Optional[int] = None,
    follow_symlinks: bool = False,
) -> Dict[str, Any]:
    """Measures the QDQ model (and the model compiled from it) against the float model it was
    quantized from, as ``qdqc accuracy`` does: per output SQNR, cosine similarity, max error and
    (``topk``) top-1/top-5 agreement; ``layers`` adds every quantized tensor and the gain of
    keeping each in float; ``labels`` (a ``.npy`` of class indices) adds task accuracy.
    Returns the ``qdqc accuracy --json`` document; ``html`` also writes the report page."""
    _at_least(samples=(samples, 1), seed=(seed, 0), dim=(dim, 1), max_tensor_bytes=(max_tensor_bytes, 1))
    names = _Names()
    with tempfile.TemporaryDirectory(prefix="qdqc-") as d:
        tmp = Path(d)
        f = _model_path(float_model, tmp, "float", names, "float model")
        q = _model_path(qdq_model, tmp, "qdq", names, "QDQ model")
        c = None if compiled is None else _model_path(compiled, tmp, "compiled", names, "compiled model")
        args = {
            "samples": samples,
            "seed": seed,
            "dim": dim,
            "input_dist": [f"{k}={v}" for k, v in (input_dist or {}).items()],
            "topk": topk,
            "layers": layers,
            "labels": None if labels is None else os.fspath(labels),
            "html": None if html is None else os.fspath(html),
            "follow_symlinks": follow_symlinks,
            "max_tensor_bytes": max_tensor_bytes,
        }
        given = None if inputs is None else _samples(inputs, "inputs")
        doc = names.call(
            _qdqc.accuracy, os.fspath(f), os.fspath(q), None if c is None else os.fspath(c), args, given
        )
    return json.loads(doc)


def _with_path(model: ModelLike, fn: Any, *args: Any) -> Any:
    names = _Names()
    with tempfile.TemporaryDirectory(prefix="qdqc-") as d:
        path = _model_path(model, Path(d), "model", names, "model")
        return names.call(fn, os.fspath(path), *args)


def stats(model: ModelLike, *, follow_symlinks: bool = False) -> Dict[str, Any]:
    """Op counts of a model (Q/DQ, integer and float compute ops, by op) and the latency the
    measured cost table predicts in onnxruntime: the ``qdqc stats --json`` document."""
    return json.loads(_with_path(model, _qdqc.stats, follow_symlinks))


def show(model: ModelLike, *, max_const: int = 16, follow_symlinks: bool = False) -> str:
    """The text form of a model's graph, as ``qdqc show`` prints it (constants of up to
    ``max_const`` elements written out)."""
    return _with_path(model, _qdqc.show, max_const, follow_symlinks)


def run(
    model: ModelLike,
    inputs: Optional[Mapping[str, Any]] = None,
    *,
    seed: int = 0,
    dim: int = 1,
    max_tensor_bytes: Optional[int] = None,
    follow_symlinks: bool = False,
) -> Dict[str, np.ndarray]:
    """Runs a model in qdqc's reference interpreter on ``inputs`` (``{name: array}``; seeded random
    inputs when ``None``) and returns its outputs by name, as ``qdqc run`` does."""
    _at_least(seed=(seed, 0), dim=(dim, 1), max_tensor_bytes=(max_tensor_bytes, 1))
    given = None if inputs is None else _sample(inputs)
    outs = _with_path(model, _qdqc.run, given, seed, dim, follow_symlinks, max_tensor_bytes)
    return {name: np.load(io.BytesIO(npy), allow_pickle=False) for name, npy in outs}


def passes() -> List[str]:
    """The names of qdqc's passes (for ``passes=`` and ``+NAME``/``-NAME`` edits)."""
    return list(_qdqc.pass_names())
