//! The response store, on moka: capacity weighted by stored bytes (moka's weigher), per-entry
//! expiry (moka's `Expiry`, and our clock on every read), indexes for purging by path, prefix and
//! tag kept consistent through moka's eviction listener, and single-flight for concurrent misses.
//!
//! moka decides what stays (`TinyLFU`: a scan of one-off URLs does not push out what is hit) and
//! evicts concurrently, without a lock of ours around the entries. The indexes have their own
//! lock. moka may run its eviction listener inside any of its calls, so the listener only tries
//! that lock: when it is busy (an insert holds it across moka's insert, so a purge sees a value
//! and its index entries together) the removal waits in a queue that the next holder applies.
//! An index member is removed only when the entry that left is the one it was recorded for, so a
//! key stored again while its old value was being evicted stays findable.

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::sharded::{Hasher, Members, Sharded};
use crate::clock::SharedClock;

type Set<K> = HashSet<K, Hasher>;

/// One stored response.
pub struct Entry {
    pub status: u16,
    /// Response headers as stored (hop-by-hop, `Set-Cookie` and tag headers removed).
    pub headers: Vec<(String, String)>,
    pub body: Arc<[u8]>,
    pub etag: String,
    pub path: String,
    pub tags: Vec<String>,
    /// Clock nanoseconds.
    pub stored_at: u64,
    pub fresh_until: u64,
    /// Until when a stale entry may be served while one request revalidates.
    pub stale_until: u64,
    /// For the binding layer (the body as a Python bytes object, made once).
    pub ext: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("status", &self.status)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Entry {
    fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum();
        u32::try_from(self.body.len() + headers + self.path.len() + 128).unwrap_or(u32::MAX)
    }

    /// Whole seconds since stored (the `Age` header).
    #[must_use]
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1_000_000_000
    }
}

/// Counters, as `ResponseCache.stats()` reports them.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct Indexes {
    /// key -> the entry the other indexes list it for.
    current: Sharded<String, Arc<Entry>>,
    by_path: Sharded<String, Members>,
    by_tag: Sharded<String, Members>,
    /// primary key -> the request headers its responses vary on, and how many stored variants
    /// use it (the record goes when the last one does, so the index stays bounded by the store).
    vary: Sharded<String, (Vec<String>, usize)>,
    /// variant key -> its primary key.
    primary_of: Sharded<String, String>,
}

impl Indexes {
    /// Forgets `key` if `e` is the entry recorded for it (`e` left the store).
    fn forget(&mut self, key: &str, e: &Arc<Entry>) {
        if self.current.get(key).is_some_and(|c| Arc::ptr_eq(c, e)) {
            self.current.remove(key);
            self.remove(key, e);
        }
    }

    /// Removes `key`'s memberships for its entry `e`.
    fn remove(&mut self, key: &str, e: &Entry) {
        if let Some(set) = self.by_path.get_mut(&e.path) {
            set.remove(key);
            if set.is_empty() {
                self.by_path.remove(&e.path);
            }
        }
        for tag in &e.tags {
            if let Some(set) = self.by_tag.get_mut(tag) {
                set.remove(key);
                if set.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
        if let Some(primary) = self.primary_of.remove(key) {
            if let Some((_, n)) = self.vary.get_mut(&primary) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.vary.remove(&primary);
                }
            }
        }
    }

    /// Records `key` (its entry `e` is being stored under `primary`, varying on `vary`),
    /// replacing what was recorded for an older value of the key.
    fn add(&mut self, primary: &str, vary: Vec<String>, key: String, e: &Arc<Entry>) {
        if let Some(old) = self.current.insert(key.clone(), e.clone()) {
            self.remove(&key, &old);
        }
        // A response that varies on nothing, for a resource with no vary record, is stored
        // under its primary key and needs none: lookups fall back to the primary key (most
        // resources never vary, and the record costs a miss two map entries).
        if !(vary.is_empty() && key == primary && !self.vary.contains_key(primary)) {
            let new_variant = self
                .primary_of
                .insert(key.clone(), primary.to_owned())
                .is_none();
            match self.vary.get_mut(primary) {
                Some((names, n)) => {
                    if *names != vary {
                        *names = vary;
                    }
                    if new_variant {
                        *n = n.saturating_add(1);
                    }
                }
                None => {
                    self.vary.insert(primary.to_owned(), (vary, 1));
                }
            }
        }
        for tag in &e.tags {
            match self.by_tag.get_mut(tag) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_tag.insert(tag.clone(), Members::one(key.clone()));
                }
            }
        }
        match self.by_path.get_mut(&e.path) {
            Some(set) => {
                set.insert(key);
            }
            None => {
                self.by_path.insert(e.path.clone(), Members::one(key));
            }
        }
    }
}

