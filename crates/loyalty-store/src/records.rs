//! Rows as the rest of the system sees them: plain data, no behaviour.

use jiff::Timestamp;
use loyalty_core::{
    EscrowStatus, GameSettings, LoyaltyStatus, Role, SlipStatus, Tier, TransactionType,
};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

/// A staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staff {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Role, which decides permissions.
    pub role: Role,
    /// When created.
    pub created_at: Timestamp,
    /// When disabled (every token of a disabled staff member is refused).
    pub disabled_at: Option<Timestamp>,
}

/// Whom a bearer token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSubject {
    /// A staff member's token.
    Staff(Uuid),
    /// A player's read-only token.
    Player(Uuid),
}

impl TokenSubject {
    /// The stored `kind` (`staff` or `player`) and the holder's id.
    pub fn kind_and_id(self) -> (&'static str, Uuid) {
        match self {
            TokenSubject::Staff(id) => ("staff", id),
            TokenSubject::Player(id) => ("player", id),
        }
    }
}

/// A player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Player {
    /// Id.
    pub id: Uuid,
    /// Name shown to staff.
    pub display_name: String,
    /// Loyalty card number, unique when present.
    pub card_number: Option<String>,
    /// Whether the player takes part in the program.
    pub status: loyalty_core::PlayerStatus,
    /// When created.
    pub created_at: Timestamp,
}

/// A player's loyalty account: the materialised balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The player.
    pub player_id: Uuid,
    /// Available points (= Σ of the player's ledger `points_change`).
    pub current_balance: i64,
    /// Points held for redemptions.
    pub escrow_balance: i64,
    /// Σ of positive earnings; never lowered.
    pub lifetime_points: i64,
    /// Tier from lifetime points.
    pub tier: Tier,
    /// Number of ledger entries of this player.
    pub entry_count: i64,
    /// Last change.
    pub updated_at: Timestamp,
    /// The `hash` of the player's newest entry, as `Tx::account` read it
    /// (schema 15); `None` when not read or not yet recorded, and then the
    /// next entry reads it from the ledger.
    pub chain_head: Option<String>,
}

/// A gaming table and its current settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GameTable {
    /// Id.
    pub id: Uuid,
    /// Name on the floor.
    pub name: String,
    /// Game, e.g. `blackjack`.
    pub game_type: String,
    /// Current game settings (slips snapshot them when they open).
    #[serde(flatten)]
    pub settings: GameSettings,
    /// When created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A rating slip: one player's session at one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingSlip {
    /// Id.
    pub id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// The table played at.
    pub table_id: Uuid,
    /// Seat, if recorded.
    pub seat_number: Option<u32>,
    /// OPEN, PAUSED or CLOSED.
    pub status: SlipStatus,
    /// Current (final, once closed) average bet.
    pub average_bet: Decimal,
    /// Start of play.
    pub started_at: Timestamp,
    /// End of play, once closed.
    pub ended_at: Option<Timestamp>,
    /// Microseconds played in finished segments (pauses excluded).
    pub accumulated_us: i64,
    /// Start of the running segment while OPEN.
    pub segment_started_at: Option<Timestamp>,
    /// Settings snapshotted when the slip opened.
    pub game_settings: GameSettings,
    /// Whether the slip's points are in the ledger.
    pub loyalty_status: LoyaltyStatus,
    /// The GAMEPLAY entry, once accrued.
    pub ledger_entry_id: Option<Uuid>,
    /// Failed accrual attempts so far.
    pub accrual_attempts: i64,
    /// When the background retry may try again (PENDING only).
    pub next_retry_at: Option<Timestamp>,
    /// Staff member who opened the slip.
    pub opened_by: Option<Uuid>,
    /// Correlation id of the request that closed the slip.
    pub closed_correlation_id: Option<String>,
    /// Voids and corrections after closing, oldest first (the slip's
    /// history: a closed slip is never edited without a record here).
    pub corrections: Vec<SlipCorrection>,
    /// When created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// One void or correction of a closed slip (DESIGN §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SlipCorrection {
    /// `VOID` or `CORRECT`.
    pub kind: String,
    /// Why, 10–500 characters.
    pub reason: String,
    /// Who made it.
    pub staff_id: Option<Uuid>,
    /// When (server clock).
    pub at: Timestamp,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The slip's average bet, start and end before the change.
    pub average_bet_before: Decimal,
    /// Start before.
    pub started_at_before: Timestamp,
    /// End before.
    pub ended_at_before: Option<Timestamp>,
    /// After the change (unchanged by a void).
    pub average_bet_after: Decimal,
    /// Start after.
    pub started_at_after: Timestamp,
    /// End after.
    pub ended_at_after: Option<Timestamp>,
    /// Points taken back by the GAMEPLAY_REVERSAL entry (0 if the slip had
    /// not accrued).
    pub points_reversed: i64,
    /// Points of the new GAMEPLAY entry (corrections only).
    pub points_accrued: Option<i64>,
    /// The reversal entry.
    pub reversal_entry_id: Option<Uuid>,
    /// The new GAMEPLAY entry (corrections only).
    pub accrual_entry_id: Option<Uuid>,
}

