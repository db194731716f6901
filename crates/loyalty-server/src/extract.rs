//! Extractors that turn malformed input into our error envelope instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// A JSON body; any failure is 400 VALIDATION_ERROR naming the field.
pub struct ApiJson<T>(pub T);

/// Parses JSON bytes into `T`, naming the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
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

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::validation("body", format!("unreadable body: {}", e.body_text()))
        })?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// The raw body bytes, bounded by the body limit, as our error on failure.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::validation("body", format!("unreadable body: {}", e.body_text()))
        })?;
        Ok(RawBody(bytes))
    }
}

/// Query parameters; any failure is 400 VALIDATION_ERROR.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
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
