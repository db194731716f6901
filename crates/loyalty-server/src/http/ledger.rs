//! Reading balances and the ledger.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use loyalty_core::{Permission, TransactionType};
use loyalty_store::{EntryQuery, LedgerEntry, StoreError};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, hex};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, path_id};
use crate::views;

#[derive(Deserialize)]
pub(super) struct LoyaltyParams {
    as_of: Option<String>,
}

pub(super) async fn player_loyalty(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<LoyaltyParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::PlayersRead, id)?;
    if let Some(as_of) = p.as_of.as_deref() {
        let at: Timestamp = as_of
            .parse()
            .map_err(|_| ApiError::validation("as_of", "must be an RFC 3339 timestamp"))?;
        return loyalty_as_of(&st, id, at).await;
    }
    let (account, status) = match crate::events::cached_balance(&st, id).await? {
        Some(account) => (account, "loyalty-balance-cache; hit"),
        None => {
            let account = st
                .store
                .read_short(move |tx| tx.account(id))
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

/// DESIGN §9 "point in time": the summary's fields as they were at `at`,
/// from the entries alone (zeros and the first tier before the first
/// entry; a future instant gives today's).
async fn loyalty_as_of(st: &AppState, id: Uuid, at: Timestamp) -> ApiResult<Response> {
    let (exists, then) = st
        .store
        .read(move |tx| -> Result<_, StoreError> {
            Ok((tx.account(id)?.is_some(), tx.balances_as_of(id, at)?))
        })
        .await?;
    if !exists {
        return Err(ApiError::not_found("player"));
    }
    let tiers = &st.settings.tiers;
    let body = match then {
        Some(b) => json!({
            "player_id": id,
            "current_balance": b.current_balance,
            "escrow_balance": b.escrow_balance,
            "lifetime_points": b.lifetime_points,
            "tier": b.tier,
            "tier_progress": tiers.progress(b.lifetime_points),
            "updated_at": b.last_entry_at,
            "as_of": at,
        }),
        None => json!({
            "player_id": id,
            "current_balance": 0,
            "escrow_balance": 0,
            "lifetime_points": 0,
            "tier": tiers.tier_for(0),
            "tier_progress": tiers.progress(0),
            "updated_at": null,
            "as_of": at,
        }),
    };
    Ok(axum::Json(body).into_response())
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

const CURSOR_TAG: &[u8] = b"loyalty-ledger-cursor-v2";
/// Bytes of the cursor's signature (a truncated HMAC-SHA-256).
const CURSOR_MAC_BYTES: usize = 12;

/// The key that signs cursors: the one shared through the database (set at
/// start), else a random key for this process.
fn cursor_key(st: &AppState) -> &[u8] {
    st.cursor_key.get_or_init(|| {
        let mut k = [0u8; 32];
        // Without randomness cursors are unforgeable only as long as the
        // process is unknown; `serve` always sets the shared key first.
        let _ = getrandom::fill(&mut k);
        k.to_vec()
    })
}

fn cursor_mac(st: &AppState, seq: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(cursor_key(st))
        .expect("HMAC accepts keys of any length");
    mac.update(CURSOR_TAG);
    mac.update(&seq.to_be_bytes());
    mac
}

/// The opaque cursor pointing after `seq`, signed with the server key.
pub(crate) fn encode_cursor(st: &AppState, seq: i64) -> String {
    let tag = cursor_mac(st, seq).finalize().into_bytes();
    format!("{seq:016x}{}", hex(&tag[..CURSOR_MAC_BYTES]))
}

/// Decodes a cursor this server (or another node on the same database)
/// issued; anything else — a forged or altered one included — is 400.
pub(crate) fn decode_cursor(st: &AppState, s: &str) -> ApiResult<i64> {
    let bad = || ApiError::validation("cursor", "not a cursor this server issued");
    if s.len() != 16 + 2 * CURSOR_MAC_BYTES || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let seq = i64::from_str_radix(&s[..16], 16).map_err(|_| bad())?;
    let tag: Vec<u8> = (16..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if seq <= 0 || cursor_mac(st, seq).verify_truncated_left(&tag).is_err() {
        return Err(bad());
    }
    Ok(seq)
}

const ID_CURSOR_TAG: &[u8] = b"loyalty-id-cursor-v1";

fn id_cursor_mac(st: &AppState, id: Uuid) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(cursor_key(st))
        .expect("HMAC accepts keys of any length");
    mac.update(ID_CURSOR_TAG);
    mac.update(id.as_bytes());
    mac
}

/// The opaque cursor pointing after the row with `id` (lists ordered by
/// id), signed with the server key.
pub(crate) fn encode_id_cursor(st: &AppState, id: Uuid) -> String {
    let tag = id_cursor_mac(st, id).finalize().into_bytes();
    format!("{}{}", id.simple(), hex(&tag[..CURSOR_MAC_BYTES]))
}

/// Decodes an id cursor this server issued; anything else is 400.
pub(crate) fn decode_id_cursor(st: &AppState, s: &str) -> ApiResult<Uuid> {
    let bad = || ApiError::validation("cursor", "not a cursor this server issued");
    if s.len() != 32 + 2 * CURSOR_MAC_BYTES || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let id = Uuid::parse_str(&s[..32]).map_err(|_| bad())?;
    let tag: Vec<u8> = (32..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    id_cursor_mac(st, id)
        .verify_truncated_left(&tag)
        .map_err(|_| bad())?;
    Ok(id)
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

fn build_query(st: &AppState, p: LedgerParams) -> ApiResult<EntryQuery> {
    let limit = super::paging::page_limit(p.limit)?;
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
        before_seq: p
            .cursor
            .as_deref()
            .map(|c| decode_cursor(st, c))
            .transpose()?,
        limit,
    })
}

/// A page of entries as it is sent: `{"entries":[…],"next_cursor":…}`,
/// each entry written by [`LedgerEntry::write_json`] (the bytes serde would
/// write, without its escaping scan over ids and hashes) into one buffer
/// sized for the page up front (an entry is about 800 bytes of JSON; growing
/// axum's 128-byte default by doubling copied the page about nine times).
fn page_json(entries: &[LedgerEntry], next_cursor: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + entries.len() * ENTRY_JSON_BYTES);
    body.extend_from_slice(b"{\"entries\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        e.write_json(&mut body);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    match next_cursor {
        // A cursor is hex: nothing to escape.
        Some(c) => {
            body.push(b'"');
            body.extend_from_slice(c.as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    body
}

/// A page of entries matching `q`; with `player`, in the same read, 404 if
/// that player does not exist.
async fn page(st: &AppState, q: EntryQuery, player: Option<uuid::Uuid>) -> ApiResult<Response> {
    let limit = q.limit as usize;
    // One extra row tells whether another page exists.
    let mut q = q;
    q.limit += 1;
    let bounded = q.index_bounded();
    let read = move |tx: &mut dyn loyalty_store::Tx| -> Result<_, StoreError> {
        if let Some(id) = player
            && tx.player(id)?.is_none()
        {
            return Ok(None);
        }
        tx.entries(&q).map(Some)
    };
    // A page one index range answers reads at most `limit` rows: in place.
    let found: Option<Vec<LedgerEntry>> = if bounded {
        st.store.read_short(read).await?
    } else {
        st.store.read(read).await?
    };
    let mut entries = found.ok_or_else(|| ApiError::not_found("player"))?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = more
        .then(|| entries.last().map(|e| encode_cursor(st, e.seq)))
        .flatten();
    Ok(crate::idem::json_response(
        axum::http::StatusCode::OK,
        page_json(&entries, next_cursor.as_deref()),
        false,
    ))
}

/// About the size of one ledger entry's JSON (ids, hashes, reason).
const ENTRY_JSON_BYTES: usize = 900;

pub(super) async fn player_ledger(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> ApiResult<Response> {
    let id = path_id(&id, "player")?;
    caller.require_or_self(Permission::LoyaltyViewAll, id)?;
    let mut q = build_query(&st, params)?;
    q.player_id = Some(id);
    page(&st, q, Some(id)).await
}

pub(super) async fn audit_search(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> ApiResult<Response> {
    caller.require(Permission::LoyaltyViewAll)?;
    let q = build_query(&st, params)?;
    page(&st, q, None).await
}

#[derive(Deserialize, Default)]
pub(super) struct CheckpointParams {
    heads: Option<bool>,
}

/// `GET /v1/ledger/checkpoint`: a digest of every player's chain head now,
/// for an auditor to record outside the system (docs/audit.md); with
/// `heads=true` the heads too, so a later check can name a changed player.
pub(super) async fn checkpoint(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<CheckpointParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let at = st.clock.now();
    let with_heads = p.heads.unwrap_or(false);
    let (cp, heads) = st
        .store
        .read(move |tx| -> Result<_, StoreError> {
            let up_to = tx.last_entry_seq()?;
            let mut heads = Vec::new();
            let cp = loyalty_store::chain::checkpoint(tx, up_to, &mut |player, head| {
                if with_heads {
                    heads.push(json!({"player_id": player, "head": head}));
                }
            })?;
            Ok((cp, heads))
        })
        .await?;
    let mut body = json!({
        "at": at,
        "seq": cp.seq,
        "players": cp.players,
        "root": cp.root,
        "encoding": loyalty_store::chain::CHECKPOINT_ENCODING,
    });
    if with_heads {
        body["heads"] = json!(heads);
    }
    Ok(axum::Json(body).into_response())
}
