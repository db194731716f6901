#!/usr/bin/env bash
# Write throughput with the event dispatcher and every subscriber running
# versus without it (--no-dispatcher), in one run, on the embedded profile.
# Usage: scripts/bench-dispatch.sh [CLIENTS] [SECONDS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
CLIENTS=${1:-16}
SECONDS_PER_RUN=${2:-10}
PORT=${LOYALTY_BENCH_PORT:-18299}
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # label, extra serve flags...
  local label=$1; shift
  local dir="$work/$label"
  local token
  token=$("$BIN" staff create --name bench --role admin --data-dir "$dir")
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" --log warn "$@" >"$work/$label.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
  done
  "$BIN" bench --url "http://127.0.0.1:$PORT" --token "$token" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" \
    | tee "$work/$label.out" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk 'NR==2 {print $5}' "$work/$label.out"
}

echo "== with the dispatcher and all subscribers" >&2
with=$(run with)
echo "== without (--no-dispatcher)" >&2
without=$(run without --no-dispatcher)
ratio=$(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.3f", a / b}')
echo "completions/s with dispatcher: $with"
echo "completions/s without:         $without"
echo "ratio (with / without):        $ratio"
