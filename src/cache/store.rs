//! The response store: `moka`, weighted by stored bytes (`TinyLFU` admission, per-entry expiry),
//! with indexes for purging by path, prefix and tag, and single-flight for concurrent misses.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::clock::SharedClock;

/// The hasher for the store and its indexes. Keys carry client input (paths, queries), so it is
/// seeded per process; foldhash is several times cheaper than std's `SipHash` on these keys,
/// and a miss hashes its key into four maps.
type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
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
    by_path: Map<String, Set<String>>,
    by_tag: Map<String, Set<String>>,
    /// primary key -> the request headers its responses vary on, and how many stored variants
    /// use it (the record goes when the last one does, so the index stays bounded by the store).
    vary: Map<String, (Vec<String>, usize)>,
    /// variant key -> its primary key.
    primary_of: Map<String, String>,
}

impl Indexes {
    /// Forgets `key` (its entry `e` left the store).
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

/// The store.
pub struct Store {
    cache: moka::sync::Cache<String, Arc<Entry>, Hasher>,
    indexes: Arc<Mutex<Indexes>>,
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

struct ExpireAt;

impl moka::Expiry<String, Arc<Entry>> for ExpireAt {
    fn expire_after_create(
        &self,
        _: &String,
        e: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        // moka's own clock only bounds memory; freshness is judged on our clock at lookup.
        Some(
            Duration::from_nanos(e.stale_until.saturating_sub(e.stored_at))
                .max(Duration::from_secs(1)),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    #[must_use]
    pub fn new(max_bytes: u64, default_ttl: Duration, clock: SharedClock) -> Self {
        let indexes = Arc::new(Mutex::new(Indexes::default()));
        let stats = Arc::new(Stats::default());
        let (idx, st) = (indexes.clone(), stats.clone());
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &String, e: &Arc<Entry>| e.weight())
            .expire_after(ExpireAt)
            .eviction_listener(move |key: Arc<String>, e: Arc<Entry>, cause| {
                if cause.was_evicted() {
                    st.evictions.fetch_add(1, Ordering::Relaxed);
                }
                // Also called, synchronously inside `insert`, for a value that a new one replaces
                // (`RemovalCause::Replaced`): `Store::insert` indexes the new value afterwards.
                lock(&idx).remove(key.as_str(), &e);
            })
            .build_with_hasher(Hasher::default());
        Self {
            cache,
            indexes,
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
        lock(&self.indexes)
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
        let Some(e) = self.cache.get(key) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        if now < e.fresh_until {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(e);
        }
        if now < e.stale_until && lock(&self.flights.keys).contains(flight) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Stale(e);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
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
        let deadline = std::time::Instant::now() + timeout;
        let mut keys = lock(&self.flights.keys);
        while keys.contains(key) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
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

    /// Stores an entry under `key`, recording its primary key's vary headers and its indexes.
    pub fn insert(
        &self,
        primary: &str,
        vary: Vec<String>,
        key: String,
        entry: Entry,
    ) -> Arc<Entry> {
        let entry = Arc::new(entry);
        // Into the store first: a value this one replaces is un-indexed by the eviction listener
        // inside this call, and only then is the new one indexed (the other order would drop the
        // new value from the path and tag indexes, and a later unsafe request or purge would miss it).
        self.cache.insert(key.clone(), entry.clone());
        {
            let mut ix = lock(&self.indexes);
            // A response that varies on nothing, for a resource with no vary record, is stored
            // under its primary key and needs none: lookups fall back to the primary key (most
            // resources never vary, and the record costs a miss two map entries).
            if !(vary.is_empty() && key == primary && !ix.vary.contains_key(primary)) {
                let new_variant = ix
                    .primary_of
                    .insert(key.clone(), primary.to_owned())
                    .is_none();
                match ix.vary.get_mut(primary) {
                    Some((names, n)) => {
                        if *names != vary {
                            *names = vary;
                        }
                        if new_variant {
                            *n = n.saturating_add(1);
                        }
                    }
                    None => {
                        ix.vary.insert(primary.to_owned(), (vary, 1));
                    }
                }
            }
            for tag in &entry.tags {
                match ix.by_tag.get_mut(tag) {
                    Some(set) => {
                        set.insert(key.clone());
                    }
                    None => {
                        ix.by_tag
                            .insert(tag.clone(), std::iter::once(key.clone()).collect());
                    }
                }
            }
            match ix.by_path.get_mut(&entry.path) {
                Some(set) => {
                    set.insert(key);
                }
                None => {
                    ix.by_path
                        .insert(entry.path.clone(), std::iter::once(key).collect());
                }
            }
        }
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        entry
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key)
    }

    /// Whether anything is stored for `path`.
    #[must_use]
    pub fn has_path(&self, path: &str) -> bool {
        lock(&self.indexes).by_path.contains_key(path)
    }

    /// Removes one key. Returns whether it was there.
    pub fn purge_key(&self, key: &str) -> bool {
        self.cache.remove(key).is_some()
    }

    /// Removes every entry stored for `path` (all queries, principals and variants).
    pub fn purge_path(&self, path: &str) -> usize {
        let keys: Vec<String> = lock(&self.indexes)
            .by_path
            .get(path)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some())
            .count()
    }

    /// Removes every entry whose path starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let keys: Vec<String> = lock(&self.indexes)
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        keys.iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some())
            .count()
    }

