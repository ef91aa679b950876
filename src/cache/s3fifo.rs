//! One shard of the response store: its entries, their S3-FIFO queues weighted by bytes, the
//! ghost of keys evicted unused, and the purge and vary indexes. Single-threaded: the store
//! keeps each shard behind its own lock, so an eviction, a purge and an insert each see and
//! leave all of it consistent.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::entry::Entry;
use super::indexes::Indexes;
use crate::sharded::{Hasher, Members, Sharded};

/// A slot's place in its queue, or `NIL`.
const NIL: u32 = u32::MAX;

/// One stored key: its entry and its place in the S3-FIFO queues (a doubly linked list through
/// `S3Fifo::nodes`, so a purge unlinks in O(1) and the queues never hold dead keys).
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
#[derive(Debug)]
struct Ghost {
    /// Keys carry client input, so the hash is seeded (see [`Hasher`]).
    hasher: Hasher,
    order: VecDeque<u64>,
    count: Sharded<u64, u32>,
}

impl Ghost {
    fn new(tables: usize) -> Self {
        Self {
            hasher: Hasher::default(),
            order: VecDeque::new(),
            count: Sharded::with_tables(tables),
        }
    }

    fn push(&mut self, key: &str, bound: usize) {
        let hash = self.hasher.hash_one(key);
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

    fn contains(&self, key: &str) -> bool {
        self.count.contains_key(&self.hasher.hash_one(key))
    }
}

/// What [`S3Fifo::get`] found.
pub(super) enum Found {
    Entry(Arc<Entry>),
    /// There, but past its `stale_until`: it was dropped (an eviction).
    Expired,
    Absent,
}

/// Everything behind one shard's lock: the entries, their queues and the purge indexes.
pub(super) struct S3Fifo {
    /// The shard's byte budget.
    max: u64,
    /// How many tables each of its maps is split in.
    tables: usize,
    map: Sharded<Arc<str>, u32>,
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    small: Queue,
    main: Queue,
    ghost: Ghost,
    indexes: Indexes,
}

impl S3Fifo {
    /// An empty shard holding at most `max` bytes, its maps split in `tables` each (see
    /// [`Sharded::with_tables`]).
    pub(super) fn new(max: u64, tables: usize) -> Self {
        Self {
            max,
            tables,
            map: Sharded::with_tables(tables),
            nodes: Vec::new(),
            free: Vec::new(),
            small: Queue::default(),
            main: Queue::default(),
            ghost: Ghost::new(tables),
            indexes: Indexes::new(tables),
        }
    }

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

    /// The same shard, emptied.
    pub(super) fn emptied(&self) -> Self {
        Self::new(self.max, self.tables)
    }

    pub(super) fn bytes(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }

    /// Entries stored: every slot not on the free list holds one.
    pub(super) fn len(&self) -> usize {
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

    /// The entry under `key`, counted as a hit, unless it is past `stale_until` at `now` (then
    /// it is dropped).
    pub(super) fn get(&mut self, key: &str, now: u64) -> Found {
        let Some(&i) = self.map.get(key) else {
            return Found::Absent;
        };
        let n = self.node_mut(i);
        if now >= n.entry.stale_until {
            self.remove(i);
            return Found::Expired;
        }
        n.freq = (n.freq + 1).min(3);
        Found::Entry(n.entry.clone())
    }

    /// Stores `entry` (weighing `weight`) under `key` (replacing what was there), records its
    /// primary key's vary headers and its indexes, and evicts down to the shard's budget.
    /// Returns how many entries left (evicted or expired). An entry larger than the whole shard
    /// is not kept, but still replaces the old value.
    pub(super) fn insert(
        &mut self,
        primary: &str,
        vary: Vec<String>,
        key: String,
        entry: &Arc<Entry>,
        weight: u32,
        now: u64,
    ) -> u64 {
        if u64::from(weight) > self.max {
            self.purge(&key);
            return 0;
        }
        // A replaced value keeps its queue and its hits, and moves to the queue's tail.
        let old = self.map.get(key.as_str()).copied();
        let stored = match old {
            Some(i) => {
                let node = self.node(i);
                let (k, e) = (node.key.clone(), node.entry.clone());
                self.indexes.remove(&k, &e);
                self.unlink(i);
                let n = self.node_mut(i);
                n.entry = entry.clone();
                n.weight = weight;
                let main = n.main;
                self.push_back(i, main);
                i
            }
            None => {
                let main = self.ghost.contains(&key);
                let key: Arc<str> = Arc::from(key.as_str());
                let i = self.place(Node {
                    key: key.clone(),
                    entry: entry.clone(),
                    weight,
                    freq: 0,
                    main,
                    prev: NIL,
                    next: NIL,
                });
                self.map.insert(key, i);
                self.push_back(i, main);
                i
            }
        };
        self.indexes.add(primary, vary, key, entry);
        self.evict(now, stored) + self.expire_heads(now)
    }

    /// Evicts (S3-FIFO) until the shard holds at most its budget; returns how many left.
    ///
    /// New keys enter the small queue, a tenth of the shard. Leaving it, a key that was hit moves
    /// to the main queue; one that was not is evicted and remembered in the ghost. The main queue
    /// gives a key with hits another round (one hit fewer) and evicts the rest. A scan of
    /// one-off URLs therefore passes through the small queue without evicting the main queue's
    /// popular entries, which is what `TinyLFU` admission buys moka, for a few queue links.
    ///
    /// `keep`, the entry being stored, is not its own victim while anything else can go: with
    /// entries over a tenth of the shard, the small queue may hold only it, and evicting it there
    /// would freeze the shard on whatever the main queue holds.
    fn evict(&mut self, now: u64, keep: u32) -> u64 {
        let max = self.max;
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
                self.ghost.push(&key, bound);
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
    pub(super) fn purge(&mut self, key: &str) -> bool {
        let Some(&i) = self.map.get(key) else {
            return false;
        };
        self.remove(i);
        true
    }

    fn purge_all(&mut self, keys: &[String]) -> usize {
        keys.iter().filter(|k| self.purge(k)).count()
    }

    /// The request headers responses under `primary` vary on, if any stored response varied.
    pub(super) fn vary_of(&self, primary: &str) -> Option<Vec<String>> {
        self.indexes.vary.get(primary).map(|(v, _)| v.clone())
    }

    /// Primary keys with a vary record.
    pub(super) fn primaries(&self) -> usize {
        self.indexes.vary.len()
    }

    pub(super) fn has_path(&self, path: &str) -> bool {
        self.indexes.by_path.contains_key(path)
    }

    /// Removes every entry stored for `path`.
    pub(super) fn purge_path(&mut self, path: &str) -> usize {
        let keys: Vec<String> = self
            .indexes
            .by_path
            .get(path)
            .map(Members::keys)
            .unwrap_or_default();
        self.purge_all(&keys)
    }

    /// Removes every entry whose path `matches`.
    pub(super) fn purge_paths_where(&mut self, matches: impl Fn(&str) -> bool) -> usize {
        let keys: Vec<String> = self
            .indexes
            .by_path
            .iter()
            .filter(|(p, _)| matches(p))
            .flat_map(|(_, s)| s.keys())
            .collect();
        self.purge_all(&keys)
    }

    /// Removes every entry stored with `tag`.
    pub(super) fn purge_tag(&mut self, tag: &str) -> usize {
        let keys: Vec<String> = self
            .indexes
            .by_tag
            .get(tag)
            .map(Members::keys)
            .unwrap_or_default();
        self.purge_all(&keys)
    }
}

#[cfg(test)]
impl S3Fifo {
    pub(super) fn budget(&self) -> u64 {
        self.max
    }

    pub(super) fn tables(&self) -> usize {
        self.tables
    }

    /// Whether `key` is stored in the main queue (None: not stored).
    pub(super) fn in_main(&self, key: &str) -> Option<bool> {
        self.map.get(key).map(|&i| self.node(i).main)
    }

    /// Every stored key with its primary key (itself when it has no vary record).
    pub(super) fn keys(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .map(|(k, _)| {
                let primary = self
                    .indexes
                    .primary_of
                    .get(&**k)
                    .map_or(&**k, String::as_str);
                (k.to_string(), primary.to_owned())
            })
            .collect()
    }

    /// Walks both queues: links agree both ways, every node is in the map and in exactly one
    /// queue, and the byte counts add up to no more than the budget. The indexes hold exactly
    /// the stored keys, and each vary record counts the variants that name it.
    pub(super) fn check(&self) {
        let mut seen = 0;
        for (main, q) in [(false, self.small), (true, self.main)] {
            let (mut i, mut prev, mut bytes) = (q.head, NIL, 0);
            while i != NIL {
                let n = self.node(i);
                assert_eq!(n.prev, prev);
                assert_eq!(n.main, main);
                assert_eq!(self.map.get(&n.key), Some(&i));
                bytes += u64::from(n.weight);
                seen += 1;
                (prev, i) = (i, n.next);
            }
            assert_eq!(q.tail, prev);
            assert_eq!(q.bytes, bytes);
        }
        assert_eq!(seen, self.map.len());
        assert_eq!(seen + self.free.len(), self.nodes.len());
        assert!(self.bytes() <= self.max);
        let by_path: usize = self.indexes.by_path.values().map(Members::len).sum();
        assert_eq!(by_path, self.map.len(), "every key under exactly one path");
        for (key, primary) in self.indexes.primary_of.iter() {
            assert!(
                self.map.contains_key(key.as_str()),
                "{key} indexed, not stored"
            );
            assert!(self.indexes.vary.contains_key(primary), "{key}: no record");
        }
        let mut variants = std::collections::HashMap::<&str, usize>::new();
        for primary in self.indexes.primary_of.values() {
            *variants.entry(primary).or_default() += 1;
        }
        assert_eq!(
            variants.len(),
            self.indexes.vary.len(),
            "no record without variants"
        );
        for (primary, (_, n)) in self.indexes.vary.iter() {
            assert_eq!(
                Some(n),
                variants.get(primary.as_str()),
                "{primary}: variants counted"
            );
        }
    }
}
