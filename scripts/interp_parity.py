#!/usr/bin/env python3
"""Tensor-by-tensor parity of the qdqc interpreter with onnxruntime on the fixture models.

    interp_parity.py [--fixtures DIR] [--samples N] [--seed S] [--no-lowered] [--only TEXT]
                     [--qdqc PATH] [--dump PATH] [--keep DIR] [-v]

Models: every *.onnx in --fixtures (default tests/fixtures) except the I/O-only kitchen_sink.onnx;
and, unless --no-lowered, the integer model onnxruntime makes of each QDQ fixture ("NAME [ort-int]":
ORT_ENABLE_EXTENDED fuses the Q/DQ pairs into QLinearConv, QLinearMatMul, com.microsoft QLinearAdd,
QLinearMul, QLinearGlobalAveragePool, QGemm, QLinearSoftmax…; saved with optimized_model_filepath;
the activation fusions that make onnxruntime-internal FusedGemm/FusedConv are disabled). A lowered
model that still uses an op the interpreter does not implement is reported as skipped, naming it.

For each model and each of --samples seeded inputs (standard normal, seed = --seed + sample;
symbolic dims are 1 on even samples and 2 on odd ones), written as .npy:
  1. onnxruntime 1.32 (CPU, GraphOptimizationLevel.ORT_DISABLE_ALL, one thread) runs the model with
     every node output added as a graph output;
  2. `target/release/qdqc run MODEL --input NAME=FILE.npy --out DIR` writes the outputs, and the
     interpreter's `dump_tensors` example (ir/eval/examples) writes every tensor; the two must agree
     bit for bit on the outputs (the CLI runs the same interpreter);
  3. every integer tensor, and every graph output, is compared with onnxruntime's. A tensor
     computed (through any number of float ops) from an integer tensor that already differs in
     this sample cannot be judged on the full run (a one-step change upstream can move it by any
     amount), so it is judged in isolation: the interpreter recomputes it from onnxruntime's
     values of the integer tensors it depends on (its subgraph back to the nearest integer
     tensors, all such tensors in one model run by dump_tensors). The full-run share of bit-exact
     elements of those tensors is printed too (how far differences spread). The rules:

  integer tensor made by QuantizeLinear from float math ("requantized"): |interp − ort| ≤ 1 (one
      quantization step). The float math before the Q is not bit-exact (MLAS uses FMA, its own
      exp/erf approximations and summation order), so a value next to a rounding boundary may
      round the other way. The share of bit-exact elements is printed per model.
  any other integer tensor (QLinearConv/QLinearMatMul/QLinearAdd/QGemm/… outputs, integer data
      movement, shapes, folded weights): equal, element for element.
  float graph output made by DequantizeLinear: ≤ 1 step (the largest of that DequantizeLinear's
      scales) plus 2 ulps of the largest |output| (both sides round (q − zp)·scale to f32).
  other float graph outputs: |interp − ort| ≤ 1e-4 · max(1, max |ort|) (pure float math: Conv,
      MatMul, Gemm and reductions differ from MLAS by summation order, ~1e-6 relative).

--fixtures DIR runs the same on other models, e.g. the ResNet-50 of scripts/gen_resnet50.py.

Prints one line per model (worst difference per class, bit-exact share of requantized elements),
then "N passed, M failed" (plus skipped, if any). Exit status 0 if all passed, 1 if any model
failed, 2 on bad usage or when a tool is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
IO_ONLY = {"kitchen_sink.onnx"}  # same list as ort_parity.py / gen_fixtures.py

FLOAT_TOL = 1e-4  # relative to max(1, max|ort|), pure float outputs
NO_FUSE = ["GemmActivationFusion", "ConvActivationFusion"]

# ONNX tensor type -> numpy dtype, shared with the round-trip parity check.
from ort_parity import _DTYPES as _NP  # noqa: E402



class Missing(RuntimeError):
    """A model, tool or op cannot be run (skip or exit 2)."""


@dataclass
class Stats:
    """What one model's comparison found, over all samples."""

    requant_elems: int = 0
    requant_exact: int = 0
    requant_max: int = 0
    requant_tensors: set = field(default_factory=set)
    exact_tensors: set = field(default_factory=set)
    exact_bad: set = field(default_factory=set)
    isolated: set = field(default_factory=set)  # judged on onnxruntime's inputs (see the docstring)
    propagated_elems: int = 0  # full-model values of those tensors: how far differences spread
    propagated_exact: int = 0
    propagated_max: int = 0
    out_notes: dict = field(default_factory=dict)  # output -> (kind, worst diff, tolerance)
    failures: list = field(default_factory=list)

    def fail(self, msg: str) -> None:
        if len(self.failures) < 8:
            self.failures.append(msg)
        elif len(self.failures) == 8:
            self.failures.append("…")


