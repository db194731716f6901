-- Loyalty Ledger, PostgreSQL schema v10: every entry records how it moved
-- the player's escrow balance, so balances as of any instant (`as_of`) and
-- settled redemptions (the comps report) come from the entries themselves.
-- A hold moves +amount into escrow, a capture -captured, a refund -refunded;
-- existing entries get theirs from their own points (holds, refunds) and
-- from their capture's event (captures, whose points_change is 0).
ALTER TABLE ledger_entries ADD COLUMN escrow_change BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update;
UPDATE ledger_entries SET escrow_change = -points_change
    WHERE transaction_type IN ('ESCROW_HOLD', 'ESCROW_REFUND');
UPDATE ledger_entries l SET escrow_change = -(o.payload->>'captured')::BIGINT
    FROM (SELECT event_type, payload FROM outbox
          UNION ALL SELECT event_type, payload FROM outbox_pending) o
    WHERE l.transaction_type = 'ESCROW_SETTLE'
      AND o.event_type IN ('ESCROW_SETTLED', 'ESCROW_PARTIAL_SETTLED')
      AND o.payload->>'capture_entry_id' = l.id::text;
ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update;
