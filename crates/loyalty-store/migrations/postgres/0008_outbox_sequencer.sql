-- Loyalty Ledger, PostgreSQL schema v8: events are numbered after commit.
--
-- Writers no longer take a counter row: each writing transaction appends
-- its events to `outbox_pending` (numbered only by a bigserial, which takes
-- no lock that lasts past the insert), and a sequencer moves committed rows
-- into `outbox`, giving them the gap-free public `seq` in one short
-- transaction of its own, serialised by an advisory lock that only
-- sequencers take (ARCHITECTURE.md, "Event numbering on PostgreSQL").
-- (No unique index on event_id here: `outbox` has one, and every pending
-- row passes through it; one index fewer to write per event.)
CREATE TABLE outbox_pending (
    id               BIGSERIAL PRIMARY KEY,
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    version          INT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    correlation_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    source           TEXT NOT NULL,
    payload          JSONB NOT NULL,
    -- When the row was written (just before its transaction commits): the
    -- sequencer reports commit-to-visibility delay from it.
    written_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- `outbox_sequence` stays: the sequencer takes each batch's numbers from it
-- in its own short transaction, so nodes of the previous version, which
-- take their numbers there at commit, keep numbering consistently with new
-- nodes during a rolling upgrade.
