//! Extractors that turn malformed input into our error envelope instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use loyalty_core::limits::BODY_BYTES_MAX;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, Code};

/// A JSON body; any failure is 400 VALIDATION_ERROR naming the field.
pub struct ApiJson<T>(pub T);

/// Parses JSON bytes into `T`, naming the failing field. The body is one
/// JSON value and nothing after it but whitespace.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = parse_value(de)?;
    de.end().map_err(|_| {
        ApiError::validation("body", "must be one JSON value with nothing after it")
    })?;
    Ok(value)
}

fn parse_value<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner().to_string();
        let mut field = e.path().to_string();
        if let Some(missing) = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            field = if field == "." {
                missing.to_string()
            } else {
                format!("{field}.{missing}")
            };
        }
        if field == "." {
            field = "body".to_string();
        }
        let message = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        ApiError::validation(&field, message)
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// The raw body bytes: at most the body limit (413 beyond it), within the
/// body timeout (408 after it), and `application/json` whenever there is a
/// body (415 otherwise).
pub struct RawBody(pub Bytes);

/// Whether a `Content-Type` value names JSON (`application/json`, or a
/// `+json` type, with any parameters).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_string());
        let limit = state.settings.body_timeout;
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state));
        let bytes = match read.await {
            Err(_) => {
                tracing::warn!(
                    timeout_ms = limit.as_millis() as u64,
                    "request_body_timeout"
                );
                return Err(ApiError::new(
                    Code::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        limit.as_millis()
                    ),
                ));
            }
            Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    Code::PayloadTooLarge,
                    format!("a request body is at most {BODY_BYTES_MAX} bytes"),
                )
                .with_details(serde_json::json!({"limit_bytes": BODY_BYTES_MAX})));
            }
            Ok(Err(e)) => {
                return Err(ApiError::validation(
                    "body",
                    format!("unreadable body: {}", e.body_text()),
                ));
            }
            Ok(Ok(b)) => b,
        };
        if !bytes.is_empty() && !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "a request body must be sent as Content-Type: application/json",
            )
            .with_details(serde_json::json!({"content_type": content_type.map(|c| crate::error::bounded(&c, 100))})));
        }
        Ok(RawBody(bytes))
    }
}

/// Query parameters; any failure is 400 VALIDATION_ERROR.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        // No parameter of this API (ids, cursors, instants, names, keys)
        // holds a control character, and PostgreSQL refuses NUL in text
        // outright: refuse them here, naming the parameter, before any
        // reaches storage.
        let control = |s: &str| s.chars().any(char::is_control);
        for (key, value) in form_urlencoded::parse(q.as_bytes()) {
            let field = if control(&key) {
                "query"
            } else if control(&value) {
                &key
            } else {
                continue;
            };
            return Err(ApiError::validation(
                field,
                "must not contain control characters",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                ApiError::validation(
                    if field == "." { "query" } else { &field },
                    e.inner().to_string(),
                )
            })
    }
}

/// Parses a path id; anything that is not an id names nothing → 404.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}
