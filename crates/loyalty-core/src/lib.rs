//! Domain types and rules of Loyalty Ledger.
//!
//! This crate is pure: no IO, no async, no clock, no randomness. Everything that
//! decides how many points a player earns or which tier they hold lives here, so
//! that the same inputs give the same answer on every machine and every backend.
//!
//! * [`policy`] — the points-from-play formula (DESIGN §3.1) in exact decimal
//!   arithmetic, with half-away-from-zero rounding.
//! * [`tier`] — tiers, their thresholds and multipliers, and tier progress.
//! * [`backoff`] — capped exponential backoff, the one retry-delay formula.
//! * [`model`] — the nouns shared by the store and the server: roles,
//!   permissions, slip states, transaction types, the limits on input.
//! * [`values`] — input newtypes parsed once at the edge (`Name`, `Reason`,
//!   `CardNumber`, `IdempotencyKey`, `AverageBet`, `Points`, and an id type
//!   per record kind: `PlayerId`, `SlipId`, …).
//! * [`events`] — the domain events, one typed variant and payload struct
//!   per type, written to the outbox and matched by the subscribers.
#![warn(missing_docs)]

pub mod backoff;
pub mod events;
pub mod model;
pub mod payload;
pub mod policy;
pub mod tier;
pub mod values;

pub use backoff::Backoff;
pub use events::{Event, EventType};
pub use model::*;
pub use policy::{
    Accrual, AccrualInput, Bonus, GameSettings, PolicyError, accrual, compute_points,
    round_half_away,
};
pub use tier::{Tier, TierTable};
pub use values::{
    ApprovalId, AverageBet, CardNumber, EscrowId, IdempotencyKey, MerchantId, Name, POINTS_ABS_MAX,
    PlayerId, Points, Reason, SlipId, StaffId, TableId, ValueError,
};
#[cfg(test)]
mod tests;
