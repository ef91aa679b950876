//! Keyed GCRA in Redis: one quota set shared by every process and host.
//!
//! Each client key is one Redis string (every quota's theoretical arrival time, in microseconds,
//! under the quota's tag), decided and updated by a Lua script in one round trip (EVALSHA; the script is
//! loaded on first use and again after a `NOSCRIPT`, e.g. when Redis restarted). The script reads
//! the time with `TIME`, so every host is judged by the server's clock and skew between app hosts
//! does not matter. The script does the same arithmetic as the in-memory limiter; the reply
//! carries the TATs it saw, from which the caller computes the same headers (remaining, reset,
//! retry) as in memory. Keys expire when their TAT passes, when they are indistinguishable from
//! absent ones.
//!
//! Key names: `{prefix}rl:{limit}:{<hash>}`, where `{limit}` is a named limit's name, or for a
//! route's own limit `@` and 32 hex digits of SHA-256 over the route's identity (its path pattern
//! or name, and its methods; see the stage). The hash is SHA-256 (truncated to 128 bits) of the
//! tagged key parts, so no IP address or subject is stored, it is the same in every process and
//! version, and the braces make it the cluster hash tag (the whole key is one slot).
//!
//! # Batched mode
//!
//! With `batch = N`, a process leases up to N requests' worth from Redis in one round trip (a
//! second script: as many as every quota allows now, up to N) and hands them out locally until
//! they are used or `batch_ttl_ms` passes. Leased units were consumed in Redis when granted, so
//! the quota is never exceeded, however many processes lease. What batching costs is precision in
//! the other direction: a lease's unused units are given back (the TAT moved back, never before
//! now) by a background reconciler once the lease expires (or by the same key's next lease call,
//! whichever comes first), so for up to `batch_ttl_ms` up to N-1 units per process and key sit
//! idle and a client can be refused that much early. Threads of one process that lease the same
//! key at once keep one merged lease and give the rest back (see `keep`), so the bound holds under
//! threads too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::error::RateLimitError;
use super::gcra::{MAX_QUOTAS, Outcome, Rate, evaluate, rate_of};
use super::limiter::Limiter;
use super::quota::Quota;
use crate::clock::SharedClock;
use crate::shared::{RedisClient, StoreError};

