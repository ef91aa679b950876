//! Keyed GCRA in the host-shared file ([`super::host_file`]): one count for every worker process
//! on the host, exact, with no server.
//!
//! The decision is the in-memory limiter's own (`gcra::evaluate`): the stored TATs of
//! every quota of a key are read, decided and written back in one LMDB write transaction, so a
//! multi-quota limit refuses without consuming from its other quotas, a cost counts as that many
//! requests, a look (`commit = false`) writes nothing, and the headers come from the TATs the
//! decision used. Time is the caller's clock, as in memory: every process on one host reads the
//! same system clock.
//!
//! # Layout
//!
//! An entry's key is 24 bytes: the limit's namespace (8 bytes of SHA-256 over its name and
//! quotas, so two limits never share an entry and a changed quota starts afresh) and the client
//! key's 128-bit digest (the same one the Redis store uses: no address or subject is written).
//! Its value is each quota's TAT, nanoseconds, little-endian u64. Per limit, a counter entry holds
//! how many keys it has (for the key cap). Meta entries have other lengths.
//!
//! # Staying bounded
//!
//! A key whose every TAT has passed has its whole burst back: dropping it changes no decision.
//! Each transaction that adds a key also looks at the next [`SWEEP_STEP`] entries after this
//! process's sweep cursor and drops the idle ones, so the whole file is swept once per
//! `live / SWEEP_STEP` new keys and idle keys cannot pile up. A limit at its `max_keys` drops its
//! idle keys, and if fewer than an eighth are, the eighth with the earliest TATs (the keys
//! closest to a full burst), so the scan that finds them comes once per eighth of the cap. LMDB
//! reuses freed pages, so the file stops growing.

use std::hash::Hasher;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use heed::RwTxn;

use super::error::RateLimitError;
use super::gcra::{MAX_QUOTAS, Outcome, Rate, evaluate, rate_of};
use super::host_file::{Db, Finish, HostFile};
use super::limiter::Limiter;
use super::quota::Quota;
use super::redis_store::{DigestHasher, KeyDigest, divided};
use crate::clock::SharedClock;

/// Entries examined for idleness per key added.
pub const SWEEP_STEP: usize = 8;
const NS_BYTES: usize = 8;
const KEY_BYTES: usize = NS_BYTES + 16;
const COUNT_PREFIX: &[u8] = b"\0ferrogate:count:";

/// Counters for stats and logs.
#[derive(Debug, Default)]
pub struct HostCounters {
    /// Hits the store could not answer (I/O error, file system or map full).
    pub errors: AtomicU64,
    pub failed_open: AtomicU64,
    pub failed_closed: AtomicU64,
    pub fallback: AtomicU64,
}

/// A limit whose counts live in the host-shared file.
pub struct HostLimiter {
    file: Arc<HostFile>,
    rates: Box<[Rate]>,
    ns: [u8; NS_BYTES],
    max_keys: u64,
    /// The in-memory stand-in while the file fails (each quota divided by the worker count).
    fallback: Limiter,
    pub counters: HostCounters,
}

impl std::fmt::Debug for HostLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLimiter")
            .field("file", &self.file.path())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

/// A limit's namespace in the file: its name and every quota's count, period and burst.
fn namespace(name: &str, quotas: &[Quota]) -> [u8; NS_BYTES] {
    let mut h = DigestHasher::default();
    h.write(b"ferrogate-host-ns\0");
    h.write_usize(name.len());
    h.write(name.as_bytes());
    for q in quotas {
        h.write_u64(q.count);
        h.write_u64(q.period_secs);
        h.write_u64(q.burst);
    }
    let d = h.digest();
    let mut ns = [0u8; NS_BYTES];
    ns.copy_from_slice(d.get(..NS_BYTES).unwrap_or(&[0u8; NS_BYTES]));
    ns
}

fn count_key(ns: &[u8]) -> Vec<u8> {
    let mut k = COUNT_PREFIX.to_vec();
    k.extend_from_slice(ns);
    k
}

