#!/usr/bin/env python3
"""Bitwise output parity of two ONNX models under onnxruntime (round-trip check).

    ort_parity.py A.onnx B.onnx [--samples N] [--seed S] [--dim D]
    ort_parity.py --all DIR_A DIR_B [--samples N] [--seed S] [--dim D] [--skip NAME ...]

Both models run on the CPU execution provider with GraphOptimizationLevel.ORT_DISABLE_ALL and a
single thread, on the same seeded random inputs (dtype and shape taken from model A; symbolic or
unknown dims become 1 for even samples and 2 for odd samples, or --dim D). Every output must be
bitwise identical (same name, dtype, shape and bytes; NaNs compare by bit pattern).

Exit status:
  0  all outputs identical
  1  at least one output differs (one line per differing output on stdout)
  2  bad usage, or a model could not be loaded / run (in --all mode: any such model)

--all compares every *.onnx present in both directories, except the I/O-only fixtures in
IO_ONLY (and any --skip NAME), and ends with "N passed, M failed, K skipped".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# Fixtures that are for I/O round trips only and cannot run in onnxruntime.
IO_ONLY = {"kitchen_sink.onnx"}

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


class LoadError(Exception):
    """Model could not be loaded or run (exit status 2)."""


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"cannot load {path}: {str(e).splitlines()[0]}") from None


def _random_input(rng: np.random.Generator, type_str: str, shape, dim: int, name: str) -> np.ndarray:
    if type_str not in _DTYPES:
        raise LoadError(f"input '{name}' has unsupported type {type_str}")
    dtype = _DTYPES[type_str]
    dims = [d if isinstance(d, int) and d >= 0 else dim for d in (shape or [])]
    if dtype in (np.float32, np.float64, np.float16):
        return rng.standard_normal(dims).astype(dtype)
    if dtype is np.bool_:
        return rng.integers(0, 2, dims).astype(np.bool_)
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), -128), min(int(info.max), 127)
    return rng.integers(lo, hi, dims, endpoint=True).astype(dtype)


def _describe_diff(a, b) -> str:
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        return f"non-tensor outputs differ ({type(a).__name__} vs {type(b).__name__})"
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return f"shape {list(a.shape)} vs {list(b.shape)}"
    if a.dtype == object:
        n = int(np.sum(a != b))
        return f"{n}/{a.size} elements differ"
    av = a.reshape(-1).view(np.uint8).reshape(a.size, -1) if a.size else a.reshape(-1)
    bv = b.reshape(-1).view(np.uint8).reshape(b.size, -1) if b.size else b.reshape(-1)
    neq = np.any(av != bv, axis=1) if a.size else np.zeros(0, bool)
    msg = f"{int(neq.sum())}/{a.size} elements differ bitwise"
    if np.issubdtype(a.dtype, np.number):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        d = d[np.isfinite(d)]
        if d.size:
            msg += f", max |diff| {float(d.max()):.6g}"
    return msg


def _identical(a, b) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype == object:
            return bool(np.array_equal(a, b))
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    return a == b


def compare(path_a: Path, path_b: Path, samples: int, seed: int, dim: int | None, label: str = "") -> list[str]:
    """Return a list of one-line mismatch messages (empty = identical). Raises LoadError."""
    sa, sb = _session(path_a), _session(path_b)
    tag = f"{label}: " if label else ""
    ins_a, ins_b = sa.get_inputs(), sb.get_inputs()
    sig_a = [(i.name, i.type) for i in ins_a]
    sig_b = [(i.name, i.type) for i in ins_b]
    if sorted(sig_a) != sorted(sig_b):
        return [f"{tag}input signature differs: {sig_a} vs {sig_b}"]
    outs_a = [o.name for o in sa.get_outputs()]
    outs_b = [o.name for o in sb.get_outputs()]
    if outs_a != outs_b:
        return [f"{tag}output names differ: {outs_a} vs {outs_b}"]

    rng = np.random.default_rng(seed)
    problems: dict[str, str] = {}
    for k in range(samples):
        d = dim if dim is not None else (1 if k % 2 == 0 else 2)
        feed = {i.name: _random_input(rng, i.type, i.shape, d, i.name) for i in ins_a}
        try:
            ra = sa.run(None, feed)
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"{tag}cannot run {path_a}: {str(e).splitlines()[0]}") from None
        try:
            rb = sb.run(None, feed)
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"{tag}cannot run {path_b}: {str(e).splitlines()[0]}") from None
        for name, a, b in zip(outs_a, ra, rb):
            if name not in problems and not _identical(a, b):
                problems[name] = f"{tag}output '{name}' differs (sample {k}, dim {d}): {_describe_diff(a, b)}"
    return [problems[n] for n in outs_a if n in problems]


def run_all(dir_a: Path, dir_b: Path, samples: int, seed: int, dim: int | None, skip: set[str]) -> int:
    if not dir_a.is_dir() or not dir_b.is_dir():
        print(f"error: --all needs two directories, got {dir_a} {dir_b}", file=sys.stderr)
        return 2
    names_a = {p.name for p in dir_a.glob("*.onnx")}
    names_b = {p.name for p in dir_b.glob("*.onnx")}
    common = sorted(names_a & names_b)
    skipped = [n for n in common if n in skip]
    todo = [n for n in common if n not in skip]
    for n in sorted(names_a ^ names_b):
        print(f"note: {n} only in {dir_a if n in names_a else dir_b}")
    if not todo:
        print(f"error: no runnable model present in both {dir_a} and {dir_b}", file=sys.stderr)
        return 2
    passed = failed = 0
    load_error = False
    for n in todo:
        try:
            msgs = compare(dir_a / n, dir_b / n, samples, seed, dim, label=n)
        except LoadError as e:
            msgs, load_error = [f"ERROR {e}"], True
        if msgs:
            failed += 1
            for m in msgs:
                print(m if m.startswith("ERROR") else f"FAIL {m}")
        else:
            passed += 1
            print(f"ok   {n}")
    for n in skipped:
        print(f"skip {n} (I/O only)")
    print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")
    if load_error:
        return 2
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="model A (or DIR_A with --all)")
    ap.add_argument("b", help="model B (or DIR_B with --all)")
    ap.add_argument("--all", action="store_true", help="compare every runnable *.onnx present in both directories")
    ap.add_argument("--samples", type=int, default=4, help="number of random input sets (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="input RNG seed (default 0)")
    ap.add_argument("--dim", type=int, default=None, help="value for symbolic dims (default: alternate 1 and 2)")
    ap.add_argument("--skip", action="append", default=[], help="extra file name to skip in --all mode")
    args = ap.parse_args(argv)  # exits with status 2 on bad usage
    if args.samples < 1 or (args.dim is not None and args.dim < 1):
        ap.error("--samples and --dim must be >= 1")

    if args.all:
        return run_all(Path(args.a), Path(args.b), args.samples, args.seed, args.dim, IO_ONLY | set(args.skip))

    a, b = Path(args.a), Path(args.b)
    for p in (a, b):
        if not p.is_file():
            print(f"error: no such model file: {p}", file=sys.stderr)
            return 2
    try:
        msgs = compare(a, b, args.samples, args.seed, args.dim)
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for m in msgs:
        print(f"MISMATCH {m}")
    if msgs:
        return 1
    print(f"identical: {a} == {b} ({args.samples} samples, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
