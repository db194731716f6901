//! The domain events (docs/events.md): one [`Event`] variant per type, each
//! with its payload struct.
//!
//! Operations build an [`Event`] and the store writes its
//! [`EventType::as_str`], [`EventType::source`], [`Event::version`] and
//! [`Event::payload`] to the outbox; subscribers read a stored event back
//! with [`Event::from_stored`] and `match` on it, so a field renamed or a
//! type added is a compile error on both sides, not a `null` at run time.
//!
//! The JSON is public API: the payload structs serialise to exactly the
//! objects docs/events.md lists (a contract test in loyalty-store compares a
//! scenario's whole outbox with a stored fixture byte for byte). A field is
//! added or changed only with a new version of its type.

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::payload::Payload;
use crate::{EscrowStatus, GameSettings, Role, SlipStatus, Tier, TransactionType};

/// Why a stored event could not be read as an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// The type is not one this version knows.
    #[error("unknown event type {0}")]
    UnknownType(String),
    /// The type is known, not at this version.
    #[error("{event_type} version {version} is not supported")]
    UnknownVersion {
        /// The type.
        event_type: &'static str,
        /// The stored version.
        version: u32,
    },
    /// The payload does not have the type's fields.
    #[error("{event_type} payload: {message}")]
    Payload {
        /// The type.
        event_type: &'static str,
        /// What serde found wrong.
        message: String,
    },
}

/// Declares [`Event`], [`EventType`] and their mappings from one list, so a
/// type's name, source and payload struct are written once.
macro_rules! events {
    ($(
        $(#[$doc:meta])*
        $variant:ident($payload:ty) = $name:literal, source $source:literal;
    )*) => {
        /// A domain event: what happened, with the ids and numbers that
        /// changed. Past-tense facts, one variant per type.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $(#[$doc])* $variant($payload), )*
        }

        /// The type of an [`Event`], without its payload (subscription
        /// filters, the outbox's `event_type` column).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every type, in the order docs/events.md lists them.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The stored and published name, e.g. `LEDGER_ENTRY_CREATED`.
            pub const fn as_str(self) -> &'static str {
                match self { $( EventType::$variant => $name, )* }
            }

            /// The subsystem that emits this type (the envelope's `source`).
            pub const fn source(self) -> &'static str {
                match self { $( EventType::$variant => $source, )* }
            }

            /// The type named `name`, if any.
            pub fn parse(name: &str) -> Option<EventType> {
                match name { $( $name => Some(EventType::$variant), )* _ => None }
            }
        }

        impl Event {
            /// Its type.
            pub fn event_type(&self) -> EventType {
                match self { $( Event::$variant(_) => EventType::$variant, )* }
            }

            /// The payload as stored and published.
            pub fn payload(&self) -> Payload {
                match self {
                    $( Event::$variant(p) => Payload::of(p), )*
                }
            }

            /// Reads a stored event back.
            pub fn from_stored(
                event_type: &str,
                version: u32,
                payload: &Payload,
            ) -> Result<Event, EventDecodeError> {
                let ty = EventType::parse(event_type)
                    .ok_or_else(|| EventDecodeError::UnknownType(event_type.to_string()))?;
                if version != EVENT_VERSION {
                    return Err(EventDecodeError::UnknownVersion {
                        event_type: ty.as_str(),
                        version,
                    });
                }
                let bad = |e: serde_json::Error| EventDecodeError::Payload {
                    event_type: ty.as_str(),
                    message: e.to_string(),
                };
                Ok(match ty {
                    $( EventType::$variant => Event::$variant(
                        payload.decode::<$payload>().map_err(bad)?,
                    ), )*
                })
            }
        }
    };
}

/// The payload version of every type today.
pub const EVENT_VERSION: u32 = 1;

