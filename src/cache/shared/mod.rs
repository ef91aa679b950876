//! The shared tier of the response cache: L2 in Redis behind each process's own store (L1).
//!
//! - **Keys.** An L2 key is `prefix + "c{cache}:e:" + hex(SHA-256(variant key))`: the variant key
//!   is the very string the L1 uses (path, query, principal, `Host` and the forwarding headers,
//!   `Vary` values), hashed so no user material is in key names. A resource whose responses
//!   vary has a small *vary record* under its primary key's hash naming the headers, and one
//!   entry per variant. `{cache}` is a hash tag: on Redis Cluster every cache key is in one
//!   slot, so the scripts below can touch them together.
//! - **Values.** A compact binary encoding (see [`encode`]) bound to its key and checked on
//!   read: a truncated, corrupt or foreign value is a miss, never a crash.
//! - **Paths** are full paths: `SCRIPT_NAME` + `PATH_INFO`, so two apps mounted on one host
//!   (`/tenant-a`, `/tenant-b`) never serve or purge each other's entries.
//! - **Invalidation.** Every stored entry, including those too large for L2, is indexed in
//!   Redis (a sorted set per path and per tag, scored by expiry, plus the paths in lexical order
//!   for prefix purges, `path\n<digest>`, with a second set by expiry that prunes them). A purge
//!   deletes the indexed L2 keys synchronously (a prefix purge in chunks of a bounded size) and
//!   publishes it on the purge channel so every process drops its L1 copies (a path as its
//!   digest: no raw path, which may hold an e-mail address, goes on the channel). L2
//!   therefore never depends on a message being delivered; L1 does, and is guarded: while the
//!   subscriber is not connected and live, no process serves from its L1, and each reconnect
//!   clears it (messages sent meanwhile are lost). Each purge also bumps a generation (its
//!   path's, or a global one for tags, prefixes and everything); a request reads them before its
//!   app runs and the write script refuses its response if they moved, so a response computed
//!   while a purge went by is never stored. A path's generation lives [`GENERATION_TTL_MS`]
//!   (so writes to paths never cached leave nothing for long), and a request that took longer
//!   than that is not stored.
//! - **Memory.** The tier has a budget (`shared_max_bytes`; by default 64 MiB, or a quarter of
//!   the server's `maxmemory` when smaller): the store script evicts the entries that expire
//!   soonest to stay within it, so a flood of distinct cacheable URLs cannot fill the Redis the
//!   limits count in. The tier has a client of its own (pool, breaker): its failures never open
//!   the limits' breaker.
//! - **Failures.** A Redis error on lookup is a miss, on store a skipped store (the L1 copy is
//!   dropped too, so L1 never holds what the Redis index does not know of), on purge a purge
//!   applied locally and queued for Redis; until the queue is flushed, this process reads
//!   nothing from L2. The queue is re-sent on the subscriber's reconnect, or after a back-off
//!   (1 s, doubling to 30 s), never before every later call: a purge that timed out may still
//!   be running, and re-sending it at once is how a slow purge becomes a storm.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use redis::ConnectionLike;

pub mod codec;
pub mod scripts;

pub use codec::{Corrupt, Record, Value, decode, digest_of, encode, encode_vary};
use codec::{hex, unhex};
use scripts::{PREFIX_CHUNK, PURGE_INDEX, PURGE_PREFIX_CHUNK, READ, STORE};

use super::store::Store;
use crate::clock::SharedClock;
use crate::shared::{RedisClient, StoreError};

/// Index scores outlive their entries by this much, so a host whose clock is somewhat behind
/// Redis's still finds its L1 copies indexed.
const INDEX_SLACK_MS: u64 = 60_000;
/// Purges kept for Redis while it is unreachable; beyond this they collapse into one "all".
const MAX_PENDING: usize = 256;