def ort_session(path: Path, extra_outputs: list[str]):
    import onnxruntime as ort

    m = onnx.load(str(path))  # external data is read in, so the copy below is self-contained
    have = {o.name for o in m.graph.output}
    for name in extra_outputs:
        if name not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def lower_with_ort(src: Path, dst: Path) -> None:
    """onnxruntime's own QDQ → integer-op fusion (level EXTENDED, no layout changes), saved."""
    import onnxruntime as ort

    inline = dst.with_suffix(".inline.onnx")  # external data read in: dst must not refer to it
    onnx.save(onnx.load(str(src)), str(inline))
    src = inline
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    # Activation fusions make onnxruntime-internal ops (FusedGemm, FusedConv) that no exporter
    # or compiler writes; the Q/DQ fusions are what is under test.
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"], disabled_optimizers=NO_FUSE)
    inline.unlink()


def qdqc_run(qdqc: Path, model: Path, args: list[str], out: Path) -> dict[str, np.ndarray]:
    """The outputs of `qdqc run MODEL ARGS --out OUT`, by name (read back from the .npy files it
    lists on stdout)."""
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([str(qdqc), "run", str(model), *args, "--out", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"qdqc run failed (exit {r.returncode}): {r.stderr.strip()}")
    outs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(.*): \S+ \[.*\] -> (.*)$", line)
        if m:
            outs[m.group(1)] = np.load(m.group(2))
    return outs


def run_interpreter(qdqc: Path, dump: Path, model: Path, feeds: dict[str, Path], work: Path):
    """(outputs of `qdqc run` by name, every tensor from dump_tensors by name)."""
    args = [a for name, f in feeds.items() for a in ("--input", f"{name}={f}")]
    out_dump = work / "dump"
    shutil.rmtree(out_dump, ignore_errors=True)
    outs = qdqc_run(qdqc, model, args, work / "run")
    r = subprocess.run([str(dump), str(model), *args, "--out", str(out_dump)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dump_tensors failed ({r.returncode}): {r.stderr.strip()}")
    tensors = {}
    for line in (out_dump / "index.tsv").read_text().splitlines():
        f, _dtype, _shape, name = line.split("\t", 3)
        if f != "-":
            tensors[name] = np.load(out_dump / f)
    return outs, tensors


def is_int(v) -> bool:
    return isinstance(v, np.ndarray) and (np.issubdtype(v.dtype, np.integer) or v.dtype == np.bool_)


def judge(st: Stats, tag: str, name: str, op: str, got: np.ndarray, want: np.ndarray, step) -> bool:
    """Applies the tolerance of the tensor's class (see the docstring); True if it differs at all."""
    if got.dtype != want.dtype or got.shape != want.shape:
        st.fail(f"{tag}: '{name}' ({op}): {got.dtype}{list(got.shape)} vs onnxruntime {want.dtype}{list(want.shape)}")
        return True
    if not is_int(want):  # a float graph output
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))
        same_nan = bool(np.array_equal(np.isnan(got), np.isnan(want)))
        if step is not None:
            # One step, plus the f32 rounding of the two products (q − zp)·s: 2 ulps of |y|.
            ulp = float(np.spacing(np.float32(np.max(np.abs(want), initial=0.0))))
            tol, kind = step + 2 * ulp, "1 step"
        else:
            tol, kind = FLOAT_TOL * max(1.0, float(np.max(np.abs(want), initial=0.0))), "float"
        prev = st.out_notes.get(name)
        if prev is None or diff / tol > prev[1] / prev[2]:
            st.out_notes[name] = (kind, diff, tol)
        if not same_nan or not diff <= tol:
            st.fail(f"{tag}: output '{name}' differs by {diff:.3g} (> {kind} tolerance {tol:.3g})")
        return diff > 0 or not same_nan
    d = np.abs(got.astype(np.int64) - want.astype(np.int64))
    worst = int(d.max(initial=0))
    if op in ("QuantizeLinear", "DynamicQuantizeLinear"):
        st.requant_tensors.add(name)
        st.requant_elems += d.size
        st.requant_exact += int((d == 0).sum())
        st.requant_max = max(st.requant_max, worst)
        if worst > 1:
            st.fail(f"{tag}: requantized '{name}' differs by {worst} steps (> 1)")
    else:
        st.exact_tensors.add(name)
        if worst:
            st.exact_bad.add(name)
            st.fail(f"{tag}: '{name}' ({op}): {int((d != 0).sum())}/{d.size} elements differ, max {worst} "
                    "(integer arithmetic must be exact)")
    return worst > 0


def run_isolated(args, model: onnx.ModelProto, names: list[str], ort_vals: dict, work: Path) -> dict:
    """Each tensor of `names` recomputed by the interpreter from onnxruntime's values of the
    integer tensors it depends on (its nearest integer ancestors, or graph inputs): one model
    holding a renamed copy of each tensor's float/integer subgraph, run once."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output if o}
    inits = {t.name for t in g.initializer}
    nodes, inputs, outputs, used_inits = [], {}, [], set()
    for k, target in enumerate(names):
        pre = f"iso{k}/"
        frontier, seen, stack, piece = set(), set(), [target], []
        while stack:
            t = stack.pop()
            if t in seen or not t:
                continue
            seen.add(t)
            if t in inits:
                used_inits.add(t)
                continue
            n = producer.get(t)
            if n is None or (t != target and is_int(ort_vals.get(t))):
                frontier.add(t)  # a graph input, or an integer tensor: onnxruntime's value
                continue
            if n not in piece:
                piece.append(n)
                stack.extend(n.input)
        order = [n for n in g.node if n in piece]  # keep the topological order
        ren = lambda t: t if (not t or t in inits) else pre + t  # noqa: E731
        for n in order:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = pre + (n.name or f"node{len(nodes)}")
            del c.input[:], c.output[:]
            c.input.extend(ren(i) for i in n.input)
            c.output.extend(ren(o) for o in n.output)
            nodes.append(c)
        for t in sorted(frontier):
            v = ort_vals[t]
            inputs[pre + t] = (v, onnx.helper.make_tensor_value_info(
                pre + t, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
        want = ort_vals[target]
        outputs.append(onnx.helper.make_tensor_value_info(
            pre + target, onnx.helper.np_dtype_to_tensor_dtype(want.dtype), None))
    graph = onnx.helper.make_graph(nodes, "isolated", [vi for _, vi in inputs.values()], outputs,
                                   [t for t in g.initializer if t.name in used_inits])
    iso = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    iso_path = work / "isolated.onnx"
    onnx.save(iso, str(iso_path))
    files = {}
    for i, (name, (v, _)) in enumerate(inputs.items()):
        files[name] = work / f"iso_in{i}.npy"
        np.save(files[name], v)
    out = work / "iso_dump"
    shutil.rmtree(out, ignore_errors=True)
    args_ = [a for name, f in files.items() for a in ("--input", f"{name}={f}")]
    r = subprocess.run([str(args.dump), str(iso_path), *args_, "--out", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dump_tensors on the isolated subgraphs failed: {r.stderr.strip()}")
    vals = {}
    for line in (out / "index.tsv").read_text().splitlines():
        f, _dtype, _shape, name = line.split("\t", 3)
        if f != "-" and name.startswith("iso"):
            k, t = name.split("/", 1)
            if names[int(k[3:])] == t:
                vals[t] = np.load(out / f)
    return vals


def compare_model(path: Path, label: str, args, work: Path) -> Stats:
    full = onnx.load(str(path))  # with external data: run_isolated copies initializers
    g = full.graph
    producer = {o: n for n in g.node for o in n.output if o}
    inits = {t.name: t for t in g.initializer}
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}

    def const_value(name: str):
        if name in inits:
            return onnx.numpy_helper.to_array(inits[name])
        if name in const_nodes:
            for a in const_nodes[name].attribute:
                if a.name == "value":
                    return onnx.numpy_helper.to_array(a.t)
        return None

    def output_step(name: str):
        """The step of a graph output made by DequantizeLinear (its largest scale), else None."""
        n = producer.get(name)
        if name not in graph_outputs or n is None or n.op_type != "DequantizeLinear":
            return None
        scale = const_value(n.input[1])
        return None if scale is None else float(np.max(np.abs(scale)))

    node_outputs = [o for n in g.node if n.op_type != "Constant" for o in n.output if o]
    sess = ort_session(path, node_outputs)
    out_names = [o.name for o in sess.get_outputs()]
    graph_outputs = [o.name for o in g.output]
    st = Stats()
    for k in range(args.samples):
        rng = np.random.default_rng(args.seed + k)
        dim = 1 if k % 2 == 0 else 2
        feeds, files = {}, {}
        for i in sess.get_inputs():
            if i.type not in _NP:
                raise Missing(f"input '{i.name}' has type {i.type}")
            shape = [d if isinstance(d, int) and d >= 0 else dim for d in i.shape]
            dt = _NP[i.type]
            if np.issubdtype(dt, np.floating):
                v = rng.standard_normal(shape).astype(dt)
            else:
                v = rng.integers(0, 100, shape).astype(dt)
            feeds[i.name] = v
            files[i.name] = work / f"in{k}_{len(files)}.npy"
            np.save(files[i.name], v)
        ort_vals = dict(zip(out_names, sess.run(None, feeds)))
        ort_vals.update(feeds)
        outs, mine = run_interpreter(args.qdqc, args.dump, path, files, work)
        tag = f"sample {k}"
        for name in graph_outputs:
            if name not in outs:
                st.fail(f"{tag}: qdqc run wrote no output '{name}'")
            elif name not in mine or outs[name].tobytes() != mine[name].tobytes():
                st.fail(f"{tag}: output '{name}': qdqc run and dump_tensors disagree")
        # Tensors that differ from onnxruntime in this sample, or are computed from one that does.
        tainted: set[str] = set()
        isolate: list[str] = []
        for n in g.node:  # topological order (ONNX requires it), so inputs come first
            upstream = any(i in tainted for i in n.input if i)
            for name in n.output:
                if not name:
                    continue
                want, got = ort_vals.get(name), mine.get(name)
                judged = is_int(want) or name in graph_outputs
                if judged and got is None:
                    st.fail(f"{tag}: the interpreter did not keep '{name}'")
                    continue
                if upstream:
                    tainted.add(name)
                    if judged:
                        isolate.append(name)
                        if is_int(want) and got.shape == want.shape:
                            d = np.abs(got.astype(np.int64) - want.astype(np.int64))
                            st.propagated_elems += d.size
                            st.propagated_exact += int((d == 0).sum())
                            st.propagated_max = max(st.propagated_max, int(d.max(initial=0)))
                elif judged and judge(st, tag, name, n.op_type, got, want, output_step(name)):
                    tainted.add(name)
        if isolate:
            iso_vals = run_isolated(args, full, isolate, ort_vals, work)
            for name in isolate:
                st.isolated.add(name)
                judge(st, f"{tag} (isolated)", name, producer[name].op_type, iso_vals[name], ort_vals[name],
                      output_step(name))
    return st


def pct(exact: int, total: int) -> str:
    """A share of bit-exact elements: '100' only when all are."""
    return "100" if exact == total else f"{100.0 * exact / total:.6f}".rstrip("0").rstrip(".")


def summary(label: str, st: Stats) -> str:
    parts = []
    if st.requant_tensors:
        off = st.requant_elems - st.requant_exact
        parts.append(f"{len(st.requant_tensors)} requantized: {pct(st.requant_exact, st.requant_elems)}% bit-exact"
                     + (f" ({off} of {st.requant_elems} elements off by ≤ {st.requant_max})" if off else
                        f" ({st.requant_elems} elements)"))
    if st.exact_tensors:
        bad = f"{len(st.exact_bad)} DIFFER" if st.exact_bad else "exact"
        parts.append(f"{len(st.exact_tensors)} integer-op: {bad}")
    if st.isolated:
        share = pct(st.propagated_exact, st.propagated_elems)
        parts.append(f"{len(st.isolated)} downstream of a difference, judged in isolation "
                     f"(in the full run {share}% bit-exact, max {st.propagated_max} steps)")
    for name, (kind, diff, tol) in st.out_notes.items():
        parts.append(f"out {name}: max |diff| {diff:.3g} ({kind} tol {tol:.3g})")
    return "; ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=ROOT / "tests" / "fixtures")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-lowered", action="store_true", help="only the fixtures, not onnxruntime's integer versions")
    ap.add_argument("--only", default="", help="only models whose label contains TEXT")
    ap.add_argument("--qdqc", type=Path, default=ROOT / "target" / "release" / "qdqc")
    ap.add_argument("--dump", type=Path, default=ROOT / "target" / "release" / "examples" / "dump_tensors")
    ap.add_argument("--keep", type=Path, help="keep inputs, lowered models and dumps in DIR")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure, not the first few")
    args = ap.parse_args(argv)
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    for tool in (args.qdqc, args.dump):
        if not os.access(tool, os.X_OK):
            print(f"error: {tool} is missing; build it with cargo build --release -p qdqc --bin qdqc "
                  "and cargo build --release -p qdqc-eval --example dump_tensors", file=sys.stderr)
            return 2
    fixtures = sorted(p for p in args.fixtures.glob("*.onnx") if p.name not in IO_ONLY)
    if not fixtures:
        print(f"error: no fixtures in {args.fixtures}", file=sys.stderr)
        return 2
    work_root = Path(tempfile.mkdtemp(prefix="interp_parity.")) if args.keep is None else args.keep
    work_root.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str, Path]] = [(p.name, p) for p in fixtures]
    if not args.no_lowered:
        lowered_dir = work_root / "lowered"
        lowered_dir.mkdir(exist_ok=True)
        for p in fixtures:
            m = onnx.load(str(p), load_external_data=False)
            if not any(n.op_type == "QuantizeLinear" for n in m.graph.node):
                continue  # float models: nothing to lower
            dst = lowered_dir / p.name
            lower_with_ort(p, dst)
            models.append((f"{p.name} [ort-int]", dst))
    passed = failed = skipped = 0
    try:
        for label, path in models:
            if args.only not in label:
                continue
            work = work_root / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
            work.mkdir(exist_ok=True)
            try:
                st = compare_model(path, label, args, work)
            except RuntimeError as e:
                msg = str(e)
                m = re.search(r"the interpreter does not implement (\S+)", msg)
                if m and label.endswith("[ort-int]"):
                    skipped += 1
                    print(f"skip {label}: the interpreter does not implement {m.group(1)}")
                    continue
                failed += 1
                print(f"FAIL {label}: {msg}")
                continue
            if st.failures:
                failed += 1
                print(f"FAIL {label}: {summary(label, st)}")
                for f in st.failures if args.verbose else st.failures[:4]:
                    print(f"     {f}")
            else:
                passed += 1
                print(f"ok   {label}: {summary(label, st)}")
    finally:
        if args.keep is None:
            shutil.rmtree(work_root, ignore_errors=True)
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
