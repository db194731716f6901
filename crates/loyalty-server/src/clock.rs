//! The server's clock. Every time-based rule reads this clock, never
//! `Timestamp::now()` directly.
//!
//! With a shared database (PostgreSQL), the clock follows the database's:
//! [`sync`] measures the offset between this node and the database and every
//! reading is corrected by it, so nodes with skewed clocks agree on gaming
//! days, rate-limit windows and alert windows. In test mode
//! `PUT /v1/test/clock` sets the clock to an instant from which it keeps
//! running; the setting is stored in the database and picked up by every node.

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use loyalty_store::{DbClock, Store, StoreError};

/// The clock every time rule reads.
#[derive(Debug, Default)]
pub struct Clock {
    set: RwLock<Option<(Timestamp, Instant)>>,
    offset_us: AtomicI64,
}

impl Clock {
    /// Now, per this clock, to the microsecond (the precision stored).
    pub fn now(&self) -> Timestamp {
        let t = self.raw_now();
        Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
    }

    fn raw_now(&self) -> Timestamp {
        let set = self.set.read().map(|g| *g).unwrap_or(None);
        match set {
            None => {
                let offset = SignedDuration::from_micros(self.offset_us.load(Ordering::Relaxed));
                let local = Timestamp::now();
                local.checked_add(offset).unwrap_or(local)
            }
            Some((at, since)) => {
                let elapsed =
                    SignedDuration::try_from(since.elapsed()).unwrap_or(SignedDuration::ZERO);
                at.checked_add(elapsed).unwrap_or(at)
            }
        }
    }

    /// Sets the clock to `at`; it keeps running from there.
    pub fn set(&self, at: Timestamp) {
        if let Ok(mut g) = self.set.write() {
            *g = Some((at, Instant::now()));
        }
    }

    /// The current correction applied to the local clock, microseconds.
    pub fn offset_us(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed)
    }

    /// Applies one reading of the database clock taken between the local
    /// instants `before` and `after`.
    pub fn apply(&self, reading: DbClock, before: Timestamp, after: Timestamp) {
        self.apply_since(reading, before, after, None);
    }

    /// Like [`Clock::apply`]; a reading taken before `read_started` is older
    /// than a local `set` made after that instant and does not undo it.
    fn apply_since(
        &self,
        reading: DbClock,
        before: Timestamp,
        after: Timestamp,
        read_started: Option<Instant>,
    ) {
        let mid_us = (before.as_microsecond() + after.as_microsecond()) / 2;
        let offset = reading.now.as_microsecond() - mid_us;
        self.offset_us.store(offset, Ordering::Relaxed);
        let set_since_read = match (read_started, self.set.read().map(|g| *g).unwrap_or(None)) {
            (Some(started), Some((_, set_locally))) => set_locally > started,
            _ => false,
        };
        if set_since_read {
            return;
        }
        if let Some((set_to, set_at)) = reading.test_clock {
            let ran = reading.now.duration_since(set_at);
            self.set(set_to.checked_add(ran).unwrap_or(set_to));
        }
    }
}

/// Reads the database clock once and applies it. Returns false for a
/// backend without a shared clock.
pub async fn sync_once(clock: &Clock, store: &Store) -> Result<bool, StoreError> {
    let started = Instant::now();
    let before = Timestamp::now();
    let reading = store.read(|tx| tx.db_clock()).await?;
    let after = Timestamp::now();
    match reading {
        Some(r) => {
            clock.apply_since(r, before, after, Some(started));
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Keeps the clock following the database, every `interval`.
pub async fn sync(state: crate::app::AppState, interval: Duration) {
    loop {
        match sync_once(&state.clock, &state.store).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "database clock sync failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