/// How long a path's purge generation lives: longer than a request may take between reading it
/// and storing its response (a slower one is not stored), and short, so that writes to paths
/// never cached leave nothing behind for long.
pub const GENERATION_TTL_MS: u64 = 60_000;
/// The budget when none is configured and the server has no smaller `maxmemory`.
pub const DEFAULT_BUDGET: u64 = 64 << 20;
/// Bytes accounted per stored entry on top of its value: its key (again in the budget's sorted
/// set and hash), its members in the path indexes, and Redis's own per-key overhead. Measured
/// with `INFO memory` on Redis 7 over 2 000 entries: 945 bytes beyond the value; rounded up so the
/// budget errs on the safe side.
pub const ENTRY_OVERHEAD: u64 = 1024;
/// Bytes accounted per tag index member.
pub const TAG_OVERHEAD: u64 = 96;
/// First wait before queued purges are re-sent; doubles up to [`MAX_BACKOFF_NANOS`].
const FIRST_BACKOFF_NANOS: u64 = 1_000_000_000;
const MAX_BACKOFF_NANOS: u64 = 30_000_000_000;

pub const CHANNEL: &str = "cache:purge";

/// Counters for `ResponseCache.stats()`.
#[derive(Debug, Default)]
pub struct L2Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Lookups, stores and purges that failed on Redis (or were refused by its breaker).
    pub errors: AtomicU64,
    pub stores: AtomicU64,
    /// Entries over `shared_max_entry_bytes`: kept in L1 only (and indexed in Redis).
    pub too_large: AtomicU64,
    /// Values that failed validation (corrupt, truncated, foreign): counted as misses too.
    pub corrupt: AtomicU64,
    /// Purge messages from other processes applied to this L1.
    pub purges_received: AtomicU64,
    /// L1 cleared after the subscriber (re)connected.
    pub l1_resets: AtomicU64,
    /// Stores refused because a purge went by while the app computed the response.
    pub purged_meanwhile: AtomicU64,
    /// Values not stored because the tier was at its memory budget (they stay in L1, indexed).
    pub over_budget: AtomicU64,
    /// The budget in force when it comes from the server's `maxmemory` (0: configured, or not
    /// read yet).
    pub budget: AtomicU64,
}

/// A purge, as applied to an L1 and as sent on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    Path(String),
    /// A path known by its digest ([`digest_of`]): how a path purge travels on the channel.
    PathDigest([u8; 32]),
    Prefix(String),
    Tag(String),
    All,
}

impl Purge {
    fn message(&self) -> Vec<u8> {
        let digest;
        let (k, arg) = match self {
            Self::Path(p) => {
                digest = hex(&digest_of(p));
                (b'h', digest.as_str())
            }
            Self::PathDigest(d) => {
                digest = hex(d);
                (b'h', digest.as_str())
            }
            Self::Prefix(p) => (b'x', p.as_str()),
            Self::Tag(t) => (b't', t.as_str()),
            Self::All => (b'a', ""),
        };
        let mut m = Vec::with_capacity(arg.len() + 1);
        m.push(k);
        m.extend_from_slice(arg.as_bytes());
        m
    }

    fn parse(m: &[u8]) -> Option<Self> {
        let (k, rest) = m.split_first()?;
        let arg = std::str::from_utf8(rest).ok()?.to_owned();
        match k {
            b'h' => unhex(&arg).map(Self::PathDigest),
            // From a version that sent paths as they were.
            b'p' => Some(Self::Path(arg)),
            b'x' => Some(Self::Prefix(arg)),
            b't' => Some(Self::Tag(arg)),
            b'a' => Some(Self::All),
            _ => None,
        }
    }

    /// Applies the purge to an L1; returns how many entries it removed.
    // Purging is the point; the count is a by-product (clippy sees no interior mutability
    // through the store's shards).
    #[allow(clippy::must_use_candidate)]
    pub fn apply(&self, store: &Store) -> usize {
        match self {
            Self::Path(p) => store.purge_path(p),
            Self::PathDigest(d) => store.purge_paths_where(|p| digest_of(p) == *d),
            Self::Prefix(p) => store.purge_prefix(p),
            Self::Tag(t) => store.purge_tag(t),
            Self::All => {
                let (_, n) = store.usage();
                store.clear();
                usize::try_from(n).unwrap_or(usize::MAX)
            }
        }
    }
}

