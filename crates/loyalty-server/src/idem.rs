//! `Idempotency-Key` on every mutating POST, and the one function that runs
//! a write for a handler.
//!
//! The stored response is written in the same transaction as the work, so a
//! key is either unused or maps to the exact committed response. Keys are
//! scoped per caller and operation. A key being processed on this node
//! answers 409 `IDEMPOTENCY_KEY_IN_USE`; across nodes the database's
//! primary key serialises them and the loser replays the winner's response.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use loyalty_core::IdempotencyKey;
use loyalty_store::ops::{OpCtx, OpError};
use loyalty_store::{IdempotencyRecord, Tx};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::{Caller, hex};
use crate::error::{ApiError, Code};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Response header set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A parsed `Idempotency-Key` for one caller and operation.
#[derive(Debug, Clone)]
pub struct IdemKey {
    /// Caller + operation.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// Hash of method, path and body.
    pub fingerprint: String,
}

/// Reads the header: `None` if absent, 400 if malformed.
pub fn parse(
    headers: &HeaderMap,
    caller: &Caller,
    operation: &str,
    path: &str,
    body: &[u8],
) -> Result<Option<IdemKey>, ApiError> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = IdempotencyKey::new(raw.to_str().unwrap_or(""))
        .map_err(|e| ApiError::validation("Idempotency-Key", e.0))?;
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    // JSON bodies are fingerprinted in canonical form (keys sorted, no
    // whitespace), so the same request re-serialised is still the same.
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => h.update(serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())),
        Err(_) => h.update(body),
    }
    Ok(Some(IdemKey {
        scope: format!("{}|{operation}", caller.scope_id()),
        key: key.into_string(),
        fingerprint: hex(&h.finalize()),
    }))
}

/// Marks a key in flight on this node until dropped.
pub struct InFlight {
    state: AppState,
    slot: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.state.in_flight.lock() {
            set.remove(&self.slot);
        }
    }
}

fn claim(state: &AppState, k: &IdemKey) -> Result<InFlight, ApiError> {
    let slot = (k.scope.clone(), k.key.clone());
    let mut set = state
        .in_flight
        .lock()
        .map_err(|_| ApiError::new(Code::Internal, "in-flight lock poisoned"))?;
    if !set.insert(slot.clone()) {
        return Err(ApiError::new(
            Code::IdempotencyKeyInUse,
            "a request with this idempotency key is still being processed",
        ));
    }
    Ok(InFlight {
        state: state.clone(),
        slot,
    })
}

/// What a write produced: a fresh response or a stored one.
pub enum Outcome<D> {
    /// Done now: the response, and the operation's domain result for the
    /// handler (e.g. for its log line).
    Fresh(StatusCode, Vec<u8>, D),
    /// A stored response for the same key and request.
    Replayed(StatusCode, Vec<u8>),
}

/// Runs `op` — a domain operation returning a domain result or an
/// [`OpError`] — as one durable write, honouring `Idempotency-Key`; `render`
/// is the HTTP layer's view of the result (status and JSON body).
///
/// With a key the rendered response is stored with the work, in the same
/// transaction, so `render` runs there (on the writer thread); without one
/// it runs after the commit, here. Either way the operation never sees a
/// status code or the envelope.
pub async fn run_write<D, F, R>(
    state: &AppState,
    ctx: OpCtx,
    idem: Option<IdemKey>,
    op: F,
    render: R,
) -> Result<Outcome<D>, ApiError>
where
    D: Send + 'static,
    F: FnOnce(&mut dyn Tx, &OpCtx) -> Result<D, OpError> + Send + 'static,
    R: Fn(&D, &OpCtx) -> (StatusCode, Value) + Send + Sync + 'static,
{
    let _guard = idem.as_ref().map(|k| claim(state, k)).transpose()?;
    let render = std::sync::Arc::new(render);
    let (in_tx, after) = (render.clone(), ctx.clone());
    let written = state
        .store
        .write(move |tx| -> Result<Written<D>, OpError> {
            if let Some(k) = &idem
                && let Some(rec) = tx.idempotency_record(&k.scope, &k.key)?
            {
                if rec.fingerprint != k.fingerprint {
                    return Err(OpError::IdempotencyKeyReused);
                }
                let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
                return Ok(Written::Replayed(status, rec.body));
            }
            let done = op(tx, &ctx)?;
            let Some(k) = &idem else {
                return Ok(Written::Unrendered(done));
            };
            let (status, value) = in_tx(&done, &ctx);
            let body = encode(&value)?;
            // Secrets are shown once: the stored copy never holds them.
            let stored = match redact_secrets(&value) {
                Some(redacted) => encode(&redacted)?,
                None => body.clone(),
            };
            tx.insert_idempotency_record(
                &k.scope,
                &k.key,
                &IdempotencyRecord {
                    fingerprint: k.fingerprint.clone(),
                    status: status.as_u16(),
                    body: stored,
                    created_at: ctx.now,
                },
            )?;
            Ok(Written::Rendered(status, body, done))
        })
        .await?;
    let out = match written {
        Written::Replayed(status, body) => Outcome::Replayed(status, body),
        Written::Rendered(status, body, done) => Outcome::Fresh(status, body, done),
        Written::Unrendered(done) => {
            let (status, value) = render(&done, &after);
            Outcome::Fresh(status, encode(&value)?, done)
        }
    };
    if matches!(out, Outcome::Fresh(..)) {
        // New events are committed: wake the event tail (cheap, coalesces).
        state.events.poke();
    }
    Ok(out)
}

/// What the write transaction hands back to [`run_write`].
enum Written<D> {
    Replayed(StatusCode, Vec<u8>),
    Rendered(StatusCode, Vec<u8>, D),
    Unrendered(D),
}

fn encode(value: &Value) -> Result<Vec<u8>, loyalty_store::StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| loyalty_store::StoreError::Internal(format!("cannot encode response: {e}")))
}

/// Fields of a response that hold a secret shown once (DESIGN §3.7).
pub const SECRET_FIELDS: &[&str] = &["token", "secret"];

/// The response as it may be stored: each secret field set to null with
/// `<field>_redacted: true`; `None` when the response holds no secret.
pub fn redact_secrets(value: &Value) -> Option<Value> {
    let obj = value.as_object()?;
    if !SECRET_FIELDS
        .iter()
        .any(|f| obj.get(*f).is_some_and(|v| !v.is_null()))
    {
        return None;
    }
    let mut out = obj.clone();
    for f in SECRET_FIELDS {
        if out.get(*f).is_some_and(|v| !v.is_null()) {
            out.insert((*f).to_string(), Value::Null);
            out.insert(format!("{f}_redacted"), Value::Bool(true));
        }
    }
    Some(Value::Object(out))
}

/// A JSON response from status and bytes.
pub fn json_response(status: StatusCode, body: Vec<u8>, replayed: bool) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        resp.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

impl<T> Outcome<T> {
    /// The HTTP response; replays carry `Idempotent-Replayed: true`.
    pub fn into_response(self) -> Response {
        match self {
            Outcome::Fresh(s, b, _) => json_response(s, b, false),
            Outcome::Replayed(s, b) => json_response(s, b, true),
        }
    }
}
