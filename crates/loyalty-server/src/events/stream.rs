//! `GET /v1/events/stream`: the outbox as server-sent events.
//!
//! Each SSE message is one event: `id:` its seq, `event:` its type, `data:`
//! the envelope as JSON. The stream starts after `Last-Event-ID` (or
//! `?after=`; default: from the beginning), replays the outbox from there,
//! then follows new events live — no gap, no duplicate, whatever was
//! committed meanwhile. `?event_type=` filters; `?follow=false` ends the
//! stream once the backlog is sent.
//!
//! Staff with `audit:read` see every event; a player token sees only events
//! whose payload names that player (`payload.player_id`).
//!
//! Backpressure: each connection has a bounded buffer
//! (`--stream-buffer-events`, default [`STREAM_BUFFER_EVENTS`]). A client that does not keep up — its buffer
//! is full, it falls behind the live fan-out, or a backlog send waits longer
//! than [`SEND_WAIT_MS_MAX`] — is disconnected (it resumes with
//! `Last-Event-ID`); nothing buffers without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use loyalty_core::Permission;
use loyalty_store::EventRecord;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::BATCH_EVENTS_MAX;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// Events buffered per connection before it counts as slow (default of
/// `--stream-buffer-events`).
pub const STREAM_BUFFER_EVENTS: usize = 1024;
/// Longest a backlog send may wait for the client.
pub const SEND_WAIT_MS_MAX: u64 = 10_000;

/// Query parameters.
#[derive(Deserialize)]
pub struct StreamParams {
    event_type: Option<String>,
    after: Option<i64>,
    follow: Option<bool>,
}

/// Checks an event type parameter.
pub fn event_type_param(t: Option<String>) -> ApiResult<Option<String>> {
    if let Some(t) = &t
        && (t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    {
        return Err(ApiError::validation(
            "event_type",
            "must be an event type like LEDGER_ENTRY_CREATED",
        ));
    }
    Ok(t)
}

#[derive(Clone)]
struct Filter {
    event_type: Option<String>,
    player: Option<String>,
}

impl Filter {
    fn admits(&self, ev: &EventRecord) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == ev.event_type)
            && self.player.as_ref().is_none_or(|p| {
                ev.payload
                    .decode::<PlayerField>()
                    .is_ok_and(|f| f.player_id.as_deref() == Some(p.as_str()))
            })
    }
}

/// The one payload field the player filter reads (other fields are skipped
/// unparsed).
#[derive(serde::Deserialize)]
struct PlayerField {
    player_id: Option<String>,
}

fn sse_event(ev: &EventRecord) -> Event {
    Event::default()
        .id(ev.seq.to_string())
        .event(ev.event_type.clone())
        .json_data(ev)
        .unwrap_or_else(|_| {
            Event::default()
                .id(ev.seq.to_string())
                .comment("unencodable")
        })
}

