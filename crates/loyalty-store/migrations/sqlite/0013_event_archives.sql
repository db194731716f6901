-- Loyalty Ledger, embedded schema v13: event archives (docs/events.md,
-- "Retention"). Events older than the retention that every durable
-- subscriber, the relay and every webhook has passed may move from the
-- outbox into an archive file; this table records each file (its range,
-- size and SHA-256), so `loyalty export --events` and `loyalty verify` can
-- read and check them. The outbox stays append-only for everything else:
-- an event may leave it only once an archive covering it is recorded.
CREATE TABLE event_archives (
    id           INTEGER PRIMARY KEY,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL UNIQUE,
    events       INTEGER NOT NULL CHECK (events = last_seq - first_seq + 1),
    file         TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    archived_at  INTEGER NOT NULL,
    CHECK (first_seq >= 1 AND last_seq >= first_seq)
) STRICT;
CREATE TRIGGER event_archives_no_update BEFORE UPDATE ON event_archives
BEGIN SELECT RAISE(ABORT, 'event archives are append-only'); END;
CREATE TRIGGER event_archives_no_delete BEFORE DELETE ON event_archives
BEGIN SELECT RAISE(ABORT, 'event archives are append-only'); END;
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
WHEN OLD.seq > (SELECT coalesce(max(last_seq), 0) FROM event_archives)
BEGIN SELECT RAISE(ABORT, 'the outbox is append-only: only archived events may leave it'); END;

-- Activity items point at outbox events by seq. The foreign key goes: SQLite
-- (and PostgreSQL) would look for children of every deleted outbox row in a
-- table with no index on event_seq — a scan per event archived. Archiving
-- deletes each archived event's items by their key instead; the feed joins
-- the outbox, so it never shows an item without its event.
CREATE TABLE activity_items_v13 (
    player_id  TEXT NOT NULL,
    event_seq  INTEGER NOT NULL,
    PRIMARY KEY (player_id, event_seq)
) STRICT, WITHOUT ROWID;
INSERT INTO activity_items_v13 (player_id, event_seq)
    SELECT player_id, event_seq FROM activity_items;
DROP TABLE activity_items;
ALTER TABLE activity_items_v13 RENAME TO activity_items;
