//! The manual-reward rate limit: at most N rewards per staff member in any
//! sliding window (not calendar minutes).
//!
//! A slot is *reserved* before the reward is written and *released* if the
//! write does not happen, so a refused request uses no quota and two racing
//! requests cannot both take the last slot. Time comes from the server clock
//! so test mode can move it. The in-memory limiter is a sliding log per staff
//! member; `governor`'s GCRA was not used because it cannot return a
//! reservation or answer "when does the oldest slot free".

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

/// Result of asking for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Granted; pass the ticket to `release` if the reward is not written.
    Granted(Ticket),
    /// Refused; a slot frees in this many seconds (at least 1).
    Limited {
        /// Seconds until a slot frees.
        retry_after_s: u64,
    },
}

/// A reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Staff member.
    pub staff_id: Uuid,
    /// Reservation id.
    pub id: Uuid,
}

/// Why the limiter could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterUnavailable(pub String);

/// A sliding-window limiter keyed by staff member.
pub trait RateLimiter: Send + Sync {
    /// Reserves a slot at `now`.
    fn acquire(
        &self,
        staff_id: Uuid,
        now: Timestamp,
    ) -> futures_util::future::BoxFuture<'_, Result<Decision, LimiterUnavailable>>;
    /// Returns a reserved slot.
    fn release(&self, ticket: Ticket) -> futures_util::future::BoxFuture<'_, ()>;
    /// Whether the limiter can answer (readiness).
    fn ping(&self) -> futures_util::future::BoxFuture<'_, Result<(), LimiterUnavailable>> {
        Box::pin(async { Ok(()) })
    }
}

/// Configuration of the limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Rewards allowed per window.
    pub max: usize,
    /// Window length.
    pub window: SignedDuration,
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            max: 10,
            window: SignedDuration::from_secs(60),
        }
    }
}

/// Most staff members tracked at once by the in-memory limiter; idle ones are
/// dropped first.
pub const TRACKED_STAFF_MAX: usize = 100_000;

/// The in-memory sliding log (one node).
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    limit: Limit,
    log: Mutex<HashMap<Uuid, VecDeque<(Timestamp, Uuid)>>>,
}

impl MemoryLimiter {
    /// A limiter enforcing `limit`.
    pub fn new(limit: Limit) -> Self {
        MemoryLimiter {
            limit,
            log: Mutex::new(HashMap::new()),
        }
    }

    fn decide(&self, staff_id: Uuid, now: Timestamp) -> Result<Decision, LimiterUnavailable> {
        let mut log = self
            .log
            .lock()
            .map_err(|_| LimiterUnavailable("limiter lock poisoned".into()))?;
        if log.len() >= TRACKED_STAFF_MAX && !log.contains_key(&staff_id) {
            let window = self.limit.window;
            log.retain(|_, q| q.back().is_some_and(|(t, _)| *t + window > now));
        }
        let q = log.entry(staff_id).or_default();
        // Entries at or before now - window have left the window. Entries
        // after `now` (the test clock moved back) still count.
        while q
            .front()
            .is_some_and(|(t, _)| *t + self.limit.window <= now)
        {
            q.pop_front();
        }
        if q.len() >= self.limit.max {
            let oldest = q.front().map(|(t, _)| *t).unwrap_or(now);
            let frees_at = oldest + self.limit.window;
            let wait_ms = frees_at.duration_since(now).as_millis().max(0);
            let retry_after_s = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
            return Ok(Decision::Limited { retry_after_s });
        }
        let id = Uuid::new_v4();
        // Keep the log ordered by time even if the clock moved back.
        let pos = q.partition_point(|(t, _)| *t <= now);
        q.insert(pos, (now, id));
        Ok(Decision::Granted(Ticket { staff_id, id }))
    }
}

impl RateLimiter for MemoryLimiter {
    fn acquire(
        &self,
        staff_id: Uuid,
        now: Timestamp,
    ) -> futures_util::future::BoxFuture<'_, Result<Decision, LimiterUnavailable>> {
        let d = self.decide(staff_id, now);
        Box::pin(async move { d })
    }

    fn release(&self, ticket: Ticket) -> futures_util::future::BoxFuture<'_, ()> {
        if let Ok(mut log) = self.log.lock()
            && let Some(q) = log.get_mut(&ticket.staff_id)
        {
            q.retain(|(_, id)| *id != ticket.id);
        }
        Box::pin(async {})
    }
}

/// The shared limiter: a sliding log per staff member in a Redis sorted set,
/// checked and appended atomically by one Lua script, so the limit holds
/// across every node. Redis unreachable → [`LimiterUnavailable`] (the reward
/// is refused with 503, never let through).
pub struct RedisLimiter {
    limit: Limit,
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
}

