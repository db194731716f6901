//! Input values parsed once, at the edge: each newtype has a private field
//! and one fallible constructor, so an operation that takes a [`Reason`] or
//! an [`AverageBet`] never sees one that breaks the rules below.
//!
//! A refusal is a [`ValueError`] saying what was expected; the edge adds the
//! field's name (HTTP answers 400 `VALIDATION_ERROR` with it).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{
    AVERAGE_BET_MAX, CARD_NUMBER_CHARS_MAX, DECIMAL_PLACES_MAX, KEY_CHARS_MAX, NAME_CHARS_MAX,
    REASON_CHARS_MAX,
};

/// What a value must be, in words ("must be 1-200 characters").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn refuse<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

/// Characters no text value may contain: the bidirectional embeddings,
/// overrides and isolates (which make a name display as another), zero-width
/// spaces and word joiners. The zero-width joiner and non-joiner (U+200D,
/// U+200C) stay allowed: Persian and Indic names and emoji need them.
const FORBIDDEN_FORMAT_CHARS: &[char] = &[
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200B}', '\u{2060}', '\u{FEFF}', '\u{200E}', '\u{200F}',
];

/// Whether `c` shows something: not white space and not one of the
/// characters that render as nothing (joiners, fillers, variation selectors).
fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180E}' | '\u{200C}' | '\u{200D}' | '\u{2061}'..='\u{2064}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}' | '\u{E0100}'..='\u{E01EF}')
}

/// Text a person typed: trimmed, `min`–`max` characters (at least 1), no
/// control characters, no invisible direction or spacing tricks, something
/// visible.
pub fn bounded_text(value: &str, min: usize, max: usize) -> Result<String, ValueError> {
    let v = value.trim();
    let min = min.max(1);
    if !crate::chars_within(v, min, max) {
        return refuse(format!("must be {min}-{max} characters"));
    }
    if v.chars().any(char::is_control) {
        return refuse("must not contain control characters");
    }
    if let Some(c) = v.chars().find(|c| FORBIDDEN_FORMAT_CHARS.contains(c)) {
        return refuse(format!(
            "must not contain bidirectional controls or zero-width spaces (U+{:04X})",
            u32::from(c)
        ));
    }
    if !v.chars().any(is_visible) {
        return refuse("must contain at least one visible character");
    }
    Ok(v.to_string())
}

/// An exact decimal within `[min, max]` (or `(min, max]`) with at most
/// [`DECIMAL_PLACES_MAX`] places, normalised.
pub fn decimal_in(
    v: Decimal,
    min: Decimal,
    max: Decimal,
    min_exclusive: bool,
) -> Result<Decimal, ValueError> {
    let low_ok = if min_exclusive { v > min } else { v >= min };
    if !low_ok || v > max {
        let low = if min_exclusive { "above" } else { "at least" };
        return refuse(format!("must be {low} {min} and at most {max}"));
    }
    if v.scale() > DECIMAL_PLACES_MAX {
        return refuse(format!(
            "must have at most {DECIMAL_PLACES_MAX} decimal places"
        ));
    }
    Ok(v.normalize())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A name shown to people (a player, staff member, table, game type or
    /// merchant): 1–[`NAME_CHARS_MAX`] characters of [`bounded_text`].
    Name
);

impl Name {
    /// Parses a name.
    pub fn new(v: &str) -> Result<Name, ValueError> {
        bounded_text(v, 1, NAME_CHARS_MAX).map(Name)
    }
}

text_newtype!(
    /// Why something was done: `min`–[`REASON_CHARS_MAX`] characters of
    /// [`bounded_text`] (rewards, voids and corrections ask for at least
    /// 10, holds for 1).
    Reason
);

impl Reason {
    /// Parses a reason of at least `min_chars` characters.
    pub fn new(v: &str, min_chars: usize) -> Result<Reason, ValueError> {
        bounded_text(v, min_chars, REASON_CHARS_MAX).map(Reason)
    }
}

text_newtype!(
    /// A loyalty card number: 1–[`CARD_NUMBER_CHARS_MAX`] characters of
    /// [`bounded_text`], unique among players.
    CardNumber
);

impl CardNumber {
    /// Parses a card number.
    pub fn new(v: &str) -> Result<CardNumber, ValueError> {
        bounded_text(v, 1, CARD_NUMBER_CHARS_MAX).map(CardNumber)
    }
}

text_newtype!(
    /// A client's idempotency key (`Idempotency-Key`, a reward's
    /// `reward_id`): 1–[`KEY_CHARS_MAX`] visible ASCII characters, kept as
    /// sent.
    IdempotencyKey
);

impl IdempotencyKey {
    /// Parses a key.
    pub fn new(v: &str) -> Result<IdempotencyKey, ValueError> {
        if v.is_empty() || v.len() > KEY_CHARS_MAX || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return refuse(format!(
                "must be 1-{KEY_CHARS_MAX} visible ASCII characters"
            ));
        }
        Ok(IdempotencyKey(v.to_string()))
    }
}

/// An average bet: above 0, at most [`AVERAGE_BET_MAX`], at most
/// [`DECIMAL_PLACES_MAX`] places; exact, with the scale it was given
/// (`150.50` stays `150.50`; the HTTP edge normalises what clients send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AverageBet(Decimal);

