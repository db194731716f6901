//! Each stored record's column list and row mapping, written once for both
//! backends.
//!
//! The two drivers read a column differently (rusqlite returns TEXT ids and
//! JSON, PostgreSQL `UUID` and `JSONB`; integers are `INTEGER` or `BIGINT`),
//! so each implements the small [`RowRead`] trait and everything above it —
//! which column holds what, how a tier or a timestamp is decoded — exists
//! once. A record that gains a column changes here and in each backend's
//! migration, nowhere else.

use std::str::FromStr;

use jiff::Timestamp;
use loyalty_core::{
    EscrowStatus, GameSettings, LoyaltyStatus, PlayerStatus, Role, SlipStatus, Tier,
    TransactionType,
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::dispatch::{Alert, DeadLetter, DeadLetterStatus, Webhook, WebhookDelivery};
use crate::records::*;
use crate::{StoreError, StoreResult};

/// A stored value that does not decode.
pub(crate) fn bad_value(msg: impl Into<String>) -> StoreError {
    StoreError::Internal(format!("bad stored value: {}", msg.into()))
}

/// One result row of either driver, read by column index.
pub(crate) trait RowRead {
    /// An integer column (any width).
    fn int(&self, i: usize) -> StoreResult<i64>;
    /// A nullable integer column.
    fn int_opt(&self, i: usize) -> StoreResult<Option<i64>>;
    /// A text column.
    fn text(&self, i: usize) -> StoreResult<String>;
    /// A nullable text column.
    fn text_opt(&self, i: usize) -> StoreResult<Option<String>>;
    /// An id column (TEXT on SQLite, UUID on PostgreSQL).
    fn id_opt(&self, i: usize) -> StoreResult<Option<Uuid>>;
    /// A JSON column (TEXT on SQLite, JSONB on PostgreSQL).
    fn json(&self, i: usize) -> StoreResult<serde_json::Value>;
    /// A JSON column as its text (an event's payload).
    fn payload(&self, i: usize) -> StoreResult<loyalty_core::events::Payload> {
        Ok(loyalty_core::events::Payload::of(&self.json(i)?))
    }
    /// A boolean column (INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL).
    fn flag(&self, i: usize) -> StoreResult<bool>;
    /// How many columns the row has.
    fn width(&self) -> usize;

    /// A non-null id column.
    fn id(&self, i: usize) -> StoreResult<Uuid> {
        self.id_opt(i)?
            .ok_or_else(|| bad_value(format!("column {i} is null")))
    }
    /// A microsecond timestamp column.
    fn ts(&self, i: usize) -> StoreResult<Timestamp> {
        micros(self.int(i)?)
    }
    /// A nullable microsecond timestamp column.
    fn ts_opt(&self, i: usize) -> StoreResult<Option<Timestamp>> {
        self.int_opt(i)?.map(micros).transpose()
    }
    /// An exact decimal stored as text.
    fn dec(&self, i: usize) -> StoreResult<Decimal> {
        let v = self.text(i)?;
        Decimal::from_str(&v).map_err(|e| bad_value(format!("{v}: {e}")))
    }
    /// A non-negative integer that fits a `u32`.
    fn u32(&self, i: usize) -> StoreResult<u32> {
        let v = self.int(i)?;
        u32::try_from(v).map_err(|_| bad_value(format!("{v} out of range")))
    }
}

/// A text column holding one of an enum's names.
fn name<T>(r: &dyn RowRead, i: usize, what: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let v = r.text(i)?;
    parse(&v).ok_or_else(|| bad_value(format!("unknown {what} {v}")))
}

fn micros(v: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|e| bad_value(e.to_string()))
}

/// A staff member from `id, name, role, created_at, disabled_at`.
pub(crate) fn staff(r: &dyn RowRead) -> StoreResult<Staff> {
    Ok(Staff {
        id: r.id(0)?,
        name: r.text(1)?,
        role: name(r, 2, "role", Role::parse)?,
        created_at: r.ts(3)?,
        disabled_at: r.ts_opt(4)?,
    })
}

/// Merchant columns.
pub(crate) const MERCHANT_COLS: &str = "seq, id, name, earnings, created_at, updated_at";

/// A merchant from [`MERCHANT_COLS`].
pub(crate) fn merchant(r: &dyn RowRead) -> StoreResult<Merchant> {
    Ok(Merchant {
        seq: r.int(0)?,
        id: r.id(1)?,
        name: r.text(2)?,
        earnings: r.int(3)?,
        created_at: r.ts(4)?,
        updated_at: r.ts(5)?,
    })
}

