//! Reading balances and the ledger.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use loyalty_core::limits::{PAGE_DEFAULT, PAGE_MAX};
use loyalty_core::{Permission, TransactionType};
use loyalty_store::{EntryQuery, LedgerEntry, StoreError};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, hex};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, path_id};
use crate::views;

pub(super) async fn player_loyalty(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::PlayersRead, id)?;
    let (account, status) = match crate::events::cached_balance(&st, id).await? {
        Some(account) => (account, "loyalty-balance-cache; hit"),
        None => {
            let account = st
                .store
                .read(move |tx| tx.account(id))
                .await?
                .ok_or_else(|| ApiError::not_found("player"))?;
            (account, "loyalty-balance-cache; fwd=miss")
        }
    };
    let mut resp = axum::Json(views::loyalty(&account, &st.settings.tiers)).into_response();
    resp.headers_mut()
        .insert("cache-status", axum::http::HeaderValue::from_static(status));
    Ok(resp)
}

#[derive(Deserialize, Default)]
pub(super) struct LedgerParams {
    limit: Option<u32>,
    cursor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    transaction_type: Option<String>,
    correlation_id: Option<String>,
    staff_id: Option<String>,
    player_id: Option<String>,
}

const CURSOR_TAG: &[u8] = b"loyalty-ledger-cursor-v1";

fn cursor_check(seq: i64) -> String {
    let mut h = Sha256::new();
    h.update(CURSOR_TAG);
    h.update(seq.to_be_bytes());
    hex(&h.finalize()[..6])
}

/// The opaque cursor pointing after `seq`.
pub(crate) fn encode_cursor(seq: i64) -> String {
    format!("{seq:016x}{}", cursor_check(seq))
}

/// Decodes a cursor this server issued; anything else is 400.
pub(crate) fn decode_cursor(s: &str) -> ApiResult<i64> {
    let bad = || ApiError::validation("cursor", "not a cursor this server issued");
    if s.len() != 28 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let seq = i64::from_str_radix(&s[..16], 16).map_err(|_| bad())?;
    if seq <= 0 || cursor_check(seq) != s[16..] {
        return Err(bad());
    }
    Ok(seq)
}

fn time_param(field: &str, v: Option<String>) -> ApiResult<Option<Timestamp>> {
    v.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|_| ApiError::validation(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

fn uuid_param(field: &str, v: Option<String>) -> ApiResult<Option<Uuid>> {
    v.map(|s| Uuid::parse_str(&s).map_err(|_| ApiError::validation(field, "must be an id")))
        .transpose()
}

fn build_query(p: LedgerParams) -> ApiResult<EntryQuery> {
    let limit = p.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be 1-{PAGE_MAX}"),
        ));
    }
    let transaction_type = p
        .transaction_type
        .map(|t| {
            TransactionType::parse(&t)
                .ok_or_else(|| ApiError::validation("transaction_type", "unknown transaction type"))
        })
        .transpose()?;
    if let Some(c) = &p.correlation_id
        && !crate::correlation::is_valid(c)
    {
        return Err(ApiError::validation(
            "correlation_id",
            "not a valid correlation id",
        ));
    }
    Ok(EntryQuery {
        player_id: uuid_param("player_id", p.player_id)?,
        staff_id: uuid_param("staff_id", p.staff_id)?,
        correlation_id: p.correlation_id,
        transaction_type,
        from: time_param("from", p.from)?,
        to: time_param("to", p.to)?,
        before_seq: p.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    })
}

async fn page(st: &AppState, q: EntryQuery) -> ApiResult<Response> {
    let limit = q.limit as usize;
    // One extra row tells whether another page exists.
    let mut q = q;
    q.limit += 1;
    let mut entries: Vec<LedgerEntry> = st
        .store
        .read(move |tx| -> Result<_, StoreError> { tx.entries(&q) })
        .await?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = more
        .then(|| entries.last().map(|e| encode_cursor(e.seq)))
        .flatten();
    Ok(axum::Json(json!({"entries": entries, "next_cursor": next_cursor})).into_response())
}

pub(super) async fn player_ledger(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::LoyaltyViewAll, id)?;
    let mut q = build_query(params)?;
    q.player_id = Some(id);
    let exists = st.store.read(move |tx| tx.player(id)).await?.is_some();
    if !exists {
        return Err(ApiError::not_found("player"));
    }
    page(&st, q).await
}

pub(super) async fn audit_search(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> ApiResult<Response> {
    caller.require(Permission::LoyaltyViewAll)?;
    let q = build_query(params)?;
    page(&st, q).await
}
