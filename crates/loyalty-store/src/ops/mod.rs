//! Transactional operations, written once against [`Tx`].
//!
//! Each public function here is one business operation; the caller runs it
//! inside [`crate::Store::write`], so everything it writes — rows, ledger
//! entries, outbox events — commits together or not at all. The only function
//! that changes a balance is [`apply_entry`], and it always writes the ledger
//! entry and the events in the same breath.

pub mod approvals;
pub mod reports;
pub mod verify;
pub mod wallet;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use loyalty_core::events::{self as ev, Event, EventType};
use loyalty_core::{
    AccrualInput, AverageBet, CardNumber, GameSettings, LoyaltyStatus, Name, Points, Reason, Role,
    SlipStatus, Tier, TierTable, TransactionType, compute_points,
};
use serde::Serialize;
use uuid::Uuid;

use crate::records::*;
use crate::{StoreError, Tx};

/// First retry delay of a pending accrual.
pub const ACCRUAL_RETRY_BASE_MS: i64 = 1_000;
/// Longest retry delay of a pending accrual.
pub const ACCRUAL_RETRY_MAX_MS: i64 = 300_000;

/// Why an operation refused or failed. The server maps each variant to one
/// HTTP status and code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    /// Input breaks a rule; `field` names it.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field.
        field: &'static str,
        /// What was expected.
        message: String,
    },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The slip is closed (or not in the state the action needs).
    #[error("rating slip is not open")]
    SlipNotOpen,
    /// The slip must be closed for this action.
    #[error("rating slip is not closed")]
    SlipNotClosed,
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The balance cannot cover the change.
    #[error("insufficient balance: {available} available, {requested} requested")]
    InsufficientBalance {
        /// Points available.
        available: i64,
        /// Points the change needs.
        requested: i64,
    },
    /// A balance, lifetime total or amount would leave ±(2^53 − 1), the
    /// range every JSON client reads exactly.
    #[error("points out of range: {field} would be {value}")]
    PointsOutOfRange {
        /// What would leave the range.
        field: &'static str,
        /// The value it would take (saturated at the i64 range).
        value: i64,
    },
    /// The escrow is not HELD (or its expiry has passed): nothing more can
    /// be captured or refunded.
    #[error("the escrow is {}", status.as_str())]
    EscrowNotHeld {
        /// Its state (EXPIRED also for a hold past its expiry not yet swept).
        status: loyalty_core::EscrowStatus,
    },
    /// A capture of more than the escrow still holds.
    #[error("the escrow holds {held}, {requested} requested")]
    EscrowAmountExceeded {
        /// Points still held.
        held: i64,
        /// Points asked for.
        requested: i64,
    },
    /// `expected_version` is not the current version.
    #[error("version conflict: current version is {current}")]
    VersionConflict {
        /// The current version.
        current: i64,
    },
    /// An `Idempotency-Key` was reused with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// Accrual failed for a reason other than bad input.
    #[error("loyalty accrual failed: {0}")]
    AccrualFailed(String),
    /// A staff member tried to approve their own request (dual control).
    #[error("a request cannot be approved by the staff member who made it")]
    SelfApproval,
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything an operation needs besides its input: the clock reading, the
/// request's identity and configuration. Operations never read a clock.
#[derive(Debug, Clone)]
pub struct OpCtx {
    /// The instant the operation happens at (server or test clock).
    pub now: Timestamp,
    /// Correlation id of the request.
    pub correlation_id: String,
    /// Idempotency key of the request, if any (stored on events).
    pub idempotency_key: Option<String>,
    /// Staff member acting, if any.
    pub staff_id: Option<Uuid>,
    /// Tier table in force.
    pub tiers: Arc<TierTable>,
    /// Test mode's accrual fault: when set, accrual fails.
    pub fail_accrual: bool,
}

impl OpCtx {
    /// A new id for a row or event this operation writes: a UUID v7, whose
    /// time part (the system clock's, not [`OpCtx::now`]) only orders ids;
    /// no rule reads it.
    pub fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }

    /// Appends `event` to the outbox in this transaction.
    fn emit(&self, tx: &mut dyn Tx, event: impl Into<Event>) -> Result<(), OpError> {
        Ok(tx.append_event(NewEvent::of(
            &event.into(),
            self.new_id(),
            self.now,
            self.correlation_id.clone(),
            self.idempotency_key.clone(),
        ))?)
    }
}

fn validation(field: &'static str, message: impl Into<String>) -> OpError {
    OpError::Validation {
        field,
        message: message.into(),
    }
}

// ---------------------------------------------------------------- ledger

/// What to write to the ledger; [`apply_entry`] fills in the balances.
#[derive(Debug, Clone)]
pub struct EntrySpec {
    /// Whose balance changes.
    pub player_id: Uuid,
    /// Kind.
    pub transaction_type: TransactionType,
    /// Business event, e.g. `RATING_SLIP_COMPLETED`; its source is the
    /// entry's subsystem.
    pub event_type: EventType,
    /// Signed change of the available balance.
    pub points_change: i64,
    /// Why.
    pub reason: Option<String>,
    /// Staff member responsible.
    pub staff_id: Option<Uuid>,
    /// Rating slip concerned.
    pub rating_slip_id: Option<Uuid>,
    /// Idempotency key (unique across the ledger).
    pub idempotency_key: Option<String>,
    /// Escrow concerned.
    pub escrow_id: Option<Uuid>,
    /// Signed change of the escrow balance that goes with the entry (a hold
    /// moves points from available to escrow; a settle or refund out of it).
    pub escrow_change: i64,
    /// The approver under dual control.
    pub approved_by: Option<Uuid>,
}

pub use loyalty_core::POINTS_ABS_MAX;

/// `value` if within ±[`POINTS_ABS_MAX`], else `PointsOutOfRange`.
pub fn points_in_range(field: &'static str, value: i64) -> Result<i64, OpError> {
    if value.unsigned_abs() > POINTS_ABS_MAX.unsigned_abs() {
        return Err(OpError::PointsOutOfRange { field, value });
    }
    Ok(value)
}

