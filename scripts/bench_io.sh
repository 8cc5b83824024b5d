#!/usr/bin/env bash
# Load + save benchmark of qdqc, against onnx's Python load/save and onnxruntime
# session creation, on generated QDQ models of ~500 MB (inline and external data) and one
# external-data model over 2 GiB.
#
#   scripts/bench_io.sh [--mb 500] [--big-mb 2100] [--repeat 3] [--dir DIR] [--no-big] [--regen]
#                       [--no-docs]
#
#   --mb N        size of the two ~500 MB models, in MiB of weights (gen_big_model.py --mb)
#   --big-mb N    size of the external-data model that must exceed 2 GiB (2100 MiB = 2.2 GB)
#   --repeat N    runs per measurement; the table shows the median wall time and its peak RSS
#   --dir DIR     where models and outputs go (default: target/bench_io; ~10 GB with the big one)
#   --no-big      skip the >2 GiB model (it is also skipped when less than 10 GB is free)
#   --regen       regenerate the models even if they exist (generation is deterministic)
#   --no-docs     print the table only; do not update docs/benchmarks.md
#
# Environment: VENV (default .venv; created from scripts/requirements.txt unless it already has
# onnx, onnxruntime and numpy), CARGO (default cargo).
#
# Each measurement is `/usr/bin/time -f "%e s %M KB"` of one process, so the peak RSS includes
# the file pages of memory-mapped inputs. Inputs are in the page cache (warm) for every tool:
# they were just generated or read by the previous tool.
#
# qdqc is measured as `target/release/qdqc compile IN -o OUT --passes none` when the CLI supports
# it, and always as the `roundtrip` example of the tests crate (load + save only, no CLI work):
# `cargo run --release -p qdqc-tests --example roundtrip -- IN OUT`.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
VENV=${VENV:-$ROOT/.venv}
MB=500
BIG_MB=2100
REPEAT=3
DIR=$ROOT/target/bench_io
BIG=1
REGEN=0
DOCS=1
ARGS="$*"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --mb) MB=$2; shift 2 ;;
        --big-mb) BIG_MB=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --no-big) BIG=0; shift ;;
        --regen) REGEN=1; shift ;;
        --no-docs) DOCS=0; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_io.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[bench_io] $*" >&2; }

# ------------------------------------------------------------------------------------------------
# tools: GNU time, the Python venv, release binaries

if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time (apt-get install time)"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get install -y time >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y time >/dev/null; }
fi

if "$VENV/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    log "reusing venv $VENV"
else
    log "creating venv $VENV from scripts/requirements.txt"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r scripts/requirements.txt
fi
PY=$VENV/bin/python

log "building release binaries"
"$CARGO" build --release --quiet -p qdqc-tests --example roundtrip
EXAMPLE=$ROOT/target/release/examples/roundtrip
CLI=""
if "$CARGO" build --release --quiet -p qdqc --bin qdqc 2>/dev/null \
    && "$ROOT/target/release/qdqc" compile --help 2>/dev/null | grep -q -- '--passes'; then
    CLI=$ROOT/target/release/qdqc
else
    log "the qdqc CLI does not build or has no 'compile --passes': measuring the roundtrip example only"
fi

# ------------------------------------------------------------------------------------------------
# models

mkdir -p "$DIR"
free_kb=$(df -Pk "$DIR" | awk 'NR==2 {print $4}')
if [[ $BIG -eq 1 && $free_kb -lt $((10 * 1024 * 1024)) ]]; then
    log "only $((free_kb / 1024 / 1024)) GB free in $DIR (< 10 GB): skipping the >2 GiB model"
    BIG=0
fi

# gen NAME MB [--external]: DIR/NAME/NAME.onnx, reused when it was made with the same arguments.
gen() {
    local name=$1 mb=$2; shift 2
    local d=$DIR/$name stamp="$mb $*"
    if [[ $REGEN -eq 0 && -f $d/$name.onnx && "$(cat "$d/.args" 2>/dev/null)" == "$stamp" ]]; then
        log "reusing $d/$name.onnx"
    else
        rm -rf "$d"; mkdir -p "$d"
        log "generating $d/$name.onnx (--mb $mb $*)"
        "$PY" scripts/gen_big_model.py --out "$d/$name.onnx" --mb "$mb" "$@" >&2
        echo "$stamp" > "$d/.args"
    fi
}

