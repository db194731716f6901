//! Event delivery over HTTP: dead letters (and their replay) and each
//! subscriber's progress against the outbox head.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loyalty_core::Permission;
use loyalty_store::ops::OpError;
use loyalty_store::{DeadLetterQuery, DeadLetterStatus, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::paging::page_limit;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

#[derive(Deserialize)]
pub(super) struct DeadLetterParams {
    subscriber: Option<String>,
    status: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

pub(super) async fn dead_letters(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<DeadLetterParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let limit = page_limit(p.limit)?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            DeadLetterStatus::parse(s).ok_or_else(|| {
                ApiError::validation("status", "must be DEAD, REPLAY_REQUESTED or REPLAYED")
            })
        })
        .transpose()?;
    if p.subscriber.as_ref().is_some_and(|s| s.len() > 64) {
        return Err(ApiError::validation(
            "subscriber",
            "must be 1-64 characters",
        ));
    }
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation("after", "must be an id >= 0"));
    }
    let q = DeadLetterQuery {
        subscriber: p.subscriber,
        status,
        after_id: after,
        limit,
    };
    let list = st.store.read(move |tx| tx.dead_letters(&q)).await?;
    let next = (list.len() == limit as usize)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(axum::Json(json!({"dead_letters": list, "next_after": next})).into_response())
}

pub(super) async fn replay_dead_letter(
    State(st): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::StaffAdmin)?;
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    let path = format!("/v1/dead-letters/{id}/replay");
    let key = crate::idem::parse(&headers, &caller, "replay_dead_letter", &path, &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    // Replaying is idempotent by nature (a letter already asked for is
    // answered as it stands); Idempotency-Key also replays the response.
    let out = crate::idem::run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| {
            let mut d = tx
                .dead_letter(id)?
                .ok_or(OpError::NotFound("dead letter"))?;
            if d.status == DeadLetterStatus::Dead {
                tx.update_dead_letter(id, DeadLetterStatus::ReplayRequested, None, None, ctx.now)?;
                d.status = DeadLetterStatus::ReplayRequested;
                d.updated_at = ctx.now;
            }
            Ok(d)
        },
        |d, _| (StatusCode::ACCEPTED, json!(d)),
    )
    .await?;
    if let crate::idem::Outcome::Fresh(_, _, dead) = &out {
        st.events.registry.hint_replay(&dead.subscriber);
        tracing::info!(dead_letter_id = id, subscriber = %dead.subscriber, seq = dead.event_seq,
            status = dead.status.as_str(), "dead_letter_replay_requested");
    }
    Ok(out.into_response())
}

/// Outbox head, durable checkpoints (in `names` order) and the relay's.
type Positions = (i64, Vec<Option<i64>>, Option<i64>);

pub(super) async fn subscribers(State(st): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let views = st.events.registry.list();
    let names: Vec<&'static str> = views
        .iter()
        .filter(|v| v.kind == "durable")
        .map(|v| v.name)
        .collect();
    let relay = st.events.config.nats_url.is_some();
    let (head, checkpoints) = st
        .store
        .read(move |tx| -> Result<Positions, StoreError> {
            let head = tx.outbox_head()?;
            let cps = names
                .iter()
                .map(|n| tx.checkpoint(n))
                .collect::<Result<Vec<_>, _>>()?;
            let relay = if relay {
                tx.checkpoint(crate::events::nats::RELAY)?
            } else {
                None
            };
            Ok((head, cps, relay))
        })
        .await
        .map(|(h, c, r)| (h, (c, r)))?;
    let (cps, relay_cp) = checkpoints;
    let mut durable = cps.into_iter();
    let list: Vec<Value> = views
        .into_iter()
        .map(|v| {
            // Durable: the shared checkpoint; local: this node's position.
            let checkpoint = if v.kind == "durable" {
                durable.next().flatten().unwrap_or(0)
            } else {
                v.position
            };
            let mut o = json!(v);
            o["checkpoint"] = json!(checkpoint);
            o["lag"] = json!((head - checkpoint).max(0));
            o
        })
        .collect();
    let relay_view = relay.then(|| {
        let cp = relay_cp.unwrap_or(0);
        json!({"name": crate::events::nats::RELAY, "checkpoint": cp, "lag": (head - cp).max(0)})
    });
    Ok(axum::Json(json!({
        "node_id": st.events.node_id,
        "dispatch_enabled": st.events.config.enabled,
        "outbox_head": head,
        "subscribers": list,
        "nats_relay": relay_view,
    }))
    .into_response())
}
