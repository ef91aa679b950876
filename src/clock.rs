//! Time, injectable: production code reads [`SystemClock`], tests drive a [`ManualClock`]
//! so that every time-dependent rule (token expiry, rate-limit refills, cache TTLs) is tested at
//! exact instants without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_nanos(&self) -> u64;

    /// Whole and fractional seconds since the epoch, as JWT `exp`/`nbf` claims count them.
    fn now_secs_f64(&self) -> f64 {
        self.now_nanos() as f64 / 1e9
    }
}

/// A shared handle to a clock; cheap to clone.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        // A clock before 1970 is a broken host; treat it as the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to. Thread-safe, so concurrency tests can share one.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    #[must_use]
    pub fn new(nanos: u64) -> Self {
        Self {
            nanos: AtomicU64::new(nanos),
        }
    }

    #[must_use]
    pub fn from_secs(secs: u64) -> Self {
        Self::new(secs.saturating_mul(1_000_000_000))
    }

    pub fn set_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::SeqCst);
    }

    pub fn advance_nanos(&self, by: u64) {
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// The default clock as a shared handle.
#[must_use]
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::from_secs(10);
        assert_eq!(c.now_nanos(), 10_000_000_000);
        c.advance_nanos(500_000_000);
        assert!((c.now_secs_f64() - 10.5).abs() < 1e-9);
        c.set_nanos(1);
        assert_eq!(c.now_nanos(), 1);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_nanos() > 1_577_836_800 * 1_000_000_000);
    }
}
