#!/usr/bin/env bash
# Runs a cargo-fuzz target for a while: scripts/fuzz.sh TARGET SECONDS, or scripts/fuzz.sh all
# SECONDS for every target in turn. Builds with `cargo +nightly fuzz build -O -a`, seeds
# fuzz/corpus/TARGET (gitignored) from the fixtures, runs with a 10 s per-input timeout and a
# 2 GiB RSS limit, prints libFuzzer's final stats, and exits nonzero on any crash, timeout or OOM
# (the reproducer is in fuzz/artifacts/TARGET/). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(decode text pipeline interp)

usage() { echo "usage: scripts/fuzz.sh {${TARGETS[*]}|all} SECONDS" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1 seconds=$2
[[ $seconds =~ ^[0-9]+$ ]] || usage
if [ "$target" = all ]; then
  selected=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $target "* ]] || usage
  selected=("$target")
fi

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
# -a: debug assertions and overflow checks on (-O alone turns them off).
(cd fuzz && cargo +nightly fuzz build -O -a)

# The seeds: the fixture models for the ONNX targets; for `text`, every graph of the rule tests
# (passes/tests/rules/*.qdq) and the printed fixtures of the show snapshots.
seed() {
  local t=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $t in
    decode|pipeline)
      for f in tests/fixtures/*.onnx; do cp "$f" "$dir/seed-$(basename "$f")"; done ;;
    interp)
      # MODEL ++ TAIL ++ len(TAIL) as u16 LE: an empty tail.
      for f in tests/fixtures/*.onnx; do
        { cat "$f"; printf '\0\0'; } > "$dir/seed-$(basename "$f")"
      done ;;
    text)
      for f in passes/tests/rules/*.qdq; do
        awk -v out="$dir/seed-$(basename "$f" .qdq)" '
          /^graph / { n++; on = 1; file = out "-" n ".txt"; printf "" > file }
          on { print >> file }
          on && /^}/ { on = 0; close(file) }' "$f"
      done
      for f in tests/tests/snapshots/show__*.snap; do
        # Everything after the snapshot header (the second '---' line).
        awk 'h >= 2 { print } /^---$/ { h++ }' "$f" > "$dir/seed-$(basename "$f" .snap).txt"
      done ;;
  esac
}

bin=fuzz/target/x86_64-unknown-linux-gnu/release
failed=()
for t in "${selected[@]}"; do
  seed "$t"
  mkdir -p "fuzz/artifacts/$t"
  log=$(mktemp)
  echo "== fuzz $t for ${seconds}s"
  set +e
  # -max_len: the largest fixture is 137 kB; room for structure-aware growth.
  "$bin/$t" "fuzz/corpus/$t" -artifact_prefix="$ROOT/fuzz/artifacts/$t/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  # The last status line (execs, cov, ft, corpus) and the final stats.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ $rc -ne 0 ] || grep -qE '^==[0-9]+== ERROR: libFuzzer|^SUMMARY: libFuzzer|panicked at' "$log"; then
    echo "!! $t: failed (exit $rc); the end of its log:" >&2
    tail -n 40 "$log" >&2
    failed+=("$t")
  fi
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${selected[*]}: no failures"
