-- Loyalty Ledger, embedded schema v3: a compact activity feed.
-- The activity feed subscriber keeps one key per (player, event); the
-- event itself is read from the outbox when the feed is shown. One row in
-- one B-tree per event, where a copied item cost a row, two indexes and
-- the payload again. The primary key makes a redelivery change nothing.
CREATE TABLE activity_items (
    player_id  TEXT NOT NULL,
    event_seq  INTEGER NOT NULL REFERENCES outbox(seq),
    PRIMARY KEY (player_id, event_seq)
) STRICT, WITHOUT ROWID;

INSERT INTO activity_items (player_id, event_seq)
    SELECT player_id, event_seq FROM player_feed_items WHERE feed = 'activity';
DELETE FROM player_feed_items WHERE feed = 'activity';