    /// Removes every entry stored with `tag`.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let keys: Vec<String> = lock(&self.indexes)
            .by_tag
            .get(tag)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter()
            .filter(|k| self.cache.remove(k.as_str()).is_some())
            .count()
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        let mut ix = lock(&self.indexes);
        ix.by_path.clear();
        ix.by_tag.clear();
        ix.vary.clear();
        ix.primary_of.clear();
    }

    /// Primary keys with a vary record (bounded by the entries stored).
    #[must_use]
    pub fn primaries(&self) -> usize {
        self.cache.run_pending_tasks();
        lock(&self.indexes).vary.len()
    }

    /// Bytes held (weighted size) and entries, after pending maintenance.
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.weighted_size(), self.cache.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn entry(clock: &ManualClock, path: &str, tags: &[&str], ttl_s: u64) -> Entry {
        let now = crate::clock::Clock::now_nanos(clock);
        Entry {
            status: 200,
            headers: vec![],
            body: Arc::from(&b"body"[..]),
            etag: "\"x\"".into(),
            path: path.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            stored_at: now,
            fresh_until: now + ttl_s * 1_000_000_000,
            stale_until: now + ttl_s * 1_000_000_000,
            ext: OnceLock::new(),
        }
    }

    #[test]
    fn freshness_on_our_clock_and_purges() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        store.insert("p", vec![], "k1".into(), entry(&clock, "/a", &["t1"], 10));
        store.insert(
            "p2",
            vec![],
            "k2".into(),
            entry(&clock, "/a/b", &["t1", "t2"], 10),
        );
        store.insert("p3", vec![], "k3".into(), entry(&clock, "/c", &[], 10));
        assert!(matches!(store.lookup("k1"), Lookup::Fresh(_)));
        clock.advance_nanos(10_000_000_000);
        assert!(
            matches!(store.lookup("k1"), Lookup::Miss),
            "expired exactly at ttl"
        );
        assert_eq!(store.purge_tag("t2"), 1);
        assert_eq!(store.purge_prefix("/a"), 1);
        assert_eq!(store.purge_path("/c"), 1);
        assert_eq!(store.purge_path("/c"), 0);
    }

    #[test]
    fn a_replaced_entry_stays_indexed() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        store.insert("p", vec![], "k".into(), entry(&clock, "/a", &["old"], 10));
        store.insert("p", vec![], "k".into(), entry(&clock, "/a", &["new"], 10));
        assert!(store.has_path("/a"));
        assert_eq!(
            store.purge_tag("old"),
            0,
            "the old value's tags went with it"
        );
        assert_eq!(store.purge_tag("new"), 1);
        store.insert("p", vec![], "k".into(), entry(&clock, "/a", &[], 10));
        store.insert("p", vec![], "k".into(), entry(&clock, "/a", &[], 10));
        assert_eq!(store.purge_path("/a"), 1);
        assert!(!store.has_path("/a"));
    }

    #[test]
    fn vary_records_leave_with_their_last_variant() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        let vary = vec!["accept-language".to_owned()];
        store.insert(
            "p",
            vary.clone(),
            "p en".into(),
            entry(&clock, "/a", &[], 10),
        );
        store.insert(
            "p",
            vary.clone(),
            "p fr".into(),
            entry(&clock, "/a", &[], 10),
        );
        store.insert(
            "p",
            vary.clone(),
            "p fr".into(),
            entry(&clock, "/a", &[], 10),
        );
        // A resource that varies on nothing needs no record: it is under its primary key.
        store.insert("q", vec![], "q".into(), entry(&clock, "/b", &[], 10));
        assert_eq!(store.primaries(), 1);
        assert_eq!(store.vary_of("q"), None);
        assert!(matches!(store.lookup("q"), Lookup::Fresh(_)));
        assert!(store.purge_key("p en"));
        assert_eq!(store.vary_of("p"), Some(vary));
        assert!(store.purge_key("p fr"));
        assert_eq!(store.vary_of("p"), None);
        assert_eq!(store.primaries(), 0);
    }

    #[test]
    fn a_resource_that_starts_to_vary_keeps_its_record_until_its_last_variant_goes() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        store.insert("p", vec![], "p".into(), entry(&clock, "/a", &[], 10));
        let vary = vec!["accept".to_owned()];
        store.insert(
            "p",
            vary.clone(),
            "p accept=1:x".into(),
            entry(&clock, "/a", &[], 10),
        );
        assert_eq!(store.vary_of("p"), Some(vary));
        // Back to varying on nothing: the record now says so, and counts that variant too.
        store.insert("p", vec![], "p".into(), entry(&clock, "/a", &[], 10));
        assert_eq!(store.vary_of("p"), Some(vec![]));
        assert!(store.purge_key("p accept=1:x"));
        assert_eq!(store.vary_of("p"), Some(vec![]));
        assert!(store.purge_key("p"));
        assert_eq!(store.vary_of("p"), None);
        assert_eq!(store.purge_path("/a"), 0);
    }

    #[test]
    fn vary_records_are_bounded_by_the_store() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        // Room for a few entries only: every insert beyond that evicts one.
        let store = Store::new(2_000, Duration::from_secs(60), clock.clone());
        for i in 0..5_000 {
            let p = format!("p{i}");
            let key = format!("{p} accept-");
            store.insert(&p, vec!["accept".into()], key, entry(&clock, "/a", &[], 10));
        }
        let (_, entries) = store.usage();
        assert!(
            store.primaries() as u64 <= entries,
            "{} vary records for {entries} entries",
            store.primaries()
        );
    }

    #[test]
    fn a_purge_racing_an_insert_of_the_same_key_keeps_the_new_value_indexed() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Arc::new(Store::new(1 << 24, Duration::from_secs(60), clock.clone()));
        let writer = {
            let (store, clock) = (store.clone(), clock.clone());
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    store.insert("k", vec![], "k".into(), entry(&clock, "/a", &["t"], 10));
                }
            })
        };
        for _ in 0..2_000 {
            store.purge_path("/a");
        }
        writer.join().unwrap();
        // Whatever the interleaving, a stored value is findable by its path and tag.
        if store.get("k").is_some() {
            assert!(store.has_path("/a"));
            assert_eq!(store.purge_tag("t"), 1);
        }
        assert!(store.get("k").is_none());
    }

    #[test]
    fn stale_is_served_while_the_resource_revalidates() {
        let clock = Arc::new(ManualClock::from_secs(1000));
        let store = Store::new(1 << 20, Duration::from_secs(60), clock.clone());
        let mut e = entry(&clock, "/a", &[], 10);
        e.stale_until = e.fresh_until + 30_000_000_000;
        store.insert("p", vec!["accept".into()], "p accept=fr".into(), e);
        clock.advance_nanos(15_000_000_000);
        assert!(matches!(
            store.lookup_variant("p accept=fr", "p"),
            Lookup::Miss
        ));
        assert!(store.begin_flight("p"));
        assert!(matches!(
            store.lookup_variant("p accept=fr", "p"),
            Lookup::Stale(_)
        ));
    }

    #[test]
    fn flights() {
        let clock = Arc::new(ManualClock::from_secs(1));
        let store = Arc::new(Store::new(1 << 20, Duration::from_secs(60), clock));
        assert!(store.begin_flight("k"));
        assert!(!store.begin_flight("k"));
        let s2 = store.clone();
        let waiter = std::thread::spawn(move || s2.wait_flight("k", Duration::from_secs(5)));
        store.end_flight("k");
        waiter.join().unwrap();
        assert!(store.begin_flight("k"));
        store.wait_flight("k", Duration::from_millis(1)); // times out, returns
    }
}
