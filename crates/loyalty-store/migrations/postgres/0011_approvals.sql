-- Loyalty Ledger, PostgreSQL schema v11: dual control (DESIGN §9). A
-- manual reward or adjustment at or above `--dual-control-threshold`
-- waits here until another staff member approves it (the entry is then
-- written, carrying both staff ids) or it is rejected, withdrawn or lapses.
CREATE TABLE approvals (
    seq              BIGSERIAL PRIMARY KEY,
    id               UUID NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    player_id        UUID NOT NULL REFERENCES players(id),
    points           BIGINT NOT NULL,
    reason           TEXT NOT NULL,
    rating_slip_id   UUID,
    reward_key       TEXT NOT NULL UNIQUE,
    requested_by     UUID NOT NULL,
    requested_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    decided_by       UUID,
    decided_at       BIGINT,
    decision_reason  TEXT,
    ledger_entry_id  UUID,
    correlation_id   TEXT NOT NULL
);
CREATE INDEX approvals_status ON approvals(status, seq);
CREATE INDEX approvals_requested_by ON approvals(requested_by, requested_at);
ALTER TABLE ledger_entries ADD COLUMN approved_by UUID;