#[derive(Debug, Default)]
struct Flights {
    keys: Mutex<Set<String>>,
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

/// moka's expiry for an entry: when it stops being servable even stale, counted from now in real
/// time. Reads also check `stale_until` on the store's clock, which tests move by hand.
struct UntilStale(SharedClock);

impl UntilStale {
    fn left(&self, e: &Entry) -> Duration {
        Duration::from_nanos(e.stale_until.saturating_sub(self.0.now_nanos()))
    }
}

impl Expiry<String, Arc<Entry>> for UntilStale {
    fn expire_after_create(&self, _: &String, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(self.left(e))
    }

    fn expire_after_update(
        &self,
        _: &String,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.left(e))
    }
}

/// The indexes, and the removals the eviction listener could not apply because they were busy.
#[derive(Debug, Default)]
struct Tracked {
    indexes: Mutex<Indexes>,
    pending: Mutex<Vec<(Arc<String>, Arc<Entry>)>>,
}

impl Tracked {
    /// The indexes, with every pending removal applied.
    fn lock(&self) -> MutexGuard<'_, Indexes> {
        let mut ix = lock(&self.indexes);
        let pending = std::mem::take(&mut *lock(&self.pending));
        for (key, e) in &pending {
            ix.forget(key, e);
        }
        ix
    }

    /// From the eviction listener: `e` left the store under `key`.
    fn left(&self, key: Arc<String>, e: Arc<Entry>) {
        match self.indexes.try_lock() {
            Ok(mut ix) => ix.forget(&key, &e),
            Err(_) => lock(&self.pending).push((key, e)),
        }
    }
}

