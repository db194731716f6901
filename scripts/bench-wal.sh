#!/usr/bin/env bash
# The embedded store's write-ahead log under sustained load (issue 16 point
# 1): `loyalty bench --clients 64` for SECONDS with the log bounded (the
# default --sqlite-wal-max-mb 256) and, in the same run, effectively
# unbounded (65536), sampling the log file's size every second during the
# load and for 10 s after it. Prints throughput, p99 and the largest log.
#
#   scripts/bench-wal.sh [SECONDS] [CLIENTS] [MODES]   (MODES: "bounded unbounded")
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-120}
CLIENTS=${2:-64}
MODES=${3:-bounded unbounded}
BIN=${LOYALTY_BIN:-${CARGO_TARGET_DIR:-target}/release/loyalty}
[ -x "$BIN" ] || cargo build --release -p loyalty-server
PORT=${LOYALTY_BENCH_PORT:-18297}
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; kill "${sampler:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

size() { stat -c %s "$1" 2>/dev/null || echo 0; }

printf '%-10s %9s %8s %8s %14s %14s\n' mode ops/s p99_ms max_ms largest_wal_MB wal_10s_after_MB
for mode in $MODES; do
  dir="$work/$mode"
  limit=256
  [ "$mode" = unbounded ] && limit=65536
  token=$("$BIN" staff create --name bench --role admin --data-dir "$dir")
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" --log warn --sqlite-wal-max-mb "$limit" \
    >"$work/$mode.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  : >"$work/$mode.sizes"
  ( while true; do size "$dir/loyalty.db-wal" >>"$work/$mode.sizes"; sleep 1; done ) &
  sampler=$!
  "$BIN" bench --url "http://127.0.0.1:$PORT" --token "$token" --clients "$CLIENTS" \
    --seconds "$SECONDS_PER_RUN" >"$work/$mode.out"
  sleep 10
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  after=$(size "$dir/loyalty.db-wal")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r _ _ _ _ opss _ p99 max <<<"$(tail -1 "$work/$mode.out")"
  largest=$(sort -n "$work/$mode.sizes" | tail -1)
  printf '%-10s %9s %8s %8s %14.1f %14.1f\n' "$mode" "$opss" "$p99" "$max" \
    "$(echo "$largest / 1048576" | bc -l)" "$(echo "$after / 1048576" | bc -l)"
done
