#!/usr/bin/env bash
# Do two qdqc binaries compile the same models to the same bytes? For changes meant to be pure
# speed-ups: compiles every fixture (and any extra models given) with both binaries at -O2 and -O3,
# for both targets, and compares the written files (cmp) and the printed reports and remarks
# (diff). Exit status 1 at the first difference.
#
#     scripts/ab_outputs.sh [--bytes] OLD_QDQC NEW_QDQC [MODEL.onnx ...]
#
# --bytes: compare the written files only (for a change that moves work between passes, so that
# the per-pass change counts in the report differ while the output does not).
#
# e.g. `cp target/release/qdqc /tmp/qdqc.old`, make the change, `cargo build --release -p qdqc`,
# then `scripts/ab_outputs.sh /tmp/qdqc.old target/release/qdqc target/bench_scale/synthetic_100000.onnx`.
set -euo pipefail
bytes_only=false
if [ "${1:-}" = --bytes ]; then
  bytes_only=true
  shift
fi
[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
shift 2
cd "$(dirname "$0")/.."
models=()
for model in tests/fixtures/*.onnx "$@"; do
  models+=("$(realpath "$model")")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
for model in "${models[@]}"; do
  for level in 2 3; do
    for target in ort onnx; do
      for side in old new; do
        bin=$old
        [ "$side" = new ] && bin=$new
        # (One output path for both, run from the same directory: the report prints it, and
        # external data is written beside it under a name made from it.)
        rm -rf "$work/out" && mkdir "$work/out"
        (cd "$work/out" && "$bin" compile "$model" -o out.onnx "-O$level" --target "$target" --remarks \
          >../$side.txt 2>&1) || echo "exit $?" >>"$work/$side.txt"
        cat "$work"/out/* >"$work/$side.bytes" 2>/dev/null || true
      done
      if ! cmp -s "$work/old.bytes" "$work/new.bytes"; then
        echo "DIFFERENT OUTPUT: $model -O$level --target $target"
        cmp "$work/old.bytes" "$work/new.bytes" || true
        exit 1
      fi
      if ! $bytes_only && ! diff -q "$work/old.txt" "$work/new.txt" >/dev/null; then
        echo "DIFFERENT REPORT: $model -O$level --target $target"
        diff "$work/old.txt" "$work/new.txt" | head -20 || true
        exit 1
      fi
      n=$((n + 1))
    done
  done
done
$bytes_only && what="outputs" || what="outputs and printed reports"
echo "identical: $n compiles ($what)"