/// The handler.
pub async fn stream(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> ApiResult<Response> {
    let player: Option<Uuid> = match &caller {
        Caller::Player(id) => Some(*id),
        Caller::Staff(_) => {
            caller.require(Permission::AuditRead)?;
            None
        }
    };
    let event_type = event_type_param(p.event_type)?;
    // One token holds at most `streams_per_token` live streams (a leaked or
    // misbehaving client cannot pin the server's connections).
    let max = st.settings.streams_per_token;
    let key = match crate::auth::presented_token(&headers) {
        Some(Ok(token)) => crate::auth::hash_token(token),
        _ => caller.scope_id(),
    };
    let slot = st.streams.acquire(&key, max).ok_or_else(|| {
        let mut e = ApiError::new(
            crate::error::Code::RateLimitExceeded,
            format!("this token already has {max} live event streams; close one first"),
        )
        .with_details(serde_json::json!({"streams_per_token": max, "retry_after_seconds": 1}));
        e.retry_after_s = Some(1);
        e
    })?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::validation("Last-Event-ID", "must be a sequence number >= 0")
            })?,
        None => p.after.unwrap_or(0),
    };
    if after < 0 {
        return Err(ApiError::validation(
            "after",
            "must be a sequence number >= 0",
        ));
    }
    let filter = Filter {
        event_type,
        player: player.map(|p| p.to_string()),
    };
    let buffer = st.events.config.stream_buffer_events.clamp(1, 1 << 20);
    let (tx, rx) = mpsc::channel::<Event>(buffer);
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = st.events.live();
    let follow = p.follow.unwrap_or(true);
    let aborted = Arc::new(AtomicBool::new(false));
    tokio::spawn(produce(
        st.clone(),
        filter,
        after,
        follow,
        live,
        tx,
        aborted.clone(),
    ));
    // A slow client's stream ends with an error, so the connection is closed
    // rather than finished as if the stream were complete.
    let end = futures_util::stream::once(async move {
        // The slot is freed when the body ends or is dropped.
        let _slot = slot;
        aborted.load(Ordering::SeqCst)
    })
    .filter_map(|aborted| async move {
        aborted.then(|| Err(std::io::Error::other("client too slow; disconnected")))
    });
    // A shutting-down server ends the stream cleanly (the client resumes
    // elsewhere with Last-Event-ID).
    let mut stop = st.shutdown.subscribe();
    let body = ReceiverStream::new(rx)
        .map(Ok::<Event, std::io::Error>)
        .chain(end)
        .take_until(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

struct Gauge;
impl Gauge {
    fn new() -> Self {
        metrics::gauge!("loyalty_sse_clients").increment(1.0);
        Gauge
    }
}
impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!("loyalty_sse_clients").decrement(1.0);
    }
}

fn slow(aborted: &AtomicBool, why: &str, last: i64) {
    aborted.store(true, Ordering::SeqCst);
    metrics::counter!("loyalty_sse_disconnected_slow_total").increment(1);
    tracing::warn!(
        last_sent_seq = last,
        reason = why,
        "event stream client too slow; disconnected"
    );
}

/// Sends the backlog after `last` up to `until` (inclusive; None: to the
/// end). Returns the last seq handled, or None if the client is gone/slow.
async fn backlog(
    st: &AppState,
    filter: &Filter,
    mut last: i64,
    until: Option<i64>,
    tx: &mpsc::Sender<Event>,
    aborted: &AtomicBool,
) -> Option<i64> {
    loop {
        let after = last;
        let batch = st
            .store
            .read(move |t| t.events(after, BATCH_EVENTS_MAX, None))
            .await
            .ok()?;
        let n = batch.len();
        for ev in batch {
            if until.is_some_and(|u| ev.seq > u) {
                return Some(last);
            }
            if filter.admits(&ev) {
                let send = tx.send(sse_event(&ev));
                match tokio::time::timeout(Duration::from_millis(SEND_WAIT_MS_MAX), send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        slow(aborted, "backlog send timed out", last);
                        return None;
                    }
                }
            }
            last = ev.seq;
        }
        if n < BATCH_EVENTS_MAX as usize {
            return Some(last);
        }
    }
}

async fn produce(
    st: AppState,
    filter: Filter,
    after: i64,
    follow: bool,
    mut live: broadcast::Receiver<Arc<EventRecord>>,
    tx: mpsc::Sender<Event>,
    aborted: Arc<AtomicBool>,
) {
    let _gauge = Gauge::new();
    let Some(mut last) = backlog(&st, &filter, after, None, &tx, &aborted).await else {
        return;
    };
    if !follow {
        return;
    }
    loop {
        let ev = tokio::select! {
            r = live.recv() => r,
            _ = tx.closed() => return,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                slow(&aborted, "fell behind the live fan-out", last);
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if ev.seq <= last {
            continue;
        }
        if ev.seq > last + 1 {
            // Defensive: fill from the outbox, never skip.
            match backlog(&st, &filter, last, Some(ev.seq - 1), &tx, &aborted).await {
                Some(l) => last = l,
                None => return,
            }
        }
        if filter.admits(&ev) {
            match tx.try_send(sse_event(&ev)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slow(&aborted, "connection buffer full", last);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        last = ev.seq;
    }
}
