-- Loyalty Ledger, embedded schema v2: event dispatch.
-- Subscriber checkpoints, dead letters, what the shipped subscribers keep
-- (player feeds: tier notifications and activity; alerts) and leases that
-- let one node at a time run a cluster-wide task.

-- The last outbox seq each subscriber (or relay) has fully handled.
CREATE TABLE subscriber_checkpoints (
    subscriber  TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    updated_at  INTEGER NOT NULL
) STRICT;

-- An event a subscriber could not handle after its last attempt.
-- status: DEAD, REPLAY_REQUESTED, REPLAYED.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    subscriber  TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    error       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (subscriber, event_seq)
) STRICT;
CREATE INDEX dead_letters_status ON dead_letters(subscriber, status);

-- Per-player feeds written by subscribers: `notifications` (tier changes)
-- and `activity`. One item per (feed, event): a redelivery changes nothing.
CREATE TABLE player_feed_items (
    id           INTEGER PRIMARY KEY,
    feed         TEXT NOT NULL,
    player_id    TEXT NOT NULL,
    event_seq    INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    data         TEXT NOT NULL,
    UNIQUE (feed, event_id)
) STRICT;
CREATE INDEX player_feed_items_player ON player_feed_items(feed, player_id, event_seq);

-- Raised alerts. One per triggering event.
CREATE TABLE alerts (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    staff_id        TEXT NOT NULL,
    count           INTEGER NOT NULL,
    window_seconds  INTEGER NOT NULL,
    window_start    INTEGER NOT NULL,
    occurred_at     INTEGER NOT NULL,
    trigger_event_id TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX alerts_staff ON alerts(kind, staff_id, occurred_at);

-- Who runs a cluster-wide task (a relay, a subscriber) until when, by the
-- database's clock (microseconds).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

-- Manual rewards of one staff member in a time window (the frequency alert).
CREATE INDEX ledger_staff_created ON ledger_entries(staff_id, created_at) WHERE staff_id IS NOT NULL;
