#!/usr/bin/env bash
# ONNX conformance of the qdqc interpreter: onnx's own backend node tests.
#
#   scripts/conformance.sh [--dir DIR] [--filter TEXT] [--min-passed N]
#
#   --dir DIR        where the generated cases go (default target/onnx_node_tests; DIR/node is replaced)
#   --filter TEXT    only tests whose name contains TEXT
#   --min-passed N   fail unless at least N tests pass (default 1000 without --filter, else 0):
#                    guards against a generator or loader change that silently skips everything
#
# 1. Recreates the node test cases (they are not in the onnx wheel) with onnx's generator:
#    scripts/gen_onnx_node_tests.py, onnx pinned in scripts/requirements.txt (1884 cases, ~5 s).
# 2. Runs them through the interpreter: the `onnx_node_tests` example of ir/eval, release build.
#    A test is skipped only when the interpreter itself refuses something the model uses (an op
#    without a kernel, an unimplemented feature such as Resize's cubic mode, float8 tensors) or
#    when a graph input/output is a sequence/optional; the reason is printed. Anything else the
#    interpreter gets wrong is a failure. Outputs are compared as onnx's runner does (rtol 1e-3,
#    atol 1e-7, bfloat16 rtol 2^-6; integers exactly): see the example's header.
#
# Prints "FAIL name: why" per failure, then "N passed, M failed, K skipped" and the skipped tests
# grouped by reason. Exit status 1 if any test failed.
#
# Environment: VENV (default .venv; created from scripts/requirements.txt if it lacks onnx), CARGO.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
VENV=${VENV:-$ROOT/.venv}
DIR=$ROOT/target/onnx_node_tests
FILTER=""
MIN_PASSED=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --filter) FILTER=$2; shift 2 ;;
        --min-passed) MIN_PASSED=$2; shift 2 ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "conformance.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n $MIN_PASSED ]] || { [[ -z $FILTER ]] && MIN_PASSED=1000 || MIN_PASSED=0; }

if ! "$VENV/bin/python" -c "import onnx" 2>/dev/null; then
    echo "[conformance] creating venv $VENV from scripts/requirements.txt" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi

"$CARGO" build --release --locked --quiet -p qdqc-eval --example onnx_node_tests
mkdir -p "$DIR"
"$VENV/bin/python" scripts/gen_onnx_node_tests.py "$DIR"
args=("$DIR/node" --min-passed "$MIN_PASSED")
[[ -z $FILTER ]] || args+=(--filter "$FILTER")
target/release/examples/onnx_node_tests "${args[@]}"