/// Escrow columns.
pub(crate) const ESCROW_COLS: &str = "seq, id, player_id, merchant_id, amount, settled_amount, \
     refunded_amount, status, reason, reference, expires_at, created_by, created_at, \
     updated_at, version";

/// An escrow from [`ESCROW_COLS`].
pub(crate) fn escrow(r: &dyn RowRead) -> StoreResult<Escrow> {
    Ok(Escrow {
        seq: r.int(0)?,
        id: r.id(1)?,
        player_id: r.id(2)?,
        merchant_id: r.id(3)?,
        amount: r.int(4)?,
        settled_amount: r.int(5)?,
        refunded_amount: r.int(6)?,
        status: name(r, 7, "escrow status", EscrowStatus::parse)?,
        reason: r.text(8)?,
        reference: r.text_opt(9)?,
        expires_at: r.ts_opt(10)?,
        created_by: r.id_opt(11)?,
        created_at: r.ts(12)?,
        updated_at: r.ts(13)?,
        version: r.int(14)?,
    })
}

/// A player from `id, display_name, card_number, status, created_at`.
pub(crate) fn player(r: &dyn RowRead) -> StoreResult<Player> {
    Ok(Player {
        id: r.id(0)?,
        display_name: r.text(1)?,
        card_number: r.text_opt(2)?,
        status: name(r, 3, "player status", PlayerStatus::parse)?,
        created_at: r.ts(4)?,
    })
}

/// Loyalty account columns.
pub(crate) const ACCOUNT_COLS: &str =
    "player_id, current_balance, escrow_balance, lifetime_points, tier, entry_count, updated_at";

/// An account from [`ACCOUNT_COLS`] starting at column `at`.
pub(crate) fn account(r: &dyn RowRead, at: usize) -> StoreResult<Account> {
    Ok(Account {
        player_id: r.id(at)?,
        current_balance: r.int(at + 1)?,
        escrow_balance: r.int(at + 2)?,
        lifetime_points: r.int(at + 3)?,
        tier: name(r, at + 4, "tier", Tier::parse)?,
        entry_count: r.int(at + 5)?,
        updated_at: r.ts(at + 6)?,
        chain_head: None,
    })
}

/// Table columns.
pub(crate) const TABLE_COLS: &str = "id, name, game_type, house_edge, average_rounds_per_hour, \
     points_conversion_rate, point_multiplier, seats_available, created_at, updated_at";

/// A table from [`TABLE_COLS`].
pub(crate) fn table(r: &dyn RowRead) -> StoreResult<GameTable> {
    Ok(GameTable {
        id: r.id(0)?,
        name: r.text(1)?,
        game_type: r.text(2)?,
        settings: GameSettings {
            house_edge: r.dec(3)?,
            average_rounds_per_hour: r.u32(4)?,
            points_conversion_rate: r.dec(5)?,
            point_multiplier: r.dec(6)?,
            seats_available: r.u32(7)?,
        },
        created_at: r.ts(8)?,
        updated_at: r.ts(9)?,
    })
}

/// Rating slip columns.
pub(crate) const SLIP_COLS: &str = "id, player_id, table_id, seat_number, status, average_bet, \
     started_at, ended_at, accumulated_us, segment_started_at, game_settings, loyalty_status, \
     ledger_entry_id, accrual_attempts, next_retry_at, opened_by, closed_correlation_id, \
     created_at, updated_at, corrections";

/// A slip's corrections as stored (a JSON array in a text column).
pub(crate) fn corrections_json(s: &RatingSlip) -> StoreResult<String> {
    serde_json::to_string(&s.corrections).map_err(|e| StoreError::Internal(e.to_string()))
}

fn from_text<T: serde::de::DeserializeOwned>(r: &dyn RowRead, i: usize) -> StoreResult<T> {
    serde_json::from_str(&r.text(i)?).map_err(|e| bad_value(e.to_string()))
}

