#!/usr/bin/env bash
# Write throughput with the event dispatcher and every subscriber running
# versus without it (--no-dispatcher), in one run, on the embedded profile.
# Rounds alternate (with, without, with, …) so background load hits both
# alike; the medians and their ratio are reported. When the raw SQLite
# posting floor (../shared/perf/floors) is built, each round also runs it
# (1,000 postings per commit, and one per commit) and the server's write
# requests/s (2 per completion) are reported as a share of it.
# Usage: scripts/bench-dispatch.sh [CLIENTS] [SECONDS] [ROUNDS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
CLIENTS=${1:-16}
SECONDS_PER_RUN=${2:-10}
ROUNDS=${3:-3}
PORT=${LOYALTY_BENCH_PORT:-18299}
FLOOR=${LOYALTY_FLOOR_BIN:-$HOME/.cache/floors/release/sqlite_posting}
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # label, extra serve flags...
  local label=$1; shift
  local dir="$work/$label-$RANDOM"
  local token
  token=$("$BIN" staff create --name bench --role admin --data-dir "$dir")
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" --log warn "$@" >"$work/$label.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
  done
  local cpu0 cpu1
  cpu0=$(cpu_ticks "$pid")
  "$BIN" bench --url "http://127.0.0.1:$PORT" --token "$token" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" \
    | tee "$work/$label.out" >&2
  cpu1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # Server CPU per completion (each includes opening its slip): unlike
  # throughput, it does not move with CPU steal on a shared machine.
  awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" \
    'NR==2 {printf "%.0f\n", t * 1e6 / hz / $3}' "$work/$label.out" >>"$work/$label.cpu"
  awk 'NR==2 {print $5}' "$work/$label.out"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
: >"$work/with.all"; : >"$work/without.all"; : >"$work/with.cpu"; : >"$work/without.cpu"
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: with the dispatcher and all subscribers" >&2
  run with >>"$work/with.all"
  echo "== round $r: without (--no-dispatcher)" >&2
  run without --no-dispatcher >>"$work/without.all"
  if [ -x "$FLOOR" ]; then
    for batch in 1000 1; do
      out=$("$FLOOR" "$work/floor.db" FULL "$batch" 100000 "$SECONDS_PER_RUN" 2>&1)
      echo "$out" >&2
      echo "$out" | sed -n 's/.*postings_per_s=\([0-9]*\).*/\1/p' >>"$work/floor$batch.all"
      rm -f "$work"/floor.db*
    done
  fi
done
with=$(median <"$work/with.all")
without=$(median <"$work/without.all")
ratio=$(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.3f", a / b}')
echo "completions/s with dispatcher, per round: $(tr '\n' ' ' <"$work/with.all")"
echo "completions/s without, per round:         $(tr '\n' ' ' <"$work/without.all")"
echo "median with dispatcher: $with"
echo "median without:         $without"
echo "ratio (with / without): $ratio"
cpu_with=$(median <"$work/with.cpu")
cpu_without=$(median <"$work/without.cpu")
echo "server CPU µs per completion, median: with $cpu_with, without $cpu_without" \
  "(with / without: $(awk -v a="$cpu_with" -v b="$cpu_without" 'BEGIN {printf "%.3f", a / b}'))"
if [ -s "$work/floor1000.all" ]; then
  f1000=$(median <"$work/floor1000.all")
  f1=$(median <"$work/floor1.all")
  echo "SQLite floor postings/s, median: 1,000 per commit $f1000, one per commit $f1"
  echo "write requests/s with dispatcher (2 per completion) / floor: $(awk -v a="$with" -v b="$f1000" 'BEGIN {printf "%.3f", 2 * a / b}')" \
    "of 1,000 per commit, $(awk -v a="$with" -v b="$f1" 'BEGIN {printf "%.3f", 2 * a / b}') of one per commit"
fi
