-- Loyalty Ledger, PostgreSQL schema v7: the per-player hash chain
-- (docs/audit.md). Existing entries get their hashes right after this
-- script, from the binary, with the same code that hashes new entries.
ALTER TABLE ledger_entries ADD COLUMN prev_hash TEXT;
ALTER TABLE ledger_entries ADD COLUMN hash TEXT;
