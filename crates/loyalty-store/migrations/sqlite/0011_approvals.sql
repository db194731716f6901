-- Loyalty Ledger, SQLite schema v11: dual control (DESIGN §9). A manual
-- reward or adjustment at or above `--dual-control-threshold` waits here
-- until another staff member approves it (the entry is then written,
-- carrying both staff ids) or it is rejected, withdrawn or lapses.
CREATE TABLE approvals (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    player_id        TEXT NOT NULL REFERENCES players(id),
    points           INTEGER NOT NULL,
    reason           TEXT NOT NULL,
    rating_slip_id   TEXT,
    reward_key       TEXT NOT NULL UNIQUE,
    requested_by     TEXT NOT NULL,
    requested_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_reason  TEXT,
    ledger_entry_id  TEXT,
    correlation_id   TEXT NOT NULL
) STRICT;
CREATE INDEX approvals_status ON approvals(status, seq);
CREATE INDEX approvals_requested_by ON approvals(requested_by, requested_at);
ALTER TABLE ledger_entries ADD COLUMN approved_by TEXT;
