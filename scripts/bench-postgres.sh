#!/usr/bin/env bash
# Production-profile benchmark, everything in one run on one PostgreSQL:
#
#   1. the floor: ../shared/perf's durable posting (pgbench; lock account,
#      insert entry, update balance; 5 round trips) at 16 and 64 clients;
#   2. pgbench running loyalty's own row writes for one slip (open +
#      complete, events appended to outbox_pending) — no global lock;
#   3. `loyalty bench` (open + complete; completions timed) with 1 and 2
#      nodes at 16 and 64 clients;
#   4. hot accounts: 64 clients on 4 players, both nodes;
#   5. manual rewards (with the Redis limiter when LOYALTY_BENCH_REDIS_URL
#      is set) and wallet holds + settles at 16 clients on 1 and 2 nodes.
#
# For each loyalty run it also reports the nodes' and PostgreSQL's CPU per
# operation (from /proc: CPU steal moves it far less than throughput) and
# the p99 commit-to-number delay of events (the sequencer's histogram).
#
#   LOYALTY_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432 scripts/bench-postgres.sh
#   optional: LOYALTY_BENCH_REDIS_URL=redis://127.0.0.1:6379 BENCH_SECONDS=10
#   BENCH_WARMUP_SECONDS=3 (an untimed run before each timed loyalty run)
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${LOYALTY_BENCH_PG_URL:?set LOYALTY_BENCH_PG_URL=postgres://user@host:port}"
REDIS="${LOYALTY_BENCH_REDIS_URL:-}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-3}"
BIN="${LOYALTY_BIN:-${CARGO_TARGET_DIR:-target}/release/loyalty}"
PERF="${LOYALTY_PERF_DIR:-../shared/perf}"
[ -x "$BIN" ] || cargo build --release -p loyalty-server
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
HZ=$(getconf CLK_TCK)
STAMP=$(date +%s)
DB="bench_$STAMP"
FLOOR_DB="floor_$STAMP"
ROWS_DB="rows_$STAMP"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $FLOOR_DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $ROWS_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
psql "$PG/postgres" -qc "CREATE DATABASE $FLOOR_DB" >/dev/null
psql "$PG/postgres" -qc "CREATE DATABASE $ROWS_DB" >/dev/null
URL="$PG/$DB"
ROWS_URL="$PG/$ROWS_DB"

# CPU ticks of a set of processes. PostgreSQL's: the postmaster's own and
# its exited children's (cutime + cstime), plus its live children's.
# A backend may exit between listing and reading: it counts as 0 here (its
# ticks move into the postmaster's cutime).
ticks() { local t=0 p v; for p in "$@"; do v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true); t=$((t + ${v:-0})); done; echo "$t"; }
POSTMASTER=$(awk '{print $4}' "/proc/$(psql "$PG/postgres" -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")/stat" 2>/dev/null || true)
pg_ticks() {
  [ -n "$POSTMASTER" ] && [ -r "/proc/$POSTMASTER/stat" ] || { echo 0; return; }
  echo $(( $(awk '{print $14 + $15 + $16 + $17}' "/proc/$POSTMASTER/stat") + $(ticks $(pgrep -P "$POSTMASTER")) ))
}
us_per() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN {printf "%.0f", (n > 0) ? t * 1e6 / hz / n : 0}'; }

TOKEN=$("$BIN" staff create --name bench --role admin --database-url "$URL")
NODE_ARGS=(--database-url "$URL" --log warn --db-pool-size 32 --reward-rate-limit 100000000)
[ -n "$REDIS" ] && NODE_ARGS+=(--redis-url "$REDIS")

start_nodes() { # count
  PIDS=()
  local urls=() i port
  for i in $(seq 1 "$1"); do
    port=$((18100 + i))
    "$BIN" serve "${NODE_ARGS[@]}" --listen "127.0.0.1:$port" >"$WORK/node-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    urls+=("http://127.0.0.1:$port")
  done
  URLS=$(IFS=,; echo "${urls[*]}")
}
stop_nodes() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# p99 of the sequencer's delay over all nodes, as the bucket bound (ms).
seq_p99() {
  local u
  for u in ${URLS//,/ }; do curl -s "$u/metrics"; done |
    sed -n 's/^loyalty_outbox_sequencing_delay_seconds_bucket{le="\([^"]*\)"} \([0-9.e+]*\)$/\1 \2/p' |
    awk '{b[$1] += $2} END {for (le in b) print le, b[le]}' | sort -g |
    awk '{le[NR] = $1; c[NR] = $2} END {if (!NR || !c[NR]) {print "-"; exit}
         for (i = 1; i <= NR; i++) if (c[i] >= 0.99 * c[NR]) {print (le[i] == "+Inf") ? ">30000" : le[i] * 1000; exit}}'
}

