//! The wallet (DESIGN §3.5): merchants, and escrows — a hold when an outlet
//! asks for a comp, a capture when it confirms, a refund when it does not.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use loyalty_core::limits::REFERENCE_CHARS_MAX;
use loyalty_core::{EscrowStatus, Permission};
use loyalty_core::{Name, Reason};
use loyalty_store::ops::wallet::{self, Capture, Hold};
use loyalty_store::{Escrow, EscrowQuery, Merchant};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ledger::{decode_cursor, encode_cursor};
use super::paging::{page, page_limit};
use super::validate::{field, text};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, RawBody, parse_json, path_id};
use crate::idem::{self, run_write};

/// Who may read merchants and escrows (DESIGN §3.5); a player token reads
/// its own escrows.
const READERS: &[Permission] = &[
    Permission::WalletEscrow,
    Permission::LoyaltyViewAll,
    Permission::AuditRead,
];

/// An escrow as the API shows it.
pub fn escrow_view(e: &Escrow) -> Value {
    let mut v = json!(e);
    v["held_amount"] = json!(e.held_amount());
    v
}

fn merchant_view(m: &Merchant) -> Value {
    json!(m)
}

#[derive(Deserialize)]
pub(super) struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<String>,
}

// ---------------------------------------------------------------- merchants

#[derive(Deserialize)]
struct NewMerchant {
    name: String,
}

pub(super) async fn create_merchant(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::WalletEscrow)?;
    let input: NewMerchant = parse_json(&body)?;
    let name = field("name", Name::new(&input.name))?;
    let key = idem::parse(&headers, &caller, "create_merchant", "/v1/merchants", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| wallet::create_merchant(tx, ctx, name),
        |m, _| (StatusCode::CREATED, merchant_view(m)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn merchants(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    caller.require_any_or_self(READERS, None)?;
    if p.status.is_some() {
        return Err(ApiError::validation("status", "merchants have no status"));
    }
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&st, c))
        .transpose()?;
    let list = st
        .store
        .read(move |tx| tx.merchants(before, limit + 1))
        .await?;
    let (list, next) = page(list, limit, |m| encode_cursor(&st, m.seq));
    let views: Vec<Value> = list.iter().map(merchant_view).collect();
    Ok(axum::Json(json!({"merchants": views, "next_cursor": next})).into_response())
}

pub(super) async fn merchant(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require_any_or_self(READERS, None)?;
    let id = path_id(&id, "merchant")?;
    let m = st
        .store
        .read(move |tx| tx.merchant(id))
        .await?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    Ok(axum::Json(merchant_view(&m)).into_response())
}

// ---------------------------------------------------------------- escrows

#[derive(Deserialize)]
struct NewEscrow {
    player_id: Uuid,
    merchant_id: Uuid,
    amount: i64,
    reason: String,
    reference: Option<String>,
    expires_at: Option<Timestamp>,
}

pub(super) async fn create_escrow(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::WalletEscrow)?;
    let input: NewEscrow = parse_json(&body)?;
    let reason = field("reason", Reason::new(&input.reason, 1))?;
    let reference = input
        .reference
        .map(|r| text("reference", &r, 1, REFERENCE_CHARS_MAX))
        .transpose()?;
    let key = idem::parse(&headers, &caller, "create_escrow", "/v1/escrows", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let hold = Hold {
        player_id: loyalty_core::PlayerId::of(input.player_id),
        merchant_id: loyalty_core::MerchantId::of(input.merchant_id),
        amount: input.amount,
        reason,
        reference,
        expires_at: input.expires_at,
    };
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| wallet::hold(tx, ctx, hold),
        |e, _| (StatusCode::CREATED, escrow_view(e)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn escrow(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "escrow")?;
    // Staff without a reading permission learn nothing, not even existence.
    if let Caller::Staff(_) = caller {
        caller.require_any_or_self(READERS, None)?;
    }
    let e = st.store.read(move |tx| tx.escrow(id)).await?;
    let e = match (e, &caller) {
        (Some(e), _) => {
            caller.require_any_or_self(READERS, Some(e.player_id))?;
            e
        }
        (None, Caller::Player(_)) => {
            return Err(crate::auth::forbidden(Permission::WalletEscrow));
        }
        (None, Caller::Staff(_)) => return Err(ApiError::not_found("escrow")),
    };
    Ok(axum::Json(escrow_view(&e)).into_response())
}

pub(super) async fn player_escrows(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_any_or_self(READERS, Some(id))?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            EscrowStatus::parse(s).ok_or_else(|| {
                ApiError::validation(
                    "status",
                    "must be HELD, SETTLED, PARTIALLY_SETTLED, REFUNDED or EXPIRED",
                )
            })
        })
        .transpose()?;
    let limit = page_limit(p.limit)?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&st, c))
        .transpose()?;
    let q = EscrowQuery {
        player_id: Some(id),
        status,
        before_seq: before,
        limit: limit + 1,
    };
    let (exists, list) = st
        .store
        .read(move |tx| -> Result<_, loyalty_store::StoreError> {
            Ok((tx.player(id)?.is_some(), tx.escrows(&q)?))
        })
        .await?;
    if !exists {
        return Err(ApiError::not_found("player"));
    }
    let (list, next) = page(list, limit, |e| encode_cursor(&st, e.seq));
    let views: Vec<Value> = list.iter().map(escrow_view).collect();
    Ok(axum::Json(json!({"escrows": views, "next_cursor": next})).into_response())
}

#[derive(Deserialize, Default)]
struct SettleBody {
    amount: Option<i64>,
    #[serde(rename = "final")]
    final_capture: Option<bool>,
    expected_version: Option<i64>,
}

#[derive(Deserialize, Default)]
struct RefundBody {
    expected_version: Option<i64>,
}

/// An optional body: empty means `{}`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

pub(super) async fn settle(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::WalletEscrow)?;
    let id = path_id(&id, "escrow")?;
    let input: SettleBody = optional_body(&body)?;
    if let Some(a) = input.amount
        && a < 1
    {
        return Err(ApiError::validation("amount", "must be at least 1"));
    }
    let path = format!("/v1/escrows/{id}/settle");
    let key = idem::parse(&headers, &caller, "settle_escrow", &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let capture = Capture {
        escrow_id: loyalty_core::EscrowId::of(id),
        amount: input.amount,
        final_capture: input.final_capture.unwrap_or(true),
        expected_version: input.expected_version,
    };
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| wallet::settle(tx, ctx, capture),
        |e, _| (StatusCode::OK, escrow_view(e)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn refund(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::WalletEscrow)?;
    let id = path_id(&id, "escrow")?;
    let input: RefundBody = optional_body(&body)?;
    let path = format!("/v1/escrows/{id}/refund");
    let key = idem::parse(&headers, &caller, "refund_escrow", &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| {
            wallet::refund(
                tx,
                ctx,
                loyalty_core::EscrowId::of(id),
                input.expected_version,
            )
        },
        |e, _| (StatusCode::OK, escrow_view(e)),
    )
    .await?;
    Ok(out.into_response())
}