/// The purge generations a request saw before the app ran ('' for none yet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Generation {
    global: String,
    path: String,
    /// When it was read (the local clock, ns): a store much later than this is refused.
    read_at: u64,
}

/// Why a response was not put in L2 (nor kept in L1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotShared {
    /// Redis failed, or could not be asked for the generations first.
    Unavailable,
    /// A purge that may cover this response happened while the app computed it.
    PurgedMeanwhile,
    /// The app took longer than a path's generation lives: a purge may have gone unseen.
    Slow,
}

impl NotShared {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "shared-unavailable",
            Self::PurgedMeanwhile => "purged-meanwhile",
            Self::Slow => "slow-response",
        }
    }
}

/// What an L2 lookup found.
#[derive(Debug)]
pub struct Found {
    pub record: Record,
    /// Milliseconds the Redis key has left (bounds the L1 copy whatever the clocks say).
    pub pttl_ms: u64,
    /// The variant key, as the L1 stores it.
    pub variant_key: String,
}

/// The tier's size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger entries stay in L1 only.
    pub max_entry_bytes: usize,
    /// The memory budget (`None`: see [`DEFAULT_BUDGET`]).
    pub max_bytes: Option<u64>,
}

/// The tier: the client, the scripts, the counters.
pub struct Shared {
    client: Arc<RedisClient>,
    pub max_entry_bytes: usize,
    max_bytes: Option<u64>,
    pub stats: L2Stats,
    clock: SharedClock,
    store_script: redis::Script,
    read_script: redis::Script,
    purge_index: redis::Script,
    purge_prefix: redis::Script,
    channel: String,
    /// The paths in lexical order (prefix purges), and by expiry (to prune them).
    lex_key: String,
    lexp_key: String,
    /// The budget's entries by expiry, their sizes, and the total.
    budget_keys: [String; 3],
    /// When queued purges may be re-sent (local clock, ns), and the current back-off.
    retry_at: AtomicU64,
    backoff: AtomicU64,
    /// Bumped on every purge this process applies (its own and received): a response or an L2
    /// value read before a purge is not put into L1 after it.
    seq: AtomicU64,
    pending: Mutex<Vec<Purge>>,
    has_pending: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client", &self.client)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish_non_exhaustive()
    }
}

/// Which key space a name is in.
#[derive(Clone, Copy)]
enum Space {
    Entry,
    Path,
    Tag,
}

impl Shared {
    #[must_use]
    pub fn new(client: Arc<RedisClient>, limits: Limits, clock: SharedClock) -> Self {
        Self {
            channel: client.key(CHANNEL),
            lex_key: client.key("c{cache}:lex"),
            lexp_key: client.key("c{cache}:lexp"),
            budget_keys: [
                client.key("c{cache}:mem"),
                client.key("c{cache}:mem:size"),
                client.key("c{cache}:mem:total"),
            ],
            retry_at: AtomicU64::new(0),
            backoff: AtomicU64::new(FIRST_BACKOFF_NANOS),
            client,
            max_entry_bytes: limits.max_entry_bytes,
            max_bytes: limits.max_bytes,
            stats: L2Stats::default(),
            clock,
            store_script: redis::Script::new(STORE),
            read_script: redis::Script::new(READ),
            purge_index: redis::Script::new(PURGE_INDEX),
            purge_prefix: redis::Script::new(PURGE_PREFIX_CHUNK),
            seq: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
        }
    }

    #[must_use]
    pub fn client(&self) -> &Arc<RedisClient> {
        &self.client
    }

    fn name(&self, space: Space, digest: &[u8; 32]) -> String {
        let s = match space {
            Space::Entry => "e:",
            Space::Path => "p:",
            Space::Tag => "t:",
        };
        self.client.key(&format!("c{{cache}}:{s}{}", hex(digest)))
    }

