//! Statement text both backends run as written: SQLite and PostgreSQL
//! agree on it except for the placeholder style, and it is kept here in
//! SQLite's (`?1`); PostgreSQL's statement cache rewrites `?N` to `$N` once,
//! when it prepares a statement (`postgres::tx::pg_placeholders`). The
//! statements whose dialects differ (upserts, `RETURNING`, locking, JSON and
//! time functions, index hints) stay in each backend's `tx.rs`.

/// `Tx::insert_staff`.
pub(crate) const INSERT_STAFF: &str =
    "INSERT INTO staff (id, name, role, created_at) VALUES (?1, ?2, ?3, ?4)";

/// `Tx::staff`.
pub(crate) const STAFF: &str =
    "SELECT id, name, role, created_at, disabled_at FROM staff WHERE id = ?1";

/// `Tx::insert_token`.
pub(crate) const INSERT_TOKEN: &str =
    "INSERT INTO tokens (hash, kind, subject_id, created_at) VALUES (?1, ?2, ?3, ?4)";

/// `Tx::token`.
pub(crate) const TOKEN: &str =
    "SELECT kind, subject_id FROM tokens WHERE hash = ?1 AND revoked_at IS NULL";

/// `Tx::revoke_token`.
pub(crate) const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = ?2 WHERE hash = ?1 AND revoked_at IS NULL";

/// `Tx::revoke_subject_tokens`.
pub(crate) const REVOKE_SUBJECT_TOKENS: &str =
    "UPDATE tokens SET revoked_at = ?3 WHERE subject_id = ?2 AND kind = ?1 AND revoked_at IS NULL";

/// `Tx::disable_staff`.
pub(crate) const DISABLE_STAFF: &str =
    "UPDATE staff SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL";

/// `Tx::disable_staff`.
pub(crate) const STAFF_EXISTS: &str = "SELECT 1 FROM staff WHERE id = ?1";

/// `Tx::server_key`.
pub(crate) const INSERT_SERVER_KEY: &str = "INSERT INTO server_keys (name, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING";

/// `Tx::server_key`.
pub(crate) const SERVER_KEY: &str = "SELECT value FROM server_keys WHERE name = ?1";

/// `Tx::insert_player`.
pub(crate) const INSERT_PLAYER: &str =
    "INSERT INTO players (id, display_name, card_number, status, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// `Tx::player`.
pub(crate) const PLAYER: &str =
    "SELECT id, display_name, card_number, status, created_at FROM players WHERE id = ?1";

/// `Tx::update_account`.
pub(crate) const UPDATE_ACCOUNT: &str =
    "UPDATE loyalty_accounts SET current_balance = ?2, escrow_balance = ?3,
     lifetime_points = ?4, tier = ?5, entry_count = ?6, updated_at = ?7,
     chain_head = COALESCE(?8, chain_head)
     WHERE player_id = ?1";

/// `Tx::update_table`.
pub(crate) const UPDATE_TABLE: &str =
    "UPDATE game_tables SET name = ?2, game_type = ?3, house_edge = ?4,
     average_rounds_per_hour = ?5, points_conversion_rate = ?6,
     point_multiplier = ?7, seats_available = ?8, updated_at = ?9
     WHERE id = ?1";

/// `Tx::update_slip`.
pub(crate) const UPDATE_SLIP: &str =
    "UPDATE rating_slips SET status = ?2, average_bet = ?3, ended_at = ?4,
     accumulated_us = ?5, segment_started_at = ?6, loyalty_status = ?7,
     ledger_entry_id = ?8, accrual_attempts = ?9, next_retry_at = ?10,
     closed_correlation_id = ?11, updated_at = ?12, started_at = ?13,
     corrections = ?14
     WHERE id = ?1";

/// `Tx::pending_slips`.
pub(crate) const PENDING_SLIPS: &str = "SELECT id FROM rating_slips
     WHERE loyalty_status = 'PENDING' AND next_retry_at <= ?1
     ORDER BY next_retry_at LIMIT ?2";

/// `Tx::idempotency_record`.
pub(crate) const IDEMPOTENCY_RECORD: &str =
    "SELECT fingerprint, status, body, created_at FROM idempotency_records
     WHERE scope = ?1 AND key = ?2";

/// `Tx::insert_idempotency_record`.
pub(crate) const INSERT_IDEMPOTENCY_RECORD: &str =
    "INSERT INTO idempotency_records (scope, key, fingerprint, status, body, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// `Tx::purge_idempotency_records`.
pub(crate) const PURGE_IDEMPOTENCY_RECORDS: &str =
    "DELETE FROM idempotency_records WHERE created_at < ?1";

/// `Tx::insert_merchant`.
pub(crate) const INSERT_MERCHANT: &str =
    "INSERT INTO merchants (id, name, earnings, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// `Tx::update_merchant`.
pub(crate) const UPDATE_MERCHANT: &str =
    "UPDATE merchants SET earnings = ?2, updated_at = ?3 WHERE id = ?1";

/// `Tx::update_escrow`.
pub(crate) const UPDATE_ESCROW: &str =
    "UPDATE escrows SET settled_amount = ?2, refunded_amount = ?3, status = ?4,
     updated_at = ?5, version = ?6
     WHERE id = ?1";

/// `Tx::checkpoint`.
pub(crate) const CHECKPOINT: &str = "SELECT seq FROM subscriber_checkpoints WHERE subscriber = ?1";

