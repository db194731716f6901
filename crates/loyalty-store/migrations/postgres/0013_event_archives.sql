-- Loyalty Ledger, PostgreSQL schema v13: event archives (docs/events.md,
-- "Retention"). Events older than the retention that every durable
-- subscriber, the relay and every webhook has passed may move from the
-- outbox into an archive file; this table records each file (its range,
-- size and SHA-256), so `loyalty export --events` and `loyalty verify` can
-- read and check them. The outbox stays append-only for everything else:
-- an event may leave it only once an archive covering it is recorded.
CREATE TABLE event_archives (
    id           BIGSERIAL PRIMARY KEY,
    first_seq    BIGINT NOT NULL,
    last_seq     BIGINT NOT NULL UNIQUE,
    events       BIGINT NOT NULL CHECK (events = last_seq - first_seq + 1),
    file         TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    archived_at  BIGINT NOT NULL,
    CHECK (first_seq >= 1 AND last_seq >= first_seq)
);
CREATE FUNCTION event_archives_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event archives are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER event_archives_no_update BEFORE UPDATE OR DELETE ON event_archives
    FOR EACH ROW EXECUTE FUNCTION event_archives_append_only();
CREATE TRIGGER event_archives_no_truncate BEFORE TRUNCATE ON event_archives
    FOR EACH STATEMENT EXECUTE FUNCTION event_archives_append_only();

CREATE FUNCTION outbox_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.seq <= (SELECT coalesce(max(last_seq), 0) FROM event_archives) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the outbox is append-only: only archived events may leave it'
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER outbox_no_update ON outbox;
CREATE TRIGGER outbox_no_update BEFORE UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_archived_only();

-- Activity items point at outbox events by seq. The foreign key goes: it
-- would look for children of every deleted outbox row in a table with no
-- index on event_seq — a scan per event archived. Archiving deletes each
-- archived event's items by their key instead; the feed joins the outbox,
-- so it never shows an item without its event.
ALTER TABLE activity_items DROP CONSTRAINT activity_items_event_seq_fkey;
