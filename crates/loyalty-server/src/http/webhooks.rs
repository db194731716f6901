//! `/v1/webhooks`: registering, listing and deleting webhook endpoints
//! (staff:admin), and each endpoint's delivery attempts ([`crate::webhooks`]
//! delivers).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::{EventType, Permission};
use loyalty_store::ops::webhooks as ops;
use loyalty_store::{Webhook, WebhookDelivery};
use serde::Deserialize;
use serde_json::{Value, json};

use super::paging::page_limit;
use super::validate::text;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{ApiQuery, RawBody, parse_json, path_id};
use crate::idem::{self, run_write};
use crate::webhooks::{ENDPOINTS_MAX, check_url, new_secret, seal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    event_types: Option<Vec<String>>,
    description: Option<String>,
}

fn view(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "event_types": w.event_types,
        "description": w.description,
        "created_at": w.created_at,
    })
}

fn delivery_view(d: &WebhookDelivery) -> Value {
    json!({
        "id": d.id,
        "event_seq": d.event_seq,
        "event_id": d.event_id,
        "attempt": d.attempt,
        "status_code": d.status_code,
        "ok": d.ok,
        "duration_ms": d.duration_ms,
        "error": d.error,
        "at": d.at,
    })
}

/// `POST /v1/webhooks`: 201 with the secret, shown this once.
pub(super) async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let admin = caller.require(Permission::StaffAdmin)?.id;
    let input: NewWebhook = parse_json(&body)?;
    let url = check_url(input.url.trim(), &st.settings.webhook_allow_hosts)
        .map_err(|m| ApiError::validation("url", m))?;
    let event_types = match input.event_types {
        None => None,
        Some(types) => {
            if types.is_empty() || types.len() > EventType::ALL.len() {
                return Err(ApiError::validation(
                    "event_types",
                    "must name 1 or more event types (omit it for every type)",
                ));
            }
            let mut known = Vec::with_capacity(types.len());
            for t in types {
                let ty = EventType::parse(&t).ok_or_else(|| {
                    ApiError::validation("event_types", format!("unknown event type {t:?}"))
                })?;
                if !known.contains(&ty.as_str().to_string()) {
                    known.push(ty.as_str().to_string());
                }
            }
            Some(known)
        }
    };
    let description = input
        .description
        .map(|d| text("description", &d, 1, loyalty_core::limits::REASON_CHARS_MAX))
        .transpose()?;
    let key = idem::parse(&headers, &caller, "create_webhook", "/v1/webhooks", &body)?;
    let live = st.store.read(|tx| tx.webhooks()).await?.len();
    if live >= ENDPOINTS_MAX {
        return Err(ApiError::new(
            Code::Conflict,
            format!("at most {ENDPOINTS_MAX} webhook endpoints; delete one first"),
        ));
    }
    let server_key = st
        .webhook_key
        .get()
        .cloned()
        .ok_or_else(|| ApiError::new(Code::Unavailable, "the server key is not loaded"))?;
    let (secret, secret_text) = new_secret().map_err(|e| ApiError::new(Code::Internal, e))?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let id = ctx.new_id();
    let webhook = Webhook {
        seq: 0,
        id,
        url: url.to_string(),
        event_types,
        description,
        secret_sealed: seal(&server_key, id, &secret),
        created_by: Some(admin),
        created_at: ctx.now,
        deleted_at: None,
    };
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::register(tx, ctx, webhook),
        move |w, _| {
            let mut body = view(w);
            body["secret"] = json!(secret_text);
            (StatusCode::CREATED, body)
        },
    )
    .await?;
    if let idem::Outcome::Fresh(_, _, w) = &out {
        tracing::info!(webhook_id = %w.id, url = %w.url, staff_id = %admin, "webhook_registered");
    }
    Ok(out.into_response())
}

/// `GET /v1/webhooks`: the live endpoints (never their secrets).
pub(super) async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let all = st.store.read(|tx| tx.webhooks()).await?;
    let views: Vec<Value> = all.iter().map(view).collect();
    Ok(axum::Json(json!({"webhooks": views})).into_response())
}

async fn live(st: &AppState, id: uuid::Uuid) -> ApiResult<Webhook> {
    st.store
        .read(move |tx| tx.webhook(id))
        .await?
        .filter(|w| w.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// `GET /v1/webhooks/{id}`.
pub(super) async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let id = path_id(&id, "webhook")?;
    let w = live(&st, id).await?;
    Ok(axum::Json(view(&w)).into_response())
}

/// `DELETE /v1/webhooks/{id}`: 204; deliveries stop within a second.
pub(super) async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let admin = caller.require(Permission::StaffAdmin)?.id;
    let id = path_id(&id, "webhook")?;
    let ctx = st.op_ctx(Some(&caller), None);
    st.store.write(move |tx| ops::delete(tx, &ctx, id)).await?;
    tracing::info!(webhook_id = %id, staff_id = %admin, "webhook_deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(super) struct DeliveryParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/webhooks/{id}/deliveries`: every attempt, newest first.
pub(super) async fn deliveries(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let id = path_id(&id, "webhook")?;
    let limit = page_limit(p.limit)?;
    let before =
        p.cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    ApiError::validation("cursor", "not a cursor this server issued")
                })
            })
            .transpose()?;
    live(&st, id).await?;
    let rows = st
        .store
        .read(move |tx| tx.webhook_deliveries(id, before, limit))
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|d| d.id.to_string()))
        .flatten();
    let views: Vec<Value> = rows.iter().map(delivery_view).collect();
    Ok(axum::Json(json!({"deliveries": views, "next_cursor": next})).into_response())
}
