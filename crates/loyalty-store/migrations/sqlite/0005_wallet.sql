-- Loyalty Ledger, embedded schema v5: the wallet (DESIGN §3.5).
-- A merchant's earnings are the points settled to it; an escrow holds a
-- player's points for a merchant until it is settled, refunded or expires.
-- `seq` orders rows for paging; `version` is the optimistic-concurrency
-- counter every change increments.
CREATE TABLE merchants (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    earnings    INTEGER NOT NULL CHECK (earnings >= 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE escrows (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    player_id        TEXT NOT NULL REFERENCES players(id),
    merchant_id      TEXT NOT NULL REFERENCES merchants(id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    settled_amount   INTEGER NOT NULL CHECK (settled_amount >= 0),
    refunded_amount  INTEGER NOT NULL CHECK (refunded_amount >= 0),
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    reference        TEXT,
    expires_at       INTEGER,
    created_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    CHECK (settled_amount + refunded_amount <= amount)
) STRICT;
CREATE INDEX escrows_player ON escrows(player_id, seq);
CREATE INDEX escrows_due ON escrows(expires_at) WHERE status = 'HELD';
CREATE INDEX escrows_merchant ON escrows(merchant_id);
CREATE INDEX ledger_escrow ON ledger_entries(escrow_id) WHERE escrow_id IS NOT NULL;
