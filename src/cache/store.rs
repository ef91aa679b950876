//! The response store: S3-FIFO eviction weighted by stored bytes, per-entry expiry on our clock,
//! indexes for purging by path, prefix and tag, and single-flight for concurrent misses.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::sharded::{Hasher, Members, Sharded};

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
    by_path: Sharded<String, Members>,
    by_tag: Sharded<String, Members>,
    /// primary key -> the request headers its responses vary on, and how many stored variants
    /// use it (the record goes when the last one does, so the index stays bounded by the store).
    vary: Sharded<String, (Vec<String>, usize)>,
    /// variant key -> its primary key.
    primary_of: Sharded<String, String>,
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

    /// Records `key` (its entry `e` was just stored under `primary`, varying on `vary`).
    fn add(&mut self, primary: &str, vary: Vec<String>, key: String, e: &Entry) {
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

/// A slot's place in its queue, or `NIL`.
const NIL: u32 = u32::MAX;

/// One stored key: its entry and its place in the S3-FIFO queues (a doubly linked list through
/// `Inner::nodes`, so a purge unlinks in O(1) and the queues never hold dead keys).
struct Node {
    key: Arc<str>,
    entry: Arc<Entry>,
    weight: u32,
    /// Hits since it was queued or last passed over, saturating at 3.
    freq: u8,
    main: bool,
    prev: u32,
    next: u32,
}

/// A FIFO queue of nodes: `head` is the oldest (evicted first), `tail` the newest.
#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    bytes: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }
}

/// Hashes of keys recently evicted from the small queue without a hit: such a key, stored again,
/// has proved it comes back and goes straight to the main queue. Bounded by the entries stored.
#[derive(Debug, Default)]
struct Ghost {
    order: VecDeque<u64>,
    count: Sharded<u64, u32>,
}

impl Ghost {
    fn push(&mut self, hash: u64, bound: usize) {
        self.order.push_back(hash);
        match self.count.get_mut(&hash) {
            Some(n) => *n += 1,
            None => {
                self.count.insert(hash, 1);
            }
        }
        while self.order.len() > bound {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.forget(old);
        }
    }

    fn forget(&mut self, hash: u64) {
        if let Some(n) = self.count.get_mut(&hash) {
            *n -= 1;
            if *n == 0 {
                self.count.remove(&hash);
            }
        }
    }

    fn contains(&self, hash: u64) -> bool {
        self.count.contains_key(&hash)
    }
}

/// Everything behind the store's one lock: the entries, their queues and the purge indexes, so
/// an eviction, a purge and an insert each see and leave them consistent.
#[derive(Default)]
struct Inner {
    map: Sharded<Arc<str>, u32>,
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    small: Queue,
    main: Queue,
    ghost: Ghost,
    indexes: Indexes,
}

impl Inner {
    fn node(&self, i: u32) -> &Node {
        self.nodes[i as usize]
            .as_ref()
            .expect("queued slots hold a node")
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        self.nodes[i as usize]
            .as_mut()
            .expect("queued slots hold a node")
    }

    fn queue(&self, main: bool) -> &Queue {
        if main { &self.main } else { &self.small }
    }

    fn queue_mut(&mut self, main: bool) -> &mut Queue {
        if main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    fn push_back(&mut self, i: u32, main: bool) {
        let weight = u64::from(self.node(i).weight);
        let q = *self.queue_mut(main);
        {
            let n = self.node_mut(i);
            n.main = main;
            n.prev = q.tail;
            n.next = NIL;
        }
        if q.tail == NIL {
            self.queue_mut(main).head = i;
        } else {
            self.node_mut(q.tail).next = i;
        }
        let q = self.queue_mut(main);
        q.tail = i;
        q.bytes += weight;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, main, weight) = {
            let n = self.node(i);
            (n.prev, n.next, n.main, u64::from(n.weight))
        };
        if prev == NIL {
            self.queue_mut(main).head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.queue_mut(main).tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
        self.queue_mut(main).bytes -= weight;
    }

    fn bytes(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }

    /// Entries stored: every slot not on the free list holds one.
    fn len(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Takes node `i` out of the store: queue, map, indexes. Returns its key.
    fn remove(&mut self, i: u32) -> Arc<str> {
        self.unlink(i);
        let n = self.nodes[i as usize]
            .take()
            .expect("queued slots hold a node");
        self.free.push(i);
        self.map.remove(&n.key);
        self.indexes.remove(&n.key, &n.entry);
        n.key
    }

    fn place(&mut self, node: Node) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = Some(node);
            i
        } else {
            let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 entries");
            self.nodes.push(Some(node));
            i
        }
    }

