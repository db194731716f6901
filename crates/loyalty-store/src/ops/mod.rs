//! Transactional operations, written once against [`Tx`].
//!
//! Each public function here is one business operation; the caller runs it
//! inside [`crate::Store::write`], so everything it writes — rows, ledger
//! entries, outbox events — commits together or not at all. The only function
//! that changes a balance is [`apply_entry`], and it always writes the ledger
//! entry and the events in the same breath.
//!
//! One module per resource: `ledger` (`apply_entry`), `staff`, `players`,
//! `tables`, `slips` (open to complete, the accrual), `corrections` (voids
//! and corrections), `rewards` (manual rewards), [`approvals`] (dual
//! control), [`wallet`] (escrows), [`reports`]; [`verify`] decides what is
//! drift. This file holds what they share: [`OpError`], [`OpCtx`] and the
//! integrity check's entry point.

pub mod approvals;
mod corrections;
mod ledger;
mod players;
pub mod reports;
mod rewards;
mod slips;
mod staff;
mod tables;
pub mod verify;
pub mod wallet;
pub mod webhooks;

pub use corrections::*;
pub use ledger::*;
pub use players::*;
pub use rewards::*;
pub use slips::*;
pub use staff::*;
pub use tables::*;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use loyalty_core::events::{self as ev, Event, EventType};
use loyalty_core::{
    AccrualInput, AverageBet, CardNumber, GameSettings, LoyaltyStatus, Name, Points, Reason, Role,
    SlipStatus, Tier, TierTable, TransactionType, compute_points,
};
use loyalty_core::{PlayerId, SlipId, StaffId, TableId};
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
