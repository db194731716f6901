-- Loyalty Ledger, PostgreSQL schema v1 (same model as the embedded schema).
-- Times are BIGINT microseconds since the Unix epoch (UTC); money-like values
-- are exact decimal TEXT; points are BIGINT.

CREATE TABLE staff (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('staff', 'player')),
    subject_id  UUID NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE players (
    id            UUID PRIMARY KEY,
    display_name  TEXT NOT NULL,
    card_number   TEXT UNIQUE,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE loyalty_accounts (
    player_id        UUID PRIMARY KEY REFERENCES players(id),
    current_balance  BIGINT NOT NULL CHECK (current_balance >= 0),
    escrow_balance   BIGINT NOT NULL CHECK (escrow_balance >= 0),
    lifetime_points  BIGINT NOT NULL CHECK (lifetime_points >= 0),
    tier             TEXT NOT NULL,
    entry_count      BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE game_tables (
    id                       UUID PRIMARY KEY,
    name                     TEXT NOT NULL,
    game_type                TEXT NOT NULL,
    house_edge               TEXT NOT NULL,
    average_rounds_per_hour  BIGINT NOT NULL,
    points_conversion_rate   TEXT NOT NULL,
    point_multiplier         TEXT NOT NULL,
    seats_available          BIGINT NOT NULL,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);

CREATE TABLE rating_slips (
    id                     UUID PRIMARY KEY,
    player_id              UUID NOT NULL REFERENCES players(id),
    table_id               UUID NOT NULL REFERENCES game_tables(id),
    seat_number            BIGINT,
    status                 TEXT NOT NULL,
    average_bet            TEXT NOT NULL,
    started_at             BIGINT NOT NULL,
    ended_at               BIGINT,
    accumulated_us         BIGINT NOT NULL,
    segment_started_at     BIGINT,
    game_settings          TEXT NOT NULL,
    loyalty_status         TEXT NOT NULL,
    ledger_entry_id        UUID,
    accrual_attempts       BIGINT NOT NULL,
    next_retry_at          BIGINT,
    opened_by              UUID,
    closed_correlation_id  TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX rating_slips_pending ON rating_slips(next_retry_at) WHERE loyalty_status = 'PENDING';
CREATE INDEX rating_slips_player ON rating_slips(player_id);

CREATE TABLE ledger_entries (
    seq               BIGSERIAL PRIMARY KEY,
    id                UUID NOT NULL UNIQUE,
    player_id         UUID NOT NULL REFERENCES players(id),
    transaction_type  TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    points_change     BIGINT NOT NULL,
    reason            TEXT,
    source            TEXT NOT NULL,
    staff_id          UUID,
    rating_slip_id    UUID,
    idempotency_key   TEXT UNIQUE,
    balance_before    BIGINT NOT NULL,
    balance_after     BIGINT NOT NULL,
    tier_before       TEXT NOT NULL,
    tier_after        TEXT NOT NULL,
    lifetime_after    BIGINT NOT NULL,
    escrow_id         UUID,
    correlation_id    TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    CHECK (balance_after = balance_before + points_change)
);
CREATE INDEX ledger_player ON ledger_entries(player_id, seq);
CREATE INDEX ledger_staff ON ledger_entries(staff_id, seq) WHERE staff_id IS NOT NULL;
CREATE INDEX ledger_correlation ON ledger_entries(correlation_id, seq);
CREATE INDEX ledger_created ON ledger_entries(created_at);
CREATE UNIQUE INDEX ledger_one_gameplay_per_slip
    ON ledger_entries(rating_slip_id) WHERE transaction_type = 'GAMEPLAY';

-- The ledger is append-only, for every role including the owner.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON ledger_entries FROM PUBLIC;

-- Gap-free outbox sequence: one counter row, locked by each writing
-- transaction until it commits, so sequence order is commit order.
CREATE TABLE outbox_sequence (
    id    INT PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO outbox_sequence (id, last) VALUES (1, 0);

CREATE TABLE outbox (
    seq              BIGINT PRIMARY KEY,
    event_id         UUID NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    version          INT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    correlation_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    source           TEXT NOT NULL,
    payload          JSONB NOT NULL
);
CREATE INDEX outbox_type ON outbox(event_type, seq);
CREATE TRIGGER outbox_no_update BEFORE UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE idempotency_records (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INT NOT NULL,
    body         BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency_records(created_at);

-- Test mode only: the clock set by PUT /v1/test/clock, shared by every node.
-- `set_at` is the database clock when it was set; nodes run it forward from
-- there with the database clock.
CREATE TABLE test_clock (
    id      INT PRIMARY KEY CHECK (id = 1),
    set_to  BIGINT NOT NULL,
    set_at  BIGINT NOT NULL
);