/// The stored TATs of an entry; an entry of the wrong size (which no writer of this format
/// makes) reads as absent.
fn tats_of(value: Option<&[u8]>, n: usize) -> Option<[u64; MAX_QUOTAS]> {
    let v = value?;
    if v.len() != n * 8 {
        return None;
    }
    let mut out = [0u64; MAX_QUOTAS];
    for (slot, chunk) in out.iter_mut().zip(v.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *slot = u64::from_le_bytes(b);
    }
    Some(out)
}

/// The latest TAT of an entry's value: the key is idle once it has passed.
fn horizon(value: &[u8]) -> u64 {
    value
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .max()
        .unwrap_or(0)
}

fn read_count(db: &Db, txn: &RwTxn<'_>, ns: &[u8]) -> heed::Result<u64> {
    Ok(db
        .get(txn, &count_key(ns))?
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_le_bytes))
}

fn add_count(db: &Db, txn: &mut RwTxn<'_>, ns: &[u8], delta: i64) -> heed::Result<()> {
    let n = read_count(db, txn, ns)?.saturating_add_signed(delta);
    if n == 0 {
        db.delete(txn, &count_key(ns))?;
        Ok(())
    } else {
        db.put(txn, &count_key(ns), &n.to_le_bytes())
    }
}

/// Deletes `keys` (entries of any limit) and fixes each limit's count.
fn delete_entries(db: &Db, txn: &mut RwTxn<'_>, keys: &mut [Vec<u8>]) -> heed::Result<usize> {
    keys.sort_unstable();
    let mut i = 0;
    while i < keys.len() {
        let ns = keys[i].get(..NS_BYTES).unwrap_or(&[]).to_vec();
        let mut removed = 0i64;
        while i < keys.len() && keys[i].starts_with(&ns) {
            if db.delete(txn, &keys[i])? {
                removed += 1;
            }
            i += 1;
        }
        add_count(db, txn, &ns, -removed)?;
    }
    Ok(keys.len())
}

/// One step of the incremental sweep: the next entries after `cursor` (wrapping around once),
/// idle ones deleted.
fn sweep_step(db: &Db, txn: &mut RwTxn<'_>, cursor: &mut Vec<u8>, now: u64) -> heed::Result<()> {
    let mut idle = Vec::new();
    let mut seen = 0;
    let mut last = None;
    for pass in 0..2 {
        let start = if pass == 0 && !cursor.is_empty() {
            Bound::Excluded(cursor.as_slice())
        } else {
            Bound::Unbounded
        };
        for item in db.range(txn, &(start, Bound::Unbounded))? {
            let (k, v) = item?;
            if k.len() != KEY_BYTES {
                continue;
            }
            seen += 1;
            last = Some(k.to_vec());
            if horizon(v) <= now {
                idle.push(k.to_vec());
            }
            if seen == SWEEP_STEP {
                break;
            }
        }
        if seen == SWEEP_STEP || cursor.is_empty() {
            break;
        }
    }
    *cursor = last.unwrap_or_default();
    delete_entries(db, txn, &mut idle)?;
    Ok(())
}

impl HostLimiter {
    /// A limit named `name` (with its quotas, its identity in the file) in `file`.
    pub fn new(
        file: Arc<HostFile>,
        name: &str,
        quotas: &[Quota],
        max_keys: usize,
        workers: u64,
        clock: SharedClock,
    ) -> Result<Self, RateLimitError> {
        let rates = quotas.iter().map(rate_of).collect::<Result<Vec<_>, _>>()?;
        let fallback_quotas = quotas
            .iter()
            .map(|q| divided(q, workers))
            .collect::<Result<Vec<_>, _>>()?;
        let fallback = Limiter::with_clock(&fallback_quotas, max_keys, clock)?;
        Ok(Self {
            file,
            rates: rates.into_boxed_slice(),
            ns: namespace(name, quotas),
            max_keys: max_keys as u64,
            fallback,
            counters: HostCounters::default(),
        })
    }

