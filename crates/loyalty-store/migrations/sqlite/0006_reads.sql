-- Loyalty Ledger, embedded schema v6: what the console reads.
-- Finding a player by name: a trigram full-text index over display names
-- (case-insensitive substring search of 3 characters or more without a scan
-- of the players), kept in step with the table by triggers. Card numbers
-- are found by prefix through their unique index (a range scan).
CREATE VIRTUAL TABLE players_name_fts USING fts5(
    display_name,
    content = 'players',
    content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO players_name_fts (players_name_fts) VALUES ('rebuild');
CREATE TRIGGER players_name_fts_insert AFTER INSERT ON players BEGIN
    INSERT INTO players_name_fts (rowid, display_name) VALUES (new.rowid, new.display_name);
END;
CREATE TRIGGER players_name_fts_update AFTER UPDATE OF display_name ON players BEGIN
    INSERT INTO players_name_fts (players_name_fts, rowid, display_name)
        VALUES ('delete', old.rowid, old.display_name);
    INSERT INTO players_name_fts (rowid, display_name) VALUES (new.rowid, new.display_name);
END;
CREATE TRIGGER players_name_fts_delete AFTER DELETE ON players BEGIN
    INSERT INTO players_name_fts (players_name_fts, rowid, display_name)
        VALUES ('delete', old.rowid, old.display_name);
END;

-- Lists of slips by table or status, newest first.
CREATE INDEX rating_slips_table ON rating_slips(table_id, id);
CREATE INDEX rating_slips_status ON rating_slips(status, id);
-- Manual rewards per staff member over time (the frequency report).
CREATE INDEX ledger_manual_created ON ledger_entries(created_at)
    WHERE transaction_type IN ('MANUAL_BONUS', 'ADJUSTMENT');
