//! Points from play (DESIGN §3.1), exact.
//!
//! Every quantity is a [`Decimal`] or an integer; there is no binary floating
//! point anywhere, so `150 × 2.7 % × 3 × 10 = 121.5` really is 121.5 and rounds
//! to 122 on every machine. Rounding is half away from zero.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::tier::{Tier, TierTable};

/// The seat count at and above which no empty-seat bonus applies.
pub const FULL_TABLE_SEATS: u32 = 7;

/// A table's game settings, snapshotted on a rating slip when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSettings {
    /// House edge in percent, 0–100.
    pub house_edge: Decimal,
    /// Average rounds played per hour, 1–1,000.
    pub average_rounds_per_hour: u32,
    /// Points per unit of theoretical win (default 10).
    pub points_conversion_rate: Decimal,
    /// Table-level point multiplier (default 1).
    pub point_multiplier: Decimal,
    /// Seats available at the table, 0–20 (default 7).
    pub seats_available: u32,
}

/// Everything the points formula needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccrualInput<'a> {
    /// Final average bet of the slip, > 0.
    pub average_bet: Decimal,
    /// Seconds played, pauses excluded.
    pub seconds_played: u64,
    /// The slip's game-settings snapshot.
    pub settings: &'a GameSettings,
    /// The player's tier before this accrual.
    pub tier: Tier,
}

/// Why the formula could not produce a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The intermediate values exceed what points can hold.
    #[error("points overflow: inputs are too large")]
    Overflow,
    /// `average_rounds_per_hour` was 0.
    #[error("average rounds per hour must be at least 1")]
    NoRounds,
}

/// Rounds `value` to an integer, halves away from zero (2.5 → 3, −2.5 → −3).
/// Values beyond `i64` saturate.
pub fn round_half_away(value: Decimal) -> i64 {
    let r = value.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(r).unwrap_or(if r.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Rounds played: `round(seconds / 3600 × rounds_per_hour)`, half away from
/// zero, in integer arithmetic.
pub fn rounds_played(seconds_played: u64, rounds_per_hour: u32) -> u64 {
    let numerator = u128::from(seconds_played) * u128::from(rounds_per_hour);
    // round(n / 3600) for n >= 0, halves up = floor((2n + 3600) / 7200).
    let rounded = (2 * numerator + 3600) / 7200;
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

/// Points earned for one rating slip (DESIGN §3.1 steps 1–6).
pub fn compute_points(input: &AccrualInput<'_>, tiers: &TierTable) -> Result<i64, PolicyError> {
    let s = input.settings;
    if s.average_rounds_per_hour == 0 {
        return Err(PolicyError::NoRounds);
    }
    let rounds = rounds_played(input.seconds_played, s.average_rounds_per_hour);
    let rounds_dec = Decimal::from(rounds);
    let mul = |a: Decimal, b: Decimal| a.checked_mul(b).ok_or(PolicyError::Overflow);

    let theo = mul(
        mul(input.average_bet, s.house_edge)? / Decimal::ONE_HUNDRED,
        rounds_dec,
    )?;
    let mut points = mul(
        mul(mul(theo, s.points_conversion_rate)?, s.point_multiplier)?,
        tiers.multiplier(input.tier),
    )?;
    if s.seats_available < FULL_TABLE_SEATS {
        let empty = Decimal::from(FULL_TABLE_SEATS - s.seats_available);
        let bonus = Decimal::ONE + Decimal::new(5, 2) * empty;
        points = mul(points, bonus)?;
    }
    if rounds > u64::from(s.average_rounds_per_hour) {
        points = mul(points, Decimal::new(11, 1))?;
    }
    let rounded = points.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).map_err(|_| PolicyError::Overflow)
}
