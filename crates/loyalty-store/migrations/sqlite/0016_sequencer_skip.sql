-- Loyalty Ledger, SQLite schema v16: nothing changes here. Version 16 lets
-- PostgreSQL's event sequencer skip a pass another node has made unneeded;
-- the embedded store numbers events in its one writer as it commits them.
SELECT 1;
