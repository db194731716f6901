//! Capped exponential backoff: how long to wait before the next attempt.
//!
//! Every retry loop in the system (event delivery, the NATS relay, pending
//! accruals) waits the same way: the base delay after the first failure,
//! doubling with each further one, never more than a cap. Writing that
//! formula once keeps the loops from drifting apart and keeps its edge cases
//! (attempt 0, overflow, a cap below the base) decided in one place.
//!
//! Pure arithmetic: no clock and no randomness. A caller that wants jitter
//! adds it to [`Backoff::delay_ms`] itself, with randomness of its own.

use std::time::Duration;

/// Capped exponential backoff in milliseconds.
///
/// Attempt `n` (counted from 1) waits `base_ms · 2^(n−1)`, at most `max_ms`.
/// Attempt 0 waits as attempt 1 does. The arithmetic saturates instead of
/// overflowing, so any attempt number is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base_ms: u64,
    /// Longest delay; holds even when it is below `base_ms`.
    pub max_ms: u64,
}

impl Backoff {
    /// A backoff starting at `base_ms`, doubling up to `max_ms`.
    pub const fn new(base_ms: u64, max_ms: u64) -> Self {
        Backoff { base_ms, max_ms }
    }

    /// Milliseconds to wait after failed attempt number `attempt` (from 1).
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// [`Backoff::delay_ms`] as a [`Duration`].
    pub fn delay(&self, attempt: u32) -> Duration {
        Duration::from_millis(self.delay_ms(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let b = Backoff::new(100, 5_000);
        let table: &[(u32, u64)] = &[
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_600),
            (6, 3_200),
            (7, 5_000),
            (8, 5_000),
            (64, 5_000),
            (65, 5_000),
            (1_000, 5_000),
            (u32::MAX, 5_000),
        ];
        for &(attempt, want) in table {
            assert_eq!(b.delay_ms(attempt), want, "attempt {attempt}");
            assert_eq!(b.delay(attempt), Duration::from_millis(want));
        }
    }

    #[test]
    fn never_overflows() {
        let b = Backoff::new(u64::MAX / 2 + 1, u64::MAX);
        let table: &[(u32, u64)] = &[
            (1, u64::MAX / 2 + 1),
            (2, u64::MAX),
            (63, u64::MAX),
            (64, u64::MAX),
            (u32::MAX, u64::MAX),
        ];
        for &(attempt, want) in table {
            assert_eq!(b.delay_ms(attempt), want, "attempt {attempt}");
        }
        // The largest shift that fits, and the first that does not.
        let one = Backoff::new(1, u64::MAX);
        assert_eq!(one.delay_ms(64), 1 << 63);
        assert_eq!(one.delay_ms(65), u64::MAX);
    }

    #[test]
    fn the_cap_holds_for_every_attempt() {
        for b in [
            Backoff::new(1_000, 300_000),
            Backoff::new(200, 10_000),
            Backoff::new(7, 7),
            // A cap below the base wins.
            Backoff::new(500, 100),
            Backoff::new(0, 100),
        ] {
            let mut previous = 0;
            for attempt in (0..200).chain([u32::MAX - 1, u32::MAX]) {
                let d = b.delay_ms(attempt);
                assert!(d <= b.max_ms, "{b:?} attempt {attempt}: {d}");
                assert!(d >= previous, "{b:?} attempt {attempt}: not monotonic");
                previous = d;
            }
        }
        assert_eq!(Backoff::new(500, 100).delay_ms(1), 100);
        assert_eq!(Backoff::new(0, 100).delay_ms(u32::MAX), 0);
    }

    #[test]
    fn the_accrual_retry_numbers() {
        // 1 s doubling to 5 min: 1, 2, 4, … 256 s, then 300 s.
        let b = Backoff::new(1_000, 300_000);
        let got: Vec<u64> = (1..=10).map(|a| b.delay_ms(a)).collect();
        assert_eq!(
            got,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
    }
}
