-- Loyalty Ledger, PostgreSQL schema v4: revocation and server keys.
-- A revoked token keeps its row (when it was revoked is part of the audit
-- trail); a disabled staff member keeps theirs, so past ledger entries still
-- name them. Server keys are random secrets generated once and shared by
-- every process on this database (e.g. the key that signs ledger cursors).
ALTER TABLE staff ADD COLUMN disabled_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
CREATE INDEX tokens_subject ON tokens(subject_id);

CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