impl RatingSlip {
    /// Microseconds played up to `now` (a running segment counts up to `now`).
    pub fn played_us_at(&self, now: Timestamp) -> i64 {
        let running = match (self.status, self.segment_started_at) {
            (SlipStatus::Open, Some(start)) => {
                (now.as_microsecond() - start.as_microsecond()).max(0)
            }
            _ => 0,
        };
        self.accumulated_us + running
    }
}

/// A player's balances at an instant, from the ledger alone
/// ([`crate::Tx::balances_as_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalancesAsOf {
    /// Available points.
    pub current_balance: i64,
    /// Points held in escrow.
    pub escrow_balance: i64,
    /// Lifetime points.
    pub lifetime_points: i64,
    /// Tier.
    pub tier: Tier,
    /// When the newest entry counted was written.
    pub last_entry_at: Timestamp,
}

/// A manual reward or adjustment waiting for a second staff member (dual
/// control, DESIGN §9). Status: `PENDING` → `APPROVED` (the entry is
/// written) | `REJECTED` | `WITHDRAWN` (by its requester) | `EXPIRED` (24 h
/// without a decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Position, for paging.
    #[serde(skip)]
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// See the type.
    pub status: String,
    /// Whose balance would change.
    pub player_id: Uuid,
    /// Signed points asked for.
    pub points: i64,
    /// Why.
    pub reason: String,
    /// Rating slip concerned.
    pub rating_slip_id: Option<Uuid>,
    /// The reward's idempotency key (a repeat of the request finds this).
    #[serde(skip)]
    pub reward_key: String,
    /// Who asked.
    pub requested_by: Uuid,
    /// When.
    pub requested_at: Timestamp,
    /// When it lapses if still pending.
    pub expires_at: Timestamp,
    /// Who decided.
    pub decided_by: Option<Uuid>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// The reason given with a rejection or withdrawal.
    pub decision_reason: Option<String>,
    /// The entry written on approval.
    pub ledger_entry_id: Option<Uuid>,
    /// The request's correlation id.
    pub correlation_id: String,
}

/// One ledger entry. Never updated, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// Global, strictly increasing position; the cursor for pages.
    #[serde(skip)]
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// Whose balance changed.
    pub player_id: Uuid,
    /// Kind of change.
    pub transaction_type: TransactionType,
    /// Business event that caused it, e.g. `RATING_SLIP_COMPLETED`.
    pub event_type: String,
    /// Signed change of the available balance.
    pub points_change: i64,
    /// Why (manual rewards, escrow).
    pub reason: Option<String>,
    /// Subsystem that wrote it: `rating_slip`, `manual_reward`, `wallet`.
    pub source: String,
    /// Staff member responsible, if any.
    pub staff_id: Option<Uuid>,
    /// Rating slip concerned, if any.
    pub rating_slip_id: Option<Uuid>,
    /// Key that makes the write idempotent.
    pub idempotency_key: Option<String>,
    /// Available balance before.
    pub balance_before: i64,
    /// Available balance after.
    pub balance_after: i64,
    /// Tier before.
    pub tier_before: Tier,
    /// Tier after.
    pub tier_after: Tier,
    /// Lifetime points after this entry.
    pub lifetime_after: i64,
    /// Escrow concerned, if any.
    pub escrow_id: Option<Uuid>,
    /// Correlation id of the request that wrote it.
    pub correlation_id: String,
    /// When written.
    pub created_at: Timestamp,
    /// The `hash` of the player's previous entry (the chain's genesis, 64
    /// zeros, for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical encoding (docs/audit.md).
    pub hash: String,
    /// How the entry moved the escrow balance: +amount for a hold,
    /// −captured for a capture, −refunded for a refund, 0 otherwise (not
    /// part of the hash: holds and refunds repeat `points_change`, and a
    /// capture's amount is proved against its escrow by verification).
    pub escrow_change: i64,
    /// The second staff member who approved the entry under dual control
    /// (`staff_id` asked for it); absent from the JSON when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Uuid>,
}

