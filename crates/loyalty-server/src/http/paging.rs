//! Pages of lists: the `limit` parameter and the cursor after a page.

use loyalty_core::limits::{PAGE_DEFAULT, PAGE_MAX};

use crate::error::{ApiError, ApiResult};

/// The `limit` query parameter: 1–[`PAGE_MAX`], [`PAGE_DEFAULT`] if absent.
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be 1-{PAGE_MAX}"),
        ));
    }
    Ok(limit)
}

/// `rows` read with `limit + 1`: the page, and the cursor after its last
/// row when another page follows.
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_after: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(&cursor_after)).flatten();
    (rows, next)
}
