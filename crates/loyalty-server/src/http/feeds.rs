//! What the event subscribers keep for people, read over HTTP: manual-reward
//! alerts, and a player's notifications and activity.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use loyalty_core::Permission;
use loyalty_store::{EventRecord, FeedItem, StoreError, Tx};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ledger::{decode_cursor, encode_cursor};
use super::paging::page_limit;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::events::subscribers::{FEED_NOTIFICATIONS, summary};
use crate::extract::{ApiQuery, path_id};

#[derive(Deserialize)]
pub(super) struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub(super) async fn alerts(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&st, c))
        .transpose()?;
    let rows = st.store.read(move |tx| tx.alerts(before, limit)).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|(seq, _)| encode_cursor(&st, *seq)))
        .flatten();
    let alerts: Vec<Value> = rows.into_iter().map(|(_, a)| json!(a)).collect();
    Ok(axum::Json(json!({"alerts": alerts, "next_cursor": next})).into_response())
}

fn feed_view(f: FeedItem) -> Value {
    json!({
        "event_seq": f.event_seq,
        "event_id": f.event_id,
        "event_type": f.event_type,
        "occurred_at": f.occurred_at,
        "data": f.data,
    })
}

/// One page of a player's items, newest first, after checking the player
/// exists: `fetch` reads up to `limit` items with seq below the cursor.
async fn player_page<T: Send + 'static>(
    st: &AppState,
    player: Uuid,
    p: PageParams,
    fetch: impl FnOnce(&mut dyn Tx, Option<i64>, u32) -> Result<Vec<T>, StoreError> + Send + 'static,
    seq: fn(&T) -> i64,
    view: fn(T) -> Value,
) -> ApiResult<(Vec<Value>, Option<String>)> {
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(st, c))
        .transpose()?;
    let items = st
        .store
        .read(move |tx| -> Result<Option<Vec<T>>, StoreError> {
            if tx.player(player)?.is_none() {
                return Ok(None);
            }
            fetch(tx, before, limit).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("player"))?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|i| encode_cursor(st, seq(i))))
        .flatten();
    Ok((items.into_iter().map(view).collect(), next))
}

/// An activity item: the event with a line the player can read.
fn activity_view(ev: EventRecord) -> Value {
    json!({
        "event_seq": ev.seq,
        "event_id": ev.event_id,
        "event_type": ev.event_type,
        "occurred_at": ev.occurred_at,
        "data": {"summary": summary(&ev), "payload": ev.payload},
    })
}

pub(super) async fn notifications(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::PlayersRead, id)?;
    let (items, next) = player_page(
        &st,
        id,
        p,
        move |tx, before, limit| tx.feed_items(FEED_NOTIFICATIONS, id, before, limit),
        |i| i.event_seq,
        feed_view,
    )
    .await?;
    Ok(axum::Json(json!({"notifications": items, "next_cursor": next})).into_response())
}

pub(super) async fn activity(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::LoyaltyViewAll, id)?;
    let (items, next) = player_page(
        &st,
        id,
        p,
        move |tx, before, limit| tx.activity_events(id, before, limit),
        |e| e.seq,
        activity_view,
    )
    .await?;
    Ok(axum::Json(json!({"activity": items, "next_cursor": next})).into_response())
}
