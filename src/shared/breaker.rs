//! A circuit breaker in front of the store, so a dead Redis costs an atomic load per request
//! instead of a connect timeout.
//!
//! Closed: calls go through; `threshold` consecutive failures open it. Open: calls fail at once
//! until `cooldown` has passed. Then half-open: exactly one caller (a compare-and-swap decides
//! which) probes the store; its success closes the breaker, its failure re-opens it for another
//! cooldown. Time comes from the injectable clock, so tests step through every state exactly.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::clock::SharedClock;

/// What the breaker lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Call,
    /// Half-open: go ahead; this call decides whether the breaker closes.
    Probe,
    /// Open: do not call.
    Reject,
}

/// A state change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed,
}

/// The breaker's state as seen from outside, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown_nanos: u64,
    clock: SharedClock,
    failures: AtomicU32,
    /// 0 while closed; otherwise the instant (ns) from which one probe is allowed.
    open_until: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    #[must_use]
    pub fn new(threshold: u32, cooldown_nanos: u64, clock: SharedClock) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_nanos,
            clock,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    pub fn admit(&self) -> Admission {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Call;
        }
        if self.clock.now_nanos() < until {
            return Admission::Reject;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Reject
        }
    }

    /// Records a successful call.
    pub fn success(&self) -> Option<Transition> {
        self.failures.store(0, Ordering::Release);
        let was_open = self.open_until.swap(0, Ordering::AcqRel) != 0;
        self.probing.store(false, Ordering::Release);
        was_open.then_some(Transition::Closed)
    }

    /// Records a failed call.
    pub fn failure(&self) -> Option<Transition> {
        let n = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let probing = self.probing.swap(false, Ordering::AcqRel);
        if n < self.threshold && !probing {
            return None;
        }
        let until = self
            .clock
            .now_nanos()
            .saturating_add(self.cooldown_nanos)
            .max(1);
        let was_closed = self.open_until.swap(until, Ordering::AcqRel) == 0;
        was_closed.then_some(Transition::Opened)
    }

    #[must_use]
    pub fn state(&self) -> State {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            State::Closed
        } else if self.clock.now_nanos() < until || self.probing.load(Ordering::Acquire) {
            State::Open
        } else {
            State::HalfOpen
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn opens_after_threshold_probes_once_after_cooldown() {
        let clock = Arc::new(ManualClock::from_secs(100));
        let b = Breaker::new(3, 1_000_000_000, clock.clone());
        assert_eq!(b.admit(), Admission::Call);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), Some(Transition::Opened));
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(), Admission::Reject);
        clock.advance_nanos(999_999_999);
        assert_eq!(b.admit(), Admission::Reject, "one nanosecond early");
        clock.advance_nanos(1);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.admit(), Admission::Reject, "only one probe at a time");
        // The probe fails: open for another cooldown at once, whatever the count.
        assert_eq!(b.failure(), None, "already open: no second transition");
        assert_eq!(b.admit(), Admission::Reject);
        clock.advance_nanos(1_000_000_000);
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.success(), Some(Transition::Closed));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(), Admission::Call);
        // The count starts again after a success.
        assert_eq!(b.failure(), None);
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
    }
}
