-- Loyalty Ledger, PostgreSQL schema v12: signed webhooks (DESIGN §6). An
-- endpoint's secret is kept sealed (XOR with a keystream derived from the
-- server key and the endpoint's id), never in plaintext; every delivery
-- attempt is recorded for GET /v1/webhooks/{id}/deliveries.
CREATE TABLE webhooks (
    seq            BIGSERIAL PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    url            TEXT NOT NULL,
    event_types    TEXT,
    description    TEXT,
    secret_sealed  TEXT NOT NULL,
    created_by     UUID,
    created_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE TABLE webhook_deliveries (
    id             BIGSERIAL PRIMARY KEY,
    webhook_id     UUID NOT NULL,
    event_seq      BIGINT NOT NULL,
    event_id       UUID NOT NULL,
    attempt        INTEGER NOT NULL,
    status_code    INTEGER,
    ok             BOOLEAN NOT NULL,
    duration_ms    BIGINT NOT NULL,
    error          TEXT,
    at             BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, id);
