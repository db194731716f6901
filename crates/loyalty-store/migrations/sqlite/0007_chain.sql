-- Loyalty Ledger, embedded schema v7: the per-player hash chain
-- (docs/audit.md). Existing entries get their hashes right after this
-- script, from the binary (SQLite has no SHA-256 of its own).
ALTER TABLE ledger_entries ADD COLUMN prev_hash TEXT;
ALTER TABLE ledger_entries ADD COLUMN hash TEXT;
