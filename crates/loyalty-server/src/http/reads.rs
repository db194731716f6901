//! What the console reads (DESIGN §5, §8): finding players, lists of tables
//! and slips, the points preview of an open slip, and the manual-reward
//! frequency report.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use loyalty_core::limits::NAME_CHARS_MAX;
use loyalty_core::{Permission, SlipStatus};
use loyalty_store::ops;
use loyalty_store::{SlipQuery, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ledger::{decode_id_cursor, encode_id_cursor};
use super::paging::{page, page_limit};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::events::subscribers::{ALERT_REWARDS_MAX, ALERT_WINDOW_SECONDS};
use crate::extract::{ApiQuery, path_id};
use crate::views;

/// Longest range of the reward report: hour buckets.
pub const REPORT_HOURS_DAYS_MAX: i64 = 31;
/// Longest range of the reward report: day buckets.
pub const REPORT_DAYS_DAYS_MAX: i64 = 366;

fn uuid_param(field: &str, v: Option<&str>) -> ApiResult<Option<Uuid>> {
    v.map(|s| Uuid::parse_str(s).map_err(|_| ApiError::validation(field, "must be an id")))
        .transpose()
}

#[derive(Deserialize)]
pub(super) struct PlayerSearch {
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/players?q=`: a card-number prefix or a name substring
/// (case-insensitive); without `q`, every player. Newest first.
pub(super) async fn players(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<PlayerSearch>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let q = match p.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(q) => Some(super::validate::text("q", q, 1, NAME_CHARS_MAX)?),
    };
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_id_cursor(&st, c))
        .transpose()?;
    let rows = st
        .store
        .read(move |tx| tx.search_players(q.as_deref(), before, limit + 1))
        .await?;
    let (rows, next) = page(rows, limit, |p| encode_id_cursor(&st, p.id));
    Ok(axum::Json(json!({"players": rows, "next_cursor": next})).into_response())
}

#[derive(Deserialize)]
pub(super) struct Page {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/tables`, newest first.
pub(super) async fn tables(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<Page>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_id_cursor(&st, c))
        .transpose()?;
    let rows = st
        .store
        .read(move |tx| tx.tables(before, limit + 1))
        .await?;
    let (rows, next) = page(rows, limit, |t| encode_id_cursor(&st, t.id));
    Ok(axum::Json(json!({"tables": rows, "next_cursor": next})).into_response())
}

#[derive(Deserialize)]
pub(super) struct SlipList {
    status: Option<String>,
    table_id: Option<String>,
    player_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/rating-slips?status=&table_id=&player_id=`, newest first.
pub(super) async fn slips(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<SlipList>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            SlipStatus::parse(s)
                .ok_or_else(|| ApiError::validation("status", "must be OPEN, PAUSED or CLOSED"))
        })
        .transpose()?;
    let limit = page_limit(p.limit)?;
    let q = SlipQuery {
        status,
        table_id: uuid_param("table_id", p.table_id.as_deref())?,
        player_id: uuid_param("player_id", p.player_id.as_deref())?,
        before_id: p
            .cursor
            .as_deref()
            .map(|c| decode_id_cursor(&st, c))
            .transpose()?,
        limit: limit + 1,
    };
    let rows = st.store.read(move |tx| tx.slips(&q)).await?;
    let now = st.clock.now();
    let (rows, next) = page(rows, limit, |s| encode_id_cursor(&st, s.id));
    let views: Vec<Value> = rows.iter().map(|s| views::slip(s, now)).collect();
    Ok(axum::Json(json!({"rating_slips": views, "next_cursor": next})).into_response())
}

/// `GET /v1/rating-slips/{id}/preview`: what completing the slip now would
/// accrue, by the same code completion runs; writes nothing.
pub(super) async fn preview(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let id = path_id(&id, "rating slip")?;
    let ctx = st.op_ctx(Some(&caller), None);
    let now = ctx.now;
    let (slip, accrual, tier) = st
        .store
        .read(move |tx| ops::preview_slip(tx, &ctx, loyalty_core::SlipId::of(id)))
        .await?;
    let mut body = json!(accrual);
    body["rating_slip_id"] = json!(slip.id);
    body["player_id"] = json!(slip.player_id);
    body["tier"] = json!(tier);
    body["as_of"] = json!(now);
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize)]
pub(super) struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

fn required_time(field: &str, v: Option<&str>) -> ApiResult<Timestamp> {
    v.ok_or_else(|| ApiError::validation(field, "is required (RFC 3339)"))?
        .parse()
        .map_err(|_| ApiError::validation(field, "must be an RFC 3339 timestamp"))
}

/// `GET /v1/reports/manual-rewards?from&to&bucket=hour|day`: count and
/// points of manual rewards (and adjustments) per staff member per bucket
/// (UTC), with the alert threshold for the chart.
pub(super) async fn manual_reward_report(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let from = required_time("from", p.from.as_deref())?;
    let to = required_time("to", p.to.as_deref())?;
    if to <= from {
        return Err(ApiError::validation("to", "must be after from"));
    }
    let (bucket, bucket_s, days_max) = match p.bucket.as_deref().unwrap_or("hour") {
        "hour" => ("hour", 3_600i64, REPORT_HOURS_DAYS_MAX),
        "day" => ("day", 86_400i64, REPORT_DAYS_DAYS_MAX),
        _ => return Err(ApiError::validation("bucket", "must be hour or day")),
    };
    if to.duration_since(from) > SignedDuration::from_hours(24 * days_max) {
        return Err(ApiError::validation(
            "to",
            format!("a report by {bucket} covers at most {days_max} days"),
        ));
    }
    let rows = st
        .store
        .read(move |tx| -> Result<_, StoreError> {
            tx.reward_buckets(from, to, bucket_s * 1_000_000)
        })
        .await?;
    Ok(axum::Json(json!({
        "from": from,
        "to": to,
        "bucket": bucket,
        "buckets": rows,
        "alert": {"threshold": ALERT_REWARDS_MAX, "window_seconds": ALERT_WINDOW_SECONDS},
    }))
    .into_response())
}