/// The store: a byte-bounded moka cache with per-entry expiry on our clock.
pub struct Store {
    cache: Cache<String, Arc<Entry>, Hasher>,
    tracked: Arc<Tracked>,
    flights: Flights,
    pub stats: Arc<Stats>,
    pub clock: SharedClock,
    pub max_bytes: u64,
    pub default_ttl: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    #[must_use]
    pub fn new(max_bytes: u64, default_ttl: Duration, clock: SharedClock) -> Self {
        let tracked = Arc::new(Tracked::default());
        let stats = Arc::new(Stats::default());
        let listener = {
            let (tracked, stats) = (tracked.clone(), stats.clone());
            move |key: Arc<String>, e: Arc<Entry>, cause: RemovalCause| {
                if cause.was_evicted() {
                    stats.evictions.fetch_add(1, Ordering::Relaxed);
                }
                // A replaced value's memberships were moved to the new one by `insert`.
                if cause != RemovalCause::Replaced {
                    tracked.left(key, e);
                }
            }
        };
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &String, e: &Arc<Entry>| e.weight())
            .expire_after(UntilStale(clock.clone()))
            .eviction_listener(listener)
            .build_with_hasher(Hasher::default());
        Self {
            cache,
            tracked,
            flights: Flights::default(),
            stats,
            clock,
            max_bytes,
            default_ttl,
        }
    }

    /// The request headers that responses under `primary` vary on. None: no response stored for
    /// it varied, so its entry, if any, is under `primary` itself.
    #[must_use]
    pub fn vary_of(&self, primary: &str) -> Option<Vec<String>> {
        self.tracked
            .lock()
            .vary
            .get(primary)
            .map(|(v, _)| v.clone())
    }

    /// Looks a key up (a standalone cache's: its own flight key). See [`Store::lookup_variant`].
    pub fn lookup(&self, key: &str) -> Lookup {
        self.lookup_variant(key, key)
    }

    /// Looks the variant `key` up. A stale entry within stale-while-revalidate is served if a
    /// revalidation of its resource (the flight on `flight`, its primary key) is already under
    /// way; otherwise the caller revalidates (a miss).
    pub fn lookup_variant(&self, key: &str, flight: &str) -> Lookup {
        let now = self.clock.now_nanos();
        let Some(e) = self.get_at(key, now) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        if now < e.fresh_until {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(e);
        }
        if lock(&self.flights.keys).contains(flight) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Stale(e);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// The entry under `key` unless it is past `stale_until` at `now` (then it is dropped).
    fn get_at(&self, key: &str, now: u64) -> Option<Arc<Entry>> {
        let e = self.cache.get(key)?;
        if now >= e.stale_until {
            if self.cache.remove(key).is_some() {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        Some(e)
    }

    /// Claims the right to fetch `key` from the app. `false`: another request holds it.
    pub fn begin_flight(&self, key: &str) -> bool {
        lock(&self.flights.keys).insert(key.to_owned())
    }

    /// Releases a flight (stored or not) and wakes its waiters.
    pub fn end_flight(&self, key: &str) {
        let waiting = {
            let mut keys = lock(&self.flights.keys);
            keys.remove(key);
            self.flights.waiters.load(Ordering::Relaxed) > 0
        };
        if waiting {
            self.flights.done.notify_all();
        }
    }

    /// Waits (at most `timeout`) for the flight on `key` to end.
    pub fn wait_flight(&self, key: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut keys = lock(&self.flights.keys);
        while keys.contains(key) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            // Both changes happen under the lock, so `end_flight` (which reads the count under
            // it) cannot miss a waiter that saw the flight still on.
            self.flights.waiters.fetch_add(1, Ordering::Relaxed);
            keys = self
                .flights
                .done
                .wait_timeout(keys, left)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            self.flights.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stores an entry under `key` (replacing what was there) and records its primary key's vary
    /// headers and its indexes; moka evicts down to `max_bytes`. An entry larger than the whole
    /// store, or already past `stale_until`, is not kept, but still replaces the old value.
    pub fn insert(
        &self,
        primary: &str,
        vary: Vec<String>,
        key: String,
        entry: Entry,
    ) -> Arc<Entry> {
        let entry = Arc::new(entry);
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        if u64::from(entry.weight()) > self.max_bytes || self.clock.now_nanos() >= entry.stale_until
        {
            self.cache.invalidate(key.as_str());
            return entry;
        }
        // Indexed and stored under the index lock, so a purge sees both or neither. Safe to hold
        // across moka's insert: the listener only ever tries this lock.
        let mut ix = self.tracked.lock();
        ix.add(primary, vary, key.clone(), &entry);
        self.cache.insert(key, entry.clone());
        drop(ix);
        entry
    }

    /// The entry under `key`, fresh or stale, unless it has expired.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.get_at(key, self.clock.now_nanos())
    }

    /// Whether anything is stored for `path`.
    #[must_use]
    pub fn has_path(&self, path: &str) -> bool {
        self.tracked.lock().by_path.contains_key(path)
    }

    /// Removes one key. Returns whether it was there.
    pub fn purge_key(&self, key: &str) -> bool {
        self.cache.remove(key).is_some()
    }

    fn purge_all(&self, keys: &[String]) -> usize {
        keys.iter().filter(|k| self.purge_key(k)).count()
    }

    /// Removes every entry stored for `path` (all queries, principals and variants).
    pub fn purge_path(&self, path: &str) -> usize {
        let keys = self
            .tracked
            .lock()
            .by_path
            .get(path)
            .map(Members::keys)
            .unwrap_or_default();
        self.purge_all(&keys)
    }

    /// Removes every entry whose path `matches` (a path purge received as a digest).
    pub fn purge_paths_where(&self, matches: impl Fn(&str) -> bool) -> usize {
        let keys: Vec<String> = self
            .tracked
            .lock()
            .by_path
            .iter()
            .filter(|(p, _)| matches(p))
            .flat_map(|(_, s)| s.keys())
            .collect();
        self.purge_all(&keys)
    }

    /// Removes every entry whose path starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.purge_paths_where(|p| p.starts_with(prefix))
    }

    /// Removes every entry stored with `tag`.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let keys = self
            .tracked
            .lock()
            .by_tag
            .get(tag)
            .map(Members::keys)
            .unwrap_or_default();
        self.purge_all(&keys)
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        *self.tracked.lock() = Indexes::default();
    }

    /// Primary keys with a vary record (bounded by the entries stored).
    #[must_use]
    pub fn primaries(&self) -> usize {
        self.cache.run_pending_tasks();
        self.tracked.lock().vary.len()
    }

    /// Bytes held (weighted size) and entries, once moka has applied its pending work.
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.weighted_size(), self.cache.entry_count())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
