//! The HTTP error envelope and the one place that maps failures to codes.
//!
//! `{"error": {"code", "message", "correlation_id", "details"}}` — the codes
//! are public API and listed, in precedence order, in docs/errors.md.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loyalty_store::StoreError;
use loyalty_store::ops::OpError;
use serde_json::{Value, json};

use crate::correlation;

/// Every error code the API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: input breaks a rule; details name the field.
    ValidationError,
    /// 401: no or unknown bearer token.
    Unauthorized,
    /// 403: the caller lacks the permission.
    Forbidden,
    /// 403: `staff_id` is not the authenticated staff member.
    InvalidStaffId,
    /// 404: no such resource or route.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 409: the slip is closed.
    SlipNotOpen,
    /// 409: the slip must be closed first.
    SlipNotClosed,
    /// 409: the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse,
    /// 409: uniqueness or state conflict.
    Conflict,
    /// 403: a staff member tried to approve their own request.
    SelfApproval,
    /// 409: the approval was already decided otherwise, or lapsed.
    ApprovalNotPending,
    /// 422: |points| above the per-reward limit.
    RewardExceedsLimit,
    /// 422: the balance cannot cover the change.
    InsufficientBalance,
    /// 422: `Idempotency-Key` reused with a different request.
    IdempotencyKeyReused,
    /// 422: the escrow is not held.
    EscrowNotHeld,
    /// 422: a capture of more than the escrow holds.
    EscrowAmountExceeded,
    /// 422: a balance, lifetime total or amount would leave ±(2^53 − 1).
    PointsOutOfRange,
    /// 408: the request body did not arrive within the body timeout.
    RequestTimeout,
    /// 413: the request body is larger than the limit.
    PayloadTooLarge,
    /// 415: a request body that is not `application/json`.
    UnsupportedMediaType,
    /// 431: the request's headers are larger than the limit.
    HeadersTooLarge,
    /// 429: too many manual rewards; see `Retry-After`.
    RateLimitExceeded,
    /// 503: the shared rate limiter is unreachable.
    RateLimitUnavailable,
    /// 503: storage unreachable or overloaded.
    Unavailable,
    /// 202: the slip closed, its loyalty accrual is pending.
    PartialCompletion,
    /// 500: a bug; details are in the log only.
    Internal,
}

impl Code {
    /// Every code, in the order of the catalogue (docs/errors.md).
    pub const ALL: [Code; 27] = [
        Code::ValidationError,
        Code::Unauthorized,
        Code::Forbidden,
        Code::InvalidStaffId,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::SlipNotOpen,
        Code::SlipNotClosed,
        Code::IdempotencyKeyInUse,
        Code::Conflict,
        Code::SelfApproval,
        Code::ApprovalNotPending,
        Code::RewardExceedsLimit,
        Code::InsufficientBalance,
        Code::IdempotencyKeyReused,
        Code::EscrowNotHeld,
        Code::EscrowAmountExceeded,
        Code::PointsOutOfRange,
        Code::RequestTimeout,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::HeadersTooLarge,
        Code::RateLimitExceeded,
        Code::RateLimitUnavailable,
        Code::Unavailable,
        Code::PartialCompletion,
        Code::Internal,
    ];

    /// The stable SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ValidationError => "VALIDATION_ERROR",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Forbidden => "FORBIDDEN",
            Code::InvalidStaffId => "INVALID_STAFF_ID",
            Code::NotFound => "NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::SlipNotOpen => "SLIP_NOT_OPEN",
            Code::SlipNotClosed => "SLIP_NOT_CLOSED",
            Code::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            Code::Conflict => "CONFLICT",
            Code::SelfApproval => "SELF_APPROVAL",
            Code::ApprovalNotPending => "APPROVAL_NOT_PENDING",
            Code::RewardExceedsLimit => "REWARD_EXCEEDS_LIMIT",
            Code::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Code::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Code::EscrowNotHeld => "ESCROW_NOT_HELD",
            Code::PointsOutOfRange => "POINTS_OUT_OF_RANGE",
            Code::EscrowAmountExceeded => "ESCROW_AMOUNT_EXCEEDED",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Code::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Code::RateLimitUnavailable => "RATE_LIMIT_UNAVAILABLE",
            Code::Unavailable => "UNAVAILABLE",
            Code::PartialCompletion => "PARTIAL_COMPLETION",
            Code::Internal => "INTERNAL",
        }
    }

    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::ValidationError => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::InvalidStaffId | Code::SelfApproval => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::SlipNotOpen
            | Code::SlipNotClosed
            | Code::IdempotencyKeyInUse
            | Code::ApprovalNotPending
            | Code::Conflict => StatusCode::CONFLICT,
            Code::RewardExceedsLimit
            | Code::InsufficientBalance
            | Code::IdempotencyKeyReused
            | Code::EscrowNotHeld
            | Code::PointsOutOfRange
            | Code::EscrowAmountExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Code::RateLimitUnavailable | Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::PartialCompletion => StatusCode::ACCEPTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: the code, a human message and optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Stable code.
    pub code: Code,
    /// Lower-case message saying what was expected.
    pub message: String,
    /// Machine-readable details (e.g. the field).
    pub details: Value,
    /// Seconds for `Retry-After`.
    pub retry_after_s: Option<u64>,
}

