//! The gate's rate-limit stage: limits bound to routes at build time, decided per request.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::client_ip::{Cidr, ClientIp};
use super::headers;
use super::host_file::HostFile;
use super::host_store::HostLimiter;
use super::limiter::Limiter;
use super::quota::Quota;
use super::redis_store::{
    DigestHasher, RedisLimiter, RedisOptions, spawn_reconciler, sweep_interval,
};
use super::settings::{
    DEFAULT_EXEMPT_METHODS, KeyPart, LimitDef, LimitOptions, LimitPolicy, LimitRef, OnError,
    Settings, Storage,
};
use crate::blocking::Blocking;
use crate::clock::SharedClock;
use crate::http::Header;
use crate::issues::{Issues, join};
use crate::json::Claims;
use crate::problem::{self, Problem};
use crate::request::Request;
use crate::response::Response;
use crate::shared::RedisClient;

/// A key part with header names resolved to their slot in [`Request::headers`].
#[derive(Debug, Clone)]
enum BoundPart {
    Ip,
    Subject,
    Claim(String),
    Header(usize),
}

/// Where a limit counts.
#[derive(Debug, Clone)]
enum Backend {
    Memory(Arc<Limiter>),
    Host(Arc<HostLimiter>),
    Redis(Arc<RedisLimiter>),
}

/// One limit as one route enforces it.
#[derive(Debug)]
struct BoundLimit {
    backend: Backend,
    on_error: OnError,
    name: String,
    quotas: Vec<Quota>,
    key: Box<[BoundPart]>,
    cost: u64,
    dry_run: bool,
    exempt_methods: Vec<String>,
    exempt_ips: Vec<Cidr>,
    exempt_subjects: Vec<String>,
    policy_header: String,
}

/// The limits of one route (empty: none).
#[derive(Debug, Default)]
pub struct RouteLimits(Box<[BoundLimit]>);

impl RouteLimits {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the stage decided.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// Go on. `dry_run_refused` names the first dry-run limit that would have refused.
    Pass {
        dry_run_refused: Option<&'a str>,
    },
    Refuse(Response),
}

/// Builds the stage: one limiter per named limit (shared), one per inline limit per route.
pub struct StageBuilder<'c> {
    settings: &'c Settings,
    named: HashMap<&'c str, Backend>,
    clock: SharedClock,
    memory: Vec<Arc<Limiter>>,
    redis: Option<Arc<RedisClient>>,
    redis_limiters: Vec<Arc<RedisLimiter>>,
    /// Redis key segment of every route's own limit -> the config key that claimed it.
    identities: HashMap<String, String>,
    host: Option<Arc<HostFile>>,
    host_limiters: usize,
}

