#!/usr/bin/env bash
# Speed of the qdqc reference interpreter against onnxruntime on a ResNet-50-size model.
#
#   scripts/bench_interp.sh [--samples 4] [--repeat 3] [--dir DIR] [--regen] [--no-docs]
#
#   --samples N   inputs per measurement (batch 1 each, run one after the other; default 4)
#   --repeat N    measurements per row; the table shows the median (default 3)
#   --dir DIR     where the models go (default target/bench_interp)
#   --regen       regenerate the models even if they exist (generation is deterministic)
#   --no-docs     print the table only; do not update docs/benchmarks.md
#
# Models (scripts/gen_resnet50.py): ResNet-50 v1 in float, QDQ (onnxruntime quantize_static,
# u8 activations, s8 per-channel weights) and QOperator form (QLinearConv, QLinearAdd,
# QLinearGlobalAveragePool, QGemm). Every tool runs on the same machine in the same script run,
# on batch-1 inputs of the same shape, using both cores (rayon / onnxruntime's intra-op pool):
#
#   interpreter   `run_model` example of ir/eval (release): load, prepare (constants decoded,
#                 weight DequantizeLinear folded), then N runs timed one by one;
#   qdqc run      `target/release/qdqc run MODEL --random --out DIR`: one whole process (load,
#                 prepare, 1 sample, write .npy), wall time;
#   qdqc verify   `qdqc verify MODEL MODEL --samples N`: both models on N samples, every tensor
#                 compared (2·N runs), wall time;
#   onnxruntime   InferenceSession (CPU EP) at ORT_DISABLE_ALL and at the default ORT_ENABLE_ALL:
#                 session creation, then N runs timed one by one (no warm-up run for either tool).
#
# Per-sample time is the median over the N runs of a measurement, then the median over --repeat
# measurements. Ratios are interpreter / onnxruntime. Exits 1 if `qdqc verify MODEL MODEL` fails
# on any of the models (it must pass: same model, same interpreter).
#
# Environment: VENV (default .venv; created from scripts/requirements.txt unless it has onnx,
# onnxruntime and numpy), CARGO (default cargo).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
VENV=${VENV:-$ROOT/.venv}
SAMPLES=4
REPEAT=3
DIR=$ROOT/target/bench_interp
REGEN=0
DOCS=1
ARGS="$*"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --samples) SAMPLES=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --regen) REGEN=1; shift ;;
        --no-docs) DOCS=0; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_interp.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[bench_interp] $*" >&2; }

if "$VENV/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    log "reusing venv $VENV"
else
    log "creating venv $VENV from scripts/requirements.txt"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r scripts/requirements.txt
fi
PY=$VENV/bin/python

log "building release binaries"
"$CARGO" build --release --locked --quiet -p qdqc --bin qdqc
"$CARGO" build --release --locked --quiet -p qdqc-eval --example run_model
QDQC=$ROOT/target/release/qdqc
RUN_MODEL=$ROOT/target/release/examples/run_model

mkdir -p "$DIR"
stamp="gen_resnet50.py $(sha256sum scripts/gen_resnet50.py | cut -c1-16)"
if [[ $REGEN -eq 1 || ! -f $DIR/resnet50.qop.onnx || "$(cat "$DIR/.args" 2>/dev/null)" != "$stamp" ]]; then
    log "generating the models in $DIR"
    "$PY" scripts/gen_resnet50.py --out "$DIR" 2>&1 | grep -v -i "warning" >&2 || true
    echo "$stamp" > "$DIR/.args"
else
    log "reusing the models in $DIR"