/// Appends one ledger entry and moves the account with it: balance, lifetime
/// points, tier and entry count, plus the LEDGER_ENTRY_CREATED,
/// BALANCE_UPDATED and (if the tier moved) TIER_CHANGED events.
pub fn apply_entry(tx: &mut dyn Tx, ctx: &OpCtx, spec: EntrySpec) -> Result<LedgerEntry, OpError> {
    let account = tx
        .account(spec.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    apply_entry_to(tx, ctx, account, spec)
}

/// [`apply_entry`] on an account the caller has just read in this
/// transaction.
fn apply_entry_to(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    mut account: Account,
    spec: EntrySpec,
) -> Result<LedgerEntry, OpError> {
    let before = account.clone();
    points_in_range("points_change", spec.points_change)?;
    let balance_after = points_in_range(
        "current_balance",
        account.current_balance.saturating_add(spec.points_change),
    )?;
    if balance_after < 0 {
        return Err(OpError::InsufficientBalance {
            available: account.current_balance,
            requested: -spec.points_change,
        });
    }
    let lifetime_change = spec.transaction_type.lifetime_change(spec.points_change);
    if lifetime_change != 0 {
        account.lifetime_points = points_in_range(
            "lifetime_points",
            account.lifetime_points.saturating_add(lifetime_change),
        )?;
    }
    account.current_balance = balance_after;
    if spec.escrow_change != 0 {
        let escrow_after = points_in_range(
            "escrow_balance",
            account.escrow_balance.saturating_add(spec.escrow_change),
        )?;
        if escrow_after < 0 {
            return Err(StoreError::Internal("escrow balance would go below zero".into()).into());
        }
        account.escrow_balance = escrow_after;
    }
    // Lifetime points only grow, except by a reversal, which may also take
    // the tier down with them.
    account.tier = if lifetime_change < 0 {
        ctx.tiers.tier_for(account.lifetime_points)
    } else {
        ctx.tiers.tier_for(account.lifetime_points).max(before.tier)
    };
    // A player's entries are in time order: an entry is never dated before
    // the previous one (once the account has entries, its `updated_at` is
    // the newest one's time), even when two requests read the clock in one
    // order and reach the account in the other. Balances as of an instant
    // (`as_of`) rely on it.
    let written_at = if before.entry_count > 0 {
        ctx.now.max(before.updated_at)
    } else {
        ctx.now
    };
    account.entry_count += 1;
    account.updated_at = written_at;
    // A broken invariant is a bug: refuse to write it.
    if (lifetime_change >= 0 && account.lifetime_points < before.lifetime_points)
        || account.lifetime_points < 0
        || account.escrow_balance < 0
    {
        return Err(StoreError::Internal("ledger invariant would break".into()).into());
    }

    let mut entry = LedgerEntry {
        seq: 0,
        id: ctx.new_id(),
        player_id: spec.player_id,
        transaction_type: spec.transaction_type,
        event_type: spec.event_type.as_str().to_string(),
        points_change: spec.points_change,
        reason: spec.reason,
        source: spec.event_type.source().to_string(),
        staff_id: spec.staff_id,
        rating_slip_id: spec.rating_slip_id,
        idempotency_key: spec.idempotency_key,
        balance_before: before.current_balance,
        balance_after,
        tier_before: before.tier,
        tier_after: account.tier,
        lifetime_after: account.lifetime_points,
        escrow_id: spec.escrow_id,
        correlation_id: ctx.correlation_id.clone(),
        created_at: written_at,
        // The player's chain: the account row is locked (or the writer is
        // the only one), so no other entry of this player comes between.
        prev_hash: tx.chain_head(spec.player_id)?,
        hash: String::new(),
        escrow_change: spec.escrow_change,
        approved_by: spec.approved_by,
    };
    entry.hash = crate::chain::entry_hash(&entry);
    entry.seq = tx.insert_entry(&entry)?;
    tx.update_account(&account)?;

    ctx.emit(
        tx,
        Event::LedgerEntryCreated(ev::LedgerEntryCreated {
            ledger_entry_id: entry.id,
            player_id: entry.player_id,
            transaction_type: entry.transaction_type,
            points_change: entry.points_change,
            balance_before: entry.balance_before,
            balance_after: entry.balance_after,
            staff_id: entry.staff_id,
            rating_slip_id: entry.rating_slip_id,
            escrow_id: entry.escrow_id,
        }),
    )?;
    ctx.emit(
        tx,
        Event::BalanceUpdated(ev::BalanceUpdated {
            player_id: account.player_id,
            ledger_entry_id: entry.id,
            current_balance: account.current_balance,
            escrow_balance: account.escrow_balance,
            lifetime_points: account.lifetime_points,
            balance_before: before.current_balance,
            tier: account.tier,
        }),
    )?;
    if account.tier != before.tier {
        ctx.emit(
            tx,
            Event::TierChanged(ev::TierChanged {
                player_id: account.player_id,
                ledger_entry_id: entry.id,
                tier_before: before.tier,
                tier_after: account.tier,
                lifetime_points: account.lifetime_points,
            }),
        )?;
    }
    Ok(entry)
}

// ---------------------------------------------------------------- staff, players, tables

/// Creates a staff member and stores the hash of their first token.
pub fn create_staff(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    name: Name,
    role: Role,
    token_hash: &str,
) -> Result<Staff, OpError> {
    let staff = Staff {
        id: ctx.new_id(),
        name: name.into_string(),
        role,
        created_at: ctx.now,
        disabled_at: None,
    };
    tx.insert_staff(&staff)?;
    tx.insert_token(token_hash, TokenSubject::Staff(staff.id), ctx.now)?;
    ctx.emit(
        tx,
        Event::StaffCreated(ev::StaffCreated {
            staff_id: staff.id,
            role: staff.role,
            created_by: ctx.staff_id,
        }),
    )?;
    Ok(staff)
}

/// Creates a player and their loyalty account (BRONZE, 0).
pub fn create_player(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    display_name: Name,
    card_number: Option<CardNumber>,
) -> Result<Player, OpError> {
    let player = Player {
        id: ctx.new_id(),
        display_name: display_name.into_string(),
        card_number: card_number.map(CardNumber::into_string),
        status: loyalty_core::PlayerStatus::Active,
        created_at: ctx.now,
    };
    tx.insert_player(&player).map_err(|e| match e {
        StoreError::Conflict(_) => OpError::Conflict("card_number is already registered".into()),
        other => other.into(),
    })?;
    tx.insert_account(&Account {
        player_id: player.id,
        current_balance: 0,
        escrow_balance: 0,
        lifetime_points: 0,
        tier: Tier::Bronze,
        entry_count: 0,
        updated_at: ctx.now,
    })?;
    ctx.emit(
        tx,
        Event::PlayerCreated(ev::PlayerCreated {
            player_id: player.id,
            card_number: player.card_number.clone(),
        }),
    )?;
    Ok(player)
}

/// Disables a staff member: every token of theirs stops working; the record
/// stays (their ledger entries keep naming them). Disabling a disabled staff
/// member changes nothing and emits nothing.
pub fn disable_staff(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<Staff, OpError> {
    let before = tx.staff(id)?.ok_or(OpError::NotFound("staff member"))?;
    if before.disabled_at.is_none() {
        tx.disable_staff(id, ctx.now)?;
        let revoked = tx.revoke_subject_tokens(TokenSubject::Staff(id), ctx.now)?;
        ctx.emit(
            tx,
            Event::StaffDisabled(ev::StaffDisabled {
                staff_id: id,
                role: before.role,
                disabled_by: ctx.staff_id,
                tokens_revoked: revoked,
            }),
        )?;
    }
    tx.staff(id)?
        .ok_or_else(|| StoreError::Internal("disabled staff member vanished".into()).into())
}

/// Revokes every token of a player; returns how many were live.
pub fn revoke_player_tokens(tx: &mut dyn Tx, ctx: &OpCtx, player_id: Uuid) -> Result<u64, OpError> {
    tx.player(player_id)?.ok_or(OpError::NotFound("player"))?;
    let revoked = tx.revoke_subject_tokens(TokenSubject::Player(player_id), ctx.now)?;
    ctx.emit(
        tx,
        Event::PlayerTokensRevoked(ev::PlayerTokensRevoked {
            player_id,
            revoked_by: ctx.staff_id,
            tokens_revoked: revoked,
        }),
    )?;
    Ok(revoked)
}

/// Revokes the token with this hash (its holder signing out); false if it
/// was not live.
pub fn revoke_token(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    token_hash: &str,
    subject: TokenSubject,
) -> Result<bool, OpError> {
    let revoked = tx.revoke_token(token_hash, ctx.now)?;
    if revoked {
        let (subject, subject_id) = match subject {
            TokenSubject::Staff(id) => (ev::TokenHolder::Staff, id),
            TokenSubject::Player(id) => (ev::TokenHolder::Player, id),
        };
        ctx.emit(
            tx,
            Event::TokenRevoked(ev::TokenRevoked {
                subject,
                subject_id,
            }),
        )?;
    }
    Ok(revoked)
}

/// Issues a player's read-only token (stores its hash).
pub fn create_player_token(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    player_id: Uuid,
    token_hash: &str,
) -> Result<(), OpError> {
    tx.player(player_id)?.ok_or(OpError::NotFound("player"))?;
    tx.insert_token(token_hash, TokenSubject::Player(player_id), ctx.now)?;
    ctx.emit(
        tx,
        Event::PlayerTokenIssued(ev::PlayerTokenIssued {
            player_id,
            issued_by: ctx.staff_id,
        }),
    )?;
    Ok(())
}

/// Creates a table.
pub fn create_table(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    name: Name,
    game_type: Name,
    settings: GameSettings,
) -> Result<GameTable, OpError> {
    let table = GameTable {
        id: ctx.new_id(),
        name: name.into_string(),
        game_type: game_type.into_string(),
        settings,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.insert_table(&table)?;
    ctx.emit(
        tx,
        Event::TableCreated(ev::TableChanged {
            table_id: table.id,
            settings: table.settings.clone(),
        }),
    )?;
    Ok(table)
}

/// Changes a table; `change` edits a copy that is then stored. Open slips keep
/// their snapshot.
pub fn patch_table(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    change: impl FnOnce(&mut GameTable),
) -> Result<GameTable, OpError> {
    let mut table = tx.table(id)?.ok_or(OpError::NotFound("table"))?;
    change(&mut table);
    table.updated_at = ctx.now;
    tx.update_table(&table)?;
    ctx.emit(
        tx,
        Event::TableUpdated(ev::TableChanged {
            table_id: table.id,
            settings: table.settings.clone(),
        }),
    )?;
    Ok(table)
}

// ---------------------------------------------------------------- rating slips

/// Input of [`open_slip`].
#[derive(Debug, Clone)]
pub struct OpenSlip {
    /// Player rated.
    pub player_id: Uuid,
    /// Table.
    pub table_id: Uuid,
    /// Average bet (validated range).
    pub average_bet: AverageBet,
    /// Seat, if recorded.
    pub seat_number: Option<u32>,
    /// Start of play for slips entered after the fact.
    pub started_at: Option<Timestamp>,
}

fn session_max() -> SignedDuration {
    SignedDuration::from_secs(loyalty_core::limits::SESSION_SECONDS_MAX)
}

/// Opens a slip, snapshotting the table's game settings.
pub fn open_slip(tx: &mut dyn Tx, ctx: &OpCtx, input: OpenSlip) -> Result<RatingSlip, OpError> {
    let started = input.started_at.unwrap_or(ctx.now);
    if started > ctx.now {
        return Err(validation("started_at", "must not be in the future"));
    }
    if ctx.now.duration_since(started) > session_max() {
        return Err(validation("started_at", "must be at most 24 hours ago"));
    }
    tx.player(input.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    let table = tx
        .table_unlocked(input.table_id)?
        .ok_or(OpError::NotFound("table"))?;
    let slip = RatingSlip {
        id: ctx.new_id(),
        player_id: input.player_id,
        table_id: input.table_id,
        seat_number: input.seat_number,
        status: SlipStatus::Open,
        average_bet: input.average_bet.get(),
        started_at: started,
        ended_at: None,
        accumulated_us: 0,
        segment_started_at: Some(started),
        game_settings: table.settings,
        loyalty_status: LoyaltyStatus::None,
        ledger_entry_id: None,
        accrual_attempts: 0,
        next_retry_at: None,
        opened_by: ctx.staff_id,
        closed_correlation_id: None,
        corrections: Vec::new(),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.insert_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipOpened(ev::RatingSlipOpened {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            table_id: slip.table_id,
            average_bet: slip.average_bet,
            started_at: slip.started_at,
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(slip)
}

fn open_or_paused(tx: &mut dyn Tx, id: Uuid) -> Result<RatingSlip, OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if !matches!(slip.status, SlipStatus::Open | SlipStatus::Paused) {
        return Err(OpError::SlipNotOpen);
    }
    Ok(slip)
}

/// The payload of a slip's UPDATED, PAUSED or RESUMED event.
fn slip_changed(ctx: &OpCtx, slip: &RatingSlip) -> ev::RatingSlipChanged {
    ev::RatingSlipChanged {
        rating_slip_id: slip.id,
        player_id: slip.player_id,
        status: slip.status,
        average_bet: slip.average_bet,
        accumulated_seconds: slip.played_us_at(ctx.now) / 1_000_000,
        staff_id: ctx.staff_id,
    }
}

/// Changes the average bet of a slip that is not closed.
pub fn set_average_bet(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    average_bet: AverageBet,
) -> Result<RatingSlip, OpError> {
    let mut slip = open_or_paused(tx, id)?;
    slip.average_bet = average_bet.get();
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipUpdated(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// Pauses an open slip: the running segment's time is banked.
pub fn pause_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<RatingSlip, OpError> {
    let mut slip = open_or_paused(tx, id)?;
    if slip.status != SlipStatus::Open {
        return Err(OpError::Conflict("rating slip is already paused".into()));
    }
    if slip.played_us_at(ctx.now) > loyalty_core::limits::SESSION_SECONDS_MAX * 1_000_000 {
        return Err(validation("rating_slip", "session would exceed 24 hours"));
    }
    slip.accumulated_us = slip.played_us_at(ctx.now);
    slip.segment_started_at = None;
    slip.status = SlipStatus::Paused;
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipPaused(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// Resumes a paused slip.
pub fn resume_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<RatingSlip, OpError> {
    let mut slip = open_or_paused(tx, id)?;
    if slip.status != SlipStatus::Paused {
        return Err(OpError::Conflict("rating slip is not paused".into()));
    }
    slip.segment_started_at = Some(ctx.now);
    slip.status = SlipStatus::Open;
    slip.updated_at = ctx.now;
    tx.update_slip(&slip)?;
    ctx.emit(tx, Event::RatingSlipResumed(slip_changed(ctx, &slip)))?;
    Ok(slip)
}

/// The `loyalty` object of completion and recovery responses: the numbers of
/// the GAMEPLAY ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoyaltyResult {
    /// The entry.
    pub ledger_entry_id: Uuid,
    /// Its `points_change`.
    pub points_earned: i64,
    /// Balance before.
    pub balance_before: i64,
    /// Balance after.
    pub balance_after: i64,
    /// Tier before.
    pub tier_before: Tier,
    /// Tier after.
    pub tier_after: Tier,
    /// Progress towards the next tier after the entry.
    pub tier_progress: u8,
    /// Lifetime points after the entry.
    pub lifetime_points: i64,
    /// Whether this is a repeat of an earlier result.
    pub idempotent_replay: bool,
}

impl LoyaltyResult {
    /// The result that `entry` represents.
    pub fn from_entry(entry: &LedgerEntry, tiers: &TierTable, replay: bool) -> Self {
        LoyaltyResult {
            ledger_entry_id: entry.id,
            points_earned: entry.points_change,
            balance_before: entry.balance_before,
            balance_after: entry.balance_after,
            tier_before: entry.tier_before,
            tier_after: entry.tier_after,
            tier_progress: tiers.progress(entry.lifetime_after),
            lifetime_points: entry.lifetime_after,
            idempotent_replay: replay,
        }
    }
}

/// How a completion or recovery ended.
// Short-lived and returned once per request; boxing buys nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Completion {
    /// Points are in the ledger (now or earlier, see `idempotent_replay`).
    Accrued {
        /// The closed slip.
        slip: RatingSlip,
        /// The GAMEPLAY entry's numbers.
        loyalty: LoyaltyResult,
        /// The entry itself.
        entry: LedgerEntry,
    },
    /// The slip is closed but its points are pending recovery.
    Pending {
        /// The closed slip.
        slip: RatingSlip,
        /// Why accrual failed.
        error: String,
    },
}

/// Idempotency key of a slip's GAMEPLAY entry.
pub fn gameplay_key(slip_id: Uuid) -> String {
    format!("gameplay:{slip_id}")
}

/// Completes a slip: closes it and accrues its points in one transaction. If
/// accrual fails for a reason other than bad input, the slip still closes
/// with its loyalty PENDING. Completing a closed slip replays (or, if pending,
/// retries) its accrual.
pub fn complete_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    ended_at: Option<Timestamp>,
) -> Result<Completion, OpError> {
    let mut slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    match slip.status {
        SlipStatus::Closed => return settle_closed(tx, ctx, slip),
        SlipStatus::Voided => return Err(OpError::SlipNotOpen),
        SlipStatus::Open | SlipStatus::Paused => {}
    }
    let ended = ended_at.unwrap_or(ctx.now);
    if ended > ctx.now {
        return Err(validation("ended_at", "must not be in the future"));
    }
    if ended < slip.started_at {
        return Err(validation("ended_at", "must not be before started_at"));
    }
    if let (SlipStatus::Open, Some(seg)) = (slip.status, slip.segment_started_at)
        && ended < seg
    {
        return Err(validation(
            "ended_at",
            "must not be before the slip was last resumed",
        ));
    }
    // A paused slip has banked its time up to the pause, which is at or
    // before its last change: ending it earlier would credit time played
    // after the end.
    if slip.status == SlipStatus::Paused && ended < slip.updated_at {
        return Err(validation(
            "ended_at",
            "must not be before the slip was paused",
        ));
    }
    if ended.duration_since(slip.started_at) > session_max() {
        return Err(validation("ended_at", "a session lasts at most 24 hours"));
    }
    slip.accumulated_us = slip.played_us_at(ended);
    slip.segment_started_at = None;
    slip.status = SlipStatus::Closed;
    slip.ended_at = Some(ended);
    slip.closed_correlation_id = Some(ctx.correlation_id.clone());
    slip.updated_at = ctx.now;
    // The closed slip is stored once, by `accrue_guarded`, with its loyalty
    // outcome (accrued or pending).
    ctx.emit(
        tx,
        Event::RatingSlipCompleted(ev::RatingSlipCompleted {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            table_id: slip.table_id,
            average_bet: slip.average_bet,
            seconds_played: slip.accumulated_us / 1_000_000,
            ended_at: ended,
            staff_id: ctx.staff_id,
        }),
    )?;
    accrue_guarded(tx, ctx, slip)
}

/// What completing an open or paused slip at `ctx.now` would accrue,
/// computed by the very code completion runs ([`loyalty_core::accrual`]);
/// writes nothing.
pub fn preview_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
) -> Result<(RatingSlip, loyalty_core::Accrual, Tier), OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if !matches!(slip.status, SlipStatus::Open | SlipStatus::Paused) {
        return Err(OpError::SlipNotOpen);
    }
    let account = tx
        .account(slip.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    let seconds = u64::try_from(slip.played_us_at(ctx.now) / 1_000_000).unwrap_or(0);
    let accrual = loyalty_core::accrual(
        &AccrualInput {
            average_bet: slip.average_bet,
            seconds_played: seconds,
            settings: &slip.game_settings,
            tier: account.tier,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;
    Ok((slip, accrual, account.tier))
}

/// Recovers a closed slip's pending accrual; a replay if already accrued.
pub fn recover_slip(tx: &mut dyn Tx, ctx: &OpCtx, id: Uuid) -> Result<Completion, OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    if slip.status != SlipStatus::Closed {
        return Err(OpError::SlipNotClosed);
    }
    settle_closed(tx, ctx, slip)
}

fn settle_closed(tx: &mut dyn Tx, ctx: &OpCtx, slip: RatingSlip) -> Result<Completion, OpError> {
    match slip.loyalty_status {
        LoyaltyStatus::Accrued => {
            // The slip's current GAMEPLAY entry: its first accrual, or the
            // latest correction's.
            let entry = match slip.ledger_entry_id {
                Some(id) => tx.entry(id)?,
                None => tx.entry_by_key(&gameplay_key(slip.id))?,
            }
            .ok_or_else(|| StoreError::Internal("accrued slip has no ledger entry".into()))?;
            Ok(Completion::Accrued {
                loyalty: LoyaltyResult::from_entry(&entry, &ctx.tiers, true),
                slip,
                entry,
            })
        }
        LoyaltyStatus::Pending | LoyaltyStatus::None => accrue_guarded(tx, ctx, slip),
    }
}

/// Runs the accrual in a savepoint; on a failure that is not bad input the
/// savepoint is rolled back and the slip is marked PENDING instead.
fn accrue_guarded(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    mut slip: RatingSlip,
) -> Result<Completion, OpError> {
    tx.savepoint()?;
    match accrue(tx, ctx, &mut slip) {
        Ok(entry) => {
            tx.release_savepoint()?;
            Ok(Completion::Accrued {
                loyalty: LoyaltyResult::from_entry(&entry, &ctx.tiers, false),
                slip,
                entry,
            })
        }
        Err(
            e @ (OpError::Validation { .. }
            | OpError::NotFound(_)
            | OpError::PointsOutOfRange { .. }),
        ) => {
            tx.rollback_savepoint()?;
            Err(e)
        }
        Err(e) => {
            tx.rollback_savepoint()?;
            let error = e.to_string();
            slip.loyalty_status = LoyaltyStatus::Pending;
            slip.accrual_attempts += 1;
            let retry = loyalty_core::Backoff::new(
                ACCRUAL_RETRY_BASE_MS.unsigned_abs(),
                ACCRUAL_RETRY_MAX_MS.unsigned_abs(),
            );
            let attempt = u32::try_from(slip.accrual_attempts.clamp(1, 20)).unwrap_or(1);
            let delay_ms = i64::try_from(retry.delay_ms(attempt)).unwrap_or(ACCRUAL_RETRY_MAX_MS);
            slip.next_retry_at = Some(ctx.now + SignedDuration::from_millis(delay_ms));
            slip.updated_at = ctx.now;
            tx.update_slip(&slip)?;
            ctx.emit(
                tx,
                Event::LoyaltyAccrualFailed(ev::LoyaltyAccrualFailed {
                    rating_slip_id: slip.id,
                    player_id: slip.player_id,
                    error: error.clone(),
                    attempts: slip.accrual_attempts,
                    recovery_needed: true,
                    next_retry_at: slip.next_retry_at,
                }),
            )?;
            Ok(Completion::Pending { slip, error })
        }
    }
}

fn accrue(tx: &mut dyn Tx, ctx: &OpCtx, slip: &mut RatingSlip) -> Result<LedgerEntry, OpError> {
    if ctx.fail_accrual {
        return Err(OpError::AccrualFailed(
            "accrual fault injected (test mode)".into(),
        ));
    }
    let account = tx
        .account(slip.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    let seconds = u64::try_from(slip.accumulated_us / 1_000_000).unwrap_or(0);
    let points = compute_points(
        &AccrualInput {
            average_bet: slip.average_bet,
            seconds_played: seconds,
            settings: &slip.game_settings,
            tier: account.tier,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;
    let entry = apply_entry_to(
        tx,
        ctx,
        account,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::Gameplay,
            event_type: EventType::RatingSlipCompleted,
            points_change: points,
            reason: None,
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(gameplay_key(slip.id)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )?;
    // `slip` changes only once the row is stored: on a failure the caller
    // stores it as PENDING, without this entry's id.
    let mut accrued = slip.clone();
    accrued.loyalty_status = LoyaltyStatus::Accrued;
    accrued.ledger_entry_id = Some(entry.id);
    accrued.next_retry_at = None;
    accrued.updated_at = ctx.now;
    tx.update_slip(&accrued)?;
    *slip = accrued;
    Ok(entry)
}

// ---------------------------------------------------------------- voids and corrections

/// What a void or correction asks for (DESIGN §3.2), validated at the edge:
/// a reason of 10–500 characters; for a correction, at least one of the
/// new values.
#[derive(Debug, Clone, PartialEq)]
pub struct SlipChange {
    /// Why.
    pub reason: Reason,
    /// New average bet (corrections).
    pub average_bet: Option<AverageBet>,
    /// New start (corrections).
    pub started_at: Option<Timestamp>,
    /// New end (corrections).
    pub ended_at: Option<Timestamp>,
}

/// The result of [`void_slip`] or [`correct_slip`].
#[derive(Debug, Clone)]
pub struct SlipCorrected {
    /// The slip after the change.
    pub slip: RatingSlip,
    /// The slip's current GAMEPLAY entry (None once voided).
    pub accrual: Option<LedgerEntry>,
    /// The reversal entry written (or, on a replay, the one written then).
    pub reversal: Option<LedgerEntry>,
    /// Whether this repeats the slip's last change, which stands.
    pub replay: bool,
}

/// Key of the `n`th (1-based) correction's GAMEPLAY entry of a slip.
fn correction_key(slip_id: Uuid, n: usize) -> String {
    format!("gameplay:{slip_id}:correction:{n}")
}

/// Key of the `n`th (1-based) reversal of a slip's accrual.
fn reversal_key(slip_id: Uuid, n: usize) -> String {
    format!("reversal:{slip_id}:{n}")
}

/// A closed slip, locked, ready for a void or correction; `SlipNotClosed`
/// otherwise (a voided slip is answered by the caller first).
fn closed_slip(tx: &mut dyn Tx, id: Uuid) -> Result<RatingSlip, OpError> {
    let slip = tx.slip(id)?.ok_or(OpError::NotFound("rating slip"))?;
    match slip.status {
        SlipStatus::Closed | SlipStatus::Voided => Ok(slip),
        SlipStatus::Open | SlipStatus::Paused => Err(OpError::SlipNotClosed),
    }
}

/// Takes back what the slip's current GAMEPLAY entry earned, as entry `n`
/// of the slip's reversals. `INSUFFICIENT_BALANCE` if those points are no
/// longer available (spent or held).
fn reverse_accrual(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    slip: &RatingSlip,
    current: &LedgerEntry,
    reason: &str,
    event_type: EventType,
) -> Result<LedgerEntry, OpError> {
    apply_entry(
        tx,
        ctx,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::GameplayReversal,
            event_type,
            points_change: -current.points_change,
            reason: Some(reason.to_string()),
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(reversal_key(slip.id, slip.corrections.len() + 1)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )
}

fn current_accrual(tx: &mut dyn Tx, slip: &RatingSlip) -> Result<Option<LedgerEntry>, OpError> {
    if slip.loyalty_status != LoyaltyStatus::Accrued {
        return Ok(None);
    }
    let id = slip
        .ledger_entry_id
        .ok_or_else(|| StoreError::Internal("accrued slip has no ledger entry id".into()))?;
    Ok(Some(tx.entry(id)?.ok_or_else(|| {
        StoreError::Internal("accrued slip's ledger entry is missing".into())
    })?))
}

fn last_reversal(tx: &mut dyn Tx, slip: &RatingSlip) -> Result<Option<LedgerEntry>, OpError> {
    match slip.corrections.last().and_then(|c| c.reversal_entry_id) {
        Some(id) => Ok(tx.entry(id)?),
        None => Ok(None),
    }
}

fn record(
    ctx: &OpCtx,
    kind: &str,
    reason: &str,
    before: &RatingSlip,
    after: &RatingSlip,
    reversal: Option<&LedgerEntry>,
    accrual: Option<&LedgerEntry>,
) -> SlipCorrection {
    SlipCorrection {
        kind: kind.to_string(),
        reason: reason.to_string(),
        staff_id: ctx.staff_id,
        at: ctx.now,
        correlation_id: ctx.correlation_id.clone(),
        average_bet_before: before.average_bet,
        started_at_before: before.started_at,
        ended_at_before: before.ended_at,
        average_bet_after: after.average_bet,
        started_at_after: after.started_at,
        ended_at_after: after.ended_at,
        points_reversed: reversal.map(|e| -e.points_change).unwrap_or(0),
        points_accrued: accrual.map(|e| e.points_change),
        reversal_entry_id: reversal.map(|e| e.id),
        accrual_entry_id: accrual.map(|e| e.id),
    }
}

/// Voids a closed slip (DESIGN §3.2): a GAMEPLAY_REVERSAL entry takes back
/// exactly what it earned (lifetime points and tier go down with it) and
/// the slip becomes VOIDED, keeping its history. A pending accrual is
/// cancelled instead. Voiding a voided slip replays.
pub fn void_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    change: &SlipChange,
) -> Result<SlipCorrected, OpError> {
    let mut slip = closed_slip(tx, id)?;
    if slip.status == SlipStatus::Voided {
        let reversal = last_reversal(tx, &slip)?;
        return Ok(SlipCorrected {
            slip,
            accrual: None,
            reversal,
            replay: true,
        });
    }
    let before = slip.clone();
    let reversal = match current_accrual(tx, &slip)? {
        Some(current) => Some(reverse_accrual(
            tx,
            ctx,
            &slip,
            &current,
            change.reason.as_str(),
            EventType::RatingSlipVoided,
        )?),
        None => None,
    };
    slip.status = SlipStatus::Voided;
    slip.loyalty_status = LoyaltyStatus::None;
    slip.next_retry_at = None;
    slip.updated_at = ctx.now;
    let entry = record(
        ctx,
        "VOID",
        change.reason.as_str(),
        &before,
        &slip,
        reversal.as_ref(),
        None,
    );
    slip.corrections.push(entry);
    tx.update_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipVoided(ev::RatingSlipVoided {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            reason: change.reason.to_string(),
            points_reversed: reversal.as_ref().map(|e| -e.points_change).unwrap_or(0),
            reversal_entry_id: reversal.as_ref().map(|e| e.id),
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(SlipCorrected {
        slip,
        accrual: None,
        reversal,
        replay: false,
    })
}

/// Corrects a closed, accrued slip (DESIGN §3.2): new average bet and/or
/// times; a GAMEPLAY_REVERSAL of the current accrual and a new GAMEPLAY
/// entry computed with the slip's snapshotted settings, the tier multiplier
/// of its original accrual and its recorded pauses, in this transaction.
/// Repeating the last correction exactly replays it.
pub fn correct_slip(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    id: Uuid,
    change: &SlipChange,
) -> Result<SlipCorrected, OpError> {
    let mut slip = closed_slip(tx, id)?;
    if slip.status == SlipStatus::Voided {
        return Err(OpError::Conflict("rating slip is voided".into()));
    }
    if let Some(last) = slip.corrections.last()
        && last.kind == "CORRECT"
        && last.reason == change.reason.as_str()
        && change
            .average_bet
            .is_none_or(|b| b.get() == last.average_bet_after)
        && change.started_at.is_none_or(|t| t == last.started_at_after)
        && change
            .ended_at
            .is_none_or(|t| Some(t) == last.ended_at_after)
    {
        let reversal = last_reversal(tx, &slip)?;
        let accrual = current_accrual(tx, &slip)?;
        return Ok(SlipCorrected {
            slip,
            accrual,
            reversal,
            replay: true,
        });
    }
    let Some(current) = current_accrual(tx, &slip)? else {
        return Err(OpError::Conflict(
            "the slip's points are not accrued yet: recover it before correcting".into(),
        ));
    };
    let before = slip.clone();
    let ended_before = slip
        .ended_at
        .ok_or_else(|| StoreError::Internal("closed slip has no end".into()))?;
    let started = change.started_at.unwrap_or(slip.started_at);
    let ended = change.ended_at.unwrap_or(ended_before);
    if ended > ctx.now {
        return Err(validation("ended_at", "must not be in the future"));
    }
    if started > ended {
        return Err(validation("ended_at", "must not be before started_at"));
    }
    if ended.duration_since(started) > session_max() {
        return Err(validation("ended_at", "a session lasts at most 24 hours"));
    }
    // Keep the recorded pauses: the time not played stays not played.
    let paused_us = (ended_before.as_microsecond()
        - before.started_at.as_microsecond()
        - before.accumulated_us)
        .max(0);
    let span_us = ended.as_microsecond() - started.as_microsecond();
    let played_us = span_us - paused_us;
    if played_us < 0 {
        return Err(validation(
            "started_at",
            "the new times are shorter than the slip's recorded pauses",
        ));
    }
    let average_bet = change.average_bet.map_or(slip.average_bet, AverageBet::get);
    // The original accrual's tier sets the multiplier.
    let original = tx
        .entry_by_key(&gameplay_key(slip.id))?
        .ok_or_else(|| StoreError::Internal("accrued slip has no first accrual".into()))?;
    let points = compute_points(
        &AccrualInput {
            average_bet,
            seconds_played: u64::try_from(played_us / 1_000_000).unwrap_or(0),
            settings: &slip.game_settings,
            tier: original.tier_before,
        },
        &ctx.tiers,
    )
    .map_err(|e| validation("average_bet", e.to_string()))?;

    let reversal = reverse_accrual(
        tx,
        ctx,
        &slip,
        &current,
        change.reason.as_str(),
        EventType::RatingSlipCorrected,
    )?;
    let accrual = apply_entry(
        tx,
        ctx,
        EntrySpec {
            player_id: slip.player_id,
            transaction_type: TransactionType::Gameplay,
            event_type: EventType::RatingSlipCorrected,
            points_change: points,
            reason: Some(change.reason.to_string()),
            staff_id: ctx.staff_id,
            rating_slip_id: Some(slip.id),
            idempotency_key: Some(correction_key(slip.id, slip.corrections.len() + 1)),
            escrow_id: None,
            escrow_change: 0,
            approved_by: None,
        },
    )?;
    slip.average_bet = average_bet;
    slip.started_at = started;
    slip.ended_at = Some(ended);
    slip.accumulated_us = played_us;
    slip.ledger_entry_id = Some(accrual.id);
    slip.updated_at = ctx.now;
    let entry = record(
        ctx,
        "CORRECT",
        change.reason.as_str(),
        &before,
        &slip,
        Some(&reversal),
        Some(&accrual),
    );
    slip.corrections.push(entry);
    tx.update_slip(&slip)?;
    ctx.emit(
        tx,
        Event::RatingSlipCorrected(ev::RatingSlipCorrected {
            rating_slip_id: slip.id,
            player_id: slip.player_id,
            reason: change.reason.to_string(),
            average_bet: slip.average_bet,
            started_at: slip.started_at,
            ended_at: slip.ended_at,
            points_reversed: -reversal.points_change,
            points_accrued: accrual.points_change,
            reversal_entry_id: reversal.id,
            ledger_entry_id: accrual.id,
            staff_id: ctx.staff_id,
        }),
    )?;
    Ok(SlipCorrected {
        slip,
        accrual: Some(accrual),
        reversal: Some(reversal),
        replay: false,
    })
}

// ---------------------------------------------------------------- manual rewards

/// Input of [`manual_reward`], already validated at the edge.
#[derive(Debug, Clone)]
pub struct ManualReward {
    /// Player rewarded.
    pub player_id: Uuid,
    /// Signed points, 1 ≤ |points| ≤ 10,000.
    pub points: Points,
    /// Why, 10–500 characters.
    pub reason: Reason,
    /// Staff member granting it (the authenticated one).
    pub staff_id: Uuid,
    /// Rating slip it belongs to, if any (must be the player's).
    pub rating_slip_id: Option<Uuid>,
    /// Deterministic idempotency key.
    pub key: String,
}

/// The checks of a manual reward before anything is written, in rule
/// order: the same key again is a replay (`Some` with the entry it wrote)
/// or, with other content, a reuse; then the player, its rating slip and the
/// balance. Read-only: a caller that must decide before the write (the rate
/// limiter takes quota only for a reward that will be written) runs it in a
/// read, and [`manual_reward`] runs it again in its transaction.
pub fn check_manual_reward(
    tx: &mut dyn Tx,
    input: &ManualReward,
) -> Result<Option<LedgerEntry>, OpError> {
    if let Some(existing) = tx.entry_by_key(&input.key)? {
        // A key replays only the request that wrote it; anything else is a
        // reuse, answered without revealing the original entry.
        let same = existing.player_id == input.player_id
            && existing.staff_id == Some(input.staff_id)
            && existing.points_change == input.points.get()
            && existing.reason.as_deref() == Some(input.reason.as_str())
            && existing.rating_slip_id == input.rating_slip_id
            && matches!(
                existing.transaction_type,
                TransactionType::ManualBonus | TransactionType::Adjustment
            );
        if !same {
            return Err(OpError::IdempotencyKeyReused);
        }
        return Ok(Some(existing));
    }
    tx.player(input.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    if let Some(slip_id) = input.rating_slip_id {
        match tx.slip(slip_id)? {
            Some(slip) if slip.player_id == input.player_id => {}
            Some(_) => {
                return Err(validation(
                    "rating_slip_id",
                    "rating slip belongs to another player",
                ));
            }
            None => return Err(validation("rating_slip_id", "rating slip does not exist")),
        }
    }
    // Locks in the order every write takes them: slip, then account.
    let account = tx
        .account(input.player_id)?
        .ok_or(OpError::NotFound("player"))?;
    if account.current_balance.saturating_add(input.points.get()) < 0 {
        return Err(OpError::InsufficientBalance {
            available: account.current_balance,
            requested: -input.points.get(),
        });
    }
    Ok(None)
}

/// Grants a manual reward (MANUAL_BONUS) or adjustment (ADJUSTMENT). Returns
/// the entry and whether it is a replay of an earlier one with the same key.
pub fn manual_reward(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    input: ManualReward,
) -> Result<(LedgerEntry, bool), OpError> {
    manual_reward_by(tx, ctx, input, None)
}

/// [`manual_reward`], approved by a second staff member under dual control
/// when `approved_by` is set (the entry carries both ids).
pub(crate) fn manual_reward_by(
    tx: &mut dyn Tx,
    ctx: &OpCtx,
    input: ManualReward,
    approved_by: Option<Uuid>,
) -> Result<(LedgerEntry, bool), OpError> {
    if let Some(existing) = check_manual_reward(tx, &input)? {
        return Ok((existing, true));
    }
    let transaction_type = if input.points.get() > 0 {
        TransactionType::ManualBonus
    } else {
        TransactionType::Adjustment
    };
    let entry = apply_entry(
        tx,
        ctx,
        EntrySpec {
            player_id: input.player_id,
            transaction_type,
            event_type: EventType::PointsUpdateRequested,
            points_change: input.points.get(),
            reason: Some(input.reason.into_string()),
            staff_id: Some(input.staff_id),
            rating_slip_id: input.rating_slip_id,
            idempotency_key: Some(input.key),
            escrow_id: None,
            escrow_change: 0,
            approved_by,
        },
    )?;
    ctx.emit(
        tx,
        Event::PointsUpdateRequested(ev::PointsUpdateRequested {
            player_id: entry.player_id,
            staff_id: entry.staff_id,
            points: entry.points_change,
            reason: entry.reason.clone(),
            ledger_entry_id: entry.id,
            rating_slip_id: entry.rating_slip_id,
            approved_by: entry.approved_by,
        }),
    )?;
    Ok((entry, false))
}

/// Runs the integrity check; returns accounts checked and drift found (at
/// most `drift_max` reported, the count is exact).
pub fn verify(tx: &mut dyn Tx, drift_max: usize) -> Result<(u64, Vec<Drift>, u64), OpError> {
    verify_with_progress(tx, drift_max, &mut |_| {})
}

/// [`verify`], telling `progress` how many ledger entries the chain check
/// has covered so far (the longest part of the work).
pub fn verify_with_progress(
    tx: &mut dyn Tx,
    drift_max: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, Vec<Drift>, u64), OpError> {
    let mut found = Vec::new();
    let mut total = 0u64;
    let mut report = |d: Drift| {
        total += 1;
        if found.len() < drift_max {
            found.push(d);
        }
    };
    let checked = tx.verify_accounts(&mut report)?;
    crate::chain::verify_with_progress(tx, &mut report, progress)?;
    wallet::verify(tx, &mut report)?;
    Ok((checked, found, total))
}
