-- Loyalty Ledger, SQLite schema v14: nothing changes here. Version 14 makes
-- PostgreSQL's event sequencer pass a stored function; the embedded store
-- numbers events in its one writer as it commits them.
SELECT 1;
