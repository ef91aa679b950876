//! GCRA (the generic cell rate algorithm) arithmetic: one theoretical arrival time (TAT) per key
//! and quota, emission interval `T = period / count`, tolerance `burst * T`. Every store decides
//! with `evaluate` on the TATs it keeps: the in-memory [`super::limiter::Limiter`], the
//! host-shared file ([`super::host_store`]) and Redis ([`super::redis_store`], whose script does
//! the same arithmetic atomically in the server and whose verdict `evaluate` then reports).

use super::error::RateLimitError;
use super::quota::Quota;

/// Most quotas one limiter combines (`"1/second; 10/minute; ..."`).
pub const MAX_QUOTAS: usize = 8;
/// One quota's precomputed GCRA constants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    quota: Quota,
    emission: u64,
    tolerance: u64,
}

/// What one quota says about one hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaState {
    /// Requests of cost 1 still allowed right now (after this hit, when it was allowed).
    pub remaining: u64,
    /// Nanoseconds until the key has its whole burst back.
    pub reset_nanos: u64,
    /// Nanoseconds until this hit would be allowed; 0 when it is; `u64::MAX` when never (cost
    /// above the burst).
    pub retry_nanos: u64,
}

/// The result of a hit or a peek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// The quota that decides what a client should be told: the refusing one with the longest
    /// wait, or (when allowed) the one with the fewest requests left.
    pub binding: usize,
    per: [QuotaState; MAX_QUOTAS],
    len: usize,
}

impl Outcome {
    /// One state per quota, in quota order.
    #[must_use]
    pub fn quotas(&self) -> &[QuotaState] {
        self.per.get(..self.len).unwrap_or(&[])
    }

    /// The binding quota's state.
    #[must_use]
    pub fn state(&self) -> QuotaState {
        self.per.get(self.binding).copied().unwrap_or_default()
    }
}

impl Outcome {
    pub(super) fn empty(len: usize) -> Self {
        Self {
            allowed: true,
            binding: 0,
            per: [QuotaState::default(); MAX_QUOTAS],
            len,
        }
    }

    /// An allowed outcome that says nothing about the quotas (a store that failed open).
    #[must_use]
    pub fn unknown() -> Self {
        Self::empty(0)
    }
}

/// One quota's GCRA constants, for stores that keep TATs elsewhere (Redis).
pub(crate) fn rate_of(q: &Quota) -> Result<Rate, RateLimitError> {
    let tolerance = q
        .tolerance_nanos()
        .ok_or_else(|| RateLimitError::InvalidQuota {
            quota: q.to_string(),
            reason: "the burst is too large for the period".into(),
        })?;
    Ok(Rate {
        quota: *q,
        emission: q.emission_nanos(),
        tolerance,
    })
}

impl Rate {
    pub(crate) fn quota(&self) -> Quota {
        self.quota
    }
    pub(crate) fn emission(&self) -> u64 {
        self.emission
    }
    pub(crate) fn tolerance(&self) -> u64 {
        self.tolerance
    }
}

/// The GCRA decision for one key over every quota, from the stored TATs (`stored(i)`, 0 when
/// absent): the outcome and the TATs to store when allowed. A refused hit reports the state
/// before it; an allowed one (with `commit`) the state after. `forced` overrides the decision
/// with one a store already made atomically (Redis), so reporting never contradicts it.
pub(crate) fn evaluate(
    rates: &[Rate],
    stored: impl Fn(usize) -> u64,
    cost: u64,
    now: u64,
    commit: bool,
    forced: Option<bool>,
) -> (Outcome, [u64; MAX_QUOTAS]) {
    let mut out = Outcome::empty(rates.len());
    let mut new_tats = [0u64; MAX_QUOTAS];
    for (i, rate) in rates.iter().enumerate().take(MAX_QUOTAS) {
        let tat = stored(i).max(now);
        let state = &mut out.per[i];
        state.remaining = now.saturating_add(rate.tolerance).saturating_sub(tat) / rate.emission;
        state.reset_nanos = tat - now;
        let inc = rate.emission.checked_mul(cost);
        match inc.and_then(|inc| tat.checked_add(inc)) {
            Some(new_tat) if new_tat.saturating_sub(rate.tolerance) <= now => {
                new_tats[i] = new_tat;
            }
            Some(new_tat) if inc.is_some_and(|inc| inc <= rate.tolerance) => {
                out.allowed = false;
                state.retry_nanos = new_tat - rate.tolerance - now;
            }
            _ => {
                // More than the burst at once: no wait makes it fit.
                out.allowed = false;
                state.retry_nanos = u64::MAX;
            }
        }
    }
    match forced {
        Some(false) if out.allowed => {
            // The store refused where our arithmetic (in finer units) allowed: the store's
            // rounding is at most a microsecond per quota.
            out.allowed = false;
            for s in out.quotas_mut() {
                s.retry_nanos = s.retry_nanos.max(1_000);
            }
        }
        Some(true) => out.allowed = true,
        _ => {}
    }
    if out.allowed && commit {
        // Report the state after the hit; a refused hit changed nothing.
        for (i, rate) in rates.iter().enumerate().take(MAX_QUOTAS) {
            if new_tats[i] == 0 {
                new_tats[i] = stored(i)
                    .max(now)
                    .saturating_add(rate.emission.saturating_mul(cost));
            }
            let state = &mut out.per[i];
            state.remaining = now
                .saturating_add(rate.tolerance)
                .saturating_sub(new_tats[i])
                / rate.emission;
            state.reset_nanos = new_tats[i] - now;
            state.retry_nanos = 0;
        }
    }
    out.binding = binding(&out);
    (out, new_tats)
}

impl Outcome {
    fn quotas_mut(&mut self) -> &mut [QuotaState] {
        let len = self.len;
        self.per.get_mut(..len).unwrap_or(&mut [])
    }
}

fn binding(out: &Outcome) -> usize {
    let qs = out.quotas();
    let mut best = 0;
    for (i, q) in qs.iter().enumerate() {
        let Some(b) = qs.get(best) else { break };
        let better = if out.allowed {
            q.remaining < b.remaining
        } else {
            q.retry_nanos > b.retry_nanos
        };
        if better {
            best = i;
        }
    }
    best
}