printf '%-34s %7s %9s %9s %8s %10s %10s %9s\n' run clients ops/s writes/s p99_ms node_us/op pg_us/op seq_p99 | tee "$WORK/table.txt"
row() {
  printf '%-34s %7s %9s %9s %8s %10s %10s %9s\n' "$@" | tee -a "$WORK/table.txt"
  (IFS='|'; echo "$*") >>"$WORK/data.psv"
}

# One loyalty run: label, nodes, clients, writes per op, bench flags...
loyalty_run() {
  local label=$1 nodes=$2 clients=$3 writes=$4; shift 4
  start_nodes "$nodes"
  local n0 p0 n1 p1 out
  # Untimed warm-up with the same load: the nodes open their connection
  # pools and prepare their statements, as pgbench connects before its
  # clock starts; a server measured in its first seconds pays for that.
  "$BIN" bench --url "$URLS" --token "$TOKEN" --clients "$clients" --seconds "$WARMUP_SECONDS" "$@" >/dev/null
  n0=$(ticks "${PIDS[@]}"); p0=$(pg_ticks)
  out=$("$BIN" bench --url "$URLS" --token "$TOKEN" --clients "$clients" --seconds "$SECONDS_PER_RUN" "$@" | tail -1)
  n1=$(ticks "${PIDS[@]}"); p1=$(pg_ticks)
  local ops opss p99 errors
  read -r _ _ ops errors opss _ p99 _ <<<"$out"
  [ "$errors" = 0 ] || echo "  ($label: $errors failed requests)" >&2
  row "$label" "$clients" "$opss" "$(awk -v o="$opss" -v w="$writes" 'BEGIN {printf "%.0f", o * w}')" "$p99" \
    "$(us_per $((n1 - n0)) "$ops")" "$(us_per $((p1 - p0)) "$ops")" "$(seq_p99)"
  stop_nodes
}

pgbench_run() { # label, clients, writes per transaction, db url, pgbench args...
  local label=$1 clients=$2 writes=$3 url=$4; shift 4
  local p0 p1 out tps n
  p0=$(pg_ticks)
  out=$("$PGBENCH" -n -c "$clients" -j 2 -T "$SECONDS_PER_RUN" -r "$@" "$url" 2>/dev/null)
  p1=$(pg_ticks)
  tps=$(awk '/^tps/ {printf "%.1f", $3; exit}' <<<"$out")
  n=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]; exit}' <<<"$out")
  row "$label" "$clients" "$tps" "$(awk -v o="$tps" -v w="$writes" 'BEGIN {printf "%.0f", o * w}')" "-" "-" "$(us_per $((p1 - p0)) "$n")" "-"
}

# 1. The floor.
psql "$PG/$FLOOR_DB" -q -f "$PERF/pg-schema.sql" >/dev/null
for c in 16 64; do
  pgbench_run "floor posting (pgbench)" "$c" 1 "$PG/$FLOOR_DB" -M prepared -f "$PERF/pg-posting.sql" -D nplayers=100000
done

# 2. loyalty's row writes in pgbench: per iteration the two transactions
#    the server runs for one slip, on the same tables, events appended to
#    outbox_pending as the server does (one "transaction" = 2 writes), in
#    a database of its own (its rows carry no hash chain).
"$BIN" staff create --name rows --role admin --database-url "$ROWS_URL" >/dev/null
psql "$ROWS_URL" -q <<'SQL'
CREATE TABLE IF NOT EXISTS bench_players (n INT PRIMARY KEY, player_id UUID NOT NULL);
INSERT INTO players (id, display_name, card_number, status, created_at)
  SELECT gen_random_uuid(), 'pgbench ' || g, NULL, 'ACTIVE', 0 FROM generate_series(1, 64) g;
INSERT INTO bench_players (n, player_id)
  SELECT row_number() OVER (), id FROM players WHERE display_name LIKE 'pgbench %';
INSERT INTO loyalty_accounts (player_id, current_balance, escrow_balance, lifetime_points, tier, entry_count, updated_at)
  SELECT player_id, 0, 0, 0, 'BRONZE', 0, 0 FROM bench_players;