// Each redis.call costs microseconds of server time (more than the arithmetic), so a key is one
// string read with one GET and written with one SET ... PXAT.
//
// The string is 'tag=tat,tag=tat,...': each quota's theoretical arrival time (TAT, microseconds
// since the epoch) under a tag naming the quota ('count/period_secs/burst'). A script updates the
// TATs of its own quotas and writes back every other live one as it found it: two limits that
// end up on one key (a configuration that shares a name on purpose, or a quota changed between
// deploys) never erase each other's counts. A TAT in the past is the same as none and is dropped.
/// The start of both scripts: Redis's clock (`now`, microseconds), the stored TATs by tag, and
/// `save`, which writes the key back.
macro_rules! read_state {
    () => {
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored, order = {}, {}
local raw = redis.call('GET', KEYS[1])
if raw then
  for tag, v in string.gmatch(raw, '([^,=]+)=([^,]+)') do
    if stored[tag] == nil then order[#order + 1] = tag end
    stored[tag] = tonumber(v)
  end
end
-- own: {tag, tat} pairs of this call's quotas. Others' live TATs are kept as they were.
local function save(own)
  local parts, mine, horizon = {}, {}, now
  for _, p in ipairs(own) do
    mine[p[1]] = true
    parts[#parts + 1] = p[1] .. '=' .. string.format('%.0f', p[2])
    if p[2] > horizon then horizon = p[2] end
  end
  for _, tag in ipairs(order) do
    local v = stored[tag]
    if not mine[tag] and v and v > now then
      parts[#parts + 1] = tag .. '=' .. string.format('%.0f', v)
      if v > horizon then horizon = v end
    end
  end
  redis.call('SET', KEYS[1], table.concat(parts, ','), 'PXAT', string.format('%.0f', math.ceil(horizon / 1000) + 1))
end
"
    };
}

const HIT_SCRIPT: &str = concat!(
    read_state!(),
    r"
-- ARGV[1]: cost; ARGV[2]: '1' to consume, '0' to look; then tag, emission and tolerance (us)
-- per quota. Returns {allowed, now, tat_1, ..., tat_n}: the TATs before this hit, never before now.
local cost = tonumber(ARGV[1])
local n = (#ARGV - 2) / 3
local allowed = 1
local out = {0, now}
local new = {}
for i = 1, n do
  local tag = ARGV[3 * i]
  local em = tonumber(ARGV[3 * i + 1])
  local tol = tonumber(ARGV[3 * i + 2])
  local tat = stored[tag] or now
  if tat < now then tat = now end
  out[2 + i] = tat
  new[i] = {tag, tat + em * cost}
  if tat + em * cost - tol > now then allowed = 0 end
end
out[1] = allowed
if allowed == 1 and ARGV[2] == '1' and cost > 0 then save(new) end
return out
"
);

const LEASE_SCRIPT: &str = concat!(
    read_state!(),
    r"
-- ARGV[1]: cost of one request; ARGV[2]: units wanted; ARGV[3]: unused units given back;
-- then tag, emission, tolerance (us) per quota.
-- Grants as many whole requests as every quota allows now, up to the units wanted.
-- Returns {granted, now, tat_1, ..., tat_n}: the TATs after the grant, never before now.
local cost = tonumber(ARGV[1])
local fit = tonumber(ARGV[2])
local back = tonumber(ARGV[3])
local n = (#ARGV - 3) / 3
local tats = {}
for i = 1, n do
  local em = tonumber(ARGV[3 * i + 2])
  local tol = tonumber(ARGV[3 * i + 3])
  local tat = stored[ARGV[3 * i + 1]] or now
  if tat < now then tat = now end
  tat = tat - em * back
  if tat < now then tat = now end
  tats[i] = tat
  local k = math.floor((now + tol - tat) / em + 1e-9)
  if k < fit then fit = k end
end
local grant = math.floor(fit / cost) * cost
if grant < 0 then grant = 0 end
local out = {grant, now}
local new = {}
for i = 1, n do
  local em = tonumber(ARGV[3 * i + 2])
  tats[i] = tats[i] + em * grant
  out[2 + i] = tats[i]
  new[i] = {ARGV[3 * i + 1], tats[i]}
end
if grant > 0 or back > 0 then save(new) end
return out
"
);

/// The stored form of a key: 128 bits of SHA-256 over the tagged key parts.
pub type KeyDigest = [u8; 16];

/// A [`Hasher`] that feeds SHA-256, so the stage builds Redis keys with the same code that builds
/// in-memory ones. Integers are written little-endian at fixed width, so every host and build
/// derives the same key.
pub struct DigestHasher(aws_lc_rs::digest::Context);

impl Default for DigestHasher {
    fn default() -> Self {
        Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
}

impl DigestHasher {
    #[must_use]
    pub fn digest(self) -> KeyDigest {
        let d = self.0.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(d.as_ref().get(..16).unwrap_or(&[0u8; 16]));
        out
    }
}

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finish();
        let mut b = [0u8; 8];
        b.copy_from_slice(d.as_ref().get(..8).unwrap_or(&[0u8; 8]));
        u64::from_le_bytes(b)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn write_usize(&mut self, n: usize) {
        self.0.update(&(n as u64).to_le_bytes());
    }
}

/// A leased allowance of one key in this process.
#[derive(Debug, Clone, Copy)]
struct Lease {
    units: u64,
    /// Local clock (ns) after which the lease is given back rather than used.
    expires: u64,
    /// The server's TATs (ns) right after the grant, and the server/local instants of the grant.
    tats: [u64; MAX_QUOTAS],
    server_at: u64,
    local_at: u64,
}

/// Counters for stats and logs.
#[derive(Debug, Default)]
pub struct RedisCounters {
    /// Calls that reached Redis and got an answer.
    pub round_trips: AtomicU64,
    /// Hits answered from a local lease without a round trip.
    pub leased_hits: AtomicU64,
    /// Hits Redis could not answer (down, timed out, breaker open).
    pub errors: AtomicU64,
    pub failed_open: AtomicU64,
    pub failed_closed: AtomicU64,
    pub fallback: AtomicU64,
    /// Unused leased units given back by the reconciler.
    pub returned: AtomicU64,
}

/// A limit whose counts live in Redis.
pub struct RedisLimiter {
    client: Arc<RedisClient>,
    rates: Box<[Rate]>,
    /// `{prefix}rl:{name}:`
    key_head: String,
    /// Tag, emission and tolerance (microseconds) per quota, as the scripts take them.
    rate_args: Vec<String>,
    hit: redis::Script,
    lease: redis::Script,
    batch: u64,
    batch_ttl: u64,
    leases: Mutex<HashMap<KeyDigest, Lease>>,
    max_leases: usize,
    /// The in-memory stand-in while Redis is away (each quota divided by the worker count).
    fallback: Limiter,
    clock: SharedClock,
    pub counters: RedisCounters,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key_head", &self.key_head)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// Options for [`RedisLimiter::new`].
#[derive(Debug, Clone, Copy)]
pub struct RedisOptions {
    pub max_keys: usize,
    pub workers: u64,
    pub batch: u64,
    pub batch_ttl_nanos: u64,
}

/// `quota` as one of `workers` processes holds it: count and burst divided (at least 1).
pub fn divided(q: &Quota, workers: u64) -> Result<Quota, RateLimitError> {
    let w = workers.max(1);
    Quota::with_burst((q.count / w).max(1), q.period_secs, (q.burst / w).max(1))
}

fn micros(nanos: u64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}.{:03}", nanos / 1000, nanos % 1000);
    s
}

impl RedisLimiter {
    pub fn new(
        client: Arc<RedisClient>,
        name: &str,
        quotas: &[Quota],
        options: RedisOptions,
        clock: SharedClock,
    ) -> Result<Self, RateLimitError> {
        let rates = quotas.iter().map(rate_of).collect::<Result<Vec<_>, _>>()?;
        let fallback_quotas = quotas
            .iter()
            .map(|q| divided(q, options.workers))
            .collect::<Result<Vec<_>, _>>()?;
        let fallback = Limiter::with_clock(&fallback_quotas, options.max_keys, clock.clone())?;
        let rate_args = quotas
            .iter()
            .zip(&rates)
            .flat_map(|(q, r)| {
                [
                    format!("{}/{}/{}", q.count, q.period_secs, q.burst),
                    micros(r.emission()),
                    micros(r.tolerance()),
                ]
            })
            .collect();
        let key_head = client.key(&format!("rl:{name}:"));
        Ok(Self {
            client,
            rates: rates.into_boxed_slice(),
            key_head,
            rate_args,
            hit: redis::Script::new(HIT_SCRIPT),
            lease: redis::Script::new(LEASE_SCRIPT),
            batch: options.batch,
            batch_ttl: options.batch_ttl_nanos,
            leases: Mutex::new(HashMap::new()),
            max_leases: options.max_keys,
            fallback,
            clock,
            counters: RedisCounters::default(),
        })
    }

    /// The Redis key of a digest.
    #[must_use]
    pub fn key_name(&self, digest: &KeyDigest) -> String {
        let mut k = String::with_capacity(self.key_head.len() + 34);
        k.push_str(&self.key_head);
        k.push('{');
        for b in digest {
            let _ = write!(k, "{b:02x}");
        }
        k.push('}');
        k
    }

    #[must_use]
    pub fn client(&self) -> &Arc<RedisClient> {
        &self.client
    }

    /// The in-memory limiter used while Redis is away.
    #[must_use]
    pub fn fallback(&self) -> &Limiter {
        &self.fallback
    }

    #[must_use]
    pub fn quotas(&self) -> Vec<Quota> {
        self.rates.iter().map(Rate::quota).collect()
    }

    /// One hit (or, with `commit = false`, a look) decided in Redis.
    pub fn hit(&self, digest: &KeyDigest, cost: u64, commit: bool) -> Result<Outcome, StoreError> {
        if self.batch > 0 && commit && cost > 0 {
            return self.hit_leased(digest, cost);
        }
        let reply = self.call(&self.hit, digest, &[cost, u64::from(commit)])?;
        let (out, _) = evaluate(
            &self.rates,
            |i| reply.tats[i],
            cost,
            reply.now,
            commit,
            Some(reply.first == 1),
        );
        Ok(out)
    }

    /// Runs one of the scripts on `digest`'s key with `head` arguments before the quotas', and
    /// checks the reply's shape: two integers, then one TAT per quota.
    fn call(
        &self,
        script: &redis::Script,
        digest: &KeyDigest,
        head: &[u64],
    ) -> Result<Reply, StoreError> {
        let key = self.key_name(digest);
        let reply: Vec<i64> = self
            .client
            .run(|con| {
                let mut inv = script.key(&key);
                for a in head {
                    inv.arg(*a);
                }
                for a in &self.rate_args {
                    inv.arg(a);
                }
                inv.invoke(con)
            })
            .inspect_err(|_| {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            })?;
        self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
        if reply.len() != 2 + self.rates.len() || reply.iter().any(|v| *v < 0) {
            return Err(StoreError::Protocol(format!(
                "rate-limit script returned {} values for {} quotas",
                reply.len(),
                self.rates.len()
            )));
        }
        let mut tats = [0u64; MAX_QUOTAS];
        for (slot, v) in tats.iter_mut().zip(reply.iter().skip(2)) {
            *slot = micros_to_nanos(*v);
        }
        Ok(Reply {
            first: reply[0],
            now: micros_to_nanos(reply[1]),
            tats,
        })
    }

    fn hit_leased(&self, digest: &KeyDigest, cost: u64) -> Result<Outcome, StoreError> {
        let local = self.clock.now_nanos();
        let taken = self
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest);
        let mut back = 0;
        if let Some(mut lease) = taken {
            if lease.units >= cost && local < lease.expires {
                lease.units -= cost;
                let out = self.leased_outcome(&lease, cost, local);
                self.counters.leased_hits.fetch_add(1, Ordering::Relaxed);
                self.keep(*digest, lease);
                return Ok(out);
            }
            back = lease.units;
        }
        let want = self.batch.saturating_mul(cost);
        let reply = self.call(&self.lease, digest, &[cost, want, back])?;
        let tats = reply.tats;
        let granted = u64::try_from(reply.first).unwrap_or(0);
        let server_now = reply.now;
        if granted < cost {
            let (out, _) = evaluate(
                &self.rates,
                |i| tats[i],
                cost,
                server_now,
                false,
                Some(false),
            );
            return Ok(out);
        }
        let lease = Lease {
            units: granted - cost,
            expires: local.saturating_add(self.batch_ttl),
            tats,
            server_at: server_now,
            local_at: local,
        };
        let out = self.leased_outcome(&lease, cost, local);
        self.keep(*digest, lease);
        Ok(out)
    }

    /// Headers for a hit served from a lease: the server's state at the grant, as if the lease's
    /// unused units had not been taken, plus this hit.
    fn leased_outcome(&self, lease: &Lease, cost: u64, local: u64) -> Outcome {
        let now = lease
            .server_at
            .saturating_add(local.saturating_sub(lease.local_at));
        let unused = lease.units.saturating_add(cost);
        let (out, _) = evaluate(
            &self.rates,
            |i| {
                let em = self.rates.get(i).map_or(0, Rate::emission);
                lease.tats[i].saturating_sub(em.saturating_mul(unused))
            },
            cost,
            now,
            true,
            Some(true),
        );
        out
    }

    /// Keeps `lease` for `digest`. Two threads that missed the lease at once have both leased
    /// from Redis: the leases are merged, never one dropped (its units, consumed in Redis, would
    /// be lost until the TAT passed). The merged lease keeps the larger of the two allowances and
    /// the smaller goes back to Redis at once, so a process never holds more than one lease's
    /// worth idle (the documented N-1 units).
    fn keep(&self, digest: KeyDigest, lease: Lease) {
        let excess = {
            let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
            let (kept, excess) = match leases.remove(&digest) {
                Some(other) => merge(other, lease),
                None => (lease, 0),
            };
            if leases.len() >= self.max_leases {
                let now = self.clock.now_nanos();
                leases.retain(|_, l| l.expires > now);
                if leases.len() >= self.max_leases {
                    // Dropping leases only leaves their units idle in Redis until the TAT passes.
                    leases.clear();
                }
            }
            if kept.units > 0 {
                leases.insert(digest, kept);
            }
            excess
        };
        if excess > 0 && self.call(&self.lease, &digest, &[1, 0, excess]).is_ok() {
            self.counters.returned.fetch_add(excess, Ordering::Relaxed);
        }
    }

    /// Leases held in this process (batched mode).
    #[must_use]
    pub fn lease_count(&self) -> usize {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_batched(&self) -> bool {
        self.batch > 0
    }

    /// Gives the unused units of every expired lease back to Redis (the reconciler's sweep).
    /// Returns how many leases went back; a lease Redis cannot take back is dropped (its units
    /// then lapse when the arrival time passes).
    pub fn return_expired(&self) -> usize {
        let now = self.clock.now_nanos();
        let expired: Vec<(KeyDigest, u64)> = {
            let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
            let keys: Vec<KeyDigest> = leases
                .iter()
                .filter(|(_, l)| l.expires <= now)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| leases.remove(&k).map(|l| (k, l.units)))
                .collect()
        };
        let mut returned = 0;
        for (digest, units) in expired {
            if units == 0 {
                continue;
            }
            if self.call(&self.lease, &digest, &[1, 0, units]).is_ok() {
                returned += 1;
                self.counters.returned.fetch_add(units, Ordering::Relaxed);
            }
        }
        returned
    }
}

/// Two leases of one key: the later grant (whose TATs include the other's) with the larger
/// allowance and the earlier expiry, and the units to give back.
fn merge(a: Lease, b: Lease) -> (Lease, u64) {
    let later = if b.server_at >= a.server_at { b } else { a };
    let kept = Lease {
        units: a.units.max(b.units),
        expires: a.expires.min(b.expires),
        ..later
    };
    (kept, a.units.min(b.units))
}

/// Starts one background thread that returns expired leases of `limiters` every `every`, until
/// none of them is alive any more.
pub fn spawn_reconciler(limiters: Vec<Weak<RedisLimiter>>, every: Duration) {
    if limiters.is_empty() {
        return;
    }
    // Without a thread, leases are still given back by the same key's next lease call.
    let _ = std::thread::Builder::new()
        .name("ferrogate-redis-leases".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let mut alive = false;
                for l in limiters.iter().filter_map(Weak::upgrade) {
                    alive = true;
                    l.return_expired();
                }
                if !alive {
                    return;
                }
            }
        });
}

/// How often the reconciler sweeps: half the lease lifetime, within 10 ms to 1 s.
#[must_use]
pub fn sweep_interval(batch_ttl_nanos: u64) -> Duration {
    Duration::from_nanos(batch_ttl_nanos / 2)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// A script's reply: the decision (allowed, or units granted), Redis's clock, and the TATs.
struct Reply {
    first: i64,
    now: u64,
    tats: [u64; MAX_QUOTAS],
}

fn micros_to_nanos(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::quota::parse_quotas;

    #[test]
    fn digests_are_stable_and_tagged() {
        let mut a = DigestHasher::default();
        a.write_u8(1);
        a.write_usize(3);
        a.write(b"abc");
        let mut b = DigestHasher::default();
        b.write_u8(1);
        b.write_usize(3);
        b.write(b"abc");
        let (a, b) = (a.digest(), b.digest());
        assert_eq!(a, b);
        // SHA-256 of 01 | 03 00 00 00 00 00 00 00 | "abc": the same on every host and build.
        let mut c = DigestHasher::default();
        c.write(&[1, 3, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(c.digest(), a);
    }

    #[test]
    fn divided_quotas_keep_at_least_one() {
        let q = parse_quotas("10/second burst 20").unwrap()[0];
        let d = divided(&q, 4).unwrap();
        assert_eq!((d.count, d.burst, d.period_secs), (2, 5, 1));
        let d = divided(&parse_quotas("3/hour").unwrap()[0], 8).unwrap();
        assert_eq!((d.count, d.burst), (1, 1));
        assert_eq!(micros(1_500), "1.500");
        assert_eq!(micros(3_600_000_000_000), "3600000000.000");
    }
}
