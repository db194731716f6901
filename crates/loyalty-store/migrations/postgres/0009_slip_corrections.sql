-- Loyalty Ledger, schema v9: voids and corrections of closed slips
-- (DESIGN §3.2). A slip keeps its history of corrections; a correction
-- writes a GAMEPLAY_REVERSAL and a new GAMEPLAY entry keyed
-- `gameplay:{slip}:correction:{n}`, so the one-accrual-per-slip index now
-- covers the slip's first accrual only (corrections are unique by key, and
-- serialised by the slip's row).
ALTER TABLE rating_slips ADD COLUMN corrections TEXT NOT NULL DEFAULT '[]';
DROP INDEX ledger_one_gameplay_per_slip;
CREATE UNIQUE INDEX ledger_one_gameplay_per_slip
    ON ledger_entries(rating_slip_id)
    WHERE transaction_type = 'GAMEPLAY' AND idempotency_key NOT LIKE 'gameplay:%:correction:%';