    /// The Redis key of a variant key (or of a primary key's vary record).
    #[must_use]
    pub fn entry_key(&self, variant_key: &str) -> String {
        self.name(Space::Entry, &digest_of(variant_key))
    }

    /// The path's index key, and its member of the path sets: `path\n<digest>`, so a prefix is
    /// a lexical range and each member names its index.
    fn path_index(&self, path: &str) -> (String, String) {
        let d = digest_of(path);
        let member = format!("{path}\n{}", hex(&d));
        (self.name(Space::Path, &d), member)
    }

    /// The memory budget: configured, or [`DEFAULT_BUDGET`] capped at a quarter of the server's
    /// `maxmemory` (read once, from `INFO memory`; a server that will not say gets the default).
    fn budget(&self) -> u64 {
        if let Some(b) = self.max_bytes {
            return b;
        }
        let known = self.stats.budget.load(Ordering::Relaxed);
        if known > 0 {
            return known;
        }
        let info: Result<String, StoreError> = self
            .client
            .run(|c| redis::cmd("INFO").arg("memory").query(c));
        let Ok(info) = info else {
            return DEFAULT_BUDGET;
        };
        let max = info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let b = if max > 0 {
            DEFAULT_BUDGET.min(max / 4).max(1)
        } else {
            DEFAULT_BUDGET
        };
        self.stats.budget.store(b, Ordering::Relaxed);
        b
    }

    /// Whether this L1 may be served from: the subscriber is connected and live, so no purge
    /// published by another process can have been missed.
    #[must_use]
    pub fn l1_usable(&self) -> bool {
        self.client.subscriber_connected()
    }

    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn error(&self) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Subscribes the L1 `store` (held weakly) to other processes' purges; each (re)connect
    /// flushes purges queued while Redis was away and clears the L1.
    pub fn subscribe(self: &Arc<Self>, store: Weak<Store>) {
        let (me, st) = (Arc::downgrade(self), store.clone());
        let handler = Arc::new(move |payload: &[u8]| {
            let (Some(me), Some(store)) = (me.upgrade(), st.upgrade()) else {
                return;
            };
            if let Some(p) = Purge::parse(payload) {
                me.bump();
                p.apply(&store);
                me.stats.purges_received.fetch_add(1, Ordering::Relaxed);
            }
        });
        let me = Arc::downgrade(self);
        let on_connect = Arc::new(move |_: &RedisClient| {
            let (Some(me), Some(store)) = (me.upgrade(), store.upgrade()) else {
                return;
            };
            let _ = me.flush_pending(true);
            me.bump();
            store.clear();
            me.stats.l1_resets.fetch_add(1, Ordering::Relaxed);
        });
        self.client.subscribe(CHANNEL, handler, Some(on_connect));
    }