/// A rating slip from [`SLIP_COLS`].
pub(crate) fn slip(r: &dyn RowRead) -> StoreResult<RatingSlip> {
    Ok(RatingSlip {
        id: r.id(0)?,
        player_id: r.id(1)?,
        table_id: r.id(2)?,
        seat_number: r
            .int_opt(3)?
            .map(|v| u32::try_from(v).map_err(|_| bad_value(format!("seat {v}"))))
            .transpose()?,
        status: name(r, 4, "slip status", SlipStatus::parse)?,
        average_bet: r.dec(5)?,
        started_at: r.ts(6)?,
        ended_at: r.ts_opt(7)?,
        accumulated_us: r.int(8)?,
        segment_started_at: r.ts_opt(9)?,
        game_settings: from_text(r, 10)?,
        loyalty_status: name(r, 11, "loyalty status", LoyaltyStatus::parse)?,
        ledger_entry_id: r.id_opt(12)?,
        accrual_attempts: r.int(13)?,
        next_retry_at: r.ts_opt(14)?,
        opened_by: r.id_opt(15)?,
        closed_correlation_id: r.text_opt(16)?,
        created_at: r.ts(17)?,
        updated_at: r.ts(18)?,
        corrections: from_text(r, 19)?,
    })
}

/// Approval columns written by an insert (`seq` is assigned).
pub(crate) const APPROVAL_INSERT_COLS: &str = "id, status, player_id, points, reason, \
     rating_slip_id, reward_key, requested_by, requested_at, expires_at, decided_by, decided_at, \
     decision_reason, ledger_entry_id, correlation_id";

/// Approval columns.
pub(crate) const APPROVAL_COLS: &str = "seq, id, status, player_id, points, reason, \
     rating_slip_id, reward_key, requested_by, requested_at, expires_at, decided_by, decided_at, \
     decision_reason, ledger_entry_id, correlation_id";

/// An approval from [`APPROVAL_COLS`].
pub(crate) fn approval(r: &dyn RowRead) -> StoreResult<Approval> {
    Ok(Approval {
        seq: r.int(0)?,
        id: r.id(1)?,
        status: r.text(2)?,
        player_id: r.id(3)?,
        points: r.int(4)?,
        reason: r.text(5)?,
        rating_slip_id: r.id_opt(6)?,
        reward_key: r.text(7)?,
        requested_by: r.id(8)?,
        requested_at: r.ts(9)?,
        expires_at: r.ts(10)?,
        decided_by: r.id_opt(11)?,
        decided_at: r.ts_opt(12)?,
        decision_reason: r.text_opt(13)?,
        ledger_entry_id: r.id_opt(14)?,
        correlation_id: r.text(15)?,
    })
}

/// Ledger entry columns.
pub(crate) const ENTRY_COLS: &str = "seq, id, player_id, transaction_type, event_type, \
     points_change, reason, source, staff_id, rating_slip_id, idempotency_key, balance_before, \
     balance_after, tier_before, tier_after, lifetime_after, escrow_id, correlation_id, \
     created_at, prev_hash, hash, escrow_change, approved_by";

/// [`ENTRY_COLS`] as they were before schema 10 (for the schema-7 chain
/// backfill, which runs before `escrow_change` exists; read back as 0).
pub(crate) const ENTRY_COLS_V7: &str = "seq, id, player_id, transaction_type, event_type, \
     points_change, reason, source, staff_id, rating_slip_id, idempotency_key, balance_before, \
     balance_after, tier_before, tier_after, lifetime_after, escrow_id, correlation_id, \
     created_at, prev_hash, hash";

/// A ledger entry from [`ENTRY_COLS`] (or [`ENTRY_COLS_V7`]).
pub(crate) fn entry(r: &dyn RowRead) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        seq: r.int(0)?,
        id: r.id(1)?,
        player_id: r.id(2)?,
        transaction_type: name(r, 3, "transaction type", TransactionType::parse)?,
        event_type: r.text(4)?,
        points_change: r.int(5)?,
        reason: r.text_opt(6)?,
        source: r.text(7)?,
        staff_id: r.id_opt(8)?,
        rating_slip_id: r.id_opt(9)?,
        idempotency_key: r.text_opt(10)?,
        balance_before: r.int(11)?,
        balance_after: r.int(12)?,
        tier_before: name(r, 13, "tier", Tier::parse)?,
        tier_after: name(r, 14, "tier", Tier::parse)?,
        lifetime_after: r.int(15)?,
        escrow_id: r.id_opt(16)?,
        correlation_id: r.text(17)?,
        created_at: r.ts(18)?,
        prev_hash: r.text_opt(19)?.unwrap_or_default(),
        hash: r.text_opt(20)?.unwrap_or_default(),
        escrow_change: if r.width() > 21 { r.int(21)? } else { 0 },
        approved_by: if r.width() > 22 { r.id_opt(22)? } else { None },
    })
}

