//! The response store: S3-FIFO eviction weighted by stored bytes, per-entry expiry on our clock,
//! indexes for purging by path, prefix and tag, and single-flight for concurrent misses.
//!
//! The store is split into shards, each with its own lock, byte budget, queues, indexes and
//! flights (`S3Fifo`, `Flights`), so that concurrent requests (free-threaded Python, or
//! requests that release the GIL) do not queue on one lock. A key's shard is picked by a seeded
//! hash of its PRIMARY key: all variants of a resource, its vary record and its flight live in
//! one shard, and every keyed operation takes that one shard's lock. Purges by path, prefix or
//! tag, `clear` and the totals visit the shards one after the other, never holding two locks.
//!
//! The shard count ([`shard_count`]) is the largest power of two up to 16 that leaves every shard
//! at least 8 MiB and at least eight of the largest entries the cache stores. Below 16 MiB (or
//! with entries too large for that) the store is one shard and evicts exactly as one S3-FIFO
//! over the whole budget; the default 64 MiB with 1 MiB entries is 8 shards of 8 MiB. Each
//! shard holds `max_bytes / shards`: at these sizes a shard holds thousands of typical
//! responses, so hashing spreads them evenly and eviction is close to the whole store's. An
//! entry larger than one shard's budget is not kept.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub use super::entry::Entry;
use super::s3fifo::{Found, S3Fifo};
use crate::clock::SharedClock;
use crate::sharded::Hasher;

/// Tables per map in the whole store (`crate::sharded`'s split), shared out among the shards.
const TABLES: usize = 32;
/// At most this many shards: a purge by path, prefix or tag, and the `has_path` check of every
/// unsafe request, visit each shard, and with sixteen, two requests already rarely meet on one
/// lock.
const MAX_SHARDS: usize = 16;
/// A shard gets at least this budget, so that one never holds too few entries for S3-FIFO's
/// small queue (a tenth of it) to tell one-off keys from popular ones.
const MIN_SHARD_BYTES: u64 = 8 << 20;
/// A shard holds at least this many of the largest entries: a few large responses then cannot
/// flush a shard as they could not flush the whole store.
const LARGEST_PER_SHARD: u64 = 8;

/// How many shards a store of `max_bytes`, storing entries of up to `max_entry_bytes`, is split
/// into (see the module docs): a power of two, 1 for small stores.
#[must_use]
pub fn shard_count(max_bytes: u64, max_entry_bytes: u64) -> usize {
    let floor = MIN_SHARD_BYTES.max(max_entry_bytes.saturating_mul(LARGEST_PER_SHARD));
    let mut n = 1;
    while n < MAX_SHARDS && max_bytes / (2 * n as u64) >= floor {
        n *= 2;
    }
    n
}

/// Counters, as `ResponseCache.stats()` reports them: one set for the whole store.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub evictions: AtomicU64,
}

/// The primary keys whose response one request is fetching from the app.
#[derive(Debug, Default)]
struct Flights {
    keys: Mutex<std::collections::HashSet<String, Hasher>>,
    /// Requests inside `wait_flight`, counted under `keys`' lock: ending a flight nobody waits
    /// for skips the wake-up, a system call on every miss otherwise.
    waiters: AtomicUsize,
    done: Condvar,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Fresh(Arc<Entry>),
    /// Stale but within stale-while-revalidate, and another request is already revalidating.
    Stale(Arc<Entry>),
    Miss,
}

/// One shard: its entries and its flights, under two locks (a flight is checked while no entry
/// is being touched, and waiting on one holds only the flights' lock). Aligned to two cache
/// lines, so that threads busy with neighbouring shards do not share a line.
#[repr(align(128))]
struct Shard {
    entries: Mutex<S3Fifo>,
    flights: Flights,
}

