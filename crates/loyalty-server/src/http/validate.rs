//! The edge's adapters from [`loyalty_core::values`] to the HTTP envelope:
//! a value's rule is written once in core; here it gets the field's name.

use loyalty_core::ValueError;
use rust_decimal::Decimal;

use crate::error::{ApiError, ApiResult};

/// `parsed` as a 400 `VALIDATION_ERROR` naming `field`.
pub(crate) fn field<T>(field: &str, parsed: Result<T, ValueError>) -> ApiResult<T> {
    parsed.map_err(|e| ApiError::validation(field, e.0))
}

/// A required text field ([`loyalty_core::values::bounded_text`]).
pub(crate) fn text(name: &str, value: &str, min: usize, max: usize) -> ApiResult<String> {
    field(name, loyalty_core::values::bounded_text(value, min, max))
}

/// An exact decimal within bounds ([`loyalty_core::values::decimal_in`]).
pub(crate) fn decimal_in(
    name: &str,
    v: Decimal,
    min: Decimal,
    max: Decimal,
    min_exclusive: bool,
) -> ApiResult<Decimal> {
    field(
        name,
        loyalty_core::values::decimal_in(v, min, max, min_exclusive),
    )
}

/// An exact decimal from JSON: a number, or a string of digits with an
/// optional fraction (`"12.50"`) — not `"+5"`, `"1e2"` or `".5"`, which a
/// lenient parser would also take; OpenAPI documents exactly this.
pub(crate) fn de_decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let bad = || D::Error::custom("expected an exact decimal: a number or a string like \"12.50\"");
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => {
            let text = n.to_string();
            if text.contains(['e', 'E']) {
                Decimal::from_scientific(&text).map_err(|_| bad())
            } else {
                text.parse().map_err(|_| bad())
            }
        }
        serde_json::Value::String(s) => {
            let (whole, fraction) = s.split_once('.').unwrap_or((&s, "0"));
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if !(digits(whole) && digits(fraction)) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// [`de_decimal`] for an optional field (absent or `null` is `None`).
pub(crate) fn de_decimal_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Decimal>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_decimal")] Decimal);
    Option::<Wrap>::deserialize(d).map(|o| o.map(|Wrap(v)| v))
}
