//! Liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::error::{ApiError, Code};

pub(super) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

pub(super) async fn readyz(State(st): State<AppState>) -> Response {
    if let Err(e) = st.store.ping().await {
        tracing::warn!(error = %e, "not ready: storage");
        return ApiError::new(Code::Unavailable, "storage is unreachable").into_response();
    }
    if let Err(e) = st.limiter.ping().await {
        tracing::warn!(error = %e, "not ready: rate limiter");
        return ApiError::new(Code::Unavailable, "the rate limiter is unreachable").into_response();
    }
    axum::Json(json!({"status": "ready", "storage": "ok", "rate_limiter": "ok"})).into_response()
}

pub(super) async fn metrics() -> Response {
    let mut resp = crate::metrics::render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