fn redis_client(
    url: &str,
    tls: &crate::tls::TlsFiles,
) -> Result<redis::Client, LimiterUnavailable> {
    let unavailable = |e: redis::RedisError| LimiterUnavailable(e.to_string());
    if tls.is_empty() {
        return redis::Client::open(url).map_err(unavailable);
    }
    if !url.starts_with("rediss://") {
        return Err(LimiterUnavailable(
            "--redis-ca-file and --redis-cert-file need a rediss:// URL".into(),
        ));
    }
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| LimiterUnavailable(format!("{}: {e}", p.display())))
    };
    let root_cert = tls.ca_file.as_ref().map(read).transpose()?;
    let client_tls = match &tls.client {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(unavailable)
}

/// How long one limiter call may take before Redis counts as unreachable.
pub const REDIS_CALL_TIMEOUT_MS: u64 = 1_000;

const ACQUIRE_LUA: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= max then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2])}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, window * 2 + 86400000)
return {1, 0}
";

impl RedisLimiter {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`; `rediss://` for
    /// TLS, with `tls`'s CA and client certificate when given).
    pub async fn connect(
        url: &str,
        tls: &crate::tls::TlsFiles,
        limit: Limit,
    ) -> Result<Self, LimiterUnavailable> {
        let client = redis_client(url, tls)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_millis(
                REDIS_CALL_TIMEOUT_MS,
            )))
            .set_response_timeout(Some(std::time::Duration::from_millis(
                REDIS_CALL_TIMEOUT_MS,
            )))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            std::time::Duration::from_millis(REDIS_CALL_TIMEOUT_MS * 5),
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| LimiterUnavailable("timed out connecting to Redis".into()))?
        .map_err(|e| LimiterUnavailable(e.to_string()))?;
        Ok(RedisLimiter {
            limit,
            conn,
            script: redis::Script::new(ACQUIRE_LUA),
            prefix: "loyalty:reward-rate:".into(),
        })
    }

    /// Whether Redis answers.
    pub async fn check(&self) -> Result<(), LimiterUnavailable> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let fut = cmd.query_async::<String>(&mut conn);
        tokio::time::timeout(std::time::Duration::from_millis(REDIS_CALL_TIMEOUT_MS), fut)
            .await
            .map_err(|_| LimiterUnavailable("Redis timed out".into()))?
            .map(|_| ())
            .map_err(|e| LimiterUnavailable(e.to_string()))
    }

    async fn decide(&self, staff_id: Uuid, now: Timestamp) -> Result<Decision, LimiterUnavailable> {
        let id = Uuid::new_v4();
        let now_ms = now.as_millisecond();
        let window_ms = self.limit.window.as_millis();
        let mut conn = self.conn.clone();
        let key = format!("{}{staff_id}", self.prefix);
        let mut inv = self.script.key(&key);
        inv.arg(now_ms)
            .arg(i64::try_from(window_ms).unwrap_or(i64::MAX))
            .arg(self.limit.max)
            .arg(id.to_string());
        let fut = inv.invoke_async::<(i64, i64)>(&mut conn);
        let (granted, oldest_ms) =
            tokio::time::timeout(std::time::Duration::from_millis(REDIS_CALL_TIMEOUT_MS), fut)
                .await
                .map_err(|_| LimiterUnavailable("Redis timed out".into()))?
                .map_err(|e| LimiterUnavailable(e.to_string()))?;
        if granted == 1 {
            return Ok(Decision::Granted(Ticket { staff_id, id }));
        }
        let wait_ms = (i128::from(oldest_ms) + window_ms - i128::from(now_ms)).max(0);
        let retry_after_s = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
        Ok(Decision::Limited { retry_after_s })
    }
}

impl RateLimiter for RedisLimiter {
    fn acquire(
        &self,
        staff_id: Uuid,
        now: Timestamp,
    ) -> futures_util::future::BoxFuture<'_, Result<Decision, LimiterUnavailable>> {
        Box::pin(self.decide(staff_id, now))
    }

    fn ping(&self) -> futures_util::future::BoxFuture<'_, Result<(), LimiterUnavailable>> {
        Box::pin(self.check())
    }

    fn release(&self, ticket: Ticket) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = format!("{}{}", self.prefix, ticket.staff_id);
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(&key).arg(ticket.id.to_string());
            let fut = cmd.query_async::<i64>(&mut conn);
            match tokio::time::timeout(std::time::Duration::from_millis(REDIS_CALL_TIMEOUT_MS), fut)
                .await
            {
                Ok(Ok(_)) => {}
                // A slot that cannot be returned stays taken until the window
                // passes: the limit errs on the safe side.
                _ => {
                    tracing::warn!(staff_id = %ticket.staff_id, "could not return a rate-limit slot to Redis")
                }
            }
        })
    }
}
