#!/usr/bin/env bash
# Production-profile benchmark: the same load as the core benchmark
# (`loyalty bench`: open a slip, complete it; completions timed) against
# PostgreSQL with 1 and 2 nodes at 16 and 64 clients, beside pgbench running
# the same two ledger transactions on the same server in the same run.
#
#   LOYALTY_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432 scripts/bench-postgres.sh
#
# Prints both tables and the ratio loyalty/pgbench per client count.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${LOYALTY_BENCH_PG_URL:?set LOYALTY_BENCH_PG_URL=postgres://user@host:port}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
BIN="${LOYALTY_BIN:-target/release/loyalty}"
[ -x "$BIN" ] || cargo build --release -p loyalty-server
DB="bench_$(date +%s)"
psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
URL="$PG/$DB"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

TOKEN=$("$BIN" staff create --name bench --role admin --database-url "$URL")

start_node() { # port
  "$BIN" serve --database-url "$URL" --listen "127.0.0.1:$1" --log warn --db-pool-size 32 >"$WORK/node-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done
  echo "node on $1 did not start" >&2; exit 1
}
stop_nodes() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

echo "## loyalty, 1 node"
start_node 18101
"$BIN" bench --url http://127.0.0.1:18101 --token "$TOKEN" --clients 16,64 --seconds "$SECONDS_PER_RUN" | tee "$WORK/one.txt"
stop_nodes
echo "## loyalty, 2 nodes (clients spread round-robin)"
start_node 18101
start_node 18102
"$BIN" bench --url http://127.0.0.1:18101,http://127.0.0.1:18102 --token "$TOKEN" --clients 16,64 --seconds "$SECONDS_PER_RUN" | tee "$WORK/two.txt"
stop_nodes

# pgbench: per iteration the same two transactions the server runs for one
# slip — open (insert slip + event) and complete (lock slip, lock account,
# insert ledger entry, update account and slip, three outbox events under
# the sequence counter) — on the same tables.
psql "$URL" -q <<'SQL'
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
UPDATE outbox_sequence SET last = last + 1 WHERE id = 1 RETURNING last AS s1 \gset
INSERT INTO outbox VALUES (:s1, gen_random_uuid(), 'RATING_SLIP_OPENED', 1, 0, 'pgbench', NULL, 'rating_slip', '{}');
END;
BEGIN;
SELECT status FROM rating_slips WHERE id = :slip FOR UPDATE;
SELECT idempotency_key FROM ledger_entries WHERE idempotency_key = 'gameplay:' || :slip::text;
SELECT current_balance AS bal, lifetime_points AS life FROM loyalty_accounts WHERE player_id = :pid FOR UPDATE \gset
UPDATE rating_slips SET status = 'CLOSED', loyalty_status = 'ACCRUED', updated_at = 1 WHERE id = :slip;
INSERT INTO ledger_entries (id, player_id, transaction_type, event_type, points_change, source, rating_slip_id, idempotency_key, balance_before, balance_after, tier_before, tier_after, lifetime_after, correlation_id, created_at)
  VALUES (gen_random_uuid(), :pid, 'GAMEPLAY', 'RATING_SLIP_COMPLETED', :pts, 'rating_slip', :slip, 'gameplay:' || :slip::text, :bal::bigint, :bal::bigint + :pts::bigint, 'BRONZE', 'BRONZE', :life::bigint + :pts::bigint, 'pgbench', 0);
UPDATE loyalty_accounts SET current_balance = current_balance + :pts, lifetime_points = lifetime_points + :pts, entry_count = entry_count + 1 WHERE player_id = :pid;
UPDATE outbox_sequence SET last = last + 3 WHERE id = 1 RETURNING last AS s3 \gset
INSERT INTO outbox VALUES (:s3::bigint - 2, gen_random_uuid(), 'RATING_SLIP_COMPLETED', 1, 0, 'pgbench', NULL, 'rating_slip', '{}'),
                          (:s3::bigint - 1, gen_random_uuid(), 'LEDGER_ENTRY_CREATED', 1, 0, 'pgbench', NULL, 'ledger', '{}'),
                          (:s3, gen_random_uuid(), 'BALANCE_UPDATED', 1, 0, 'pgbench', NULL, 'ledger', '{}');
END;
SQL
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
echo "## pgbench, same transactions (one iteration = open + complete)"
for c in 16 64; do
  tps=$("$PGBENCH" -n -M extended -f "$WORK/slip.sql" -D clients=$c -c $c -j 2 -T "$SECONDS_PER_RUN" "$URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
  echo "pgbench clients=$c tps=$tps" | tee -a "$WORK/pg.txt"
done

echo "## ratio (loyalty completions/s ÷ pgbench iterations/s)"
for c in 16 64; do
  pg=$(awk -v c=$c '$2 == "clients="c {split($3, a, "="); print a[2]}' "$WORK/pg.txt")
  one=$(awk -v c=$c '$1 == "complete" && $2 == c {print $5}' "$WORK/one.txt")
  two=$(awk -v c=$c '$1 == "complete" && $2 == c {print $5}' "$WORK/two.txt")
  awk -v c=$c -v pg="$pg" -v one="$one" -v two="$two" 'BEGIN {printf "clients=%d  1 node: %.2f  2 nodes: %.2f\n", c, one/pg, two/pg}'
done
psql "$PG/postgres" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null || true
