-- Loyalty Ledger, embedded schema v1.
-- Times are INTEGER microseconds since the Unix epoch (UTC); money-like
-- values are exact decimal TEXT; points are INTEGER.

CREATE TABLE staff (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('staff', 'player')),
    subject_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE players (
    id            TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    card_number   TEXT UNIQUE,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE loyalty_accounts (
    player_id        TEXT PRIMARY KEY REFERENCES players(id),
    current_balance  INTEGER NOT NULL CHECK (current_balance >= 0),
    escrow_balance   INTEGER NOT NULL CHECK (escrow_balance >= 0),
    lifetime_points  INTEGER NOT NULL CHECK (lifetime_points >= 0),
    tier             TEXT NOT NULL,
    entry_count      INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE game_tables (
    id                       TEXT PRIMARY KEY,
    name                     TEXT NOT NULL,
    game_type                TEXT NOT NULL,
    house_edge               TEXT NOT NULL,
    average_rounds_per_hour  INTEGER NOT NULL,
    points_conversion_rate   TEXT NOT NULL,
    point_multiplier         TEXT NOT NULL,
    seats_available          INTEGER NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) STRICT;

CREATE TABLE rating_slips (
    id                     TEXT PRIMARY KEY,
    player_id              TEXT NOT NULL REFERENCES players(id),
    table_id               TEXT NOT NULL REFERENCES game_tables(id),
    seat_number            INTEGER,
    status                 TEXT NOT NULL,
    average_bet            TEXT NOT NULL,
    started_at             INTEGER NOT NULL,
    ended_at               INTEGER,
    accumulated_us         INTEGER NOT NULL,
    segment_started_at     INTEGER,
    game_settings          TEXT NOT NULL,
    loyalty_status         TEXT NOT NULL,
    ledger_entry_id        TEXT,
    accrual_attempts       INTEGER NOT NULL,
    next_retry_at          INTEGER,
    opened_by              TEXT,
    closed_correlation_id  TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
) STRICT;
CREATE INDEX rating_slips_pending ON rating_slips(next_retry_at) WHERE loyalty_status = 'PENDING';
CREATE INDEX rating_slips_player ON rating_slips(player_id);

CREATE TABLE ledger_entries (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    player_id         TEXT NOT NULL REFERENCES players(id),
    transaction_type  TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    points_change     INTEGER NOT NULL,
    reason            TEXT,
    source            TEXT NOT NULL,
    staff_id          TEXT,
    rating_slip_id    TEXT,
    idempotency_key   TEXT UNIQUE,
    balance_before    INTEGER NOT NULL,
    balance_after     INTEGER NOT NULL,
    tier_before       TEXT NOT NULL,
    tier_after        TEXT NOT NULL,
    lifetime_after    INTEGER NOT NULL,
    escrow_id         TEXT,
    correlation_id    TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    CHECK (balance_after = balance_before + points_change)
) STRICT;
CREATE INDEX ledger_player ON ledger_entries(player_id, seq);
CREATE INDEX ledger_staff ON ledger_entries(staff_id, seq) WHERE staff_id IS NOT NULL;
CREATE INDEX ledger_correlation ON ledger_entries(correlation_id);
CREATE INDEX ledger_created ON ledger_entries(created_at);
CREATE UNIQUE INDEX ledger_one_gameplay_per_slip
    ON ledger_entries(rating_slip_id) WHERE transaction_type = 'GAMEPLAY';

-- The ledger is append-only: no statement may change or remove an entry.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    version          INTEGER NOT NULL,
    occurred_at      INTEGER NOT NULL,
    correlation_id   TEXT NOT NULL,
    idempotency_key  TEXT,
    source           TEXT NOT NULL,
    payload          TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_type ON outbox(event_type, seq);

CREATE TRIGGER outbox_no_update BEFORE UPDATE ON outbox
BEGIN SELECT RAISE(ABORT, 'the outbox is append-only'); END;

CREATE TABLE idempotency_records (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency_records(created_at);