/// An event from `seq, event_id, event_type, version, occurred_at,
/// correlation_id, idempotency_key, source, payload`.
pub(crate) fn event(r: &dyn RowRead) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        seq: r.int(0)?,
        event_id: r.id(1)?,
        event_type: r.text(2)?,
        version: r.u32(3)?,
        occurred_at: r.ts(4)?,
        correlation_id: r.text(5)?,
        idempotency_key: r.text_opt(6)?,
        source: r.text(7)?,
        payload: r.payload(8)?,
    })
}

/// Dead letter columns.
pub(crate) const DEAD_LETTER_COLS: &str = "id, subscriber, event_seq, event_id, event_type, \
     error, attempts, status, created_at, updated_at";

/// A dead letter from [`DEAD_LETTER_COLS`].
pub(crate) fn dead_letter(r: &dyn RowRead) -> StoreResult<DeadLetter> {
    Ok(DeadLetter {
        id: r.int(0)?,
        subscriber: r.text(1)?,
        event_seq: r.int(2)?,
        event_id: r.id(3)?,
        event_type: r.text(4)?,
        error: r.text(5)?,
        attempts: r.u32(6)?,
        status: name(r, 7, "dead letter status", DeadLetterStatus::parse)?,
        created_at: r.ts(8)?,
        updated_at: r.ts(9)?,
    })
}

/// Alert columns (with the row's sequence first).
pub(crate) const ALERT_COLS: &str = "id, kind, staff_id, count, window_seconds, window_start, \
     occurred_at, trigger_event_id, event_id, correlation_id, created_at";

/// `(seq, alert)` from `seq` followed by [`ALERT_COLS`].
pub(crate) fn alert(r: &dyn RowRead) -> StoreResult<(i64, Alert)> {
    Ok((
        r.int(0)?,
        Alert {
            id: r.id(1)?,
            kind: r.text(2)?,
            staff_id: r.id(3)?,
            count: r.int(4)?,
            window_seconds: r.int(5)?,
            window_start: r.ts(6)?,
            occurred_at: r.ts(7)?,
            trigger_event_id: r.id(8)?,
            event_id: r.id(9)?,
            correlation_id: r.text(10)?,
            created_at: r.ts(11)?,
        },
    ))
}

/// A webhook from `seq, id, url, event_types, description, secret_sealed,
/// created_by, created_at, deleted_at` ([`crate::sql::WEBHOOK`]).
pub(crate) fn webhook(r: &dyn RowRead) -> StoreResult<Webhook> {
    Ok(Webhook {
        seq: r.int(0)?,
        id: r.id(1)?,
        url: r.text(2)?,
        event_types: r
            .text_opt(3)?
            .map(|t| serde_json::from_str(&t).map_err(|e| bad_value(e.to_string())))
            .transpose()?,
        description: r.text_opt(4)?,
        secret_sealed: r.text(5)?,
        created_by: r.id_opt(6)?,
        created_at: r.ts(7)?,
        deleted_at: r.ts_opt(8)?,
    })
}

/// A delivery attempt from `id, webhook_id, event_seq, event_id, attempt,
/// status_code, ok, duration_ms, error, at` ([`crate::sql::WEBHOOK_DELIVERIES`]).
pub(crate) fn webhook_delivery(r: &dyn RowRead) -> StoreResult<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: r.int(0)?,
        webhook_id: r.id(1)?,
        event_seq: r.int(2)?,
        event_id: r.id(3)?,
        attempt: r.u32(4)?,
        status_code: r
            .int_opt(5)?
            .map(|v| u16::try_from(v).map_err(|_| bad_value(format!("status {v}"))))
            .transpose()?,
        ok: r.flag(6)?,
        duration_ms: r.int(7)?,
        error: r.text_opt(8)?,
        at: r.ts(9)?,
    })
}

/// An archive file from `first_seq, last_seq, file, sha256, bytes,
/// archived_at` ([`crate::sql::EVENT_ARCHIVES`]).
pub(crate) fn event_archive(r: &dyn RowRead) -> StoreResult<EventArchive> {
    Ok(EventArchive {
        first_seq: r.int(0)?,
        last_seq: r.int(1)?,
        file: r.text(2)?,
        sha256: r.text(3)?,
        bytes: r.int(4)?,
        archived_at: r.ts(5)?,
    })
}