events! {
    /// A staff member was created.
    StaffCreated(StaffCreated) = "STAFF_CREATED", source "staff";
    /// A player and their account were created.
    PlayerCreated(PlayerCreated) = "PLAYER_CREATED", source "players";
    /// A player read token was issued.
    PlayerTokenIssued(PlayerTokenIssued) = "PLAYER_TOKEN_ISSUED", source "players";
    /// Every token of a player was revoked.
    PlayerTokensRevoked(PlayerTokensRevoked) = "PLAYER_TOKENS_REVOKED", source "players";
    /// A staff member was disabled (every token of theirs revoked).
    StaffDisabled(StaffDisabled) = "STAFF_DISABLED", source "staff";
    /// A caller revoked their own token.
    TokenRevoked(TokenRevoked) = "TOKEN_REVOKED", source "auth";
    /// A table was created.
    TableCreated(TableChanged) = "TABLE_CREATED", source "tables";
    /// A table's settings changed.
    TableUpdated(TableChanged) = "TABLE_UPDATED", source "tables";
    /// A rating slip opened.
    RatingSlipOpened(RatingSlipOpened) = "RATING_SLIP_OPENED", source "rating_slip";
    /// An open slip's average bet changed.
    RatingSlipUpdated(RatingSlipChanged) = "RATING_SLIP_UPDATED", source "rating_slip";
    /// A slip paused.
    RatingSlipPaused(RatingSlipChanged) = "RATING_SLIP_PAUSED", source "rating_slip";
    /// A paused slip resumed.
    RatingSlipResumed(RatingSlipChanged) = "RATING_SLIP_RESUMED", source "rating_slip";
    /// A slip closed.
    RatingSlipCompleted(RatingSlipCompleted) = "RATING_SLIP_COMPLETED", source "rating_slip";
    /// A closed slip was voided.
    RatingSlipVoided(RatingSlipVoided) = "RATING_SLIP_VOIDED", source "rating_slip";
    /// A closed slip's bet or times were corrected.
    RatingSlipCorrected(RatingSlipCorrected) = "RATING_SLIP_CORRECTED", source "rating_slip";
    /// A closed slip's accrual failed; it is pending.
    LoyaltyAccrualFailed(LoyaltyAccrualFailed) = "LOYALTY_ACCRUAL_FAILED", source "rating_slip";
    /// A ledger entry was written.
    LedgerEntryCreated(LedgerEntryCreated) = "LEDGER_ENTRY_CREATED", source "ledger";
    /// A balance changed (with its entry).
    BalanceUpdated(BalanceUpdated) = "BALANCE_UPDATED", source "ledger";
    /// Lifetime points crossed a tier threshold.
    TierChanged(TierChanged) = "TIER_CHANGED", source "ledger";
    /// A manual reward or adjustment was written.
    PointsUpdateRequested(PointsUpdateRequested) = "POINTS_UPDATE_REQUESTED", source "manual_reward";
    /// A merchant (outlet) was created.
    MerchantCreated(MerchantCreated) = "MERCHANT_CREATED", source "wallet";
    /// Points were held for a merchant.
    EscrowHeld(EscrowHeld) = "ESCROW_HELD", source "wallet";
    /// A capture: part or all of what is held went to the merchant.
    EscrowSettled(EscrowSettled) = "ESCROW_SETTLED", source "wallet";
    /// A final capture of part; the rest was refunded.
    EscrowPartialSettled(EscrowSettled) = "ESCROW_PARTIAL_SETTLED", source "wallet";
    /// What was still held went back to the player.
    EscrowRefunded(EscrowRefunded) = "ESCROW_REFUNDED", source "wallet";
    /// The expiry sweep refunded a hold past its expiry.
    EscrowExpired(EscrowRefunded) = "ESCROW_EXPIRED", source "wallet";
    /// A staff member's manual rewards exceeded the hourly threshold.
    ManualRewardAlert(ManualRewardAlert) = "MANUAL_REWARD_ALERT", source "alerts";
    /// Dual control: a reward or adjustment waits for a second staff member.
    ApprovalRequested(ApprovalRequested) = "APPROVAL_REQUESTED", source "approvals";
    /// A dual-control request was approved, rejected, withdrawn or lapsed.
    ApprovalDecided(ApprovalDecided) = "APPROVAL_DECIDED", source "approvals";
    /// A webhook endpoint was registered.
    WebhookCreated(WebhookCreated) = "WEBHOOK_CREATED", source "webhooks";
    /// A webhook endpoint was deleted.
    WebhookDeleted(WebhookDeleted) = "WEBHOOK_DELETED", source "webhooks";
}