    #[must_use]
    pub fn file(&self) -> &Arc<HostFile> {
        &self.file
    }

    /// The in-memory limiter used while the file fails.
    #[must_use]
    pub fn fallback(&self) -> &Limiter {
        &self.fallback
    }

    fn entry_key(&self, digest: &KeyDigest) -> [u8; KEY_BYTES] {
        let mut k = [0u8; KEY_BYTES];
        k[..NS_BYTES].copy_from_slice(&self.ns);
        k[NS_BYTES..].copy_from_slice(digest);
        k
    }

    /// One hit of `cost` at `now` (or, with `commit = false`, a look that writes nothing).
    pub fn hit(
        &self,
        digest: &KeyDigest,
        cost: u64,
        now: u64,
        commit: bool,
    ) -> Result<Outcome, RateLimitError> {
        let key = self.entry_key(digest);
        let n = self.rates.len();
        self.file
            .write(|db, txn, cursor| {
                let stored = tats_of(db.get(txn, &key)?, n);
                let (out, new_tats) = evaluate(
                    &self.rates,
                    |i| stored.map_or(0, |t| t[i]),
                    cost,
                    now,
                    commit,
                    None,
                );
                if !(out.allowed && commit && cost > 0) {
                    return Ok(Finish::Abort(out));
                }
                let mut value = [0u8; MAX_QUOTAS * 8];
                for (chunk, tat) in value.chunks_exact_mut(8).zip(new_tats.iter().take(n)) {
                    chunk.copy_from_slice(&tat.to_le_bytes());
                }
                if stored.is_none() {
                    self.make_room(db, txn, now)?;
                    add_count(db, txn, &self.ns, 1)?;
                }
                db.put(txn, &key, value.get(..n * 8).unwrap_or(&[]))?;
                if stored.is_none() {
                    sweep_step(db, txn, cursor, now)?;
                }
                Ok(Finish::Commit(out))
            })
            .inspect_err(|_| {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Before adding a key to a limit at its cap: drop its idle keys, or, when fewer than an
    /// eighth of its keys are idle, the eighth with the earliest horizons (the idle ones first).
    /// Always at least an eighth: this scans every key of the limit under the file's write
    /// lock, and a cap that freed one idle key at a time would scan on every new key.
    fn make_room(&self, db: &Db, txn: &mut RwTxn<'_>, now: u64) -> heed::Result<()> {
        if read_count(db, txn, &self.ns)? < self.max_keys {
            return Ok(());
        }
        let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
        for item in db.prefix_iter(txn, &self.ns)? {
            let (k, v) = item?;
            if k.len() == KEY_BYTES {
                entries.push((horizon(v), k.to_vec()));
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let room = (entries.len() / 8).max(1);
        let idle = entries.iter().filter(|(h, _)| *h <= now).count();
        if idle >= room {
            entries.retain(|(h, _)| *h <= now);
        } else {
            entries.select_nth_unstable_by_key(room - 1, |(h, _)| *h);
            entries.truncate(room);
        }
        let mut dropped: Vec<Vec<u8>> = entries.into_iter().map(|(_, k)| k).collect();
        delete_entries(db, txn, &mut dropped)?;
        Ok(())
    }

    /// Keys this limit holds in the file (every process's).
    pub fn live_keys(&self) -> Result<u64, RateLimitError> {
        self.file
            .write(|db, txn, _| Ok(Finish::Abort(read_count(db, txn, &self.ns)?)))
    }

    /// Drops every idle entry in the file (every limit's, as the sweep does); returns how many.
    pub fn prune(&self, now: u64) -> Result<usize, RateLimitError> {
        self.file.write(|db, txn, _| {
            let mut idle = Vec::new();
            for item in db.iter(txn)? {
                let (k, v) = item?;
                if k.len() == KEY_BYTES && horizon(v) <= now {
                    idle.push(k.to_vec());
                }
            }
            let n = delete_entries(db, txn, &mut idle)?;
            Ok(Finish::Commit(n))
        })
    }

    #[must_use]
    pub fn quotas(&self) -> Vec<Quota> {
        self.rates.iter().map(Rate::quota).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::system;
    use crate::ratelimit::host_file::{DEFAULT_MAP_BYTES, Scratch};
    use crate::ratelimit::quota::parse_quotas;

    const S: u64 = 1_000_000_000;

    fn file(name: &str) -> (Scratch, Arc<HostFile>) {
        let dir = Scratch::new(&format!("store-{name}"));
        let f = HostFile::open(&dir.file("s.mdb"), DEFAULT_MAP_BYTES).unwrap();
        (dir, f)
    }

    fn digest(key: &[u8]) -> KeyDigest {
        let mut h = DigestHasher::default();
        h.write(key);
        h.digest()
    }

    fn pair(q: &str, f: &Arc<HostFile>, max_keys: usize) -> (HostLimiter, Limiter) {
        let quotas = parse_quotas(q).unwrap();
        (
            HostLimiter::new(f.clone(), "t", &quotas, max_keys, 1, system()).unwrap(),
            Limiter::new(&quotas, max_keys).unwrap(),
        )
    }

    #[test]
    fn decisions_and_headers_match_memory() {
        let (_dir, f) = file("parity");
        let (host, mem) = pair("3/second; 5/minute burst 4", &f, 1000);
        let t0 = 1_000 * S;
        let script: &[(u64, u64, bool)] = &[
            (0, 1, true),
            (0, 2, true),
            (0, 1, true),
            (1, 1, false),
            (S / 3, 1, true),
            (S / 2, 3, true),
            (S, 9, true),
            (2 * S, 1, true),
            (20 * S, 1, true),
            (20 * S, 1, false),
            (200 * S, 4, true),
        ];
        for (i, (dt, cost, commit)) in script.iter().enumerate() {
            let d = digest(b"client");
            let h = host.hit(&d, *cost, t0 + dt, *commit).unwrap();
            let m = if *commit {
                mem.hit_hashed(7, *cost, t0 + dt)
            } else {
                mem.peek_hashed(7, t0 + dt)
            };
            assert_eq!(h, m, "step {i}");
        }
    }

    #[test]
    fn limits_do_not_share_entries() {
        let (_dir, f) = file("ns");
        let a = HostLimiter::new(
            f.clone(),
            "a",
            &parse_quotas("1/hour").unwrap(),
            10,
            1,
            system(),
        )
        .unwrap();
        let b = HostLimiter::new(
            f.clone(),
            "b",
            &parse_quotas("1/hour").unwrap(),
            10,
            1,
            system(),
        )
        .unwrap();
        let a2 =
            HostLimiter::new(f, "a", &parse_quotas("2/hour").unwrap(), 10, 1, system()).unwrap();
        let d = digest(b"k");
        assert!(a.hit(&d, 1, S, true).unwrap().allowed);
        assert!(!a.hit(&d, 1, S, true).unwrap().allowed);
        assert!(b.hit(&d, 1, S, true).unwrap().allowed, "another name");
        assert!(a2.hit(&d, 1, S, true).unwrap().allowed, "another quota");
    }

    #[test]
    fn cap_holds_and_throttled_key_survives_a_flood() {
        let (_dir, f) = file("cap");
        let (host, _) = pair("10/minute", &f, 64);
        let victim = digest(b"victim");
        for _ in 0..10 {
            assert!(host.hit(&victim, 1, 0, true).unwrap().allowed);
        }
        for i in 0..1000u32 {
            host.hit(&digest(&i.to_le_bytes()), 1, 0, true).unwrap();
            assert!(host.live_keys().unwrap() <= 64);
        }
        assert!(!host.hit(&victim, 1, 0, true).unwrap().allowed);
    }

    #[test]
    fn a_full_limit_frees_an_eighth_even_when_one_key_is_idle() {
        let (_dir, f) = file("eighth");
        let (host, _) = pair("1/second", &f, 64);
        host.hit(&digest(b"early"), 1, 0, true).unwrap();
        for i in 0..63u32 {
            host.hit(&digest(&i.to_le_bytes()), 1, S / 2, true).unwrap();
        }
        assert_eq!(host.live_keys().unwrap(), 64);
        // Only "early" is idle by now; dropping it alone would leave the next new key to scan
        // the whole limit again.
        host.hit(&digest(b"new"), 1, S + S / 10, true).unwrap();
        assert_eq!(host.live_keys().unwrap(), 64 - 8 + 1);
    }

    #[test]
    fn idle_keys_are_swept_as_keys_arrive() {
        let (_dir, f) = file("sweep");
        let (host, _) = pair("1/second", &f, 1_000_000);
        // One new key per millisecond, each idle a second later: the file never needs to hold
        // much more than a second's worth.
        for i in 0..20_000u64 {
            host.hit(&digest(&i.to_le_bytes()), 1, i * (S / 1000), true)
                .unwrap();
        }
        let live = host.live_keys().unwrap();
        assert!(live < 3_000, "{live} keys held");
        assert_eq!(host.prune(1_000 * S).unwrap() as u64, live);
        assert_eq!(host.live_keys().unwrap(), 0);
    }

    const KILLED: &str = "ratelimit::host_store::tests::a_writer_killed_inside_its_transaction_leaves_the_others_working";

    #[test]
    fn a_writer_killed_inside_its_transaction_leaves_the_others_working() {
        if let Ok(path) = std::env::var("FG_HOLD_WRITE_TXN") {
            // The victim (this test binary, run again as a child): a write in progress, forever.
            let f = HostFile::open(std::path::Path::new(&path), DEFAULT_MAP_BYTES).unwrap();
            let _ = f.write(|db, txn, _| -> heed::Result<Finish<()>> {
                db.put(txn, b"half-written", b"x")?;
                std::fs::write(format!("{path}.ready"), b"1").unwrap();
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            });
            return;
        }
        let (_dir, f) = file("killed");
        let (host, _) = pair("1000/hour", &f, 100);
        let d = digest(b"k");
        assert!(host.hit(&d, 1, S, true).unwrap().allowed);
        let path = f.path().to_string_lossy().into_owned();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", KILLED, "--nocapture", "--test-threads=1"])
            .env("FG_HOLD_WRITE_TXN", &path)
            .spawn()
            .unwrap();
        let ready = std::path::PathBuf::from(format!("{path}.ready"));
        for _ in 0..600 {
            if ready.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(ready.exists(), "the child never started its write");
        // SIGKILL while it holds LMDB's writer lock.
        child.kill().unwrap();
        child.wait().unwrap();
        let host = Arc::new(host);
        let (tx, rx) = std::sync::mpsc::channel();
        let h = host.clone();
        std::thread::spawn(move || {
            let _ = tx.send(h.hit(&d, 1, S, true));
        });
        let out = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("blocked on a dead process's lock");
        let out = out.unwrap();
        assert!(out.allowed);
        assert_eq!(
            out.state().remaining,
            998,
            "our first hit counted once, nothing else"
        );
        let half = f
            .write(|db, txn, _| Ok(Finish::Abort(db.get(txn, b"half-written")?.is_some())))
            .unwrap();
        assert!(!half, "the dead writer's transaction never became visible");
    }

    #[test]
    fn threads_allow_exactly_the_quota() {
        let (_dir, f) = file("threads");
        let (host, _) = pair("1000/hour", &f, 10);
        let host = Arc::new(host);
        let d = digest(b"one");
        let allowed: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let host = host.clone();
                    s.spawn(move || {
                        (0..300)
                            .filter(|_| host.hit(&d, 1, 5 * S, true).unwrap().allowed)
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 1000);
    }
}
