//! Players: enrol, read, and their read-only tokens.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::Permission;
use loyalty_core::{CardNumber, Name};
use loyalty_store::ops;
use serde::Deserialize;
use serde_json::json;

use super::validate::field;
use crate::app::AppState;
use crate::auth::{Caller, hash_token, new_token};
use crate::error::{ApiError, ApiResult};
use crate::extract::{RawBody, parse_json, path_id};
use crate::idem::{self, run_write};

// ---------------------------------------------------------------- players

#[derive(Deserialize)]
struct NewPlayer {
    display_name: String,
    card_number: Option<String>,
}

pub(super) async fn create_player(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersWrite)?;
    let input: NewPlayer = parse_json(&body)?;
    let name = field("display_name", Name::new(&input.display_name))?;
    let card = input
        .card_number
        .map(|c| field("card_number", CardNumber::new(&c)))
        .transpose()?;
    let key = idem::parse(&headers, &caller, "create_player", "/v1/players", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::create_player(tx, ctx, name, card),
        |player, _| (StatusCode::CREATED, json!(player)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn get_player(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let id = path_id(&id, "player")?;
    let player = st
        .store
        .read_short(move |tx| tx.player(id))
        .await?
        .ok_or_else(|| ApiError::not_found("player"))?;
    Ok(axum::Json(player).into_response())
}

pub(super) async fn create_player_token(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    // A player token reads the player's ledger: only staff who may read it
    // may issue one (DESIGN §3.7).
    caller.require(Permission::PlayersWrite)?;
    caller.require(Permission::LoyaltyViewAll)?;
    let id = path_id(&id, "player")?;
    let path = format!("/v1/players/{id}/tokens");
    let key = idem::parse(&headers, &caller, "create_player_token", &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let token = new_token()?;
    let hash = hash_token(&token);
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::create_player_token(tx, ctx, loyalty_core::PlayerId::of(id), &hash),
        move |_, _| {
            (
                StatusCode::CREATED,
                json!({"player_id": id, "token": token}),
            )
        },
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn revoke_player_tokens(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersWrite)?;
    let staff = caller.require(Permission::LoyaltyViewAll)?.id;
    let id = path_id(&id, "player")?;
    let ctx = st.op_ctx(Some(&caller), None);
    let revoked = st
        .store
        .write(move |tx| ops::revoke_player_tokens(tx, &ctx, loyalty_core::PlayerId::of(id)))
        .await?;
    st.events.poke();
    st.tokens.clear();
    tracing::info!(player_id = %id, staff_id = %staff, revoked, "player_tokens_revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
