-- Loyalty Ledger, PostgreSQL schema v6: what the console reads.
-- Finding a player by name: a trigram GIN index over the lower-cased
-- display name serves case-insensitive substring search (3 characters or
-- more) without a scan; card numbers are found by prefix through a
-- text_pattern_ops index, whatever the database's collation.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX players_name_trgm ON players USING gin (lower(display_name) gin_trgm_ops);
CREATE INDEX players_card_prefix ON players (card_number text_pattern_ops);

CREATE INDEX rating_slips_table ON rating_slips(table_id, id);
CREATE INDEX rating_slips_status ON rating_slips(status, id);
CREATE INDEX ledger_manual_created ON ledger_entries(created_at)
    WHERE transaction_type IN ('MANUAL_BONUS', 'ADJUSTMENT');
