-- Loyalty Ledger, SQLite schema v12: signed webhooks (DESIGN §6). An
-- endpoint's secret is kept sealed (XOR with a keystream derived from the
-- server key and the endpoint's id), never in plaintext; every delivery
-- attempt is recorded for GET /v1/webhooks/{id}/deliveries.
CREATE TABLE webhooks (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    url            TEXT NOT NULL,
    event_types    TEXT,
    description    TEXT,
    secret_sealed  TEXT NOT NULL,
    created_by     TEXT,
    created_at     INTEGER NOT NULL,
    deleted_at     INTEGER
) STRICT;
CREATE TABLE webhook_deliveries (
    id             INTEGER PRIMARY KEY,
    webhook_id     TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    event_id       TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    status_code    INTEGER,
    ok             INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    error          TEXT,
    at             INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, id);