MODELS=("inline_${MB}mib" "external_${MB}mib")
gen "inline_${MB}mib" "$MB"
gen "external_${MB}mib" "$MB" --external
if [[ $BIG -eq 1 ]]; then
    MODELS+=("external_${BIG_MB}mib")
    gen "external_${BIG_MB}mib" "$BIG_MB" --external
fi

sync  # flush the generated models before anything is timed
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# ------------------------------------------------------------------------------------------------
# helpers (Python parts are written to DIR once)

cat > "$DIR/onnx_load_save.py" <<'EOF'
import os, sys, onnx
src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
m = onnx.load(src)  # external data is read into memory
if kind == "external":
    loc = os.path.basename(dst) + ".data"
    if os.path.exists(os.path.join(os.path.dirname(dst), loc)):
        os.remove(os.path.join(os.path.dirname(dst), loc))  # onnx appends to an existing file
    onnx.save(m, dst, save_as_external_data=True, all_tensors_to_one_file=True, location=loc,
              size_threshold=1024)
else:
    onnx.save(m, dst)
EOF
cat > "$DIR/ort_session.py" <<'EOF'
import sys, time, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, sys.argv[2])
t = time.perf_counter()
ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
print(f"{time.perf_counter() - t:.3f}")
EOF

# Total size in bytes of a model file and the side files next to it.
model_bytes() {
    local f=$1 total
    total=$(stat -c %s "$f")
    for s in "$f".data; do [[ -f $s ]] && total=$((total + $(stat -c %s "$s"))); done
    echo "$total"
}

# measure OUTVAR CMD...: runs CMD REPEAT times under /usr/bin/time, each after deleting $CLEAN
# (the output and its side file: every run writes a new file rather than replacing one, which
# would add the freeing of the old file to the timed rename) and a `sync` (so writeback of
# earlier files does not slow it down; the run's own writes are not flushed). Sets
# OUTVAR to the median-wall run as "wall rss_kb stdout last-stderr-line all-walls", separated by
# \x1f (not tabs: `read` would merge empty fields).
measure() {
    local __out=$1; shift
    local runs=() walls=() i t
    for ((i = 0; i < REPEAT; i++)); do
        t=$(mktemp)
        [[ -n ${CLEAN:-} ]] && rm -f "$CLEAN" "$CLEAN.data"
        sync
        if ! /usr/bin/time -f "%e %M" -o "$t.time" "$@" >"$t.out" 2>"$t.err"; then
            log "FAILED: $*"; cat "$t.err" >&2; rm -f "$t" "$t.time" "$t.out" "$t.err"; return 1
        fi
        read -r w m < <(tail -n1 "$t.time")
        walls+=("$w")
        runs+=("$w"$'\x1f'"$m"$'\x1f'"$(tr '\n' ' ' <"$t.out")"$'\x1f'"$(tail -n1 "$t.err")")
        rm -f "$t" "$t.time" "$t.out" "$t.err"
    done
    printf -v "$__out" '%s\x1f%s' "$(printf '%s\n' "${runs[@]}" | sort -n -k1,1 | sed -n "$(((REPEAT + 1) / 2))p")" \
        "$(IFS=/; echo "${walls[*]}" | sed 's|/| / |g')"
}

# same_bytes IN OUT: "yes" if the .onnx and its side file are byte-identical, else where they differ.
same_bytes() {
    local a=$1 b=$2 r
    if ! r=$(cmp "$a" "$b" 2>&1); then echo "no (.onnx: ${r#* differ: })"; return; fi
    if [[ -f $a.data || -f $b.data ]]; then
        if ! r=$(cmp "$a.data" "$b.data" 2>&1); then echo "no (.data: ${r#* differ: })"; return; fi
    fi
    echo "yes"
}

fmt_row() { # model size tool wall rss same note
    local size=$2 wall=$4 rss=$5
    awk -v m="$1" -v size="$size" -v tool="$3" -v wall="$wall" -v rss="$rss" -v same="$6" -v note="$7" 'BEGIN {
        mbps = (wall > 0) ? sprintf("%.0f", size / 1e6 / wall) : "-";
        printf "| %s | %.2f GB | %s | %.2f | %s | %.0f MiB | %.2f× | %s | %s |\n",
            m, size / 1e9, tool, wall, mbps, rss / 1024, rss * 1024 / size, same, note }'
}

# ------------------------------------------------------------------------------------------------
# measurements

