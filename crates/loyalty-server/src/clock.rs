//! The server's clock. In production it is the system clock; in test mode
//! `PUT /v1/test/clock` sets it to an instant from which it keeps running.
//! Every time-based rule reads this clock, never `Timestamp::now()` directly.

use std::sync::RwLock;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// The clock every time rule reads.
#[derive(Debug, Default)]
pub struct Clock {
    set: RwLock<Option<(Timestamp, Instant)>>,
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
            None => Timestamp::now(),
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
}