    /// Evicts (S3-FIFO) until the store holds at most `max` bytes; returns how many left.
    ///
    /// New keys enter the small queue, a tenth of the store. Leaving it, a key that was hit moves
    /// to the main queue; one that was not is evicted and remembered in the ghost. The main queue
    /// gives a key with hits another round (one hit fewer) and evicts the rest. A scan of
    /// one-off URLs therefore passes through the small queue without evicting the main queue's
    /// popular entries, which is what `TinyLFU` admission buys moka, for a few queue links.
    ///
    /// `keep`, the entry being stored, is not its own victim while anything else can go: with
    /// entries over a tenth of the store, the small queue may hold only it, and evicting it there
    /// would freeze the store on whatever the main queue holds.
    fn evict(&mut self, max: u64, now: u64, hasher: &Hasher, keep: u32) -> u64 {
        let mut evicted = 0;
        while self.bytes() > max {
            let mut from_small = self.small.bytes > max / 10 || self.main.bytes == 0;
            let mut i = self.queue(!from_small).head;
            if i == keep {
                from_small = !from_small;
                i = self.queue(!from_small).head;
                if i == NIL {
                    break; // only `keep` is left, and it fits (larger entries are not stored)
                }
            }
            let (freq, expired) = {
                let n = self.node(i);
                (n.freq, now >= n.entry.stale_until)
            };
            if freq > 0 && !expired {
                self.unlink(i);
                let n = self.node_mut(i);
                n.freq = if from_small { 0 } else { freq - 1 };
                self.push_back(i, true);
                continue;
            }
            let key = self.remove(i);
            evicted += 1;
            if from_small && !expired {
                let bound = self.len().max(64);
                self.ghost.push(hasher.hash_one(&*key), bound);
            }
        }
        evicted
    }

    /// Drops up to two expired entries from the queues' heads: expired entries go without
    /// waiting for space to be needed, at a bounded cost per insert. The small queue is looked
    /// at again last, since most entries enter there and its next head may be expired too.
    fn expire_heads(&mut self, now: u64) -> u64 {
        let mut n = 0;
        for main in [false, true, false] {
            let i = self.queue(main).head;
            if i != NIL && now >= self.node(i).entry.stale_until {
                self.remove(i);
                n += 1;
                if n == 2 {
                    break;
                }
            }
        }
        n
    }

    /// Purges `key` (not an eviction). Returns whether it was there.
    fn purge(&mut self, key: &str) -> bool {
        let Some(&i) = self.map.get(key) else {
            return false;
        };
        self.remove(i);
        true
    }

    fn purge_all(&mut self, keys: &[String]) -> usize {
        keys.iter().filter(|k| self.purge(k)).count()
    }
}

