//! `GET /v1/events`: a page of the outbox in `seq` order (DESIGN §6), the
//! replay and resume position of every consumer.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use loyalty_core::Permission;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// Largest events page.
pub const EVENTS_PAGE_MAX: u32 = 1000;
#[derive(Deserialize)]
pub(super) struct EventParams {
    after: Option<i64>,
    limit: Option<u32>,
    event_type: Option<String>,
}

pub(super) async fn page(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<EventParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation(
            "after",
            "must be a sequence number >= 0",
        ));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=EVENTS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be 1-{EVENTS_PAGE_MAX}"),
        ));
    }
    if let Some(t) = &p.event_type
        && (t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    {
        return Err(ApiError::validation(
            "event_type",
            "must be an event type like LEDGER_ENTRY_CREATED",
        ));
    }
    let events = st
        .store
        .read(move |tx| tx.events(after, limit, p.event_type.as_deref()))
        .await?;
    Ok(axum::Json(json!({"events": events})).into_response())
}