    /// Sends queued purges to Redis. `Ok` when none is left. Unless `now` (the subscriber just
    /// reconnected), not before the back-off after the last failure has passed: a purge that
    /// timed out may still be running in Redis.
    fn flush_pending(&self, now: bool) -> Result<(), StoreError> {
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let at = self.clock.now_nanos();
        if !now && at < self.retry_at.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "purges queued while Redis failed wait for their retry".into(),
            ));
        }
        let mut q = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(p) = q.first().cloned() {
            if let Err(e) = self.send(&p, true) {
                self.failed_send(at);
                return Err(e);
            }
            q.remove(0);
        }
        self.has_pending.store(false, Ordering::Release);
        self.backoff.store(FIRST_BACKOFF_NANOS, Ordering::Release);
        Ok(())
    }

    /// Schedules the next try of the queue after a failed send at `at`.
    fn failed_send(&self, at: u64) {
        let backoff = self.backoff.load(Ordering::Acquire);
        self.retry_at
            .store(at.saturating_add(backoff), Ordering::Release);
        self.backoff.store(
            backoff.saturating_mul(2).min(MAX_BACKOFF_NANOS),
            Ordering::Release,
        );
    }

    fn queue(&self, p: Purge) {
        let mut q = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= MAX_PENDING || p == Purge::All {
            q.clear();
            q.push(Purge::All);
        } else if !q.contains(&p) && !q.contains(&Purge::All) {
            q.push(p);
        }
        self.has_pending.store(true, Ordering::Release);
    }

    fn send(&self, p: &Purge, always: bool) -> Result<usize, StoreError> {
        let msg = p.message();
        let always = if always { "1" } else { "0" };
        let counter = self.client.key("c{cache}:n");
        // Paths and tags go through one index script: a path purge also names the path's member
        // of the path sets and bumps the path's own generation (kept for GENERATION_TTL_MS); a
        // tag purge bumps the global generation.
        let (index, member, generation, generation_ttl) = match p {
            Purge::Path(path) => {
                let (index, member) = self.path_index(path);
                let ttl = GENERATION_TTL_MS.to_string();
                (index, member, self.generation_key(Some(path)), ttl)
            }
            Purge::Tag(tag) => (
                self.name(Space::Tag, &digest_of(tag)),
                String::new(),
                self.generation_key(None),
                String::new(),
            ),
            Purge::Prefix(prefix) => return self.send_prefix(prefix, &msg),
            Purge::All => return self.send_prefix("", &msg),
            // Only received, never sent from here.
            Purge::PathDigest(_) => return Ok(0),
        };
        let n: u64 = self.client.run(|c| {
            self.purge_index
                .key(&index)
                .key(&self.lex_key)
                .key(&counter)
                .key(&generation)
                .key(&self.lexp_key)
                .arg(&member)
                .arg(&self.channel)
                .arg(&msg)
                .arg(always)
                .arg(&generation_ttl)
                .invoke(c)
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// A prefix purge ('' for all), [`PREFIX_CHUNK`] paths per call: each call is short
    /// whatever the number of paths, and a retry redoes only what is left. Published when done.
    fn send_prefix(&self, prefix: &str, msg: &[u8]) -> Result<usize, StoreError> {
        let counter = self.client.key("c{cache}:n");
        let generation = self.generation_key(None);
        let base = self.client.key("c{cache}:p:");
        let (start, end): (Vec<u8>, Vec<u8>) = if prefix.is_empty() {
            (b"-".to_vec(), b"+".to_vec())
        } else {
            // No UTF-8 text holds the byte 0xff: every path with the prefix sorts before it.
            let start = [b"[", prefix.as_bytes()].concat();
            (start.clone(), [&start[..], &[0xff]].concat())
        };
        let mut total = 0usize;
        loop {
            let (paths, keys): (usize, usize) = self.client.run(|c| {
                self.purge_prefix
                    .key(&self.lex_key)
                    .key(&counter)
                    .key(&generation)
                    .key(&self.lexp_key)
                    .arg(&start[..])
                    .arg(&end[..])
                    .arg(&base)
                    .arg(PREFIX_CHUNK)
                    .invoke(c)
            })?;
            total = total.saturating_add(keys);
            if paths < PREFIX_CHUNK {
                break;
            }
        }
        self.client.publish(CHANNEL, msg)?;
        Ok(total)
    }

    /// Purges `p` in this L1 at once, then in Redis and every other process's L1. `always`:
    /// publish even when Redis indexed nothing (explicit purges); unsafe requests publish only
    /// when something was stored. Returns the larger of the local and the Redis count; on a
    /// Redis failure the purge is queued (and this process reads nothing from L2 until it
    /// has been sent).
    pub fn purge(&self, store: &Store, p: Purge, always: bool) -> usize {
        self.bump();
        let local = p.apply(store);
        let remote = match self
            .flush_pending(false)
            .and_then(|()| self.send(&p, always))
        {
            Ok(n) => n,
            Err(_) => {
                self.error();
                if !self.has_pending.load(Ordering::Acquire) {
                    self.failed_send(self.clock.now_nanos());
                }
                self.queue(p);
                0
            }
        };
        local.max(remote)
    }

    /// Looks a variant up in L2: one round trip when the vary headers are known (from L1's
    /// record, or none), two when a vary record names them first.
    ///
    /// Also returns the purge generations read in the same atomic step: the store of the
    /// response this request is about to fetch is refused if a purge went by meanwhile.
    pub fn lookup(
        &self,
        primary: &str,
        path: &str,
        known_vary: Option<&[String]>,
        request_vary: &[(String, Option<String>)],
    ) -> (Option<Found>, Option<Generation>) {
        if self.flush_pending(false).is_err() {
            // Redis may still hold what this process purged: read nothing from it.
            self.error();
            return (None, None);
        }
        let guess = known_vary.unwrap_or(&[]);
        let first = super::key::variant(primary, &super::headers::vary_values(guess, request_vary));
        let Ok((got, generation)) = self.get(&first, Some(path)) else {
            return (None, None);
        };
        let found = match got {
            Some((Value::Entry(record), pttl_ms)) if record.vary == guess => {
                Some(self.hit(record, pttl_ms, first))
            }
            Some((Value::Vary(names), _)) if guess.is_empty() && !names.is_empty() => {
                let key = super::key::variant(
                    primary,
                    &super::headers::vary_values(&names, request_vary),
                );
                match self.get(&key, None) {
                    Ok((Some((Value::Entry(record), pttl_ms)), _)) if record.vary == names => {
                        Some(self.hit(record, pttl_ms, key))
                    }
                    Ok((Some(_), _)) => {
                        self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Ok((None, _)) => None,
                    Err(()) => return (None, generation),
                }
            }
            Some(_) => {
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => None,
        };
        if found.is_none() {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        (found, generation)
    }

    /// The purge generations alone, for a request that stores without having looked up.
    pub fn generation(&self, path: &str) -> Option<Generation> {
        let (global, of_path) = (self.generation_key(None), self.generation_key(Some(path)));
        let got: Result<(Option<String>, Option<String>), StoreError> = self.client.run(|c| {
            redis::cmd("MGET")
                .arg(&global)
                .arg(&of_path)
                .query(c as &mut dyn ConnectionLike)
        });
        match got {
            Ok((g, p)) => Some(Generation {
                global: g.unwrap_or_default(),
                path: p.unwrap_or_default(),
                read_at: self.clock.now_nanos(),
            }),
            Err(_) => {
                self.error();
                None
            }
        }
    }

    /// `g` (bumped by tag, prefix and full purges) or `g:<path digest>` (by the path's purges).
    fn generation_key(&self, path: Option<&str>) -> String {
        match path {
            Some(p) => self
                .client
                .key(&format!("c{{cache}}:g:{}", hex(&digest_of(p)))),
            None => self.client.key("c{cache}:g"),
        }
    }

    fn hit(&self, record: Record, pttl_ms: u64, variant_key: String) -> Found {
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Found {
            record,
            pttl_ms,
            variant_key,
        }
    }

    /// `GET` and `PTTL` in one round trip. `Err(())`: Redis failed (counted); a value that does
    /// not decode is `Ok(None)` (counted as corrupt).
    /// `GET`, `PTTL` and with `path` the purge generations, in one atomic round trip (a read
    /// script: `MULTI` is not available on Redis Cluster connections). `Err(())`: Redis failed
    /// (counted); a value that does not decode is `None` (counted as corrupt).
    #[allow(clippy::type_complexity)]
    fn get(
        &self,
        variant_key: &str,
        path: Option<&str>,
    ) -> Result<(Option<(Value, u64)>, Option<Generation>), ()> {
        type Reply = (Option<Vec<u8>>, i64, Option<String>, Option<String>);
        let d = digest_of(variant_key);
        let key = self.name(Space::Entry, &d);
        let (g, gp) = match path {
            Some(p) => (self.generation_key(None), self.generation_key(Some(p))),
            // Not wanted: read the global one twice rather than branch in Lua.
            None => (self.generation_key(None), self.generation_key(None)),
        };
        let got: Result<Reply, StoreError> = self
            .client
            .run(|c| self.read_script.key(&key).key(&g).key(&gp).invoke(c));
        let Ok((value, pttl, global, of_path)) = got else {
            self.error();
            return Err(());
        };
        let generation = path.map(|_| Generation {
            global: global.unwrap_or_default(),
            path: of_path.unwrap_or_default(),
            read_at: self.clock.now_nanos(),
        });
        let value = match value {
            None => None,
            Some(bytes) => match decode(&d, &bytes) {
                // A key without an expiry was not written by this code: refuse it.
                Ok(v) if pttl > 0 => Some((v, pttl.unsigned_abs())),
                _ => {
                    self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                    None
                }
            },
        };
        Ok((value, generation))
    }

    /// Writes an entry to L2 (when it fits) and indexes it (always), atomically refused when a
    /// purge of its path, or any tag, prefix or full purge, happened since `generation` was
    /// read (before the app ran). `Err`: not stored, and the caller drops its L1 copy, which
    /// a purge from elsewhere could not find (or which may predate a purge).
    pub fn store(
        &self,
        primary: &str,
        variant_key: &str,
        record: &Record,
        generation: Option<&Generation>,
    ) -> Result<(), NotShared> {
        let Some(generation) = generation else {
            return Err(NotShared::Unavailable);
        };
        if self.flush_pending(false).is_err() {
            self.error();
            return Err(NotShared::Unavailable);
        }
        if self.clock.now_nanos().saturating_sub(generation.read_at)
            >= GENERATION_TTL_MS.saturating_mul(1_000_000)
        {
            return Err(NotShared::Slow);
        }
        let now_ms = record.stored_at / 1_000_000;
        let px = (record.stale_until / 1_000_000)
            .saturating_sub(now_ms)
            .max(1);
        let d = digest_of(variant_key);
        let entry_key = self.name(Space::Entry, &d);
        let size = record.body.len()
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let value = if size <= self.max_entry_bytes {
            encode(&d, record)
        } else {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        };
        let (vary_key, vary_value) = if record.vary.is_empty() {
            (entry_key.clone(), Vec::new())
        } else {
            let pd = digest_of(primary);
            (self.name(Space::Entry, &pd), encode_vary(&pd, &record.vary))
        };
        let (path_index, member) = self.path_index(&record.path);
        let tag_keys: Vec<String> = record
            .tags
            .iter()
            .map(|t| self.name(Space::Tag, &digest_of(t)))
            .collect();
        let (g, gp) = (
            self.generation_key(None),
            self.generation_key(Some(&record.path)),
        );
        let accounted = (value.len() as u64)
            .saturating_add(ENTRY_OVERHEAD)
            .saturating_add(TAG_OVERHEAD.saturating_mul(tag_keys.len() as u64));
        let budget = if value.is_empty() { 0 } else { self.budget() };
        let result: Result<i64, StoreError> = self.client.run(|c| {
            let mut inv = self.store_script.key(&entry_key);
            inv.key(&vary_key)
                .key(&self.lex_key)
                .key(&g)
                .key(&gp)
                .key(&path_index)
                .key(&self.lexp_key)
                .key(&self.budget_keys[0])
                .key(&self.budget_keys[1])
                .key(&self.budget_keys[2])
                .arg(px)
                .arg(&value)
                .arg(&vary_value)
                .arg(&member)
                .arg(INDEX_SLACK_MS)
                .arg(&generation.global)
                .arg(&generation.path)
                .arg(accounted)
                .arg(budget);
            for t in &tag_keys {
                inv.key(t);
            }
            inv.invoke(c)
        });
        match result {
            Ok(1) => {
                if !value.is_empty() {
                    self.stats.stores.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Ok(2) => {
                // Indexed, so purges still reach the L1 copy, which is kept.
                self.stats.over_budget.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(_) => {
                self.stats.purged_meanwhile.fetch_add(1, Ordering::Relaxed);
                Err(NotShared::PurgedMeanwhile)
            }
            Err(_) => {
                self.error();
                Err(NotShared::Unavailable)
            }
        }
    }
}

#[cfg(test)]
mod tests;
