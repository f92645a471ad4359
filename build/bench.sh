#!/usr/bin/env bash
# The benchmark suite: `make bench` (3 trials per figure, writes
# docs/BENCHMARKS.md) and `make bench-quick` (1 trial, smaller sizes, writes
# the report next to the results unless BENCH_REPORT names a file).
#
#   build/bench.sh [--quick] [--only NAME[,NAME...]]
#
# Environment: CARGO, CARGO_TARGET_DIR, BENCH_RUNS (trials; default 3, quick 1),
# BENCH_REPORT (where to write the report), BENCH_TIMEOUT_SCALE (multiplies
# every scenario's time bound; default 1).
#
# Steps: install the peers (build/bench-peers.sh), build every benchmark once,
# create a private network namespace (xiu binds 0.0.0.0, so everything runs
# inside it via `ip netns exec`), run each scenario under `timeout` with
# BENCH_RESULTS pointing at one JSON-lines file, keep each scenario's log,
# then render the report with os-bench-report. A scenario whose bench is
# missing or fails is listed as failed (with the tail of its log); the suite
# goes on. The namespace and anything left running in it are removed on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Scenario, bench target, time bound in seconds (full, quick).
SCENARIOS=(
  "rtmp_fanout   rtmp_fanout   1500 420"
  "rtmp_ingest   rtmp_ingest   1800 420"
  "hls_serving   hls_serving   600  240"
  "hls_publish   hls_publish   600  240"
  "failover      failover      1200 300"
  "latency       latency       900  300"
  "micro         micro         900  300"
  "transcode     transcode     1500 300"
)

# ---------------------------------------------------------------------------
# Inside the namespace: run the scenarios (called by the outer part below).
if [ "${1:-}" = "--inside" ]; then
  shift
  out="$1" quick="$2" only="$3"
  results="$out/results.jsonl"
  scale="${BENCH_TIMEOUT_SCALE:-1}"
  runs_file="$out/runs.txt"
  count_lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
  : > "$runs_file"
  for line in "${SCENARIOS[@]}"; do
    read -r name bench full_limit quick_limit <<<"$line"
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
      continue
    fi
    limit=$full_limit
    [ "$quick" = 1 ] && limit=$quick_limit
    limit=$(awk -v l="$limit" -v s="$scale" 'BEGIN { printf "%d", l * s }')
    log="$out/logs/$name.log"
    exe="$(cat "$out/exe/$bench" 2>/dev/null || true)"
    before=$(count_lines "$results")
    start=$(date +%s.%N)
    if [ -z "$exe" ] || [ ! -x "$exe" ]; then
      echo "no bench target named $bench (cmd/benches/$bench.rs)" > "$log"
      status="missing: no bench $bench"
    else
      echo "== $name: $exe --bench (time bound ${limit} s)"
      # setsid: a process group of its own, so whatever the bench leaves behind
      # (ffmpeg, nginx, xiu) is killed with the group afterwards.
      set +e
      BENCH_RESULTS="$results" setsid timeout --kill-after=20 "$limit" "$exe" --bench > "$log" 2>&1 &
      pid=$!
      wait "$pid"
      rc=$?
      set -e
      kill -KILL -- "-$pid" 2>/dev/null || true
      case $rc in
        0) status=ok ;;
        124|137) status="timeout after ${limit} s" ;;
        *) status="exit $rc" ;;
      esac
    fi
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    figures=$(( $(count_lines "$results") - before ))
    echo "   $name: $status, $figures figures (${secs} s, log $log)"
    printf '%s|%s|%s|%s|%s\n' "$name" "$status" "$secs" "$figures" "$log" >> "$runs_file"
  done
  exit 0
fi

# ---------------------------------------------------------------------------
quick=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    *) echo "usage: build/bench.sh [--quick] [--only NAME[,NAME...]]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: the suite runs in its own network namespace (ip netns), which needs root" >&2
  exit 1
fi

CARGO="${CARGO:-cargo}"
target="${CARGO_TARGET_DIR:-$root/target}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
mode=full
[ "$quick" = 1 ] && mode=quick
out="$target/bench/$stamp-$mode"
mkdir -p "$out/logs" "$out/exe"
if [ "$quick" = 1 ]; then
  export BENCH_QUICK=1
  export BENCH_RUNS="${BENCH_RUNS:-1}"
  report="${BENCH_REPORT:-$out/BENCHMARKS.md}"
else
  unset BENCH_QUICK
  export BENCH_RUNS="${BENCH_RUNS:-3}"
  report="${BENCH_REPORT:-$root/docs/BENCHMARKS.md}"
fi
echo "bench: $mode suite, BENCH_RUNS=$BENCH_RUNS, results and logs in $out"

build/bench-peers.sh

echo "bench: building the benchmarks"
"$CARGO" build --release -p os-bench --bin os-bench-report
# One build of every loopback bench; the executables are run directly.
"$CARGO" bench -p open-streamer --no-run 2> "$out/build.log" || {
  tail -n 30 "$out/build.log" >&2
  echo "bench: building the benchmarks failed" >&2
  exit 1
}
for line in "${SCENARIOS[@]}"; do
  read -r _ bench _ _ <<<"$line"
  exe="$(sed -n "s|.*Executable benches/$bench.rs (\(.*\))$|\1|p" "$out/build.log" | tail -n 1)"
  [ -n "$exe" ] && echo "$exe" > "$out/exe/$bench"
done

ns="os-bench-$$-$RANDOM"
ns_made=0
inner=""
cleanup() {
  if [ -n "$inner" ]; then
    kill -TERM "$inner" 2>/dev/null || true
  fi
  if [ "$ns_made" = 1 ]; then
    # Anything still running in the namespace was started by this run.
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$ns"
ns_made=1
ip -n "$ns" link set lo up

ip netns exec "$ns" "$0" --inside "$out" "$quick" "$only" &
inner=$!
wait "$inner" || true
inner=""

version() { "$@" 2>&1 | head -n 1 || true; }
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
xiu_bin="$root/.tools/xiu/bin/xiu"
args=(
  --results "$out/results.jsonl" --out "$report"
  --version "open-streamer (git)=$commit"
  --version "rustc=$(version rustc --version)"
  --version "ffmpeg=$(version ffmpeg -version | cut -d' ' -f1-3)"
  --version "nginx=$(version nginx -v)"
  --version "xiu=$(cat "$root/.tools/xiu/VERSION" 2>/dev/null || echo unknown) (crate; the binary's -V prints: $(version "$xiu_bin" -V))"
  --note "Mode: **$mode** (BENCH_RUNS=$BENCH_RUNS$(if [ "$quick" = 1 ]; then echo ", BENCH_QUICK=1: smaller sizes and shorter windows"; fi)). All peers run on the same machine over loopback inside a private network namespace; the load generators share the CPUs with the servers."
)
while IFS= read -r r; do
  args+=(--run "$r")
done < "$out/runs.txt"
"$target/release/os-bench-report" "${args[@]}"
echo "bench: report written to $report"
