//! Points from play (DESIGN §3.1), exact.
//!
//! Inputs are [`Decimal`]s; the formula runs on exact scaled integers (38
//! significant digits) with no binary floating point anywhere, so
//! `150 × 2.7 % × 3 × 10 = 121.5` really is 121.5 and rounds to 122 on every
//! machine. Rounding is half away from zero. A product too large to hold
//! exactly is an error, never a rounded guess.

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

/// An exact decimal as an `i128` mantissa and a power-of-ten scale: 38
/// significant digits, where `rust_decimal`'s 96-bit mantissa keeps only 28
/// and silently rounds a product that needs more. Products that do not fit
/// are refused, never rounded.
#[derive(Debug, Clone, Copy)]
struct Exact {
    mantissa: i128,
    scale: u32,
}

impl std::fmt::Display for Exact {
    /// Exact decimal text, e.g. `40.5` (no digits are lost).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl Exact {
    fn of(d: Decimal) -> Exact {
        let d = d.normalize();
        Exact {
            mantissa: d.mantissa(),
            scale: d.scale(),
        }
    }

    fn mul(self, other: Exact) -> Result<Exact, PolicyError> {
        let mut e = Exact {
            mantissa: self
                .mantissa
                .checked_mul(other.mantissa)
                .ok_or(PolicyError::Overflow)?,
            scale: self.scale + other.scale,
        };
        while e.scale > 0 && e.mantissa % 10 == 0 {
            e.mantissa /= 10;
            e.scale -= 1;
        }
        Ok(e)
    }

    /// As a `Decimal` (small factors only; exact).
    fn to_decimal(self) -> Decimal {
        i64::try_from(self.mantissa)
            .ok()
            .and_then(|m| Decimal::try_new(m, self.scale).ok())
            .unwrap_or(Decimal::ZERO)
            .normalize()
    }

    /// Rounds to an integer, halves away from zero.
    fn round(self) -> Result<i64, PolicyError> {
        let div = 10i128
            .checked_pow(self.scale)
            .ok_or(PolicyError::Overflow)?;
        let (q, r) = (self.mantissa / div, self.mantissa % div);
        let q = if 2 * r.abs() >= div {
            q + self.mantissa.signum()
        } else {
            q
        };
        i64::try_from(q).map_err(|_| PolicyError::Overflow)
    }
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

/// A bonus factor applied to a slip's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bonus {
    /// `empty_seats` or `long_session`.
    pub name: &'static str,
    /// The factor, e.g. 1.1.
    pub factor: Decimal,
}

/// How a slip's points come about: the result of [`accrual`], shown by the
/// preview and used by completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accrual {
    /// Points earned (step 6, rounded half away from zero).
    pub points: i64,
    /// Theoretical win: average bet × house edge × rounds, exact.
    pub theo: String,
    /// Rounds played.
    pub rounds: u64,
    /// Seconds played, pauses excluded.
    pub seconds_played: u64,
    /// The player's tier multiplier.
    pub tier_multiplier: Decimal,
    /// Bonuses applied, in order.
    pub bonuses: Vec<Bonus>,
}

/// Points earned for one rating slip (DESIGN §3.1 steps 1–6).
pub fn compute_points(input: &AccrualInput<'_>, tiers: &TierTable) -> Result<i64, PolicyError> {
    accrual(input, tiers).map(|a| a.points)
}

/// The whole computation of [`compute_points`], with its intermediate values.
pub fn accrual(input: &AccrualInput<'_>, tiers: &TierTable) -> Result<Accrual, PolicyError> {
    let s = input.settings;
    if s.average_rounds_per_hour == 0 {
        return Err(PolicyError::NoRounds);
    }
    let rounds = rounds_played(input.seconds_played, s.average_rounds_per_hour);
    let percent = Exact {
        mantissa: 1,
        scale: 2,
    };
    let theo = Exact::of(input.average_bet)
        .mul(Exact::of(s.house_edge))?
        .mul(percent)?
        .mul(Exact::of(Decimal::from(rounds)))?;
    let tier_multiplier = tiers.multiplier(input.tier);
    let mut points = theo
        .mul(Exact::of(s.points_conversion_rate))?
        .mul(Exact::of(s.point_multiplier))?
        .mul(Exact::of(tier_multiplier))?;
    let mut bonuses = Vec::new();
    if s.seats_available < FULL_TABLE_SEATS {
        // 1 + 0.05 × empty seats = (100 + 5 × empty) / 100
        let empty = i128::from(FULL_TABLE_SEATS - s.seats_available);
        let factor = Exact {
            mantissa: 100 + 5 * empty,
            scale: 2,
        };
        points = points.mul(factor)?;
        bonuses.push(Bonus {
            name: "empty_seats",
            factor: factor.to_decimal(),
        });
    }
    if rounds > u64::from(s.average_rounds_per_hour) {
        let factor = Exact {
            mantissa: 11,
            scale: 1,
        };
        points = points.mul(factor)?;
        bonuses.push(Bonus {
            name: "long_session",
            factor: factor.to_decimal(),
        });
    }
    Ok(Accrual {
        points: points.round()?,
        theo: theo.to_string(),
        rounds,
        seconds_played: input.seconds_played,
        tier_multiplier,
        bonuses,
    })
}