/// The store: a byte-bounded S3-FIFO cache with per-entry expiry on our clock, in shards.
///
/// Not moka, by measurement (docs/dependencies.md): on moka (weigher, `Expiry`, and the eviction
/// listener the purge indexes need) a `put` took 4.5 µs against 2.0 µs here, 3.6 µs even without
/// the listener, and a Flask request through the whole stack went from 1.38 to 1.45-1.50x bare in
/// alternating blocks. Behind each shard's lock, the queues and the indexes stay exact with none
/// of that.
pub struct Store {
    shards: Box<[Shard]>,
    /// Picks a primary key's shard. Its own seed: the shard's maps hash with theirs, so the keys
    /// of one shard still spread over its tables.
    pick: Hasher,
    pub stats: Arc<Stats>,
    pub clock: SharedClock,
    /// The whole store's budget; each shard has `max_bytes / shards`.
    pub max_bytes: u64,
    pub default_ttl: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("max_bytes", &self.max_bytes)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// The shards' locks are behind a pointer, where clippy does not look for interior mutability:
// these methods change the store (a lookup counts a hit and may drop an expired entry).
#[allow(clippy::must_use_candidate)]
impl Store {
    /// A store of `max_bytes` for entries of up to `max_entry_bytes` (which sets how many shards
    /// it has: [`shard_count`]).
    #[must_use]
    pub fn new(
        max_bytes: u64,
        max_entry_bytes: u64,
        default_ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        let n = shard_count(max_bytes, max_entry_bytes);
        Self::with_shards(n, max_bytes, default_ttl, clock)
    }

    fn with_shards(n: usize, max_bytes: u64, default_ttl: Duration, clock: SharedClock) -> Self {
        debug_assert!(n.is_power_of_two());
        let per = max_bytes / n as u64;
        // The store's maps keep 32 tables in all (see `crate::sharded`): a shard's maps hold a
        // shard's part of the keys, and more, emptier tables would only spread the lines a
        // request touches.
        let tables = (TABLES / n).max(1);
        Self {
            shards: (0..n)
                .map(|_| Shard {
                    entries: Mutex::new(S3Fifo::new(per, tables)),
                    flights: Flights::default(),
                })
                .collect(),
            pick: Hasher::default(),
            stats: Arc::new(Stats::default()),
            clock,
            max_bytes,
            default_ttl,
        }
    }

    /// The shard of the resource whose primary key is `primary`.
    fn shard(&self, primary: &str) -> &Shard {
        if self.shards.len() == 1 {
            // A small store skips the hash.
            return &self.shards[0];
        }
        &self.shards[self.shard_index(primary)]
    }

    /// Out of line: a request picks its shard several times (vary record, lookup, flight,
    /// insert), and one copy of the hash takes fewer of the instruction cache's lines than one
    /// inlined at each of those.
    #[inline(never)]
    fn shard_index(&self, primary: &str) -> usize {
        // `len` is a power of two: the hash's top bits pick uniformly.
        crate::sharded::slot(
            self.pick.hash_one(primary),
            64 - self.shards.len().trailing_zeros(),
        )
    }

    /// Runs `f` on each shard in turn, holding one shard's lock at a time, and sums.
    fn each_shard(&self, mut f: impl FnMut(&mut S3Fifo) -> usize) -> usize {
        self.shards.iter().map(|s| f(&mut lock(&s.entries))).sum()
    }

    /// The request headers that responses under `primary` vary on. None: no response stored for
    /// it varied, so its entry, if any, is under `primary` itself.
    #[must_use]
    pub fn vary_of(&self, primary: &str) -> Option<Vec<String>> {
        lock(&self.shard(primary).entries).vary_of(primary)
    }

    /// Looks a key up (a standalone cache's: its own primary and flight key). See
    /// [`Store::lookup_variant`].
    pub fn lookup(&self, key: &str) -> Lookup {
        self.lookup_variant(key, key)
    }

    /// Looks the variant `key` of the resource `primary` up. A stale entry within
    /// stale-while-revalidate is served if a revalidation of its resource (the flight on
    /// `primary`) is already under way; otherwise the caller revalidates (a miss).
    pub fn lookup_variant(&self, key: &str, primary: &str) -> Lookup {
        let now = self.clock.now_nanos();
        let shard = self.shard(primary);
        let Some(e) = self.get_in(shard, key, now) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        if now < e.fresh_until {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(e);
        }
        if lock(&shard.flights.keys).contains(primary) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Stale(e);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// The entry under `key` in `shard` unless it is past `stale_until` at `now` (then it is
    /// dropped).
    fn get_in(&self, shard: &Shard, key: &str, now: u64) -> Option<Arc<Entry>> {
        let found = lock(&shard.entries).get(key, now);
        match found {
            Found::Entry(e) => Some(e),
            Found::Expired => {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                None
            }
            Found::Absent => None,
        }
    }

    /// The entry under `key` (a standalone cache's key: its own primary), fresh or stale,
    /// unless it has expired.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.get_in(self.shard(key), key, self.clock.now_nanos())
    }