/// `Tx::update_dead_letter`.
pub(crate) const UPDATE_DEAD_LETTER: &str =
    "UPDATE dead_letters SET status = ?2, error = COALESCE(?3, error),
     attempts = COALESCE(?4, attempts), updated_at = ?5
     WHERE id = ?1";

/// `Tx::release_lease`.
pub(crate) const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = ?1 AND holder = ?2";

/// `Tx::feed_items`.
pub(crate) const FEED_ITEMS: &str =
    "SELECT feed, player_id, event_seq, event_id, event_type, occurred_at, data
     FROM player_feed_items
     WHERE feed = ?1 AND player_id = ?2 AND event_seq < ?3
     ORDER BY event_seq DESC LIMIT ?4";

/// `Tx::activity_events`.
pub(crate) const ACTIVITY_EVENTS: &str =
    "SELECT o.seq, o.event_id, o.event_type, o.version, o.occurred_at,
     o.correlation_id, o.idempotency_key, o.source, o.payload
     FROM activity_items a JOIN outbox o ON o.seq = a.event_seq
     WHERE a.player_id = ?1 AND a.event_seq < ?2
     ORDER BY a.event_seq DESC LIMIT ?3";

/// `Tx::count_manual_rewards`.
pub(crate) const COUNT_MANUAL_REWARDS: &str = "SELECT COUNT(*) FROM ledger_entries
     WHERE staff_id = ?1 AND created_at > ?2 AND created_at <= ?3 AND seq <= ?4
     AND source = 'manual_reward' AND approved_by IS NULL";

/// `Tx::count_approval_requests`.
pub(crate) const COUNT_APPROVAL_REQUESTS: &str = "SELECT COUNT(*) FROM approvals
     WHERE requested_by = ?1 AND requested_at > ?2 AND requested_at <= ?3";

/// `Tx::update_approval`.
pub(crate) const UPDATE_APPROVAL: &str =
    "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4,
     decision_reason = ?5, ledger_entry_id = ?6
     WHERE id = ?1";

/// `Tx::insert_webhook`.
pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (id, url, event_types, description, \
     secret_sealed, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// `Tx::webhook`.
pub(crate) const WEBHOOK: &str = "SELECT seq, id, url, event_types, description, secret_sealed, \
     created_by, created_at, deleted_at FROM webhooks WHERE id = ?1";

/// `Tx::webhooks`.
pub(crate) const WEBHOOKS: &str = "SELECT seq, id, url, event_types, description, secret_sealed, \
     created_by, created_at, deleted_at FROM webhooks WHERE deleted_at IS NULL ORDER BY seq";

/// `Tx::delete_webhook`.
pub(crate) const DELETE_WEBHOOK: &str =
    "UPDATE webhooks SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL";

/// `Tx::insert_webhook_delivery`.
pub(crate) const INSERT_WEBHOOK_DELIVERY: &str = "INSERT INTO webhook_deliveries (webhook_id, \
     event_seq, event_id, attempt, status_code, ok, duration_ms, error, at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// `Tx::webhook_deliveries`.
pub(crate) const WEBHOOK_DELIVERIES: &str = "SELECT id, webhook_id, event_seq, event_id, attempt, \
     status_code, ok, duration_ms, error, at FROM webhook_deliveries \
     WHERE webhook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";

/// `Tx::event_archives`.
pub(crate) const EVENT_ARCHIVES: &str = "SELECT first_seq, last_seq, file, sha256, bytes, archived_at \
     FROM event_archives ORDER BY first_seq";

/// `Tx::insert_event_archive`: only a file that continues the last one.
pub(crate) const INSERT_EVENT_ARCHIVE: &str = "INSERT INTO event_archives \
     (first_seq, last_seq, events, file, sha256, bytes, archived_at) \
     SELECT CAST(?1 AS BIGINT), CAST(?2 AS BIGINT), CAST(?2 AS BIGINT) - CAST(?1 AS BIGINT) + 1, \
            CAST(?3 AS TEXT), CAST(?4 AS TEXT), CAST(?5 AS BIGINT), CAST(?6 AS BIGINT) \
     WHERE CAST(?1 AS BIGINT) = (SELECT coalesce(max(last_seq), 0) + 1 FROM event_archives)";

/// `Tx::delete_archived_events`: one activity item.
pub(crate) const DELETE_ACTIVITY_ITEM: &str =
    "DELETE FROM activity_items WHERE player_id = ?1 AND event_seq = ?2";

/// `Tx::delete_archived_events`: the events.
pub(crate) const DELETE_ARCHIVED_EVENTS: &str = "DELETE FROM outbox WHERE seq >= ?1 AND seq <= ?2";

/// `Tx::first_outbox_seq`.
pub(crate) const FIRST_OUTBOX_SEQ: &str = "SELECT min(seq) FROM outbox";

/// `Tx::checkpoints`.
pub(crate) const CHECKPOINTS: &str = "SELECT subscriber, seq FROM subscriber_checkpoints";

/// `Tx::oldest_unreplayed_dead_letter`.
pub(crate) const OLDEST_UNREPLAYED_DEAD_LETTER: &str =
    "SELECT min(event_seq) FROM dead_letters WHERE status IN ('DEAD', 'REPLAY_REQUESTED')";