/// Where a route's own limit counts in Redis: `@` and 32 hex digits of SHA-256 over the route's
/// identity (its pattern or name and its methods), the same in every process and deploy, and
/// free of characters that mean something in a key (braces are cluster hash tags).
#[must_use]
pub fn route_key_segment(identity: &str) -> String {
    let mut h = DigestHasher::default();
    h.write(identity.as_bytes());
    let mut out = String::with_capacity(33);
    out.push('@');
    for b in h.digest() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl<'c> StageBuilder<'c> {
    #[must_use]
    pub fn new(
        settings: &'c Settings,
        clock: SharedClock,
        redis: Option<Arc<RedisClient>>,
    ) -> Self {
        Self {
            settings,
            named: HashMap::new(),
            clock,
            memory: Vec::new(),
            redis,
            redis_limiters: Vec::new(),
            identities: HashMap::new(),
            host: None,
            host_limiters: 0,
        }
    }

    /// The file of `storage = "host"` (opened by the caller, who reports a path it cannot use).
    #[must_use]
    pub fn with_host_file(mut self, file: Option<Arc<HostFile>>) -> Self {
        self.host = file;
        self
    }

    /// A new store for `def`, in the host file or Redis when the settings say so (and the file or
    /// client exists: without one the config already has an error).
    fn limiter(&mut self, def: &LimitDef, name: &str) -> Option<Backend> {
        let max_keys = def.max_keys.unwrap_or(self.settings.max_keys);
        if self.settings.storage == Storage::Host {
            let file = self.host.clone()?;
            let l = HostLimiter::new(
                file,
                name,
                &def.quotas,
                max_keys,
                self.settings.workers,
                self.clock.clone(),
            )
            .ok()?;
            self.host_limiters += 1;
            return Some(Backend::Host(Arc::new(l)));
        }
        if self.settings.storage == Storage::Redis {
            let client = self.redis.clone()?;
            let options = RedisOptions {
                max_keys,
                workers: self.settings.workers,
                batch: self.settings.batch,
                batch_ttl_nanos: self.settings.batch_ttl_ms.saturating_mul(1_000_000),
            };
            let l = Arc::new(
                RedisLimiter::new(client, name, &def.quotas, options, self.clock.clone()).ok()?,
            );
            self.redis_limiters.push(l.clone());
            return Some(Backend::Redis(l));
        }
        let l = Arc::new(Limiter::with_clock(&def.quotas, max_keys, self.clock.clone()).ok()?);
        self.memory.push(l.clone());
        Some(Backend::Memory(l))
    }

    /// Binds a resolved policy for the route `label` (its name, or `"default"`), shown in headers.
    /// `identity` (the route's pattern or name, and its methods) names its own limits in Redis:
    /// two routes with one identity would share counts, so the second is reported at `at`.
    /// Header key parts are added to `header_keys`. Unknown names were reported by
    /// `Settings::check_policy`; they are skipped here.
    pub fn bind(
        &mut self,
        policy: &LimitPolicy,
        label: &str,
        (identity, at): (&str, &str),
        header_keys: &mut Vec<String>,
        issues: &mut Issues,
    ) -> RouteLimits {
        let LimitPolicy::Limits(refs) = policy else {
            return RouteLimits::default();
        };
        let mut out = Vec::with_capacity(refs.len());
        for (j, r) in refs.iter().enumerate() {
            let (def, options, limiter, name) = match r {
                LimitRef::Named { name, options } => {
                    let settings = self.settings;
                    let Some((key, def)) = settings.named.iter().find(|(n, _)| n == name) else {
                        continue;
                    };
                    let limiter = if let Some(l) = self.named.get(key.as_str()) {
                        l.clone()
                    } else {
                        let Some(l) = self.limiter(def, key) else {
                            continue;
                        };
                        self.named.insert(key.as_str(), l.clone());
                        l
                    };
                    (def, options.over(&def.options), limiter, name.clone())
                }
                LimitRef::Inline(def) => {
                    let (name, segment) = if refs.len() > 1 {
                        (
                            format!("{label}.{}", j + 1),
                            route_key_segment(&format!("{identity}#{}", j + 1)),
                        )
                    } else {
                        (label.to_owned(), route_key_segment(identity))
                    };
                    if self.settings.storage == Storage::Redis {
                        if let Some(first) = self.identities.get(&segment) {
                            issues.push(
                                join(at, "limit"),
                                format!(
                                    "counts in Redis under the same identity as {first}.limit \
                                     (pattern, methods and name): give one of the routes a \
                                     unique name"
                                ),
                            );
                            continue;
                        }
                        self.identities.insert(segment.clone(), at.to_owned());
                    }
                    let Some(l) = self.limiter(def, &segment) else {
                        continue;
                    };
                    (def, def.options.clone(), l, name)
                }
            };
            let on_error = options.on_error.unwrap_or(self.settings.on_error);
            out.push(bind_one(
                def,
                &options,
                limiter,
                on_error,
                name,
                header_keys,
            ));
        }
        RouteLimits(out.into_boxed_slice())
    }

    /// Finishes the stage; `header_keys` must be the gate's final list.
    #[must_use]
    pub fn finish(self, header_keys: &mut Vec<String>) -> Stage {
        let client_ip = self.settings.client_ip.clone();
        let forwarded_slot = client_ip
            .reads_header()
            .then(|| header_slot(header_keys, client_ip.header.name()));
        let batched: Vec<_> = self
            .redis_limiters
            .iter()
            .filter(|l| l.is_batched())
            .map(Arc::downgrade)
            .collect();
        spawn_reconciler(
            batched,
            sweep_interval(self.settings.batch_ttl_ms.saturating_mul(1_000_000)),
        );
        let retry_secs = self.redis.as_ref().map_or(1, |r| {
            let d = r.settings().breaker_cooldown;
            (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
        });
        Stage {
            client_ip,
            forwarded_slot,
            legacy_headers: self.settings.legacy_headers,
            clock: self.clock,
            memory_limiters: self.memory,
            host_limiters: self.host_limiters,
            redis_limiters: self.redis_limiters,
            unavailable_retry_secs: retry_secs,
        }
    }
}

fn header_slot(keys: &mut Vec<String>, name: &str) -> usize {
    if let Some(i) = keys.iter().position(|k| k == name) {
        return i;
    }
    keys.push(name.to_owned());
    keys.len() - 1
}

fn bind_one(
    def: &LimitDef,
    options: &LimitOptions,
    backend: Backend,
    on_error: OnError,
    name: String,
    header_keys: &mut Vec<String>,
) -> BoundLimit {
    let key = def
        .key
        .iter()
        .map(|p| match p {
            KeyPart::Ip => BoundPart::Ip,
            KeyPart::Subject => BoundPart::Subject,
            KeyPart::Claim(c) => BoundPart::Claim(c.clone()),
            KeyPart::Header(h) => BoundPart::Header(header_slot(header_keys, h)),
        })
        .collect();
    BoundLimit {
        policy_header: headers::policy_value(&name, &def.quotas),
        backend,
        on_error,
        name,
        quotas: def.quotas.clone(),
        key,
        cost: options.cost.unwrap_or(1),
        dry_run: options.dry_run.unwrap_or(false),
        exempt_methods: options.exempt_methods.clone().unwrap_or_else(|| {
            DEFAULT_EXEMPT_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect()
        }),
        exempt_ips: options.exempt_ips.clone().unwrap_or_default(),
        exempt_subjects: options.exempt_subjects.clone().unwrap_or_default(),
    }
}

/// The built stage, shared by every route.
#[derive(Debug)]
pub struct Stage {
    client_ip: ClientIp,
    forwarded_slot: Option<usize>,
    legacy_headers: bool,
    clock: SharedClock,
    memory_limiters: Vec<Arc<Limiter>>,
    host_limiters: usize,
    redis_limiters: Vec<Arc<RedisLimiter>>,
    /// Retry-After on a 503 when the store is down: the breaker's cooldown.
    unavailable_retry_secs: u64,
}

/// Totals over a gate's Redis-backed limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisTotals {
    pub limits: usize,
    pub round_trips: u64,
    pub leased_hits: u64,
    pub errors: u64,
    pub failed_open: u64,
    pub failed_closed: u64,
    pub fallback: u64,
    pub returned: u64,
}

/// What a limit whose store failed does, per its `on_error`.
enum Failure<'l> {
    /// Let the request through as far as this limit goes.
    Skip,
    /// 503.
    Refuse,
    /// Count in this process's stand-in limiter.
    Local(&'l Limiter),
}

/// Counts the failure (`counters`: failed open, failed closed, fell back) and says what to do.
fn failure<'l>(
    limit: &BoundLimit,
    counters: [&AtomicU64; 3],
    fallback: &'l Limiter,
) -> Failure<'l> {
    let [open, closed, local] = counters;
    match limit.on_error {
        OnError::Allow => {
            open.fetch_add(1, Ordering::Relaxed);
            Failure::Skip
        }
        OnError::Deny if !limit.dry_run => {
            closed.fetch_add(1, Ordering::Relaxed);
            Failure::Refuse
        }
        OnError::Deny => Failure::Skip,
        OnError::Local => {
            local.fetch_add(1, Ordering::Relaxed);
            Failure::Local(fallback)
        }
    }
}