impl Event {
    /// The payload schema version of this event.
    pub fn version(&self) -> u32 {
        EVENT_VERSION
    }

    /// The player the event concerns, if it concerns one.
    pub fn player_id(&self) -> Option<Uuid> {
        match self {
            Event::PlayerCreated(p) => Some(p.player_id),
            Event::PlayerTokenIssued(p) => Some(p.player_id),
            Event::PlayerTokensRevoked(p) => Some(p.player_id),
            Event::RatingSlipOpened(p) => Some(p.player_id),
            Event::RatingSlipUpdated(p)
            | Event::RatingSlipPaused(p)
            | Event::RatingSlipResumed(p) => Some(p.player_id),
            Event::RatingSlipCompleted(p) => Some(p.player_id),
            Event::RatingSlipVoided(p) => Some(p.player_id),
            Event::RatingSlipCorrected(p) => Some(p.player_id),
            Event::LoyaltyAccrualFailed(p) => Some(p.player_id),
            Event::LedgerEntryCreated(p) => Some(p.player_id),
            Event::BalanceUpdated(p) => Some(p.player_id),
            Event::TierChanged(p) => Some(p.player_id),
            Event::PointsUpdateRequested(p) => Some(p.player_id),
            Event::EscrowHeld(p) => Some(p.escrow.player_id),
            Event::EscrowSettled(p) | Event::EscrowPartialSettled(p) => Some(p.escrow.player_id),
            Event::EscrowRefunded(p) | Event::EscrowExpired(p) => Some(p.escrow.player_id),
            Event::ApprovalRequested(p) => Some(p.player_id),
            Event::ApprovalDecided(p) => Some(p.player_id),
            Event::StaffCreated(_)
            | Event::StaffDisabled(_)
            | Event::TokenRevoked(_)
            | Event::TableCreated(_)
            | Event::TableUpdated(_)
            | Event::MerchantCreated(_)
            | Event::ManualRewardAlert(_)
            | Event::WebhookCreated(_)
            | Event::WebhookDeleted(_) => None,
        }
    }
}

// ---------------------------------------------------------------- staff, players, tokens

/// `STAFF_CREATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffCreated {
    /// The new staff member.
    pub staff_id: Uuid,
    /// Their role.
    pub role: Role,
    /// Who created them (none for the bootstrap administrator).
    pub created_by: Option<Uuid>,
}

/// `STAFF_DISABLED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffDisabled {
    /// The staff member disabled.
    pub staff_id: Uuid,
    /// Their role.
    pub role: Role,
    /// Who disabled them.
    pub disabled_by: Option<Uuid>,
    /// Live tokens revoked with them.
    pub tokens_revoked: u64,
}

/// `PLAYER_CREATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerCreated {
    /// The new player.
    pub player_id: Uuid,
    /// Their card number, if registered.
    pub card_number: Option<String>,
}

/// `PLAYER_TOKEN_ISSUED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerTokenIssued {
    /// The player.
    pub player_id: Uuid,
    /// The staff member who issued it.
    pub issued_by: Option<Uuid>,
}

/// `PLAYER_TOKENS_REVOKED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerTokensRevoked {
    /// The player.
    pub player_id: Uuid,
    /// The staff member who revoked them.
    pub revoked_by: Option<Uuid>,
    /// How many were live.
    pub tokens_revoked: u64,
}

