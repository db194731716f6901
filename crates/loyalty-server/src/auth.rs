//! Bearer tokens and who the caller is.
//!
//! Tokens are 32 random bytes, shown once; only their SHA-256 is stored.
//! Lookups are cached in memory (tokens are never re-assigned), bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use loyalty_core::Permission;
use loyalty_store::{Staff, StoreError, TokenSubject};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, Code};

/// Most cached token lookups before the cache is cleared.
pub const TOKEN_CACHE_MAX: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A staff member.
    Staff(Staff),
    /// A player with a read-only token.
    Player(Uuid),
}

impl Caller {
    /// The staff member, if the caller has `p`; else 403.
    pub fn require(&self, p: Permission) -> Result<&Staff, ApiError> {
        match self {
            Caller::Staff(s) if s.role.allows(p) => Ok(s),
            _ => Err(forbidden(p)),
        }
    }

    /// Allows staff with `p`, or the player themself.
    pub fn require_or_self(&self, p: Permission, player_id: Uuid) -> Result<(), ApiError> {
        match self {
            Caller::Player(id) if *id == player_id => Ok(()),
            _ => self.require(p).map(|_| ()),
        }
    }

    /// Stable id of the caller, used to scope idempotency keys.
    pub fn scope_id(&self) -> String {
        match self {
            Caller::Staff(s) => format!("staff:{}", s.id),
            Caller::Player(p) => format!("player:{p}"),
        }
    }

    /// The staff id, if a staff member.
    pub fn staff_id(&self) -> Option<Uuid> {
        match self {
            Caller::Staff(s) => Some(s.id),
            Caller::Player(_) => None,
        }
    }
}

/// 403 FORBIDDEN naming the missing permission.
pub fn forbidden(p: Permission) -> ApiError {
    ApiError::new(
        Code::Forbidden,
        format!("permission {} is required", p.as_str()),
    )
    .with_details(serde_json::json!({"permission": p.as_str()}))
}

/// A new random token.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::new(Code::Internal, format!("no randomness: {e}")))?;
    Ok(format!("ll_{}", hex(&bytes)))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// In-memory cache of token lookups.
#[derive(Debug, Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, Caller>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        self.map.lock().ok()?.get(hash).cloned()
    }
    fn put(&self, hash: String, caller: Caller) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= TOKEN_CACHE_MAX {
                m.clear();
            }
            m.insert(hash, caller);
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = || ApiError::new(Code::Unauthorized, "a valid bearer token is required");
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(unauthorized)?;
        let value = header.to_str().map_err(|_| unauthorized())?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(unauthorized)?
            .trim();
        if token.is_empty() || token.len() > 200 {
            return Err(unauthorized());
        }
        let hash = hash_token(token);
        if let Some(c) = state.tokens.get(&hash) {
            return Ok(c);
        }
        let h = hash.clone();
        let caller = state
            .store
            .read(move |tx| -> Result<Option<Caller>, StoreError> {
                Ok(match tx.token(&h)? {
                    Some(TokenSubject::Staff(id)) => tx.staff(id)?.map(Caller::Staff),
                    Some(TokenSubject::Player(id)) => Some(Caller::Player(id)),
                    None => None,
                })
            })
            .await?
            .ok_or_else(unauthorized)?;
        state.tokens.put(hash, caller.clone());
        Ok(caller)
    }
}
