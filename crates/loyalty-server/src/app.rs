//! Shared state of a running server and the request-scoped context that
//! operations receive.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;
use loyalty_core::TierTable;
use loyalty_store::Store;
use loyalty_store::ops::OpCtx;

use crate::auth::{Caller, TokenCache};
use crate::clock::Clock;
use crate::ratelimit::RateLimiter;

/// Configuration that shapes behaviour (not where to listen).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether `/v1/test/*` is enabled.
    pub test_mode: bool,
    /// Time zone of the gaming day.
    pub gaming_day_tz: TimeZone,
    /// Hour (0–23) at which the gaming day starts.
    pub gaming_day_start_hour: u8,
    /// Minute (0–59) of that hour at which the gaming day starts.
    pub gaming_day_start_minute: u8,
    /// Tier thresholds and multipliers.
    pub tiers: Arc<TierTable>,
    /// How often the background task looks for pending accruals, ms.
    pub accrual_retry_interval_ms: u64,
    /// How long `Idempotency-Key` records are kept, hours (at least 24).
    pub idempotency_retention_hours: u32,
    /// How often the expiry sweep looks for escrows past `expires_at`, ms.
    pub escrow_sweep_interval_ms: u64,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Most live event streams one token may hold open at once.
    pub streams_per_token: usize,
    /// Whether `/metrics` is served on the main listener (false when it has
    /// its own, `--metrics-listen`).
    pub metrics_on_main: bool,
    /// Dual control: a manual reward or adjustment of at least this many
    /// points (either way) waits for a second staff member's approval.
    /// `None`: off.
    pub dual_control_threshold: Option<i64>,
    /// Failed tokens per client address per minute before the address is
    /// refused (`--auth-failures-max`).
    pub auth_failures_max: usize,
    /// Hosts webhook endpoints may name (`--webhook-allow-hosts`); empty:
    /// any host whose addresses are public.
    pub webhook_allow_hosts: Vec<String>,
    /// How long one webhook delivery may take (`--webhook-timeout-ms`).
    pub webhook_timeout: std::time::Duration,
}

/// Default of `--body-timeout-ms`, seconds.
pub const BODY_TIMEOUT_S_DEFAULT: u64 = 30;
/// Default of `--streams-per-token`.
pub const STREAMS_PER_TOKEN_DEFAULT: usize = 4;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            test_mode: false,
            gaming_day_tz: TimeZone::UTC,
            gaming_day_start_hour: 0,
            gaming_day_start_minute: 0,
            tiers: Arc::new(TierTable::default()),
            accrual_retry_interval_ms: 2_000,
            idempotency_retention_hours: 48,
            escrow_sweep_interval_ms: 1_000,
            dual_control_threshold: None,
            body_timeout: std::time::Duration::from_secs(BODY_TIMEOUT_S_DEFAULT),
            streams_per_token: STREAMS_PER_TOKEN_DEFAULT,
            metrics_on_main: true,
            auth_failures_max: crate::auth::AUTH_FAILURES_MAX,
            webhook_allow_hosts: Vec::new(),
            webhook_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Test mode's fault switches.
#[derive(Debug, Default)]
pub struct Faults {
    /// Make loyalty accrual fail.
    pub loyalty_accrual_fail: AtomicBool,
    /// Subscribers whose every delivery fails.
    pub failing_subscribers: Mutex<HashSet<String>>,
}

impl Faults {
    /// Whether deliveries to subscriber `name` are made to fail.
    pub fn subscriber_fails(&self, name: &str) -> bool {
        self.failing_subscribers
            .lock()
            .map(|s| s.contains(name))
            .unwrap_or(false)
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The shared parts.
pub struct Inner {
    /// Storage.
    pub store: Store,
    /// The clock every time rule reads.
    pub clock: Clock,
    /// Behaviour settings.
    pub settings: Settings,
    /// Test-mode faults.
    pub faults: Faults,
    /// Token lookups.
    pub tokens: TokenCache,
    /// Manual-reward rate limiter.
    pub limiter: Arc<dyn RateLimiter>,
    /// `Idempotency-Key`s being processed on this node.
    pub in_flight: Mutex<HashSet<(String, String)>>,
    /// Event dispatch: subscribers, live stream, relay.
    pub events: Arc<crate::events::EventHub>,
    /// Failed authentications per client address.
    pub auth_throttle: crate::auth::AuthThrottle,
    /// Live event streams per token.
    pub streams: crate::auth::StreamSlots,
    /// Set to true when the server starts shutting down (live streams end).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Key that signs paging cursors: shared through the database by every
    /// node (set at start); a random per-process key until then.
    pub cursor_key: std::sync::OnceLock<Vec<u8>>,
    /// The key that seals webhook secrets at rest (shared through the
    /// database like the cursor key).
    pub webhook_key: std::sync::OnceLock<Vec<u8>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(store: Store, settings: Settings, limiter: Arc<dyn RateLimiter>) -> Self {
        Self::with_events(
            store,
            settings,
            limiter,
            crate::events::EventsConfig::default(),
        )
    }

    /// Builds the state with event dispatch configured.
    pub fn with_events(
        store: Store,
        settings: Settings,
        limiter: Arc<dyn RateLimiter>,
        events: crate::events::EventsConfig,
    ) -> Self {
        let auth_failures_max = settings.auth_failures_max;
        AppState(Arc::new(Inner {
            store,
            clock: Clock::default(),
            settings,
            faults: Faults::default(),
            tokens: TokenCache::default(),
            limiter,
            in_flight: Mutex::new(HashSet::new()),
            events: Arc::new(crate::events::EventHub::new(events)),
            auth_throttle: crate::auth::AuthThrottle::new(auth_failures_max),
            streams: crate::auth::StreamSlots::default(),
            cursor_key: std::sync::OnceLock::new(),
            webhook_key: std::sync::OnceLock::new(),
            shutdown: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// The context for an operation of `caller` in the current request.
    pub fn op_ctx(&self, caller: Option<&Caller>, idempotency_key: Option<String>) -> OpCtx {
        OpCtx {
            now: self.clock.now(),
            correlation_id: crate::correlation::current(),
            idempotency_key,
            staff_id: caller.and_then(Caller::staff_id),
            tiers: self.settings.tiers.clone(),
            fail_accrual: self.settings.test_mode
                && self.faults.loyalty_accrual_fail.load(Ordering::Relaxed),
        }
    }

    /// The gaming day `at` belongs to, e.g. `2026-11-22`.
    pub fn gaming_day(&self, at: jiff::Timestamp) -> jiff::civil::Date {
        let local = at.to_zoned(self.settings.gaming_day_tz.clone()).datetime();
        let shifted = local
            .checked_sub(jiff::SignedDuration::from_mins(
                i64::from(self.settings.gaming_day_start_hour) * 60
                    + i64::from(self.settings.gaming_day_start_minute),
            ))
            .unwrap_or(local);
        shifted.date()
    }
}