/// Whose token a `TOKEN_REVOKED` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenHolder {
    /// A staff member's.
    Staff,
    /// A player's.
    Player,
}

/// `TOKEN_REVOKED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// Whose token.
    pub subject: TokenHolder,
    /// Their id.
    pub subject_id: Uuid,
}

/// `TABLE_CREATED` and `TABLE_UPDATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableChanged {
    /// The table.
    pub table_id: Uuid,
    /// Its settings now.
    pub settings: GameSettings,
}

// ---------------------------------------------------------------- rating slips

/// `RATING_SLIP_OPENED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSlipOpened {
    /// The slip.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// The table.
    pub table_id: Uuid,
    /// Average bet.
    pub average_bet: Decimal,
    /// Start of play.
    pub started_at: Timestamp,
    /// The staff member who opened it.
    pub staff_id: Option<Uuid>,
}

/// `RATING_SLIP_UPDATED`, `RATING_SLIP_PAUSED` and `RATING_SLIP_RESUMED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSlipChanged {
    /// The slip.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// Its state after the change.
    pub status: SlipStatus,
    /// Average bet.
    pub average_bet: Decimal,
    /// Whole seconds of play so far.
    pub accumulated_seconds: i64,
    /// The staff member acting.
    pub staff_id: Option<Uuid>,
}

/// `RATING_SLIP_COMPLETED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSlipCompleted {
    /// The slip.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// The table.
    pub table_id: Uuid,
    /// Final average bet.
    pub average_bet: Decimal,
    /// Whole seconds played (pauses excluded).
    pub seconds_played: i64,
    /// End of play.
    pub ended_at: Timestamp,
    /// The staff member who closed it.
    pub staff_id: Option<Uuid>,
}

/// `RATING_SLIP_VOIDED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSlipVoided {
    /// The slip.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// Why.
    pub reason: String,
    /// Points taken back (0 when it had not accrued).
    pub points_reversed: i64,
    /// The `GAMEPLAY_REVERSAL` entry, if any.
    pub reversal_entry_id: Option<Uuid>,
    /// The supervisor.
    pub staff_id: Option<Uuid>,
}

/// `RATING_SLIP_CORRECTED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSlipCorrected {
    /// The slip.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// Why.
    pub reason: String,
    /// Average bet after the correction.
    pub average_bet: Decimal,
    /// Start after the correction.
    pub started_at: Timestamp,
    /// End after the correction.
    pub ended_at: Option<Timestamp>,
    /// Points the reversal took back.
    pub points_reversed: i64,
    /// Points the new accrual earned.
    pub points_accrued: i64,
    /// The `GAMEPLAY_REVERSAL` entry.
    pub reversal_entry_id: Uuid,
    /// The new `GAMEPLAY` entry.
    pub ledger_entry_id: Uuid,
    /// The supervisor.
    pub staff_id: Option<Uuid>,
}

/// `LOYALTY_ACCRUAL_FAILED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoyaltyAccrualFailed {
    /// The slip, closed and pending.
    pub rating_slip_id: Uuid,
    /// The player rated.
    pub player_id: Uuid,
    /// What failed.
    pub error: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Always true: the accrual is retried until it succeeds.
    pub recovery_needed: bool,
    /// When the next retry is due.
    pub next_retry_at: Option<Timestamp>,
}

// ---------------------------------------------------------------- ledger

/// `LEDGER_ENTRY_CREATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntryCreated {
    /// The entry.
    pub ledger_entry_id: Uuid,
    /// Whose balance changed.
    pub player_id: Uuid,
    /// Its kind.
    pub transaction_type: TransactionType,
    /// Signed change of the available balance.
    pub points_change: i64,
    /// Available balance before.
    pub balance_before: i64,
    /// Available balance after.
    pub balance_after: i64,
    /// Staff member responsible.
    pub staff_id: Option<Uuid>,
    /// Rating slip concerned.
    pub rating_slip_id: Option<Uuid>,
    /// Escrow concerned.
    pub escrow_id: Option<Uuid>,
}

