#!/usr/bin/env bash
# Event retention under load, embedded profile: does the database stop
# growing from events, and what does archiving cost the writers?
# Each round runs `loyalty bench` (open + complete) for SECONDS; from round 2
# on, the test clock first moves 31 days ahead, so the archiver (30-day
# retention, a pass every second) moves the previous rounds' events to files
# while the load runs. After each round: the database file, the outbox's
# rows, the archive's size, completions/s and p99.
# Usage: scripts/bench-retention.sh [CLIENTS] [SECONDS] [ROUNDS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
CLIENTS=${1:-16}
SECONDS_PER_RUN=${2:-20}
ROUNDS=${3:-4}
PORT=${LOYALTY_BENCH_PORT:-18298}
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
dir="$work/data"
url="http://127.0.0.1:$PORT"
token=$("$BIN" staff create --name bench --role admin --data-dir "$dir")
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" --log "warn,loyalty_server::events::archive=info" --test-mode \
  --event-retention-days 30 --event-archive-interval-ms 1000 >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "$url/healthz" >/dev/null && break
  sleep 0.1
done
now=$(date -u +%s)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
printf "%-6s %-14s %-8s %-10s %-12s %-12s %-12s\n" round completions/s p99_ms db_MiB outbox_rows archived_MiB oldest_seq
for r in $(seq 1 "$ROUNDS"); do
  if [ "$r" -gt 1 ]; then
    now=$((now + 31 * 86400))
    curl -sf -X PUT -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"now\":\"$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)\"}" "$url/v1/test/clock" >/dev/null
  fi
  out=$("$BIN" bench --url "$url" --token "$token" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN")
  rate=$(echo "$out" | awk 'NR==2 {print $5}')
  p99=$(echo "$out" | awk 'NR==2 {print $7}')
  sleep 2
  db=$(stat -c %s "$dir/loyalty.db")
  rows=$(sqlite3 "file:$dir/loyalty.db?mode=ro" "SELECT count(*) FROM outbox")
  oldest=$(sqlite3 "file:$dir/loyalty.db?mode=ro" "SELECT min(seq) FROM outbox")
  arch=$(du -sb "$dir/event-archive" 2>/dev/null | cut -f1 || echo 0)
  printf "%-6s %-14s %-8s %-10s %-12s %-12s %-12s\n" "$r" "$rate" "$p99" "$(mib "$db")" "$rows" "$(mib "${arch:-0}")" "$oldest"
done
grep -c events_archived "$work/serve.log" | sed 's/^/archive passes logged: /' || true
"$BIN" verify --data-dir "$dir" | sed 's/^/verify: /'
