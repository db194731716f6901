//! `GET /v1/exports/ledger`: [`crate::export`] over HTTP.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use loyalty_core::Permission;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::export::{Format, stream};
use crate::extract::ApiQuery;

#[derive(Deserialize)]
pub(super) struct ExportParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// Parses the export parameters.
fn parse_format(v: Option<&str>) -> ApiResult<Format> {
    v.unwrap_or("jsonl")
        .parse()
        .map_err(|_| ApiError::validation("format", "must be csv or jsonl"))
}

fn time(field: &str, v: Option<String>) -> ApiResult<Option<Timestamp>> {
    v.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|_| ApiError::validation(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

pub(super) async fn ledger(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let format = parse_format(p.format.as_deref())?;
    let (from, to) = (time("from", p.from)?, time("to", p.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(ApiError::validation("to", "must not be before from"));
    }
    let up_to = st.store.read(|tx| tx.last_entry_seq()).await?;
    let body = Body::from_stream(stream(st.store.clone(), format, up_to, from, to));
    let mut resp = body.into_response();
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::JsonLines => "application/x-ndjson",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if format == Format::Csv {
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"ledger.csv\""),
        );
    }
    Ok(resp)
}
