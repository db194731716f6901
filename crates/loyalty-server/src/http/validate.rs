//! Checks of text and decimal fields shared by every resource: what a name,
//! reason or bet may contain and how long or large it may be.

use loyalty_core::chars_within;
use rust_decimal::Decimal;

use crate::error::{ApiError, ApiResult};

/// Checks a required name-like text field.
pub(crate) fn text(field: &str, value: &str, min: usize, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if !chars_within(v, min.max(1), max) {
        return Err(ApiError::validation(
            field,
            format!("must be {}-{max} characters", min.max(1)),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(c) = v.chars().find(|c| FORBIDDEN_FORMAT_CHARS.contains(c)) {
        return Err(ApiError::validation(
            field,
            format!(
                "must not contain bidirectional controls or zero-width spaces (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if !v.chars().any(is_visible) {
        return Err(ApiError::validation(
            field,
            "must contain at least one visible character",
        ));
    }
    Ok(v.to_string())
}

/// Characters no text field may contain: the bidirectional embeddings,
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

/// Checks an exact decimal is within `[min, max]` with few decimal places.
pub(crate) fn decimal_in(
    field: &str,
    v: Decimal,
    min: Decimal,
    max: Decimal,
    min_exclusive: bool,
) -> ApiResult<Decimal> {
    let low_ok = if min_exclusive { v > min } else { v >= min };
    if !low_ok || v > max {
        let low = if min_exclusive { "above" } else { "at least" };
        return Err(ApiError::validation(
            field,
            format!("must be {low} {min} and at most {max}"),
        ));
    }
    if v.scale() > loyalty_core::limits::DECIMAL_PLACES_MAX {
        return Err(ApiError::validation(
            field,
            format!(
                "must have at most {} decimal places",
                loyalty_core::limits::DECIMAL_PLACES_MAX
            ),
        ));
    }
    Ok(v.normalize())
}
