//! Tiers by lifetime points and the progress towards the next one.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::policy::round_half_away;

/// A loyalty tier. Ordered from lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    /// The starting tier.
    Bronze,
    /// Second tier.
    Silver,
    /// Third tier.
    Gold,
    /// The top tier.
    Platinum,
}

impl Tier {
    /// All tiers, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Bronze, Tier::Silver, Tier::Gold, Tier::Platinum];

    /// The stable upper-case name used in the API and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Bronze => "BRONZE",
            Tier::Silver => "SILVER",
            Tier::Gold => "GOLD",
            Tier::Platinum => "PLATINUM",
        }
    }

    /// Parses the name written by [`Tier::as_str`].
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Thresholds (lifetime points) and multipliers per tier. Configuration; the
/// defaults are DESIGN §3.1's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierTable {
    /// Lifetime points at which each tier starts, indexed like [`Tier::ALL`];
    /// strictly increasing, the first is 0.
    pub thresholds: [i64; 4],
    /// Points multiplier of each tier, indexed like [`Tier::ALL`].
    pub multipliers: [Decimal; 4],
}

impl Default for TierTable {
    fn default() -> Self {
        TierTable {
            thresholds: [0, 1_000, 5_000, 20_000],
            multipliers: [
                Decimal::new(100, 2),
                Decimal::new(125, 2),
                Decimal::new(150, 2),
                Decimal::new(200, 2),
            ],
        }
    }
}

impl TierTable {
    /// Checks the table is usable: first threshold 0, strictly increasing,
    /// multipliers not negative.
    pub fn validate(&self) -> Result<(), String> {
        if self.thresholds[0] != 0 {
            return Err("the first tier threshold must be 0".into());
        }
        if self.thresholds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("tier thresholds must be strictly increasing".into());
        }
        if self.multipliers.iter().any(|m| m.is_sign_negative()) {
            return Err("tier multipliers must not be negative".into());
        }
        Ok(())
    }

    /// The tier a player with `lifetime_points` holds.
    pub fn tier_for(&self, lifetime_points: i64) -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| lifetime_points >= self.thresholds[t.index()])
            .unwrap_or(Tier::Bronze)
    }

    /// The multiplier applied to points earned while in `tier`.
    pub fn multiplier(&self, tier: Tier) -> Decimal {
        self.multipliers[tier.index()]
    }

    /// Percent of the way from the current tier's threshold to the next one,
    /// rounded half away from zero; 100 at the top tier.
    pub fn progress(&self, lifetime_points: i64) -> u8 {
        let tier = self.tier_for(lifetime_points);
        let i = tier.index();
        if i + 1 >= Tier::ALL.len() {
            return 100;
        }
        let low = self.thresholds[i];
        let high = self.thresholds[i + 1];
        let pct =
            Decimal::from(lifetime_points - low) * Decimal::ONE_HUNDRED / Decimal::from(high - low);
        let rounded = round_half_away(pct);
        u8::try_from(rounded.clamp(0, 100)).unwrap_or(100)
    }
}
