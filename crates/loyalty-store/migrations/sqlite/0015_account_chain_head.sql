-- Loyalty Ledger, schema v15: each account keeps its player's chain head
-- (the newest entry's `hash`), written with the balances in the entry's
-- transaction, so appending an entry no longer reads the player's newest
-- ledger row for its `prev_hash`. NULL until the player's next entry (that
-- entry reads the head from the ledger once, as before).
ALTER TABLE loyalty_accounts ADD COLUMN chain_head TEXT;