/// Key part tags, so `ip=1.2.3.4` and `header=1.2.3.4` never hash alike.
const TAG_IP: u8 = 1;
const TAG_SUB: u8 = 2;
const TAG_CLAIM: u8 = 3;
const TAG_HEADER: u8 = 4;
const TAG_MISSING: u8 = 5;
const TAG_ISS: u8 = 6;

impl Stage {
    /// The forwarding header `client_ip` reads (lower case), when it trusts a proxy.
    #[must_use]
    pub fn forwarded_header(&self) -> Option<&'static str> {
        self.client_ip
            .reads_header()
            .then(|| self.client_ip.header.name())
    }

    /// The client as the limits key it: `REMOTE_ADDR`, or what a trusted proxy's header says,
    /// masked to `ipv4_prefix` / `ipv6_prefix`. `None` when there is no usable address.
    #[must_use]
    pub fn client_key(&self, remote_addr: Option<&str>, forwarded: Option<&str>) -> Option<IpAddr> {
        self.client_ip
            .resolve(remote_addr, forwarded)
            .map(|ip| self.client_ip.key_of(ip))
    }

    /// How many in-memory limiters the gate holds (for the multi-process warning).
    #[must_use]
    pub fn memory_limiters(&self) -> usize {
        self.memory_limiters.len()
    }

    /// Forgets every count kept in this process's memory (tests start from full quotas). Counts
    /// in Redis are shared with other processes and stay.
    pub fn reset_memory(&self) {
        for l in &self.memory_limiters {
            l.clear();
        }
    }

    /// How many limits count in the host-shared file.
    #[must_use]
    pub fn host_limiters(&self) -> usize {
        self.host_limiters
    }

    /// Counters summed over the Redis-backed limits.
    #[must_use]
    pub fn redis_totals(&self) -> RedisTotals {
        let mut t = RedisTotals {
            limits: self.redis_limiters.len(),
            ..RedisTotals::default()
        };
        for l in &self.redis_limiters {
            let c = &l.counters;
            t.round_trips += c.round_trips.load(Ordering::Relaxed);
            t.leased_hits += c.leased_hits.load(Ordering::Relaxed);
            t.errors += c.errors.load(Ordering::Relaxed);
            t.failed_open += c.failed_open.load(Ordering::Relaxed);
            t.failed_closed += c.failed_closed.load(Ordering::Relaxed);
            t.fallback += c.fallback.load(Ordering::Relaxed);
            t.returned += c.returned.load(Ordering::Relaxed);
        }
        t
    }

    /// Decides `limits` for one request. Headers for the app's response go to `out`.
    pub fn check<'a>(
        &self,
        limits: &'a RouteLimits,
        req: &Request<'_>,
        claims: Option<&Claims>,
        out: &mut Vec<Header>,
        blocking: &dyn Blocking,
    ) -> Verdict<'a> {
        if limits.is_empty() {
            return Verdict::Pass {
                dry_run_refused: None,
            };
        }
        let forwarded = self.forwarded_slot.and_then(|i| req.headers.header(i));
        // Resolved only if a limit keys on or exempts addresses (or a key part is missing): for a
        // per-subject limit, parsing REMOTE_ADDR and the forwarding header is wasted work.
        let resolved = OnceCell::new();
        let client =
            || *resolved.get_or_init(|| self.client_ip.resolve(req.remote_addr, forwarded));
        let subject = claims.and_then(|c| c.get("sub"));
        let now = self.clock.now_nanos();
        let mut dry_run_refused = None;
        // The legacy trio describes one quota: the one with the fewest requests left.
        let mut legacy: Option<(Quota, super::gcra::QuotaState)> = None;
        for limit in &limits.0 {
            if limit.exempt_methods.iter().any(|m| m == req.method)
                || (!limit.exempt_ips.is_empty()
                    && client().is_some_and(|ip| limit.exempt_ips.iter().any(|c| c.contains(ip))))
                || subject
                    .and_then(Value::as_str)
                    .is_some_and(|s| limit.exempt_subjects.iter().any(|e| e == s))
            {
                continue;
            }
            let decided = match &limit.backend {
                Backend::Memory(l) => {
                    let mut h = l.key_hasher();
                    self.write_key(&mut h, limit, req, &client, claims);
                    Ok(l.hit_hashed(h.finish(), limit.cost, now))
                }
                Backend::Host(l) => {
                    let mut h = DigestHasher::default();
                    self.write_key(&mut h, limit, req, &client, claims);
                    // In place: a hit is a few microseconds of local work, less than releasing
                    // and retaking the GIL would cost.
                    let c = &l.counters;
                    l.hit(&h.digest(), limit.cost, now, true).map_err(|_| {
                        failure(
                            limit,
                            [&c.failed_open, &c.failed_closed, &c.fallback],
                            l.fallback(),
                        )
                    })
                }
                Backend::Redis(l) => {
                    let mut h = DigestHasher::default();
                    self.write_key(&mut h, limit, req, &client, claims);
                    let digest = h.digest();
                    let mut result = None;
                    blocking.run(&mut || result = Some(l.hit(&digest, limit.cost, true)));
                    let c = &l.counters;
                    match result {
                        Some(Ok(o)) => Ok(o),
                        _ => Err(failure(
                            limit,
                            [&c.failed_open, &c.failed_closed, &c.fallback],
                            l.fallback(),
                        )),
                    }
                }
            };
            let outcome = match decided {
                Ok(o) => o,
                Err(Failure::Skip) => continue,
                Err(Failure::Refuse) => return Verdict::Refuse(self.unavailable(limit)),
                Err(Failure::Local(f)) => {
                    let mut h = f.key_hasher();
                    self.write_key(&mut h, limit, req, &client, claims);
                    f.hit_hashed(h.finish(), limit.cost, now)
                }
            };
            if limit.dry_run {
                if !outcome.allowed && dry_run_refused.is_none() {
                    dry_run_refused = Some(limit.name.as_str());
                }
                continue;
            }
            let state = outcome.state();
            let quota = limit.quotas.get(outcome.binding).copied();
            if !outcome.allowed {
                return Verdict::Refuse(self.refusal(limit, &outcome, now));
            }
            out.push((headers::RATELIMIT_POLICY, limit.policy_header.clone()));
            out.push((
                headers::RATELIMIT,
                headers::ratelimit_value(&limit.name, &outcome),
            ));
            if let Some(q) = quota {
                if legacy.is_none_or(|(_, s)| state.remaining < s.remaining) {
                    legacy = Some((q, state));
                }
            }
        }
        if self.legacy_headers {
            if let Some((q, s)) = legacy {
                out.extend(headers::legacy_values(&q, &s, now));
            }
        }
        Verdict::Pass { dry_run_refused }
    }

    /// 503 for a limit whose store cannot answer, when it is set to fail closed.
    fn unavailable(&self, limit: &BoundLimit) -> Response {
        let retry = self.unavailable_retry_secs;
        let p = Problem::new(
            503,
            "the rate-limit store is unavailable; the request was not attempted",
        )
        .with("retry_after", retry)
        .with("limit", limit.name.as_str());
        Response {
            status: 503,
            headers: vec![
                ("content-type", problem::CONTENT_TYPE.to_owned()),
                (headers::RETRY_AFTER, retry.to_string()),
            ],
            body: p.to_body().into(),
        }
    }

    fn refusal(&self, limit: &BoundLimit, outcome: &super::gcra::Outcome, now: u64) -> Response {
        let state = outcome.state();
        let retry = headers::retry_after_secs(&state);
        let mut hs: Vec<Header> = vec![
            ("content-type", problem::CONTENT_TYPE.to_owned()),
            (headers::RETRY_AFTER, retry.to_string()),
            (headers::RATELIMIT_POLICY, limit.policy_header.clone()),
            (
                headers::RATELIMIT,
                headers::ratelimit_value(&limit.name, outcome),
            ),
        ];
        if self.legacy_headers {
            if let Some(q) = limit.quotas.get(outcome.binding) {
                hs.extend(headers::legacy_values(q, &state, now));
            }
        }
        let p = Problem::new(
            429,
            format!(
                "rate limit exceeded; retry in {retry} second{}",
                if retry == 1 { "" } else { "s" }
            ),
        )
        .with("retry_after", retry)
        .with("limit", limit.name.as_str());
        Response {
            status: 429,
            headers: hs,
            body: p.to_body().into(),
        }
    }

    /// The stored key of this request under `limit`: each part tagged and length-prefixed, hashed
    /// straight from borrowed request data (no allocation). A part the request lacks (no token,
    /// no API-key header) falls back to the client address, so leaving it out is no way around
    /// the limit.
    fn write_key(
        &self,
        h: &mut impl Hasher,
        limit: &BoundLimit,
        req: &Request<'_>,
        client: &dyn Fn() -> Option<IpAddr>,
        claims: Option<&Claims>,
    ) {
        for part in &limit.key {
            match part {
                BoundPart::Ip => self.write_ip(h, TAG_IP, client),
                BoundPart::Subject => match claims.and_then(|c| c.get("sub")) {
                    Some(v) => {
                        write_claim(h, TAG_SUB, v);
                        // `sub` is unique only within its issuer (RFC 7519 §4.1.2): with several
                        // trusted issuers, one's user must not spend another's quota.
                        if let Some(iss) = claims.and_then(|c| c.get("iss")).and_then(Value::as_str)
                        {
                            write_bytes(h, TAG_ISS, iss.as_bytes());
                        }
                    }
                    None => self.write_ip(h, TAG_MISSING, client),
                },
                BoundPart::Claim(name) => match claims.and_then(|c| c.get(name)) {
                    Some(v) => write_claim(h, TAG_CLAIM, v),
                    None => self.write_ip(h, TAG_MISSING, client),
                },
                BoundPart::Header(i) => match req.headers.header(*i) {
                    Some(v) => write_bytes(h, TAG_HEADER, v.as_bytes()),
                    None => self.write_ip(h, TAG_MISSING, client),
                },
            }
        }
    }

    fn write_ip(&self, h: &mut impl Hasher, tag: u8, client: &dyn Fn() -> Option<IpAddr>) {
        match client().map(|ip| self.client_ip.key_of(ip)) {
            Some(IpAddr::V4(v4)) => write_bytes(h, tag, &v4.octets()),
            Some(IpAddr::V6(v6)) => write_bytes(h, tag, &v6.octets()),
            // No usable REMOTE_ADDR: every such request shares one bucket.
            None => write_bytes(h, tag, b""),
        }
    }
}

fn write_bytes(h: &mut impl Hasher, tag: u8, bytes: &[u8]) {
    h.write_u8(tag);
    h.write_usize(bytes.len());
    h.write(bytes);
}

fn write_claim(h: &mut impl Hasher, tag: u8, v: &Value) {
    match v {
        Value::String(s) => write_bytes(h, tag, s.as_bytes()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_bytes(h, tag, &i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                write_bytes(h, tag, &u.to_le_bytes());
            } else {
                write_bytes(h, tag, &n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::Bool(b) => write_bytes(h, tag, &[u8::from(*b)]),
        // Null, arrays, objects: rare as keys; hash their JSON text (allocates, off the hot path).
        other => write_bytes(h, tag, other.to_string().as_bytes()),
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