ROWS=()
for name in "${MODELS[@]}"; do
    in=$DIR/$name/$name.onnx
    size=$(model_bytes "$in")
    out_dir=$DIR/$name/out
    rm -rf "$out_dir"; mkdir -p "$out_dir"
    out=$out_dir/$name.onnx
    CLEAN=$out
    log "$name: $size bytes"

    if [[ -n $CLI ]]; then
        measure r "$CLI" compile "$in" -o "$out" --passes none
        IFS=$'\x1f' read -r wall rss _ _ all <<<"$r"
        ROWS+=("$(fmt_row "$name" "$size" "qdqc compile --passes none" "$wall" "$rss" "$(same_bytes "$in" "$out")" "runs $all s")")
        rm -f "$out" "$out.data"
    fi

    measure r "$EXAMPLE" "$in" "$out"
    IFS=$'\x1f' read -r wall rss _ split all <<<"$r"
    ROWS+=("$(fmt_row "$name" "$size" "qdqc load+save (example)" "$wall" "$rss" "$(same_bytes "$in" "$out")" "runs $all s; median run: $split")")
    rm -f "$out" "$out.data"

    kind=inline; [[ -f $in.data ]] && kind=external
    measure r "$PY" "$DIR/onnx_load_save.py" "$in" "$out" "$kind"
    IFS=$'\x1f' read -r wall rss _ _ all <<<"$r"
    ROWS+=("$(fmt_row "$name" "$size" "python onnx.load+onnx.save" "$wall" "$rss" "$(same_bytes "$in" "$out")" "runs $all s")")
    rm -f "$out" "$out.data"

    for level in ORT_DISABLE_ALL ORT_ENABLE_ALL; do
        measure r "$PY" "$DIR/ort_session.py" "$in" "$level"
        IFS=$'\x1f' read -r wall rss inner _ all <<<"$r"
        ROWS+=("$(fmt_row "$name" "$size" "onnxruntime InferenceSession ($level)" "$wall" "$rss" "–" "runs $all s; constructor alone ${inner% } s")")
    done
    rm -rf "$out_dir"
done

# ------------------------------------------------------------------------------------------------
# report

mem_gb=$(awk '/MemTotal/ {printf "%.1f", $2 / 1024 / 1024}' /proc/meminfo)
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
versions=$("$PY" -c "import onnx, onnxruntime, numpy; print(f'onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}')")
REPORT=$(cat <<EOF
## Load + save

Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs (${cpu:-unknown CPU}), ${mem_gb} GiB RAM, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), Linux $(uname -r);
$(rustc --version); Python $("$PY" -c 'import platform; print(platform.python_version())'), ${versions}.

Reproduce: \`scripts/bench_io.sh${ARGS:+ $ARGS}\` (models from \`scripts/gen_big_model.py\`: a chain of QDQ
Conv/MatMul blocks with 1024×1024 int8 weights; \`--external\` puts every tensor ≥ 1 KiB in \`MODEL.onnx.data\` at
4096-aligned offsets).

Each row is one process under \`/usr/bin/time -f "%e s %M KB"\`: the median wall time of ${REPEAT} runs (all
runs in the notes). Every run writes a new output file (nothing at that path before) and starts after
\`sync\`, with the input in the page cache. 1-min load average before the runs: ${LOAD_BEFORE} (the machine is
shared, so expect noise). No tool fsyncs what it writes, so the wall time ends when the data is in the
page cache, not on disk.
Size is the \`.onnx\` plus its side file (GB = 10⁹ bytes); MB/s is size / wall time (MB = 10⁶ bytes); peak RSS counts the pages of
memory-mapped files that were touched. "Output = input" is \`cmp\` of the written
\`.onnx\` and side file with the input. qdqc writes external data as it read it (\`--external-data keep\`);
onnx rewrites it (\`save_as_external_data=True, size_threshold=1024\`, unaligned), so its output differs.
The onnxruntime rows are for comparison only: they parse the model and build a session, they write nothing.

| model | size | tool | wall (s) | MB/s | peak RSS | RSS / size | output = input | notes |
|---|--:|---|--:|--:|--:|--:|---|---|
$(printf '%s\n' "${ROWS[@]}")
EOF
)

echo "$REPORT"
if [[ $DOCS -eq 1 ]]; then
    doc=$ROOT/docs/benchmarks.md
    mkdir -p "$(dirname "$doc")"
    REPORT="$REPORT" "$PY" - "$doc" <<'EOF'
import os, re, sys
path, section = sys.argv[1], os.environ["REPORT"].rstrip() + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"^## Load \+ save\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(lambda _: section + "\n", text) if pat.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text.rstrip() + "\n")
EOF
    log "updated $doc"
fi