INSERT INTO game_tables VALUES ('00000000-0000-0000-0000-00000000b001', 'pgbench', 'blackjack', '1.5', 60, '10', '1', 7, 0, 0);
SQL
cat >"$WORK/slip.sql" <<'SQL'
\set n random(1, :clients)
\set pts random(1, 200)
BEGIN;
SELECT gen_random_uuid() AS slip \gset
SELECT player_id AS pid FROM bench_players WHERE n = :n \gset
INSERT INTO rating_slips VALUES (:slip, :pid, '00000000-0000-0000-0000-00000000b001', NULL, 'OPEN', '25', 0, NULL, 0, 0, '{}', 'NONE', NULL, 0, NULL, NULL, NULL, 0, 0);
INSERT INTO outbox_pending (event_id, event_type, version, occurred_at, correlation_id, idempotency_key, source, payload)
  VALUES (gen_random_uuid(), 'RATING_SLIP_OPENED', 1, 0, 'pgbench', NULL, 'rating_slip', '{}');
END;
BEGIN;
SELECT status FROM rating_slips WHERE id = :slip FOR UPDATE;
SELECT idempotency_key FROM ledger_entries WHERE idempotency_key = 'gameplay:' || :slip::text;
SELECT current_balance AS bal, lifetime_points AS life FROM loyalty_accounts WHERE player_id = :pid FOR UPDATE \gset
UPDATE rating_slips SET status = 'CLOSED', loyalty_status = 'ACCRUED', updated_at = 1 WHERE id = :slip;
INSERT INTO ledger_entries (id, player_id, transaction_type, event_type, points_change, source, rating_slip_id, idempotency_key, balance_before, balance_after, tier_before, tier_after, lifetime_after, correlation_id, created_at)
  VALUES (gen_random_uuid(), :pid, 'GAMEPLAY', 'RATING_SLIP_COMPLETED', :pts, 'rating_slip', :slip, 'gameplay:' || :slip::text, :bal::bigint, :bal::bigint + :pts::bigint, 'BRONZE', 'BRONZE', :life::bigint + :pts::bigint, 'pgbench', 0);
UPDATE loyalty_accounts SET current_balance = current_balance + :pts, lifetime_points = lifetime_points + :pts, entry_count = entry_count + 1 WHERE player_id = :pid;
INSERT INTO outbox_pending (event_id, event_type, version, occurred_at, correlation_id, idempotency_key, source, payload)
  VALUES (gen_random_uuid(), 'RATING_SLIP_COMPLETED', 1, 0, 'pgbench', NULL, 'rating_slip', '{}'),
         (gen_random_uuid(), 'LEDGER_ENTRY_CREATED', 1, 0, 'pgbench', NULL, 'ledger', '{}'),
         (gen_random_uuid(), 'BALANCE_UPDATED', 1, 0, 'pgbench', NULL, 'ledger', '{}');
END;
SQL
for c in 16 64; do
  pgbench_run "loyalty rows (pgbench, per slip)" "$c" 2 "$ROWS_URL" -M prepared -f "$WORK/slip.sql" -D clients="$c"
done

# 3-5. loyalty itself.
for c in 16 64; do loyalty_run "loyalty complete, 1 node" 1 "$c" 2; done
for c in 16 64; do loyalty_run "loyalty complete, 2 nodes" 2 "$c" 2; done
loyalty_run "hot: complete, 4 players, 2 nodes" 2 64 2 --players 4
loyalty_run "reward$([ -n "$REDIS" ] && echo ' +redis'), 1 node" 1 16 1 --workload reward
loyalty_run "reward$([ -n "$REDIS" ] && echo ' +redis'), 2 nodes" 2 16 1 --workload reward
loyalty_run "redeem (hold+settle), 1 node" 1 16 2 --workload redeem
loyalty_run "redeem (hold+settle), 2 nodes" 2 16 2 --workload redeem

echo
echo "## ratios (loyalty write requests/s ÷ floor postings/s; 2 nodes ÷ 1 node)"
awk -F'|' '
  $1 ~ /^floor posting/ {floor[$2] = $4}
  $1 == "loyalty complete, 1 node" {one[$2] = $4}
  $1 == "loyalty complete, 2 nodes" {two[$2] = $4}
  END {for (c in floor) printf "clients=%s  1 node: %.2f  2 nodes: %.2f  2 nodes / 1 node: %.2f\n", c, one[c] / floor[c], two[c] / floor[c], two[c] / one[c]}
' "$WORK/data.psv"
psql "$URL" -Atc "SELECT 'balances exact: ' || (SELECT count(*) FROM loyalty_accounts a WHERE current_balance <> (SELECT coalesce(sum(points_change), 0) FROM ledger_entries e WHERE e.player_id = a.player_id)) || ' accounts off'"
"$BIN" verify --database-url "$URL" >/dev/null && echo "loyalty verify: clean"
