#!/usr/bin/env python3
"""Recomputes every hash of a Loyalty Ledger JSON-lines export.

Independent of the server: Python's standard library only, following the
encoding of docs/audit.md. Entries must be in ledger order (the export's
order). Prints one line per broken link and a summary; exits 1 if any link
is broken, 0 otherwise.

    loyalty export --format jsonl > ledger.jsonl
    python3 scripts/verify-chain.py ledger.jsonl
"""
import hashlib
import json
import sys
from datetime import datetime, timezone

GENESIS = "0" * 64
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FIELDS = [
    "prev_hash", "id", "player_id", "transaction_type", "event_type", "points_change",
    "reason", "source", "staff_id", "rating_slip_id", "idempotency_key", "escrow_id",
    "balance_before", "balance_after", "tier_before", "tier_after", "lifetime_after",
    "correlation_id",
]


def micros(rfc3339):
    """Microseconds since the Unix epoch of an RFC 3339 UTC instant, exactly."""
    delta = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical(entry):
    values = ["loyalty-ledger-entry-v1"] + [entry[f] for f in FIELDS] + [micros(entry["created_at"])]
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def main():
    source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    heads, entries, broken = {}, 0, 0
    for line in source:
        if not line.strip():
            continue
        entry = json.loads(line)
        entries += 1
        player = entry["player_id"]
        if entry["prev_hash"] != heads.get(player, GENESIS):
            print(f"CHAIN_BROKEN player {player} entry {entry['id']}: prev_hash is not the previous entry's hash")
            broken += 1
        elif hashlib.sha256(canonical(entry).encode("utf-8")).hexdigest() != entry["hash"]:
            print(f"CHAIN_BROKEN player {player} entry {entry['id']}: hash does not match the entry")
            broken += 1
        heads[player] = entry["hash"]
    print(f"{entries} entries, {len(heads)} players, {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
