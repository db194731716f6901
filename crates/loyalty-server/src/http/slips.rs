//! Rating slips: open, change, pause, resume, complete, recover.

use loyalty_core::{AverageBet, Reason};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use loyalty_core::Permission;
use loyalty_core::limits::SEATS_MAX;
use loyalty_store::ops::{self, Completion, OpCtx};
use loyalty_store::{RatingSlip, Tx};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::validate::field;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{RawBody, parse_json, path_id};
use crate::idem::{self, Outcome, run_write};
use crate::views;
use loyalty_core::SlipId;

#[derive(Deserialize)]
struct OpenSlip {
    player_id: Uuid,
    table_id: Uuid,
    #[serde(deserialize_with = "super::validate::de_decimal")]
    average_bet: Decimal,
    seat_number: Option<u32>,
    started_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct SlipPatch {
    #[serde(deserialize_with = "super::validate::de_decimal")]
    average_bet: Decimal,
}

#[derive(Deserialize, Default)]
struct CompleteSlip {
    ended_at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidSlip {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectSlip {
    reason: String,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    average_bet: Option<Decimal>,
    started_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
}

/// A bet as clients send it, normalised (`25.50` is stored as `25.5`).
fn average_bet(v: Decimal) -> ApiResult<AverageBet> {
    field("average_bet", AverageBet::new(v)).map(AverageBet::normalized)
}

pub(super) async fn open(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::RatingSlipWrite)?;
    let input: OpenSlip = parse_json(&body)?;
    let bet = average_bet(input.average_bet)?;
    if let Some(seat) = input.seat_number
        && !(1..=SEATS_MAX).contains(&seat)
    {
        return Err(ApiError::validation(
            "seat_number",
            format!("must be 1-{SEATS_MAX}"),
        ));
    }
    let key = idem::parse(&headers, &caller, "open_slip", "/v1/rating-slips", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let open = ops::OpenSlip {
        player_id: loyalty_core::PlayerId::of(input.player_id),
        table_id: loyalty_core::TableId::of(input.table_id),
        average_bet: bet,
        seat_number: input.seat_number,
        started_at: input.started_at,
    };
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::open_slip(tx, ctx, open),
        |slip, ctx| (StatusCode::CREATED, views::slip(slip, ctx.now)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let id = path_id(&id, "rating slip")?;
    let slip = st
        .store
        .read(move |tx| tx.slip(id))
        .await?
        .ok_or_else(|| ApiError::not_found("rating slip"))?;
    Ok(axum::Json(views::slip(&slip, st.clock.now())).into_response())
}

/// Runs a simple slip transition and answers 200 with the slip.
async fn transition(
    st: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
    operation: &'static str,
    op: impl FnOnce(&mut dyn Tx, &OpCtx, SlipId) -> Result<RatingSlip, ops::OpError> + Send + 'static,
) -> ApiResult<Response> {
    caller.require(Permission::RatingSlipWrite)?;
    let id = path_id(&id, "rating slip")?;
    let path = format!("/v1/rating-slips/{id}/{operation}");
    let key = idem::parse(&headers, &caller, operation, &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| op(tx, ctx, SlipId::of(id)),
        |slip, ctx| (StatusCode::OK, views::slip(slip, ctx.now)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::RatingSlipWrite)?;
    let input: SlipPatch = parse_json(&body)?;
    let bet = average_bet(input.average_bet)?;
    transition(
        st,
        caller,
        headers,
        id,
        body,
        "update",
        move |tx, ctx, id| ops::set_average_bet(tx, ctx, id, bet),
    )
    .await
}

pub(super) async fn pause(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    transition(st, caller, headers, id, body, "pause", ops::pause_slip).await
}

pub(super) async fn resume(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    transition(st, caller, headers, id, body, "resume", ops::resume_slip).await
}

pub(super) async fn complete(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::RatingSlipWrite)?;
    let id = path_id(&id, "rating slip")?;
    let input: CompleteSlip = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteSlip::default()
    } else {
        parse_json(&body)?
    };
    let path = format!("/v1/rating-slips/{id}/complete");
    let key = idem::parse(&headers, &caller, "complete_slip", &path, &body)?;
    settle(st, caller, key, "complete", move |tx, ctx| {
        ops::complete_slip(tx, ctx, SlipId::of(id), input.ended_at)
    })
    .await
}

pub(super) async fn recover(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::RatingSlipWrite)?;
    let id = path_id(&id, "rating slip")?;
    let path = format!("/v1/rating-slips/{id}/recover-loyalty");
    let key = idem::parse(&headers, &caller, "recover_loyalty", &path, &body)?;
    settle(st, caller, key, "recover", move |tx, ctx| {
        ops::recover_slip(tx, ctx, SlipId::of(id))
    })
    .await
}

/// `POST /v1/rating-slips/{id}/void` (DESIGN §3.2): `loyalty:adjust`.
pub(super) async fn void(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::LoyaltyAdjust)?;
    let id = path_id(&id, "rating slip")?;
    let input: VoidSlip = parse_json(&body)?;
    let change = ops::SlipChange {
        reason: correction_reason(&input.reason)?,
        average_bet: None,
        started_at: None,
        ended_at: None,
    };
    let path = format!("/v1/rating-slips/{id}/void");
    let key = idem::parse(&headers, &caller, "void_slip", &path, &body)?;
    change_closed(st, caller, key, "rating_slip_voided", move |tx, ctx| {
        ops::void_slip(tx, ctx, SlipId::of(id), &change)
    })
    .await
}

/// `POST /v1/rating-slips/{id}/correct` (DESIGN §3.2): `loyalty:adjust`.
pub(super) async fn correct(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::LoyaltyAdjust)?;
    let id = path_id(&id, "rating slip")?;
    let input: CorrectSlip = parse_json(&body)?;
    if input.average_bet.is_none() && input.started_at.is_none() && input.ended_at.is_none() {
        return Err(ApiError::validation(
            "average_bet",
            "give at least one of average_bet, started_at, ended_at",
        ));
    }
    let change = ops::SlipChange {
        reason: correction_reason(&input.reason)?,
        average_bet: input.average_bet.map(average_bet).transpose()?,
        started_at: input.started_at,
        ended_at: input.ended_at,
    };
    let path = format!("/v1/rating-slips/{id}/correct");
    let key = idem::parse(&headers, &caller, "correct_slip", &path, &body)?;
    change_closed(st, caller, key, "rating_slip_corrected", move |tx, ctx| {
        ops::correct_slip(tx, ctx, SlipId::of(id), &change)
    })
    .await
}

