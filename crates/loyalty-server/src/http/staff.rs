//! Staff members and whoever holds a token: create and disable staff, who
//! am I, sign out (revoke one's own token).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::Name;
use loyalty_core::{Permission, Role};
use loyalty_store::ops;
use serde::Deserialize;
use serde_json::json;

use super::validate::field;
use crate::app::AppState;
use crate::auth::{Caller, hash_token, new_token};
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{RawBody, parse_json, path_id};
use crate::idem::{self, run_write};

// ---------------------------------------------------------------- staff

#[derive(Deserialize)]
struct NewStaff {
    name: String,
    role: String,
}

pub(super) async fn create_staff(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let input: NewStaff = parse_json(&body)?;
    let name = field("name", Name::new(&input.name))?;
    let role = Role::parse(&input.role).ok_or_else(|| {
        ApiError::validation(
            "role",
            "must be admin, supervisor, pit_boss, cashier or auditor",
        )
    })?;
    let key = idem::parse(&headers, &caller, "create_staff", "/v1/staff", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let token = new_token()?;
    let hash = hash_token(&token);
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::create_staff(tx, ctx, name, role, &hash),
        move |staff, _| {
            let body = json!({"id": staff.id, "name": staff.name, "role": staff.role,
                              "created_at": staff.created_at, "token": token});
            (StatusCode::CREATED, body)
        },
    )
    .await?;
    Ok(out.into_response())
}

// ---------------------------------------------------------------- the caller

pub(super) async fn me(State(st): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let body = match &caller {
        Caller::Staff(s) => {
            let permissions: Vec<&str> = Permission::ALL
                .into_iter()
                .filter(|p| s.role.allows(*p))
                .map(Permission::as_str)
                .collect();
            json!({"kind": "staff", "id": s.id, "name": s.name, "role": s.role,
                   "permissions": permissions})
        }
        Caller::Player(id) => {
            let id = *id;
            let player = st
                .store
                .read(move |tx| tx.player(id))
                .await?
                .ok_or_else(|| ApiError::not_found("player"))?;
            json!({"kind": "player", "id": player.id, "name": player.display_name,
                   "role": null, "permissions": []})
        }
    };
    Ok(axum::Json(body).into_response())
}

pub(super) async fn revoke_own_token(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(Ok(token)) = crate::auth::presented_token(&headers) else {
        return Err(ApiError::new(
            Code::Unauthorized,
            "a valid bearer token is required",
        ));
    };
    let hash = hash_token(token);
    let subject = match &caller {
        Caller::Staff(s) => loyalty_store::TokenSubject::Staff(s.id),
        Caller::Player(p) => loyalty_store::TokenSubject::Player(*p),
    };
    let ctx = st.op_ctx(Some(&caller), None);
    st.store
        .write(move |tx| ops::revoke_token(tx, &ctx, &hash, subject))
        .await?;
    st.events.poke();
    st.tokens.clear();
    tracing::info!(caller = %caller.scope_id(), "token_revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn disable_staff(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let admin = caller.require(Permission::StaffAdmin)?.id;
    let id = path_id(&id, "staff member")?;
    if id == admin {
        return Err(ApiError::new(
            Code::Conflict,
            "an administrator cannot disable themself; another administrator must",
        ));
    }
    let path = format!("/v1/staff/{id}/disable");
    let key = idem::parse(&headers, &caller, "disable_staff", &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::disable_staff(tx, ctx, loyalty_core::StaffId::of(id)),
        |staff, _| {
            let body = json!({"id": staff.id, "name": staff.name, "role": staff.role,
                              "created_at": staff.created_at, "disabled": true,
                              "disabled_at": staff.disabled_at});
            (StatusCode::OK, body)
        },
    )
    .await?;
    st.tokens.clear();
    tracing::warn!(staff_id = %id, by_staff_id = %admin, "staff_disabled");
    Ok(out.into_response())
}