/// `BALANCE_UPDATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceUpdated {
    /// Whose balance.
    pub player_id: Uuid,
    /// The entry that moved it.
    pub ledger_entry_id: Uuid,
    /// Available balance after.
    pub current_balance: i64,
    /// Points held in escrow after.
    pub escrow_balance: i64,
    /// Lifetime points after.
    pub lifetime_points: i64,
    /// Available balance before.
    pub balance_before: i64,
    /// Tier after.
    pub tier: Tier,
}

/// `TIER_CHANGED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierChanged {
    /// Whose tier.
    pub player_id: Uuid,
    /// The entry that moved it.
    pub ledger_entry_id: Uuid,
    /// Tier before.
    pub tier_before: Tier,
    /// Tier after.
    pub tier_after: Tier,
    /// Lifetime points after.
    pub lifetime_points: i64,
}

/// `POINTS_UPDATE_REQUESTED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsUpdateRequested {
    /// The player.
    pub player_id: Uuid,
    /// The staff member who granted it.
    pub staff_id: Option<Uuid>,
    /// Signed points.
    pub points: i64,
    /// Why.
    pub reason: Option<String>,
    /// The entry written.
    pub ledger_entry_id: Uuid,
    /// Rating slip it belongs to.
    pub rating_slip_id: Option<Uuid>,
    /// The second staff member, under dual control (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Uuid>,
}

// ---------------------------------------------------------------- wallet

/// `MERCHANT_CREATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantCreated {
    /// The merchant.
    pub merchant_id: Uuid,
    /// Its name.
    pub name: String,
    /// Who created it.
    pub created_by: Option<Uuid>,
}

/// The escrow fields every wallet event carries: the escrow after the step
/// and the player's balances after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowState {
    /// The escrow.
    pub escrow_id: Uuid,
    /// Whose points.
    pub player_id: Uuid,
    /// For which merchant.
    pub merchant_id: Uuid,
    /// Its state.
    pub status: EscrowStatus,
    /// Points first held.
    pub amount: i64,
    /// Points captured so far.
    pub settled_amount: i64,
    /// Points refunded so far.
    pub refunded_amount: i64,
    /// Points still held.
    pub held_amount: i64,
    /// The player's available balance.
    pub current_balance: i64,
    /// The player's escrow balance.
    pub escrow_balance: i64,
    /// The step's last ledger entry.
    pub ledger_entry_id: Uuid,
    /// The outlet's reference.
    pub reference: Option<String>,
    /// When an unsettled hold is refunded.
    pub expires_at: Option<Timestamp>,
    /// Staff member acting.
    pub staff_id: Option<Uuid>,
    /// The escrow's version after the step.
    pub version: i64,
}

/// `ESCROW_HELD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowHeld {
    /// The escrow.
    #[serde(flatten)]
    pub escrow: EscrowState,
}

/// `ESCROW_SETTLED` and `ESCROW_PARTIAL_SETTLED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowSettled {
    /// The escrow.
    #[serde(flatten)]
    pub escrow: EscrowState,
    /// Points captured by this step.
    pub captured: i64,
    /// The `ESCROW_SETTLE` entry.
    pub capture_entry_id: Uuid,
    /// The merchant's earnings after it.
    pub merchant_earnings: i64,
}

/// `ESCROW_REFUNDED` and `ESCROW_EXPIRED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowRefunded {
    /// The escrow.
    #[serde(flatten)]
    pub escrow: EscrowState,
    /// Points returned by this step.
    pub refunded: i64,
}

// ---------------------------------------------------------------- controls

