-- Loyalty Ledger, PostgreSQL schema v2: event dispatch.
-- Subscriber checkpoints, dead letters, what the shipped subscribers keep
-- (player feeds: tier notifications and activity; alerts) and leases that
-- let one node at a time run a cluster-wide task.

-- The last outbox seq each subscriber (or relay) has fully handled.
CREATE TABLE subscriber_checkpoints (
    subscriber  TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL CHECK (seq >= 0),
    updated_at  BIGINT NOT NULL
);

-- An event a subscriber could not handle after its last attempt.
-- status: DEAD, REPLAY_REQUESTED, REPLAYED.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    subscriber  TEXT NOT NULL,
    event_seq   BIGINT NOT NULL,
    event_id    UUID NOT NULL,
    event_type  TEXT NOT NULL,
    error       TEXT NOT NULL,
    attempts    INT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (subscriber, event_seq)
);
CREATE INDEX dead_letters_status ON dead_letters(subscriber, status);

-- Per-player feeds written by subscribers: `notifications` (tier changes)
-- and `activity`. One item per (feed, event): a redelivery changes nothing.
CREATE TABLE player_feed_items (
    id           BIGSERIAL PRIMARY KEY,
    feed         TEXT NOT NULL,
    player_id    UUID NOT NULL,
    event_seq    BIGINT NOT NULL,
    event_id     UUID NOT NULL,
    event_type   TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    data         JSONB NOT NULL,
    UNIQUE (feed, event_id)
);
CREATE INDEX player_feed_items_player ON player_feed_items(feed, player_id, event_seq);

-- Raised alerts. One per triggering event.
CREATE TABLE alerts (
    seq              BIGSERIAL PRIMARY KEY,
    id               UUID NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    staff_id         UUID NOT NULL,
    count            BIGINT NOT NULL,
    window_seconds   BIGINT NOT NULL,
    window_start     BIGINT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    trigger_event_id UUID NOT NULL UNIQUE,
    event_id         UUID NOT NULL,
    correlation_id   TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX alerts_staff ON alerts(kind, staff_id, occurred_at);

-- Who runs a cluster-wide task (a relay, a subscriber) until when, by the
-- database's clock (microseconds).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Manual rewards of one staff member in a time window (the frequency alert).
CREATE INDEX ledger_staff_created ON ledger_entries(staff_id, created_at) WHERE staff_id IS NOT NULL;
