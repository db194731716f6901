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