/// `MANUAL_REWARD_ALERT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualRewardAlert {
    /// The alert.
    pub alert_id: Uuid,
    /// The staff member.
    pub staff_id: Uuid,
    /// Manual rewards in the window.
    pub count: i64,
    /// The window's length.
    pub window_seconds: i64,
    /// The window's start.
    pub window_start: Timestamp,
    /// More than this many raise the alert.
    pub threshold: i64,
    /// The event that tipped it over.
    pub trigger_event_id: Uuid,
    /// The reward's entry (none when a dual-control request tipped it).
    pub ledger_entry_id: Option<Uuid>,
    /// The dual-control request that tipped it (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<Uuid>,
}

/// `APPROVAL_REQUESTED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    /// The request.
    pub approval_id: Uuid,
    /// The player.
    pub player_id: Uuid,
    /// Signed points.
    pub points: i64,
    /// Why.
    pub reason: String,
    /// The requester.
    pub staff_id: Uuid,
    /// Rating slip it belongs to.
    pub rating_slip_id: Option<Uuid>,
    /// When it lapses.
    pub expires_at: Timestamp,
}

/// `APPROVAL_DECIDED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDecided {
    /// The request.
    pub approval_id: Uuid,
    /// `APPROVED`, `REJECTED`, `WITHDRAWN` or `EXPIRED`.
    pub status: String,
    /// The player.
    pub player_id: Uuid,
    /// Signed points.
    pub points: i64,
    /// The requester.
    pub requested_by: Uuid,
    /// Who decided (none when it lapsed).
    pub decided_by: Option<Uuid>,
    /// Why, for a rejection.
    pub decision_reason: Option<String>,
    /// The entry written, when approved.
    pub ledger_entry_id: Option<Uuid>,
}

// ---------------------------------------------------------------- webhooks

/// `WEBHOOK_CREATED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookCreated {
    /// The endpoint.
    pub webhook_id: Uuid,
    /// Where it receives events.
    pub url: String,
    /// The types it receives (`null`: every type).
    pub event_types: Option<Vec<String>>,
    /// The admin who registered it.
    pub created_by: Option<Uuid>,
}

/// `WEBHOOK_DELETED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDeleted {
    /// The endpoint.
    pub webhook_id: Uuid,
    /// The admin who deleted it.
    pub deleted_by: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_name() {
        for ty in EventType::ALL {
            assert_eq!(EventType::parse(ty.as_str()), Some(*ty));
        }
        assert_eq!(EventType::parse("NO_SUCH_EVENT"), None);
    }

    #[test]
    fn an_unknown_type_or_version_or_a_wrong_payload_is_refused() {
        let payload =
            Payload::of(&serde_json::json!({"player_id": Uuid::nil(), "card_number": null}));
        assert!(Event::from_stored("PLAYER_CREATED", 1, &payload).is_ok());
        assert_eq!(
            Event::from_stored("PLAYER_VANISHED", 1, &payload),
            Err(EventDecodeError::UnknownType("PLAYER_VANISHED".into()))
        );
        assert!(matches!(
            Event::from_stored("PLAYER_CREATED", 2, &payload),
            Err(EventDecodeError::UnknownVersion { version: 2, .. })
        ));
        assert!(matches!(
            Event::from_stored("TIER_CHANGED", 1, &payload),
            Err(EventDecodeError::Payload { .. })
        ));
    }

    #[test]
    fn optional_fields_absent_when_unset_stay_absent() {
        let ev = Event::PointsUpdateRequested(PointsUpdateRequested {
            player_id: Uuid::nil(),
            staff_id: None,
            points: 5,
            reason: None,
            ledger_entry_id: Uuid::nil(),
            rating_slip_id: None,
            approved_by: None,
        });
        let p = ev.payload();
        let v = p.value();
        assert!(v.get("approved_by").is_none(), "{p}");
        assert!(v.get("staff_id").is_some_and(|v| v.is_null()), "{p}");
        assert_eq!(Event::from_stored("POINTS_UPDATE_REQUESTED", 1, &p), Ok(ev));
    }
}
