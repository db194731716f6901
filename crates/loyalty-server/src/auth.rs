//! Bearer tokens and who the caller is.
//!
//! Tokens are 32 random bytes, shown once; only their SHA-256 is stored.
//! Lookups are cached in memory for at most [`TOKEN_CACHE_TTL`] (so a token
//! revoked on any node stops working within a second everywhere), bounded.
//! Failed tokens are counted per client address ([`AuthThrottle`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jiff::{SignedDuration, Timestamp};
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

    /// Allows staff holding any of `ps`, or the player themself (when the
    /// thing read is `player_id`'s); 403 naming the first permission else.
    pub fn require_any_or_self(
        &self,
        ps: &[Permission],
        player_id: Option<Uuid>,
    ) -> Result<(), ApiError> {
        match self {
            Caller::Player(id) if Some(*id) == player_id => Ok(()),
            Caller::Staff(s) if ps.iter().any(|p| s.role.allows(*p)) => Ok(()),
            _ => Err(forbidden(ps[0]).with_details(serde_json::json!({
                "permission": ps[0].as_str(),
                "any_of": ps.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }))),
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

/// How long a cached token lookup is trusted. A token revoked on another
/// node is refused here at most this long after (DESIGN §3.7: within one
/// second on every node).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_millis(500);

/// In-memory cache of token lookups, each trusted for [`TOKEN_CACHE_TTL`].
#[derive(Debug, Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let m = self.map.lock().ok()?;
        let (caller, at) = m.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| caller.clone())
    }
    fn put(&self, hash: String, caller: Caller) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= TOKEN_CACHE_MAX {
                m.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
                if m.len() >= TOKEN_CACHE_MAX {
                    m.clear();
                }
            }
            m.insert(hash, (caller, Instant::now()));
        }
    }
    /// Forgets every cached lookup (after a revocation on this node).
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

/// The client's address, set on each request by the server's accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Default of `--auth-failures-max`: failed tokens from one address within
/// [`AUTH_WINDOW`] beyond which every request from it that presents a token
/// is refused until the window passes.
pub const AUTH_FAILURES_MAX: usize = 20;
/// The window of [`AUTH_FAILURES_MAX`], by the server clock.
pub const AUTH_WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Most client addresses tracked at once.
pub const AUTH_ADDRESSES_MAX: usize = 100_000;

/// Failed authentications per client address: the times of the latest
/// `max + 1` failures (a sliding window).
#[derive(Debug)]
pub struct AuthThrottle {
    max: usize,
    map: Mutex<HashMap<IpAddr, VecDeque<Timestamp>>>,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        AuthThrottle::new(AUTH_FAILURES_MAX)
    }
}

impl AuthThrottle {
    /// A throttle allowing `max` failures per address per [`AUTH_WINDOW`].
    pub fn new(max: usize) -> Self {
        AuthThrottle {
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `ip` may present a token again, if it may not now.
    pub fn blocked(&self, ip: IpAddr, now: Timestamp) -> Option<u64> {
        let m = self.map.lock().ok()?;
        let times = m.get(&ip)?;
        if times.len() <= self.max {
            return None;
        }
        let until = *times.front()? + AUTH_WINDOW;
        let wait = until.duration_since(now);
        (wait > SignedDuration::ZERO && now >= *times.back()?).then(|| {
            u64::try_from((wait.as_millis() + 999) / 1000)
                .unwrap_or(60)
                .max(1)
        })
    }

    /// Records a failure; returns the failures of `ip` within the window.
    pub fn fail(&self, ip: IpAddr, now: Timestamp) -> usize {
        let Ok(mut m) = self.map.lock() else {
            return 0;
        };
        if m.len() >= AUTH_ADDRESSES_MAX && !m.contains_key(&ip) {
            m.retain(|_, t| t.back().is_some_and(|last| now < *last + AUTH_WINDOW));
            if m.len() >= AUTH_ADDRESSES_MAX {
                m.clear();
            }
        }
        let times = m.entry(ip).or_default();
        // A clock set backwards (test mode) starts the window afresh.
        if times.back().is_some_and(|last| now < *last) {
            times.clear();
        }
        times.push_back(now);
        while times.len() > self.max + 1 {
            times.pop_front();
        }
        while times
            .front()
            .is_some_and(|first| now >= *first + AUTH_WINDOW)
        {
            times.pop_front();
        }
        times.len()
    }
}

/// Live event streams per token.
#[derive(Debug, Default)]
pub struct StreamSlots {
    map: Arc<Mutex<HashMap<String, usize>>>,
}

/// One live stream of a token; the slot is freed when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    map: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl StreamSlots {
    /// Takes a slot for `key` if it holds fewer than `max`.
    pub fn acquire(&self, key: &str, max: usize) -> Option<StreamSlot> {
        let mut m = self.map.lock().ok()?;
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            map: self.map.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock()
            && let Some(n) = m.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// The bearer token a request presents: `None` without an Authorization
/// header, `Some(Err(reason))` when the header is not a usable bearer token.
pub fn presented_token(headers: &HeaderMap) -> Option<Result<&str, &'static str>> {
    let header = headers.get(AUTHORIZATION)?;
    let Ok(value) = header.to_str() else {
        return Some(Err("malformed_header"));
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Some(Err("not_bearer"));
    };
    if token.is_empty() || token.len() > 200 {
        return Some(Err("malformed_token"));
    }
    Some(Ok(token))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = || ApiError::new(Code::Unauthorized, "a valid bearer token is required");
        // No Authorization header: not a failed guess, just anonymous.
        let presented = presented_token(&parts.headers).ok_or_else(unauthorized)?;
        let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let now = state.clock.now();
        if let Some(ip) = ip
            && let Some(wait) = state.auth_throttle.blocked(ip, now)
        {
            let mut e = ApiError::new(
                Code::RateLimitExceeded,
                "too many failed authentications from this address; retry later",
            )
            .with_details(serde_json::json!({"retry_after_seconds": wait}));
            e.retry_after_s = Some(wait);
            return Err(e);
        }
        let outcome = match presented {
            Err(reason) => Err(reason),
            Ok(token) => lookup(state, hash_token(token)).await?,
        };
        outcome.map_err(|reason| {
            let failures = ip.map(|ip| state.auth_throttle.fail(ip, now));
            metrics::counter!("loyalty_auth_failures_total").increment(1);
            tracing::warn!(
                client = ip.map(tracing::field::display),
                reason,
                failures_in_window = failures,
                "auth_failed"
            );
            unauthorized()
        })
    }
}

/// Resolves a token hash through the cache or storage.
async fn lookup(state: &AppState, hash: String) -> Result<Result<Caller, &'static str>, ApiError> {
    if let Some(c) = state.tokens.get(&hash) {
        return Ok(Ok(c));
    }
    let h = hash.clone();
    let found = state
        .store
        .read_short(
            move |tx| -> Result<Result<Caller, &'static str>, StoreError> {
                Ok(match tx.token(&h)? {
                    Some(TokenSubject::Staff(id)) => match tx.staff(id)? {
                        Some(s) if s.disabled_at.is_none() => Ok(Caller::Staff(s)),
                        Some(_) => Err("staff_disabled"),
                        None => Err("unknown_token"),
                    },
                    Some(TokenSubject::Player(id)) => Ok(Caller::Player(id)),
                    None => Err("unknown_token"),
                })
            },
        )
        .await?;
    if let Ok(caller) = &found {
        state.tokens.put(hash, caller.clone());
    }
    Ok(found)
}
