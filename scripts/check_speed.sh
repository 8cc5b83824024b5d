#!/usr/bin/env bash
# `qdqc compile --check-speed --fallback` against onnxruntime: a model made slower on purpose
# (--target onnx computes the TensorRT-style fixture's float-output convs as ConvInteger, which
# onnxruntime runs far slower than its float Conv) is measured slower and the input is written
# unchanged, with a warning and exit 0.
#
#     scripts/check_speed.sh [QDQC] [PYTHON]      (defaults: target/release/qdqc, .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
QDQC=${1:-target/release/qdqc}
PY=${2:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
in=tests/fixtures/trt_style.onnx
"$QDQC" compile "$in" -o "$out/slow.onnx" --target onnx --check-speed --fallback --python "$PY" \
  >"$out/stdout" 2>"$out/stderr"
cat "$out/stdout" | grep "speed in onnxruntime"
grep -q "wrote the input model unchanged (--fallback)" "$out/stderr" || {
  echo "check_speed: the slower output was not replaced by the input:"; cat "$out/stdout" "$out/stderr"; exit 1; }
nodes() { "$QDQC" stats "$1" | head -1; }
[ "$(nodes "$in")" = "$(nodes "$out/slow.onnx")" ] || { echo "check_speed: the written model is not the input"; exit 1; }
echo "check_speed: the slower output was measured and the input kept"
