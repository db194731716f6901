//! Correlation ids: accepted from `X-Correlation-Id` (1–64 of
//! `A-Za-z0-9._-`) or generated, kept in a task-local for the request so
//! errors, logs, ledger entries and events all carry it, and echoed back.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;

/// The request header (and response header).
pub const HEADER: &str = "x-correlation-id";
/// Longest accepted correlation id.
pub const CHARS_MAX: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// The current request's correlation id ("" outside a request).
pub fn current() -> String {
    CURRENT.try_with(|c| c.clone()).unwrap_or_default()
}

/// Whether `s` is an acceptable correlation id.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= CHARS_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh id: time-ordered (UUIDv7), so the ledger's correlation index
/// grows at its end instead of at random pages.
pub fn generate() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Outermost middleware: establishes the id, the request span and the
/// access log line.
pub async fn layer(req: Request, next: Next) -> Response {
    let supplied = req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let (cid, invalid) = match supplied {
        Some(s) if is_valid(&s) => (s, false),
        Some(_) => (generate(), true),
        None => (generate(), false),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let span =
        tracing::info_span!("request", correlation_id = %cid, method = %method, route = %route);
    let started = Instant::now();
    let cid_for_scope = cid.clone();
    let mut resp = CURRENT
        .scope(cid_for_scope, async move {
            if invalid {
                return ApiError::validation(
                    "X-Correlation-Id",
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                )
                .into_response();
            }
            let resp = next.run(req).await;
            crate::metrics::http_request(
                method.as_str(),
                &route,
                resp.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            tracing::info!(
                correlation_id = %current(),
                status = resp.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request_completed"
            );
            resp
        })
        .instrument(span)
        .await;
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}

/// Runs `fut` with `cid` as the current correlation id (background work).
pub async fn scope<F: std::future::Future>(cid: String, fut: F) -> F::Output {
    CURRENT.scope(cid, fut).await
}
