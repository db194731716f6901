#!/usr/bin/env bash
# `loyalty seed` beside the raw SQLite posting floor doing the same number of
# postings per commit over the same number of players, in one run. Rounds
# alternate (seed, floor, seed, floor, …) so background load hits both
# alike; medians and their ratio are reported, with the seed's CPU per
# entry (user + system, from /usr/bin/time) and peak RSS.
#
# The seed writes each entry through the real operation (`manual_reward`):
# account read and idempotency check, the ledger row and its eight indexes,
# the balance and tier, the player's hash chain, and three events. The
# floor's posting is one account read, one ledger row with two indexes and
# one account update (../shared/perf/floors).
# Usage: scripts/bench-seed.sh [PLAYERS] [ENTRIES] [ROUNDS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
PLAYERS=${1:-2000}
ENTRIES=${2:-200000}
ROUNDS=${3:-2}
FLOOR=${LOYALTY_FLOOR_BIN:-$HOME/.cache/floors/release/sqlite_posting}
# Entries per seed transaction (SEED_BATCH in src/commands.rs).
BATCH=5000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: loyalty seed --players $PLAYERS --entries $ENTRIES" >&2
  /usr/bin/time -f "%U %S %M" -o "$work/time" \
    "$BIN" seed --data-dir "$work/data" --players "$PLAYERS" --entries "$ENTRIES" >"$work/seed.out"
  cat "$work/seed.out" >&2
  sed -n 's/.*"entries_per_second":\([0-9.]*\).*/\1/p' "$work/seed.out" >>"$work/seed.all"
  awk -v n="$ENTRIES" '{printf "%.1f\n", ($1 + $2) * 1e6 / n}' "$work/time" >>"$work/cpu.all"
  awk '{print $3}' "$work/time" >>"$work/rss.all"
  rm -rf "$work/data"
  if [ -x "$FLOOR" ]; then
    out=$("$FLOOR" "$work/floor.db" FULL "$BATCH" "$PLAYERS" 10 2>&1)
    echo "$out" >&2
    echo "$out" | sed -n 's/.*postings_per_s=\([0-9]*\).*/\1/p' >>"$work/floor.all"
    rm -f "$work"/floor.db*
  fi
done
seed=$(median <"$work/seed.all")
echo "seed entries/s, per round: $(tr '\n' ' ' <"$work/seed.all")"
echo "seed entries/s, median: $seed; CPU per entry, median: $(median <"$work/cpu.all") µs;" \
  "peak RSS, median: $(median <"$work/rss.all") KiB"
if [ -s "$work/floor.all" ]; then
  floor=$(median <"$work/floor.all")
  echo "SQLite floor postings/s ($BATCH per commit, $PLAYERS players), per round: $(tr '\n' ' ' <"$work/floor.all")"
  echo "seed entries/s / floor postings/s: $(awk -v a="$seed" -v b="$floor" 'BEGIN {printf "%.3f", a / b}')"
else
  echo "(no floor: build ../shared/perf/floors, see its README)"
fi
