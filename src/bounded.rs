//! A bounded map with per-entry deadlines on moka: the verified-token caches.
//!
//! moka does the concurrent part (lock-free reads, `TinyLFU` admission and eviction by weight,
//! expiry). Deadlines are nanoseconds on the caller's clock, which tests move by hand and moka
//! cannot read: each entry carries its deadline and a read past it returns nothing, exactly, on
//! whatever clock the caller uses; moka's own per-entry expiry ([`Expiry`]) is set to the same
//! remaining time, so memory is given back in real time without a sweep of ours.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::sharded::Hasher;

/// A bounded map; see the module docs. `weight` is what an entry counts against `capacity`
/// (1 for the token caches).
pub struct Bounded<K, V> {
    cache: Cache<K, Slot<V>, Hasher>,
    capacity: u64,
}

#[derive(Clone)]
struct Slot<V> {
    value: V,
    /// On the caller's clock.
    deadline: u64,
    /// How long it had to live when stored: moka's expiry, in real time.
    ttl: u64,
    weight: u32,
}

struct UntilDeadline;

impl<K, V> Expiry<K, Slot<V>> for UntilDeadline {
    fn expire_after_create(&self, _: &K, slot: &Slot<V>, _: Instant) -> Option<Duration> {
        Some(Duration::from_nanos(slot.ttl))
    }

    fn expire_after_update(
        &self,
        _: &K,
        slot: &Slot<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_nanos(slot.ttl))
    }
}

impl<K, V> Bounded<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A map holding at most `capacity` weight (at least 1).
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_: &K, s: &Slot<V>| s.weight)
            .expire_after(UntilDeadline)
            .build_with_hasher(Hasher::default());
        Self { cache, capacity }
    }

    /// The value for `key` if it is there and `now` is before its deadline.
    pub fn get<Q>(&self, key: &Q, now: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.cache.get(key)?;
        if slot.deadline <= now {
            self.cache.invalidate(key);
            return None;
        }
        Some(slot.value)
    }

    /// Stores `value` under `key` until `deadline`. An entry heavier than the whole capacity, or
    /// already past its deadline, is not stored (and any older value for the key goes).
    pub fn insert(&self, key: K, value: V, deadline: u64, weight: u64, now: u64) {
        if weight > self.capacity || deadline <= now {
            // Dropped outside any lock of ours: dropping a Python object can run code that uses
            // this same map.
            drop(self.cache.remove(&key));
            return;
        }
        let slot = Slot {
            value,
            deadline,
            ttl: deadline - now,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        };
        self.cache.insert(key, slot);
    }

    /// Removes `key`; whether it was there.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.remove(key).is_some()
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// The total weight held, once moka has applied its pending evictions (introspection).
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// The weight of the entries still before their deadline at `now` (what `cache_info`
    /// reports; it looks at every entry, so it is for introspection, not requests).
    #[must_use]
    pub fn live_weight(&self, now: u64) -> u64 {
        self.cache.run_pending_tasks();
        self.cache
            .iter()
            .filter(|(_, s)| s.deadline > now)
            .map(|(_, s)| u64::from(s.weight))
            .sum()
    }

    /// How many entries are held, once moka has applied its pending evictions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cache.run_pending_tasks();
        usize::try_from(self.cache.entry_count()).unwrap_or(usize::MAX)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    super::super::map_contract::map_contract!(Bounded);

    #[test]
    fn moka_frees_in_real_time_what_the_deadline_says() {
        let c: Bounded<u32, u32> = Bounded::new(10);
        c.insert(1, 1, 50_000_000, 1, 0);
        assert_eq!(c.len(), 1);
        // moka's timer wheel turns about once a second.
        let start = Instant::now();
        while !c.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never freed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    proptest! {
        /// Random inserts, hits, removals and clock moves: no expired value is returned, the
        /// weight stays within capacity once pending work is applied.
        #[test]
        fn no_expired_value_and_bounded_weight(ops in proptest::collection::vec((0u8..4, 0u16..40, 1u64..4), 1..200)) {
            let c: Bounded<u16, u64> = Bounded::new(12);
            let mut now = 0u64;
            for (op, key, w) in ops {
                match op {
                    0 => c.insert(key, now + w * 10 * S, now + w * 10 * S, w, now),
                    1 => {
                        if let Some(v) = c.get(&key, now) {
                            prop_assert!(v > now, "expired value returned");
                        }
                    }
                    2 => { c.remove(&key); }
                    _ => now += 7 * S,
                }
            }
            prop_assert!(c.weight() <= 12);
        }
    }
}