impl AverageBet {
    /// Parses a bet.
    pub fn new(v: Decimal) -> Result<AverageBet, ValueError> {
        decimal_in(v, Decimal::ZERO, Decimal::from(AVERAGE_BET_MAX), true)?;
        Ok(AverageBet(v))
    }
    /// The same amount without trailing zeros (`150.50` → `150.5`).
    pub fn normalized(self) -> AverageBet {
        AverageBet(self.0.normalize())
    }
    /// The amount.
    pub fn get(self) -> Decimal {
        self.0
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses an id as a client sends it.
            pub fn parse(v: &str) -> Result<$name, ValueError> {
                Uuid::parse_str(v)
                    .map($name)
                    .map_err(|_| ValueError(format!("must be a {} id", $what)))
            }
            /// The id of a stored record of this kind.
            pub fn of(id: Uuid) -> $name {
                $name(id)
            }
            /// The UUID.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// A player's id: an operation that takes one cannot be handed a
    /// table's or a slip's by mistake.
    PlayerId,
    "player"
);
id_newtype!(
    /// A staff member's id.
    StaffId,
    "staff member"
);
id_newtype!(
    /// A gaming table's id.
    TableId,
    "table"
);
id_newtype!(
    /// A rating slip's id.
    SlipId,
    "rating slip"
);
id_newtype!(
    /// A merchant's id.
    MerchantId,
    "merchant"
);
id_newtype!(
    /// An escrow's id.
    EscrowId,
    "escrow"
);
id_newtype!(
    /// A dual-control request's id.
    ApprovalId,
    "approval"
);

/// The largest magnitude of a balance, lifetime total or amount: 2^53 − 1,
/// the largest integer every JSON client reads exactly.
pub const POINTS_ABS_MAX: i64 = (1 << 53) - 1;

/// A signed number of points within ±[`POINTS_ABS_MAX`]; arithmetic is
/// checked and stays in the range or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Points(i64);

impl Points {
    /// Zero points.
    pub const ZERO: Points = Points(0);

    /// `v` if within ±[`POINTS_ABS_MAX`].
    pub fn new(v: i64) -> Result<Points, ValueError> {
        if v.unsigned_abs() > POINTS_ABS_MAX.unsigned_abs() {
            return refuse(format!("must be within ±{POINTS_ABS_MAX} (2^53 - 1)"));
        }
        Ok(Points(v))
    }
    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
    /// `self + other`, if it stays in the range.
    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0
            .checked_add(other.0)
            .and_then(|v| Points::new(v).ok())
    }
    /// `self - other`, if it stays in the range.
    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0
            .checked_sub(other.0)
            .and_then(|v| Points::new(v).ok())
    }
}

impl std::ops::Neg for Points {
    type Output = Points;

    /// `-self` (always in the range, which is symmetric).
    fn neg(self) -> Points {
        Points(-self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_bounded_and_visible() {
        let cases: &[(&str, usize, usize, Result<&str, &str>)] = &[
            ("  Ada  ", 1, 10, Ok("Ada")),
            ("", 1, 10, Err("must be 1-10 characters")),
            ("   ", 1, 10, Err("must be 1-10 characters")),
            ("short", 10, 500, Err("must be 10-500 characters")),
            ("a\u{7}b", 1, 10, Err("must not contain control characters")),
            (
                "a\u{202E}b",
                1,
                10,
                Err("must not contain bidirectional controls or zero-width spaces (U+202E)"),
            ),
            (
                "\u{3164}\u{3164}",
                1,
                10,
                Err("must contain at least one visible character"),
            ),
            ("Ölçü", 1, 4, Ok("Ölçü")),
        ];
        for (input, min, max, want) in cases {
            let got = bounded_text(input, *min, *max);
            match want {
                Ok(v) => assert_eq!(got.as_deref(), Ok(*v), "{input:?}"),
                Err(m) => assert_eq!(got, Err(ValueError((*m).into())), "{input:?}"),
            }
        }
    }

    #[test]
    fn points_stay_within_the_exact_json_range() {
        assert!(Points::new(POINTS_ABS_MAX).is_ok());
        assert!(Points::new(-POINTS_ABS_MAX).is_ok());
        assert!(Points::new(POINTS_ABS_MAX + 1).is_err());
        assert!(Points::new(i64::MIN).is_err());
        let max = Points::new(POINTS_ABS_MAX).unwrap_or(Points::ZERO);
        let one = Points::new(1).unwrap_or(Points::ZERO);
        assert_eq!(max.checked_add(one), None);
        assert_eq!((-max).checked_sub(one), None);
        assert_eq!(one.checked_add(one).map(Points::get), Some(2));
    }

    #[test]
    fn bets_are_positive_bounded_and_exact() {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
        assert_eq!(
            AverageBet::new(d("150.50")).map(|b| b.get().to_string()),
            Ok("150.50".into())
        );
        assert_eq!(
            AverageBet::new(d("150.50")).map(|b| b.normalized().get().to_string()),
            Ok("150.5".into())
        );
        assert!(AverageBet::new(d("0")).is_err());
        assert!(AverageBet::new(d("0.00001")).is_err());
        assert!(AverageBet::new(d("1000000")).is_ok());
        assert!(AverageBet::new(d("1000000.0001")).is_err());
    }

    #[test]
    fn keys_are_visible_ascii_within_their_length() {
        assert!(IdempotencyKey::new("pit-7:slip-42").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("é").is_err());
        assert!(IdempotencyKey::new(&"k".repeat(KEY_CHARS_MAX + 1)).is_err());
    }
}