fn correction_reason(reason: &str) -> ApiResult<Reason> {
    field(
        "reason",
        Reason::new(reason, loyalty_core::limits::REWARD_REASON_CHARS_MIN),
    )
}

/// Runs a void or correction and answers 200 `{rating_slip, loyalty}`;
/// writes its canonical log line.
async fn change_closed(
    st: AppState,
    caller: Caller,
    key: Option<idem::IdemKey>,
    action: &'static str,
    op: impl FnOnce(&mut dyn Tx, &OpCtx) -> Result<ops::SlipCorrected, ops::OpError> + Send + 'static,
) -> ApiResult<Response> {
    let started = Instant::now();
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| {
            let c = op(tx, ctx)?;
            let account = tx
                .account(c.slip.player_id)?
                .ok_or(ops::OpError::NotFound("player"))?;
            Ok((c, account))
        },
        |(c, account), ctx| {
            let loyalty = json!({
                "points_reversed": c.reversal.as_ref().map(|e| -e.points_change).unwrap_or(0),
                "points_accrued": c.accrual.as_ref().map(|e| e.points_change),
                "reversal_entry_id": c.reversal.as_ref().map(|e| e.id),
                "ledger_entry_id": c.accrual.as_ref().map(|e| e.id),
                "current_balance": account.current_balance,
                "lifetime_points": account.lifetime_points,
                "tier": account.tier,
                "idempotent_replay": c.replay,
            });
            let body = json!({"rating_slip": views::slip(&c.slip, ctx.now), "loyalty": loyalty});
            (StatusCode::OK, body)
        },
    )
    .await?;
    if let Outcome::Fresh(_, _, (c, account)) = &out {
        let last = c.slip.corrections.last();
        tracing::info!(
            correlation_id = %crate::correlation::current(),
            player_id = %c.slip.player_id,
            rating_slip_id = %c.slip.id,
            staff_id = caller.staff_id().map(tracing::field::display),
            reason = last.map(|l| l.reason.as_str()).unwrap_or(""),
            points_reversed = last.map(|l| l.points_reversed).unwrap_or(0),
            points_accrued = last.and_then(|l| l.points_accrued),
            balance_after = account.current_balance,
            lifetime_points = account.lifetime_points,
            tier = account.tier.as_str(),
            idempotent_replay = c.replay,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "{action}"
        );
    }
    Ok(out.into_response())
}

/// The body of a completion: 200 `{rating_slip, loyalty}` or 202 PARTIAL_COMPLETION.
pub(crate) fn completion_body(c: &Completion, ctx: &OpCtx) -> (StatusCode, Value) {
    let now = ctx.now;
    match c {
        Completion::Accrued { slip, loyalty, .. } => (
            StatusCode::OK,
            json!({"rating_slip": views::slip(slip, now), "loyalty": loyalty}),
        ),
        Completion::Pending { slip, .. } => {
            let mut body = ApiError::new(
                Code::PartialCompletion,
                "the rating slip is closed; its loyalty accrual is pending and will be retried",
            )
            .with_details(json!({
                "rating_slip_id": slip.id,
                "loyalty_status": slip.loyalty_status,
                "recovery_needed": true,
            }))
            .body_for(&ctx.correlation_id);
            body["rating_slip"] = views::slip(slip, now);
            (StatusCode::ACCEPTED, body)
        }
    }
}

async fn settle(
    st: AppState,
    caller: Caller,
    key: Option<idem::IdemKey>,
    action: &'static str,
    op: impl FnOnce(&mut dyn Tx, &OpCtx) -> Result<Completion, ops::OpError> + Send + 'static,
) -> ApiResult<Response> {
    let started = Instant::now();
    let idempotency_key = key.as_ref().map(|k| k.key.clone());
    let ctx = st.op_ctx(Some(&caller), idempotency_key);
    let out = run_write(&st, ctx, key, op, completion_body).await?;
    if let Outcome::Fresh(_, _, c) = &out {
        crate::logs::log_completion(c, action, caller.staff_id(), started);
    }
    Ok(out.into_response())
}