/// Most characters of a message an error answers with: messages may quote
/// the offending input, and an error never echoes more of it than this.
pub const MESSAGE_CHARS_MAX: usize = 200;
/// Most characters of a field name in `details.field`.
pub const FIELD_CHARS_MAX: usize = 100;

/// `s` cut to `max` characters (marked with `…` when cut).
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: bounded(&message.into(), MESSAGE_CHARS_MAX),
            details: json!({}),
            retry_after_s: None,
        }
    }

    /// 400 naming the offending field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(Code::ValidationError, message);
        e.details = json!({ "field": bounded(field, FIELD_CHARS_MAX) });
        e
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 404 for a thing.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(Code::NotFound, format!("{what} not found"))
    }

    /// The envelope body, with the current request's correlation id.
    pub fn body(&self) -> Value {
        self.body_for(&correlation::current())
    }

    /// The envelope body for the request `correlation_id` names — for a
    /// body rendered off the request's task (a response stored with its
    /// write, on the storage thread).
    pub fn body_for(&self, correlation_id: &str) -> Value {
        json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "correlation_id": correlation_id,
                "details": self.details,
            }
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(msg) => ApiError::new(Code::Conflict, msg),
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "storage unavailable");
                ApiError::new(Code::Unavailable, "storage is unavailable, retry later")
            }
            StoreError::Internal(msg) => {
                tracing::error!(error = %msg, "storage failure");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Validation { field, message } => ApiError::validation(field, message),
            OpError::NotFound(what) => ApiError::not_found(what),
            OpError::SlipNotOpen => ApiError::new(Code::SlipNotOpen, "rating slip is closed"),
            OpError::SlipNotClosed => {
                ApiError::new(Code::SlipNotClosed, "rating slip must be closed first")
            }
            OpError::Conflict(msg) => ApiError::new(Code::Conflict, msg),
            OpError::SelfApproval => ApiError::new(
                Code::SelfApproval,
                "a request cannot be approved by the staff member who made it (they may withdraw it)",
            ),
            OpError::InsufficientBalance {
                available,
                requested,
            } => ApiError::new(
                Code::InsufficientBalance,
                "the balance cannot go below zero",
            )
            .with_details(json!({"available": available, "requested": requested})),
            OpError::PointsOutOfRange { field, value } => ApiError::new(
                Code::PointsOutOfRange,
                format!(
                    "{field} would leave the range ±{} that every JSON client reads exactly; nothing was written",
                    loyalty_store::ops::POINTS_ABS_MAX
                ),
            )
            .with_details(json!({"field": field, "value": value.to_string(), "limit": loyalty_store::ops::POINTS_ABS_MAX})),
            OpError::EscrowNotHeld { status } => ApiError::new(
                Code::EscrowNotHeld,
                format!(
                    "the escrow is {}; only a HELD escrow can be settled or refunded",
                    status.as_str()
                ),
            )
            .with_details(json!({"status": status.as_str()})),
            OpError::EscrowAmountExceeded { held, requested } => ApiError::new(
                Code::EscrowAmountExceeded,
                format!("the escrow holds {held} points; {requested} requested"),
            )
            .with_details(json!({"held_amount": held, "requested": requested})),
            OpError::VersionConflict { current } => ApiError::new(
                Code::Conflict,
                format!("the escrow is at version {current}; read it again and retry"),
            )
            .with_details(json!({"current_version": current})),
            OpError::IdempotencyKeyReused => ApiError::new(
                Code::IdempotencyKeyReused,
                "idempotency key was already used with a different request",
            ),
            OpError::AccrualFailed(msg) => {
                tracing::error!(error = %msg, "loyalty accrual failed");
                ApiError::new(Code::Unavailable, "loyalty accrual failed, retry later")
            }
            OpError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code == Code::Internal {
            tracing::error!(message = %self.message, "request failed with an internal error");
        }
        let mut resp = (self.code.status(), axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.code == Code::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"loyalty\""),
            );
        }
        if self.code == Code::RequestTimeout {
            // The rest of the body may still be on its way: end the connection.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