/// The store: a byte-bounded S3-FIFO cache with per-entry expiry on our clock.
///
/// Not moka, by measurement (docs/dependencies.md): on moka (weigher, `Expiry`, and the eviction
/// listener the purge indexes need) a `put` took 4.5 µs against 2.0 µs here, 3.6 µs even without
/// the listener, and a Flask request through the whole stack went from 1.38 to 1.45-1.50x bare in
/// alternating blocks. Behind one lock, the queues and the indexes stay exact with none of that.
pub struct Store {
    inner: Mutex<Inner>,
    hasher: Hasher,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    #[must_use]
    pub fn new(max_bytes: u64, default_ttl: Duration, clock: SharedClock) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            hasher: Hasher::default(),
            flights: Flights::default(),
            stats: Arc::new(Stats::default()),
            clock,
            max_bytes,
            default_ttl,
        }
    }

    /// The request headers that responses under `primary` vary on. None: no response stored for
    /// it varied, so its entry, if any, is under `primary` itself.
    #[must_use]
    pub fn vary_of(&self, primary: &str) -> Option<Vec<String>> {
        lock(&self.inner)
            .indexes
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
        let mut inner = lock(&self.inner);
        let i = *inner.map.get(key)?;
        let n = inner.node_mut(i);
        if now >= n.entry.stale_until {
            inner.remove(i);
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        n.freq = (n.freq + 1).min(3);
        Some(n.entry.clone())
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

    /// Stores an entry under `key` (replacing what was there), records its primary key's vary
    /// headers and its indexes, and evicts down to `max_bytes`. An entry larger than the whole
    /// store is not kept, but still replaces the old value.
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
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if u64::from(weight) > self.max_bytes {
            inner.purge(&key);
            self.stats.stores.fetch_add(1, Ordering::Relaxed);
            return entry;
        }
        // A replaced value keeps its queue and its hits, and moves to the queue's tail.
        let old = inner.map.get(key.as_str()).copied();
        let stored = match old {
            Some(i) => {
                let node = inner.node(i);
                let (k, e) = (node.key.clone(), node.entry.clone());
                inner.indexes.remove(&k, &e);
                inner.unlink(i);
                let n = inner.node_mut(i);
                n.entry = entry.clone();
                n.weight = weight;
                let main = n.main;
                inner.push_back(i, main);
                i
            }
            None => {
                let hash = self.hasher.hash_one(key.as_str());
                let main = inner.ghost.contains(hash);
                let key: Arc<str> = Arc::from(key.as_str());
                let i = inner.place(Node {
                    key: key.clone(),
                    entry: entry.clone(),
                    weight,
                    freq: 0,
                    main,
                    prev: NIL,
                    next: NIL,
                });
                inner.map.insert(key, i);
                inner.push_back(i, main);
                i
            }
        };
        inner.indexes.add(primary, vary, key, &entry);
        let gone = inner.evict(self.max_bytes, now, &self.hasher, stored) + inner.expire_heads(now);
        drop(guard);
        self.stats.evictions.fetch_add(gone, Ordering::Relaxed);
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        entry
    }

    /// The entry under `key`, fresh or stale, unless it has expired.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.get_at(key, self.clock.now_nanos())
    }

    /// Whether anything is stored for `path`.
    #[must_use]
    pub fn has_path(&self, path: &str) -> bool {
        lock(&self.inner).indexes.by_path.contains_key(path)
    }

    /// Removes one key. Returns whether it was there.
    pub fn purge_key(&self, key: &str) -> bool {
        lock(&self.inner).purge(key)
    }

    /// Removes every entry stored for `path` (all queries, principals and variants).
    pub fn purge_path(&self, path: &str) -> usize {
        let mut inner = lock(&self.inner);
        let keys: Vec<String> = inner
            .indexes
            .by_path
            .get(path)
            .map(Members::keys)
            .unwrap_or_default();
        inner.purge_all(&keys)
    }

    /// Removes every entry whose path `matches` (a path purge received as a digest).
    pub fn purge_paths_where(&self, matches: impl Fn(&str) -> bool) -> usize {
        let mut inner = lock(&self.inner);
        let keys: Vec<String> = inner
            .indexes
            .by_path
            .iter()
            .filter(|(p, _)| matches(p))
            .flat_map(|(_, s)| s.keys())
            .collect();
        inner.purge_all(&keys)
    }

    /// Removes every entry whose path starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let mut inner = lock(&self.inner);
        let keys: Vec<String> = inner
            .indexes
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .flat_map(|(_, s)| s.keys())
            .collect();
        inner.purge_all(&keys)
    }

    /// Removes every entry stored with `tag`.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let mut inner = lock(&self.inner);
        let keys: Vec<String> = inner
            .indexes
            .by_tag
            .get(tag)
            .map(Members::keys)
            .unwrap_or_default();
        inner.purge_all(&keys)
    }

    pub fn clear(&self) {
        *lock(&self.inner) = Inner::default();
    }

    /// Primary keys with a vary record (bounded by the entries stored).
    #[must_use]
    pub fn primaries(&self) -> usize {
        lock(&self.inner).indexes.vary.len()
    }

    /// Bytes held (weighted size) and entries.
    pub fn usage(&self) -> (u64, u64) {
        let inner = lock(&self.inner);
        (inner.bytes(), inner.len() as u64)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