    /// Claims the right to fetch the resource `primary` from the app. `false`: another request
    /// holds it.
    pub fn begin_flight(&self, primary: &str) -> bool {
        lock(&self.shard(primary).flights.keys).insert(primary.to_owned())
    }

    /// Releases a flight (stored or not) and wakes its waiters.
    pub fn end_flight(&self, primary: &str) {
        let flights = &self.shard(primary).flights;
        let waiting = {
            let mut keys = lock(&flights.keys);
            keys.remove(primary);
            flights.waiters.load(Ordering::Relaxed) > 0
        };
        if waiting {
            flights.done.notify_all();
        }
    }

    /// Waits (at most `timeout`) for the flight on `primary` to end.
    pub fn wait_flight(&self, primary: &str, timeout: Duration) {
        let flights = &self.shard(primary).flights;
        let deadline = std::time::Instant::now() + timeout;
        let mut keys = lock(&flights.keys);
        while keys.contains(primary) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            // Both changes happen under the lock, so `end_flight` (which reads the count under
            // it) cannot miss a waiter that saw the flight still on.
            flights.waiters.fetch_add(1, Ordering::Relaxed);
            keys = flights
                .done
                .wait_timeout(keys, left)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            flights.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stores an entry under `key`, a variant of the resource `primary` (replacing what was
    /// there), records the primary's vary headers and the entry's indexes, and evicts down to its
    /// shard's budget. An entry larger than one shard's budget (`max_bytes / shards`) is not
    /// kept, but still replaces the old value.
    pub fn insert(
        &self,
        primary: &str,
        vary: Vec<String>,
        key: String,
        entry: Entry,
    ) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let weight = entry.weight();
        let now = self.clock.now_nanos();
        let shard = self.shard(primary);
        let gone = lock(&shard.entries).insert(primary, vary, key, &entry, weight, now);
        self.stats.evictions.fetch_add(gone, Ordering::Relaxed);
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        entry
    }

    /// Whether anything is stored for `path`.
    #[must_use]
    pub fn has_path(&self, path: &str) -> bool {
        // A path's entries may be in any shard (one per primary key: query, principal...).
        self.shards.iter().any(|s| lock(&s.entries).has_path(path))
    }

    /// Removes the variant `key` of the resource `primary`. Returns whether it was there.
    pub fn purge_key(&self, primary: &str, key: &str) -> bool {
        lock(&self.shard(primary).entries).purge(key)
    }

    /// Removes every entry stored for `path` (all queries, principals and variants).
    pub fn purge_path(&self, path: &str) -> usize {
        self.each_shard(|s| s.purge_path(path))
    }

    /// Removes every entry whose path `matches` (a path purge received as a digest).
    pub fn purge_paths_where(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.each_shard(|s| s.purge_paths_where(&matches))
    }

    /// Removes every entry whose path starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.each_shard(|s| s.purge_paths_where(|p| p.starts_with(prefix)))
    }

    /// Removes every entry stored with `tag`.
    pub fn purge_tag(&self, tag: &str) -> usize {
        self.each_shard(|s| s.purge_tag(tag))
    }

    pub fn clear(&self) {
        for s in &self.shards {
            let mut entries = lock(&s.entries);
            let empty = entries.emptied();
            let old = std::mem::replace(&mut *entries, empty);
            // The old entries are freed after the lock is released: requests for this shard
            // need not wait for that.
            drop(entries);
            drop(old);
        }
    }

    /// Primary keys with a vary record (bounded by the entries stored).
    #[must_use]
    pub fn primaries(&self) -> usize {
        self.each_shard(|s| s.primaries())
    }

    /// Bytes held (weighted size) and entries.
    pub fn usage(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(bytes, len), s| {
            let s = lock(&s.entries);
            (bytes + s.bytes(), len + s.len() as u64)
        })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