/// An event to append to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id, also the broker's dedup id.
    pub event_id: Uuid,
    /// E.g. `LEDGER_ENTRY_CREATED`.
    pub event_type: &'static str,
    /// Payload schema version.
    pub version: u32,
    /// When the change happened.
    pub occurred_at: Timestamp,
    /// Correlation id of the causing request.
    pub correlation_id: String,
    /// Idempotency key of the causing operation, if any.
    pub idempotency_key: Option<String>,
    /// Subsystem that emitted it.
    pub source: &'static str,
    /// Ids and numbers of what changed.
    pub payload: loyalty_core::events::Payload,
}

impl NewEvent {
    /// The outbox row of a domain event: its type, source, version and
    /// payload, with the envelope's identity.
    pub fn of(
        event: &loyalty_core::Event,
        event_id: Uuid,
        occurred_at: Timestamp,
        correlation_id: String,
        idempotency_key: Option<String>,
    ) -> NewEvent {
        let ty = event.event_type();
        NewEvent {
            event_id,
            event_type: ty.as_str(),
            version: event.version(),
            occurred_at,
            correlation_id,
            idempotency_key,
            source: ty.source(),
            payload: event.payload(),
        }
    }
}

/// A file of archived events (schema 13): the outbox rows `first_seq..=
/// last_seq`, one envelope per line as `GET /v1/events` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventArchive {
    /// First event in the file.
    pub first_seq: i64,
    /// Last event in the file.
    pub last_seq: i64,
    /// The file's name in the archive directory.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Size of the file.
    pub bytes: i64,
    /// When it was recorded.
    pub archived_at: Timestamp,
}

impl EventArchive {
    /// Events in the file.
    pub fn events(&self) -> i64 {
        self.last_seq - self.first_seq + 1
    }

    /// The refusal of a file that does not continue the last archive.
    pub(crate) fn out_of_order(&self) -> crate::StoreError {
        crate::StoreError::Conflict(format!(
            "archive {}..={} does not continue the last archive",
            self.first_seq, self.last_seq
        ))
    }
}

/// An event as stored, with its global sequence number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Global gap-free sequence.
    pub seq: i64,
    /// Unique id.
    pub event_id: Uuid,
    /// Type.
    pub event_type: String,
    /// Payload schema version.
    pub version: u32,
    /// When the change happened.
    pub occurred_at: Timestamp,
    /// Correlation id.
    pub correlation_id: String,
    /// Idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Emitting subsystem.
    pub source: String,
    /// Payload.
    pub payload: loyalty_core::events::Payload,
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Hash of the request (method, path, body).
    pub fingerprint: String,
    /// HTTP status of the stored response.
    pub status: u16,
    /// Body bytes of the stored response.
    pub body: Vec<u8>,
    /// When stored.
    pub created_at: Timestamp,
}

/// Filters for ledger queries, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryQuery {
    /// Only this player's entries.
    pub player_id: Option<Uuid>,
    /// Only entries by this staff member.
    pub staff_id: Option<Uuid>,
    /// Only entries of this request.
    pub correlation_id: Option<String>,
    /// Only this type.
    pub transaction_type: Option<TransactionType>,
    /// `created_at >= from`.
    pub from: Option<Timestamp>,
    /// `created_at < to`.
    pub to: Option<Timestamp>,
    /// Entries with `seq < before_seq` (the cursor).
    pub before_seq: Option<i64>,
    /// Page size.
    pub limit: u32,
}

impl EntryQuery {
    /// Whether one index range answers the query in `seq` order with no
    /// row read and then filtered out, so that it reads at most `limit`
    /// rows: the whole ledger, or one player's, one staff member's or one
    /// request's entries, with nothing else but the cursor. Such a page can
    /// use [`crate::Store::read_short`].
    pub fn index_bounded(&self) -> bool {
        let keys = [
            self.player_id.is_some(),
            self.staff_id.is_some(),
            self.correlation_id.is_some(),
        ];
        keys.iter().filter(|k| **k).count() <= 1
            && self.transaction_type.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }
}

