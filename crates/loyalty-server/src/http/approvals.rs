//! Dual control (DESIGN §9): the approvals waiting for, or given, a second
//! staff member's decision. Listing needs `loyalty:adjust` or `audit:read`;
//! approving and rejecting need `loyalty:adjust`, except that a requester
//! may withdraw their own request (a "reject" by the requester).

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::Permission;
use loyalty_core::limits::{REASON_CHARS_MAX, REWARD_REASON_CHARS_MIN};
use loyalty_store::ops::approvals::{self, Decision, status};
use loyalty_store::{Approval, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ledger::{decode_cursor, encode_cursor};
use super::paging::page_limit;
use super::validate::text;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{ApiQuery, RawBody, parse_json, path_id};
use crate::idem::{self, Outcome, run_write};

#[derive(Deserialize)]
pub(super) struct ListParams {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// What a reader sees: a PENDING approval past its expiry is EXPIRED even
/// before anyone touches it.
fn view(a: &Approval, now: jiff::Timestamp) -> Value {
    let mut v = json!(a);
    if a.status == status::PENDING && a.expires_at <= now {
        v["status"] = json!(status::EXPIRED);
    }
    v
}

/// `GET /v1/approvals?status=&limit=&cursor=`, newest first.
pub(super) async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    if caller.require(Permission::LoyaltyAdjust).is_err() {
        caller.require(Permission::AuditRead)?;
    }
    let status_filter = match p.status.as_deref() {
        None => None,
        Some(s)
            if [
                status::PENDING,
                status::APPROVED,
                status::REJECTED,
                status::WITHDRAWN,
                status::EXPIRED,
            ]
            .contains(&s) =>
        {
            Some(s.to_string())
        }
        Some(_) => {
            return Err(ApiError::validation(
                "status",
                "must be PENDING, APPROVED, REJECTED, WITHDRAWN or EXPIRED",
            ));
        }
    };
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&st, c))
        .transpose()?;
    let now = st.clock.now();
    let rows = st
        .store
        .read(move |tx| -> Result<_, StoreError> {
            tx.approvals(status_filter.as_deref(), now, before, limit)
        })
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|a| encode_cursor(&st, a.seq)))
        .flatten();
    let list: Vec<Value> = rows.iter().map(|a| view(a, now)).collect();
    Ok(axum::Json(json!({"approvals": list, "next_cursor": next})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

/// The body of a decision: 200 `{approval, ledger_entry?}`; 409
/// APPROVAL_NOT_PENDING with the approval when it was decided otherwise or
/// lapsed (its correlation id is set by the caller, from the operation).
fn decision_body(d: &Decision, ctx: &loyalty_store::ops::OpCtx) -> (StatusCode, Value) {
    let now = ctx.now;
    match d {
        Decision::Made(a, entry) => (
            StatusCode::OK,
            json!({"approval": view(a, now), "ledger_entry": entry, "idempotent_replay": false}),
        ),
        Decision::Repeated(a) => (
            StatusCode::OK,
            json!({"approval": view(a, now), "idempotent_replay": true}),
        ),
        Decision::NotPending(a) => {
            let mut body = ApiError::new(
                Code::ApprovalNotPending,
                format!(
                    "the request is {}; only a PENDING request can be decided",
                    view(a, now)["status"].as_str().unwrap_or("decided")
                ),
            )
            .with_details(json!({"status": view(a, now)["status"]}))
            .body_for(&ctx.correlation_id);
            body["approval"] = view(a, now);
            (StatusCode::CONFLICT, body)
        }
    }
}

async fn decide(
    st: AppState,
    caller: Caller,
    headers: HeaderMap,
    body: &[u8],
    action: &'static str,
    id: uuid::Uuid,
    op: impl FnOnce(
        &mut dyn loyalty_store::Tx,
        &loyalty_store::ops::OpCtx,
    ) -> Result<Decision, loyalty_store::ops::OpError>
    + Send
    + 'static,
) -> ApiResult<Response> {
    let started = Instant::now();
    let path = format!("/v1/approvals/{id}/{action}");
    let key = idem::parse(&headers, &caller, action, &path, body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(&st, ctx, key, op, decision_body).await?;
    if let Outcome::Fresh(_, _, Decision::Made(a, entry)) = &out {
        tracing::info!(
            correlation_id = %crate::correlation::current(),
            approval_id = %a.id,
            status = %a.status,
            player_id = %a.player_id,
            requested_by = %a.requested_by,
            decided_by = a.decided_by.map(tracing::field::display),
            points = a.points,
            ledger_entry_id = entry.as_ref().map(|e| tracing::field::display(e.id)),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "approval_decided"
        );
    }
    Ok(out.into_response())
}

/// `POST /v1/approvals/{id}/approve`: writes the entry, carrying both staff
/// ids; 403 SELF_APPROVAL for the requester.
pub(super) async fn approve(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let approver = caller.require(Permission::LoyaltyAdjust)?.id;
    let id = path_id(&id, "approval")?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: serde_json::Map<String, Value> = parse_json(&body)?;
    }
    decide(st, caller, headers, &body, "approve", id, move |tx, ctx| {
        approvals::approve(
            tx,
            ctx,
            loyalty_core::ApprovalId::of(id),
            loyalty_core::StaffId::of(approver),
        )
    })
    .await
}

/// `POST /v1/approvals/{id}/reject {reason}`: another staff member with
/// `loyalty:adjust` rejects; the requester withdraws.
pub(super) async fn reject(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let staff = caller.require(Permission::LoyaltyAward)?.clone();
    let id = path_id(&id, "approval")?;
    let input: RejectBody = parse_json(&body)?;
    let reason = text(
        "reason",
        &input.reason,
        REWARD_REASON_CHARS_MIN,
        REASON_CHARS_MAX,
    )?;
    // Only the requester may act without loyalty:adjust (a withdrawal).
    let requester = st
        .store
        .read(move |tx| tx.approval(id))
        .await?
        .map(|a| a.requested_by);
    if requester != Some(staff.id) {
        caller.require(Permission::LoyaltyAdjust)?;
    }
    decide(st, caller, headers, &body, "reject", id, move |tx, ctx| {
        approvals::reject(
            tx,
            ctx,
            loyalty_core::ApprovalId::of(id),
            loyalty_core::StaffId::of(staff.id),
            reason,
        )
    })
    .await
}
