-- Loyalty Ledger, SQLite schema v10: every entry records how it moved the
-- player's escrow balance, so balances as of any instant (`as_of`) and
-- settled redemptions (the comps report) come from the entries themselves.
-- A hold moves +amount into escrow, a capture -captured, a refund -refunded;
-- existing entries get theirs from their own points (holds, refunds) and
-- from their capture's event (captures, whose points_change is 0). The
-- append-only guard is lifted for this one transaction and put back.
ALTER TABLE ledger_entries ADD COLUMN escrow_change INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER ledger_entries_no_update;
UPDATE ledger_entries SET escrow_change = -points_change
    WHERE transaction_type IN ('ESCROW_HOLD', 'ESCROW_REFUND');
UPDATE ledger_entries SET escrow_change = -COALESCE((
        SELECT CAST(json_extract(o.payload, '$.captured') AS INTEGER) FROM outbox o
        WHERE o.event_type IN ('ESCROW_SETTLED', 'ESCROW_PARTIAL_SETTLED')
          AND json_extract(o.payload, '$.capture_entry_id') = ledger_entries.id), 0)
    WHERE transaction_type = 'ESCROW_SETTLE';
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