fi
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# All timing and the report are in Python (medians, ratios, the markdown table).
rc=0
REPORT=$("$PY" - "$DIR" "$SAMPLES" "$REPEAT" "$QDQC" "$RUN_MODEL" "$LOAD_BEFORE" "scripts/bench_interp.sh${ARGS:+ $ARGS}" <<'EOF'
import os, platform, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, onnx, onnxruntime as ort

dir_, samples, repeat, qdqc, run_model, load_before, cmd = sys.argv[1:8]
dir_, samples, repeat = Path(dir_), int(samples), int(repeat)
models = [("float", "float"), ("qdq", "QDQ"), ("qop", "QOperator (QLinearConv)")]
med = statistics.median

def interp(path):
    """(prepare s incl. load, per-sample median s, total s for all samples incl. load+prepare)."""
    t = time.perf_counter()
    out = subprocess.run([run_model, str(path), "1", str(samples)], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    def dur(s):
        v, u = re.match(r"([\d.]+)\s*(\S+)", s).groups()
        return float(v) * {"s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}[u]
    load = dur(re.search(r"loaded \d+ nodes in (\S+)", out).group(1))
    prep = dur(re.search(r"prepared in (\S+)", out).group(1))
    runs = [dur(m) for m in re.findall(r"run \d+: (\S+) \(", out)]
    assert len(runs) == samples, out
    prof = {m.group(1): dur(m.group(2)) for m in re.finditer(r"^  (\S+)\s+(\S+)$", out, re.M)}
    return load + prep, med(runs), wall, prof

def ort_time(path, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.log_severity_level = 3
    t = time.perf_counter()
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    create = time.perf_counter() - t
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(samples):
        x = rng.uniform(-2, 2, (1, 3, 224, 224)).astype(np.float32)
        t = time.perf_counter()
        s.run(None, {"input": x})
        runs.append(time.perf_counter() - t)
    return create, med(runs), create + sum(runs)

def wall(args):
    t = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True)
    return time.perf_counter() - t, r.returncode

rows = []
for key, label in models:
    path = dir_ / f"resnet50.{key}.onnx"
    res = {}
    for _ in range(repeat):
        for tool, fn in [("interp", lambda: interp(path)),
                         ("ORT_DISABLE_ALL", lambda: ort_time(path, "ORT_DISABLE_ALL")),
                         ("ORT_ENABLE_ALL", lambda: ort_time(path, "ORT_ENABLE_ALL"))]:
            res.setdefault(tool, []).append(fn())
        with tempfile.TemporaryDirectory() as t:
            res.setdefault("run", []).append(wall([qdqc, "run", str(path), "--random", "--out", t])[0])
        w, rc = wall([qdqc, "verify", str(path), str(path), "--samples", str(samples)])
        res.setdefault("verify", []).append(w)
        res["verify_rc"] = rc
    agg = {k: tuple(med(x[i] for x in v) for i in range(3)) for k, v in res.items() if k in ("interp", "ORT_DISABLE_ALL", "ORT_ENABLE_ALL")}
    prof = res["interp"][0][3]
    total = sum(prof.values()) or 1.0
    top = ", ".join(f"{op} {100 * t / total:.0f} %" for op, t in sorted(prof.items(), key=lambda kv: -kv[1])[:3])
    rows.append((label, path, agg, med(res["run"]), med(res["verify"]), res["verify_rc"], top))

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), "")
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
print("## Interpreter vs onnxruntime\n")
print(f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, {osname}, "
      f"Linux {platform.release()};\n{rustc}; Python {platform.python_version()}, onnx {onnx.__version__}, "
      f"onnxruntime {ort.__version__}, numpy {np.__version__}. 1-min load average before the runs: {load_before} "
      "(the machine is shared, so expect noise).\n")
print(f"Reproduce: `{cmd}` (models from `scripts/gen_resnet50.py`: ResNet-50 v1, BatchNormalization folded, "
      "25.6 M parameters, 4.1 GMAC per image; QDQ and QOperator forms by onnxruntime's `quantize_static`, "
      "u8 activations, s8 per-channel weights).\n")
print(f"Batch 1, input f32[1,3,224,224]; {samples} samples run one after the other in one process, both cores "
      "(rayon / onnxruntime's intra-op thread pool). *Per sample* is the median of the "
      f"{samples} runs (no warm-up run for either tool); *{samples} samples* adds loading and preparing "
      "(interpreter: load, decode constants, fold weight DequantizeLinear; onnxruntime: InferenceSession "
      f"creation). Every figure is the median of {repeat} measurements. "
      "Ratio = interpreter / onnxruntime (above 1: the interpreter is slower).\n")
print(f"| model | interpreter per sample | ORT_DISABLE_ALL per sample | ratio | ORT_ENABLE_ALL per sample | ratio | "
      f"interpreter {samples} samples | ORT_DISABLE_ALL {samples} samples | ORT_ENABLE_ALL {samples} samples |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
ms = lambda s: f"{s * 1e3:.0f} ms"
for label, path, a, run_w, ver_w, rc, top in rows:
    i, d, e = a["interp"], a["ORT_DISABLE_ALL"], a["ORT_ENABLE_ALL"]
    print(f"| {label} | {ms(i[1])} | {ms(d[1])} | {i[1] / d[1]:.2f}× | {ms(e[1])} | {i[1] / e[1]:.2f}× | "
          f"{ms(i[0] + samples * i[1])} | {ms(d[0] + samples * d[1])} | {ms(e[0] + samples * e[1])} |")
print("\nWhole `qdqc` processes (wall time, median of the measurements):\n")
print(f"| model | `qdqc run MODEL --random` (1 sample) | `qdqc verify MODEL MODEL --samples {samples}` ({2 * samples} runs) |")
print("|---|--:|--:|")
for label, path, a, run_w, ver_w, rc, top in rows:
    note = "" if rc == 0 else f" (FAILED: exit {rc})"
    print(f"| {label} | {run_w:.2f} s | {ver_w:.2f} s{note} |")
print("\nWhere the interpreter's time goes (run_model's per-op-type profile, first measurement): "
      + "; ".join(f"{label}: {top}" for label, path, a, run_w, ver_w, rc, top in rows) + ".")
if any(r[5] != 0 for r in rows):
    print("ERROR: `qdqc verify MODEL MODEL` failed", file=sys.stderr)
    sys.exit(1)
EOF
) || rc=$?

echo "$REPORT"
[[ $rc -eq 0 ]] || exit "$rc"
if [[ $DOCS -eq 1 ]]; then
    doc=$ROOT/docs/benchmarks.md
    REPORT="$REPORT" "$PY" - "$doc" <<'EOF'
import os, re, sys
path, section = sys.argv[1], os.environ["REPORT"].rstrip() + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"^## Interpreter vs onnxruntime\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(lambda _: section + "\n", text) if pat.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text.rstrip() + "\n")
EOF
    log "updated $doc"
fi