/// One account's disagreement with its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The player (nil, shown as null, for findings about no one player:
    /// a merchant or the conservation law).
    #[serde(serialize_with = "nil_as_null")]
    pub player_id: Uuid,
    /// What disagrees, e.g. `current_balance`.
    pub check: String,
    /// What the account row says.
    pub expected: i64,
    /// What the ledger says.
    pub actual: i64,
    /// The entry where a chain broke, if that is the problem.
    pub entry_id: Option<Uuid>,
    /// The escrow that disagrees, for the wallet's checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escrow_id: Option<Uuid>,
    /// The merchant that disagrees, for the wallet's checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<Uuid>,
}

fn nil_as_null<S: serde::Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    if id.is_nil() {
        s.serialize_none()
    } else {
        s.serialize_some(id)
    }
}

/// A merchant account (an outlet: restaurant, bar, shop) that escrowed
/// points are settled to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merchant {
    /// Position for paging.
    #[serde(skip)]
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Σ of the points settled to it.
    pub earnings: i64,
    /// When created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Points of a player held for a merchant (DESIGN §3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escrow {
    /// Position for paging.
    #[serde(skip)]
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// Whose points.
    pub player_id: Uuid,
    /// For whom.
    pub merchant_id: Uuid,
    /// Points held at first.
    pub amount: i64,
    /// Points captured so far (to the merchant).
    pub settled_amount: i64,
    /// Points returned so far (to the player).
    pub refunded_amount: i64,
    /// State.
    pub status: EscrowStatus,
    /// Why (e.g. the comp).
    pub reason: String,
    /// The outlet's own reference (check number), if given.
    pub reference: Option<String>,
    /// When it is refunded automatically if still held.
    pub expires_at: Option<Timestamp>,
    /// Staff member who placed the hold.
    pub created_by: Option<Uuid>,
    /// When placed.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Incremented by every change (optimistic concurrency).
    pub version: i64,
}

impl Escrow {
    /// Points still held.
    pub fn held_amount(&self) -> i64 {
        self.amount - self.settled_amount - self.refunded_amount
    }
}

/// Which escrows to list.
#[derive(Debug, Clone, Default)]
pub struct EscrowQuery {
    /// Only this player's.
    pub player_id: Option<Uuid>,
    /// Only in this state.
    pub status: Option<EscrowStatus>,
    /// Only those before this position (paging, newest first).
    pub before_seq: Option<i64>,
    /// Most rows.
    pub limit: u32,
}

/// Which rating slips to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct SlipQuery {
    /// Only in this state.
    pub status: Option<SlipStatus>,
    /// Only at this table.
    pub table_id: Option<Uuid>,
    /// Only of this player.
    pub player_id: Option<Uuid>,
    /// Only those with an id below this one (paging).
    pub before_id: Option<Uuid>,
    /// Most rows.
    pub limit: u32,
}

/// Manual rewards of one staff member in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewardBucket {
    /// The staff member.
    pub staff_id: Uuid,
    /// Start of the bucket.
    pub bucket_start: Timestamp,
    /// Rewards and adjustments in it.
    pub count: i64,
    /// Σ of their points.
    pub points: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_index_range_and_the_cursor_make_a_page_index_bounded() {
        let id = Some(Uuid::from_u128(7));
        let base = EntryQuery {
            before_seq: Some(10),
            limit: 50,
            ..EntryQuery::default()
        };
        assert!(base.index_bounded(), "the whole ledger by seq");
        for q in [
            EntryQuery {
                player_id: id,
                ..base.clone()
            },
            EntryQuery {
                staff_id: id,
                ..base.clone()
            },
            EntryQuery {
                correlation_id: Some("c".into()),
                ..base.clone()
            },
        ] {
            assert!(q.index_bounded(), "{q:?}");
        }
        for q in [
            EntryQuery {
                player_id: id,
                staff_id: id,
                ..base.clone()
            },
            EntryQuery {
                player_id: id,
                transaction_type: Some(TransactionType::Gameplay),
                ..base.clone()
            },
            EntryQuery {
                staff_id: id,
                from: Some(Timestamp::UNIX_EPOCH),
                ..base.clone()
            },
            EntryQuery {
                to: Some(Timestamp::UNIX_EPOCH),
                ..base.clone()
            },
        ] {
            assert!(!q.index_bounded(), "{q:?}");
        }
    }
}
