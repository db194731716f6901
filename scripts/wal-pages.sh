#!/usr/bin/env bash
# Which tables and indexes a commit writes, on the embedded profile: runs
# `loyalty bench` against a fresh server, stops the server with SIGKILL mid-
# load (so the write-ahead log is left as it was), and maps every WAL frame
# since the log last started over to the b-tree its page belongs to
# (SQLite's dbstat). Prints pages per commit, largest first.
# Usage: scripts/wal-pages.sh [CLIENTS]   (after cargo build --release; needs python3)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOYALTY_BIN:-target/release/loyalty}
CLIENTS=${1:-16}
PORT=${LOYALTY_BENCH_PORT:-18306}
work=$(mktemp -d)
trap 'kill -9 "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
token=$("$BIN" staff create --name bench --role admin --data-dir "$work/data")
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" --log warn >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
"$BIN" bench --url "http://127.0.0.1:$PORT" --token "$token" --clients "$CLIENTS" --seconds 6 \
  >/dev/null 2>&1 &
bench=$!
sleep 4.5
{ kill -9 "$pid"; wait "$pid"; wait "$bench"; } 2>/dev/null || true
mkdir "$work/copy"
cp "$work/data/loyalty.db" "$work/data/loyalty.db-wal" "$work/copy/"
python3 - "$work/copy/loyalty.db" <<'PY'
import collections, sqlite3, struct, sys
db = sys.argv[1]
wal = open(db + "-wal", "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", wal[:32])
frames, commits, off = [], 0, 32
while off + 24 + page_size <= len(wal):
    page, db_size, s1, s2 = struct.unpack(">IIII", wal[off:off + 16])
    if (s1, s2) != (salt1, salt2):
        break
    frames.append(page)
    commits += db_size > 0
    off += 24 + page_size
owner = dict((p, n) for n, p in sqlite3.connect(db).execute("SELECT name, pageno FROM dbstat"))
counts = collections.Counter(owner.get(p, "?") for p in frames)
commits = max(commits, 1)
print(f"page size {page_size}: {len(frames)} frames, {commits} commits, "
      f"{len(frames) / commits:.1f} pages per commit")
for name, n in counts.most_common(25):
    print(f"{n / commits:7.2f}  {name}")
PY
