-- Loyalty Ledger, PostgreSQL schema v3: a compact activity feed.
-- The activity feed subscriber keeps one key per (player, event); the
-- event itself is read from the outbox when the feed is shown. The primary
-- key makes a redelivery change nothing.
CREATE TABLE activity_items (
    player_id  UUID NOT NULL,
    event_seq  BIGINT NOT NULL REFERENCES outbox(seq),
    PRIMARY KEY (player_id, event_seq)
);

INSERT INTO activity_items (player_id, event_seq)
    SELECT player_id, event_seq FROM player_feed_items WHERE feed = 'activity';
DELETE FROM player_feed_items WHERE feed = 'activity';
