#!/usr/bin/env bash
# Redemptions (hold + settle, two durable writes) beside slip completions
# (open + complete, two durable writes) on the embedded profile, rounds
# alternating, with the server's CPU per operation from /proc, and the raw
# SQLite posting floor (../shared/perf/floors) in the same run when built.
# Usage: scripts/bench-wallet.sh [CLIENTS] [SECONDS] [ROUNDS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
FLOOR=${LOYALTY_FLOOR_BIN:-$HOME/.cache/floors/release/sqlite_posting}
CLIENTS=${1:-16}
SECONDS_PER_RUN=${2:-10}
ROUNDS=${3:-3}
PORT=${LOYALTY_BENCH_PORT:-18298}
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

run() { # workload
  local workload=$1 dir="$work/$1-$RANDOM" token cpu0 cpu1
  token=$("$BIN" staff create --name bench --role admin --data-dir "$dir")
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" --log warn \
    --reward-rate-limit 100000 >"$work/$workload.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
  done
  cpu0=$(cpu_ticks "$pid")
  "$BIN" bench --url "http://127.0.0.1:$PORT" --token "$token" --workload "$workload" \
    --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" | tee "$work/$workload.out" >&2
  cpu1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # ops/s, p50, p99, server CPU µs per operation (two writes each).
  awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" \
    'NR==2 {printf "%s %s %s %.0f\n", $5, $6, $7, t * 1e6 / hz / $3}' "$work/$workload.out"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r" >&2
  run redeem >>"$work/redeem.all"
  run complete >>"$work/complete.all"
  if [ -x "$FLOOR" ]; then
    "$FLOOR" "$work/floor.db" FULL 1 100000 "$SECONDS_PER_RUN" 2>&1 | tee -a "$work/floor.out" >&2
    rm -f "$work"/floor.db*
  fi
done
for w in redeem complete; do
  echo "$w (ops/s p50_ms p99_ms server_cpu_us_per_op), per round:"
  sed 's/^/  /' "$work/$w.all"
  echo "  median ops/s $(cut -d' ' -f1 "$work/$w.all" | median)," \
    "median CPU µs/op $(cut -d' ' -f4 "$work/$w.all" | median)"
done
[ -f "$work/floor.out" ] && { echo "SQLite floor (one posting per commit):"; sed 's/^/  /' "$work/floor.out"; }
true
